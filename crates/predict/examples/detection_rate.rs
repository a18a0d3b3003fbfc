//! Detection rate and agreement with `--no-detect` on real faces pasted into photos.
//!
//! `cargo run --release -p fer-predict --example detection_rate -- <model dir> <faces folder>
//! [n] [margin] [min side] [max side]`: takes `n` (default 200) images of the folder (e.g.
//! FER2013's `test/`), pastes them one or two per 640x480 colour scene, and prints the share of
//! pasted faces found (IoU of the detector's box with the pasted square >= 0.3), the share of
//! found faces whose label agrees with `--no-detect` on the original 48x48 image, and the mean
//! |p - p_no_detect|.

use fer_predict::{DetectOptions, FaceDetector, ModelOptions, Outcome, Predictor, Scorer, scene};
use std::path::PathBuf;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let model = PathBuf::from(&a[1]);
    let folder = PathBuf::from(&a[2]);
    let n: usize = a.get(3).and_then(|s| s.parse().ok()).unwrap_or(200);
    let margin: f32 = a.get(4).and_then(|s| s.parse().ok()).unwrap_or(0.2);
    let lo: u32 = a.get(5).and_then(|s| s.parse().ok()).unwrap_or(96);
    let hi: u32 = a.get(6).and_then(|s| s.parse().ok()).unwrap_or(192);
    let items = fer_predict::inputs::expand(&[folder.display().to_string()], &mut std::io::empty());
    let step = (items.len() / n.max(1)).max(1);
    let files: Vec<PathBuf> = items
        .iter()
        .step_by(step)
        .take(n)
        .filter_map(|i| i.path.clone().ok())
        .collect();
    let scorer = Scorer::load(&model, &ModelOptions::default()).expect("model");
    let det = FaceDetector::embedded(DetectOptions {
        margin,
        ..DetectOptions::default()
    })
    .expect("detector");
    let p = Predictor::new(scorer, det, true, 0.5).expect("predictor");
    let faces: Vec<image::GrayImage> = files
        .iter()
        .map(|f| image::open(f).expect("image").to_luma8())
        .collect();
    let base: Vec<f64> = p
        .score(
            faces.iter().map(|g| Ok(p.prepare_gray(g, false))).collect(),
            0.5,
        )
        .expect("score")
        .into_iter()
        .map(|o| match o {
            Outcome::Faces { faces, .. } => faces[0].p_happy,
            Outcome::Error(e) => panic!("{e}"),
        })
        .collect();
    let (mut pasted, mut found, mut agree, mut diff, mut extra) = (0, 0, 0, 0.0, 0);
    let t0 = std::time::Instant::now();
    let mut k = 0;
    let mut scenes = 0;
    while k < faces.len() {
        let take = if scenes % 2 == 0 { 1 } else { 2 }.min(faces.len() - k);
        let group = &faces[k..k + take];
        let (img, places) = scene::scene(group, 640, 480, (lo, hi), 1000 + scenes as u64);
        let bytes = scene::encode(&img, true);
        let o = p.predict_bytes(&bytes, true, 0.5).expect("predict");
        let Outcome::Faces { faces: got, .. } = o else {
            panic!()
        };
        let mut used = vec![false; got.len()];
        for (j, pl) in places.iter().enumerate() {
            pasted += 1;
            let m = got.iter().enumerate().find(|(gi, g)| {
                !used[*gi]
                    && scene::iou(
                        (g.bbox.x, g.bbox.y, g.bbox.width, g.bbox.height),
                        (pl.x, pl.y, pl.side, pl.side),
                    ) >= 0.3
            });
            if let Some((gi, g)) = m {
                used[gi] = true;
                found += 1;
                let b = base[k + j];
                agree += usize::from((g.p_happy >= 0.5) == (b >= 0.5));
                diff += (g.p_happy - b).abs();
            }
        }
        extra += used.iter().filter(|u| !**u).count();
        k += take;
        scenes += 1;
    }
    println!(
        "margin {margin}, face side {lo}..{hi}: {scenes} scenes, {pasted} faces pasted, {found} found ({:.1}%), {extra} extra detections; label agreement with --no-detect {:.1}% of found, mean |dp| {:.3}; {:.1} scenes/s",
        100.0 * found as f64 / pasted as f64,
        100.0 * agree as f64 / found.max(1) as f64,
        diff / found.max(1) as f64,
        scenes as f64 / t0.elapsed().as_secs_f64()
    );
}
