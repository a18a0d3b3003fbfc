//! Deterministic drawn faces, so the pipeline runs without the FER2013 download.
//!
//! A face is an ellipse with two eyes, brows and a mouth. Happy: the mouth curves up (its
//! middle lower than its corners). Not happy: flat (`neutral`) or curved down (`sad`). Pose
//! (offset, rotation), size, brightness, contrast and noise are random, drawn from a seeded
//! ChaCha RNG, so the same seed always gives the same pixels.

use fer_core::{Emotion, IMAGE_SIDE};
use image::{GrayImage, Luma};
use imageproc::drawing::{draw_filled_circle_mut, draw_filled_ellipse_mut};
use imageproc::geometric_transformations::{Border, Interpolation, rotate_about_center};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Draw one face. `emotion` is `Happy`, `Neutral` or `Sad`; `seed` fixes everything else.
pub fn face(emotion: Emotion, seed: u64, noise: f64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let Head {
        mut img,
        bg,
        dark,
        cx,
        cy,
        rx,
        ry,
    } = head(&mut rng);
    // Eyes and brows.
    let eye_dx = rx * rng.random_range(0.35..0.5);
    let eye_y = cy - ry * rng.random_range(0.2..0.35);
    let eye_r = (rx * rng.random_range(0.1..0.16)).max(1.0) as i32;
    for side in [-1.0f32, 1.0] {
        let ex = cx + side * eye_dx;
        draw_filled_circle_mut(&mut img, (ex as i32, eye_y as i32), eye_r, Luma([dark]));
        let brow_y = eye_y - eye_r as f32 - rng.random_range(2.0..4.0);
        let tilt = rng.random_range(-1.5..1.5f32);
        for k in 0..7 {
            let t = k as f32 / 6.0 - 0.5;
            let x = ex + t * eye_dx * 0.9;
            let y = brow_y + side * t * tilt;
            draw_filled_circle_mut(&mut img, (x as i32, y as i32), 0, Luma([dark]));
        }
    }
    // Mouth: y(t) = mouth_y + bend * (1 - (2t)^2), t in [-0.5, 0.5]; bend > 0 puts the middle
    // lower than the corners (a smile, image y grows downwards).
    let bend = match emotion {
        Emotion::Happy => rng.random_range(2.5..5.5f32),
        Emotion::Sad => -rng.random_range(2.0..4.5f32),
        _ => rng.random_range(-0.6..0.6f32),
    };
    let mouth_y = cy + ry * rng.random_range(0.35..0.5) - bend / 2.0;
    let mouth_w = rx * rng.random_range(0.7..1.1);
    let thick = rng.random_range(0..=1);
    for k in 0..=24 {
        let t = k as f32 / 24.0 - 0.5;
        let x = cx + t * mouth_w;
        let y = mouth_y + bend * (1.0 - 4.0 * t * t);
        draw_filled_circle_mut(
            &mut img,
            (x.round() as i32, y.round() as i32),
            thick,
            Luma([dark]),
        );
    }
    finish(img, &mut rng, bg, noise)
}

/// A blank face: background, skin ellipse and the colours and geometry the features use.
struct Head {
    img: GrayImage,
    bg: u8,
    dark: u8,
    cx: f32,
    cy: f32,
    rx: f32,
    ry: f32,
}

/// Draw the background and the skin ellipse (the first draws of a face's RNG, in this order).
fn head(rng: &mut ChaCha8Rng) -> Head {
    let s = IMAGE_SIDE as f32;
    let bg: u8 = rng.random_range(10..110);
    let skin: u8 = rng.random_range(130..230);
    let dark = (skin as f32 * rng.random_range(0.15..0.45)) as u8;
    let mut img = GrayImage::from_pixel(IMAGE_SIDE as u32, IMAGE_SIDE as u32, Luma([bg]));
    let cx = s / 2.0 + rng.random_range(-3.0..3.0);
    let cy = s / 2.0 + rng.random_range(-3.0..3.0);
    let rx = rng.random_range(13.0..19.0f32);
    let ry = rx * rng.random_range(1.1..1.35f32);
    draw_filled_ellipse_mut(
        &mut img,
        (cx as i32, cy as i32),
        rx as i32,
        ry as i32,
        Luma([skin]),
    );
    Head {
        img,
        bg,
        dark,
        cx,
        cy,
        rx,
        ry,
    }
}

/// Rotate the drawn face a little and add the pixel noise (the last draws of its RNG).
fn finish(img: GrayImage, rng: &mut ChaCha8Rng, bg: u8, noise: f64) -> Vec<u8> {
    let angle = rng.random_range(-0.3..0.3f32);
    let mut img = rotate_about_center(
        &img,
        angle,
        Interpolation::Bilinear,
        Border::Constant(Luma([bg])),
    );
    if noise > 0.0 {
        imageproc::noise::gaussian_noise_mut(&mut img, 0.0, noise, rng.random());
    }
    img.into_raw()
}

/// How a seven-emotion face ([`face7`]) differs from a neutral one: ranges drawn per face.
struct Expression {
    /// Inner ends of the brows: > 0 raised (sad, fear), < 0 lowered (angry).
    brow_tilt: (f32, f32),
    /// Brows moved up by this many pixels (surprise, fear).
    brow_raise: (f32, f32),
    /// Eye radius as a share of the face's half width.
    eye: (f32, f32),
    /// Mouth bend as in [`face`] (> 0 a smile, < 0 a frown).
    bend: (f32, f32),
    /// Height of an open mouth (a filled ellipse), 0 = closed.
    open: (f32, f32),
    /// One mouth corner raised by this many pixels (disgust's sneer).
    skew: (f32, f32),
}

fn expression(e: Emotion) -> Expression {
    let x = |brow_tilt, brow_raise, eye, bend, open, skew| Expression {
        brow_tilt,
        brow_raise,
        eye,
        bend,
        open,
        skew,
    };
    match e {
        Emotion::Angry => x(
            (-3.5, -2.0),
            (-2.0, -0.5),
            (0.1, 0.14),
            (-1.0, 0.0),
            (0.0, 0.0),
            (0.0, 0.0),
        ),
        Emotion::Disgust => x(
            (-2.0, -0.5),
            (-1.0, 0.0),
            (0.08, 0.12),
            (-1.5, -0.5),
            (0.0, 0.0),
            (2.5, 4.5),
        ),
        Emotion::Fear => x(
            (2.0, 3.5),
            (2.0, 3.5),
            (0.16, 0.2),
            (-2.0, -0.5),
            (2.0, 3.0),
            (0.0, 0.0),
        ),
        Emotion::Happy => x(
            (-1.0, 1.0),
            (0.0, 1.0),
            (0.1, 0.16),
            (2.5, 5.5),
            (0.0, 0.0),
            (0.0, 0.0),
        ),
        Emotion::Sad => x(
            (1.5, 3.0),
            (0.0, 1.0),
            (0.1, 0.14),
            (-4.5, -2.0),
            (0.0, 0.0),
            (0.0, 0.0),
        ),
        Emotion::Surprise => x(
            (-0.5, 0.5),
            (3.0, 4.5),
            (0.16, 0.22),
            (0.0, 0.0),
            (4.0, 6.0),
            (0.0, 0.0),
        ),
        Emotion::Neutral => x(
            (-1.0, 1.0),
            (0.0, 1.0),
            (0.1, 0.16),
            (-0.6, 0.6),
            (0.0, 0.0),
            (0.0, 0.0),
        ),
    }
}

/// Draw one face of any of the seven emotions (the `emotion7` label mode): brows, eyes and
/// mouth follow [`expression`] (angry: inner brows down; disgust: a sneer; fear: raised brows,
/// wide eyes, a small open mouth; surprise: brows high, a round open mouth; happy, sad and
/// neutral as in [`face`]). Pose, lighting and noise are drawn as in [`face`], from `seed`.
/// The binary mode keeps [`face`], so its pixels are what they always were.
pub fn face7(emotion: Emotion, seed: u64, noise: f64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let ex = expression(emotion);
    let mut draw = |r: (f32, f32)| {
        if r.0 < r.1 {
            rng.random_range(r.0..r.1)
        } else {
            r.0
        }
    };
    let (tilt, raise, eye_k, bend, open, skew) = (
        draw(ex.brow_tilt),
        draw(ex.brow_raise),
        draw(ex.eye),
        draw(ex.bend),
        draw(ex.open),
        draw(ex.skew),
    );
    let Head {
        mut img,
        bg,
        dark,
        cx,
        cy,
        rx,
        ry,
    } = head(&mut rng);
    let eye_dx = rx * rng.random_range(0.35..0.5);
    let eye_y = cy - ry * rng.random_range(0.2..0.35);
    let eye_r = (rx * eye_k).max(1.0) as i32;
    for side in [-1.0f32, 1.0] {
        let ex = cx + side * eye_dx;
        draw_filled_circle_mut(&mut img, (ex as i32, eye_y as i32), eye_r, Luma([dark]));
        let brow_y = eye_y - eye_r as f32 - rng.random_range(2.0..4.0) - raise;
        for k in 0..7 {
            let t = k as f32 / 6.0 - 0.5;
            let x = ex + t * eye_dx * 0.9;
            let y = brow_y + side * t * tilt;
            draw_filled_circle_mut(&mut img, (x as i32, y as i32), 0, Luma([dark]));
        }
    }
    let mouth_y = cy + ry * rng.random_range(0.35..0.5) - bend / 2.0;
    let mouth_w = rx * rng.random_range(0.7..1.1);
    let thick = rng.random_range(0..=1);
    if open > 0.0 {
        draw_filled_ellipse_mut(
            &mut img,
            (cx as i32, mouth_y as i32),
            (mouth_w * if open > 3.5 { 0.3 } else { 0.4 }).max(1.0) as i32,
            (open / 2.0).max(1.0) as i32,
            Luma([dark]),
        );
    }
    for k in 0..=24 {
        let t = k as f32 / 24.0 - 0.5;
        let x = cx + t * mouth_w;
        let y = mouth_y + bend * (1.0 - 4.0 * t * t) - skew * (t + 0.5).max(0.0) * 2.0 * t.max(0.0);
        draw_filled_circle_mut(
            &mut img,
            (x.round() as i32, y.round() as i32),
            thick,
            Luma([dark]),
        );
    }
    finish(img, &mut rng, bg, noise)
}

/// The `i`-th face of `emotion` in a split, drawn by [`face7`] (the `emotion7` label mode).
pub fn nth_face7(
    emotion: Emotion,
    split_tag: u64,
    i: usize,
    base_seed: u64,
    noise: f64,
) -> Vec<u8> {
    let seed = base_seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(split_tag << 40)
        .wrapping_add((emotion.code() as u64 + 2) << 32)
        .wrapping_add(i as u64);
    face7(emotion, seed, noise)
}

/// The `i`-th face of a class in a split: `(emotion, pixels)`. Not-happy alternates between
/// neutral and sad.
pub fn nth_face(
    happy: bool,
    split_tag: u64,
    i: usize,
    base_seed: u64,
    noise: f64,
) -> (Emotion, Vec<u8>) {
    let emotion = if happy {
        Emotion::Happy
    } else if i % 2 == 0 {
        Emotion::Neutral
    } else {
        Emotion::Sad
    };
    let seed = base_seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(split_tag << 40)
        .wrapping_add((happy as u64) << 32)
        .wrapping_add(i as u64);
    (emotion, face(emotion, seed, noise))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_varied() {
        let a = face(Emotion::Happy, 7, 8.0);
        assert_eq!(a, face(Emotion::Happy, 7, 8.0));
        assert_ne!(a, face(Emotion::Happy, 8, 8.0));
        assert_eq!(a.len(), IMAGE_SIDE * IMAGE_SIDE);
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / a.len() as f64;
        let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / a.len() as f64;
        assert!(var.sqrt() > 20.0, "a face has contrast, std {}", var.sqrt());
    }

    #[test]
    fn seven_emotions_are_drawn_apart() {
        // Same seed: the same face and pose, only the expression differs; every pair of the
        // seven differs, and the class means are far apart (a classifier can learn them).
        let faces: Vec<Vec<u8>> = Emotion::ALL.iter().map(|&e| face7(e, 5, 0.0)).collect();
        for a in 0..7 {
            for b in a + 1..7 {
                let diff = faces[a]
                    .iter()
                    .zip(&faces[b])
                    .filter(|(x, y)| x != y)
                    .count();
                assert!(
                    diff > 5,
                    "{:?} vs {:?}: {diff} pixels",
                    Emotion::ALL[a],
                    Emotion::ALL[b]
                );
            }
        }
        assert_eq!(face7(Emotion::Fear, 9, 8.0), face7(Emotion::Fear, 9, 8.0));
    }

    #[test]
    fn smile_and_frown_differ_in_the_mouth_region() {
        // Same seed: same pose and face, only the mouth bend differs.
        let h = face(Emotion::Happy, 3, 0.0);
        let s = face(Emotion::Sad, 3, 0.0);
        let diff: usize = h.iter().zip(&s).filter(|(a, b)| a != b).count();
        assert!(diff > 10, "mouths differ in {diff} pixels");
    }
}
