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
//! `label_mode = "emotion7"`, also a `prob_<class>` column per class) and `metrics.json` (`fer_core::metrics` for val and
//! test, parameter count, MACs, training time, inference images/second), `calibration.json`
//! (temperature scaling of p(happy) fitted on val only, with NLL / ECE / Brier before and after
//! on val: `fer_core::schema::calibration`; `predictions.parquet` stays uncalibrated); and a top-level
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
//! The crate holds the stage (params, the training loop in [`train`], the export of a model
//! folder) and nothing the other crates score with: the architectures, `TrainSettings`,
//! checkpoints, batch scoring and device choice are fer-models' (re-exported here as
//! [`model`], [`ModelArtifact`], [`device`]); the files it writes follow core's schemas
//! (`fer_core::schema`).

pub mod checkpoint;
pub mod loss;
pub mod settings;
pub mod train;

// The models themselves live in fer-models; these paths keep train-cnn's API for its users.
pub use fer_models::arch as model;
pub use fer_models::{Device, ModelArtifact, ModelError, device};

use burn::module::Module;
use fer_core::Split;
use fer_core::cli::StageArgs;
use fer_core::manifest::Manifest;
use fer_core::metrics::classification_metrics;
use fer_core::pipeline::PipelineFile;
use fer_core::schema::metrics::{CnnMetrics, CnnMetricsByModel, SplitMetrics};
use fer_core::schema::predictions::{self, CnnPrediction};
use fer_core::schema::{epochs, write_json, write_json_sorted};
use fer_core::stage::{Input, Outputs};
use fer_core::tensors::TensorSet;
use fer_core::transform::Transform;
use model::{ModelConfig, Net};
use serde_json::json;
use settings::{TrainCnnParams, TrainSettings};
use std::path::{Path, PathBuf};

use std::time::Instant;
pub use train::TrainError;

pub const STAGE: &str = settings::SECTION;
pub const CODE_VERSION: &str = env!("FER_CODE_VERSION");
/// The code versions of the upstream stages this build reads (checked by `Input::current`).
pub const UPSTREAM_CODE_VERSIONS: &str = env!("FER_UPSTREAM_CODE_VERSIONS");

#[derive(Debug, thiserror::Error)]
pub enum TrainCnnError {
    #[error(transparent)]
    Core(#[from] fer_core::Error),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{0}")]
    Data(String),
}

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
        device(&cli.args.device)?;
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
    let (input, _) = Input::current(
        &p.common.artifacts,
        &p.pipeline,
        "preprocess",
        UPSTREAM_CODE_VERSIONS,
    )?;
    let dir_in = input.path.clone();
    let params = signature_params(p)?;
    let mut inputs = vec![input];
    for s in p.train.models.iter().filter(|s| !s.init.is_empty()) {
        let path = PathBuf::from(&s.init);
        inputs.push(Input {
            name: format!("init:{}", s.name),
            hash: fer_core::hash::hash_file(&path)?,
            path,
        });
    }
    let run = p
        .common
        .stage_run(&p.pipeline, STAGE, CODE_VERSION, params, inputs);
    let resume: PathBuf = p
        .common
        .artifacts
        .join(&p.pipeline.name)
        .join(format!(".{STAGE}.resume"))
        .join(&run.signature()[..16]);
    if p.common.force {
        // --force recomputes from scratch: no checkpoint of an earlier run is resumed.
        remove_resume(resume.parent().unwrap_or(&resume))?;
    }
    let dev = device(&p.device)?;
    let m = run.execute(|dir| compute(&dir_in, &p.train, &dev, &resume, dir, p.common.quiet))?;
    let _ = std::fs::remove_dir_all(resume.parent().unwrap_or(&resume));
    Ok(m)
}

/// Remove a resume folder (missing: nothing to do).
pub fn remove_resume(dir: &Path) -> Result<(), fer_core::Error> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(fer_core::Error::io(dir, e)),
        _ => Ok(()),
    }
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
    let aug = fer_augment::augmenter(&tp.steps, transform);
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
    aug: &fer_augment::Augmenter,
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

/// What `preprocess` wrote, loaded once: the three splits, their ids, the fitted transform
/// and the class names (from the label mode); the pretraining pool, if there is one, is read
/// on first use ([`Prepared::pretrain`]: only models with `pretrain_epochs` need it).
pub struct Prepared {
    pub train: TensorSet,
    pub val: TensorSet,
    pub test: TensorSet,
    /// `pretrain.safetensors` when preprocess wrote one, and its tensors once read.
    pool: Option<(PathBuf, std::sync::OnceLock<TensorSet>)>,
    pub ids: [Vec<String>; 3],
    pub transform: Transform,
    pub class_names: Vec<String>,
}

impl Prepared {
    /// The network config of `s` for this data (its side and class count). Errors when the
    /// training labels don't span the label mode's classes, since the network is sized from
    /// them.
    pub fn model_config(&self, s: &TrainSettings) -> Result<ModelConfig, TrainCnnError> {
        let k = train::num_classes(&self.train);
        if k != self.class_names.len() {
            return Err(TrainCnnError::Data(format!(
                "the training split has labels 0..{} but the label mode has {} classes ({}): every class needs training images",
                k - 1,
                self.class_names.len(),
                self.class_names.join(", ")
            )));
        }
        let cfg = ModelConfig::for_settings(s, self.train.height, k);
        fer_models::arch::check_side(&cfg.arch, cfg.widths.len(), self.train.height)
            .map_err(|m| TrainCnnError::Data(format!("{}: {m} ([preprocess] size)", s.name)))?;
        Ok(cfg)
    }

    /// The pretraining pool (`None`: preprocess wrote none), read on the first call.
    pub fn pretrain(&self) -> fer_core::Result<Option<&TensorSet>> {
        let Some((path, set)) = &self.pool else {
            return Ok(None);
        };
        if let Some(t) = set.get() {
            return Ok(Some(t));
        }
        let t = TensorSet::read(path)?.0;
        Ok(Some(set.get_or_init(|| t)))
    }

    /// Read `artifacts/<pipeline>/preprocess/` (`dir_in`).
    pub fn load(dir_in: &Path) -> fer_core::Result<Prepared> {
        let transform = Transform::load(&dir_in.join("transform.json"))?;
        let (train, meta) = TensorSet::read(&dir_in.join("train.safetensors"))?;
        let (val, _) = TensorSet::read(&dir_in.join("val.safetensors"))?;
        let (test, _) = TensorSet::read(&dir_in.join("test.safetensors"))?;
        let ids = fer_core::tensors::read_ids(&dir_in.join("index.parquet"))?;
        let pool = dir_in.join("pretrain.safetensors");
        let pool = pool.is_file().then(|| (pool, std::sync::OnceLock::new()));
        let mode = meta["label_mode"]
            .as_str()
            .and_then(fer_core::LabelMode::parse)
            .unwrap_or_default();
        let class_names = mode.class_names().iter().map(|s| s.to_string()).collect();
        Ok(Prepared {
            train,
            val,
            test,
            pool,
            ids,
            transform,
            class_names,
        })
    }
}

/// Write one trained model's folder (`model.safetensors`, `model.json`, `epochs.parquet`,
/// `predictions.parquet`, `metrics.json`) into `mdir` and return its metrics. Val is
/// scored and test is scored once; neither is used to choose anything here.
pub fn export_model(
    trained: &train::Trained,
    s: &TrainSettings,
    cfg: &ModelConfig,
    d: &Prepared,
    device: &Device,
    mdir: &Path,
) -> Result<CnnMetrics, TrainCnnError> {
    std::fs::create_dir_all(mdir).map_err(|e| fer_core::Error::io(mdir, e))?;
    let (train, val, test) = (&d.train, &d.val, &d.test);
    let (class_names, transform) = (&d.class_names, &d.transform);
    let model = &trained.model;
    let params = model.num_params();
    let macs = Net::macs(cfg);
    fer_models::checkpoint::save_weights(model, &mdir.join("model.safetensors"))?;
    let art = ModelArtifact {
        model: cfg.clone(),
        settings: s.clone(),
        transform: transform.clone(),
        class_names: class_names.to_vec(),
        tta_flip: s.tta_flip,
        params,
        macs,
    };
    write_json(&mdir.join("model.json"), &art)?;
    epochs::write(&mdir.join("epochs.parquet"), &trained.state.epochs)?;
    // Evaluate: val and test (test only scored, never used to choose).
    let names: Vec<&str> = class_names.iter().map(String::as_str).collect();
    // p_happy is the `happy` class's probability (class 0 in binary, 3 of seven); more than two
    // classes also get a `prob_<class>` column each.
    let happy = names.iter().position(|&c| c == "happy").unwrap_or(0);
    let per_class = names.len() > 2;
    let t0 = Instant::now();
    let _ = fer_models::score::predict(model, test, s.eval_batch_size, false, device);
    let infer_ips = test.n as f64 / t0.elapsed().as_secs_f64();
    let mut metrics = Vec::new();
    let mut test_by_truth = None;
    let mut pred_rows: Vec<CnnPrediction> = Vec::new();
    let mut val_probs = Vec::new();
    for (split, data) in [(Split::Val, val), (Split::Test, test)] {
        let probs = fer_models::score::predict(model, data, s.eval_batch_size, s.tta_flip, device);
        let pred: Vec<u8> = probs
            .iter()
            .map(|p| fer_models::score::argmax(p) as u8)
            .collect();
        metrics.push(classification_metrics(&data.y, &pred, &names, Some(&probs)));
        if split == Split::Val {
            val_probs = probs.clone();
        }
        if let (Split::Test, Some(t)) = (split, &data.truths) {
            test_by_truth = Some(t.score(&pred, &names, Some(&probs)));
        }
        for (i, p) in probs.iter().enumerate() {
            pred_rows.push(CnnPrediction {
                split,
                row: i as u32,
                id: d.ids[split as usize].get(i).cloned().unwrap_or_default(),
                label: data.y[i],
                p_happy: p[happy],
                pred: pred[i],
                probs: if per_class { p.clone() } else { Vec::new() },
            });
        }
    }
    let last = trained.state.epochs.last();
    let test_metrics = metrics.pop().expect("test scored");
    let val_metrics = metrics.pop().expect("val scored");
    let info = CnnMetrics {
        name: s.name.clone(),
        arch: s.arch.clone(),
        params,
        macs,
        epochs_run: trained.state.epochs.len(),
        best_epoch: trained.state.best_epoch,
        train_seconds: trained.state.train_seconds,
        train_images_per_second: trained.state.epochs.len() as f64
            * (train.n / s.batch_size.max(1) * s.batch_size) as f64
            / trained.state.train_seconds.max(1e-9),
        inference_images_per_second: infer_ips,
        final_train_acc: last.map(|e| e.train_acc),
        final_val_acc: last.map(|e| e.val_acc),
        tta_flip: s.tta_flip,
        metrics: SplitMetrics {
            val: val_metrics,
            test: test_metrics,
        },
        test_by_truth,
        tune: None,
    };
    write_json_sorted(&mdir.join("metrics.json"), &info)?;
    let prob_cols: &[&str] = if per_class { &names } else { &[] };
    predictions::write_classes(&mdir.join("predictions.parquet"), &pred_rows, prob_cols)?;
    write_calibration(mdir, &s.name, class_names, &val_probs, &val.y)?;
    Ok(info)
}

/// `calibration.json` of a model folder: temperature scaling of p(happy) (the `happy` class's
/// softmax output, one against the rest) fitted on **val** only; an `uncalibrated` record with
/// the reason when it cannot be fitted (one class in val, separated scores, no `happy` class).
/// `predictions.parquet` keeps the uncalibrated p(happy).
fn write_calibration(
    mdir: &Path,
    name: &str,
    class_names: &[String],
    probs: &[Vec<f64>],
    y: &[u8],
) -> Result<(), TrainCnnError> {
    use fer_core::calibration as cal;
    use fer_core::schema::calibration::{self as cf, Method, ModelCalibration, ScoreKind};
    let record = match class_names.iter().position(|c| c == "happy") {
        Some(h) => {
            let p: Vec<f64> = probs.iter().map(|r| r[h]).collect();
            let happy: Vec<bool> = y.iter().map(|&y| y as usize == h).collect();
            cal::cnn_record(name, &p, &happy)
        }
        None => ModelCalibration {
            model: name.to_string(),
            method: Method::Uncalibrated {
                reason: format!("the classes {class_names:?} have no `happy`"),
            },
            n: y.len() as u64,
            n_happy: 0,
            before: None,
            after: None,
        },
    };
    cf::write(
        &mdir.join(cf::FILE),
        &cal::file(ScoreKind::PHappy, vec![record]),
    )?;
    Ok(())
}
