//! Stage `train_svm`: the study's proposed SVM, trained and measured.
//!
//! Reads `artifacts/<pipeline>/preprocess/`: `{train,val,test}.safetensors` (normalized images
//! and labels), `transform.json` (its value range maps images back to 8 bits for HOG) and
//! `index.parquet` (the ids).
//!
//! For each feature (`raw` pixels, `hog` descriptors) it fits a standardization (and optional
//! PCA) on **train**, then for each kernel a grid over `c` (and `gamma`) is trained on train
//! and scored on **val**; the best point by val accuracy (ties: the first in grid order) is the
//! model of that (feature, kernel). Test is only predicted, never used to choose.
//!
//! Kernels, and how each scales (linfa-svm's SMO keeps the full n x n kernel matrix and
//! computes it in one thread, n^2 d work per fit, so it stalls past about 10k rows):
//! - `rbf`: linfa-svm's C-SVC with the Gaussian kernel (`gaussian_kernel(eps)`, eps = 1 /
//!   gamma) on a stratified, seeded subsample of at most `max_train` train rows (every row when
//!   train is smaller; `0` = no limit);
//! - `linear`: by default (`linear_solver = "dcd"`) a linear C-SVC trained by dual coordinate
//!   descent (liblinear's hinge-loss solver, Hsieh et al. 2008; the bias is a constant
//!   feature) on **every** train row; `linear_solver = "smo"` uses linfa-svm's linear kernel on
//!   the `max_train` subsample instead (one fit on 3,620 x 2,304 pixels did not finish in 7
//!   minutes: SMO converges slowly on nearly separable data);
//! - `rff`: random Fourier features (`rff_dim` of them) approximating the RBF kernel of the
//!   same gamma, then the dual coordinate descent linear SVM on **every** train row.
//!
//! `pca = k` projects every feature on its first k principal axes (fitted on train) before
//! the SVM: the RBF fits cost n^2 k instead of n^2 d (about 15 s instead of 80-180 s on
//! 3,620 rows).
//!
//! Writes `artifacts/<pipeline>/train_svm/`:
//! - `model.safetensors`: the chosen model of every (feature, kernel) and the feature
//!   pipelines (f64 tensors, exact; the rest as JSON in the header's `fer` key); reload with
//!   [`SavedSvms::load`] and [`SavedSvms::decisions`] for bit-identical decision values;
//! - `predictions.parquet`: model, feature, kernel, split (val, test), row, id, label,
//!   decision (> 0 = happy), pred (0 = happy, 1 = not happy);
//! - `grid.parquet`: every grid point (feature, kernel, c, gamma, gamma_spec, n_train,
//!   fit_seconds, val_accuracy, val_balanced_accuracy, n_support, solver, chosen);
//! - `metrics.json`: per model the chosen c/gamma, train and grid time, inference images per
//!   second (features + decision on test), val and test metrics from `fer_core::metrics` (ROC
//!   AUC scores class 0 = happy by the decision value), and the best model by val accuracy;
//! - `report.txt`: scikit-learn style classification reports on test.
//!
//! Params (`[train_svm]`, defaults in brackets: the `seed` pipeline's measured setup):
//! `seed` (42), `features` (["raw", "hog"]), `kernels` (["rbf", "linear", "rff"]), `c` ([1,
//! 3, 10]: the grid of rbf and rff), `c_linear` ([0.001, 0.01, 0.1]: the grid of `linear`),
//! `linear_solver` ("dcd"; or "smo"), `gamma` (["0.5*scale", "scale", "2*scale"]; each entry
//! "scale" = scikit-learn's 1 / (d var(X)) on the train features, "<k>*scale", or a number >
//! 0), `pca` (150; 0 = off), `max_train` (4000), `rff_dim` (2000), `tol` (1e-3, the SMO
//! stopping tolerance, as scikit-learn; linfa's own default is 1e-7), `class_weight`
//! ("none", or "balanced": C times n / (2 n_class) per class, as scikit-learn), `hog = {
//! orientations = 9, signed = false, cell = 8, block = 2, stride = 1 }` (imageproc's HOG on
//! the image mapped back to 8 bits through the transform's value range).

pub mod features;
pub mod model;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, StringArray, UInt8Array, UInt32Array};
pub use features::{FeatureKind, FeaturePipeline, HogParams, Rff};
use fer_core::cli::StageArgs;
use fer_core::manifest::Manifest;
use fer_core::metrics::{Metrics, classification_metrics};
use fer_core::pipeline::PipelineFile;
use fer_core::stage::{Input, Outputs};
use fer_core::tensors::TensorSet;
use fer_core::transform::Transform;
pub use model::{Decision, KernelKind, SavedModel, SavedSvms};
/// The ndarray version the models use (linfa 0.8 needs 0.16), for callers such as the bench.
pub use ndarray;
use ndarray::{Array1, Array2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

pub const STAGE: &str = "train_svm";
pub const CODE_VERSION: &str = env!("FER_CODE_VERSION");
/// Class names of the binary labels (0 = happy).
pub const CLASSES: [&str; 2] = ["happy", "not_happy"];

#[derive(Debug, thiserror::Error)]
pub enum SvmError {
    #[error(transparent)]
    Core(#[from] fer_core::Error),
    #[error("{0}")]
    Data(String),
}

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "fer-train-svm",
    version,
    about = "Stage train_svm: SVMs on raw pixels and HOG, grid chosen on val"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: StageArgs,
}

/// One entry of `gamma` as written: a number or a string (`"scale"`, `"<k>*scale"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GammaEntry {
    Value(f64),
    Name(String),
}

/// A validated gamma: absolute, or a multiple of sklearn's `scale`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Gamma {
    Value(f64),
    Scale(f64),
}

impl Gamma {
    /// The value for features whose `scale` gamma is `scale`.
    pub fn resolve(self, scale: f64) -> f64 {
        match self {
            Gamma::Value(v) => v,
            Gamma::Scale(k) => k * scale,
        }
    }
    /// As written in reports: `scale`, `3*scale`, `0.001`.
    pub fn spec(self) -> String {
        match self {
            Gamma::Value(v) => format!("{v}"),
            Gamma::Scale(1.0) => "scale".into(),
            Gamma::Scale(k) => format!("{k}*scale"),
        }
    }
}

/// `[train_svm]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SvmSection {
    pub seed: u64,
    pub features: Vec<String>,
    pub kernels: Vec<String>,
    pub c: Vec<f64>,
    pub c_linear: Option<Vec<f64>>,
    pub linear_solver: String,
    pub gamma: Vec<GammaEntry>,
    pub pca: usize,
    pub max_train: usize,
    pub rff_dim: usize,
    pub tol: f64,
    pub class_weight: String,
    pub hog: HogParams,
}

impl Default for SvmSection {
    fn default() -> Self {
        SvmSection {
            seed: 42,
            features: vec!["raw".into(), "hog".into()],
            kernels: vec!["rbf".into(), "linear".into(), "rff".into()],
            c: vec![1.0, 3.0, 10.0],
            c_linear: Some(vec![0.001, 0.01, 0.1]),
            linear_solver: "dcd".into(),
            gamma: ["0.5*scale", "scale", "2*scale"]
                .map(|g| GammaEntry::Name(g.into()))
                .to_vec(),
            pca: 150,
            max_train: 4000,
            rff_dim: 2000,
            tol: 1e-3,
            class_weight: "none".into(),
            hog: HogParams::default(),
        }
    }
}

/// Validated `[train_svm]` params.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SvmParams {
    pub seed: u64,
    pub features: Vec<FeatureKind>,
    pub kernels: Vec<KernelKind>,
    pub c: Vec<f64>,
    pub c_linear: Vec<f64>,
    pub linear_solver: LinearSolver,
    pub gamma: Vec<Gamma>,
    pub pca: usize,
    pub max_train: usize,
    pub rff_dim: usize,
    pub tol: f64,
    pub class_weight: ClassWeight,
    pub hog: HogParams,
}

/// Per-class C.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassWeight {
    /// The same C for both classes.
    None,
    /// scikit-learn's `class_weight="balanced"`: C times n / (2 n_class), per training set.
    Balanced,
}

impl ClassWeight {
    /// (C of happy rows, C of not-happy rows) for these training rows.
    pub fn c(self, c: f64, happy: &[bool]) -> (f64, f64) {
        match self {
            ClassWeight::None => (c, c),
            ClassWeight::Balanced => {
                let n = happy.len() as f64;
                let h = happy.iter().filter(|&&v| v).count() as f64;
                (c * n / (2.0 * h.max(1.0)), c * n / (2.0 * (n - h).max(1.0)))
            }
        }
    }
}

/// How the `linear` kernel is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinearSolver {
    /// Dual coordinate descent (liblinear's hinge-loss solver) on every train row.
    Dcd,
    /// linfa-svm's SMO with a linear kernel on the `max_train` subsample (slow: it keeps the
    /// full kernel matrix and converges slowly on nearly separable pixels).
    Smo,
}

fn parse_gamma(e: &GammaEntry) -> Result<Gamma, String> {
    let positive = |v: f64, what: &str| {
        if v > 0.0 && v.is_finite() {
            Ok(v)
        } else {
            Err(format!("{what} must be a number > 0"))
        }
    };
    match e {
        GammaEntry::Value(v) => positive(*v, &format!("{v}")).map(Gamma::Value),
        GammaEntry::Name(s) if s == "scale" => Ok(Gamma::Scale(1.0)),
        GammaEntry::Name(s) => {
            let k = s
                .strip_suffix("*scale")
                .and_then(|k| k.trim().parse::<f64>().ok())
                .ok_or_else(|| format!("`{s}` is not \"scale\", \"<k>*scale\" or a number > 0"))?;
            positive(k, &format!("the factor of `{s}`")).map(Gamma::Scale)
        }
    }
}

impl SvmSection {
    /// `side`: the image side the preprocess stage makes (for the HOG layout check).
    pub fn validate(&self, pf: &PipelineFile, side: usize) -> fer_core::Result<SvmParams> {
        let err = |k: &str, m: String| pf.param_error(STAGE, k, m);
        let mut features = Vec::new();
        if self.features.is_empty() {
            return Err(err(
                "features",
                "is empty (give \"raw\" and/or \"hog\")".into(),
            ));
        }
        for f in &self.features {
            let k = FeatureKind::parse(f).ok_or_else(|| {
                err(
                    "features",
                    format!("unknown feature `{f}` (expected raw or hog)"),
                )
            })?;
            if features.contains(&k) {
                return Err(err("features", format!("`{f}` is listed twice")));
            }
            features.push(k);
        }
        let mut kernels = Vec::new();
        if self.kernels.is_empty() {
            return Err(err(
                "kernels",
                "is empty (give rbf, linear and/or rff)".into(),
            ));
        }
        for k in &self.kernels {
            let kk = KernelKind::parse(k).ok_or_else(|| {
                err(
                    "kernels",
                    format!("unknown kernel `{k}` (expected rbf, linear or rff)"),
                )
            })?;
            if kernels.contains(&kk) {
                return Err(err("kernels", format!("`{k}` is listed twice")));
            }
            kernels.push(kk);
        }
        if self.c.is_empty() {
            return Err(err("c", "is empty (give at least one C > 0)".into()));
        }
        for &c in &self.c {
            if !(c > 0.0 && c.is_finite()) {
                return Err(err("c", format!("{c} is not > 0")));
            }
        }
        let c_linear = self.c_linear.clone().unwrap_or_else(|| self.c.clone());
        if c_linear.is_empty() {
            return Err(err("c_linear", "is empty (leave it out to use `c`)".into()));
        }
        for &c in &c_linear {
            if !(c > 0.0 && c.is_finite()) {
                return Err(err("c_linear", format!("{c} is not > 0")));
            }
        }
        let linear_solver = match self.linear_solver.as_str() {
            "dcd" => LinearSolver::Dcd,
            "smo" => LinearSolver::Smo,
            s => {
                return Err(err(
                    "linear_solver",
                    format!("unknown solver `{s}` (expected dcd or smo)"),
                ));
            }
        };
        if self.gamma.is_empty() {
            return Err(err(
                "gamma",
                "is empty (give \"scale\" or numbers > 0)".into(),
            ));
        }
        let gamma = self
            .gamma
            .iter()
            .map(parse_gamma)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| err("gamma", m))?;
        if self.max_train != 0 && self.max_train < 10 {
            return Err(err(
                "max_train",
                format!("{} is below 10 (0 = no limit)", self.max_train),
            ));
        }
        if !(1..=100_000).contains(&self.rff_dim) {
            return Err(err(
                "rff_dim",
                format!("{} is not in 1..=100000", self.rff_dim),
            ));
        }
        if !(self.tol > 0.0 && self.tol < 1.0) {
            return Err(err("tol", format!("{} is not in (0, 1)", self.tol)));
        }
        let class_weight = match self.class_weight.as_str() {
            "none" => ClassWeight::None,
            "balanced" => ClassWeight::Balanced,
            s => {
                return Err(err(
                    "class_weight",
                    format!("unknown class weight `{s}` (expected none or balanced)"),
                ));
            }
        };
        let h = &self.hog;
        if !(1..=64).contains(&h.orientations) {
            return Err(err(
                "hog.orientations",
                format!("{} is not in 1..=64", h.orientations),
            ));
        }
        for (k, v) in [
            ("hog.cell", h.cell),
            ("hog.block", h.block),
            ("hog.stride", h.stride),
        ] {
            if v == 0 {
                return Err(err(k, "must be >= 1".into()));
            }
        }
        if features.contains(&FeatureKind::Hog) {
            h.length(side)
                .map_err(|m| err("hog", format!("does not fit a {side}x{side} image: {m}")))?;
        }
        Ok(SvmParams {
            seed: self.seed,
            features,
            kernels,
            c: self.c.clone(),
            c_linear,
            linear_solver,
            gamma,
            pca: self.pca,
            max_train: self.max_train,
            rff_dim: self.rff_dim,
            tol: self.tol,
            class_weight,
            hog: self.hog,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Params {
    pub pipeline: PipelineFile,
    pub svm: SvmParams,
    pub common: StageArgs,
}

/// The image side `[preprocess] size` gives (48 when absent).
fn preprocess_side(pf: &PipelineFile) -> usize {
    pf.section::<serde_json::Value>("preprocess")
        .ok()
        .and_then(|v| v.get("size").and_then(|s| s.as_u64()))
        .unwrap_or(48) as usize
}

impl Params {
    pub fn from_pipeline(pipeline: &PipelineFile, cli: &Cli) -> Result<Params, SvmError> {
        let s: SvmSection = pipeline.section(STAGE)?;
        Ok(Params {
            pipeline: pipeline.clone(),
            svm: s.validate(pipeline, preprocess_side(pipeline))?,
            common: cli.common.clone(),
        })
    }
}

/// The params the stage's signature hashes (printed by `--print-params`).
pub fn signature_params(p: &Params) -> Result<serde_json::Value, SvmError> {
    Ok(serde_json::to_value(&p.svm).expect("params serialize"))
}

pub fn run(p: &Params) -> Result<Manifest, SvmError> {
    let (input, _) = Input::stage(&p.common.artifacts, &p.pipeline.name, "preprocess")?;
    let dir_in = input.path.clone();
    let params = signature_params(p)?;
    let run = p
        .common
        .stage_run(&p.pipeline, STAGE, CODE_VERSION, params, vec![input]);
    run.execute(|dir| {
        let data = Data::read(&dir_in)?;
        compute(&data, &p.svm, dir, p.common.quiet, &p.pipeline)
    })
}

/// The preprocess outputs the stage reads.
#[derive(Debug, Clone)]
pub struct Data {
    pub transform: Transform,
    pub train: TensorSet,
    pub val: TensorSet,
    pub test: TensorSet,
    pub val_ids: Vec<String>,
    pub test_ids: Vec<String>,
}

impl Data {
    pub fn read(dir: &Path) -> Result<Data, SvmError> {
        let transform = Transform::load(&dir.join("transform.json"))?;
        let read = |s: &str| TensorSet::read(&dir.join(format!("{s}.safetensors"))).map(|t| t.0);
        let (train, val, test) = (read("train")?, read("val")?, read("test")?);
        let ids = fer_core::tensors::read_ids(&dir.join("index.parquet"))?;
        let take = |s: &str, n: usize| -> Result<Vec<String>, SvmError> {
            let v = fer_core::Split::parse(s)
                .map(|sp| ids[sp as usize].clone())
                .unwrap_or_default();
            if v.len() != n {
                return Err(SvmError::Data(format!(
                    "{}: {} {s} ids for {n} {s} images",
                    dir.join("index.parquet").display(),
                    v.len()
                )));
            }
            Ok(v)
        };
        let (val_ids, test_ids) = (take("val", val.n)?, take("test", test.n)?);
        Ok(Data {
            transform,
            train,
            val,
            test,
            val_ids,
            test_ids,
        })
    }
}

/// A seeded, stratified subsample of at most `max` row indices (ascending); every row when
/// `max` is 0 or not below the row count. Each class keeps its share, rounded.
pub fn stratified_subsample(y: &[u8], max: usize, seed: u64) -> Vec<usize> {
    if max == 0 || y.len() <= max {
        return (0..y.len()).collect();
    }
    let mut classes: Vec<u8> = y.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(max);
    let mut left = max;
    for (ci, &c) in classes.iter().enumerate() {
        let rows: Vec<usize> = (0..y.len()).filter(|&i| y[i] == c).collect();
        let quota = if ci + 1 == classes.len() {
            left
        } else {
            ((max as f64 * rows.len() as f64 / y.len() as f64).round() as usize).min(left)
        }
        .min(rows.len());
        left -= quota;
        for k in rand::seq::index::sample(&mut rng, rows.len(), quota).into_iter() {
            out.push(rows[k]);
        }
    }
    out.sort_unstable();
    out
}

/// One trained grid point.
#[derive(Debug, Clone)]
pub struct GridPoint {
    pub feature: FeatureKind,
    pub kernel: KernelKind,
    pub c: f64,
    pub gamma: Option<(Gamma, f64)>,
    pub n_train: usize,
    pub fit_seconds: f64,
    pub val_accuracy: f64,
    pub val_balanced_accuracy: f64,
    pub n_support: usize,
    pub solver: String,
    pub decision: Decision,
}

/// A feature's fitted pipeline and its rows per split.
struct FeatureSet {
    pipeline: FeaturePipeline,
    train: Array2<f64>,
    val: Array2<f64>,
    gamma_scale: f64,
    seconds: f64,
}

enum Job {
    Smo {
        f: usize,
        kernel: KernelKind,
        c: f64,
        gamma: Option<Gamma>,
    },
    Dcd {
        f: usize,
        c: f64,
    },
    Rff {
        f: usize,
        gamma: Gamma,
    },
}

/// Predicted labels: 0 (happy) when the decision is >= 0.
pub fn predict(decision: &Array1<f64>) -> Vec<u8> {
    decision.iter().map(|&d| u8::from(d < 0.0)).collect()
}

/// Metrics of decision values against labels; ROC AUC scores class 0 (happy) by the decision.
pub fn metrics_of(y: &[u8], decision: &Array1<f64>) -> Metrics {
    let scores: Vec<Vec<f64>> = decision.iter().map(|&d| vec![d, -d]).collect();
    classification_metrics(y, &predict(decision), &CLASSES, Some(&scores))
}

fn write_json(path: &Path, v: &serde_json::Value) -> fer_core::Result<()> {
    let text = serde_json::to_string_pretty(v).expect("json") + "\n";
    std::fs::write(path, text).map_err(|e| fer_core::Error::io(path, e))
}

/// Train every grid point, pick per (feature, kernel) on val, write the outputs into `dir`.
pub fn compute(
    data: &Data,
    p: &SvmParams,
    dir: &Path,
    quiet: bool,
    pf: &PipelineFile,
) -> Result<Outputs, SvmError> {
    for (name, t) in [
        ("train", &data.train),
        ("val", &data.val),
        ("test", &data.test),
    ] {
        if let Some(&bad) = t.y.iter().find(|&&v| v > 1) {
            return Err(SvmError::Data(format!(
                "{name} has label {bad}: train_svm needs binary labels ([ingest] label_mode = \"binary\")"
            )));
        }
        if t.n == 0 {
            return Err(SvmError::Data(format!("the {name} split is empty")));
        }
    }
    let range = data.transform.value_range();
    let log = |m: String| {
        if !quiet {
            eprintln!("[{STAGE}] {m}");
        }
    };

    // Features, fitted on train.
    let mut sets: Vec<FeatureSet> = Vec::new();
    for &kind in &p.features {
        let t0 = Instant::now();
        let (pipeline, train) = FeaturePipeline::fit(kind, p.hog, range, p.pca, &data.train)
            .map_err(|m| {
                if m.starts_with("pca") {
                    SvmError::Core(pf.param_error(STAGE, "pca", m))
                } else {
                    SvmError::Data(format!("{} features: {m}", kind.as_str()))
                }
            })?;
        let val = pipeline.transform(&data.val).map_err(SvmError::Data)?;
        let gamma_scale = features::gamma_scale(&train);
        let seconds = t0.elapsed().as_secs_f64();
        log(format!(
            "{}: {} features per image ({:.2} s), gamma scale = {gamma_scale:.3e}",
            kind.as_str(),
            pipeline.dim(),
            seconds
        ));
        sets.push(FeatureSet {
            pipeline,
            train,
            val,
            gamma_scale,
            seconds,
        });
    }

    // The kernel SVMs' training rows.
    let sub = stratified_subsample(&data.train.y, p.max_train, p.seed);
    let sub_happy: Vec<bool> = sub.iter().map(|&i| data.train.y[i] == 0).collect();
    let all_happy: Vec<bool> = data.train.y.iter().map(|&v| v == 0).collect();
    let subs: Vec<Array2<f64>> = sets
        .iter()
        .map(|s| {
            if sub.len() == s.train.nrows() {
                s.train.clone()
            } else {
                s.train.select(Axis(0), &sub)
            }
        })
        .collect();
    if sub.len() < data.train.n {
        log(format!(
            "rbf/linear train on a stratified subsample of {} of {} rows (max_train)",
            sub.len(),
            data.train.n
        ));
    }

    let mut jobs = Vec::new();
    let mut fits = 0u64;
    for f in 0..sets.len() {
        for &kernel in &p.kernels {
            match kernel {
                KernelKind::Rbf => {
                    for &g in &p.gamma {
                        for &c in &p.c {
                            jobs.push(Job::Smo {
                                f,
                                kernel,
                                c,
                                gamma: Some(g),
                            });
                        }
                    }
                    fits += (p.gamma.len() * p.c.len()) as u64;
                }
                KernelKind::Linear => {
                    for &c in &p.c_linear {
                        jobs.push(match p.linear_solver {
                            LinearSolver::Smo => Job::Smo {
                                f,
                                kernel,
                                c,
                                gamma: None,
                            },
                            LinearSolver::Dcd => Job::Dcd { f, c },
                        });
                    }
                    fits += p.c_linear.len() as u64;
                }
                KernelKind::Rff => {
                    for &g in &p.gamma {
                        jobs.push(Job::Rff { f, gamma: g });
                    }
                    fits += (p.gamma.len() * p.c.len()) as u64;
                }
            }
        }
    }
    let pb = fer_core::cli::progress(fits, "grid", quiet);
    // One line per fit (above the bar on a terminal; the bar is hidden in logs).
    let done = |g: &GridPoint| {
        if !quiet {
            let line = format!(
                "[{STAGE}] {}/{} C={} gamma={}: fit {:.1} s on {} rows, val acc {:.4}, {}",
                g.feature.as_str(),
                g.kernel.as_str(),
                g.c,
                g.gamma
                    .map_or("-".into(), |(s, v)| format!("{} ({v:.3e})", s.spec())),
                g.fit_seconds,
                g.n_train,
                g.val_accuracy,
                g.solver
            );
            pb.suspend(|| eprintln!("{line}"));
        }
        pb.inc(1);
    };
    let score = |d: &Decision, f: usize| {
        let m = metrics_of(&data.val.y, &d.values(&sets[f].val));
        (m.accuracy, m.balanced_accuracy)
    };
    let results: Vec<Result<Vec<GridPoint>, String>> = jobs
        .par_iter()
        .map(|job| match *job {
            Job::Smo {
                f,
                kernel,
                c,
                gamma,
            } => {
                let g = gamma.map(|g| (g, g.resolve(sets[f].gamma_scale)));
                let t0 = Instant::now();
                let (decision, info) = model::fit_smo(
                    subs[f].view(),
                    &sub_happy,
                    p.class_weight.c(c, &sub_happy),
                    g.map(|g| g.1),
                    p.tol,
                )?;
                let fit_seconds = t0.elapsed().as_secs_f64();
                let (acc, bal) = score(&decision, f);
                let g = GridPoint {
                    feature: sets[f].pipeline.kind,
                    kernel,
                    c,
                    gamma: g,
                    n_train: sub.len(),
                    fit_seconds,
                    val_accuracy: acc,
                    val_balanced_accuracy: bal,
                    n_support: info.n_support,
                    solver: info.solver,
                    decision,
                };
                done(&g);
                Ok(vec![g])
            }
            Job::Dcd { f, c } => {
                let t0 = Instant::now();
                let (w, bias, info) = model::fit_dcd(
                    &sets[f].train,
                    &all_happy,
                    p.class_weight.c(c, &all_happy),
                    p.seed,
                );
                let fit_seconds = t0.elapsed().as_secs_f64();
                let decision = Decision::Linear { w, bias };
                let (acc, bal) = score(&decision, f);
                let g = GridPoint {
                    feature: sets[f].pipeline.kind,
                    kernel: KernelKind::Linear,
                    c,
                    gamma: None,
                    n_train: sets[f].train.nrows(),
                    fit_seconds,
                    val_accuracy: acc,
                    val_balanced_accuracy: bal,
                    n_support: info.n_support,
                    solver: info.solver,
                    decision,
                };
                done(&g);
                Ok(vec![g])
            }
            Job::Rff { f, gamma } => {
                let gv = gamma.resolve(sets[f].gamma_scale);
                let t0 = Instant::now();
                let rff = Rff::new(sets[f].train.ncols(), p.rff_dim, gv, p.seed);
                let z = rff.map(&sets[f].train);
                let map_seconds = t0.elapsed().as_secs_f64();
                let mut out = Vec::new();
                for &c in &p.c {
                    let t1 = Instant::now();
                    let (w, bias, info) =
                        model::fit_dcd(&z, &all_happy, p.class_weight.c(c, &all_happy), p.seed);
                    let fit_seconds = map_seconds + t1.elapsed().as_secs_f64();
                    let decision = Decision::Rff {
                        rff: rff.clone(),
                        w,
                        bias,
                    };
                    let (acc, bal) = score(&decision, f);
                    let g = GridPoint {
                        feature: sets[f].pipeline.kind,
                        kernel: KernelKind::Rff,
                        c,
                        gamma: Some((gamma, gv)),
                        n_train: z.nrows(),
                        fit_seconds,
                        val_accuracy: acc,
                        val_balanced_accuracy: bal,
                        n_support: info.n_support,
                        solver: info.solver,
                        decision,
                    };
                    done(&g);
                    out.push(g);
                }
                Ok(out)
            }
        })
        .collect();
    pb.finish_and_clear();
    let mut grid: Vec<GridPoint> = Vec::new();
    for r in results {
        grid.extend(r.map_err(SvmError::Data)?);
    }

    // Choose per (feature, kernel) on val; predict val and test.
    let mut chosen_idx = Vec::new();
    let mut saved = SavedSvms {
        features: sets.iter().map(|s| s.pipeline.clone()).collect(),
        models: Vec::new(),
    };
    let mut model_json = Vec::new();
    // (model, feature, kernel, split, row, id, label, decision)
    type PredRow<'a> = (
        String,
        FeatureKind,
        KernelKind,
        &'a str,
        u32,
        &'a str,
        u8,
        f64,
    );
    let mut pred_rows: Vec<PredRow> = Vec::new();
    let mut report = String::new();
    let mut table = Vec::new();
    for set in &sets {
        for &kernel in &p.kernels {
            let idx: Vec<usize> = (0..grid.len())
                .filter(|&i| grid[i].feature == set.pipeline.kind && grid[i].kernel == kernel)
                .collect();
            let mut best = idx[0];
            for &i in &idx[1..] {
                if grid[i].val_accuracy > grid[best].val_accuracy {
                    best = i;
                }
            }
            chosen_idx.push(best);
            let g = &grid[best];
            let name = format!("{}/{}", set.pipeline.kind.as_str(), kernel.as_str());
            let grid_seconds: f64 = idx.iter().map(|&i| grid[i].fit_seconds).sum();
            // Inference: features from the normalized test images, then the decision.
            let t0 = Instant::now();
            let test_x = set.pipeline.transform(&data.test).map_err(SvmError::Data)?;
            let test_d = g.decision.values(&test_x);
            let infer = t0.elapsed().as_secs_f64();
            let val_d = g.decision.values(&set.val);
            let (mv, mt) = (
                metrics_of(&data.val.y, &val_d),
                metrics_of(&data.test.y, &test_d),
            );
            for (split, y, ids, d) in [
                ("val", &data.val.y, &data.val_ids, &val_d),
                ("test", &data.test.y, &data.test_ids, &test_d),
            ] {
                for i in 0..y.len() {
                    pred_rows.push((
                        name.clone(),
                        set.pipeline.kind,
                        kernel,
                        split,
                        i as u32,
                        ids[i].as_str(),
                        y[i],
                        d[i],
                    ));
                }
            }
            let ips = data.test.n as f64 / infer.max(1e-9);
            report += &format!(
                "== {name} (C = {}, gamma = {}) test\n{}\n",
                g.c,
                g.gamma
                    .map_or("-".into(), |(s, v)| format!("{} = {v:.4e}", s.spec())),
                mt.report_text()
            );
            table.push(format!(
                "{:<12} {:>6} {:>16} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>9.1} {:>10.0}",
                name,
                g.c,
                g.gamma.map_or("-".into(), |(s, _)| s.spec()),
                g.val_accuracy,
                mt.accuracy,
                mt.balanced_accuracy,
                mt.roc_auc.unwrap_or(f64::NAN),
                g.fit_seconds,
                ips
            ));
            model_json.push(serde_json::json!({
                "name": name,
                "feature": set.pipeline.kind,
                "kernel": kernel,
                "c": g.c,
                "gamma": g.gamma.map(|x| x.1),
                "gamma_spec": g.gamma.map(|x| x.0.spec()),
                "n_features": set.pipeline.dim(),
                "n_train": g.n_train,
                "n_support": g.n_support,
                "solver": g.solver,
                "train_seconds": g.fit_seconds,
                "grid_points": idx.len(),
                "grid_seconds": grid_seconds,
                "feature_fit_seconds": set.seconds,
                "inference_seconds": infer,
                "inference_images_per_second": ips,
                "val": mv,
                "test": mt,
            }));
            saved.models.push(SavedModel {
                name,
                feature: set.pipeline.kind,
                kernel,
                c: g.c,
                gamma: g.gamma.map(|x| x.1),
                decision: g.decision.clone(),
            });
        }
    }

    let mut out = Outputs::default();
    saved.save(&dir.join("model.safetensors"))?;
    out.file("model.safetensors");

    let col_s = |v: Vec<&str>| Arc::new(StringArray::from(v)) as ArrayRef;
    let n = fer_core::parquet_io::write_columns(
        &dir.join("predictions.parquet"),
        vec![
            (
                "model",
                col_s(pred_rows.iter().map(|r| r.0.as_str()).collect()),
            ),
            (
                "feature",
                col_s(pred_rows.iter().map(|r| r.1.as_str()).collect()),
            ),
            (
                "kernel",
                col_s(pred_rows.iter().map(|r| r.2.as_str()).collect()),
            ),
            ("split", col_s(pred_rows.iter().map(|r| r.3).collect())),
            (
                "row",
                Arc::new(UInt32Array::from_iter_values(pred_rows.iter().map(|r| r.4))),
            ),
            ("id", col_s(pred_rows.iter().map(|r| r.5).collect())),
            (
                "label",
                Arc::new(UInt8Array::from_iter_values(pred_rows.iter().map(|r| r.6))),
            ),
            (
                "decision",
                Arc::new(Float64Array::from_iter_values(
                    pred_rows.iter().map(|r| r.7),
                )),
            ),
            (
                "pred",
                Arc::new(UInt8Array::from_iter_values(
                    pred_rows.iter().map(|r| u8::from(r.7 < 0.0)),
                )),
            ),
        ],
    )?;
    out.table("predictions.parquet", n);

    let n = fer_core::parquet_io::write_columns(
        &dir.join("grid.parquet"),
        vec![
            (
                "feature",
                col_s(grid.iter().map(|g| g.feature.as_str()).collect()),
            ),
            (
                "kernel",
                col_s(grid.iter().map(|g| g.kernel.as_str()).collect()),
            ),
            (
                "c",
                Arc::new(Float64Array::from_iter_values(grid.iter().map(|g| g.c))),
            ),
            (
                "gamma",
                Arc::new(Float64Array::from(
                    grid.iter()
                        .map(|g| g.gamma.map(|x| x.1))
                        .collect::<Vec<_>>(),
                )),
            ),
            (
                "gamma_spec",
                Arc::new(StringArray::from(
                    grid.iter()
                        .map(|g| g.gamma.map(|x| x.0.spec()))
                        .collect::<Vec<_>>(),
                )),
            ),
            (
                "n_train",
                Arc::new(UInt32Array::from_iter_values(
                    grid.iter().map(|g| g.n_train as u32),
                )),
            ),
            (
                "fit_seconds",
                Arc::new(Float64Array::from_iter_values(
                    grid.iter().map(|g| g.fit_seconds),
                )),
            ),
            (
                "val_accuracy",
                Arc::new(Float64Array::from_iter_values(
                    grid.iter().map(|g| g.val_accuracy),
                )),
            ),
            (
                "val_balanced_accuracy",
                Arc::new(Float64Array::from_iter_values(
                    grid.iter().map(|g| g.val_balanced_accuracy),
                )),
            ),
            (
                "n_support",
                Arc::new(UInt32Array::from_iter_values(
                    grid.iter().map(|g| g.n_support as u32),
                )),
            ),
            (
                "solver",
                col_s(grid.iter().map(|g| g.solver.as_str()).collect()),
            ),
            (
                "chosen",
                Arc::new(BooleanArray::from(
                    (0..grid.len())
                        .map(|i| chosen_idx.contains(&i))
                        .collect::<Vec<_>>(),
                )),
            ),
        ],
    )?;
    out.table("grid.parquet", n);

    // The best model by val accuracy (ties: the first listed).
    let mut best = 0;
    for (i, m) in model_json.iter().enumerate() {
        if m["val"]["accuracy"].as_f64() > model_json[best]["val"]["accuracy"].as_f64() {
            best = i;
        }
    }
    let majority = |y: &[u8]| {
        let happy = y.iter().filter(|&&v| v == 0).count() as f64;
        (happy.max(y.len() as f64 - happy)) / y.len() as f64
    };
    let metrics = serde_json::json!({
        "positive_class": "happy (label 0): decision >= 0 predicts happy; ROC AUC scores class 0 by the decision value",
        "n": {"train": data.train.n, "kernel_train": sub.len(), "val": data.val.n, "test": data.test.n},
        "majority_baseline": {"val": majority(&data.val.y), "test": majority(&data.test.y)},
        "threads": rayon::current_num_threads(),
        "features": sets.iter().map(|s| serde_json::json!({
            "name": s.pipeline.kind,
            "dim": s.pipeline.dim(),
            "pca": p.pca,
            "gamma_scale": s.gamma_scale,
            "fit_seconds": s.seconds,
        })).collect::<Vec<_>>(),
        "models": model_json,
        "best": {
            "name": model_json[best]["name"],
            "by": "val accuracy",
            "val_accuracy": model_json[best]["val"]["accuracy"],
            "test_accuracy": model_json[best]["test"]["accuracy"],
        },
    });
    write_json(&dir.join("metrics.json"), &metrics)?;
    out.file("metrics.json");
    std::fs::write(dir.join("report.txt"), &report)
        .map_err(|e| fer_core::Error::io(dir.join("report.txt"), e))?;
    out.file("report.txt");

    let header = format!(
        "{:<12} {:>6} {:>16} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10}",
        "model", "C", "gamma", "val acc", "test acc", "bal acc", "ROC AUC", "train s", "test img/s"
    );
    log(format!(
        "chosen on val (best: {}):\n{header}\n{}",
        model_json[best]["name"].as_str().unwrap_or(""),
        table.join("\n")
    ));
    out.summary = serde_json::json!({
        "best": metrics["best"],
        "models": metrics["models"].as_array().map(|ms| ms.iter().map(|m| serde_json::json!({
            "name": m["name"],
            "c": m["c"],
            "gamma": m["gamma"],
            "val_accuracy": m["val"]["accuracy"],
            "test_accuracy": m["test"]["accuracy"],
            "test_balanced_accuracy": m["test"]["balanced_accuracy"],
            "test_roc_auc": m["test"]["roc_auc"],
            "train_seconds": m["train_seconds"],
            "inference_images_per_second": m["inference_images_per_second"],
        })).collect::<Vec<_>>()),
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_subsample_keeps_shares_and_is_seeded() {
        let y: Vec<u8> = (0..1000).map(|i| u8::from(i % 4 != 0)).collect();
        let s = stratified_subsample(&y, 100, 3);
        assert_eq!(s.len(), 100);
        assert_eq!(s.iter().filter(|&&i| y[i] == 0).count(), 25);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(s, stratified_subsample(&y, 100, 3));
        assert_ne!(s, stratified_subsample(&y, 100, 4));
        assert_eq!(stratified_subsample(&y, 0, 1).len(), 1000);
        assert_eq!(stratified_subsample(&y, 5000, 1).len(), 1000);
    }

    #[test]
    fn gamma_entries() {
        let g = |e: GammaEntry| parse_gamma(&e);
        assert_eq!(g(GammaEntry::Name("scale".into())), Ok(Gamma::Scale(1.0)));
        assert_eq!(g(GammaEntry::Name("3*scale".into())), Ok(Gamma::Scale(3.0)));
        assert_eq!(g(GammaEntry::Value(0.5)), Ok(Gamma::Value(0.5)));
        assert!(g(GammaEntry::Value(0.0)).is_err());
        assert!(g(GammaEntry::Name("auto".into())).is_err());
        assert!(g(GammaEntry::Name("-1*scale".into())).is_err());
        assert_eq!(Gamma::Scale(3.0).spec(), "3*scale");
        assert_eq!(Gamma::Scale(3.0).resolve(0.5), 1.5);
    }

    #[test]
    fn balanced_class_weight_scales_c_by_inverse_frequency() {
        let happy = [true, false, false, false];
        assert_eq!(ClassWeight::None.c(2.0, &happy), (2.0, 2.0));
        let (h, n) = ClassWeight::Balanced.c(2.0, &happy);
        assert!((h - 4.0).abs() < 1e-12 && (n - 4.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn happy_is_the_positive_class() {
        let d = Array1::from(vec![2.0, 0.0, -1.0, -3.0]);
        assert_eq!(predict(&d), vec![0, 0, 1, 1]);
        let m = metrics_of(&[0, 0, 1, 1], &d);
        assert_eq!(m.accuracy, 1.0);
        assert_eq!(m.roc_auc, Some(1.0));
    }
}
