//! Reading the upstream artifacts of one pipeline into one in-memory [`Study`].
//!
//! Every number the report shows comes from here: manifests, `metrics.json` files,
//! `predictions.parquet`, `epochs.parquet`, `trials.parquet`, `stats.json`, and file sizes on
//! disk. A stage that has not run is `None` (its section is marked "not run"); a file that is
//! there but unreadable is an error naming the file and the stage to run again.

use crate::ReportError;
use arrow::array::{
    Array, ArrayRef, Float64Array, RecordBatch, StringArray, UInt8Array, UInt32Array,
};
use fer_core::manifest::{MANIFEST_FILE, Manifest};
use fer_core::metrics::Metrics;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The upstream stages the report reads, with the `make` target that produces each.
pub const UPSTREAM: &[(&str, &str)] = &[
    ("ingest", "ingest"),
    ("stats", "stats"),
    ("preprocess", "preprocess"),
    ("augment", "augment"),
    ("train_svm", "train-svm"),
    ("train_cnn", "train-cnn"),
    ("tune", "tune"),
];

/// The `make` target of a stage (`train_svm` -> `train-svm`).
pub fn make_target(stage: &str) -> &str {
    UPSTREAM
        .iter()
        .find(|(s, _)| *s == stage)
        .map_or(stage, |(_, t)| t)
}

/// A model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Svm,
    Cnn,
}

/// One prediction on one image: `score` is higher for "happy" (the CNN's p(happy), the SVM's
/// decision value).
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
    pub svm_metrics: Option<Value>,
    pub tune: Option<Tune>,
    pub class_names: Vec<String>,
}

impl Study {
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
        target: Some(make_target(stage).to_string()),
    }
}

pub fn read_json(stage: &str, path: &Path) -> Result<Value, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|e| bad_in(stage, path, e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| bad_in(stage, path, format!("invalid JSON: {e}")))
}

fn metrics_of(stage: &str, path: &Path, v: &Value, split: &str) -> Result<Metrics, ReportError> {
    serde_json::from_value(v.clone())
        .map_err(|e| bad_in(stage, path, format!("`{split}` metrics: {e}")))
}

/// A Parquet file's batches, columns looked up by name with errors naming file and column.
struct Table {
    path: PathBuf,
    stage: String,
    batches: Vec<RecordBatch>,
}

impl Table {
    fn read(stage: &str, path: &Path) -> Result<Table, ReportError> {
        let (_, batches) = fer_core::parquet_io::read_batches(path)
            .map_err(|e| bad_in(stage, path, e.to_string()))?;
        Ok(Table {
            path: path.to_path_buf(),
            stage: stage.to_string(),
            batches,
        })
    }
    fn col(&self, name: &str) -> Result<Vec<ArrayRef>, ReportError> {
        self.batches
            .iter()
            .map(|b| {
                b.column_by_name(name)
                    .cloned()
                    .ok_or_else(|| bad_in(&self.stage, &self.path, format!("no column `{name}`")))
            })
            .collect()
    }
    fn typed<T: Array + Clone + 'static, V>(
        &self,
        name: &str,
        ty: &str,
        get: impl Fn(&T, usize) -> V,
    ) -> Result<Vec<V>, ReportError> {
        let mut out = Vec::new();
        for a in self.col(name)? {
            let t = a.as_any().downcast_ref::<T>().ok_or_else(|| {
                bad_in(
                    &self.stage,
                    &self.path,
                    format!("column `{name}` is not {ty}"),
                )
            })?;
            for i in 0..t.len() {
                out.push(get(t, i));
            }
        }
        Ok(out)
    }
    fn strings(&self, name: &str) -> Result<Vec<String>, ReportError> {
        self.typed::<StringArray, _>(name, "Utf8", |a, i| a.value(i).to_string())
    }
    fn opt_strings(&self, name: &str) -> Result<Vec<Option<String>>, ReportError> {
        self.typed::<StringArray, _>(name, "Utf8", |a, i| {
            (!a.is_null(i)).then(|| a.value(i).to_string())
        })
    }
    fn u8s(&self, name: &str) -> Result<Vec<u8>, ReportError> {
        self.typed::<UInt8Array, _>(name, "UInt8", |a, i| a.value(i))
    }
    fn u32s(&self, name: &str) -> Result<Vec<u32>, ReportError> {
        self.typed::<UInt32Array, _>(name, "UInt32", |a, i| a.value(i))
    }
    fn f64s(&self, name: &str) -> Result<Vec<f64>, ReportError> {
        self.typed::<Float64Array, _>(name, "Float64", |a, i| a.value(i))
    }
}

fn file_size(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

/// Predictions of a CNN folder, split into (val, test), each sorted by row.
fn cnn_predictions(stage: &str, path: &Path) -> Result<(Vec<Pred>, Vec<Pred>), ReportError> {
    let t = Table::read(stage, path)?;
    let (split, row, id, label, score, pred) = (
        t.strings("split")?,
        t.u32s("row")?,
        t.strings("id")?,
        t.u8s("label")?,
        t.f64s("p_happy")?,
        t.u8s("pred")?,
    );
    Ok(split_preds(split, row, id, label, score, pred, |_| true))
}

fn split_preds(
    split: Vec<String>,
    row: Vec<u32>,
    id: Vec<String>,
    label: Vec<u8>,
    score: Vec<f64>,
    pred: Vec<u8>,
    keep: impl Fn(usize) -> bool,
) -> (Vec<Pred>, Vec<Pred>) {
    let (mut val, mut test) = (Vec::new(), Vec::new());
    for i in 0..split.len() {
        if !keep(i) {
            continue;
        }
        let p = Pred {
            row: row[i],
            id: id[i].clone(),
            label: label[i],
            score: score[i],
            pred: pred[i],
        };
        match split[i].as_str() {
            "val" => val.push(p),
            "test" => test.push(p),
            _ => {}
        }
    }
    val.sort_by_key(|p| p.row);
    test.sort_by_key(|p| p.row);
    (val, test)
}

fn epochs(stage: &str, path: &Path) -> Result<Vec<Epoch>, ReportError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let t = Table::read(stage, path)?;
    let (e, tl, ta, vl, va) = (
        t.u32s("epoch")?,
        t.f64s("train_loss")?,
        t.f64s("train_acc")?,
        t.f64s("val_loss")?,
        t.f64s("val_acc")?,
    );
    Ok((0..e.len())
        .map(|i| Epoch {
            epoch: e[i],
            train_loss: tl[i],
            train_acc: ta[i],
            val_loss: vl[i],
            val_acc: va[i],
        })
        .collect())
}

/// What the study called an architecture.
pub fn role_of(arch: &str) -> String {
    role_words(arch).to_string()
}

/// A short tag for a CNN's display name.
fn role_tag(arch: &str) -> Option<&'static str> {
    match arch {
        "seed-base" => Some("the study's base CNN"),
        "seed-tuned" => Some("the study's tuned CNN"),
        "fer-small" => Some("ours"),
        _ => None,
    }
}

fn role_words(arch: &str) -> &str {
    match arch {
        "seed-base" => "the study's base CNN",
        "seed-tuned" => "the study's Keras-Tuner winner",
        "fer-small" => "our CNN",
        other => other,
    }
}

/// A CNN model folder (a `train_cnn/<model>/` or `tune/best/`).
fn cnn_model(stage: &str, key: String, dir: &Path, tuned: bool) -> Result<ModelRun, ReportError> {
    let mpath = dir.join("metrics.json");
    let m = read_json(stage, &mpath)?;
    let name = m["name"].as_str().unwrap_or("cnn").to_string();
    let arch = m["arch"].as_str().unwrap_or(&name).to_string();
    let model_json = dir.join("model.json");
    let mj = if model_json.exists() {
        Some(read_json(stage, &model_json)?)
    } else {
        None
    };
    let params = m["params"]
        .as_u64()
        .or_else(|| mj.as_ref().and_then(|j| j["params"].as_u64()));
    let (val_preds, test_preds) = cnn_predictions(stage, &dir.join("predictions.parquet"))?;
    let settings = mj
        .as_ref()
        .map(|j| j["settings"].clone())
        .unwrap_or(Value::Null);
    let mut config = Vec::new();
    if let Some(e) = m["epochs_run"].as_u64() {
        let best = m["best_epoch"]
            .as_u64()
            .map_or(String::new(), |b| format!(", best epoch {b}"));
        config.push(format!("{e} epochs{best}"));
    }
    if let Some(o) = settings["optimizer"].as_str() {
        config.push(o.to_string());
    }
    if let Some(lr) = settings["lr"].as_f64() {
        config.push(format!("lr {lr}"));
    }
    if settings["augment"].as_bool() == Some(true) {
        config.push("augmented".into());
    }
    if m["tta_flip"].as_bool() == Some(true) {
        config.push("flip TTA".into());
    }
    let (display, role) = if tuned {
        (
            format!("CNN tuned winner ({arch})"),
            "tune stage's best trial".to_string(),
        )
    } else {
        let tag = role_tag(&arch).map_or(String::new(), |t| format!(" ({t})"));
        (format!("CNN {name}{tag}"), role_of(&arch))
    };
    Ok(ModelRun {
        key,
        display,
        role,
        family: Family::Cnn,
        dir: dir.to_path_buf(),
        svm_name: None,
        feature: None,
        config: config.join(", "),
        val: metrics_of(stage, &mpath, &m["metrics"]["val"], "val")?,
        test: metrics_of(stage, &mpath, &m["metrics"]["test"], "test")?,
        params,
        size_bytes: file_size(&dir.join("model.safetensors")),
        train_seconds: m["train_seconds"].as_f64(),
        inference_images_per_second: m["inference_images_per_second"].as_f64(),
        score_name: "p_happy",
        default_threshold: 0.5,
        val_preds,
        test_preds,
        epochs: epochs(stage, &dir.join("epochs.parquet"))?,
        best_epoch: m["best_epoch"].as_u64(),
        final_train_acc: m["final_train_acc"].as_f64(),
    })
}

/// Tensor name -> element count and byte length, from a safetensors header (no data read).
pub fn safetensors_tensors(path: &Path) -> Option<BTreeMap<String, (u64, u64)>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).ok()?;
    let n = u64::from_le_bytes(len);
    if n > 100_000_000 {
        return None;
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).ok()?;
    let v: Value = serde_json::from_slice(&header).ok()?;
    let mut out = BTreeMap::new();
    for (k, t) in v.as_object()? {
        if k == "__metadata__" {
            continue;
        }
        let elems: u64 = t["shape"]
            .as_array()?
            .iter()
            .filter_map(Value::as_u64)
            .product();
        let offs = t["data_offsets"].as_array()?;
        let bytes = offs.get(1)?.as_u64()? - offs.first()?.as_u64()?;
        out.insert(k.clone(), (elems, bytes));
    }
    Some(out)
}

fn feature_words(f: &str) -> &str {
    match f {
        "raw" => "raw pixels",
        "hog" => "HOG features",
        other => other,
    }
}

fn kernel_words(k: &str) -> String {
    match k {
        "rbf" => "RBF kernel".into(),
        "linear" => "linear".into(),
        "rff" => "RBF via random Fourier features".into(),
        other => other.to_string(),
    }
}

fn svm_models(stage: &str, dir: &Path) -> Result<(Vec<ModelRun>, Value), ReportError> {
    let mpath = dir.join("metrics.json");
    let m = read_json(stage, &mpath)?;
    let t = Table::read(stage, &dir.join("predictions.parquet"))?;
    let (names, split, row, id, label, score, pred) = (
        t.strings("model")?,
        t.strings("split")?,
        t.u32s("row")?,
        t.strings("id")?,
        t.u8s("label")?,
        t.f64s("decision")?,
        t.u8s("pred")?,
    );
    let tensors = safetensors_tensors(&dir.join("model.safetensors")).unwrap_or_default();
    let mut out = Vec::new();
    for mm in m["models"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let name = mm["name"].as_str().unwrap_or("svm").to_string();
        let feature = mm["feature"].as_str().unwrap_or("").to_string();
        let kernel = mm["kernel"].as_str().unwrap_or("").to_string();
        let keep: Vec<bool> = names.iter().map(|n| *n == name).collect();
        let (val_preds, test_preds) = split_preds(
            split.clone(),
            row.clone(),
            id.clone(),
            label.clone(),
            score.clone(),
            pred.clone(),
            |i| keep[i],
        );
        // Numbers stored for this model: its own tensors and its feature pipeline's.
        let mine = |(elems, bytes): (u64, u64), k: &String| {
            if k.starts_with(&format!("{name}.")) || k.starts_with(&format!("{feature}.")) {
                (elems, bytes)
            } else {
                (0, 0)
            }
        };
        let (params, bytes) = tensors
            .iter()
            .map(|(k, v)| mine(*v, k))
            .fold((0u64, 0u64), |a, b| (a.0 + b.0, a.1 + b.1));
        let mut config = vec![format!("C = {}", mm["c"])];
        if let Some(g) = mm["gamma_spec"].as_str() {
            config.push(format!("gamma = {g}"));
        }
        if let Some(sv) = mm["n_support"].as_u64() {
            config.push(format!("{sv} support vectors"));
        }
        let train_seconds = match (
            mm["grid_seconds"].as_f64(),
            mm["feature_fit_seconds"].as_f64(),
        ) {
            (Some(g), Some(f)) => Some(g + f),
            (g, _) => g.or(mm["train_seconds"].as_f64()),
        };
        out.push(ModelRun {
            key: format!("svm:{name}"),
            display: format!(
                "SVM, {}, {}",
                feature_words(&feature),
                kernel_words(&kernel)
            ),
            role: "the study's proposed SVM, never reported".into(),
            family: Family::Svm,
            dir: dir.to_path_buf(),
            svm_name: Some(name.clone()),
            feature: Some(feature.clone()),
            config: config.join(", "),
            val: metrics_of(stage, &mpath, &mm["val"], "val")?,
            test: metrics_of(stage, &mpath, &mm["test"], "test")?,
            params: (!tensors.is_empty()).then_some(params),
            size_bytes: (!tensors.is_empty()).then_some(bytes),
            train_seconds,
            inference_images_per_second: mm["inference_images_per_second"].as_f64(),
            score_name: "svm_decision",
            default_threshold: 0.0,
            val_preds,
            test_preds,
            epochs: Vec::new(),
            best_epoch: None,
            final_train_acc: None,
        });
    }
    Ok((out, m))
}

fn tune(stage: &str, dir: &Path) -> Result<Tune, ReportError> {
    let summary_path = dir.join("summary.json");
    let summary = if summary_path.exists() {
        read_json(stage, &summary_path)?
    } else {
        Value::Null
    };
    let tp = dir.join("trials.parquet");
    let mut trials = Vec::new();
    if tp.exists() {
        let t = Table::read(stage, &tp)?;
        let (trial, strategy, status, params, epochs_run, val_acc, val_loss, seconds, error) = (
            t.u32s("trial")?,
            t.strings("strategy")?,
            t.strings("status")?,
            t.strings("params")?,
            t.u32s("epochs_run")?,
            t.f64s("val_acc")?,
            t.f64s("val_loss")?,
            t.f64s("seconds")?,
            t.opt_strings("error")?,
        );
        for i in 0..trial.len() {
            trials.push(Trial {
                trial: trial[i],
                strategy: strategy[i].clone(),
                status: status[i].clone(),
                params: params[i].clone(),
                epochs_run: epochs_run[i],
                val_acc: val_acc[i],
                val_loss: val_loss[i],
                seconds: seconds[i],
                error: error[i].clone(),
            });
        }
    }
    Ok(Tune { summary, trials })
}

/// Read the manifests of every upstream stage under `root` (`artifacts/<pipeline>`).
pub fn stages(root: &Path) -> Result<Vec<Stage>, ReportError> {
    UPSTREAM
        .iter()
        .map(|(name, _)| {
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
    let class_names = models
        .first()
        .map(|m| m.test.classes.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_else(|| vec!["happy".into(), "not_happy".into()]);
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
    })
}
