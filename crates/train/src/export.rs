//! [`export_model`]: a trained model's folder.

use crate::settings::TrainSettings;
use crate::{Device, ModelArtifact, Prepared, TrainCnnError, train};
use burn::module::Module;
use fer_core::Split;
use fer_eval::metrics::classification_metrics;
use fer_models::arch::{ModelConfig, Net};
use fer_schema::metrics::{CnnMetrics, SplitMetrics};
use fer_schema::predictions::{self, CnnPrediction};
use fer_schema::{epochs, write_json, write_json_sorted};

use std::path::Path;
use std::time::Instant;

/// Write one trained model's folder (`model.safetensors`, `model.json`, `epochs.parquet`,
/// `predictions.parquet`, `metrics.json`) into `mdir` and return its metrics. Val is
/// scored and test is scored once; neither is used to choose anything here.
pub fn export_model(
    trained: &train::Trained,
    s: &TrainSettings,
    cfg: &ModelConfig,
    d: &Prepared,
    device: &Device,
    mdir: &Path,
) -> Result<CnnMetrics, TrainCnnError> {
    std::fs::create_dir_all(mdir).map_err(|e| fer_core::Error::io(mdir, e))?;
    let (train, val, test) = (&d.train, &d.val, &d.test);
    let (class_names, transform) = (&d.class_names, &d.transform);
    let model = &trained.model;
    let params = model.num_params();
    let macs = Net::macs(cfg);
    fer_models::checkpoint::save_weights(model, &mdir.join("model.safetensors"))?;
    let art = ModelArtifact {
        model: cfg.clone(),
        settings: s.clone(),
        transform: transform.clone(),
        class_names: class_names.clone(),
        tta_flip: s.tta_flip,
        params,
        macs,
    };
    write_json(&mdir.join("model.json"), &art)?;
    epochs::write(&mdir.join("epochs.parquet"), &trained.state.epochs)?;
    // Evaluate: val and test (test only scored, never used to choose).
    let names = class_names.strs();
    // p_happy is the `happy` class's probability (class 0 in binary, 3 of seven); more than two
    // classes also get a `prob_<class>` column each.
    let happy = class_names
        .happy()
        .map_err(|e| fer_core::Error::Other(format!("{}: {e}", mdir.display())))?;
    let per_class = class_names.is_multiclass();
    let t0 = Instant::now();
    let _ = fer_models::score::predict(model, test, s.eval_batch_size, false, device);
    let infer_ips = test.n as f64 / t0.elapsed().as_secs_f64();
    let mut metrics = Vec::new();
    let mut test_by_truth = None;
    let mut pred_rows: Vec<CnnPrediction> = Vec::new();
    let mut val_probs = Vec::new();
    for (split, data) in [(Split::Val, val), (Split::Test, test)] {
        let probs = fer_models::score::predict(model, data, s.eval_batch_size, s.tta_flip, device);
        let pred: Vec<u8> = probs
            .iter()
            .map(|p| fer_models::score::argmax(p) as u8)
            .collect();
        metrics.push(classification_metrics(&data.y, &pred, &names, Some(&probs)));
        if split == Split::Val {
            val_probs = probs.clone();
        }
        if let (Split::Test, Some(t)) = (split, &data.truths) {
            test_by_truth = Some(fer_eval::metrics::score_truths(
                t,
                &pred,
                &names,
                Some(&probs),
            ));
        }
        for (i, p) in probs.iter().enumerate() {
            pred_rows.push(CnnPrediction {
                split,
                row: i as u32,
                id: d.ids[split as usize].get(i).cloned().unwrap_or_default(),
                label: data.y[i],
                p_happy: p[happy],
                pred: pred[i],
                probs: if per_class { p.clone() } else { Vec::new() },
            });
        }
    }
    let last = trained.state.epochs.last();
    let test_metrics = metrics.pop().expect("test scored");
    let val_metrics = metrics.pop().expect("val scored");
    let info = CnnMetrics {
        name: s.name.clone(),
        arch: s.arch.clone(),
        params,
        macs,
        epochs_run: trained.state.epochs.len(),
        best_epoch: trained.state.best_epoch,
        train_seconds: trained.state.train_seconds,
        train_images_per_second: trained.state.epochs.len() as f64
            * (train.n / s.batch_size.max(1) * s.batch_size) as f64
            / trained.state.train_seconds.max(1e-9),
        inference_images_per_second: infer_ips,
        final_train_acc: last.map(|e| e.train_acc),
        final_val_acc: last.map(|e| e.val_acc),
        tta_flip: s.tta_flip,
        metrics: SplitMetrics {
            val: val_metrics,
            test: test_metrics,
        },
        test_by_truth,
        tune: None,
    };
    write_json_sorted(&mdir.join("metrics.json"), &info)?;
    let prob_cols: &[&str] = if per_class { &names } else { &[] };
    predictions::write_classes(&mdir.join("predictions.parquet"), &pred_rows, prob_cols)?;
    write_calibration(mdir, &s.name, happy, &val_probs, &val.y)?;
    Ok(info)
}

/// `calibration.json` of a model folder: temperature scaling of p(happy) (the `happy` class's
/// softmax output, one against the rest; `happy` is its index, which the export looked up
/// once) fitted on **val** only; an `uncalibrated` record with the reason when it cannot be
/// fitted (one class in val, separated scores). `predictions.parquet` keeps the uncalibrated
/// p(happy).
fn write_calibration(
    mdir: &Path,
    name: &str,
    happy: usize,
    probs: &[Vec<f64>],
    y: &[u8],
) -> Result<(), TrainCnnError> {
    use fer_eval::calibration as cal;
    use fer_schema::calibration::{self as cf, ScoreKind};
    let p: Vec<f64> = probs.iter().map(|r| r[happy]).collect();
    let is_happy: Vec<bool> = y.iter().map(|&y| y as usize == happy).collect();
    let record = cal::cnn_record(name, &p, &is_happy);
    cf::write(
        &mdir.join(cf::FILE),
        &cal::file(ScoreKind::PHappy, vec![record]),
    )?;
    Ok(())
}
