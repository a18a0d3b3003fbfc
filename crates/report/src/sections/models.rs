//! The "Models side by side" section: quality and cost tables, accuracy intervals,
//! classification reports, confusion matrices, ROC curves and the McNemar test.

use super::{Ctx, bytes, f2, opt, p_value, pct, pct_ci, secs, thousands};
use crate::ReportError;
use crate::charts::{self, CiRow};
use crate::doc::Tone;
use crate::load::{Family, ModelRun, Study};
use crate::recommend::best_by_val;
use crate::stats::{Ci, McNemar};
use std::collections::BTreeMap;

/// Models shown in the detailed sections: the best SVM per feature set, every CNN.
fn featured(study: &Study) -> Vec<&ModelRun> {
    let mut out: Vec<&ModelRun> = Vec::new();
    let mut feats: Vec<&str> = Vec::new();
    for m in &study.models {
        if let Some(f) = m.feature.as_deref()
            && !feats.contains(&f)
        {
            feats.push(f);
        }
    }
    for f in feats {
        if let Some(b) = best_by_val(
            study
                .models
                .iter()
                .filter(|m| m.feature.as_deref() == Some(f)),
        ) {
            out.push(b);
        }
    }
    out.extend(study.models.iter().filter(|m| m.family == Family::Cnn));
    out
}

pub(super) fn color_of(study: &Study, m: &ModelRun) -> plotters::style::RGBColor {
    let i = study
        .models
        .iter()
        .filter(|x| x.family == m.family)
        .position(|x| x.key == m.key)
        .unwrap_or(0);
    charts::model_color(i, m.family == Family::Svm)
}

pub(super) fn models(
    cx: &mut Ctx,
    cis: &BTreeMap<String, Ci>,
    best_svm: Option<&ModelRun>,
    best_cnn: Option<&ModelRun>,
    mcn: Option<&McNemar>,
) -> Result<(), ReportError> {
    let s = cx.study;
    let conf = format!("{:.0}%", cx.rp.confidence * 100.0);
    cx.doc.h2("Models side by side");
    if !cx.ran("train_svm") {
        cx.not_run("The SVMs", "train_svm");
    }
    if !cx.ran("train_cnn") {
        cx.not_run("The CNNs", "train_cnn");
    }
    cx.happy_vs_rest_note();
    cx.doc.p(format!(
        "Every trained model, chosen on validation and scored once on the test images. Test accuracy is followed by its {conf} bootstrap confidence interval ({} resamples of the test set).",
        thousands(cx.rp.bootstrap as u64)
    ));
    let rows: Vec<Vec<String>> = s
        .models
        .iter()
        .map(|m| {
            vec![
                format!("**{}**", m.display),
                pct(m.val.accuracy),
                pct_ci(&cis[&m.key]),
                pct(m.test.balanced_accuracy),
                opt(m.test.roc_auc, |x| format!("{x:.3}")),
                f2(m.test.macro_avg.f1),
            ]
        })
        .collect();
    cx.doc.h3("Quality");
    cx.doc.table(
        &[
            "Model",
            "Validation accuracy",
            &format!("Test accuracy ({conf} CI)"),
            "Balanced accuracy",
            "ROC AUC",
            "Macro F1",
        ],
        rows,
    );
    if let Some(b) = s.majority_baseline_test() {
        cx.doc.p(format!(
            "Always answering the larger class would score {} on test: every model must beat that.",
            pct(b)
        ));
    }
    cx.doc.h3("Cost");
    let rows: Vec<Vec<String>> = s
        .models
        .iter()
        .map(|m| {
            vec![
                format!("**{}**", m.display),
                m.config.clone(),
                opt(m.params, thousands),
                opt(m.size_bytes, bytes),
                opt(m.train_seconds, secs),
                opt(m.inference_images_per_second, |x| {
                    format!("{} img/s", thousands(x.round() as u64))
                }),
            ]
        })
        .collect();
    cx.doc.table(
        &[
            "Model",
            "Settings",
            "Parameters",
            "Size on disk",
            "Training time",
            "Inference",
        ],
        rows,
    );
    cx.doc.p("Parameters: a CNN's weights; for an SVM, the numbers it stores (support vectors or weights, and its feature scaling and PCA). Size on disk: the model's weights file (for an SVM, its share of `train_svm/model.safetensors`). SVM training time covers its whole grid search and feature fitting. Inference: test images per second on the machine that trained it.");

    let mut ci_rows: Vec<CiRow> = s
        .models
        .iter()
        .map(|m| CiRow {
            name: m.display.clone(),
            ci: cis[&m.key],
            color: color_of(s, m),
        })
        .collect();
    ci_rows.sort_by(|a, b| a.ci.value.total_cmp(&b.ci.value));
    let mut refs = vec![(
        format!("study: {}", pct(cx.rp.study.tuned_test_acc)),
        cx.rp.study.tuned_test_acc,
    )];
    if let Some(b) = s.majority_baseline_test() {
        refs.push((format!("majority: {}", pct(b)), b));
    }
    if !ci_rows.is_empty() {
        let p = cx.img_path("accuracy.png")?;
        charts::accuracy_ci(
            &p,
            &format!("Test accuracy with {conf} bootstrap intervals"),
            &ci_rows,
            &refs,
        )?;
        cx.doc.image(
            "img/accuracy.png",
            format!("Test accuracy of every model; bars are {conf} bootstrap intervals, grey lines the study's tuned CNN and the majority-class baseline."),
        );
    }

    let feat = featured(s);
    cx.doc.h3("Classification reports");
    cx.doc.p("Per class, in the layout of scikit-learn's `classification_report` (the study's table), on the test images. Precision: of the faces the model put in a class, the share that belong there; recall: of the faces of a class, the share it found.");
    for m in &feat {
        cx.doc.p(format!("**{}** ({})", m.display, m.role));
        cx.doc.pre(m.test.report_text());
    }
    cx.doc.h3("Confusion matrices");
    let mats: Vec<(String, Vec<Vec<u64>>)> = feat
        .iter()
        .map(|m| (m.display.clone(), m.test.confusion.clone()))
        .collect();
    if !mats.is_empty() {
        let p = cx.img_path("confusion.png")?;
        charts::confusions(&p, &mats, &s.class_names)?;
        cx.doc.image(
            "img/confusion.png",
            "Test confusion matrices: rows are the true class, columns the model's answer; green cells are right, orange wrong; percentages are shares of the row.",
        );
    }
    let mut rows = Vec::new();
    for m in &feat {
        let c = &m.test.confusion;
        if c.len() == 2 {
            rows.push(vec![
                m.display.clone(),
                thousands(c[0][0]),
                thousands(c[0][1]),
                thousands(c[1][0]),
                thousands(c[1][1]),
            ]);
        }
    }
    if !rows.is_empty() {
        cx.doc.table(
            &[
                "Model",
                "happy → happy",
                "happy → not happy",
                "not happy → happy",
                "not happy → not happy",
            ],
            rows,
        );
    }
    if s.class_names.len() == 2 {
        cx.doc.h3("ROC curves");
        let curves: Vec<charts::Curve> = feat
            .iter()
            .filter(|m| !m.test_preds.is_empty())
            .map(|m| {
                let pos: Vec<bool> = m
                    .test_preds
                    .iter()
                    .map(|p| p.label == fer_core::classes::HAPPY_LABEL)
                    .collect();
                let sc: Vec<f64> = m.test_preds.iter().map(|p| p.score).collect();
                let pts = fer_eval::metrics::roc_curve(&pos, &sc)
                    .into_iter()
                    .map(|(f, t, _)| (f, t))
                    .collect();
                let auc = m
                    .test
                    .roc_auc
                    .map_or(String::new(), |a| format!(" (AUC {a:.3})"));
                (format!("{}{auc}", m.display), pts, color_of(s, m))
            })
            .collect();
        if !curves.is_empty() {
            let p = cx.img_path("roc.png")?;
            charts::roc(&p, &curves)?;
            cx.doc.image(
                "img/roc.png",
                "ROC curves on the test images: the closer a curve hugs the top-left corner, the better the model ranks happy above not-happy faces at every threshold.",
            );
        }
    }
    cx.doc
        .h3("Is the best CNN really better than the best SVM?");
    match (best_svm, best_cnn, mcn) {
        (Some(sv), Some(cn), Some(t)) => {
            cx.doc.table(
                &["", "Images"],
                vec![
                    vec!["Both right".into(), thousands(t.both_right)],
                    vec![format!("Only {} right", cn.display), thousands(t.only_a)],
                    vec![format!("Only {} right", sv.display), thousands(t.only_b)],
                    vec!["Both wrong".into(), thousands(t.both_wrong)],
                ],
            );
            let verdict = if t.p_value < 1.0 - cx.rp.confidence {
                format!(
                    "below {:.2}: the models really differ on this kind of data",
                    1.0 - cx.rp.confidence
                )
            } else {
                format!(
                    "not below {:.2}: this test set cannot tell the two apart",
                    1.0 - cx.rp.confidence
                )
            };
            cx.doc.p(format!(
                "McNemar's exact test looks only at the images where the two models disagree ({} of them). If both were equally good, each would win about half of those. Here p **{}**, {verdict}. Both models are the best of their family by validation accuracy.",
                thousands(t.only_a + t.only_b),
                p_value(t.p_value)
            ));
        }
        _ => cx.doc.note(
            Tone::NotRun,
            "**Not run.** The comparison needs at least one SVM (`make train-svm`) and one CNN (`make train-cnn`) scored on the same test images.",
        ),
    }
    Ok(())
}
