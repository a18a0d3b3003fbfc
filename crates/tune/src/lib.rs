//! Stage `tune`: a hyperparameter search for our CNN, by random search (the study's Keras
//! Tuner method) or asynchronous successive halving (ASHA), which starts every trial on a
//! small epoch budget and lets only the best fraction train on.
//!
//! Reads `artifacts/<pipeline>/preprocess/` (tensors, `transform.json`, `index.parquet`),
//! with `reuse_base` also `artifacts/<pipeline>/train_cnn/<base>/`, and
//! the `[train_cnn]` section of the pipeline file: the model named by `tune.base` gives every
//! setting a trial does not search (optimizer, schedule, label smoothing, class weights, ...)
//! and `[[train_cnn.ops]]` the augmentation chain that `aug_strength` scales.
//!
//! Writes `artifacts/<pipeline>/tune/`:
//! - `trials.parquet`: trial, strategy, status (`completed`, `pruned`, `failed`, `stopped` when
//!   the wall-clock budget ran out mid-trial), params (JSON), epochs_run, val_acc and val_loss
//!   (of the trial's best checkpoint at its last rung), rungs (JSON: epochs, val_acc, val_loss
//!   per rung), seconds, reused_from (the model folder trial 0 was taken from), error;
//! - `summary.json`: strategy, counts per status, the best trial, the budget;
//! - `best/`: the winner in exactly the layout of a `train_cnn` model folder (`model.json` with
//!   the train-cnn config, `model.safetensors`, `epochs.parquet`, `predictions.parquet`,
//!   `metrics.json`, `calibration.json`: temperature scaling fitted on val), so `report` and `predict` use it like any other model; plus
//!   `best/train_cnn.toml`, the winner as a `[[train_cnn.models]]` table to paste.
//!
//! Params (`[tune]`): `strategy` (`asha` | `random`), `seed`, `base` (a `[[train_cnn.models]]`
//! name of arch `fer-small`), `max_trials`, `max_epochs` (a fully trained trial; the learning
//! rate schedule always spans it), `min_epochs` (ASHA's first rung), `reduction` (ASHA keeps
//! the best 1/`reduction` of each rung), `time_limit` (wall clock, e.g. `"25m"`),
//! `include_base` (trial 0 is the base model's own configuration, the incumbent to beat),
//! `reuse_base` (with `include_base`: trial 0 is train-cnn's finished run of the base model,
//! read from `artifacts/<pipeline>/train_cnn/<base>/`, not trained again, so the whole budget
//! goes to new configurations; its rungs come from that run's epochs table, and if it wins its
//! folder is copied to `best/`), `study` (where the search's state lives, a `postgres://` or
//! `sqlite://` URL, not part of the signature; see [`workers`]), and `[tune.space]` (see
//! [`space`]). Selection uses validation
//! only: the winner is the trial with the best validation accuracy (with more than two classes,
//! e.g. seven emotions: validation macro F1, also the rungs' promotion rule; see
//! [`Rung::score`]) among those that reached the highest rung; its best checkpoint is kept and scored on test once. Under ASHA the leader
//! (the search's own best trial, not a reused incumbent) is trained on to `max_epochs` before
//! the clock runs out ([`finish_leader`]): as soon as running anything else first would leave
//! it too little time, or when nothing else is left, it continues from its checkpoint (the same
//! run as training it straight through), so the chosen configuration gets the full epoch budget
//! and not just the rung it had reached.
//!
//! Modules: [`params`] (the `[tune]` section, its validation, [`Params`] and [`Cli`]),
//! [`space`] (the search space and sampling), [`schedule`] (ASHA's pure scheduling rules),
//! [`search`](mod@search) (the search loop and its resume folder) and [`outputs`] (the
//! winner's `best/`, `trials.parquet`, `summary.json`).
//!
//! Resuming: the search state (`state.json`) and every trial's checkpoints live in
//! `artifacts/<pipeline>/.tune.resume/<signature>/` and are saved after every epoch, atomically
//! (the trials' as train-cnn's, [`fer_train::checkpoint`]; the state after them). Killing
//! the process (even with `kill -9`) and running it again continues the trial that was running
//! from its last complete epoch and re-runs no finished rung; with a trial budget (a
//! `time_limit` the search does not reach) it ends with the same winner and predictions as an
//! uninterrupted search. The wall clock already spent counts against the limit. `--force`
//! clears the resume folder.
//!
//! Spreading trials over machines ([`workers`], [`study`]): a trial is a pure function of
//! (seed, trial id) for its configuration and of its checkpoint folder for its progress, and
//! ASHA decides what to run next only when a worker asks ([`decide`]). With the `study` feature
//! the search lives in a database (SQLite beside the resume state, or PostgreSQL) that any
//! number of `fer-tune --worker` processes share: each claim applies the rule under the study's
//! lock, heartbeats hand a stopped worker's trial to the next claim, and the stage run (or
//! `--finish`) writes the outputs once. No worker waits for another, which is why the
//! asynchronous variant of successive halving was chosen.

pub mod outputs;
pub mod params;
pub mod schedule;
pub mod search;
pub mod space;
pub mod study;
pub mod upstream;
pub mod workers;

pub use outputs::{compute, write_trials};
pub use params::{Cli, Params, Strategy, TuneArgs, TuneParams, TuneSection, signature_params};
pub use schedule::{
    Decision, Rung, SearchState, Status, Trial, best_trial, can_reach_first_rung, decide,
    finish_leader, incumbent_trial, next_job,
};
pub use search::{SearchData, load_incumbent, read_epochs, run_worker, search};

use fer_core::cli::{Preamble, Stage as _};
use fer_core::manifest::Manifest;
use fer_train::{TrainCnnError, train};
use std::path::Path;

pub const STAGE: &str = "tune";
pub const CODE_VERSION: &str = <Params as fer_core::cli::Stage>::CODE_VERSION;
/// The code versions of the upstream stages this build reads (checked by `Input::current`).
pub const UPSTREAM_CODE_VERSIONS: &str = <Params as fer_core::cli::Stage>::UPSTREAM_CODE_VERSIONS;

#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    #[error(transparent)]
    Core(#[from] fer_core::Error),
    #[error(transparent)]
    TrainCnn(#[from] TrainCnnError),
    #[error(transparent)]
    Train(#[from] train::TrainError),
    #[error(transparent)]
    Model(#[from] fer_models::ModelError),
    #[error(
        "no trial finished its first rung within the budget ({0}): raise `[tune] time_limit` or lower `min_epochs`"
    )]
    NothingFinished(String),
    #[error("every one of the {0} trials failed; the first error: {1}")]
    AllFailed(usize, String),
}

fer_core::impl_stage! { Params: STAGE, "fer-tune", TuneError, params::TuneArgs,
"Stage tune: random search or successive halving over our CNN's hyperparameters";
reads = reads }

/// What tune reads: preprocess, and with `reuse_base` train-cnn's run of the base model, which is
/// trial 0, so its outputs are an input.
fn reads(p: &Params) -> Vec<&'static str> {
    if p.tune.reuse_base {
        vec!["preprocess", "train_cnn"]
    } else {
        vec!["preprocess"]
    }
}

pub fn run(p: &Params) -> Result<Manifest, TuneError> {
    let Preamble { run, upstream: up } = p.prepare(Vec::new())?;
    let incumbent = up.get(1).map(|(dir, _)| dir.join(&p.tune.base.name));
    let plan = workers::Plan::new(p, &run)?;
    // The search's state and trial checkpoints live in the run's resume folder (or its
    // `--shared` twin): --force searches from scratch.
    let shared = p.shared.as_ref().map(|_| workers::work_dir(p, &run));
    let shared_all = shared
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf);
    if let (true, Some(all)) = (p.common.force, &shared_all) {
        fer_core::stage::remove_dir_if_exists(all)?;
    }
    let m = run.execute_resumable(|dir, own| {
        let work = shared.as_deref().unwrap_or(own);
        // The device comes up only to compute (`make status` and a skip never touch a GPU).
        let (dev, info) = fer_train::device_info(&p.device)?;
        if info.device != "cpu" && !p.common.quiet {
            eprintln!("[{}/{STAGE}] device: {info}", p.common.pipeline);
        }
        compute(
            &up[0].0,
            incumbent.as_deref(),
            &p.tune,
            &plan,
            &dev,
            work,
            dir,
            p.common.quiet,
        )
    });
    match m {
        // `make status`: a search that has started says how far it is.
        Err(e) if p.common.status => match workers::progress(&plan, &workers::work_dir(p, &run)) {
            Some(line) => Err(fer_core::Error::Other(format!(
                "{}; {line}",
                fer_core::cli::error_chain(&e)
            ))
            .into()),
            None => Err(e),
        },
        Ok(m) => {
            // A finished search's resume folders go, as the run's own do.
            if let (false, Some(all)) = (p.common.status, &shared_all) {
                let _ = std::fs::remove_dir_all(all);
            }
            Ok(m)
        }
        m => m,
    }
}
