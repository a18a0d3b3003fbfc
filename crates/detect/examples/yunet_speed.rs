//! Time of one YuNet detection (single thread) for the upright pass and with turned passes.
use fer_detect::{DetectOptions, DetectorKind, FaceDetector};
use image::GrayImage;
use std::time::Instant;

fn best(d: &FaceDetector, frame: &GrayImage) -> f64 {
    d.detect(frame);
    let mut best = f64::MAX;
    for _ in 0..30 {
        let t = Instant::now();
        d.detect(frame);
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    best
}

fn main() {
    let frame = GrayImage::from_fn(640, 480, |x, y| {
        image::Luma([((x * 7 + y * 13) % 251) as u8])
    });
    for (w, h) in [(640u32, 480u32), (480, 384), (320, 256), (160, 128)] {
        let o = DetectOptions {
            tilt_degrees: 0.0,
            ..DetectOptions::for_detector(DetectorKind::Yunet)
        };
        let d = FaceDetector::embedded(o).expect("YuNet loads");
        let f = image::imageops::thumbnail(&frame, w, h);
        println!("upright {w}x{h}: {:.2} ms (fastest of 30)", best(&d, &f));
    }
    for (tilt, scale) in [(25.0f32, 0.5f32), (25.0, 0.75), (25.0, 1.0)] {
        let o = DetectOptions {
            tilt_degrees: tilt,
            tilt_scale: scale,
            ..DetectOptions::for_detector(DetectorKind::Yunet)
        };
        let d = FaceDetector::embedded(o).expect("YuNet loads");
        println!(
            "tilt {tilt} scale {scale}: {:.2} ms (fastest of 30)",
            best(&d, &frame)
        );
    }
}
