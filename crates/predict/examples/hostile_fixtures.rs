//! The hostile-client suite's JPEG fixtures (`scripts/hostile.py`; Python's standard library
//! has no JPEG encoder, and its valid photos need faces the detector finds). Deterministic.
//!
//! `cargo run --release -p fer-predict --example hostile_fixtures -- <folder>` writes there:
//! - `crop.png`: a drawn 48x48 face (the valid client's `?detect=false` request);
//! - `scene.jpg`: a 640x480 colour scene with two faces (the valid client's detection request);
//! - `wide.jpg`: 65,500 x 610 gray (40 MP; an extreme aspect ratio);
//! - `noisy-40mp.jpg`: 6,324 x 6,324 colour, a noisy scene without faces (40 MP);
//! - `photo-40mp.jpg`: 7,300 x 5,470 colour (40 MP) with three large faces pasted;
//! - `many-faces.jpg`: 4,800 x 3,600 colour with 40 faces on a grid;
//! - `fixtures.json`: each file's size, pixels and pasted faces.
//!
//! Every face is a drawn face (`fer_test_support::synthetic_face`) that the detector finds on
//! its own at 120 px; the photos are checked after a downscale to about 1,200 px on the long
//! side (a service that detects on a downscaled copy must still find them), and the example
//! fails when too few are found there. All files stay under the service's 10 MiB body limit.

use fer_core::Emotion;
use fer_predict::{DetectOptions, FaceDetector, scene};
use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use image::{GrayImage, Luma, Rgb, RgbImage};
use std::path::{Path, PathBuf};

/// A drawn face scaled to `side` px.
fn face(seed: u64) -> GrayImage {
    let e = if seed.is_multiple_of(2) {
        Emotion::Happy
    } else {
        Emotion::Sad
    };
    GrayImage::from_raw(48, 48, fer_test_support::synthetic_face(e, seed, 4.0)).expect("48x48")
}

/// `n` drawn faces the detector finds alone (pasted at 120 px in a plain 240x240 frame).
fn findable_faces(det: &FaceDetector, n: usize) -> Vec<GrayImage> {
    let mut out = Vec::new();
    for seed in 9000u64.. {
        let f = face(seed);
        let big = imageops::resize(&f, 120, 120, FilterType::CatmullRom);
        let mut frame = GrayImage::from_pixel(240, 240, Luma([128]));
        imageops::replace(&mut frame, &big, 60, 60);
        if !det.detect(&frame).is_empty() {
            out.push(f);
            if out.len() == n {
                return out;
            }
        }
        assert!(seed < 9000 + 50 * n as u64, "too few drawn faces are found");
    }
    unreachable!()
}

/// A `w` x `h` colour background: a two-colour gradient, soft diagonal bands, a few flat
/// blocks, and per-pixel noise of +-`noise` (0: none). Cheap to compress when `noise` is small.
fn background(w: u32, h: u32, seed: u64, noise: u32) -> RgbImage {
    let mut r = scene::Stream::new(seed);
    let c0 = [r.range(40, 216), r.range(40, 216), r.range(40, 216)];
    let c1 = [r.range(40, 216), r.range(40, 216), r.range(40, 216)];
    let period = (w.max(h) / 7).max(16) as f32;
    let mut img = RgbImage::from_fn(w, h, |x, y| {
        let t = (x as f32 + y as f32) / (w + h) as f32;
        let band = 12.0 * ((x as f32 - 0.6 * y as f32) / period * std::f32::consts::TAU).sin();
        let n = if noise > 0 {
            r.range(0, 2 * noise + 1) as f32 - noise as f32
        } else {
            0.0
        };
        Rgb(std::array::from_fn(|k| {
            (c0[k] as f32 * (1.0 - t) + c1[k] as f32 * t + band + n).clamp(0.0, 255.0) as u8
        }))
    });
    for _ in 0..6 {
        let (bw, bh) = (r.range(w / 20, w / 5), r.range(h / 20, h / 5));
        let (bx, by) = (r.range(0, w - bw), r.range(0, h - bh));
        let c = Rgb([
            r.range(0, 256) as u8,
            r.range(0, 256) as u8,
            r.range(0, 256) as u8,
        ]);
        for y in by..by + bh {
            for x in bx..bx + bw {
                img.put_pixel(x, y, c);
            }
        }
    }
    img
}

/// Paste `f` scaled to `side` at (`x`, `y`), gray into the three channels.
fn paste(img: &mut RgbImage, f: &GrayImage, x: u32, y: u32, side: u32) {
    let big = imageops::resize(f, side, side, FilterType::CatmullRom);
    for (dx, dy, v) in big.enumerate_pixels() {
        img.put_pixel(x + dx, y + dy, Rgb([v[0]; 3]));
    }
}

/// Faces the detector finds on `img` downscaled to about 1,200 px on its long side.
fn found_downscaled(det: &FaceDetector, img: &RgbImage) -> usize {
    let g = image::DynamicImage::ImageRgb8(img.clone()).to_luma8();
    let k = (g.width().max(g.height()) as f32 / 1200.0).max(1.0);
    let small = imageops::resize(
        &g,
        (g.width() as f32 / k).round() as u32,
        (g.height() as f32 / k).round() as u32,
        FilterType::Triangle,
    );
    det.detect(&small).len()
}

fn jpeg_rgb(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .expect("encode JPEG");
    out.into_inner()
}

fn jpeg_gray(img: &GrayImage, quality: u8) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .expect("encode JPEG");
    out.into_inner()
}

const MAX_BODY: usize = 10 << 20;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    assert!(
        bytes.len() < MAX_BODY,
        "{name}: {} bytes is over the service's body limit",
        bytes.len()
    );
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    eprintln!("{}: {} bytes", p.display(), bytes.len());
}

fn main() {
    let Some(dir) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: hostile_fixtures <folder>");
        std::process::exit(2);
    };
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let det = FaceDetector::embedded(DetectOptions::default()).expect("embedded detector");
    let faces = findable_faces(&det, 40);
    let mut info = serde_json::Map::new();
    let mut note = |name: &str, w: u32, h: u32, bytes: usize, pasted: usize, found: usize| {
        info.insert(
            name.to_string(),
            serde_json::json!({"width": w, "height": h, "bytes": bytes,
                               "faces_pasted": pasted, "faces_found_downscaled": found}),
        );
    };

    // The valid client's images.
    let mut png = std::io::Cursor::new(Vec::new());
    faces[0]
        .write_to(&mut png, image::ImageFormat::Png)
        .expect("encode PNG");
    write(&dir, "crop.png", png.get_ref());
    note("crop.png", 48, 48, png.get_ref().len(), 1, 1);
    let mut sc = background(640, 480, 11, 3);
    paste(&mut sc, &faces[1], 60, 120, 150);
    paste(&mut sc, &faces[2], 380, 160, 170);
    let found = det
        .detect(&image::DynamicImage::ImageRgb8(sc.clone()).to_luma8())
        .len();
    assert!(found >= 1, "scene.jpg: no face found");
    let b = jpeg_rgb(&sc, 90);
    write(&dir, "scene.jpg", &b);
    note("scene.jpg", 640, 480, b.len(), 2, found);

    // 65,500 x 610 gray: 40 MP at an aspect ratio of over 100.
    let (w, h) = (65_500u32, 610u32);
    let mut r = scene::Stream::new(21);
    let wide = GrayImage::from_fn(w, h, |x, y| {
        let v = 128.0
            + 60.0 * ((x as f32) / 900.0).sin()
            + 20.0 * ((y as f32) / 40.0).cos()
            + (r.range(0, 3) as f32 - 1.0);
        Luma([v.clamp(0.0, 255.0) as u8])
    });
    let b = jpeg_gray(&wide, 60);
    write(&dir, "wide.jpg", &b);
    note("wide.jpg", w, h, b.len(), 0, 0);
    drop(wide);

    // 6,324 x 6,324 colour, noisy-ish, no face.
    let noisy = background(6324, 6324, 31, 2);
    let b = jpeg_rgb(&noisy, 50);
    write(&dir, "noisy-40mp.jpg", &b);
    note("noisy-40mp.jpg", 6324, 6324, b.len(), 0, 0);
    drop(noisy);

    // 7,300 x 5,470 colour with three large faces.
    let mut photo = background(7300, 5470, 41, 2);
    let spots = [
        (500u32, 900u32, 1500u32),
        (2900, 2000, 1700),
        (5300, 600, 1400),
    ];
    for (k, &(x, y, side)) in spots.iter().enumerate() {
        paste(&mut photo, &faces[3 + k], x, y, side);
    }
    let found = found_downscaled(&det, &photo);
    assert!(
        found >= 1,
        "photo-40mp.jpg: no face found after a downscale"
    );
    let b = jpeg_rgb(&photo, 80);
    write(&dir, "photo-40mp.jpg", &b);
    note("photo-40mp.jpg", 7300, 5470, b.len(), spots.len(), found);
    drop(photo);

    // 4,800 x 3,600 colour with 40 faces on an 8 x 5 grid (cells 600 x 720, faces 440 px).
    let (w, h) = (4800u32, 3600u32);
    let mut many = background(w, h, 51, 2);
    for (k, f) in faces.iter().enumerate() {
        let (cx, cy) = ((k % 8) as u32 * 600, (k / 8) as u32 * 720);
        paste(&mut many, f, cx + 80, cy + 140, 440);
    }
    let found = found_downscaled(&det, &many);
    assert!(
        found > 16,
        "many-faces.jpg: only {found} faces found after a downscale"
    );
    let b = jpeg_rgb(&many, 80);
    write(&dir, "many-faces.jpg", &b);
    note("many-faces.jpg", w, h, b.len(), faces.len(), found);

    let p = dir.join("fixtures.json");
    std::fs::write(
        &p,
        serde_json::to_string_pretty(&serde_json::Value::Object(info)).expect("json") + "\n",
    )
    .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    eprintln!("{}", p.display());
}
