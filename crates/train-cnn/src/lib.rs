//! Stage `train_cnn`: the study's CNNs reproduced in burn, and ours.
//!
//! Reads `artifacts/<pipeline>/preprocess/` (`{train,val,test}.safetensors`, `transform.json`,
//! `index.parquet`, and `pretrain.safetensors` for `pretrain_epochs`) and the `init` weights
//! files models name (hashed as inputs).
//!
//! Writes `artifacts/<pipeline>/train_cnn/<model>/` for every model: `model.safetensors` (the
//! best checkpoint by validation loss, written by burn-store), `model.json` (the
//! `ModelConfig` that rebuilds it, the training settings, the fitted transform, class names,
//! parameter count: enough to use the model from the artifact alone), `epochs.parquet` (epoch,
//! train/val loss and accuracy, learning rate, seconds; with more than two classes also the
//! validation macro F1), `predictions.parquet` (split, row, id, label, p_happy, pred for val and
//! test; p_happy is the `happy` class's probability; with more than two classes, e.g.
//! `label_mode = "emotion7"`, also a `prob_<class>` column per class) and `metrics.json` (`fer_eval::metrics` for val and
//! test, parameter count, MACs, training time, inference images/second), `calibration.json`
//! (temperature scaling of p(happy) fitted on val only, with NLL / ECE / Brier before and after
//! on val: `fer_schema::calibration`; `predictions.parquet` stays uncalibrated); and a top-level
//! `metrics.json` over all models; with `pretrain_epochs`, also `<model>/pretrain_epochs.parquet`
//! (the epochs on the pretraining pool). With FERPlus votes, every model's test figures are
//! also given against both truths (`test_by_truth`). While training, checkpoints live in
//! `artifacts/<pipeline>/.train_cnn.resume/<signature>/`: an interrupted run (even by
//! `kill -9`) continues from the last complete epoch ([`checkpoint`]: atomic files, state
//! written last with the hashes of the files it belongs to, a torn epoch falls back to the one
//! before) and ends with the same outputs as an uninterrupted run; `--force` clears them.
//!
//! Params (`[train_cnn]`, see [`settings::TrainSettings`]): defaults at the top, one
//! `[[train_cnn.models]]` per model overriding them (`arch` = `seed-base` | `seed-tuned` |
//! `fer-small`), and `[[train_cnn.ops]]`, the online augmentation chain.
//!
//! Device: `--device cpu` (burn's `flex` backend, the default) or `--device wgpu` (needs the
//! `wgpu` cargo feature).
//!
//! The crate is the stage alone (params, the run, pretraining on the pool, the per-model loop
//! and the top-level metrics): the training loop, settings, checkpoints, losses and the export
//! of a model folder are fer-train's, which tune shares ([`train`], [`settings`],
//! [`checkpoint`], [`export_model`], re-exported here); the architectures, batch scoring and
//! device choice are fer-models' ([`model`], [`ModelArtifact`], [`device`]); the files it
//! writes follow core's schemas (`fer_schema`).

// The training itself is fer-train's (which tune shares), the models fer-models'; these paths
// keep train-cnn's API for its users.
pub use fer_models::arch as model;
pub use fer_train::{
    Device, DeviceInfo, ModelArtifact, ModelError, Prepared, TrainCnnError, TrainError,
    check_device, checkpoint, device, device_info, export_model, loss, remove_resume, settings,
    timing_augmenter, timing_set, train,
};

use fer_core::cli::StageArgs;
use fer_core::cli::{Preamble, Stage as _};
use fer_core::manifest::Manifest;
use fer_core::pipeline::PipelineFile;
use fer_core::stage::{Input, Outputs};
use fer_schema::metrics::CnnMetricsByModel;
use fer_schema::{epochs, write_json_sorted};
use serde_json::json;
use settings::{TrainCnnParams, TrainSettings};
use std::path::{Path, PathBuf};

pub const STAGE: &str = settings::SECTION;
pub const CODE_VERSION: &str = <Params as fer_core::cli::Stage>::CODE_VERSION;
/// The code versions of the upstream stages this build reads (checked by `Input::current`).
pub const UPSTREAM_CODE_VERSIONS: &str = <Params as fer_core::cli::Stage>::UPSTREAM_CODE_VERSIONS;

/// The stage's own options, beside the shared `StageArgs`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainCnnArgs {
    /// `cpu` (burn flex) or `wgpu` (GPU; needs the `wgpu` cargo feature).
    #[arg(long, default_value = "cpu", env = "FER_DEVICE")]
    pub device: String,
}

/// `fer-train-cnn`'s command line.
pub type Cli = fer_core::cli::StageCli<TrainCnnArgs>;

#[derive(Debug, Clone)]
pub struct Params {
    pub pipeline: PipelineFile,
    pub train: TrainCnnParams,
    pub common: StageArgs,
    pub device: String,
}

impl Params {
    pub fn from_pipeline(pipeline: &PipelineFile, cli: &Cli) -> Result<Params, TrainCnnError> {
        check_device(&cli.args.device)?;
        Ok(Params {
            pipeline: pipeline.clone(),
            train: settings::parse(pipeline)?,
            common: cli.common.clone(),
            device: cli.args.device.clone(),
        })
    }
}

fer_core::impl_stage! { Params: STAGE, "fer-train-cnn", TrainCnnError, TrainCnnArgs,
"Stage train_cnn: train the study's CNNs and ours" }

/// The params the stage's signature hashes (printed by `--print-params`).
pub fn signature_params(p: &Params) -> Result<serde_json::Value, TrainCnnError> {
    Ok(json!({"models": p.train.models, "ops": p.train.steps, "device": p.device}))
}

pub fn run(p: &Params) -> Result<Manifest, TrainCnnError> {
    // The weights files models start from (`init`) are inputs too.
    let mut inits = Vec::new();
    for s in p.train.models.iter().filter(|s| !s.init.is_empty()) {
        let path = PathBuf::from(&s.init);
        inits.push(Input {
            name: format!("init:{}", s.name),
            hash: fer_core::hash::hash_file(&path)?,
            path,
        });
    }
    let Preamble { run, upstream: up } = p.prepare(inits)?;
    // Checkpoints live in the run's resume folder: --force starts from scratch.
    let m = run.execute_resumable(|dir, resume| {
        // The device comes up only to compute (`make status` and a skip never touch a GPU).
        let (dev, info) = device_info(&p.device)?;
        if info.device != "cpu" && !p.common.quiet {
            eprintln!("[{}/{STAGE}] device: {info}", p.common.pipeline);
        }
        compute(&up[0].0, &p.train, &dev, resume, dir, p.common.quiet)
    })?;
    Ok(m)
}

/// Train and evaluate every model, writing the outputs into `dir`.
pub fn compute(
    dir_in: &Path,
    tp: &TrainCnnParams,
    device: &Device,
    resume: &Path,
    dir: &Path,
    quiet: bool,
) -> Result<Outputs, TrainCnnError> {
    let data = Prepared::load(dir_in)?;
    if data.val.n == 0 {
        return Err(TrainCnnError::Data(format!(
            "{}: the validation split is empty: train-cnn chooses each model's best epoch on it \
             (and stops early and lowers the plateau rate by it); give it images \
             ([ingest] val_fraction > 0)",
            dir_in.join("val.safetensors").display()
        )));
    }
    let Prepared {
        train,
        val,
        test,
        transform,
        ..
    } = &data;
    let aug = fer_train::chain::augmenter(&tp.steps, transform);
    let mut out = Outputs::default();
    let mut summary = CnnMetricsByModel::new();
    for s in &tp.models {
        let mdir = dir.join(&s.name);
        std::fs::create_dir_all(&mdir).map_err(|e| fer_core::Error::io(&mdir, e))?;
        let cfg = data.model_config(s)?;
        let mut s = s.clone();
        s.widths = cfg.widths.clone();
        let pb = fer_core::cli::progress(0, &s.name, quiet);
        let report = |msg: &str, pos: u64, len: u64| {
            pb.set_length(len);
            pb.set_position(pos);
            pb.set_message(msg.to_string());
            // One line per epoch in a log (the epoch's end is reported with pos == len).
            if len > 0 && pos == len {
                fer_core::cli::log_line(STAGE, quiet, msg);
            }
        };
        let mut fine = s.clone();
        if s.pretrain_epochs > 0 {
            let pre = pretrain(&s, &data, &aug, device, resume, &report)?;
            epochs::write(&mdir.join("pretrain_epochs.parquet"), &pre.1)?;
            out.table(&format!("{}/pretrain_epochs.parquet", s.name), pre.1.len());
            fine.init = pre.0.display().to_string();
        }
        let trained = train::train(
            &fine,
            train,
            val,
            &aug,
            device,
            &resume.join(&s.name),
            &report,
        )?;
        pb.finish_and_clear();
        let info = export_model(&trained, &s, &cfg, &data, device, &mdir)?;
        for f in [
            "model.safetensors",
            "model.json",
            "metrics.json",
            "calibration.json",
        ] {
            out.file(&format!("{}/{f}", s.name));
        }
        out.table(
            &format!("{}/epochs.parquet", s.name),
            trained.state.epochs.len(),
        );
        out.table(&format!("{}/predictions.parquet", s.name), val.n + test.n);
        if !quiet {
            eprintln!(
                "{}: {} params, best epoch {}/{}, val acc {:.4}, test acc {:.4}, test balanced acc {:.4}, ROC AUC {:.4}, {:.0} s",
                s.name,
                info.params,
                trained.state.best_epoch,
                trained.state.epochs.len(),
                info.metrics.val.accuracy,
                info.metrics.test.accuracy,
                info.metrics.test.balanced_accuracy,
                info.metrics.test.roc_auc.unwrap_or(0.0),
                trained.state.train_seconds
            );
        }
        summary.insert(s.name.clone(), info);
    }
    write_json_sorted(&dir.join("metrics.json"), &summary)?;
    out.file("metrics.json");
    out.summary = serde_json::Value::Object(
        summary
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    json!({
                        "val_accuracy": v.metrics.val.accuracy,
                        "test_accuracy": v.metrics.test.accuracy,
                        "test_balanced_accuracy": v.metrics.test.balanced_accuracy,
                        "test_roc_auc": v.metrics.test.roc_auc,
                        "train_seconds": v.train_seconds,
                    }),
                )
            })
            .collect(),
    );
    Ok(out)
}

/// Train `s` on the pretraining pool for `pretrain_epochs` (best epoch by the sample's val
/// loss), and save its weights where `init` reads them: returns that file and the epochs.
pub fn pretrain(
    s: &TrainSettings,
    data: &Prepared,
    aug: &fer_train::ops::Augmenter,
    device: &Device,
    resume: &Path,
    report: &dyn Fn(&str, u64, u64),
) -> Result<(PathBuf, Vec<epochs::EpochRow>), TrainCnnError> {
    let pool = data.pretrain()?.ok_or_else(|| {
        TrainCnnError::Data(format!(
            "{}: pretrain_epochs = {} needs a pretraining pool: set [ingest] pretrain_pool = true",
            s.name, s.pretrain_epochs
        ))
    })?;
    let name = format!("{}-pretrain", s.name);
    let lr = if s.pretrain_lr > 0.0 {
        s.pretrain_lr
    } else {
        s.lr
    };
    let ps = TrainSettings {
        name: name.clone(),
        epochs: s.pretrain_epochs,
        lr,
        min_lr: s.min_lr.min(lr),
        pretrain_epochs: 0,
        pretrain_lr: 0.0,
        ..s.clone()
    };
    let pre = train::train(
        &ps,
        pool,
        &data.val,
        aug,
        device,
        &resume.join(&name),
        report,
    )?;
    let file = resume.join(&name).join("pretrained.safetensors");
    fer_models::checkpoint::save_pytorch(&pre.model, &file)?;
    Ok((file, pre.state.epochs))
}
