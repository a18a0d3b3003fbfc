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
//! **Seven classes.** With `[ingest] label_mode = "emotion7"` (the tensors' `label_mode`; the
//! labels are FER2013 emotion codes, `fer_core::LabelMode::class_names` order: angry, disgust,
//! fear, happy, sad, surprise, neutral) every grid point is seven binary SVMs, one per class
//! (that class vs the rest), fitted by the same solver on the same rows (the `max_train`
//! subsample stays stratified by label, so by emotion; `class_weight = "balanced"` weighs the
//! two sides of each one-vs-rest problem); the predicted class is the argmax of the seven
//! decisions (the first class on a tie). The grid point of each (feature, kernel), and the
//! best model, are chosen by val **macro F1** (ties as above); binary runs still choose by
//! val accuracy and write exactly what they wrote before. The `happy` class is looked up by
//! name (class 3 of seven, 0 in binary).
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
//!   [`SavedSvms::load`] and [`SavedSvms::decisions`] for bit-identical decision values.
//!   Seven classes: format `fer-train-svm/2`, the class names in the header and each model's
//!   seven one-vs-rest decisions ([`SavedModel::classes`]; `decision` is happy's);
//!   [`SavedSvms::class_decisions`] gives all of them (rows x classes) bit for bit;
//! - `predictions.parquet`: model, feature, kernel, split (val, test), row, id, label,
//!   decision (> 0 = happy), pred (0 = happy, 1 = not happy). Seven classes: label and pred are
//!   emotion codes (pred the argmax), `decision` is the happy-vs-rest decision (>= 0: the happy
//!   SVM says happy), then `decision_<class>` for each class in class order;
//! - `calibration.json`: per chosen model, Platt scaling `p = 1 / (1 + exp(a d + b))` of its
//!   (happy) decisions against label == happy, fitted on val only (or `uncalibrated` with the
//!   reason: one class in val, a reversed slope), with NLL / ECE / Brier on val before and after
//!   (`fer_schema::calibration`; read by predict and the report);
//! - `grid.parquet`: every grid point (feature, kernel, c, gamma, gamma_spec, n_train,
//!   fit_seconds, val_accuracy, val_balanced_accuracy, n_support, solver, chosen); seven
//!   classes add `val_macro_f1` after `val_balanced_accuracy`, and fit_seconds, n_support and
//!   solver sum or list (`<class>: ...; ...`) the seven fits';
//! - `metrics.json`: per model the chosen c/gamma, train and grid time, inference images per
//!   second (features + decision on test), val and test metrics from `fer_eval::metrics` (ROC
//!   AUC scores class 0 = happy by the decision value; seven classes: per class, confusion 7 x
//!   7, and ROC AUC is the **macro one-vs-rest AUC of the seven decisions**, what
//!   `Metrics::roc_auc` means for k classes and what the CNNs report; `positive_class` says
//!   so), and the best model by val accuracy (seven classes: by val macro F1, `best.by`);
//! - `report.txt`: scikit-learn style classification reports on test (seven rows in seven-class
//!   mode).
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
//!
//! Modules, one concern each: [`params`] (`[train_svm]`, its validation, the command line),
//! [`data`] (the preprocess outputs, label mode and checks, features fitted on train, the
//! kernel SVMs' subsample and each task's positive rows), [`grid`] (the job list and its fits,
//! one per class in seven-class mode), [`select`] (scoring and choosing on val),
//! [`outputs`] (the writers); [`model`] fits the SVMs. The feature pipelines ([`features`]) and
//! the fitted decision functions and their saved form are fer-models' (predict reads them too);
//! `metrics.json` is core's `schema::metrics::SvmMetrics`.

pub mod data;
// The feature pipelines live in fer-models (predict reads them too).
pub use fer_models::features;
pub mod grid;
pub mod model;
pub mod outputs;
pub mod params;
pub mod select;

pub use data::{Data, stratified_subsample};
pub use features::{FeatureKind, FeaturePipeline, HogParams, Rff};
pub use grid::GridPoint;
pub use model::{Decision, KernelKind, SavedModel, SavedSvms};
/// The ndarray version the models use (linfa 0.8 needs 0.16), for callers such as the bench.
pub use ndarray;
pub use params::{
    ClassWeight, Cli, Gamma, GammaEntry, LinearSolver, Params, SvmParams, SvmSection,
    signature_params,
};
pub use select::{metrics_of, predict};

use fer_core::cli::{Preamble, Stage as _};
use fer_core::manifest::Manifest;
use fer_core::pipeline::PipelineFile;
use fer_core::stage::Outputs;
use std::path::Path;

pub const STAGE: &str = "train_svm";
pub const CODE_VERSION: &str = <Params as fer_core::cli::Stage>::CODE_VERSION;
/// The code versions of the upstream stages this build reads (checked by `Input::current`).
pub const UPSTREAM_CODE_VERSIONS: &str = <Params as fer_core::cli::Stage>::UPSTREAM_CODE_VERSIONS;

#[derive(Debug, thiserror::Error)]
pub enum SvmError {
    #[error(transparent)]
    Core(#[from] fer_core::Error),
    #[error("{0}")]
    Data(String),
}

/// A progress line on stderr (`[train_svm] ...`), unless quiet.
pub(crate) fn log(quiet: bool, m: String) {
    if !quiet {
        eprintln!("[{STAGE}] {m}");
    }
}

fer_core::impl_stage! { Params: STAGE, "fer-train-svm", SvmError, fer_core::cli::NoArgs,
"Stage train_svm: SVMs on raw pixels and HOG, grid chosen on val" }

pub fn run(p: &Params) -> Result<Manifest, SvmError> {
    let Preamble { run, upstream: up } = p.prepare(Vec::new())?;
    let dir_in = &up[0].0;
    run.execute(|dir| {
        let data = Data::read(&dir_in)?;
        compute(&data, &p.svm, dir, p.common.quiet, &p.pipeline)
    })
}

/// Train every grid point, pick per (feature, kernel) on val, write the outputs into `dir`.
pub fn compute(
    data: &Data,
    p: &SvmParams,
    dir: &Path,
    quiet: bool,
    pf: &PipelineFile,
) -> Result<Outputs, SvmError> {
    data::check_labels(data)?;
    let sets = data::fit_features(data, p, quiet, pf)?;
    let rows = data::TrainRows::new(data, &sets, p, quiet);
    let (jobs, fits) = grid::jobs(p, sets.len());
    let grid = grid::fit(&jobs, fits, &sets, &rows, data, p, quiet)?;
    let chosen = select::choose(&grid, &sets, &p.kernels, data)?;
    outputs::write(dir, data, p, &sets, rows.sub.len(), &grid, &chosen, quiet)
}
