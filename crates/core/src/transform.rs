//! The fitted image transform: what `preprocess` fits on train and saves as
//! `transform.json`, so every later consumer (trainers, `predict`) turns a new image into the
//! model's input exactly the same way.
//!
//! Order: colour to gray ([`to_gray`]) -> resize to `size` -> denoise (Gaussian blur or median
//! filter) -> histogram equalization -> normalization to f32 (`unit` [0,1], `symmetric`
//! [-1,1], or `standardize` with the mean/std of the train split).

use crate::error::{Error, IoContext, Result};
use image::{DynamicImage, GrayImage, ImageBuffer, Rgb};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Denoise {
    None,
    Gaussian { sigma: f32 },
    Median { radius: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Equalize {
    None,
    /// Global histogram equalization (imageproc). CLAHE: no maintained Rust crate offers it.
    Global,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Normalization {
    /// v / 255, in [0, 1].
    Unit,
    /// v / 127.5 - 1, in [-1, 1].
    Symmetric,
    /// (v / 255 - mean) / std, mean and std fitted on the train split only.
    Standardize { mean: f32, std: f32 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transform {
    /// Output side in pixels.
    pub size: u32,
    /// `nearest`, `triangle`, `catmull_rom`, `gaussian` or `lanczos3`.
    pub resize_filter: String,
    pub denoise: Denoise,
    pub equalize: Equalize,
    pub normalization: Normalization,
}

/// A resize filter by name.
pub fn filter_by_name(s: &str) -> Option<image::imageops::FilterType> {
    use image::imageops::FilterType::*;
    Some(match s {
        "nearest" => Nearest,
        "triangle" => Triangle,
        "catmull_rom" => CatmullRom,
        "gaussian" => Gaussian,
        "lanczos3" => Lanczos3,
        _ => return None,
    })
}

impl Transform {
    /// The gray steps: resize, denoise, equalize (8-bit in, 8-bit out).
    pub fn prepare(&self, gray: &GrayImage) -> GrayImage {
        let mut img = if gray.dimensions() == (self.size, self.size) {
            gray.clone()
        } else {
            let f = filter_by_name(&self.resize_filter)
                .unwrap_or(image::imageops::FilterType::Triangle);
            image::imageops::resize(gray, self.size, self.size, f)
        };
        img = match self.denoise {
            Denoise::None => img,
            Denoise::Gaussian { sigma } if sigma > 0.0 => {
                imageproc::filter::gaussian_blur_f32(&img, sigma)
            }
            Denoise::Gaussian { .. } => img,
            Denoise::Median { radius } => imageproc::filter::median_filter(&img, radius, radius),
        };
        if self.equalize == Equalize::Global {
            imageproc::contrast::equalize_histogram_mut(&mut img);
        }
        img
    }

    /// One 8-bit value to the model's scale.
    #[inline]
    pub fn normalize(&self, v: u8) -> f32 {
        match self.normalization {
            Normalization::Unit => v as f32 / 255.0,
            Normalization::Symmetric => v as f32 / 127.5 - 1.0,
            Normalization::Standardize { mean, std } => (v as f32 / 255.0 - mean) / std,
        }
    }

    /// The values black (0) and white (255) map to: the range augmentations must stay in.
    pub fn value_range(&self) -> (f32, f32) {
        (self.normalize(0), self.normalize(255))
    }

    /// A gray image to model input (`size * size` values, row-major).
    pub fn apply(&self, gray: &GrayImage) -> Vec<f32> {
        let lut: Vec<f32> = (0..=255u8).map(|v| self.normalize(v)).collect();
        self.prepare(gray)
            .as_raw()
            .iter()
            .map(|&v| lut[v as usize])
            .collect()
    }

    /// Any decoded image (colour or gray, any size) to model input.
    pub fn apply_dynamic(&self, img: &DynamicImage) -> Vec<f32> {
        self.apply(&img.to_luma8())
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("transform serializes");
        std::fs::write(path, text + "\n").at(path)
    }

    pub fn load(path: &Path) -> Result<Transform> {
        let text = std::fs::read_to_string(path).at(path)?;
        serde_json::from_str(&text).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            source: e,
        })
    }
}

/// Pixel layouts a caller may hand us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorSpace {
    Gray,
    Rgb,
    Bgr,
    Rgba,
    Bgra,
    /// H, S, V as bytes, H scaled so 0..=255 covers 0..360 degrees.
    Hsv,
}

impl ColorSpace {
    pub fn channels(self) -> usize {
        match self {
            ColorSpace::Gray => 1,
            ColorSpace::Rgb | ColorSpace::Bgr | ColorSpace::Hsv => 3,
            ColorSpace::Rgba | ColorSpace::Bgra => 4,
        }
    }
}

fn hsv_to_rgb(h: u8, s: u8, v: u8) -> [u8; 3] {
    let h = h as f32 / 255.0 * 6.0;
    let (s, v) = (s as f32 / 255.0, v as f32 / 255.0);
    let i = (h.floor() as i32).rem_euclid(6);
    let f = h - h.floor();
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    let (r, g, b) = match i {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    [
        (r * 255.0).round() as u8,
        (g * 255.0).round() as u8,
        (b * 255.0).round() as u8,
    ]
}

/// Raw interleaved pixels in `space` to the model's grayscale. Every colour layout goes
/// through RGB and then the `image` crate's luma conversion (the one `ingest` uses on decoded
/// files), so a face reads the same whatever layout it arrived in. Alpha is ignored.
pub fn to_gray(raw: &[u8], width: u32, height: u32, space: ColorSpace) -> Result<GrayImage> {
    let c = space.channels();
    let n = width as usize * height as usize;
    if raw.len() != n * c {
        return Err(Error::Other(format!(
            "{} bytes for a {width}x{height} {space:?} image, expected {}",
            raw.len(),
            n * c
        )));
    }
    if space == ColorSpace::Gray {
        return Ok(GrayImage::from_raw(width, height, raw.to_vec()).expect("size checked"));
    }
    let mut rgb = Vec::with_capacity(n * 3);
    for px in raw.chunks_exact(c) {
        let p = match space {
            ColorSpace::Rgb | ColorSpace::Rgba => [px[0], px[1], px[2]],
            ColorSpace::Bgr | ColorSpace::Bgra => [px[2], px[1], px[0]],
            ColorSpace::Hsv => hsv_to_rgb(px[0], px[1], px[2]),
            ColorSpace::Gray => unreachable!(),
        };
        rgb.extend_from_slice(&p);
    }
    let img: ImageBuffer<Rgb<u8>, Vec<u8>> =
        ImageBuffer::from_raw(width, height, rgb).expect("size checked");
    Ok(DynamicImage::ImageRgb8(img).to_luma8())
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    fn t(norm: Normalization) -> Transform {
        Transform {
            size: 48,
            resize_filter: "triangle".into(),
            denoise: Denoise::None,
            equalize: Equalize::None,
            normalization: norm,
        }
    }

    #[test]
    fn normalizations() {
        assert_eq!(t(Normalization::Unit).value_range(), (0.0, 1.0));
        assert_eq!(t(Normalization::Symmetric).value_range(), (-1.0, 1.0));
        let s = t(Normalization::Standardize {
            mean: 0.5,
            std: 0.25,
        });
        assert_abs_diff_eq!(s.normalize(255), 2.0);
        assert_abs_diff_eq!(s.normalize(0), -2.0);
    }

    #[test]
    fn colour_layouts_agree() {
        // 2x1 image: an orange and a blue pixel.
        let rgb = [255u8, 128, 0, 10, 20, 200];
        let bgr = [0u8, 128, 255, 200, 20, 10];
        let rgba = [255u8, 128, 0, 255, 10, 20, 200, 0];
        let bgra = [0u8, 128, 255, 9, 200, 20, 10, 9];
        let g = to_gray(&rgb, 2, 1, ColorSpace::Rgb).unwrap();
        assert_eq!(g, to_gray(&bgr, 2, 1, ColorSpace::Bgr).unwrap());
        assert_eq!(g, to_gray(&rgba, 2, 1, ColorSpace::Rgba).unwrap());
        assert_eq!(g, to_gray(&bgra, 2, 1, ColorSpace::Bgra).unwrap());
        // Same as decoding an RGB file with the image crate.
        let dynimg = DynamicImage::ImageRgb8(ImageBuffer::from_raw(2, 1, rgb.to_vec()).unwrap());
        assert_eq!(g, dynimg.to_luma8());
        // Pure red in HSV is (0, 255, 255).
        let red_hsv = to_gray(&[0, 255, 255], 1, 1, ColorSpace::Hsv).unwrap();
        assert_eq!(
            red_hsv,
            to_gray(&[255, 0, 0], 1, 1, ColorSpace::Rgb).unwrap()
        );
        // Gray in HSV: saturation 0, value v.
        assert_eq!(
            to_gray(&[77, 0, 90], 1, 1, ColorSpace::Hsv)
                .unwrap()
                .as_raw(),
            &[90]
        );
        assert_eq!(
            to_gray(&[7, 8], 2, 1, ColorSpace::Gray).unwrap().as_raw(),
            &[7, 8]
        );
        assert!(to_gray(&[1, 2, 3], 2, 1, ColorSpace::Rgb).is_err());
    }

    #[test]
    fn resize_denoise_equalize() {
        let img = GrayImage::from_fn(64, 64, |x, y| image::Luma([((x * 4 + y) % 256) as u8]));
        let mut tr = t(Normalization::Unit);
        assert_eq!(tr.apply(&img).len(), 48 * 48);
        tr.size = 32;
        assert_eq!(tr.apply(&img).len(), 32 * 32);
        tr.denoise = Denoise::Median { radius: 1 };
        let med = tr.prepare(&img);
        tr.denoise = Denoise::Gaussian { sigma: 1.0 };
        let gau = tr.prepare(&img);
        assert_ne!(med, gau);
        tr.equalize = Equalize::Global;
        let eq = tr.prepare(&GrayImage::from_fn(32, 32, |x, _| {
            image::Luma([100 + (x % 4) as u8])
        }));
        let (lo, hi) = eq
            .as_raw()
            .iter()
            .fold((255u8, 0u8), |(a, b), &v| (a.min(v), b.max(v)));
        assert!(
            hi - lo > 100,
            "equalization stretches 100..103 to {lo}..{hi}"
        );
        let p = std::env::temp_dir().join(format!("fer-transform-{}.json", std::process::id()));
        tr.save(&p).unwrap();
        assert_eq!(Transform::load(&p).unwrap(), tr);
        std::fs::remove_file(p).ok();
    }
}
