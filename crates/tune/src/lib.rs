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
//!   `metrics.json`), so `report` and `predict` use it like any other model; plus
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
//! folder is copied to `best/`), and `[tune.space]` (see [`space`]). Selection uses validation
//! only: the winner is the trial with the best validation accuracy among those that reached the
//! highest rung; its best checkpoint is kept and scored on test once. Under ASHA the leader
//! (the search's own best trial, not a reused incumbent) is trained on to `max_epochs` before
//! the clock runs out ([`finish_leader`]): as soon as running anything else first would leave
//! it too little time, or when nothing else is left, it continues from its checkpoint (the same
//! run as training it straight through), so the chosen configuration gets the full epoch budget
//! and not just the rung it had reached.
//!
//! Resuming: the search state (`state.json`) and every trial's checkpoints live in
//! `artifacts/<pipeline>/.tune.resume/<signature>/` and are saved after every epoch. Killing
//! the process and running it again continues the trial that was running from its last
//! epoch and re-runs no finished rung; the wall clock already spent counts against the limit.
//!
//! Spreading trials over machines: a trial is a pure function of (seed, trial id) for its
//! configuration and of its checkpoint folder for its progress, and ASHA decides what to run
//! next only when a worker asks (promote the best un-promoted trial of the highest rung that
//! has one, else start a new trial). So a coordinator holding `state.json` can hand jobs
//! "(trial, target rung)" to workers that share the checkpoint folders (a network file system
//! or object store) and report back (epochs, val_acc, val_loss); no worker waits for another,
//! which is why the asynchronous variant of successive halving was chosen.

pub mod space;

use fer_augment::Step;
use fer_core::cli::StageArgs;
use fer_core::manifest::Manifest;
use fer_core::pipeline::PipelineFile;
use fer_core::stage::{Input, Outputs};
use fer_core::tensors::TensorSet;
use fer_core::transform::Transform;
use fer_train_cnn::settings::TrainSettings;
use fer_train_cnn::{Prepared, TrainCnnError, train};
use serde::{Deserialize, Serialize};
use serde_json::json;
use space::{Space, TrialConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

pub const STAGE: &str = "tune";
pub const CODE_VERSION: &str = env!("FER_CODE_VERSION");

#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    #[error(transparent)]
    Core(#[from] fer_core::Error),
    #[error(transparent)]
    TrainCnn(#[from] TrainCnnError),
    #[error(transparent)]
    Train(#[from] train::TrainError),
    #[error(
        "no trial finished its first rung within the budget ({0}): raise `[tune] time_limit` or lower `min_epochs`"
    )]
    NothingFinished(String),
    #[error("every one of the {0} trials failed; the first error: {1}")]
    AllFailed(usize, String),
}

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "fer-tune",
    version,
    about = "Stage tune: random search or successive halving over our CNN's hyperparameters"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: StageArgs,
    /// `cpu` (burn flex) or `wgpu` (GPU; needs train-cnn's `wgpu` cargo feature).
    #[arg(long, default_value = "cpu", env = "FER_DEVICE")]
    pub device: String,
}

/// `[tune]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TuneSection {
    pub strategy: String,
    pub seed: u64,
    pub base: String,
    pub max_trials: usize,
    pub max_epochs: usize,
    pub min_epochs: usize,
    pub reduction: usize,
    pub time_limit: String,
    /// Trial 0 is the base model's own configuration (the incumbent), as Optuna's
    /// `enqueue_trial` or Ray Tune's `points_to_evaluate` do: it then has to earn its
    /// promotions like any other trial.
    pub include_base: bool,
    /// With `include_base`: trial 0 is not trained again but taken from train-cnn's run of
    /// the base model (`artifacts/<pipeline>/train_cnn/<base>/`), its rungs read off that
    /// run's epochs table, so the whole budget goes to new configurations.
    pub reuse_base: bool,
    pub space: toml::Table,
}

impl Default for TuneSection {
    fn default() -> Self {
        TuneSection {
            strategy: "asha".into(),
            seed: 42,
            base: "fer-small".into(),
            max_trials: 30,
            max_epochs: 18,
            min_epochs: 2,
            reduction: 3,
            time_limit: "25m".into(),
            include_base: false,
            reuse_base: false,
            space: toml::Table::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    Asha,
    Random,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Asha => "asha",
            Strategy::Random => "random",
        }
    }
}

/// Validated search settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TuneParams {
    pub strategy: Strategy,
    pub seed: u64,
    pub max_trials: usize,
    pub max_epochs: usize,
    pub min_epochs: usize,
    pub reduction: usize,
    pub time_limit_s: f64,
    pub include_base: bool,
    pub reuse_base: bool,
    pub space: Space,
    /// The base model's settings (from `[train_cnn]`).
    pub base: TrainSettings,
    /// The base augmentation chain (`[[train_cnn.ops]]`).
    pub steps: Vec<Step>,
}

impl TuneParams {
    /// Parse and validate `[tune]` (and the `[train_cnn]` model it starts from).
    pub fn parse(pf: &PipelineFile) -> fer_core::Result<TuneParams> {
        let t: TuneSection = pf.section(STAGE)?;
        let err = |k: &str, m: String| pf.param_error(STAGE, k, m);
        let strategy = match t.strategy.as_str() {
            "asha" => Strategy::Asha,
            "random" => Strategy::Random,
            s => {
                return Err(err(
                    "strategy",
                    format!("unknown strategy `{s}` (expected asha or random)"),
                ));
            }
        };
        if t.max_trials == 0 {
            return Err(err("max_trials", "must be at least 1".into()));
        }
        if t.max_epochs == 0 {
            return Err(err("max_epochs", "must be at least 1".into()));
        }
        if t.min_epochs == 0 || t.min_epochs > t.max_epochs {
            return Err(err(
                "min_epochs",
                format!(
                    "{} is not in 1..=max_epochs ({})",
                    t.min_epochs, t.max_epochs
                ),
            ));
        }
        if t.reduction < 2 {
            return Err(err(
                "reduction",
                format!("{} must be at least 2", t.reduction),
            ));
        }
        let limit = humantime::parse_duration(&t.time_limit).map_err(|e| {
            err(
                "time_limit",
                format!("`{}` is not a duration like \"25m\": {e}", t.time_limit),
            )
        })?;
        if limit.is_zero() {
            return Err(err("time_limit", "must be more than 0".into()));
        }
        let space = Space::parse(&t.space).map_err(|e| err(&e.key, e.message))?;
        let cnn = fer_train_cnn::settings::parse(pf)?;
        let Some(base) = cnn.models.iter().find(|m| m.name == t.base) else {
            let names: Vec<&str> = cnn.models.iter().map(|m| m.name.as_str()).collect();
            return Err(err(
                "base",
                format!(
                    "no [[train_cnn.models]] is named `{}` (have: {})",
                    t.base,
                    names.join(", ")
                ),
            ));
        };
        if base.arch != "fer-small" {
            return Err(err(
                "base",
                format!(
                    "`{}` is a `{}`: the search varies our architecture, so name a fer-small model",
                    t.base, base.arch
                ),
            ));
        }
        if t.reuse_base && !t.include_base {
            return Err(err(
                "reuse_base",
                "needs include_base = true (it reuses trial 0, the base configuration)".into(),
            ));
        }
        if t.reuse_base && base.epochs != t.max_epochs {
            return Err(err(
                "reuse_base",
                format!(
                    "train-cnn trains `{}` for {} epochs but a trial trains max_epochs = {}: \
                     set them equal to reuse its run, or reuse_base = false",
                    t.base, base.epochs, t.max_epochs
                ),
            ));
        }
        Ok(TuneParams {
            strategy,
            seed: t.seed,
            max_trials: t.max_trials,
            max_epochs: t.max_epochs,
            min_epochs: t.min_epochs,
            reduction: t.reduction,
            time_limit_s: limit.as_secs_f64(),
            include_base: t.include_base,
            reuse_base: t.reuse_base,
            space,
            base: base.clone(),
            steps: cnn.steps,
        })
    }

    /// Epochs at the end of each rung: `min_epochs * reduction^k`, the last one `max_epochs`
    /// (random search: one rung, `max_epochs`).
    pub fn rungs(&self) -> Vec<usize> {
        if self.strategy == Strategy::Random {
            return vec![self.max_epochs];
        }
        let mut r = vec![];
        let mut e = self.min_epochs;
        while e < self.max_epochs {
            r.push(e);
            e *= self.reduction;
        }
        r.push(self.max_epochs);
        r
    }

    /// The base model's own configuration (trial 0 with `include_base`).
    pub fn base_config(&self) -> TrialConfig {
        TrialConfig {
            widths: self.base.widths.clone(),
            kernels: self.base.kernels.clone(),
            dense: self.base.dense,
            dropout: self.base.dropout,
            lr: self.base.lr,
            weight_decay: self.base.weight_decay,
            batch_size: self.base.batch_size,
            aug_strength: if self.base.augment { 1.0 } else { 0.0 },
        }
    }

    /// Trial `id`'s configuration (trial 0 is the base's own with `include_base`).
    pub fn trial_config(&self, id: usize) -> TrialConfig {
        if self.include_base && id == 0 {
            return self.base_config();
        }
        space::sample(&self.space, &self.base_config(), self.seed, id as u64)
    }

    /// The train-cnn settings of a trial: the base model's, with the trial's values.
    pub fn settings(&self, id: usize, c: &TrialConfig) -> TrainSettings {
        TrainSettings {
            name: format!("trial-{id:03}"),
            arch: "fer-small".into(),
            epochs: self.max_epochs,
            widths: c.widths.clone(),
            kernels: c.kernels.clone(),
            dense: c.dense,
            dropout: c.dropout,
            lr: c.lr,
            min_lr: self.base.min_lr.min(c.lr),
            weight_decay: c.weight_decay,
            batch_size: c.batch_size,
            augment: c.aug_strength > 0.0,
            ..self.base.clone()
        }
    }
}

#[derive(Debug, Clone)]
pub struct Params {
    pub pipeline: PipelineFile,
    pub tune: TuneParams,
    pub common: StageArgs,
    pub device: String,
}

impl Params {
    pub fn from_pipeline(pipeline: &PipelineFile, cli: &Cli) -> Result<Params, TuneError> {
        fer_train_cnn::device(&cli.device)?;
        Ok(Params {
            pipeline: pipeline.clone(),
            tune: TuneParams::parse(pipeline)?,
            common: cli.common.clone(),
            device: cli.device.clone(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Completed,
    Pruned,
    Failed,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Pruned => "pruned",
            Status::Failed => "failed",
            Status::Stopped => "stopped",
        }
    }
}

/// Validation figures of a trial's best checkpoint at the end of a rung.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rung {
    pub epochs: usize,
    pub val_acc: f64,
    pub val_loss: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    pub id: usize,
    pub config: TrialConfig,
    pub status: Status,
    pub rungs: Vec<Rung>,
    pub epochs_run: usize,
    pub seconds: f64,
    pub error: Option<String>,
    /// Training ended early (patience) or reached `max_epochs`: nothing left to promote.
    pub finished: bool,
    /// Not trained by this search but taken from an earlier run (`reuse_base`): the model
    /// folder it came from, relative to the pipeline's artifacts (`train_cnn/fer-small`).
    #[serde(default)]
    pub reused_from: Option<String>,
}

/// Trial 0 as the search would have recorded it, built from a finished training run of the
/// base configuration (train-cnn's `epochs.parquet` rows): at each rung, the validation
/// accuracy and loss of the best checkpoint so far (the lowest validation loss, the first
/// one on a tie, as training keeps it). A run that stopped early (patience) ends at the rung
/// it stopped in, as a trial does. `seconds` is the run's own training time; it is not
/// counted against this search's clock.
pub fn incumbent_trial(
    p: &TuneParams,
    epochs: &[train::EpochRow],
    seconds: f64,
    from: &str,
) -> Trial {
    let n = epochs.len();
    let (mut best_loss, mut best_acc, mut i) = (f64::INFINITY, 0.0, 0);
    let mut rungs = Vec::new();
    for r in p.rungs() {
        while i < n && epochs[i].epoch <= r {
            if epochs[i].val_loss < best_loss {
                (best_loss, best_acc) = (epochs[i].val_loss, epochs[i].val_acc);
            }
            i += 1;
        }
        rungs.push(Rung {
            epochs: n.min(r),
            val_acc: best_acc,
            val_loss: best_loss,
        });
        if n <= r {
            break;
        }
    }
    Trial {
        id: 0,
        config: p.base_config(),
        status: Status::Completed,
        rungs,
        epochs_run: n,
        seconds,
        error: None,
        finished: true,
        reused_from: Some(from.to_string()),
    }
}

/// The whole search, saved after every epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SearchState {
    pub trials: Vec<Trial>,
    /// Wall-clock seconds spent by earlier (interrupted) runs of this search.
    pub elapsed: f64,
}

/// What to run next: ASHA's rule. Promote the best not-yet-promoted trial of the highest
/// rung that has one among its top 1/`reduction`; else start a new trial while `max_trials`
/// allows; else nothing. Random search never promotes (it has one rung).
pub fn next_job(p: &TuneParams, st: &SearchState) -> Option<(usize, usize)> {
    if let Some(t) = st.trials.iter().find(|t| t.status == Status::Running) {
        // An interrupted job: finish its rung first.
        return Some((t.id, t.rungs.len()));
    }
    let rungs = p.rungs();
    for k in (0..rungs.len().saturating_sub(1)).rev() {
        let mut at: Vec<&Trial> = st
            .trials
            .iter()
            .filter(|t| t.status != Status::Failed && t.rungs.len() > k)
            .collect();
        at.sort_by(|a, b| {
            b.rungs[k]
                .val_acc
                .total_cmp(&a.rungs[k].val_acc)
                .then(a.rungs[k].val_loss.total_cmp(&b.rungs[k].val_loss))
                .then(a.id.cmp(&b.id))
        });
        let top = at.len() / p.reduction;
        if let Some(t) = at[..top]
            .iter()
            .find(|t| t.rungs.len() == k + 1 && !t.finished && t.status != Status::Stopped)
        {
            return Some((t.id, k + 1));
        }
    }
    (st.trials.len() < p.max_trials).then_some((st.trials.len(), 0))
}

/// ASHA's last step under a wall clock: train the leader (what [`best_trial`] would pick
/// among the trials this search trains, so not a reused incumbent, which has finished) on to
/// `max_epochs` while there is still time for it, so that it meets the incumbent at full
/// length. Returns `(leader, last rung)` when that
/// must start now: when nothing else is left to run (`next` is `None`), or when running `next`
/// first would leave less than the leader needs (its seconds per epoch so far times the
/// epochs it lacks, plus 10%). `None` when the leader has already finished, or when it would
/// overrun the limit by more than 10% (its best checkpoint is kept instead). Random search
/// trains every trial to `max_epochs`, so it never needs this.
pub fn finish_leader(
    p: &TuneParams,
    st: &SearchState,
    spent: f64,
    next: Option<(usize, usize)>,
) -> Option<(usize, usize)> {
    if p.strategy == Strategy::Random {
        return None;
    }
    let rungs = p.rungs();
    let leader = best_of(st.trials.iter().filter(|t| t.reused_from.is_none()))?;
    if leader.finished || leader.epochs_run == 0 || leader.epochs_run >= p.max_epochs {
        return None;
    }
    let per_epoch = |t: &Trial| t.seconds / t.epochs_run.max(1) as f64;
    let need = 1.1 * per_epoch(leader) * (p.max_epochs - leader.epochs_run) as f64;
    if spent + need > 1.1 * p.time_limit_s {
        return None;
    }
    let next_cost = match next {
        None => f64::INFINITY,
        Some((id, _)) if id == leader.id => return None, // already heading up the rungs
        Some((id, k)) => {
            let done = st.trials.get(id).map_or(0, |t| t.epochs_run);
            let tried: Vec<&Trial> = st.trials.iter().filter(|t| t.epochs_run > 0).collect();
            let mean = tried.iter().map(|t| t.seconds).sum::<f64>()
                / tried.iter().map(|t| t.epochs_run).sum::<usize>().max(1) as f64;
            let per = st
                .trials
                .get(id)
                .filter(|t| t.epochs_run > 0)
                .map_or(mean, per_epoch);
            per * rungs[k].saturating_sub(done) as f64
        }
    };
    (spent + next_cost + need > p.time_limit_s).then_some((leader.id, rungs.len() - 1))
}

/// Whether a new trial can still reach its first rung before the clock ends: `spent` plus the
/// first rung's epochs at the mean seconds per epoch of the trials this search has trained
/// (reused incumbents excluded: their seconds were not charged to this clock) must not pass
/// `time_limit`. With no trained epoch yet there is no estimate, and the trial starts. A trial
/// that cannot finish its first rung is stopped by the clock with nothing to rank, so its
/// time is better left unspent (or to [`finish_leader`], which is asked first).
pub fn can_reach_first_rung(p: &TuneParams, st: &SearchState, spent: f64) -> bool {
    let trained = st
        .trials
        .iter()
        .filter(|t| t.reused_from.is_none() && t.epochs_run > 0);
    let epochs: usize = trained.clone().map(|t| t.epochs_run).sum();
    if epochs == 0 {
        return true;
    }
    let per_epoch = trained.map(|t| t.seconds).sum::<f64>() / epochs as f64;
    spent + per_epoch * p.rungs()[0] as f64 <= p.time_limit_s
}

/// The winner: among trials that reached the highest rung any trial reached, the best
/// validation accuracy there (then the lower validation loss, then the lower id).
pub fn best_trial(st: &SearchState) -> Option<&Trial> {
    best_of(st.trials.iter())
}

/// [`best_trial`]'s rule over some of the trials.
fn best_of<'a>(trials: impl Iterator<Item = &'a Trial> + Clone) -> Option<&'a Trial> {
    let ok = trials.filter(|t| t.status != Status::Failed);
    let top = ok.clone().map(|t| t.rungs.len()).max()?;
    if top == 0 {
        return None;
    }
    ok.filter(|t| t.rungs.len() == top).min_by(|a, b| {
        let (ra, rb) = (&a.rungs[top - 1], &b.rungs[top - 1]);
        rb.val_acc
            .total_cmp(&ra.val_acc)
            .then(ra.val_loss.total_cmp(&rb.val_loss))
            .then(a.id.cmp(&b.id))
    })
}

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
    device: &fer_train_cnn::Device,
    work: &Path,
    progress: &dyn Fn(&str, u64, u64),
) -> Result<SearchState, TuneError> {
    std::fs::create_dir_all(work).map_err(|e| fer_core::Error::io(work, e))?;
    let state_path = work.join("state.json");
    let mut st: SearchState = match std::fs::read_to_string(&state_path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| fer_core::Error::Json {
            path: state_path.clone(),
            source: e,
        })?,
        Err(_) => SearchState::default(),
    };
    if st.trials.is_empty()
        && let Some(t) = &data.incumbent
    {
        st.trials.push(t.clone());
    }
    let save = |st: &SearchState| -> Result<(), TuneError> {
        let tmp = work.join("state.json.tmp");
        let text = serde_json::to_string_pretty(st).expect("state serializes");
        std::fs::write(&tmp, text).map_err(|e| fer_core::Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &state_path).map_err(|e| fer_core::Error::io(&state_path, e))?;
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
                    t.rungs.last().map_or(0.0, |r| r.val_acc)
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
        let steps = fer_augment::scale_steps(&p.steps, st.trials[id].config.aug_strength as f32);
        let aug = fer_augment::augmenter(&steps, data.transform);
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
                    let at_best = t
                        .state
                        .epochs
                        .iter()
                        .find(|e| e.epoch == t.state.best_epoch)
                        .map_or(0.0, |e| e.val_acc);
                    if t.state.done || trial.epochs_run >= target {
                        trial.rungs.push(Rung {
                            epochs: trial.epochs_run,
                            val_acc: at_best,
                            val_loss: t.state.best_val_loss,
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

/// The params the stage's signature hashes (printed by `--print-params`).
pub fn signature_params(p: &Params) -> Result<serde_json::Value, TuneError> {
    Ok(json!({
        "tune": p.tune,
        "rungs": p.tune.rungs(),
        "device": p.device,
    }))
}

pub fn run(p: &Params) -> Result<Manifest, TuneError> {
    let (input, _) = Input::stage(&p.common.artifacts, &p.pipeline.name, "preprocess")?;
    let dir_in = input.path.clone();
    let mut inputs = vec![input];
    // reuse_base: train-cnn's run of the base model is trial 0, so its outputs are an input.
    let incumbent = if p.tune.reuse_base {
        let (cnn, _) = Input::stage(&p.common.artifacts, &p.pipeline.name, "train_cnn")?;
        let dir = cnn.path.join(&p.tune.base.name);
        inputs.push(cnn);
        Some(dir)
    } else {
        None
    };
    let params = signature_params(p)?;
    let run = p
        .common
        .stage_run(&p.pipeline, STAGE, CODE_VERSION, params, inputs);
    let work: PathBuf = p
        .common
        .artifacts
        .join(&p.pipeline.name)
        .join(format!(".{STAGE}.resume"))
        .join(&run.signature()[..16]);
    let dev = fer_train_cnn::device(&p.device)?;
    let m = run.execute(|dir| {
        compute(
            &dir_in,
            incumbent.as_deref(),
            &p.tune,
            &dev,
            &work,
            dir,
            p.common.quiet,
        )
    })?;
    let _ = std::fs::remove_dir_all(work.parent().unwrap_or(&work));
    Ok(m)
}

/// Trial 0 from train-cnn's model folder `mdir` (`reuse_base`), after checking that it was
/// trained with exactly trial 0's settings.
pub fn load_incumbent(p: &TuneParams, mdir: &Path) -> Result<Trial, TuneError> {
    let art = fer_train_cnn::ModelArtifact::load(mdir)?;
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

/// The keys two train-cnn settings differ in (for an error message).
fn settings_diff(a: &TrainSettings, b: &TrainSettings) -> String {
    let (a, b) = (json!(a), json!(b));
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return String::new();
    };
    let keys: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, v)| {
            format!(
                "{k}: {} here, {} there",
                v,
                b.get(k).unwrap_or(&json!(null))
            )
        })
        .collect();
    keys.join("; ")
}

/// train-cnn's `epochs.parquet`.
pub fn read_epochs(path: &Path) -> fer_core::Result<Vec<train::EpochRow>> {
    use arrow::array::{Array, Float64Array, UInt32Array};
    let (_, batches) = fer_core::parquet_io::read_batches(path)?;
    let bad = |m: String| fer_core::Error::Other(format!("{}: {m}", path.display()));
    let mut rows = Vec::new();
    for b in &batches {
        let f64s = |n: &str| -> fer_core::Result<Float64Array> {
            b.column_by_name(n)
                .and_then(|c| c.as_any().downcast_ref::<Float64Array>().cloned())
                .ok_or_else(|| bad(format!("no float column `{n}`")))
        };
        let epoch = b
            .column_by_name("epoch")
            .and_then(|c| c.as_any().downcast_ref::<UInt32Array>().cloned())
            .ok_or_else(|| bad("no u32 column `epoch`".into()))?;
        let (tl, ta, vl, va, lr, sec) = (
            f64s("train_loss")?,
            f64s("train_acc")?,
            f64s("val_loss")?,
            f64s("val_acc")?,
            f64s("lr")?,
            f64s("seconds")?,
        );
        for i in 0..b.num_rows() {
            rows.push(train::EpochRow {
                epoch: epoch.value(i) as usize,
                train_loss: tl.value(i),
                train_acc: ta.value(i),
                val_loss: vl.value(i),
                val_acc: va.value(i),
                lr: lr.value(i),
                seconds: sec.value(i),
            });
        }
    }
    if rows.iter().enumerate().any(|(i, r)| r.epoch != i + 1) {
        return Err(bad("epochs are not 1, 2, 3, ... in order".into()));
    }
    Ok(rows)
}

/// Search, then export the winner and the trials table into `dir`. `incumbent`: train-cnn's
/// folder of the base model, trial 0 without training it again (`reuse_base`).
pub fn compute(
    dir_in: &Path,
    incumbent: Option<&Path>,
    p: &TuneParams,
    device: &fer_train_cnn::Device,
    work: &Path,
    dir: &Path,
    quiet: bool,
) -> Result<Outputs, TuneError> {
    let prepared = Prepared::load(dir_in)?;
    let Prepared {
        train: train_set,
        val,
        test,
        transform,
        ..
    } = &prepared;

    let pb = fer_core::cli::progress(p.max_trials as u64, "tune", quiet);
    let report = |msg: &str, pos: u64, len: u64| {
        pb.set_length(len);
        pb.set_position(pos);
        pb.set_message(msg.to_string());
    };
    let data = SearchData {
        train: train_set,
        val,
        transform,
        incumbent: incumbent.map(|d| load_incumbent(p, d)).transpose()?,
    };
    let st = search(p, &data, device, work, &report)?;
    pb.finish_and_clear();

    let failed: Vec<&Trial> = st
        .trials
        .iter()
        .filter(|t| t.status == Status::Failed)
        .collect();
    let Some(best) = best_trial(&st) else {
        if !failed.is_empty() && failed.len() == st.trials.len() {
            return Err(TuneError::AllFailed(
                failed.len(),
                failed[0].error.clone().unwrap_or_default(),
            ));
        }
        return Err(TuneError::NothingFinished(format!(
            "time_limit {} s, first rung {} epochs",
            p.time_limit_s,
            p.rungs()[0]
        )));
    };

    // The winner's best checkpoint, scored on val and (once) on test.
    let s = p.settings(best.id, &best.config);
    let bdir = dir.join("best");
    let (mut info, epoch_rows) = match (&best.reused_from, incumbent) {
        // The incumbent won: train-cnn already exported and scored it; copy its folder.
        (Some(_), Some(src)) => {
            std::fs::create_dir_all(&bdir).map_err(|e| fer_core::Error::io(&bdir, e))?;
            for f in [
                "model.safetensors",
                "model.json",
                "epochs.parquet",
                "predictions.parquet",
                "metrics.json",
            ] {
                std::fs::copy(src.join(f), bdir.join(f))
                    .map_err(|e| fer_core::Error::io(src.join(f), e))?;
            }
            let mp = bdir.join("metrics.json");
            let text = std::fs::read_to_string(&mp).map_err(|e| fer_core::Error::io(&mp, e))?;
            let info: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| fer_core::Error::Json {
                    path: mp,
                    source: e,
                })?;
            (info, best.epochs_run)
        }
        _ => {
            let steps = fer_augment::scale_steps(&p.steps, best.config.aug_strength as f32);
            let aug = fer_augment::augmenter(&steps, transform);
            let trained = train::train_until(
                &s,
                train_set,
                val,
                &aug,
                device,
                &work.join(&s.name),
                best.epochs_run,
                &|_, _, _| {},
            )?;
            let cfg = prepared.model_config(&s)?;
            let info = fer_train_cnn::export_model(&trained, &s, &cfg, &prepared, device, &bdir)?;
            (info, trained.state.epochs.len())
        }
    };
    info["tune_trial"] = json!(best.id);
    info["reused_from"] = json!(best.reused_from);
    info["search_seconds"] = json!(st.elapsed);
    write_json(&bdir.join("metrics.json"), &info)?;
    let winner = TrainSettings {
        name: "tuned".into(),
        ..s.clone()
    };
    let snippet = format!(
        "# The tune winner (trial {}), as a [[train_cnn.models]] table.\n[[train_cnn.models]]\n{}",
        best.id,
        toml::to_string(&winner).expect("settings serialize to TOML")
    );
    let sp = bdir.join("train_cnn.toml");
    std::fs::write(&sp, snippet).map_err(|e| fer_core::Error::io(&sp, e))?;

    let rows = write_trials(&dir.join("trials.parquet"), p.strategy, &st.trials)?;
    let count = |s: Status| st.trials.iter().filter(|t| t.status == s).count();
    let summary = json!({
        "strategy": p.strategy.as_str(),
        "trials": st.trials.len(),
        "completed": count(Status::Completed),
        "pruned": count(Status::Pruned),
        "failed": count(Status::Failed),
        "stopped": count(Status::Stopped),
        "best_trial": best.id,
        "best_val_acc": best.rungs.last().map(|r| r.val_acc),
        "best_epochs": best.epochs_run,
        "best_params": best.config,
        "best_reused_from": best.reused_from,
        "searched_trials": st.trials.iter().filter(|t| t.reused_from.is_none()).count(),
        "incumbent_reused_from": st.trials.iter().find_map(|t| t.reused_from.clone()),
        "epochs_trained": st.trials.iter().map(|t| t.epochs_run).sum::<usize>(),
        "seconds": st.elapsed,
        "budget": {
            "max_trials": p.max_trials,
            "max_epochs": p.max_epochs,
            "rungs": p.rungs(),
            "time_limit_s": p.time_limit_s,
        },
        "test_accuracy": info["metrics"]["test"]["accuracy"],
        "val_accuracy_tta": info["metrics"]["val"]["accuracy"],
    });
    write_json(&dir.join("summary.json"), &summary)?;
    if !quiet {
        eprintln!(
            "tune ({}): {} trials ({} completed, {} pruned, {} failed, {} stopped) in {:.0} s, {} epochs; best trial-{:03} {:?}: val acc {:.4}, test acc {:.4}",
            p.strategy.as_str(),
            st.trials.len(),
            count(Status::Completed),
            count(Status::Pruned),
            count(Status::Failed),
            count(Status::Stopped),
            st.elapsed,
            summary["epochs_trained"],
            best.id,
            best.config,
            info["metrics"]["val"]["accuracy"].as_f64().unwrap_or(0.0),
            info["metrics"]["test"]["accuracy"].as_f64().unwrap_or(0.0),
        );
    }
    let mut out = Outputs::default();
    out.table("trials.parquet", rows);
    out.file("summary.json");
    for f in [
        "model.safetensors",
        "model.json",
        "metrics.json",
        "train_cnn.toml",
    ] {
        out.file(&format!("best/{f}"));
    }
    out.table("best/epochs.parquet", epoch_rows);
    out.table("best/predictions.parquet", val.n + test.n);
    out.summary = json!({
        "strategy": p.strategy.as_str(),
        "trials": st.trials.len(),
        "pruned": count(Status::Pruned),
        "best_trial": best.id,
        "best_val_acc": summary["best_val_acc"],
        "test_accuracy": summary["test_accuracy"],
        "seconds": st.elapsed,
    });
    Ok(out)
}

fn write_json(path: &Path, v: &impl serde::Serialize) -> fer_core::Result<()> {
    let text = serde_json::to_string_pretty(v).expect("serializes") + "\n";
    std::fs::write(path, text).map_err(|e| fer_core::Error::io(path, e))
}

/// The trials table (one row per trial).
pub fn write_trials(path: &Path, strategy: Strategy, trials: &[Trial]) -> fer_core::Result<usize> {
    use arrow::array::{ArrayRef, Float64Array, StringArray, UInt32Array};
    let u32s = |f: fn(&Trial) -> u32| {
        Arc::new(UInt32Array::from_iter_values(trials.iter().map(f))) as ArrayRef
    };
    let f64s = |f: fn(&Trial) -> f64| {
        Arc::new(Float64Array::from_iter_values(trials.iter().map(f))) as ArrayRef
    };
    let strs = |f: &dyn Fn(&Trial) -> String| {
        Arc::new(StringArray::from_iter_values(trials.iter().map(f))) as ArrayRef
    };
    fer_core::parquet_io::write_columns(
        path,
        vec![
            ("trial", u32s(|t| t.id as u32)),
            ("strategy", strs(&|_| strategy.as_str().to_string())),
            ("status", strs(&|t| t.status.as_str().to_string())),
            (
                "params",
                strs(&|t| serde_json::to_string(&t.config).expect("JSON")),
            ),
            ("epochs_run", u32s(|t| t.epochs_run as u32)),
            (
                "val_acc",
                f64s(|t| t.rungs.last().map_or(f64::NAN, |r| r.val_acc)),
            ),
            (
                "val_loss",
                f64s(|t| t.rungs.last().map_or(f64::NAN, |r| r.val_loss)),
            ),
            (
                "rungs",
                strs(&|t| serde_json::to_string(&t.rungs).expect("JSON")),
            ),
            ("seconds", f64s(|t| t.seconds)),
            (
                "reused_from",
                Arc::new(StringArray::from(
                    trials
                        .iter()
                        .map(|t| t.reused_from.clone())
                        .collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
            (
                "error",
                Arc::new(StringArray::from(
                    trials.iter().map(|t| t.error.clone()).collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
        ],
    )
}
