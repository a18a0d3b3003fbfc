//! The training levers (`mixup`, `optimizer = "sgd"`, `ema`, `class_weight_power`): each run is
//! deterministic for a seed, and each lever changes the run.
//!
//! The comparisons live in one test, in a test binary of their own: the backend's seeded RNG
//! (which draws a fresh network's weights) is one per process, and the tests of one binary run
//! in parallel threads, so two runs in `train_cnn.rs` could start from different weights.

use burn::tensor::Device;
use fer_core::tensors::TensorSet;
use fer_train_cnn::settings::TrainSettings;
use fer_train_cnn::train;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Noise with a bright bar, its row depending on the class: a task a tiny CNN learns.
fn bars(n: usize, side: usize, seed: u64) -> TensorSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Vec::with_capacity(n * side * side);
    let y: Vec<u8> = (0..n).map(|i| (i % 2) as u8).collect();
    for &label in &y {
        let mut img: Vec<f32> = (0..side * side)
            .map(|_| rng.random_range(-0.3..0.3f32))
            .collect();
        let row = if label == 0 { side / 4 } else { 3 * side / 4 };
        img[row * side..(row + 1) * side].fill(2.0);
        x.extend(img);
    }
    TensorSet {
        n,
        height: side,
        width: side,
        x,
        y,
        truths: None,
    }
}

/// The figures of each epoch (not its seconds) of a run from scratch.
fn figures(s: &TrainSettings, tr: &TensorSet, va: &TensorSet) -> Vec<(f64, f64, f64)> {
    let aug = fer_train::ops::Augmenter {
        steps: vec![],
        side: tr.height,
        range: (-1.0, 2.0),
    };
    let ckpt = tempfile::tempdir().unwrap();
    let t =
        train::train(s, tr, va, &aug, &Device::flex(), ckpt.path(), &|_, _, _| {}).expect("trains");
    t.state
        .epochs
        .iter()
        .map(|e| (e.train_loss, e.val_loss, e.val_acc))
        .collect()
}

#[test]
fn each_lever_is_deterministic_and_changes_the_run() {
    let (tr, va) = (bars(128, 16, 1), bars(64, 16, 2));
    let base = TrainSettings {
        arch: "fer-small".into(),
        name: "tiny".into(),
        seed: 3,
        batch_size: 32,
        epochs: 2,
        lr: 5e-3,
        patience: 0,
        widths: vec![8, 16],
        tta_flip: false,
        workers: 2,
        ..TrainSettings::default()
    };
    let plain = figures(&base, &tr, &va);
    assert_eq!(plain, figures(&base, &tr, &va), "the plain run twice");
    for s in [
        TrainSettings {
            mixup: 0.4,
            ..base.clone()
        },
        TrainSettings {
            optimizer: "sgd".into(),
            lr: 0.02,
            ..base.clone()
        },
        TrainSettings {
            ema: 0.95,
            ..base.clone()
        },
    ] {
        let a = figures(&s, &tr, &va);
        assert_eq!(a, figures(&s, &tr, &va), "{s:?}: the same run twice");
        assert!(a.iter().all(|e| e.0.is_finite()));
        assert_ne!(a, plain, "{s:?} changes the run");
    }
    // Square-root class weights: on balanced classes every weight is 1 either way; on a set
    // with three times as many of one class they change the run.
    let keep: Vec<usize> = (0..tr.n).filter(|i| i % 2 == 1 || i % 6 == 0).collect();
    let imbalanced = TensorSet {
        n: keep.len(),
        x: keep.iter().flat_map(|&i| tr.image(i).to_vec()).collect(),
        y: keep.iter().map(|&i| tr.y[i]).collect(),
        ..tr.clone()
    };
    let sqrt = TrainSettings {
        class_weight_power: 0.5,
        ..base.clone()
    };
    let weighted = figures(&sqrt, &imbalanced, &va);
    assert_eq!(weighted, figures(&sqrt, &imbalanced, &va));
    assert_ne!(weighted, figures(&base, &imbalanced, &va));
}
