//! The recommendation, computed from a [`Study`] and the `[report]` params: the model to
//! deploy (highest validation accuracy), its "not happy" alert threshold (chosen on validation
//! predictions), its test figures at that threshold with bootstrap intervals, and the
//! `recommendation.json` document the predict tool reads (core's schema plus the blake3 hash of
//! the model's weights file, so predict applies the threshold only to those weights).

use crate::ReportParams;
use crate::load::{Family, ModelRun, Pred, Study};
use crate::stats::{self, AlertStats, Ci, ThresholdRule};
use fer_core::schema::recommendation::Recommendation;
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

/// The model with the highest validation accuracy (ties: fewer parameters, then listed first).
pub(crate) fn best_by_val<'a>(ms: impl Iterator<Item = &'a ModelRun>) -> Option<&'a ModelRun> {
    let mut best: Option<&ModelRun> = None;
    for m in ms {
        let better = match best {
            None => true,
            Some(b) => {
                m.val.accuracy > b.val.accuracy + 1e-12
                    || ((m.val.accuracy - b.val.accuracy).abs() <= 1e-12
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
}

pub(crate) fn recommend<'a>(study: &'a Study, rp: &ReportParams) -> Option<Rec<'a>> {
    let model = best_by_val(study.models.iter())?;
    if study.class_names.len() != 2 || model.val_preds.is_empty() || model.test_preds.is_empty() {
        return None;
    }
    let (threshold, rule) = stats::choose_threshold(
        &model.val_preds,
        rp.alert_precision,
        model.default_threshold,
    );
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
}

/// `recommendation.json`: the recommended model, its alert threshold and its figures.
pub(crate) fn recommendation_json(
    r: &Rec,
    cis: &BTreeMap<String, Ci>,
    study: &Study,
    rp: &ReportParams,
    artifacts: &Path,
) -> RecommendationFile {
    let weights = r.model.dir.join("model.safetensors");
    RecommendationFile {
        rec: recommendation(r, cis, study, rp, artifacts),
        model_weights_blake3: fer_core::hash::hash_file(&weights).ok(),
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
        target_not_happy_precision: rp.alert_precision,
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
