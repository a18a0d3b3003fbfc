//! [`DetectOptions`], the detector settings, with each detector's defaults and their checks,
//! and [`Framing`], where the model's crop sits around a detector's box.

use crate::{DetectError, DetectorKind, square_crop};
// The items the options' documentation links to.
#[cfg(all(doc, feature = "yunet"))]
use crate::yunet;
#[cfg(doc)]
use crate::{FaceBox, FaceDetector};

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
    pub(crate) fn check(&self) -> Result<(), DetectError> {
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
