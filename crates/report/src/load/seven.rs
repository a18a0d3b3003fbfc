//! A seven-class pipeline: its classes and test usages, and each seven-class model read as
//! happy vs the rest.

use super::{Family, ModelRun, Pred, Pred7, Seven, SevenRun, Stage, artifact_error, bad};
use crate::ReportError;
use fer_core::{Classes, Split};
use fer_eval::metrics::Metrics;
use std::path::Path;

/// Whether a model's figures are over more than two classes.
fn is_multiclass(m: &ModelRun) -> bool {
    m.test.classes.len() > 2
}

/// A seven-class pipeline's classes and test usages, and every seven-class model read as
/// happy vs the rest; `None` (and the models untouched) in a binary pipeline. The pipeline is
/// seven-class when ingest's `images.parquet` says so (`fer.label_mode`; ingest's manifest
/// summary says it first, so a binary pipeline never reads the images) or a model's figures
/// have more than two classes. A binary model in a seven-class pipeline (label 0 = happy) is
/// left as it is.
pub(super) fn seven(
    root: &Path,
    stages: &[Stage],
    models: &mut [ModelRun],
) -> Result<Option<Seven>, ReportError> {
    let ingest = stages
        .iter()
        .find(|s| s.name == "ingest")
        .and_then(|s| s.manifest.as_ref());
    let said = ingest.is_some_and(|m| m.summary["label_mode"] == "emotion7");
    if !said && !models.iter().any(is_multiclass) {
        return Ok(None);
    }
    let mut usage = None;
    let mut mode_seven = models.iter().any(is_multiclass);
    if ingest.is_some() {
        let path = root.join("ingest").join("images.parquet");
        let ds = fer_core::dataset::ImageDataset::read_parquet(&path)
            .map_err(|e| artifact_error("ingest", &path, &e))?;
        mode_seven |= ds.label_mode == fer_core::LabelMode::Emotion7;
        usage = Some(
            ds.records
                .into_iter()
                .filter(|r| r.split == Split::Test)
                .map(|r| (r.id, r.usage))
                .collect(),
        );
    }
    if !mode_seven {
        return Ok(None);
    }
    let classes = models
        .iter()
        .find(|m| is_multiclass(m))
        .map(|m| Classes::new(m.test.classes.iter().map(|c| c.name.clone())))
        .unwrap_or_else(Classes::emotions);
    let happy = classes
        .happy()
        .map_err(|e| bad(root, format!("seven classes: {e}")))?;
    for m in models.iter_mut().filter(|m| is_multiclass(m)) {
        let names: Vec<&str> = m.test.classes.iter().map(|c| c.name.as_str()).collect();
        if names != classes.iter().map(String::as_str).collect::<Vec<_>>() {
            return Err(bad(
                &m.dir,
                format!(
                    "{}'s classes {names:?} are not the pipeline's {classes:?}",
                    m.key
                ),
            ));
        }
        happy_vs_rest(m, happy);
    }
    Ok(Some(Seven {
        classes: classes.to_vec(),
        happy,
        usage,
    }))
}

/// Read a seven-class model as happy vs the rest: its own figures and answers move to
/// [`ModelRun::seven`]; its predictions become label 0 (happy: the emotion code `happy`) or 1
/// (any other emotion), the model's answer happy when happy is its top emotion, the score
/// staying its happy score (a CNN's `p_happy`, the probability of the happy class; an SVM's
/// happy-vs-rest decision value); `val` and `test` are recomputed from those (ROC AUC of the
/// happy score).
pub fn happy_vs_rest(m: &mut ModelRun, happy: usize) {
    let to7 = |ps: &[Pred]| -> Vec<Pred7> {
        ps.iter()
            .map(|p| Pred7 {
                id: p.id.clone(),
                label: p.label,
                pred: p.pred,
            })
            .collect()
    };
    let view = |ps: &[Pred]| -> Vec<Pred> {
        ps.iter()
            .map(|p| Pred {
                label: u8::from(p.label as usize != happy),
                pred: u8::from(p.pred as usize != happy),
                ..p.clone()
            })
            .collect()
    };
    let svm = m.family == Family::Svm;
    let metrics = |ps: &[Pred]| -> Metrics {
        let y: Vec<u8> = ps.iter().map(|p| p.label).collect();
        let pred: Vec<u8> = ps.iter().map(|p| p.pred).collect();
        let scores: Vec<Vec<f64>> = ps
            .iter()
            .map(|p| {
                if svm {
                    vec![p.score, -p.score]
                } else {
                    vec![p.score, 1.0 - p.score]
                }
            })
            .collect();
        fer_eval::metrics::classification_metrics(
            &y,
            &pred,
            &Classes::binary().strs(),
            Some(&scores),
        )
    };
    m.seven = Some(SevenRun {
        val: m.val.clone(),
        test: m.test.clone(),
        val_preds: to7(&m.val_preds),
        test_preds: to7(&m.test_preds),
    });
    m.val_preds = view(&m.val_preds);
    m.test_preds = view(&m.test_preds);
    m.val = metrics(&m.val_preds);
    m.test = metrics(&m.test_preds);
}
