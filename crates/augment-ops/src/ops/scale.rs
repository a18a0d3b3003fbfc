//! [`scale_steps`]: a chain with its magnitudes scaled (tune's augmentation strength).

use super::{Op, Step};

/// The same chain with every magnitude multiplied by `k` (tune's "augmentation strength"):
/// angles, shifts, zoom and contrast ranges around 1, brightness, blur, noise, the
/// probability of erasing, and the camera ops (low resolution and dimming around 1, JPEG
/// quality around 100, motion blur and shading around 0; covering, like erasing, by its
/// probability). `k = 1` is the chain itself, `k = 0` leaves only flips.
pub fn scale_steps(steps: &[Step], k: f32) -> Vec<Step> {
    let around_one = |v: f32| 1.0 + (v - 1.0) * k;
    steps
        .iter()
        .map(|st| {
            let (op, p) = match st.op {
                Op::Hflip => (Op::Hflip, st.p),
                Op::Rotate { degrees } => (
                    Op::Rotate {
                        degrees: degrees * k,
                    },
                    st.p,
                ),
                Op::Scale { min, max } => (
                    Op::Scale {
                        min: around_one(min).max(0.05),
                        max: around_one(max).max(0.05),
                    },
                    st.p,
                ),
                Op::Translate { max_fraction } => (
                    Op::Translate {
                        max_fraction: (max_fraction * k).min(0.5),
                    },
                    st.p,
                ),
                Op::Brightness { max_delta } => (
                    Op::Brightness {
                        max_delta: max_delta * k,
                    },
                    st.p,
                ),
                Op::Contrast { min, max } => (
                    Op::Contrast {
                        min: around_one(min).max(0.0),
                        max: around_one(max).max(0.0),
                    },
                    st.p,
                ),
                Op::Blur {
                    sigma_min,
                    sigma_max,
                } => (
                    Op::Blur {
                        sigma_min: sigma_min * k,
                        sigma_max: sigma_max * k,
                    },
                    st.p,
                ),
                Op::Noise { std } => (Op::Noise { std: std * k }, st.p),
                Op::Erase { .. } => (st.op, (st.p * k).clamp(0.0, 1.0)),
                Op::Lowres { min, max } => (
                    Op::Lowres {
                        min: around_one(min).clamp(0.05, 1.0),
                        max: around_one(max).clamp(0.05, 1.0),
                    },
                    st.p,
                ),
                Op::Jpeg { min, max } => {
                    let q = |v: f32| (100.0 - (100.0 - v) * k).clamp(1.0, 100.0);
                    (
                        Op::Jpeg {
                            min: q(min),
                            max: q(max),
                        },
                        st.p,
                    )
                }
                Op::MotionBlur { min, max } => (
                    Op::MotionBlur {
                        min: min * k,
                        max: max * k,
                    },
                    st.p,
                ),
                Op::Dim { min, max } => (
                    Op::Dim {
                        min: around_one(min).clamp(0.01, 1.0),
                        max: around_one(max).clamp(0.01, 1.0),
                    },
                    st.p,
                ),
                Op::Shade { max } => (
                    Op::Shade {
                        max: (max * k).min(1.0),
                    },
                    st.p,
                ),
                Op::Cover { .. } => (st.op, (st.p * k).clamp(0.0, 1.0)),
            };
            Step { op, p }
        })
        .collect()
}

#[cfg(test)]
mod scale_tests {
    use super::*;

    #[test]
    fn scaling_multiplies_magnitudes_and_one_is_identity() {
        let steps = vec![
            Step {
                op: Op::Hflip,
                p: 0.5,
            },
            Step {
                op: Op::Rotate { degrees: 10.0 },
                p: 1.0,
            },
            Step {
                op: Op::Contrast { min: 0.8, max: 1.2 },
                p: 1.0,
            },
            Step {
                op: Op::Erase {
                    min_area: 0.02,
                    max_area: 0.1,
                },
                p: 0.4,
            },
        ];
        assert_eq!(scale_steps(&steps, 1.0), steps);
        let half = scale_steps(&steps, 0.5);
        assert_eq!(half[0], steps[0]);
        assert_eq!(half[1].op, Op::Rotate { degrees: 5.0 });
        match half[2].op {
            Op::Contrast { min, max } => {
                assert!((min - 0.9).abs() < 1e-6 && (max - 1.1).abs() < 1e-6)
            }
            ref o => panic!("{o:?}"),
        }
        assert!((half[3].p - 0.2).abs() < 1e-6);
    }
}
