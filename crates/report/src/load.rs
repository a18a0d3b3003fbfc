//! Reading the upstream artifacts of one pipeline into one in-memory [`Study`].
//!
//! Every number the report shows comes from here: manifests, `metrics.json` files,
//! `predictions.parquet`, `epochs.parquet`, `trials.parquet`, `stats.json`, the scene
//! benchmark's `scenes/scene_bench.json` when it was run, and file sizes on disk. A stage that has not run is `None` (its section is marked "not run"); a file that is
//! there but unreadable is an error naming the file and the stage to run again.
//!
//! This file holds the in-memory types, the shared helpers and [`load()`] itself; the Parquet
//! reader, the CNN and SVM model folders and the tune stage's outputs are read in `load/`.

mod cnn;
mod seven;
mod svm;
mod table;
mod tune;

use crate::ReportError;
use cnn::cnn_model;
use fer_core::classes::HAPPY_LABEL;
use fer_core::manifest::{MANIFEST_FILE, Manifest};
use fer_core::{Classes, Split};
use fer_eval::metrics::Metrics;
use fer_schema::metrics::SvmMetrics;
use fer_schema::scenes::{SCENES_FILE, SceneBench};
use serde_json::Value;
use seven::seven;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use svm::svm_models;
use tune::tune;

pub use cnn::role_of;
pub use seven::happy_vs_rest;
pub use svm::safetensors_tensors;

/// The upstream stages the report reads: those the stage graph declares (crates/graph); the make
/// target of each is core's [`make_target`] (`train_svm` -> `train-svm`).
pub fn upstream() -> &'static [&'static str] {
    fer_core::graph::upstream(crate::STAGE)
}

pub use fer_core::stage::make_target;

/// A model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Svm,
    Cnn,
}

/// One prediction on one image: `score` is higher for "happy" (the CNN's p(happy), the SVM's
/// decision value). After [`load()`], `label` and `pred` are always binary, 0 = happy and 1 =
/// not happy: a seven-class model's are its happy-vs-rest reading ([`happy_vs_rest`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Pred {
    pub row: u32,
    pub id: String,
    pub label: u8,
    pub score: f64,
    pub pred: u8,
}

/// One row of `epochs.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct Epoch {
    pub epoch: u32,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_loss: f64,
    pub val_acc: f64,
}

/// One trained model, SVM or CNN, as its artifacts describe it.
#[derive(Debug, Clone)]
pub struct ModelRun {
    /// Stable key: `svm:hog/rbf`, `cnn:fer-small`, `tune:best`.
    pub key: String,
    /// What a reader sees: `SVM, HOG features, RBF kernel`.
    pub display: String,
    /// The study's name for it, or "ours".
    pub role: String,
    pub family: Family,
    /// The artifact folder, relative to the working directory (the repo root under `make`).
    pub dir: PathBuf,
    /// For an SVM: its name inside `train_svm/model.safetensors`.
    pub svm_name: Option<String>,
    /// For an SVM: the features it reads (`raw`, `hog`).
    pub feature: Option<String>,
    /// Chosen hyperparameters in words.
    pub config: String,
    pub val: Metrics,
    pub test: Metrics,
    /// Test against FER2013's and FERPlus's labels (`None`: no FERPlus votes in the data).
    pub test_by_truth: Option<fer_eval::metrics::ByTruth>,
    /// Learned numbers: CNN weights, or SVM numbers stored (support vectors, weights, feature
    /// pipeline).
    pub params: Option<u64>,
    /// Bytes on disk of the model's weights.
    pub size_bytes: Option<u64>,
    pub train_seconds: Option<f64>,
    pub inference_images_per_second: Option<f64>,
    /// The name of the score (`p_happy`, `svm_decision`) and its default threshold.
    pub score_name: &'static str,
    pub default_threshold: f64,
    pub val_preds: Vec<Pred>,
    pub test_preds: Vec<Pred>,
    pub epochs: Vec<Epoch>,
    pub best_epoch: Option<u64>,
    pub final_train_acc: Option<f64>,
    /// A seven-class model: its own figures and answers over the seven emotions. `val`,
    /// `test`, `val_preds` and `test_preds` above are then its happy-vs-rest reading (see
    /// [`happy_vs_rest`]). `None` for a binary model.
    pub seven: Option<SevenRun>,
}

/// One answer of a seven-class model on one image (emotion codes).
#[derive(Debug, Clone, PartialEq)]
pub struct Pred7 {
    pub id: String,
    pub label: u8,
    pub pred: u8,
}

/// A seven-class model as its artifacts give it, before the happy-vs-rest reading.
#[derive(Debug, Clone)]
pub struct SevenRun {
    /// `metrics.json`'s seven-class figures.
    pub val: Metrics,
    pub test: Metrics,
    pub val_preds: Vec<Pred7>,
    pub test_preds: Vec<Pred7>,
}

/// A seven-class pipeline (`[ingest] label_mode = "emotion7"`): the classes and where the
/// test images come from.
#[derive(Debug, Clone)]
pub struct Seven {
    /// The class names in label order (`fer_core::LabelMode::Emotion7.class_names()`, or the
    /// models' own).
    pub classes: Vec<String>,
    /// The label of `happy` among `classes`, found by name.
    pub happy: usize,
    /// FER2013's `Usage` of each test image by id (ingest's `images.parquet`); `None` when
    /// ingest has not run.
    pub usage: Option<BTreeMap<String, String>>,
}

/// One tuning trial (`tune/trials.parquet`).
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    pub trial: u32,
    pub strategy: String,
    pub status: String,
    pub params: String,
    pub epochs_run: u32,
    pub val_acc: f64,
    pub val_loss: f64,
    pub seconds: f64,
    pub error: Option<String>,
}

/// The tune stage's outputs.
#[derive(Debug, Clone)]
pub struct Tune {
    pub summary: Value,
    pub trials: Vec<Trial>,
}

/// An upstream stage: where it lives and its manifest, if it ran.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: &'static str,
    pub dir: PathBuf,
    pub manifest: Option<Manifest>,
}

/// Everything the report shows, read from `artifacts/<pipeline>/`.
#[derive(Debug, Clone)]
pub struct Study {
    pub pipeline: String,
    pub root: PathBuf,
    pub stages: Vec<Stage>,
    /// `stats/stats.json`.
    pub stats: Option<Value>,
    /// `augment/chain.json`.
    pub chain: Option<Value>,
    /// `preprocess/transform.json`.
    pub transform: Option<Value>,
    pub models: Vec<ModelRun>,
    /// `train_svm/metrics.json` (majority baseline, best model).
    pub svm_metrics: Option<SvmMetrics>,
    pub tune: Option<Tune>,
    /// The classes of the models' `val`/`test` figures: `happy`, `not_happy` (in a
    /// seven-class pipeline, the happy-vs-rest reading).
    pub class_names: Vec<String>,
    /// `Some` in a seven-class pipeline.
    pub seven: Option<Seven>,
    /// `scenes/scene_bench.json` (`make scenes`), when it was run.
    pub scenes: Option<SceneBench>,
}

impl Study {
    /// Test accuracy of always answering the larger class (train_svm's `metrics.json`), when
    /// train_svm ran and the figure is a number.
    /// In a seven-class pipeline, the happy-vs-rest figure from the test labels: the share of
    /// the larger of happy and the rest.
    pub fn majority_baseline_test(&self) -> Option<f64> {
        if self.seven.is_some() {
            let preds = &self
                .models
                .iter()
                .find(|m| !m.test_preds.is_empty())?
                .test_preds;
            let happy = preds.iter().filter(|p| p.label == HAPPY_LABEL).count();
            let n = preds.len();
            return Some(happy.max(n - happy) as f64 / n as f64);
        }
        self.svm_metrics
            .as_ref()
            .map(|m| m.majority_baseline.test)
            .filter(|b| !b.is_nan())
    }

    pub fn stage(&self, name: &str) -> Option<&Manifest> {
        self.stages
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.manifest.as_ref())
    }
    pub fn stage_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
    pub fn model(&self, key: &str) -> Option<&ModelRun> {
        self.models.iter().find(|m| m.key == key)
    }
}

fn bad(path: &Path, message: impl Into<String>) -> ReportError {
    ReportError::Artifact {
        path: path.to_path_buf(),
        message: message.into(),
        target: None,
    }
}

/// An error about a file of `stage`, naming the `make` target that rewrites it.
fn bad_in(stage: &str, path: &Path, message: impl Into<String>) -> ReportError {
    ReportError::Artifact {
        path: path.to_path_buf(),
        message: message.into(),
        target: Some(make_target(stage)),
    }
}

pub fn read_json(stage: &str, path: &Path) -> Result<Value, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|e| bad_in(stage, path, e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| bad_in(stage, path, format!("invalid JSON: {e}")))
}

/// A core error about an artifact, as the report's error naming the file and its make target.
fn artifact_error(stage: &str, path: &Path, e: &fer_core::Error) -> ReportError {
    let mut m = fer_core::cli::error_chain(e);
    if let Some(rest) = m.strip_prefix(&format!("{}: ", path.display())) {
        m = rest.to_string();
    }
    bad_in(stage, path, m)
}

/// A JSON artifact read into its schema type (`fer_schema`); any error names the file
/// and the make target that writes it.
fn read_typed<T: serde::de::DeserializeOwned>(stage: &str, path: &Path) -> Result<T, ReportError> {
    fer_schema::read_json(path).map_err(|e| artifact_error(stage, path, &e))
}

fn file_size(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

/// Predictions as (split, prediction), in file order, into (val, test), each sorted by row
/// (stably); train rows are ignored.
fn split_preds(rows: impl IntoIterator<Item = (Split, Pred)>) -> (Vec<Pred>, Vec<Pred>) {
    let (mut val, mut test) = (Vec::new(), Vec::new());
    for (split, p) in rows {
        match split {
            Split::Val => val.push(p),
            Split::Test => test.push(p),
            Split::Train => {}
        }
    }
    val.sort_by_key(|p| p.row);
    test.sort_by_key(|p| p.row);
    (val, test)
}

/// Read the manifests of every upstream stage under `root` (`artifacts/<pipeline>`).
pub fn stages(root: &Path) -> Result<Vec<Stage>, ReportError> {
    upstream()
        .iter()
        .map(|name| {
            let dir = root.join(name);
            let mp = dir.join(MANIFEST_FILE);
            let manifest = if mp.exists() {
                Some(Manifest::read(&mp).map_err(|e| bad_in(name, &mp, e.to_string()))?)
            } else {
                None
            };
            Ok(Stage {
                name,
                dir,
                manifest,
            })
        })
        .collect()
}

/// Load everything under `root` = `artifacts/<pipeline>`.
pub fn load(root: &Path, pipeline: &str) -> Result<Study, ReportError> {
    let stages = stages(root)?;
    let ran = |s: &str| stages.iter().any(|x| x.name == s && x.manifest.is_some());
    let opt_json = |stage: &str, rel: &str| -> Result<Option<Value>, ReportError> {
        let p = root.join(stage).join(rel);
        if ran(stage) && p.exists() {
            Ok(Some(read_json(stage, &p)?))
        } else {
            Ok(None)
        }
    };
    let stats = opt_json("stats", "stats.json")?;
    let chain = opt_json("augment", "chain.json")?;
    let transform = opt_json("preprocess", "transform.json")?;
    let mut models = Vec::new();
    let mut svm_metrics = None;
    if ran("train_svm") {
        let (ms, m) = svm_models("train_svm", &root.join("train_svm"))?;
        models.extend(ms);
        svm_metrics = Some(m);
    }
    if ran("train_cnn") {
        let dir = root.join("train_cnn");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| bad(&dir, e.to_string()))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("metrics.json").exists())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        // The manifest lists the models in training order; fall back to names.
        if let Some(m) = stages[5].manifest.as_ref() {
            let order: Vec<String> = m.params["models"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x["name"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            names.sort_by_key(|n| order.iter().position(|o| o == n).unwrap_or(usize::MAX));
        }
        for n in names {
            models.push(cnn_model(
                "train_cnn",
                format!("cnn:{n}"),
                &dir.join(&n),
                false,
            )?);
        }
    }
    let mut tune_out = None;
    if ran("tune") {
        let dir = root.join("tune");
        let t = tune("tune", &dir)?;
        if dir.join("best").join("metrics.json").exists() {
            let mut m = cnn_model("tune", "tune:best".into(), &dir.join("best"), true)?;
            if let Some(b) = t.summary["best_trial"].as_u64() {
                m.role = format!("the tune stage's best trial (#{b})");
            }
            models.push(m);
        }
        tune_out = Some(t);
    }
    let seven = seven(root, &stages, &mut models)?;
    let class_names = models
        .first()
        .map(|m| m.test.classes.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_else(|| Classes::binary().to_vec());
    Ok(Study {
        pipeline: pipeline.to_string(),
        root: root.to_path_buf(),
        stages,
        stats,
        chain,
        transform,
        models,
        svm_metrics,
        tune: tune_out,
        class_names,
        seven,
        scenes: scenes(root)?,
    })
}

/// `scenes/scene_bench.json`, when `make scenes` wrote it (an unreadable one is an error naming
/// it).
fn scenes(root: &Path) -> Result<Option<SceneBench>, ReportError> {
    let p = root.join(SCENES_FILE);
    if !p.exists() {
        return Ok(None);
    }
    Ok(Some(fer_schema::read_json(&p)?))
}
