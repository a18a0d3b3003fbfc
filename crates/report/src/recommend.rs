//! The recommendation, computed from a [`Study`] and the `[report]` params: the model to
//! deploy (highest validation accuracy), its "not happy" alert threshold (chosen on validation
//! predictions reweighted to the shop's base rate, for the one goal stated: see
//! `crate::operating`), its test figures at that threshold with bootstrap intervals, and the
//! `recommendation.json` document the predict tool reads (core's schema plus the blake3 hash of
//! the model's weights file, so predict applies the threshold only to those weights, and the
//! assumptions behind the threshold: base rate, goal, expected alerts, calibration).

use crate::ReportParams;
use crate::load::{Family, ModelRun, Pred, Study};
use crate::operating::{self, Choice, Goal, OperatingParams, Point, REFERENCE_MIXES};
use crate::stats::{self, AlertStats, Ci, ThresholdRule};
use fer_schema::recommendation::Recommendation;
use std::collections::BTreeMap;
use std::path::Path;

pub(crate) fn right(preds: &[Pred]) -> Vec<bool> {
    preds.iter().map(|p| p.pred == p.label).collect()
}

pub(crate) fn acc_ci(m: &ModelRun, rp: &ReportParams) -> Ci {
    let r = right(&m.test_preds);
    if r.is_empty() {
        return Ci {
            value: m.test.accuracy,
            lo: f64::NAN,
            hi: f64::NAN,
        };
    }
    stats::bootstrap(
        r.len(),
        1,
        rp.bootstrap,
        rp.seed,
        rp.confidence,
        |_, idx| Some(idx.iter().filter(|&&i| r[i]).count() as f64 / idx.len() as f64),
    )[0]
}

/// What [`best_by_val`] ranks a model by: validation accuracy; for a seven-class model read as
/// happy vs the rest, the validation ROC AUC of its happy score instead. Its "happy" answer
/// (happy is the top emotion) is rarely given with one happy face in seven, so accuracy ties
/// at the majority share; the threshold of the alerts is chosen afterwards, so what matters is
/// how well the score ranks happy faces first.
pub(crate) fn val_rank(m: &ModelRun) -> f64 {
    match (&m.seven, m.val.roc_auc) {
        (Some(_), Some(auc)) => auc,
        _ => m.val.accuracy,
    }
}

/// The model with the highest [`val_rank`] (validation accuracy; ROC AUC of p_happy for
/// seven-class models), ties: fewer parameters, then listed first.
pub(crate) fn best_by_val<'a>(ms: impl Iterator<Item = &'a ModelRun>) -> Option<&'a ModelRun> {
    let mut best: Option<&ModelRun> = None;
    for m in ms {
        let better = match best {
            None => true,
            Some(b) => {
                val_rank(m) > val_rank(b) + 1e-12
                    || ((val_rank(m) - val_rank(b)).abs() <= 1e-12
                        && m.params.unwrap_or(u64::MAX) < b.params.unwrap_or(u64::MAX))
            }
        };
        if better {
            best = Some(m);
        }
    }
    best
}

/// Everything the recommendation says, computed once.
pub(crate) struct Rec<'a> {
    pub(crate) model: &'a ModelRun,
    pub(crate) threshold: f64,
    pub(crate) rule: ThresholdRule,
    pub(crate) val: AlertStats,
    pub(crate) test: AlertStats,
    pub(crate) test_default: AlertStats,
    pub(crate) precision_ci: Ci,
    pub(crate) recall_ci: Ci,
    /// The operating point at the shop's base rate.
    pub(crate) op: OperatingPoint,
    /// The same goal at the reference mixes ([`REFERENCE_MIXES`]) and at the validation
    /// split's own mix, for the table of how the threshold moves.
    pub(crate) mixes: Vec<(String, OperatingPoint)>,
    /// blake3 of the model's `model.safetensors` (`recommendation.json` records it; the model
    /// card matches the scene benchmark against it).
    pub(crate) weights_blake3: Option<String>,
}

/// The threshold for one goal at one base rate, with its validation and test figures at that
/// rate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OperatingPoint {
    pub(crate) base_rate: f64,
    pub(crate) goal: Goal,
    pub(crate) choice: Choice,
    /// Validation at the chosen threshold, reweighted to `base_rate` (what chose it).
    pub(crate) val: Point,
    /// Test at the chosen threshold, reweighted the same way.
    pub(crate) test: Point,
}

pub(crate) fn operating_point(
    val: &[operating::Scored],
    test: &[operating::Scored],
    base_rate: f64,
    goal: Goal,
    default: f64,
) -> Option<OperatingPoint> {
    let choice = operating::choose(val, base_rate, goal, default)?;
    let t = choice.point.threshold;
    Some(OperatingPoint {
        base_rate,
        goal,
        choice,
        val: choice.point,
        test: operating::point(test, base_rate, t),
    })
}

/// Where the base rate came from.
pub(crate) fn base_rate_source(op: &OperatingParams) -> &'static str {
    if op.base_rate.is_some() {
        "stated: [report] base_rate"
    } else {
        "the validation split's own share of not-happy images: [report] base_rate is not set"
    }
}

pub(crate) fn recommend<'a>(
    study: &'a Study,
    rp: &ReportParams,
    opp: &OperatingParams,
) -> Option<Rec<'a>> {
    let model = best_by_val(study.models.iter())?;
    if study.class_names.len() != 2 || model.val_preds.is_empty() || model.test_preds.is_empty() {
        return None;
    }
    let (val, test_s) = (
        operating::scored(&model.val_preds),
        operating::scored(&model.test_preds),
    );
    let own = operating::share_not_happy(&val)?;
    let b = opp.base_rate.unwrap_or(own);
    let d = model.default_threshold;
    let op = operating_point(&val, &test_s, b, opp.goal, d)?;
    let shop = if opp.base_rate.is_some() {
        "this shop"
    } else {
        "this shop (the validation's own mix)"
    };
    let mut mixes = vec![(shop.to_string(), op)];
    for (name, rate) in REFERENCE_MIXES
        .iter()
        .map(|(n, r)| (n.to_string(), *r))
        .chain(
            // The validation split's own mix, unless the shop's row already is it.
            opp.base_rate
                .map(|_| ("validation's own mix".to_string(), own)),
        )
    {
        if let Some(p) = operating_point(&val, &test_s, rate, opp.goal, d) {
            mixes.push((name, p));
        }
    }
    let (threshold, rule) = (op.choice.point.threshold, op.choice.rule);
    let test = &model.test_preds;
    let cis = stats::bootstrap(
        test.len(),
        2,
        rp.bootstrap,
        rp.seed,
        rp.confidence,
        |k, idx| {
            let s = stats::alert_stats(test, Some(idx), threshold);
            match k {
                0 => (s.alerts > 0).then_some(s.precision),
                _ => (s.not_happy > 0).then_some(s.recall),
            }
        },
    );
    Some(Rec {
        model,
        threshold,
        rule,
        val: stats::alert_stats(&model.val_preds, None, threshold),
        test: stats::alert_stats(test, None, threshold),
        test_default: stats::alert_stats(test, None, model.default_threshold),
        precision_ci: cis[0],
        recall_ci: cis[1],
        op,
        mixes,
        weights_blake3: fer_core::hash::hash_file(&model.dir.join("model.safetensors")).ok(),
    })
}

pub(crate) fn short_name(m: &ModelRun) -> String {
    m.svm_name.clone().unwrap_or_else(|| {
        m.dir
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default()
    })
}

/// The folder of a model's artifacts as a path under the artifacts root, e.g.
/// `artifacts/seed/train_cnn/fer-small` when the artifacts root is `artifacts`.
fn model_dir(artifacts: &Path, study: &Study, m: &ModelRun) -> String {
    let rel = m.dir.strip_prefix(&study.root).unwrap_or(&m.dir);
    let base = artifacts.join(&study.pipeline).join(rel);
    let cwd = std::env::current_dir().unwrap_or_default();
    base.strip_prefix(&cwd)
        .unwrap_or(&base)
        .to_string_lossy()
        .to_string()
}

/// `recommendation.json`: core's [`Recommendation`] and the hash of the model's weights.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecommendationFile {
    #[serde(flatten)]
    pub rec: Recommendation,
    /// blake3 of the model's `model.safetensors` (for SVMs, the file of every saved SVM;
    /// `svm_model` names the one): predict uses the threshold only with these weights, so a
    /// model retrained in the same folder does not inherit it. `null` when the file is missing.
    pub model_weights_blake3: Option<String>,
    /// The expected share of not-happy customers the threshold was chosen for.
    pub base_rate: f64,
    /// Where `base_rate` came from (stated in `[report]`, or the validation split's share).
    pub base_rate_source: String,
    /// The one goal the threshold was chosen for, and whether any threshold met it.
    pub goal: GoalJson,
    /// Alerts per 100 customers expected at `base_rate` (validation, reweighted).
    pub expected_alerts_per_100: f64,
    /// Precision, recall and alerts per 100 at the threshold, at `base_rate`: on validation
    /// (what chose it) and on test, both reweighted to that mix.
    pub at_base_rate: AtBaseRate,
    /// The model's calibration (`<model_dir>/calibration.json`, as written by its training
    /// stage), `null` when the model folder has none.
    // The calibration work (issue 19) writes that file; this field passes it through as is.
    pub calibration: Option<serde_json::Value>,
    /// A seven-class pipeline only (absent from a binary one's file): the best seven-class
    /// model by validation macro F1 and its figures. The fields above are then the
    /// happy-vs-rest reading of the recommended model (the checkout's alerts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seven_classes: Option<SevenClassesJson>,
}

/// `recommendation.json`'s `seven_classes`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SevenClassesJson {
    /// The best seven-class model (`recommendation.json`'s `model` naming).
    pub model: String,
    pub display: String,
    pub model_dir: String,
    pub chosen_by: String,
    pub classes: Vec<String>,
    pub val_macro_f1: f64,
    pub test_accuracy: f64,
    pub test_accuracy_ci: [f64; 2],
    pub test_macro_f1: f64,
    pub test_macro_f1_ci: [f64; 2],
    /// `null` when the test split has no PrivateTest image.
    pub private_test_accuracy: Option<f64>,
    pub private_test_macro_f1: Option<f64>,
    /// How the happy-vs-rest fields read a seven-class model.
    pub happy_vs_rest: String,
}

/// `recommendation.json`'s `goal`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GoalJson {
    /// `alert_precision` or `alert_budget`.
    pub kind: String,
    pub value: f64,
    /// `false`: not in `[report]`, the default goal.
    pub stated: bool,
    /// `false`: no threshold met the goal on validation at `base_rate`; the threshold is then
    /// the best balanced accuracy (`threshold_rule = "balanced_accuracy"`), not a goal's.
    pub met: bool,
}

/// Figures at one threshold and base rate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RateFigures {
    /// `null` when there are no alerts.
    pub precision: f64,
    pub recall: f64,
    pub alerts_per_100: f64,
}

impl From<&Point> for RateFigures {
    fn from(p: &Point) -> RateFigures {
        RateFigures {
            precision: p.precision,
            recall: p.recall,
            alerts_per_100: p.alerts_per_100,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct AtBaseRate {
    pub validation: RateFigures,
    pub test: RateFigures,
}

/// `<dir>/calibration.json` as raw JSON, if the file is there and parses.
fn calibration(dir: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("calibration.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// `recommendation.json`: the recommended model, its alert threshold and its figures.
pub(crate) fn recommendation_json(
    r: &Rec,
    cis: &BTreeMap<String, Ci>,
    study: &Study,
    rp: &ReportParams,
    opp: &OperatingParams,
    artifacts: &Path,
    sev: Option<&crate::seven::SevenFigures>,
) -> RecommendationFile {
    let op = &r.op;
    let seven_classes = sev.and_then(|f| {
        let b = &f.models[f.best?];
        Some(SevenClassesJson {
            model: short_name(b.model),
            display: b.model.display.clone(),
            model_dir: model_dir(artifacts, study, b.model),
            chosen_by: "validation macro F1 over the seven emotions".into(),
            classes: f.seven.classes.clone(),
            val_macro_f1: b.val_macro_f1,
            test_accuracy: b.test.accuracy.value,
            test_accuracy_ci: [b.test.accuracy.lo, b.test.accuracy.hi],
            test_macro_f1: b.test.macro_f1.value,
            test_macro_f1_ci: [b.test.macro_f1.lo, b.test.macro_f1.hi],
            private_test_accuracy: b.private.as_ref().map(|p| p.accuracy.value),
            private_test_macro_f1: b.private.as_ref().map(|p| p.macro_f1.value),
            happy_vs_rest: "the recommended model, threshold and figures outside `seven_classes` read the seven-class models as happy (the emotion `happy`) vs the rest; the score is the happy class's probability (CNN) or happy-vs-rest decision value (SVM)".into(),
        })
    });
    let mut rec = recommendation(r, cis, study, rp, artifacts);
    if study.seven.is_some() {
        rec.chosen_by = "validation ROC AUC of the happy score, happy vs the rest".into();
    }
    RecommendationFile {
        rec,
        model_weights_blake3: r.weights_blake3.clone(),
        base_rate: op.base_rate,
        base_rate_source: base_rate_source(opp).into(),
        goal: GoalJson {
            kind: op.goal.key().into(),
            value: op.goal.value(),
            stated: opp.goal_stated,
            met: op.choice.met,
        },
        expected_alerts_per_100: op.val.alerts_per_100,
        at_base_rate: AtBaseRate {
            validation: (&op.val).into(),
            test: (&op.test).into(),
        },
        calibration: calibration(&r.model.dir),
        seven_classes,
    }
}

fn recommendation(
    r: &Rec,
    cis: &BTreeMap<String, Ci>,
    study: &Study,
    rp: &ReportParams,
    artifacts: &Path,
) -> Recommendation {
    let ci = &cis[&r.model.key];
    Recommendation {
        model: short_name(r.model),
        display: r.model.display.clone(),
        family: match r.model.family {
            Family::Svm => "svm",
            Family::Cnn => "cnn",
        }
        .into(),
        model_dir: model_dir(artifacts, study, r.model),
        svm_model: r.model.svm_name.clone(),
        score: r.model.score_name.into(),
        threshold: r.threshold,
        rule: format!(
            "alert \"not happy\" when {} < threshold",
            r.model.score_name
        ),
        threshold_chosen_on: "validation".into(),
        threshold_rule: r.rule,
        target_not_happy_precision: match r.op.goal {
            Goal::Precision(p) => Some(p),
            Goal::Budget(_) => None,
        },
        expected_not_happy_precision: r.test.precision,
        expected_not_happy_precision_ci: [r.precision_ci.lo, r.precision_ci.hi],
        expected_not_happy_recall: r.test.recall,
        expected_not_happy_recall_ci: [r.recall_ci.lo, r.recall_ci.hi],
        confidence: rp.confidence,
        validation: r.val,
        test: r.test,
        test_at_default_threshold: r.test_default,
        chosen_by: "validation accuracy".into(),
        val_accuracy: r.model.val.accuracy,
        test_accuracy: r.model.test.accuracy,
        test_accuracy_ci: [ci.lo, ci.hi],
    }
}
