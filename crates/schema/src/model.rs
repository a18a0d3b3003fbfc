//! A CNN model folder's `model.json` ([`ModelJson`]): the config that rebuilds the network,
//! its training settings ([`TrainSettings`]), the fitted transform and the class names.
//! train-cnn (and tune's `best/`) write it; fer-models reads it with the network's config type
//! (`fer_models::ModelArtifact = ModelJson<ModelConfig>`), the report with the config left as
//! JSON (`ModelJson<serde_json::Value>`): one type, no burn here.

use fer_core::error::Result;
use fer_core::transform::Transform;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `model.json`; `M` is the network's config (fer-models' `ModelConfig`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelJson<M> {
    pub model: M,
    pub settings: TrainSettings,
    pub transform: Transform,
    pub class_names: fer_core::Classes,
    pub tta_flip: bool,
    pub params: usize,
    pub macs: u64,
}

impl<M: serde::de::DeserializeOwned> ModelJson<M> {
    /// Read `<dir>/model.json`.
    pub fn load(dir: &Path) -> Result<ModelJson<M>> {
        super::read_json(&dir.join("model.json"))
    }
}

/// Training settings of one model (all keys optional; defaults below).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSettings {
    /// `seed-base`, `seed-tuned` or `fer-small` (ours).
    pub arch: String,
    /// Folder name of this model's outputs (default: the arch).
    pub name: String,
    pub seed: u64,
    pub batch_size: usize,
    pub epochs: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Floor of the cosine schedule / plateau reductions.
    pub min_lr: f64,
    /// `cosine` (per step, after `warmup_epochs`), `plateau` (halve after `plateau_patience`
    /// epochs without a better val loss) or `constant`.
    pub schedule: String,
    pub warmup_epochs: usize,
    pub plateau_patience: usize,
    /// `adamw`, `adam` or `sgd` (SGD with Nesterov momentum `momentum`, no dampening, L2
    /// weight decay: the recipe of VGGNet on FER2013, Khaireddin & Chen 2021).
    pub optimizer: String,
    /// The momentum of `optimizer = "sgd"`.
    #[serde(skip_serializing_if = "is_default_momentum")]
    pub momentum: f64,
    pub weight_decay: f64,
    pub label_smoothing: f32,
    /// Weight the loss by inverse class frequency (raised to `class_weight_power`).
    pub class_weights: bool,
    /// With `class_weights`: each class weighs `(n / (k * n_class)) ^ power`; 1 is inverse
    /// frequency, 0.5 its square root (milder on a rare class such as disgust). Without class
    /// weights it has no effect (so a pipeline that `extends` one with a power can still turn
    /// the weights off).
    #[serde(skip_serializing_if = "is_one_f64")]
    pub class_weight_power: f64,
    /// Mixup (Zhang et al. 2018): each training image is blended with another of its batch,
    /// `l * x_i + (1 - l) * x_j`, and so are their targets, with `l` drawn from
    /// Beta(mixup, mixup) per batch and taken as `max(l, 1 - l)` (so each image stays the
    /// larger part and keeps its label for the accuracy figures). 0 = off.
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub mixup: f64,
    /// The decay of an exponential moving average of the weights (0 = off; 0.999 is usual):
    /// validation, the best checkpoint and the exported model use the averaged weights
    /// (`fer_train::ema`).
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub ema: f64,
    /// Stop after this many epochs without a better validation loss (0 = never).
    pub patience: usize,
    /// Apply the `ops` chain to every training batch.
    pub augment: bool,
    /// Average the predictions of the image and its mirror at evaluation.
    pub tta_flip: bool,
    /// Cap on training batches per epoch (0 = all): for short, documented CPU runs of
    /// `seed-tuned`.
    pub max_train_batches: usize,
    pub eval_batch_size: usize,
    /// Ours only: dropout before the classifier and the channels of the conv blocks.
    pub dropout: f64,
    pub widths: Vec<usize>,
    /// Ours only: kernel size per conv block (empty = 3 everywhere; odd, 1..=7).
    pub kernels: Vec<usize>,
    /// Ours only: units of a hidden dense layer before the classifier (0 = none).
    pub dense: usize,
    /// Ours only: conv-BN-ReLU layers per block (1, or 2 for VGG-style blocks).
    pub convs: usize,
    /// Data-parallel CPU workers: each batch is split into this many equal parts, each part's
    /// forward and backward pass runs on its own single-threaded pool, and the gradients are
    /// summed (1 = the whole batch on the shared pool). burn's flex ops on one small batch
    /// barely use a second thread, so one part per core trains fastest. BatchNorm normalizes
    /// each part with its own statistics (ghost batch norm) and its running statistics follow
    /// part 0. Results are deterministic for a given value. In the pipeline file, `"auto"`
    /// (the default) resolves at validation to [`auto_workers`]: the machine's cores, but never
    /// fewer than [`MIN_PART`] images a part; the resolved number is what the stage signature
    /// records. Keep 1 on a GPU.
    pub workers: usize,
    /// Train on FERPlus's vote shares instead of the hard label. Binary: the target of happy
    /// is happiness' share of the 8 emotion votes, `s`, that of not happy `1 - s`. Seven
    /// classes: each emotion's share of the votes for the seven (contempt's left out). An
    /// image without votes keeps its hard label. Label smoothing mixes in as for hard labels,
    /// `(1 - label_smoothing) * target + label_smoothing / classes`; class weights weigh each
    /// class's term, normalized by the hard labels' weights (burn's convention for smoothed
    /// labels: with a one-hot target it is the hard loss). Needs FERPlus votes.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub soft_targets: bool,
    /// Epochs on ingest's pretraining pool (`pretrain_pool = true`: the FER2013 training images
    /// outside the sample, never a test image) before training on the sample, which starts
    /// from the pretrained weights with a fresh optimizer and schedule (0 = no pretraining).
    /// Pretraining takes this model's settings (and `soft_targets`) but its own epoch count,
    /// and keeps its best epoch on the sample's val split.
    #[serde(skip_serializing_if = "is_zero")]
    pub pretrain_epochs: usize,
    /// Peak learning rate of the pretraining (0 = `lr`), so that fine-tuning can take a
    /// smaller one.
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub pretrain_lr: f64,
    /// Start from weights you bring: a safetensors file in PyTorch's layout (`weight`/`bias`
    /// for BatchNorm's scale/shift, Linear weights `[out, in]`) of this model's architecture,
    /// with this network's parameter names (`--print-names` of fer-bench lists them). Empty:
    /// random initialization.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub init: String,
    /// Ours only: the network standardizes each input image itself (subtracts the image's
    /// mean and divides by its standard deviation) before the first conv, so a face's overall
    /// brightness and contrast, which a camera's exposure sets (a dark shop, a backlit
    /// doorway), never reach the model. It runs in training, after the augmentation chain,
    /// and wherever the model is used; it has no weights.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub per_image_norm: bool,
    /// With `per_image_norm`: the mean and standard deviation come from the image's central
    /// square of half its side (where the face is), and the standardized pixels are clamped to
    /// plus and minus 3. A bright window or lamp at the crop's edge then cannot set the
    /// face's contrast (it is clamped, not averaged in); a face framed as FER2013's is scaled
    /// by its own skin, eyes and mouth.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub per_image_norm_centre: bool,
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
}

fn is_one_f64(v: &f64) -> bool {
    *v == 1.0
}

/// SGD's default momentum, left out of `model.json` and the stage signature.
pub const DEFAULT_MOMENTUM: f64 = 0.9;

fn is_default_momentum(v: &f64) -> bool {
    *v == DEFAULT_MOMENTUM
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            arch: "fer-small".into(),
            name: String::new(),
            seed: 42,
            batch_size: 64,
            epochs: 30,
            lr: 2e-3,
            min_lr: 1e-5,
            schedule: "cosine".into(),
            warmup_epochs: 1,
            plateau_patience: 3,
            optimizer: "adamw".into(),
            momentum: DEFAULT_MOMENTUM,
            weight_decay: 1e-4,
            label_smoothing: 0.05,
            class_weights: true,
            class_weight_power: 1.0,
            mixup: 0.0,
            ema: 0.0,
            patience: 8,
            augment: true,
            tta_flip: true,
            max_train_batches: 0,
            eval_batch_size: 256,
            dropout: 0.3,
            widths: vec![32, 64, 128, 192],
            kernels: Vec::new(),
            dense: 0,
            convs: 1,
            workers: auto_workers(64),
            soft_targets: false,
            pretrain_epochs: 0,
            pretrain_lr: 0.0,
            init: String::new(),
            per_image_norm: false,
            per_image_norm_centre: false,
        }
    }
}

/// The fewest images a data-parallel part trains on when `workers = "auto"`: BatchNorm's
/// statistics over a handful of images are noise (16 is the ghost-batch size that keeps
/// them close to the whole batch's; batch 64 gets at most 4 workers).
pub const MIN_PART: usize = 16;

/// `workers = "auto"` for a batch of `batch_size`: the machine's cores, at most
/// `batch_size / MIN_PART` (and 16), at least 1.
pub fn auto_workers(batch_size: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.min(batch_size / MIN_PART).clamp(1, 16)
}
