//! Stage `preprocess`: the study's data preparation, fitted on train only.
//!
//! Reads `artifacts/<pipeline>/ingest/images.parquet`.
//!
//! Writes `artifacts/<pipeline>/preprocess/`: `transform.json` (the fitted
//! `fer_core::transform::Transform`: size, resize filter, denoise, equalization, normalization
//! constants), `{train,val,test}.safetensors` (`x` f32 `[N,1,H,W]`, `y` u8 `[N]`; layout in
//! `fer_core::tensors`; with FERPlus votes also `y_fer2013`, `y_ferplus` and `happy_share`, and
//! for seven classes `emotion_shares`) and
//! `index.parquet` (split, row, id, label, emotion). When ingest wrote a pretraining pool
//! (`pretrain.parquet`), also `pretrain.safetensors`, with the same transform (fitted on train
//! only, never on the pool).
//!
//! Params (`[preprocess]`): `size` (48), `resize_filter` (triangle), `normalization`
//! (`unit` [0,1] | `symmetric` [-1,1] | `standardize`, mean/std of train), `denoise`
//! (`none` | `gaussian` with `sigma` | `median` with `radius`), `equalize` (`none` | `global`).
//! Colour images are turned to gray by `fer_core::transform::to_gray` everywhere.

use arrow_array::{ArrayRef, StringArray, UInt8Array, UInt32Array};
use fer_core::cli::StageArgs;
use fer_core::cli::{Preamble, Stage as _};
use fer_core::dataset::{ImageDataset, ImageRecord};
use fer_core::manifest::Manifest;
use fer_core::pipeline::PipelineFile;
use fer_core::stage::Outputs;
use fer_core::tensors::{NO_LABEL, NO_SHARE, TensorSet, Truths};
use fer_core::transform::{Denoise, Equalize, Normalization, Transform, filter_by_name};
use fer_core::{LabelMode, Split};
use image::GrayImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

pub const STAGE: &str = "preprocess";
pub const CODE_VERSION: &str = <Params as fer_core::cli::Stage>::CODE_VERSION;
/// The code versions of the upstream stages this build reads (checked by `Input::current`).
pub const UPSTREAM_CODE_VERSIONS: &str = <Params as fer_core::cli::Stage>::UPSTREAM_CODE_VERSIONS;

#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error(transparent)]
    Core(#[from] fer_core::Error),
    #[error("{0}")]
    Data(String),
}

/// `fer-preprocess`'s command line.
pub type Cli = fer_core::cli::StageCli<fer_core::cli::NoArgs>;

/// `[preprocess]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreprocessSection {
    pub size: u32,
    pub resize_filter: String,
    pub normalization: String,
    pub denoise: String,
    pub sigma: f32,
    pub radius: u32,
    pub equalize: String,
}

impl Default for PreprocessSection {
    fn default() -> Self {
        PreprocessSection {
            size: 48,
            resize_filter: "triangle".into(),
            normalization: "standardize".into(),
            denoise: "none".into(),
            sigma: 1.0,
            radius: 1,
            equalize: "none".into(),
        }
    }
}

/// The normalization to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    Unit,
    Symmetric,
    Standardize,
}

/// Validated params: the transform before fitting, and what to fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PreprocessParams {
    pub unfitted: Transform,
    pub normalization: NormKind,
}

impl PreprocessSection {
    pub fn validate(&self, pf: &PipelineFile) -> fer_core::Result<PreprocessParams> {
        let err = |k: &str, m: String| pf.param_error(STAGE, k, m);
        if !(8..=512).contains(&self.size) {
            return Err(err("size", format!("{} is not in 8..=512", self.size)));
        }
        if filter_by_name(&self.resize_filter).is_none() {
            return Err(err(
                "resize_filter",
                format!(
                    "unknown filter `{}` (expected nearest, triangle, catmull_rom, gaussian or lanczos3)",
                    self.resize_filter
                ),
            ));
        }
        let normalization = match self.normalization.as_str() {
            "unit" => NormKind::Unit,
            "symmetric" => NormKind::Symmetric,
            "standardize" => NormKind::Standardize,
            s => {
                return Err(err(
                    "normalization",
                    format!(
                        "unknown normalization `{s}` (expected unit, symmetric or standardize)"
                    ),
                ));
            }
        };
        let denoise = match self.denoise.as_str() {
            "none" => Denoise::None,
            "gaussian" if self.sigma > 0.0 && self.sigma.is_finite() => {
                Denoise::Gaussian { sigma: self.sigma }
            }
            "gaussian" => {
                return Err(err(
                    "sigma",
                    format!("{} must be > 0 for denoise = \"gaussian\"", self.sigma),
                ));
            }
            "median" if (1..=10).contains(&self.radius) => Denoise::Median {
                radius: self.radius,
            },
            "median" => return Err(err("radius", format!("{} is not in 1..=10", self.radius))),
            s => {
                return Err(err(
                    "denoise",
                    format!("unknown denoise `{s}` (expected none, gaussian or median)"),
                ));
            }
        };
        let equalize =
            match self.equalize.as_str() {
                "none" => Equalize::None,
                "global" => Equalize::Global,
                "clahe" => return Err(err(
                    "equalize",
                    "CLAHE is not available: no maintained Rust crate implements it (use global)"
                        .into(),
                )),
                s => {
                    return Err(err(
                        "equalize",
                        format!("unknown equalize `{s}` (expected none or global)"),
                    ));
                }
            };
        Ok(PreprocessParams {
            unfitted: Transform {
                size: self.size,
                resize_filter: self.resize_filter.clone(),
                denoise,
                equalize,
                normalization: Normalization::Unit,
            },
            normalization,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Params {
    pub pipeline: PipelineFile,
    pub preprocess: PreprocessParams,
    pub common: StageArgs,
}

impl Params {
    pub fn from_pipeline(pipeline: &PipelineFile, cli: &Cli) -> Result<Params, PreprocessError> {
        let s: PreprocessSection = pipeline.section(STAGE)?;
        Ok(Params {
            pipeline: pipeline.clone(),
            preprocess: s.validate(pipeline)?,
            common: cli.common.clone(),
        })
    }
}

fn gray(r: &ImageRecord, side: usize) -> GrayImage {
    GrayImage::from_raw(side as u32, side as u32, r.pixels.clone())
        .expect("dataset rows have side*side pixels")
}

/// Fit the normalization on the **train split only** and return the complete transform.
pub fn fit(ds: &ImageDataset, p: &PreprocessParams) -> Result<Transform, PreprocessError> {
    let mut t = p.unfitted.clone();
    t.normalization = match p.normalization {
        NormKind::Unit => Normalization::Unit,
        NormKind::Symmetric => Normalization::Symmetric,
        NormKind::Standardize => {
            let (n, sum, sq) = ds
                .records
                .par_iter()
                .filter(|r| r.split == Split::Train)
                .map(|r| {
                    let img = t.prepare(&gray(r, ds.side));
                    let s: u64 = img.as_raw().iter().map(|&v| v as u64).sum();
                    let q: u64 = img.as_raw().iter().map(|&v| (v as u64) * (v as u64)).sum();
                    (img.as_raw().len() as u64, s, q)
                })
                .reduce(|| (0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
            if n == 0 {
                return Err(PreprocessError::Data(
                    "standardize needs train images, and the train split is empty".into(),
                ));
            }
            let mean = sum as f64 / n as f64 / 255.0;
            let var = (sq as f64 / n as f64) / (255.0 * 255.0) - mean * mean;
            let std = var.max(0.0).sqrt();
            if std < 1e-6 {
                return Err(PreprocessError::Data(
                    "train pixels are constant: cannot standardize".into(),
                ));
            }
            Normalization::Standardize {
                mean: mean as f32,
                std: std as f32,
            }
        }
    };
    Ok(t)
}

/// Apply a fitted transform to the rows of one split.
pub fn tensors(ds: &ImageDataset, t: &Transform, split: Split) -> TensorSet {
    let rows: Vec<&ImageRecord> = ds.records.iter().filter(|r| r.split == split).collect();
    let x: Vec<f32> = rows
        .par_iter()
        .flat_map_iter(|r| t.apply(&gray(r, ds.side)))
        .collect();
    let truths = ds.has_ferplus().then(|| Truths {
        fer2013: rows
            .iter()
            .map(|r| r.fer2013_label(ds.label_mode))
            .collect(),
        ferplus: rows
            .iter()
            .map(|r| r.ferplus_label.unwrap_or(NO_LABEL))
            .collect(),
        happy_share: rows
            .iter()
            .map(|r| {
                r.ferplus_votes
                    .and_then(|v| v.happy_share())
                    .map_or(NO_SHARE, |s| s as f32)
            })
            .collect(),
        // Seven classes: the seven emotions' vote shares, the soft targets of seven-class
        // training (binary sets keep happy_share alone).
        emotion_shares: match ds.label_mode {
            LabelMode::Binary => Vec::new(),
            LabelMode::Emotion7 => rows
                .iter()
                .flat_map(|r| {
                    r.ferplus_votes
                        .and_then(|v| v.shares7())
                        .map_or([NO_SHARE; 7], |s| s.map(|v| v as f32))
                })
                .collect(),
        },
    });
    TensorSet {
        n: rows.len(),
        height: t.size as usize,
        width: t.size as usize,
        x,
        y: rows.iter().map(|r| r.label).collect(),
        truths,
    }
}

fer_core::impl_stage! { Params: STAGE, "fer-preprocess", PreprocessError, fer_core::cli::NoArgs,
"Stage preprocess: fitted transform and model-ready tensors" }

/// The params the stage's signature hashes (printed by `--print-params`).
pub fn signature_params(p: &Params) -> Result<serde_json::Value, PreprocessError> {
    Ok(serde_json::to_value(&p.preprocess).expect("params serialize"))
}

pub fn run(p: &Params) -> Result<Manifest, PreprocessError> {
    let Preamble { run, upstream: up } = p.prepare(Vec::new())?;
    let images = up[0].0.join("images.parquet");
    let pool = up[0].0.join("pretrain.parquet");
    run.execute(|dir| {
        let ds = ImageDataset::read_parquet(&images)?;
        let pre = match pool.is_file() {
            true => Some(ImageDataset::read_parquet(&pool)?),
            false => None,
        };
        compute(&ds, pre.as_ref(), &p.preprocess, dir, p.common.quiet)
    })
}

/// Fit on train, transform every split (and the pretraining pool `pre`, if any), write the
/// outputs into `dir`.
pub fn compute(
    ds: &ImageDataset,
    pre: Option<&ImageDataset>,
    p: &PreprocessParams,
    dir: &Path,
    quiet: bool,
) -> Result<Outputs, PreprocessError> {
    let t = fit(ds, p)?;
    t.save(&dir.join("transform.json"))?;
    let mut out = Outputs::default();
    out.file("transform.json");
    let thash = fer_core::hash::hash_file(&dir.join("transform.json"))?;
    let mut counts = serde_json::Map::new();
    for split in Split::ALL {
        let ts = tensors(ds, &t, split);
        let file = format!("{split}.safetensors");
        let meta = serde_json::json!({"split": split.as_str(), "label_mode": ds.label_mode.as_str(), "labels": ds.labels.as_str(), "transform": thash});
        ts.write(&dir.join(&file), &meta)?;
        out.table(&file, ts.n);
        counts.insert(split.as_str().into(), ts.n.into());
    }
    let rows: Vec<(u32, &ImageRecord)> = Split::ALL
        .iter()
        .flat_map(|&s| {
            ds.records
                .iter()
                .filter(move |r| r.split == s)
                .enumerate()
                .map(|(i, r)| (i as u32, r))
        })
        .collect();
    let n = fer_core::parquet_io::write_columns(
        &dir.join("index.parquet"),
        vec![
            (
                "split",
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.1.split.as_str()),
                )) as ArrayRef,
            ),
            (
                "row",
                Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.0))),
            ),
            (
                "id",
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.1.id.as_str()),
                )),
            ),
            (
                "label",
                Arc::new(UInt8Array::from_iter_values(rows.iter().map(|r| r.1.label))),
            ),
            (
                "emotion",
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.1.emotion.as_str()),
                )),
            ),
        ],
    )?;
    out.table("index.parquet", n);
    // The pool after the splits and their index (the manifest lists outputs in this order).
    if let Some(pre) = pre {
        let ts = tensors(pre, &t, Split::Train);
        let meta = serde_json::json!({"split": "pretrain", "label_mode": pre.label_mode.as_str(), "labels": pre.labels.as_str()});
        ts.write(&dir.join("pretrain.safetensors"), &meta)?;
        out.table("pretrain.safetensors", ts.n);
        counts.insert("pretrain".into(), ts.n.into());
    }
    if !quiet {
        eprintln!("transform: {}", serde_json::to_string(&t).expect("json"));
    }
    out.summary =
        serde_json::json!({"rows": counts, "transform": t, "value_range": t.value_range()});
    Ok(out)
}
