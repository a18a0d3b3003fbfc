//! The SVMs: fitting (linfa-svm's SMO for `rbf` and `linear`, dual coordinate descent on
//! random Fourier features for `rff`), the decision function, and the saved form
//! (`model.safetensors`) that reloads to bit-identical decision values.
//!
//! Decision values are positive for **happy** (label 0): the SVM's positive class is
//! `label == 0`, and `pred = 0` when `decision >= 0` (linfa's rule).

use crate::features::{FeatureKind, FeaturePipeline, HogParams, Projection, Rff, Scaler};
use fer_core::tensors::TensorSet;
use linfa::traits::Fit;
use linfa_svm::Svm;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Kernels the stage trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelKind {
    /// Gaussian kernel `exp(-gamma |x-y|^2)`, linfa-svm (SMO, full kernel matrix).
    Rbf,
    /// Linear kernel, linfa-svm (SMO, full kernel matrix).
    Linear,
    /// Random Fourier features approximating the RBF kernel, then a linear SVM trained by dual
    /// coordinate descent (liblinear's hinge-loss solver) on every train row.
    Rff,
}

impl KernelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KernelKind::Rbf => "rbf",
            KernelKind::Linear => "linear",
            KernelKind::Rff => "rff",
        }
    }
    pub fn parse(s: &str) -> Option<KernelKind> {
        match s {
            "rbf" => Some(KernelKind::Rbf),
            "linear" => Some(KernelKind::Linear),
            "rff" => Some(KernelKind::Rff),
            _ => None,
        }
    }
    /// Whether the kernel has a gamma.
    pub fn uses_gamma(self) -> bool {
        self != KernelKind::Linear
    }
}

/// A fitted decision function `f(x)`; `f(x) >= 0` means happy.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// `sum_i coef_i exp(-gamma |sv_i - x|^2) - rho`.
    Rbf {
        gamma: f64,
        sv: Array2<f64>,
        coef: Array1<f64>,
        rho: f64,
    },
    /// `w . x + bias`.
    Linear { w: Array1<f64>, bias: f64 },
    /// `w . z(x) + bias` with `z` the random Fourier features.
    Rff { rff: Rff, w: Array1<f64>, bias: f64 },
}

/// Rows per block when evaluating decisions (fixed, so every evaluation of the same rows does
/// the same arithmetic).
const BLOCK: usize = 256;

impl Decision {
    /// Decision values of the rows of `x` (features from the model's pipeline).
    pub fn values(&self, x: &Array2<f64>) -> Array1<f64> {
        let blocks: Vec<Array1<f64>> = x
            .axis_chunks_iter(Axis(0), BLOCK)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|b| self.block(b))
            .collect();
        let mut out = Vec::with_capacity(x.nrows());
        for b in blocks {
            out.extend(b);
        }
        Array1::from(out)
    }

    fn block(&self, x: ArrayView2<f64>) -> Array1<f64> {
        match self {
            Decision::Rbf {
                gamma,
                sv,
                coef,
                rho,
            } => {
                let xx: Array1<f64> = x.outer_iter().map(|r| r.dot(&r)).collect();
                let ss: Array1<f64> = sv.outer_iter().map(|r| r.dot(&r)).collect();
                let dots = x.dot(&sv.t());
                let mut out = Array1::zeros(x.nrows());
                for (i, row) in dots.outer_iter().enumerate() {
                    let mut s = 0.0;
                    for ((&d, &s2), &c) in row.iter().zip(&ss).zip(coef) {
                        let d2 = (xx[i] + s2 - 2.0 * d).max(0.0);
                        s += c * (-gamma * d2).exp();
                    }
                    out[i] = s - rho;
                }
                out
            }
            Decision::Linear { w, bias } => x.dot(w) + *bias,
            Decision::Rff { rff, w, bias } => rff.map(&x.to_owned()).dot(w) + *bias,
        }
    }

    /// Number of support vectors (`rbf`); the weight count for linear models.
    pub fn size(&self) -> usize {
        match self {
            Decision::Rbf { sv, .. } => sv.nrows(),
            Decision::Linear { w, .. } | Decision::Rff { w, .. } => w.len(),
        }
    }
}

/// What a fit reports besides the decision function.
#[derive(Debug, Clone, PartialEq)]
pub struct FitInfo {
    /// Support vectors (alpha > 0).
    pub n_support: usize,
    /// The solver's own summary (iterations, objective, exit reason).
    pub solver: String,
}

/// linfa-svm's C-SVC with an RBF (`gamma = Some`) or linear (`None`) kernel; `c` is (C of
/// happy rows, C of not-happy rows). `tol` is the SMO stopping tolerance; linfa's
/// `gaussian_kernel(eps)` takes eps = 1 / gamma.
pub fn fit_smo(
    x: ArrayView2<f64>,
    happy: &[bool],
    c: (f64, f64),
    gamma: Option<f64>,
    tol: f64,
) -> Result<(Decision, FitInfo), String> {
    // No shrinking: linfa-svm 0.8.1's `do_shrinking` can step its active-set counter below 0
    // and panic (index usize::MAX) when every variable qualifies for shrinking.
    let params = Svm::<f64, bool>::params()
        .pos_neg_weights(c.0, c.1)
        .eps(tol)
        .shrinking(false);
    let params = match gamma {
        Some(g) => params.gaussian_kernel(1.0 / g),
        None => params.linear_kernel(),
    };
    let ds = linfa::DatasetBase::new(x, ndarray::ArrayView1::from(happy));
    let svm = params.fit(&ds).map_err(|e| format!("linfa-svm: {e}"))?;
    let tiny = 100.0 * f64::EPSILON;
    let idx: Vec<usize> = (0..svm.alpha.len())
        .filter(|&i| svm.alpha[i].abs() > tiny)
        .collect();
    let info = FitInfo {
        n_support: idx.len(),
        solver: svm.to_string(),
    };
    let decision = match gamma {
        Some(g) => Decision::Rbf {
            gamma: g,
            sv: x.select(Axis(0), &idx),
            coef: idx.iter().map(|&i| svm.alpha[i]).collect(),
            rho: svm.rho,
        },
        None => {
            // linfa keeps the hyperplane private; its weighted sum of a unit vector is exactly
            // the weight (every other product is 0).
            let d = x.ncols();
            let mut e = Array1::<f64>::zeros(d);
            let mut w = Array1::<f64>::zeros(d);
            for j in 0..d {
                e[j] = 1.0;
                w[j] = svm.weighted_sum(&e);
                e[j] = 0.0;
            }
            Decision::Linear { w, bias: -svm.rho }
        }
    };
    Ok((decision, info))
}

/// Stopping tolerance of [`fit_dcd`] on the projected gradient (liblinear's default, 0.1).
pub const DCD_TOL: f64 = 0.1;
/// Epoch cap of [`fit_dcd`] (liblinear's default, 1000).
pub const DCD_MAX_EPOCHS: usize = 1000;

/// Linear C-SVC (hinge loss, L2 penalty) by dual coordinate descent (Hsieh et al. 2008, the
/// solver of liblinear and scikit-learn's `LinearSVC(loss="hinge")`), the bias as a constant
/// feature; `c` is (C of happy rows, C of not-happy rows). Visits rows in a seeded random
/// order: deterministic for a seed.
pub fn fit_dcd(
    z: &Array2<f64>,
    happy: &[bool],
    c: (f64, f64),
    seed: u64,
) -> (Array1<f64>, f64, FitInfo) {
    let n = z.nrows();
    let y: Vec<f64> = happy.iter().map(|&h| if h { 1.0 } else { -1.0 }).collect();
    let upper: Vec<f64> = happy.iter().map(|&h| if h { c.0 } else { c.1 }).collect();
    let qii: Vec<f64> = z.outer_iter().map(|r| r.dot(&r) + 1.0).collect();
    let mut alpha = vec![0.0f64; n];
    let mut w = Array1::<f64>::zeros(z.ncols());
    let mut b = 0.0f64;
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut epochs = 0;
    let mut gap = f64::INFINITY;
    while epochs < DCD_MAX_EPOCHS {
        epochs += 1;
        order.shuffle(&mut rng);
        let (mut maxpg, mut minpg) = (f64::NEG_INFINITY, f64::INFINITY);
        for &i in &order {
            let zi = z.row(i);
            let g = y[i] * (w.dot(&zi) + b) - 1.0;
            let pg = if alpha[i] == 0.0 {
                g.min(0.0)
            } else if alpha[i] == upper[i] {
                g.max(0.0)
            } else {
                g
            };
            maxpg = maxpg.max(pg);
            minpg = minpg.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (old - g / qii[i]).clamp(0.0, upper[i]);
                let delta = (alpha[i] - old) * y[i];
                w.scaled_add(delta, &zi);
                b += delta;
            }
        }
        gap = maxpg - minpg;
        if gap < DCD_TOL {
            break;
        }
    }
    let n_support = alpha.iter().filter(|&&a| a > 0.0).count();
    let solver = format!(
        "dual coordinate descent: {epochs} epochs, projected-gradient gap {gap:.3e}{}, {n_support} support vectors",
        if gap < DCD_TOL {
            ""
        } else {
            " (epoch cap reached)"
        }
    );
    (w, b, FitInfo { n_support, solver })
}

/// One saved model: a feature pipeline's name and a decision function.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedModel {
    /// `<feature>/<kernel>`, e.g. `hog/rbf`.
    pub name: String,
    pub feature: FeatureKind,
    pub kernel: KernelKind,
    pub c: f64,
    pub gamma: Option<f64>,
    pub decision: Decision,
}

/// Every chosen model with the feature pipelines they read: `model.safetensors`.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedSvms {
    pub features: Vec<FeaturePipeline>,
    pub models: Vec<SavedModel>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FeatureMeta {
    kind: FeatureKind,
    hog: HogParams,
    value_range: (f32, f32),
    pca: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ModelMeta {
    name: String,
    feature: FeatureKind,
    kernel: KernelKind,
    c: f64,
    gamma: Option<f64>,
    /// `rho` for rbf (decision = sum - rho), the bias for linear and rff.
    offset: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    format: String,
    features: Vec<FeatureMeta>,
    models: Vec<ModelMeta>,
}

const FORMAT: &str = "fer-train-svm/1";

impl SavedSvms {
    pub fn feature(&self, kind: FeatureKind) -> Option<&FeaturePipeline> {
        self.features.iter().find(|f| f.kind == kind)
    }

    pub fn model(&self, name: &str) -> Option<&SavedModel> {
        self.models.iter().find(|m| m.name == name)
    }

    /// Decision values of model `name` for normalized images.
    pub fn decisions(&self, name: &str, images: &TensorSet) -> Result<Array1<f64>, String> {
        let m = self
            .model(name)
            .ok_or_else(|| format!("no model `{name}`"))?;
        let f = self
            .feature(m.feature)
            .ok_or_else(|| format!("no feature pipeline `{}`", m.feature.as_str()))?;
        Ok(m.decision.values(&f.transform(images)?))
    }

    /// Write every tensor as f64 (little-endian, exact) and the rest as JSON in the header's
    /// `fer` metadata key.
    pub fn save(&self, path: &Path) -> fer_core::Result<()> {
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let mut put = |name: String, shape: Vec<usize>, v: &mut dyn Iterator<Item = f64>| {
            let bytes: Vec<u8> = v.flat_map(|x| x.to_le_bytes()).collect();
            tensors.push((name, shape, bytes));
        };
        let mut meta = Meta {
            format: FORMAT.into(),
            features: vec![],
            models: vec![],
        };
        for f in &self.features {
            let k = f.kind.as_str();
            let d = f.scaler.mean.len();
            put(
                format!("{k}.scaler_mean"),
                vec![d],
                &mut f.scaler.mean.iter().copied(),
            );
            put(
                format!("{k}.scaler_std"),
                vec![d],
                &mut f.scaler.std.iter().copied(),
            );
            if let Some(p) = &f.pca {
                put(
                    format!("{k}.pca_mean"),
                    vec![d],
                    &mut p.mean.iter().copied(),
                );
                put(
                    format!("{k}.pca_components"),
                    p.components.shape().to_vec(),
                    &mut p.components.iter().copied(),
                );
            }
            meta.features.push(FeatureMeta {
                kind: f.kind,
                hog: f.hog,
                value_range: f.value_range,
                pca: f.pca.as_ref().map_or(0, |p| p.components.nrows()),
            });
        }
        for m in &self.models {
            let n = &m.name;
            let offset = match &m.decision {
                Decision::Rbf { sv, coef, rho, .. } => {
                    put(
                        format!("{n}.sv"),
                        sv.shape().to_vec(),
                        &mut sv.iter().copied(),
                    );
                    put(
                        format!("{n}.coef"),
                        vec![coef.len()],
                        &mut coef.iter().copied(),
                    );
                    *rho
                }
                Decision::Linear { w, bias } => {
                    put(format!("{n}.w"), vec![w.len()], &mut w.iter().copied());
                    *bias
                }
                Decision::Rff { rff, w, bias } => {
                    put(format!("{n}.w"), vec![w.len()], &mut w.iter().copied());
                    put(
                        format!("{n}.rff_omega"),
                        rff.omega.shape().to_vec(),
                        &mut rff.omega.iter().copied(),
                    );
                    put(
                        format!("{n}.rff_offset"),
                        vec![rff.offset.len()],
                        &mut rff.offset.iter().copied(),
                    );
                    *bias
                }
            };
            meta.models.push(ModelMeta {
                name: m.name.clone(),
                feature: m.feature,
                kernel: m.kernel,
                c: m.c,
                gamma: m.gamma,
                offset,
            });
        }
        let bad = |e: safetensors::SafeTensorError| {
            fer_core::Error::parquet(path, format!("safetensors: {e}"))
        };
        let views = tensors
            .iter()
            .map(|(n, s, b)| Ok((n.clone(), TensorView::new(Dtype::F64, s.clone(), b)?)))
            .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
            .map_err(bad)?;
        let info: HashMap<String, String> = [(
            "fer".to_string(),
            serde_json::to_string(&meta).expect("meta serializes"),
        )]
        .into_iter()
        .collect();
        let bytes = safetensors::serialize(views, Some(info)).map_err(bad)?;
        std::fs::write(path, bytes).map_err(|e| fer_core::Error::io(path, e))
    }

    pub fn load(path: &Path) -> fer_core::Result<SavedSvms> {
        let bytes = std::fs::read(path).map_err(|e| fer_core::Error::io(path, e))?;
        let bad = |m: String| fer_core::Error::parquet(path, m);
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let (_, md) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let meta: Meta = md
            .metadata()
            .as_ref()
            .and_then(|m| m.get("fer"))
            .ok_or_else(|| bad("no `fer` metadata".into()))
            .and_then(|s| {
                serde_json::from_str(s).map_err(|e| bad(format!("`fer` metadata: {e}")))
            })?;
        if meta.format != FORMAT {
            return Err(bad(format!(
                "format `{}`, expected `{FORMAT}`",
                meta.format
            )));
        }
        let get = |name: &str| -> fer_core::Result<(Vec<usize>, Vec<f64>)> {
            let t = st
                .tensor(name)
                .map_err(|e| bad(format!("tensor {name}: {e}")))?;
            if t.dtype() != Dtype::F64 {
                return Err(bad(format!(
                    "tensor {name} is {:?}, expected F64",
                    t.dtype()
                )));
            }
            let v = t
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            Ok((t.shape().to_vec(), v))
        };
        let vec1 = |name: &str| -> fer_core::Result<Array1<f64>> { Ok(Array1::from(get(name)?.1)) };
        let mat = |name: &str| -> fer_core::Result<Array2<f64>> {
            let (s, v) = get(name)?;
            if s.len() != 2 {
                return Err(bad(format!("tensor {name} has shape {s:?}, expected 2-D")));
            }
            Ok(Array2::from_shape_vec((s[0], s[1]), v).expect("shape matches data"))
        };
        let mut features = Vec::new();
        for f in &meta.features {
            let k = f.kind.as_str();
            let pca = if f.pca > 0 {
                Some(Projection {
                    mean: vec1(&format!("{k}.pca_mean"))?,
                    components: mat(&format!("{k}.pca_components"))?,
                })
            } else {
                None
            };
            features.push(FeaturePipeline {
                kind: f.kind,
                hog: f.hog,
                value_range: f.value_range,
                scaler: Scaler {
                    mean: vec1(&format!("{k}.scaler_mean"))?,
                    std: vec1(&format!("{k}.scaler_std"))?,
                },
                pca,
            });
        }
        let mut models = Vec::new();
        for m in &meta.models {
            let n = &m.name;
            let decision = match m.kernel {
                KernelKind::Rbf => Decision::Rbf {
                    gamma: m
                        .gamma
                        .ok_or_else(|| bad(format!("model {n}: rbf without gamma")))?,
                    sv: mat(&format!("{n}.sv"))?,
                    coef: vec1(&format!("{n}.coef"))?,
                    rho: m.offset,
                },
                KernelKind::Linear => Decision::Linear {
                    w: vec1(&format!("{n}.w"))?,
                    bias: m.offset,
                },
                KernelKind::Rff => Decision::Rff {
                    rff: Rff {
                        omega: mat(&format!("{n}.rff_omega"))?,
                        offset: vec1(&format!("{n}.rff_offset"))?,
                    },
                    w: vec1(&format!("{n}.w"))?,
                    bias: m.offset,
                },
            };
            models.push(SavedModel {
                name: m.name.clone(),
                feature: m.feature,
                kernel: m.kernel,
                c: m.c,
                gamma: m.gamma,
                decision,
            });
        }
        Ok(SavedSvms { features, models })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use rand::RngExt;

    /// Two Gaussian blobs in 5-D, `n` rows, happy = first blob.
    fn blobs(n: usize, seed: u64) -> (Array2<f64>, Vec<bool>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let happy: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        let x = Array2::from_shape_fn((n, 5), |(i, j)| {
            let centre = if happy[i] { 1.0 } else { -1.0 };
            centre * if j < 2 { 1.0 } else { 0.2 } + rng.random::<f64>() - 0.5
        });
        (x, happy)
    }

    #[test]
    fn decisions_match_linfa_and_separate_the_blobs() {
        let (x, happy) = blobs(80, 1);
        for gamma in [Some(0.5), None] {
            let params = Svm::<f64, bool>::params()
                .pos_neg_weights(1.0, 1.0)
                .eps(1e-3);
            let params = match gamma {
                Some(g) => params.gaussian_kernel(1.0 / g),
                None => params.linear_kernel(),
            };
            let ds = linfa::DatasetBase::new(x.view(), ndarray::ArrayView1::from(&happy[..]));
            let svm = params.fit(&ds).unwrap();
            let (d, info) = fit_smo(x.view(), &happy, (1.0, 1.0), gamma, 1e-3).unwrap();
            assert!(info.n_support > 0 && info.n_support < 80, "{info:?}");
            let ours = d.values(&x);
            for (i, row) in x.outer_iter().enumerate() {
                let theirs = svm.weighted_sum(&row) - svm.rho;
                assert_abs_diff_eq!(ours[i], theirs, epsilon = 1e-9);
            }
            let correct = ours
                .iter()
                .zip(&happy)
                .filter(|(v, h)| (**v >= 0.0) == **h)
                .count();
            assert!(correct >= 76, "{gamma:?}: {correct}/80");
        }
    }

    #[test]
    fn dual_coordinate_descent_separates_and_is_deterministic() {
        let (x, happy) = blobs(200, 2);
        let (w, b, info) = fit_dcd(&x, &happy, (1.0, 1.0), 7);
        assert!(!info.solver.contains("cap"), "{}", info.solver);
        let d = Decision::Linear {
            w: w.clone(),
            bias: b,
        }
        .values(&x);
        let correct = d
            .iter()
            .zip(&happy)
            .filter(|(v, h)| (**v >= 0.0) == **h)
            .count();
        assert!(correct >= 195, "{correct}/200");
        let (w2, b2, _) = fit_dcd(&x, &happy, (1.0, 1.0), 7);
        assert_eq!((w, b), (w2, b2));
    }

    #[test]
    fn decision_blocks_do_not_change_values() {
        let (x, happy) = blobs(600, 3);
        let (d, _) = fit_smo(x.view(), &happy, (1.0, 1.0), Some(0.3), 1e-3).unwrap();
        let all = d.values(&x);
        let one = d.values(&x.slice(ndarray::s![300..301, ..]).to_owned());
        assert_eq!(all[300], one[0]);
    }
}
