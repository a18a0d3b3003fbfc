//! The load test's valid images (`scripts/loadtest.py`): drawn 48x48 faces (PNG crops) and
//! colour scenes with one to three of them pasted in (JPEG and PNG), as the predict tests draw
//! them. Deterministic.
//!
//! `cargo run --release -p fer-predict --example load_fixtures -- <folder>` writes
//! `crop-<i>.png` and `scene-<i>.{jpg,png}` there (the committed copies are in
//! `crates/predict/tests/fixtures/load`).

use fer_core::Emotion;
use fer_predict::scene;
use image::GrayImage;
use std::path::PathBuf;

fn face(i: u64) -> GrayImage {
    let e = if i.is_multiple_of(2) {
        Emotion::Happy
    } else {
        Emotion::Sad
    };
    GrayImage::from_raw(48, 48, fer_test_support::synthetic_face(e, 500 + i, 4.0))
        .expect("48x48 face")
}

fn main() {
    let Some(dir) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: load_fixtures <folder>");
        std::process::exit(2);
    };
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let write = |name: String, bytes: Vec<u8>| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    };
    for i in 0..4u64 {
        let mut out = std::io::Cursor::new(Vec::new());
        face(i)
            .write_to(&mut out, image::ImageFormat::Png)
            .expect("encode PNG");
        write(format!("crop-{i}.png"), out.into_inner());
    }
    for i in 0..4u64 {
        let faces: Vec<GrayImage> = (0..=(i % 3)).map(|k| face(10 + 3 * i + k)).collect();
        let (img, _) = scene::scene(&faces, 320, 240, (64, 100), 40 + i);
        let jpeg = i % 2 == 0;
        let ext = if jpeg { "jpg" } else { "png" };
        write(format!("scene-{i}.{ext}"), scene::encode(&img, jpeg));
    }
}
