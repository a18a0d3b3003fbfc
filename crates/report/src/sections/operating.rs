//! The "Operating point" section: the recommended model's "not happy" alerts at the shop's
//! mix of customers (`[report] base_rate`) for the one goal stated (`alert_precision` or
//! `alert_budget`): the expected alerts per 100 customers, precision and recall at that rate
//! (validation reweighted, and test reweighted the same way), a precision/recall chart, a
//! threshold-sweep chart, and a table of the operating point at the mixes of `seed` and
//! `full` (see `crate::operating`).

use super::recommendation::{f1, goal_words};
use super::{Ctx, pct};
use crate::ReportError;
use crate::charts::{self, SweepRow};
use crate::doc::{Block, Tone};
use crate::load::Family;
use crate::operating::{self, Goal, OperatingParams};
use crate::recommend::{Rec, base_rate_source};
use plotters::style::RGBColor;

pub(super) fn operating(
    cx: &mut Ctx,
    rec: Option<&Rec>,
    opp: &OperatingParams,
) -> Result<(), ReportError> {
    cx.doc.h2("Operating point");
    let Some(r) = rec else {
        cx.doc.note(
            Tone::Warn,
            "No operating point: it needs a recommended binary model whose validation predictions hold both classes.",
        );
        return Ok(());
    };
    cx.happy_vs_rest_note();
    let (m, op) = (r.model, &r.op);
    let val = operating::scored(&m.val_preds);
    let test = operating::scored(&m.test_preds);
    let own = operating::share_not_happy(&val).unwrap_or(f64::NAN);
    let b = op.base_rate;
    let goal = goal_words(op.goal);
    let (wn, wh) = operating::class_weights(own, b);
    cx.doc.p(format!(
        "A shop sets the alert threshold for its own customers. This one expects **{} of its customers to be unhappy** ({}), and asks for one thing: **{goal}**, {}. The validation images ({} unhappy) are reweighted to that mix before the threshold is chosen: each unhappy face counts {:.3} times and each happy face {:.3} times. Recall (the share of unhappy customers flagged) does not depend on the mix; precision and the number of alerts do.",
        pct(b),
        base_rate_source(opp),
        if opp.goal_stated {
            format!("stated as `{}` in `[report]`", op.goal.key())
        } else {
            "the default goal, as `[report]` states neither `alert_precision` nor `alert_budget`".into()
        },
        pct(own),
        wn,
        wh,
    ));
    if !op.choice.met {
        cx.doc.note(
            Tone::Warn,
            format!(
                "**No threshold meets the goal** ({goal} at {} unhappy). The figures below are for the best-balanced-accuracy threshold instead, which does not meet it.",
                pct(b)
            ),
        );
    }
    cx.doc.blocks.push(Block::Figures(vec![
        (
            "Threshold".into(),
            format!("{:.3}", op.choice.point.threshold),
            format!(
                "alert when `{}` is below it{}",
                m.score_name,
                if op.choice.met {
                    ""
                } else {
                    "; the goal is not met"
                }
            ),
        ),
        (
            "Alerts per 100 customers".into(),
            f1(op.val.alerts_per_100),
            format!(
                "expected at {} unhappy; test, reweighted: {}",
                pct(b),
                f1(op.test.alerts_per_100)
            ),
        ),
        (
            "Alerts that are right".into(),
            pct(op.val.precision),
            format!(
                "validation reweighted to {} unhappy; test, reweighted: {}",
                pct(b),
                pct(op.test.precision)
            ),
        ),
        (
            "Unhappy customers flagged".into(),
            pct(op.val.recall),
            format!("validation; test: {}", pct(op.test.recall)),
        ),
    ]));

    // Charts at the shop's rate.
    let d = m.default_threshold;
    let val_sweep = operating::sweep(&val, b, d);
    let test_sweep = operating::sweep(&test, b, d);
    let pr = |pts: &[operating::Point]| -> Vec<(f64, f64)> {
        pts.iter()
            .map(|p| (p.recall * 100.0, p.precision * 100.0))
            .collect()
    };
    let curves = vec![
        (
            "validation, reweighted".to_string(),
            pr(&val_sweep),
            RGBColor(31, 111, 235),
        ),
        (
            "test, reweighted".to_string(),
            pr(&test_sweep),
            RGBColor(217, 95, 2),
        ),
    ];
    let goal_precision = match op.goal {
        Goal::Precision(p) => Some(p * 100.0),
        Goal::Budget(_) => None,
    };
    let path = cx.img_path("operating_pr.png")?;
    charts::precision_recall(
        &path,
        &format!(
            "{}: precision and recall of \"not happy\" alerts at {} unhappy",
            m.display,
            pct(b)
        ),
        &curves,
        Some((op.val.recall * 100.0, op.val.precision * 100.0)),
        goal_precision,
    )?;
    cx.doc.image(
        "img/operating_pr.png",
        format!(
            "Precision against recall of \"not happy\" alerts for every threshold, at {} unhappy customers (validation and test each reweighted to that mix). Ringed: the chosen threshold on validation.",
            pct(b)
        ),
    );
    let rows: Vec<SweepRow> = val_sweep
        .iter()
        .map(|p| {
            (
                p.threshold,
                p.precision * 100.0,
                p.recall * 100.0,
                p.alerts_per_100,
            )
        })
        .collect();
    let x = match m.family {
        Family::Cnn => (0.0, 1.0),
        Family::Svm => {
            let lo = val_sweep.first().map_or(-1.0, |p| p.threshold);
            let hi = val_sweep.last().map_or(1.0, |p| p.threshold);
            let pad = (hi - lo) * 0.03;
            (lo - pad, hi + pad)
        }
    };
    let goal_line = match op.goal {
        Goal::Precision(p) => (format!("goal: {} precision", pct(p)), p * 100.0),
        Goal::Budget(a) => (format!("goal: at most {} alerts per 100", f1(a)), a),
    };
    let path = cx.img_path("operating_sweep.png")?;
    charts::threshold_sweep(
        &path,
        &format!(
            "{}: alerts against the threshold at {} unhappy (validation, reweighted)",
            m.display,
            pct(b)
        ),
        &format!("threshold on {}", m.score_name),
        x,
        &rows,
        op.choice.point.threshold,
        Some(goal_line),
    )?;
    cx.doc.image(
        "img/operating_sweep.png",
        format!(
            "Precision, recall and alerts per 100 customers as the threshold on `{}` moves, on validation reweighted to {} unhappy. The vertical line is the chosen threshold, the dashed one the goal.",
            m.score_name,
            pct(b)
        ),
    );

    // How the threshold moves with the mix.
    cx.doc.h3("The same goal at other mixes");
    cx.doc.p(format!(
        "The threshold for {goal} at the mix of each pipeline's training data (seed: the study's sample, about half unhappy; full: all of FER2013, about three quarters unhappy) and of this validation split. Precision and recall are on validation (which chose the threshold) and on test, each reweighted to the row's mix; a shop whose mix differs from its validation data's should expect the threshold to move like this."
    ));
    let rows: Vec<Vec<String>> = r
        .mixes
        .iter()
        .map(|(name, p)| {
            vec![
                name.clone(),
                pct(p.base_rate),
                format!("{:.3}", p.choice.point.threshold),
                if p.choice.met { "yes" } else { "no" }.into(),
                f1(p.val.alerts_per_100),
                pct(p.val.precision),
                pct(p.val.recall),
                pct(p.test.precision),
                pct(p.test.recall),
            ]
        })
        .collect();
    cx.doc.table(
        &[
            "Mix",
            "Unhappy",
            "Threshold",
            "Goal met",
            "Alerts per 100",
            "Precision (val)",
            "Recall (val)",
            "Precision (test)",
            "Recall (test)",
        ],
        rows,
    );
    Ok(())
}
