//! The "Recommendation" section: the recommended model, its alert rule and the caveats, in
//! words, from the [`Rec`] computed in `crate::recommend`.

use super::{Ctx, count, p_value, pct, thousands};
use crate::doc::{Block, Tone};
use crate::load::{Family, ModelRun};
use crate::operating::Goal;
use crate::recommend::Rec;
use crate::stats::{Ci, McNemar, ThresholdRule};
use std::collections::BTreeMap;

pub(super) fn recommendation(
    cx: &mut Ctx,
    rec: Option<&Rec>,
    cis: &BTreeMap<String, Ci>,
    best_svm: Option<&ModelRun>,
    best_cnn: Option<&ModelRun>,
    mcn: Option<&McNemar>,
) {
    cx.doc.h2("Recommendation");
    let conf = format!("{:.0}%", cx.rp.confidence * 100.0);
    let Some(r) = rec else {
        cx.doc.note(
            Tone::Warn,
            "No recommendation: it needs a binary (happy / not happy) model with validation and test predictions.",
        );
        return;
    };
    cx.happy_vs_rest_note();
    let m = r.model;
    let ci = &cis[&m.key];
    let n_test = m.test_preds.len() as u64;
    let score_words = match m.family {
        Family::Cnn => "its probability of \"happy\"",
        Family::Svm => "its decision value",
    };
    cx.doc.blocks.push(Block::Figures(vec![
        (
            "Deploy".into(),
            m.display.clone(),
            format!(
                "{} of {} models",
                if m.seven.is_some() {
                    "highest validation ROC AUC of the happy score (happy vs the rest)"
                } else {
                    "highest validation accuracy"
                },
                cx.study.models.len()
            ),
        ),
        (
            "Test accuracy".into(),
            pct(ci.value),
            format!(
                "{conf} interval {:.1}–{:.1}% on {} images",
                ci.lo * 100.0,
                ci.hi * 100.0,
                thousands(n_test)
            ),
        ),
        (
            "\"Not happy\" alerts that are right".into(),
            pct(r.test.precision),
            format!(
                "{conf} interval {:.1}–{:.1}% at threshold {:.3}",
                r.precision_ci.lo * 100.0,
                r.precision_ci.hi * 100.0,
                r.threshold
            ),
        ),
        (
            "Unhappy customers flagged".into(),
            pct(r.test.recall),
            format!(
                "{} of {} not-happy test faces",
                thousands(r.test.true_alerts),
                thousands(r.test.not_happy)
            ),
        ),
    ]));
    // Seven-class models are chosen by the validation ROC AUC of their happy score
    // (`recommend::val_rank`), binary ones by validation accuracy.
    let (what, value) = match (&m.seven, m.val.roc_auc) {
        (Some(_), Some(auc)) => ("ROC AUC of the happy score", format!("{auc:.3}")),
        _ => ("accuracy", pct(m.val.accuracy)),
    };
    let mut text = format!(
        "Deploy **{}**. Of the {} trained models it had the highest {what} on the {} validation images ({}), and on the {} test images it never saw while being chosen it was right **{}** of the time ({conf} confidence interval {:.1}–{:.1}%).",
        m.display,
        cx.study.models.len(),
        thousands(m.val_preds.len() as u64),
        value,
        thousands(n_test),
        pct(ci.value),
        ci.lo * 100.0,
        ci.hi * 100.0,
    );
    if let (Some(s), Some(c), Some(t)) = (best_svm, best_cnn, mcn) {
        let (sa, ca) = (cis[&s.key].value, cis[&c.key].value);
        let diff = (ca - sa) * 100.0;
        let verdict = if t.p_value < 1.0 - cx.rp.confidence {
            "a difference too large to be luck"
        } else {
            "a difference that could still be luck on this many images"
        };
        text += &format!(
            " The best CNN ({}, {}) and the best SVM ({}, {}) differ by {:+.1} points on test: McNemar's test gives p {}, {verdict}.",
            c.display,
            pct(ca),
            s.display,
            pct(sa),
            diff,
            p_value(t.p_value)
        );
    }
    cx.doc.p(text);
    let op = &r.op;
    let mix = format!(
        "at {} unhappy customers, {}",
        pct(op.base_rate),
        if cx.rp.base_rate.is_some() {
            "the stated `base_rate`"
        } else {
            "the validation split's own share as `base_rate` is not set"
        }
    );
    let goal = goal_words(op.goal);
    if !op.choice.met {
        cx.doc.note(
            Tone::Warn,
            format!(
                "**The goal is not met.** No threshold reaches {goal} on the validation images {mix}. The threshold below is not the goal's: it is the one with the best balanced accuracy, given so that predict has one. Change the goal (`alert_precision` or `alert_budget` in `[report]`) or the model before relying on these alerts."
            ),
        );
    }
    let rule = match r.rule {
        ThresholdRule::PrecisionTarget => format!(
            "the threshold flags as many unhappy faces as possible while at least {} of alerts are right, {mix}",
            pct(op.goal.value())
        ),
        ThresholdRule::AlertBudget => format!(
            "the threshold flags as many unhappy faces as possible within {} alerts per 100 customers, {mix}",
            f1(op.goal.value())
        ),
        ThresholdRule::BalancedAccuracy => format!(
            "no threshold reached {goal} {mix}; the threshold with the best balanced accuracy was taken instead"
        ),
    };
    cx.doc.p(format!(
        "**Alert rule:** raise a \"not happy\" alert when {score_words} (`{}`) is below **{:.3}**. It was chosen on the validation images only ({rule}: there, reweighted to that mix, {} of alerts were right, {} of the unhappy faces were flagged and **{} alerts per 100 customers** are expected; the test images reweighted the same way give {} right and {} alerts per 100). On the test images as drawn ({} unhappy), {} of the {} alerts were right ({conf} interval {:.1}–{:.1}%) and {} of the unhappy faces were flagged ({conf} interval {:.1}–{:.1}%). With the model's plain decision ({} = {}), alert precision would be {} and {} of unhappy faces would be flagged.",
        m.score_name,
        r.threshold,
        pct(op.val.precision),
        pct(op.val.recall),
        f1(op.val.alerts_per_100),
        pct(op.test.precision),
        f1(op.test.alerts_per_100),
        pct(r.test.not_happy as f64 / r.test.n.max(1) as f64),
        pct(r.test.precision),
        thousands(r.test.alerts),
        r.precision_ci.lo * 100.0,
        r.precision_ci.hi * 100.0,
        pct(r.test.recall),
        r.recall_ci.lo * 100.0,
        r.recall_ci.hi * 100.0,
        m.score_name,
        m.default_threshold,
        pct(r.test_default.precision),
        pct(r.test_default.recall),
    ));
    let mut caveats = vec![format!(
        "The test set has {} images: the {conf} interval on accuracy is {:.1} points wide, so differences of a few points between models are within noise.",
        thousands(n_test),
        (ci.hi - ci.lo) * 100.0
    )];
    if let Some(stats) = &cx.study.stats {
        let a = &stats["audit"];
        if let Some(t) = a["test_with_train_twin"].as_u64()
            && t > 0
        {
            caveats.push(format!(
                "{} an exact or near twin in the training data (see the data-quality audit): {} every model slightly.",
                count(t, "test image has", "test images have"),
                if t == 1 { "it may flatter" } else { "they may flatter" }
            ));
        }
    }
    let synthetic = cx
        .study
        .stage("ingest")
        .is_some_and(|m| m.summary["source"] == "synthetic");
    caveats.push(if synthetic {
        "These are synthetic drawn faces (the smoke test): the numbers only show that the pipeline works, not how well faces are read.".into()
    } else {
        "FER2013 faces are small, posed or web-scraped 48×48 grayscale crops: accuracy at a real checkout camera has to be measured there before anyone acts on an alert.".into()
    });
    cx.doc.list(caveats);
}

/// The goal in words: `90.0% alert precision`, `5.0 alerts per 100 customers`.
pub(super) fn goal_words(g: Goal) -> String {
    match g {
        Goal::Precision(p) => format!("{} alert precision", pct(p)),
        Goal::Budget(a) => format!("at most {} alerts per 100 customers", f1(a)),
    }
}

pub(super) fn f1(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1}")
    } else {
        "n/a".into()
    }
}
