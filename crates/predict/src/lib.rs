//! `fer-predict`: score real photos, one row per face, with any trained model of the pipeline.
//!
//! Reads:
//! - image files (JPEG, PNG; any size, colour or gray; EXIF orientation applied), folders
//!   (recursively: `*.jpg`, `*.jpeg`, `*.png`) or `-` (one path per line on stdin);
//! - a model folder (`--model`): a `train_cnn` model (`model.json` + `model.safetensors`, e.g.
//!   `artifacts/seed/train_cnn/fer-small`, or `artifacts/seed/tune/best`), or the `train_svm`
//!   folder (`model.safetensors`; `--svm` picks one, default the best by val accuracy; its
//!   fitted transform is `../preprocess/transform.json`; p(happy) is Platt-scaled on the val
//!   decisions of `predictions.parquet`). `--pipeline <p> --arch <a>` resolves
//!   `artifacts/<p>/train_cnn/<a>` (`--arch svm`: `artifacts/<p>/train_svm`);
//! - the default threshold: `artifacts/<pipeline>/report/recommendation.json` (key
//!   `threshold`, a p(happy) threshold) when it exists, else 0.5; `--threshold` overrides.
//!
//! Each face is found by rustface (SeetaFace's frontal cascade, model embedded at build time:
//! nothing is downloaded), cropped square with a margin (`--margin`), turned to gray by
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
//! `fer-predict serve` runs the checkout kiosk's HTTP service (see [`serve`]): `POST /predict`
//! with an image body returns its faces as JSON, `GET /health`; bound to 127.0.0.1:8080 by
//! default, with a body size limit (`--max-body`) and a request timeout (`--timeout`).
//!
//! The models it scores with are fer-models' (CNNs and SVMs); it depends on no stage crate.

pub mod detect;
pub mod inputs;
pub mod model;
pub mod output;
pub mod scene;
pub mod serve;

pub use detect::{DetectOptions, FaceBox, FaceDetector};
pub use model::{ModelOptions, Scorer};

use fer_core::transform::{ColorSpace, Transform, to_gray};
use image::{DynamicImage, GrayImage, ImageDecoder};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error(transparent)]
    Core(#[from] fer_core::Error),
    #[error(transparent)]
    Cnn(#[from] fer_models::ModelError),
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
    #[error("server: {0}")]
    Server(String),
}

/// Label names at a threshold on p(happy).
pub const HAPPY: &str = "happy";
pub const NOT_HAPPY: &str = "not_happy";

/// One scored face.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Face {
    /// Index of the face in its image (left to right).
    pub face: usize,
    #[serde(rename = "box")]
    pub bbox: FaceBox,
    pub p_happy: f64,
    pub label: &'static str,
}

/// What became of one image.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Decoded; zero or more faces.
    Faces {
        width: u32,
        height: u32,
        faces: Vec<Face>,
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
    /// `faces.len() * side * side` normalized values.
    pub x: Vec<f32>,
}

/// Decode limits: a camera frame, not a decompression bomb.
const MAX_SIDE: u32 = 16_384;
const MAX_ALLOC: u64 = 512 << 20;

/// Decode JPEG or PNG bytes, applying the EXIF orientation.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, PredictError> {
    let bad = |e: image::ImageError| PredictError::Decode(e.to_string());
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PredictError::Decode(e.to_string()))?;
    match reader.format() {
        Some(image::ImageFormat::Jpeg | image::ImageFormat::Png) => {}
        Some(f) => return Err(PredictError::Decode(format!("{f:?} is not supported"))),
        None => return Err(PredictError::Decode("unknown format".into())),
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(bad)?;
    let orientation = decoder.orientation().map_err(bad)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(bad)?;
    img.apply_orientation(orientation);
    Ok(img)
}

/// Gray as `preprocess` makes it: 8-bit gray kept, colour through
/// [`fer_core::transform::to_gray`] (alpha ignored; 16-bit first reduced to 8 bits).
pub fn gray(img: &DynamicImage) -> GrayImage {
    let (w, h) = (img.width(), img.height());
    let conv = |raw: &[u8], space| to_gray(raw, w, h, space).expect("buffer matches its size");
    match img {
        DynamicImage::ImageLuma8(g) => g.clone(),
        DynamicImage::ImageRgb8(c) => conv(c.as_raw(), ColorSpace::Rgb),
        DynamicImage::ImageRgba8(c) => conv(c.as_raw(), ColorSpace::Rgba),
        DynamicImage::ImageLumaA8(_) | DynamicImage::ImageLuma16(_) => img.to_luma8(),
        other => conv(other.to_rgb8().as_raw(), ColorSpace::Rgb),
    }
}

/// The threshold to use: `recommendation.json`'s `threshold` when present, else 0.5; and
/// where it came from.
pub fn default_threshold(artifacts: &Path, pipeline: &str) -> (f64, String) {
    let p = artifacts
        .join(pipeline)
        .join("report")
        .join("recommendation.json");
    let read = || -> Option<f64> {
        let r: fer_core::schema::recommendation::Recommendation =
            fer_core::schema::read_json(&p).ok()?;
        Some(r.threshold).filter(|t| (0.0..=1.0).contains(t))
    };
    match read() {
        Some(t) => (t, p.display().to_string()),
        None => (0.5, "default 0.5".into()),
    }
}

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
            transform: scorer.transform.clone(),
            description: scorer.description.clone(),
            scorer: Mutex::new(scorer),
            detector,
            detect,
            threshold,
        })
    }

    pub fn label(&self, p: f64, threshold: f64) -> &'static str {
        if p >= threshold { HAPPY } else { NOT_HAPPY }
    }

    /// Find the faces of a gray image and turn each into model input.
    pub fn prepare_gray(&self, g: &GrayImage, detect: bool) -> Prepared {
        let (w, h) = g.dimensions();
        if !detect {
            return Prepared {
                width: w,
                height: h,
                faces: vec![FaceBox::whole(w, h)],
                x: self.transform.apply(g),
            };
        }
        let faces = self.detector.detect(g);
        let mut x = Vec::with_capacity(faces.len() * (self.transform.size as usize).pow(2));
        for f in &faces {
            let (cx, cy, sx, sy) = f.crop;
            let crop = image::imageops::crop_imm(g, cx, cy, sx, sy).to_image();
            x.extend(self.transform.apply(&crop));
        }
        Prepared {
            width: w,
            height: h,
            faces,
            x,
        }
    }

    /// Decode, find faces, prepare (no model yet).
    pub fn prepare(&self, bytes: &[u8], detect: bool) -> Result<Prepared, PredictError> {
        Ok(self.prepare_gray(&gray(&decode(bytes)?), detect))
    }

    /// Score every face of `items` in batches through the model; one outcome per item.
    pub fn score(
        &self,
        items: Vec<Result<Prepared, String>>,
        threshold: f64,
    ) -> Result<Vec<Outcome>, PredictError> {
        let mut x = Vec::new();
        for p in items.iter().flatten() {
            x.extend_from_slice(&p.x);
        }
        let probs = self
            .scorer
            .lock()
            .map_err(|_| PredictError::Server("model lock poisoned".into()))?
            .p_happy(x)?;
        let mut k = 0;
        Ok(items
            .into_iter()
            .map(|it| match it {
                Err(e) => Outcome::Error(e),
                Ok(p) => Outcome::Faces {
                    width: p.width,
                    height: p.height,
                    faces: p
                        .faces
                        .into_iter()
                        .enumerate()
                        .map(|(i, bbox)| {
                            let ph = probs[k];
                            k += 1;
                            Face {
                                face: i,
                                bbox,
                                p_happy: ph,
                                label: self.label(ph, threshold),
                            }
                        })
                        .collect(),
                },
            })
            .collect())
    }

    /// One image's bytes to its outcome (the service). A decode failure is an `Err`.
    pub fn predict_bytes(
        &self,
        bytes: &[u8],
        detect: bool,
        threshold: f64,
    ) -> Result<Outcome, PredictError> {
        let p = self.prepare(bytes, detect)?;
        Ok(self
            .score(vec![Ok(p)], threshold)?
            .pop()
            .expect("one outcome"))
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

/// Counts of a batch run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub files: usize,
    pub faces: usize,
    pub no_face: usize,
    pub errors: usize,
    pub seconds: f64,
}
