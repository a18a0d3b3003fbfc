//! The search loop: a worker claims jobs from its [`Study`] in the order ASHA decides
//! ([`decide`]), trains each trial rung by rung, saving the trial and its checkpoints after
//! every epoch; and trial 0 taken from train-cnn's run (`reuse_base`).

use crate::TuneError;
use crate::params::TuneParams;
use crate::schedule::{Decision, Rung, SearchState, Status, Trial, best_trial, incumbent_trial};
use crate::study::{FileStudy, Study};
use fer_core::tensors::TensorSet;
use fer_core::transform::Transform;
use fer_train::settings::TrainSettings;
use fer_train::train;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// The data a search trains and validates on.
pub struct SearchData<'a> {
    pub train: &'a TensorSet,
    pub val: &'a TensorSet,
    pub transform: &'a Transform,
    /// Trial 0, already trained ([`incumbent_trial`]); it starts a new search.
    pub incumbent: Option<Trial>,
}

/// Run (or continue) the search whose state and checkpoints live in `work`, in this one
/// process ([`FileStudy`]). `progress(message, started, max_trials)` is called as it goes.
/// Returns the final state.
pub fn search(
    p: &TuneParams,
    data: &SearchData,
    device: &fer_train::Device,
    work: &Path,
    progress: &dyn Fn(&str, u64, u64),
) -> Result<SearchState, TuneError> {
    let mut study = FileStudy::open(work, data.incumbent.as_ref())?;
    run_worker(p, data, device, work, &mut study, progress)?;
    let st = study.state()?;
    progress(
        &best_so_far(&st),
        st.trials.len() as u64,
        p.max_trials as u64,
    );
    Ok(st)
}

/// "best trial-003 val 0.8123" (empty before any rung).
pub fn best_so_far(st: &SearchState) -> String {
    best_trial(st)
        .map(|t| {
            format!(
                "best trial-{:03} val {:.4}",
                t.id,
                t.rungs.last().map_or(0.0, |r| r.score())
            )
        })
        .unwrap_or_default()
}

/// One worker's loop: claim a job, train it (checkpoints in `work/<trial>/`, which every
/// worker of the study must be able to read), save after every epoch; until the study has
/// nothing left for it ([`Decision::Done`]), the clock stops it, or it ran the leader's last
/// job. While other workers' trials may still earn a promotion, it waits ([`Decision::Wait`]).
pub fn run_worker(
    p: &TuneParams,
    data: &SearchData,
    device: &fer_train::Device,
    work: &Path,
    study: &mut dyn Study,
    progress: &dyn Fn(&str, u64, u64),
) -> Result<(), TuneError> {
    let rungs = p.rungs();
    let mut waits = 0u32;
    loop {
        let (decision, st) = study.claim(p)?;
        let (id, k, last) = match decision {
            Decision::Run { id, rung, last } => (id, rung, last),
            Decision::Done(why) => {
                if let Some(why) = why {
                    progress(&why, st.trials.len() as u64, p.max_trials as u64);
                }
                return Ok(());
            }
            Decision::Wait => {
                // Backs off to 2 s: a promotion waits for a rung, which takes an epoch or more.
                progress(
                    &format!(
                        "waiting: {} trial(s) training elsewhere may earn a promotion",
                        st.busy.len()
                    ),
                    st.trials.len() as u64,
                    p.max_trials as u64,
                );
                waits = (waits + 1).min(20);
                std::thread::sleep(Duration::from_millis(100 * u64::from(waits)));
                continue;
            }
        };
        waits = 0;
        let mut trial = st.trials[id].clone();
        let s = p.settings(id, &trial.config);
        let steps = fer_train::ops::scale_steps(&p.steps, trial.config.aug_strength as f32);
        let aug = fer_train::chain::augmenter(&steps, data.transform);
        let ckpt = work.join(&s.name);
        // A job whose trial already trained past its rung (a leader's run to max_epochs,
        // interrupted and handed out again, which the study records as the next rung) goes on
        // to the first rung above where it stopped.
        let mut target = rungs.get(k).copied().unwrap_or(p.max_epochs);
        if trial.epochs_run >= target {
            target = rungs
                .iter()
                .copied()
                .find(|&r| r > trial.epochs_run)
                .unwrap_or(trial.epochs_run);
        }
        if trial.epochs_run >= target {
            // Nothing left to train (a damaged record): settle it rather than claim it again.
            trial.status = if trial.finished {
                Status::Completed
            } else {
                Status::Pruned
            };
            study.save(&trial)?;
            continue;
        }
        while trial.epochs_run < target {
            if !last && study.spent() >= p.time_limit_s {
                trial.status = Status::Stopped;
                study.save(&trial)?;
                return Ok(());
            }
            let epoch = trial.epochs_run + 1;
            let msg = format!(
                "trial-{id:03} rung {}/{} epoch {epoch}/{target} {}",
                k + 1,
                rungs.len(),
                best_so_far(&st)
            );
            progress(&msg, st.trials.len() as u64, p.max_trials as u64);
            let t0 = Instant::now();
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                train::train_until(
                    &s,
                    data.train,
                    data.val,
                    &aug,
                    device,
                    &ckpt,
                    epoch,
                    &|_, _, _| {},
                )
            }));
            trial.seconds += t0.elapsed().as_secs_f64();
            let outcome = match run {
                Ok(Ok(t)) => Ok(t),
                Ok(Err(e)) => Err(fer_core::cli::error_chain(&e)),
                Err(panic) => Err(panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "the trial panicked".into())),
            };
            let ended;
            match outcome {
                Ok(t) => {
                    trial.epochs_run = t.state.epochs.len();
                    let best_row = t
                        .state
                        .epochs
                        .iter()
                        .find(|e| e.epoch == t.state.best_epoch);
                    let at_best = best_row.map_or(0.0, |e| e.val_acc);
                    if t.state.done || trial.epochs_run >= target {
                        trial.rungs.push(Rung {
                            epochs: trial.epochs_run,
                            val_acc: at_best,
                            val_loss: t.state.best_val_loss,
                            val_macro_f1: best_row.and_then(|e| e.val_macro_f1),
                        });
                        trial.finished = t.state.done;
                        trial.status = if t.state.done {
                            Status::Completed
                        } else {
                            Status::Pruned
                        };
                    }
                    ended = t.state.done;
                }
                Err(message) => {
                    trial.status = Status::Failed;
                    trial.error = Some(message);
                    trial.finished = true;
                    ended = true;
                }
            }
            let held = study.save(&trial)?;
            if held && trial.status == Status::Failed {
                // Only while this worker holds the trial: another may be resuming from it.
                let _ = std::fs::remove_dir_all(&ckpt);
            }
            if !held {
                progress(
                    &format!("trial-{id:03}: another worker took it over; dropping it"),
                    st.trials.len() as u64,
                    p.max_trials as u64,
                );
                break;
            }
            if ended {
                break;
            }
        }
        if last {
            return Ok(());
        }
    }
}

/// Trial 0 from train-cnn's model folder `mdir` (`reuse_base`), after checking that it was
/// trained with exactly trial 0's settings.
pub fn load_incumbent(p: &TuneParams, mdir: &Path) -> Result<Trial, TuneError> {
    let art = fer_train::ModelArtifact::load(mdir)?;
    let want = p.settings(0, &p.base_config());
    let have = TrainSettings {
        name: want.name.clone(),
        ..art.settings.clone()
    };
    if have != want {
        return Err(fer_core::Error::Other(format!(
            "{}: reuse_base: this model was trained with other settings than the search's \
             trial 0 ({}); run `make train-cnn` again or set reuse_base = false",
            mdir.join("model.json").display(),
            settings_diff(&want, &have)
        ))
        .into());
    }
    let epochs = read_epochs(&mdir.join("epochs.parquet"))?;
    if epochs.is_empty() {
        return Err(fer_core::Error::Other(format!(
            "{}: reuse_base: no epoch in this run",
            mdir.join("epochs.parquet").display()
        ))
        .into());
    }
    let seconds = epochs.iter().map(|e| e.seconds).sum();
    let from = mdir
        .parent()
        .and_then(|d| d.file_name())
        .map(|s| format!("{}/{}", s.to_string_lossy(), p.base.name))
        .unwrap_or_else(|| p.base.name.clone());
    Ok(incumbent_trial(p, &epochs, seconds, &from))
}

/// The keys two train-cnn settings differ in (for an error message): every key of either
/// side (a field left out of one side's JSON, as zero pretraining is, counts as null there).
pub fn settings_diff(a: &TrainSettings, b: &TrainSettings) -> String {
    let (a, b) = (json!(a), json!(b));
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return String::new();
    };
    let null = json!(null);
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            format!(
                "{k}: {} here, {} there",
                a.get(k).unwrap_or(&null),
                b.get(k).unwrap_or(&null)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `epochs.parquet` of a trained model (the schema in core).
pub use fer_schema::epochs::read as read_epochs;
