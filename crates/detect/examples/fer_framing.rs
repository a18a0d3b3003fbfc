//! How FER2013 frames a face, measured with YuNet: the figures behind `Framing::FER2013`.
//!
//! `cargo run --release -p fer-detect --features yunet --example fer_framing -- <FER2013 train
//! folder> [n]` takes `n` images (default 2000, spread evenly over the folder's files in name
//! order), scales each 48x48 face 4x (to 192x192, bilinear) into the middle of a 384x384 frame of
//! its mean gray (YuNet, like most detectors, needs context around a face that fills the
//! image), runs YuNet, keeps the detection nearest the middle, and prints the medians of: the
//! box's larger side over the image's side, and the box centre's offset from the image centre
//! in image sides (x right, y down); also the eye line's angle, and how many faces were found.

use fer_detect::{DetectOptions, DetectorKind, FaceDetector};
use image::{GrayImage, Luma};
use std::path::PathBuf;

fn median(mut v: Vec<f32>) -> f32 {
    v.sort_by(f32::total_cmp);
    if v.is_empty() {
        f32::NAN
    } else {
        v[v.len() / 2]
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let Some(folder) = a.get(1).map(PathBuf::from) else {
        eprintln!("usage: fer_framing <FER2013 train folder> [n]");
        std::process::exit(2);
    };
    let n: usize = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let mut files: Vec<PathBuf> = walk(&folder);
    files.sort();
    let step = (files.len() / n.max(1)).max(1);
    let files: Vec<PathBuf> = files.into_iter().step_by(step).take(n).collect();
    let d = FaceDetector::embedded(DetectOptions {
        pad: 0.0,
        dark_below: 0,
        min_face: 20,
        ..DetectOptions::for_detector(DetectorKind::Yunet)
    })
    .expect("YuNet");
    let (scale, canvas) = (4u32, 384u32);
    let (mut ratio, mut dx, mut dy, mut angle) = (vec![], vec![], vec![], vec![]);
    for p in &files {
        let face = image::open(p).expect("image").to_luma8();
        let side = face.width() * scale;
        let big = image::imageops::resize(&face, side, side, image::imageops::FilterType::Triangle);
        let mean = fer_detect::mean_gray(&face);
        let mut frame = GrayImage::from_pixel(canvas, canvas, Luma([mean]));
        let off = (canvas - side) / 2;
        image::imageops::replace(&mut frame, &big, off as i64, off as i64);
        let c = canvas as f32 / 2.0;
        let best = d.detect(&frame).into_iter().min_by(|a, b| {
            let dist = |f: &fer_detect::FaceBox| {
                let (x, y) = (
                    f.x as f32 + f.width as f32 / 2.0,
                    f.y as f32 + f.height as f32 / 2.0,
                );
                (x - c).powi(2) + (y - c).powi(2)
            };
            dist(a).total_cmp(&dist(b))
        });
        let Some(f) = best else { continue };
        let s = side as f32;
        ratio.push(f.width.max(f.height) as f32 / s);
        dx.push((f.x as f32 + f.width as f32 / 2.0 - c) / s);
        dy.push((f.y as f32 + f.height as f32 / 2.0 - c) / s);
        if let Some(l) = f.landmarks {
            angle.push((l[1][1] - l[0][1]).atan2(l[1][0] - l[0][0]).to_degrees());
        }
    }
    println!(
        "{} of {} FER2013 images had a face found by YuNet ({:.1}%)",
        ratio.len(),
        files.len(),
        100.0 * ratio.len() as f64 / files.len().max(1) as f64
    );
    println!(
        "median box side / image side {:.3}; median centre offset x {:+.3}, y {:+.3} image sides; median eye-line angle {:+.1} deg",
        median(ratio),
        median(dx),
        median(dy),
        median(angle)
    );
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
    {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
