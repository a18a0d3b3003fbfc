//! The run cache side of a stage: restoring its outputs from an entry, storing them into one.

use super::{StageRun, remove_dir_if_exists};
use crate::cache;
use crate::error::{Error, IoContext, Result};
use crate::manifest::{MANIFEST_FILE, Manifest, RunStatus, resolve_output};
use std::path::Path;
use std::time::{Instant, SystemTime};

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

impl StageRun {
    /// Restore the outputs for `sig` from the run cache into `tmp`, if a good entry is there.
    /// A bad entry is quarantined and a failed copy falls back to computing (both with a
    /// warning): the cache can only save work, never fail a run.
    pub(super) fn restore(
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

    pub(super) fn store(&self, dir: &Path, cdir: &Path) -> Result<()> {
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
