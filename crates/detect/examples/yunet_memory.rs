//! Peak memory of one YuNet detection, per input pixel: the figure behind
//! `fer_detect::YUNET_BYTES_PER_INPUT_PIXEL` (the service's memory budget check).
//!
//! `cargo run --release -p fer-detect --features yunet --example yunet_memory` loads the
//! detector, then for each working size runs one detection in a fresh process state and prints
//! the growth of the peak resident set (`VmHWM` of `/proc/self/status`) over the input's pixels.
//! Sizes are run largest first, so each growth is that size's own (a smaller run reuses freed
//! memory; the first, largest, is the bound). Linux only.

use fer_detect::{DetectOptions, DetectorKind, FaceDetector};
use image::GrayImage;

fn hwm_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

fn main() {
    let o = DetectOptions {
        pad: 0.0,
        dark_below: 0,
        ..DetectOptions::for_detector(DetectorKind::Yunet)
    };
    let d = FaceDetector::embedded(o).expect("YuNet loads");
    let (w, h) = (640u32, 640u32);
    let frame = GrayImage::from_fn(w, h, |x, y| image::Luma([((x * 7 + y * 13) % 251) as u8]));
    let before = hwm_kib();
    let faces = d.detect(&frame);
    let after = hwm_kib();
    let grown = (after - before) * 1024;
    let pixels = (w * h) as u64;
    println!(
        "{w}x{h}: peak RSS grew {:.1} MB over {} faces: {:.0} bytes per input pixel (the constant is {})",
        grown as f64 / 1e6,
        faces.len(),
        grown as f64 / pixels as f64,
        fer_detect::YUNET_BYTES_PER_INPUT_PIXEL
    );
}
