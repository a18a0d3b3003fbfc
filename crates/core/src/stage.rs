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

use crate::error::{Error, IoContext, Result};
use crate::hash;
use crate::manifest::{InputEntry, MANIFEST_FILE, Manifest, OutputEntry, RunStatus};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

/// An input of a stage, with its content hash.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub path: PathBuf,
    pub hash: String,
}

impl Input {
    /// The outputs of an upstream stage, re-hashed and checked against its manifest.
    pub fn stage(artifacts: &Path, pipeline: &str, stage: &str) -> Result<(Input, Manifest)> {
        let dir = artifacts.join(pipeline).join(stage);
        let mpath = dir.join(MANIFEST_FILE);
        if !mpath.exists() {
            return Err(Error::Other(format!(
                "{}: not found: stage `{stage}` has not run for pipeline `{pipeline}` (run `make {stage} PIPELINE={pipeline}`)",
                mpath.display()
            )));
        }
        let m = Manifest::read(&mpath)?;
        let mut h = blake3::Hasher::new();
        for o in &m.outputs {
            let p = dir.join(&o.path);
            let actual = hash::hash_file(&p)?;
            if actual != o.hash {
                return Err(Error::Other(format!(
                    "{}: changed since stage `{stage}` wrote it (run `make {stage} PIPELINE={pipeline}` again)",
                    p.display()
                )));
            }
            h.update(o.path.as_bytes());
            h.update(o.hash.as_bytes());
        }
        Ok((
            Input {
                name: stage.to_string(),
                path: dir,
                hash: h.finalize().to_hex().to_string(),
            },
            m,
        ))
    }
}

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

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).at(to)?;
    for e in std::fs::read_dir(from).at(from)? {
        let e = e.at(from)?;
        let src = e.path();
        let dst = to.join(e.file_name());
        if e.file_type().at(&src)?.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).at(&src)?;
        }
    }
    Ok(())
}

fn remove_dir_if_exists(p: &Path) -> Result<()> {
    match std::fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(p, e)),
    }
}

/// Do a manifest's outputs all exist in `dir` with their recorded hashes?
fn outputs_intact(dir: &Path, m: &Manifest) -> bool {
    m.outputs.iter().all(|o| {
        let p = dir.join(&o.path);
        std::fs::metadata(&p)
            .map(|md| md.len() == o.bytes)
            .unwrap_or(false)
            && hash::hash_file(&p).map(|h| h == o.hash).unwrap_or(false)
    })
}

impl StageRun {
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

    /// Skip, restore or compute. `compute` writes its files into the folder it is given.
    pub fn execute<E>(
        &self,
        compute: impl FnOnce(&Path) -> std::result::Result<Outputs, E>,
    ) -> std::result::Result<Manifest, E>
    where
        E: From<Error>,
    {
        let started_at = Instant::now();
        let started = now_rfc3339();
        let sig = self.signature();
        let dir = self.stage_dir();
        let mpath = dir.join(MANIFEST_FILE);

        if !self.force
            && let Ok(m) = Manifest::read(&mpath)
            && m.signature == sig
            && outputs_intact(&dir, &m)
        {
            let f = std::fs::File::options()
                .append(true)
                .open(&mpath)
                .at(&mpath)?;
            f.set_modified(SystemTime::now()).at(&mpath)?;
            self.log(&format!("up to date ({})", &sig[..12]));
            return Ok(m);
        }

        let parent = self.artifacts.join(&self.pipeline);
        std::fs::create_dir_all(&parent).at(&parent)?;
        let tmp = parent.join(format!(".{}.tmp", self.stage));
        remove_dir_if_exists(&tmp)?;
        std::fs::create_dir_all(&tmp).at(&tmp)?;

        let cached = self.cache.as_ref().map(|c| c.join(&self.stage).join(&sig));
        if !self.force
            && let Some(cdir) = &cached
            && let Ok(cm) = Manifest::read(&cdir.join(MANIFEST_FILE))
            && cm.signature == sig
            && outputs_intact(cdir, &cm)
        {
            for o in &cm.outputs {
                let dst = tmp.join(&o.path);
                if let Some(p) = dst.parent() {
                    std::fs::create_dir_all(p).at(p)?;
                }
                std::fs::copy(cdir.join(&o.path), &dst).at(&dst)?;
            }
            let m = Manifest {
                status: RunStatus::Restored,
                started,
                duration_s: started_at.elapsed().as_secs_f64(),
                computed_duration_s: cm.computed_duration_s,
                inputs: self.input_entries(),
                pipeline: self.pipeline.clone(),
                ..cm
            };
            self.install(&tmp, &dir, &m)?;
            self.log(&format!("restored from run cache {}", cdir.display()));
            return Ok(m);
        }

        self.log("computing");
        // The old outputs no longer describe this run: drop the manifest first so that a
        // failure below leaves nothing `make` would take as finished.
        match std::fs::remove_file(&mpath) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(&mpath, e).into());
            }
            _ => {}
        }
        let outputs = match compute(&tmp) {
            Ok(o) => o,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let mut entries = Vec::new();
        for (rel, rows) in &outputs.files {
            let p = tmp.join(rel);
            let bytes = std::fs::metadata(&p).at(&p)?.len();
            entries.push(OutputEntry {
                path: rel.clone(),
                hash: hash::hash_file(&p)?,
                bytes,
                rows: *rows,
            });
        }
        let duration = started_at.elapsed().as_secs_f64();
        let m = Manifest {
            stage: self.stage.clone(),
            pipeline: self.pipeline.clone(),
            signature: sig.clone(),
            code_version: self.code_version.clone(),
            params: self.params.clone(),
            inputs: self.input_entries(),
            outputs: entries,
            summary: outputs.summary,
            status: RunStatus::Computed,
            started,
            duration_s: duration,
            computed_duration_s: duration,
            tool: format!("fer-pipeline {}", env!("CARGO_PKG_VERSION")),
        };
        self.install(&tmp, &dir, &m)?;
        self.log(&format!("computed in {duration:.2} s"));
        if let Some(cdir) = cached
            && let Err(e) = self.store(&dir, &cdir)
        {
            self.log(&format!("warning: could not store in run cache: {e}"));
        }
        Ok(m)
    }

    /// Write the manifest into `tmp` and move `tmp` into place as `dir`.
    fn install(&self, tmp: &Path, dir: &Path, m: &Manifest) -> Result<()> {
        m.write(&tmp.join(MANIFEST_FILE))?;
        remove_dir_if_exists(dir)?;
        std::fs::rename(tmp, dir).at(dir)?;
        Ok(())
    }

    fn store(&self, dir: &Path, cdir: &Path) -> Result<()> {
        if cdir.join(MANIFEST_FILE).exists() {
            return Ok(());
        }
        let ctmp = cdir.with_extension(format!("tmp{}", std::process::id()));
        remove_dir_if_exists(&ctmp)?;
        copy_dir(dir, &ctmp)?;
        remove_dir_if_exists(cdir)?;
        std::fs::rename(&ctmp, cdir).at(cdir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(root: &Path, cache: &Path, param: i64) -> StageRun {
        StageRun {
            pipeline: "p".into(),
            stage: "s".into(),
            artifacts: root.to_path_buf(),
            code_version: "v1".into(),
            params: serde_json::json!({ "x": param }),
            inputs: vec![],
            cache: Some(cache.to_path_buf()),
            force: false,
            verbose: false,
        }
    }

    fn compute(counter: &std::cell::Cell<u32>) -> impl FnOnce(&Path) -> Result<Outputs> + '_ {
        move |dir: &Path| {
            counter.set(counter.get() + 1);
            std::fs::write(dir.join("out.txt"), b"hello").unwrap();
            let mut o = Outputs::default();
            o.file("out.txt");
            Ok(o)
        }
    }

    #[test]
    fn skip_restore_and_recompute() {
        let root = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let n = std::cell::Cell::new(0);
        let m1 = run(root.path(), cache.path(), 1)
            .execute(compute(&n))
            .unwrap();
        assert_eq!((n.get(), m1.status), (1, RunStatus::Computed));
        // Same signature: skipped.
        let m2 = run(root.path(), cache.path(), 1)
            .execute(compute(&n))
            .unwrap();
        assert_eq!(n.get(), 1);
        assert_eq!(m2.signature, m1.signature);
        // A fresh artifacts folder with a warm cache: restored, not computed.
        let root2 = tempfile::tempdir().unwrap();
        let m3 = run(root2.path(), cache.path(), 1)
            .execute(compute(&n))
            .unwrap();
        assert_eq!((n.get(), m3.status), (1, RunStatus::Restored));
        assert_eq!(
            std::fs::read(root2.path().join("p/s/out.txt")).unwrap(),
            b"hello"
        );
        // Changed params: computed again.
        let m4 = run(root.path(), cache.path(), 2)
            .execute(compute(&n))
            .unwrap();
        assert_eq!((n.get(), m4.status), (2, RunStatus::Computed));
        assert_ne!(m4.signature, m1.signature);
        // A tampered output is noticed and recomputed... from the cache of params=2.
        std::fs::write(root.path().join("p/s/out.txt"), b"HELLO").unwrap();
        let m5 = run(root.path(), cache.path(), 2)
            .execute(compute(&n))
            .unwrap();
        assert_eq!(m5.status, RunStatus::Restored);
        assert_eq!(
            std::fs::read(root.path().join("p/s/out.txt")).unwrap(),
            b"hello"
        );
    }

    #[test]
    fn failure_leaves_no_manifest() {
        let root = tempfile::tempdir().unwrap();
        let r = run(root.path(), root.path(), 1);
        let res: Result<Manifest> = r.execute(|dir| {
            std::fs::write(dir.join("half.txt"), b"x").unwrap();
            Err(Error::Other("boom".into()))
        });
        assert!(res.is_err());
        assert!(!root.path().join("p/s/manifest.json").exists());
        assert!(!root.path().join("p/.s.tmp").exists());
    }

    #[test]
    fn missing_upstream_names_the_stage_to_run() {
        let root = tempfile::tempdir().unwrap();
        let err = Input::stage(root.path(), "seed", "ingest")
            .unwrap_err()
            .to_string();
        assert!(err.contains("make ingest PIPELINE=seed"), "{err}");
    }
}
