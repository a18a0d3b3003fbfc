//! `metrics.json` of the model stages, one type per file, shared by the writer and every
//! reader:
//! - [`CnnMetrics`]: a CNN model folder's `metrics.json` (train_cnn's `<model>/`, tune's
//!   `best/`, which adds [`TunedFrom`]), written by train-cnn's export and read by tune and the
//!   report; train_cnn's top-level `metrics.json` is [`CnnMetricsByModel`];
//! - [`SvmMetrics`]: train_svm's `metrics.json`, written by train-svm and read by the report
//!   and predict (which SVM is best).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Classification metrics on val and on test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassReport {
    pub name: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Average {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub n: u64,
    pub accuracy: f64,
    pub balanced_accuracy: f64,
    pub classes: Vec<ClassReport>,
    pub macro_avg: Average,
    pub weighted_avg: Average,
    /// `confusion[true][pred]`.
    pub confusion: Vec<Vec<u64>>,
    /// Binary: AUC of the score of class 0 (happy). Multi-class: macro one-vs-rest AUC.
    pub roc_auc: Option<f64>,
}

/// Test metrics against both truths, when the data carries FERPlus votes: FER2013's labels
/// (one annotator; the study's figures) and FERPlus's (the plurality of 10), side by side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ByTruth {
    pub fer2013: Metrics,
    /// On the images FERPlus gives a label.
    pub ferplus: Metrics,
    /// Images left out of `ferplus` (FERPlus gives them no label: tie, unknown, not a face...).
    pub ferplus_excluded: u64,
    /// How often the two truths disagree on the images both label (the label noise).
    pub disagreement: f64,
    /// Balanced accuracy of FERPlus's labels read as predictions of FER2013's: what a model
    /// that matched FERPlus exactly would score against FER2013 (the label-noise ceiling).
    pub ferplus_ceiling_balanced_accuracy: f64,
}

impl Metrics {
    /// The layout of scikit-learn's `classification_report` (the study's table).
    pub fn report_text(&self) -> String {
        let width = self
            .classes
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0)
            .max(12);
        let mut s = format!(
            "{:>width$} {:>9} {:>9} {:>9} {:>9}\n\n",
            "", "precision", "recall", "f1-score", "support"
        );
        for c in &self.classes {
            s += &format!(
                "{:>width$} {:>9.2} {:>9.2} {:>9.2} {:>9}\n",
                c.name, c.precision, c.recall, c.f1, c.support
            );
        }
        s += &format!(
            "\n{:>width$} {:>9} {:>9} {:>9.2} {:>9}\n",
            "accuracy", "", "", self.accuracy, self.n
        );
        for (name, a) in [
            ("macro avg", &self.macro_avg),
            ("weighted avg", &self.weighted_avg),
        ] {
            s += &format!(
                "{:>width$} {:>9.2} {:>9.2} {:>9.2} {:>9}\n",
                name, a.precision, a.recall, a.f1, a.support
            );
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitMetrics {
    pub val: Metrics,
    pub test: Metrics,
}

/// A CNN model folder's `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CnnMetrics {
    pub name: String,
    pub arch: String,
    pub params: usize,
    pub macs: u64,
    pub epochs_run: usize,
    /// The kept checkpoint's epoch (best validation loss).
    pub best_epoch: usize,
    pub train_seconds: f64,
    pub train_images_per_second: f64,
    pub inference_images_per_second: f64,
    pub final_train_acc: Option<f64>,
    pub final_val_acc: Option<f64>,
    pub tta_flip: bool,
    pub metrics: SplitMetrics,
    /// Test against FER2013's and FERPlus's labels (`null`: the data has no FERPlus votes).
    #[serde(default)]
    pub test_by_truth: Option<ByTruth>,
    /// tune's `best/` only: which trial won and how long the search took.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub tune: Option<TunedFrom>,
}

/// What tune adds to its winner's `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TunedFrom {
    pub tune_trial: usize,
    /// The train_cnn model the winning trial was taken from (`reuse_base`), if any.
    pub reused_from: Option<String>,
    pub search_seconds: f64,
}

/// train_cnn's top-level `metrics.json`: every model's, by name.
pub type CnnMetricsByModel = BTreeMap<String, CnnMetrics>;

/// train_svm's `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SvmMetrics {
    /// How to read the decision values (which class is positive).
    pub positive_class: String,
    pub n: SvmCounts,
    /// Accuracy of always answering the majority class.
    pub majority_baseline: ValTest,
    pub threads: usize,
    pub features: Vec<SvmFeature>,
    /// The chosen model of every (feature, kernel), in training order.
    pub models: Vec<SvmModelMetrics>,
    pub best: SvmBest,
}

/// Rows per split (`kernel_train`: the subsample the kernel SVMs trained on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SvmCounts {
    pub train: usize,
    pub kernel_train: usize,
    pub val: usize,
    pub test: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValTest {
    pub val: f64,
    pub test: f64,
}

/// One fitted feature pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SvmFeature {
    /// `raw` or `hog`.
    pub name: String,
    pub dim: usize,
    pub pca: usize,
    pub gamma_scale: f64,
    pub fit_seconds: f64,
}

/// One chosen SVM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SvmModelMetrics {
    /// `<feature>/<kernel>`, e.g. `hog/rbf`.
    pub name: String,
    pub feature: String,
    /// `rbf`, `linear` or `rff`.
    pub kernel: String,
    pub c: f64,
    pub gamma: Option<f64>,
    /// The gamma as written (`scale`, `2*scale`, a number).
    pub gamma_spec: Option<String>,
    pub n_features: usize,
    pub n_train: usize,
    pub n_support: usize,
    pub solver: String,
    pub train_seconds: f64,
    pub grid_points: usize,
    pub grid_seconds: f64,
    pub feature_fit_seconds: f64,
    pub inference_seconds: f64,
    pub inference_images_per_second: f64,
    pub val: Metrics,
    pub test: Metrics,
    /// Test against FER2013's and FERPlus's labels (`null`: the data has no FERPlus votes).
    #[serde(default)]
    pub test_by_truth: Option<ByTruth>,
}

/// The best chosen SVM and how it was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SvmBest {
    pub name: String,
    pub by: String,
    pub val_accuracy: f64,
    pub test_accuracy: f64,
}
