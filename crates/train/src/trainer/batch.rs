//! The per-batch half of [`Trainer`]: the loss ([`Trainer::objective`]), the batch layout and
//! worker pools ([`Trainer::layout`]), the epoch's shuffle, filling and augmenting a batch, its
//! learning rate, and one forward and backward pass ([`Trainer::step`], data parallel with
//! several workers).

use super::Trainer;
use crate::loss::Loss;
use crate::train::{TrainError, TrainState, cosine_lr, part_step};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsAccumulator, GradientsParams};
use fer_models::arch::Net;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// The loss and, for soft targets, each training image's vote share.
pub struct Objective<'a> {
    pub(super) loss: Loss,
    pub(super) shares: Option<&'a Vec<f32>>,
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
    /// soft ones (happy's share of FERPlus's votes, binary only).
    pub fn objective(&self) -> Result<Objective<'a>, TrainError> {
        let (s, train) = (self.s, self.train);
        let k = self.cfg.num_classes;
        let counts: Vec<usize> = (0..k as u8)
            .map(|c| train.y.iter().filter(|&&y| y == c).count())
            .collect();
        let class_weights: Vec<f32> = counts
            .iter()
            .map(|&c| train.n as f32 / (k as f32 * c.max(1) as f32))
            .collect();
        // Vote shares per training image: only the soft loss reads them (the hard loss is
        // given the batch buffer's unused values).
        if s.soft_targets {
            let Some(t) = &train.truths else {
                return Err(TrainError::Data(format!(
                    "{}: soft_targets = true needs FERPlus votes, and the training data has none \
                     (synthetic data, or FERPLUS_DIR was not found by ingest)",
                    s.name
                )));
            };
            if k != 2 {
                return Err(TrainError::Data(format!(
                    "{}: soft_targets = true is for the binary label mode (happy's vote share); \
                     this data has {k} classes",
                    s.name
                )));
            }
            let loss = Loss::Soft {
                smoothing: s.label_smoothing,
                class_weights: if s.class_weights {
                    class_weights
                } else {
                    Vec::new()
                },
                classes: k,
            };
            return Ok(Objective {
                loss,
                shares: Some(&t.happy_share),
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

    /// Copy batch `b` of `order` into the buffers and augment it.
    pub fn fill(
        &self,
        batch: &mut Batch,
        order: &[usize],
        shares: Option<&Vec<f32>>,
        l: &Layout,
        epoch: usize,
        b: usize,
    ) {
        let (bs, px) = (l.bs, l.px);
        for (k, &i) in order[b * bs..(b + 1) * bs].iter().enumerate() {
            batch.x[k * px..(k + 1) * px].copy_from_slice(self.train.image(i));
            batch.ys[k] = self.train.y[i] as i64;
            if let Some(shares) = shares {
                batch.shares[k] = shares[i];
            }
        }
        if self.s.augment {
            self.aug
                .apply_batch(&mut batch.x, self.s.seed, (epoch * 1_000_000 + b) as u64);
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
                    &batch.shares[lo..hi],
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
