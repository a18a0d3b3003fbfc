//! [`Augmenter::apply`] and [`Augmenter::apply_batch`]: running a chain on images (the
//! geometric steps fused into one warp), with the JPEG, motion blur and warp kernels.

use super::{Affine, Augmenter, Op, Scratch, bilinear, image_rng, uniform};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;

impl Augmenter {
    /// Augment one image in place.
    pub fn apply(&self, img: &mut [f32], rng: &mut ChaCha8Rng, scratch: &mut Scratch) {
        debug_assert_eq!(img.len(), self.side * self.side);
        let (lo, hi) = self.range;
        let span = hi - lo;
        let c = (self.side as f32 - 1.0) / 2.0;
        // Pending affine map (output -> input is its inverse, which imageproc computes).
        let mut affine: Option<Affine> = None;
        let mut i = 0;
        while i <= self.steps.len() {
            let step = self.steps.get(i);
            // Flush the fused geometric map before any non-geometric step (and at the end).
            if step.is_none_or(|s| !s.op.is_affine())
                && let Some(m) = affine.take()
            {
                self.warp(img, m, scratch);
            }
            let Some(step) = step else { break };
            i += 1;
            // Draw the coin first, then the parameters, so p never shifts later draws' meaning.
            if !(step.p >= 1.0 || rng.random::<f32>() < step.p) {
                continue;
            }
            let compose = |m: Affine, affine: &mut Option<Affine>| {
                let about_center = Affine::translate(c, c)
                    .then_after(m)
                    .then_after(Affine::translate(-c, -c));
                *affine = Some(match affine.take() {
                    Some(prev) => about_center.then_after(prev),
                    None => about_center,
                });
            };
            match step.op {
                Op::Hflip => {
                    for row in img.chunks_exact_mut(self.side) {
                        row.reverse();
                    }
                }
                Op::Rotate { degrees } => {
                    let a = uniform(rng, -degrees, degrees).to_radians();
                    if a != 0.0 {
                        compose(Affine::rotate(a), &mut affine);
                    }
                }
                Op::Scale { min, max } => {
                    let s = uniform(rng, min, max);
                    if s != 1.0 {
                        compose(Affine::scale(s), &mut affine);
                    }
                }
                Op::Translate { max_fraction } => {
                    let m = max_fraction * self.side as f32;
                    let (tx, ty) = (uniform(rng, -m, m), uniform(rng, -m, m));
                    if tx != 0.0 || ty != 0.0 {
                        compose(Affine::translate(tx, ty), &mut affine);
                    }
                }
                Op::Brightness { max_delta } => {
                    let d = uniform(rng, -max_delta, max_delta) * span;
                    if d != 0.0 {
                        img.iter_mut().for_each(|v| *v = (*v + d).clamp(lo, hi));
                    }
                }
                Op::Contrast { min, max } => {
                    let f = uniform(rng, min, max);
                    if f != 1.0 {
                        let mean = img.iter().sum::<f32>() / img.len() as f32;
                        img.iter_mut()
                            .for_each(|v| *v = (mean + f * (*v - mean)).clamp(lo, hi));
                    }
                }
                Op::Blur {
                    sigma_min,
                    sigma_max,
                } => {
                    let s = uniform(rng, sigma_min, sigma_max);
                    if s > 0.0 {
                        scratch.src.copy_from_slice(img);
                        let out = imageproc::filter::gaussian_blur_f32(&scratch.src, s);
                        img.copy_from_slice(out.as_raw());
                    }
                }
                Op::Noise { std } => {
                    if std > 0.0 {
                        let normal = Normal::new(0.0f32, std * span).expect("std validated > 0");
                        img.iter_mut()
                            .for_each(|v| *v = (*v + normal.sample(rng)).clamp(lo, hi));
                    }
                }
                Op::Erase { min_area, max_area } => {
                    let side = self.side as f32;
                    let area = uniform(rng, min_area, max_area) * side * side;
                    let aspect = uniform(rng, 0.3f32.ln(), 3.3f32.ln()).exp();
                    let h = ((area * aspect).sqrt().round() as usize).clamp(1, self.side);
                    let w = ((area / aspect).sqrt().round() as usize).clamp(1, self.side);
                    let y0 = rng.random_range(0..=self.side - h);
                    let x0 = rng.random_range(0..=self.side - w);
                    for y in y0..y0 + h {
                        for v in &mut img[y * self.side + x0..y * self.side + x0 + w] {
                            *v = uniform(rng, lo, hi);
                        }
                    }
                }
                Op::Lowres { min, max } => {
                    let f = uniform(rng, min, max);
                    let small = ((self.side as f32 * f).round() as u32).max(2);
                    if (small as usize) < self.side {
                        use image::imageops::{FilterType, resize};
                        // The image crate's f32 pixels live in 0..=1: resample there.
                        let n = self.side as u32;
                        for (d, v) in scratch.src.iter_mut().zip(img.iter()) {
                            *d = (*v - lo) / span;
                        }
                        let down = resize(&scratch.src, small, small, FilterType::Triangle);
                        let up = resize(&down, n, n, FilterType::Triangle);
                        for (v, u) in img.iter_mut().zip(up.as_raw()) {
                            *v = (lo + u * span).clamp(lo, hi);
                        }
                    }
                }
                Op::Jpeg { min, max } => {
                    let q = uniform(rng, min, max).round().clamp(1.0, 100.0) as u8;
                    self.jpeg(img, q);
                }
                Op::MotionBlur { min, max } => {
                    let len = uniform(rng, min, max) * self.side as f32;
                    let angle = uniform(rng, 0.0, std::f32::consts::PI);
                    if len >= 1.0 {
                        self.motion_blur(img, len, angle, scratch);
                    }
                }
                Op::Dim { min, max } => {
                    let k = uniform(rng, min, max);
                    if k != 1.0 {
                        let to_px = 255.0 / span;
                        img.iter_mut().for_each(|v| {
                            let px = ((*v - lo) * to_px * k).round();
                            *v = (lo + px / to_px).clamp(lo, hi);
                        });
                    }
                }
                Op::Shade { max } => {
                    let g = uniform(rng, 0.0, max);
                    let angle = uniform(rng, 0.0, std::f32::consts::TAU);
                    if g > 0.0 {
                        let (s, co) = angle.sin_cos();
                        let n = self.side;
                        for (i, v) in img.iter_mut().enumerate() {
                            let (x, y) = ((i % n) as f32 - c, (i / n) as f32 - c);
                            let t = (x * co + y * s) / c.max(1.0);
                            let factor = (1.0 + g * t).max(0.0);
                            *v = (lo + (*v - lo) * factor).clamp(lo, hi);
                        }
                    }
                }
                Op::Cover { min, max } => {
                    let n = self.side;
                    let y0 = ((uniform(rng, min, max) * n as f32) as usize).min(n);
                    let (x0, x1) = (n / 10, n - n / 10);
                    let mean = img.iter().sum::<f32>() / img.len() as f32;
                    for y in y0..n {
                        img[y * n + x0..y * n + x1].fill(mean);
                    }
                }
            }
        }
    }

    /// JPEG round trip of `img` at quality `q`: to 8-bit gray over the value range, the image
    /// crate's encoder and decoder, back to the range. An encoder error (none is expected for
    /// an in-memory gray image) leaves the image as it was.
    fn jpeg(&self, img: &mut [f32], q: u8) {
        let (lo, hi) = self.range;
        let span = hi - lo;
        let n = self.side as u32;
        let px: Vec<u8> = img
            .iter()
            .map(|v| ((*v - lo) / span * 255.0).round().clamp(0.0, 255.0) as u8)
            .collect();
        let mut bytes = Vec::new();
        let encoded = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, q).encode(
            &px,
            n,
            n,
            image::ExtendedColorType::L8,
        );
        if encoded.is_err() {
            return;
        }
        let Ok(decoded) = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)
        else {
            return;
        };
        let gray = decoded.to_luma8();
        if gray.len() == img.len() {
            for (v, p) in img.iter_mut().zip(gray.as_raw()) {
                *v = lo + *p as f32 / 255.0 * span;
            }
        }
    }

    /// The mean of `len` + 1 bilinear samples along a line of length `len` pixels at `angle`
    /// through each pixel (edges replicated).
    pub(super) fn motion_blur(&self, img: &mut [f32], len: f32, angle: f32, scratch: &mut Scratch) {
        let n = self.side;
        let src: &mut [f32] = &mut scratch.src;
        src.copy_from_slice(img);
        let taps = len.ceil() as usize + 1;
        let (s, c) = angle.sin_cos();
        for y in 0..n {
            for x in 0..n {
                let mut sum = 0.0;
                for k in 0..taps {
                    let t = len * (k as f32 / (taps - 1) as f32 - 0.5);
                    sum += bilinear(src, n, x as f32 + t * c, y as f32 + t * s);
                }
                img[y * n + x] = sum / taps as f32;
            }
        }
    }

    /// Resample `img` under the forward map `m` (bilinear, edges replicated).
    pub(super) fn warp(&self, img: &mut [f32], m: Affine, scratch: &mut Scratch) {
        let Some(inv) = m.inverse() else { return };
        let n = self.side;
        let src: &mut [f32] = &mut scratch.src;
        src.copy_from_slice(img);
        for y in 0..n {
            // Source position of (0, y), then step by (inv.a, inv.d) per output pixel.
            let mut sx = inv.b * y as f32 + inv.c;
            let mut sy = inv.e * y as f32 + inv.f;
            for out in &mut img[y * n..(y + 1) * n] {
                *out = bilinear(src, n, sx, sy);
                sx += inv.a;
                sy += inv.d;
            }
        }
    }

    /// Augment a batch of `side*side` images in place, in parallel; image `i` uses
    /// [`image_rng`]`(seed, stream, i)`.
    pub fn apply_batch(&self, batch: &mut [f32], seed: u64, stream: u64) {
        let n = self.side * self.side;
        batch.par_chunks_mut(n).enumerate().for_each_init(
            || Scratch::new(self.side),
            |scratch, (i, img)| {
                let mut rng = image_rng(seed, stream, i as u64);
                self.apply(img, &mut rng, scratch);
            },
        );
    }
}
