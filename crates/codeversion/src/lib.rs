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

/// Call from a stage crate's `build.rs` (`fn main() { fer_codeversion::emit() }`). The stage is
/// the one [`fer_graph::STAGES`] declares in this crate's folder. Emits `FER_CODE_VERSION`, the
/// hash of the `src/` and `Cargo.toml` of every crate in [`crate_graph`] (the crate itself, core,
/// and whatever else it is built from) and of `Cargo.lock`; and `FER_UPSTREAM_CODE_VERSIONS`,
/// the code version of each upstream stage the graph says it reads (`stage=version` pairs
/// joined by `;`, empty for a stage that reads none), so the stage can tell that an upstream
/// output was made by other code (`fer_core::stage::Input::current`).
pub fn emit() {
    let (workspace, own) = build_dirs();
    let stage = fer_graph::STAGES
        .iter()
        .find(|s| s.crate_dir() == own)
        .unwrap_or_else(|| panic!("{own}: no stage in fer_graph::STAGES is built from this crate"));
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
    let mut pairs = Vec::new();
    for up in stage.upstream {
        let dir = fer_graph::stage(up).expect("declared").crate_dir();
        let (v, roots) = code_version_of(&workspace, &dir);
        for r in &roots {
            println!("cargo:rerun-if-changed={}", workspace.join(r).display());
        }
        pairs.push(format!("{up}={v}"));
    }
    println!(
        "cargo:rustc-env=FER_UPSTREAM_CODE_VERSIONS={}",
        pairs.join(";")
    );
}

/// The generated Makefile part (`mk/stages.mk`): the `STAGES` list, a phony target per stage,
/// and each stage's rule. A rule's prerequisites are its upstream stages' manifests (from
/// [`fer_graph::STAGES`]), the pipeline files, and the sources of every crate it is built from
/// ([`crate_graph`]) with the build helper, the workspace manifest and the lock file. A stage
/// that reads no stage (ingest) reads the data, which mtimes don't track: make asks it every
/// time (`FORCE`) and it skips itself, leaving its manifest's mtime alone (`--keep-mtime`).
pub fn make_rules(workspace: &Path) -> String {
    let mut out = String::from(
        "# Generated from fer_graph::STAGES (crates/graph) and the crates' manifests by\n\
         # fer_codeversion::make_rules: do not edit. `make stages-mk` rewrites it; a test\n\
         # (the_makefile_stage_rules_are_generated_from_the_graph) fails when it is stale.\n\n",
    );
    let targets: Vec<String> = fer_graph::STAGES.iter().map(|s| s.target()).collect();
    out.push_str(&format!("STAGES := {}\n\n", targets.join(" ")));
    for s in fer_graph::STAGES {
        out.push_str(&format!("{}: $(A)/{}/manifest.json\n", s.target(), s.name));
    }
    for s in fer_graph::STAGES {
        out.push('\n');
        let mut pre: Vec<String> = Vec::new();
        if s.upstream.is_empty() {
            pre.push("FORCE".into());
        } else {
            pre.extend(s.upstream.iter().map(|u| format!("$(A)/{u}/manifest.json")));
            pre.push("$(or $(PFILES),$(PFILE))".into());
            for dir in crate_graph(workspace, &s.crate_dir()) {
                pre.push(format!("$(call src,{})", dir.trim_start_matches("crates/")));
            }
            pre.push("$(call src,codeversion) Cargo.toml Cargo.lock".into());
        }
        out.push_str(&format!(
            "$(A)/{}/manifest.json: {}\n",
            s.name,
            pre.join(" ")
        ));
        out.push_str("\t$(BUILD)\n");
        let mut cmd = format!("\t$(BIN)/{} --pipeline $(PIPELINE)", s.bin());
        if s.device {
            cmd.push_str(" --device $(DEVICE)");
        }
        if s.upstream.is_empty() {
            cmd.push_str(" --keep-mtime");
        }
        out.push_str(&cmd);
        out.push('\n');
    }
    out
}

/// The generated file's path, relative to the workspace root.
pub const MAKE_RULES_FILE: &str = "mk/stages.mk";

#[cfg(test)]
mod tests {
    use super::*;

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
            ["crates/core", "crates/graph", "crates/stats"]
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

    /// The Makefile's stage rules are generated from the one declaration of the graph
    /// ([`fer_graph::STAGES`]) and the crate graph: the committed `mk/stages.mk` must be what
    /// [`make_rules`] writes now (`make stages-mk` rewrites it; `FER_BLESS=1` here does too),
    /// and the Makefile must include it and hold no stage rule of its own.
    #[test]
    fn the_makefile_stage_rules_are_generated_from_the_graph() {
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let want = make_rules(&ws);
        let path = ws.join(MAKE_RULES_FILE);
        if std::env::var_os("FER_BLESS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is stale: run `make stages-mk` (it is generated from crates/graph and the manifests)",
            path.display()
        );
        let make = std::fs::read_to_string(ws.join("Makefile")).unwrap();
        assert!(
            make.lines()
                .any(|l| l == format!("include {MAKE_RULES_FILE}")),
            "the Makefile does not include {MAKE_RULES_FILE}"
        );
        let own: Vec<&str> = make
            .lines()
            .filter(|l| l.starts_with("$(A)/") && l.contains("/manifest.json:"))
            .filter(|l| !l.contains("$(wildcard"))
            .collect();
        assert!(
            own.is_empty(),
            "stage rules kept by hand in the Makefile: {own:?}"
        );
    }

    /// Each stage's rule reads what the stage reads and is rebuilt from what it is built from.
    #[test]
    fn a_stage_rule_lists_its_upstream_and_its_crates() {
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let rules = make_rules(&ws);
        let tune = rules
            .lines()
            .find(|l| l.starts_with("$(A)/tune/manifest.json:"))
            .unwrap();
        for want in [
            "$(A)/preprocess/manifest.json",
            "$(A)/train_cnn/manifest.json",
            "$(call src,tune)",
            "$(call src,train)",
            "$(call src,core)",
            "$(call src,graph)",
        ] {
            assert!(tune.contains(want), "{want} missing from {tune}");
        }
        assert!(
            !tune.contains("src,train-cnn") && !tune.contains("src,augment"),
            "{tune}"
        );
        assert!(
            rules.contains("$(A)/ingest/manifest.json: FORCE\n"),
            "{rules}"
        );
        assert!(rules.contains("fer-tune --pipeline $(PIPELINE) --device $(DEVICE)\n"));
    }
}
