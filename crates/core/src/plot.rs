//! Chart and picture helpers: the embedded font for plotters, and grids of gray images.
//!
//! plotters draws into an RGB buffer (no `bitmap_encoder`, so no second `image` version);
//! the buffer is encoded as PNG with the `image` crate.

use crate::error::{Error, Result};
use image::{ImageBuffer, RgbImage};
use std::path::Path;
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// Register DejaVu Sans as plotters' `sans-serif` (idempotent).
pub fn register_font() {
    REGISTER.call_once(|| {
        let _ =
            plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, FONT);
    });
}

/// Save an RGB buffer (`w*h*3` bytes) as PNG.
pub fn save_rgb_png(path: &Path, w: u32, h: u32, buf: Vec<u8>) -> Result<()> {
    let img: RgbImage = ImageBuffer::from_raw(w, h, buf)
        .ok_or_else(|| Error::Other("bad RGB buffer size".into()))?;
    img.save(path)
        .map_err(|e| Error::Other(format!("{}: {e}", path.display())))
}

/// Copy a gray `side`x`side` image, scaled by `scale` (nearest), into an RGB buffer at (x, y).
pub fn blit_gray(buf: &mut [u8], buf_w: u32, x: u32, y: u32, pixels: &[u8], side: u32, scale: u32) {
    for r in 0..side * scale {
        for c in 0..side * scale {
            let v = pixels[((r / scale) * side + c / scale) as usize];
            let o = (((y + r) * buf_w + x + c) * 3) as usize;
            if o + 2 < buf.len() {
                buf[o] = v;
                buf[o + 1] = v;
                buf[o + 2] = v;
            }
        }
    }
}

/// A labelled grid: one row per `(label, images)`, images `side`x`side` gray scaled by
/// `scale`, the label in a left margin. Written as PNG to `path`.
pub fn image_grid(
    path: &Path,
    title: &str,
    rows: &[(String, Vec<&[u8]>)],
    side: u32,
    scale: u32,
) -> Result<()> {
    use plotters::prelude::*;
    register_font();
    let cols = rows.iter().map(|r| r.1.len()).max().unwrap_or(1).max(1) as u32;
    let cell = side * scale + 4;
    let margin_left = 170u32;
    let top = 36u32;
    let w = margin_left + cols * cell + 4;
    let h = top + rows.len().max(1) as u32 * cell + 4;
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| Error::Other(e.to_string()))?;
        root.draw(&Text::new(
            title.to_string(),
            (8, 8),
            ("sans-serif", 20).into_font(),
        ))
        .map_err(|e| Error::Other(e.to_string()))?;
        for (i, (label, _)) in rows.iter().enumerate() {
            let y = (top + i as u32 * cell + cell / 2 - 8) as i32;
            root.draw(&Text::new(
                label.clone(),
                (8, y),
                ("sans-serif", 16).into_font(),
            ))
            .map_err(|e| Error::Other(e.to_string()))?;
        }
        root.present().map_err(|e| Error::Other(e.to_string()))?;
    }
    for (i, (_, imgs)) in rows.iter().enumerate() {
        for (j, px) in imgs.iter().enumerate() {
            blit_gray(
                &mut buf,
                w,
                margin_left + j as u32 * cell + 2,
                top + i as u32 * cell + 2,
                px,
                side,
                scale,
            );
        }
    }
    save_rgb_png(path, w, h, buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_png_has_expected_size() {
        let d = tempfile::tempdir().unwrap();
        let a = vec![0u8; 48 * 48];
        let b = vec![255u8; 48 * 48];
        let rows = vec![
            ("happy".to_string(), vec![&a[..], &b[..]]),
            ("not happy".to_string(), vec![&b[..]]),
        ];
        let p = d.path().join("g.png");
        image_grid(&p, "samples", &rows, 48, 2).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert_eq!(img.width(), 170 + 2 * 100 + 4);
        assert_eq!(img.height(), 36 + 2 * 100 + 4);
        // The first image of row 0 is black, the second white.
        assert_eq!(img.get_pixel(172 + 10, 38 + 10).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(272 + 10, 38 + 10).0, [255, 255, 255]);
    }
}
