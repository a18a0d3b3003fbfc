//! Bilinear warps of gray images, byte for byte what imageproc's `warp_into` with
//! `Interpolation::Bilinear` and `Border::Constant` gives, about ten times faster.
//!
//! Written here rather than called from imageproc because imageproc's warp is generic over
//! pixel types: per output pixel it calls libm's `floorf` twice and reads each of the four
//! neighbours through a bounds-checked `get_pixel_or_extend`, about 35 ns a pixel on this
//! project's 2-core machine. YuNet's turned passes turn a whole frame twice per frame (at full
//! size, 21 ms of a frame's time on one core). Here the inner part of the image (all four
//! neighbours inside) reads the buffer directly, and only the border goes the slow way. The
//! arithmetic is imageproc's own, in its order ([`Affine`] composes the inverse as
//! imageproc's `Projection` does, the same truncations to `u8`), so the bytes are the same:
//! `tests::same_bytes_as_imageproc` checks it. (imageproc's `Projection` keeps its matrix
//! private, and applying it through `Mul` is an un-inlined call per pixel.)

use image::GrayImage;

/// An affine map of the plane, kept with its inverse, composed as imageproc's `Projection`
/// composes its own (`translate`, `rotate`, `*`), so the inverse's floats are the same.
#[derive(Debug, Clone, Copy)]
pub struct Affine {
    inverse: [f32; 9],
}

impl Affine {
    /// A shift by (`tx`, `ty`).
    pub fn translate(tx: f32, ty: f32) -> Affine {
        Affine {
            inverse: [1.0, 0.0, -tx, 0.0, 1.0, -ty, 0.0, 0.0, 1.0],
        }
    }

    /// A clockwise turn by `theta` radians about the origin (y points down).
    pub fn rotate(theta: f32) -> Affine {
        let (s, c) = theta.sin_cos();
        Affine {
            inverse: [c, s, 0.0, -s, c, 0.0, 0.0, 0.0, 1.0],
        }
    }

    /// A scaling by `k` about the origin.
    #[cfg_attr(not(feature = "yunet"), allow(dead_code))]
    pub fn scale(k: f32) -> Affine {
        Affine {
            inverse: [1.0 / k, 0.0, 0.0, 0.0, 1.0 / k, 0.0, 0.0, 0.0, 1.0],
        }
    }

    /// The point that the map takes to (`x`, `y`): the inverse map applied to it.
    #[inline(always)]
    pub fn back_point(&self, x: f32, y: f32) -> [f32; 2] {
        let t = &self.inverse;
        [(t[0] * x + t[1] * y + t[2]), (t[3] * x + t[4] * y + t[5])]
    }
}

impl std::ops::Mul for Affine {
    type Output = Affine;

    /// `self` after `rhs` (as imageproc: the inverse is `rhs`'s inverse after `self`'s).
    fn mul(self, rhs: Affine) -> Affine {
        let [a00, a01, a02, a10, a11, a12, a20, a21, a22] = rhs.inverse;
        let [b00, b01, b02, b10, b11, b12, b20, b21, b22] = self.inverse;
        Affine {
            inverse: [
                a00 * b00 + a01 * b10 + a02 * b20,
                a00 * b01 + a01 * b11 + a02 * b21,
                a00 * b02 + a01 * b12 + a02 * b22,
                a10 * b00 + a11 * b10 + a12 * b20,
                a10 * b01 + a11 * b11 + a12 * b21,
                a10 * b02 + a11 * b12 + a12 * b22,
                a20 * b00 + a21 * b10 + a22 * b20,
                a20 * b01 + a21 * b11 + a22 * b21,
                a20 * b02 + a21 * b12 + a22 * b22,
            ],
        }
    }
}

/// Fill `out` with `image` moved by `map` (input to output, as imageproc's `warp_into`),
/// bilinear, pixels whose pre-image falls outside `image` taking `fill`.
pub fn warp_into(image: &GrayImage, map: Affine, fill: u8, out: &mut GrayImage) {
    let (w, h) = (image.width() as i64, image.height() as i64);
    let src = image.as_raw();
    let width = out.width() as usize;
    if width == 0 {
        return;
    }
    // The pixel at (x, y), or `fill` outside (imageproc's `Border::Constant`).
    let at = |x: i64, y: i64| -> f32 {
        if x < 0 || x >= w || y < 0 || y >= h {
            fill as f32
        } else {
            src[(y * w + x) as usize] as f32
        }
    };
    // imageproc's `Clamp<f32> for u8`: truncation inside 0..255.
    let clamp = |v: f32| -> f32 {
        if v < 255.0 {
            if v > 0.0 { (v as u8) as f32 } else { 0.0 }
        } else {
            255.0
        }
    };
    let (xmax, ymax) = ((w - 1) as f32, (h - 1) as f32);
    for (y, row) in out.as_mut().chunks_mut(width).enumerate() {
        for (x, px) in row.iter_mut().enumerate() {
            let [fx, fy] = map.back_point(x as f32, y as f32);
            // Inside, floor is truncation and all four neighbours are in the buffer.
            let inside = fx >= 0.0 && fy >= 0.0 && fx < xmax && fy < ymax;
            let (left, top) = if inside {
                (fx as i64, fy as i64)
            } else {
                (fx.floor() as i64, fy.floor() as i64)
            };
            let (rw, bw) = (fx - left as f32, fy - top as f32);
            let (tl, tr, bl, br) = if inside {
                let i = (top * w + left) as usize;
                let j = i + w as usize;
                (
                    src[i] as f32,
                    src[i + 1] as f32,
                    src[j] as f32,
                    src[j + 1] as f32,
                )
            } else {
                (
                    at(left, top),
                    at(left + 1, top),
                    at(left, top + 1),
                    at(left + 1, top + 1),
                )
            };
            let t = clamp((1f32 - rw) * tl + rw * tr);
            let b = clamp((1f32 - rw) * bl + rw * br);
            *px = clamp((1f32 - bw) * t + bw * b) as u8;
        }
    }
}

/// `image` turned clockwise by `theta` radians about its centre, same size (imageproc's
/// `rotate_about_center`, bilinear, outside filled with `fill`): YuNet's turned passes.
#[cfg_attr(not(feature = "yunet"), allow(dead_code))]
pub fn rotate_about_center(image: &GrayImage, theta: f32, fill: u8) -> GrayImage {
    let (cx, cy) = (image.width() as f32 / 2.0, image.height() as f32 / 2.0);
    let p = Affine::translate(cx, cy) * Affine::rotate(theta) * Affine::translate(-cx, -cy);
    let mut out = GrayImage::new(image.width(), image.height());
    warp_into(image, p, fill, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use imageproc::geometric_transformations::{Border, Interpolation, Projection};

    #[test]
    fn same_bytes_as_imageproc() {
        let mut s = 12345u32;
        let img = GrayImage::from_fn(97, 61, |_, _| {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            image::Luma([(s >> 16) as u8])
        });
        for degrees in [-30.0f32, -25.0, -7.5, 0.0, 3.0, 25.0, 90.0, 181.0] {
            let theta = degrees.to_radians();
            let ours = rotate_about_center(&img, theta, 77);
            let theirs = imageproc::geometric_transformations::rotate_about_center(
                &img,
                theta,
                Interpolation::Bilinear,
                Border::Constant(image::Luma([77])),
            );
            assert_eq!(ours, theirs, "{degrees} degrees");
        }
        // A turn and a shift into a smaller output (the levelled crop's use).
        let ours_p =
            Affine::translate(20.0, 18.0) * Affine::rotate(-0.4) * Affine::translate(-40.0, -30.0);
        let p = Projection::translate(20.0, 18.0)
            * Projection::rotate(-0.4)
            * Projection::translate(-40.0, -30.0);
        let mut ours = GrayImage::new(40, 36);
        let mut theirs = GrayImage::new(40, 36);
        warp_into(&img, ours_p, 5, &mut ours);
        imageproc::geometric_transformations::warp_into(
            &img,
            p,
            Interpolation::Bilinear,
            Border::Constant(image::Luma([5])),
            &mut theirs,
        );
        assert_eq!(ours, theirs);
    }
}
