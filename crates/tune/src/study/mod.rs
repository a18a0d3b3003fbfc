//! Where the search's state lives, and how workers share it: a [`Study`] decides and claims
//! a worker's next job ([`decide`], ASHA's rule, over the whole study) as one step, and
//! records the claimed trial after each epoch.
//!
//! - [`FileStudy`]: one process, the state in `state.json` in the resume folder (the default
//!   without the `study` feature: exactly the search as it always ran).
//! - `sql::SqlStudy` (feature `study`): SQLite (the default with the feature, a file beside
//!   the resume state) or PostgreSQL (`[tune] study` or `FER_TUNE_STUDY`), shared by any number
//!   of `fer-tune --worker` processes on any number of machines.

#[cfg(feature = "study")]
pub mod sql;

use crate::TuneError;
use crate::params::TuneParams;
use crate::schedule::{Decision, SearchState, Trial, decide};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A search's state, shared or not.
pub trait Study {
    /// Decide this worker's next job over the whole study and claim it, as one step (one
    /// transaction in a database: no two workers are given the same job). With
    /// [`Decision::Run`], the state's trial `id` is the claimed one, marked running (a new
    /// trial is created).
    fn claim(&mut self, p: &TuneParams) -> Result<(Decision, SearchState), TuneError>;
    /// What [`Study::claim`] would decide now, claiming nothing.
    fn peek(&mut self, p: &TuneParams) -> Result<(Decision, SearchState), TuneError>;
    /// Save the claimed trial after an epoch or at the end of its job. `Ok(false)`: this worker
    /// no longer holds it (its heartbeat went stale and another worker took the trial over),
    /// so it drops the job.
    fn save(&mut self, t: &Trial) -> Result<bool, TuneError>;
    /// Seconds on the search's clock: wall time while at least one worker was working, over
    /// every run of the search (a killed and restarted search does not count the gap).
    fn spent(&mut self) -> f64;
    /// The whole state, trials in id order.
    fn state(&mut self) -> Result<SearchState, TuneError>;
}

/// One process's study: the state in `<work>/state.json`, written atomically after every
/// epoch (a kill leaves the previous state or the new one).
pub struct FileStudy {
    path: PathBuf,
    st: SearchState,
    started: Instant,
    elapsed0: f64,
}

impl FileStudy {
    /// Open (or start) the study in `work`; `incumbent` becomes trial 0 of a new one.
    pub fn open(work: &Path, incumbent: Option<&Trial>) -> Result<FileStudy, TuneError> {
        std::fs::create_dir_all(work).map_err(|e| fer_core::Error::io(work, e))?;
        fer_core::atomic::remove_temps(work)?;
        let path = work.join("state.json");
        let mut st = match load_state(&path) {
            Ok(st) => st,
            Err(why) => {
                // Written atomically, so this is damage from outside, not a kill: the trials'
                // checkpoints cannot be matched to a search any more, so the search starts
                // over (never wedged, never resumed from a guess).
                eprintln!("warning: {}: {why}: the search starts over", path.display());
                std::fs::remove_dir_all(work).map_err(|e| fer_core::Error::io(work, e))?;
                std::fs::create_dir_all(work).map_err(|e| fer_core::Error::io(work, e))?;
                SearchState::default()
            }
        };
        if st.trials.is_empty()
            && let Some(t) = incumbent
        {
            st.trials.push(t.clone());
        }
        let elapsed0 = st.elapsed;
        Ok(FileStudy {
            path,
            st,
            started: Instant::now(),
            elapsed0,
        })
    }

    fn write(&mut self) -> Result<(), TuneError> {
        self.st.elapsed = self.spent();
        let text = serde_json::to_string_pretty(&self.st).expect("state serializes");
        fer_core::atomic::write(&self.path, text.as_bytes())?;
        Ok(())
    }
}

impl Study for FileStudy {
    fn claim(&mut self, p: &TuneParams) -> Result<(Decision, SearchState), TuneError> {
        let spent = self.spent();
        let d = decide(p, &self.st, spent);
        if let Decision::Run { id, .. } = d {
            if id == self.st.trials.len() {
                self.st.trials.push(Trial::new(p, id));
            }
            self.st.trials[id].status = crate::schedule::Status::Running;
            self.write()?;
        }
        Ok((d, self.st.clone()))
    }

    fn peek(&mut self, p: &TuneParams) -> Result<(Decision, SearchState), TuneError> {
        let spent = self.spent();
        Ok((decide(p, &self.st, spent), self.st.clone()))
    }

    fn save(&mut self, t: &Trial) -> Result<bool, TuneError> {
        self.st.trials[t.id] = t.clone();
        self.write()?;
        Ok(true)
    }

    fn spent(&mut self) -> f64 {
        self.elapsed0 + self.started.elapsed().as_secs_f64()
    }

    fn state(&mut self) -> Result<SearchState, TuneError> {
        self.write()?;
        Ok(self.st.clone())
    }
}

/// The saved search state (none yet: a new search); `Err` says why it cannot be read.
fn load_state(path: &Path) -> Result<SearchState, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| format!("unreadable state ({e})")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SearchState::default()),
        Err(e) => Err(e.to_string()),
    }
}

/// A worker whose trials cost nothing (the study tests and `fer-bench --only study`): claims
/// jobs until the study is done, giving each rung the result `score(trial, rung)`
/// (validation accuracy and loss) at once. `on_claim` gets each claim's latency. Returns the
/// jobs it ran.
pub fn zero_cost_worker(
    p: &TuneParams,
    study: &mut dyn Study,
    score: &dyn Fn(usize, usize) -> (f64, f64),
    on_claim: &mut dyn FnMut(std::time::Duration),
) -> Result<usize, TuneError> {
    let rungs = p.rungs();
    let mut jobs = 0;
    loop {
        let t0 = Instant::now();
        let (d, st) = study.claim(p)?;
        on_claim(t0.elapsed());
        let (id, k) = match d {
            Decision::Run { id, rung, .. } => (id, rung),
            Decision::Wait => {
                std::thread::sleep(std::time::Duration::from_millis(5));
                continue;
            }
            Decision::Done(_) => return Ok(jobs),
        };
        jobs += 1;
        let mut t = st.trials[id].clone();
        let k = k.min(rungs.len() - 1);
        for r in t.rungs.len()..=k {
            let (val_acc, val_loss) = score(id, r);
            t.rungs.push(crate::schedule::Rung {
                epochs: rungs[r],
                val_acc,
                val_loss,
                val_macro_f1: None,
            });
        }
        t.epochs_run = rungs[k];
        t.finished = rungs[k] >= p.max_epochs;
        t.status = if t.finished {
            crate::schedule::Status::Completed
        } else {
            crate::schedule::Status::Pruned
        };
        study.save(&t)?;
    }
}
