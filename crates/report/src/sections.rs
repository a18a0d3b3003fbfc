//! The report's sections, built from a [`Study`]: every number in the text is formatted from
//! a value read from the artifacts (or a `[report]` param, such as the study's published
//! figures).

use crate::charts::{self, CiRow};
use crate::doc::{Block, Doc, Tone};
use crate::load::{Family, ModelRun, Pred, Study, make_target};
use crate::stats::{self, AlertStats, Ci, McNemar, ThresholdRule};
use crate::{ReportError, ReportParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

pub struct Built {
    pub doc: Doc,
    /// Files written into the report folder (relative paths).
    pub files: Vec<String>,
    pub recommendation: Option<Value>,
    pub metrics: Value,
    /// Sections whose stage has not run.
    pub not_run: Vec<String>,
}

// ---- formatting ------------------------------------------------------------------------

pub fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1}%", x * 100.0)
    } else {
        "n/a".into()
    }
}

fn pct_ci(c: &Ci) -> String {
    format!("{} ({:.1}–{:.1})", pct(c.value), c.lo * 100.0, c.hi * 100.0)
}

pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.0} kB", b / 1e3)
    } else {
        format!("{b:.0} B")
    }
}

fn secs(s: f64) -> String {
    if s >= 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s >= 120.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{s:.1} s")
    }
}

/// `1 image`, `2 images`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

fn p_value(p: f64) -> String {
    if p < 1e-4 {
        "< 0.0001".into()
    } else {
        format!("= {p:.4}")
    }
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "–".into())
}

fn f2(x: f64) -> String {
    format!("{x:.2}")
}

fn class_words(c: &str) -> String {
    c.replace('_', " ")
}

// ---- the numbers -------------------------------------------------------------------------

fn right(preds: &[Pred]) -> Vec<bool> {
    preds.iter().map(|p| p.pred == p.label).collect()
}

fn acc_ci(m: &ModelRun, rp: &ReportParams) -> Ci {
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
fn best_by_val<'a>(ms: impl Iterator<Item = &'a ModelRun>) -> Option<&'a ModelRun> {
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

fn color_of(study: &Study, m: &ModelRun) -> plotters::style::RGBColor {
    let i = study
        .models
        .iter()
        .filter(|x| x.family == m.family)
        .position(|x| x.key == m.key)
        .unwrap_or(0);
    charts::model_color(i, m.family == Family::Svm)
}

struct Ctx<'a> {
    study: &'a Study,
    rp: &'a ReportParams,
    dir: &'a Path,
    doc: Doc,
    files: Vec<String>,
    not_run: Vec<String>,
}

impl Ctx<'_> {
    fn ran(&self, stage: &str) -> bool {
        self.study.stage(stage).is_some()
    }
    fn img_path(&mut self, name: &str) -> Result<std::path::PathBuf, ReportError> {
        let d = self.dir.join("img");
        std::fs::create_dir_all(&d).map_err(|e| fer_core::Error::io(&d, e))?;
        self.files.push(format!("img/{name}"));
        Ok(d.join(name))
    }
    /// Copy an upstream picture into `img/` and show it.
    fn copy_image(&mut self, stage: &str, file: &str, caption: &str) -> Result<(), ReportError> {
        let src = self.study.stage_dir(stage).join(file);
        if !src.exists() {
            return Ok(());
        }
        let name = format!("{stage}_{file}");
        let dst = self.img_path(&name)?;
        std::fs::copy(&src, &dst).map_err(|e| fer_core::Error::io(&src, e))?;
        self.doc.image(format!("img/{name}"), caption);
        Ok(())
    }
    fn not_run(&mut self, what: &str, stage: &str) {
        self.not_run.push(what.to_string());
        let target = make_target(stage).to_string();
        self.doc.not_run(what, &target, &self.study.pipeline);
    }
}

/// Everything the recommendation says, computed once.
struct Rec<'a> {
    model: &'a ModelRun,
    threshold: f64,
    rule: ThresholdRule,
    val: AlertStats,
    test: AlertStats,
    test_default: AlertStats,
    precision_ci: Ci,
    recall_ci: Ci,
}

fn recommend<'a>(study: &'a Study, rp: &ReportParams) -> Option<Rec<'a>> {
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

fn short_name(m: &ModelRun) -> String {
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

fn rel_dir(study: &Study, m: &ModelRun) -> String {
    m.dir
        .strip_prefix(&study.root)
        .unwrap_or(&m.dir)
        .to_string_lossy()
        .to_string()
}

pub fn build(
    study: &Study,
    rp: &ReportParams,
    artifacts: &Path,
    dir: &Path,
) -> Result<Built, ReportError> {
    let mut cx = Ctx {
        study,
        rp,
        dir,
        doc: Doc::default(),
        files: Vec::new(),
        not_run: Vec::new(),
    };
    let cis: BTreeMap<String, Ci> = study
        .models
        .iter()
        .map(|m| (m.key.clone(), acc_ci(m, rp)))
        .collect();
    let best_svm = best_by_val(study.models.iter().filter(|m| m.family == Family::Svm));
    let best_cnn = best_by_val(study.models.iter().filter(|m| m.family == Family::Cnn));
    let mcn = match (best_svm, best_cnn) {
        (Some(s), Some(c)) if s.test_preds.len() == c.test_preds.len() => {
            Some(stats::mcnemar(&right(&c.test_preds), &right(&s.test_preds)))
        }
        _ => None,
    };
    let rec = recommend(study, rp);

    title(&mut cx);
    recommendation(
        &mut cx,
        rec.as_ref(),
        &cis,
        best_svm,
        best_cnn,
        mcn.as_ref(),
    );
    against_study(&mut cx, &cis, rec.as_ref(), best_svm);
    data(&mut cx)?;
    preparation(&mut cx)?;
    models(&mut cx, &cis, best_svm, best_cnn, mcn.as_ref())?;
    learning(&mut cx)?;
    tuning(&mut cx)?;
    mistakes(&mut cx, rec.as_ref())?;
    provenance(&mut cx);

    let recommendation = rec.as_ref().map(|r| {
        let ci = &cis[&r.model.key];
        json!({
            "model": short_name(r.model),
            "display": r.model.display,
            "family": match r.model.family { Family::Svm => "svm", Family::Cnn => "cnn" },
            "model_dir": model_dir(artifacts, study, r.model),
            "svm_model": r.model.svm_name,
            "score": r.model.score_name,
            "threshold": r.threshold,
            "rule": format!("alert \"not happy\" when {} < threshold", r.model.score_name),
            "threshold_chosen_on": "validation",
            "threshold_rule": r.rule,
            "target_not_happy_precision": rp.alert_precision,
            "expected_not_happy_precision": r.test.precision,
            "expected_not_happy_precision_ci": [r.precision_ci.lo, r.precision_ci.hi],
            "expected_not_happy_recall": r.test.recall,
            "expected_not_happy_recall_ci": [r.recall_ci.lo, r.recall_ci.hi],
            "confidence": rp.confidence,
            "validation": r.val,
            "test": r.test,
            "test_at_default_threshold": r.test_default,
            "chosen_by": "validation accuracy",
            "val_accuracy": r.model.val.accuracy,
            "test_accuracy": r.model.test.accuracy,
            "test_accuracy_ci": [ci.lo, ci.hi],
        })
    });
    let mut metrics = crate::diff::metrics_json(study, Some(&cis));
    if let Some(m) = &mcn {
        metrics["mcnemar"] = json!({
            "a": best_cnn.map(|m| m.key.clone()),
            "b": best_svm.map(|m| m.key.clone()),
            "only_a_right": m.only_a,
            "only_b_right": m.only_b,
            "p_value": m.p_value,
        });
    }
    if let Some(r) = &recommendation {
        metrics["recommendation"] = json!({
            "model": r["model"],
            "threshold": r["threshold"],
            "expected_not_happy_precision": r["expected_not_happy_precision"],
            "expected_not_happy_recall": r["expected_not_happy_recall"],
        });
    }
    Ok(Built {
        doc: cx.doc,
        files: cx.files,
        recommendation,
        metrics,
        not_run: cx.not_run,
    })
}

// ---- sections ------------------------------------------------------------------------------

fn title(cx: &mut Ctx) {
    let s = cx.study;
    cx.doc.title = "Happy or not happy? SVM versus CNN on FER2013 faces".into();
    let mut sub = vec![format!("Pipeline `{}`", s.pipeline)];
    if let Some(m) = s.stage("ingest") {
        if let Some(src) = m.summary["source"].as_str() {
            sub.push(format!("data: {src}"));
        }
        if let Some(n) = m.summary["rows"].as_u64() {
            sub.push(format!("{} images", thousands(n)));
        }
    }
    sub.push(format!("{} trained models", s.models.len()));
    cx.doc.subtitle = sub.join(" · ");
}

fn recommendation(
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
                "highest validation accuracy of {} models",
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
    let mut text = format!(
        "Deploy **{}**. Of the {} trained models it had the highest accuracy on the {} validation images ({}), and on the {} test images it never saw while being chosen it was right **{}** of the time ({conf} confidence interval {:.1}–{:.1}%).",
        m.display,
        cx.study.models.len(),
        thousands(m.val_preds.len() as u64),
        pct(m.val.accuracy),
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
    let rule = match r.rule {
        ThresholdRule::PrecisionTarget => format!(
            "the threshold flags as many unhappy faces as possible while at least {} of the validation alerts are right",
            pct(cx.rp.alert_precision)
        ),
        ThresholdRule::BalancedAccuracy => format!(
            "no threshold reached {} alert precision on validation, so the threshold with the best balanced accuracy was taken",
            pct(cx.rp.alert_precision)
        ),
    };
    cx.doc.p(format!(
        "**Alert rule:** raise a \"not happy\" alert when {score_words} (`{}`) is below **{:.3}**. It was chosen on the validation images only ({rule}: there, {} of alerts were right and {} of the unhappy faces were flagged). On the test images, {} of the {} alerts were right ({conf} interval {:.1}–{:.1}%) and {} of the unhappy faces were flagged ({conf} interval {:.1}–{:.1}%). With the model's plain decision ({} = {}), alert precision would be {} and {} of unhappy faces would be flagged.",
        m.score_name,
        r.threshold,
        pct(r.val.precision),
        pct(r.val.recall),
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

fn against_study(
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
    let c = |split: &str, class: &str| -> Option<u64> {
        counts.as_ref().and_then(|c| c[split][class].as_u64())
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
                add(c("train", "happy"), c("val", "happy")),
                add(c("train", "not_happy"), c("val", "not_happy")),
            ),
        ],
        vec![
            "Test images, happy / not happy".into(),
            pair(Some(st.test_happy), Some(st.test_not_happy)),
            pair(c("test", "happy"), c("test", "not_happy")),
        ],
    ];
    let ms = |class: &str| -> String {
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
        ms("happy"),
    ]);
    rows.push(vec![
        "Pixel mean ± std, not happy (training images)".into(),
        format!("{} ± {}", f2(st.mean_not_happy), f2(st.std_not_happy)),
        ms("not_happy"),
    ]);
    let by_arch = |arch: &str| {
        s.models
            .iter()
            .find(|m| m.family == Family::Cnn && m.key == format!("cnn:{arch}"))
    };
    let base = by_arch("seed-base");
    rows.push(vec![
        "Base CNN, training accuracy (last epoch)".into(),
        pct(st.base_train_acc),
        opt(
            base.and_then(|b| b.epochs.last().map(|e| e.train_acc).or(b.final_train_acc)),
            pct,
        ),
    ]);
    rows.push(vec![
        "Base CNN, validation accuracy (last epoch)".into(),
        pct(st.base_val_acc),
        opt(base.and_then(|b| b.epochs.last().map(|e| e.val_acc)), pct),
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
}

fn data(cx: &mut Ctx) -> Result<(), ReportError> {
    cx.doc.h2("The data");
    let s = cx.study;
    match s.stage("ingest") {
        Some(m) => {
            let counts = &m.summary["counts"];
            let classes = s.class_names.clone();
            let mut head: Vec<String> = vec!["Split".into()];
            head.extend(classes.iter().map(|c| class_words(c)));
            head.push("Total".into());
            let mut rows = Vec::new();
            let mut totals = vec![0u64; classes.len() + 1];
            for split in ["train", "val", "test"] {
                let mut row = vec![split.to_string()];
                let mut sum = 0;
                for (i, c) in classes.iter().enumerate() {
                    let n = counts[split][c].as_u64().unwrap_or(0);
                    sum += n;
                    totals[i] += n;
                    row.push(thousands(n));
                }
                totals[classes.len()] += sum;
                row.push(thousands(sum));
                rows.push(row);
            }
            let mut t = vec!["all".to_string()];
            t.extend(totals.iter().map(|n| thousands(*n)));
            rows.push(t);
            cx.doc.p(format!(
                "Images per split and class. Validation images are carved from FER2013's training folder and are used to choose models and thresholds; test images are only scored. Source: {}{}.",
                m.summary["source"].as_str().unwrap_or("?"),
                m.summary["rejected"]
                    .as_u64()
                    .filter(|r| *r > 0)
                    .map_or(String::new(), |r| format!(", {} files rejected", thousands(r)))
            ));
            let h: Vec<&str> = head.iter().map(String::as_str).collect();
            cx.doc.table(&h, rows);
        }
        None => cx.not_run("The counts per split and class", "ingest"),
    }
    let Some(stats) = s.stats.clone() else {
        cx.not_run("The mean/std table, sample faces and data audit", "stats");
        return Ok(());
    };
    cx.doc
        .h3("Pixel mean and standard deviation (the study's table)");
    let st = &cx.rp.study;
    let mut rows = Vec::new();
    for r in stats["mean_std"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let class = r["class"].as_str().unwrap_or("");
        if class.starts_with("emotion:") {
            continue;
        }
        let split = r["split"].as_str().unwrap_or("");
        let study = match (split, class) {
            ("train+val", "happy") => format!("{} / {}", f2(st.mean_happy), f2(st.std_happy)),
            ("train+val", "not_happy") => {
                format!("{} / {}", f2(st.mean_not_happy), f2(st.std_not_happy))
            }
            _ => String::new(),
        };
        rows.push(vec![
            if split == "train+val" {
                "train + val (FER2013 train)".into()
            } else {
                split.to_string()
            },
            class_words(class),
            thousands(r["images"].as_u64().unwrap_or(0)),
            f2(r["mean"].as_f64().unwrap_or(f64::NAN)),
            f2(r["std"].as_f64().unwrap_or(f64::NAN)),
            study,
        ]);
    }
    cx.doc.table(
        &[
            "Split",
            "Class",
            "Images",
            "Mean",
            "Std",
            "Study mean / std",
        ],
        rows,
    );
    cx.doc.p("Pixel values are 0–255, all pixels of a group pooled. Happy and not-happy faces have almost the same brightness and contrast, so a model cannot tell them apart from overall intensity alone.");
    cx.doc.h3("Sample faces");
    for split in ["train", "val", "test"] {
        cx.copy_image(
            "stats",
            &format!("samples_{split}.png"),
            &format!("Random {split} images per class (seeded)."),
        )?;
    }
    cx.copy_image(
        "stats",
        "histograms.png",
        "Pixel intensity histograms per split and class.",
    )?;
    cx.doc.h3("Data-quality audit");
    let a = &stats["audit"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let mut items = vec![
        format!(
            "**{}** of exact duplicate images and **{}** ({}).",
            count(n(&a["exact_pairs"]), "pair", "pairs"),
            count(
                n(&a["near_pairs"]),
                "near-duplicate pair",
                "near-duplicate pairs"
            ),
            a["method"].as_str().unwrap_or("perceptual hash")
        ),
        format!(
            "**{}** a twin among the training images ({} with a different label).",
            count(
                n(&a["test_with_train_twin"]),
                "test image has",
                "test images have"
            ),
            thousands(n(&a["test_with_train_twin_label_conflicts"]))
        ),
        format!(
            "**{}** (pixel std below {}).",
            count(
                n(&a["blank"]["count"]),
                "blank or near-constant image",
                "blank or near-constant images"
            ),
            a["blank"]["threshold_std"]
        ),
    ];
    if let Some(scopes) = a["by_scope"].as_object() {
        for (scope, v) in scopes {
            items.push(format!(
                "{scope}: {} exact, {} near, {} with conflicting labels.",
                thousands(n(&v["exact_pairs"])),
                thousands(n(&v["near_pairs"])),
                thousands(n(&v["label_conflicts"]))
            ));
        }
    }
    cx.doc.list(items);
    if n(&a["exact_pairs"]) + n(&a["near_pairs"]) > 0 {
        cx.copy_image(
            "stats",
            "duplicates.png",
            "Duplicate pairs found across splits, side by side.",
        )?;
    }
    if n(&a["blank"]["count"]) > 0 {
        cx.copy_image("stats", "blank.png", "Blank or near-constant images.")?;
    }
    Ok(())
}

fn op_words(op: &Value) -> String {
    let Some(o) = op.as_object() else {
        return String::new();
    };
    o.iter()
        .filter(|(k, _)| *k != "kind")
        .map(|(k, v)| {
            let v = v.as_f64().map_or(v.to_string(), |x| {
                format!("{}", (x * 1000.0).round() / 1000.0)
            });
            format!("{} {v}", k.replace('_', " "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn preparation(cx: &mut Ctx) -> Result<(), ReportError> {
    cx.doc.h2("Preparation");
    match cx.study.transform.clone() {
        Some(t) => {
            let norm = &t["normalization"];
            let norm_words = match norm["kind"].as_str() {
                Some("standardize") => format!(
                    "standardize with the training images' mean {} and std {} (pixels as 0–1)",
                    norm["mean"]
                        .as_f64()
                        .map_or("?".into(), |x| format!("{x:.4}")),
                    norm["std"]
                        .as_f64()
                        .map_or("?".into(), |x| format!("{x:.4}"))
                ),
                Some("unit") => "scale to 0–1".into(),
                Some("symmetric") => "scale to −1–1".into(),
                Some(k) => k.to_string(),
                None => "?".into(),
            };
            let den = &t["denoise"];
            let den_words = match den["kind"].as_str() {
                Some("none") | None => "none".to_string(),
                Some(k) => format!("{k} ({})", op_words(den)),
            };
            cx.doc.table(
                &["Option", "Value"],
                vec![
                    vec!["Image size".into(), format!("{0}×{0} pixels", t["size"])],
                    vec![
                        "Resize filter".into(),
                        t["resize_filter"].as_str().unwrap_or("?").into(),
                    ],
                    vec!["Denoising".into(), den_words],
                    vec![
                        "Histogram equalization".into(),
                        t["equalize"].as_str().unwrap_or("?").into(),
                    ],
                    vec!["Normalization".into(), norm_words],
                ],
            );
        }
        None => cx.not_run("The preprocessing options", "preprocess"),
    }
    cx.doc.h3("Augmentation");
    match cx.study.chain.clone() {
        Some(ch) => {
            let rows: Vec<Vec<String>> = ch["steps"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .enumerate()
                .map(|(i, st)| {
                    vec![
                        format!("{}. {}", i + 1, st["op"]["kind"].as_str().unwrap_or("?")),
                        pct(st["p"].as_f64().unwrap_or(1.0)),
                        op_words(&st["op"]),
                    ]
                })
                .collect();
            cx.doc.p("Training images are randomly altered, step by step, so the CNN sees a slightly different face every epoch (each step applies with its probability):");
            cx.doc.table(&["Step", "Probability", "Settings"], rows);
            cx.copy_image(
                "augment",
                "preview.png",
                "Originals (left) beside augmented versions of the same faces.",
            )?;
        }
        None => cx.not_run("The augmentation preview", "augment"),
    }
    Ok(())
}

fn models(
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
    if let Some(b) = s
        .svm_metrics
        .as_ref()
        .map(|m| &m["majority_baseline"]["test"])
        && let Some(b) = b.as_f64()
    {
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
    if let Some(b) = s
        .svm_metrics
        .as_ref()
        .and_then(|m| m["majority_baseline"]["test"].as_f64())
    {
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
                let pos: Vec<bool> = m.test_preds.iter().map(|p| p.label == 0).collect();
                let sc: Vec<f64> = m.test_preds.iter().map(|p| p.score).collect();
                let pts = fer_core::metrics::roc_curve(&pos, &sc)
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

fn learning(cx: &mut Ctx) -> Result<(), ReportError> {
    cx.doc.h2("Learning curves");
    let cnns: Vec<&ModelRun> = cx
        .study
        .models
        .iter()
        .filter(|m| m.family == Family::Cnn && !m.epochs.is_empty())
        .collect();
    if cnns.is_empty() {
        cx.not_run("The learning curves", "train_cnn");
        return Ok(());
    }
    cx.doc.p("Accuracy and loss on the training images (what the model learns from) and the validation images (faces it never trains on), epoch by epoch. When training accuracy keeps rising while validation accuracy stalls or falls, the model is memorising the training faces rather than learning what a smile looks like: it overfits. The kept checkpoint is the epoch with the lowest validation loss.");
    for m in cnns {
        let last = m.epochs.last().expect("non-empty");
        let peak = m
            .epochs
            .iter()
            .max_by(|a, b| a.val_acc.total_cmp(&b.val_acc))
            .expect("non-empty");
        let name = format!("learning_{}.png", crate::doc::slug(&short_name(m)));
        let p = cx.img_path(&name)?;
        charts::learning_curves(
            &p,
            &format!("{}: train versus validation", m.display),
            &m.epochs,
            m.best_epoch,
        )?;
        cx.doc.h3(m.display.clone());
        cx.doc.p(format!(
            "After {} epochs: training accuracy {}, validation accuracy {} (a gap of {:.1} points). Validation accuracy peaked at {} in epoch {}.",
            m.epochs.len(),
            pct(last.train_acc),
            pct(last.val_acc),
            (last.train_acc - last.val_acc) * 100.0,
            pct(peak.val_acc),
            peak.epoch
        ));
        cx.doc.image(
            format!("img/{name}"),
            format!("{}: accuracy (left) and loss (right) per epoch; the grey line marks the kept checkpoint.", m.display),
        );
    }
    Ok(())
}

fn tuning(cx: &mut Ctx) -> Result<(), ReportError> {
    cx.doc.h2("Tuning trials");
    let Some(t) = cx.study.tune.clone() else {
        cx.not_run("The hyperparameter search", "tune");
        return Ok(());
    };
    let sm = &t.summary;
    let g = |k: &str| -> String {
        match &sm[k] {
            Value::Null => "–".into(),
            Value::String(s) => s.clone(),
            Value::Number(n) if n.is_f64() && k.contains("acc") => {
                pct(n.as_f64().unwrap_or(f64::NAN))
            }
            Value::Number(n) if n.is_f64() && k.contains("seconds") => {
                secs(n.as_f64().unwrap_or(0.0))
            }
            v => v.to_string(),
        }
    };
    let budget = match &sm["budget"] {
        Value::Null => "–".to_string(),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{} {v}", k.replace('_', " ")))
            .collect::<Vec<_>>()
            .join(", "),
        v => v.to_string(),
    };
    cx.doc.table(
        &["", "Value"],
        vec![
            vec!["Search strategy".into(), g("strategy")],
            vec!["Trials".into(), g("trials")],
            vec![
                "Configurations trained by the search".into(),
                g("searched_trials"),
            ],
            vec![
                "Completed / pruned / failed".into(),
                format!("{} / {} / {}", g("completed"), g("pruned"), g("failed")),
            ],
            vec!["Best trial".into(), g("best_trial")],
            vec!["Best validation accuracy".into(), g("best_val_acc")],
            vec!["Search time".into(), g("seconds")],
            vec!["Budget".into(), budget],
        ],
    );
    if let Some(from) = sm["incumbent_reused_from"].as_str() {
        cx.doc.p(format!(
            "Trial 0 is the untuned model's own configuration, the incumbent every searched \
             configuration has to beat. It was not trained again: its validation figures per \
             rung and, if it wins, its model are taken from `{from}`."
        ));
    }
    if t.trials.is_empty() {
        cx.doc
            .note(Tone::Warn, "`tune/trials.parquet` lists no trial.");
        return Ok(());
    }
    let pts: Vec<(u32, f64, String)> = t
        .trials
        .iter()
        .map(|x| (x.trial, x.val_acc, x.status.clone()))
        .collect();
    let p = cx.img_path("trials.png")?;
    charts::trials(&p, &pts)?;
    cx.doc.image(
        "img/trials.png",
        "Each dot is one trial's best validation accuracy; pruned trials were stopped early because they trailed; the line is the best so far.",
    );
    let mut sorted = t.trials.clone();
    sorted.sort_by(|a, b| b.val_acc.total_cmp(&a.val_acc).then(a.trial.cmp(&b.trial)));
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|x| {
            vec![
                x.trial.to_string(),
                x.status.clone(),
                pct(x.val_acc),
                format!("{:.3}", x.val_loss),
                x.epochs_run.to_string(),
                secs(x.seconds),
                x.error.clone().map_or_else(
                    || format!("`{}`", x.params),
                    |e| format!("`{}` (error: {e})", x.params),
                ),
            ]
        })
        .collect();
    cx.doc.p("Every trial, best first:");
    cx.doc.table(
        &[
            "Trial",
            "Status",
            "Validation accuracy",
            "Validation loss",
            "Epochs",
            "Time",
            "Hyperparameters",
        ],
        rows,
    );
    Ok(())
}

fn mistakes(cx: &mut Ctx, rec: Option<&Rec>) -> Result<(), ReportError> {
    cx.doc.h2("Most confident mistakes");
    let Some(r) = rec else {
        cx.doc.note(
            Tone::NotRun,
            "**Not run.** There is no recommended model to show mistakes of.",
        );
        return Ok(());
    };
    if cx.rp.gallery == 0 {
        cx.doc
            .p("The gallery is turned off (`gallery = 0` in `[report]`).");
        return Ok(());
    }
    if !cx.ran("ingest") {
        cx.not_run("The gallery of faces", "ingest");
        return Ok(());
    }
    let m = r.model;
    let mut wrong: Vec<&Pred> = m.test_preds.iter().filter(|p| p.pred != p.label).collect();
    let conf = |p: &Pred| (p.score - m.default_threshold).abs();
    wrong.sort_by(|a, b| conf(b).total_cmp(&conf(a)).then(a.row.cmp(&b.row)));
    wrong.truncate(cx.rp.gallery);
    if wrong.is_empty() {
        cx.doc
            .p(format!("{} made no mistake on the test images.", m.display));
        return Ok(());
    }
    let path = cx.study.stage_dir("ingest").join("images.parquet");
    let ds = fer_core::dataset::ImageDataset::read_parquet(&path).map_err(|e| {
        ReportError::Artifact {
            path: path.clone(),
            message: e.to_string(),
            target: Some("ingest".into()),
        }
    })?;
    let by_id: BTreeMap<&str, &fer_core::dataset::ImageRecord> =
        ds.records.iter().map(|r| (r.id.as_str(), r)).collect();
    let names = &cx.study.class_names;
    let mut items = Vec::new();
    let mut rows = Vec::new();
    for p in &wrong {
        let Some(rec) = by_id.get(p.id.as_str()) else {
            continue;
        };
        let truth = names
            .get(p.label as usize)
            .map_or("?".into(), |c| class_words(c));
        let said = names
            .get(p.pred as usize)
            .map_or("?".into(), |c| class_words(c));
        let score = match m.family {
            Family::Cnn => format!("p(happy) = {:.2}", p.score),
            Family::Svm => format!("decision = {:+.2}", p.score),
        };
        items.push((
            rec.pixels.clone(),
            format!("truly {truth}"),
            format!("said {said} · {score}"),
        ));
        rows.push(vec![
            format!("`{}`", p.id),
            truth,
            rec.emotion.as_str().to_string(),
            said,
            score,
        ]);
    }
    if items.is_empty() {
        cx.doc.note(
            Tone::Warn,
            "The mistaken test images are not in `ingest/images.parquet` (rerun `make ingest`).",
        );
        return Ok(());
    }
    let p = cx.img_path("mistakes.png")?;
    charts::gallery(&p, &items, ds.side as u32)?;
    cx.doc.p(format!(
        "The {} test faces that {} got wrong with the most confidence. Some are genuinely ambiguous or mislabelled; others show what the model has not learned.",
        items.len(),
        m.display
    ));
    cx.doc.image(
        "img/mistakes.png",
        format!("{}: most confident mistakes on test.", m.display),
    );
    cx.doc.table(
        &[
            "Image",
            "True class",
            "FER2013 emotion",
            "Model said",
            "Score",
        ],
        rows,
    );
    Ok(())
}

fn provenance(cx: &mut Ctx) {
    cx.doc.h2("Where the numbers come from");
    cx.doc.p("Each stage of the pipeline wrote its outputs and a manifest (params, input and output hashes, code version). This report read the stages below; a stage marked \"not run\" left its section empty.");
    let rows: Vec<Vec<String>> = cx
        .study
        .stages
        .iter()
        .map(|st| match &st.manifest {
            Some(m) => vec![
                format!("`{}`", st.name),
                format!("{:?}", m.status).to_lowercase(),
                format!("`{}`", m.code_version),
                format!("`{}`", &m.signature[..m.signature.len().min(12)]),
                thousands(m.outputs.len() as u64),
                secs(m.computed_duration_s),
            ],
            None => vec![
                format!("`{}`", st.name),
                format!("not run (`make {}`)", make_target(st.name)),
                "–".into(),
                "–".into(),
                "–".into(),
                "–".into(),
            ],
        })
        .collect();
    cx.doc.table(
        &[
            "Stage",
            "Status",
            "Code version",
            "Signature",
            "Outputs",
            "Run time",
        ],
        rows,
    );
    let dirs: Vec<String> = cx
        .study
        .models
        .iter()
        .map(|m| match &m.svm_name {
            Some(n) => format!(
                "{}: `{}/model.safetensors`, model `{n}`",
                m.display,
                rel_dir(cx.study, m)
            ),
            None => format!("{}: `{}/`", m.display, rel_dir(cx.study, m)),
        })
        .collect();
    cx.doc
        .p("Model artifacts, under this pipeline's artifacts folder:");
    cx.doc.list(dirs);
}
