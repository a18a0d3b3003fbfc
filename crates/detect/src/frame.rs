//! A frame's pixels: its mean gray, the copy the detector searches (equalized, padded), the
//! square crop around a box, and the crop turned so the eyes are level.

use crate::{DetectOptions, warp};
use image::GrayImage;
use std::borrow::Cow;

/// The mean gray level of `g` (0 for an empty image).
pub fn mean_gray(g: &GrayImage) -> u8 {
    let n = (g.width() as u64 * g.height() as u64).max(1);
    (g.as_raw().iter().map(|&v| v as u64).sum::<u64>() / n) as u8
}

/// The image the detector searches: `gray` equalized when darker than `dark_below` on
/// average, then padded by `pad` of its larger side on every side with its mean gray (the
/// offset of the original is half the added width and height); `gray` itself, not a copy,
/// when neither applies.
pub fn for_detection<'a>(gray: &'a GrayImage, o: &DetectOptions) -> Cow<'a, GrayImage> {
    let mean = mean_gray(gray);
    let img = if o.dark_below > 0 && mean < o.dark_below {
        Cow::Owned(imageproc::contrast::equalize_histogram(gray))
    } else {
        Cow::Borrowed(gray)
    };
    if o.pad <= 0.0 {
        return img;
    }
    let border = (o.pad * gray.width().max(gray.height()) as f32).round() as u32;
    let fill = match &img {
        Cow::Owned(equalized) => mean_gray(equalized),
        Cow::Borrowed(_) => mean,
    };
    let mut out = GrayImage::from_pixel(
        img.width() + 2 * border,
        img.height() + 2 * border,
        image::Luma([fill]),
    );
    image::imageops::replace(&mut out, &*img, border as i64, border as i64);
    Cow::Owned(out)
}

/// The crop `(x, y, side, side)` of `g` turned by `-angle` about its centre, so that an eye
/// line at `angle` comes out level (bilinear; what falls outside the image is the crop's mean
/// gray). An angle under a degree leaves the plain crop.
pub(crate) fn levelled_crop(g: &GrayImage, crop: (u32, u32, u32, u32), angle: f32) -> GrayImage {
    use warp::Affine;
    let (x, y, sx, sy) = crop;
    let plain = image::imageops::crop_imm(g, x, y, sx, sy).to_image();
    if angle.abs() < 1f32.to_radians() || sx == 0 || sy == 0 {
        return plain;
    }
    let mean = mean_gray(&plain);
    let (cx, cy) = (x as f32 + sx as f32 / 2.0, y as f32 + sy as f32 / 2.0);
    // Output pixel -> frame: translate the crop centre to the origin, turn by -angle, move to
    // the output's centre (the warp maps input to output with the projection).
    let p = Affine::translate(sx as f32 / 2.0, sy as f32 / 2.0)
        * Affine::rotate(-angle)
        * Affine::translate(-cx, -cy);
    let mut out = GrayImage::new(sx, sy);
    warp::warp_into(g, p, mean, &mut out);
    out
}

/// A square of `side` centred on (`cx`, `cy`), moved inside the image when it sticks out (and
/// cut to the image when it is larger than the image).
pub fn square_crop(cx: f32, cy: f32, side: f32, w: u32, h: u32) -> (u32, u32, u32, u32) {
    let fit = |c: f32, len: u32| -> (u32, u32) {
        let s = side.round().max(1.0).min(len as f32);
        let start = (c - s / 2.0).round().clamp(0.0, len as f32 - s);
        (start as u32, s as u32)
    };
    let (x, sx) = fit(cx, w);
    let (y, sy) = fit(cy, h);
    (x, y, sx, sy)
}

#[cfg(test)]
mod levelled_crop_tests {
    use super::*;

    /// Two bright dots (eyes) on a line at `deg` degrees through the crop's centre.
    fn eyes(deg: f32) -> GrayImage {
        let mut g = GrayImage::from_pixel(200, 200, image::Luma([20]));
        let a = deg.to_radians();
        for s in [-1.0f32, 1.0] {
            let (x, y) = (100.0 + s * 30.0 * a.cos(), 100.0 + s * 30.0 * a.sin());
            for dy in -2i32..=2 {
                for dx in -2i32..=2 {
                    g.put_pixel(
                        (x as i32 + dx) as u32,
                        (y as i32 + dy) as u32,
                        image::Luma([250]),
                    );
                }
            }
        }
        g
    }

    /// Rows of the two brightest blobs' centres (left half, right half).
    fn eye_rows(g: &GrayImage) -> (f32, f32) {
        let row = |x0: u32, x1: u32| {
            let (mut sum, mut n) = (0.0, 0.0);
            for y in 0..g.height() {
                for x in x0..x1 {
                    if g.get_pixel(x, y)[0] > 150 {
                        sum += y as f32;
                        n += 1.0;
                    }
                }
            }
            sum / n
        };
        (row(0, g.width() / 2), row(g.width() / 2, g.width()))
    }

    #[test]
    fn a_tilted_eye_line_comes_out_level_and_a_level_one_unchanged() {
        for deg in [-30.0f32, -12.0, 20.0] {
            let g = eyes(deg);
            let out = levelled_crop(&g, (40, 40, 120, 120), deg.to_radians());
            let (l, r) = eye_rows(&out);
            assert!((l - r).abs() <= 1.5, "{deg} deg: rows {l} and {r}");
            let (bl, br) = eye_rows(&image::imageops::crop_imm(&g, 40, 40, 120, 120).to_image());
            assert!(
                (bl - br).abs() > 10.0,
                "the plain crop is tilted: {bl} {br}"
            );
        }
        let g = eyes(0.0);
        let plain = image::imageops::crop_imm(&g, 40, 40, 120, 120).to_image();
        assert_eq!(levelled_crop(&g, (40, 40, 120, 120), 0.005), plain);
    }
}
