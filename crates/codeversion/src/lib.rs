//! Build-script helper for fer-pipeline stage crates.
//!
//! Reads: the source trees a stage is built from (its own `src/`, `Cargo.toml`, the core
//! crate's sources and the workspace `Cargo.lock`). Writes: nothing; it prints the
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

/// Call from a stage crate's `build.rs`: emits `FER_CODE_VERSION` covering the crate itself,
/// the core crate, any `extra` crate folders (e.g. a library the stage reuses) and `Cargo.lock`.
pub fn emit(extra: &[&str]) {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let crates = manifest_dir.parent().expect("crates/").to_path_buf();
    let workspace = crates.parent().expect("workspace root").to_path_buf();
    let own = manifest_dir
        .strip_prefix(&workspace)
        .expect("crate inside workspace")
        .to_string_lossy()
        .to_string();
    let mut roots: Vec<String> = vec![
        format!("{own}/src"),
        format!("{own}/Cargo.toml"),
        "crates/core/src".into(),
        "crates/core/Cargo.toml".into(),
        "Cargo.lock".into(),
    ];
    for e in extra {
        roots.push(format!("crates/{e}/src"));
        roots.push(format!("crates/{e}/Cargo.toml"));
    }
    let refs: Vec<&str> = roots.iter().map(String::as_str).collect();
    let v = hash_paths(&workspace, &refs);
    for r in &roots {
        println!("cargo:rerun-if-changed={}", workspace.join(r).display());
    }
    println!("cargo:rustc-env=FER_CODE_VERSION={v}");
}
