//! The report's sections, built from a [`Study`]: every number in the text is formatted from
//! a value read from the artifacts (or a `[report]` param, such as the study's published
//! figures). This file holds the formatting helpers, the build context and [`build`], which
//! writes the sections in reading order; each section lives in its own file.

mod calibration;
mod data;
mod learning;
mod mistakes;
mod model_card;
mod models;
mod operating;
mod provenance;
mod recommendation;
mod seven;
mod study;
mod truths;
mod tuning;

use crate::doc::Doc;
use crate::load::{Family, Study, make_target};
use crate::recommend::{acc_ci, best_by_val, recommend, recommendation_json, right};
use crate::stats::{self, Ci};
use crate::{ReportError, ReportParams};
use data::{data, preparation};
use learning::learning;
use mistakes::mistakes;
use models::models;
use provenance::provenance;
use recommendation::recommendation;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use study::against_study;
use truths::truths;
use tuning::tuning;

pub struct Built {
    pub doc: Doc,
    /// Files written into the report folder (relative paths).
    pub files: Vec<String>,
    pub recommendation: Option<crate::recommend::RecommendationFile>,
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

struct Ctx<'a> {
    study: &'a Study,
    rp: &'a ReportParams,
    dir: &'a Path,
    doc: Doc,
    files: Vec<String>,
    not_run: Vec<String>,
    /// Whether the happy-vs-rest note has been given in full (later sections refer to it).
    happy_vs_rest_said: bool,
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
    /// A seven-class pipeline (its models read as happy vs the rest outside "Seven
    /// emotions").
    fn seven(&self) -> bool {
        self.study.seven.is_some()
    }
    /// In a seven-class pipeline, the sentence saying that a section reads the models as happy
    /// vs the rest; nothing in a binary one.
    fn happy_vs_rest_note(&mut self) {
        if !self.seven() {
            return;
        }
        let text = if self.happy_vs_rest_said {
            seven::HAPPY_VS_REST_AGAIN
        } else {
            seven::HAPPY_VS_REST
        };
        self.happy_vs_rest_said = true;
        self.doc.note(crate::doc::Tone::Info, text);
    }
    fn not_run(&mut self, what: &str, stage: &str) {
        self.not_run.push(what.to_string());
        let target = make_target(stage);
        self.doc.not_run(what, &target, &self.study.pipeline);
    }
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
        happy_vs_rest_said: false,
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
    let opp = rp
        .operating()
        .map_err(|(k, m)| ReportError::Params(format!("{k}: {m}")))?;
    let rec = recommend(study, rp, &opp);
    let sev = crate::seven::figures(study, Some(rp));

    title(&mut cx);
    seven::seven(&mut cx, sev.as_ref())?;
    recommendation(
        &mut cx,
        rec.as_ref(),
        &cis,
        best_svm,
        best_cnn,
        mcn.as_ref(),
    );
    operating::operating(&mut cx, rec.as_ref(), &opp)?;
    against_study(&mut cx, &cis, rec.as_ref(), best_svm);
    data(&mut cx)?;
    preparation(&mut cx)?;
    models(&mut cx, &cis, best_svm, best_cnn, mcn.as_ref())?;
    truths(&mut cx)?;
    calibration::calibration(&mut cx)?;
    learning(&mut cx)?;
    tuning(&mut cx)?;
    mistakes(&mut cx, rec.as_ref())?;
    model_card::model_card(&mut cx, rec.as_ref());
    provenance(&mut cx);

    let recommendation = rec
        .as_ref()
        .map(|r| recommendation_json(r, &cis, study, rp, &opp, artifacts, sev.as_ref()));
    let mut metrics = crate::diff::metrics_json(study, Some(&cis), sev.as_ref());
    if let Some(m) = &mcn {
        metrics["mcnemar"] = json!({
            "a": best_cnn.map(|m| m.key.clone()),
            "b": best_svm.map(|m| m.key.clone()),
            "only_a_right": m.only_a,
            "only_b_right": m.only_b,
            "p_value": m.p_value,
        });
    }
    if let Some(f) = recommendation.as_ref() {
        let r = &f.rec;
        metrics["recommendation"] = json!({
            "model": r.model,
            "threshold": r.threshold,
            "expected_not_happy_precision": r.expected_not_happy_precision,
            "expected_not_happy_recall": r.expected_not_happy_recall,
            "base_rate": f.base_rate,
            "goal_met": f.goal.met,
            "expected_alerts_per_100": f.expected_alerts_per_100,
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
    cx.doc.title = if s.seven.is_some() {
        "Seven emotions, and happy or not: SVM versus CNN on FER2013 faces".into()
    } else {
        "Happy or not happy? SVM versus CNN on FER2013 faces".into()
    };
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
