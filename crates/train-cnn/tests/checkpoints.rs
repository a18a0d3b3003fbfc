//! train_cnn's crash safety: a torn or mismatched checkpoint generation (a weights file cut
//! short, weights of another epoch, a missing file, an epoch whose state was never written)
//! falls back to the last complete epoch, and with nothing complete left the run starts
//! clean; either way the run ends equal to an uninterrupted one, hash for hash. Also the
//! small-cases errors: images too small for an architecture, and an empty validation split.
//!
//! The training comparisons live in one test: the backend's seeded RNG (used to initialize
//! the networks) is one per process, and tests of one file run in parallel threads; so this
//! file is its own test binary (not merged with `train_cnn.rs`, whose tests draw from it too).

use fer_core::pipeline::PipelineFile;
use fer_core::tensors::TensorSet;
use fer_train_cnn::checkpoint::{self, generation_dir, generations};
use fer_train_cnn::settings::{self, TrainSettings};
use fer_train_cnn::train;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

/// Noise with a bright bar, its row depending on the class: a task a tiny CNN learns.
fn bars(n: usize, side: usize, seed: u64) -> TensorSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Vec::with_capacity(n * side * side);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let label = (i % 2) as u8;
        let mut img: Vec<f32> = (0..side * side)
            .map(|_| rng.random_range(-0.3..0.3f32))
            .collect();
        let row = if label == 0 { side / 4 } else { 3 * side / 4 };
        for c in 0..side {
            img[row * side + c] = 2.0;
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

fn tiny() -> TrainSettings {
    TrainSettings {
        arch: "fer-small".into(),
        name: "tiny".into(),
        seed: 5,
        batch_size: 32,
        epochs: 4,
        lr: 5e-3,
        patience: 0,
        widths: vec![8, 16],
        tta_flip: false,
        workers: 1,
        ..TrainSettings::default()
    }
}

fn no_aug() -> fer_train::ops::Augmenter {
    fer_train::ops::Augmenter {
        steps: vec![],
        side: 16,
        range: (-1.0, 2.0),
    }
}

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

/// What a finished run is compared on: its epochs without timings, its validation
/// predictions and the hash of its best weights' tensors.
#[derive(Debug, PartialEq)]
struct Outcome {
    rows: Vec<(usize, f64, f64, f64, f64, f64)>,
    probs: Vec<Vec<f64>>,
    best_hash: String,
}

fn outcome(t: &train::Trained, ckpt: &Path, val: &TensorSet) -> Outcome {
    let newest = generations(ckpt).unwrap()[0].1.clone();
    Outcome {
        rows: t
            .state
            .epochs
            .iter()
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
            .collect(),
        probs: train::predict(&t.model, val, 64, false, &fer_train_cnn::Device::flex()),
        best_hash: tensors_hash(&newest.join(checkpoint::BEST)),
    }
}

/// Hash of a safetensors file's tensors: its header without the metadata (which burn writes
/// in hash-map order, so the bytes of two equal files can differ) and its data.
fn tensors_hash(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header.remove("__metadata__");
    let mut all = serde_json::to_vec(&header).unwrap();
    all.extend_from_slice(&bytes[8 + n..]);
    fer_core::hash::hash_bytes(&all)
}

fn epochs_kept(ckpt: &Path) -> Vec<usize> {
    generations(ckpt).unwrap().iter().map(|g| g.0).collect()
}

#[test]
fn torn_or_mismatched_checkpoints_fall_back_and_the_run_ends_equal() {
    let (tr, va) = (bars(96, 16, 1), bars(48, 16, 2));
    let d = fer_train_cnn::Device::flex();
    let s = tiny();
    let run = |dir: &Path| train::train(&s, &tr, &va, &no_aug(), &d, dir, &|_, _, _| {}).unwrap();

    // The reference: straight through. Two generations are kept, each complete.
    let tmp = tempfile::tempdir().unwrap();
    let straight_dir = tmp.path().join("straight");
    let straight = run(&straight_dir);
    let want = outcome(&straight, &straight_dir, &va);
    assert_eq!(want.rows.len(), 4);
    assert_eq!(epochs_kept(&straight_dir), vec![4, 3]);
    for (epoch, dir) in generations(&straight_dir).unwrap() {
        let st = checkpoint::verify(&dir, epoch).unwrap();
        assert_eq!(st.files.len(), 3, "state.json names the hash of every file");
    }

    // A run stopped after epoch 2: generations 1 and 2.
    let paused = tmp.path().join("paused");
    train::train_until(&s, &tr, &va, &no_aug(), &d, &paused, 2, &|_, _, _| {}).unwrap();
    assert_eq!(epochs_kept(&paused), vec![2, 1]);
    let g = |dir: &Path, e: usize| generation_dir(dir, e);

    type Break = fn(&Path);
    let cases: [(&str, Break); 6] = [
        ("weights cut short", |c| {
            let f = generation_dir(c, 2).join(checkpoint::LAST);
            let bytes = std::fs::read(&f).unwrap();
            std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
        }),
        ("epoch 1's weights with epoch 2's state", |c| {
            std::fs::copy(
                generation_dir(c, 1).join(checkpoint::LAST),
                generation_dir(c, 2).join(checkpoint::LAST),
            )
            .unwrap();
        }),
        ("epoch 1's state with epoch 2's files", |c| {
            std::fs::copy(
                generation_dir(c, 1).join(checkpoint::STATE),
                generation_dir(c, 2).join(checkpoint::STATE),
            )
            .unwrap();
        }),
        ("the optimizer's file missing", |c| {
            std::fs::remove_file(generation_dir(c, 2).join(checkpoint::OPTIM)).unwrap();
        }),
        ("killed before the state was written", |c| {
            std::fs::remove_file(generation_dir(c, 2).join(checkpoint::STATE)).unwrap();
            std::fs::write(
                fer_core::atomic::temp_path(&generation_dir(c, 2).join(checkpoint::STATE)),
                b"{\"epochs\": [",
            )
            .unwrap();
        }),
        ("an unreadable state", |c| {
            std::fs::write(generation_dir(c, 2).join(checkpoint::STATE), b"{\"epo").unwrap();
        }),
    ];
    for (i, (what, break_it)) in cases.iter().enumerate() {
        let c = tmp.path().join(format!("case{i}"));
        copy_tree(&paused, &c);
        break_it(&c);
        assert!(
            checkpoint::verify(&g(&c, 2), 2).is_err(),
            "{what}: detected as broken"
        );
        let resumed = run(&c);
        assert_eq!(
            outcome(&resumed, &c, &va),
            want,
            "{what}: falls back to epoch 1 and ends equal"
        );
        assert_eq!(epochs_kept(&c), vec![4, 3], "{what}");
    }

    // Nothing complete left (both generations broken): a clean start, equal too.
    let c = tmp.path().join("all-broken");
    copy_tree(&paused, &c);
    for e in [1, 2] {
        std::fs::remove_file(g(&c, e).join(checkpoint::BEST)).unwrap();
    }
    let seen = std::cell::RefCell::new(Vec::new());
    let found = checkpoint::latest_good(&c, |_, st| Ok(st), &|m| {
        seen.borrow_mut().push(m.to_string())
    });
    assert!(found.unwrap().is_none());
    assert_eq!(
        seen.borrow().len(),
        3,
        "two broken generations and the clean start"
    );
    assert!(epochs_kept(&c).is_empty(), "broken generations removed");
    copy_tree(&paused, &c);
    for e in [1, 2] {
        std::fs::remove_file(g(&c, e).join(checkpoint::BEST)).unwrap();
    }
    let restarted = run(&c);
    assert_eq!(outcome(&restarted, &c, &va), want, "a clean restart");

    // A finished run found again is not trained again, whatever broke before it.
    let again = train::train(&s, &tr, &va, &no_aug(), &d, &c, &|_, _, _| {
        panic!("trained again")
    })
    .unwrap();
    assert_eq!(outcome(&again, &c, &va), want);
}

/// The warnings a fallback prints name the folder and what is wrong with it.
#[test]
fn a_broken_generation_is_reported_with_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = generation_dir(tmp.path(), 3);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(checkpoint::LAST), b"weights").unwrap();
    // A file where a generation folder belongs is broken too, and removed.
    let file = generation_dir(tmp.path(), 4);
    std::fs::write(&file, b"not a folder").unwrap();
    let seen = std::cell::RefCell::new(Vec::new());
    let found = checkpoint::latest_good(tmp.path(), |_, st| Ok(st), &|m| {
        seen.borrow_mut().push(m.to_string())
    })
    .unwrap();
    assert!(found.is_none());
    let seen = seen.into_inner();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[0].contains("epoch-0004"), "{}", seen[0]);
    assert!(
        seen[1].contains("epoch-0003") && seen[1].contains("no state.json"),
        "{}",
        seen[1]
    );
    assert!(seen[2].contains("starts from scratch"), "{}", seen[2]);
    assert!(!dir.exists() && !file.exists());
}

fn parse(text: &str) -> Result<settings::TrainCnnParams, String> {
    let pf = PipelineFile::parse(Path::new("pipelines/t.toml"), text).map_err(|e| e.to_string())?;
    settings::parse(&pf).map_err(|e| e.to_string())
}

#[test]
fn images_too_small_for_an_architecture_are_a_param_error_naming_the_size() {
    let seed_base = "[[train_cnn.models]]\narch = \"seed-base\"\n";
    let e = parse(&format!(
        "[preprocess]\nsize = 17\n[train_cnn]\n{seed_base}"
    ))
    .unwrap_err();
    assert!(
        e.starts_with("pipelines/t.toml: [preprocess] size: ")
            && e.contains("17x17")
            && e.contains("seed-base")
            && e.contains("18x18")
            && e.contains("models[0]"),
        "{e}"
    );
    assert!(
        parse(&format!(
            "[preprocess]\nsize = 18\n[train_cnn]\n{seed_base}"
        ))
        .is_ok()
    );
    assert!(
        parse(&format!("[train_cnn]\n{seed_base}")).is_ok(),
        "48 by default"
    );
    let e = parse("[preprocess]\nsize = 10\n[train_cnn]\narch = \"seed-tuned\"\n").unwrap_err();
    assert!(
        e.contains("[preprocess] size") && e.contains("11x11"),
        "{e}"
    );
    // Ours pools after every block but the last: 5 blocks need 16 pixels.
    let ours = "[train_cnn]\narch = \"fer-small\"\nwidths = [8, 8, 8, 8, 8]\n";
    let e = parse(&format!("[preprocess]\nsize = 15\n{ours}")).unwrap_err();
    assert!(
        e.contains("[preprocess] size") && e.contains("16x16"),
        "{e}"
    );
    assert!(parse(&format!("[preprocess]\nsize = 16\n{ours}")).is_ok());

    // Data smaller than the settings' network (run outside the pipeline) is an error too,
    // before any training, not an underflow.
    let s = TrainSettings {
        arch: "seed-base".into(),
        ..tiny()
    };
    let (tr, va) = (bars(8, 16, 1), bars(4, 16, 2));
    let tmp = tempfile::tempdir().unwrap();
    let e = match train::train(
        &s,
        &tr,
        &va,
        &no_aug(),
        &fer_train_cnn::Device::flex(),
        tmp.path(),
        &|_, _, _| {},
    ) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("trained on 16x16 images with seed-base"),
    };
    assert!(
        e.contains("16x16") && e.contains("[preprocess] size"),
        "{e}"
    );
}

#[test]
fn an_empty_validation_split_is_an_error() {
    // The library: before any training.
    let (tr, va) = (bars(8, 16, 1), bars(0, 16, 2));
    let tmp = tempfile::tempdir().unwrap();
    let e = match train::train(
        &tiny(),
        &tr,
        &va,
        &no_aug(),
        &fer_train_cnn::Device::flex(),
        tmp.path(),
        &|_, _, _| {},
    ) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("trained without a validation split"),
    };
    assert!(e.contains("validation split is empty"), "{e}");

    // The stage, on smoke with val_fraction = 0: refused when the pipeline file is validated,
    // before any data is read (the carved validation split would be empty), naming both keys.
    let smoke = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/smoke.toml"),
    )
    .unwrap();
    let text = smoke.replace("val_fraction = 0.2", "val_fraction = 0.0");
    assert_ne!(text, smoke);
    let pipeline = tmp.path().join("smoke.toml");
    std::fs::write(&pipeline, text).unwrap();
    let artifacts = tmp.path().join("artifacts");
    let e = fer_test_support::run_stage::<fer_train_cnn::Params>(&pipeline, &artifacts, &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("smoke.toml")
            && e.contains("[ingest] val_fraction")
            && e.contains("[train_cnn]"),
        "{e}"
    );
    assert!(!artifacts.join("smoke/train_cnn/manifest.json").exists());
}
