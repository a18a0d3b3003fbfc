//! The per-batch half of [`Trainer`]: the loss ([`Trainer::objective`]), the batch layout and
//! worker pools ([`Trainer::layout`]), the epoch's shuffle, filling and augmenting a batch, its
//! learning rate, and one forward and backward pass ([`Trainer::step`], data parallel with
//! several workers).

use super::Trainer;
use crate::loss::{Loss, soft_target};
use crate::train::{TrainError, TrainState, cosine_lr, part_step};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsAccumulator, GradientsParams};
use fer_core::tensors::NO_SHARE;
use fer_models::arch::Net;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The loss and, for soft targets, each training image's vote shares.
pub struct Objective<'a> {
    pub(super) loss: Loss,
    /// The training images' vote shares, `source_width` values each (soft targets only).
    pub(super) shares: Option<&'a [f32]>,
    source_width: usize,
    /// Values per image in a batch's `shares` (what the loss reads): `source_width`, or with
    /// mixup a whole target row of `classes`.
    pub(super) width: usize,
    classes: usize,
}

/// The batches of an epoch and the worker pools of a data-parallel step.
pub struct Layout {
    /// Images a batch.
    pub(super) bs: usize,
    /// Batches an epoch (the last partial batch is dropped: BatchNorm needs more than one).
    pub(super) batches: usize,
    total_steps: usize,
    warmup: usize,
    /// Pixels an image, and its (height, width).
    pub(super) px: usize,
    side: (usize, usize),
    /// One single-thread pool per worker (none with one worker).
    pools: Vec<rayon::ThreadPool>,
}

/// One batch's buffers, reused from batch to batch.
pub struct Batch {
    pub(super) x: Vec<f32>,
    pub(super) ys: Vec<i64>,
    pub(super) shares: Vec<f32>,
}

impl<'a> Trainer<'a> {
    /// The loss: hard targets (cross entropy, label smoothing and class weights as set), or
    /// soft ones (FERPlus's vote shares: happy's share for binary, the seven emotions' shares
    /// for seven classes), or with mixup blended target rows.
    pub fn objective(&self) -> Result<Objective<'a>, TrainError> {
        let (s, train) = (self.s, self.train);
        let k = self.cfg.num_classes;
        let counts: Vec<usize> = (0..k as u8)
            .map(|c| train.y.iter().filter(|&&y| y == c).count())
            .collect();
        let class_weights: Vec<f32> = counts
            .iter()
            .map(|&c| {
                let w = train.n as f32 / (k as f32 * c.max(1) as f32);
                if s.class_weight_power == 1.0 {
                    w
                } else {
                    w.powf(s.class_weight_power as f32)
                }
            })
            .collect();
        // Vote shares per training image: only the soft loss reads them (the hard loss is
        // given the batch buffer's unused values).
        let mut source: Option<(&'a [f32], usize)> = None;
        if s.soft_targets {
            let Some(t) = &train.truths else {
                return Err(TrainError::Data(format!(
                    "{}: soft_targets = true needs FERPlus votes, and the training data has none \
                     (synthetic data, or FERPLUS_DIR was not found by ingest)",
                    s.name
                )));
            };
            source = Some(if k == 2 {
                (t.happy_share.as_slice(), 1)
            } else if t.emotion_shares.len() == k * train.n {
                (t.emotion_shares.as_slice(), k)
            } else {
                return Err(TrainError::Data(format!(
                    "{}: [train_cnn] soft_targets = true with {k} classes needs each emotion's \
                     vote share (the emotion_shares tensor of preprocess's train.safetensors), \
                     and the training data has none; run make preprocess again",
                    s.name
                )));
            });
        }
        if source.is_some() || s.mixup > 0.0 {
            let (shares, source_width) = source.map_or((None, 1), |(v, w)| (Some(v), w));
            let width = if s.mixup > 0.0 { k } else { source_width };
            let loss = Loss::Soft {
                smoothing: s.label_smoothing,
                class_weights: if s.class_weights {
                    class_weights
                } else {
                    Vec::new()
                },
                classes: k,
                width,
            };
            return Ok(Objective {
                loss,
                shares,
                source_width,
                width,
                classes: k,
            });
        }
        let mut ce = CrossEntropyLossConfig::new();
        if s.label_smoothing > 0.0 {
            ce = ce.with_smoothing(Some(s.label_smoothing));
        }
        if s.class_weights {
            ce = ce.with_weights(Some(class_weights));
        }
        Ok(Objective {
            loss: Loss::Hard(ce.init(&self.ad)),
            shares: None,
            source_width: 1,
            width: 1,
            classes: k,
        })
    }

    /// Batches, schedule steps and worker pools.
    pub fn layout(&self) -> Result<Layout, TrainError> {
        let (s, train) = (self.s, self.train);
        let bs = s.batch_size.min(train.n).max(1);
        let mut batches = train.n / bs; // drop the last partial batch (BatchNorm needs > 1)
        if s.max_train_batches > 0 {
            batches = batches.min(s.max_train_batches);
        }
        let workers = s.workers.min(bs / 2).max(1);
        let pools: Vec<rayon::ThreadPool> = if workers > 1 {
            (0..workers)
                .map(|_| {
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(1)
                        .build()
                        .map_err(|e| TrainError::Checkpoint {
                            path: self.ckpt.display().to_string(),
                            message: format!("cannot start a worker thread: {e}"),
                        })
                })
                .collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        Ok(Layout {
            bs,
            batches,
            total_steps: batches * s.epochs,
            warmup: batches * s.warmup_epochs.min(s.epochs.saturating_sub(1)),
            px: train.height * train.width,
            side: (train.height, train.width),
            pools,
        })
    }

    /// The epoch's order of the training images: seeded per epoch, whatever came before.
    pub fn shuffle(&self, order: &mut [usize], epoch: usize) {
        order.sort_unstable();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(
            self.s.seed.wrapping_add(epoch as u64 * 7919),
        ));
    }

    /// Copy batch `b` of `order` into the buffers and augment it; with mixup, then blend it
    /// ([`mix`]).
    pub fn fill(
        &self,
        batch: &mut Batch,
        order: &[usize],
        obj: &Objective,
        l: &Layout,
        epoch: usize,
        b: usize,
    ) {
        let (bs, px, w) = (l.bs, l.px, obj.width);
        let sw = obj.source_width;
        for (k, &i) in order[b * bs..(b + 1) * bs].iter().enumerate() {
            batch.x[k * px..(k + 1) * px].copy_from_slice(self.train.image(i));
            batch.ys[k] = self.train.y[i] as i64;
            let share = obj
                .shares
                .map_or(&[NO_SHARE][..], |v| &v[i * sw..(i + 1) * sw]);
            if self.s.mixup == 0.0 {
                batch.shares[k * w..(k + 1) * w].copy_from_slice(share);
            } else {
                // Mixup: the image's whole target row, unsmoothed (the loss smooths), so that
                // an image without votes blends its one-hot row, never the NO_SHARE marks.
                let q = soft_target(batch.ys[k] as u8, share, 0.0, obj.classes);
                batch.shares[k * w..(k + 1) * w].copy_from_slice(&q);
            }
        }
        if self.s.augment {
            self.aug
                .apply_batch(&mut batch.x, self.s.seed, (epoch * 1_000_000 + b) as u64);
        }
        if self.s.mixup > 0.0 {
            let seed = self.s.seed ^ 0x4D49_5855_5000_0000 ^ (epoch * 1_000_000 + b) as u64;
            mix(batch, (px, w), self.s.mixup, seed);
        }
    }

    /// The learning rate of step `b` of `epoch`.
    pub fn lr(&self, state: &TrainState, l: &Layout, epoch: usize, b: usize) -> f64 {
        match self.s.schedule.as_str() {
            "cosine" => cosine_lr(self.s, epoch * l.batches + b, l.total_steps, l.warmup),
            _ => state.plateau_lr,
        }
    }

    /// Forward and backward of one batch: the gradients, the loss and the correct count. With
    /// several workers, part k of the batch runs on pool k; replicas of the model share its
    /// parameters (same ids) but not its BatchNorm running statistics, which only part 0
    /// (always the same thread) updates, so the run stays deterministic.
    pub fn step(
        &self,
        model: &Net,
        loss: &Loss,
        batch: &Batch,
        l: &Layout,
        epoch: usize,
        b: usize,
    ) -> (GradientsParams, f32, usize) {
        let (bs, px, side, ad) = (l.bs, l.px, l.side, &self.ad);
        let width = match loss {
            Loss::Soft { width, .. } => *width,
            Loss::Hard(_) => 1,
        };
        // Dropout masks of part k of this step, the same whatever thread runs it.
        let mask_seed = |k: u64| {
            self.s
                .seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(((epoch * l.batches + b) as u64) << 8)
                .wrapping_add(k << 4)
        };
        if l.pools.is_empty() {
            // One worker: the whole batch through the shared pool.
            return part_step(
                model,
                loss,
                &batch.x,
                &batch.ys,
                &batch.shares,
                side,
                None,
                mask_seed(0),
                ad,
            );
        }
        let pools = &l.pools;
        let replicas: Vec<Net> = (1..pools.len()).map(|_| model.valid().train()).collect();
        let bounds: Vec<(usize, usize)> = (0..pools.len())
            .map(|k| (k * bs / pools.len(), (k + 1) * bs / pools.len()))
            .collect();
        let run = |k: usize, m: &Net| {
            let (lo, hi) = bounds[k];
            pools[k].install(|| {
                part_step(
                    m,
                    loss,
                    &batch.x[lo * px..hi * px],
                    &batch.ys[lo..hi],
                    &batch.shares[lo * width..hi * width],
                    side,
                    Some((hi - lo) as f64 / bs as f64),
                    mask_seed(k as u64),
                    ad,
                )
            })
        };
        let parts = std::thread::scope(|sc| {
            let others: Vec<_> = replicas
                .iter()
                .enumerate()
                .map(|(i, m)| sc.spawn(move || run(i + 1, m)))
                .collect();
            let mut parts = vec![run(0, model)];
            parts.extend(others.into_iter().map(|h| h.join().expect("worker")));
            parts
        });
        let mut acc = GradientsAccumulator::<Net>::new();
        let (mut lv, mut right) = (0f32, 0usize);
        for (k, (g, pl, r)) in parts.into_iter().enumerate() {
            let (lo, hi) = bounds[k];
            acc.accumulate(model, g);
            lv += pl * (hi - lo) as f32 / bs as f32;
            right += r;
        }
        (acc.grads(), lv, right)
    }
}

/// Mixup of a filled batch: one `l` from Beta(alpha, alpha) drawn from `seed`, taken as
/// `max(l, 1 - l)`, and a seeded pairing of the images; image k becomes `l * x_k + (1 - l) *
/// x_j` and its target row likewise (`dims`: pixels an image, values a target row). Labels
/// stay each image's own (the larger part).
pub fn mix(batch: &mut Batch, dims: (usize, usize), alpha: f64, seed: u64) {
    let (px, w) = dims;
    let n = batch.ys.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let l = match rand_distr::Beta::new(alpha, alpha) {
        Ok(beta) => rng.sample(beta),
        Err(_) => 1.0,
    };
    let l = l.max(1.0 - l) as f32;
    let mut partner: Vec<usize> = (0..n).collect();
    partner.shuffle(&mut rng);
    let (x0, q0) = (batch.x.clone(), batch.shares.clone());
    for (k, &j) in partner.iter().enumerate() {
        for (v, o) in batch.x[k * px..(k + 1) * px]
            .iter_mut()
            .zip(&x0[j * px..(j + 1) * px])
        {
            *v = l * *v + (1.0 - l) * o;
        }
        for (v, o) in batch.shares[k * w..(k + 1) * w]
            .iter_mut()
            .zip(&q0[j * w..(j + 1) * w])
        {
            *v = l * *v + (1.0 - l) * o;
        }
    }
}
