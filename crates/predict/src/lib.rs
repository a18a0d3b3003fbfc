//! `fer-predict`: score real photos, one row per face, with any trained model of the pipeline.
//!
//! Reads:
//! - image files (JPEG, PNG; any size, colour or gray; EXIF orientation applied), folders
//!   (recursively: `*.jpg`, `*.jpeg`, `*.png`) or `-` (one path per line on stdin);
//! - a model folder (`--model`): a `train_cnn` model (`model.json` + `model.safetensors`, e.g.
//!   `artifacts/seed/train_cnn/fer-small`, or `artifacts/seed/tune/best`), or the `train_svm`
//!   folder (`model.safetensors`; `--svm` picks one, default the best by val accuracy; its
//!   fitted transform is `../preprocess/transform.json`). `--pipeline <p> --arch <a>` resolves
//!   `artifacts/<p>/train_cnn/<a>` (`--arch svm`: `artifacts/<p>/train_svm`);
//! - the model folder's `calibration.json` (fitted on val by the stage that trained it):
//!   p_happy is calibrated by it (temperature scaling of a CNN's p(happy), Platt scaling of an
//!   SVM's decision). A folder without one (older runs), or whose record says `uncalibrated`,
//!   is used uncalibrated (a CNN's softmax p(happy), an SVM's `1 / (1 + exp(-d))`) with a
//!   warning on stderr saying why;
//! - the default threshold: `artifacts/<pipeline>/report/recommendation.json`'s, only when
//!   it was chosen for the loaded model's weights (their blake3 hash, `model_weights_blake3`)
//!   and score (it is on the raw score, and is mapped through the same calibration); else
//!   0.5, with a warning on stderr saying why (see [`threshold`]). `--threshold` overrides.
//!
//! Hostile inputs: an image's pixel count is read from its header and checked against
//! `--max-pixels` (40 MP) before any pixel is decoded, and so is its aspect ratio when faces
//! are searched (`--max-aspect`, 20); a JPEG or PNG cut short is refused (the end-marker rule
//! ingest uses); a PNG's colour profile and other ancillary chunks are dropped unread; faces
//! are searched on a copy scaled down to `--det-work-side` pixels (YuNet 640, SeetaFace 1280)
//! and cropped from the original; at most `--max-faces` (16, the most confident) are scored. [`decode`] says what
//! each image costs before it is decoded, which the service holds against its memory budget.
//!
//! Each face is found by `fer_detect` (YuNet through tract-onnx with the `yunet` feature, the
//! default where built; else, or with `--detector seeta`, rustface's SeetaFace cascade; both
//! models are in the binary: nothing is downloaded), cropped square with a margin (`--margin`;
//! YuNet's crop follows FER2013's framing and is turned so the eyes are level), turned to gray by
//! `fer_core::transform::to_gray` (as `preprocess` does), resized and normalized by the
//! model's fitted `Transform`, and scored in batches (averaged with its mirror image when the
//! CNN was trained with `tta_flip`). `--no-detect` takes each image as an already-cropped face
//! (as FER2013 images are): it then reproduces `train_cnn`'s test predictions exactly.
//!
//! Writes to stdout, CSV (default) or JSON lines (`--format jsonl`), one row per face: file,
//! status (`ok`), face index, box (x, y, width, height), detection score, p_happy, label at the
//! threshold; one row per file with status `no_face` or `error` (and the message) otherwise:
//! an unreadable file never stops the batch. A progress bar goes to stderr (`--quiet` hides
//! it). Exit code 2 only when the run cannot start (e.g. no model).
//!
//! **Seven-class models** (a CNN whose `model.json` has more than two `class_names`, or a
//! train_svm folder saved with class names, `label_mode = "emotion7"`): `p_happy` is still
//! p(happy) (a CNN: its calibrated probability of the `happy` class; an SVM: Platt scaling of
//! its happy-vs-rest decision, as for a binary SVM), and each face also gets a score per class
//! and `emotion`, the class of the largest (the first on a tie):
//! - a CNN: its softmax **probabilities** (flip-averaged when trained with `tta_flip`; not
//!   calibrated: `calibration.json` maps p(happy) alone, so `prob_happy` is the raw
//!   probability and `p_happy` the calibrated one), CSV columns `prob_angry`, ...,
//!   `prob_neutral` after `p_happy` (named as train_cnn's predictions.parquet names them:
//!   `p_<class>` would give two `p_happy` columns), then `emotion`; JSON lines an object
//!   `"emotions": {"angry":
//!   p, ...}` and `"emotion"`. With `--no-detect` they are train_cnn's test probabilities
//!   exactly;
//! - an SVM: the seven one-vs-rest **decision values** (not probabilities: no map is fitted
//!   for them, and a softmax of them would not be one), CSV columns `d_angry`, ...,
//!   `d_neutral`, then `emotion`; JSON lines `"decisions": {"angry": d, ...}` and
//!   `"emotion"`; `emotion` is train_svm's `pred`.
//!
//! A binary model's rows have none of these: the same columns and bytes as before.
//!
//! `fer-predict --video <file | /dev/videoN | rtsp://...>` scores a video instead (see
//! [`video`]): ffmpeg, a child process, pipes gray frames at `--fps` (5) scaled into
//! `--video-size` (640x480); each frame's faces are found and scored as an image's; one row per
//! second of the source goes to stdout (frames, frames with a face, faces, happy, alerts at the
//! threshold, share happy, mean p_happy; a second with fewer than 5 faces shows its counts
//! only), never an image. A live source that fails or ends is opened again (`--video-retries`).
//!
//! `fer-predict serve` runs the checkout kiosk's HTTP service (see [`serve`]): `POST /predict`
//! with an image body returns its faces as JSON, `GET /health`, `GET /metrics`, and the
//! manager's live page at `GET /` (aggregates of `POST /frames` and of `--video`, polled from
//! `GET /live.json`); bound to 127.0.0.1:8080 by default. Whatever a client sends, it stays up, within its memory budget,
//! and fair to the other clients: connection, body, queue and memory limits per request and
//! per client address, write and header timeouts, an optional token and browser-origin
//! rules, and a drain on SIGTERM (the list, in order, is [`serve`]'s doc). A panic while
//! scoring fails only its request.
//!
//! The models it scores with are fer-models' (CNNs and SVMs); it depends on no stage crate.

pub mod decode;
pub mod inputs;
pub mod live;
pub mod model;
pub mod monitor;
pub mod output;
mod predictor;
pub mod scene;
pub mod serve;
pub mod threshold;
pub mod video;

pub use decode::{DEFAULT_MAX_ASPECT, Limits, Plan, decode_gray, gray, truncated};
pub use fer_detect::{Cancelled, DetectError, DetectOptions, DetectorKind, FaceBox, FaceDetector};
pub use model::{ClassScore, Classes, ModelOptions, Scored, Scorer};
pub use predictor::{Predictor, Summary, panic_message};

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error(transparent)]
    Core(#[from] fer_core::Error),
    #[error(transparent)]
    Cnn(#[from] fer_models::ModelError),
    #[error(transparent)]
    Detect(#[from] fer_detect::DetectError),
    #[error("{path}: {message}")]
    Model { path: PathBuf, message: String },
    /// The bytes are not a JPEG or PNG image we can decode.
    #[error("not a readable JPEG or PNG image: {0}")]
    Decode(String),
    #[error("{0}")]
    Input(String),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The header declares more pixels than the budget (a decompression bomb, or a photo too
    /// large for the service).
    #[error("image of {width}x{height} pixels is over the limit of {limit} pixels (--max-pixels)")]
    TooManyPixels { width: u32, height: u32, limit: u64 },
    /// Faces are searched and one side is too many times the other.
    #[error(
        "image of {width}x{height} pixels: one side is over {max} times the other (no face to find in a strip)"
    )]
    Aspect { width: u32, height: u32, max: f64 },
    /// Decoding and detecting the image would take more memory than the budget allows.
    #[error(
        "image of {width}x{height} pixels needs about {need_mb} MB to decode and search, over the memory budget of {budget_mb} MB (--memory-budget)"
    )]
    OverBudget {
        width: u32,
        height: u32,
        need_mb: u64,
        budget_mb: u64,
    },
    /// The request was abandoned (timed out) before its faces were scored.
    #[error("cancelled")]
    Cancelled,
    /// Scoring panicked (the message); the service stays up.
    #[error("scoring failed: {0}")]
    Panicked(String),
    #[error("server: {0}")]
    Server(String),
}

/// Label names at a threshold on p(happy): the study's binary labels.
pub use fer_core::classes::{HAPPY, NOT_HAPPY};

/// One scored face. A binary model's has no per-class fields (and serializes as it always
/// did); a seven-class model's has the score of each class, in class order, and the argmax.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Face {
    /// Index of the face in its image (left to right).
    pub face: usize,
    #[serde(rename = "box")]
    pub bbox: FaceBox,
    pub p_happy: f64,
    /// A seven-class CNN: the softmax probability of each class (`{"angry": p, ...}`).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "class_map")]
    pub emotions: Option<Vec<(String, f64)>>,
    /// A seven-class SVM: the one-vs-rest decision value of each class (not probabilities).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "class_map")]
    pub decisions: Option<Vec<(String, f64)>>,
    /// A seven-class model: the class of the largest score (the first on a tie).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emotion: Option<String>,
    pub label: &'static str,
}

/// Per-class values as a JSON object keyed by class name.
fn class_map<S: serde::Serializer>(
    v: &Option<Vec<(String, f64)>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let v = v.as_deref().unwrap_or_default();
    let mut m = s.serialize_map(Some(v.len()))?;
    for (k, x) in v {
        m.serialize_entry(k, x)?;
    }
    m.end()
}

/// What became of one image.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Decoded; zero or more faces (at most the predictor's `max_faces` of the `detected`).
    Faces {
        width: u32,
        height: u32,
        faces: Vec<Face>,
        /// Faces the detector found (more than `faces` when over `max_faces`).
        detected: usize,
    },
    /// Unreadable (missing, not an image, truncated...).
    Error(String),
}

/// An image decoded, its faces found and turned into model input.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub width: u32,
    pub height: u32,
    pub faces: Vec<FaceBox>,
    /// Faces the detector found, before the `max_faces` cap.
    pub detected: usize,
    /// `faces.len() * side * side` normalized values.
    pub x: Vec<f32>,
}

/// Default pixel budget of one image (width x height, read from the header before decoding):
/// 40 megapixels, a large phone photo. A decompression bomb (a small file declaring a huge
/// image) is refused before any pixel is decoded.
pub const DEFAULT_MAX_PIXELS: u64 = 40_000_000;

/// Default number of faces scored per image (the most confident ones).
pub const DEFAULT_MAX_FACES: usize = 16;

/// The pipeline a model folder belongs to: the folder after `artifacts` in its path.
pub fn pipeline_of(model: &Path, artifacts: &Path) -> Option<String> {
    let root = artifacts.file_name()?;
    let parts: Vec<_> = model.components().map(|c| c.as_os_str()).collect();
    let i = parts.iter().position(|c| *c == root)?;
    parts
        .get(i + 1)
        .and_then(|s| s.to_str())
        .map(str::to_string)
}

/// `--pipeline p --arch a`: `artifacts/p/train_cnn/a`, `svm` -> `artifacts/p/train_svm`,
/// `tune` -> `artifacts/p/tune/best`.
pub fn model_dir(artifacts: &Path, pipeline: &str, arch: &str) -> PathBuf {
    let a = artifacts.join(pipeline);
    match arch {
        "svm" => a.join("train_svm"),
        "tune" | "best" => a.join("tune").join("best"),
        _ => a.join("train_cnn").join(arch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_files_are_told_from_whole_ones() {
        use image::ImageFormat::{Jpeg, Png};
        let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let jpeg = scene::encode(&img, true);
        let png = scene::encode(&img, false);
        assert_eq!(truncated(&jpeg, Jpeg), None);
        assert_eq!(truncated(&png, Png), None);
        // Zero padding after the end marker is still whole (as ingest says).
        let mut padded = jpeg.clone();
        padded.extend_from_slice(&[0; 16]);
        assert_eq!(truncated(&padded, Jpeg), None);
        assert!(truncated(&jpeg[..jpeg.len() - 10], Jpeg).is_some());
        assert!(truncated(&png[..png.len() - 4], Png).is_some());
        let e = decode_gray(&jpeg[..jpeg.len() / 2], DEFAULT_MAX_PIXELS).unwrap_err();
        assert!(e.to_string().contains("truncated JPEG"), "{e}");
        // The pixel budget is checked from the header: 64x48 is over 3000 pixels.
        let e = decode_gray(&png, 3000).unwrap_err();
        assert!(
            matches!(
                e,
                PredictError::TooManyPixels {
                    width: 64,
                    height: 48,
                    limit: 3000
                }
            ),
            "{e}"
        );
        assert_eq!(decode_gray(&png, 3072).unwrap().width(), 64);
    }
}
