//! The "Most confident mistakes" section: the recommended model's most confident wrong
//! answers on test, as a gallery of faces and a table.

use super::{Ctx, class_words};
use crate::ReportError;
use crate::charts;
use crate::doc::Tone;
use crate::load::{Family, Pred};
use crate::recommend::Rec;
use std::collections::BTreeMap;

pub(super) fn mistakes(cx: &mut Ctx, rec: Option<&Rec>) -> Result<(), ReportError> {
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
    cx.happy_vs_rest_note();
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
    // Seven classes: the emotion the model said, beside its happy-vs-rest answer.
    let said7: BTreeMap<&str, &str> = match (&m.seven, &cx.study.seven) {
        (Some(s), Some(sv)) => s
            .test_preds
            .iter()
            .filter_map(|p| Some((p.id.as_str(), sv.classes.get(p.pred as usize)?.as_str())))
            .collect(),
        _ => BTreeMap::new(),
    };
    let mut items = Vec::new();
    let mut rows = Vec::new();
    for p in &wrong {
        let Some(rec) = by_id.get(p.id.as_str()) else {
            continue;
        };
        let truth = names
            .get(p.label as usize)
            .map_or("?".into(), |c| class_words(c));
        let mut said = names
            .get(p.pred as usize)
            .map_or("?".into(), |c| class_words(c));
        if let Some(e) = said7.get(p.id.as_str()).filter(|_| p.pred != 0) {
            said = format!("{said} ({})", class_words(e));
        }
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
