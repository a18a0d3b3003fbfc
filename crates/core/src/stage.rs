//! The stage runner: skip when up to date, restore from the run cache, or compute.
//!
//! A stage's *signature* is the hash of its name, code version, resolved params and input
//! hashes. The runner
//! 1. skips the stage when `manifest.json` has that signature and every output still has its
//!    recorded hash (it then touches the manifest, so `make` sees the target as fresh);
//! 2. otherwise restores the outputs from `FER_CACHE_DIR/<stage>/<signature>/` when present
//!    (status `restored`);
//! 3. otherwise computes them into a temporary folder, writes the manifest last and renames
//!    the folder into place, so a failed stage never leaves a manifest behind; the result is
//!    then stored in the run cache.
//!
//! Temporary folders are named per process and host (`.<stage>.tmp.<pid>@<host>`,
//! `<signature>.tmp<pid>@<host>`); those a dead process left behind are removed by the next
//! run (another host's only once a day old: [`crate::atomic::TempOwner::is_stale`]).
//!
//! Output paths stay inside their stage folder ([`crate::manifest::resolve_output`]): a
//! manifest whose output path is absolute, goes up (`..`) or resolves through a symbolic link
//! to outside is not current (the stage recomputes, with a warning naming the file and the
//! path), a run cache entry with one is quarantined, and an upstream stage with one is an
//! error naming the stage to rerun.
//!
//! The run cache is kept honest and bounded ([`crate::cache`]): an entry that fails its check
//! is quarantined (and the stage recomputed and stored afresh), a restore that fails to copy
//! falls back to computing, and after each store the least recently used entries are pruned
//! down to the size bound (`FER_CACHE_MAX`).
//!
//! An upstream stage's outputs are read through [`Input::current`], which also checks that
//! they were made with the pipeline's current section and this build's code of that stage,
//! and otherwise names the stage to rerun.

mod execute;
mod input;
mod restore;
mod status;
#[cfg(test)]
mod tests;

#[cfg(doc)]
use crate::cache;
use crate::error::{Error, Result};
use crate::hash;
use crate::manifest::{InputEntry, Manifest};
#[cfg(doc)]
use crate::pipeline::PipelineFile;
use std::path::{Path, PathBuf};

pub use input::{Input, upstream_code_version};
pub use status::changed_keys;

pub use fer_graph::make_target;

/// What a stage's computation produced, in its output folder.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// (path relative to the output folder, row count for tables)
    pub files: Vec<(String, Option<u64>)>,
    pub summary: serde_json::Value,
}

impl Outputs {
    pub fn table(&mut self, rel: &str, rows: usize) {
        self.files.push((rel.to_string(), Some(rows as u64)));
    }
    pub fn file(&mut self, rel: &str) {
        self.files.push((rel.to_string(), None));
    }
}

/// One run of one stage.
#[derive(Debug, Clone)]
pub struct StageRun {
    pub pipeline: String,
    pub stage: String,
    /// `artifacts/` (the stage writes `artifacts/<pipeline>/<stage>/`).
    pub artifacts: PathBuf,
    pub code_version: String,
    pub params: serde_json::Value,
    pub inputs: Vec<Input>,
    /// Run cache root; `None` disables it.
    pub cache: Option<PathBuf>,
    /// Recompute even when up to date or cached.
    pub force: bool,
    /// Print progress lines to stderr.
    pub verbose: bool,
    /// When up to date, touch the manifest so `make` sees the target as fresh (off for make's
    /// always-run `ingest` target, whose dependents must not rerun when it skips).
    pub touch_on_skip: bool,
    /// The hash of the stage's pipeline section ([`PipelineFile::section_hash`]), recorded in
    /// the manifest for downstream checks.
    pub section_hash: Option<String>,
    /// The run cache's size bound in bytes ([`cache::prune`]); `None`: unbounded.
    pub cache_max_bytes: Option<u64>,
    /// `--status`: compute nothing; [`StageRun::execute`] returns the manifest when the stage
    /// is up to date and an error saying why it would run otherwise ([`StageRun::status`]).
    pub status_only: bool,
}

/// Resolve the run cache: `FER_CACHE_DIR` if set (`off` or empty disables it), else the
/// user's cache folder.
pub fn default_cache_dir(explicit: Option<&str>) -> Option<PathBuf> {
    match explicit {
        Some("") | Some("off") => None,
        Some(p) => Some(PathBuf::from(p)),
        None => dirs::cache_dir().map(|d| d.join("fer-pipeline").join("runs")),
    }
}

/// `--print-signature` ([`request_signature`]): 0 off, 1 asked, 2 printed.
static SIGNATURE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Make this process's [`StageRun::execute`] in status-only mode print the stage's signature
/// on stdout (`--print-signature`: what `make` hands `fer-cache pull`).
pub fn request_signature() {
    SIGNATURE.store(1, std::sync::atomic::Ordering::SeqCst);
}

/// Has [`StageRun::execute`] printed the signature [`request_signature`] asked for?
pub fn signature_printed() -> bool {
    SIGNATURE.load(std::sync::atomic::Ordering::SeqCst) == 2
}

/// Remove the folder `p` and everything in it; a folder that is not there is not an error.
pub fn remove_dir_if_exists(p: &Path) -> Result<()> {
    match std::fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(p, e)),
    }
}

impl StageRun {
    /// `<artifacts>/<pipeline>/.<stage>.resume/<signature prefix>`: where a long stage keeps
    /// what lets a killed run continue (train_cnn's checkpoints, tune's search state).
    pub fn resume_dir(&self) -> PathBuf {
        self.artifacts
            .join(&self.pipeline)
            .join(format!(".{}.resume", self.stage))
            .join(&self.signature()[..16])
    }

    /// [`StageRun::execute`] for a stage that can resume: `compute` also gets
    /// [`StageRun::resume_dir`]. `--force` clears every resume folder of the stage first (a
    /// forced run starts from scratch), and a finished run removes them.
    pub fn execute_resumable<E>(
        &self,
        compute: impl FnOnce(&Path, &Path) -> std::result::Result<Outputs, E>,
    ) -> std::result::Result<Manifest, E>
    where
        E: From<Error>,
    {
        let resume = self.resume_dir();
        let all = resume.parent().unwrap_or(&resume).to_path_buf();
        if self.force {
            remove_dir_if_exists(&all)?;
        }
        let m = self.execute(|dir| compute(dir, &resume))?;
        let _ = std::fs::remove_dir_all(&all);
        Ok(m)
    }

    pub fn stage_dir(&self) -> PathBuf {
        self.artifacts.join(&self.pipeline).join(&self.stage)
    }

    /// The run-cache key.
    pub fn signature(&self) -> String {
        let mut inputs: Vec<(&str, &str)> = self
            .inputs
            .iter()
            .map(|i| (i.name.as_str(), i.hash.as_str()))
            .collect();
        inputs.sort();
        let key = serde_json::json!({
            "stage": self.stage,
            "code_version": self.code_version,
            "params": self.params,
            "inputs": inputs,
        });
        hash::hash_bytes(key.to_string().as_bytes())
    }

    fn log(&self, msg: &str) {
        if self.verbose {
            eprintln!("[{}/{}] {msg}", self.pipeline, self.stage);
        }
    }

    /// A warning is printed even when quiet: it says something went wrong.
    fn warn(&self, msg: &str) {
        eprintln!("[{}/{}] warning: {msg}", self.pipeline, self.stage);
    }

    fn input_entries(&self) -> Vec<InputEntry> {
        self.inputs
            .iter()
            .map(|i| InputEntry {
                name: i.name.clone(),
                path: i.path.display().to_string(),
                hash: i.hash.clone(),
            })
            .collect()
    }
}
