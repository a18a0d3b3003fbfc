//! The per-stage manifest (`artifacts/<pipeline>/<stage>/manifest.json`), DVC's lock file.

use crate::error::{Error, IoContext, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

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

impl Manifest {
    pub fn read(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).at(path)?;
        serde_json::from_str(&text).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            source: e,
        })
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("manifest serializes");
        std::fs::write(path, text + "\n").at(path)
    }

    pub fn output(&self, rel: &str) -> Option<&OutputEntry> {
        self.outputs.iter().find(|o| o.path == rel)
    }
}
