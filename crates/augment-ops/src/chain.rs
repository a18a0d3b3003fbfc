//! The augmentation chain as a pipeline file writes it (`[[augment.ops]]`, `[[train_cnn.ops]]`):
//! [`OpSection`] as written, [`validate_ops`] into checked [`Step`]s, [`augmenter`] for a
//! transform's tensors. The ops themselves are [`crate::ops`].

use crate::ops::{Augmenter, Op, Step};
use fer_core::pipeline::PipelineFile;
use fer_core::transform::Transform;
use serde::{Deserialize, Serialize};

/// One `[[augment.ops]]` entry as written.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpSection {
    pub kind: String,
    pub p: Option<f32>,
    pub degrees: Option<f32>,
    pub min: Option<f32>,
    pub max: Option<f32>,
    pub max_fraction: Option<f32>,
    pub max_delta: Option<f32>,
    pub sigma_min: Option<f32>,
    pub sigma_max: Option<f32>,
    pub std: Option<f32>,
    pub min_area: Option<f32>,
    pub max_area: Option<f32>,
}

/// The chain used when a pipeline gives none: flip, rotation ±15°, contrast 0.8-1.2.
pub fn default_ops() -> Vec<OpSection> {
    vec![
        OpSection {
            kind: "hflip".into(),
            p: Some(0.5),
            ..Default::default()
        },
        OpSection {
            kind: "rotate".into(),
            degrees: Some(15.0),
            ..Default::default()
        },
        OpSection {
            kind: "contrast".into(),
            min: Some(0.8),
            max: Some(1.2),
            ..Default::default()
        },
    ]
}

/// Validate an op list (also used by train-cnn for its online chain). `section` names the
/// pipeline section the list came from, for errors: `[section] ops[i].key: problem`.
pub fn validate_ops(
    ops: &[OpSection],
    pf: &PipelineFile,
    section: &str,
) -> fer_core::Result<Vec<Step>> {
    let mut steps = Vec::new();
    for (i, o) in ops.iter().enumerate() {
        let err = |k: &str, m: String| pf.param_error(section, &format!("ops[{i}].{k}"), m);
        let p = o.p.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&p) {
            return Err(err("p", format!("{p} is not a probability in [0, 1]")));
        }
        // Which keys each kind takes; any other key set is an error.
        let allowed: &[&str] = match o.kind.as_str() {
            "hflip" => &[],
            "rotate" => &["degrees"],
            "scale" | "contrast" | "lowres" | "jpeg" | "motion_blur" | "dim" | "cover" => {
                &["min", "max"]
            }
            "shade" => &["max"],
            "translate" => &["max_fraction"],
            "brightness" => &["max_delta"],
            "blur" => &["sigma_min", "sigma_max"],
            "noise" => &["std"],
            "erase" => &["min_area", "max_area"],
            k => {
                return Err(err(
                    "kind",
                    format!(
                        "unknown op `{k}` (expected hflip, rotate, scale, translate, brightness, contrast, blur, noise, erase, lowres, jpeg, motion_blur, dim, shade or cover)"
                    ),
                ));
            }
        };
        let given = [
            ("degrees", o.degrees),
            ("min", o.min),
            ("max", o.max),
            ("max_fraction", o.max_fraction),
            ("max_delta", o.max_delta),
            ("sigma_min", o.sigma_min),
            ("sigma_max", o.sigma_max),
            ("std", o.std),
            ("min_area", o.min_area),
            ("max_area", o.max_area),
        ];
        for (k, v) in given {
            if v.is_some() && !allowed.contains(&k) {
                return Err(err(
                    k,
                    format!(
                        "not a key of `{}` (it takes: {})",
                        o.kind,
                        if allowed.is_empty() {
                            "p only".to_string()
                        } else {
                            allowed.join(", ")
                        }
                    ),
                ));
            }
            if let Some(v) = v
                && !v.is_finite()
            {
                return Err(err(k, format!("{v} is not a finite number")));
            }
        }
        let need =
            |k: &str, v: Option<f32>| v.ok_or_else(|| err(k, format!("`{}` needs `{k}`", o.kind)));
        let range = |lo_k: &str,
                     lo: Option<f32>,
                     hi_k: &str,
                     hi: Option<f32>,
                     min_ok: f32,
                     max_ok: f32|
         -> fer_core::Result<(f32, f32)> {
            let (a, b) = (need(lo_k, lo)?, need(hi_k, hi)?);
            if a < min_ok || a > max_ok {
                return Err(err(lo_k, format!("{a} is not in [{min_ok}, {max_ok}]")));
            }
            if b < a || b > max_ok {
                return Err(err(hi_k, format!("{b} is not in [{lo_k} = {a}, {max_ok}]")));
            }
            Ok((a, b))
        };
        let op = match o.kind.as_str() {
            "hflip" => Op::Hflip,
            "rotate" => {
                let d = need("degrees", o.degrees)?;
                if !(0.0..=180.0).contains(&d) {
                    return Err(err("degrees", format!("{d} is not in [0, 180]")));
                }
                Op::Rotate { degrees: d }
            }
            "scale" => {
                let (min, max) = range("min", o.min, "max", o.max, 0.1, 10.0)?;
                Op::Scale { min, max }
            }
            "contrast" => {
                let (min, max) = range("min", o.min, "max", o.max, 0.0, 10.0)?;
                Op::Contrast { min, max }
            }
            "translate" => {
                let f = need("max_fraction", o.max_fraction)?;
                if !(0.0..=0.5).contains(&f) {
                    return Err(err("max_fraction", format!("{f} is not in [0, 0.5]")));
                }
                Op::Translate { max_fraction: f }
            }
            "brightness" => {
                let d = need("max_delta", o.max_delta)?;
                if !(0.0..=1.0).contains(&d) {
                    return Err(err("max_delta", format!("{d} is not in [0, 1]")));
                }
                Op::Brightness { max_delta: d }
            }
            "blur" => {
                let (sigma_min, sigma_max) = range(
                    "sigma_min",
                    o.sigma_min,
                    "sigma_max",
                    o.sigma_max,
                    0.0,
                    10.0,
                )?;
                Op::Blur {
                    sigma_min,
                    sigma_max,
                }
            }
            "noise" => {
                let s = need("std", o.std)?;
                if !(0.0..=1.0).contains(&s) {
                    return Err(err("std", format!("{s} is not in [0, 1]")));
                }
                Op::Noise { std: s }
            }
            "lowres" => {
                let (min, max) = range("min", o.min, "max", o.max, 0.05, 1.0)?;
                Op::Lowres { min, max }
            }
            "jpeg" => {
                let (min, max) = range("min", o.min, "max", o.max, 1.0, 100.0)?;
                Op::Jpeg { min, max }
            }
            "motion_blur" => {
                let (min, max) = range("min", o.min, "max", o.max, 0.0, 1.0)?;
                Op::MotionBlur { min, max }
            }
            "dim" => {
                let (min, max) = range("min", o.min, "max", o.max, 0.01, 1.0)?;
                Op::Dim { min, max }
            }
            "shade" => {
                let g = need("max", o.max)?;
                if !(0.0..=1.0).contains(&g) {
                    return Err(err("max", format!("{g} is not in [0, 1]")));
                }
                Op::Shade { max: g }
            }
            "cover" => {
                let (min, max) = range("min", o.min, "max", o.max, 0.0, 1.0)?;
                Op::Cover { min, max }
            }
            _ => {
                let (min_area, max_area) =
                    range("min_area", o.min_area, "max_area", o.max_area, 0.0, 1.0)?;
                if max_area <= 0.0 {
                    return Err(err("max_area", "must be > 0".into()));
                }
                Op::Erase { min_area, max_area }
            }
        };
        steps.push(Step { op, p });
    }
    Ok(steps)
}

/// The augmenter of a validated chain for tensors made with `transform`.
pub fn augmenter(steps: &[Step], transform: &Transform) -> Augmenter {
    Augmenter {
        steps: steps.to_vec(),
        side: transform.size as usize,
        range: transform.value_range(),
    }
}
