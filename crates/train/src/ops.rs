//! The augmentation library: seeded, composable transforms on one-channel f32 images in the
//! model's value range (the fitted transform's `value_range()`).
//!
//! Geometric steps that follow each other (rotate, scale, translate) are fused into one affine
//! map and resampled once (bilinear, edges replicated). The warp is written here rather than
//! taken from imageproc's `warp_into`: on 48x48 f32 images imageproc's generic per-pixel
//! projection and border checks cost about 60 us per image (14k images/s on one core, short
//! of the 20k/s on two cores that online augmentation needs); the incremental affine loop
//! below is several times faster. A flip is an exact in-place row reversal, so flipping twice
//! is the identity. Photometric steps clamp to
//! the value range. Every image gets its own ChaCha RNG seeded from `(seed, stream, index)`,
//! so a batch comes out the same whatever the thread count or scheduling.

use image::{ImageBuffer, Luma};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use serde::Serialize;

/// A 2-D affine map `(x, y) -> (a x + b y + c, d x + e y + f)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    pub a: f32,
    pub b: f32,
    pub c: f32,
    pub d: f32,
    pub e: f32,
    pub f: f32,
}

impl Affine {
    pub const IDENTITY: Affine = Affine {
        a: 1.0,
        b: 0.0,
        c: 0.0,
        d: 0.0,
        e: 1.0,
        f: 0.0,
    };
    pub fn translate(tx: f32, ty: f32) -> Affine {
        Affine {
            c: tx,
            f: ty,
            ..Affine::IDENTITY
        }
    }
    pub fn rotate(theta: f32) -> Affine {
        let (s, c) = theta.sin_cos();
        Affine {
            a: c,
            b: -s,
            c: 0.0,
            d: s,
            e: c,
            f: 0.0,
        }
    }
    pub fn scale(s: f32) -> Affine {
        Affine {
            a: s,
            e: s,
            ..Affine::IDENTITY
        }
    }
    /// `self` after `other`: `(self * other)(p) = self(other(p))`.
    pub fn then_after(self, o: Affine) -> Affine {
        Affine {
            a: self.a * o.a + self.b * o.d,
            b: self.a * o.b + self.b * o.e,
            c: self.a * o.c + self.b * o.f + self.c,
            d: self.d * o.a + self.e * o.d,
            e: self.d * o.b + self.e * o.e,
            f: self.d * o.c + self.e * o.f + self.f,
        }
    }
    pub fn inverse(self) -> Option<Affine> {
        let det = self.a * self.e - self.b * self.d;
        if det.abs() < 1e-12 {
            return None;
        }
        let (a, b, d, e) = (self.e / det, -self.b / det, -self.d / det, self.a / det);
        Some(Affine {
            a,
            b,
            c: -(a * self.c + b * self.f),
            d,
            e,
            f: -(d * self.c + e * self.f),
        })
    }
}

/// One transform with its parameters (validated).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Op {
    /// Mirror left-right.
    Hflip,
    /// Rotate about the centre by a uniform angle in ±`degrees`.
    Rotate { degrees: f32 },
    /// Zoom by a uniform factor in [`min`, `max`] (>1 zooms in).
    Scale { min: f32, max: f32 },
    /// Shift by up to ±`max_fraction` of the side, independently in x and y.
    Translate { max_fraction: f32 },
    /// Add a uniform offset in ±`max_delta` of the value range.
    Brightness { max_delta: f32 },
    /// Scale deviations from the image mean by a uniform factor in [`min`, `max`].
    Contrast { min: f32, max: f32 },
    /// Gaussian blur with a uniform sigma in [`sigma_min`, `sigma_max`] pixels.
    Blur { sigma_min: f32, sigma_max: f32 },
    /// Add Gaussian noise with standard deviation `std` (a fraction of the value range).
    Noise { std: f32 },
    /// Random erasing: a rectangle of `min_area`..`max_area` of the image (aspect 0.3..3.3)
    /// filled with uniform noise over the value range.
    Erase { min_area: f32, max_area: f32 },
    /// A camera's low resolution: scale down to a uniform fraction in [`min`, `max`] of the
    /// side (area filter) and back up (bilinear), as a small face in a frame is upscaled to
    /// the model's input.
    Lowres { min: f32, max: f32 },
    /// JPEG compression at a uniform quality in [`min`, `max`] (1-100): the pixels go to 8
    /// bits, through the image crate's encoder and decoder, and back.
    Jpeg { min: f32, max: f32 },
    /// Motion blur: the mean along a line of uniform length in [`min`, `max`] (fractions of
    /// the side) at a uniform angle.
    MotionBlur { min: f32, max: f32 },
    /// Low light: the pixel values (0-255) times a uniform factor in [`min`, `max`], rounded
    /// to whole levels as a camera's 8 bits store them: a dark frame keeps fewer grey levels.
    Dim { min: f32, max: f32 },
    /// Uneven light: the pixel values times a ramp from `1 - g` to `1 + g` across the image
    /// in a uniform direction, `g` uniform in [0, `max`].
    Shade { max: f32 },
    /// The lower face covered (a mask, a scarf, a hand): rows from a uniform fraction in
    /// [`min`, `max`] of the side down to the bottom, columns 10%..90%, filled with the
    /// image's mean. The label stays, so the model has to read the expression from the rest
    /// of the face too (issue 29: with the mouth covered, fer-small called 9.7% of FER2013's
    /// happy test faces happy).
    Cover { min: f32, max: f32 },
}

impl Op {
    fn is_affine(&self) -> bool {
        matches!(
            self,
            Op::Rotate { .. } | Op::Scale { .. } | Op::Translate { .. }
        )
    }
}

/// An op and the probability that it is applied to a given image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Step {
    pub op: Op,
    pub p: f32,
}

/// The same chain with every magnitude multiplied by `k` (tune's "augmentation strength"):
/// angles, shifts, zoom and contrast ranges around 1, brightness, blur, noise, the
/// probability of erasing, and the camera ops (low resolution and dimming around 1, JPEG
/// quality around 100, motion blur and shading around 0; covering, like erasing, by its
/// probability). `k = 1` is the chain itself, `k = 0` leaves only flips.
pub fn scale_steps(steps: &[Step], k: f32) -> Vec<Step> {
    let around_one = |v: f32| 1.0 + (v - 1.0) * k;
    steps
        .iter()
        .map(|st| {
            let (op, p) = match st.op {
                Op::Hflip => (Op::Hflip, st.p),
                Op::Rotate { degrees } => (
                    Op::Rotate {
                        degrees: degrees * k,
                    },
                    st.p,
                ),
                Op::Scale { min, max } => (
                    Op::Scale {
                        min: around_one(min).max(0.05),
                        max: around_one(max).max(0.05),
                    },
                    st.p,
                ),
                Op::Translate { max_fraction } => (
                    Op::Translate {
                        max_fraction: (max_fraction * k).min(0.5),
                    },
                    st.p,
                ),
                Op::Brightness { max_delta } => (
                    Op::Brightness {
                        max_delta: max_delta * k,
                    },
                    st.p,
                ),
                Op::Contrast { min, max } => (
                    Op::Contrast {
                        min: around_one(min).max(0.0),
                        max: around_one(max).max(0.0),
                    },
                    st.p,
                ),
                Op::Blur {
                    sigma_min,
                    sigma_max,
                } => (
                    Op::Blur {
                        sigma_min: sigma_min * k,
                        sigma_max: sigma_max * k,
                    },
                    st.p,
                ),
                Op::Noise { std } => (Op::Noise { std: std * k }, st.p),
                Op::Erase { .. } => (st.op, (st.p * k).clamp(0.0, 1.0)),
                Op::Lowres { min, max } => (
                    Op::Lowres {
                        min: around_one(min).clamp(0.05, 1.0),
                        max: around_one(max).clamp(0.05, 1.0),
                    },
                    st.p,
                ),
                Op::Jpeg { min, max } => {
                    let q = |v: f32| (100.0 - (100.0 - v) * k).clamp(1.0, 100.0);
                    (
                        Op::Jpeg {
                            min: q(min),
                            max: q(max),
                        },
                        st.p,
                    )
                }
                Op::MotionBlur { min, max } => (
                    Op::MotionBlur {
                        min: min * k,
                        max: max * k,
                    },
                    st.p,
                ),
                Op::Dim { min, max } => (
                    Op::Dim {
                        min: around_one(min).clamp(0.01, 1.0),
                        max: around_one(max).clamp(0.01, 1.0),
                    },
                    st.p,
                ),
                Op::Shade { max } => (
                    Op::Shade {
                        max: (max * k).min(1.0),
                    },
                    st.p,
                ),
                Op::Cover { .. } => (st.op, (st.p * k).clamp(0.0, 1.0)),
            };
            Step { op, p }
        })
        .collect()
}

/// A chain of steps for `side` x `side` images with values in `range`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Augmenter {
    pub steps: Vec<Step>,
    pub side: usize,
    pub range: (f32, f32),
}

/// Per-thread buffers, so a batch allocates once per thread, not once per image.
pub struct Scratch {
    src: ImageBuffer<Luma<f32>, Vec<f32>>,
}

impl Scratch {
    pub fn new(side: usize) -> Scratch {
        Scratch {
            src: ImageBuffer::new(side as u32, side as u32),
        }
    }
}

/// The bilinear sample of the `n` x `n` image `src` at `(x, y)`, edges replicated.
#[inline]
fn bilinear(src: &[f32], n: usize, x: f32, y: f32) -> f32 {
    let max = (n - 1) as f32;
    let (cx, cy) = (x.clamp(0.0, max), y.clamp(0.0, max));
    let (x0, y0) = (cx as usize, cy as usize);
    let (x1, y1) = ((x0 + 1).min(n - 1), (y0 + 1).min(n - 1));
    let (fx, fy) = (cx - x0 as f32, cy - y0 as f32);
    let top = src[y0 * n + x0] + fx * (src[y0 * n + x1] - src[y0 * n + x0]);
    let bot = src[y1 * n + x0] + fx * (src[y1 * n + x1] - src[y1 * n + x0]);
    top + fy * (bot - top)
}

/// The RNG of image `index` in `stream` (e.g. epoch * 1e6 + batch) under `seed`.
pub fn image_rng(seed: u64, stream: u64, index: u64) -> ChaCha8Rng {
    let mut s = seed ^ 0x243F_6A88_85A3_08D3;
    for v in [stream, index] {
        s = (s ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        s ^= s >> 29;
    }
    ChaCha8Rng::seed_from_u64(s)
}

fn uniform(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    if hi > lo {
        rng.random_range(lo..=hi)
    } else {
        lo
    }
}

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
    fn motion_blur(&self, img: &mut [f32], len: f32, angle: f32, scratch: &mut Scratch) {
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
    fn warp(&self, img: &mut [f32], m: Affine, scratch: &mut Scratch) {
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

#[cfg(test)]
mod scale_tests {
    use super::*;

    #[test]
    fn scaling_multiplies_magnitudes_and_one_is_identity() {
        let steps = vec![
            Step {
                op: Op::Hflip,
                p: 0.5,
            },
            Step {
                op: Op::Rotate { degrees: 10.0 },
                p: 1.0,
            },
            Step {
                op: Op::Contrast { min: 0.8, max: 1.2 },
                p: 1.0,
            },
            Step {
                op: Op::Erase {
                    min_area: 0.02,
                    max_area: 0.1,
                },
                p: 0.4,
            },
        ];
        assert_eq!(scale_steps(&steps, 1.0), steps);
        let half = scale_steps(&steps, 0.5);
        assert_eq!(half[0], steps[0]);
        assert_eq!(half[1].op, Op::Rotate { degrees: 5.0 });
        match half[2].op {
            Op::Contrast { min, max } => {
                assert!((min - 0.9).abs() < 1e-6 && (max - 1.1).abs() < 1e-6)
            }
            ref o => panic!("{o:?}"),
        }
        assert!((half[3].p - 0.2).abs() < 1e-6);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img() -> Vec<f32> {
        (0..48 * 48)
            .map(|i| ((i * 37) % 101) as f32 / 100.0)
            .collect()
    }

    fn aug(steps: Vec<Step>) -> Augmenter {
        Augmenter {
            steps,
            side: 48,
            range: (0.0, 1.0),
        }
    }

    fn run(a: &Augmenter, x: &[f32], seed: u64) -> Vec<f32> {
        let mut y = x.to_vec();
        a.apply(&mut y, &mut image_rng(seed, 0, 0), &mut Scratch::new(48));
        y
    }

    fn always(op: Op) -> Step {
        Step { op, p: 1.0 }
    }

    #[test]
    fn affine_inverse_and_composition() {
        let m = Affine::translate(3.0, -2.0)
            .then_after(Affine::rotate(0.4))
            .then_after(Affine::scale(1.3));
        let i = m.inverse().unwrap();
        let id = m.then_after(i);
        for (a, b) in [
            (id.a, 1.0),
            (id.b, 0.0),
            (id.c, 0.0),
            (id.d, 0.0),
            (id.e, 1.0),
            (id.f, 0.0),
        ] {
            assert!((a - b).abs() < 1e-5);
        }
        assert!(Affine::scale(0.0).inverse().is_none());
    }

    #[test]
    fn small_translation_shifts_pixels() {
        // Shifting right by exactly one pixel moves column x to x + 1 (column 0 replicated).
        let x = img();
        let a = aug(vec![]);
        let mut y = x.clone();
        a.warp(&mut y, Affine::translate(1.0, 0.0), &mut Scratch::new(48));
        for r in 0..48 {
            assert_eq!(y[r * 48], x[r * 48]);
            for c in 1..48 {
                assert!((y[r * 48 + c] - x[r * 48 + c - 1]).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn flip_twice_is_identity() {
        let x = img();
        let a = aug(vec![always(Op::Hflip), always(Op::Hflip)]);
        assert_eq!(run(&a, &x, 1), x);
        let once = run(&aug(vec![always(Op::Hflip)]), &x, 1);
        assert_ne!(once, x);
        assert_eq!(once[0], x[47]);
    }

    #[test]
    fn zero_strength_changes_nothing() {
        let x = img();
        for op in [
            Op::Rotate { degrees: 0.0 },
            Op::Brightness { max_delta: 0.0 },
            Op::Contrast { min: 1.0, max: 1.0 },
            Op::Scale { min: 1.0, max: 1.0 },
            Op::Translate { max_fraction: 0.0 },
            Op::Noise { std: 0.0 },
            Op::Blur {
                sigma_min: 0.0,
                sigma_max: 0.0,
            },
            Op::Lowres { min: 1.0, max: 1.0 },
            Op::MotionBlur { min: 0.0, max: 0.0 },
            Op::Dim { min: 1.0, max: 1.0 },
            Op::Shade { max: 0.0 },
        ] {
            assert_eq!(run(&aug(vec![always(op)]), &x, 3), x, "{op:?}");
        }
        // p = 0 never applies.
        assert_eq!(
            run(
                &aug(vec![Step {
                    op: Op::Hflip,
                    p: 0.0
                }]),
                &x,
                3
            ),
            x
        );
    }

    #[test]
    fn outputs_stay_in_range_and_are_seeded() {
        let x = img();
        let a = Augmenter {
            steps: vec![
                Step {
                    op: Op::Hflip,
                    p: 0.5,
                },
                always(Op::Rotate { degrees: 20.0 }),
                always(Op::Scale { min: 0.9, max: 1.2 }),
                always(Op::Translate { max_fraction: 0.1 }),
                always(Op::Brightness { max_delta: 0.3 }),
                always(Op::Contrast { min: 0.5, max: 1.8 }),
                always(Op::Blur {
                    sigma_min: 0.1,
                    sigma_max: 1.0,
                }),
                always(Op::Noise { std: 0.1 }),
                always(Op::Erase {
                    min_area: 0.02,
                    max_area: 0.2,
                }),
                always(Op::Dim { min: 0.1, max: 0.5 }),
                always(Op::Shade { max: 0.8 }),
                always(Op::MotionBlur { min: 0.1, max: 0.3 }),
                always(Op::Lowres {
                    min: 0.25,
                    max: 0.5,
                }),
                always(Op::Jpeg {
                    min: 10.0,
                    max: 50.0,
                }),
            ],
            side: 48,
            range: (-1.0, 2.0),
        };
        let y1 = run(&a, &x, 5);
        assert!(y1 == run(&a, &x, 5), "the same seed gives the same image");
        assert!(y1 != run(&a, &x, 6), "another seed gives another image");
        assert!(y1.iter().all(|v| (-1.0..=2.0).contains(v)));
    }

    #[test]
    fn batch_is_deterministic_and_shape_preserving() {
        let a = aug(vec![
            Step {
                op: Op::Hflip,
                p: 0.5,
            },
            always(Op::Rotate { degrees: 15.0 }),
            always(Op::Contrast { min: 0.8, max: 1.2 }),
        ]);
        let mut b1: Vec<f32> = (0..8).flat_map(|_| img()).collect();
        let mut b2 = b1.clone();
        a.apply_batch(&mut b1, 9, 4);
        a.apply_batch(&mut b2, 9, 4);
        assert_eq!(b1, b2);
        assert_eq!(b1.len(), 8 * 48 * 48);
        // Image 3 of the batch equals the same image augmented alone with its RNG.
        let mut one = img();
        a.apply(&mut one, &mut image_rng(9, 4, 3), &mut Scratch::new(48));
        assert_eq!(&b1[3 * 2304..4 * 2304], &one[..]);
        let mut b3: Vec<f32> = (0..8).flat_map(|_| img()).collect();
        a.apply_batch(&mut b3, 9, 5);
        assert_ne!(b1, b3);
    }

    #[test]
    fn rotation_by_180_degrees_matches_a_flip_of_both_axes() {
        // A full-strength check that the fused warp is centred: rotating by exactly 180
        // degrees maps pixel (x, y) to (47 - x, 47 - y).
        let x = img();
        let mut s = Scratch::new(48);
        let a = aug(vec![]);
        let mut y = x.clone();
        let m = Affine::translate(23.5, 23.5)
            .then_after(Affine::rotate(std::f32::consts::PI))
            .then_after(Affine::translate(-23.5, -23.5));
        a.warp(&mut y, m, &mut s);
        let mut rev = x.clone();
        rev.reverse();
        for (a, b) in y.iter().zip(&rev) {
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
    }

    fn variance(v: &[f32]) -> f32 {
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32
    }

    /// A checkerboard of 1-pixel squares: all of its detail is at the finest scale.
    fn checkerboard() -> Vec<f32> {
        (0..48 * 48)
            .map(|i| ((i % 48 + i / 48) % 2) as f32)
            .collect()
    }

    #[test]
    fn lowres_removes_fine_detail_and_keeps_a_flat_image_flat() {
        let a = aug(vec![always(Op::Lowres {
            min: 0.25,
            max: 0.25,
        })]);
        let y = run(&a, &checkerboard(), 1);
        assert!(
            variance(&y) < 0.05 * variance(&checkerboard()),
            "{}",
            variance(&y)
        );
        let flat = vec![0.4f32; 48 * 48];
        assert!(run(&a, &flat, 1).iter().all(|v| (v - 0.4).abs() < 1e-5));
    }

    #[test]
    fn jpeg_keeps_the_image_close_and_is_seeded() {
        let x = img();
        let a = aug(vec![always(Op::Jpeg {
            min: 90.0,
            max: 90.0,
        })]);
        let y = run(&a, &x, 2);
        assert_ne!(y, x);
        let smooth: Vec<f32> = (0..48 * 48)
            .map(|i| ((i % 48) as f32 / 47.0 + (i / 48) as f32 / 47.0) / 2.0)
            .collect();
        let ys = run(&a, &smooth, 2);
        let err = ys
            .iter()
            .zip(&smooth)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / 2304.0;
        assert!(
            err < 0.01,
            "mean error {err} on a smooth ramp at quality 90"
        );
        // Quality 5 loses much more of the same image than quality 90.
        let low = run(&aug(vec![always(Op::Jpeg { min: 5.0, max: 5.0 })]), &x, 2);
        let dist = |a: &[f32]| a.iter().zip(&x).map(|(a, b)| (a - b).abs()).sum::<f32>();
        assert!(dist(&low) > dist(&y));
    }

    #[test]
    fn motion_blur_smears_along_its_line_only() {
        let a = aug(vec![]);
        // Columns alternate (detail along x); rows alternate (detail along y).
        let cols: Vec<f32> = (0..48 * 48).map(|i| (i % 48 % 2) as f32).collect();
        let rows: Vec<f32> = (0..48 * 48).map(|i| (i / 48 % 2) as f32).collect();
        let mut s = Scratch::new(48);
        let (mut c, mut r) = (cols.clone(), rows.clone());
        a.motion_blur(&mut c, 6.0, 0.0, &mut s);
        a.motion_blur(&mut r, 6.0, 0.0, &mut s);
        assert!(variance(&c) < 0.05 * variance(&cols), "{}", variance(&c));
        for (a, b) in r.iter().zip(&rows) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn dim_keeps_fewer_grey_levels() {
        let a = Augmenter {
            steps: vec![always(Op::Dim { min: 0.2, max: 0.2 })],
            side: 48,
            range: (0.0, 1.0),
        };
        let ramp: Vec<f32> = (0..48 * 48).map(|i| (i % 256) as f32 / 255.0).collect();
        let y = run(&a, &ramp, 1);
        let mut levels: Vec<u32> = y.iter().map(|v| (v * 255.0).round() as u32).collect();
        levels.sort_unstable();
        levels.dedup();
        // 256 levels times 0.2, rounded: 0..=51.
        assert_eq!(levels.len(), 52);
        assert_eq!(*levels.last().unwrap(), 51);
    }

    #[test]
    fn cover_fills_the_lower_face_with_the_mean_and_leaves_the_rest() {
        let x = img();
        let mean = x.iter().sum::<f32>() / x.len() as f32;
        let y = run(&aug(vec![always(Op::Cover { min: 0.6, max: 0.6 })]), &x, 1);
        // Row 28 (60% of 48 = 28.8, so from row 28) down, columns 4..44.
        for r in 0..48 {
            for c in 0..48 {
                let i = r * 48 + c;
                if r >= 28 && (4..44).contains(&c) {
                    assert!((y[i] - mean).abs() < 1e-6);
                } else {
                    assert_eq!(y[i], x[i]);
                }
            }
        }
    }

    #[test]
    fn shade_ramps_a_flat_image_from_dark_to_bright() {
        let a = aug(vec![always(Op::Shade { max: 0.5 })]);
        let flat = vec![0.5f32; 48 * 48];
        let y = run(&a, &flat, 4);
        let (lo, hi) = y
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
        assert!(lo < 0.5 && hi > 0.5, "{lo} {hi}");
        let mean = y.iter().sum::<f32>() / y.len() as f32;
        assert!(
            (mean - 0.5).abs() < 0.02,
            "the ramp is centred: mean {mean}"
        );
    }
}
