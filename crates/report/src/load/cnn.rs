//! A CNN model folder (`train_cnn/<model>/` or `tune/best/`): its metrics, settings,
//! predictions and epochs, and the study's names for its architecture.

use super::{Epoch, Family, ModelRun, Pred, artifact_error, file_size, read_typed, split_preds};
use crate::ReportError;
use fer_schema::metrics::CnnMetrics;
use fer_schema::model::ModelJson;
use fer_schema::predictions;
use serde_json::Value;
use std::path::Path;

/// Predictions of a CNN folder, split into (val, test), each sorted by row.
fn cnn_predictions(stage: &str, path: &Path) -> Result<(Vec<Pred>, Vec<Pred>), ReportError> {
    let rows = predictions::read(path).map_err(|e| artifact_error(stage, path, &e))?;
    Ok(split_preds(rows.into_iter().map(|r| {
        let p = Pred {
            row: r.row,
            id: r.id,
            label: r.label,
            score: r.p_happy,
            pred: r.pred,
        };
        (r.split, p)
    })))
}

fn epochs(stage: &str, path: &Path) -> Result<Vec<Epoch>, ReportError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let rows = fer_schema::epochs::read(path).map_err(|e| artifact_error(stage, path, &e))?;
    Ok(rows
        .iter()
        .map(|r| Epoch {
            epoch: r.epoch as u32,
            train_loss: r.train_loss,
            train_acc: r.train_acc,
            val_loss: r.val_loss,
            val_acc: r.val_acc,
        })
        .collect())
}

/// What the study called an architecture.
pub fn role_of(arch: &str) -> String {
    role_words(arch).to_string()
}

/// A short tag for a CNN's display name.
fn role_tag(arch: &str) -> Option<&'static str> {
    match arch {
        "seed-base" => Some("the study's base CNN"),
        "seed-tuned" => Some("the study's tuned CNN"),
        "fer-small" => Some("ours"),
        _ => None,
    }
}

fn role_words(arch: &str) -> &str {
    match arch {
        "seed-base" => "the study's base CNN",
        "seed-tuned" => "the study's Keras-Tuner winner",
        "fer-small" => "our CNN",
        other => other,
    }
}

/// A CNN model folder (a `train_cnn/<model>/` or `tune/best/`).
pub(super) fn cnn_model(
    stage: &str,
    key: String,
    dir: &Path,
    tuned: bool,
) -> Result<ModelRun, ReportError> {
    let mpath = dir.join("metrics.json");
    let m: CnnMetrics = read_typed(stage, &mpath)?;
    let (name, arch) = (m.name.clone(), m.arch.clone());
    let model_json = dir.join("model.json");
    // The network's config stays JSON here (it is fer-models' type); the rest is typed.
    let mj: Option<ModelJson<Value>> = if model_json.exists() {
        Some(read_typed(stage, &model_json)?)
    } else {
        None
    };
    let params = Some(m.params as u64);
    let (val_preds, test_preds) = cnn_predictions(stage, &dir.join("predictions.parquet"))?;
    let mut config = Vec::new();
    config.push(format!(
        "{} epochs, best epoch {}",
        m.epochs_run, m.best_epoch
    ));
    if let Some(settings) = mj.as_ref().map(|j| &j.settings) {
        config.push(settings.optimizer.clone());
        config.push(format!("lr {}", settings.lr));
        if settings.augment {
            config.push("augmented".into());
        }
    }
    if m.tta_flip {
        config.push("flip TTA".into());
    }
    let (display, role) = if tuned {
        (
            format!("CNN tuned winner ({arch})"),
            "tune stage's best trial".to_string(),
        )
    } else {
        let tag = role_tag(&arch).map_or(String::new(), |t| format!(" ({t})"));
        (format!("CNN {name}{tag}"), role_of(&arch))
    };
    Ok(ModelRun {
        key,
        display,
        role,
        family: Family::Cnn,
        dir: dir.to_path_buf(),
        svm_name: None,
        feature: None,
        config: config.join(", "),
        val: m.metrics.val.clone(),
        test: m.metrics.test.clone(),
        test_by_truth: m.test_by_truth.clone(),
        params,
        size_bytes: file_size(&dir.join("model.safetensors")),
        train_seconds: Some(m.train_seconds),
        inference_images_per_second: Some(m.inference_images_per_second),
        score_name: "p_happy",
        default_threshold: 0.5,
        val_preds,
        test_preds,
        epochs: epochs(stage, &dir.join("epochs.parquet"))?,
        best_epoch: Some(m.best_epoch as u64),
        final_train_acc: m.final_train_acc,
        seven: None,
    })
}
