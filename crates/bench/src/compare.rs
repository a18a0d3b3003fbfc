//! `fer-bench --only compare`: the rows `make bench-compare` sets beside PyTorch's
//! (`scripts/bench-torch.py` times the same architectures the same way).
//!
//! - `train <arch>`: fer-train-cnn's own training loop (`train::train`), batch 64, AdamW
//!   (lr 2e-3, weight decay 5e-4), label smoothing 0.05, no augmentation, `workers = "auto"`,
//!   on 2,560 random 48x48 images (40 steps, plus one pass over 64 validation images);
//!   images per second.
//! - `infer <arch>`: the model alone (eval mode, no decoding), batches of 32 scored one batch
//!   per rayon task (how predict and validation score), images per second.
//!
//! Every row runs three times: with fer-ops' kernels (`fer-ops`), with them but every
//! convolution by im2col (`im2col`: `fer_ops::winograd` off), and with burn's default conv,
//! pool and batch norm (`burn ops`), so one run shows the before and after of each.

use burn::tensor::{Device, Tensor, TensorData};
use fer_core::tensors::TensorSet;
use fer_train_cnn::model::ModelConfig;
use fer_train_cnn::settings::{TrainSettings, auto_workers};
use rayon::prelude::*;
use std::time::Instant;

/// One measured row.
pub struct Rate {
    pub name: String,
    /// `fer-ops` or `burn ops`.
    pub variant: &'static str,
    pub per_second: f64,
}

/// `n` synthetic 48x48 inputs and alternating labels (speed does not depend on content).
pub fn data(n: usize) -> TensorSet {
    fer_train_cnn::timing_set(n)
}

/// The compared architectures: (row name, arch, widths, dropout).
const ARCHS: [(&str, &str, [usize; 4], f64); 3] = [
    ("fer-small", "fer-small", [32, 64, 128, 192], 0.3),
    ("seed-base", "seed-base", [32, 64, 128, 192], 0.0),
    ("fer-tiny", "fer-small", [8, 16, 32, 64], 0.1),
];

/// One training epoch's images per second, and its convolutions' GFLOP/s over the epoch: in the
/// layers' own FLOPs (`fer_ops::layer_flops`) and in the FLOPs their GEMMs ran
/// (`fer_ops::gemm_flops`; fewer where Winograd ran).
pub struct StepRate {
    pub images_per_second: f64,
    pub layer_gflops: f64,
    pub gemm_gflops: f64,
}

/// [`StepRate`] of one epoch of `arch`.
pub fn train_rate_flops(arch: &str, widths: [usize; 4], dropout: f64) -> Result<StepRate, String> {
    let (layers, gemms) = (fer_ops::layer_flops(), fer_ops::gemm_flops());
    let (images, seconds) = train_epoch(arch, widths, dropout)?;
    let rate = |after: u64, before: u64| (after - before) as f64 / seconds / 1e9;
    Ok(StepRate {
        images_per_second: images / seconds,
        layer_gflops: rate(fer_ops::layer_flops(), layers),
        gemm_gflops: rate(fer_ops::gemm_flops(), gemms),
    })
}

fn train_rate(arch: &str, widths: [usize; 4], dropout: f64) -> Result<f64, String> {
    train_epoch(arch, widths, dropout).map(|(n, s)| n / s)
}

/// The architecture `arch` (fer-small, seed-base) of these widths by name.
pub fn arch(name: &str) -> Option<(&'static str, [usize; 4], f64)> {
    ARCHS.iter().find(|a| a.0 == name).map(|a| (a.1, a.2, a.3))
}

/// One epoch of training: (images, seconds).
fn train_epoch(arch: &str, widths: [usize; 4], dropout: f64) -> Result<(f64, f64), String> {
    let s = TrainSettings {
        arch: arch.into(),
        name: arch.into(),
        epochs: 1,
        warmup_epochs: 0,
        patience: 0,
        augment: false,
        class_weights: false,
        weight_decay: 5e-4,
        widths: widths.to_vec(),
        dropout,
        workers: auto_workers(64),
        ..TrainSettings::default()
    };
    let (train, val) = (data(2560), data(64));
    let aug = fer_train_cnn::timing_augmenter();
    let ckpt = tempfile::tempdir().map_err(|e| e.to_string())?;
    let t = fer_train_cnn::train::train(
        &s,
        &train,
        &val,
        &aug,
        &Device::flex(),
        ckpt.path(),
        &|_, _, _| {},
    )
    .map_err(|e| e.to_string())?;
    Ok((train.n as f64, t.state.epochs[0].seconds))
}

fn infer_rate(arch: &str, widths: [usize; 4], dropout: f64) -> f64 {
    let device = Device::flex();
    let cfg = ModelConfig::new(arch.into())
        .with_widths(widths.to_vec())
        .with_dropout(dropout);
    let model = cfg.init(&device);
    let batch = data(32);
    let x = || Tensor::<4>::from_data(TensorData::new(batch.x.clone(), [32, 1, 48, 48]), &device);
    let score = |_: &usize| {
        let _: Vec<f32> = model
            .forward(x())
            .into_data()
            .try_to_vec()
            .expect("f32 logits");
    };
    let warm: Vec<usize> = (0..4).collect();
    warm.par_iter().for_each(score);
    let batches: Vec<usize> = (0..128).collect();
    let t0 = Instant::now();
    batches.par_iter().for_each(score);
    (batches.len() * 32) as f64 / t0.elapsed().as_secs_f64()
}

/// The rows, with fer-ops on, then on without its Winograd convolutions (`im2col`), then off
/// (left on afterwards); `archs` and `variants` (`fer-ops`, `im2col`, `burn`) filter them when
/// not empty, `kind` is `train`, `infer` or `both`.
pub fn rates(
    archs: &[String],
    variants: &[String],
    kind: &str,
    notes: &mut Vec<String>,
) -> Vec<Rate> {
    let mut out = Vec::new();
    let pick = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
    for (on, winograd, variant, key) in [
        (true, true, "fer-ops", "fer-ops"),
        (true, false, "im2col", "im2col"),
        (false, false, "burn ops", "burn"),
    ] {
        if !pick(variants, key) {
            continue;
        }
        fer_ops::set_enabled(on);
        fer_ops::winograd::set_enabled(winograd);
        for (name, arch, widths, dropout) in ARCHS {
            if !pick(archs, name) {
                continue;
            }
            let calls = fer_ops::kernel_calls();
            if kind != "infer" {
                match train_rate(arch, widths, dropout) {
                    Ok(r) => out.push(Rate {
                        name: format!("train {name}"),
                        variant,
                        per_second: r,
                    }),
                    Err(e) => notes.push(format!("train {name} ({variant}) failed: {e}")),
                }
            }
            if kind != "train" {
                out.push(Rate {
                    name: format!("infer {name}"),
                    variant,
                    per_second: infer_rate(arch, widths, dropout),
                });
            }
            if on == (fer_ops::kernel_calls() == calls) {
                notes.push(format!(
                    "{name}: fer-ops kernels {} when {variant} was asked for",
                    if on { "did not run" } else { "ran" }
                ));
            }
        }
    }
    fer_ops::set_enabled(true);
    fer_ops::winograd::set_enabled(true);
    out
}
