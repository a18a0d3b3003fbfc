//! The report's `recommendation.json`: the recommended model, its alert threshold (chosen on
//! validation) and its figures; written by the report, read by predict (the default
//! threshold) and by anyone deploying the model.

use serde::{Deserialize, Serialize};

/// Alert figures at one threshold: "not happy" is predicted when `score < threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlertStats {
    pub threshold: f64,
    pub alerts: u64,
    pub n: u64,
    pub not_happy: u64,
    /// Alerts on not-happy images.
    pub true_alerts: u64,
    /// Share of alerts that are truly not happy.
    pub precision: f64,
    /// Share of not-happy images that raise an alert.
    pub recall: f64,
    pub accuracy: f64,
    pub balanced_accuracy: f64,
}

/// How a threshold was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdRule {
    /// The most not-happy images flagged while validation alert precision >= the target.
    PrecisionTarget,
    /// The most not-happy images flagged while the expected alerts per 100 customers (at the
    /// stated base rate) stay within the budget.
    AlertBudget,
    /// The goal was out of reach: the best validation balanced accuracy instead (the report
    /// and `goal.met = false` in `recommendation.json` say so).
    BalancedAccuracy,
}

/// `recommendation.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The model's short name (`fer-small`, `hog/rbf`).
    pub model: String,
    pub display: String,
    /// `cnn` or `svm`.
    pub family: String,
    /// The model folder `fer-predict --model` takes.
    pub model_dir: String,
    /// SVMs: the saved model's name in `model.safetensors`.
    pub svm_model: Option<String>,
    /// The score the threshold applies to (`p_happy`, `svm_decision`).
    pub score: String,
    pub threshold: f64,
    pub rule: String,
    pub threshold_chosen_on: String,
    pub threshold_rule: ThresholdRule,
    /// The precision goal; `None` when the goal is an alert budget.
    pub target_not_happy_precision: Option<f64>,
    pub expected_not_happy_precision: f64,
    pub expected_not_happy_precision_ci: [f64; 2],
    pub expected_not_happy_recall: f64,
    pub expected_not_happy_recall_ci: [f64; 2],
    pub confidence: f64,
    pub validation: AlertStats,
    pub test: AlertStats,
    pub test_at_default_threshold: AlertStats,
    pub chosen_by: String,
    pub val_accuracy: f64,
    pub test_accuracy: f64,
    pub test_accuracy_ci: [f64; 2],
}
