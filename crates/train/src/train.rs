//! The training loop: seeded shuffles, online augmentation into one reused batch buffer,
//! AdamW/Adam, cosine or plateau schedule, label smoothing, class weights, early stopping on
//! validation loss, a checkpoint after every epoch to resume from; hard or soft targets
//! ([`crate::loss`]); a start from given weights (`init`, PyTorch layout).

use crate::loss::Loss;
use crate::ops::Augmenter;
use crate::settings::TrainSettings;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use fer_core::tensors::TensorSet;
use fer_models::arch::Net;
pub use fer_models::checkpoint::{load_weights, save_weights};
pub use fer_models::score::{argmax, predict};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}: {message}")]
    Checkpoint { path: String, message: String },
    #[error(transparent)]
    Core(#[from] fer_core::Error),
    #[error(transparent)]
    Model(#[from] fer_models::ModelError),
    #[error("training diverged at epoch {epoch}: loss is {loss}")]
    Diverged { epoch: usize, loss: f32 },
    /// Settings the data cannot serve (e.g. soft targets without FERPlus votes).
    #[error("{0}")]
    Data(String),
}

/// One row of the per-epoch table (`epochs.parquet`, the schema in core).
pub use fer_schema::epochs::EpochRow;

/// Resume state, written after every epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainState {
    pub epochs: Vec<EpochRow>,
    pub best_val_loss: f64,
    pub best_epoch: usize,
    /// The learning rate the plateau schedule has reached.
    pub plateau_lr: f64,
    pub stale: usize,
    pub done: bool,
    pub train_seconds: f64,
    /// The model's parameter ids in visit order. safetensors keeps no parameter identity and
    /// the optimizer's state is keyed by it, so a resumed run gives the reloaded model these
    /// ids again; without them Adam's moments would silently start over.
    #[serde(default)]
    pub param_ids: Vec<u64>,
    /// blake3 hashes of the checkpoint files this state belongs to (file name -> hash),
    /// written with it in its generation folder ([`crate::checkpoint`]): a resumed run uses a
    /// checkpoint only when its files match.
    #[serde(default)]
    pub files: std::collections::BTreeMap<String, String>,
}

/// Parameter ids of a module in visit order.
pub fn param_ids(model: &Net) -> Vec<u64> {
    struct Ids(Vec<u64>);
    impl ModuleVisitor for Ids {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0.push(p.id.val());
        }
    }
    let mut v = Ids(Vec::new());
    model.visit(&mut v);
    v.0
}

/// `model` with the parameter ids `ids` (as [`param_ids`] listed them).
pub(crate) fn with_param_ids(model: Net, ids: &[u64]) -> Net {
    struct SetIds<'a>(&'a [u64], usize);
    impl ModuleMapper for SetIds<'_> {
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (id, value, mapper) = p.consume();
            let id = self.0.get(self.1).map_or(id, |&v| ParamId::from(v));
            self.1 += 1;
            Param::from_mapped_value(id, value, mapper)
        }
    }
    model.map(&mut SetIds(ids, 0))
}

/// Mean cross-entropy (natural log) and accuracy of probabilities against labels.
pub fn loss_and_accuracy(probs: &[Vec<f64>], y: &[u8]) -> (f64, f64) {
    let n = y.len().max(1) as f64;
    let loss = probs
        .iter()
        .zip(y)
        .map(|(p, &t)| -(p[t as usize].max(1e-12)).ln())
        .sum::<f64>()
        / n;
    let acc = probs
        .iter()
        .zip(y)
        .filter(|(p, t)| argmax(p) == **t as usize)
        .count() as f64
        / n;
    (loss, acc)
}

/// Macro F1 of the argmax of `probs` against `y` over `k` classes (a class with no true and no
/// predicted image counts as F1 0, as scikit-learn's default).
pub fn macro_f1(probs: &[Vec<f64>], y: &[u8], k: usize) -> f64 {
    let pred: Vec<u8> = probs.iter().map(|p| argmax(p) as u8).collect();
    let names: Vec<String> = (0..k).map(|c| c.to_string()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    fer_eval::metrics::classification_metrics(y, &pred, &names, None)
        .macro_avg
        .f1
}

/// Learning rate at `step` of `total` (cosine after linear warmup).
pub fn cosine_lr(s: &TrainSettings, step: usize, total: usize, warmup: usize) -> f64 {
    if step < warmup {
        return s.lr * (step + 1) as f64 / warmup as f64;
    }
    let t = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
    s.min_lr + 0.5 * (s.lr - s.min_lr) * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
}

/// What training needs of its data, checked before any work: a validation split with images
/// (the best epoch, early stopping and the plateau schedule are chosen on it), training
/// images, and images large enough for the network.
pub fn check_data(
    s: &TrainSettings,
    cfg: &fer_models::arch::ModelConfig,
    train: &TensorSet,
    val: &TensorSet,
) -> Result<(), TrainError> {
    if val.n == 0 {
        return Err(TrainError::Data(format!(
            "{}: the validation split is empty: the best epoch, early stopping and the plateau \
             schedule are chosen on it; give it images ([ingest] val_fraction > 0)",
            s.name
        )));
    }
    if train.n == 0 {
        return Err(TrainError::Data(format!(
            "{}: the training split is empty",
            s.name
        )));
    }
    fer_models::arch::check_side(&cfg.arch, cfg.widths.len(), train.height.min(train.width))
        .map_err(|m| TrainError::Data(format!("{}: {m} ([preprocess] size)", s.name)))
}

/// Classes of a training set: one more than its largest label, at least 2 (binary).
pub fn num_classes(train: &TensorSet) -> usize {
    train.y.iter().max().map_or(2, |&m| m as usize + 1).max(2)
}

/// Forward and backward pass of `x` (`ys.len()` images of `side`): the gradients (of the loss
/// times `scale` when given, so that parts sum to the whole batch's mean), the unscaled loss
/// and the number of correct predictions.
#[allow(clippy::too_many_arguments)]
pub(crate) fn part_step(
    model: &Net,
    loss_fn: &Loss,
    x: &[f32],
    ys: &[i64],
    shares: &[f32],
    side: (usize, usize),
    scale: Option<f64>,
    mask_seed: u64,
    ad: &Device,
) -> (GradientsParams, f32, usize) {
    let n = ys.len();
    let x = Tensor::<4>::from_data(TensorData::new(x.to_vec(), [n, 1, side.0, side.1]), ad);
    let logits = model.forward_train(x, mask_seed);
    let loss = loss_fn.forward(logits.clone(), ys, shares, ad);
    let lv: f32 = loss.clone().into_scalar();
    let lg: Vec<f32> = logits.into_data().try_to_vec().unwrap_or_default();
    let k = (lg.len() / n.max(1)).max(1);
    let right = lg
        .chunks(k)
        .zip(ys)
        .filter(|(row, y)| argmax(row) as i64 == **y)
        .count();
    let loss = match scale {
        Some(f) => loss.mul_scalar(f),
        None => loss,
    };
    let grads = GradientsParams::from_grads(loss.backward(), model);
    (grads, lv, right)
}

/// What a finished training gives back.
pub struct Trained {
    pub model: Net,
    pub state: TrainState,
}

/// Train one model. Checkpoints go to `ckpt`, one generation folder per finished epoch
/// (`epoch-NNNN/`: `last.safetensors`, `optim.bin`, `best.safetensors`, `state.json` last; see
/// [`crate::checkpoint`]); a run that finds them continues after the last complete epoch, and
/// gives the same results as a run that was never interrupted.
pub fn train(
    s: &TrainSettings,
    train: &TensorSet,
    val: &TensorSet,
    aug: &Augmenter,
    device: &Device,
    ckpt: &Path,
    progress: &dyn Fn(&str, u64, u64),
) -> Result<Trained, TrainError> {
    train_until(s, train, val, aug, device, ckpt, s.epochs, progress)
}

/// [`train`], pausing after epoch `until` (of `s.epochs`: the schedule still spans all of
/// them). Calling again with the same `ckpt` and a larger `until` continues the same run,
/// which is how `tune`'s successive halving promotes a trial to the next rung. Returns the
/// best checkpoint so far; `state.done` says whether the run has ended.
#[allow(clippy::too_many_arguments)]
pub fn train_until(
    s: &TrainSettings,
    train: &TensorSet,
    val: &TensorSet,
    aug: &Augmenter,
    device: &Device,
    ckpt: &Path,
    until: usize,
    progress: &dyn Fn(&str, u64, u64),
) -> Result<Trained, TrainError> {
    crate::trainer::Trainer::new(s, train, val, aug, device, ckpt, progress)?.until(until)
}
