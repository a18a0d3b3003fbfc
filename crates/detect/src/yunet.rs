//! YuNet (OpenCV Zoo, `face_detection_yunet_2023mar.onnx`) through tract-onnx.
//!
//! The input is `1x3xHxW` BGR in 0..255 with no normalization (what OpenCV's
//! `FaceDetectorYN` feeds it); a gray frame goes in as three equal channels. Three heads (strides
//! 8, 16 and 32, one anchor per cell) give per cell a face probability, an objectness, a box
//! (centre offset in cells, log of the size in strides) and five landmarks (offsets in
//! strides). The score is `sqrt(face · objectness)`, as in OpenCV; boxes over the threshold go
//! through greedy non-maximum suppression.

use crate::{DetectError, DetectOptions, Raw, mean_gray};
use image::GrayImage;
use std::sync::{Arc, Mutex};
use tract_onnx::prelude::*;

/// The vendored model file (see `NOTICE`).
pub const MODEL: &[u8] = include_bytes!("../models/face_detection_yunet_2023mar.onnx");

/// Plans kept, one per input size (a camera's frames all have one size; photos of many sizes
/// re-plan, about 50 ms each).
pub const PLANS: usize = 8;

/// The heads' strides, coarsest last: inputs are padded to a multiple of the last.
const STRIDES: [usize; 3] = [8, 16, 32];

type Plan = Arc<TypedRunnableModel>;

/// The parsed model and the plans made from it.
pub(crate) struct Yunet {
    model: InferenceModel,
    plans: Mutex<Vec<((usize, usize), Plan)>>,
}

fn model_error(e: impl std::fmt::Display) -> DetectError {
    DetectError::Model {
        detector: "YuNet",
        message: e.to_string(),
    }
}

impl Yunet {
    /// Parse the embedded file (its recorded shapes are ignored: see the crate doc).
    pub(crate) fn load() -> Result<Yunet, DetectError> {
        let model = tract_onnx::onnx()
            .with_ignore_output_shapes(true)
            .with_ignore_value_info(true)
            .model_for_read(&mut &MODEL[..])
            .map_err(|e| model_error(format!("{e:#}")))?;
        let y = Yunet {
            model,
            plans: Mutex::new(vec![]),
        };
        // Plan the default size and the second looks' window now, so a broken model fails at
        // start-up, not on a request, and the first frame does not pay for planning.
        y.plan(640, 480)?;
        y.plan(WINDOW_SIDE as usize, WINDOW_SIDE as usize)?;
        Ok(y)
    }

    /// The plan for a `w` x `h` input (multiples of 32).
    fn plan(&self, w: usize, h: usize) -> Result<Plan, DetectError> {
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = plans.iter().find(|p| p.0 == (w, h)) {
            return Ok(p.1.clone());
        }
        let mut m = self.model.clone();
        m.set_input_fact(0, f32::fact([1, 3, h, w]).into())
            .map_err(model_error)?;
        let plan = m
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| model_error(format!("planning {w}x{h}: {e:#}")))?;
        if plans.len() >= PLANS {
            plans.remove(0);
        }
        plans.push(((w, h), plan.clone()));
        Ok(plan)
    }

    /// Faces scoring at least `threshold` on `gray` as given (padded right and down to
    /// multiples of 32 with its mean gray).
    pub(crate) fn raw(&self, gray: &GrayImage, o: &DetectOptions, threshold: f64) -> Vec<Raw> {
        // A failure here (an input tract cannot plan) is reported on stderr and finds no face;
        // the default size is planned at load, and every input is a multiple of 32.
        self.try_raw(gray, o, threshold).unwrap_or_else(|e| {
            eprintln!("fer-detect: YuNet: {e}");
            vec![]
        })
    }

    fn try_raw(
        &self,
        gray: &GrayImage,
        o: &DetectOptions,
        threshold: f64,
    ) -> Result<Vec<Raw>, DetectError> {
        let (w, h) = (gray.width() as usize, gray.height() as usize);
        let last = STRIDES[STRIDES.len() - 1];
        let (pw, ph) = (w.div_ceil(last) * last, h.div_ceil(last) * last);
        let fill = mean_gray(gray) as f32;
        let mut x = vec![fill; 3 * pw * ph];
        for (row, src) in gray.as_raw().chunks_exact(w).enumerate() {
            for c in 0..3 {
                let dst = &mut x[(c * ph + row) * pw..(c * ph + row) * pw + w];
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d = v as f32;
                }
            }
        }
        let input = Tensor::from_shape(&[1, 3, ph, pw], &x).map_err(model_error)?;
        drop(x);
        let out = self
            .plan(pw, ph)?
            .run(tvec!(input.into()))
            .map_err(|e| model_error(format!("{e:#}")))?;
        if out.len() != 12 {
            return Err(model_error(format!("{} outputs, expected 12", out.len())));
        }
        let views = out
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.to_plain_array_view::<f32>()
                    .map_err(|e| model_error(format!("output {i}: {e:#}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let view = |i: usize| -> Result<&[f32], DetectError> {
            views[i]
                .as_slice()
                .ok_or_else(|| model_error(format!("output {i} is not contiguous")))
        };
        let thr = threshold as f32;
        let mut found = vec![];
        for (k, &s) in STRIDES.iter().enumerate() {
            let (cols, rows) = (pw / s, ph / s);
            let (cls, obj, bbox, kps) = (view(k)?, view(3 + k)?, view(6 + k)?, view(9 + k)?);
            let cells = cols * rows;
            if cls.len() != cells
                || obj.len() != cells
                || bbox.len() != 4 * cells
                || kps.len() != 10 * cells
            {
                return Err(model_error(format!(
                    "stride {s}: outputs of {}/{}/{}/{} values for {cells} cells",
                    cls.len(),
                    obj.len(),
                    bbox.len(),
                    kps.len()
                )));
            }
            let s = s as f32;
            for i in 0..cells {
                let score = (cls[i].clamp(0.0, 1.0) * obj[i].clamp(0.0, 1.0)).sqrt();
                if score.is_nan() || score < thr {
                    continue;
                }
                let (c, r) = ((i % cols) as f32, (i / cols) as f32);
                let b = &bbox[4 * i..4 * i + 4];
                let (cx, cy) = ((c + b[0]) * s, (r + b[1]) * s);
                // exp of a wild logit is clamped to the input's size.
                let bw = (b[2].exp() * s).min(2.0 * pw as f32);
                let bh = (b[3].exp() * s).min(2.0 * ph as f32);
                let k = &kps[10 * i..10 * i + 10];
                let landmarks =
                    std::array::from_fn(|j| [(k[2 * j] + c) * s, (k[2 * j + 1] + r) * s]);
                found.push(Raw {
                    x: cx - bw / 2.0,
                    y: cy - bh / 2.0,
                    w: bw,
                    h: bh,
                    score: score as f64,
                    landmarks: Some(landmarks),
                });
            }
        }
        Ok(nms(found, o.nms_iou))
    }
}

/// YuNet's faces on a copy of `seen` at `o.tilt_scale` of its size turned by `degrees` about
/// its centre (clockwise for positive), mapped back into `seen`'s pixels: each box keeps its
/// size around its centre turned back, and the landmarks are turned back.
pub(crate) fn turned(y: &Yunet, seen: &GrayImage, o: &DetectOptions, degrees: f32) -> Vec<Raw> {
    let k = o.tilt_scale;
    let (w, h) = (
        (seen.width() as f32 * k).round() as u32,
        (seen.height() as f32 * k).round() as u32,
    );
    if w < 32 || h < 32 {
        return vec![];
    }
    let scaled;
    let copy = if (w, h) == seen.dimensions() {
        seen
    } else {
        scaled = image::imageops::thumbnail(seen, w, h);
        &scaled
    };
    let mean = mean_gray(copy);
    let theta = degrees.to_radians();
    let turned = crate::warp::rotate_about_center(copy, theta, mean);
    // rotate_about_center maps p to R(theta) (p - c) + c; back is R(-theta), then / k.
    let (c, s) = (theta.cos(), theta.sin());
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let (kx, ky) = (
        seen.width() as f32 / w as f32,
        seen.height() as f32 / h as f32,
    );
    let back = |x: f32, y: f32| -> [f32; 2] {
        let (dx, dy) = (x - cx, y - cy);
        [kx * (c * dx + s * dy + cx), ky * (-s * dx + c * dy + cy)]
    };
    y.raw(&turned, o, o.score_threshold)
        .into_iter()
        .map(|b| {
            let [mx, my] = back(b.x + b.w / 2.0, b.y + b.h / 2.0);
            let (bw, bh) = (kx * b.w, ky * b.h);
            Raw {
                x: mx - bw / 2.0,
                y: my - bh / 2.0,
                w: bw,
                h: bh,
                score: b.score,
                landmarks: b.landmarks.map(|l| l.map(|[x, y]| back(x, y))),
            }
        })
        .collect()
}

/// The side of a second look's window, in YuNet's input pixels (a multiple of 32).
pub const WINDOW_SIDE: u32 = 128;
/// A second look's window, as a multiple of the candidate box's side: the face is then about
/// half the window whatever its size in the frame.
pub const WINDOW_OVER_BOX: f32 = 2.0;
/// The largest candidate (its box's longer side, in the searched frame's pixels) that gets a
/// second look. On the scene benchmark the upright search finds 101 of 102 faces of 150-300
/// px; looks at larger candidates found no more faces and gave frame-sized false boxes (a
/// window of 256 px and more sampled down to 128).
pub const LOOK_MAX_SIDE: f32 = WINDOW_SIDE as f32;

/// YuNet's faces in a window around `candidate` (a box of the upright search on `seen`): the
/// square of [`WINDOW_OVER_BOX`] times its side about its centre, sampled (bilinear; outside
/// `seen` is its mean gray) into [`WINDOW_SIDE`] pixels, searched upright and turned by plus
/// and minus `o.tilt_degrees`; boxes scoring `o.score_threshold` there are mapped back into
/// `seen`'s pixels when their centre lies in the candidate's box and their side is within half
/// to twice its side.
pub(crate) fn second_look(
    y: &Yunet,
    seen: &GrayImage,
    o: &DetectOptions,
    candidate: &Raw,
) -> Vec<Raw> {
    use crate::warp::{Affine, warp_into};
    let side = candidate.w.max(candidate.h) * WINDOW_OVER_BOX;
    if !(side.is_finite() && side >= 1.0) {
        return vec![];
    }
    let (cx, cy) = (
        candidate.x + candidate.w / 2.0,
        candidate.y + candidate.h / 2.0,
    );
    let n = WINDOW_SIDE as f32;
    let k = n / side;
    let fill = mean_gray(seen);
    let mut angles = vec![0.0f32];
    if o.tilt_degrees > 0.0 {
        angles.extend([-o.tilt_degrees, o.tilt_degrees]);
    }
    let mut found = vec![];
    let mut window = GrayImage::new(WINDOW_SIDE, WINDOW_SIDE);
    for degrees in angles {
        // Frame to window: centre the candidate, turn, scale, move to the window's centre.
        let map = Affine::translate(n / 2.0, n / 2.0)
            * Affine::rotate(degrees.to_radians())
            * Affine::scale(k)
            * Affine::translate(-cx, -cy);
        warp_into(seen, map, fill, &mut window);
        for b in y.raw(&window, o, o.score_threshold) {
            let [mx, my] = map.back_point(b.x + b.w / 2.0, b.y + b.h / 2.0);
            let (bw, bh) = (b.w / k, b.h / k);
            // The look confirms the candidate, it does not search the window: a face whose
            // centre is off the candidate's box, or of another size, is something else (a
            // neighbour already found, or clutter seen up close).
            let ratio = bw.max(bh) / (candidate.w.max(candidate.h));
            if (mx - cx).abs() > candidate.w / 2.0
                || (my - cy).abs() > candidate.h / 2.0
                || !(0.5..=2.0).contains(&ratio)
            {
                continue;
            }
            found.push(Raw {
                x: mx - bw / 2.0,
                y: my - bh / 2.0,
                w: bw,
                h: bh,
                score: b.score,
                landmarks: b.landmarks.map(|l| l.map(|[x, y]| map.back_point(x, y))),
            });
        }
    }
    found
}

/// [`nms`] across the upright and turned passes: a box is also dropped when its centre lies
/// inside a kept box (the same face seen by two passes, boxed differently enough that their IoU
/// is low).
pub(crate) fn merge_passes(mut boxes: Vec<Raw>, max_iou: f32) -> Vec<Raw> {
    boxes.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Raw> = vec![];
    for b in boxes {
        let (cx, cy) = (b.x + b.w / 2.0, b.y + b.h / 2.0);
        let inside = |k: &Raw| cx >= k.x && cx <= k.x + k.w && cy >= k.y && cy <= k.y + k.h;
        if kept.iter().all(|k| iou(k, &b) <= max_iou && !inside(k)) {
            kept.push(b);
        }
    }
    kept
}

/// Intersection over union of two boxes.
pub(crate) fn iou(a: &Raw, b: &Raw) -> f32 {
    let ix = ((a.x + a.w).min(b.x + b.w) - a.x.max(b.x)).max(0.0);
    let iy = ((a.y + a.h).min(b.y + b.h) - a.y.max(b.y)).max(0.0);
    let inter = ix * iy;
    let union = a.w * a.h + b.w * b.h - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// Greedy non-maximum suppression: highest score first, dropping boxes that overlap a kept one
/// by more than `max_iou` (ties in score keep the earlier cell, so the result is deterministic).
pub(crate) fn nms(mut boxes: Vec<Raw>, max_iou: f32) -> Vec<Raw> {
    boxes.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Raw> = vec![];
    for b in boxes {
        if kept.iter().all(|k| iou(k, &b) <= max_iou) {
            kept.push(b);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(x: f32, score: f64) -> Raw {
        Raw {
            x,
            y: 0.0,
            w: 10.0,
            h: 10.0,
            score,
            landmarks: None,
        }
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes_and_separate_ones() {
        let kept = nms(vec![raw(0.0, 0.7), raw(1.0, 0.9), raw(50.0, 0.8)], 0.3);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].score, 0.9);
        assert_eq!(kept[1].x, 50.0);
        assert!((iou(&raw(0.0, 1.0), &raw(5.0, 1.0)) - 50.0 / 150.0).abs() < 1e-6);
    }
}
