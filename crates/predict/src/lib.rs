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
pub mod scene;
pub mod serve;
pub mod threshold;
pub mod video;

pub use decode::{DEFAULT_MAX_ASPECT, Limits, Plan, decode_gray, gray, truncated};
pub use fer_detect::{Cancelled, DetectError, DetectOptions, DetectorKind, FaceBox, FaceDetector};
pub use model::{ClassScore, Classes, ModelOptions, Scored, Scorer};

use fer_core::transform::Transform;
use image::GrayImage;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// A model, a face detector and a threshold: bytes in, scored faces out.
pub struct Predictor {
    scorer: Mutex<Scorer>,
    /// The model's fitted transform (a copy, so preparing needs no lock).
    pub transform: Transform,
    pub detector: FaceDetector,
    /// Find faces (`false`: each image is one already-cropped face).
    pub detect: bool,
    /// p(happy) at or above it is labelled `happy`.
    pub threshold: f64,
    /// The model, for logs and `/health`.
    pub description: String,
    /// Largest image accepted, in pixels (checked from the header before decoding).
    pub max_pixels: u64,
    /// When detecting: the longer side over the shorter one, at most (checked likewise).
    pub max_aspect: f64,
    /// Faces scored per image: the most confident ones when the detector finds more.
    pub max_faces: usize,
    /// Where the threshold came from (for logs and `/health`).
    pub threshold_source: String,
    /// A seven-class model's classes (the scorer's): each face also gets a score per class.
    pub classes: Option<Classes>,
}

impl Predictor {
    pub fn new(
        scorer: Scorer,
        detector: FaceDetector,
        detect: bool,
        threshold: f64,
    ) -> Result<Predictor, PredictError> {
        if !(0.0..=1.0).contains(&threshold) {
            return Err(PredictError::Input(format!(
                "threshold {threshold} is not a probability in [0, 1]"
            )));
        }
        Ok(Predictor {
            classes: scorer.classes.clone(),
            transform: scorer.transform.clone(),
            description: scorer.description.clone(),
            scorer: Mutex::new(scorer),
            detector,
            detect,
            threshold,
            max_pixels: DEFAULT_MAX_PIXELS,
            max_aspect: DEFAULT_MAX_ASPECT,
            max_faces: DEFAULT_MAX_FACES,
            threshold_source: "given".into(),
        })
    }

    pub fn label(&self, p: f64, threshold: f64) -> &'static str {
        if p >= threshold { HAPPY } else { NOT_HAPPY }
    }

    /// Find the faces of a gray image and turn each into model input.
    pub fn prepare_gray(&self, g: &GrayImage, detect: bool) -> Prepared {
        self.prepare_gray_until(g, detect, &AtomicBool::new(false))
            .expect("never cancelled")
    }

    /// [`Self::prepare_gray`], giving up when `cancel` is set during detection (the service's
    /// deadline).
    pub fn prepare_gray_until(
        &self,
        g: &GrayImage,
        detect: bool,
        cancel: &AtomicBool,
    ) -> Result<Prepared, PredictError> {
        let (w, h) = g.dimensions();
        if !detect {
            return Ok(Prepared {
                width: w,
                height: h,
                faces: vec![FaceBox::whole(w, h)],
                detected: 1,
                x: self.transform.apply(g),
            });
        }
        let mut faces = self
            .detector
            .detect_until(g, cancel)
            .map_err(|Cancelled| PredictError::Cancelled)?;
        let detected = faces.len();
        if detected > self.max_faces {
            // Keep the most confident, still left to right.
            faces.sort_by(|a, b| {
                b.score
                    .partial_cmp(&a.score)
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            faces.truncate(self.max_faces);
            faces.sort_by_key(|f| (f.x, f.y));
        }
        let mut x = Vec::with_capacity(faces.len() * (self.transform.size as usize).pow(2));
        for f in &faces {
            x.extend(self.transform.apply(&self.detector.crop(g, f)));
        }
        Ok(Prepared {
            width: w,
            height: h,
            faces,
            detected,
            x,
        })
    }

    /// Read and check an image's header ([`decode::plan`]): what decoding it and (`detect`)
    /// searching it for faces will cost, before any pixel is decoded.
    pub fn plan<'a>(&self, bytes: &'a [u8], detect: bool) -> Result<Plan<'a>, PredictError> {
        let limits = Limits {
            max_pixels: self.max_pixels,
            max_aspect: self.max_aspect,
        };
        let work = |w, h| self.detector.working_bytes(w, h);
        decode::plan(
            bytes,
            &limits,
            detect.then_some(&work as &dyn Fn(u32, u32) -> u64),
        )
    }

    /// Decode, find faces, prepare (no model yet).
    pub fn prepare(&self, bytes: &[u8], detect: bool) -> Result<Prepared, PredictError> {
        Ok(self.prepare_gray(&self.plan(bytes, detect)?.decode_gray()?, detect))
    }

    /// Score every face of `items` in batches through the model; one outcome per item.
    pub fn score(
        &self,
        items: Vec<Result<Prepared, String>>,
        threshold: f64,
    ) -> Result<Vec<Outcome>, PredictError> {
        self.score_until(items, threshold, &AtomicBool::new(false))
    }

    /// [`Predictor::score`], stopping with [`PredictError::Cancelled`] between groups of
    /// batches once `cancel` is set (the service sets it when a request times out).
    pub fn score_until(
        &self,
        items: Vec<Result<Prepared, String>>,
        threshold: f64,
        cancel: &AtomicBool,
    ) -> Result<Vec<Outcome>, PredictError> {
        let mut x = Vec::new();
        for p in items.iter().flatten() {
            x.extend_from_slice(&p.x);
        }
        // The scorer is only read while scoring (`p_happy` takes `&self`): a panic in an
        // earlier call leaves nothing half-changed, so a poisoned lock is taken back.
        let scorer = self.scorer.lock().unwrap_or_else(|e| e.into_inner());
        // Whole batches for every worker at a time: the same batches (and so the same
        // scores) as one call, with a cancellation check between the groups.
        let face = (self.transform.size as usize).pow(2).max(1);
        let group = scorer.batch * rayon::current_num_threads().max(1) * face;
        let mut probs = Vec::with_capacity(x.len() / face);
        let mut per_class: Vec<Vec<f64>> = Vec::new();
        for part in x.chunks(group) {
            if cancel.load(Ordering::Relaxed) {
                return Err(PredictError::Cancelled);
            }
            let s = scorer.score(part.to_vec())?;
            probs.extend(s.p_happy);
            per_class.extend(s.per_class);
        }
        drop(scorer);
        // A face's per-class fields: (emotions, decisions, emotion).
        type PerClass = (
            Option<Vec<(String, f64)>>,
            Option<Vec<(String, f64)>>,
            Option<String>,
        );
        let classes = |k: usize| -> PerClass {
            let (Some(c), Some(v)) = (&self.classes, per_class.get(k)) else {
                return (None, None, None);
            };
            let named: Vec<(String, f64)> =
                c.names.iter().cloned().zip(v.iter().copied()).collect();
            let top = c.names.get(fer_models::score::argmax(v)).cloned();
            match c.score {
                ClassScore::Probability => (Some(named), None, top),
                ClassScore::Decision => (None, Some(named), top),
            }
        };
        let mut k = 0;
        Ok(items
            .into_iter()
            .map(|it| match it {
                Err(e) => Outcome::Error(e),
                Ok(p) => Outcome::Faces {
                    width: p.width,
                    height: p.height,
                    detected: p.detected,
                    faces: p
                        .faces
                        .into_iter()
                        .enumerate()
                        .map(|(i, bbox)| {
                            let ph = probs[k];
                            let (emotions, decisions, emotion) = classes(k);
                            k += 1;
                            Face {
                                face: i,
                                bbox,
                                p_happy: ph,
                                emotions,
                                decisions,
                                emotion,
                                label: self.label(ph, threshold),
                            }
                        })
                        .collect(),
                },
            })
            .collect())
    }

    /// One image's bytes to its outcome. A decode failure is an `Err`, and so is a panic
    /// ([`PredictError::Panicked`]).
    pub fn predict_bytes(
        &self,
        bytes: &[u8],
        detect: bool,
        threshold: f64,
    ) -> Result<Outcome, PredictError> {
        self.predict_bytes_until(bytes, detect, threshold, &AtomicBool::new(false))
    }

    /// One image's bytes to its outcome (the service). A decode failure is an `Err`; so is
    /// `cancel` set before the faces are scored, and a panic while preparing or scoring
    /// ([`PredictError::Panicked`]: the predictor stays usable).
    pub fn predict_bytes_until(
        &self,
        bytes: &[u8],
        detect: bool,
        threshold: f64,
        cancel: &AtomicBool,
    ) -> Result<Outcome, PredictError> {
        let run = || -> Result<Outcome, PredictError> {
            let g = self.plan(bytes, detect)?.decode_gray()?;
            if cancel.load(Ordering::Relaxed) {
                return Err(PredictError::Cancelled);
            }
            let p = self.prepare_gray_until(&g, detect, cancel)?;
            Ok(self
                .score_until(vec![Ok(p)], threshold, cancel)?
                .pop()
                .expect("one outcome"))
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
            .unwrap_or_else(|e| Err(PredictError::Panicked(panic_message(&*e))))
    }

    /// The SVM this predictor scores with (`None` for a CNN).
    pub fn svm_name(&self) -> Option<String> {
        self.scorer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .svm_name()
            .map(str::to_string)
    }

    /// The p(happy) this predictor reports for a raw score of its model (its calibration
    /// map; the identity for an uncalibrated CNN). The drift check maps the validation scores
    /// of `predictions.parquet` (raw) with it, so both sides are on the served scale.
    pub fn served_p(&self, raw: f64) -> f64 {
        self.scorer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .calibration
            .apply(raw)
    }

    /// Score one blank face, catching a panic: `Ok` when the scorer works (the service's
    /// health probe after a scoring panic).
    pub fn probe(&self) -> Result<(), String> {
        let side = (self.transform.size as usize).pow(2);
        let run = || {
            let scorer = self.scorer.lock().unwrap_or_else(|e| e.into_inner());
            scorer.p_happy(vec![0.0; side])
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
            Ok(Ok(p)) if p.len() == 1 && p[0].is_finite() => Ok(()),
            Ok(Ok(p)) => Err(format!("the scorer returned {p:?} for one blank face")),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("scoring panicked: {}", panic_message(&*e))),
        }
    }

    /// Score files: read and prepare them in parallel, chunk by chunk, score each chunk's faces
    /// in batches and hand every file's outcome, in input order, to `sink`.
    pub fn run_files(
        &self,
        files: &[inputs::Item],
        chunk: usize,
        progress: &indicatif::ProgressBar,
        sink: &mut dyn FnMut(&str, &Outcome) -> Result<(), PredictError>,
    ) -> Result<Summary, PredictError> {
        let t0 = std::time::Instant::now();
        let mut s = Summary::default();
        for part in files.chunks(chunk.max(1)) {
            let prepared: Vec<Result<Prepared, String>> = part
                .par_iter()
                .map(|it| match &it.path {
                    Err(e) => Err(e.clone()),
                    Ok(p) => std::fs::read(p)
                        .map_err(|e| e.to_string())
                        .and_then(|b| self.prepare(&b, self.detect).map_err(|e| e.to_string())),
                })
                .collect();
            let outcomes = self.score(prepared, self.threshold)?;
            for (it, o) in part.iter().zip(&outcomes) {
                s.files += 1;
                match o {
                    Outcome::Error(_) => s.errors += 1,
                    Outcome::Faces { faces, .. } if faces.is_empty() => s.no_face += 1,
                    Outcome::Faces { faces, .. } => s.faces += faces.len(),
                }
                sink(&it.name, o)?;
            }
            progress.inc(part.len() as u64);
        }
        s.seconds = t0.elapsed().as_secs_f64();
        Ok(s)
    }
}

/// A panic's message (`&str` or `String` payloads).
pub fn panic_message(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Counts of a batch run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub files: usize,
    pub faces: usize,
    pub no_face: usize,
    pub errors: usize,
    pub seconds: f64,
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
