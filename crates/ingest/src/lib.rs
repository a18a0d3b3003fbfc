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
//! `train_per_emotion` and `test_per_emotion`, drawn per emotion; full: every image), `seed`, `val_fraction` (stratified, carved from train), `on_bad` (error|skip),
//! `resize` and `resize_filter` (for images that are not 48x48), `[ingest.synthetic]`
//! (`train_per_class`, `test_per_class`, `noise`; under `emotion7` that many faces of each of
//! the seven emotions, each drawn with its own expression: [`synthetic::face7`]),
//! `max_train_images` (a cap on the drawn training images, test and pool shrunk alike: what
//! miniature runs set).

pub mod labels;
pub mod params;
pub mod source;
pub mod synthetic;

use fer_core::cli::Stage as _;
use fer_core::cli::StageArgs;
use fer_core::dataset::{ImageDataset, ImageRecord};
use fer_core::manifest::Manifest;
use fer_core::pipeline::PipelineFile;
use fer_core::stage::{Input, Outputs};
use fer_core::{BinaryLabel, Emotion, LabelMode, LabelSource, Split};
use params::{IngestParams, IngestSection, OnBad, Protocol, Source};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use source::{Loaded, Raw, Reject, Sizing};
use std::path::PathBuf;
use std::sync::Arc;

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

/// The dataset row of an ingested image: its training target is FER2013's label or FERPlus's,
/// as `labels` says (an image without a FERPlus label never gets here with `ferplus`).
fn to_record(p: &IngestParams, r: Raw, split: Split) -> ImageRecord {
    ImageRecord {
        label: target(p, &r),
        id: r.id,
        split,
        usage: r.usage,
        emotion: r.emotion,
        pixels: r.pixels,
        source: r.source,
        ferplus_label: r.ferplus_label,
        ferplus_votes: r.ferplus_votes,
    }
}

fn target(p: &IngestParams, r: &Raw) -> u8 {
    match (p.labels, r.ferplus_label) {
        (LabelSource::Ferplus, Some(l)) => l,
        _ => p.label_mode.label_of(r.emotion),
    }
}

/// Apply the protocol (sampling, by FER2013's binary labels whatever the target) and carve the
/// stratified validation split (by the target). Also returns the training images the seed
/// protocol left out (the pretraining pool), sorted by id.
pub fn select(
    p: &IngestParams,
    mut images: Vec<Raw>,
) -> Result<(ImageDataset, Vec<Raw>), IngestError> {
    images.sort_by(|a, b| a.id.cmp(&b.id));
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let mut chosen: Vec<Raw> = Vec::new();
    let mut rest: Vec<Raw> = Vec::new();
    if let Protocol::SeedPerEmotion(n) = p.protocol {
        // Per emotion, by FER2013's labels: `n.train` / `n.test` of each of the seven.
        for split in [Split::Train, Split::Test] {
            let (want, key) = match split {
                Split::Train => (n.train, "train_per_emotion"),
                _ => (n.test, "test_per_emotion"),
            };
            for emotion in Emotion::ALL {
                let pool = images
                    .iter()
                    .filter(|r| r.split == split && r.emotion == emotion)
                    .cloned()
                    .collect();
                let what = emotion.as_str();
                chosen.extend(draw(pool, (want, key), what, split, &mut rng, &mut rest)?);
            }
        }
    } else {
        for split in [Split::Train, Split::Test] {
            for group in BinaryLabel::ALL {
                let mut pool: Vec<Raw> = images
                    .iter()
                    .filter(|r| r.split == split && r.emotion.binary() == group)
                    .cloned()
                    .collect();
                if let Protocol::Seed(sizes) = p.protocol {
                    let want = match (split, group) {
                        (Split::Train, BinaryLabel::Happy) => (sizes.train_happy, "train_happy"),
                        (Split::Train, BinaryLabel::NotHappy) => {
                            (sizes.train_not_happy, "train_not_happy")
                        }
                        (_, BinaryLabel::Happy) => (sizes.test_happy, "test_happy"),
                        (_, BinaryLabel::NotHappy) => (sizes.test_not_happy, "test_not_happy"),
                    };
                    let what = group.to_string();
                    pool = draw(pool, want, &what, split, &mut rng, &mut rest)?;
                }
                chosen.extend(pool);
            }
        }
    }
    if let Some(cap) = p.max_train_images {
        shrink(&mut chosen, &mut rest, cap, p);
    }
    // Stratified validation split: per label, a shuffled val_fraction of train.
    let mut records: Vec<ImageRecord> = Vec::with_capacity(chosen.len());
    let mut val_rng = ChaCha8Rng::seed_from_u64(p.seed ^ 0x5641_4C5F_5350_4C54);
    let classes = p.label_mode.num_classes() as u8;
    let (train, test): (Vec<Raw>, Vec<Raw>) =
        chosen.into_iter().partition(|r| r.split == Split::Train);
    for c in 0..classes {
        let mut group: Vec<Raw> = train
            .iter()
            .filter(|r| target(p, r) == c)
            .cloned()
            .collect();
        group.sort_by(|a, b| a.id.cmp(&b.id));
        group.shuffle(&mut val_rng);
        let n_val = (group.len() as f64 * p.val_fraction).round() as usize;
        for (i, r) in group.into_iter().enumerate() {
            records.push(to_record(
                p,
                r,
                if i < n_val { Split::Val } else { Split::Train },
            ));
        }
    }
    records.extend(test.into_iter().map(|r| to_record(p, r, Split::Test)));
    records.sort_by(|a, b| (a.split, &a.id).cmp(&(b.split, &b.id)));
    rest.sort_by(|a, b| a.id.cmp(&b.id));
    Ok((
        ImageDataset {
            side: fer_core::IMAGE_SIDE,
            label_mode: p.label_mode,
            labels: p.labels,
            records,
        },
        rest,
    ))
}

/// `max_train_images`: when the drawn training images (train and val) are more than `cap`,
/// keep the fraction `cap / drawn` of each group of `chosen` (per split, the groups the
/// protocol draws by: FER2013's binary groups, or its seven emotions under `emotion7`;
/// rounded, at least one of a group that has any) and of the pretraining pool `rest`, each a
/// seeded shuffle's first rows, so the sample keeps its class balance and every class.
fn shrink(chosen: &mut Vec<Raw>, rest: &mut Vec<Raw>, cap: usize, p: &IngestParams) {
    let drawn = chosen.iter().filter(|r| r.split == Split::Train).count();
    if drawn <= cap {
        return;
    }
    let fraction = cap as f64 / drawn as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed ^ 0x4D49_4E49_5F43_4150);
    let group_of = |r: &Raw| match p.label_mode {
        LabelMode::Emotion7 => r.emotion as usize,
        LabelMode::Binary => r.emotion.binary() as usize,
    };
    let mut keep = |mut group: Vec<Raw>, at_least: usize| -> Vec<Raw> {
        group.sort_by(|a, b| a.id.cmp(&b.id));
        group.shuffle(&mut rng);
        let n = ((group.len() as f64 * fraction).round() as usize).max(at_least.min(group.len()));
        group.truncate(n);
        group
    };
    let all = std::mem::take(chosen);
    for split in [Split::Train, Split::Test] {
        for g in 0..Emotion::ALL.len() {
            let group: Vec<Raw> = all
                .iter()
                .filter(|r| r.split == split && group_of(r) == g)
                .cloned()
                .collect();
            chosen.extend(keep(group, 1));
        }
    }
    *rest = keep(std::mem::take(rest), 0);
}

/// The seed protocol's draw from one group's `pool`: `want.0` images (the key `want.1` of
/// `[ingest.sizes]` asks for; too few is an error naming it and the group `what`), shuffled by
/// `rng`; a training split's leftovers go to `rest` (the pretraining pool).
fn draw(
    mut pool: Vec<Raw>,
    want: (usize, &str),
    what: &str,
    split: Split,
    rng: &mut ChaCha8Rng,
    rest: &mut Vec<Raw>,
) -> Result<Vec<Raw>, IngestError> {
    let (want, key) = want;
    if pool.len() < want {
        return Err(IngestError::Params(format!(
            "[ingest] sizes.{key} = {want}, but the data has only {} {what} images in {split}",
            pool.len(),
        )));
    }
    pool.shuffle(rng);
    let left = pool.split_off(want);
    if split == Split::Train {
        rest.extend(left);
    }
    Ok(pool)
}

fn write_rejects(path: &std::path::Path, rejects: &[Reject]) -> fer_core::Result<usize> {
    use arrow_array::{ArrayRef, StringArray};
    fer_core::parquet_io::write_columns(
        path,
        vec![
            (
                "file",
                Arc::new(StringArray::from_iter_values(
                    rejects.iter().map(|r| r.file.as_str()),
                )) as ArrayRef,
            ),
            (
                "reason",
                Arc::new(StringArray::from_iter_values(
                    rejects.iter().map(|r| r.reason.as_str()),
                )),
            ),
        ],
    )
}

fn summary(
    ds: &ImageDataset,
    source: Source,
    pool: (usize, usize),
    rejects: &[Reject],
) -> serde_json::Value {
    let names = ds.label_mode.class_names();
    let mut counts = serde_json::Map::new();
    for split in Split::ALL {
        let mut m = serde_json::Map::new();
        for (c, name) in names.iter().enumerate() {
            m.insert(name.to_string(), ds.count(split, c as u8).into());
        }
        counts.insert(split.as_str().into(), m.into());
    }
    serde_json::json!({
        "source": source,
        "label_mode": ds.label_mode.as_str(),
        "rows": ds.records.len(),
        "counts": counts,
        "images_read": pool.0,
        "rejected": pool.1,
        "reject_examples": rejects.iter().take(5).map(|r| format!("{}: {}", r.file, r.reason)).collect::<Vec<_>>(),
    })
}

/// Counts per split and class as a small text table.
pub fn counts_table(ds: &ImageDataset) -> String {
    let names = ds.label_mode.class_names();
    let mut s = format!("{:<10}", "split");
    for n in &names {
        s += &format!("{n:>11}");
    }
    s += &format!("{:>9}\n", "total");
    for split in Split::ALL {
        s += &format!("{:<10}", split.as_str());
        let mut total = 0;
        for c in 0..names.len() {
            let n = ds.count(split, c as u8);
            total += n;
            s += &format!("{n:>11}");
        }
        s += &format!("{total:>9}\n");
    }
    s
}
