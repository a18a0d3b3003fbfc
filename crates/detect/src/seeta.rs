//! rustface (a Rust port of SeetaFace's 2016 funnel-structured frontal cascade), with its model
//! embedded in the binary by `build.rs`.

use crate::{DetectError, DetectOptions, Raw};
use image::GrayImage;
use rustface::{Detector, ImageData};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

/// The SeetaFace frontal detection model (`seeta_fd_frontal_v1.0.bin`, 1.2 MB, BSD-2-Clause)
/// from the rustface crate package, embedded at build time.
pub const SEETA_MODEL: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/seeta_fd_frontal.bin"));

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// One rustface detector per thread and [`Seeta`] (it needs `&mut` and is not `Send`).
    static DETECTOR: RefCell<Option<(u64, Box<dyn Detector>)>> = const { RefCell::new(None) };
}

/// Frames (as searched, padding included) up to this many pixels leave their thread's
/// detector in place for the next; larger ones drop it after use (about 16 bytes a pixel).
const KEEP_DETECTOR_PIXELS: u64 = 1 << 20;

/// The parsed model, shared; each thread builds its own rustface detector once.
pub(crate) struct Seeta {
    model: rustface::Model,
    options: DetectOptions,
    id: u64,
}

impl Seeta {
    pub(crate) fn new(options: &DetectOptions) -> Result<Seeta, DetectError> {
        let model = rustface::read_model(SEETA_MODEL).map_err(|e| DetectError::Model {
            detector: "SeetaFace",
            message: e.to_string(),
        })?;
        Ok(Seeta {
            model,
            options: *options,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// rustface's boxes on the image as given.
    pub(crate) fn raw(&self, gray: &GrayImage) -> Vec<Raw> {
        let (w, h) = gray.dimensions();
        DETECTOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.as_ref().map(|s| s.0) != Some(self.id) {
                let mut d = rustface::create_detector_with_model(self.model.clone());
                let o = &self.options;
                d.set_min_face_size(o.min_face);
                d.set_score_thresh(o.score_threshold);
                d.set_pyramid_scale_factor(o.pyramid_scale);
                d.set_slide_window_step(o.step, o.step);
                *slot = Some((self.id, d));
            }
            let d = &mut slot.as_mut().expect("set above").1;
            let found = d
                .detect(&ImageData::new(gray.as_raw(), w, h))
                .iter()
                .map(|f| {
                    let b = f.bbox();
                    Raw {
                        x: b.x() as f32,
                        y: b.y() as f32,
                        w: b.width() as f32,
                        h: b.height() as f32,
                        score: f.score(),
                        landmarks: None,
                    }
                })
                .collect();
            // rustface keeps buffers the size of the largest image it has searched: keep a
            // detector only while they are small, so that a thread that once searched a large
            // frame does not hold its memory (a new detector costs a copy of the model).
            if w as u64 * h as u64 > KEEP_DETECTOR_PIXELS {
                *slot = None;
            }
            found
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{DetectOptions, DetectorKind, FaceDetector};
    use image::GrayImage;

    #[test]
    fn embedded_model_loads_and_blank_images_have_no_face() {
        let d = FaceDetector::embedded(DetectOptions::for_detector(DetectorKind::Seeta)).unwrap();
        assert!(d.detect(&GrayImage::new(320, 240)).is_empty());
        assert!(d.detect(&GrayImage::new(10, 10)).is_empty());
        let bad = DetectOptions {
            min_face: 10,
            ..DetectOptions::for_detector(DetectorKind::Seeta)
        };
        assert!(FaceDetector::embedded(bad).is_err());
    }
}
