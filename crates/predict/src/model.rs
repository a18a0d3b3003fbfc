//! The model artifact a prediction runs: a `train_cnn` model folder (`model.json` +
//! `model.safetensors`, also `tune/best`) or the `train_svm` folder (`model.safetensors` of
//! every chosen SVM), turned into one function: normalized 48x48 faces in, p(happy) out, and
//! for a model of more than two classes (seven emotions) a score per class ([`Classes`]): a
//! CNN's softmax probabilities, an SVM's one-vs-rest decision values.
//! Also records the blake3 hash of the weights file, so a threshold chosen for these weights
//! can be told from one chosen for other weights (see [`crate::threshold`]).

mod calibration;

use crate::PredictError;
use burn::tensor::Device;
use fer_core::tensors::TensorSet;
use fer_core::transform::Transform;
use fer_models::arch::Net;
use fer_models::svm::SavedSvms;
use fer_models::{LoadModel, ModelArtifact};
use fer_schema::calibration::{Method, ScoreKind};
use std::path::{Path, PathBuf};

pub use calibration::Calibration;

/// How to load a model folder.
#[derive(Debug, Clone, Default)]
pub struct ModelOptions {
    /// SVM folders: which saved model (`hog/rbf`, ...); default the best by val accuracy in
    /// `metrics.json`.
    pub svm: Option<String>,
    /// Override the fitted transform (default: the CNN's `model.json`, or for an SVM folder
    /// `transform.json` beside it or in `../preprocess/`).
    pub transform: Option<PathBuf>,
    /// `cpu` (default) or `wgpu`.
    pub device: Option<String>,
    /// Faces per forward pass (default: [`CPU_BATCH`] for a CNN on the CPU, else the
    /// artifact's `eval_batch_size`; 256 for SVMs).
    pub batch: Option<usize>,
}

/// A scoring function for [`Scorer::from_fn`]: `n` normalized faces in (`n * side * side`
/// values), `n` p(happy) out.
pub type ScoreFn = Box<dyn Fn(&[f32], usize) -> Vec<f64> + Send>;

enum Inner {
    Cnn {
        net: Box<Net>,
        device: Device,
        happy: usize,
    },
    Svm {
        svms: SavedSvms,
        name: String,
    },
    Custom(ScoreFn),
}

/// What a model of more than two classes says of each class, besides p(happy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassScore {
    /// A CNN's softmax probability of each class (flip-averaged with `tta_flip`;
    /// uncalibrated: the calibration map is fitted for p(happy) alone).
    Probability,
    /// An SVM's one-vs-rest decision value of each class (>= 0: that class's SVM says yes; the
    /// predicted class is the largest). Not a probability, and no map makes it one here.
    Decision,
}

impl ClassScore {
    /// The CSV columns' prefix: `prob_<class>` (as predictions.parquet's; `p_happy`, the
    /// calibrated p(happy), is already a column) or `d_<class>`.
    pub fn prefix(self) -> &'static str {
        match self {
            ClassScore::Probability => "prob_",
            ClassScore::Decision => "d_",
        }
    }
    /// The JSON object of a face: `emotions` (probabilities) or `decisions`.
    pub fn key(self) -> &'static str {
        match self {
            ClassScore::Probability => "emotions",
            ClassScore::Decision => "decisions",
        }
    }
}

/// The classes of a model of more than two (`model.json`'s `class_names`, or the SVMs' saved
/// class names), in class order, and what their scores are.
#[derive(Debug, Clone, PartialEq)]
pub struct Classes {
    pub names: fer_core::Classes,
    pub score: ClassScore,
}

/// Scores of a batch of faces: p(happy) of each, and with [`Scorer::classes`] a score per class
/// (in class order) of each (empty otherwise).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scored {
    pub p_happy: Vec<f64>,
    pub per_class: Vec<Vec<f64>>,
}

/// Faces per forward pass of a CNN on the CPU (unless `--batch-size` says otherwise).
pub const CPU_BATCH: usize = 32;

/// A loaded model: the fitted transform its inputs need and p(happy) for a batch.
pub struct Scorer {
    inner: Inner,
    /// The transform the model was trained on (`preprocess`'s fitted `transform.json`).
    pub transform: Transform,
    /// Average with the mirrored face (CNNs trained with `tta_flip`).
    pub tta_flip: bool,
    /// Faces per forward pass.
    pub batch: usize,
    /// What was loaded, for logs and the service's `/health`.
    pub description: String,
    /// The weights file (`model.safetensors`) and its blake3 hash, when loaded from a folder.
    pub weights: Option<(PathBuf, String)>,
    /// The transform was overridden (`--transform`): not the one the model was trained on.
    pub transform_overridden: bool,
    /// The map from the model's raw score to the p(happy) it reports (`calibration.json`).
    pub calibration: Calibration,
    /// A model of more than two classes: its classes and their scores (`None`: binary, p(happy)
    /// alone).
    pub classes: Option<Classes>,
}

fn model_err(path: &Path, m: impl std::fmt::Display) -> PredictError {
    PredictError::Model {
        path: path.to_path_buf(),
        message: m.to_string(),
    }
}

impl Scorer {
    /// Load a model folder: a CNN when it has `model.json`, else the SVMs of `model.safetensors`.
    pub fn load(dir: &Path, opts: &ModelOptions) -> Result<Scorer, PredictError> {
        if !dir.is_dir() {
            return Err(model_err(dir, "model folder not found"));
        }
        if dir.join("model.json").is_file() {
            let art = ModelArtifact::load(dir)?;
            let (device, info) = fer_models::device_info(opts.device.as_deref().unwrap_or("cpu"))?;
            if info.device != "cpu" {
                // Once per process: wgpu's adapter is brought up once and shared.
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| eprintln!("fer-predict: device: {info}"));
            }
            let net = art.load_model(dir, &device)?;
            let mut s = Scorer::from_cnn(net, &art, device)?;
            s.weights = Some(weights_hash(dir)?);
            s.calibration = Calibration::load(dir, ScoreKind::PHappy, None)?;
            if let Some(t) = &opts.transform {
                s.transform = Transform::load(t)?;
                s.transform_overridden = true;
            }
            if let Some(b) = opts.batch {
                s.batch = b.max(1);
            }
            s.description = format!(
                "{} ({}, {})",
                dir.display(),
                s.description,
                s.calibration.describe()
            );
            return Ok(s);
        }
        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(model_err(
                dir,
                "neither model.json (a train_cnn model) nor model.safetensors (train_svm) found",
            ));
        }
        let svms = SavedSvms::load(&weights)?;
        let name = match &opts.svm {
            Some(n) => n.clone(),
            None => best_svm(dir).unwrap_or_else(|| {
                svms.models
                    .first()
                    .map(|m| m.name.clone())
                    .unwrap_or_default()
            }),
        };
        if svms.model(&name).is_none() {
            let names: Vec<&str> = svms.models.iter().map(|m| m.name.as_str()).collect();
            return Err(model_err(
                &weights,
                format!("no SVM `{name}` (saved: {})", names.join(", ")),
            ));
        }
        let tpath = match &opts.transform {
            Some(t) => t.clone(),
            None => [
                dir.join("transform.json"),
                dir.join("..").join("preprocess").join("transform.json"),
            ]
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(|| {
                model_err(
                    dir,
                    "no transform.json beside the SVMs or in ../preprocess/ (use --transform)",
                )
            })?,
        };
        let transform = Transform::load(&tpath)?;
        let calibration = Calibration::load(dir, ScoreKind::SvmDecision, Some(&name))?;
        let classes = svms.class_names.is_multiclass().then(|| Classes {
            names: svms.class_names.clone(),
            score: ClassScore::Decision,
        });
        Ok(Scorer {
            classes,
            weights: Some(weights_hash(dir)?),
            transform_overridden: opts.transform.is_some(),
            description: format!("{} (svm {name}, {})", dir.display(), calibration.describe()),
            inner: Inner::Svm { svms, name },
            calibration,
            transform,
            tta_flip: false,
            batch: opts.batch.unwrap_or(256).max(1),
        })
    }

    /// A CNN already in memory (tests, bench) with its artifact description.
    pub fn from_cnn(net: Net, art: &ModelArtifact, device: Device) -> Result<Scorer, PredictError> {
        let happy = art
            .class_names
            .happy()
            .map_err(|e| PredictError::Input(format!("the model: {e}")))?;
        // On the CPU, batches of 32 run in parallel (one per core) and stay in cache: faster
        // than the training's eval batch (fer-small: 446 -> 604 faces/s on 2 cores).
        let batch = if device == Device::flex() {
            CPU_BATCH
        } else {
            art.settings.eval_batch_size.max(1)
        };
        let classes = art.class_names.is_multiclass().then(|| Classes {
            names: art.class_names.clone(),
            score: ClassScore::Probability,
        });
        Ok(Scorer {
            classes,
            inner: Inner::Cnn {
                net: Box::new(net),
                device,
                happy,
            },
            transform: art.transform.clone(),
            tta_flip: art.tta_flip,
            batch,
            description: format!(
                "cnn {}, {} params{}",
                art.model.arch,
                art.params,
                if art.tta_flip { ", flip averaging" } else { "" }
            ),
            weights: None,
            transform_overridden: false,
            calibration: Calibration::none(ScoreKind::PHappy, None),
        })
    }

    /// A scorer made of a function (tests, fault injection, other runtimes): `f` gets `n`
    /// normalized faces and returns their p(happy). Its score is p(happy); no weights file.
    pub fn from_fn(transform: Transform, description: &str, f: ScoreFn) -> Scorer {
        Scorer {
            classes: None,
            inner: Inner::Custom(f),
            transform,
            tta_flip: false,
            batch: CPU_BATCH,
            description: description.to_string(),
            weights: None,
            transform_overridden: false,
            calibration: Calibration::none(ScoreKind::PHappy, None),
        }
    }

    /// The score `recommendation.json` thresholds for this model: `p_happy` (CNNs: the
    /// uncalibrated softmax output, as in `predictions.parquet`) or `svm_decision` (SVMs).
    pub fn score_kind(&self) -> &'static str {
        match &self.inner {
            Inner::Svm { .. } => "svm_decision",
            Inner::Cnn { .. } | Inner::Custom(_) => "p_happy",
        }
    }

    /// SVM folders: the saved model scored.
    pub fn svm_name(&self) -> Option<&str> {
        match &self.inner {
            Inner::Svm { name, .. } => Some(name),
            _ => None,
        }
    }

    /// A threshold on this model's raw score (see [`Scorer::score_kind`]: the scale the report
    /// chose it on, the uncalibrated `predictions.parquet` score) as a threshold on the p(happy)
    /// this scorer reports: the same calibration map applied to it. The map is increasing, so
    /// `calibrated p >= map(t)` labels every face as `raw score >= t` would (up to the
    /// `P_CLAMP` ends of a CNN's p). `None` when the map does not keep the order (a Platt
    /// slope `a >= 0` or a temperature <= 0, which no fit writes).
    pub fn score_to_p(&self, t: f64) -> Option<f64> {
        let keeps_order = match &self.calibration.method {
            Method::Platt { a, .. } => *a < 0.0,
            Method::Temperature { temperature } => *temperature > 0.0,
            Method::Uncalibrated { .. } => true,
        };
        keeps_order.then(|| self.calibration.apply(t))
    }

    /// Side of the model's input.
    pub fn side(&self) -> usize {
        self.transform.size as usize
    }

    /// p(happy) of `n` normalized faces laid out row-major in `x` (`n * side * side` values).
    pub fn p_happy(&self, x: Vec<f32>) -> Result<Vec<f64>, PredictError> {
        Ok(self.score(x)?.p_happy)
    }

    /// p(happy) of `n` normalized faces laid out row-major in `x` (`n * side * side` values),
    /// and with [`Scorer::classes`] each face's score per class.
    pub fn score(&self, x: Vec<f32>) -> Result<Scored, PredictError> {
        let side = self.side();
        let n = x.len() / (side * side).max(1);
        if n == 0 {
            return Ok(Scored::default());
        }
        let per_class = self.classes.is_some();
        let set = TensorSet {
            n,
            height: side,
            width: side,
            x,
            y: vec![0; n],
            truths: None,
        };
        match &self.inner {
            Inner::Cnn { net, device, happy } => {
                let probs =
                    fer_models::score::predict(net, &set, self.batch, self.tta_flip, device);
                Ok(Scored {
                    p_happy: probs
                        .iter()
                        .map(|p| self.calibration.apply(p[*happy]))
                        .collect(),
                    per_class: if per_class { probs } else { Vec::new() },
                })
            }
            Inner::Svm { svms, name } if per_class => {
                // Every class's one-vs-rest decision; p(happy) from happy's, the very values
                // `decisions` gives (the saved happy decision is happy's one-vs-rest).
                let v = svms
                    .class_decisions(name, &set)
                    .map_err(PredictError::Input)?;
                let h = svms
                    .class_names
                    .happy()
                    .map_err(|e| PredictError::Input(format!("the SVMs: {e}")))?;
                Ok(Scored {
                    p_happy: v
                        .column(h)
                        .iter()
                        .map(|&d| self.calibration.apply(d))
                        .collect(),
                    per_class: v.outer_iter().map(|r| r.to_vec()).collect(),
                })
            }
            Inner::Svm { svms, name } => {
                // The same blocks of rows whatever the batch: decisions do not depend on it.
                let d = svms.decisions(name, &set).map_err(PredictError::Input)?;
                Ok(Scored {
                    p_happy: d.iter().map(|&d| self.calibration.apply(d)).collect(),
                    per_class: Vec::new(),
                })
            }
            Inner::Custom(f) => {
                let p = f(&set.x, n);
                if p.len() != n {
                    return Err(PredictError::Input(format!(
                        "the scorer returned {} scores for {n} faces",
                        p.len()
                    )));
                }
                Ok(Scored {
                    p_happy: p,
                    per_class: Vec::new(),
                })
            }
        }
    }
}

/// `model.safetensors` of a model folder and its blake3 hash.
fn weights_hash(dir: &Path) -> Result<(PathBuf, String), PredictError> {
    let w = dir.join("model.safetensors");
    let h = fer_core::hash::hash_file(&w)?;
    Ok((w, h))
}

/// The best SVM by val accuracy, from `metrics.json` (`best.name`).
fn best_svm(dir: &Path) -> Option<String> {
    let m: fer_schema::metrics::SvmMetrics =
        fer_schema::read_json(&dir.join("metrics.json")).ok()?;
    Some(m.best.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fer_eval::calibration::{apply_temperature, platt_p};

    fn svm_scorer(platt: (f64, f64)) -> Scorer {
        Scorer {
            inner: Inner::Svm {
                svms: SavedSvms {
                    features: vec![],
                    models: vec![],
                    class_names: fer_core::Classes::default(),
                },
                name: "hog/linear".into(),
            },
            transform: Transform {
                size: 48,
                resize_filter: "triangle".into(),
                denoise: fer_core::transform::Denoise::None,
                equalize: fer_core::transform::Equalize::None,
                normalization: fer_core::transform::Normalization::Standardize {
                    mean: 0.5,
                    std: 0.25,
                },
            },
            tta_flip: false,
            batch: 256,
            description: "svm".into(),
            weights: None,
            transform_overridden: false,
            classes: None,
            calibration: Calibration {
                kind: ScoreKind::SvmDecision,
                method: Method::Platt {
                    a: platt.0,
                    b: platt.1,
                },
                warning: None,
            },
        }
    }

    #[test]
    fn svm_decision_thresholds_map_through_platt() {
        // Higher decisions mean happier (a < 0): "decision < t" is "p < platt(t)".
        let s = svm_scorer((-1.5, 0.2));
        assert_eq!(s.score_kind(), "svm_decision");
        assert_eq!(s.svm_name(), Some("hog/linear"));
        let t = 0.4;
        let p = s.score_to_p(t).unwrap();
        assert_eq!(p, platt_p(-1.5, 0.2, t));
        assert!(platt_p(-1.5, 0.2, t - 0.01) < p && p < platt_p(-1.5, 0.2, t + 0.01));
        // A map that reverses the order cannot carry a decision threshold.
        assert_eq!(svm_scorer((1.5, 0.0)).score_to_p(t), None);
    }

    #[test]
    fn p_happy_thresholds_map_through_the_temperature() {
        let mut s = svm_scorer((-1.0, 0.0));
        s.calibration = Calibration {
            kind: ScoreKind::PHappy,
            method: Method::Temperature { temperature: 2.0 },
            warning: None,
        };
        // A raw p(happy) threshold of 0.8 is a calibrated one of sigmoid(logit(0.8) / 2).
        let p = s.score_to_p(0.8).unwrap();
        assert_eq!(p, apply_temperature(0.8, 2.0));
        assert!(p < 0.8 && p > 0.5, "{p}");
        // The map keeps the order: raw >= 0.8 exactly when calibrated >= p.
        for raw in [0.1, 0.5, 0.79, 0.8, 0.81, 0.99] {
            assert_eq!(raw >= 0.8, apply_temperature(raw, 2.0) >= p, "{raw}");
        }
        // Uncalibrated: the threshold as it is.
        s.calibration = Calibration::none(ScoreKind::PHappy, Some("why".into()));
        assert_eq!(s.score_to_p(0.8), Some(0.8));
    }
}
