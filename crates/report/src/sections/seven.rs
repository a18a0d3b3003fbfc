//! The "Seven emotions" section, shown only in a seven-class pipeline: the headline (the best
//! model by validation macro F1 and its test figures), every seven-class model's accuracy and
//! macro F1 on the whole test split and on FER2013's PrivateTest images alone with bootstrap
//! intervals, the published anchors ([`crate::seven::ANCHORS`]) beside them, and per model
//! the per-class table and the 7x7 confusion matrix on test (a table of counts and a
//! row-normalized chart). The figures come from [`crate::seven`].

use super::models::color_of;
use super::{Ctx, class_words, pct, thousands};
use crate::ReportError;
use crate::charts::{self, CiRow};
use crate::doc::{Block, Tone, slug};
use crate::seven::{ANCHORS, PRIVATE_TEST, SevenFigures};
use crate::stats::Ci;

/// The sentence every happy-vs-rest section of a seven-class report carries.
pub(super) const HAPPY_VS_REST: &str = "These models were trained on seven emotions; here they are read as **happy vs the rest**: a face is truly happy when its FER2013 label is happy (any other emotion counts as not happy), the model says happy when happy is its top emotion, and the alert score is its happy score (a CNN's probability of happy, an SVM's happy-vs-rest decision value). The seven-class figures are in \"Seven emotions\".";

/// The same, in the sections after the first that says it.
pub(super) const HAPPY_VS_REST_AGAIN: &str = "Seven-class models read as **happy vs the rest** (truly happy: FER2013 label happy; said happy: happy is the top emotion; score: the happy score), as explained above.";

/// `0.412 (0.301–0.520)`: a macro F1 and its interval.
fn f1_ci(c: &Ci) -> String {
    if c.lo.is_finite() && c.hi.is_finite() {
        format!("{:.3} ({:.3}–{:.3})", c.value, c.lo, c.hi)
    } else {
        format!("{:.3}", c.value)
    }
}

/// `41.2% (30.1–52.0)`: an accuracy and its interval.
fn acc_ci(c: &Ci) -> String {
    if c.lo.is_finite() && c.hi.is_finite() {
        format!("{} ({:.1}–{:.1})", pct(c.value), c.lo * 100.0, c.hi * 100.0)
    } else {
        pct(c.value)
    }
}

pub(super) fn seven(cx: &mut Ctx, f: Option<&SevenFigures>) -> Result<(), ReportError> {
    let Some(f) = f else {
        return Ok(());
    };
    let conf = format!("{:.0}%", cx.rp.confidence * 100.0);
    let names: Vec<String> = f.seven.classes.iter().map(|c| class_words(c)).collect();
    cx.doc.h2("Seven emotions");
    cx.doc.p(format!(
        "This pipeline's labels are FER2013's seven emotions ({}). This section scores each seven-class model over the seven: accuracy (the share of faces put in the right emotion) and macro F1 (the mean of the seven per-class F1 scores, so rare emotions such as disgust count as much as happy), each followed by its {conf} bootstrap confidence interval ({} resamples). The sections after this one read the same models as happy vs the rest, the checkout's question.",
        names.join(", "),
        thousands(cx.rp.bootstrap as u64)
    ));
    // Which split chose and which scored (every figure below is one or the other).
    let literature = cx
        .study
        .stage("ingest")
        .is_some_and(|m| m.summary["validation"] == "public_test");
    cx.doc.p(if literature {
        "Chosen on FER2013's PublicTest images (the validation split: each model's epoch and the best model), scored on PrivateTest alone (the test split): the literature's protocol, so the test figures below are the ones papers report."
    } else {
        "Chosen on validation images carved from the training images (each model's epoch and the best model), scored on the test split, which chose nothing."
    });
    if f.models.is_empty() {
        cx.doc.note(
            Tone::Warn,
            "No seven-class model: the trained models here are binary (happy / not happy), so there are no seven-class figures.",
        );
        return Ok(());
    }
    let private_words = match (&f.seven.usage, f.private_n) {
        (None, _) => Some(
            "PrivateTest figures: not available (ingest has not run, so the test images' FER2013 `usage` is unknown).".to_string(),
        ),
        (Some(u), 0) => {
            let mut seen: Vec<&str> = u.values().map(String::as_str).collect();
            seen.sort_unstable();
            seen.dedup();
            Some(format!(
                "PrivateTest figures: not available. No test image comes from FER2013's {PRIVATE_TEST} (the test images' `usage`: {}), so the figure papers report cannot be given for this data.",
                if seen.is_empty() {
                    "none".to_string()
                } else {
                    seen.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
                }
            ))
        }
        _ => None,
    };

    // The headline.
    if let Some(b) = f.best.map(|i| &f.models[i]) {
        let m = b.model;
        let mut figs = vec![
            (
                "Best on validation macro F1".into(),
                m.display.clone(),
                format!(
                    "macro F1 {:.3} on the validation images, of {} seven-class models",
                    b.val_macro_f1,
                    f.models.len()
                ),
            ),
            (
                "Test accuracy, seven emotions".into(),
                pct(b.test.accuracy.value),
                format!(
                    "{conf} interval {:.1}–{:.1}% on {} images",
                    b.test.accuracy.lo * 100.0,
                    b.test.accuracy.hi * 100.0,
                    thousands(b.test.n as u64)
                ),
            ),
            (
                "Test macro F1".into(),
                format!("{:.3}", b.test.macro_f1.value),
                format!(
                    "{conf} interval {:.3}–{:.3}",
                    b.test.macro_f1.lo, b.test.macro_f1.hi
                ),
            ),
        ];
        figs.push(match &b.private {
            Some(p) => (
                format!("{PRIVATE_TEST} accuracy"),
                pct(p.accuracy.value),
                format!(
                    "{conf} interval {:.1}–{:.1}% on {} images; macro F1 {:.3}",
                    p.accuracy.lo * 100.0,
                    p.accuracy.hi * 100.0,
                    thousands(p.n as u64),
                    p.macro_f1.value
                ),
            ),
            None => (
                format!("{PRIVATE_TEST} accuracy"),
                "not available".into(),
                "no PrivateTest image in this test split".into(),
            ),
        });
        cx.doc.blocks.push(Block::Figures(figs));
        let mut text = format!(
            "**{}** has the best macro F1 on the validation images ({:.3}). On the {} test images it puts {} of the faces in the right emotion ({conf} interval {:.1}–{:.1}%), with macro F1 {}.",
            m.display,
            b.val_macro_f1,
            thousands(b.test.n as u64),
            pct(b.test.accuracy.value),
            b.test.accuracy.lo * 100.0,
            b.test.accuracy.hi * 100.0,
            f1_ci(&b.test.macro_f1),
        );
        if let Some(p) = &b.private {
            text += &format!(
                " On the {} {PRIVATE_TEST} images alone, the split papers report, it scores {} accuracy and macro F1 {}.",
                thousands(p.n as u64),
                acc_ci(&p.accuracy),
                f1_ci(&p.macro_f1)
            );
        }
        cx.doc.p(text);
    }

    cx.doc.h3("Every seven-class model");
    let rows: Vec<Vec<String>> = f
        .models
        .iter()
        .map(|s| {
            let na = || "not available".to_string();
            vec![
                format!("**{}**", s.model.display),
                format!("{:.3}", s.val_macro_f1),
                acc_ci(&s.test.accuracy),
                f1_ci(&s.test.macro_f1),
                s.private.as_ref().map_or_else(na, |p| acc_ci(&p.accuracy)),
                s.private.as_ref().map_or_else(na, |p| f1_ci(&p.macro_f1)),
            ]
        })
        .collect();
    cx.doc.table(
        &[
            "Model",
            "Validation macro F1",
            &format!("Test accuracy ({conf} CI)"),
            &format!("Test macro F1 ({conf} CI)"),
            &format!("{PRIVATE_TEST} accuracy ({conf} CI)"),
            &format!("{PRIVATE_TEST} macro F1 ({conf} CI)"),
        ],
        rows,
    );
    match &private_words {
        Some(w) => cx.doc.p(w.clone()),
        None => cx.doc.p(format!(
            "{} of the test images come from FER2013's {PRIVATE_TEST} (found by id in ingest's `images.parquet`); the {PRIVATE_TEST} columns score those alone.",
            thousands(f.private_n as u64)
        )),
    }

    // The anchors.
    cx.doc.h3("Against published seven-class figures");
    let mut rows: Vec<Vec<String>> = ANCHORS
        .iter()
        .map(|a| {
            vec![
                a.what.to_string(),
                match a.spread {
                    Some(s) => format!("{} ± {:.0}", pct(a.accuracy), s * 100.0),
                    None => pct(a.accuracy),
                },
                a.split.to_string(),
                a.source.to_string(),
            ]
        })
        .collect();
    if let Some(mj) = f.majority_test {
        rows.push(vec![
            "Always the most frequent emotion".into(),
            pct(mj),
            "this test split".into(),
            "computed here".into(),
        ]);
    }
    if let Some(b) = f.best.map(|i| &f.models[i]) {
        rows.push(match &b.private {
            Some(p) => vec![
                format!("This pipeline's best ({})", b.model.display),
                acc_ci(&p.accuracy),
                PRIVATE_TEST.into(),
                "this report".into(),
            ],
            None => vec![
                format!("This pipeline's best ({})", b.model.display),
                acc_ci(&b.test.accuracy),
                "this test split (no PrivateTest image)".into(),
                "this report".into(),
            ],
        });
    }
    cx.doc.table(&["", "Accuracy", "On", "Source"], rows);
    cx.doc.p("The anchors are accuracies over the seven emotions from the literature, report defaults: people agree with FER2013's labels on about 65% of faces, and the best published single networks reach about 73% on PrivateTest. A model near the human figure is about as good as the labels allow; on other data (synthetic faces, a different sample) the comparison is indicative only.");
    let mut ci_rows: Vec<CiRow> = f
        .models
        .iter()
        .map(|s| CiRow {
            name: s.model.display.clone(),
            ci: s.test.accuracy,
            color: color_of(cx.study, s.model),
        })
        .collect();
    ci_rows.sort_by(|a, b| a.ci.value.total_cmp(&b.ci.value));
    let mut refs: Vec<(String, f64)> = ANCHORS
        .iter()
        .map(|a| (format!("{}: {}", a.short, pct(a.accuracy)), a.accuracy))
        .collect();
    if let Some(mj) = f.majority_test {
        refs.push((format!("majority: {}", pct(mj)), mj));
    }
    let p = cx.img_path("seven_accuracy.png")?;
    charts::accuracy_ci(
        &p,
        &format!("Seven emotions: test accuracy with {conf} bootstrap intervals"),
        &ci_rows,
        &refs,
    )?;
    cx.doc.image(
        "img/seven_accuracy.png",
        format!("Test accuracy over the seven emotions of every seven-class model; bars are {conf} bootstrap intervals, grey lines the published anchors and always answering the most frequent emotion."),
    );

    // Per model: per-class table and confusion matrix.
    cx.doc.h3("Per class and confusion matrices");
    cx.doc.p("Per class on the test images: precision (of the faces the model put in the class, the share that belong there), recall (of the faces of the class, the share it found), F1 and support (faces of the class). In the confusion matrices rows are the true emotion and columns the model's answer; counts in the table, shares of the row in the chart.");
    for s in &f.models {
        let m = s.model;
        let t = &s.test_metrics;
        cx.doc.h3(format!("{}: seven emotions", m.display));
        let mut rows: Vec<Vec<String>> = t
            .classes
            .iter()
            .map(|c| {
                vec![
                    class_words(&c.name),
                    format!("{:.3}", c.precision),
                    format!("{:.3}", c.recall),
                    format!("{:.3}", c.f1),
                    thousands(c.support),
                ]
            })
            .collect();
        rows.push(vec![
            "macro average".into(),
            format!("{:.3}", t.macro_avg.precision),
            format!("{:.3}", t.macro_avg.recall),
            format!("{:.3}", t.macro_avg.f1),
            thousands(t.n),
        ]);
        cx.doc
            .table(&["Class", "Precision", "Recall", "F1", "Support"], rows);
        let mut head: Vec<String> = vec!["True \\ said".into()];
        head.extend(names.iter().cloned());
        let rows: Vec<Vec<String>> = t
            .confusion
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut row = vec![names.get(i).cloned().unwrap_or_else(|| i.to_string())];
                row.extend(r.iter().map(|&v| thousands(v)));
                row
            })
            .collect();
        let h: Vec<&str> = head.iter().map(String::as_str).collect();
        cx.doc.table(&h, rows);
        let name = format!("confusion7_{}.png", slug(&m.key));
        let p = cx.img_path(&name)?;
        charts::confusions(
            &p,
            &[(m.display.clone(), t.confusion.clone())],
            &f.seven.classes,
        )?;
        cx.doc.image(
            format!("img/{name}"),
            format!(
                "{}: test confusion matrix over the seven emotions; rows are the true emotion, columns the model's answer; green cells are right, orange wrong; percentages are shares of the row.",
                m.display
            ),
        );
    }
    Ok(())
}
