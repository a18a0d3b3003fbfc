//! The forward pass of each architecture ([`Net::forward`], [`Net::forward_train`] with seeded
//! dropout masks) and its multiply-accumulates ([`Net::macs`]).

use super::{ModelConfig, Net, standardize_images, standardize_images_centre};
use burn::tensor::Tensor;
use fer_ops::{conv2d, max_pool2d};

/// Inverted dropout with a mask from a seeded ChaCha8 stream (what burn's `Dropout` does with
/// the backend's RNG); nothing off the autodiff device or at `prob` 0.
fn seeded_dropout(x: Tensor<2>, prob: f64, seed: u64) -> Tensor<2> {
    use rand::{RngExt, SeedableRng};
    if prob <= 0.0 || !x.device().is_autodiff() {
        return x;
    }
    let keep = 1.0 - prob;
    let dims = x.dims();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mask: Vec<f32> = (0..dims[0] * dims[1])
        .map(|_| {
            if rng.random_bool(keep) {
                (1.0 / keep) as f32
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::<2>::from_data(burn::tensor::TensorData::new(mask, dims), &x.device());
    x * mask
}

impl Net {
    /// Logits `[N, classes]` for images `[N, 1, H, W]` (burn's dropout when training).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_with(x, None)
    }

    /// [`Self::forward`] for training, with dropout masks drawn from `mask_seed` instead of
    /// the backend's one global RNG: the data-parallel parts of a batch run at once, and
    /// draws from a shared RNG in whatever order their threads reach it would make the run
    /// nondeterministic.
    pub fn forward_train(&self, x: Tensor<4>, mask_seed: u64) -> Tensor<2> {
        self.forward_with(x, Some(mask_seed))
    }

    fn forward_with(&self, x: Tensor<4>, mask_seed: Option<u64>) -> Tensor<2> {
        match self {
            Net::SeedBase(m) => {
                let x = max_pool2d(&m.pool, m.relu.forward(conv2d(&m.conv1, x)));
                let x = max_pool2d(&m.pool, m.relu.forward(conv2d(&m.conv2, x)));
                let x = m.relu.forward(conv2d(&m.conv3, x));
                let x: Tensor<2> = x.flatten(1, 3);
                let x = m.relu.forward(m.fc1.forward(x));
                let x = m.relu.forward(m.fc2.forward(x));
                m.out.forward(x)
            }
            Net::SeedTuned(m) => {
                let x = m.relu.forward(conv2d(&m.conv1, x));
                let x = m.relu.forward(conv2d(&m.conv2, x));
                let x = m.relu.forward(conv2d(&m.conv3, x));
                let x: Tensor<2> = x.flatten(1, 3);
                let x = m.relu.forward(m.fc1.forward(x));
                m.out.forward(x)
            }
            Net::FerSmall(m) => {
                let mut x = match (m.per_image_norm, m.per_image_norm_centre) {
                    (true, true) => standardize_images_centre(x),
                    (true, false) => standardize_images(x),
                    (false, _) => x,
                };
                // `convs` layers per block; pool after every block but the last.
                let per = m.convs.max(1);
                let last = m.blocks.len().saturating_sub(1);
                for (i, b) in m.blocks.iter().enumerate() {
                    x = b.forward(x);
                    if (i + 1) % per == 0 && i < last {
                        x = max_pool2d(&m.pool, x);
                    }
                }
                let drop = |x: Tensor<2>, site: u64| match mask_seed {
                    None => m.dropout.forward(x),
                    Some(seed) => seeded_dropout(x, m.dropout.prob, seed.wrapping_add(site)),
                };
                let mut x: Tensor<2> = m.gap.forward(x).flatten(1, 3);
                if let Some(h) = &m.hidden {
                    x = burn::tensor::activation::relu(h.forward(drop(x, 1)));
                }
                m.out.forward(drop(x, 0))
            }
        }
    }

    /// Multiply-accumulates of one forward pass (convs and linears), for the FLOPs column.
    pub fn macs(cfg: &ModelConfig) -> u64 {
        let s = cfg.side as u64;
        let conv = |hw: u64, cin: u64, cout: u64, k: u64| hw * hw * cin * cout * k * k;
        match cfg.arch.as_str() {
            "seed-base" => {
                let (a, b, c) = (s - 2, (s - 2) / 2 - 2, ((s - 2) / 2 - 2) / 2 - 2);
                conv(a, 1, 32, 3)
                    + conv(b, 32, 64, 3)
                    + conv(c, 64, 128, 3)
                    + 128 * c * c * 112
                    + 112 * 112
                    + 112 * 2
            }
            "seed-tuned" => {
                let (a, b, c) = (s - 4, s - 6, s - 10);
                conv(a, 1, 48, 5)
                    + conv(b, 48, 416, 3)
                    + conv(c, 416, 192, 5)
                    + 192 * c * c * 80
                    + 80 * 2
            }
            _ => {
                let mut total = 0;
                let (mut hw, mut cin) = (s, 1u64);
                for (i, &w) in cfg.widths.iter().enumerate() {
                    for _ in 0..cfg.convs.max(1) {
                        total += conv(hw, cin, w as u64, cfg.kernel(i) as u64);
                        cin = w as u64;
                    }
                    if i + 1 < cfg.widths.len() {
                        hw /= 2;
                    }
                }
                if cfg.dense > 0 {
                    total += cin * cfg.dense as u64;
                    cin = cfg.dense as u64;
                }
                total + cin * cfg.num_classes as u64
            }
        }
    }
}
