//! [`Predictor`]: a model, a face detector and a threshold, from image bytes (or files) to
//! scored faces; and [`Summary`], the counts of a batch run.

use crate::decode::{self, DEFAULT_MAX_ASPECT, Limits, Plan};
use crate::model::{ClassScore, Classes, Scorer};
use crate::{
    DEFAULT_MAX_FACES, DEFAULT_MAX_PIXELS, Face, HAPPY, NOT_HAPPY, Outcome, PredictError, Prepared,
    inputs,
};
use fer_core::transform::Transform;
use fer_detect::{Cancelled, FaceBox, FaceDetector};
use image::GrayImage;
use rayon::prelude::*;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

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
