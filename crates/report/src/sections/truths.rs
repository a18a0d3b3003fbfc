//! The "Two truths" section: every model's test figures against FER2013's labels (one
//! annotator, the study's yardstick) and FERPlus's (the plurality of 10), side by side, and
//! the label-noise ceiling: what a model that matched FERPlus exactly would score against
//! FER2013. Without FERPlus votes (synthetic faces, or no `FERPLUS_DIR`), it says so.

use super::{Ctx, opt, pct, thousands};
use crate::ReportError;
use crate::doc::Tone;

pub(super) fn truths(cx: &mut Ctx) -> Result<(), ReportError> {
    let s = cx.study;
    if s.models.is_empty() {
        return Ok(());
    }
    cx.doc.h2("Two truths: FER2013's labels and FERPlus's");
    let labels = s
        .stage("ingest")
        .and_then(|m| m.summary["ferplus"].as_str())
        .unwrap_or("not available");
    let with: Vec<_> = s
        .models
        .iter()
        .filter_map(|m| m.test_by_truth.as_ref().map(|t| (m, t)))
        .collect();
    if with.is_empty() {
        cx.doc.note(
            Tone::Info,
            format!(
                "FERPlus figures: not available. The data has no FERPlus votes ({}): synthetic \
                 faces, or the FERPlus folder (FERPLUS_DIR) was not found when ingest ran.",
                if labels == "available" {
                    "ingest found them, but these models were scored before"
                } else {
                    "ingest found none"
                }
            ),
        );
        return Ok(());
    }
    if cx.seven() {
        cx.doc.note(
            Tone::Info,
            "Seven classes: the figures in this section are over the seven emotions (accuracy, balanced accuracy, and ROC AUC averaged one emotion against the rest), as the training stages scored them against each truth, not the happy-vs-rest reading of the other sections.",
        );
    }
    let t0 = with[0].1;
    let excluded = match t0.ferplus_excluded {
        0 => "every test face has a FERPlus label".to_string(),
        n => format!(
            "{} more faces have no FERPlus label: tied votes, \"unknown\" or \"not a face\", \
             and are left out of the FERPlus column",
            thousands(n)
        ),
    };
    cx.doc.p(format!(
        "FER2013 gives each face one annotator's label; FERPlus had 10 annotators vote on every \
         face. On this test set the two disagree on {} of the {} faces both label ({excluded}). \
         A model that agreed with FERPlus on every face would score {} balanced accuracy against \
         FER2013's labels: that is the label-noise ceiling, the best any model can look on the \
         study's yardstick, however good it is.",
        pct(t0.disagreement),
        thousands(t0.ferplus.n),
        pct(t0.ferplus_ceiling_balanced_accuracy),
    ));
    let rows = with
        .iter()
        .map(|(m, t)| {
            vec![
                m.display.clone(),
                pct(t.fer2013.accuracy),
                pct(t.fer2013.balanced_accuracy),
                opt(t.fer2013.roc_auc, |a| format!("{a:.3}")),
                pct(t.ferplus.accuracy),
                pct(t.ferplus.balanced_accuracy),
                opt(t.ferplus.roc_auc, |a| format!("{a:.3}")),
            ]
        })
        .collect();
    cx.doc.table(
        &[
            "model",
            "FER2013 accuracy",
            "FER2013 balanced",
            "FER2013 ROC AUC",
            "FERPlus accuracy",
            "FERPlus balanced",
            "FERPlus ROC AUC",
        ],
        rows,
    );
    let trained_on = s
        .stage("ingest")
        .and_then(|m| {
            m.params
                .get("labels")
                .and_then(|v| v.as_str())
                .map(String::from)
        })
        .unwrap_or_else(|| "fer2013".into());
    cx.doc.p(format!(
        "The models here trained on {}'s labels; the other sections score against those.",
        if trained_on == "ferplus" {
            "FERPlus"
        } else {
            "FER2013"
        }
    ));
    cx.copy_image(
        "stats",
        "label_noise.png",
        "The most disputed faces of each FER2013 emotion: the faces whose FER2013 label got the \
         fewest of FERPlus's 10 votes (stats stage).",
    )
}
