//! The `[tune]` section: its types as written ([`TuneSection`]), validation into
//! [`TuneParams`] (and each trial's train-cnn settings), the stage's [`Params`] and [`Cli`],
//! and [`signature_params`], what the run signature hashes.

use crate::space::{self, Space, TrialConfig};
use crate::{STAGE, TuneError};
use fer_core::cli::StageArgs;
use fer_core::pipeline::PipelineFile;
use fer_train::ops::Step;
use fer_train::settings::TrainSettings;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The stage's own options, beside the shared `StageArgs`.
#[derive(Debug, Clone, clap::Args)]
pub struct TuneArgs {
    /// `cpu` (burn flex) or `wgpu` (GPU; needs train-cnn's `wgpu` cargo feature).
    #[arg(long, default_value = "cpu", env = "FER_DEVICE")]
    pub device: String,
    /// Local workers (`make tune WORKERS=N`): this run and N-1 `fer-tune --worker` children
    /// share the study. Above 1 needs the `study` feature.
    #[arg(long, default_value_t = 1, env = "FER_TUNE_WORKERS", value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,
    /// Work as one of the study's workers: claim jobs until the search has none left, then
    /// exit 0. Takes no lock and writes no outputs (the stage run, or `--finish`, writes them).
    #[arg(long)]
    pub worker: bool,
    /// Write the stage's outputs from a study that workers finished, training nothing; fails,
    /// naming what is left, when it is not finished.
    #[arg(long)]
    pub finish: bool,
    /// The study's database: `postgres://user@host/db` or `sqlite://path` (default: `[tune]
    /// study`, else SQLite in the run's resume folder). Never printed with its password.
    #[arg(long, env = "FER_TUNE_STUDY", hide_env_values = true)]
    pub study: Option<String>,
    /// A folder every worker mounts (NFS, a ReadWriteMany volume) for the search's resume
    /// folder: its checkpoints, which a worker taking over a trial resumes from, and the study's
    /// id. The search then keeps them in `<DIR>/<pipeline>/<signature prefix>/` rather than
    /// under `--artifacts`, so each machine's artifacts folder can be its own.
    #[arg(long, env = "FER_TUNE_SHARED", value_name = "DIR")]
    pub shared: Option<std::path::PathBuf>,
    /// `--worker` on a machine without the stages tune reads: `stage=signature` pairs separated
    /// by `;`, as `--print-upstream` printed them where those stages ran. Each stage folder not
    /// already at its signature is pulled from the shared run cache (`FER_CACHE_URL`), checked
    /// by hash and installed in `--artifacts` before the worker starts.
    #[arg(long, env = "FER_TUNE_UPSTREAM", value_name = "STAGE=SIG;...")]
    pub upstream: Option<String>,
    /// Print the stages this search reads as `stage=signature` pairs (what `--upstream` takes)
    /// and exit; fails, naming the stage to run, when one is missing or out of date.
    #[arg(long)]
    pub print_upstream: bool,
}

/// `fer-tune`'s command line.
pub type Cli = fer_core::cli::StageCli<TuneArgs>;

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
    /// Where the study lives (a `postgres://` or `sqlite://` URL; `--study` and
    /// `FER_TUNE_STUDY` come first). Not a param of the search: the signature leaves it out.
    pub study: String,
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
            study: String::new(),
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
#[non_exhaustive]
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
        let cnn = fer_train::settings::parse(pf)?;
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
                    "[train_cnn] trains `{}` for epochs = {} but a trial trains max_epochs = \
                     {}: set them equal to reuse its run, or reuse_base = false",
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

    /// The train-cnn settings of a trial: the base model's, with the trial's values. A trial
    /// the search trains starts from random weights: the base's `init` file fits only the
    /// base's shape, and its pretraining (`pretrain_epochs`) is train-cnn's, not the search's.
    /// With `reuse_base`, trial 0 is train-cnn's run of the base itself, pretraining included,
    /// so its settings are the base's own (with the search's epochs, which `parse` has checked
    /// are the base's).
    pub fn settings(&self, id: usize, c: &TrialConfig) -> TrainSettings {
        let reused = self.reuse_base && self.include_base && id == 0;
        let (pretrain_epochs, pretrain_lr, init) = if reused {
            (
                self.base.pretrain_epochs,
                self.base.pretrain_lr,
                self.base.init.clone(),
            )
        } else {
            (0, 0.0, String::new())
        };
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
            pretrain_epochs,
            pretrain_lr,
            init,
            ..self.base.clone()
        }
    }

    /// Whether trial `id` starts from pretrained or given weights (only a reused base can).
    pub fn pretrained(&self, id: usize) -> bool {
        let s = self.settings(id, &self.trial_config(id));
        s.pretrain_epochs > 0 || !s.init.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct Params {
    pub pipeline: PipelineFile,
    pub tune: TuneParams,
    pub common: StageArgs,
    pub device: String,
    /// The study's URL (`None`: SQLite beside the resume state, or `state.json` without the
    /// `study` feature), local workers, and `--finish` ([`crate::workers`]).
    pub study: Option<String>,
    pub workers: usize,
    pub finish: bool,
    /// `--shared`: where the search's resume folder lives ([`crate::workers::work_dir`]).
    pub shared: Option<std::path::PathBuf>,
}

impl Params {
    pub fn from_pipeline(pipeline: &PipelineFile, cli: &Cli) -> Result<Params, TuneError> {
        fer_train::check_device(&cli.args.device)?;
        let section: TuneSection = pipeline.section(STAGE)?;
        let study = cli
            .args
            .study
            .clone()
            .filter(|s| !s.is_empty())
            .or((!section.study.is_empty()).then_some(section.study));
        Ok(Params {
            pipeline: pipeline.clone(),
            tune: TuneParams::parse(pipeline)?,
            common: cli.common.clone(),
            device: cli.args.device.clone(),
            study,
            workers: usize::from(cli.args.workers),
            finish: cli.args.finish,
            shared: cli
                .args
                .shared
                .clone()
                .filter(|d| !d.as_os_str().is_empty()),
        })
    }
}

/// The params the stage's signature hashes (printed by `--print-params`).
pub fn signature_params(p: &Params) -> Result<serde_json::Value, TuneError> {
    Ok(json!({
        "tune": p.tune,
        "rungs": p.tune.rungs(),
        "device": p.device,
    }))
}
