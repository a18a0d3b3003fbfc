//! The seven-class figures of a seven-emotion pipeline (`[ingest] label_mode = "emotion7"`):
//! per seven-class model, accuracy and macro F1 over the seven emotions on the whole test
//! split and on FER2013's PrivateTest images alone (the literature's figure), each with a
//! seeded bootstrap interval (`crate::stats::bootstrap`, the resamples the report uses
//! everywhere), the per-class table and the confusion matrix on test, the best model by
//! validation macro F1, and the published anchors shown beside them ([`ANCHORS`]).
//!
//! Reads and writes nothing: the "Seven emotions" section, `metrics.json` and
//! `recommendation.json` use it.

use crate::ReportParams;
use crate::load::{ModelRun, Pred7, Seven, Study};
use crate::stats::{self, Ci};
use fer_eval::metrics::{Metrics, classification_metrics};
use serde_json::{Value, json};

/// The `Usage` of FER2013's final test images, the split papers report.
pub const PRIVATE_TEST: &str = "PrivateTest";

/// A published figure for seven-class FER2013, shown beside the pipeline's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anchor {
    /// Short key (`metrics.json`'s).
    pub key: &'static str,
    pub what: &'static str,
    /// Its label on the accuracy chart.
    pub short: &'static str,
    /// Accuracy over the seven emotions.
    pub accuracy: f64,
    /// `±` this much, when the source gives a spread.
    pub spread: Option<f64>,
    pub split: &'static str,
    pub source: &'static str,
}

/// The report's seven-class anchors (report defaults; no param changes them).
pub const ANCHORS: [Anchor; 2] = [
    Anchor {
        key: "human",
        what: "Human agreement",
        short: "human",
        accuracy: 0.65,
        spread: Some(0.05),
        split: "FER2013 (a sample labelled again by people)",
        source: "Goodfellow et al. 2013, \"Challenges in Representation Learning: A report on three machine learning contests\"",
    },
    Anchor {
        key: "best_single_network",
        what: "Best published single network (VGGNet)",
        short: "VGGNet",
        accuracy: 0.7328,
        spread: None,
        split: "PrivateTest",
        source: "Khaireddin & Chen 2021, \"Facial Emotion Recognition: State of the Art Performance on FER2013\"",
    },
];

/// Accuracy and macro F1 on a set of images, with their bootstrap intervals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub n: usize,
    pub accuracy: Ci,
    pub macro_f1: Ci,
}

/// One seven-class model's figures.
#[derive(Debug, Clone)]
pub struct SevenModel<'a> {
    pub model: &'a ModelRun,
    pub val_macro_f1: f64,
    pub val_accuracy: f64,
    /// The whole test split.
    pub test: Scores,
    /// The PrivateTest images of the test split; `None` when there are none (synthetic
    /// faces, or ingest has not run).
    pub private: Option<Scores>,
    /// Per class on test, and the confusion matrix (`confusion[true][pred]`).
    pub test_metrics: Metrics,
}

/// Every seven-class model's figures and the best by validation macro F1.
#[derive(Debug, Clone)]
pub struct SevenFigures<'a> {
    pub seven: &'a Seven,
    pub models: Vec<SevenModel<'a>>,
    /// Index into `models`.
    pub best: Option<usize>,
    /// Always answering the test split's most frequent emotion.
    pub majority_test: Option<f64>,
    /// Test images from PrivateTest.
    pub private_n: usize,
}

/// Accuracy and macro F1 (the mean of the per-class F1 over all `k` classes, as
/// `fer_eval::metrics::classification_metrics` gives it) of the predictions at `idx`.
pub fn acc_macro_f1(preds: &[&Pred7], idx: &[usize], k: usize) -> (f64, f64) {
    let mut cm = vec![vec![0u64; k]; k];
    for &i in idx {
        let p = preds[i];
        if (p.label as usize) < k && (p.pred as usize) < k {
            cm[p.label as usize][p.pred as usize] += 1;
        }
    }
    let div = |a: f64, b: f64| if b == 0.0 { 0.0 } else { a / b };
    let correct: u64 = (0..k).map(|c| cm[c][c]).sum();
    let f1: f64 = (0..k)
        .map(|c| {
            let tp = cm[c][c] as f64;
            let support: u64 = cm[c].iter().sum();
            let predicted: u64 = (0..k).map(|r| cm[r][c]).sum();
            let (p, r) = (div(tp, predicted as f64), div(tp, support as f64));
            div(2.0 * p * r, p + r)
        })
        .sum();
    (div(correct as f64, idx.len() as f64), div(f1, k as f64))
}

/// The figures of `preds` (bootstrap intervals when `rp` is given, else NaN bounds).
fn scores(preds: &[&Pred7], k: usize, rp: Option<&ReportParams>) -> Scores {
    let all: Vec<usize> = (0..preds.len()).collect();
    let (acc, f1) = acc_macro_f1(preds, &all, k);
    let point = |v: f64| Ci {
        value: v,
        lo: f64::NAN,
        hi: f64::NAN,
    };
    let (accuracy, macro_f1) = match rp {
        Some(rp) if !preds.is_empty() => {
            let cis = stats::bootstrap(
                preds.len(),
                2,
                rp.bootstrap,
                rp.seed,
                rp.confidence,
                |s, idx| {
                    let (a, f) = acc_macro_f1(preds, idx, k);
                    Some(if s == 0 { a } else { f })
                },
            );
            (cis[0], cis[1])
        }
        _ => (point(acc), point(f1)),
    };
    Scores {
        n: preds.len(),
        accuracy,
        macro_f1,
    }
}

/// The best of `models` by validation macro F1 (ties: fewer parameters, then listed first).
fn best(models: &[SevenModel]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, m) in models.iter().enumerate() {
        let better = match best.map(|b| &models[b]) {
            None => true,
            Some(b) => {
                m.val_macro_f1 > b.val_macro_f1 + 1e-12
                    || ((m.val_macro_f1 - b.val_macro_f1).abs() <= 1e-12
                        && m.model.params.unwrap_or(u64::MAX) < b.model.params.unwrap_or(u64::MAX))
            }
        };
        if better {
            best = Some(i);
        }
    }
    best
}

/// The seven-class figures of `study`; `None` in a binary pipeline. With `rp`, every figure
/// has its bootstrap interval.
pub fn figures<'a>(study: &'a Study, rp: Option<&ReportParams>) -> Option<SevenFigures<'a>> {
    let seven = study.seven.as_ref()?;
    let k = seven.classes.len();
    let names: Vec<&str> = seven.classes.iter().map(String::as_str).collect();
    let private = |id: &str| {
        seven
            .usage
            .as_ref()
            .and_then(|u| u.get(id))
            .is_some_and(|u| u == PRIVATE_TEST)
    };
    let mut private_n = 0;
    let mut majority_test = None;
    let models: Vec<SevenModel> = study
        .models
        .iter()
        .filter_map(|m| m.seven.as_ref().map(|s| (m, s)))
        .map(|(m, s)| {
            let test: Vec<&Pred7> = s.test_preds.iter().collect();
            let priv_preds: Vec<&Pred7> = test.iter().copied().filter(|p| private(&p.id)).collect();
            private_n = private_n.max(priv_preds.len());
            let test_metrics = if test.is_empty() {
                s.test.clone()
            } else {
                let y: Vec<u8> = test.iter().map(|p| p.label).collect();
                let pred: Vec<u8> = test.iter().map(|p| p.pred).collect();
                if majority_test.is_none() {
                    let mut counts = vec![0usize; k];
                    for &l in &y {
                        if (l as usize) < k {
                            counts[l as usize] += 1;
                        }
                    }
                    let most = counts.iter().copied().max().unwrap_or(0);
                    majority_test = Some(most as f64 / y.len() as f64);
                }
                classification_metrics(&y, &pred, &names, None)
            };
            SevenModel {
                model: m,
                val_macro_f1: s.val.macro_avg.f1,
                val_accuracy: s.val.accuracy,
                test: scores(&test, k, rp),
                private: (!priv_preds.is_empty()).then(|| scores(&priv_preds, k, rp)),
                test_metrics,
            }
        })
        .collect();
    Some(SevenFigures {
        seven,
        best: best(&models),
        models,
        majority_test,
        private_n,
    })
}

/// A figure with its interval as JSON keys `<name>`, `<name>_ci_low`, `<name>_ci_high` (the
/// bounds only when computed).
fn put(v: &mut Value, name: &str, c: &Ci) {
    v[name] = json!(c.value);
    if c.lo.is_finite() && c.hi.is_finite() {
        v[format!("{name}_ci_low")] = json!(c.lo);
        v[format!("{name}_ci_high")] = json!(c.hi);
    }
}

/// A model's seven-class figures in `metrics.json` (`models.<key>.seven_classes`).
pub fn model_json(m: &SevenModel) -> Value {
    let mut v = json!({
        "val_accuracy": m.val_accuracy,
        "val_macro_f1": m.val_macro_f1,
        "test_n": m.test.n,
    });
    put(&mut v, "test_accuracy", &m.test.accuracy);
    put(&mut v, "test_macro_f1", &m.test.macro_f1);
    v["private_test"] = match &m.private {
        Some(p) => {
            let mut o = json!({ "n": p.n });
            put(&mut o, "accuracy", &p.accuracy);
            put(&mut o, "macro_f1", &p.macro_f1);
            o
        }
        None => json!("not available"),
    };
    let per_class: serde_json::Map<String, Value> = m
        .test_metrics
        .classes
        .iter()
        .map(|c| (c.name.clone(), json!(c.f1)))
        .collect();
    v["test_per_class_f1"] = Value::Object(per_class);
    v
}

/// `metrics.json`'s top-level `seven_classes`: the label mode, how the binary keys read the
/// models, the best model and the anchors.
pub fn summary_json(f: &SevenFigures) -> Value {
    json!({
        "label_mode": "emotion7",
        "classes": f.seven.classes,
        "happy_class": f.seven.happy,
        "binary_figures": "the per-model keys outside `seven_classes` read each seven-class model as happy vs the rest",
        "best_by_val_macro_f1": f.best.map(|b| f.models[b].model.key.clone()),
        "test_majority_accuracy": f.majority_test,
        "private_test_images": f.private_n,
        "anchors": ANCHORS.iter().map(|a| (a.key.to_string(), json!({
            "accuracy": a.accuracy,
            "spread": a.spread,
            "split": a.split,
            "source": a.source,
        }))).collect::<serde_json::Map<String, Value>>(),
    })
}
