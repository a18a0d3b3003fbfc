//! The model artifact a prediction runs: a `train_cnn` model folder (`model.json` +
//! `model.safetensors`, also `tune/best`) or the `train_svm` folder (`model.safetensors` of
//! every chosen SVM), turned into one function: normalized 48x48 faces in, p(happy) out.
//! Also records the blake3 hash of the weights file, so a threshold chosen for these weights
//! can be told from one chosen for other weights (see [`crate::threshold`]).

use crate::PredictError;
use burn::tensor::Device;
use fer_core::tensors::TensorSet;
use fer_core::transform::Transform;
use fer_models::arch::Net;
use fer_models::svm::SavedSvms;
use fer_models::{LoadModel, ModelArtifact};
use std::path::{Path, PathBuf};

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
        /// Platt scaling `p = 1 / (1 + exp(a d + b))`, fitted on the val decisions.
        platt: (f64, f64),
    },
    Custom(ScoreFn),
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
            let device = fer_models::device(opts.device.as_deref().unwrap_or("cpu"))?;
            let net = art.load_model(dir, &device)?;
            let mut s = Scorer::from_cnn(net, &art, device)?;
            s.weights = Some(weights_hash(dir)?);
            if let Some(t) = &opts.transform {
                s.transform = Transform::load(t)?;
                s.transform_overridden = true;
            }
            if let Some(b) = opts.batch {
                s.batch = b.max(1);
            }
            s.description = format!("{} ({})", dir.display(), s.description);
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
        let platt =
            platt_from_predictions(&dir.join("predictions.parquet"), &name).unwrap_or((-1.0, 0.0));
        Ok(Scorer {
            weights: Some(weights_hash(dir)?),
            transform_overridden: opts.transform.is_some(),
            description: format!(
                "{} (svm {name}, Platt a={:.4} b={:.4})",
                dir.display(),
                platt.0,
                platt.1
            ),
            inner: Inner::Svm { svms, name, platt },
            transform,
            tta_flip: false,
            batch: opts.batch.unwrap_or(256).max(1),
        })
    }

    /// A CNN already in memory (tests, bench) with its artifact description.
    pub fn from_cnn(net: Net, art: &ModelArtifact, device: Device) -> Result<Scorer, PredictError> {
        let happy = art
            .class_names
            .iter()
            .position(|c| c == "happy")
            .ok_or_else(|| {
                PredictError::Input(format!(
                    "the model's classes {:?} have no `happy`",
                    art.class_names
                ))
            })?;
        // On the CPU, batches of 32 run in parallel (one per core) and stay in cache: faster
        // than the training's eval batch (fer-small: 446 -> 604 faces/s on 2 cores).
        let batch = if device == Device::flex() {
            CPU_BATCH
        } else {
            art.settings.eval_batch_size.max(1)
        };
        Ok(Scorer {
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
        })
    }

    /// A scorer made of a function (tests, fault injection, other runtimes): `f` gets `n`
    /// normalized faces and returns their p(happy). Its score is p(happy); no weights file.
    pub fn from_fn(transform: Transform, description: &str, f: ScoreFn) -> Scorer {
        Scorer {
            inner: Inner::Custom(f),
            transform,
            tta_flip: false,
            batch: CPU_BATCH,
            description: description.to_string(),
            weights: None,
            transform_overridden: false,
        }
    }

    /// The score `recommendation.json` thresholds for this model: `p_happy` (CNNs) or
    /// `svm_decision` (SVMs; this scorer maps decisions to p(happy) by Platt scaling).
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

    /// A threshold on this model's own score (see [`Scorer::score_kind`]) as a p(happy)
    /// threshold: itself for p(happy), the Platt map of an SVM decision. `None` when the map
    /// does not keep the order (a Platt slope `a >= 0`: higher decisions would mean less happy).
    pub fn score_to_p(&self, t: f64) -> Option<f64> {
        match &self.inner {
            Inner::Svm { platt, .. } => (platt.0 < 0.0).then(|| platt_p(*platt, t)),
            Inner::Cnn { .. } | Inner::Custom(_) => Some(t),
        }
    }

    /// Side of the model's input.
    pub fn side(&self) -> usize {
        self.transform.size as usize
    }

    /// p(happy) of `n` normalized faces laid out row-major in `x` (`n * side * side` values).
    pub fn p_happy(&self, x: Vec<f32>) -> Result<Vec<f64>, PredictError> {
        let side = self.side();
        let n = x.len() / (side * side).max(1);
        if n == 0 {
            return Ok(vec![]);
        }
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
                Ok(
                    fer_models::score::predict(net, &set, self.batch, self.tta_flip, device)
                        .into_iter()
                        .map(|p| p[*happy])
                        .collect(),
                )
            }
            Inner::Svm { svms, name, platt } => {
                let mut out = Vec::with_capacity(n);
                // The same blocks of rows whatever the batch: decisions do not depend on it.
                let d = svms.decisions(name, &set).map_err(PredictError::Input)?;
                out.extend(d.iter().map(|&d| platt_p(*platt, d)));
                Ok(out)
            }
            Inner::Custom(f) => {
                let p = f(&set.x, n);
                if p.len() != n {
                    return Err(PredictError::Input(format!(
                        "the scorer returned {} scores for {n} faces",
                        p.len()
                    )));
                }
                Ok(p)
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

/// `p = 1 / (1 + exp(a d + b))`, computed without overflow.
fn platt_p((a, b): (f64, f64), d: f64) -> f64 {
    let z = a * d + b;
    if z >= 0.0 {
        let e = (-z).exp();
        e / (1.0 + e)
    } else {
        1.0 / (1.0 + z.exp())
    }
}

/// The best SVM by val accuracy, from `metrics.json` (`best.name`).
fn best_svm(dir: &Path) -> Option<String> {
    let m: fer_core::schema::metrics::SvmMetrics =
        fer_core::schema::read_json(&dir.join("metrics.json")).ok()?;
    Some(m.best.name)
}

/// Platt scaling of one SVM's decision values (label 0 = happy is the positive class),
/// fitted on its **val** rows of `predictions.parquet`: never on test.
fn platt_from_predictions(path: &Path, name: &str) -> Option<(f64, f64)> {
    let rows = fer_core::schema::predictions::read_svm(path).ok()?;
    let (d, happy): (Vec<f64>, Vec<bool>) = rows
        .iter()
        .filter(|r| r.model == name && r.split == fer_core::Split::Val)
        .map(|r| (r.decision, r.label == 0))
        .unzip();
    platt_fit(&d, &happy)
}

/// Platt's sigmoid fit (Lin, Lin and Weng 2007: Newton's method with backtracking on the
/// regularized targets). `None` without both classes.
pub fn platt_fit(d: &[f64], positive: &[bool]) -> Option<(f64, f64)> {
    let np = positive.iter().filter(|&&p| p).count() as f64;
    let nn = positive.len() as f64 - np;
    if np == 0.0 || nn == 0.0 {
        return None;
    }
    let (hi, lo) = ((np + 1.0) / (np + 2.0), 1.0 / (nn + 2.0));
    let t: Vec<f64> = positive.iter().map(|&p| if p { hi } else { lo }).collect();
    let (mut a, mut b) = (0.0, ((nn + 1.0) / (np + 1.0)).ln());
    let f = |a: f64, b: f64| -> f64 {
        d.iter()
            .zip(&t)
            .map(|(&x, &t)| {
                let z = x * a + b;
                if z >= 0.0 {
                    t * z + (1.0 + (-z).exp()).ln()
                } else {
                    (t - 1.0) * z + (1.0 + z.exp()).ln()
                }
            })
            .sum()
    };
    let mut fval = f(a, b);
    for _ in 0..100 {
        let (mut h11, mut h22, mut h21, mut g1, mut g2) = (1e-12, 1e-12, 0.0, 0.0, 0.0);
        for (&x, &t) in d.iter().zip(&t) {
            let z = x * a + b;
            let (p, q) = if z >= 0.0 {
                let e = (-z).exp();
                (e / (1.0 + e), 1.0 / (1.0 + e))
            } else {
                let e = z.exp();
                (1.0 / (1.0 + e), e / (1.0 + e))
            };
            let d2 = p * q;
            h11 += x * x * d2;
            h22 += d2;
            h21 += x * d2;
            let d1 = t - p;
            g1 += x * d1;
            g2 += d1;
        }
        if g1.abs() < 1e-5 && g2.abs() < 1e-5 {
            break;
        }
        let det = h11 * h22 - h21 * h21;
        let (da, db) = (-(h22 * g1 - h21 * g2) / det, -(-h21 * g1 + h11 * g2) / det);
        let gd = g1 * da + g2 * db;
        let mut step = 1.0;
        while step >= 1e-10 {
            let (na, nb) = (a + step * da, b + step * db);
            let nf = f(na, nb);
            if nf < fval + 1e-4 * step * gd {
                (a, b, fval) = (na, nb, nf);
                break;
            }
            step /= 2.0;
        }
        if step < 1e-10 {
            break;
        }
    }
    Some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platt_separates_and_is_monotone() {
        let d: Vec<f64> = (0..200).map(|i| (i as f64 - 100.0) / 25.0).collect();
        // Mostly positive for d > 0, with some noise near 0.
        let pos: Vec<bool> = d
            .iter()
            .enumerate()
            .map(|(i, &x)| if i % 10 == 0 { x < 0.0 } else { x > 0.0 })
            .collect();
        let (a, b) = platt_fit(&d, &pos).unwrap();
        assert!(a < 0.0, "a = {a}: higher decisions must mean higher p");
        let p = |x| platt_p((a, b), x);
        assert!(p(3.0) > 0.9 && p(-3.0) < 0.1, "{} {}", p(3.0), p(-3.0));
        assert!((p(0.0) - 0.5).abs() < 0.1);
        assert!(platt_fit(&d, &[true; 200]).is_none());
        assert_eq!(platt_p((-1.0, 0.0), 1e6), 1.0);
        assert_eq!(platt_p((-1.0, 0.0), -1e6), 0.0);
    }

    fn svm_scorer(platt: (f64, f64)) -> Scorer {
        Scorer {
            inner: Inner::Svm {
                svms: SavedSvms {
                    features: vec![],
                    models: vec![],
                },
                name: "hog/linear".into(),
                platt,
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
        assert_eq!(p, platt_p((-1.5, 0.2), t));
        assert!(platt_p((-1.5, 0.2), t - 0.01) < p && p < platt_p((-1.5, 0.2), t + 0.01));
        // A map that reverses the order cannot carry a decision threshold.
        assert_eq!(svm_scorer((1.5, 0.0)).score_to_p(t), None);
    }
}
