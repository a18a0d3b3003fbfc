//! The architectures, selected by name: the study's two and ours.
//!
//! Model code takes no backend type: burn 0.22 tensors carry their backend in their device,
//! so the same code trains on the CPU (`flex`) or a GPU (`wgpu`); only the binary picks.
//! Convolutions and max pools go through `fer-ops` (fast flex kernels, burn's op elsewhere).

mod forward;
mod norm;

pub use norm::{CENTRE_NORM_CLAMP, MIN_IMAGE_STD, standardize_images, standardize_images_centre};

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d, Relu,
};
use burn::tensor::{Device, Tensor};
// Convolutions, max pools and batch norm + ReLU run through fer-ops: its CPU kernels on flex,
// burn's own ops anywhere else, with the same modules (and so the same saved weights).
use fer_ops::conv2d;

/// Names accepted by `arch`.
pub const ARCHS: [&str; 3] = ["seed-base", "seed-tuned", "fer-small"];

/// Everything needed to rebuild a model from its artifact (saved as JSON beside the weights).
#[derive(Config, Debug, PartialEq)]
pub struct ModelConfig {
    /// `seed-base`, `seed-tuned` or `fer-small`.
    pub arch: String,
    /// Input side in pixels.
    #[config(default = 48)]
    pub side: usize,
    #[config(default = 2)]
    pub num_classes: usize,
    /// Dropout before the classifier (ours only).
    #[config(default = 0.3)]
    pub dropout: f64,
    /// Channels of our four conv blocks.
    #[config(default = "vec![32, 64, 128, 192]")]
    pub widths: Vec<usize>,
    /// Kernel size of each conv block (ours only; empty = 3 for every block).
    #[config(default = "Vec::new()")]
    pub kernels: Vec<usize>,
    /// Units of a hidden dense layer before the classifier (ours only; 0 = none).
    #[config(default = 0)]
    pub dense: usize,
    /// Conv-BN-ReLU layers per block (ours only; 2 = VGG-style blocks).
    #[config(default = 1)]
    pub convs: usize,
    /// Ours only: `Some(true)` standardizes each input image inside the network
    /// (`TrainSettings::per_image_norm`). An `Option` because burn's `Config` takes no serde
    /// default: `model.json` files written before it (and models without it) read as `None`,
    /// which is off.
    #[config(default = "None")]
    pub per_image_norm: Option<bool>,
    /// Ours only: `Some(true)` takes [`standardize_images_centre`] for the standardization
    /// (`TrainSettings::per_image_norm_centre`); `None` (older files) is off.
    #[config(default = "None")]
    pub per_image_norm_centre: Option<bool>,
}

/// The study's base CNN: Conv 3x3 1->32, MaxPool 2, Conv 3x3 32->64, MaxPool 2, Conv 3x3
/// 64->128, Flatten (8192), Dense 112, Dense 112, Dense 2 (1,023,170 parameters).
#[derive(Module, Debug)]
pub struct SeedBase {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
    pool: MaxPool2d,
    fc1: Linear,
    fc2: Linear,
    out: Linear,
    relu: Relu,
}

/// The study's Keras-Tuner winner: Conv 5x5 1->48, Conv 3x3 48->416, Conv 5x5 416->192,
/// Flatten (277,248), Dense 80, Dense 2 (24,358,450 parameters). Its RandomFlip,
/// RandomContrast and RandomRotation layers are the online augmentation chain.
#[derive(Module, Debug)]
pub struct SeedTuned {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
    fc1: Linear,
    out: Linear,
    relu: Relu,
}

/// A conv 3x3 (same padding, no bias) + batch norm + ReLU.
#[derive(Module, Debug)]
pub struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
    relu: Relu,
}

impl ConvBn {
    fn new(c_in: usize, c_out: usize, k: usize, device: &Device) -> Self {
        let p = k / 2;
        ConvBn {
            conv: Conv2dConfig::new([c_in, c_out], [k, k])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .with_bias(false)
                .init(device),
            bn: BatchNormConfig::new(c_out).init(device),
            relu: Relu::new(),
        }
    }
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // The ReLU runs fused into the batch norm (burn's `Relu` where fer-ops falls back, which
        // is what `relu` does); the field stays so the module's structure is unchanged.
        fer_ops::batch_norm_relu(&self.bn, conv2d(&self.conv, x), true)
    }
}

/// Ours: conv-BN-ReLU blocks (`convs` layers each; four blocks by default), a 2x2 max pool
/// after every block but the last (48 -> 24 -> 12 -> 6), global average pooling, dropout and
/// one linear layer. The default is about 1/100 of `seed-tuned`'s FLOPs and 1/60 of its
/// parameters.
#[derive(Module, Debug)]
pub struct FerSmall {
    blocks: Vec<ConvBn>,
    /// Conv layers per block (a pool follows every `convs` layers but the last).
    convs: usize,
    /// Standardize each input image first ([`standardize_images`]).
    per_image_norm: bool,
    /// ... by its centre's statistics, clamped ([`standardize_images_centre`]).
    per_image_norm_centre: bool,
    pool: MaxPool2d,
    gap: AdaptiveAvgPool2d,
    dropout: Dropout,
    hidden: Option<Linear>,
    out: Linear,
}

#[derive(Module, Debug)]
pub enum Net {
    SeedBase(SeedBase),
    SeedTuned(SeedTuned),
    FerSmall(FerSmall),
}

fn conv(c_in: usize, c_out: usize, k: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [k, k]).init(device)
}

impl ModelConfig {
    /// The network `s` describes, for data of `side` x `side` pixels and `num_classes`
    /// classes.
    pub fn for_settings(
        s: &crate::settings::TrainSettings,
        side: usize,
        num_classes: usize,
    ) -> ModelConfig {
        let mut cfg = ModelConfig::new(s.arch.clone())
            .with_dropout(s.dropout)
            .with_widths(s.widths.clone())
            .with_kernels(s.kernels.clone())
            .with_dense(s.dense)
            .with_convs(s.convs)
            .with_per_image_norm(s.per_image_norm.then_some(true))
            .with_per_image_norm_centre(s.per_image_norm_centre.then_some(true));
        cfg.side = side;
        cfg.num_classes = num_classes;
        cfg
    }

    /// The smallest input side (pixels) this network takes: `seed-base`'s valid convs and
    /// pools need 18 (18 -> 16 -> 8 -> 6 -> 3 -> 1), `seed-tuned`'s 11 (11 -> 7 -> 5 -> 1),
    /// ours one pixel after the pool that follows every block but the last.
    pub fn min_side(&self) -> usize {
        min_side(&self.arch, self.widths.len())
    }

    /// Kernel size of conv block `i` of ours (3 unless `kernels` says otherwise).
    pub fn kernel(&self, i: usize) -> usize {
        self.kernels.get(i).copied().unwrap_or(3)
    }

    /// Build the network on `device` (weights initialized from the device's seeded RNG).
    pub fn init(&self, device: &Device) -> Net {
        let s = self.side;
        match self.arch.as_str() {
            "seed-base" => {
                // valid 3x3 convs and 2x2 pools: s -> s-2 -> /2 -> -2 -> /2 -> -2
                let f = ((s - 2) / 2 - 2) / 2 - 2;
                SeedBase {
                    conv1: conv(1, 32, 3, device),
                    conv2: conv(32, 64, 3, device),
                    conv3: conv(64, 128, 3, device),
                    pool: MaxPool2dConfig::new([2, 2]).init(),
                    fc1: LinearConfig::new(128 * f * f, 112).init(device),
                    fc2: LinearConfig::new(112, 112).init(device),
                    out: LinearConfig::new(112, self.num_classes).init(device),
                    relu: Relu::new(),
                }
                .into()
            }
            "seed-tuned" => {
                let f = s - 4 - 2 - 4;
                SeedTuned {
                    conv1: conv(1, 48, 5, device),
                    conv2: conv(48, 416, 3, device),
                    conv3: conv(416, 192, 5, device),
                    fc1: LinearConfig::new(192 * f * f, 80).init(device),
                    out: LinearConfig::new(80, self.num_classes).init(device),
                    relu: Relu::new(),
                }
                .into()
            }
            _ => {
                let mut blocks = Vec::new();
                let mut c_in = 1;
                for (i, &w) in self.widths.iter().enumerate() {
                    for _ in 0..self.convs.max(1) {
                        blocks.push(ConvBn::new(c_in, w, self.kernel(i), device));
                        c_in = w;
                    }
                }
                let hidden =
                    (self.dense > 0).then(|| LinearConfig::new(c_in, self.dense).init(device));
                let c_out = if self.dense > 0 { self.dense } else { c_in };
                FerSmall {
                    blocks,
                    convs: self.convs.max(1),
                    per_image_norm: self.per_image_norm == Some(true),
                    per_image_norm_centre: self.per_image_norm_centre == Some(true),
                    pool: MaxPool2dConfig::new([2, 2]).init(),
                    gap: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
                    dropout: DropoutConfig::new(self.dropout).init(),
                    hidden,
                    out: LinearConfig::new(c_out, self.num_classes).init(device),
                }
                .into()
            }
        }
    }
}

/// [`ModelConfig::min_side`] of architecture `arch` with `blocks` conv blocks (`widths`'
/// length; only ours reads it).
pub fn min_side(arch: &str, blocks: usize) -> usize {
    match arch {
        "seed-base" => 18,
        "seed-tuned" => 11,
        _ => 1usize << blocks.saturating_sub(1).min(30),
    }
}

/// `Err(message)` when data of `side` x `side` pixels is too small for `arch` with `blocks`
/// conv blocks (its spatial size would reach zero).
pub fn check_side(arch: &str, blocks: usize, side: usize) -> Result<(), String> {
    let min = min_side(arch, blocks);
    if side < min {
        let what = if arch == "seed-base" || arch == "seed-tuned" {
            format!("`{arch}`")
        } else {
            format!("`{arch}` with {blocks} blocks")
        };
        return Err(format!(
            "{side}x{side} images are too small for {what}: it needs at least {min}x{min}"
        ));
    }
    Ok(())
}

impl From<SeedBase> for Net {
    fn from(m: SeedBase) -> Net {
        Net::SeedBase(m)
    }
}
impl From<SeedTuned> for Net {
    fn from(m: SeedTuned) -> Net {
        Net::SeedTuned(m)
    }
}
impl From<FerSmall> for Net {
    fn from(m: FerSmall) -> Net {
        Net::FerSmall(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn images(device: &Device, scale: f32, shift: f32) -> Tensor<4> {
        let v: Vec<f32> = (0..2 * 48 * 48)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .map(|v| v * scale + shift)
            .collect();
        Tensor::from_data(TensorData::new(v, [2, 1, 48, 48]), device)
    }

    fn logits(net: &Net, x: Tensor<4>) -> Vec<f32> {
        net.forward(x).into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn per_image_norm_makes_the_logits_blind_to_brightness_and_contrast() {
        let device = Device::flex();
        let cfg = ModelConfig::new("fer-small".into())
            .with_widths(vec![4, 8])
            .with_per_image_norm(Some(true));
        let net = cfg.init(&device);
        let base = logits(&net, images(&device, 1.0, 0.0));
        // A dark, low-contrast copy (a fifth of the contrast, shifted down) scores the same.
        let dark = logits(&net, images(&device, 0.2, -1.5));
        for (a, b) in base.iter().zip(&dark) {
            assert!((a - b).abs() < 1e-3, "{base:?} vs {dark:?}");
        }
        // Without it the same network sees the difference.
        let plain = ModelConfig::new("fer-small".into()).with_widths(vec![4, 8]);
        let net = plain.init(&device);
        let (a, b) = (
            logits(&net, images(&device, 1.0, 0.0)),
            logits(&net, images(&device, 0.2, -1.5)),
        );
        assert!(a.iter().zip(&b).any(|(a, b)| (a - b).abs() > 1e-3));
    }

    #[test]
    fn standardized_images_have_mean_zero_and_unit_std_and_flat_ones_stay_flat() {
        let device = Device::flex();
        let v: Vec<f32> = images(&device, 0.3, 2.0).into_data().try_to_vec().unwrap();
        let mut all = v.clone();
        all.extend(std::iter::repeat_n(0.7f32, 48 * 48));
        let x = Tensor::<4>::from_data(TensorData::new(all, [3, 1, 48, 48]), &device);
        let y: Vec<f32> = standardize_images(x).into_data().try_to_vec().unwrap();
        for img in y.chunks(48 * 48).take(2) {
            let mean = img.iter().sum::<f32>() / img.len() as f32;
            let var = img.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / img.len() as f32;
            assert!(
                mean.abs() < 1e-4 && (var.sqrt() - 1.0).abs() < 1e-3,
                "{mean} {var}"
            );
        }
        let flat = y[2 * 48 * 48..].iter().fold(0f32, |m, v| m.max(v.abs()));
        // f32 rounding of the mean (about 1e-5 here) divided by the floor: far under the unit
        // std of a real face.
        assert!(flat < 1e-2, "a flat image comes out at most {flat} from 0");
    }

    #[test]
    fn the_centre_sets_the_scale_and_a_bright_edge_is_clamped_not_averaged_in() {
        let device = Device::flex();
        let v: Vec<f32> = images(&device, 0.3, 2.0).into_data().try_to_vec().unwrap();
        let face = &v[..48 * 48];
        // The same face with a bright band over its last 8 columns (a window behind it).
        let lit: Vec<f32> = face
            .iter()
            .enumerate()
            .map(|(i, &p)| if i % 48 >= 40 { p + 50.0 } else { p })
            .collect();
        let both: Vec<f32> = face.iter().chain(&lit).copied().collect();
        let x = Tensor::<4>::from_data(TensorData::new(both, [2, 1, 48, 48]), &device);
        let y: Vec<f32> = standardize_images_centre(x)
            .into_data()
            .try_to_vec()
            .unwrap();
        let (a, b) = y.split_at(48 * 48);
        let centre = |img: &[f32]| -> Vec<f32> {
            (12..36)
                .flat_map(|r| (12..36).map(move |c| r * 48 + c))
                .map(|i| img[i])
                .collect()
        };
        // Both images' centres come out at mean 0 and standard deviation 1.
        for c in [centre(a), centre(b)] {
            let mean = c.iter().sum::<f32>() / c.len() as f32;
            let std = (c.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / c.len() as f32).sqrt();
            assert!(
                mean.abs() < 1e-4 && (std - 1.0).abs() < 1e-3,
                "{mean} {std}"
            );
        }
        // The band moves no pixel of the face: the centre sets the scale either way.
        for (i, (p, q)) in a.iter().zip(b).enumerate() {
            if i % 48 < 40 {
                assert!((p - q).abs() < 1e-5, "pixel {i}: {p} vs {q}");
            } else {
                assert_eq!(*q, CENTRE_NORM_CLAMP, "pixel {i} of the band");
            }
        }
        assert!(a.iter().chain(b).all(|v| v.abs() <= CENTRE_NORM_CLAMP));
        // Whole-image statistics, for contrast, squeeze the face under the band's weight.
        let x = Tensor::<4>::from_data(TensorData::new(lit, [1, 1, 48, 48]), &device);
        let whole: Vec<f32> = standardize_images(x).into_data().try_to_vec().unwrap();
        let cw = centre(&whole);
        let mw = cw.iter().sum::<f32>() / cw.len() as f32;
        let sw = (cw.iter().map(|v| (v - mw).powi(2)).sum::<f32>() / cw.len() as f32).sqrt();
        assert!(
            sw < 0.2,
            "the face's std under whole-image statistics: {sw}"
        );
    }

    #[test]
    fn a_model_json_written_before_per_image_norm_reads_as_without_it() {
        let json = r#"{"arch":"fer-small","side":48,"num_classes":2,"dropout":0.3,
            "widths":[32,64,128,192],"kernels":[],"dense":0,"convs":1}"#;
        let cfg: ModelConfig = serde_json::from_str(json).unwrap();
        assert_eq!(cfg.per_image_norm, None);
        assert_eq!(cfg.per_image_norm_centre, None);
    }
}
