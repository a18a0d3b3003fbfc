//! The training loop: seeded shuffles, online augmentation into one reused batch buffer,
//! AdamW/Adam, cosine or plateau schedule, label smoothing, class weights, early stopping on
//! validation loss, a checkpoint after every epoch to resume from; hard or soft targets
//! ([`crate::loss`]); a start from given weights (`init`, PyTorch layout).

use crate::loss::Loss;
use crate::ops::Augmenter;
use crate::settings::TrainSettings;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{
    AdamConfig, AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer,
};
use burn::tensor::{Device, Tensor, TensorData};
use fer_core::tensors::TensorSet;
use fer_models::arch::Net;
pub use fer_models::checkpoint::{load_weights, save_weights};
pub use fer_models::score::{argmax, predict};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

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
pub use fer_core::schema::epochs::EpochRow;

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
fn with_param_ids(model: Net, ids: &[u64]) -> Net {
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
    fer_core::metrics::classification_metrics(y, &pred, &names, None)
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
fn part_step(
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
    let cfg = fer_models::arch::ModelConfig::for_settings(s, train.height, num_classes(train));
    check_data(s, &cfg, train, val)?;
    std::fs::create_dir_all(ckpt).map_err(|e| fer_core::Error::io(ckpt, e))?;
    let ad = device.clone().autodiff();
    ad.seed(s.seed);
    let fresh = cfg.init(&ad);
    let new_optim = || -> ModuleOptimizer {
        match s.optimizer.as_str() {
            "adam" => AdamConfig::new().init(),
            _ => AdamWConfig::new()
                .with_weight_decay(s.weight_decay as f32)
                .init(),
        }
    };
    // The newest complete checkpoint generation, if any (a torn or mismatched one is skipped
    // with a warning; see `crate::checkpoint`).
    let n_params = param_ids(&fresh).len();
    let resumed = crate::checkpoint::latest_good(
        ckpt,
        |dir, st| {
            let mut model = load_weights(&cfg, &dir.join(crate::checkpoint::LAST), &ad)?;
            if !st.param_ids.is_empty() {
                if st.param_ids.len() != n_params {
                    return Err(TrainError::Checkpoint {
                        path: dir.join(crate::checkpoint::STATE).display().to_string(),
                        message: "its parameter ids do not fit this model".into(),
                    });
                }
                model = with_param_ids(model, &st.param_ids);
            }
            let optim_path = dir.join(crate::checkpoint::OPTIM);
            let bytes =
                std::fs::read(&optim_path).map_err(|e| fer_core::Error::io(&optim_path, e))?;
            let optim = new_optim()
                .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
                .map_err(|e| TrainError::Checkpoint {
                    path: optim_path.display().to_string(),
                    message: format!("cannot load optimizer state: {e}"),
                })?;
            Ok((model, optim, st))
        },
        &|m| eprintln!("{m}"),
    )?;
    let (mut model, mut optim, mut state, mut gen_dir) = match resumed {
        Some((dir, (model, optim, st))) => (model, optim, st, Some(dir)),
        None => {
            let model = if s.init.is_empty() {
                fresh
            } else {
                fer_models::checkpoint::load_pytorch(&cfg, Path::new(&s.init), &ad)?
            };
            let state = TrainState {
                best_val_loss: f64::INFINITY,
                plateau_lr: s.lr,
                ..Default::default()
            };
            (model, new_optim(), state, None)
        }
    };
    if state.param_ids.is_empty() {
        // (A resumed run keeps the saved list: BatchNorm's running statistics are visited
        // like parameters but keep the fresh model's ids, which no optimizer state uses.)
        state.param_ids = param_ids(&model);
    }
    let best_of = |dir: &Option<std::path::PathBuf>| -> Result<Net, TrainError> {
        let dir = dir.as_ref().ok_or_else(|| TrainError::Checkpoint {
            path: ckpt.display().to_string(),
            message: "no epoch has been trained yet, so there is no best checkpoint".into(),
        })?;
        Ok(load_weights(
            &cfg,
            &dir.join(crate::checkpoint::BEST),
            device,
        )?)
    };
    if state.done {
        let best = best_of(&gen_dir)?;
        return Ok(Trained { model: best, state });
    }

    let k = cfg.num_classes;
    let counts: Vec<usize> = (0..k as u8)
        .map(|c| train.y.iter().filter(|&&y| y == c).count())
        .collect();
    let class_weights: Vec<f32> = counts
        .iter()
        .map(|&c| train.n as f32 / (k as f32 * c.max(1) as f32))
        .collect();
    // Vote shares per training image: only the soft loss reads them (the hard loss is given
    // the batch buffer's unused values).
    let (loss_fn, shares) = if s.soft_targets {
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
        (loss, Some(&t.happy_share))
    } else {
        let mut ce = CrossEntropyLossConfig::new();
        if s.label_smoothing > 0.0 {
            ce = ce.with_smoothing(Some(s.label_smoothing));
        }
        if s.class_weights {
            ce = ce.with_weights(Some(class_weights));
        }
        (Loss::Hard(ce.init(&ad)), None)
    };

    let px = train.height * train.width;
    let bs = s.batch_size.min(train.n).max(1);
    let mut batches = train.n / bs; // drop the last partial batch (BatchNorm needs > 1)
    if s.max_train_batches > 0 {
        batches = batches.min(s.max_train_batches);
    }
    let total_steps = batches * s.epochs;
    let warmup = batches * s.warmup_epochs.min(s.epochs.saturating_sub(1));
    let mut buf = vec![0f32; bs * px];
    let mut ys = vec![0i64; bs];
    let mut sh = vec![0f32; bs];
    let mut order: Vec<usize> = (0..train.n).collect();
    let side = (train.height, train.width);
    let workers = s.workers.min(bs / 2).max(1);
    let pools: Vec<rayon::ThreadPool> = if workers > 1 {
        (0..workers)
            .map(|_| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .map_err(|e| TrainError::Checkpoint {
                        path: ckpt.display().to_string(),
                        message: format!("cannot start a worker thread: {e}"),
                    })
            })
            .collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };

    for epoch in state.epochs.len()..s.epochs.min(until) {
        let t0 = Instant::now();
        order.sort_unstable();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(
            s.seed.wrapping_add(epoch as u64 * 7919),
        ));
        let (mut loss_sum, mut correct, mut seen) = (0f64, 0usize, 0usize);
        let mut lr = state.plateau_lr;
        for b in 0..batches {
            for (k, &i) in order[b * bs..(b + 1) * bs].iter().enumerate() {
                buf[k * px..(k + 1) * px].copy_from_slice(train.image(i));
                ys[k] = train.y[i] as i64;
                if let Some(shares) = shares {
                    sh[k] = shares[i];
                }
            }
            if s.augment {
                aug.apply_batch(&mut buf, s.seed, (epoch * 1_000_000 + b) as u64);
            }
            lr = match s.schedule.as_str() {
                "cosine" => cosine_lr(s, epoch * batches + b, total_steps, warmup),
                _ => state.plateau_lr,
            };
            // Dropout masks of part k of this step, the same whatever thread runs it.
            let mask_seed = |k: u64| {
                s.seed
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(((epoch * batches + b) as u64) << 8)
                    .wrapping_add(k << 4)
            };
            let (grads, lv, right) = if pools.is_empty() {
                // One worker: the whole batch through the shared pool.
                part_step(
                    &model,
                    &loss_fn,
                    &buf,
                    &ys,
                    &sh,
                    side,
                    None,
                    mask_seed(0),
                    &ad,
                )
            } else {
                // Data parallel: part k of the batch on pool k; replicas of the model share its
                // parameters (same ids) but not its BatchNorm running statistics, which only
                // part 0 (always the same thread) updates, so the run stays deterministic.
                let replicas: Vec<Net> = (1..pools.len()).map(|_| model.valid().train()).collect();
                let bounds: Vec<(usize, usize)> = (0..pools.len())
                    .map(|k| (k * bs / pools.len(), (k + 1) * bs / pools.len()))
                    .collect();
                let run = |k: usize, m: &Net| {
                    let (lo, hi) = bounds[k];
                    pools[k].install(|| {
                        part_step(
                            m,
                            &loss_fn,
                            &buf[lo * px..hi * px],
                            &ys[lo..hi],
                            &sh[lo..hi],
                            side,
                            Some((hi - lo) as f64 / bs as f64),
                            mask_seed(k as u64),
                            &ad,
                        )
                    })
                };
                let parts = std::thread::scope(|sc| {
                    let others: Vec<_> = replicas
                        .iter()
                        .enumerate()
                        .map(|(i, m)| sc.spawn(move || run(i + 1, m)))
                        .collect();
                    let mut parts = vec![run(0, &model)];
                    parts.extend(others.into_iter().map(|h| h.join().expect("worker")));
                    parts
                });
                let mut acc = GradientsAccumulator::<Net>::new();
                let (mut lv, mut right) = (0f32, 0usize);
                for (k, (g, l, r)) in parts.into_iter().enumerate() {
                    let (lo, hi) = bounds[k];
                    acc.accumulate(&model, g);
                    lv += l * (hi - lo) as f32 / bs as f32;
                    right += r;
                }
                (acc.grads(), lv, right)
            };
            if !lv.is_finite() {
                return Err(TrainError::Diverged {
                    epoch: epoch + 1,
                    loss: lv,
                });
            }
            correct += right;
            seen += bs;
            loss_sum += lv as f64 * bs as f64;
            model = optim.step(lr, model, grads);
            // The epoch's last step is reported below, with its validation figures.
            if b + 1 < batches {
                progress(
                    &format!(
                        "{} epoch {}/{} loss {:.4} acc {:.3}",
                        s.name,
                        epoch + 1,
                        s.epochs,
                        loss_sum / seen as f64,
                        correct as f64 / seen as f64
                    ),
                    (b + 1) as u64,
                    batches as u64,
                );
            }
        }
        let probs = predict(&model, val, s.eval_batch_size, false, device);
        let (val_loss, val_acc) = loss_and_accuracy(&probs, &val.y);
        // More than two classes: the validation macro F1 too (tune ranks such trials by it).
        let val_macro_f1 = (k > 2).then(|| macro_f1(&probs, &val.y, k));
        let secs = t0.elapsed().as_secs_f64();
        // The end of an epoch (pos == len): a log line where stderr is not a terminal.
        progress(
            &format!(
                "{} epoch {}/{} loss {:.4} acc {:.3} val loss {:.4} acc {:.3}{} ({:.1} s)",
                s.name,
                epoch + 1,
                s.epochs,
                loss_sum / seen.max(1) as f64,
                correct as f64 / seen.max(1) as f64,
                val_loss,
                val_acc,
                val_macro_f1.map_or(String::new(), |f| format!(" macro F1 {f:.3}")),
                secs
            ),
            batches as u64,
            batches as u64,
        );
        state.train_seconds += secs;
        state.epochs.push(EpochRow {
            epoch: epoch + 1,
            train_loss: loss_sum / seen.max(1) as f64,
            train_acc: correct as f64 / seen.max(1) as f64,
            val_loss,
            val_acc,
            lr,
            seconds: secs,
            val_macro_f1,
        });
        let improved = val_loss < state.best_val_loss;
        if improved {
            state.best_val_loss = val_loss;
            state.best_epoch = epoch + 1;
            state.stale = 0;
        } else {
            state.stale += 1;
            if s.schedule == "plateau" && state.stale.is_multiple_of(s.plateau_patience.max(1)) {
                state.plateau_lr = (state.plateau_lr * 0.5).max(s.min_lr);
            }
        }
        let stop = s.patience > 0 && state.stale >= s.patience;
        state.done = stop || epoch + 1 == s.epochs;
        let weights = model.valid();
        gen_dir = Some(crate::checkpoint::commit(
            ckpt,
            &mut state,
            &weights,
            &optim,
            improved.then_some(&weights),
            gen_dir.as_deref(),
        )?);
        if stop {
            break;
        }
    }
    let best = best_of(&gen_dir)?;
    Ok(Trained { model: best, state })
}
