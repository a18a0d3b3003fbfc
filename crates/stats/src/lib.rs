//! Stage `stats`: describe the ingested data the way the study did, and audit it.
//!
//! Reads `artifacts/<pipeline>/ingest/images.parquet`.
//!
//! Writes `artifacts/<pipeline>/stats/`:
//! - `summary.parquet`: per split (train, val, test, and `train+val`, which is FER2013's own
//!   train folder) and class: images, pixel mean and std (0..255, all pixels pooled): the
//!   study's mean/std table; plus one row per emotion;
//! - `histograms.parquet` (split, class, bin 0..255, count) and `histograms.png`;
//! - `samples_<split>.png`: `samples_per_class` random images per class, like the study's pages;
//! - `duplicates.parquet`: exact and near-duplicate pairs (id, split and label of both, pHash
//!   Hamming distance, pixel RMS), `duplicates.png` (cross-split examples side by side);
//! - `blank.parquet` and `blank.png`: near-constant images (pixel std below `blank_std`);
//! - `label_noise.parquet` and `label_noise.png`: with FERPlus votes, FER2013's label against
//!   FERPlus's plurality per emotion, and the most disputed faces ([`noise`]);
//! - `stats.json`: all of the above in one document (counts, examples).
//!
//! Params (`[stats]`): `seed` (sample choice), `samples_per_class` (10), `near_dup_hamming`
//! (pHash bits, 8), `near_dup_rms` (pixel RMS that confirms a near duplicate, 4.0),
//! `blank_std` (2.0), `examples` (ids listed per finding in stats.json, 10).

pub mod audit;
mod chart;
mod moments;
pub mod noise;

use arrow_array::{ArrayRef, Float64Array, StringArray, UInt8Array, UInt64Array};
use audit::audit_section;
use chart::histogram_chart;
use fer_core::cli::StageArgs;
use fer_core::cli::{Preamble, Stage as _};
use fer_core::dataset::ImageDataset;
use fer_core::manifest::Manifest;
use fer_core::parquet_io::write_columns;
use fer_core::pipeline::PipelineFile;
use fer_core::stage::Outputs;
use fer_core::{Emotion, Split};
use moments::GROUPS;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use moments::{Moments, class_moments, emotion_moments};

pub const STAGE: &str = "stats";
pub const CODE_VERSION: &str = <Params as fer_core::cli::Stage>::CODE_VERSION;
/// The code versions of the upstream stages this build reads (checked by `Input::current`).
pub const UPSTREAM_CODE_VERSIONS: &str = <Params as fer_core::cli::Stage>::UPSTREAM_CODE_VERSIONS;

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error(transparent)]
    Core(#[from] fer_core::Error),
    #[error("{0}")]
    Chart(String),
}

/// `fer-stats`'s command line.
pub type Cli = fer_core::cli::StageCli<fer_core::cli::NoArgs>;

/// `[stats]` as written (every key optional, unknown keys refused); [`StatsSection::validate`]
/// checks it into [`StatsParams`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsSection {
    /// The seed of the sample grids' choice.
    pub seed: u64,
    /// Images per class in each sample grid: 1..=100.
    pub samples_per_class: usize,
    /// Near-duplicates: perceptual hashes at most this many bits apart (of 64): 0..=32.
    pub near_dup_hamming: u32,
    /// ... confirmed by a pixel RMS difference at most this: >= 0.
    pub near_dup_rms: f64,
    /// Blank images: pixel standard deviation below this: >= 0.
    pub blank_std: f64,
    /// Ids listed per audit finding in stats.json.
    pub examples: usize,
}

impl Default for StatsSection {
    fn default() -> Self {
        StatsSection {
            seed: 42,
            samples_per_class: 10,
            near_dup_hamming: 8,
            near_dup_rms: 4.0,
            blank_std: 2.0,
            examples: 10,
        }
    }
}

/// `[stats]` checked: only [`StatsSection::validate`] builds one (outside this crate), so a
/// value is always valid. Its fields are what the stage's signature hashes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StatsParams {
    pub seed: u64,
    pub samples_per_class: usize,
    pub near_dup_hamming: u32,
    pub near_dup_rms: f64,
    pub blank_std: f64,
    pub examples: usize,
}

impl Default for StatsParams {
    /// The defaults, checked.
    fn default() -> Self {
        StatsSection::default()
            .checked()
            .expect("the default [stats] passes its check")
    }
}

impl StatsSection {
    /// The check, each key's rule beside its doc above; `pf` names the file in an error.
    pub fn validate(self, pf: &PipelineFile) -> fer_core::Result<StatsParams> {
        self.checked().map_err(|(k, m)| pf.param_error(STAGE, k, m))
    }

    fn checked(self) -> Result<StatsParams, (&'static str, String)> {
        if self.samples_per_class == 0 || self.samples_per_class > 100 {
            return Err((
                "samples_per_class",
                format!("{} is not in 1..=100", self.samples_per_class),
            ));
        }
        if self.near_dup_hamming > 32 {
            return Err((
                "near_dup_hamming",
                format!("{} is above 32 (of 64 bits)", self.near_dup_hamming),
            ));
        }
        if !(self.near_dup_rms >= 0.0 && self.near_dup_rms.is_finite()) {
            return Err((
                "near_dup_rms",
                format!("{} must be >= 0", self.near_dup_rms),
            ));
        }
        if !(self.blank_std >= 0.0 && self.blank_std.is_finite()) {
            return Err(("blank_std", format!("{} must be >= 0", self.blank_std)));
        }
        let StatsSection {
            seed,
            samples_per_class,
            near_dup_hamming,
            near_dup_rms,
            blank_std,
            examples,
        } = self;
        Ok(StatsParams {
            seed,
            samples_per_class,
            near_dup_hamming,
            near_dup_rms,
            blank_std,
            examples,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Params {
    pub pipeline: PipelineFile,
    pub stats: StatsParams,
    pub common: StageArgs,
}

impl Params {
    pub fn from_pipeline(pipeline: &PipelineFile, cli: &Cli) -> Result<Params, StatsError> {
        let stats: StatsSection = pipeline.section(STAGE)?;
        Ok(Params {
            pipeline: pipeline.clone(),
            stats: stats.validate(pipeline)?,
            common: cli.common.clone(),
        })
    }
}
fer_core::impl_stage! { Params: STAGE, "fer-stats", StatsError, fer_core::cli::NoArgs,
"Stage stats: counts, mean/std, histograms, samples and a data audit" }

/// The params the stage's signature hashes (printed by `--print-params`).
pub fn signature_params(p: &Params) -> Result<serde_json::Value, StatsError> {
    Ok(serde_json::to_value(&p.stats).expect("params serialize"))
}

pub fn run(p: &Params) -> Result<Manifest, StatsError> {
    let Preamble { run, upstream: up } = p.prepare(Vec::new())?;
    let images_path: PathBuf = up[0].0.join("images.parquet");
    debug_assert!(up[0].1.output("images.parquet").is_some());
    run.execute(|dir| {
        let ds = ImageDataset::read_parquet(&images_path)?;
        compute(&ds, &p.stats, dir, p.common.quiet)
    })
}

/// Everything the stage writes, into `dir`.
pub fn compute(
    ds: &ImageDataset,
    sp: &StatsParams,
    dir: &Path,
    quiet: bool,
) -> Result<Outputs, StatsError> {
    let mut out = Outputs::default();
    let names = ds.label_mode.class_names();

    // 1. The study's table: counts, mean, std.
    let cm = class_moments(ds);
    let em = emotion_moments(ds);
    let mut rows: Vec<(String, String, &Moments)> = Vec::new();
    for g in GROUPS {
        for c in names.iter().copied().chain(["all"]) {
            if let Some(m) = cm.get(&(g.to_string(), c.to_string())) {
                rows.push((g.to_string(), c.to_string(), m));
            }
        }
    }
    for g in GROUPS {
        for e in Emotion::ALL {
            if let Some(m) = em.get(&(g.to_string(), e)) {
                rows.push((g.to_string(), format!("emotion:{e}"), m));
            }
        }
    }
    let n = write_columns(
        &dir.join("summary.parquet"),
        vec![
            (
                "split",
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.0.as_str()),
                )) as ArrayRef,
            ),
            (
                "class",
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.1.as_str()),
                )),
            ),
            (
                "images",
                Arc::new(UInt64Array::from_iter_values(
                    rows.iter().map(|r| r.2.images),
                )),
            ),
            (
                "mean",
                Arc::new(Float64Array::from_iter_values(
                    rows.iter().map(|r| r.2.mean()),
                )),
            ),
            (
                "std",
                Arc::new(Float64Array::from_iter_values(
                    rows.iter().map(|r| r.2.std()),
                )),
            ),
        ],
    )?;
    out.table("summary.parquet", n);
    let table: Vec<serde_json::Value> = rows
        .iter()
        .map(|(g, c, m)| json!({"split": g, "class": c, "images": m.images, "mean": round2(m.mean()), "std": round2(m.std())}))
        .collect();

    // 2. Histograms (label classes only).
    let hist_rows: Vec<(&str, &str, &Moments)> = rows
        .iter()
        .filter(|r| !r.1.starts_with("emotion:") && r.1 != "all" && r.0 != "train+val")
        .map(|r| (r.0.as_str(), r.1.as_str(), r.2))
        .collect();
    let mut hs = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (g, c, m) in &hist_rows {
        for (b, &count) in m.hist.iter().enumerate() {
            hs.0.push(*g);
            hs.1.push(*c);
            hs.2.push(b as u8);
            hs.3.push(count);
        }
    }
    let n = write_columns(
        &dir.join("histograms.parquet"),
        vec![
            (
                "split",
                Arc::new(StringArray::from_iter_values(hs.0)) as ArrayRef,
            ),
            ("class", Arc::new(StringArray::from_iter_values(hs.1))),
            ("bin", Arc::new(UInt8Array::from_iter_values(hs.2))),
            ("count", Arc::new(UInt64Array::from_iter_values(hs.3))),
        ],
    )?;
    out.table("histograms.parquet", n);
    histogram_chart(&dir.join("histograms.png"), &hist_rows)?;
    out.file("histograms.png");

    // 3. Sample grids.
    let mut rng = ChaCha8Rng::seed_from_u64(sp.seed);
    let mut samples = serde_json::Map::new();
    for split in Split::ALL {
        let mut grid_rows = Vec::new();
        let mut ids = serde_json::Map::new();
        for (c, name) in names.iter().enumerate() {
            let mut idx: Vec<usize> = (0..ds.records.len())
                .filter(|&i| ds.records[i].split == split && ds.records[i].label as usize == c)
                .collect();
            if idx.is_empty() {
                continue;
            }
            idx.shuffle(&mut rng);
            idx.truncate(sp.samples_per_class);
            ids.insert(
                name.to_string(),
                idx.iter()
                    .map(|&i| ds.records[i].id.clone())
                    .collect::<Vec<_>>()
                    .into(),
            );
            grid_rows.push((
                name.replace('_', " "),
                idx.iter()
                    .map(|&i| ds.records[i].pixels.as_slice())
                    .collect(),
            ));
        }
        if grid_rows.is_empty() {
            continue;
        }
        let file = format!("samples_{split}.png");
        fer_core::plot::image_grid(
            &dir.join(&file),
            &format!("{split}: random samples per class"),
            &grid_rows,
            ds.side as u32,
            2,
        )?;
        out.file(&file);
        samples.insert(split.as_str().into(), ids.into());
    }

    // 4. Audit.
    let audit = audit_section(ds, sp, dir, &mut out)?;
    let label_noise = noise::label_noise_section(ds, dir, &mut out)?;

    let doc = json!({
        "label_mode": ds.label_mode.as_str(),
        "rows": ds.records.len(),
        "mean_std": table,
        "samples": samples,
        "audit": audit,
        "label_noise": label_noise,
    });
    let text = serde_json::to_string_pretty(&doc).expect("json");
    std::fs::write(dir.join("stats.json"), text + "\n")
        .map_err(|e| fer_core::Error::io(dir.join("stats.json"), e))?;
    out.file("stats.json");
    if !quiet {
        eprintln!("{}", mean_std_text(&rows));
        eprintln!(
            "audit: {} exact-duplicate pairs, {} near-duplicate pairs, {} test images with a near twin in train+val, {} blank",
            audit["exact_pairs"],
            audit["near_pairs"],
            audit["test_with_train_twin"],
            audit["blank"]["count"]
        );
    }
    out.summary = json!({
        "rows": ds.records.len(),
        "mean_std": doc["mean_std"].as_array().map(|a| a.iter().filter(|r| !r["class"].as_str().unwrap_or("").starts_with("emotion:")).cloned().collect::<Vec<_>>()),
        "audit": {
            "exact_pairs": audit["exact_pairs"],
            "near_pairs": audit["near_pairs"],
            "test_with_train_twin": audit["test_with_train_twin"],
            "blank": audit["blank"]["count"],
        },
        "label_noise": match &label_noise {
            serde_json::Value::Object(m) => json!({
                "images_with_votes": m["images_with_votes"],
                "test_binary_disagreement": m["test_binary_disagreement"],
            }),
            other => other.clone(),
        },
    });
    Ok(out)
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn mean_std_text(rows: &[(String, String, &Moments)]) -> String {
    let mut s = format!(
        "{:<10} {:<18} {:>7} {:>8} {:>8}\n",
        "split", "class", "images", "mean", "std"
    );
    for (g, c, m) in rows.iter().filter(|r| !r.1.starts_with("emotion:")) {
        s += &format!(
            "{g:<10} {c:<18} {:>7} {:>8.2} {:>8.2}\n",
            m.images,
            m.mean(),
            m.std()
        );
    }
    s
}
