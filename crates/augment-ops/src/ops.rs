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

mod affine;
mod apply;
mod scale;

pub use affine::Affine;
pub use scale::scale_steps;

use image::{ImageBuffer, Luma};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

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
