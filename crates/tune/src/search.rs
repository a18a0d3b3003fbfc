//! The search loop: trains trials rung by rung in the order [`next_job`] and
//! [`finish_leader`] decide, saving the state (`state.json`) and checkpoints in the resume
//! folder after every epoch; and trial 0 taken from train-cnn's run (`reuse_base`).

use crate::TuneError;
use crate::params::TuneParams;
use crate::schedule::{
    Rung, SearchState, Status, Trial, best_trial, can_reach_first_rung, finish_leader,
    incumbent_trial, next_job,
};
use fer_core::tensors::TensorSet;
use fer_core::transform::Transform;
use fer_train::settings::TrainSettings;
use fer_train::train;
use serde_json::json;
use std::path::Path;
use std::time::Instant;

/// The data a search trains and validates on.
pub struct SearchData<'a> {
    pub train: &'a TensorSet,
    pub val: &'a TensorSet,
    pub transform: &'a Transform,
    /// Trial 0, already trained ([`incumbent_trial`]); it starts a new search.
    pub incumbent: Option<Trial>,
}

/// Run (or continue) the search whose state lives in `work`. `progress(message, started,
/// max_trials)` is called as it goes. Returns the final state.
pub fn search(
    p: &TuneParams,
    data: &SearchData,
    device: &fer_train::Device,
    work: &Path,
    progress: &dyn Fn(&str, u64, u64),
) -> Result<SearchState, TuneError> {
    std::fs::create_dir_all(work).map_err(|e| fer_core::Error::io(work, e))?;
    fer_core::atomic::remove_temps(work)?;
    let state_path = work.join("state.json");
    let mut st = match load_state(&state_path) {
        Ok(st) => st,
        Err(why) => {
            // Written atomically, so this is damage from outside, not a kill: the trials'
            // checkpoints cannot be matched to a search any more, so the search starts over
            // (never wedged, never resumed from a guess).
            eprintln!(
                "warning: {}: {why}: the search starts over",
                state_path.display()
            );
            std::fs::remove_dir_all(work).map_err(|e| fer_core::Error::io(work, e))?;
            std::fs::create_dir_all(work).map_err(|e| fer_core::Error::io(work, e))?;
            SearchState::default()
        }
    };
    if st.trials.is_empty()
        && let Some(t) = &data.incumbent
    {
        st.trials.push(t.clone());
    }
    // Atomic (temporary file, fsync, rename): a kill leaves the previous state or this one.
    // It is written after the trial's checkpoint, which may thus be one epoch ahead of it;
    // `train_until` then returns that epoch without training it again.
    let save = |st: &SearchState| -> Result<(), TuneError> {
        let text = serde_json::to_string_pretty(st).expect("state serializes");
        fer_core::atomic::write(&state_path, text.as_bytes())?;
        Ok(())
    };
    let started = Instant::now();
    let elapsed0 = st.elapsed;
    let spent = |started: &Instant| elapsed0 + started.elapsed().as_secs_f64();
    let rungs = p.rungs();
    let best_so_far = |st: &SearchState| {
        best_trial(st)
            .map(|t| {
                format!(
                    "best trial-{:03} val {:.4}",
                    t.id,
                    t.rungs.last().map_or(0.0, |r| r.score())
                )
            })
            .unwrap_or_default()
    };

    'search: loop {
        let next = next_job(p, &st);
        // `last`: the leader's run to max_epochs, sized to fit; it may end past the limit.
        let (id, k, last) = match (finish_leader(p, &st, spent(&started), next), next) {
            (Some((id, k)), _) => (id, k, true),
            (None, Some((id, k))) => (id, k, false),
            (None, None) => break,
        };
        if !last && spent(&started) >= p.time_limit_s {
            break;
        }
        if !last && id == st.trials.len() && !can_reach_first_rung(p, &st, spent(&started)) {
            progress(
                &format!(
                    "not starting trial-{id:03}: its first rung would end past the time limit"
                ),
                st.trials.len() as u64,
                p.max_trials as u64,
            );
            break;
        }
        if id == st.trials.len() {
            st.trials.push(Trial {
                id,
                config: p.trial_config(id),
                status: Status::Running,
                rungs: vec![],
                epochs_run: 0,
                seconds: 0.0,
                error: None,
                finished: false,
                reused_from: None,
            });
        }
        st.trials[id].status = Status::Running;
        save(&st)?;
        let s = p.settings(id, &st.trials[id].config);
        let steps = fer_train::ops::scale_steps(&p.steps, st.trials[id].config.aug_strength as f32);
        let aug = fer_train::chain::augmenter(&steps, data.transform);
        let ckpt = work.join(&s.name);
        let target = rungs[k];
        while st.trials[id].epochs_run < target {
            if !last && spent(&started) >= p.time_limit_s {
                st.trials[id].status = Status::Stopped;
                st.elapsed = spent(&started);
                save(&st)?;
                break 'search;
            }
            let epoch = st.trials[id].epochs_run + 1;
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
            let trial = &mut st.trials[id];
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
                    if t.state.done {
                        break;
                    }
                }
                Err(message) => {
                    trial.status = Status::Failed;
                    trial.error = Some(message);
                    trial.finished = true;
                    let _ = std::fs::remove_dir_all(&ckpt);
                    break;
                }
            }
            st.elapsed = spent(&started);
            save(&st)?;
        }
        st.elapsed = spent(&started);
        save(&st)?;
        if last {
            break;
        }
    }
    progress(
        &best_so_far(&st),
        st.trials.len() as u64,
        p.max_trials as u64,
    );
    st.elapsed = spent(&started);
    save(&st)?;
    Ok(st)
}

/// The saved search state (none yet: a new search); `Err` says why it cannot be read.
fn load_state(path: &Path) -> Result<SearchState, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| format!("unreadable state ({e})")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SearchState::default()),
        Err(e) => Err(e.to_string()),
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
