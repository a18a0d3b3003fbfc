//! The crate graph from the workspace's manifests, with the features each crate is built with,
//! and the source files a stage is built from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The workspace crates a crate is built from: itself and, recursively, every `fer-*` crate in
/// its `[dependencies]` (not dev- or build-dependencies), as folders relative to the workspace
/// root, sorted. A dependency is found through `[workspace.dependencies]` (`path = ...`) or its
/// own `path`. This is the crate graph from the manifests, so a new dependency is covered by
/// the code version without a hand-kept list.
pub fn crate_graph(workspace: &Path, own: &str) -> Vec<String> {
    graph_features(workspace, own).into_keys().collect()
}

/// [`crate_graph`], each crate with the features the graph enables on it: the union of the
/// `features = [...]` of every dependency on it in the graph (and of `[workspace.dependencies]`),
/// closed under the crate's own `[features]` table (`a = ["b"]` enables `b` with `a`).
fn graph_features(workspace: &Path, own: &str) -> BTreeMap<String, BTreeSet<String>> {
    let ws: toml::Table = read_toml(&workspace.join("Cargo.toml"));
    let ws_deps = ws
        .get("workspace")
        .and_then(|w| w.get("dependencies"))
        .and_then(|d| d.as_table())
        .cloned()
        .unwrap_or_default();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut seen: Vec<String> = Vec::new();
    let mut todo = vec![own.to_string()];
    out.entry(own.to_string()).or_default();
    while let Some(dir) = todo.pop() {
        if seen.contains(&dir) {
            continue;
        }
        let manifest: toml::Table = read_toml(&workspace.join(&dir).join("Cargo.toml"));
        if let Some(deps) = manifest.get("dependencies").and_then(|d| d.as_table()) {
            for (name, spec) in deps.iter().filter(|(n, _)| n.starts_with("fer-")) {
                let ws_spec = ws_deps.get(name);
                let path = spec
                    .get("path")
                    .and_then(|p| p.as_str())
                    .map(|p| normalize(&format!("{dir}/{p}")))
                    .or_else(|| {
                        ws_spec
                            .and_then(|d| d.get("path"))
                            .and_then(|p| p.as_str())
                            .map(normalize)
                    });
                if let Some(p) = path {
                    let feats = out.entry(p.clone()).or_default();
                    for f in [
                        spec.get("features"),
                        ws_spec.and_then(|d| d.get("features")),
                    ]
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f.as_array())
                    .flatten()
                    .filter_map(|f| f.as_str())
                    {
                        feats.insert(f.to_string());
                    }
                    todo.push(p);
                }
            }
        }
        seen.push(dir);
    }
    for (dir, feats) in out.iter_mut() {
        let manifest: toml::Table = read_toml(&workspace.join(dir).join("Cargo.toml"));
        let table = manifest.get("features").and_then(|f| f.as_table());
        let mut todo: Vec<String> = feats.iter().cloned().collect();
        while let Some(f) = todo.pop() {
            let implied = table
                .and_then(|t| t.get(&f))
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
                .filter(|v| !v.contains(':') && !v.contains('/'));
            for i in implied {
                if feats.insert(i.to_string()) {
                    todo.push(i.to_string());
                }
            }
        }
    }
    out
}

/// What a stage is built from in one crate of its graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrateSources {
    /// The whole crate: its `src/` and `Cargo.toml`.
    Whole(String),
    /// A per-feature crate (`[package.metadata.fer-codeversion] per-feature-files = true`, as
    /// fer-schema): its `Cargo.toml` and these files of `src/` (relative to the workspace),
    /// every file but `src/<feature>.rs` of a feature the graph does not enable.
    Files { dir: String, files: Vec<String> },
}

impl CrateSources {
    /// The paths to hash, relative to the workspace root.
    pub fn paths(&self) -> Vec<String> {
        match self {
            CrateSources::Whole(dir) => vec![format!("{dir}/src"), format!("{dir}/Cargo.toml")],
            CrateSources::Files { dir, files } => {
                let mut v = vec![format!("{dir}/Cargo.toml")];
                v.extend(files.iter().cloned());
                v
            }
        }
    }

    /// The same, as Makefile prerequisites (`$(call src,x)` for a whole crate).
    pub fn make_prerequisites(&self) -> Vec<String> {
        match self {
            CrateSources::Whole(dir) => {
                vec![format!("$(call src,{})", dir.trim_start_matches("crates/"))]
            }
            CrateSources::Files { .. } => self.paths(),
        }
    }
}

/// The sources the crate in folder `own` is built from, crate by crate in [`crate_graph`]
/// order. A per-feature crate contributes its shared files and only the files of the features
/// the graph enables on it, so an edit to one schema changes only the code versions of the
/// stages that read or write it.
pub fn sources(workspace: &Path, own: &str) -> Vec<CrateSources> {
    graph_features(workspace, own)
        .into_iter()
        .map(|(dir, feats)| {
            let manifest: toml::Table = read_toml(&workspace.join(&dir).join("Cargo.toml"));
            let per_feature = manifest
                .get("package")
                .and_then(|p| p.get("metadata"))
                .and_then(|m| m.get("fer-codeversion"))
                .and_then(|m| m.get("per-feature-files"))
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            if !per_feature {
                return CrateSources::Whole(dir);
            }
            let gated: BTreeSet<String> = manifest
                .get("features")
                .and_then(|f| f.as_table())
                .map(|t| t.keys().cloned().collect())
                .unwrap_or_default();
            let mut files = Vec::new();
            let src = workspace.join(&dir).join("src");
            let mut entries: Vec<_> = std::fs::read_dir(&src)
                .unwrap_or_else(|e| panic!("{}: {e}", src.display()))
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect();
            entries.sort();
            for name in entries {
                let stem = name.strip_suffix(".rs").unwrap_or(&name);
                if !gated.contains(stem) || feats.contains(stem) {
                    files.push(format!("{dir}/src/{name}"));
                }
            }
            CrateSources::Files { dir, files }
        })
        .collect()
}

pub(crate) fn read_toml(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `crates/train-cnn/../models` -> `crates/models`.
pub(crate) fn normalize(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            x => out.push(x),
        }
    }
    out.join("/")
}
