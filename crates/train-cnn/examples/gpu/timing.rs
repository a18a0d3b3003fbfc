//! `gpu run`: what a GPU slot measures (`scripts/gpu-run.sh`).
//!
//! - **Speed**, per model: a fixed number of training batches (train-cnn's own loop, one epoch
//!   over synthetic 48x48 images, after a warm-up run that compiles the shaders) and an
//!   inference pass (eval mode, batches of 256), in images per second.
//! - **Epochs**, per model of the pipeline (seed-gpu): trained on its real data
//!   (`artifacts/<data>/preprocess/`, the seed protocol's) epoch by epoch until its share of
//!   the time is spent, each epoch's seconds recorded and the best epoch so far scored on the
//!   test split. Pretraining (`pretrain_epochs`) is not run here.

use burn::tensor::{Device, Tensor, TensorData};
use fer_train_cnn::model::ModelConfig;
use fer_train_cnn::settings::TrainSettings;
use fer_train_cnn::timing_set as synthetic;
use std::path::Path;
use std::time::Instant;

/// One model's row of the table.
#[derive(Default, serde::Serialize)]
pub struct Row {
    pub model: String,
    pub params: usize,
    pub train_images_per_s: Option<f64>,
    pub infer_images_per_s: Option<f64>,
    /// Epochs trained on the real data, of the pipeline's planned number.
    pub epochs: usize,
    pub planned_epochs: usize,
    pub seconds_per_epoch: Option<f64>,
    /// Of the best epoch so far (validation loss), on the test split.
    pub test_accuracy: Option<f64>,
    pub note: String,
}

/// One epoch of `batches` training batches: images per second (the epoch's own clock, which
/// stops before its checkpoint is written).
fn train_speed(s: &TrainSettings, batches: usize, device: &Device) -> Result<f64, String> {
    let mut s = s.clone();
    s.epochs = 1;
    s.patience = 0;
    s.augment = false;
    s.pretrain_epochs = 0;
    s.init = String::new();
    s.max_train_batches = 0;
    let aug = fer_train_cnn::timing_augmenter();
    let val = synthetic(64);
    // A warm-up run: the first batches compile every kernel the step needs.
    let warm = synthetic(2 * s.batch_size);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    fer_train_cnn::train::train(&s, &warm, &val, &aug, device, dir.path(), &|_, _, _| {})
        .map_err(|e| e.to_string())?;
    let data = synthetic(batches * s.batch_size);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let t = fer_train_cnn::train::train(&s, &data, &val, &aug, device, dir.path(), &|_, _, _| {})
        .map_err(|e| e.to_string())?;
    Ok(data.n as f64 / t.state.epochs[0].seconds)
}

/// Eval-mode inference, batches of 256, `batches` of them after one warm-up batch: images
/// per second.
fn infer_speed(cfg: &ModelConfig, batches: usize, device: &Device) -> f64 {
    let model = cfg.init(device);
    let data = synthetic(256);
    let score = || {
        let x = Tensor::<4>::from_data(TensorData::new(data.x.clone(), [256, 1, 48, 48]), device);
        let _: Vec<f32> = model
            .forward(x)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 logits");
    };
    score();
    let t0 = Instant::now();
    for _ in 0..batches {
        score();
    }
    (batches * 256) as f64 / t0.elapsed().as_secs_f64()
}

/// The speed columns of `row` for settings `s`.
pub fn speed(row: &mut Row, s: &TrainSettings, batches: usize, device: &Device) {
    let cfg = ModelConfig::for_settings(s, 48, 2);
    row.params = {
        use burn::module::Module;
        cfg.init(&Device::flex()).num_params()
    };
    match train_speed(s, batches, device) {
        Ok(v) => row.train_images_per_s = Some(v),
        Err(e) => row.note = format!("training: {e}"),
    }
    row.infer_images_per_s = Some(infer_speed(&cfg, batches.max(4), device));
}

/// Train `s` on `data` epoch by epoch until `budget_s` seconds are spent (an epoch is started
/// only when the last one's time still fits), scoring the best epoch on the test split.
pub fn epochs(
    row: &mut Row,
    s: &TrainSettings,
    data: &fer_train::Prepared,
    steps: &[fer_train::ops::Step],
    budget_s: f64,
    device: &Device,
    scratch: &Path,
) -> Result<(), String> {
    let mut s = s.clone();
    s.pretrain_epochs = 0;
    s.init = String::new();
    row.planned_epochs = s.epochs;
    let aug = fer_train::chain::augmenter(steps, &data.transform);
    let ckpt = scratch.join(&s.name);
    let t0 = Instant::now();
    let mut last = 0.0;
    let mut trained = None;
    for k in 1..=s.epochs {
        if t0.elapsed().as_secs_f64() + last > budget_s {
            break;
        }
        let t = fer_train::train::train_until(
            &s,
            &data.train,
            &data.val,
            &aug,
            device,
            &ckpt,
            k,
            &|_, _, _| {},
        )
        .map_err(|e| e.to_string())?;
        last = t.state.epochs.last().map_or(0.0, |e| e.seconds);
        eprintln!(
            "gpu run: {} epoch {k}/{} in {last:.1} s ({:.0} s of {budget_s:.0})",
            s.name,
            s.epochs,
            t0.elapsed().as_secs_f64()
        );
        let done = t.state.done;
        trained = Some(t);
        if done {
            break;
        }
    }
    let Some(t) = trained else {
        row.note = format!("no epoch fitted in {budget_s:.0} s");
        return Ok(());
    };
    let rows = &t.state.epochs;
    row.epochs = rows.len();
    row.seconds_per_epoch = Some(rows.iter().map(|e| e.seconds).sum::<f64>() / rows.len() as f64);
    let probs = fer_models::score::predict(&t.model, &data.test, s.eval_batch_size, false, device);
    let right = probs
        .iter()
        .zip(&data.test.y)
        .filter(|(p, y)| fer_models::score::argmax(p) == **y as usize)
        .count();
    row.test_accuracy = Some(right as f64 / data.test.n.max(1) as f64);
    Ok(())
}
