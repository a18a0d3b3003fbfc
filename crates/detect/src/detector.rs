//! [`FaceDetector`]: a detector with its embedded model, the size and memory of the copy it
//! searches, and the faces of a frame.

use crate::frame::levelled_crop;
#[cfg(feature = "yunet")]
use crate::yunet;
use crate::{DetectError, DetectOptions, DetectorKind, FaceBox, for_detection, seeta};
use image::GrayImage;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// YuNet's bytes per input pixel (the input tensor, the plan's activations, and planning a new
/// size): measured 50 at 640x640 (peak RSS growth, `examples/yunet_memory.rs`), budgeted 64.
/// Known without the feature, so the budget is the same code either way.
pub const YUNET_BYTES_PER_INPUT_PIXEL: u64 = 64;
