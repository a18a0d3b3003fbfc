//! The saved form of the SVMs (`model.safetensors`): the header's `fer` metadata, and
//! [`SavedSvms::save`] and [`SavedSvms::load`] with their tensor writers.

use super::{Decision, KernelKind, SavedModel, SavedSvms};
use crate::features::{FeatureKind, FeaturePipeline, HogParams, Projection, Rff, Scaler};
use fer_core::Classes;
use ndarray::{Array1, Array2};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

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
    /// `rho` for rbf (decision = sum - rho), the bias for linear and rff. Of a one-vs-rest
    /// model, the `happy` class's.
    offset: f64,
    /// One-vs-rest models: `offset` of each class (absent from binary headers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    offsets: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    format: String,
    features: Vec<FeatureMeta>,
    models: Vec<ModelMeta>,
    /// One-vs-rest models: their classes (absent from binary headers).
    #[serde(default, skip_serializing_if = "Classes::is_empty")]
    class_names: Classes,
}

/// The format of binary models' files.
const FORMAT: &str = "fer-train-svm/1";
/// The format of one-vs-rest models' files (class names and per-class tensors).
const FORMAT_CLASSES: &str = "fer-train-svm/2";

impl SavedSvms {
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
            class_names: Classes::default(),
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
        if !self.class_names.is_empty() {
            meta.format = FORMAT_CLASSES.into();
            meta.class_names = self.class_names.clone();
        }
        if self.class_names.is_empty() {
            for m in &self.models {
                let n = &m.name;
                let offset = put_decision(&mut put, n, &m.decision);
                if let Decision::Rff { rff, .. } = &m.decision {
                    put_rff(&mut put, n, rff);
                }
                meta.models.push(ModelMeta {
                    name: m.name.clone(),
                    feature: m.feature,
                    kernel: m.kernel,
                    c: m.c,
                    gamma: m.gamma,
                    offset,
                    offsets: Vec::new(),
                });
            }
        }
        for m in self.models.iter().filter(|_| !self.class_names.is_empty()) {
            let n = &m.name;
            let wrong = |what: String| fer_core::Error::parquet(path, format!("model {n}: {what}"));
            if m.classes.len() != self.class_names.len() {
                return Err(wrong(format!(
                    "{} one-vs-rest decisions for {} classes",
                    m.classes.len(),
                    self.class_names.len()
                )));
            }
            let mut offsets = Vec::new();
            for (d, class) in m.classes.iter().zip(&self.class_names) {
                let same_kernel = matches!(
                    (d, m.kernel),
                    (Decision::Rbf { .. }, KernelKind::Rbf)
                        | (Decision::Linear { .. }, KernelKind::Linear)
                        | (Decision::Rff { .. }, KernelKind::Rff)
                );
                if !same_kernel {
                    return Err(wrong(format!("a {class} decision of another kernel")));
                }
                offsets.push(put_decision(&mut put, &format!("{n}.{class}"), d));
            }
            if let Some(Decision::Rff { rff, .. }) = m.classes.first() {
                // One map for every class (train-svm maps the features once per gamma).
                if m.classes
                    .iter()
                    .any(|d| !matches!(d, Decision::Rff { rff: r, .. } if r == rff))
                {
                    return Err(wrong("classes with different random Fourier maps".into()));
                }
                put_rff(&mut put, n, rff);
            }
            let happy = self.class_names.happy().map_err(|e| wrong(e.to_string()))?;
            meta.models.push(ModelMeta {
                name: m.name.clone(),
                feature: m.feature,
                kernel: m.kernel,
                c: m.c,
                gamma: m.gamma,
                offset: offsets[happy],
                offsets,
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
        let classes = meta.format == FORMAT_CLASSES;
        if meta.format != FORMAT && !classes {
            return Err(bad(format!(
                "format `{}`, expected `{FORMAT}` or `{FORMAT_CLASSES}`",
                meta.format
            )));
        }
        let happy = if classes {
            let h = meta.class_names.happy();
            Some(h.map_err(|e| bad(format!("format `{FORMAT_CLASSES}`: {e}")))?)
        } else {
            None
        };
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
            // The decision whose tensors are named `<k>.sv`, `<k>.w`... (k: the model, or one
            // class of it), with offset `offset`.
            let decision = |k: &str, offset: f64| -> fer_core::Result<Decision> {
                Ok(match m.kernel {
                    KernelKind::Rbf => Decision::Rbf {
                        gamma: m
                            .gamma
                            .ok_or_else(|| bad(format!("model {n}: rbf without gamma")))?,
                        sv: mat(&format!("{k}.sv"))?,
                        coef: vec1(&format!("{k}.coef"))?,
                        rho: offset,
                    },
                    KernelKind::Linear => Decision::Linear {
                        w: vec1(&format!("{k}.w"))?,
                        bias: offset,
                    },
                    KernelKind::Rff => Decision::Rff {
                        rff: Rff {
                            omega: mat(&format!("{n}.rff_omega"))?,
                            offset: vec1(&format!("{n}.rff_offset"))?,
                        },
                        w: vec1(&format!("{k}.w"))?,
                        bias: offset,
                    },
                })
            };
            let (decision, per_class) = if let Some(happy) = happy {
                if m.offsets.len() != meta.class_names.len() {
                    return Err(bad(format!(
                        "model {n}: {} offsets for {} classes",
                        m.offsets.len(),
                        meta.class_names.len()
                    )));
                }
                let per_class = meta
                    .class_names
                    .iter()
                    .zip(&m.offsets)
                    .map(|(c, &o)| decision(&format!("{n}.{c}"), o))
                    .collect::<fer_core::Result<Vec<_>>>()?;
                (per_class[happy].clone(), per_class)
            } else {
                (decision(n, m.offset)?, Vec::new())
            };
            models.push(SavedModel {
                name: m.name.clone(),
                feature: m.feature,
                kernel: m.kernel,
                c: m.c,
                gamma: m.gamma,
                decision,
                classes: per_class,
            });
        }
        Ok(SavedSvms {
            features,
            models,
            class_names: if classes {
                meta.class_names
            } else {
                Classes::default()
            },
        })
    }
}

/// A tensor writer of [`SavedSvms::save`]: name, shape, values.
type Put<'a> = dyn FnMut(String, Vec<usize>, &mut dyn Iterator<Item = f64>) + 'a;

/// Write a decision's own tensors under `prefix` (`<prefix>.sv` and `.coef`, or `<prefix>.w`;
/// an RFF map is written by [`put_rff`]) and return its offset (rho or bias).
fn put_decision(put: &mut Put, prefix: &str, d: &Decision) -> f64 {
    match d {
        Decision::Rbf { sv, coef, rho, .. } => {
            put(
                format!("{prefix}.sv"),
                sv.shape().to_vec(),
                &mut sv.iter().copied(),
            );
            put(
                format!("{prefix}.coef"),
                vec![coef.len()],
                &mut coef.iter().copied(),
            );
            *rho
        }
        Decision::Linear { w, bias } | Decision::Rff { w, bias, .. } => {
            put(format!("{prefix}.w"), vec![w.len()], &mut w.iter().copied());
            *bias
        }
    }
}

/// Write a random Fourier map under `prefix` (`<prefix>.rff_omega`, `.rff_offset`).
fn put_rff(put: &mut Put, prefix: &str, rff: &Rff) {
    put(
        format!("{prefix}.rff_omega"),
        rff.omega.shape().to_vec(),
        &mut rff.omega.iter().copied(),
    );
    put(
        format!("{prefix}.rff_offset"),
        vec![rff.offset.len()],
        &mut rff.offset.iter().copied(),
    );
}
