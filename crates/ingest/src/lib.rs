//! Stage `ingest`: FER2013 into a Parquet image dataset with the study's splits.
//!
//! Reads: `FER2013_DIR` (`--data-dir`, default `data/fer2013`) in either public layout, the
//! Kaggle image folders (`train/<emotion>/*.jpg|png`, `test/<emotion>/...`) or the original
//! `fer2013.csv` (`emotion,pixels,Usage`); or nothing, with `source = "synthetic"` (drawn faces).
//!
//! With real data it also reads FERPlus (`FERPLUS_DIR`, `--ferplus-dir`, default `data/ferplus`:
//! `fer2013new.csv` and, for the folders, `kaggle_fer2013_to_ferplus_rows.csv`): required with
//! `labels = "ferplus"`, used when present otherwise (rules in [`labels`]).
//!
//! Writes `artifacts/<pipeline>/ingest/`: `images.parquet` (schema in `fer_core::dataset`; rows
//! sorted by split then id), `rejects.parquet` (file, reason: what `on_bad = "skip"` left out:
//! undecodable, truncated (JPEG without its end marker, PNG without its `IEND` chunk) or
//! wrongly sized images, entries that are not regular files (never opened), symbolic links
//! that loop or lead nowhere ([`source`]); and the images FERPlus gives no label under
//! `labels = "ferplus"`), `pretrain.parquet` (with `pretrain_pool`: the training images outside
//! the sample), `manifest.json` (counts per split and class, rejects, pool sizes, whether
//! FERPlus labels are available).
//!
//! Params (`[ingest]`): `source` (auto|folders|csv|synthetic), `label_mode` (binary|emotion7),
//! `labels` (fer2013|ferplus: the training target), `pretrain_pool` (seed protocol only),
//! `protocol` (seed: the study's 2000/2022 train and 200/224 test, or `[ingest.sizes]`
//! `train_happy`, `train_not_happy`, `test_happy`, `test_not_happy`; with `emotion7`, instead,
//! `train_per_emotion` and `test_per_emotion`, drawn per emotion; full: every image), `seed`,
//! `val_fraction` (stratified, carved from train), `validation` (carve, or public_test: the
//! literature's split, FER2013's PublicTest as the validation split and PrivateTest alone as
//! test; full protocol and val_fraction = 0 only), `on_bad` (error|skip),
//! `resize` and `resize_filter` (for images that are not 48x48), `[ingest.synthetic]`
//! (`train_per_class`, `test_per_class`, `noise`; under `emotion7` that many faces of each of
//! the seven emotions, each drawn with its own expression: [`synthetic::face7`]),
//! `max_train_images` (a cap on the drawn training images, test and pool shrunk alike: what
//! miniature runs set).

pub mod labels;
mod outputs;
pub mod params;
mod sample;
pub mod source;
pub mod synthetic;

use fer_core::cli::Stage as _;
use fer_core::cli::StageArgs;
use fer_core::dataset::ImageDataset;
use fer_core::manifest::Manifest;
use fer_core::pipeline::PipelineFile;
use fer_core::stage::{Input, Outputs};
use fer_core::{Emotion, LabelMode, LabelSource, Split};
use outputs::{summary, write_rejects};
use params::{IngestParams, IngestSection, OnBad, Source};
use sample::to_record;
use source::{Loaded, Raw, Sizing};
use std::path::PathBuf;

pub use outputs::counts_table;
pub use sample::select;

pub const STAGE: &str = "ingest";
pub const CODE_VERSION: &str = <Params as fer_core::cli::Stage>::CODE_VERSION;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Core(#[from] fer_core::Error),
    /// The data folder does not have a layout we can read.
    #[error("{0}")]
    Layout(String),
    /// A file or CSV row that is not a usable image (with `on_bad = "error"`).
    #[error("{file}: {reason}{more}")]
    BadInput {
        file: String,
        reason: String,
        more: String,
    },
    /// The data cannot satisfy the params (e.g. too few images for the sizes asked).
    #[error("{0}")]
    Params(String),
}

/// The stage's own options, beside the shared `StageArgs`.
#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    /// The FER2013 folder: Kaggle's train/ and test/ folders, or fer2013.csv.
    #[arg(long, env = "FER2013_DIR", default_value = "data/fer2013")]
    pub data_dir: PathBuf,
    /// The FERPlus folder: fer2013new.csv and kaggle_fer2013_to_ferplus_rows.csv.
    #[arg(long, env = "FERPLUS_DIR", default_value = "data/ferplus")]
    pub ferplus_dir: PathBuf,
}

/// `fer-ingest`'s command line.
pub type Cli = fer_core::cli::StageCli<IngestArgs>;

/// Everything `run` needs, validated.
#[derive(Debug, Clone)]
pub struct Params {
    pub pipeline: PipelineFile,
    pub ingest: IngestParams,
    pub common: StageArgs,
    pub data_dir: PathBuf,
    pub ferplus_dir: PathBuf,
}

impl Params {
    pub fn from_pipeline(pipeline: &PipelineFile, cli: &Cli) -> Result<Params, IngestError> {
        let section: IngestSection = pipeline.section(STAGE)?;
        Ok(Params {
            pipeline: pipeline.clone(),
            ingest: section.validate(pipeline)?,
            common: cli.common.clone(),
            data_dir: cli.args.data_dir.clone(),
            ferplus_dir: cli.args.ferplus_dir.clone(),
        })
    }
}

/// The source after `auto` is resolved against the data folder.
fn resolve_source(p: &Params) -> Result<Source, IngestError> {
    if p.ingest.source == Source::Synthetic {
        return Ok(Source::Synthetic);
    }
    if !p.data_dir.is_dir() {
        return Err(IngestError::Layout(format!(
            "{}: FER2013_DIR not found: download FER2013 (Kaggle: msambare/fer2013) and unzip it there, \
             point FER2013_DIR at it, or run `make demo` for synthetic faces",
            p.data_dir.display()
        )));
    }
    Ok(match p.ingest.source {
        Source::Auto if p.data_dir.join("fer2013.csv").is_file() => Source::Csv,
        Source::Auto => Source::Folders,
        s => s,
    })
}

fer_core::impl_stage! { Params: STAGE, "fer-ingest", IngestError, IngestArgs,
"Stage ingest: FER2013 (or synthetic faces) into artifacts/<pipeline>/ingest/images.parquet" }

/// The params the stage's signature hashes (printed by `--print-params`): the section with
/// `source` resolved against the data folder.
pub fn signature_params(p: &Params) -> Result<serde_json::Value, IngestError> {
    Ok(signature_params_for(p, resolve_source(p)?))
}

fn signature_params_for(p: &Params, source: Source) -> serde_json::Value {
    let mut params = serde_json::to_value(&p.ingest).expect("params serialize");
    params["source"] = serde_json::to_value(source).expect("source serializes");
    params
}

/// Run the stage: skip if up to date, restore from the run cache, or compute.
pub fn run(p: &Params) -> Result<Manifest, IngestError> {
    let source = resolve_source(p)?;
    let csv_path = p.data_dir.join("fer2013.csv");
    let (input, files, refused) = match source {
        Source::Synthetic => (None, Vec::new(), Vec::new()),
        Source::Csv => {
            if !csv_path.is_file() {
                return Err(IngestError::Layout(format!(
                    "{}: not found",
                    csv_path.display()
                )));
            }
            let hash = fer_core::hash::hash_file(&csv_path)?;
            (
                Some(Input {
                    name: "fer2013".into(),
                    path: csv_path.clone(),
                    hash,
                }),
                Vec::new(),
                Vec::new(),
            )
        }
        _ => {
            let layout = source::list_folder_layout(&p.data_dir)?;
            let paths: Vec<PathBuf> = layout.files.iter().map(|f| f.2.clone()).collect();
            let mut hash = fer_core::hash::hash_tree(&p.data_dir, &paths)?;
            if !layout.refused.is_empty() {
                // The entries refused unopened count too (they are rejects), by name and why;
                // a folder without any keeps the hash it always had.
                let mut text = hash;
                for r in &layout.refused {
                    text.push_str(&format!("\n{}\0{}", r.file, r.reason));
                }
                hash = fer_core::hash::hash_bytes(text.as_bytes());
            }
            (
                Some(Input {
                    name: "fer2013".into(),
                    path: p.data_dir.clone(),
                    hash,
                }),
                layout.files,
                layout.refused,
            )
        }
    };
    let fp_files = match source {
        Source::Synthetic => None,
        _ => labels::locate(
            &p.ferplus_dir,
            source,
            p.ingest.labels == LabelSource::Ferplus,
        )?,
    };
    let mut inputs: Vec<Input> = input.into_iter().collect();
    if let Some(f) = &fp_files {
        inputs.push(Input {
            name: "ferplus".into(),
            path: p.ferplus_dir.clone(),
            hash: fer_core::hash::hash_tree(&p.ferplus_dir, &f.paths())?,
        });
    }
    let run = p.prepare(inputs)?.run;
    let quiet = p.common.quiet;
    run.execute(|dir| {
        let total = if files.is_empty() { 0 } else { files.len() as u64 };
        let pb = fer_core::cli::progress(total, "decode", quiet);
        let sizing = Sizing {
            resize: p.ingest.resize,
            filter: p.ingest.filter,
        };
        let mut loaded = match source {
            Source::Synthetic => synthesize(&p.ingest),
            Source::Csv => source::read_csv(&csv_path, &pb)?,
            _ => source::read_folders(&p.data_dir, &files, sizing, &pb),
        };
        loaded.rejects.extend(refused.iter().cloned());
        pb.finish_and_clear();
        loaded.rejects.sort_by(|a, b| a.file.cmp(&b.file));
        if p.ingest.on_bad == OnBad::Error
            && let Some(first) = loaded.rejects.first()
        {
            let n = loaded.rejects.len();
            return Err(IngestError::BadInput {
                file: first.file.clone(),
                reason: first.reason.clone(),
                more: if n > 1 {
                    format!(" (and {} more bad inputs; on_bad = \"skip\" lists them in rejects.parquet)", n - 1)
                } else {
                    String::new()
                },
            });
        }
        let mut fp_rejects = Vec::new();
        if let Some(f) = &fp_files {
            fp_rejects = labels::attach(
                &mut loaded.images,
                f,
                p.ingest.label_mode,
                p.ingest.labels == LabelSource::Ferplus,
                &p.data_dir,
            )?;
        }
        let pool = (loaded.images.len(), loaded.rejects.len() + fp_rejects.len());
        let (ds, rest) = select(&p.ingest, loaded.images).map_err(|e| match e {
            IngestError::Params(m) => IngestError::Params(format!("{}: {m}", p.pipeline.path.display())),
            e => e,
        })?;
        let mut out = Outputs::default();
        let rows = ds.write_parquet(&dir.join("images.parquet"))?;
        out.table("images.parquet", rows);
        if p.ingest.pretrain_pool {
            let pre = ImageDataset {
                records: rest
                    .into_iter()
                    .map(|r| to_record(&p.ingest, r, Split::Train))
                    .collect(),
                ..ds.clone()
            };
            out.table("pretrain.parquet", pre.write_parquet(&dir.join("pretrain.parquet"))?);
        }
        loaded.rejects.extend(fp_rejects);
        loaded.rejects.sort_by(|a, b| a.file.cmp(&b.file));
        let rej_rows = write_rejects(&dir.join("rejects.parquet"), &loaded.rejects)?;
        out.table("rejects.parquet", rej_rows);
        out.summary = summary(&ds, source, pool, &loaded.rejects);
        out.summary["validation"] = serde_json::to_value(p.ingest.validation)
            .unwrap_or_else(|_| "carve".into());
        out.summary["ferplus"] = match &fp_files {
            Some(_) => "available".into(),
            None => "not available".into(),
        };
        if !quiet {
            eprintln!("{}", counts_table(&ds));
        }
        Ok(out)
    })
}

fn synthesize(p: &IngestParams) -> Loaded {
    if p.label_mode == LabelMode::Emotion7 {
        return synthesize7(p);
    }
    let s = &p.synthetic;
    let mut images = Vec::new();
    for (split, tag, n) in [
        (Split::Train, 1u64, s.train_per_class),
        (Split::Test, 2, s.test_per_class),
    ] {
        for happy in [true, false] {
            for i in 0..n {
                let (emotion, pixels) = synthetic::nth_face(happy, tag, i, p.seed, s.noise);
                let id = format!(
                    "Synthetic_{}_{}_{i:05}",
                    split.as_str(),
                    if happy { "h" } else { "n" }
                );
                images.push(synthetic_raw(id, split, emotion, pixels));
            }
        }
    }
    Loaded {
        images,
        rejects: Vec::new(),
    }
}

/// The ingested form of a drawn face.
fn synthetic_raw(id: String, split: Split, emotion: Emotion, pixels: Vec<u8>) -> Raw {
    Raw {
        source: format!("synthetic:{id}"),
        id,
        split,
        usage: "Synthetic".into(),
        emotion,
        pixels,
        csv_row: None,
        ferplus_label: None,
        ferplus_votes: None,
    }
}

/// Seven-emotion synthetic faces (`label_mode = "emotion7"`): `train_per_class` and
/// `test_per_class` faces of each of the seven emotions, drawn by [`synthetic::face7`].
fn synthesize7(p: &IngestParams) -> Loaded {
    let s = &p.synthetic;
    let mut images = Vec::new();
    for (split, tag, n) in [
        (Split::Train, 1u64, s.train_per_class),
        (Split::Test, 2, s.test_per_class),
    ] {
        for emotion in Emotion::ALL {
            for i in 0..n {
                let pixels = synthetic::nth_face7(emotion, tag, i, p.seed, s.noise);
                let id = format!("Synthetic_{}_{}_{i:05}", split.as_str(), emotion.as_str());
                images.push(synthetic_raw(id, split, emotion, pixels));
            }
        }
    }
    Loaded {
        images,
        rejects: Vec::new(),
    }
}
