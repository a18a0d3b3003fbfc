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

use crate::cache;
use crate::error::{Error, IoContext, Result};
use crate::hash;
use crate::manifest::{
    InputEntry, MANIFEST_FILE, Manifest, OutputEntry, RunStatus, output_path_problem,
    resolve_output,
};
use crate::pipeline::PipelineFile;
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
                "{}: not found: stage `{stage}` has not run for pipeline `{pipeline}` (run `make {} PIPELINE={pipeline}`)",
                mpath.display(),
                make_target(stage)
            )));
        }
        let m = Manifest::read(&mpath)?;
        let mut h = blake3::Hasher::new();
        for o in &m.outputs {
            let p = resolve_output(&dir, &o.path).map_err(|why| {
                Error::Other(format!(
                    "{}: {why} (run `make {} PIPELINE={pipeline}` again)",
                    mpath.display(),
                    make_target(stage)
                ))
            })?;
            let actual = hash::hash_file(&p)?;
            if actual != o.hash {
                return Err(Error::Other(format!(
                    "{}: changed since stage `{stage}` wrote it (run `make {} PIPELINE={pipeline}` again)",
                    p.display(),
                    make_target(stage)
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

impl Input {
    /// [`Input::stage`], and a check that the upstream stage is current: its manifest records
    /// the pipeline's section as it is now ([`PipelineFile::section_hash`]) and the code
    /// version this build expects of it. `code_versions` is the
    /// `FER_UPSTREAM_CODE_VERSIONS` a stage crate's build script emits
    /// (`fer_codeversion::emit_with_upstream`): `stage=version` pairs separated by `;`.
    /// Otherwise the error names the stage to rerun and why.
    pub fn current(
        artifacts: &Path,
        pipeline: &PipelineFile,
        stage: &str,
        code_versions: &str,
    ) -> Result<(Input, Manifest)> {
        let (input, m) = Input::stage(artifacts, &pipeline.name, stage)?;
        let mpath = artifacts
            .join(&pipeline.name)
            .join(stage)
            .join(MANIFEST_FILE);
        let rerun = format!(
            "run `make {} PIPELINE={}`",
            make_target(stage),
            pipeline.name
        );
        if let Some(recorded) = &m.section_hash
            && *recorded != pipeline.section_hash(stage)
        {
            return Err(Error::Other(format!(
                "{}: stage `{stage}` is out of date: [{stage}] in {} changed since it ran ({rerun})",
                mpath.display(),
                pipeline.path.display()
            )));
        }
        match upstream_code_version(code_versions, stage) {
            Some(v) if v != m.code_version => Err(Error::Other(format!(
                "{}: stage `{stage}` is out of date: it was built from other code (code version {}, this build's is {v}) ({rerun})",
                mpath.display(),
                m.code_version
            ))),
            Some(_) => Ok((input, m)),
            None => Err(Error::Other(format!(
                "this build has no code version for stage `{stage}` (its build script must list it in emit_with_upstream)"
            ))),
        }
    }
}

/// The code version of `stage` in a `FER_UPSTREAM_CODE_VERSIONS` list (`stage=version;...`).
pub fn upstream_code_version<'a>(code_versions: &'a str, stage: &str) -> Option<&'a str> {
    code_versions.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == stage).then_some(v)
    })
}

/// The keys of two params objects whose values differ (nested keys joined by `.`, array
/// items of equal-length arrays as `[i]`), sorted.
pub fn changed_keys(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    fn walk(prefix: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        match (a, b) {
            (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let null = serde_json::Value::Null;
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(
                        &path,
                        x.get(k).unwrap_or(&null),
                        y.get(k).unwrap_or(&null),
                        out,
                    );
                }
            }
            (serde_json::Value::Array(x), serde_json::Value::Array(y)) if x.len() == y.len() => {
                for (i, (u, v)) in x.iter().zip(y).enumerate() {
                    walk(&format!("{prefix}[{i}]"), u, v, out);
                }
            }
            _ if a != b => out.push(if prefix.is_empty() {
                "(the whole section)".into()
            } else {
                prefix.to_string()
            }),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", old, new, &mut out);
    out
}

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
    cache::first_bad_output(dir, m).is_none()
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
            match std::fs::remove_dir_all(&all) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(&all, e).into());
                }
                _ => {}
            }
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

        if self.status_only {
            return match self.status(&sig) {
                None => Ok(Manifest::read(&mpath)?),
                Some(why) => Err(Error::Other(why).into()),
            };
        }

        if !self.force
            && let Some(m) = self.read_current(&mpath, &dir)
            && m.signature == sig
            && outputs_intact(&dir, &m)
        {
            let m = self.skip(&mpath, m)?;
            self.log(&format!("up to date ({})", &sig[..12]));
            return Ok(m);
        }

        let parent = self.artifacts.join(&self.pipeline);
        std::fs::create_dir_all(&parent).at(&parent)?;
        let stage = self.stage.clone();
        let n = cache::remove_stale_tmp(&parent, |name| cache::stage_tmp(&stage, name));
        if n > 0 {
            self.log(&format!(
                "removed {n} temporary folder(s) a killed run left"
            ));
        }
        let tmp = parent.join(cache::stage_tmp_name(&self.stage));
        remove_dir_if_exists(&tmp)?;
        std::fs::create_dir_all(&tmp).at(&tmp)?;

        if !self.force
            && let Some(m) = self.restore(&sig, &tmp, &started, started_at)?
        {
            self.install(&tmp, &dir, &m)?;
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
            if let Some(problem) = output_path_problem(rel) {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(Error::Other(format!(
                    "stage `{}` lists the output path `{rel}`, which {problem}",
                    self.stage
                ))
                .into());
            }
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
            section_hash: self.section_hash.clone(),
            summary: outputs.summary,
            status: RunStatus::Computed,
            started,
            duration_s: duration,
            computed_duration_s: duration,
            tool: format!("fer-pipeline {}", env!("CARGO_PKG_VERSION")),
        };
        self.install(&tmp, &dir, &m)?;
        self.log(&format!("computed in {duration:.2} s"));
        if let Some(root) = &self.cache {
            let cdir = root.join(&self.stage).join(&sig);
            if let Err(e) = self.store(&dir, &cdir) {
                self.warn(&format!("could not store in run cache: {e}"));
            }
            if let Some(max) = self.cache_max_bytes {
                for p in cache::prune(root, max, &cdir) {
                    self.log(&format!(
                        "run cache over its bound: removed {}",
                        p.display()
                    ));
                }
            }
        }
        Ok(m)
    }

    /// Why the stage would run, by the same comparison [`StageRun::execute`] makes (`None`:
    /// up to date), like `dvc status`. Reasons, in order: no readable manifest; other code;
    /// other params (the keys of the stage's section that differ); other inputs (their
    /// names); an output changed or missing; and whether the run cache would restore it.
    pub fn status(&self, sig: &str) -> Option<String> {
        let dir = self.stage_dir();
        let m = match Manifest::read(&dir.join(MANIFEST_FILE)) {
            Ok(m) => m,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Some(self.with_cache_note(sig, "it has not run (no manifest.json)".into()));
            }
            Err(e) => {
                return Some(self.with_cache_note(sig, format!("its manifest is not usable: {e}")));
            }
        };
        let mut why: Vec<String> = Vec::new();
        if m.code_version != self.code_version {
            why.push(format!(
                "its code changed (code version {} -> {})",
                m.code_version, self.code_version
            ));
        }
        if m.params != self.params {
            why.push(format!(
                "[{}] changed: {}",
                self.stage,
                changed_keys(&m.params, &self.params).join(", ")
            ));
        }
        let changed: Vec<&str> = self
            .inputs
            .iter()
            .filter(|i| {
                m.inputs
                    .iter()
                    .find(|o| o.name == i.name)
                    .is_none_or(|o| o.hash != i.hash)
            })
            .map(|i| i.name.as_str())
            .collect();
        if !changed.is_empty() {
            why.push(format!("its input changed: {}", changed.join(", ")));
        }
        if why.is_empty() && m.signature != sig {
            why.push("its signature differs".into());
        }
        if why.is_empty()
            && let Some(bad) = cache::first_bad_output(&dir, &m)
        {
            why.push(format!("an output changed: {bad}"));
        }
        if self.force {
            why.push("--force".into());
        }
        (!why.is_empty()).then(|| self.with_cache_note(sig, why.join("; ")))
    }

    fn with_cache_note(&self, sig: &str, why: String) -> String {
        let hit = self.cache.as_ref().is_some_and(|root| {
            matches!(
                cache::check(&root.join(&self.stage).join(sig), sig),
                cache::Entry::Good(_)
            )
        });
        if hit {
            format!("{why} (the run cache holds the result: it would be restored)")
        } else {
            why
        }
    }

    /// Up to date: refresh the manifest's section hash if the section was rewritten without
    /// changing the params (a key set to its default), and touch the manifest so `make` sees
    /// the target as fresh (unless `touch_on_skip` is off).
    fn skip(&self, mpath: &Path, m: Manifest) -> Result<Manifest> {
        if self.section_hash.is_some() && m.section_hash != self.section_hash {
            let m = Manifest {
                section_hash: self.section_hash.clone(),
                ..m
            };
            crate::atomic::write(mpath, m.to_text().as_bytes())?;
            return Ok(m);
        }
        if self.touch_on_skip {
            let f = std::fs::File::options()
                .append(true)
                .open(mpath)
                .at(mpath)?;
            f.set_modified(SystemTime::now()).at(mpath)?;
        }
        Ok(m)
    }

    /// Restore the outputs for `sig` from the run cache into `tmp`, if a good entry is there.
    /// A bad entry is quarantined and a failed copy falls back to computing (both with a
    /// warning): the cache can only save work, never fail a run.
    fn restore(
        &self,
        sig: &str,
        tmp: &Path,
        started: &str,
        started_at: Instant,
    ) -> Result<Option<Manifest>> {
        let Some(root) = &self.cache else {
            return Ok(None);
        };
        let sdir = root.join(&self.stage);
        cache::remove_stale_tmp(&sdir, cache::cache_tmp);
        let cdir = sdir.join(sig);
        let cm = match cache::check(&cdir, sig) {
            cache::Entry::Absent => return Ok(None),
            cache::Entry::Good(cm) => cm,
            cache::Entry::Bad(why) => {
                match cache::quarantine(root, &self.stage, &cdir) {
                    Ok(q) => self.warn(&format!(
                        "run cache entry {} is bad ({why}): moved to {} and recomputing",
                        cdir.display(),
                        q.display()
                    )),
                    Err(e) => self.warn(&format!(
                        "run cache entry {} is bad ({why}) and could not be moved aside ({e}): recomputing",
                        cdir.display()
                    )),
                }
                return Ok(None);
            }
        };
        let copied = cm.outputs.iter().try_for_each(|o| {
            // Checked again right before the copy: the cache may be shared.
            let src = resolve_output(&cdir, &o.path).map_err(Error::Other)?;
            let dst = tmp.join(&o.path);
            if let Some(p) = dst.parent() {
                std::fs::create_dir_all(p).at(p)?;
            }
            std::fs::copy(&src, &dst).at(&dst).map(|_| ())
        });
        if let Err(e) = copied {
            self.warn(&format!(
                "could not restore from run cache {} ({e}): recomputing",
                cdir.display()
            ));
            remove_dir_if_exists(tmp)?;
            std::fs::create_dir_all(tmp).at(tmp)?;
            return Ok(None);
        }
        // A hit counts as a use for the size bound's least-recently-used order.
        let cmpath = cdir.join(MANIFEST_FILE);
        if let Ok(f) = std::fs::File::options().append(true).open(&cmpath) {
            let _ = f.set_modified(SystemTime::now());
        }
        self.log(&format!("restored from run cache {}", cdir.display()));
        Ok(Some(Manifest {
            status: RunStatus::Restored,
            started: started.to_string(),
            duration_s: started_at.elapsed().as_secs_f64(),
            computed_duration_s: cm.computed_duration_s,
            inputs: self.input_entries(),
            pipeline: self.pipeline.clone(),
            section_hash: self.section_hash.clone(),
            ..cm
        }))
    }

    /// The stage folder's manifest, when it can be read and its output paths stay inside the
    /// folder; a manifest with an output path that leaves it is not current: a warning names
    /// the file and the path (the stage then recomputes).
    fn read_current(&self, mpath: &Path, dir: &Path) -> Option<Manifest> {
        match Manifest::read(mpath) {
            Ok(m) => {
                let escapes = m
                    .outputs
                    .iter()
                    .find_map(|o| resolve_output(dir, &o.path).err());
                match escapes {
                    Some(why) => {
                        self.warn(&format!(
                            "{}: {why}: not current, recomputing",
                            mpath.display()
                        ));
                        None
                    }
                    None => Some(m),
                }
            }
            Err(e @ Error::UnsafePath { .. }) => {
                self.warn(&format!("{e}: not current, recomputing"));
                None
            }
            Err(_) => None,
        }
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
        let ctmp = cdir.with_file_name(cache::cache_tmp_name(
            &cdir
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
        ));
        remove_dir_if_exists(&ctmp)?;
        if let Err(e) = copy_dir(dir, &ctmp) {
            let _ = std::fs::remove_dir_all(&ctmp);
            return Err(e);
        }
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
            touch_on_skip: true,
            section_hash: None,
            cache_max_bytes: None,
            status_only: false,
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

    #[test]
    fn a_corrupt_cache_entry_is_quarantined_recomputed_and_stored_afresh() {
        let root = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let n = std::cell::Cell::new(0);
        let m1 = run(root.path(), cache.path(), 1)
            .execute(compute(&n))
            .unwrap();
        let cdir = cache.path().join("s").join(&m1.signature);
        std::fs::write(cdir.join("out.txt"), b"jello").unwrap();
        // A fresh artifacts folder: the cache would be asked, finds the entry bad.
        let root2 = tempfile::tempdir().unwrap();
        let m2 = run(root2.path(), cache.path(), 1)
            .execute(compute(&n))
            .unwrap();
        assert_eq!((n.get(), m2.status), (2, RunStatus::Computed));
        let q: Vec<_> = std::fs::read_dir(cache.path().join(crate::cache::QUARANTINE))
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(q.len(), 1);
        assert_eq!(
            std::fs::read(q[0].path().join("out.txt")).unwrap(),
            b"jello"
        );
        // The entry was stored afresh: the next fresh folder restores it.
        assert_eq!(std::fs::read(cdir.join("out.txt")).unwrap(), b"hello");
        let root3 = tempfile::tempdir().unwrap();
        let m3 = run(root3.path(), cache.path(), 1)
            .execute(compute(&n))
            .unwrap();
        assert_eq!((n.get(), m3.status), (2, RunStatus::Restored));
        // An unreadable manifest is bad too.
        std::fs::write(cdir.join(MANIFEST_FILE), b"{").unwrap();
        let root4 = tempfile::tempdir().unwrap();
        let m4 = run(root4.path(), cache.path(), 1)
            .execute(compute(&n))
            .unwrap();
        assert_eq!((n.get(), m4.status), (3, RunStatus::Computed));
    }

    #[test]
    fn the_cache_is_pruned_to_its_bound_least_recently_used_first() {
        let root = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let n = std::cell::Cell::new(0);
        // Each entry holds out.txt (5 bytes) and its manifest (well under 2 KB).
        let mut sigs = Vec::new();
        for x in 1..=3 {
            let mut r = run(root.path(), cache.path(), x);
            r.cache_max_bytes = Some(1 << 20);
            sigs.push(r.execute(compute(&n)).unwrap().signature);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let size_of = |sig: &str| {
            let d = cache.path().join("s").join(sig);
            std::fs::read_dir(&d)
                .unwrap()
                .flatten()
                .map(|e| e.metadata().unwrap().len())
                .sum::<u64>()
        };
        let one = size_of(&sigs[2]);
        // Room for two entries: storing a fourth drops the least recently used (params 1).
        let mut r = run(root.path(), cache.path(), 4);
        r.cache_max_bytes = Some(2 * one + one / 2);
        let s4 = r.execute(compute(&n)).unwrap().signature;
        let left: Vec<bool> = sigs
            .iter()
            .chain([&s4])
            .map(|s| cache.path().join("s").join(s).exists())
            .collect();
        assert_eq!(left, [false, false, true, true]);
    }

    #[test]
    fn temporaries_of_a_killed_run_are_removed_and_skips_can_keep_the_mtime() {
        let root = tempfile::tempdir().unwrap();
        let leftover = root.path().join("p").join(".s.tmp.4294967");
        std::fs::create_dir_all(&leftover).unwrap();
        let n = std::cell::Cell::new(0);
        let mut r = run(root.path(), root.path(), 1);
        r.cache = None;
        r.execute(compute(&n)).unwrap();
        assert!(!leftover.exists());
        let mpath = root.path().join("p/s").join(MANIFEST_FILE);
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::options()
            .append(true)
            .open(&mpath)
            .unwrap()
            .set_modified(old)
            .unwrap();
        r.touch_on_skip = false;
        r.execute(compute(&n)).unwrap();
        assert_eq!(std::fs::metadata(&mpath).unwrap().modified().unwrap(), old);
        r.touch_on_skip = true;
        r.execute(compute(&n)).unwrap();
        assert!(std::fs::metadata(&mpath).unwrap().modified().unwrap() > old);
        assert_eq!(n.get(), 1);
    }

    #[test]
    fn an_upstream_made_with_another_section_or_code_is_named_for_rerun() {
        let dir = tempfile::tempdir().unwrap();
        let pfile = dir.path().join("p.toml");
        std::fs::write(&pfile, "[stats]\nseed = 1\n").unwrap();
        let pf = PipelineFile::load(&pfile).unwrap();
        let artifacts = dir.path().join("artifacts");
        let n = std::cell::Cell::new(0);
        let mut r = run(&artifacts, dir.path(), 1);
        r.cache = None;
        r.stage = "stats".into();
        r.section_hash = Some(pf.section_hash("stats"));
        r.execute(compute(&n)).unwrap();
        let versions = "ingest=x;stats=v1";
        assert!(Input::current(&artifacts, &pf, "stats", versions).is_ok());
        // Other code.
        let err = Input::current(&artifacts, &pf, "stats", "stats=v2")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("other code") && err.contains("make stats PIPELINE=p"),
            "{err}"
        );
        // The same section in another key order and layout: still current.
        std::fs::write(&pfile, "[stats]\n# a comment\nseed = 1\n").unwrap();
        let pf = PipelineFile::load(&pfile).unwrap();
        assert!(Input::current(&artifacts, &pf, "stats", versions).is_ok());
        // An edited section.
        std::fs::write(&pfile, "[stats]\nseed = 2\n").unwrap();
        let pf = PipelineFile::load(&pfile).unwrap();
        let err = Input::current(&artifacts, &pf, "stats", versions)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[stats]") && err.contains("changed since it ran"),
            "{err}"
        );
        assert!(err.contains("make stats PIPELINE=p"), "{err}");
        // Rerunning the stage (up to date, same params) records the new section.
        r.section_hash = Some(pf.section_hash("stats"));
        r.execute(compute(&n)).unwrap();
        assert_eq!(n.get(), 1);
        assert!(Input::current(&artifacts, &pf, "stats", versions).is_ok());
    }

    #[test]
    fn status_names_what_changed_and_computes_nothing() {
        let root = tempfile::tempdir().unwrap();
        let n = std::cell::Cell::new(0);
        let mut r = run(root.path(), root.path(), 1);
        r.cache = None;
        r.status_only = true;
        let never = r.execute(compute(&n)).unwrap_err().to_string();
        assert!(never.contains("has not run"), "{never}");
        r.status_only = false;
        r.execute(compute(&n)).unwrap();
        r.status_only = true;
        assert!(r.execute(compute(&n)).is_ok(), "up to date");
        let mut edited = r.clone();
        edited.params = serde_json::json!({ "x": 2 });
        edited.code_version = "v2".into();
        let why = edited.execute(compute(&n)).unwrap_err().to_string();
        assert!(why.contains("[s] changed: x"), "{why}");
        assert!(
            why.contains("code changed (code version v1 -> v2)"),
            "{why}"
        );
        assert_eq!(n.get(), 1, "status computes nothing");
        assert_eq!(
            changed_keys(
                &serde_json::json!({"a": 1, "b": {"c": 1, "d": 2}}),
                &serde_json::json!({"a": 1, "b": {"c": 3, "d": 2}, "e": true})
            ),
            ["b.c", "e"]
        );
        assert_eq!(
            changed_keys(
                &serde_json::json!({"models": [{"epochs": 4}, {"epochs": 4}]}),
                &serde_json::json!({"models": [{"epochs": 4}, {"epochs": 5}]})
            ),
            ["models[1].epochs"]
        );
    }
}
