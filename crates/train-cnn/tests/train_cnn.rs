//! train_cnn: parameter counts, shapes, a tiny training run, checkpoints, bad params.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use fer_core::pipeline::PipelineFile;
use fer_core::tensors::TensorSet;
use fer_train_cnn::model::ModelConfig;
use fer_train_cnn::settings::{self, TrainSettings};
use fer_train_cnn::train;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// Smile (class 0: the curve's middle lower than its ends) or frown (class 1) on noise, at a
/// random position: a task a small CNN learns in a few epochs and a constant guess can't.
fn faces(n: usize, side: usize, seed: u64) -> TensorSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Vec::with_capacity(n * side * side);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let label = (i % 2) as u8;
        let mut img: Vec<f32> = (0..side * side)
            .map(|_| rng.random_range(-0.3..0.3f32))
            .collect();
        let (cx, cy) = (
            side as f32 / 2.0 + rng.random_range(-4.0..4.0f32),
            side as f32 / 2.0 + rng.random_range(-4.0..4.0f32),
        );
        let bend = if label == 0 { 5.0 } else { -5.0 };
        for k in 0..=40 {
            let t = k as f32 / 40.0 - 0.5;
            let px = (cx + t * side as f32 * 0.5).round() as i64;
            let py = (cy + bend * (1.0 - 4.0 * t * t)).round() as i64;
            for (dx, dy) in [(0, 0), (0, 1)] {
                let (xx, yy) = (px + dx, py + dy);
                if xx >= 0 && yy >= 0 && (xx as usize) < side && (yy as usize) < side {
                    img[yy as usize * side + xx as usize] = 2.0;
                }
            }
        }
        x.extend(img);
        y.push(label);
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

#[test]
fn parameter_counts_match_the_study() {
    let d = Device::flex();
    assert_eq!(
        ModelConfig::new("seed-base".into()).init(&d).num_params(),
        1_023_170
    );
    assert_eq!(
        ModelConfig::new("seed-tuned".into()).init(&d).num_params(),
        24_358_450
    );
    let ours = ModelConfig::new("fer-small".into()).init(&d).num_params();
    assert!(ours < 1_023_170 / 2, "ours has {ours} params");
}

/// The logits' dims of `c`'s network for a batch of `n` constant 48x48 images.
fn logits_dims(c: &ModelConfig, n: usize, d: &Device) -> [usize; 2] {
    let x = Tensor::<4>::from_data(
        TensorData::new(vec![0.1f32; n * 48 * 48], [n, 1, 48, 48]),
        d,
    );
    c.init(d).forward(x).dims()
}

#[test]
fn output_shapes() {
    let d = Device::flex();
    for arch in ["seed-base", "seed-tuned", "fer-small"] {
        assert_eq!(
            logits_dims(&ModelConfig::new(arch.into()), 3, &d),
            [3, 2],
            "{arch}"
        );
    }
}

#[test]
fn kernel_sizes_and_a_dense_layer_change_the_count_and_keep_the_shape() {
    let d = Device::flex();
    let base = ModelConfig::new("fer-small".into()).with_widths(vec![8, 16]);
    // conv 1->8 (3x3, no bias) + BN 8*4, conv 8->16 + BN 16*4, linear 16*2+2 (burn counts
    // BatchNorm's running mean and variance with its weight and bias).
    let n = |c: &ModelConfig| c.init(&d).num_params();
    assert_eq!(n(&base), 9 * 8 + 8 * 4 + 9 * 8 * 16 + 16 * 4 + 16 * 2 + 2);
    let k = base.clone().with_kernels(vec![5, 3]);
    assert_eq!(n(&k), n(&base) + 16 * 8);
    let h = base.clone().with_dense(10);
    assert_eq!(
        n(&h),
        n(&base) - (16 * 2 + 2) + (16 * 10 + 10) + (10 * 2 + 2)
    );
    for c in [k, h] {
        assert_eq!(logits_dims(&c, 2, &d), [2, 2]);
    }
}

#[test]
fn vgg_style_blocks_add_one_conv_per_block_and_keep_the_shape() {
    let d = Device::flex();
    let base = ModelConfig::new("fer-small".into()).with_widths(vec![8, 16]);
    let two = base.clone().with_convs(2);
    // A second conv (3x3, no bias) + BN per block: 8->8 and 16->16.
    let n = |c: &ModelConfig| c.init(&d).num_params();
    assert_eq!(
        n(&two),
        n(&base) + (9 * 8 * 8 + 8 * 4) + (9 * 16 * 16 + 16 * 4)
    );
    assert_eq!(
        fer_train_cnn::model::Net::macs(&two),
        fer_train_cnn::model::Net::macs(&base) + 48 * 48 * 8 * 8 * 9 + 24 * 24 * 16 * 16 * 9
    );
    assert_eq!(logits_dims(&two, 2, &d), [2, 2]);
}

#[test]
fn training_sizes_the_network_from_the_data() {
    // Three classes on 24x24 images: seed-base's flatten size depends on the side and its
    // output layer on the class count, so a network built for 48x48 / 2 classes would fail.
    let mut tr = faces(96, 24, 5);
    for (i, y) in tr.y.iter_mut().enumerate() {
        *y = (i % 3) as u8;
    }
    let va = faces(32, 24, 6);
    let s = TrainSettings {
        arch: "seed-base".into(),
        epochs: 1,
        max_train_batches: 2,
        ..tiny_settings()
    };
    let ckpt = tempfile::tempdir().unwrap();
    let d = Device::flex();
    let t = train::train(&s, &tr, &va, &no_aug(), &d, ckpt.path(), &|_, _, _| {}).unwrap();
    let probs = train::predict(&t.model, &va, 16, false, &d);
    assert_eq!(probs.len(), 32);
    assert!(probs.iter().all(|p| p.len() == 3), "{:?}", probs[0]);
    approx::assert_relative_eq!(probs[0].iter().sum::<f64>(), 1.0, epsilon = 1e-5);
}

/// `per_image_norm`: the trained network scores a face the same at any exposure (its pixels
/// times a gain plus an offset), on what `predict` gives for the validation faces.
#[test]
fn a_network_trained_with_per_image_norm_ignores_exposure() {
    let (tr, va) = (faces(96, 48, 11), faces(32, 48, 12));
    let s = TrainSettings {
        epochs: 1,
        max_train_batches: 2,
        per_image_norm: true,
        ..tiny_settings()
    };
    let ckpt = tempfile::tempdir().unwrap();
    let d = Device::flex();
    let t = train::train(&s, &tr, &va, &no_aug(), &d, ckpt.path(), &|_, _, _| {}).unwrap();
    let mut dark = va.clone();
    dark.x.iter_mut().for_each(|v| *v = 0.2 * *v - 1.5);
    let (a, b) = (
        train::predict(&t.model, &va, 16, false, &d),
        train::predict(&t.model, &dark, 16, false, &d),
    );
    for (pa, pb) in a.iter().zip(&b) {
        assert!((pa[0] - pb[0]).abs() < 1e-3, "{pa:?} vs {pb:?}");
    }
}

#[test]
fn train_until_pauses_and_continues_the_same_run() {
    let (tr, va) = (faces(128, 24, 1), faces(64, 24, 2));
    let d = Device::flex();
    let s = TrainSettings {
        epochs: 3,
        ..tiny_settings()
    };
    let whole = tempfile::tempdir().unwrap();
    let straight = train::train(&s, &tr, &va, &no_aug(), &d, whole.path(), &|_, _, _| {}).unwrap();
    let paused = tempfile::tempdir().unwrap();
    let one =
        train::train_until(&s, &tr, &va, &no_aug(), &d, paused.path(), 1, &|_, _, _| {}).unwrap();
    assert_eq!((one.state.epochs.len(), one.state.done), (1, false));
    let rest =
        train::train_until(&s, &tr, &va, &no_aug(), &d, paused.path(), 3, &|_, _, _| {}).unwrap();
    assert!(rest.state.done);
    // The paused run kept its first epoch and followed the same 3-epoch schedule. (Losses
    // are not compared: tests run in parallel and share the backend's seeded RNG.)
    assert_eq!(rest.state.epochs[0], one.state.epochs[0]);
    let lrs = |e: &[train::EpochRow]| e.iter().map(|r| (r.epoch, r.lr)).collect::<Vec<_>>();
    assert_eq!(lrs(&rest.state.epochs), lrs(&straight.state.epochs));
}

fn tiny_settings() -> TrainSettings {
    TrainSettings {
        arch: "fer-small".into(),
        name: "tiny".into(),
        seed: 3,
        batch_size: 32,
        epochs: 4,
        lr: 5e-3,
        patience: 0,
        widths: vec![8, 16, 16],
        tta_flip: false,
        ..TrainSettings::default()
    }
}

fn no_aug() -> fer_train::ops::Augmenter {
    fer_train::ops::Augmenter {
        steps: vec![],
        side: 24,
        range: (-1.0, 2.0),
    }
}

/// A run of `s` from scratch in a checkpoint folder of its own, on the CPU, without
/// augmentation.
fn fresh_run(
    s: &TrainSettings,
    tr: &TensorSet,
    va: &TensorSet,
) -> Result<train::Trained, fer_train_cnn::TrainError> {
    let ckpt = tempfile::tempdir().unwrap();
    train::train(
        s,
        tr,
        va,
        &no_aug(),
        &Device::flex(),
        ckpt.path(),
        &|_, _, _| {},
    )
}

#[test]
fn tiny_training_lowers_the_loss_and_beats_chance() {
    let (tr, va) = (faces(256, 24, 1), faces(128, 24, 2));
    let ckpt = tempfile::tempdir().unwrap();
    let s = tiny_settings();
    let t = train::train(
        &s,
        &tr,
        &va,
        &no_aug(),
        &Device::flex(),
        ckpt.path(),
        &|_, _, _| {},
    )
    .unwrap();
    let e = &t.state.epochs;
    assert_eq!(e.len(), 4);
    assert!(
        e.last().unwrap().train_loss < e[0].train_loss,
        "loss {:?}",
        e.iter().map(|r| r.train_loss).collect::<Vec<_>>()
    );
    let probs = train::predict(&t.model, &va, 64, false, &Device::flex());
    let (_, acc) = train::loss_and_accuracy(&probs, &va.y);
    assert!(acc > 0.75, "validation accuracy {acc}");
}

/// One epoch of `s` into a checkpoint folder, and a copy of that folder: two runs that
/// continue from the same saved state.
fn one_epoch_twice(
    s: &TrainSettings,
    tr: &TensorSet,
    va: &TensorSet,
    d: &Device,
) -> (tempfile::TempDir, tempfile::TempDir) {
    let a = tempfile::tempdir().unwrap();
    train::train_until(s, tr, va, &no_aug(), d, a.path(), 1, &|_, _, _| {}).unwrap();
    let b = tempfile::tempdir().unwrap();
    copy_tree(a.path(), b.path());
    (a, b)
}

/// Copy a checkpoint folder (its generation folders included).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap();
        if f.file_type().unwrap().is_dir() {
            copy_tree(&f.path(), &to.join(f.file_name()));
        } else {
            std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
        }
    }
}

/// An epoch table without its timings, for exact comparison.
fn rows(e: &[train::EpochRow]) -> Vec<(usize, f64, f64, f64, f64, f64)> {
    e.iter()
        .map(|r| {
            (
                r.epoch,
                r.train_loss,
                r.train_acc,
                r.val_loss,
                r.val_acc,
                r.lr,
            )
        })
        .collect()
}

/// Two data-parallel workers: the loss falls, validation (BatchNorm's running statistics)
/// beats chance, and the run is deterministic: two continuations of the same checkpoint give
/// identical epochs and predictions, dropout included (its masks come from a seeded stream
/// per step and part, not from the backend's one RNG that both parts would race for). Both
/// continue from saved weights because tests run in parallel and initialization does use
/// the backend's RNG.
#[test]
fn data_parallel_workers_learn_and_are_deterministic() {
    let (tr, va) = (faces(256, 24, 1), faces(128, 24, 2));
    let d = Device::flex();
    let s = TrainSettings {
        workers: 2,
        dropout: 0.3,
        ..tiny_settings()
    };
    let (a, b) = one_epoch_twice(&s, &tr, &va, &d);
    let ta = train::train(&s, &tr, &va, &no_aug(), &d, a.path(), &|_, _, _| {}).unwrap();
    let tb = train::train(&s, &tr, &va, &no_aug(), &d, b.path(), &|_, _, _| {}).unwrap();
    assert_eq!(rows(&ta.state.epochs), rows(&tb.state.epochs));
    let e = &ta.state.epochs;
    assert_eq!(e.len(), 4);
    assert!(
        e.last().unwrap().train_loss < e[0].train_loss,
        "loss {:?}",
        e.iter().map(|r| r.train_loss).collect::<Vec<_>>()
    );
    let pa = train::predict(&ta.model, &va, 64, false, &d);
    assert_eq!(pa, train::predict(&tb.model, &va, 64, false, &d));
    let (_, acc) = train::loss_and_accuracy(&pa, &va.y);
    assert!(acc > 0.75, "validation accuracy {acc}");
}

/// Resuming is exact: from one checkpoint, a run paused and resumed after every epoch (as
/// tune's rungs do) gives the same epochs and predictions as one that runs straight on. The
/// optimizer's state is keyed by parameter ids that safetensors does not keep, so this fails
/// if a resumed run restarts Adam's moments. The same with a moving average of the weights
/// (kept in each checkpoint) and mixup.
#[test]
fn a_paused_and_resumed_run_equals_a_straight_one() {
    let (tr, va) = (faces(256, 24, 1), faces(128, 24, 2));
    let d = Device::flex();
    let plain = TrainSettings {
        workers: 2,
        ..tiny_settings()
    };
    let averaged = TrainSettings {
        ema: 0.9,
        mixup: 0.3,
        ..plain.clone()
    };
    for s in [plain, averaged] {
        let (a, b) = one_epoch_twice(&s, &tr, &va, &d);
        let straight = train::train(&s, &tr, &va, &no_aug(), &d, a.path(), &|_, _, _| {}).unwrap();
        for until in 2..=s.epochs {
            train::train_until(&s, &tr, &va, &no_aug(), &d, b.path(), until, &|_, _, _| {})
                .unwrap();
        }
        let paused = train::train(&s, &tr, &va, &no_aug(), &d, b.path(), &|_, _, _| {}).unwrap();
        assert_eq!(rows(&paused.state.epochs), rows(&straight.state.epochs));
        assert_eq!(
            train::predict(&paused.model, &va, 64, false, &d),
            train::predict(&straight.model, &va, 64, false, &d)
        );
        if s.ema > 0.0 {
            let newest = fer_train_cnn::checkpoint::generation_dir(b.path(), s.epochs);
            assert!(newest.join(fer_train_cnn::checkpoint::EMA).is_file());
        }
    }
}

#[test]
fn checkpoint_round_trip_gives_identical_outputs_and_bad_files_are_named() {
    let d = Device::flex();
    d.seed(11);
    let cfg = ModelConfig::new("fer-small".into()).with_widths(vec![8, 16]);
    let m = cfg.init(&d);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    train::save_weights(&m, &p).unwrap();
    let back = train::load_weights(&cfg, &p, &d).unwrap();
    let data = faces(10, 48, 5);
    assert_eq!(
        train::predict(&m, &data, 4, true, &d),
        train::predict(&back, &data, 4, true, &d)
    );

    let missing = train::load_weights(&cfg, &dir.path().join("nope.safetensors"), &d)
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("nope.safetensors") && missing.contains("not found"),
        "{missing}"
    );
    std::fs::write(dir.path().join("bad.safetensors"), b"not a checkpoint").unwrap();
    let corrupt = train::load_weights(&cfg, &dir.path().join("bad.safetensors"), &d)
        .unwrap_err()
        .to_string();
    assert!(corrupt.contains("bad.safetensors"), "{corrupt}");
    let other = ModelConfig::new("seed-base".into());
    let wrong = train::load_weights(&other, &p, &d).unwrap_err().to_string();
    assert!(wrong.contains("m.safetensors"), "{wrong}");
}

#[test]
fn interrupted_training_resumes_after_the_last_epoch() {
    let (tr, va) = (faces(128, 24, 1), faces(64, 24, 2));
    let d = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let s = TrainSettings {
        epochs: 3,
        ..tiny_settings()
    };
    // Stop after 2 of 3 epochs (as a kill after epoch 2 would leave it), then run again.
    let two = TrainSettings {
        epochs: 2,
        ..s.clone()
    };
    let first = train::train(&two, &tr, &va, &no_aug(), &d, dir.path(), &|_, _, _| {}).unwrap();
    let state_path = fer_train_cnn::checkpoint::generation_dir(dir.path(), 2).join("state.json");
    let mut st: train::TrainState =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    st.done = false;
    std::fs::write(&state_path, serde_json::to_string(&st).unwrap()).unwrap();
    let batches_seen = std::cell::Cell::new(0u64);
    let resumed = train::train(&s, &tr, &va, &no_aug(), &d, dir.path(), &|_, pos, _| {
        batches_seen.set(batches_seen.get().max(pos))
    })
    .unwrap();
    assert_eq!(resumed.state.epochs.len(), 3);
    // The first two epochs were not trained again: their rows are the first run's.
    assert_eq!(resumed.state.epochs[..2], first.state.epochs[..]);
    assert_eq!(resumed.state.epochs[2].epoch, 3);
    assert_eq!(batches_seen.get(), 128 / 32, "only epoch 3 ran");
    // A finished run is not trained again at all.
    let again = train::train(&s, &tr, &va, &no_aug(), &d, dir.path(), &|_, _, _| {
        panic!("trained again")
    })
    .unwrap();
    assert_eq!(again.state, resumed.state);
}

fn parse(text: &str) -> Result<settings::TrainCnnParams, String> {
    let pf = PipelineFile::parse(Path::new("pipelines/t.toml"), text).map_err(|e| e.to_string())?;
    settings::parse(&pf).map_err(|e| e.to_string())
}

/// Rules across sections fail when the pipeline file is validated (parsing reads no data),
/// naming both keys.
#[test]
fn cross_section_rules_fail_at_validation() {
    let pre = "[train_cnn]\npretrain_epochs = 2\n";
    let e = parse(pre).unwrap_err();
    assert!(
        e.contains("[train_cnn] pretrain_epochs") && e.contains("[ingest] pretrain_pool = true"),
        "{e}"
    );
    assert!(parse(&format!("[ingest]\npretrain_pool = true\n{pre}")).is_ok());
    let listed = "[ingest]\npretrain_pool = false\n[train_cnn]\n[[train_cnn.models]]\narch = \"fer-small\"\n[[train_cnn.models]]\narch = \"seed-base\"\npretrain_epochs = 1\n";
    let e = parse(listed).unwrap_err();
    assert!(e.contains("[train_cnn] models[1].pretrain_epochs"), "{e}");
    // Soft targets: happy's share for binary, the seven emotions' shares for seven classes.
    let soft = "[train_cnn]\nsoft_targets = true\n";
    assert!(parse(soft).is_ok(), "binary is the default label mode");
    assert!(parse(&format!("[ingest]\nlabel_mode = \"emotion7\"\n{soft}")).is_ok());
    // Synthetic faces have no votes.
    let e = parse(&format!("[ingest]\nsource = \"synthetic\"\n{soft}")).unwrap_err();
    assert!(
        e.contains("[train_cnn] soft_targets") && e.contains("[ingest] source = \"synthetic\""),
        "{e}"
    );
    // Every model's best epoch is chosen on the validation split: there must be one.
    let e = parse("[ingest]\nval_fraction = 0.0\n[train_cnn]\n").unwrap_err();
    assert!(
        e.contains("[ingest] val_fraction") && e.contains("[train_cnn]"),
        "{e}"
    );
    assert!(
        parse("[ingest]\nprotocol = \"full\"\nval_fraction = 0.0\nvalidation = \"public_test\"\n[train_cnn]\n")
            .is_ok()
    );
}

#[test]
fn bad_params_name_the_key() {
    let ok = parse("[train_cnn]\nepochs = 2\n[[train_cnn.models]]\narch = \"seed-base\"\n[[train_cnn.models]]\narch = \"fer-small\"\nlr = 0.01\n").unwrap();
    assert_eq!(ok.models.len(), 2);
    assert_eq!((ok.models[0].epochs, ok.models[1].lr), (2, 0.01));
    for (text, key) in [
        ("[train_cnn]\narch = \"resnet\"\n", "arch"),
        ("[train_cnn]\nlr = 0.0\n", "lr"),
        ("[train_cnn]\nlr = -1.0\n", "lr"),
        ("[train_cnn]\nbatch_size = 0\n", "batch_size"),
        ("[train_cnn]\nworkers = 0\n", "workers"),
        ("[train_cnn]\nworkers = \"many\"\n", "workers"),
        ("[train_cnn]\nbatch_size = 4\nworkers = 4\n", "workers"),
        (
            "[train_cnn]\n[[train_cnn.models]]\narch = \"fer-small\"\nbatch_size = 0\n",
            "models[0].batch_size",
        ),
        ("[train_cnn]\nschedule = \"step\"\n", "schedule"),
        ("[train_cnn]\nlabel_smoothing = 1.0\n", "label_smoothing"),
        ("[train_cnn]\nwidths = [8, 16]\nkernels = [3]\n", "kernels"),
        (
            "[train_cnn]\nwidths = [8, 16]\nkernels = [3, 4]\n",
            "kernels",
        ),
        (
            "[train_cnn]\n[[train_cnn.ops]]\nkind = \"hflip\"\np = 2.0\n",
            "ops[0].p",
        ),
        (
            "[train_cnn]\narch = \"seed-base\"\nper_image_norm = true\n",
            "per_image_norm",
        ),
        (
            "[train_cnn]\nper_image_norm_centre = true\n",
            "per_image_norm_centre",
        ),
        ("[train_cnn]\noptimizer = \"lbfgs\"\n", "optimizer"),
        ("[train_cnn]\nmomentum = 0.8\n", "momentum"),
        (
            "[train_cnn]\noptimizer = \"sgd\"\nmomentum = 1.0\n",
            "momentum",
        ),
        (
            "[train_cnn]\nclass_weight_power = 0.0\n",
            "class_weight_power",
        ),
        (
            "[train_cnn]\nclass_weight_power = 2.0\n",
            "class_weight_power",
        ),
        ("[train_cnn]\nmixup = -0.2\n", "mixup"),
        ("[train_cnn]\nema = 1.0\n", "ema"),
    ] {
        let e = parse(text).unwrap_err();
        assert!(
            e.contains(&format!("[train_cnn] {key}")),
            "{text:?} gave {e}"
        );
        assert!(e.starts_with("pipelines/t.toml"), "{e}");
    }
    let ok = parse(
        "[train_cnn]\noptimizer = \"sgd\"\nmomentum = 0.8\nclass_weight_power = 0.5\nmixup = 0.2\n",
    )
    .unwrap();
    let m = &ok.models[0];
    assert_eq!(
        (
            m.optimizer.as_str(),
            m.momentum,
            m.class_weight_power,
            m.mixup
        ),
        ("sgd", 0.8, 0.5, 0.2)
    );
    let e = parse("[train_cnn]\nepoch = 3\n").unwrap_err();
    assert!(e.contains("unknown field `epoch`"), "{e}");
}

/// `workers = "auto"`, and no `workers` at all, resolve to the machine's cores with at least
/// `MIN_PART` images a part, per model's batch size; the number is what the params (and so the
/// stage signature) record.
#[test]
fn auto_workers_resolve_per_batch_size_into_the_params() {
    let p = parse(
        "[train_cnn]\nworkers = \"auto\"\n[[train_cnn.models]]\narch = \"fer-small\"\n\
         [[train_cnn.models]]\narch = \"seed-base\"\nbatch_size = 16\n\
         [[train_cnn.models]]\narch = \"fer-small\"\nname = \"one\"\nworkers = 1\n",
    )
    .unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(
        p.models[0].workers,
        cores.min(64 / settings::MIN_PART).clamp(1, 16)
    );
    assert_eq!(p.models[0].workers, settings::auto_workers(64));
    assert_eq!(p.models[1].workers, 1, "batch 16 is one part of 16 images");
    assert_eq!(p.models[2].workers, 1);
    let absent = parse("[train_cnn]\n").unwrap();
    assert_eq!(absent.models[0].workers, settings::auto_workers(64));
    let json = serde_json::to_value(&p.models[0]).unwrap();
    assert_eq!(json["workers"], settings::auto_workers(64));
}

// ---- soft targets, FERPlus truths, weights in PyTorch's layout -------------------------------

#[test]
fn soft_loss_is_burns_for_hard_targets_and_the_formula_for_vote_shares() {
    use fer_core::tensors::NO_SHARE;
    use fer_train_cnn::loss::{Loss, soft_target};
    let d = Device::flex();
    let z = [2.0f32, -1.0, 0.5, 0.25, -0.75, 1.5];
    let logits = || Tensor::<2>::from_data(TensorData::new(z.to_vec(), [3, 2]), &d);
    let ys = [0i64, 1, 0];
    let (eps, w) = (0.1f32, vec![2.0f32, 0.5]);
    let burn = burn::nn::loss::CrossEntropyLossConfig::new()
        .with_smoothing(Some(eps))
        .with_weights(Some(w.clone()))
        .init(&d);
    let soft = Loss::Soft {
        smoothing: eps,
        class_weights: w.clone(),
        classes: 2,
        width: 1,
    };
    let value = |t: Tensor<1>| -> f32 { t.into_scalar() };
    let hard_burn = value(Loss::Hard(burn).forward(logits(), &ys, &[], &d));
    let hard_soft = value(soft.forward(logits(), &ys, &[NO_SHARE; 3], &d));
    assert!(
        (hard_burn - hard_soft).abs() < 1e-5,
        "{hard_burn} vs {hard_soft}"
    );
    // Vote shares: by hand, -sum_k w_k q_ik log p_ik / sum_i w_(y_i).
    let shares = [0.7f32, 0.2, NO_SHARE];
    let got = value(soft.forward(logits(), &ys, &shares, &d));
    let mut want = 0f64;
    for i in 0..3 {
        let (a, b) = (z[2 * i] as f64, z[2 * i + 1] as f64);
        let lse = (a.exp() + b.exp()).ln();
        let q = soft_target(ys[i] as u8, &shares[i..=i], eps, 2);
        want -= w[0] as f64 * q[0] as f64 * (a - lse) + w[1] as f64 * q[1] as f64 * (b - lse);
    }
    want /= (w[0] + w[1] + w[0]) as f64;
    assert!((got as f64 - want).abs() < 1e-5, "{got} vs {want}");
    let near = |a: Vec<f32>, b: [f32; 2]| (a[0] - b[0]).abs() < 1e-6 && (a[1] - b[1]).abs() < 1e-6;
    assert!(near(soft_target(1, &[0.7], 0.0, 2), [0.7, 0.3]));
    assert!(near(soft_target(1, &[NO_SHARE], 0.2, 2), [0.1, 0.9]));
    // A row of shares (seven classes, or mixup's blended rows) is the target itself, smoothed;
    // a row without votes is the hard label's.
    let row = [0.5, 0.0, 0.0, 0.25, 0.0, 0.0, 0.25];
    let q = soft_target(3, &row, 0.07, 7);
    for (a, b) in q.iter().zip(row) {
        assert!((a - (0.93 * b + 0.01)).abs() < 1e-6, "{q:?}");
    }
    assert_eq!(soft_target(3, &[NO_SHARE; 7], 0.0, 7)[3], 1.0);
    assert_eq!(
        soft_target(3, &[0.6], 0.0, 7)[3],
        1.0,
        "one share of seven classes"
    );
    // Seven classes with shares: the formula again, rows of width 7.
    let d7 = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [2, 7]), &d);
    let z7: Vec<f32> = (0..14).map(|i| (i as f32 * 0.37).sin()).collect();
    let rows: Vec<f32> = [row, [NO_SHARE; 7]].concat();
    let seven = Loss::Soft {
        smoothing: 0.0,
        class_weights: Vec::new(),
        classes: 7,
        width: 7,
    };
    let got = value(seven.forward(d7(z7.clone()), &[3, 5], &rows, &d));
    let mut want = 0f64;
    for (i, y) in [3usize, 5].into_iter().enumerate() {
        let z = &z7[i * 7..(i + 1) * 7];
        let lse = z.iter().map(|v| (*v as f64).exp()).sum::<f64>().ln();
        let q = soft_target(y as u8, &rows[i * 7..(i + 1) * 7], 0.0, 7);
        want -= (0..7)
            .map(|k| q[k] as f64 * (z[k] as f64 - lse))
            .sum::<f64>();
    }
    want /= 2.0;
    assert!((got as f64 - want).abs() < 1e-5, "{got} vs {want}");
}

#[test]
fn soft_targets_train_on_vote_shares_and_need_them() {
    let (mut tr, va) = (faces(128, 24, 1), faces(64, 24, 2));
    let s = TrainSettings {
        soft_targets: true,
        epochs: 1,
        ..tiny_settings()
    };
    let run = |tr: &TensorSet| fresh_run(&s, tr, &va);
    let err = run(&tr).err().expect("no votes: an error").to_string();
    assert!(
        err.contains("soft_targets = true needs FERPlus votes"),
        "{err}"
    );
    tr.truths = Some(fer_core::tensors::Truths {
        fer2013: tr.y.clone(),
        ferplus: tr.y.clone(),
        happy_share: tr
            .y
            .iter()
            .map(|&y| if y == 0 { 0.8 } else { 0.1 })
            .collect(),
        emotion_shares: Vec::new(),
    });
    let t = run(&tr).expect("trains on shares");
    assert!(t.state.epochs[0].train_loss.is_finite());
}

/// Seven classes of the test faces: label `i % 7`, the binary drawing by whether it is 0.
fn faces7(n: usize, seed: u64) -> TensorSet {
    let mut t = faces(n, 24, seed);
    t.y = (0..n).map(|i| (i % 7) as u8).collect();
    t
}

#[test]
fn seven_class_soft_targets_train_on_each_emotions_share_and_need_them() {
    let (mut tr, va) = (faces7(140, 1), faces7(70, 2));
    let s = TrainSettings {
        soft_targets: true,
        epochs: 1,
        ..tiny_settings()
    };
    let run = |tr: &TensorSet| fresh_run(&s, tr, &va);
    // Votes, but only happy's share (a binary set's truths): named, with the fix.
    let mut truths = fer_core::tensors::Truths {
        fer2013: tr.y.clone(),
        ferplus: tr.y.clone(),
        happy_share: vec![0.5; tr.n],
        emotion_shares: Vec::new(),
    };
    tr.truths = Some(truths.clone());
    let err = run(&tr).err().expect("no seven-class shares").to_string();
    assert!(
        err.contains("emotion_shares") && err.contains("7 classes"),
        "{err}"
    );
    // Each image: 0.6 of its own emotion, 0.4 of the next one; every tenth without votes.
    truths.emotion_shares =
        tr.y.iter()
            .enumerate()
            .flat_map(|(i, &y)| {
                let mut row = [0f32; 7];
                if i % 10 == 0 {
                    row = [fer_core::tensors::NO_SHARE; 7];
                } else {
                    row[y as usize] = 0.6;
                    row[(y as usize + 1) % 7] = 0.4;
                }
                row
            })
            .collect();
    tr.truths = Some(truths.clone());
    let soft = run(&tr).expect("trains on seven-class shares");
    // With mixup, an image without votes blends its one-hot row, never the NO_SHARE marks: every
    // target row stays a distribution, so the cross-entropy stays positive.
    let mixed = TrainSettings {
        mixup: 0.4,
        ..s.clone()
    };
    let m = fresh_run(&mixed, &tr, &va).expect("trains with mixup");
    assert!(m.state.epochs[0].train_loss > 0.5, "{:?}", m.state.epochs);
    // The shares are the target: other shares, another first epoch.
    truths.emotion_shares = truths
        .emotion_shares
        .chunks(7)
        .flat_map(|r| r.iter().rev().copied().collect::<Vec<_>>())
        .collect();
    tr.truths = Some(truths);
    let other = run(&tr).expect("trains");
    assert_ne!(
        soft.state.epochs[0].train_loss,
        other.state.epochs[0].train_loss
    );
}

#[test]
fn pytorch_layout_weights_round_trip_and_start_a_run() {
    let d = Device::flex();
    let s = tiny_settings();
    let cfg = ModelConfig::for_settings(&s, 24, 2);
    let model = cfg.init(&d);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("torch.safetensors");
    fer_models::checkpoint::save_pytorch(&model, &file).unwrap();
    let back = fer_models::checkpoint::load_pytorch(&cfg, &file, &d).unwrap();
    let x = faces(8, 24, 5);
    let p1 = fer_models::score::predict(&model, &x, 8, false, &d);
    let p2 = fer_models::score::predict(&back, &x, 8, false, &d);
    assert_eq!(p1, p2);
    // A file of another architecture is named, with what does not fit.
    let other = ModelConfig::for_settings(
        &TrainSettings {
            widths: vec![8, 16],
            ..tiny_settings()
        },
        24,
        2,
    );
    let err = fer_models::checkpoint::load_pytorch(&other, &file, &d)
        .err()
        .expect("another architecture")
        .to_string();
    assert!(err.contains("torch.safetensors"), "{err}");
    // `init` starts training from the file: with a learning rate of ~0, a run started from a
    // trained model's weights has that model's (low) training loss, a random start does not.
    let (tr, va) = (faces(256, 24, 1), faces(64, 24, 2));
    let c0 = tempfile::tempdir().unwrap();
    let trained = train::train(&s, &tr, &va, &no_aug(), &d, c0.path(), &|_, _, _| {}).unwrap();
    let good = dir.path().join("trained.safetensors");
    fer_models::checkpoint::save_pytorch(&trained.model, &good).unwrap();
    let frozen = TrainSettings {
        lr: 1e-12,
        min_lr: 0.0,
        warmup_epochs: 0,
        epochs: 1,
        ..tiny_settings()
    };
    let first_loss = |s: &TrainSettings| {
        let c = tempfile::tempdir().unwrap();
        let t = train::train(s, &tr, &va, &no_aug(), &d, c.path(), &|_, _, _| {}).unwrap();
        t.state.epochs[0].train_loss
    };
    let from_file = first_loss(&TrainSettings {
        init: good.display().to_string(),
        ..frozen.clone()
    });
    let random = first_loss(&frozen);
    assert!(from_file < random - 0.05, "{from_file} vs {random}");
}
