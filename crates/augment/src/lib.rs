//! Stage `augment`: a preview of the augmentation chain and an optional offline set. The ops
//! ([`ops`], seeded and composable, which `train_cnn` and `tune` call online per batch) and the
//! chain's checks ([`validate_ops`]) are fer-augment-ops', re-exported here.
//!
//! Reads `artifacts/<pipeline>/preprocess/` (`train.safetensors`, `transform.json`,
//! `index.parquet`).
//!
//! Writes `artifacts/<pipeline>/augment/`: `preview.png` (originals beside augmented
//! versions, like the study's augmentation page), `chain.json` (the validated chain with its
//! value range) and, when `offline_copies > 0`, `offline.parquet` (id, copy, label, x: k
//! augmented copies of every training image, f32 `FixedSizeList(H*W)` in the model's range).
//!
//! Params (`[augment]`): `seed`, `preview_images` (8), `preview_variants` (7),
//! `offline_copies` (0), and `[[augment.ops]]`, an ordered list of steps, each with `kind`,
//! `p` (probability, default 1) and its own keys: `hflip`; `rotate` (`degrees`); `scale`
//! (`min`, `max`); `translate` (`max_fraction`); `brightness` (`max_delta`, a fraction of the
//! value range); `contrast` (`min`, `max`); `blur` (`sigma_min`, `sigma_max`); `noise` (`std`,
//! a fraction of the value range); `erase` (`min_area`, `max_area`, fractions of the image).
//! What a camera does to a face (issue 29): `lowres` (`min`, `max`: the fraction of the side
//! it is scaled down to and back), `jpeg` (`min`, `max`: quality 1-100), `motion_blur`
//! (`min`, `max`: streak length, a fraction of the side), `dim` (`min`, `max`: brightness
//! factor, rounded to 8-bit levels), `shade` (`max`: a light ramp from `1 - g` to `1 + g`)
//! and `cover` (`min`, `max`: the row, a fraction of the side, from which the lower face is
//! covered with the image's mean).

use arrow_array::types::Float32Type;
use arrow_array::{ArrayRef, FixedSizeListArray, StringArray, UInt8Array, UInt16Array};
use fer_core::cli::StageArgs;
use fer_core::cli::{Preamble, Stage as _};
use fer_core::manifest::Manifest;
use fer_core::pipeline::PipelineFile;
use fer_core::stage::Outputs;
use fer_core::tensors::TensorSet;
use fer_core::transform::Transform;
// The op library and the chain's checks live in fer-augment-ops, which fer-train (train-cnn's
// and tune's library) re-exports too; these paths keep augment's API for its users.
pub use fer_augment_ops::chain::{OpSection, augmenter, default_ops, validate_ops};
pub use fer_augment_ops::ops;
pub use fer_augment_ops::ops::{Augmenter, Op, Scratch, Step, image_rng, scale_steps};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

pub const STAGE: &str = "augment";
pub const CODE_VERSION: &str = <Params as fer_core::cli::Stage>::CODE_VERSION;
/// The code versions of the upstream stages this build reads (checked by `Input::current`).
pub const UPSTREAM_CODE_VERSIONS: &str = <Params as fer_core::cli::Stage>::UPSTREAM_CODE_VERSIONS;

#[derive(Debug, thiserror::Error)]
pub enum AugmentError {
    #[error(transparent)]
    Core(#[from] fer_core::Error),
}

/// `fer-augment`'s command line.
pub type Cli = fer_core::cli::StageCli<fer_core::cli::NoArgs>;

/// `[augment]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentSection {
    pub seed: u64,
    pub preview_images: usize,
    pub preview_variants: usize,
    pub offline_copies: usize,
    pub ops: Vec<OpSection>,
}

impl Default for AugmentSection {
    fn default() -> Self {
        AugmentSection {
            seed: 42,
            preview_images: 8,
            preview_variants: 7,
            offline_copies: 0,
            ops: default_ops(),
        }
    }
}

/// Validated `[augment]` params.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct AugmentParams {
    pub seed: u64,
    pub preview_images: usize,
    pub preview_variants: usize,
    pub offline_copies: usize,
    pub steps: Vec<Step>,
}

impl AugmentSection {
    pub fn validate(&self, pf: &PipelineFile) -> fer_core::Result<AugmentParams> {
        let err = |k: &str, m: String| pf.param_error(STAGE, k, m);
        if !(1..=64).contains(&self.preview_images) {
            return Err(err(
                "preview_images",
                format!("{} is not in 1..=64", self.preview_images),
            ));
        }
        if !(1..=16).contains(&self.preview_variants) {
            return Err(err(
                "preview_variants",
                format!("{} is not in 1..=16", self.preview_variants),
            ));
        }
        if self.offline_copies > 50 {
            return Err(err(
                "offline_copies",
                format!("{} is above 50", self.offline_copies),
            ));
        }
        Ok(AugmentParams {
            seed: self.seed,
            preview_images: self.preview_images,
            preview_variants: self.preview_variants,
            offline_copies: self.offline_copies,
            steps: validate_ops(&self.ops, pf, STAGE)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Params {
    pub pipeline: PipelineFile,
    pub augment: AugmentParams,
    pub common: StageArgs,
}

impl Params {
    pub fn from_pipeline(pipeline: &PipelineFile, cli: &Cli) -> Result<Params, AugmentError> {
        let s: AugmentSection = pipeline.section(STAGE)?;
        Ok(Params {
            pipeline: pipeline.clone(),
            augment: s.validate(pipeline)?,
            common: cli.common.clone(),
        })
    }
}

fer_core::impl_stage! { Params: STAGE, "fer-augment", AugmentError, fer_core::cli::NoArgs,
"Stage augment: preview of the augmentation chain, optional offline set" }

/// The params the stage's signature hashes (printed by `--print-params`).
pub fn signature_params(p: &Params) -> Result<serde_json::Value, AugmentError> {
    Ok(serde_json::to_value(&p.augment).expect("params serialize"))
}

pub fn run(p: &Params) -> Result<Manifest, AugmentError> {
    let Preamble { run, upstream: up } = p.prepare(Vec::new())?;
    let dir_in = &up[0].0;
    run.execute(|dir| {
        let transform = Transform::load(&dir_in.join("transform.json"))?;
        let (train, _) = TensorSet::read(&dir_in.join("train.safetensors"))?;
        let [ids, _, _] = fer_core::tensors::read_ids(&dir_in.join("index.parquet"))?;
        compute(&train, &ids, &transform, &p.augment, dir)
    })
}

/// Map model values back to 8-bit gray for pictures.
pub fn to_u8(x: &[f32], range: (f32, f32)) -> Vec<u8> {
    let (lo, hi) = range;
    x.iter()
        .map(|&v| (((v - lo) / (hi - lo)) * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect()
}

pub fn compute(
    train: &TensorSet,
    ids: &[String],
    transform: &Transform,
    p: &AugmentParams,
    dir: &Path,
) -> Result<Outputs, AugmentError> {
    let aug = augmenter(&p.steps, transform);
    let side = aug.side;
    let mut out = Outputs::default();
    let chain = serde_json::json!({"steps": aug.steps, "side": side, "range": aug.range});
    let text = serde_json::to_string_pretty(&chain).expect("json") + "\n";
    std::fs::write(dir.join("chain.json"), text)
        .map_err(|e| fer_core::Error::io(dir.join("chain.json"), e))?;
    out.file("chain.json");

    // Preview: each chosen image, then its augmented variants.
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let k = p.preview_images.min(train.n);
    let chosen: Vec<usize> = {
        let mut v = sample(&mut rng, train.n, k).into_vec();
        v.sort_unstable();
        v
    };
    let mut rows: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    let mut scratch = Scratch::new(side);
    for (r, &i) in chosen.iter().enumerate() {
        let mut pics = vec![to_u8(train.image(i), aug.range)];
        for v in 0..p.preview_variants {
            let mut x = train.image(i).to_vec();
            aug.apply(
                &mut x,
                &mut image_rng(p.seed, 1 + v as u64, r as u64),
                &mut scratch,
            );
            pics.push(to_u8(&x, aug.range));
        }
        let label = ids
            .get(i)
            .map(|s| s.rsplit('/').next().unwrap_or(s).to_string())
            .unwrap_or_default();
        rows.push((label, pics));
    }
    let grid: Vec<(String, Vec<&[u8]>)> = rows
        .iter()
        .map(|(l, v)| (l.clone(), v.iter().map(|x| x.as_slice()).collect()))
        .collect();
    fer_core::plot::image_grid(
        &dir.join("preview.png"),
        "original | augmented versions",
        &grid,
        side as u32,
        2,
    )?;
    out.file("preview.png");

    if p.offline_copies > 0 {
        let n = train.n * p.offline_copies;
        let mut x = Vec::with_capacity(n * side * side);
        for _ in 0..p.offline_copies {
            x.extend_from_slice(&train.x);
        }
        for c in 0..p.offline_copies {
            let block = &mut x[c * train.n * side * side..(c + 1) * train.n * side * side];
            aug.apply_batch(block, p.seed, 1_000_000 + c as u64);
        }
        let list = FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
            x.chunks_exact(side * side)
                .map(|img| Some(img.iter().map(|&v| Some(v)).collect::<Vec<_>>())),
            (side * side) as i32,
        );
        let rows = fer_core::parquet_io::write_columns(
            &dir.join("offline.parquet"),
            vec![
                (
                    "id",
                    Arc::new(StringArray::from_iter_values(
                        (0..n).map(|j| ids.get(j % train.n).map(String::as_str).unwrap_or("")),
                    )) as ArrayRef,
                ),
                (
                    "copy",
                    Arc::new(UInt16Array::from_iter_values(
                        (0..n).map(|j| (j / train.n) as u16),
                    )),
                ),
                (
                    "label",
                    Arc::new(UInt8Array::from_iter_values(
                        (0..n).map(|j| train.y[j % train.n]),
                    )),
                ),
                ("x", Arc::new(list)),
            ],
        )?;
        out.table("offline.parquet", rows);
    }
    out.summary = serde_json::json!({"steps": p.steps.len(), "offline_rows": train.n * p.offline_copies, "range": aug.range});
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(text: &str) -> fer_core::Result<Vec<Step>> {
        let pf = PipelineFile::parse(Path::new("pipelines/t.toml"), text).unwrap();
        let section: AugmentSection = pf.section(STAGE).unwrap();
        validate_ops(&section.ops, &pf, STAGE)
    }

    #[test]
    fn camera_ops_parse_with_their_keys() {
        let steps = ops(r#"
[[augment.ops]]
kind = "lowres"
p = 0.2
min = 0.3
max = 0.8
[[augment.ops]]
kind = "jpeg"
min = 25.0
max = 85.0
[[augment.ops]]
kind = "motion_blur"
min = 0.0
max = 0.2
[[augment.ops]]
kind = "dim"
min = 0.15
max = 0.6
[[augment.ops]]
kind = "shade"
max = 0.4
[[augment.ops]]
kind = "cover"
p = 0.15
min = 0.55
max = 0.75
"#)
        .unwrap();
        assert_eq!(
            steps.iter().map(|s| s.op).collect::<Vec<_>>(),
            vec![
                Op::Lowres { min: 0.3, max: 0.8 },
                Op::Jpeg {
                    min: 25.0,
                    max: 85.0
                },
                Op::MotionBlur { min: 0.0, max: 0.2 },
                Op::Dim {
                    min: 0.15,
                    max: 0.6
                },
                Op::Shade { max: 0.4 },
                Op::Cover {
                    min: 0.55,
                    max: 0.75
                },
            ]
        );
        assert_eq!(steps[0].p, 0.2);
    }

    #[test]
    fn camera_ops_out_of_range_or_with_a_foreign_key_name_the_key() {
        for (body, key, says) in [
            (
                "kind = \"jpeg\"\nmin = 0.0\nmax = 50.0",
                "ops[0].min",
                "not in [1, 100]",
            ),
            (
                "kind = \"lowres\"\nmin = 0.5\nmax = 1.5",
                "ops[0].max",
                "not in",
            ),
            (
                "kind = \"dim\"\nmin = 0.0\nmax = 0.5",
                "ops[0].min",
                "not in",
            ),
            ("kind = \"shade\"\nmax = 2.0", "ops[0].max", "not in [0, 1]"),
            (
                "kind = \"shade\"\nmin = 0.1\nmax = 0.2",
                "ops[0].min",
                "not a key of `shade`",
            ),
            (
                "kind = \"motion_blur\"\nmin = 0.1",
                "ops[0].max",
                "needs `max`",
            ),
            (
                "kind = \"vignette\"",
                "ops[0].kind",
                "unknown op `vignette`",
            ),
        ] {
            let e = ops(&format!("[[augment.ops]]\n{body}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key) && e.contains(says), "{body}: {e}");
            assert!(e.contains("pipelines/t.toml"), "{e}");
        }
    }
}
