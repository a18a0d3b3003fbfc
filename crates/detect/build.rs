//! Embeds rustface's SeetaFace frontal model (`model/seeta_fd_frontal_v1.0.bin`, shipped inside
//! the rustface crate package) into the binary, so face detection needs no file or download at
//! run time. The file is found in the dependency's package directory: first under
//! `$CARGO_HOME/registry/src/*/rustface-<version>/` (where cargo unpacked it), else through
//! `cargo metadata` (the dependency's manifest path; works for vendored or git sources too).
//! `FER_SEETA_MODEL=<path>` overrides both.

use std::path::{Path, PathBuf};

const MODEL: &str = "model/seeta_fd_frontal_v1.0.bin";

fn from_metadata() -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(&std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?)
        .join("Cargo.toml");
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(&manifest)
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    let pkgs = v["packages"]
        .as_array()
        .ok_or("cargo metadata: no packages")?;
    let p = pkgs
        .iter()
        .find(|p| p["name"] == "rustface")
        .ok_or("cargo metadata: no rustface package")?;
    let m = p["manifest_path"]
        .as_str()
        .ok_or("cargo metadata: rustface has no manifest_path")?;
    Ok(Path::new(m)
        .parent()
        .ok_or("rustface manifest has no parent")?
        .join(MODEL))
}

/// The newest `rustface-*` package unpacked in cargo's registry cache (fast, no subprocess).
fn from_registry() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
    let mut found: Vec<PathBuf> = std::fs::read_dir(home.join("registry").join("src"))
        .ok()?
        .flatten()
        .flat_map(|index| {
            std::fs::read_dir(index.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("rustface-"))
        })
        .map(|p| p.join(MODEL))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop()
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=FER_SEETA_MODEL");
    let src = match std::env::var_os("FER_SEETA_MODEL") {
        Some(p) => PathBuf::from(p),
        None => from_registry()
            .map(Ok)
            .unwrap_or_else(from_metadata)
            .unwrap_or_else(|e| {
                panic!("cannot locate rustface's {MODEL} ({e}); set FER_SEETA_MODEL=<path>")
            }),
    };
    let bytes = std::fs::read(&src)
        .unwrap_or_else(|e| panic!("{}: {e} (set FER_SEETA_MODEL=<path>)", src.display()));
    let dst = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("seeta_fd_frontal.bin");
    std::fs::write(&dst, bytes).expect("write the model into OUT_DIR");
    println!("cargo:rerun-if-changed={}", src.display());
}
