//! Running a stage: skip when up to date, else restore or compute, and install the result.

use super::{Outputs, StageRun, remove_dir_if_exists};
use crate::cache;
use crate::error::{Error, IoContext, Result};
use crate::hash;
use crate::manifest::{
    MANIFEST_FILE, Manifest, OutputEntry, RunStatus, output_path_problem, resolve_output,
};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Do a manifest's outputs all exist in `dir` with their recorded hashes?
fn outputs_intact(dir: &Path, m: &Manifest) -> bool {
    cache::first_bad_output(dir, m).is_none()
}

impl StageRun {
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
            if super::SIGNATURE
                .compare_exchange(1, 2, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                println!("{sig}");
            }
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
}
