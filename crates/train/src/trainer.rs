//! [`Trainer`]: one model's training run in small steps: [`Trainer::start`] (a fresh model, its
//! `init` weights or the newest good checkpoint), [`Trainer::objective`] (the loss and the vote
//! shares it reads), [`Trainer::layout`] (batches and worker pools), then per epoch
//! [`Trainer::fill`], [`Trainer::step`] per batch and [`Trainer::close_epoch`] (validation,
//! schedule, early stopping, the checkpoint). [`crate::train::train_until`] drives it.
//!
//! Every float is computed in the order the single function before it used, so a run gives
//! the same weights to the bit (`scripts/compare-artifacts.py` on smoke, smoke7 and ci).

mod batch;

pub use batch::{Batch, Layout, Objective};

use crate::ema::Ema;
use crate::ops::Augmenter;
use crate::settings::TrainSettings;
use crate::train::{
    EpochRow, TrainError, TrainState, Trained, check_data, load_weights, loss_and_accuracy,
    macro_f1, num_classes, param_ids, predict, with_param_ids,
};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Tensor};
use fer_core::tensors::TensorSet;
use fer_models::arch::{ModelConfig, Net};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A fresh model of `cfg` for training on `device` (on its autodiff device), its weights drawn
/// from `seed` by flex's seeded RNG on every device, then moved: each backend has its own RNG,
/// so a seed drawn on wgpu would start another model than the CPU's, and runs could not be
/// compared across devices (make gpu-check trains smoke-gpu on both and checks this).
///
/// burn's parameters are lazy: each is drawn when first read. They are read here, in module
/// order, so that the draws happen before the move (`fork` would otherwise send the initializer
/// along, to draw on the other device's RNG) and in the same order on every device: the order
/// the forward pass first read them in, so the CPU's weights are the ones it always drew
/// (checked: `make all PIPELINE=ci` gave the same model files). `fork` makes each parameter a
/// leaf of the new device's graph.
pub fn fresh_model(cfg: &ModelConfig, seed: u64, device: &Device) -> Net {
    struct Draw;
    impl ModuleVisitor for Draw {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let _ = p.val();
        }
    }
    let cpu = Device::flex().autodiff();
    cpu.seed(seed);
    let net = cfg.init(&cpu);
    net.visit(&mut Draw);
    if *device == Device::flex() {
        return net;
    }
    net.fork(&device.clone().autodiff())
}

/// What one model's run is trained from and where it keeps its checkpoints.
pub struct Trainer<'a> {
    pub s: &'a TrainSettings,
    pub train: &'a TensorSet,
    pub val: &'a TensorSet,
    pub aug: &'a Augmenter,
    pub device: &'a Device,
    pub ckpt: &'a Path,
    pub progress: &'a dyn Fn(&str, u64, u64),
    cfg: ModelConfig,
    /// The autodiff device.
    ad: Device,
}

/// What a run carries from epoch to epoch.
pub struct Run {
    pub model: Net,
    optim: ModuleOptimizer,
    /// The moving average of the weights (`ema` runs only).
    ema: Option<Ema>,
    pub state: TrainState,
    /// The newest checkpoint generation written or resumed.
    gen_dir: Option<PathBuf>,
}

impl<'a> Trainer<'a> {
    /// Check the data against the settings and make the checkpoint folder.
    pub fn new(
        s: &'a TrainSettings,
        train: &'a TensorSet,
        val: &'a TensorSet,
        aug: &'a Augmenter,
        device: &'a Device,
        ckpt: &'a Path,
        progress: &'a dyn Fn(&str, u64, u64),
    ) -> Result<Trainer<'a>, TrainError> {
        let cfg = ModelConfig::for_settings(s, train.height, num_classes(train));
        check_data(s, &cfg, train, val)?;
        std::fs::create_dir_all(ckpt).map_err(|e| fer_core::Error::io(ckpt, e))?;
        Ok(Trainer {
            s,
            train,
            val,
            aug,
            device,
            ckpt,
            progress,
            cfg,
            ad: device.clone().autodiff(),
        })
    }

    fn new_optim(&self) -> ModuleOptimizer {
        match self.s.optimizer.as_str() {
            "adam" => AdamConfig::new().init(),
            // PyTorch's Nesterov SGD: no dampening, L2 weight decay added to the gradient.
            "sgd" => SgdConfig::new()
                .with_weight_decay(
                    (self.s.weight_decay > 0.0)
                        .then(|| WeightDecayConfig::new(self.s.weight_decay as f32)),
                )
                .with_momentum(Some(
                    MomentumConfig::new()
                        .with_momentum(self.s.momentum)
                        .with_dampening(0.0)
                        .with_nesterov(true),
                ))
                .init(),
            _ => AdamWConfig::new()
                .with_weight_decay(self.s.weight_decay as f32)
                .init(),
        }
    }

    /// The run's starting point: the newest complete checkpoint generation (a torn or
    /// mismatched one is skipped with a warning; see `crate::checkpoint`), else the seeded
    /// fresh model or its `init` weights.
    pub fn start(&self) -> Result<Run, TrainError> {
        let (s, cfg, ad) = (self.s, &self.cfg, &self.ad);
        let fresh = fresh_model(cfg, s.seed, self.device);
        let n_params = param_ids(&fresh).len();
        let resumed = crate::checkpoint::latest_good(
            self.ckpt,
            |dir, st| {
                let mut model = load_weights(cfg, &dir.join(crate::checkpoint::LAST), ad)?;
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
                let optim = self
                    .new_optim()
                    .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
                    .map_err(|e| TrainError::Checkpoint {
                        path: optim_path.display().to_string(),
                        message: format!("cannot load optimizer state: {e}"),
                    })?;
                let ema = if s.ema > 0.0 {
                    let m = load_weights(cfg, &dir.join(crate::checkpoint::EMA), ad)?;
                    Some(Ema::of(&m))
                } else {
                    None
                };
                Ok((model, optim, ema, st))
            },
            &|m| eprintln!("{m}"),
        )?;
        let mut run = match resumed {
            Some((dir, (model, optim, ema, state))) => Run {
                model,
                optim,
                ema,
                state,
                gen_dir: Some(dir),
            },
            None => {
                let model = if s.init.is_empty() {
                    fresh
                } else {
                    fer_models::checkpoint::load_pytorch(cfg, Path::new(&s.init), ad)?
                };
                let state = TrainState {
                    best_val_loss: f64::INFINITY,
                    plateau_lr: s.lr,
                    ..Default::default()
                };
                Run {
                    ema: (s.ema > 0.0).then(|| Ema::of(&model)),
                    model,
                    optim: self.new_optim(),
                    state,
                    gen_dir: None,
                }
            }
        };
        if run.state.param_ids.is_empty() {
            // (A resumed run keeps the saved list: BatchNorm's running statistics are visited
            // like parameters but keep the fresh model's ids, which no optimizer state uses.)
            run.state.param_ids = param_ids(&run.model);
        }
        Ok(run)
    }

    /// The best checkpoint of `run`, and its state.
    pub fn finish(&self, run: Run) -> Result<Trained, TrainError> {
        let dir = run.gen_dir.as_ref().ok_or_else(|| TrainError::Checkpoint {
            path: self.ckpt.display().to_string(),
            message: "no epoch has been trained yet, so there is no best checkpoint".into(),
        })?;
        let best = load_weights(&self.cfg, &dir.join(crate::checkpoint::BEST), self.device)?;
        Ok(Trained {
            model: best,
            state: run.state,
        })
    }

    /// Train one epoch: every batch, then [`Trainer::close_epoch`]. Returns the run and
    /// whether training stops early.
    pub fn epoch(
        &self,
        mut run: Run,
        obj: &Objective,
        l: &Layout,
        batch: &mut Batch,
        order: &mut [usize],
        epoch: usize,
    ) -> Result<(Run, bool), TrainError> {
        let s = self.s;
        let t0 = Instant::now();
        self.shuffle(order, epoch);
        let (mut loss_sum, mut correct, mut seen) = (0f64, 0usize, 0usize);
        let mut lr = run.state.plateau_lr;
        for b in 0..l.batches {
            self.fill(batch, order, obj, l, epoch, b);
            lr = self.lr(&run.state, l, epoch, b);
            let (grads, lv, right) = self.step(&run.model, &obj.loss, batch, l, epoch, b);
            if !lv.is_finite() {
                return Err(TrainError::Diverged {
                    epoch: epoch + 1,
                    loss: lv,
                });
            }
            correct += right;
            seen += l.bs;
            loss_sum += lv as f64 * l.bs as f64;
            run.model = run.optim.step(lr, run.model, grads);
            if let Some(ema) = run.ema.as_mut() {
                ema.update(&run.model, Ema::decay(s.ema, epoch * l.batches + b));
            }
            // The epoch's last step is reported with its validation figures.
            if b + 1 < l.batches {
                (self.progress)(
                    &format!(
                        "{} epoch {}/{} loss {:.4} acc {:.3}",
                        s.name,
                        epoch + 1,
                        s.epochs,
                        loss_sum / seen as f64,
                        correct as f64 / seen as f64
                    ),
                    (b + 1) as u64,
                    l.batches as u64,
                );
            }
        }
        let train = (
            loss_sum / seen.max(1) as f64,
            correct as f64 / seen.max(1) as f64,
        );
        let stop = self.close_epoch(&mut run, l, epoch, train, lr, t0)?;
        Ok((run, stop))
    }

    /// The end of an epoch: validation, the epoch's row, the best loss and the plateau
    /// schedule, early stopping, and the checkpoint generation. Returns whether training
    /// stops early.
    pub fn close_epoch(
        &self,
        run: &mut Run,
        l: &Layout,
        epoch: usize,
        (train_loss, train_acc): (f64, f64),
        lr: f64,
        t0: Instant,
    ) -> Result<bool, TrainError> {
        let (s, val) = (self.s, self.val);
        let k = self.cfg.num_classes;
        // The weights validated and kept as the best: the moving average when there is one.
        // (On `valid()`'s copy: see `Ema::apply`.)
        let averaged = run.ema.as_ref().map(|e| e.apply(&run.model.valid()));
        let judged = averaged.as_ref().unwrap_or(&run.model);
        let probs = predict(judged, val, s.eval_batch_size, false, self.device);
        let (val_loss, val_acc) = loss_and_accuracy(&probs, &val.y);
        // More than two classes: the validation macro F1 too (tune ranks such trials by it).
        let val_macro_f1 = (k > 2).then(|| macro_f1(&probs, &val.y, k));
        let secs = t0.elapsed().as_secs_f64();
        // Time left: the epochs to go at this run's mean epoch so far (resumed epochs count).
        let mean = (run.state.train_seconds + secs) / (run.state.epochs.len() + 1) as f64;
        let left = time_left(s.epochs.saturating_sub(epoch + 1) as f64 * mean);
        // The end of an epoch (pos == len): a log line where stderr is not a terminal.
        (self.progress)(
            &format!(
                "{} epoch {}/{} loss {:.4} acc {:.3} val loss {:.4} acc {:.3}{} ({:.1} s, {left})",
                s.name,
                epoch + 1,
                s.epochs,
                train_loss,
                train_acc,
                val_loss,
                val_acc,
                val_macro_f1.map_or(String::new(), |f| format!(" macro F1 {f:.3}")),
                secs
            ),
            l.batches as u64,
            l.batches as u64,
        );
        let state = &mut run.state;
        state.train_seconds += secs;
        state.epochs.push(EpochRow {
            epoch: epoch + 1,
            train_loss,
            train_acc,
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
        let weights = run.model.valid();
        let kept = averaged.as_ref().unwrap_or(&weights);
        run.gen_dir = Some(crate::checkpoint::commit(
            self.ckpt,
            &mut run.state,
            (&weights, &run.optim),
            improved.then_some(kept),
            averaged.as_ref(),
            run.gen_dir.as_deref(),
        )?);
        Ok(stop)
    }

    /// Train until epoch `until` (of `s.epochs`), or to the end, from wherever the
    /// checkpoints left off; the best checkpoint so far.
    pub fn until(&self, until: usize) -> Result<Trained, TrainError> {
        let mut run = self.start()?;
        if run.state.done {
            return self.finish(run);
        }
        let obj = self.objective()?;
        let l = self.layout()?;
        let mut batch = Batch {
            x: vec![0f32; l.bs * l.px],
            ys: vec![0i64; l.bs],
            shares: vec![0f32; l.bs * obj.width],
        };
        let mut order: Vec<usize> = (0..self.train.n).collect();
        for epoch in run.state.epochs.len()..self.s.epochs.min(until) {
            let (next, stop) = self.epoch(run, &obj, &l, &mut batch, &mut order, epoch)?;
            run = next;
            if stop {
                break;
            }
        }
        self.finish(run)
    }
}

/// The time an epoch line says is left: `done`, `under a minute left`, `12 min left`,
/// `2 h 05 min left` (at most, when early stopping may end the run sooner).
pub fn time_left(secs: f64) -> String {
    let min = (secs / 60.0).round() as u64;
    match secs {
        s if s <= 0.0 => "done".into(),
        _ if min == 0 => "under a minute left".into(),
        _ if min < 60 => format!("{min} min left"),
        _ => format!("{} h {:02} min left", min / 60, min % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::time_left;

    #[test]
    fn time_left_reads_in_minutes_and_hours() {
        assert_eq!(time_left(0.0), "done");
        assert_eq!(time_left(20.0), "under a minute left");
        assert_eq!(time_left(12.4 * 60.0), "12 min left");
        assert_eq!(time_left(125.0 * 60.0), "2 h 05 min left");
    }
}
