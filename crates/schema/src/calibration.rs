//! `calibration.json`: how a model folder's scores map to calibrated p(happy), fitted on the
//! **val** split only, with the fit's figures on val before and after.
//!
//! Written by the stage that trains the model, beside its weights: train-cnn
//! (`train_cnn/<model>/calibration.json`, one record), tune (`tune/best/calibration.json`) and
//! train-svm (`train_svm/calibration.json`, one record per saved SVM). Read by predict (which
//! applies the map to what it scores) and by the report (which measures the map on test).
//! The fitting and the figures are [`crate::calibration`]'s.
//!
//! The map takes the model's raw score, the one `predictions.parquet` keeps (its `p_happy`
//! stays uncalibrated, so every figure computed from it is unchanged):
//! - `score = "p_happy"` (CNNs): temperature scaling of p(happy)'s log-odds,
//!   `p' = sigmoid(logit(p) / T)` (`method = "temperature"`, key `temperature`);
//! - `score = "svm_decision"` (SVMs): Platt scaling of the decision value `d`,
//!   `p = 1 / (1 + exp(a d + b))` (`method = "platt"`, keys `a` and `b`);
//! - `method = "uncalibrated"` with a `reason` when no map could be fitted (one class only in
//!   val, a degenerate fit...): the raw p(happy) is used as it is (CNNs), or for an SVM the
//!   unfitted `1 / (1 + exp(-d))`; predict says so in a warning.
//!
//! `before` are the figures of that unmapped probability (p(happy), or `1 / (1 + exp(-d))` for
//! an SVM); `after` of the calibrated one (absent when uncalibrated).

use fer_core::error::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The file's name in a model folder.
pub const FILE: &str = "calibration.json";

/// The score a map takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreKind {
    /// A CNN's p(happy) (softmax of the two classes).
    PHappy,
    /// An SVM's decision value (>= 0 means happy).
    SvmDecision,
}

impl ScoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScoreKind::PHappy => "p_happy",
            ScoreKind::SvmDecision => "svm_decision",
        }
    }
}

/// One model folder's `calibration.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationFile {
    /// What the maps take.
    pub score: ScoreKind,
    /// The split the maps were fitted on and the figures measured on: always `val`.
    pub fitted_on: String,
    /// Equal-width bins of p(happy) in the ECE ([`crate::calibration::ECE_BINS`]).
    pub ece_bins: usize,
    /// One per model: the CNN of the folder, or every saved SVM (`hog/rbf`, ...).
    pub models: Vec<ModelCalibration>,
}

/// The map of one model and its figures on val.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCalibration {
    /// The CNN's name (its folder) or the SVM's (`hog/rbf`).
    pub model: String,
    #[serde(flatten)]
    pub method: Method,
    /// Val rows fitted on, and how many of them are happy.
    pub n: u64,
    pub n_happy: u64,
    /// Val figures of the unmapped probability (`None` when there was nothing to measure).
    pub before: Option<Scores>,
    /// Val figures of the calibrated probability (`None` when uncalibrated).
    pub after: Option<Scores>,
}

/// A calibration map, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Method {
    /// `p' = sigmoid(logit(p) / temperature)`.
    Temperature { temperature: f64 },
    /// `p = 1 / (1 + exp(a d + b))`.
    Platt { a: f64, b: f64 },
    /// No map: why.
    Uncalibrated { reason: String },
}

/// Negative log-likelihood (mean, natural log), expected calibration error and Brier score of
/// p(happy) against the happy labels ([`crate::calibration::scores`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub nll: f64,
    pub ece: f64,
    pub brier: f64,
}

impl CalibrationFile {
    /// The record of `model` (a CNN folder's only record when `model` is `None`).
    pub fn model(&self, model: Option<&str>) -> Option<&ModelCalibration> {
        match model {
            Some(m) => self.models.iter().find(|c| c.model == m),
            None => self.models.first(),
        }
    }

    /// Calibrated p(happy) of a raw score `x` by `c`'s map (see the module doc for an
    /// uncalibrated record).
    pub fn apply(&self, c: &ModelCalibration, x: f64) -> f64 {
        apply(&c.method, self.score, x)
    }
}

/// Probabilities are kept in `[P_CLAMP, 1 - P_CLAMP]` before `ln` or `logit`.
pub const P_CLAMP: f64 = 1e-7;

/// `1 / (1 + exp(-z))`, without overflow.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `ln(p / (1 - p))` of p clamped to `[P_CLAMP, 1 - P_CLAMP]`.
pub fn logit(p: f64) -> f64 {
    let p = p.clamp(P_CLAMP, 1.0 - P_CLAMP);
    (p / (1.0 - p)).ln()
}

/// Temperature scaling: `sigmoid(logit(p) / t)`. For a two-class softmax this is dividing the
/// two logits' difference by `t` (`logit(p_happy)` is that difference).
pub fn apply_temperature(p: f64, t: f64) -> f64 {
    sigmoid(logit(p) / t)
}

/// Platt scaling: `1 / (1 + exp(a d + b))`.
pub fn platt_p(a: f64, b: f64, d: f64) -> f64 {
    sigmoid(-(a * d + b))
}

/// Calibrated p(happy) of a raw score `x` of kind `kind` by `method`. Uncalibrated: p(happy)
/// itself, or for an SVM decision the unfitted `1 / (1 + exp(-d))`.
pub fn apply(method: &Method, kind: ScoreKind, x: f64) -> f64 {
    match (method, kind) {
        (Method::Temperature { temperature }, _) => apply_temperature(x, *temperature),
        (Method::Platt { a, b }, _) => platt_p(*a, *b, x),
        (Method::Uncalibrated { .. }, ScoreKind::PHappy) => x,
        (Method::Uncalibrated { .. }, ScoreKind::SvmDecision) => sigmoid(x),
    }
}

/// Write `calibration.json`.
pub fn write(path: &Path, f: &CalibrationFile) -> Result<()> {
    super::write_json(path, f)
}

/// Read `calibration.json`; a missing key or wrong type names the file.
pub fn read(path: &Path) -> Result<CalibrationFile> {
    super::read_json(path)
}
