//! Build-script helper for fer-pipeline stage crates.
//!
//! Reads: the source trees a stage is built from: the `src/` and `Cargo.toml` of the crate and
//! of every workspace crate it depends on (the crate graph, read from the manifests), and the
//! workspace `Cargo.lock`. Writes: nothing; it prints the
//! `cargo:rustc-env=FER_CODE_VERSION=<hash>` line and `rerun-if-changed` lines.
//! Takes no params. The hash is of file contents and relative paths only, so two clones
//! of the same commit get the same code version (which is what lets the run cache hit).

mod graph;
mod make;

pub use graph::{CrateSources, crate_graph, sources};
pub use make::{MAKE_RULES_FILE, make_rules};
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

/// The code version of the workspace crate in folder `own` (relative to `workspace`): the hash
/// of its [`sources`] (the `src/` and `Cargo.toml` of every crate in its [`crate_graph`], only
/// the enabled schemas of a per-feature crate) and of `Cargo.lock`. Returns the version and the
/// paths it hashed (for `rerun-if-changed`).
pub fn code_version_of(workspace: &Path, own: &str) -> (String, Vec<String>) {
    let mut roots: Vec<String> = sources(workspace, own)
        .into_iter()
        .flat_map(|c| c.paths())
        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{normalize, read_toml};

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
            !tune.contains("src,train-cnn)") && !tune.contains("src,augment)"),
            "{tune}"
        );
        // augment is built from the op library, not the training library.
        let augment = rules
            .lines()
            .find(|l| l.starts_with("$(A)/augment/manifest.json:"))
            .unwrap();
        assert!(
            augment.contains("$(call src,augment-ops)") && !augment.contains("$(call src,train)"),
            "{augment}"
        );
        assert!(
            rules.contains("$(A)/ingest/manifest.json: FORCE\n"),
            "{rules}"
        );
        assert!(rules.contains("fer-tune --pipeline $(PIPELINE) --device $(DEVICE)\n"));
        // A stage that takes --device follows the Makefile's DEVICE stamp; the others don't.
        let rule = |stage: &str| {
            rules
                .lines()
                .find(|l| l.starts_with(&format!("$(A)/{stage}/manifest.json:")))
                .unwrap_or_default()
                .to_string()
        };
        assert!(rule("tune").ends_with(" $(A)/.device"), "{}", rule("tune"));
        assert!(rule("train_cnn").ends_with(" $(A)/.device"));
        assert!(!rule("report").contains(".device"));
    }

    /// Every `fer_schema::<module>` path a crate names (`fer_schema::{a, b::X}` included),
    /// but the shared helpers.
    fn schema_modules(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (i, _) in text.match_indices("fer_schema::") {
            let rest = &text[i + "fer_schema::".len()..];
            let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                group[..group.find('}').unwrap_or(0)]
                    .split(',')
                    .map(|p| {
                        p.split("::")
                            .next()
                            .unwrap_or("")
                            .split_whitespace()
                            .next()
                            .unwrap_or("")
                    })
                    .collect()
            } else {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                vec![&rest[..end]]
            };
            for n in names {
                let shared = ["", "self", "read_json", "write_json", "write_json_sorted"];
                if !shared.contains(&n) && !out.iter().any(|o| o == n) {
                    out.push(n.to_string());
                }
            }
        }
        out
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut all = Vec::new();
        collect(dir, &mut all);
        out.extend(
            all.into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "rs")),
        );
    }

    /// A crate that names a schema module enables that schema's feature (itself or through a
    /// crate it is built from): a stage's code version then covers every schema it uses.
    #[test]
    fn every_schema_a_crate_uses_is_a_feature_it_enables() {
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut bad = Vec::new();
        for e in std::fs::read_dir(ws.join("crates")).unwrap().flatten() {
            let dir = format!("crates/{}", e.file_name().to_string_lossy());
            // codeversion: these tests hold example paths.
            if dir == "crates/schema"
                || dir == "crates/codeversion"
                || !ws.join(&dir).join("Cargo.toml").is_file()
            {
                continue;
            }
            let mut files = Vec::new();
            for sub in ["src", "examples"] {
                rust_files(&ws.join(&dir).join(sub), &mut files);
            }
            let used: Vec<String> = files
                .iter()
                .flat_map(|f| schema_modules(&std::fs::read_to_string(f).unwrap()))
                .collect();
            if used.is_empty() {
                continue;
            }
            let enabled: Vec<String> = sources(&ws, &dir)
                .iter()
                .flat_map(|c| c.paths())
                .filter_map(|p| {
                    p.strip_prefix("crates/schema/src/")
                        .and_then(|f| f.strip_suffix(".rs"))
                        .map(String::from)
                })
                .collect();
            for u in used {
                if !enabled.contains(&u) {
                    bad.push(format!("{dir} uses fer_schema::{u} without its feature"));
                }
            }
        }
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(
            schema_modules(
                "use fer_schema::{self as s, epochs::X, write_json}; fer_schema::model::M"
            ),
            ["epochs", "model"]
        );
    }

    /// Editing the report's recommendation schema changes the report's code version and no
    /// other stage's; editing the model schema changes every stage that trains or reads models
    /// (augment, built from the op library alone, is not one).
    #[test]
    fn a_schema_is_in_the_code_version_only_of_the_stages_that_use_it() {
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let with = |file: &str| -> Vec<&str> {
            fer_graph::STAGES
                .iter()
                .filter(|s| {
                    sources(&ws, &s.crate_dir())
                        .iter()
                        .flat_map(|c| c.paths())
                        .any(|p| p == file)
                })
                .map(|s| s.name)
                .collect()
        };
        assert_eq!(with("crates/schema/src/recommendation.rs"), ["report"]);
        assert_eq!(with("crates/schema/src/scenes.rs"), ["report"]);
        let model = with("crates/schema/src/model.rs");
        for s in ["train_svm", "train_cnn", "tune", "report"] {
            assert!(
                model.contains(&s),
                "{s} not built from the model schema: {model:?}"
            );
        }
        // augment is built from the op library alone (fer-augment-ops), not the trainer: an
        // edit to a schema, an evaluation file or the trainer does not rerun it.
        for file in [
            "crates/schema/src/model.rs",
            "crates/eval/src/calibration.rs",
            "crates/train/src/trainer.rs",
        ] {
            assert!(
                !with(file).contains(&"augment"),
                "augment built from {file}"
            );
        }
        for s in ["ingest", "stats", "preprocess"] {
            assert!(!with("crates/schema/src/lib.rs").contains(&s), "{s}");
        }
    }

    /// Files of one concern: no source file (libraries, binaries, examples; tests aside) is
    /// over 500 lines.
    #[test]
    fn no_source_file_is_over_500_lines() {
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut files = Vec::new();
        for e in std::fs::read_dir(ws.join("crates")).unwrap().flatten() {
            for sub in ["src", "examples", "benches"] {
                rust_files(&e.path().join(sub), &mut files);
            }
        }
        assert!(files.len() > 100, "{} files", files.len());
        let long: Vec<String> = files
            .iter()
            .filter(|f| f.file_name().is_some_and(|n| n != "tests.rs"))
            .filter_map(|f| {
                let n = std::fs::read_to_string(f).unwrap().lines().count();
                (n > 500)
                    .then(|| format!("{} ({n} lines)", f.strip_prefix(&ws).unwrap_or(f).display()))
            })
            .collect();
        assert!(
            long.is_empty(),
            "split these into files of one concern: {long:?}"
        );
    }
}
