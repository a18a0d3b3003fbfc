//! Why a negative face reads as happy (issue 29): every face of a FER2013 test folder is
//! scored as it is, with its mouth covered and with its eyes covered, and the share called
//! happy is given per emotion; then the not-happy faces are split by how much of the mouth is
//! bright (a proxy for visible teeth), to see whether teeth alone move a face to "happy".
//!
//! ```text
//! cargo run --release -p fer-predict --example false_happy -- <FER2013 test folder> <model folder>...
//! ```
//!
//! Covering fills a band with the face's own mean gray, so no new edge or brightness is added:
//! the mouth band is rows 60%..95% and columns 20%..80% of the 48x48 face, the eyes band rows
//! 20%..50% and columns 10%..90%. "Bright mouth" is the share of the mouth band's pixels
//! brighter than the face's 90th percentile, split at the not-happy faces' terciles. The label
//! is p(happy) >= 0.5, one face per image (FER2013's crops, no detection), flip averaging as
//! the model was trained to use it.

use fer_predict::{ModelOptions, Scorer};
use image::{GrayImage, Luma};
use std::path::{Path, PathBuf};

/// (rows, columns) of a band, as fractions of the side.
type Band = ((f32, f32), (f32, f32));
const MOUTH: Band = ((0.60, 0.95), (0.20, 0.80));
const EYES: Band = ((0.20, 0.50), (0.10, 0.90));

fn cover(g: &GrayImage, band: Band) -> GrayImage {
    let mean = fer_detect::mean_gray(g);
    let mut out = g.clone();
    let (w, h) = (g.width() as f32, g.height() as f32);
    let ((r0, r1), (c0, c1)) = band;
    for y in (r0 * h) as u32..(r1 * h) as u32 {
        for x in (c0 * w) as u32..(c1 * w) as u32 {
            out.put_pixel(x, y, Luma([mean]));
        }
    }
    out
}

/// Share of the mouth band's pixels brighter than the face's 90th percentile.
fn bright_mouth(g: &GrayImage) -> f64 {
    let mut v: Vec<u8> = g.pixels().map(|p| p[0]).collect();
    v.sort_unstable();
    let p90 = v[(v.len() * 9 / 10).min(v.len() - 1)];
    let (w, h) = (g.width() as f32, g.height() as f32);
    let ((r0, r1), (c0, c1)) = MOUTH;
    let (mut n, mut bright) = (0usize, 0usize);
    for y in (r0 * h) as u32..(r1 * h) as u32 {
        for x in (c0 * w) as u32..(c1 * w) as u32 {
            n += 1;
            bright += (g.get_pixel(x, y)[0] > p90) as usize;
        }
    }
    bright as f64 / n.max(1) as f64
}

fn pct(k: usize, n: usize) -> String {
    format!("{:.1}%", 100.0 * k as f64 / n.max(1) as f64)
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 3 {
        eprintln!("usage: false_happy <FER2013 test folder> <model folder>...");
        std::process::exit(2);
    }
    let folder = Path::new(&a[1]);
    // The Kaggle folders, in name order.
    let mut names = fer_core::Classes::emotions().to_vec();
    names.sort();
    let emotions = fer_core::Classes::new(names);
    // (emotion, image) for every file, in name order per emotion.
    let mut faces: Vec<(usize, GrayImage)> = Vec::new();
    for (e, name) in emotions.iter().enumerate() {
        let dir = folder.join(name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
            .flatten()
            .map(|d| d.path())
            .collect();
        files.sort();
        for f in files {
            let g = image::open(&f)
                .unwrap_or_else(|err| panic!("{}: {err}", f.display()))
                .to_luma8();
            faces.push((e, g));
        }
    }
    let happy = emotions.happy().expect("the seven emotions have happy");
    for model in &a[2..] {
        let scorer = Scorer::load(Path::new(model), &ModelOptions::default())
            .unwrap_or_else(|e| panic!("{model}: {e}"));
        let p = |imgs: Vec<GrayImage>| -> Vec<bool> {
            let x: Vec<f32> = imgs
                .iter()
                .flat_map(|g| scorer.transform.apply(g))
                .collect();
            scorer
                .p_happy(x)
                .expect("score")
                .into_iter()
                .map(|p| p >= 0.5)
                .collect()
        };
        let plain = p(faces.iter().map(|f| f.1.clone()).collect());
        let mouth = p(faces.iter().map(|f| cover(&f.1, MOUTH)).collect());
        let eyes = p(faces.iter().map(|f| cover(&f.1, EYES)).collect());
        println!(
            "model {model}: {} faces of {}",
            faces.len(),
            folder.display()
        );
        println!();
        println!("| emotion | faces | called happy | mouth covered | eyes covered |");
        println!("|---|---|---|---|---|");
        for (e, name) in emotions.iter().enumerate() {
            let idx: Vec<usize> = (0..faces.len()).filter(|&i| faces[i].0 == e).collect();
            let count = |v: &[bool]| idx.iter().filter(|&&i| v[i]).count();
            println!(
                "| {name} | {} | {} | {} | {} |",
                idx.len(),
                pct(count(&plain), idx.len()),
                pct(count(&mouth), idx.len()),
                pct(count(&eyes), idx.len())
            );
        }
        // Not-happy faces by bright mouth (teeth proxy), in terciles.
        let mut not: Vec<(f64, usize)> = (0..faces.len())
            .filter(|&i| faces[i].0 != happy)
            .map(|i| (bright_mouth(&faces[i].1), i))
            .collect();
        not.sort_by(|x, y| x.0.total_cmp(&y.0));
        println!();
        println!(
            "| not-happy faces by bright mouth (teeth proxy) | faces | share of mouth band bright | called happy |"
        );
        println!("|---|---|---|---|");
        let third = not.len() / 3;
        for (k, name) in ["lowest third", "middle third", "highest third"]
            .iter()
            .enumerate()
        {
            let part = &not[k * third..if k == 2 { not.len() } else { (k + 1) * third }];
            let called = part.iter().filter(|(_, i)| plain[*i]).count();
            println!(
                "| {name} | {} | {:.3}-{:.3} | {} |",
                part.len(),
                part.first().map_or(0.0, |x| x.0),
                part.last().map_or(0.0, |x| x.0),
                pct(called, part.len())
            );
        }
        println!();
    }
}
