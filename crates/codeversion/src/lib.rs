//! Build-script helper for fer-pipeline stage crates.
//!
//! Reads: the source trees a stage is built from: the `src/` and `Cargo.toml` of the crate and
//! of every workspace crate it depends on (the crate graph, read from the manifests), and the
//! workspace `Cargo.lock`. Writes: nothing; it prints the
//! `cargo:rustc-env=FER_CODE_VERSION=<hash>` line and `rerun-if-changed` lines.
//! Takes no params. The hash is of file contents and relative paths only, so two clones
//! of the same commit get the same code version (which is what lets the run cache hit).

use std::path::{Path, PathBuf};

/// Hash every file under `roots` (relative path + contents, sorted), returning a hex digest.
pub fn hash_paths(base: &Path, roots: &[&str]) -> String {
    let mut files: Vec<PathBuf> = Vec::new();
    for r in roots {
        collect(&base.join(r), &mut files);
    }
    files.sort();
    let mut h = blake3::Hasher::new();
    for f in &files {
        let rel = f.strip_prefix(base).unwrap_or(f);
        h.update(rel.to_string_lossy().replace('\\', "/").as_bytes());
        h.update(&[0]);
        if let Ok(bytes) = std::fs::read(f) {
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(&bytes);
        }
    }
    h.finalize().to_hex()[..16].to_string()
}

fn collect(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                collect(&e.path(), out);
            }
        }
    } else if p.is_file() {
        out.push(p.to_path_buf());
    }
}

/// The workspace crates a crate is built from: itself and, recursively, every `fer-*` crate in
/// its `[dependencies]` (not dev- or build-dependencies), as folders relative to the workspace
/// root, sorted. A dependency is found through `[workspace.dependencies]` (`path = ...`) or its
/// own `path`. This is the crate graph from the manifests, so a new dependency is covered by
/// the code version without a hand-kept list.
pub fn crate_graph(workspace: &Path, own: &str) -> Vec<String> {
    let ws: toml::Table = read_toml(&workspace.join("Cargo.toml"));
    let ws_deps = ws
        .get("workspace")
        .and_then(|w| w.get("dependencies"))
        .and_then(|d| d.as_table())
        .cloned()
        .unwrap_or_default();
    let mut seen: Vec<String> = Vec::new();
    let mut todo = vec![own.to_string()];
    while let Some(dir) = todo.pop() {
        if seen.contains(&dir) {
            continue;
        }
        let manifest: toml::Table = read_toml(&workspace.join(&dir).join("Cargo.toml"));
        if let Some(deps) = manifest.get("dependencies").and_then(|d| d.as_table()) {
            for (name, spec) in deps.iter().filter(|(n, _)| n.starts_with("fer-")) {
                let path = spec
                    .get("path")
                    .and_then(|p| p.as_str())
                    .map(|p| normalize(&format!("{dir}/{p}")))
                    .or_else(|| {
                        ws_deps
                            .get(name)
                            .and_then(|d| d.get("path"))
                            .and_then(|p| p.as_str())
                            .map(normalize)
                    });
                if let Some(p) = path {
                    todo.push(p);
                }
            }
        }
        seen.push(dir);
    }
    seen.sort();
    seen
}

fn read_toml(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `crates/train-cnn/../models` -> `crates/models`.
fn normalize(p: &str) -> String {
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

/// The code version of the workspace crate in folder `own` (relative to `workspace`): the hash
/// of the `src/` and `Cargo.toml` of every crate in its [`crate_graph`] and of `Cargo.lock`.
/// Returns the version and the paths it hashed (for `rerun-if-changed`).
pub fn code_version_of(workspace: &Path, own: &str) -> (String, Vec<String>) {
    let mut roots: Vec<String> = Vec::new();
    for dir in crate_graph(workspace, own) {
        roots.push(format!("{dir}/src"));
        roots.push(format!("{dir}/Cargo.toml"));
    }
    roots.push("Cargo.lock".into());
    let refs: Vec<&str> = roots.iter().map(String::as_str).collect();
    (hash_paths(workspace, &refs), roots)
}

fn build_dirs() -> (PathBuf, String) {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let crates = manifest_dir.parent().expect("crates/").to_path_buf();
    let workspace = crates.parent().expect("workspace root").to_path_buf();
    let own = manifest_dir
        .strip_prefix(&workspace)
        .expect("crate inside workspace")
        .to_string_lossy()
        .to_string();
    (workspace, own)
}

/// Call from a stage crate's `build.rs`: emits `FER_CODE_VERSION`, the hash of the `src/` and
/// `Cargo.toml` of every crate in [`crate_graph`] (the crate itself, core, and whatever else it
/// is built from) and of `Cargo.lock`.
pub fn emit() {
    let (workspace, own) = build_dirs();
    // The workspace manifest names the dependencies' paths: a change there can change the graph.
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.toml").display()
    );
    let (v, roots) = code_version_of(&workspace, &own);
    for r in &roots {
        println!("cargo:rerun-if-changed={}", workspace.join(r).display());
    }
    println!("cargo:rustc-env=FER_CODE_VERSION={v}");
}

/// [`emit`], and `FER_UPSTREAM_CODE_VERSIONS`: the code version of each upstream stage the
/// crate reads (`stage=version` pairs joined by `;`; stage `train_cnn` is the crate in
/// `crates/train-cnn`), so the stage can tell that an upstream output was made by other code
/// (`fer_core::stage::Input::current`).
pub fn emit_with_upstream(stages: &[&str]) {
    emit();
    let (workspace, _) = build_dirs();
    let mut pairs = Vec::new();
    for stage in stages {
        let dir = format!("crates/{}", stage.replace('_', "-"));
        let (v, roots) = code_version_of(&workspace, &dir);
        for r in &roots {
            println!("cargo:rerun-if-changed={}", workspace.join(r).display());
        }
        pairs.push(format!("{stage}={v}"));
    }
    println!(
        "cargo:rustc-env=FER_UPSTREAM_CODE_VERSIONS={}",
        pairs.join(";")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn the_graph_follows_dependencies_not_dev_dependencies() {
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let g = crate_graph(&ws, "crates/tune");
        for c in [
            "crates/tune",
            "crates/core",
            "crates/train",
            "crates/models",
            "crates/ops",
        ] {
            assert!(g.contains(&c.to_string()), "{c} missing from {g:?}");
        }
        // tune's tests use ingest, preprocess and train-cnn; its code does not.
        for c in ["crates/ingest", "crates/train-cnn", "crates/augment"] {
            assert!(!g.contains(&c.to_string()), "{c} in {g:?}");
        }
        assert_eq!(
            crate_graph(&ws, "crates/stats"),
            ["crates/core", "crates/stats"]
        );
        assert_eq!(normalize("crates/a/../b/./c"), "crates/b/c");
    }

    /// A stage crate is one with a code version (`fer-codeversion` among its build
    /// dependencies). None may be built from another, even through a library: an edit to one
    /// stage would rerun the other, and following a stage's params would cross crates.
    #[test]
    fn no_stage_crate_depends_on_another_stage_crate() {
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut dirs: Vec<String> = std::fs::read_dir(ws.join("crates"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().join("Cargo.toml").is_file())
            .map(|e| format!("crates/{}", e.file_name().to_string_lossy()))
            .collect();
        dirs.sort();
        let stages: Vec<&String> = dirs
            .iter()
            .filter(|d| {
                read_toml(&ws.join(d).join("Cargo.toml"))
                    .get("build-dependencies")
                    .and_then(|b| b.get("fer-codeversion"))
                    .is_some()
            })
            .collect();
        assert!(stages.len() >= 8, "{stages:?}");
        let mut bad = Vec::new();
        for s in &stages {
            for d in crate_graph(&ws, s) {
                if &d != *s && stages.contains(&&d) {
                    bad.push(format!("{s} is built from {d}"));
                }
            }
        }
        assert!(
            bad.is_empty(),
            "stage crates built from stage crates: {bad:?}"
        );
    }

    /// The upstream stages a stage crate's build script declares
    /// (`emit_with_upstream(&["a", ...])`; none for `emit()`).
    fn declared_upstream(ws: &Path, stage: &str) -> Vec<String> {
        let dir = ws.join("crates").join(stage.replace('_', "-"));
        let text = std::fs::read_to_string(dir.join("build.rs")).unwrap();
        match text.split_once("emit_with_upstream(") {
            None => Vec::new(),
            Some((_, rest)) => {
                let list = &rest[..rest.find(')').unwrap()];
                list.split('"')
                    .skip(1)
                    .step_by(2)
                    .map(String::from)
                    .collect()
            }
        }
    }

    /// Every stage reachable from `s` in `graph`.
    fn closure(graph: &BTreeMap<String, Vec<String>>, s: &str) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        let mut todo: Vec<String> = graph.get(s).cloned().unwrap_or_default();
        while let Some(u) = todo.pop() {
            if !seen.contains(&u) {
                todo.extend(graph.get(&u).cloned().unwrap_or_default());
                seen.push(u);
            }
        }
        seen.sort();
        seen
    }

    /// The Makefile's stage rules are kept by hand; they must agree with what the crates
    /// declare: a stage's upstream manifests reach the same stages as its build script's
    /// `emit_with_upstream` list, and its source prerequisites (`$(call src,X)` and `$(CORE)`)
    /// are the crates it is built from ([`crate_graph`]), no more, no fewer.
    #[test]
    fn the_makefile_agrees_with_the_declared_stage_graph() {
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let make = std::fs::read_to_string(ws.join("Makefile")).unwrap();
        let mut make_up: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut make_src: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in make.lines() {
            let Some(rest) = line.strip_prefix("$(A)/") else {
                continue;
            };
            let Some((stage, prereqs)) = rest.split_once("/manifest.json:") else {
                continue;
            };
            let mut up = Vec::new();
            let mut src = Vec::new();
            for p in prereqs.split_whitespace() {
                if let Some(u) = p.strip_prefix("$(A)/") {
                    if let Some(u) = u.strip_suffix("/manifest.json") {
                        up.push(u.to_string());
                    }
                } else if let Some(c) = p.strip_prefix("src,") {
                    // `$(call src,X)`, split at its space.
                    src.push(format!("crates/{}", c.trim_end_matches(')')));
                } else if p == "$(CORE)" {
                    src.push("crates/core".into());
                }
            }
            // A FORCE rule (ingest) is asked every time and checks its own code version.
            if prereqs.trim() == "FORCE" {
                src = crate_graph(&ws, &format!("crates/{stage}"));
            }
            src.sort();
            make_up.insert(stage.to_string(), up);
            make_src.insert(stage.to_string(), src);
        }
        let stages: Vec<String> = make_up.keys().cloned().collect();
        assert!(stages.len() >= 8, "stage rules found: {stages:?}");
        let declared: BTreeMap<String, Vec<String>> = stages
            .iter()
            .map(|s| (s.clone(), declared_upstream(&ws, s)))
            .collect();
        let mut bad = Vec::new();
        for s in &stages {
            let (m, d) = (closure(&make_up, s), closure(&declared, s));
            if m != d {
                bad.push(format!(
                    "{s}: the Makefile's upstream stages reach {m:?}, its build script's {d:?}"
                ));
            }
            let graph = crate_graph(&ws, &format!("crates/{}", s.replace('_', "-")));
            if make_src[s] != graph {
                bad.push(format!(
                    "{s}: the Makefile's source prerequisites are {:?}, the crates it is built from {graph:?}",
                    make_src[s]
                ));
            }
        }
        assert!(bad.is_empty(), "Makefile out of step:\n{}", bad.join("\n"));
    }
}
