//! A CNN model folder (`train_cnn/<model>/` or `tune/best/`): its metrics, settings,
//! predictions and epochs, and the study's names for its architecture.

use super::table::Table;
use super::{Epoch, Family, ModelRun, Pred, file_size, metrics_of, read_json, split_preds};
use crate::ReportError;
use serde_json::Value;
use std::path::Path;

/// Predictions of a CNN folder, split into (val, test), each sorted by row.
fn cnn_predictions(stage: &str, path: &Path) -> Result<(Vec<Pred>, Vec<Pred>), ReportError> {
    let t = Table::read(stage, path)?;
    let (split, row, id, label, score, pred) = (
        t.strings("split")?,
        t.u32s("row")?,
        t.strings("id")?,
        t.u8s("label")?,
        t.f64s("p_happy")?,
        t.u8s("pred")?,
    );
    Ok(split_preds(split, row, id, label, score, pred, |_| true))
}

fn epochs(stage: &str, path: &Path) -> Result<Vec<Epoch>, ReportError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let t = Table::read(stage, path)?;
    let (e, tl, ta, vl, va) = (
        t.u32s("epoch")?,
        t.f64s("train_loss")?,
        t.f64s("train_acc")?,
        t.f64s("val_loss")?,
        t.f64s("val_acc")?,
    );
    Ok((0..e.len())
        .map(|i| Epoch {
            epoch: e[i],
            train_loss: tl[i],
            train_acc: ta[i],
            val_loss: vl[i],
            val_acc: va[i],
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
    let m = read_json(stage, &mpath)?;
    let name = m["name"].as_str().unwrap_or("cnn").to_string();
    let arch = m["arch"].as_str().unwrap_or(&name).to_string();
    let model_json = dir.join("model.json");
    let mj = if model_json.exists() {
        Some(read_json(stage, &model_json)?)
    } else {
        None
    };
    let params = m["params"]
        .as_u64()
        .or_else(|| mj.as_ref().and_then(|j| j["params"].as_u64()));
    let (val_preds, test_preds) = cnn_predictions(stage, &dir.join("predictions.parquet"))?;
    let settings = mj
        .as_ref()
        .map(|j| j["settings"].clone())
        .unwrap_or(Value::Null);
    let mut config = Vec::new();
    if let Some(e) = m["epochs_run"].as_u64() {
        let best = m["best_epoch"]
            .as_u64()
            .map_or(String::new(), |b| format!(", best epoch {b}"));
        config.push(format!("{e} epochs{best}"));
    }
    if let Some(o) = settings["optimizer"].as_str() {
        config.push(o.to_string());
    }
    if let Some(lr) = settings["lr"].as_f64() {
        config.push(format!("lr {lr}"));
    }
    if settings["augment"].as_bool() == Some(true) {
        config.push("augmented".into());
    }
    if m["tta_flip"].as_bool() == Some(true) {
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
        val: metrics_of(stage, &mpath, &m["metrics"]["val"], "val")?,
        test: metrics_of(stage, &mpath, &m["metrics"]["test"], "test")?,
        params,
        size_bytes: file_size(&dir.join("model.safetensors")),
        train_seconds: m["train_seconds"].as_f64(),
        inference_images_per_second: m["inference_images_per_second"].as_f64(),
        score_name: "p_happy",
        default_threshold: 0.5,
        val_preds,
        test_preds,
        epochs: epochs(stage, &dir.join("epochs.parquet"))?,
        best_epoch: m["best_epoch"].as_u64(),
        final_train_acc: m["final_train_acc"].as_f64(),
    })
}
