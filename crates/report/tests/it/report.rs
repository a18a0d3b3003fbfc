//! Tests of the `report` stage, end to end through the `fer-report` binary.
//!
//! The fixture is a small `smoke` pipeline written here (no download, no training): every
//! upstream stage's outputs in the formats the real stages write (ingest's `images.parquet`,
//! stats' `stats.json` and sample grid, preprocess' `transform.json`, augment's `chain.json`
//! and preview, train_svm's `metrics.json` / `predictions.parquet` / `model.safetensors`,
//! train_cnn's per-model folders, and optionally tune's outputs), each with its manifest
//! written by the stage runner. Metrics are computed from the fixture's predictions with
//! `fer_eval::metrics`, as the training stages do.
//!
//! - `report.md` is snapshot-tested (insta) with timings redacted;
//! - changing one metrics file (and its manifest hash, as a rerun would) changes the report
//!   and the recommendation;
//! - a missing model stage is an error naming the make targets; a missing stats or tune stage
//!   is a section marked "not run"; an upstream file changed behind its manifest's back is an
//!   error naming the make target to run again;
//! - `index.html` embeds every image and links nothing external;
//! - `fer-report diff` lists the metric that differs between two pipelines;
//! - invalid `[report]` params exit 2 naming the key.

use arrow_array::{ArrayRef, Float64Array, StringArray, UInt32Array};
use fer_core::dataset::{ImageDataset, ImageRecord};
use fer_core::manifest::Manifest;
use fer_core::parquet_io::write_columns;
use fer_core::stage::upstream_code_version;
use fer_core::stage::{Outputs, StageRun};
use fer_core::{Emotion, IMAGE_PIXELS, IMAGE_SIDE, LabelMode, Split};
use fer_eval::metrics::{Metrics, classification_metrics};
use fer_schema::metrics::{
    CnnMetrics, SplitMetrics, SvmBest, SvmCounts, SvmMetrics, SvmModelMetrics, ValTest,
};
use fer_schema::model::{ModelJson, TrainSettings};
use fer_schema::predictions::{self, CnnPrediction, SvmPrediction};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const BIN: &str = env!("CARGO_BIN_EXE_fer-report");
const CLASSES: [&str; 2] = ["happy", "not_happy"];
const PIPELINE: &str = "smoke";
/// Images per class in val and test.
const PER_CLASS: usize = 10;

struct Fixture {
    tmp: tempfile::TempDir,
}

fn col_s(v: Vec<String>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

/// A 48x48 face-ish gradient, different for every `n`.
fn pixels(n: u32) -> Vec<u8> {
    (0..IMAGE_PIXELS as u32)
        .map(|i| {
            let (x, y) = (i % 48, i / 48);
            ((x * (n % 5 + 1) + y * (n % 7 + 2) + n * 37) % 230) as u8 + 10
        })
        .collect()
}

fn split_labels() -> Vec<u8> {
    (0..2 * PER_CLASS)
        .map(|i| u8::from(i >= PER_CLASS))
        .collect()
}

/// The score (higher = happy) of image `i` of a split for a model of skill `skill` (0..1):
/// right with probability about `skill` (deterministic per image), with varied confidence.
fn score(model: u32, split: u32, i: usize, label: u8, skill: f64) -> f64 {
    let i = i as u32;
    let wobble = ((i * 7919 + model * 104_729 + split * 31) % 101) as f64 / 100.0;
    let margin = 0.05 + 0.45 * ((i * 31 + model * 7 + split) % 17) as f64 / 16.0;
    let happy_side = (label == 0) == (wobble < skill);
    if happy_side {
        0.5 + margin
    } else {
        0.5 - margin
    }
}

fn stage_run(artifacts: &Path, stage: &str) -> StageRun {
    StageRun {
        pipeline: PIPELINE.into(),
        stage: stage.into(),
        artifacts: artifacts.to_path_buf(),
        code_version: upstream_code_version(fer_report::UPSTREAM_CODE_VERSIONS, stage)
            .unwrap_or("fixture")
            .into(),
        params: json!({"fixture": stage}),
        inputs: vec![],
        cache: None,
        force: true,
        verbose: false,
        touch_on_skip: true,
        section_hash: None,
        cache_max_bytes: None,
        status_only: false,
    }
}

fn write_json(path: &Path, v: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap() + "\n").unwrap();
}

/// A minimal safetensors file: the header names tensors of the given shapes (f64).
fn safetensors(path: &Path, tensors: &[(&str, Vec<u64>)]) {
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, shape) in tensors {
        let bytes = shape.iter().product::<u64>() * 8;
        header.insert(
            name.to_string(),
            json!({"dtype": "F64", "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let h = serde_json::to_vec(&header).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(vec![0u8; offset as usize]);
    std::fs::write(path, out).unwrap();
}

/// Scores and predictions of one model on val and test.
struct Scored {
    val: Vec<f64>,
    test: Vec<f64>,
}

fn scored(model: u32, skill: f64) -> Scored {
    let y = split_labels();
    Scored {
        val: (0..y.len())
            .map(|i| score(model, 1, i, y[i], skill))
            .collect(),
        test: (0..y.len())
            .map(|i| score(model, 2, i, y[i], skill))
            .collect(),
    }
}

/// preprocess's fitted transform in the fixture.
fn fixture_transform() -> Value {
    json!({"size": 48, "resize_filter": "triangle", "denoise": {"kind": "none"},
           "equalize": "none", "normalization": {"kind": "standardize", "mean": 0.5, "std": 0.25}})
}

fn metrics_of(scores: &[f64], threshold: f64, probs: bool) -> Metrics {
    let y = split_labels();
    let pred: Vec<u8> = scores.iter().map(|&s| u8::from(s < threshold)).collect();
    let sc: Vec<Vec<f64>> = scores
        .iter()
        .map(|&s| {
            if probs {
                vec![s, 1.0 - s]
            } else {
                vec![s - threshold, threshold - s]
            }
        })
        .collect();
    classification_metrics(&y, &pred, &CLASSES, Some(&sc))
}

impl Fixture {
    fn new() -> Fixture {
        let f = Fixture {
            tmp: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(f.tmp.path().join("pipelines")).unwrap();
        f.pipeline_file("[report]\nseed = 7\nbootstrap = 300\ngallery = 4\n");
        for s in [
            "ingest",
            "stats",
            "preprocess",
            "augment",
            "train_svm",
            "train_cnn",
        ] {
            f.write_stage(s);
        }
        f
    }

    fn artifacts(&self) -> PathBuf {
        self.tmp.path().join("artifacts")
    }

    fn root(&self) -> PathBuf {
        self.artifacts().join(PIPELINE)
    }

    fn pipeline_file(&self, text: &str) -> PathBuf {
        let p = self
            .tmp
            .path()
            .join("pipelines")
            .join(format!("{PIPELINE}.toml"));
        std::fs::write(&p, text).unwrap();
        p
    }

    fn ids(split: &str) -> Vec<String> {
        (0..2 * PER_CLASS)
            .map(|i| {
                let e = if i < PER_CLASS { "happy" } else { "sad" };
                format!("{e}/{split}_{i:02}")
            })
            .collect()
    }

    fn write_stage(&self, stage: &str) {
        let art = self.artifacts();
        stage_run(&art, stage)
            .execute(|dir| {
                let mut o = Outputs::default();
                match stage {
                    "ingest" => Self::ingest(dir, &mut o),
                    "stats" => Self::stats(dir, &mut o),
                    "preprocess" => {
                        write_json(&dir.join("transform.json"), &fixture_transform());
                        o.file("transform.json");
                    }
                    "augment" => {
                        write_json(
                            &dir.join("chain.json"),
                            &json!({"range": [-2.0, 2.0], "side": 48, "steps": [
                                {"op": {"kind": "hflip"}, "p": 0.5},
                                {"op": {"kind": "rotate", "degrees": 15.0}, "p": 1.0}]}),
                        );
                        o.file("chain.json");
                        let a = pixels(1);
                        fer_core::plot::image_grid(
                            &dir.join("preview.png"),
                            "preview",
                            &[("original".into(), vec![&a[..]])],
                            48,
                            1,
                        )?;
                        o.file("preview.png");
                    }
                    "train_svm" => Self::svm(dir, &mut o),
                    "train_cnn" => Self::cnn(dir, &mut o),
                    "tune" => Self::tune(dir, &mut o),
                    _ => unreachable!(),
                }
                o.summary = if stage == "ingest" {
                    json!({"counts": {"train": {"happy": 20, "not_happy": 20}, "val": {"happy": PER_CLASS, "not_happy": PER_CLASS},
                           "test": {"happy": PER_CLASS, "not_happy": PER_CLASS}}, "rows": 80, "source": "synthetic", "rejected": 0})
                } else {
                    json!({})
                };
                Ok::<_, fer_core::Error>(o)
            })
            .expect("fixture stage is written");
    }

    fn ingest(dir: &Path, o: &mut Outputs) {
        let mut records = Vec::new();
        for (split, n) in [
            (Split::Train, 20),
            (Split::Val, PER_CLASS),
            (Split::Test, PER_CLASS),
        ] {
            for i in 0..2 * n {
                let e = if i < n { Emotion::Happy } else { Emotion::Sad };
                records.push(ImageRecord {
                    id: format!("{}/{}_{i:02}", e.as_str(), split.as_str()),
                    split,
                    usage: "Synthetic".into(),
                    emotion: e,
                    label: LabelMode::Binary.label_of(e),
                    pixels: pixels(i as u32 + 100 * split as u32),
                    source: "fixture".into(),
                    ferplus_label: None,
                    ferplus_votes: None,
                });
            }
        }
        let ds = ImageDataset {
            side: IMAGE_SIDE,
            label_mode: LabelMode::Binary,
            labels: fer_core::LabelSource::Fer2013,
            records,
        };
        let n = ds.write_parquet(&dir.join("images.parquet")).unwrap();
        o.table("images.parquet", n);
    }

    fn stats(dir: &Path, o: &mut Outputs) {
        let mut rows = Vec::new();
        for (split, mean) in [
            ("train", 120.0),
            ("val", 121.5),
            ("test", 119.25),
            ("train+val", 120.5),
        ] {
            for (class, d) in [("happy", 1.0), ("not_happy", -1.0), ("all", 0.0)] {
                rows.push(json!({"split": split, "class": class, "images": 20, "mean": mean + d, "std": 60.0 + d}));
            }
        }
        write_json(
            &dir.join("stats.json"),
            &json!({"mean_std": rows, "audit": {
                "exact_pairs": 1, "near_pairs": 0, "test_with_train_twin": 1, "test_with_train_twin_label_conflicts": 0,
                "method": "pHash within 8 bits", "blank": {"count": 0, "threshold_std": 2.0},
                "by_scope": {"train~test": {"exact_pairs": 1, "near_pairs": 0, "label_conflicts": 0}}}}),
        );
        o.file("stats.json");
        let (a, b) = (pixels(3), pixels(4));
        fer_core::plot::image_grid(
            &dir.join("samples_train.png"),
            "train",
            &[
                ("happy".into(), vec![&a[..]]),
                ("not happy".into(), vec![&b[..]]),
            ],
            48,
            1,
        )
        .unwrap();
        o.file("samples_train.png");
    }

    /// A CNN's `predictions.parquet` rows (p(happy) scores) or, with `svm`, that SVM's rows
    /// of train_svm's (decision values: score - threshold).
    fn prediction_rows(s: &Scored, threshold: f64, svm: Option<&str>) -> Vec<SvmPrediction> {
        let y = split_labels();
        let mut rows = Vec::new();
        for (split, v) in [(Split::Val, &s.val), (Split::Test, &s.test)] {
            let ids = Self::ids(split.as_str());
            for (i, &x) in v.iter().enumerate() {
                let feature = svm.and_then(|m| m.split('/').next()).unwrap_or("");
                rows.push(SvmPrediction {
                    model: svm.unwrap_or("").to_string(),
                    feature: feature.to_string(),
                    kernel: "rbf".into(),
                    split,
                    row: i as u32,
                    id: ids[i].clone(),
                    label: y[i],
                    decision: x - if svm.is_some() { threshold } else { 0.0 },
                    pred: u8::from(x < threshold),
                    decisions: Vec::new(),
                });
            }
        }
        rows
    }

    /// A CNN's `predictions.parquet`, written with core's schema.
    fn predictions(path: &Path, s: &Scored, threshold: f64) -> usize {
        let rows: Vec<CnnPrediction> = Self::prediction_rows(s, threshold, None)
            .into_iter()
            .map(|r| CnnPrediction {
                split: r.split,
                row: r.row,
                id: r.id,
                label: r.label,
                p_happy: r.decision,
                pred: r.pred,
                probs: Vec::new(),
            })
            .collect();
        predictions::write(path, &rows).unwrap()
    }

    fn svm(dir: &Path, o: &mut Outputs) {
        let mut models = Vec::new();
        let mut all: Vec<(String, Scored)> = Vec::new();
        for (k, (name, feature, skill)) in [("raw/rbf", "raw", 0.35), ("hog/rbf", "hog", 0.5)]
            .iter()
            .enumerate()
        {
            let s = scored(10 + k as u32, *skill);
            models.push(SvmModelMetrics {
                name: name.to_string(),
                feature: feature.to_string(),
                kernel: "rbf".into(),
                c: 3.0,
                gamma: Some(0.01),
                gamma_spec: Some("scale".into()),
                n_features: 100,
                n_train: 40,
                n_support: 12,
                solver: "smo".into(),
                train_seconds: 1.5,
                grid_points: 4,
                grid_seconds: 4.0,
                feature_fit_seconds: 0.5,
                inference_seconds: 0.02,
                inference_images_per_second: 5000.0,
                val: metrics_of(&s.val, 0.5, false),
                test: metrics_of(&s.test, 0.5, false),
                test_by_truth: None,
            });
            all.push((name.to_string(), s));
        }
        let best = SvmBest {
            name: "hog/rbf".into(),
            by: "val accuracy".into(),
            val_accuracy: models[1].val.accuracy,
            test_accuracy: models[1].test.accuracy,
        };
        let metrics = SvmMetrics {
            positive_class: "happy (label 0)".into(),
            n: SvmCounts {
                train: 40,
                kernel_train: 40,
                val: 2 * PER_CLASS,
                test: 2 * PER_CLASS,
            },
            majority_baseline: ValTest {
                val: 0.5,
                test: 0.5,
            },
            threads: 1,
            features: Vec::new(),
            models,
            best,
        };
        write_json(
            &dir.join("metrics.json"),
            &serde_json::to_value(metrics).unwrap(),
        );
        o.file("metrics.json");
        // One predictions file for all SVMs, as train_svm writes it.
        let rows: Vec<SvmPrediction> = all
            .iter()
            .flat_map(|(name, s)| Self::prediction_rows(s, 0.5, Some(name)))
            .collect();
        let n = predictions::write_svm(&dir.join("predictions.parquet"), &rows).unwrap();
        o.table("predictions.parquet", n);
        safetensors(
            &dir.join("model.safetensors"),
            &[
                ("raw.scaler_mean", vec![2304]),
                ("hog.scaler_mean", vec![900]),
                ("raw/rbf.sv", vec![12, 2304]),
                ("hog/rbf.sv", vec![12, 900]),
            ],
        );
        o.file("model.safetensors");
        calibration_json(
            dir,
            o,
            "",
            all.iter().map(|(n, s)| (n.as_str(), s)).collect(),
        );
    }

    fn cnn_model(
        dir: &Path,
        o: &mut Outputs,
        name: &str,
        arch: &str,
        model: u32,
        skill: f64,
        train_acc: f64,
    ) {
        let m = dir.join(name);
        std::fs::create_dir_all(&m).unwrap();
        let s = scored(model, skill);
        let epochs = 4u32;
        let e: Vec<u32> = (1..=epochs).collect();
        let f = |g: &dyn Fn(f64) -> f64| -> ArrayRef {
            Arc::new(Float64Array::from_iter_values(
                e.iter().map(|&x| g(x as f64)),
            ))
        };
        let n = write_columns(
            &m.join("epochs.parquet"),
            vec![
                ("epoch", Arc::new(UInt32Array::from(e.clone())) as ArrayRef),
                ("train_loss", f(&|x| 0.7 / x)),
                (
                    "train_acc",
                    f(&|x| 0.5 + (train_acc - 0.5) * x / epochs as f64),
                ),
                ("val_loss", f(&|x| 0.6 + 0.02 * (x - 2.0).powi(2))),
                ("val_acc", f(&|x| 0.55 + 0.05 * x.min(3.0))),
                ("lr", f(&|_| 1e-3)),
                ("seconds", f(&|_| 2.0)),
            ],
        )
        .unwrap();
        o.table(&format!("{name}/epochs.parquet"), n);
        let n = Self::predictions(&m.join("predictions.parquet"), &s, 0.5);
        o.table(&format!("{name}/predictions.parquet"), n);
        let params = 1000 * (model as u64 + 1);
        let metrics = CnnMetrics {
            name: name.to_string(),
            arch: arch.to_string(),
            params: params as usize,
            macs: 10 * params,
            epochs_run: epochs as usize,
            best_epoch: 2,
            train_seconds: 12.0,
            train_images_per_second: 300.0,
            inference_images_per_second: 400.0,
            final_train_acc: Some(train_acc),
            final_val_acc: Some(0.7),
            tta_flip: false,
            metrics: SplitMetrics {
                val: metrics_of(&s.val, 0.5, true),
                test: metrics_of(&s.test, 0.5, true),
            },
            test_by_truth: None,
            tune: None,
        };
        write_json(
            &m.join("metrics.json"),
            &serde_json::to_value(metrics).unwrap(),
        );
        let model = ModelJson::<Value> {
            model: json!({"arch": arch}),
            settings: TrainSettings {
                arch: arch.to_string(),
                optimizer: "adam".into(),
                lr: 0.001,
                augment: arch == "fer-small",
                ..TrainSettings::default()
            },
            transform: serde_json::from_value(fixture_transform()).unwrap(),
            class_names: CLASSES.iter().map(|c| c.to_string()).collect(),
            tta_flip: false,
            params: params as usize,
            macs: 10 * params,
        };
        write_json(&m.join("model.json"), &serde_json::to_value(model).unwrap());
        std::fs::write(m.join("model.safetensors"), vec![0u8; 4096]).unwrap();
        for f in ["metrics.json", "model.json", "model.safetensors"] {
            o.file(&format!("{name}/{f}"));
        }
        if name != "seed-base" {
            calibration_json(&m, o, &format!("{name}/"), vec![(name, &s)]);
        }
    }

    fn cnn(dir: &Path, o: &mut Outputs) {
        Self::cnn_model(dir, o, "fer-small", "fer-small", 1, 0.7, 0.8);
        Self::cnn_model(dir, o, "seed-base", "seed-base", 2, 0.6, 0.99);
    }

    fn tune(dir: &Path, o: &mut Outputs) {
        let b = dir.join("best");
        std::fs::create_dir_all(&b).unwrap();
        let mut inner = Outputs::default();
        Self::cnn_model(dir, &mut inner, "best", "fer-small", 3, 0.75, 0.85);
        for (f, rows) in inner.files {
            match rows {
                Some(r) => o.table(&f, r as usize),
                None => o.file(&f),
            }
        }
        let n = write_columns(
            &dir.join("trials.parquet"),
            vec![
                (
                    "trial",
                    Arc::new(UInt32Array::from(vec![0, 1, 2])) as ArrayRef,
                ),
                ("strategy", col_s(vec!["random".into(); 3])),
                (
                    "status",
                    col_s(vec!["completed".into(), "pruned".into(), "failed".into()]),
                ),
                (
                    "params",
                    col_s(vec![
                        r#"{"lr":0.001}"#.into(),
                        r#"{"lr":0.01}"#.into(),
                        r#"{"lr":1.0}"#.into(),
                    ]),
                ),
                ("epochs_run", Arc::new(UInt32Array::from(vec![4, 1, 0]))),
                ("val_acc", Arc::new(Float64Array::from(vec![0.8, 0.6, 0.0]))),
                (
                    "val_loss",
                    Arc::new(Float64Array::from(vec![0.4, 0.7, 9.0])),
                ),
                ("rungs", col_s(vec!["[]".into(); 3])),
                (
                    "seconds",
                    Arc::new(Float64Array::from(vec![10.0, 2.0, 0.5])),
                ),
                (
                    "error",
                    Arc::new(StringArray::from(vec![None, None, Some("diverged")])),
                ),
            ],
        )
        .unwrap();
        o.table("trials.parquet", n);
        write_json(
            &dir.join("summary.json"),
            &json!({"strategy": "random", "trials": 3, "completed": 1, "pruned": 1, "failed": 1,
                    "best_trial": 0, "best_val_acc": 0.8, "seconds": 12.5, "budget": {"trials": 3}}),
        );
        o.file("summary.json");
    }

    /// Run `fer-report` on the fixture; (exit code, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(BIN)
            .current_dir(self.tmp.path())
            .env_remove("FER_ARTIFACTS")
            .env("FER_CACHE_DIR", "off")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    fn report(&self) -> (i32, String) {
        let (code, _, err) = self.run(&["--pipeline", "pipelines/smoke.toml", "-q"]);
        (code, err)
    }

    fn report_ok(&self) -> String {
        let (code, err) = self.report();
        assert_eq!(code, 0, "fer-report failed: {err}");
        std::fs::read_to_string(self.root().join("report/report.md")).unwrap()
    }

    /// Edit a JSON file of a stage, then record its new hash in the manifest (as a rerun of
    /// that stage would).
    fn edit_json(&self, stage: &str, rel: &str, edit: impl FnOnce(&mut Value)) {
        let p = self.root().join(stage).join(rel);
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        edit(&mut v);
        write_json(&p, &v);
        let mp = self.root().join(stage).join("manifest.json");
        let mut m = Manifest::read(&mp).unwrap();
        for o in &mut m.outputs {
            if o.path == rel {
                o.hash = fer_core::hash::hash_file(&p).unwrap();
                o.bytes = std::fs::metadata(&p).unwrap().len();
            }
        }
        m.write(&mp).unwrap();
    }
}

#[test]
fn report_md_snapshot_of_the_smoke_fixture() {
    let f = Fixture::new();
    let md = f.report_ok();
    // Timings (training time, run time, images per second) change from run to run.
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\d+(\.\d+)? (s|min|h) \|", "[time] |");
    settings.add_filter(r"[\d,]+ img/s", "[speed]");
    // The fixture's upstream manifests carry this build's code versions (the report checks
    // them), so code versions and the signatures that hash them change with any code edit.
    settings.add_filter(
        r"\| computed \| `[0-9a-f]{16}` \| `[0-9a-f]{12}` \|",
        "| computed | [code] | [signature] |",
    );
    settings.bind(|| insta::assert_snapshot!("smoke_report_md", md));
    // The HTML has the same sections and embeds every image.
    let html = std::fs::read_to_string(f.root().join("report/index.html")).unwrap();
    let images = md.matches("](img/").count();
    assert!(images >= 6, "{images} images in report.md");
    assert_eq!(html.matches("src=\"data:image/png;base64,").count(), images);
    assert!(
        !html.contains("src=\"http"),
        "index.html links something external"
    );
    for h in md.lines().filter(|l| l.starts_with("## ")) {
        assert!(
            html.contains(&format!(">{}</h2>", &h[3..])),
            "{h} missing from index.html"
        );
    }
}

#[test]
fn recommendation_threshold_is_chosen_on_validation() {
    let f = Fixture::new();
    f.report_ok();
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(f.root().join("report/recommendation.json")).unwrap(),
    )
    .unwrap();
    // fer-small has the highest validation accuracy of the fixture's models.
    assert_eq!(r["model"], "fer-small");
    assert_eq!(r["score"], "p_happy");
    assert!(
        r["model_dir"]
            .as_str()
            .unwrap()
            .ends_with("smoke/train_cnn/fer-small"),
        "{r}"
    );
    let t = r["threshold"].as_f64().unwrap();
    assert!(t > 0.0 && t < 1.0, "{t}");
    // The threshold is bound to those weights: predict checks this hash before using it.
    let weights = f.root().join("train_cnn/fer-small/model.safetensors");
    assert_eq!(
        r["model_weights_blake3"].as_str(),
        Some(fer_core::hash::hash_file(&weights).unwrap().as_str()),
        "{r}"
    );
    assert_eq!(r["threshold_chosen_on"], "validation");
    assert_eq!(r["validation"]["threshold"].as_f64(), Some(t));
    let p = r["expected_not_happy_precision"].as_f64().unwrap();
    assert_eq!(r["test"]["precision"].as_f64(), Some(p));
    let ci = r["expected_not_happy_precision_ci"].as_array().unwrap();
    assert!(
        ci[0].as_f64().unwrap() <= p && p <= ci[1].as_f64().unwrap(),
        "{r}"
    );
}

fn recommendation_json(f: &Fixture) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(f.root().join("report/recommendation.json")).unwrap(),
    )
    .unwrap()
}

#[test]
fn the_operating_point_follows_the_stated_base_rate_and_goal() {
    let f = Fixture::new();
    // The default: the validation split's own mix (half unhappy) and 90% precision.
    f.report_ok();
    let r = recommendation_json(&f);
    assert_eq!(r["base_rate"].as_f64(), Some(0.5), "{r}");
    assert!(
        r["base_rate_source"]
            .as_str()
            .unwrap()
            .contains("validation"),
        "{r}"
    );
    assert_eq!(r["goal"]["kind"], "alert_precision");
    assert_eq!(r["goal"]["value"].as_f64(), Some(0.9));
    assert_eq!(r["goal"]["stated"], false);
    // The model folder's calibration.json (the fixture writes one, as train-cnn does) is
    // passed through as is.
    let cal: Value = serde_json::from_str(
        &std::fs::read_to_string(f.root().join("train_cnn/fer-small/calibration.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(r["calibration"], cal, "{r}");

    // A shop with three quarters unhappy and a budget of 30 alerts per 100 customers: each
    // of the 10 unhappy validation faces weighs 7.5 alerts per 100, each happy one 2.5.
    f.pipeline_file(
        "[report]\nseed = 7\nbootstrap = 300\ngallery = 4\nbase_rate = 0.75\nalert_budget = 30.0\n",
    );
    let md = f.report_ok();
    let r = recommendation_json(&f);
    assert_eq!(r["base_rate"].as_f64(), Some(0.75), "{r}");
    assert!(
        r["base_rate_source"]
            .as_str()
            .unwrap()
            .starts_with("stated")
    );
    assert_eq!(r["goal"]["kind"], "alert_budget");
    assert_eq!(r["goal"]["value"].as_f64(), Some(30.0));
    assert_eq!(r["goal"]["met"], true, "{r}");
    assert_eq!(r["threshold_rule"], "alert_budget");
    assert_eq!(r["target_not_happy_precision"], Value::Null);
    let alerts = r["expected_alerts_per_100"].as_f64().unwrap();
    assert!(alerts > 0.0 && alerts <= 30.0 + 1e-9, "{r}");
    assert_eq!(
        r["at_base_rate"]["validation"]["alerts_per_100"].as_f64(),
        Some(alerts)
    );
    // Recall on validation is a share of the 10 unhappy faces, and the alerts add up:
    // 7.5 per flagged unhappy face, 2.5 per flagged happy one.
    let recall = r["at_base_rate"]["validation"]["recall"].as_f64().unwrap();
    let precision = r["at_base_rate"]["validation"]["precision"]
        .as_f64()
        .unwrap();
    let flagged_unhappy = recall * 10.0;
    assert!((flagged_unhappy - flagged_unhappy.round()).abs() < 1e-9);
    assert!(
        (precision - 7.5 * flagged_unhappy / alerts).abs() < 1e-9,
        "{r}"
    );
    assert_eq!(r["calibration"], cal, "{r}");
    assert_eq!(
        r["calibration"]["models"][0]["method"], "temperature",
        "{r}"
    );
    assert!(r["at_base_rate"]["test"]["recall"].is_number(), "{r}");
    assert!(md.contains("## Operating point"), "{md}");
    assert!(
        md.contains("**75.0% of its customers to be unhappy**"),
        "{md}"
    );
    assert!(md.contains("at most 30.0 alerts per 100 customers"), "{md}");
    assert!(md.contains("| seed (about half unhappy) | 50.3% |"), "{md}");
    assert!(
        md.contains("| full (about three quarters unhappy) | 74.9% |"),
        "{md}"
    );
    assert!(md.contains("| validation's own mix | 50.0% |"), "{md}");
    assert!(md.contains("## Model card"), "{md}");
    assert!(md.contains("stores no image"), "{md}");
    assert!(f.root().join("report/img/operating_pr.png").exists());
    assert!(f.root().join("report/img/operating_sweep.png").exists());

    // A goal out of reach is said, in the report and in recommendation.json.
    f.pipeline_file("[report]\nbootstrap = 300\nbase_rate = 0.02\nalert_precision = 1.0\n");
    let md = f.report_ok();
    let r = recommendation_json(&f);
    assert_eq!(r["goal"]["met"], false, "{r}");
    assert_eq!(r["threshold_rule"], "balanced_accuracy");
    assert!(md.contains("**The goal is not met.**"), "{md}");
    assert!(md.contains("**No threshold meets the goal**"), "{md}");
}

#[test]
fn changing_one_metrics_file_changes_the_report() {
    let f = Fixture::new();
    let before = f.report_ok();
    assert!(
        before.contains("Deploy **CNN fer-small (ours)**"),
        "{before}"
    );
    // seed-base now claims the best validation accuracy and another parameter count.
    f.edit_json("train_cnn", "seed-base/metrics.json", |v| {
        v["metrics"]["val"]["accuracy"] = json!(0.9875);
        v["params"] = json!(123_456_789);
    });
    let after = f.report_ok();
    assert_ne!(before, after);
    assert!(after.contains("98.8%"), "{after}");
    assert!(after.contains("123,456,789"), "{after}");
    assert!(!before.contains("123,456,789"));
    assert!(
        after.contains("Deploy **CNN seed-base (the study's base CNN)**"),
        "{after}"
    );
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(f.root().join("report/recommendation.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(r["model"], "seed-base");
}

#[test]
fn tune_outputs_add_the_tuned_winner_and_the_trials() {
    let f = Fixture::new();
    let before = f.report_ok();
    assert!(
        before.contains("> **Not run:** The hyperparameter search needs stage `tune`"),
        "{before}"
    );
    f.write_stage("tune");
    let md = f.report_ok();
    assert!(md.contains("CNN tuned winner (fer-small)"), "{md}");
    assert!(md.contains("| Search strategy | random |"), "{md}");
    assert!(md.contains("(error: diverged)"), "{md}");
    assert!(md.contains("img/trials.png"), "{md}");
    let m = Manifest::read(&f.root().join("report/manifest.json")).unwrap();
    assert!(m.inputs.iter().any(|i| i.name == "tune"));
}

#[test]
fn missing_stages_are_marked_not_run_or_named() {
    let f = Fixture::new();
    std::fs::remove_dir_all(f.root().join("stats")).unwrap();
    std::fs::remove_dir_all(f.root().join("augment")).unwrap();
    let md = f.report_ok();
    assert!(
        md.contains(
            "needs stage `stats`, which has not run for this pipeline (`make stats PIPELINE=smoke`)"
        ),
        "{md}"
    );
    assert!(md.contains("(`make augment PIPELINE=smoke`)"), "{md}");
    assert!(md.contains("| `stats` | not run (`make stats`)"), "{md}");

    // No model at all: a clear error naming the targets, exit 2, no manifest left.
    std::fs::remove_dir_all(f.root().join("train_svm")).unwrap();
    std::fs::remove_dir_all(f.root().join("train_cnn")).unwrap();
    let (code, err) = f.report();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("make train-svm PIPELINE=smoke"), "{err}");
    assert!(err.contains("make train-cnn PIPELINE=smoke"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!f.root().join("report/manifest.json").exists());
}

#[test]
fn an_upstream_file_changed_behind_its_manifest_is_an_error() {
    let f = Fixture::new();
    let p = f.root().join("train_cnn/fer-small/metrics.json");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, text.replace("\"params\": 2000", "\"params\": 2001")).unwrap();
    let (code, err) = f.report();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("fer-small/metrics.json"), "{err}");
    assert!(err.contains("make train-cnn PIPELINE=smoke"), "{err}");
}

#[test]
fn bad_params_exit_2_naming_the_key() {
    let f = Fixture::new();
    for (text, key) in [
        ("[report]\nbootstrap = 5\n", "bootstrap"),
        ("[report]\nconfidence = 1.5\n", "confidence"),
        ("[report]\nalert_precision = 0.0\n", "alert_precision"),
        // One goal only: both keys named.
        (
            "[report]\nalert_precision = 0.9\nalert_budget = 5.0\n",
            "alert_budget",
        ),
        ("[report]\nalert_budget = 120.0\n", "alert_budget"),
        ("[report]\nbase_rate = 1.0\n", "base_rate"),
        ("[report]\nbase_rate = 0.0\n", "base_rate"),
        (
            "[report.study]\nbase_val_acc = 83.4\n",
            "study.base_val_acc",
        ),
        ("[report]\nbootstrapp = 500\n", "bootstrapp"),
    ] {
        f.pipeline_file(text);
        let (code, err) = f.report();
        assert_eq!(code, 2, "{text}: {err}");
        assert!(
            err.contains("[report]") && err.contains(key),
            "{text}: {err}"
        );
    }
}

#[test]
fn diff_lists_what_differs_between_two_runs() {
    let f = Fixture::new();
    f.report_ok();
    // A second pipeline: the same artifacts, one metric changed.
    let other = f.artifacts().join("other");
    copy_dir(&f.root(), &other);
    let p = other.join("report/metrics.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    v["models"]["cnn:seed-base"]["test_accuracy"] = json!(0.25);
    write_json(&p, &v);
    let (code, out, err) = f.run(&["diff", "smoke", "artifacts/other/report"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("models.cnn:seed-base.test_accuracy"), "{out}");
    assert_eq!(out.matches("test_accuracy ").count(), 1, "{out}");
    assert!(out.contains("Param: no differences"), "{out}");
    // Straight from the upstream stages (no report): the same metric keys.
    std::fs::remove_dir_all(other.join("report")).unwrap();
    let (code, out, err) = f.run(&["diff", "smoke", "other", "--all"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("models.svm:hog/rbf.val_accuracy"), "{out}");
    let (code, _, err) = f.run(&["diff", "smoke", "nowhere"]);
    assert_eq!(code, 2);
    assert!(err.contains("`nowhere`"), "{err}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn both_truths_and_the_label_noise_ceiling_are_reported_or_not_available() {
    let f = Fixture::new();
    let before = f.report_ok();
    assert!(
        before.contains("FERPlus figures: not available"),
        "{before}"
    );
    // fer-small scored against both truths (as train-cnn writes with FERPlus votes).
    let truth = |acc: f64, bal: f64, n: u64| {
        let mut m = f_metrics(&f, "train_cnn", "fer-small/metrics.json");
        m["accuracy"] = json!(acc);
        m["balanced_accuracy"] = json!(bal);
        m["n"] = json!(n);
        m
    };
    let (fer2013, ferplus) = (truth(0.8821, 0.8807, 424), truth(0.9315, 0.9301, 409));
    f.edit_json("train_cnn", "fer-small/metrics.json", |v| {
        v["test_by_truth"] = json!({
            "fer2013": fer2013,
            "ferplus": ferplus,
            "ferplus_excluded": 15,
            "disagreement": 0.0562,
            "ferplus_ceiling_balanced_accuracy": 0.9433,
        });
    });
    let md = f.report_ok();
    assert!(
        md.contains("## Two truths: FER2013's labels and FERPlus's"),
        "{md}"
    );
    assert!(md.contains("label-noise ceiling"), "{md}");
    assert!(
        md.contains("94.3% balanced accuracy against FER2013's labels"),
        "{md}"
    );
    assert!(md.contains("disagree on 5.6% of the 409 faces"), "{md}");
    assert!(md.contains("| 88.2% | 88.1% |"), "{md}");
    assert!(md.contains("| 93.2% | 93.0% |"), "{md}");
    let metrics: Value = serde_json::from_str(
        &std::fs::read_to_string(f.root().join("report/metrics.json")).unwrap(),
    )
    .unwrap();
    let m = &metrics["models"]["cnn:fer-small"];
    assert_eq!(m["test_ferplus"]["accuracy"], json!(0.9315));
    assert_eq!(m["test_fer2013"]["n"], json!(424));
    assert_eq!(
        metrics["models"]["cnn:seed-base"]["test_ferplus"],
        "not available"
    );
    assert_eq!(
        metrics["label_noise"]["ferplus_ceiling_balanced_accuracy"],
        json!(0.9433)
    );
}

/// The test metrics of a model's metrics.json (a template for other truths).
fn f_metrics(f: &Fixture, stage: &str, rel: &str) -> Value {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(f.root().join(stage).join(rel)).unwrap())
            .unwrap();
    v["metrics"]["test"].clone()
}

/// `calibration.json` fitted on the fixture's val scores (temperature scaling for a CNN
/// folder, Platt scaling of the SVMs' decisions), as train-cnn, tune and train-svm write it;
/// `seed-base` has none (a model folder from before calibration).
fn calibration_json(dir: &Path, o: &mut Outputs, prefix: &str, models: Vec<(&str, &Scored)>) {
    use fer_eval::calibration::{cnn_record, file, svm_record};
    use fer_schema::calibration::{self as calfile, ScoreKind};
    let happy: Vec<bool> = split_labels().iter().map(|&l| l == 0).collect();
    let svm = prefix.is_empty();
    let records = models
        .into_iter()
        .map(|(n, s)| {
            if svm {
                svm_record(n, &s.val, &happy)
            } else {
                cnn_record(n, &s.val, &happy)
            }
        })
        .collect();
    let kind = if svm {
        ScoreKind::SvmDecision
    } else {
        ScoreKind::PHappy
    };
    calfile::write(&dir.join(calfile::FILE), &file(kind, records)).unwrap();
    o.file(&format!("{prefix}{}", calfile::FILE));
}

/// A scene benchmark file for the fixture (`make scenes` writes the real one), for the model
/// whose weights hash is `weights`.
fn scene_bench(weights: &str) -> fer_schema::scenes::SceneBench {
    use fer_schema::scenes::{SceneBench, SceneFps, SceneRow};
    let row = |detector: &str, case: &str, found: usize, acc: f64| SceneRow {
        detector: detector.into(),
        case: case.into(),
        faces: 200,
        found,
        balanced_accuracy: acc,
        false_faces_per_100_frames: 0.5,
    };
    SceneBench {
        date: "2026-12-06".into(),
        model: "artifacts/smoke/train_cnn/fer-small".into(),
        model_weights_blake3: weights.into(),
        threshold: 0.5,
        faces: 200,
        no_detect_balanced_accuracy: 0.925,
        threads: 2,
        rows: vec![
            row("yunet", "plain", 194, 0.9),
            row("yunet", "dark", 183, 0.695),
            row("yunet", "tilted", 159, 0.715),
            row("seeta", "plain", 180, 0.825),
        ],
        fps: vec![SceneFps {
            detector: "yunet".into(),
            flip: false,
            frames_per_second: 69.4,
        }],
    }
}

#[test]
fn the_model_card_quotes_the_scene_benchmark_only_for_the_recommended_weights() {
    let f = Fixture::new();
    let md = f.report_ok();
    assert!(
        md.contains("The scene benchmark (`make scenes MODEL=") && md.contains("has not been run"),
        "no benchmark: the card says so"
    );
    let rec: Value = serde_json::from_str(
        &std::fs::read_to_string(f.root().join("report/recommendation.json")).unwrap(),
    )
    .unwrap();
    let weights = rec["model_weights_blake3"]
        .as_str()
        .expect("weights hash")
        .to_string();
    let path = f.root().join(fer_schema::scenes::SCENES_FILE);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // Another model's benchmark is named as such, its figures not quoted.
    fer_schema::write_json(&path, &scene_bench("0123456789abcdef")).unwrap();
    let md = f.report_ok();
    assert!(md.contains("measured another model"), "other weights");
    assert!(md.contains("`0123456789ab`"), "names the other weights");
    assert!(!md.contains("97.0%"), "quotes no figure of another model");
    // The recommended model's benchmark is quoted, with its date; the file is an input, so
    // changing it reran the report.
    fer_schema::write_json(&path, &scene_bench(&weights)).unwrap();
    let md = f.report_ok();
    assert!(md.contains("scene benchmark of 2026-12-06"), "{md}");
    assert!(
        md.contains("with the yunet detector"),
        "the default detector's row"
    );
    assert!(md.contains("in plain frames 97.0% of faces found, 90.0% balanced accuracy"));
    assert!(md.contains("(the same faces as crops: 92.5% balanced accuracy)"));
    assert!(md.contains("tilted 30°: 79.5% of faces found, 71.5% balanced accuracy"));
    assert!(
        md.contains("backlit: not measured"),
        "a case the file lacks"
    );
    // An unreadable file is an error naming it.
    std::fs::write(&path, "{ not json").unwrap();
    let (code, err) = f.report();
    assert_ne!(code, 0);
    assert!(err.contains("scene_bench.json"), "{err}");
}
