//! Face detection: rustface (a Rust port of the SeetaFace funnel-structured cascade) with its
//! frontal model embedded in the binary by `build.rs`, and the square, margin-padded crop of
//! each face.

use crate::PredictError;
use image::GrayImage;
use rustface::{Detector, ImageData};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

/// The SeetaFace frontal detection model (`seeta_fd_frontal_v1.0.bin`, 1.2 MB, BSD-2-Clause)
/// from the rustface crate package, embedded at build time.
pub const SEETA_MODEL: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/seeta_fd_frontal.bin"));

/// Detector settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectOptions {
    /// Smallest face side searched, in pixels (rustface's minimum is 20).
    pub min_face: u32,
    /// Detection score threshold (rustface: 0.95 permissive, 2.0 usual, 4.5 strict). 1.0 by
    /// default: on the scenes of `examples/detect_scenes.rs` it finds 5 points more faces
    /// than 2.0 in plain frames and 6 more turned ones, for under one false face per 100
    /// frames (0.5 finds more still but gives 5.6).
    pub score_threshold: f64,
    /// Ratio between pyramid levels (0.1..0.99; larger is slower and finds more).
    pub pyramid_scale: f32,
    /// Sliding window step in pixels.
    pub step: u32,
    /// Margin added around the detected box on each side, as a fraction of its side, before
    /// the square crop (negative shrinks it). 0 measured best: on FER2013 test faces pasted
    /// into photos, label agreement with `--no-detect` was 92.5% at 0, 89% at 0.1 and -0.05,
    /// 83% at 0.2 (`examples/detection_rate.rs`).
    pub margin: f32,
    /// Frames darker than this mean gray level (0..255) have their histogram equalized before
    /// detection (the crops the model sees stay as they were); 0 turns it off. 60 by default:
    /// dim frames (a fifth of the light) went from 54% to 66% of faces found at score 1.0
    /// (`examples/detect_scenes.rs`, the README's detection table).
    pub dark_below: u8,
    /// A border of this fraction of the frame's larger side, filled with the frame's mean gray,
    /// is added around the frame before detection, so a face that fills the frame still sits
    /// inside the detector's windows; boxes are mapped back and clipped. 0 turns it off. 0.25
    /// by default: frames that are all face went from 83% to 88% found at score 1.0; it costs
    /// time in proportion to the larger area searched (with the equalization, 11 frames/s
    /// against the old default's 19 in the example's mix, measured in one run).
    pub pad: f32,
    /// The detector searches a copy of the frame scaled down (area-averaged) so that its
    /// longer side is at most this many pixels; boxes are mapped back, and faces are cropped
    /// from the original. It bounds detection's time and memory whatever the photo's size (a
    /// checkout frame needs no 40 MP search). 1280 by default: a face then needs to be about
    /// 40/1280 of the frame's longer side to be found (60 pixels in a 1080p frame).
    pub work_side: u32,
}

impl Default for DetectOptions {
    fn default() -> Self {
        DetectOptions {
            min_face: 40,
            score_threshold: 1.0,
            pyramid_scale: 0.8,
            step: 4,
            margin: 0.0,
            dark_below: 60,
            pad: 0.25,
            work_side: 1280,
        }
    }
}

/// A detected face: the detector's box (clipped to the image), its score, and the square crop
/// the model sees.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct FaceBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// The detector's score (`None` for `--no-detect`: the whole image is the face).
    pub score: Option<f64>,
    /// The crop `(x, y, side_x, side_y)` fed to the transform.
    #[serde(skip)]
    pub crop: (u32, u32, u32, u32),
}

impl FaceBox {
    /// The whole image as one face (`--no-detect`).
    pub fn whole(w: u32, h: u32) -> FaceBox {
        FaceBox {
            x: 0,
            y: 0,
            width: w,
            height: h,
            score: None,
            crop: (0, 0, w, h),
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// One rustface detector per thread and [`FaceDetector`] (it needs `&mut` and is not `Send`).
    static DETECTOR: RefCell<Option<(u64, Box<dyn Detector>)>> = const { RefCell::new(None) };
}

/// A face detector usable from any thread (`Send + Sync`): the parsed model is shared, each
/// thread builds its own rustface detector once.
pub struct FaceDetector {
    model: rustface::Model,
    pub options: DetectOptions,
    id: u64,
}

impl FaceDetector {
    /// The embedded SeetaFace model with `options`.
    pub fn embedded(options: DetectOptions) -> Result<FaceDetector, PredictError> {
        if options.min_face < 20 {
            return Err(PredictError::Input(format!(
                "--min-face {}: rustface needs at least 20",
                options.min_face
            )));
        }
        if !(0.1..0.99).contains(&options.pyramid_scale) || options.step == 0 {
            return Err(PredictError::Input(
                "pyramid scale must be in 0.1..0.99 and the step positive".into(),
            ));
        }
        if options.score_threshold <= 0.0 || !(-0.4..=2.0).contains(&options.margin) {
            return Err(PredictError::Input(
                "detection threshold must be > 0 and the margin in -0.4..=2".into(),
            ));
        }
        if options.work_side < 40 {
            return Err(PredictError::Input(format!(
                "--det-work-side {}: must be at least 40 (the detector's window)",
                options.work_side
            )));
        }
        if !(0.0..=1.0).contains(&options.pad) {
            return Err(PredictError::Input(format!(
                "--det-pad {}: must be in 0..=1 (a fraction of the frame's larger side)",
                options.pad
            )));
        }
        let model = rustface::read_model(SEETA_MODEL)
            .map_err(|e| PredictError::Input(format!("embedded SeetaFace model: {e}")))?;
        Ok(FaceDetector {
            model,
            options,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// The size of the copy searched for an image of `w` x `h`: scaled down to
    /// [`DetectOptions::work_side`] on its longer side, never up.
    pub fn working_size(&self, w: u32, h: u32) -> (u32, u32) {
        let side = self.options.work_side as u64;
        let long = w.max(h) as u64;
        if long <= side {
            return (w, h);
        }
        let scale = |v: u32| ((v as u64 * side + long / 2) / long).max(1) as u32;
        (scale(w), scale(h))
    }

    /// Bytes detection allocates at most for an image of `w` x `h` (the working copy, its
    /// equalized and padded copies, and rustface's pyramid and feature maps: 16 bytes per
    /// padded pixel, measured about 13).
    pub fn working_bytes(&self, w: u32, h: u32) -> u64 {
        let (ww, wh) = self.working_size(w, h);
        let border = (self.options.pad.max(0.0) * ww.max(wh) as f32).round() as u64;
        let padded = (ww as u64 + 2 * border) * (wh as u64 + 2 * border);
        2 * ww as u64 * wh as u64 + 16 * padded
    }

    /// Faces in a gray image, left to right (then top to bottom).
    pub fn detect(&self, gray: &GrayImage) -> Vec<FaceBox> {
        let (w, h) = gray.dimensions();
        if w < 20 || h < 20 {
            return vec![];
        }
        let (ww, wh) = self.working_size(w, h);
        let small;
        let work = if (ww, wh) == (w, h) {
            gray
        } else {
            small = image::imageops::thumbnail(gray, ww, wh);
            &small
        };
        if ww < 20 || wh < 20 {
            return vec![];
        }
        // Working-copy coordinates to the original's.
        let (fx, fy) = (w as f32 / ww as f32, h as f32 / wh as f32);
        let seen = for_detection(work, &self.options);
        let (ox, oy) = (
            (seen.width() - ww) as i32 / 2,
            (seen.height() - wh) as i32 / 2,
        );
        let raw: Vec<(i32, i32, u32, u32, f64)> = self
            .raw(&seen)
            .into_iter()
            .map(|b| {
                let (x, y) = ((b.0 - ox) as f32 * fx, (b.1 - oy) as f32 * fy);
                let (bw, bh) = (b.2 as f32 * fx, b.3 as f32 * fy);
                (
                    x.round() as i32,
                    y.round() as i32,
                    bw.round() as u32,
                    bh.round() as u32,
                    b.4,
                )
            })
            .collect();
        let mut faces: Vec<FaceBox> = raw
            .iter()
            .filter_map(|b| {
                let (bx, by) = (b.0, b.1);
                let x0 = bx.clamp(0, w as i32) as u32;
                let y0 = by.clamp(0, h as i32) as u32;
                let x1 = (bx + b.2 as i32).clamp(0, w as i32) as u32;
                let y1 = (by + b.3 as i32).clamp(0, h as i32) as u32;
                if x1 <= x0 || y1 <= y0 {
                    return None;
                }
                let cx = bx as f32 + b.2 as f32 / 2.0;
                let cy = by as f32 + b.3 as f32 / 2.0;
                let side = b.2.max(b.3) as f32 * (1.0 + 2.0 * self.options.margin);
                Some(FaceBox {
                    x: x0,
                    y: y0,
                    width: x1 - x0,
                    height: y1 - y0,
                    score: Some(b.4),
                    crop: square_crop(cx, cy, side, w, h),
                })
            })
            .collect();
        faces.sort_by_key(|f| (f.x, f.y));
        faces
    }

    /// rustface's boxes `(x, y, width, height, score)` on the image as given.
    fn raw(&self, gray: &GrayImage) -> Vec<(i32, i32, u32, u32, f64)> {
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
                    (b.x(), b.y(), b.width(), b.height(), f.score())
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

/// Frames (as searched, padding included) up to this many pixels leave their thread's
/// detector in place for the next; larger ones drop it after use (about 16 bytes a pixel).
const KEEP_DETECTOR_PIXELS: u64 = 1 << 20;

/// The image the detector searches: `gray` equalized when darker than `dark_below` on
/// average, then padded by `pad` of its larger side on every side with its mean gray (the
/// offset of the original is half the added width and height).
pub fn for_detection(gray: &GrayImage, o: &DetectOptions) -> GrayImage {
    let n = (gray.width() as u64 * gray.height() as u64).max(1);
    let mean = gray.as_raw().iter().map(|&v| v as u64).sum::<u64>() / n;
    let img = if o.dark_below > 0 && mean < o.dark_below as u64 {
        imageproc::contrast::equalize_histogram(gray)
    } else {
        gray.clone()
    };
    if o.pad <= 0.0 {
        return img;
    }
    let border = (o.pad * gray.width().max(gray.height()) as f32).round() as u32;
    let fill = img.as_raw().iter().map(|&v| v as u64).sum::<u64>() / n;
    let mut out = GrayImage::from_pixel(
        img.width() + 2 * border,
        img.height() + 2 * border,
        image::Luma([fill as u8]),
    );
    image::imageops::replace(&mut out, &img, border as i64, border as i64);
    out
}

/// A square of `side` centred on (`cx`, `cy`), moved inside the image when it sticks out (and
/// cut to the image when it is larger than the image).
pub fn square_crop(cx: f32, cy: f32, side: f32, w: u32, h: u32) -> (u32, u32, u32, u32) {
    let fit = |c: f32, len: u32| -> (u32, u32) {
        let s = side.round().max(1.0).min(len as f32);
        let start = (c - s / 2.0).round().clamp(0.0, len as f32 - s);
        (start as u32, s as u32)
    };
    let (x, sx) = fit(cx, w);
    let (y, sy) = fit(cy, h);
    (x, y, sx, sy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_stay_inside() {
        assert_eq!(square_crop(50.0, 50.0, 20.0, 100, 100), (40, 40, 20, 20));
        assert_eq!(square_crop(5.0, 95.0, 20.0, 100, 100), (0, 80, 20, 20));
        assert_eq!(square_crop(50.0, 20.0, 200.0, 100, 40), (0, 0, 100, 40));
    }

    #[test]
    fn embedded_model_loads_and_blank_images_have_no_face() {
        let d = FaceDetector::embedded(DetectOptions::default()).unwrap();
        assert!(d.detect(&GrayImage::new(320, 240)).is_empty());
        assert!(d.detect(&GrayImage::new(10, 10)).is_empty());
        let bad = DetectOptions {
            min_face: 10,
            ..Default::default()
        };
        assert!(FaceDetector::embedded(bad).is_err());
    }
}
