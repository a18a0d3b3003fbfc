//! `fer-bench --only cnn`: CNN training and inference throughput on the CPU backend.

use crate::{Row, compare};
use std::time::Instant;

/// CNN training (batch 64, AdamW, no augmentation) and inference (batch 256) throughput on
/// the CPU backend (burn flex), on random 48x48 inputs: speed does not depend on content.
pub(crate) fn cnn_rows(rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    use fer_train_cnn::settings::TrainSettings;
    let device = burn::tensor::Device::flex();
    let data = compare::data;
    let aug = fer_train_cnn::timing_augmenter();
    let val = data(64);
    // workers = 2: each batch's halves on one core each (the CPU pipelines' setting).
    for (arch, n, workers) in [
        ("fer-small", 1280usize, 1usize),
        ("fer-small", 1280, 2),
        ("seed-base", 1280, 1),
        ("seed-base", 1280, 2),
        ("seed-tuned", 128, 1),
    ] {
        let s = TrainSettings {
            arch: arch.into(),
            name: arch.into(),
            epochs: 1,
            warmup_epochs: 0,
            patience: 0,
            augment: false,
            workers,
            ..TrainSettings::default()
        };
        let train = data(n);
        let ckpt = tempfile::tempdir().expect("temp dir");
        match fer_train_cnn::train::train(
            &s,
            &train,
            &val,
            &aug,
            &device,
            ckpt.path(),
            &|_, _, _| {},
        ) {
            Ok(t) => {
                let e = &t.state.epochs[0];
                // Epoch seconds include one pass over the 64 validation images.
                rows.push(Row {
                    name: format!(
                        "train {arch} (flex CPU, batch 64, {workers} worker{})",
                        if workers > 1 { "s" } else { "" }
                    ),
                    items: n as f64,
                    unit: "images",
                    seconds: e.seconds,
                });
                if workers > 1 {
                    continue;
                }
                let test = data(if arch == "seed-tuned" { 64 } else { 2048 });
                let t0 = Instant::now();
                let _ = fer_train_cnn::train::predict(&t.model, &test, 256, false, &device);
                rows.push(Row {
                    name: format!("infer {arch} (flex CPU, batch 256)"),
                    items: test.n as f64,
                    unit: "images",
                    seconds: t0.elapsed().as_secs_f64(),
                });
            }
            Err(e) => notes.push(format!("train {arch} failed: {e}")),
        }
    }
}
