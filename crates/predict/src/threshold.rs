//! The default threshold: `recommendation.json`'s threshold, but only for the model it was
//! chosen for.
//!
//! The report writes `artifacts/<pipeline>/report/recommendation.json` with the recommended
//! model (`model_dir`, `svm_model`), the score its threshold is on (`score`: `p_happy` or
//! `svm_decision`), the threshold, and the blake3 hash of the model's weights file
//! (`model_weights_blake3`, the hash of `model.safetensors`). Predict uses that threshold only
//! when the loaded model is the same model: the same weights hash (so a model retrained in
//! the same folder does not inherit the old threshold), the same score kind, the same saved
//! SVM, and the transform it was trained on.
//!
//! Scales: the report chooses the threshold on the model's **raw** score, the one
//! `predictions.parquet` keeps: a CNN's uncalibrated softmax p(happy), an SVM's decision
//! value. Predict reports **calibrated** p(happy) (the model folder's `calibration.json`), so
//! it turns the threshold into a calibrated one through the same map (temperature scaling, or
//! Platt scaling of a decision; the identity for an uncalibrated CNN). The maps are
//! increasing, so every face gets the label it would get from the raw score against the
//! report's threshold: the precision and recall the report promised still hold.
//!
//! Otherwise it uses 0.5 on the calibrated p(happy) and says why in a warning. No
//! `recommendation.json` at all is no warning: 0.5 is then simply the default.

use crate::Scorer;
use std::path::Path;

/// The p(happy) threshold used when no matching recommendation exists.
pub const DEFAULT: f64 = 0.5;

/// The threshold chosen, where it came from, and why a recommendation was not used.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// A p(happy) threshold.
    pub value: f64,
    /// Where it came from (`recommendation.json`'s path, or `default 0.5`).
    pub source: String,
    /// Why a `recommendation.json` that exists was not used (for stderr).
    pub warning: Option<String>,
}

/// The keys of `recommendation.json` this rule needs (the file has more).
#[derive(Debug, serde::Deserialize)]
struct Binding {
    model_dir: String,
    svm_model: Option<String>,
    score: String,
    threshold: f64,
    /// Written by reports since issue 18; absent in older files.
    model_weights_blake3: Option<String>,
}

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

/// `recommendation.json`'s threshold if it was chosen for `scorer`'s weights, else
/// [`DEFAULT`] with a warning saying why.
pub fn for_model(recommendation: &Path, scorer: &Scorer) -> Choice {
    let default = |warning: Option<String>| Choice {
        value: DEFAULT,
        source: format!("default {DEFAULT}"),
        warning,
    };
    if !recommendation.is_file() {
        return default(None);
    }
    let rec = recommendation.display();
    let b: Binding = match fer_schema::read_json(recommendation) {
        Ok(b) => b,
        Err(e) => return default(Some(format!("{e}: its threshold is not used"))),
    };
    let why = |reason: String| {
        default(Some(format!(
            "{rec}: its threshold {} was chosen for {}, {reason}; using {DEFAULT}",
            b.threshold, b.model_dir
        )))
    };
    let Some(want) = &b.model_weights_blake3 else {
        return why(
            "but the file does not record that model's weights hash (a report from before \
             model_weights_blake3; rerun the report)"
                .into(),
        );
    };
    let Some((wpath, have)) = &scorer.weights else {
        return why("and the loaded model has no weights file to compare".into());
    };
    if have != want {
        return why(format!(
            "whose weights hash {}, but the loaded weights {} hash {} (retrained, or another \
             model)",
            short(want),
            wpath.display(),
            short(have)
        ));
    }
    if b.score != scorer.score_kind() {
        return why(format!(
            "on the score {}, but the loaded model scores {}",
            b.score,
            scorer.score_kind()
        ));
    }
    if b.svm_model.as_deref() != scorer.svm_name() {
        return why(format!(
            "for the saved SVM {:?}, but the loaded one is {:?} (--svm)",
            b.svm_model,
            scorer.svm_name()
        ));
    }
    if scorer.transform_overridden {
        return why("but --transform replaces the transform the model was trained on".into());
    }
    match scorer.score_to_p(b.threshold) {
        Some(p) if (0.0..=1.0).contains(&p) && p.is_finite() => Choice {
            value: p,
            source: if p == b.threshold {
                rec.to_string()
            } else {
                format!(
                    "{rec}: {} {} through the model's calibration ({})",
                    b.score,
                    b.threshold,
                    scorer.calibration.describe()
                )
            },
            warning: None,
        },
        Some(p) => why(format!("but it maps to {p}, not a probability")),
        None => why("but the model's calibration map does not keep the scores' order".into()),
    }
}

/// [`for_model`] for the report of `pipeline` under `artifacts`.
pub fn for_pipeline(artifacts: &Path, pipeline: &str, scorer: &Scorer) -> Choice {
    for_model(
        &artifacts
            .join(pipeline)
            .join("report")
            .join("recommendation.json"),
        scorer,
    )
}
