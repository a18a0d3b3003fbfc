//! The exponential moving average of a run's weights (`[train_cnn] ema`, the decay; 0 = off).
//!
//! After every optimizer step each float of the network (the weights, and BatchNorm's running
//! statistics, which burn visits alike) moves toward its trained value,
//! `e = d * e + (1 - d) * w`, with `d = min(ema, (1 + t) / (10 + t))` at step `t` of the run
//! (the warm-up of TensorFlow's `ExponentialMovingAverage` with `num_updates`), so that the
//! average of a short run is not held back by the random start. Validation, the best
//! checkpoint and so the exported model use the averaged weights; training goes on from the
//! raw ones.
//!
//! burn has no moving average of a module's weights, hence this file. The average is kept as
//! plain f32 vectors, read back from the device once a step: cheap for our networks (0.3 to
//! 0.7 million values), and the same arithmetic on every backend.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};
use fer_models::arch::Net;

/// The averaged floats of a network, one vector per float tensor in visit order.
#[derive(Debug, Clone, PartialEq)]
pub struct Ema {
    pub values: Vec<Vec<f32>>,
}

impl Ema {
    /// An average that starts at `model`'s values.
    pub fn of(model: &Net) -> Ema {
        Ema {
            values: floats(model),
        }
    }

    /// The decay of step `step` (from 0) for the setting `ema`.
    pub fn decay(ema: f64, step: usize) -> f32 {
        ema.min((1.0 + step as f64) / (10.0 + step as f64)) as f32
    }

    /// One step toward `model`'s values with decay `d`.
    pub fn update(&mut self, model: &Net, d: f32) {
        for (e, w) in self.values.iter_mut().zip(floats(model)) {
            for (a, b) in e.iter_mut().zip(w) {
                *a = d * *a + (1.0 - d) * b;
            }
        }
    }

    /// `model` with the averaged values (parameter ids, shapes and device kept). Give it a
    /// model of its own (`valid()`'s copy), never the one being trained: BatchNorm's running
    /// statistics are shared between a module and its clones, so mapping a clone would write
    /// the averages into the trained model's statistics.
    pub fn apply(&self, model: &Net) -> Net {
        struct Set<'a>(&'a [Vec<f32>], usize);
        impl ModuleMapper for Set<'_> {
            fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let values = self.0.get(self.1).cloned();
                self.1 += 1;
                match values {
                    Some(v) => p.map(|t| {
                        let (dims, device) = (t.dims(), t.device());
                        Tensor::from_data(TensorData::new(v, dims), &device)
                    }),
                    None => p,
                }
            }
        }
        model.clone().map(&mut Set(&self.values, 0))
    }
}

/// Every float tensor of `model` (parameters and running statistics), in visit order.
fn floats(model: &Net) -> Vec<Vec<f32>> {
    struct Get(Vec<Vec<f32>>);
    impl ModuleVisitor for Get {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let data = p.val().into_data().convert::<f32>();
            self.0.push(
                data.try_to_vec::<f32>()
                    .expect("converted to f32 just above"),
            );
        }
    }
    let mut g = Get(Vec::new());
    model.visit(&mut g);
    g.0
}
