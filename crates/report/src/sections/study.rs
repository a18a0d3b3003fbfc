//! The "Against the original study" section: the study's published figures beside this
//! pipeline's.

use super::{Ctx, f2, opt, pct, pct_ci, thousands};
use crate::doc::Tone;
use crate::load::{Family, ModelRun};
use crate::recommend::Rec;
use crate::stats::Ci;
use fer_core::classes::{HAPPY, NOT_HAPPY, is_happy};
use std::collections::BTreeMap;

pub(super) fn against_study(
    cx: &mut Ctx,
    cis: &BTreeMap<String, Ci>,
    rec: Option<&Rec>,
    best_svm: Option<&ModelRun>,
) {
    cx.doc.h2("Against the original study");
    let st = &cx.rp.study;
    let s = cx.study;
    let counts = s.stage("ingest").map(|m| m.summary["counts"].clone());
    let protocol_seed = s
        .stage("ingest")
        .map(|m| m.params["protocol"].get("seed").is_some() || m.params["protocol"] == "seed");
    match protocol_seed {
        Some(true) => cx.doc.p(
            "This pipeline uses the study's protocol: the same number of happy and not-happy images drawn from FER2013's train and test folders.",
        ),
        Some(false) => cx.doc.note(
            Tone::Warn,
            "This pipeline does **not** use the study's protocol (its sample sizes differ), so the comparison below is indicative only.",
        ),
        None => {}
    }
    cx.happy_vs_rest_note();
    let seven = s.seven.as_ref();
    let c = |split: &str, class: &str| -> Option<u64> {
        let counts = counts.as_ref()?;
        match seven {
            // Seven classes: not happy is the six other emotions together.
            Some(sv) if class == NOT_HAPPY => sv
                .classes
                .iter()
                .filter(|n| !is_happy(n))
                .map(|n| counts[split][n].as_u64())
                .sum(),
            _ => counts[split][class].as_u64(),
        }
    };
    let pair = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => format!("{} / {}", thousands(a), thousands(b)),
        _ => "–".into(),
    };
    let add = |a: Option<u64>, b: Option<u64>| a.zip(b).map(|(a, b)| a + b);
    let mut rows = vec![
        vec![
            "Training images, happy / not happy".into(),
            pair(Some(st.train_happy), Some(st.train_not_happy)),
            pair(
                add(c("train", HAPPY), c("val", HAPPY)),
                add(c("train", NOT_HAPPY), c("val", NOT_HAPPY)),
            ),
        ],
        vec![
            "Test images, happy / not happy".into(),
            pair(Some(st.test_happy), Some(st.test_not_happy)),
            pair(c("test", HAPPY), c("test", NOT_HAPPY)),
        ],
    ];
    let ms = |class: &str| -> String {
        if let (Some(sv), NOT_HAPPY) = (seven, class) {
            return pooled_not_happy(s.stats.as_ref(), &sv.classes).unwrap_or_else(|| "–".into());
        }
        s.stats
            .as_ref()
            .and_then(|v| v["mean_std"].as_array())
            .and_then(|a| {
                a.iter()
                    .find(|r| r["split"] == "train+val" && r["class"] == class)
                    .map(|r| {
                        format!(
                            "{} ± {}",
                            f2(r["mean"].as_f64().unwrap_or(f64::NAN)),
                            f2(r["std"].as_f64().unwrap_or(f64::NAN))
                        )
                    })
            })
            .unwrap_or_else(|| "–".into())
    };
    rows.push(vec![
        "Pixel mean ± std, happy (training images)".into(),
        format!("{} ± {}", f2(st.mean_happy), f2(st.std_happy)),
        ms(HAPPY),
    ]);
    rows.push(vec![
        "Pixel mean ± std, not happy (training images)".into(),
        format!("{} ± {}", f2(st.mean_not_happy), f2(st.std_not_happy)),
        ms(NOT_HAPPY),
    ]);
    let by_arch = |arch: &str| {
        s.models
            .iter()
            .find(|m| m.family == Family::Cnn && m.key == format!("cnn:{arch}"))
    };
    let base = by_arch("seed-base");
    // Seven classes: the training curves are over the seven emotions, not comparable.
    let epoch_acc = |x: f64| {
        if seven.is_some() {
            format!("{} over seven emotions (not comparable)", pct(x))
        } else {
            pct(x)
        }
    };
    rows.push(vec![
        "Base CNN, training accuracy (last epoch)".into(),
        pct(st.base_train_acc),
        opt(
            base.and_then(|b| b.epochs.last().map(|e| e.train_acc).or(b.final_train_acc)),
            epoch_acc,
        ),
    ]);
    rows.push(vec![
        "Base CNN, validation accuracy (last epoch)".into(),
        pct(st.base_val_acc),
        opt(
            base.and_then(|b| b.epochs.last().map(|e| e.val_acc)),
            epoch_acc,
        ),
    ]);
    rows.push(vec![
        "Base CNN, test accuracy".into(),
        "not reported".into(),
        opt(base.map(|b| &cis[&b.key]), pct_ci),
    ]);
    let tuned = by_arch("seed-tuned");
    rows.push(vec![
        "Tuned CNN, parameters".into(),
        thousands(st.tuned_params),
        tuned.map_or("not trained in this pipeline".into(), |t| {
            opt(t.params, thousands)
        }),
    ]);
    rows.push(vec![
        "Tuned CNN, test accuracy".into(),
        pct(st.tuned_test_acc),
        tuned.map_or("not trained in this pipeline".into(), |t| {
            pct_ci(&cis[&t.key])
        }),
    ]);
    if let Some(t) = s.model("tune:best") {
        rows.push(vec![
            "Our tuner's winner, test accuracy".into(),
            "–".into(),
            pct_ci(&cis[&t.key]),
        ]);
    }
    rows.push(vec![
        "SVM, test accuracy".into(),
        "never reported".into(),
        best_svm.map_or("not run".into(), |m| {
            format!("{} ({})", pct_ci(&cis[&m.key]), m.display)
        }),
    ]);
    if let Some(r) = rec {
        rows.push(vec![
            "Recommended model, test accuracy".into(),
            format!("{} (tuned CNN)", pct(st.tuned_test_acc)),
            format!("{} ({})", pct_ci(&cis[&r.model.key]), r.model.display),
        ]);
    }
    rows.push(vec![
        "Uncertainty stated".into(),
        "none".into(),
        format!(
            "{:.0}% bootstrap intervals ({} resamples), McNemar's test",
            cx.rp.confidence * 100.0,
            thousands(cx.rp.bootstrap as u64)
        ),
    ]);
    cx.doc.table(&["", "The study", "This pipeline"], rows);
    cx.doc.p(format!(
        "Accuracies of this pipeline are followed by their {:.0}% bootstrap confidence interval in brackets. The study's figures are its published ones (`[report.study]` in the pipeline file).",
        cx.rp.confidence * 100.0
    ));
    cx.doc.p(format!(
        "The study's pixel statistics are those of its own sample ({} happy and {} not-happy training images). Its not-happy mean ({}) is darker than a uniform draw from FER2013's six other emotions gives: their training images average about 129.5 (129.49 ± 65.59 over the whole training folder), and the mean of a uniform draw of 2,022 of them varies by about 0.7 (one standard deviation: the images' own means spread by about 34), so the study's not-happy sample, some nine standard deviations darker, was not a uniform draw. Ours is one (a seeded shuffle of all not-happy training images), so on real data our not-happy mean sits near 129.5.",
        thousands(st.train_happy),
        thousands(st.train_not_happy),
        f2(st.mean_not_happy)
    ));
}

/// The pixel mean ± std of the six emotions other than happy pooled (stats' `train+val` rows
/// of each emotion: images, mean, std), for a seven-class pipeline's "not happy".
fn pooled_not_happy(stats: Option<&serde_json::Value>, classes: &[String]) -> Option<String> {
    let rows = stats?["mean_std"].as_array()?;
    let (mut n, mut sum, mut sq) = (0.0, 0.0, 0.0);
    for class in classes.iter().filter(|c| !is_happy(c)) {
        let r = rows
            .iter()
            .find(|r| r["split"] == "train+val" && r["class"] == class.as_str())?;
        let (k, m, sd) = (
            r["images"].as_f64()?,
            r["mean"].as_f64()?,
            r["std"].as_f64()?,
        );
        n += k;
        sum += k * m;
        sq += k * (sd * sd + m * m);
    }
    if n == 0.0 {
        return None;
    }
    let mean = sum / n;
    let std = (sq / n - mean * mean).max(0.0).sqrt();
    Some(format!("{} ± {}", f2(mean), f2(std)))
}
