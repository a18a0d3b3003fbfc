//! The training loss. Hard labels use burn's `CrossEntropyLoss` (label smoothing and class
//! weights are its options). Soft targets (`soft_targets = true`: FERPlus's vote shares) and
//! mixup's blended targets need a target distribution per image, which burn's loss does not
//! take (it wants class indices), hence [`soft_cross_entropy`], written here with burn's own
//! `log_softmax`:
//!
//! `loss = -sum_i sum_k w_k * q_ik * log softmax(z_i)_k / sum_i w_(y_i)`,
//!
//! where `q_i` is [`soft_target`]'s row, `w_k` class k's weight and `y_i` image i's hard label
//! (every weight 1 without class weights: the plain mean). This is burn's convention for
//! smoothed labels with class weights (each class's term weighed by its class, normalized by
//! the hard labels' weights), so with a one-hot `q` it is burn's loss exactly (a test shows it).

use burn::nn::loss::CrossEntropyLoss;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use fer_core::tensors::NO_SHARE;

/// The loss of one training run.
pub enum Loss {
    /// Class indices: burn's cross-entropy (with its smoothing and weights).
    Hard(CrossEntropyLoss),
    /// Target distributions (see the module doc).
    Soft {
        smoothing: f32,
        /// Per class (empty: every image weighs 1).
        class_weights: Vec<f32>,
        classes: usize,
        /// Values per image in the `shares` that [`Loss::forward`] takes: 1 (happy's vote
        /// share, binary) or `classes` (a whole target row).
        width: usize,
    },
}

/// The target distribution of one image from its `share` (see [`Loss::Soft`]'s `width`): a
/// binary image's happy share `s` gives happy (class 0) `s` and not happy `1 - s`; a row of
/// `classes` values is the distribution itself; without votes ([`NO_SHARE`] first) it is the
/// hard label's one-hot (so, too, is one share of a task with more than two classes). Then
/// smoothed: `(1 - smoothing) * q + smoothing / classes`.
pub fn soft_target(label: u8, share: &[f32], smoothing: f32, classes: usize) -> Vec<f32> {
    let mut q = vec![0f32; classes];
    match share {
        [s, ..] if *s == NO_SHARE => q[label as usize] = 1.0,
        [s] if classes == 2 => {
            q[0] = *s;
            q[1] = 1.0 - s;
        }
        row if row.len() == classes => q.copy_from_slice(row),
        _ => q[label as usize] = 1.0,
    }
    q.iter()
        .map(|v| (1.0 - smoothing) * v + smoothing / classes as f32)
        .collect()
}

/// `-sum_ik q_ik * log softmax(logits)_ik / normalizer` for logits `[n, k]` and (weighted)
/// targets `q` (`n * k`, rows).
pub fn soft_cross_entropy(
    logits: Tensor<2>,
    q: &[f32],
    normalizer: f32,
    device: &Device,
) -> Tensor<1> {
    let [n, k] = logits.dims();
    let q = Tensor::<2>::from_data(TensorData::new(q.to_vec(), [n, k]), device);
    (log_softmax(logits, 1) * q)
        .sum()
        .neg()
        .div_scalar(normalizer.max(f32::MIN_POSITIVE))
}

impl Loss {
    /// The loss of a batch: `ys` (hard labels), `shares` (soft targets only: `width` values
    /// per image, see [`soft_target`]).
    pub fn forward(
        &self,
        logits: Tensor<2>,
        ys: &[i64],
        shares: &[f32],
        device: &Device,
    ) -> Tensor<1> {
        match self {
            Loss::Hard(ce) => {
                let n = ys.len();
                let y = Tensor::<1, Int>::from_data(TensorData::new(ys.to_vec(), [n]), device);
                ce.forward(logits, y)
            }
            Loss::Soft {
                smoothing,
                class_weights,
                classes,
                width,
            } => {
                let weight = |c: usize| class_weights.get(c).copied().unwrap_or(1.0);
                let q: Vec<f32> = ys
                    .iter()
                    .zip(shares.chunks((*width).max(1)))
                    .flat_map(|(&y, s)| soft_target(y as u8, s, *smoothing, *classes))
                    .enumerate()
                    .map(|(j, v)| v * weight(j % classes))
                    .collect();
                let normalizer: f32 = ys.iter().map(|&y| weight(y as usize)).sum();
                soft_cross_entropy(logits, &q, normalizer, device)
            }
        }
    }
}
