//! The feature pipeline: normalized images -> raw pixels or HOG -> per-feature standardization
//! (fitted on train) -> optional PCA (linfa-reduction, fitted on train) -> f64 rows.
//!
//! Also the random Fourier feature map ([`Rff`]) that approximates the RBF kernel for the
//! `rff` kernel.

use fer_core::tensors::TensorSet;
use image::GrayImage;
use imageproc::hog::{HogOptions, HogSpec, hog};
use ndarray::{Array1, Array2, Axis};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Which descriptor a model reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// The normalized pixels as they are (48 x 48 = 2304 values).
    Raw,
    /// imageproc's HOG descriptor of the image mapped back to 8 bits.
    Hog,
}

impl FeatureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureKind::Raw => "raw",
            FeatureKind::Hog => "hog",
        }
    }
    pub fn parse(s: &str) -> Option<FeatureKind> {
        match s {
            "raw" => Some(FeatureKind::Raw),
            "hog" => Some(FeatureKind::Hog),
            _ => None,
        }
    }
}

/// HOG options as in the pipeline file (`hog = { orientations, signed, cell, block, stride }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HogParams {
    pub orientations: usize,
    pub signed: bool,
    /// Cell side in pixels.
    pub cell: usize,
    /// Block side in cells.
    pub block: usize,
    /// Block stride in cells.
    pub stride: usize,
}

impl Default for HogParams {
    fn default() -> Self {
        HogParams {
            orientations: 9,
            signed: false,
            cell: 8,
            block: 2,
            stride: 1,
        }
    }
}

impl HogParams {
    pub fn options(&self) -> HogOptions {
        HogOptions::new(
            self.orientations,
            self.signed,
            self.cell,
            self.block,
            self.stride,
        )
    }

    /// Descriptor length for a `side` x `side` image, or imageproc's reason it does not fit.
    pub fn length(&self, side: usize) -> Result<usize, String> {
        HogSpec::from_options(side as u32, side as u32, self.options())
            .map(|s| s.descriptor_length())
    }
}

/// A normalized value back to 8-bit gray through the transform's value range.
#[inline]
pub fn to_u8(v: f32, range: (f32, f32)) -> u8 {
    let (lo, hi) = range;
    (((v - lo) / (hi - lo)) * 255.0).round().clamp(0.0, 255.0) as u8
}

/// The descriptor of every image of `images`, one row each (before scaling).
pub fn extract(
    kind: FeatureKind,
    hog_params: &HogParams,
    range: (f32, f32),
    images: &TensorSet,
) -> Result<Array2<f64>, String> {
    let (h, w) = (images.height, images.width);
    match kind {
        FeatureKind::Raw => Ok(Array2::from_shape_vec(
            (images.n, h * w),
            images.x.iter().map(|&v| v as f64).collect(),
        )
        .expect("n*h*w values")),
        FeatureKind::Hog => {
            if h != w {
                return Err(format!("HOG needs square images, got {h}x{w}"));
            }
            let len = hog_params.length(h)?;
            let opts = hog_params.options();
            let rows: Vec<Vec<f32>> = (0..images.n)
                .into_par_iter()
                .map(|i| {
                    let px: Vec<u8> = images.image(i).iter().map(|&v| to_u8(v, range)).collect();
                    let img = GrayImage::from_raw(w as u32, h as u32, px).expect("h*w pixels");
                    hog(&img, opts)
                })
                .collect::<Result<_, String>>()?;
            let mut out = Array2::zeros((images.n, len));
            for (mut row, d) in out.outer_iter_mut().zip(&rows) {
                for (o, &v) in row.iter_mut().zip(d) {
                    *o = v as f64;
                }
            }
            Ok(out)
        }
    }
}

/// Per-feature standardization `(x - mean) / std`, fitted on train. Constant features get
/// std 1 (they become 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Scaler {
    pub mean: Array1<f64>,
    pub std: Array1<f64>,
}

impl Scaler {
    pub fn fit(x: &Array2<f64>) -> Scaler {
        let n = x.nrows().max(1) as f64;
        let mean = x.sum_axis(Axis(0)) / n;
        let mut var = Array1::<f64>::zeros(x.ncols());
        for row in x.outer_iter() {
            for ((v, &a), &m) in var.iter_mut().zip(row).zip(&mean) {
                *v += (a - m) * (a - m);
            }
        }
        let std = var.mapv(|v| {
            let s = (v / n).sqrt();
            if s > 1e-12 { s } else { 1.0 }
        });
        Scaler { mean, std }
    }

    pub fn apply(&self, x: &mut Array2<f64>) {
        for mut row in x.outer_iter_mut() {
            for ((v, &m), &s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
    }
}

/// A fitted PCA projection: `(x - mean) . components^T`.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    pub mean: Array1<f64>,
    /// `[k, d]`, one principal axis per row.
    pub components: Array2<f64>,
}

impl Projection {
    /// linfa-reduction's PCA (truncated SVD with its fixed seed: deterministic).
    pub fn fit(x: &Array2<f64>, k: usize) -> Result<Projection, String> {
        use linfa::traits::Fit;
        let ds = linfa::DatasetBase::from(x.view());
        let pca = linfa_reduction::Pca::params(k)
            .fit(&ds)
            .map_err(|e| format!("PCA with {k} components: {e}"))?;
        Ok(Projection {
            mean: pca.mean().clone(),
            components: pca.components().clone(),
        })
    }

    pub fn apply(&self, x: &Array2<f64>) -> Array2<f64> {
        let centered = x - &self.mean;
        centered.dot(&self.components.t())
    }
}

/// Everything that turns a split's normalized images into a model's input rows.
#[derive(Debug, Clone, PartialEq)]
pub struct FeaturePipeline {
    pub kind: FeatureKind,
    pub hog: HogParams,
    /// The preprocess transform's value range (black, white): HOG maps images back to 8 bits.
    pub value_range: (f32, f32),
    pub scaler: Scaler,
    pub pca: Option<Projection>,
}

impl FeaturePipeline {
    /// Fit scaling (and PCA when `pca > 0`) on the train images; returns the pipeline and the
    /// transformed train rows.
    pub fn fit(
        kind: FeatureKind,
        hog_params: HogParams,
        value_range: (f32, f32),
        pca: usize,
        train: &TensorSet,
    ) -> Result<(FeaturePipeline, Array2<f64>), String> {
        let mut x = extract(kind, &hog_params, value_range, train)?;
        let scaler = Scaler::fit(&x);
        scaler.apply(&mut x);
        let pca = if pca > 0 {
            if pca > x.ncols().min(x.nrows()) {
                return Err(format!(
                    "pca = {pca} is more than the {} features x {} train rows of `{}`",
                    x.ncols(),
                    x.nrows(),
                    kind.as_str()
                ));
            }
            let p = Projection::fit(&x, pca)?;
            x = p.apply(&x);
            Some(p)
        } else {
            None
        };
        Ok((
            FeaturePipeline {
                kind,
                hog: hog_params,
                value_range,
                scaler,
                pca,
            },
            x,
        ))
    }

    /// Rows for `images` (any split, or new images normalized by the same transform).
    pub fn transform(&self, images: &TensorSet) -> Result<Array2<f64>, String> {
        let mut x = extract(self.kind, &self.hog, self.value_range, images)?;
        if x.ncols() != self.scaler.mean.len() {
            return Err(format!(
                "{} features per image, the pipeline was fitted on {}",
                x.ncols(),
                self.scaler.mean.len()
            ));
        }
        self.scaler.apply(&mut x);
        Ok(match &self.pca {
            Some(p) => p.apply(&x),
            None => x,
        })
    }

    /// Output dimension.
    pub fn dim(&self) -> usize {
        match &self.pca {
            Some(p) => p.components.nrows(),
            None => self.scaler.mean.len(),
        }
    }
}

/// sklearn's `gamma = "scale"`: `1 / (d * var(X))`, the variance over every entry of `x`.
pub fn gamma_scale(x: &Array2<f64>) -> f64 {
    let n = x.len().max(1) as f64;
    let mean = x.sum() / n;
    let var = x.iter().map(|&v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let d = x.ncols().max(1) as f64;
    if var > 0.0 { 1.0 / (d * var) } else { 1.0 / d }
}

/// Random Fourier features (Rahimi & Recht 2007) for the RBF kernel `exp(-gamma |x-y|^2)`:
/// `z(x) = sqrt(2/D) cos(W x + b)`, `W ~ N(0, 2 gamma)`, `b ~ U(0, 2 pi)`, so that
/// `z(x).z(y)` approximates the kernel; a linear SVM on `z` approximates the RBF SVM.
#[derive(Debug, Clone, PartialEq)]
pub struct Rff {
    /// `[D, d]`.
    pub omega: Array2<f64>,
    /// `[D]`.
    pub offset: Array1<f64>,
}

impl Rff {
    pub fn new(d: usize, dim: usize, gamma: f64, seed: u64) -> Rff {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let s = (2.0 * gamma).sqrt();
        let omega = Array2::from_shape_fn((dim, d), |_| {
            let g: f64 = StandardNormal.sample(&mut rng);
            g * s
        });
        let offset = Array1::from_shape_fn(dim, |_| rng.random::<f64>() * std::f64::consts::TAU);
        Rff { omega, offset }
    }

    pub fn map(&self, x: &Array2<f64>) -> Array2<f64> {
        let scale = (2.0 / self.offset.len() as f64).sqrt();
        let mut z = x.dot(&self.omega.t());
        for mut row in z.outer_iter_mut() {
            for (v, &b) in row.iter_mut().zip(&self.offset) {
                *v = (*v + b).cos() * scale;
            }
        }
        z
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn hog_of_48x48_with_cell_8_block_2_stride_1_has_900_values() {
        assert_eq!(HogParams::default().length(48), Ok(900));
        let images = TensorSet {
            n: 2,
            height: 48,
            width: 48,
            x: (0..2 * 2304)
                .map(|i| ((i * 31) % 97) as f32 / 97.0)
                .collect(),
            y: vec![0, 1],
            truths: None,
        };
        let x = extract(FeatureKind::Hog, &HogParams::default(), (0.0, 1.0), &images).unwrap();
        assert_eq!(x.dim(), (2, 900));
        let raw = extract(FeatureKind::Raw, &HogParams::default(), (0.0, 1.0), &images).unwrap();
        assert_eq!(raw.dim(), (2, 2304));
        let bad = HogParams {
            cell: 7,
            ..HogParams::default()
        };
        assert!(bad.length(48).is_err());
    }

    #[test]
    fn to_u8_inverts_the_normalization() {
        let range = (-2.0f32, 2.0f32);
        for v in [0u8, 1, 77, 128, 254, 255] {
            let x = v as f32 / 255.0 * 4.0 - 2.0;
            assert_eq!(to_u8(x, range), v);
        }
        assert_eq!(to_u8(9.0, range), 255);
    }

    #[test]
    fn scaler_standardizes_and_keeps_constant_columns_finite() {
        let x = ndarray::array![[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]];
        let s = Scaler::fit(&x);
        let mut y = x.clone();
        s.apply(&mut y);
        assert_abs_diff_eq!(y.column(0).sum(), 0.0, epsilon = 1e-12);
        assert_abs_diff_eq!(
            y.column(0).mapv(|v| v * v).sum() / 3.0,
            1.0,
            epsilon = 1e-12
        );
        assert_eq!(y.column(1).to_vec(), vec![0.0, 0.0, 0.0]);
        assert_abs_diff_eq!(gamma_scale(&y), 1.0 / (2.0 * 0.5), epsilon = 1e-12);
    }

    #[test]
    fn rff_approximates_the_rbf_kernel() {
        let x = ndarray::array![[0.0, 0.0, 0.0], [0.3, -0.2, 0.1], [1.0, 0.5, -0.5]];
        let gamma = 0.7;
        let z = Rff::new(3, 20_000, gamma, 1).map(&x);
        for i in 0..3 {
            for j in 0..3 {
                let d2: f64 = (&x.row(i) - &x.row(j)).mapv(|v| v * v).sum();
                let k = (-gamma * d2).exp();
                assert_abs_diff_eq!(z.row(i).dot(&z.row(j)), k, epsilon = 0.03);
            }
        }
        assert_eq!(Rff::new(3, 10, gamma, 5), Rff::new(3, 10, gamma, 5));
    }
}
