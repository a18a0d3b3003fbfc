//! Fixtures shared by the tests: a tiny CNN artifact, synthetic faces, FER2013 if present.
#![allow(dead_code)]

use burn::module::Module;
use burn::tensor::Device;
use fer_core::Emotion;
use fer_core::transform::{Denoise, Equalize, Normalization, Transform};
use fer_models::ModelArtifact;
use fer_models::arch::{ModelConfig, Net};
use fer_models::settings::TrainSettings;
use image::GrayImage;
use std::path::{Path, PathBuf};

pub fn transform() -> Transform {
    Transform {
        size: 48,
        resize_filter: "triangle".into(),
        denoise: Denoise::None,
        equalize: Equalize::None,
        normalization: Normalization::Standardize {
            mean: 0.5,
            std: 0.25,
        },
    }
}

/// A small fer-small network, seeded, saved as a train_cnn model folder in `dir`.
pub fn tiny_model(dir: &Path, tta_flip: bool, eval_batch: usize) -> (Net, ModelArtifact) {
    tiny_model_seeded(dir, tta_flip, eval_batch, 7)
}

/// [`tiny_model`] with other initial weights (`seed`): a model "retrained" in the same folder.
pub fn tiny_model_seeded(
    dir: &Path,
    tta_flip: bool,
    eval_batch: usize,
    seed: u64,
) -> (Net, ModelArtifact) {
    tiny_model_of(dir, tta_flip, eval_batch, seed, &["happy", "not_happy"])
}

/// [`tiny_model_seeded`] of the classes `classes` (e.g. `LabelMode::Emotion7.class_names()`:
/// a seven-class CNN as train_cnn saves one).
pub fn tiny_model_of(
    dir: &Path,
    tta_flip: bool,
    eval_batch: usize,
    seed: u64,
    classes: &[&str],
) -> (Net, ModelArtifact) {
    let d = Device::flex();
    d.seed(seed);
    let mut cfg = ModelConfig::new("fer-small".into()).with_widths(vec![8, 16]);
    cfg.num_classes = classes.len();
    let net = cfg.init(&d);
    std::fs::create_dir_all(dir).unwrap();
    fer_models::checkpoint::save_weights(&net, &dir.join("model.safetensors")).unwrap();
    let art = ModelArtifact {
        model: cfg.clone(),
        settings: TrainSettings {
            name: "tiny".into(),
            eval_batch_size: eval_batch,
            tta_flip,
            widths: vec![8, 16],
            ..TrainSettings::default()
        },
        transform: transform(),
        class_names: classes.iter().map(|c| c.to_string()).collect(),
        tta_flip,
        params: net.num_params(),
        macs: Net::macs(&cfg),
    };
    std::fs::write(
        dir.join("model.json"),
        serde_json::to_string_pretty(&art).unwrap(),
    )
    .unwrap();
    (net, art)
}

/// The `i`-th drawn face (alternately happy and sad).
pub fn synthetic_face(i: usize) -> GrayImage {
    let e = if i.is_multiple_of(2) {
        Emotion::Happy
    } else {
        Emotion::Sad
    };
    GrayImage::from_raw(
        48,
        48,
        fer_test_support::synthetic_face(e, 100 + i as u64, 4.0),
    )
    .unwrap()
}

pub fn png(img: &GrayImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// FER2013 (`FER2013_DIR`, else the shared data folder), when present.
pub fn fer2013() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cands = [
        std::env::var_os("FER2013_DIR").map(PathBuf::from),
        Some(root.join("data/fer2013")),
        Some(root.join("../shared/data/fer2013")),
    ];
    cands
        .into_iter()
        .flatten()
        .find(|p| p.join("test").join("happy").is_dir())
}

/// The seed pipeline's fer-small model folder (or `FER_PREDICT_TEST_MODEL`), when present.
pub fn seed_model() -> Option<PathBuf> {
    let p = std::env::var_os("FER_PREDICT_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../artifacts/seed/train_cnn/fer-small")
        });
    p.join("model.json").is_file().then_some(p)
}
