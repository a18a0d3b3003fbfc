//! The report of a seven-emotion pipeline (`[ingest] label_mode = "emotion7"`), end to end
//! through the `fer-report` binary on a fixture written here: ingest's `images.parquet`
//! (seven-class labels, `usage` PublicTest / PrivateTest or Synthetic) and two seven-class
//! CNNs whose predictions carry `prob_<class>` columns, with the figures worked out by hand
//! below.
//!
//! The test split: two faces per emotion, one from PublicTest and one from PrivateTest.
//! `fer-small` answers every PublicTest face right; on PrivateTest it says happy for the angry
//! face, angry for the disgusted one and sad for the fearful one, and is right on the other
//! four. So:
//!
//! - whole test: 11 of 14 right (78.6%); per-class F1 angry 1/2, disgust 2/3, fear 2/3, happy
//!   0.8 (P 2/3, R 1), sad 0.8, surprise 1, neutral 1: macro F1 5.4333/7 = 0.776;
//! - PrivateTest: 4 of 7 (57.1%); F1 0, 0, 0, 2/3, 2/3, 1, 1: macro F1 3.3333/7 = 0.476;
//! - happy vs the rest (happy = emotion code 3): only the angry face said happy is wrong, 13 of
//!   14 (92.9%), and p(happy) ranks both happy faces above every other (ROC AUC 1.000). Read
//!   with label 0 (angry) as happy it would be 12 of 14 (85.7%): the report must not say that.
//!
//! `seed-base` says neutral for every face (validation and test): the worse macro F1.

use fer_core::dataset::{ImageDataset, ImageRecord};
use fer_core::stage::{Outputs, StageRun, upstream_code_version};
use fer_core::{Emotion, IMAGE_PIXELS, IMAGE_SIDE, LabelMode, Split};
use fer_eval::metrics::{Metrics, classification_metrics};
use fer_schema::metrics::{
    CnnMetrics, SplitMetrics, SvmBest, SvmCounts, SvmMetrics, SvmModelMetrics, ValTest,
};
use fer_schema::predictions::{self, CnnPrediction, SvmPrediction};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_fer-report");
const PIPELINE: &str = "smoke7";
const HAPPY: u8 = 3;

fn classes() -> Vec<&'static str> {
    LabelMode::Emotion7.class_names()
}

/// The val and test faces: two per emotion, in emotion order (`(label, index within it)`).
fn faces() -> Vec<u8> {
    (0..7u8).flat_map(|e| [e, e]).collect()
}

/// `fer-small`'s answers on test: right on the first face of each emotion (PublicTest); on
/// the second (PrivateTest) angry -> happy, disgust -> angry, fear -> sad.
fn small_test_pred(label: u8, second: bool) -> u8 {
    match (label, second) {
        (0, true) => HAPPY,
        (1, true) => 0,
        (2, true) => 4,
        (l, _) => l,
    }
}

/// p(happy) of an answer: happy faces high, the angry face said happy 0.6, others low.
fn p_happy(label: u8, pred: u8) -> f64 {
    match (label, pred) {
        (HAPPY, _) => 0.9,
        (_, HAPPY) => 0.6,
        _ => 0.1,
    }
}

/// Seven probabilities whose argmax is `pred` and whose happy entry is `ph`.
fn probs(pred: u8, ph: f64) -> Vec<f64> {
    let mut p = vec![0.0; 7];
    if pred == HAPPY {
        for (k, v) in p.iter_mut().enumerate() {
            *v = if k == HAPPY as usize {
                ph
            } else {
                (1.0 - ph) / 6.0
            };
        }
    } else {
        for (k, v) in p.iter_mut().enumerate() {
            *v = if k == HAPPY as usize {
                ph
            } else if k == pred as usize {
                1.0 - ph - 0.05
            } else {
                0.01
            };
        }
    }
    p
}

struct Fixture {
    tmp: tempfile::TempDir,
}

fn write_json(path: &Path, v: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap() + "\n").unwrap();
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

fn id(split: Split, i: usize) -> String {
    format!(
        "{}/{}_{i:02}",
        split.as_str(),
        classes()[faces()[i] as usize]
    )
}

/// Which train_svm folder the fixture has.
#[derive(Clone, Copy, PartialEq)]
enum Svm {
    None,
    /// One-vs-rest SVMs over the seven emotions (`decision_<class>` columns).
    Seven,
    /// A binary-only folder (labels 0 = happy, 1 = not happy), as before seven classes.
    Binary,
}

impl Fixture {
    /// `fer2013`: test usages PublicTest / PrivateTest; else every image is Synthetic.
    fn new(fer2013: bool) -> Fixture {
        Self::with_svm(fer2013, Svm::None)
    }

    fn with_svm(fer2013: bool, svm: Svm) -> Fixture {
        let f = Fixture {
            tmp: tempfile::tempdir().unwrap(),
        };
        let p = f.tmp.path().join("pipelines");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(
            p.join(format!("{PIPELINE}.toml")),
            "[report]\nseed = 7\nbootstrap = 300\ngallery = 4\n",
        )
        .unwrap();
        let art = f.artifacts();
        stage_run(&art, "ingest")
            .execute(|dir| {
                let mut o = Outputs::default();
                Self::ingest(dir, &mut o, fer2013);
                Ok::<_, fer_core::Error>(o)
            })
            .unwrap();
        stage_run(&art, "train_cnn")
            .execute(|dir| {
                let mut o = Outputs::default();
                Self::cnn(dir, &mut o, "fer-small", "fer-small", |l, i| {
                    small_test_pred(l, i % 2 == 1)
                });
                Self::cnn(dir, &mut o, "seed-base", "seed-base", |_, _| 6);
                Ok::<_, fer_core::Error>(o)
            })
            .unwrap();
        if svm != Svm::None {
            stage_run(&art, "train_svm")
                .execute(|dir| {
                    let mut o = Outputs::default();
                    Self::svm(dir, &mut o, svm == Svm::Seven);
                    Ok::<_, fer_core::Error>(o)
                })
                .unwrap();
        }
        f
    }

    /// train_svm with one SVM, `hog/linear`. Seven classes: on test it answers as `fer-small`
    /// does, on val it is right but for the first angry face (said disgust); its happy-vs-rest
    /// decision is +1 on happy faces, +0.5 on the angry face it says happy, -1 elsewhere.
    /// Binary: labels and answers happy (0) / not happy (1), every answer right.
    fn svm(dir: &Path, o: &mut Outputs, seven: bool) {
        let y7 = faces();
        let mut rows = Vec::new();
        let mut metrics: Vec<Metrics> = Vec::new();
        let names: Vec<&str> = if seven {
            classes()
        } else {
            vec!["happy", "not_happy"]
        };
        for split in [Split::Val, Split::Test] {
            let pred7: Vec<u8> = y7
                .iter()
                .enumerate()
                .map(|(i, &l)| match split {
                    Split::Test => small_test_pred(l, i % 2 == 1),
                    _ if i == 0 => 1,
                    _ => l,
                })
                .collect();
            let (y, pred): (Vec<u8>, Vec<u8>) = if seven {
                (y7.clone(), pred7.clone())
            } else {
                let b = |v: &[u8]| v.iter().map(|&l| u8::from(l != HAPPY)).collect::<Vec<u8>>();
                (b(&y7), b(&y7))
            };
            let mut scores = Vec::new();
            for i in 0..y.len() {
                let d = match (y7[i], pred7[i]) {
                    (HAPPY, _) => 1.0,
                    (_, HAPPY) if seven => 0.5,
                    _ => -1.0,
                };
                let decisions: Vec<f64> = if seven {
                    (0..7u8)
                        .map(|k| {
                            if k == HAPPY {
                                d
                            } else if k == pred[i] {
                                2.0
                            } else {
                                -2.0
                            }
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                scores.push(if seven {
                    decisions.clone()
                } else {
                    vec![d, -d]
                });
                rows.push(SvmPrediction {
                    model: "hog/linear".into(),
                    feature: "hog".into(),
                    kernel: "linear".into(),
                    split,
                    row: i as u32,
                    id: id(split, i),
                    label: y[i],
                    decision: d,
                    pred: pred[i],
                    decisions,
                });
            }
            metrics.push(classification_metrics(&y, &pred, &names, Some(&scores)));
        }
        let path = dir.join("predictions.parquet");
        let n = if seven {
            predictions::write_svm_classes(&path, &rows, &classes()).unwrap()
        } else {
            predictions::write_svm(&path, &rows).unwrap()
        };
        o.table("predictions.parquet", n);
        let test = metrics.pop().unwrap();
        let val = metrics.pop().unwrap();
        let best = SvmBest {
            name: "hog/linear".into(),
            by: "val accuracy".into(),
            val_accuracy: val.accuracy,
            test_accuracy: test.accuracy,
        };
        let m = SvmMetrics {
            positive_class: "happy".into(),
            n: SvmCounts {
                train: 14,
                kernel_train: 14,
                val: 14,
                test: 14,
            },
            majority_baseline: ValTest {
                val: 1.0 / 7.0,
                test: 1.0 / 7.0,
            },
            threads: 1,
            features: Vec::new(),
            models: vec![SvmModelMetrics {
                name: "hog/linear".into(),
                feature: "hog".into(),
                kernel: "linear".into(),
                c: 1.0,
                gamma: None,
                gamma_spec: None,
                n_features: 100,
                n_train: 14,
                n_support: 10,
                solver: "fixture".into(),
                train_seconds: 1.0,
                grid_points: 1,
                grid_seconds: 1.0,
                feature_fit_seconds: 0.1,
                inference_seconds: 0.01,
                inference_images_per_second: 1000.0,
                val,
                test,
                test_by_truth: None,
            }],
            best,
        };
        write_json(&dir.join("metrics.json"), &serde_json::to_value(m).unwrap());
        o.file("metrics.json");
    }

    fn artifacts(&self) -> PathBuf {
        self.tmp.path().join("artifacts")
    }

    fn root(&self) -> PathBuf {
        self.artifacts().join(PIPELINE)
    }

    fn ingest(dir: &Path, o: &mut Outputs, fer2013: bool) {
        let mut records = Vec::new();
        for split in [Split::Train, Split::Val, Split::Test] {
            for (i, &l) in faces().iter().enumerate() {
                let usage = match (fer2013, split) {
                    (false, _) => "Synthetic",
                    (true, Split::Test) if i % 2 == 0 => "PublicTest",
                    (true, Split::Test) => "PrivateTest",
                    (true, _) => "Training",
                };
                let e = Emotion::from_code(l).unwrap();
                records.push(ImageRecord {
                    id: id(split, i),
                    split,
                    usage: usage.into(),
                    emotion: e,
                    label: LabelMode::Emotion7.label_of(e),
                    pixels: (0..IMAGE_PIXELS)
                        .map(|p| ((p * 7 + i * 13) % 200) as u8)
                        .collect(),
                    source: "fixture".into(),
                    ferplus_label: None,
                    ferplus_votes: None,
                });
            }
        }
        let ds = ImageDataset {
            side: IMAGE_SIDE,
            label_mode: LabelMode::Emotion7,
            labels: fer_core::LabelSource::Fer2013,
            records,
        };
        let n = ds.write_parquet(&dir.join("images.parquet")).unwrap();
        o.table("images.parquet", n);
        let per: serde_json::Map<String, Value> = classes()
            .iter()
            .map(|c| (c.to_string(), json!(2)))
            .collect();
        o.summary = json!({"counts": {"train": per, "val": per, "test": per}, "rows": 42,
                           "source": if fer2013 { "fer2013.csv" } else { "synthetic" },
                           "label_mode": "emotion7", "rejected": 0});
    }

    /// A seven-class CNN folder; `test_pred(label, i)` its answer on test face `i` (on val,
    /// `fer-small` is always right and `seed-base` always says neutral).
    fn cnn(dir: &Path, o: &mut Outputs, name: &str, arch: &str, test_pred: fn(u8, usize) -> u8) {
        let m = dir.join(name);
        std::fs::create_dir_all(&m).unwrap();
        let y = faces();
        let mut rows = Vec::new();
        let mut metrics: Vec<Metrics> = Vec::new();
        for split in [Split::Val, Split::Test] {
            let pred: Vec<u8> = y
                .iter()
                .enumerate()
                .map(|(i, &l)| match (split, name) {
                    (Split::Test, _) => test_pred(l, i),
                    (_, "fer-small") => l,
                    _ => 6,
                })
                .collect();
            let pr: Vec<Vec<f64>> = y
                .iter()
                .zip(&pred)
                .map(|(&l, &p)| probs(p, p_happy(l, p)))
                .collect();
            for i in 0..y.len() {
                rows.push(CnnPrediction {
                    split,
                    row: i as u32,
                    id: id(split, i),
                    label: y[i],
                    p_happy: pr[i][HAPPY as usize],
                    pred: pred[i],
                    probs: pr[i].clone(),
                });
            }
            metrics.push(classification_metrics(&y, &pred, &classes(), Some(&pr)));
        }
        let n =
            predictions::write_classes(&m.join("predictions.parquet"), &rows, &classes()).unwrap();
        o.table(&format!("{name}/predictions.parquet"), n);
        let test = metrics.pop().unwrap();
        let val = metrics.pop().unwrap();
        let cm = CnnMetrics {
            name: name.into(),
            arch: arch.into(),
            params: 1000,
            macs: 10_000,
            epochs_run: 3,
            best_epoch: 2,
            train_seconds: 5.0,
            train_images_per_second: 100.0,
            inference_images_per_second: 200.0,
            final_train_acc: Some(0.5),
            final_val_acc: Some(val.accuracy),
            tta_flip: false,
            metrics: SplitMetrics { val, test },
            test_by_truth: None,
            tune: None,
        };
        write_json(&m.join("metrics.json"), &serde_json::to_value(cm).unwrap());
        o.file(&format!("{name}/metrics.json"));
    }

    fn report_ok(&self) -> String {
        let out = Command::new(BIN)
            .current_dir(self.tmp.path())
            .env_remove("FER_ARTIFACTS")
            .env("FER_CACHE_DIR", "off")
            .args(["--pipeline", &format!("pipelines/{PIPELINE}.toml"), "-q"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "fer-report failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(self.root().join("report/report.md")).unwrap()
    }

    fn json(&self, file: &str) -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(self.root().join("report").join(file)).unwrap(),
        )
        .unwrap()
    }
}

fn close(v: &Value, want: f64) {
    let x = v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"));
    assert!((x - want).abs() < 1e-9, "{x} != {want}");
}

/// The markdown table row that starts with `first` (its cells after the first).
fn row<'a>(md: &'a str, first: &str) -> Vec<&'a str> {
    let line = md
        .lines()
        .find(|l| l.starts_with(&format!("| {first} |")))
        .unwrap_or_else(|| panic!("no row `{first}` in\n{md}"));
    line.trim_matches('|')
        .split('|')
        .map(str::trim)
        .skip(1)
        .collect()
}

#[test]
fn seven_emotions_section_has_the_hand_computed_figures() {
    let f = Fixture::new(true);
    let md = f.report_ok();
    assert!(md.contains("## Seven emotions"), "{md}");
    // The section comes before the happy-vs-rest ones.
    assert!(md.find("## Seven emotions") < md.find("## Recommendation"));
    assert!(
        md.contains(
            "**CNN fer-small (ours)** has the best macro F1 on the validation images (1.000)"
        ),
        "{md}"
    );
    // Whole test 11/14 and macro F1 0.776; PrivateTest 4/7 and 0.476 (see the module doc).
    let r = row(&md, "**CNN fer-small (ours)**");
    assert_eq!(r[0], "1.000", "{r:?}");
    assert!(r[1].starts_with("78.6% ("), "{r:?}");
    assert!(r[2].starts_with("0.776 ("), "{r:?}");
    assert!(r[3].starts_with("57.1% ("), "{r:?}");
    assert!(r[4].starts_with("0.476 ("), "{r:?}");
    // seed-base: neutral for all: 2/14 right; F1 of neutral 2*(1/7)/(1/7+1) = 0.25, /7.
    let r = row(&md, "**CNN seed-base (the study's base CNN)**");
    assert!(r[1].starts_with("14.3% ("), "{r:?}");
    assert!(r[2].starts_with("0.036 ("), "{r:?}");
    assert!(
        md.contains("7 of the test images come from FER2013's PrivateTest"),
        "{md}"
    );

    // Per class (fer-small comes first) and the 7x7 confusion counts.
    assert_eq!(row(&md, "happy"), ["0.667", "1.000", "0.800", "2"]);
    assert_eq!(row(&md, "angry")[..4], ["0.500", "0.500", "0.500", "2"]);
    assert_eq!(row(&md, "macro average")[2], "0.776");
    let head = "| True \\ said | angry | disgust | fear | happy | sad | surprise | neutral |";
    assert!(md.contains(head), "{md}");
    let confusion = &md[md.find(head).unwrap()..];
    for (first, cells) in [
        ("angry", ["1", "0", "0", "1", "0", "0", "0"]),
        ("disgust", ["1", "1", "0", "0", "0", "0", "0"]),
        ("fear", ["0", "0", "1", "0", "1", "0", "0"]),
        ("happy", ["0", "0", "0", "2", "0", "0", "0"]),
        ("neutral", ["0", "0", "0", "0", "0", "0", "2"]),
    ] {
        assert_eq!(row(confusion, first), cells, "{first}");
    }
    assert!(md.contains("img/confusion7_cnn-fer-small.png"), "{md}");
    assert!(
        f.root()
            .join("report/img/confusion7_cnn-fer-small.png")
            .exists()
    );
    assert!(f.root().join("report/img/seven_accuracy.png").exists());

    // The anchors, with their sources.
    let h = row(&md, "Human agreement");
    assert_eq!(h[0], "65.0% ± 5");
    assert!(h[2].contains("Goodfellow et al. 2013"), "{h:?}");
    let b = row(&md, "Best published single network (VGGNet)");
    assert_eq!(b[..2], ["73.3%", "PrivateTest"]);
    assert!(b[2].contains("Khaireddin & Chen 2021"), "{b:?}");
    assert!(row(&md, "This pipeline's best (CNN fer-small (ours))")[0].starts_with("57.1% ("));

    // Happy vs the rest: truth happy is emotion code 3. 13/14 right (12/14 if label 0, angry,
    // were taken for happy), and p(happy) ranks the two happy faces first: ROC AUC 1.000.
    assert!(md.contains("read as **happy vs the rest**"), "{md}");
    let models = &md[md.find("## Models side by side").unwrap()..];
    let q = row(models, "**CNN fer-small (ours)**");
    assert!(q[1].starts_with("92.9% ("), "{q:?}");
    assert_eq!(q[3], "1.000", "{q:?}");
    assert!(!q[1].starts_with("85.7%"));
    assert!(md.contains("Deploy **CNN fer-small (ours)**"), "{md}");
    // Its one happy-vs-rest mistake: the angry face it said happy.
    assert_eq!(
        row(&md, "`test/angry_01`"),
        ["not happy", "angry", "happy", "p(happy) = 0.60"]
    );

    // metrics.json: the seven-class figures per model, beside the happy-vs-rest keys.
    let m = f.json("metrics.json");
    let s = &m["models"]["cnn:fer-small"];
    close(&s["test_accuracy"], 13.0 / 14.0);
    let sc = &s["seven_classes"];
    close(&sc["test_accuracy"], 11.0 / 14.0);
    close(&sc["test_macro_f1"], (0.5 + 4.0 / 3.0 + 1.6 + 2.0) / 7.0);
    close(&sc["private_test"]["accuracy"], 4.0 / 7.0);
    close(&sc["private_test"]["macro_f1"], (4.0 / 3.0 + 2.0) / 7.0);
    assert_eq!(sc["private_test"]["n"], 7);
    close(&sc["test_per_class_f1"]["happy"], 0.8);
    close(&sc["val_macro_f1"], 1.0);
    assert!(sc["test_accuracy_ci_low"].as_f64().unwrap() <= 11.0 / 14.0);
    assert_eq!(m["seven_classes"]["best_by_val_macro_f1"], "cnn:fer-small");
    assert_eq!(m["seven_classes"]["happy_class"], 3);
    close(&m["seven_classes"]["anchors"]["human"]["accuracy"], 0.65);
    close(
        &m["seven_classes"]["anchors"]["best_single_network"]["accuracy"],
        0.7328,
    );

    // recommendation.json: the happy-vs-rest operating point and the best seven-class model.
    let r = f.json("recommendation.json");
    assert_eq!(r["model"], "fer-small");
    assert_eq!(r["score"], "p_happy");
    close(&r["test_accuracy"], 13.0 / 14.0);
    assert!(
        r["chosen_by"]
            .as_str()
            .unwrap()
            .contains("happy vs the rest"),
        "{r}"
    );
    assert_eq!(r["seven_classes"]["model"], "fer-small");
    close(&r["seven_classes"]["private_test_accuracy"], 4.0 / 7.0);
    close(
        &r["seven_classes"]["test_macro_f1"],
        (0.5 + 4.0 / 3.0 + 1.6 + 2.0) / 7.0,
    );
    // Of the 12 not-happy test faces (every emotion but happy), 11 have p(happy) 0.1.
    assert_eq!(r["test"]["n"], 14, "{r}");
    assert_eq!(r["test"]["not_happy"], 12, "{r}");
}

#[test]
fn seven_emotions_without_private_test_say_so() {
    let f = Fixture::new(false);
    let md = f.report_ok();
    assert!(
        md.contains("PrivateTest figures: not available. No test image comes from FER2013's PrivateTest (the test images' `usage`: `Synthetic`)"),
        "{md}"
    );
    let r = row(&md, "**CNN fer-small (ours)**");
    assert!(r[1].starts_with("78.6% ("), "{r:?}");
    assert_eq!(r[3..5], ["not available", "not available"]);
    let m = f.json("metrics.json");
    assert_eq!(
        m["models"]["cnn:fer-small"]["seven_classes"]["private_test"],
        "not available"
    );
    let r = f.json("recommendation.json");
    assert_eq!(r["seven_classes"]["private_test_accuracy"], Value::Null);
    assert!(row(&md, "This pipeline's best (CNN fer-small (ours))")[1].contains("no PrivateTest"));
}

#[test]
fn seven_class_svms_join_the_section_and_a_binary_only_folder_stays_binary() {
    // One-vs-rest SVMs: in "Seven emotions" with fer-small's test figures (same answers), and
    // read as happy vs the rest through their happy decision (13 of 14, ROC AUC 1.000).
    let f = Fixture::with_svm(true, Svm::Seven);
    let md = f.report_ok();
    let seven = &md[..md.find("## Recommendation").unwrap()];
    let r = row(seven, "**SVM, HOG features, linear**");
    assert!(r[1].starts_with("78.6% ("), "{r:?}");
    assert!(r[3].starts_with("57.1% ("), "{r:?}");
    // Its validation macro F1 is below fer-small's 1.000: fer-small stays the best.
    assert!(r[0] != "1.000", "{r:?}");
    assert!(
        seven.contains("**CNN fer-small (ours)** has the best macro F1"),
        "{seven}"
    );
    let models = &md[md.find("## Models side by side").unwrap()..];
    let q = row(models, "**SVM, HOG features, linear**");
    assert!(q[1].starts_with("92.9% ("), "{q:?}");
    assert_eq!(q[3], "1.000", "{q:?}");
    let m = f.json("metrics.json");
    close(
        &m["models"]["svm:hog/linear"]["seven_classes"]["private_test"]["accuracy"],
        4.0 / 7.0,
    );
    close(&m["models"]["svm:hog/linear"]["test_accuracy"], 13.0 / 14.0);

    // A binary-only train_svm (labels 0 = happy): shown as it is, not in "Seven emotions".
    let f = Fixture::with_svm(true, Svm::Binary);
    let md = f.report_ok();
    let seven = &md[..md.find("## Recommendation").unwrap()];
    assert!(!seven.contains("SVM, HOG features"), "{seven}");
    let models = &md[md.find("## Models side by side").unwrap()..];
    let q = row(models, "**SVM, HOG features, linear**");
    assert!(q[1].starts_with("100.0% ("), "{q:?}");
    let m = f.json("metrics.json");
    let svm = &m["models"]["svm:hog/linear"];
    close(&svm["test_accuracy"], 1.0);
    assert!(svm.get("seven_classes").is_none(), "{svm}");
    assert_eq!(m["seven_classes"]["best_by_val_macro_f1"], "cnn:fer-small");
}
