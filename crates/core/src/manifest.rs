//! The per-stage manifest (`artifacts/<pipeline>/<stage>/manifest.json`), DVC's lock file.
//!
//! Its output paths are relative to the stage folder and must stay inside it (a manifest may
//! come from a shared or restored run cache): [`Manifest::read`] refuses one that is empty,
//! absolute or holds a `..` ([`output_path_problem`]), and [`resolve_output`] also refuses one
//! that resolves through a symbolic link to outside the folder.

use crate::error::{Error, IoContext, Result};
use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};

/// How the outputs of a stage came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The stage ran its computation.
    Computed,
    /// The outputs were copied from the run cache (`FER_CACHE_DIR`).
    Restored,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputEntry {
    /// What the input is (`fer2013`, `ingest`, ...).
    pub name: String,
    /// Where it was read from (informational; not part of the signature).
    pub path: String,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputEntry {
    /// Path relative to the stage folder.
    pub path: String,
    pub hash: String,
    pub bytes: u64,
    /// Row count for tables, `None` for images and JSON.
    pub rows: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub stage: String,
    pub pipeline: String,
    /// Hash of stage, code version, params and input hashes: the run-cache key.
    pub signature: String,
    /// Hash of the sources the stage binary was built from.
    pub code_version: String,
    /// The resolved (defaults filled in, validated) params of this stage.
    pub params: serde_json::Value,
    pub inputs: Vec<InputEntry>,
    pub outputs: Vec<OutputEntry>,
    /// Hash of the stage's pipeline section as written when it ran
    /// ([`crate::pipeline::PipelineFile::section_hash`]): a downstream stage compares it with
    /// the current file's. Absent in manifests written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_hash: Option<String>,
    /// Stage-specific counts (rows per split and class, rejects, ...).
    pub summary: serde_json::Value,
    pub status: RunStatus,
    /// UTC start time, RFC 3339.
    pub started: String,
    pub duration_s: f64,
    /// For a restored run, how long the original computation took.
    pub computed_duration_s: f64,
    pub tool: String,
}

pub const MANIFEST_FILE: &str = "manifest.json";

/// Why `rel` cannot be an output path, relative to a stage folder (`None`: it can). It must be
/// relative and stay inside the folder by its words alone: not empty, not absolute (`/x`, a
/// drive or UNC prefix), no `..` component; `\` counts as a separator too (a manifest made
/// on Windows).
pub fn output_path_problem(rel: &str) -> Option<&'static str> {
    if rel.is_empty() {
        return Some("is empty");
    }
    let b = rel.as_bytes();
    if rel.starts_with(['/', '\\'])
        || Path::new(rel).is_absolute()
        || (b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic())
    {
        return Some("is absolute (it must be relative to the stage folder)");
    }
    if rel.split(['/', '\\']).any(|c| c == "..") {
        return Some("goes up out of the stage folder (`..`)");
    }
    if rel.contains('\0') {
        return Some("holds a NUL byte");
    }
    None
}

/// The path of output `rel` in stage folder `dir`, checked to stay inside it: by its words
/// ([`output_path_problem`]), and on disk: when a folder or file along it is a symbolic link,
/// the whole path must resolve to a place inside `dir` (a link that leads nowhere is refused
/// too). A path that is missing from some point on is returned as it is (the caller finds it
/// missing). The error is the problem, `output path `rel` ...`.
pub fn resolve_output(dir: &Path, rel: &str) -> std::result::Result<PathBuf, String> {
    let bad = |problem: &str| format!("output path `{rel}` {problem}");
    if let Some(p) = output_path_problem(rel) {
        return Err(bad(p));
    }
    let path = dir.join(rel);
    let mut at = dir.to_path_buf();
    let mut linked = false;
    for c in Path::new(rel).components() {
        if let Component::Normal(n) = c {
            at.push(n);
            match std::fs::symlink_metadata(&at) {
                Ok(md) if md.file_type().is_symlink() => {
                    linked = true;
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    if linked {
        let inside = match (std::fs::canonicalize(dir), std::fs::canonicalize(&path)) {
            (Ok(d), Ok(p)) => p.starts_with(&d),
            (Err(_), _) => false,
            (_, Err(_)) => return Err(bad("is a symbolic link that leads nowhere")),
        };
        if !inside {
            return Err(bad(
                "resolves through a symbolic link to outside the stage folder",
            ));
        }
    }
    Ok(path)
}

impl Manifest {
    /// Read a manifest; an output path that leaves the stage folder by its words
    /// ([`output_path_problem`]) is an [`Error::UnsafePath`] naming the file and the path.
    pub fn read(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).at(path)?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            source: e,
        })?;
        if let Some((o, problem)) = m
            .outputs
            .iter()
            .find_map(|o| output_path_problem(&o.path).map(|p| (o, p)))
        {
            return Err(Error::UnsafePath {
                file: path.to_path_buf(),
                path: o.path.clone(),
                problem: problem.to_string(),
            });
        }
        Ok(m)
    }

    /// The manifest as written: pretty JSON and a final newline.
    pub fn to_text(&self) -> String {
        serde_json::to_string_pretty(self).expect("manifest serializes") + "\n"
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_text()).at(path)
    }

    pub fn output(&self, rel: &str) -> Option<&OutputEntry> {
        self.outputs.iter().find(|o| o.path == rel)
    }
}
