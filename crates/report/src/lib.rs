//! Stage `report`: the study's slides (sample faces, the mean/std table, the base CNN's
//! accuracy, a classification report, a recommendation) as a generated, self-contained
//! report, SVM versus CNN, for readers who will never open a terminal.
//!
//! Reads, under `artifacts/<pipeline>/`, whichever of these stages have run (their manifests
//! are the stage's inputs; a stage that has not run gives a section marked "not run"):
//! `ingest` (counts per split and class, `images.parquet` for the faces of the mistakes
//! gallery), `stats` (`stats.json`: the mean/std table and the data-quality audit; the sample,
//! histogram and duplicate PNGs), `preprocess` (`transform.json`), `augment` (`chain.json`,
//! `preview.png`), `train_svm` (`metrics.json`, `predictions.parquet`, the header of
//! `model.safetensors` for sizes), `train_cnn/<model>/` and `tune/best/` (`metrics.json`,
//! `model.json`, `predictions.parquet`, `epochs.parquet`, the size of `model.safetensors`) and
//! `tune` (`summary.json`, `trials.parquet`); each model folder's `calibration.json` (the map
//! fitted on val, measured on test in the "Calibration" section). At least one of
//! `train_svm`, `train_cnn` or `tune` must have run, else the stage stops naming the targets
//! to run.
//!
//! **Seven classes.** A pipeline is seven-class when ingest's `images.parquet` says
//! `fer.label_mode = "emotion7"` (ingest's manifest summary says it first, so a binary
//! pipeline never opens the images for this) or a model's figures have more than two classes.
//! Then (see [`load::happy_vs_rest`]) every seven-class model is also read as **happy vs the
//! rest**: truth happy = the label whose class is named `happy` (emotion code 3, never label
//! 0), answer happy = happy is the model's top emotion, score = its happy score (a CNN's
//! `p_happy`, the happy class's probability; an SVM's `decision`, its happy-vs-rest decision
//! value). The binary sections (recommendation, operating point and alerts, the comparison
//! with the study, models side by side, ROC, calibration of p(happy), the mistakes gallery)
//! show that reading and say so; learning curves, tuning trials and "Two truths" say that
//! their figures are over the seven emotions. A binary model in a seven-class pipeline (a
//! binary-only `train_svm`, label 0 = happy) is shown as it is. A "Seven emotions" section
//! comes first: per seven-class model (each CNN, tune's best, each chosen SVM) accuracy and
//! macro F1 on the whole test split and on FER2013's `PrivateTest` images alone (test ids
//! joined to `images.parquet`'s `usage`; "not available" when there are none, as with
//! synthetic faces), with bootstrap intervals; the per-class table and the 7x7 confusion
//! matrix (counts, and a row-normalized chart per model); the published anchors (human
//! agreement about 65%, Goodfellow et al. 2013; the best single network 73.28% on
//! PrivateTest, Khaireddin & Chen 2021: report defaults, [`seven::ANCHORS`]); and the best
//! model by validation macro F1. A binary pipeline's report is what it was, byte for byte.
//!
//! Writes `artifacts/<pipeline>/report/`:
//! - `index.html`: one self-contained page (CSS inline, every image a base64 data URI);
//! - `report.md`: the same content in Markdown, images linked from `img/`;
//! - `img/*.png`: charts drawn with plotters (accuracy with 95% bootstrap intervals, ROC
//!   curves, confusion matrices, learning curves, tuning trials, the mistakes gallery; seven
//!   classes: `seven_accuracy.png` and `confusion7_<model>.png`) and the
//!   upstream pictures it shows (samples, histograms, duplicates, augmentation preview);
//! - `recommendation.json`: the model to deploy (chosen on validation accuracy; seven classes:
//!   happy vs the rest, plus `seven_classes`, the best seven-class model by validation macro
//!   F1 and its test and PrivateTest figures), its artifact
//!   folder, the p(happy) threshold for "not happy" alerts (chosen on validation predictions
//!   reweighted to the shop's `base_rate`, never on test), the test figures at that threshold,
//!   the blake3 hash of the model's weights file (`model_weights_blake3`) and the assumptions
//!   (`base_rate`, `goal`, `expected_alerts_per_100`, `at_base_rate`, `calibration`); read by
//!   the predict tool, which applies the threshold only to a model with those weights;
//! - `metrics.json` (headline numbers per model, the McNemar test, the recommendation; seven
//!   classes: the per-model keys are the happy-vs-rest reading, and each seven-class model adds
//!   `seven_classes` (validation accuracy and macro F1, test accuracy and macro F1 with their
//!   intervals, `private_test` or "not available", per-class F1) beside a top-level
//!   `seven_classes` (classes, best model, majority baseline, anchors)) and
//!   `params.json` (every upstream stage's resolved params): what `fer-report diff` compares.
//!
//! Params (`[report]`): `seed` (42, the bootstrap's), `bootstrap` (2000 resamples, 100..=100000),
//! `confidence` (0.95), `gallery` (12 images, 0..=60), the operating point (see [`operating`]):
//! `base_rate` (the expected share of unhappy customers at the shop, in (0, 1); default: the
//! validation split's own share) and one goal, `alert_precision` (the share of "not happy"
//! alerts that must be right, in (0, 1]) or `alert_budget` (alerts per 100 customers, in
//! (0, 100]); neither: `alert_precision = 0.9`; both: an error), and `[report.study]`, the
//! original study's published figures shown beside ours (defaults: the study's numbers).
//!
//! `fer-report diff A B` prints the metrics and params that differ between two pipelines or
//! report folders (see [`diff`]).

pub mod charts;
pub mod diff;
pub mod doc;
pub mod load;
pub mod operating;
mod recommend;
mod sections;
pub mod seven;
pub mod stats;

use fer_core::cli::StageArgs;
use fer_core::cli::{Preamble, Stage as _};
use fer_core::manifest::{MANIFEST_FILE, Manifest};
use fer_core::pipeline::PipelineFile;
use fer_core::stage::{Input, Outputs};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const STAGE: &str = "report";
pub const CODE_VERSION: &str = <Params as fer_core::cli::Stage>::CODE_VERSION;
/// The code versions of the upstream stages this build reads (checked by `Input::current`).
pub const UPSTREAM_CODE_VERSIONS: &str = <Params as fer_core::cli::Stage>::UPSTREAM_CODE_VERSIONS;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Core(#[from] fer_core::Error),
    #[error("{0}")]
    Chart(String),
    /// An upstream file that is there but cannot be used.
    #[error("{path}: {message}{}", target.as_ref().map(|t| format!(" (run `make {t}` for this pipeline again)")).unwrap_or_default())]
    Artifact {
        path: PathBuf,
        message: String,
        target: Option<String>,
    },
    /// An upstream stage the report cannot do without.
    #[error("{0}")]
    Missing(String),
    /// `[report]` params that do not pass their check (`key: message`).
    #[error("[report] {0}")]
    Params(String),
}

/// The stage's own options, beside the shared `StageArgs`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `fer-report`'s command line.
pub type Cli = fer_core::cli::StageCli<ReportArgs>;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Metrics and params that differ between two runs (pipeline names under the artifacts
    /// folder, or paths to a pipeline's artifacts folder or to a report folder).
    Diff {
        a: String,
        b: String,
        /// List every metric and param, not only those that differ.
        #[arg(long)]
        all: bool,
        /// Include timings (seconds, images per second), which differ on every run.
        #[arg(long)]
        timings: bool,
    },
}

/// The original study's published figures, shown beside ours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StudyFigures {
    pub train_happy: u64,
    pub train_not_happy: u64,
    pub test_happy: u64,
    pub test_not_happy: u64,
    pub mean_happy: f64,
    pub std_happy: f64,
    pub mean_not_happy: f64,
    pub std_not_happy: f64,
    pub base_train_acc: f64,
    pub base_val_acc: f64,
    pub tuned_params: u64,
    pub tuned_test_acc: f64,
}

impl Default for StudyFigures {
    fn default() -> Self {
        StudyFigures {
            train_happy: 2000,
            train_not_happy: 2022,
            test_happy: 200,
            test_not_happy: 224,
            // The study's own sample: 2,000 happy and 2,022 not-happy training images.
            mean_happy: 130.58,
            std_happy: 63.11,
            mean_not_happy: 124.17,
            std_not_happy: 65.35,
            base_train_acc: 0.974,
            base_val_acc: 0.834,
            tuned_params: 24_358_450,
            tuned_test_acc: 0.83,
        }
    }
}

/// `[report]` as written (every key optional, unknown keys refused);
/// [`ReportSection::validate`] checks it into [`ReportParams`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportSection {
    /// The bootstrap's seed.
    pub seed: u64,
    /// Bootstrap resamples of the confidence intervals: 100..=100000.
    pub bootstrap: usize,
    /// The intervals' confidence: between 0.5 and 1 (exclusive).
    pub confidence: f64,
    /// Faces in each gallery: at most 60.
    pub gallery: usize,
    /// The operating point's goal and mix (checked by [`operating::OperatingParams::check`]).
    pub alert_precision: Option<f64>,
    pub alert_budget: Option<f64>,
    pub base_rate: Option<f64>,
    /// The study's own figures: accuracies fractions in [0, 1], pixel means and standard
    /// deviations in [0, 255].
    pub study: StudyFigures,
}

impl Default for ReportSection {
    fn default() -> Self {
        ReportSection {
            seed: 42,
            bootstrap: 2000,
            confidence: 0.95,
            gallery: 12,
            alert_precision: None,
            alert_budget: None,
            base_rate: None,
            study: StudyFigures::default(),
        }
    }
}

/// `[report]` checked: only [`ReportSection::validate`] builds one (outside this crate), so a
/// value is always valid. Its fields are what the stage's signature hashes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ReportParams {
    pub seed: u64,
    pub bootstrap: usize,
    pub confidence: f64,
    pub gallery: usize,
    pub alert_precision: Option<f64>,
    pub alert_budget: Option<f64>,
    pub base_rate: Option<f64>,
    pub study: StudyFigures,
}

impl Default for ReportParams {
    /// The defaults, checked.
    fn default() -> Self {
        ReportSection::default()
            .checked()
            .expect("the default [report] passes its check")
    }
}

impl ReportSection {
    /// The check, each key's rule beside its doc above; `pf` names the file in an error.
    pub fn validate(self, pf: &PipelineFile) -> fer_core::Result<ReportParams> {
        self.checked().map_err(|(k, m)| pf.param_error(STAGE, k, m))
    }

    fn checked(self) -> Result<ReportParams, (&'static str, String)> {
        if !(100..=100_000).contains(&self.bootstrap) {
            return Err((
                "bootstrap",
                format!("{} is not in 100..=100000", self.bootstrap),
            ));
        }
        if !(self.confidence > 0.5 && self.confidence < 1.0) {
            return Err((
                "confidence",
                format!("{} is not between 0.5 and 1 (exclusive)", self.confidence),
            ));
        }
        if self.gallery > 60 {
            return Err(("gallery", format!("{} is above 60", self.gallery)));
        }
        operating::OperatingParams::check(self.base_rate, self.alert_precision, self.alert_budget)?;
        let s = &self.study;
        for (k, v) in [
            ("study.base_train_acc", s.base_train_acc),
            ("study.base_val_acc", s.base_val_acc),
            ("study.tuned_test_acc", s.tuned_test_acc),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err((k, format!("{v} is not a fraction in [0, 1]")));
            }
        }
        for (k, v) in [
            ("study.mean_happy", s.mean_happy),
            ("study.std_happy", s.std_happy),
            ("study.mean_not_happy", s.mean_not_happy),
            ("study.std_not_happy", s.std_not_happy),
        ] {
            if !(0.0..=255.0).contains(&v) {
                return Err((k, format!("{v} is not a pixel value in [0, 255]")));
            }
        }
        let ReportSection {
            seed,
            bootstrap,
            confidence,
            gallery,
            alert_precision,
            alert_budget,
            base_rate,
            study,
        } = self;
        Ok(ReportParams {
            seed,
            bootstrap,
            confidence,
            gallery,
            alert_precision,
            alert_budget,
            base_rate,
            study,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Params {
    pub pipeline: PipelineFile,
    pub report: ReportParams,
    pub common: StageArgs,
}

impl Params {
    pub fn from_pipeline(pipeline: &PipelineFile, cli: &Cli) -> Result<Params, ReportError> {
        let report: ReportSection = pipeline.section(STAGE)?;
        Ok(Params {
            pipeline: pipeline.clone(),
            report: report.validate(pipeline)?,
            common: cli.common.clone(),
        })
    }
}

/// The upstream stages that ran for `pipeline` (their manifests exist), of those the graph
/// declares: [`run`] checks each current.
fn reads(p: &Params) -> Vec<&'static str> {
    let root = p.common.artifacts.join(&p.pipeline.name);
    load::upstream()
        .iter()
        .copied()
        .filter(|s| root.join(s).join(MANIFEST_FILE).exists())
        .collect()
}

/// The scene benchmark (`make scenes`, not a stage): the model card quotes it, so its content
/// is an input of the report's signature.
fn scenes_input(root: &Path) -> Result<Vec<Input>, ReportError> {
    let scenes = root.join(fer_schema::scenes::SCENES_FILE);
    if !scenes.exists() {
        return Ok(Vec::new());
    }
    Ok(vec![Input {
        name: "scenes".into(),
        hash: fer_core::hash::hash_file(&scenes)?,
        path: scenes,
    }])
}

fer_core::impl_stage! { Params: STAGE, "fer-report", ReportError, ReportArgs,
"Stage report: SVM versus CNN as one self-contained HTML page and Markdown"; reads = reads }

/// The params the stage's signature hashes (printed by `--print-params`).
pub fn signature_params(p: &Params) -> Result<serde_json::Value, ReportError> {
    Ok(serde_json::to_value(&p.report).expect("params serialize"))
}

pub fn run(p: &Params) -> Result<Manifest, ReportError> {
    let name = p.pipeline.name.clone();
    let root = p.common.artifacts.join(&name);
    let Preamble { run, upstream } = p.prepare(scenes_input(&root)?)?;
    let has_model = upstream.iter().any(|(dir, _)| {
        dir.file_name()
            .is_some_and(|s| matches!(s.to_str(), Some("train_svm" | "train_cnn" | "tune")))
    });
    if !has_model {
        return Err(ReportError::Missing(format!(
            "{}: no trained model: the report needs stage `train_svm`, `train_cnn` or `tune` (run `make train-svm PIPELINE={name}` and `make train-cnn PIPELINE={name}`)",
            root.display()
        )));
    }
    let artifacts = p.common.artifacts.clone();
    run.execute(|dir| compute(&artifacts, &root, &name, &p.report, dir))
}

/// Read every upstream artifact under `root` (`<artifacts>/<pipeline>`) and write the report
/// into `dir`.
pub fn compute(
    artifacts: &Path,
    root: &Path,
    pipeline: &str,
    rp: &ReportParams,
    dir: &Path,
) -> Result<Outputs, ReportError> {
    let study = load::load(root, pipeline)?;
    let built = sections::build(&study, rp, artifacts, dir)?;
    let mut out = Outputs::default();
    for f in &built.files {
        out.file(f);
    }
    let write = |rel: &str, text: String| -> Result<(), ReportError> {
        let p = dir.join(rel);
        std::fs::write(&p, text).map_err(|e| fer_core::Error::io(&p, e).into())
    };
    let md = doc::render_md(&built.doc);
    write("report.md", md)?;
    out.file("report.md");
    let html = doc::render_html(&built.doc, dir).map_err(|e| fer_core::Error::io(dir, e))?;
    write("index.html", html)?;
    out.file("index.html");
    let json = |v: &serde_json::Value| serde_json::to_string_pretty(v).expect("json") + "\n";
    if let Some(r) = &built.recommendation {
        fer_schema::write_json_sorted(&dir.join("recommendation.json"), r)?;
        out.file("recommendation.json");
    }
    write("metrics.json", json(&built.metrics))?;
    out.file("metrics.json");
    write("params.json", json(&diff::params_json(&study)))?;
    out.file("params.json");
    out.summary = serde_json::json!({
        "models": study.models.len(),
        "recommendation": built.recommendation.as_ref().map(|r| &r.rec).map(|r| serde_json::json!({
            "model": r.model,
            "threshold": r.threshold,
            "expected_not_happy_precision": r.expected_not_happy_precision,
        })),
        "not_run": built.not_run,
    });
    Ok(out)
}
