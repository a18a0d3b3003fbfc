//! [`Calibration`]: the map from a model's raw score to the p(happy) it reports, read from
//! the model folder's `calibration.json`.

#[cfg(doc)]
use super::Scorer;
use super::model_err;
use crate::PredictError;
use fer_schema::calibration::{self as calfile, Method, ScoreKind};
use std::path::Path;

/// The calibration map a scorer applies to its raw score (a CNN's softmax p(happy), an SVM's
/// decision value): the model folder's `calibration.json` record (fitted on val by the stage
/// that trained it), or none, with the reason in `warning`.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    pub kind: ScoreKind,
    pub method: Method,
    /// Why the reported p(happy) is not calibrated (for stderr); `None` when it is, and for
    /// [`Scorer::from_fn`] scorers (their function's output is used as it is).
    pub warning: Option<String>,
}

impl Calibration {
    /// No map: p(happy) as the model gives it (an SVM: `1 / (1 + exp(-d))`).
    pub fn none(kind: ScoreKind, warning: Option<String>) -> Calibration {
        Calibration {
            kind,
            method: Method::Uncalibrated {
                reason: warning.clone().unwrap_or_default(),
            },
            warning,
        }
    }

    /// Read the record of `svm` (or a CNN folder's only record) from `dir/calibration.json`.
    /// No file: uncalibrated with a warning saying why. A file that is there but unreadable,
    /// of the wrong score kind or without the record is an error naming it.
    pub fn load(
        dir: &Path,
        kind: ScoreKind,
        svm: Option<&str>,
    ) -> Result<Calibration, PredictError> {
        let path = dir.join(calfile::FILE);
        if !path.is_file() {
            return Ok(Calibration::none(
                kind,
                Some(format!(
                    "{}: not found (a model trained before calibration was saved with it; \
                     retrain it to get one): p_happy is {} and not calibrated",
                    path.display(),
                    match kind {
                        ScoreKind::PHappy => "the model's softmax output",
                        ScoreKind::SvmDecision => "1 / (1 + exp(-decision))",
                    }
                )),
            ));
        }
        let f = calfile::read(&path)?;
        if f.score != kind {
            return Err(model_err(
                &path,
                format!(
                    "maps the score {}, but this model scores {}",
                    f.score.as_str(),
                    kind.as_str()
                ),
            ));
        }
        let Some(rec) = f.model(svm) else {
            return Err(model_err(
                &path,
                format!("no record for the model {}", svm.unwrap_or("of the folder")),
            ));
        };
        let warning = match &rec.method {
            Method::Uncalibrated { reason } => Some(format!(
                "{}: {} was not calibrated when trained ({reason}): p_happy is not calibrated",
                path.display(),
                rec.model
            )),
            _ => None,
        };
        Ok(Calibration {
            kind,
            method: rec.method.clone(),
            warning,
        })
    }

    /// p(happy) of a raw score.
    pub fn apply(&self, x: f64) -> f64 {
        fer_eval::calibration::apply(&self.method, self.kind, x)
    }

    /// In words, for the model's description.
    pub fn describe(&self) -> String {
        match &self.method {
            Method::Temperature { temperature } => {
                format!("temperature scaling T={temperature:.4}")
            }
            Method::Platt { a, b } => format!("Platt a={a:.4} b={b:.4}"),
            Method::Uncalibrated { .. } => "uncalibrated".into(),
        }
    }
}
