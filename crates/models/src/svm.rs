//! The SVMs as trained by train-svm: the kernels, the fitted decision function, and the saved
//! form (`model.safetensors`: every chosen model with the feature pipelines it reads) that
//! reloads to bit-identical decision values.
//!
//! Decision values are positive for **happy** (label 0): the SVM's positive class is
//! `label == 0`, and `pred = 0` when `decision >= 0` (linfa's rule).
//!
//! Seven classes (`label_mode = "emotion7"`): each saved model is one-vs-rest, one decision per
//! class of [`SavedSvms::class_names`] (positive = that class), in [`SavedModel::classes`];
//! [`SavedModel::decision`] is then the `happy` class's, and the predicted class is the argmax
//! of [`SavedSvms::class_decisions`]. The saved form of a binary model is as it always was
//! (format `fer-train-svm/1`); a seven-class one is `fer-train-svm/2`: the header's `fer` JSON
//! adds `class_names` and per model `offsets` (one per class), and a model's tensors are named
//! per class (`<model>.<class>.sv`, `.coef`, `.w`; an rff model's map, shared by its classes,
//! once as `<model>.rff_omega`, `<model>.rff_offset`).

mod saved;

use crate::features::{FeatureKind, FeaturePipeline, Rff};
use fer_core::Classes;
use fer_core::tensors::TensorSet;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

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

/// One saved model: a feature pipeline's name and a decision function.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedModel {
    /// `<feature>/<kernel>`, e.g. `hog/rbf`.
    pub name: String,
    pub feature: FeatureKind,
    pub kernel: KernelKind,
    pub c: f64,
    pub gamma: Option<f64>,
    /// The decision function; of a seven-class model, the `happy` one-vs-rest decision (a
    /// clone of its entry in `classes`).
    pub decision: Decision,
    /// Seven classes: the one-vs-rest decision of each class of [`SavedSvms::class_names`], in
    /// that order. Empty for a binary model.
    pub classes: Vec<Decision>,
}

/// Every chosen model with the feature pipelines they read: `model.safetensors`.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedSvms {
    pub features: Vec<FeaturePipeline>,
    pub models: Vec<SavedModel>,
    /// The classes of one-vs-rest models (`LabelMode::class_names`, e.g. angry..neutral), saved
    /// in the header. Empty for binary models (happy vs not happy, one decision each).
    pub class_names: Classes,
}

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

    /// Every class's decision values of model `name` for normalized images: rows x classes
    /// (the classes of [`SavedSvms::class_names`] in that order; a binary model: one column,
    /// its decision, as [`SavedSvms::decisions`]). The predicted class of a row is the column
    /// of its largest value (the first on a tie).
    pub fn class_decisions(&self, name: &str, images: &TensorSet) -> Result<Array2<f64>, String> {
        let m = self
            .model(name)
            .ok_or_else(|| format!("no model `{name}`"))?;
        let f = self
            .feature(m.feature)
            .ok_or_else(|| format!("no feature pipeline `{}`", m.feature.as_str()))?;
        let x = f.transform(images)?;
        Ok(class_values(m, &x))
    }
}

/// The decision values of every class of `m` for features `x` (rows x classes; one column, the
/// decision, for a binary model): each column is [`Decision::values`] of its class, so the
/// values are those train-svm wrote, bit for bit.
pub fn class_values(m: &SavedModel, x: &Array2<f64>) -> Array2<f64> {
    decision_columns(&m.decision, &m.classes, x)
}

/// [`class_values`] of loose decisions: `classes` one-vs-rest (rows x classes), or `decision`
/// alone when `classes` is empty (one column).
pub fn decision_columns(decision: &Decision, classes: &[Decision], x: &Array2<f64>) -> Array2<f64> {
    if classes.is_empty() {
        return decision.values(x).insert_axis(Axis(1));
    }
    let mut out = Array2::zeros((x.nrows(), classes.len()));
    for (k, d) in classes.iter().enumerate() {
        out.column_mut(k).assign(&d.values(x));
    }
    out
}

/// The column of each row's largest value (the first on a tie; NaN never wins).
pub fn argmax_rows(v: &Array2<f64>) -> Vec<u8> {
    v.outer_iter()
        .map(|r| {
            let mut best = 0;
            for (k, &x) in r.iter().enumerate() {
                if x > r[best] || r[best].is_nan() && !x.is_nan() {
                    best = k;
                }
            }
            best as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::SafeTensors;
    use std::path::Path;

    fn linear(w: &[f64], bias: f64) -> Decision {
        Decision::Linear {
            w: Array1::from(w.to_vec()),
            bias,
        }
    }

    fn model(decision: Decision, classes: Vec<Decision>) -> SavedModel {
        SavedModel {
            name: "raw/linear".into(),
            feature: FeatureKind::Raw,
            kernel: KernelKind::Linear,
            c: 0.1,
            gamma: None,
            decision,
            classes,
        }
    }

    fn header(path: &Path) -> serde_json::Value {
        let bytes = std::fs::read(path).unwrap();
        let (_, md) = SafeTensors::read_metadata(&bytes).unwrap();
        serde_json::from_str(&md.metadata().as_ref().unwrap()["fer"]).unwrap()
    }

    #[test]
    fn binary_files_keep_the_old_layout_and_seven_classes_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("model.safetensors");
        let bin = SavedSvms {
            features: vec![],
            models: vec![model(linear(&[1.0, -2.0], 0.5), vec![])],
            class_names: Classes::default(),
        };
        bin.save(&p).unwrap();
        let h = header(&p);
        assert_eq!(h["format"], "fer-train-svm/1");
        assert!(h.get("class_names").is_none() && h["models"][0].get("offsets").is_none());
        let st_bytes = std::fs::read(&p).unwrap();
        let st = SafeTensors::deserialize(&st_bytes).unwrap();
        assert_eq!(st.names(), vec!["raw/linear.w"]);
        assert_eq!(SavedSvms::load(&p).unwrap(), bin);

        let names: Vec<String> = ["angry", "happy", "sad"].map(String::from).to_vec();
        let classes: Vec<Decision> = (0..3)
            .map(|k| linear(&[k as f64 + 0.1, -1.0 / (k as f64 + 3.0)], 0.1 * k as f64))
            .collect();
        let seven = SavedSvms {
            features: vec![],
            models: vec![model(classes[1].clone(), classes.clone())],
            class_names: Classes::new(names.clone()),
        };
        seven.save(&p).unwrap();
        let h = header(&p);
        assert_eq!(h["format"], "fer-train-svm/2");
        assert_eq!(h["class_names"], serde_json::json!(names));
        let back = SavedSvms::load(&p).unwrap();
        assert_eq!(back, seven);
        let x = Array2::from_shape_vec((2, 2), vec![0.3, -0.7, 1.1, 2.5]).unwrap();
        let v = class_values(&back.models[0], &x);
        assert_eq!(v.dim(), (2, 3));
        for (k, d) in classes.iter().enumerate() {
            assert_eq!(v.column(k).to_owned(), d.values(&x));
        }
        assert_eq!(
            class_values(&bin.models[0], &x).column(0).to_owned(),
            bin.models[0].decision.values(&x)
        );
        assert_eq!(argmax_rows(&v), vec![2, 2]);
        // A model without a decision per class is refused, naming it.
        let bad = SavedSvms {
            models: vec![model(classes[1].clone(), classes[..2].to_vec())],
            ..seven
        };
        let e = bad.save(&p).unwrap_err().to_string();
        assert!(
            e.contains("raw/linear: 2 one-vs-rest decisions for 3 classes"),
            "{e}"
        );
    }

    #[test]
    fn argmax_takes_the_first_of_ties() {
        let v = Array2::from_shape_vec((2, 3), vec![1.0, 1.0, 0.0, -1.0, f64::NAN, -0.5]).unwrap();
        assert_eq!(argmax_rows(&v), vec![0, 2]);
    }
}
