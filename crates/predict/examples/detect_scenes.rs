//! Face-detection recall and false faces on harder scenes made from real faces, per rustface
//! setting: the table the SeetaFace defaults of `DetectOptions` were chosen from.
//!
//! `cargo run --release -p fer-predict --example detect_scenes -- <faces folder> [n]` takes `n`
//! (default 120) images of the folder (e.g. FER2013's `test/`, spread over its classes) and
//! builds, for each, one scene of every kind (deterministic per image):
//! - `plain`: the face scaled to 96..192 px in a 640x480 frame (`scene::scene`);
//! - `dark`: the plain frame at a fifth of its brightness, with sensor noise (a dim checkout);
//! - `fill`: the face alone, scaled to 160x160 (a crop that is all face, like a kiosk camera
//!   close up);
//! - `tilted`: the face turned 20 degrees in the image plane (left or right) before pasting, a
//!   stand-in for a tilted head (turns out of the plane cannot be made from 2-D crops);
//! - `several`: three faces of 64..128 px in one frame;
//! - `empty`: the frame with no face (every detection there is a false face).
//!
//! A pasted face is found when a detection's box overlaps its square with IoU >= 0.3 (for
//! `fill`, the whole frame is the square). Printed per setting: recall per kind, and false
//! faces per 100 frames over all kinds. Detection only: no model is needed.

use fer_predict::{DetectOptions, DetectorKind, FaceDetector, scene};
use image::{GrayImage, Luma};
use imageproc::geometric_transformations::{Border, Interpolation, rotate_about_center};
use std::path::PathBuf;

const KINDS: [&str; 6] = ["plain", "dark", "fill", "tilted", "several", "empty"];

fn gray(img: &image::RgbImage) -> GrayImage {
    image::DynamicImage::ImageRgb8(img.clone()).to_luma8()
}

/// Every frame of one face (and two neighbours for `several`): (kind, frame, squares).
fn frames(
    faces: &[GrayImage],
    i: usize,
) -> Vec<(&'static str, GrayImage, Vec<(u32, u32, u32, u32)>)> {
    let seed = 7000 + i as u64;
    let sq = |p: &[scene::Pasted]| -> Vec<(u32, u32, u32, u32)> {
        p.iter().map(|p| (p.x, p.y, p.side, p.side)).collect()
    };
    let f = &faces[i];
    let (plain, pp) = scene::scene(std::slice::from_ref(f), 640, 480, (96, 192), seed);
    let plain = gray(&plain);
    let mut noise = scene::Stream::new(seed ^ 0x5eed);
    let dark = GrayImage::from_fn(640, 480, |x, y| {
        let v = plain.get_pixel(x, y)[0] as f32 / 5.0 + (noise.range(0, 7) as f32 - 3.0);
        Luma([v.clamp(0.0, 255.0) as u8])
    });
    let fill = image::imageops::resize(f, 160, 160, image::imageops::FilterType::CatmullRom);
    let angle = if i % 2 == 0 { 20f32 } else { -20f32 }.to_radians();
    let turned = rotate_about_center(f, angle, Interpolation::Bilinear, Border::Replicate);
    let (tilted, tp) = scene::scene(&[turned], 640, 480, (96, 192), seed + 1);
    let three = [
        f.clone(),
        faces[(i + 1) % faces.len()].clone(),
        faces[(i + 2) % faces.len()].clone(),
    ];
    let (several, sp) = scene::scene(&three, 640, 480, (64, 128), seed + 2);
    let (empty, _) = scene::scene(&[], 640, 480, (96, 192), seed + 3);
    vec![
        ("plain", plain, sq(&pp)),
        ("dark", dark, sq(&pp)),
        ("fill", fill, vec![(0, 0, 160, 160)]),
        ("tilted", gray(&tilted), sq(&tp)),
        ("several", gray(&several), sq(&sp)),
        ("empty", gray(&empty), vec![]),
    ]
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let Some(folder) = a.get(1).map(PathBuf::from) else {
        eprintln!("usage: detect_scenes <faces folder> [n]");
        std::process::exit(2);
    };
    let n: usize = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(120);
    let items = fer_predict::inputs::expand(&[folder.display().to_string()], &mut std::io::empty());
    let step = (items.len() / n.max(1)).max(1);
    let faces: Vec<GrayImage> = items
        .iter()
        .step_by(step)
        .take(n)
        .filter_map(|i| i.path.clone().ok())
        .map(|p| image::open(&p).expect("image").to_luma8())
        .collect();
    let all: Vec<_> = (0..faces.len()).flat_map(|i| frames(&faces, i)).collect();
    // The settings compared start from rustface's old default (score 2.0, nothing else);
    // YuNet's figures are `examples/scene_bench.rs`'s.
    let base = DetectOptions {
        score_threshold: 2.0,
        dark_below: 0,
        pad: 0.0,
        ..DetectOptions::for_detector(DetectorKind::Seeta)
    };
    let settings: Vec<(String, DetectOptions)> = vec![
        ("score 2.0 (old default)".into(), base),
        (
            "score 1.0".into(),
            DetectOptions {
                score_threshold: 1.0,
                ..base
            },
        ),
        (
            "score 0.5".into(),
            DetectOptions {
                score_threshold: 0.5,
                ..base
            },
        ),
        (
            "score 2.0, dark<60 equalized".into(),
            DetectOptions {
                dark_below: 60,
                ..base
            },
        ),
        (
            "score 2.0, pad 0.25".into(),
            DetectOptions { pad: 0.25, ..base },
        ),
        (
            "score 2.0, dark<60, pad 0.25".into(),
            DetectOptions {
                dark_below: 60,
                pad: 0.25,
                ..base
            },
        ),
        (
            "score 1.0, dark<60, pad 0.25".into(),
            DetectOptions {
                score_threshold: 1.0,
                dark_below: 60,
                pad: 0.25,
                ..base
            },
        ),
        (
            "score 1.0, min face 24, dark<60, pad 0.25".into(),
            DetectOptions {
                score_threshold: 1.0,
                min_face: 24,
                dark_below: 60,
                pad: 0.25,
                ..base
            },
        ),
    ];
    println!(
        "{} faces from {}; {} frames per setting. Recall (% of pasted faces found) per kind; false faces per 100 frames (all kinds).",
        faces.len(),
        folder.display(),
        all.len()
    );
    println!(
        "| setting | {} | false faces /100 frames | frames/s |",
        KINDS[..5].join(" | ")
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, o) in settings {
        let det = FaceDetector::embedded(o).expect("detector");
        let mut found = [0usize; 6];
        let mut pasted = [0usize; 6];
        let mut false_faces = 0usize;
        let t0 = std::time::Instant::now();
        for (kind, img, squares) in &all {
            let k = KINDS.iter().position(|x| x == kind).expect("kind");
            let got = det.detect(img);
            let mut used = vec![false; got.len()];
            for s in squares {
                pasted[k] += 1;
                let hit = got.iter().enumerate().find(|(gi, g)| {
                    !used[*gi] && scene::iou((g.x, g.y, g.width, g.height), *s) >= 0.3
                });
                if let Some((gi, _)) = hit {
                    used[gi] = true;
                    found[k] += 1;
                }
            }
            false_faces += used.iter().filter(|u| !**u).count();
        }
        let secs = t0.elapsed().as_secs_f64();
        let cells: Vec<String> = (0..5)
            .map(|k| format!("{:.1}%", 100.0 * found[k] as f64 / pasted[k].max(1) as f64))
            .collect();
        println!(
            "| {name} | {} | {:.1} | {:.0} |",
            cells.join(" | "),
            100.0 * false_faces as f64 / all.len() as f64,
            all.len() as f64 / secs
        );
    }
}
