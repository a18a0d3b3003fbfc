//! Calibration of p(happy): the fits (temperature scaling for the CNNs, Platt scaling for the
//! SVMs), the figures (NLL, ECE, Brier, the reliability bins) and the records of
//! `calibration.json` ([`crate::schema::calibration`]). Pure functions: reads and writes
//! nothing. Shared by the stages that fit (train-cnn, tune, train-svm: on **val** only), the
//! report (which measures the maps on test) and predict (which applies them).
//!
//! Conventions: "positive" is happy (label 0, the study's encoding); every probability is
//! p(happy).
//! - Probabilities are clamped to `[P_CLAMP, 1 - P_CLAMP]` (1e-7, about f32's resolution near
//!   1, which is what a softmax gives) before a logarithm or a logit: a p(happy) of exactly 1
//!   costs `-ln(1e-7) = 16.1` nats when wrong, not infinity.
//! - NLL: the mean of `-ln p` of the true class, natural log.
//! - Brier: the mean of `(p - y)^2`, y = 1 for happy.
//! - ECE: [`ECE_BINS`] (15) **equal-width** bins of p(happy) over [0, 1] (the last one closed,
//!   `[14/15, 1]`); `sum over bins of (n_bin / n) * |mean p(happy) - share happy|`. This is the
//!   ECE of the happy probability (for two classes, the usual top-label ECE bins `max(p, 1-p)`
//!   instead; both are 0 for a calibrated model).

use fer_schema::calibration::{CalibrationFile, Method, ModelCalibration, ScoreKind, Scores};
pub use fer_schema::calibration::{P_CLAMP, apply, apply_temperature, logit, platt_p, sigmoid};

/// Equal-width bins of the ECE and of the report's reliability diagrams.
pub const ECE_BINS: usize = 15;
/// The temperatures searched: `[T_MIN, T_MAX]` (a fit at either end is refused).
pub const T_MIN: f64 = 0.01;
pub const T_MAX: f64 = 100.0;

/// Why a map could not be fitted. Saved as an `uncalibrated` record's reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalibrationError {
    #[error("no rows to fit on")]
    Empty,
    #[error("{scores} scores but {labels} labels")]
    Lengths { scores: usize, labels: usize },
    #[error("score {value} of row {row} is not a finite number")]
    NotFinite { row: usize, value: f64 },
    #[error(
        "only one class among the {n} rows ({happy} happy): a calibration map needs both classes"
    )]
    OneClass { n: usize, happy: usize },
    #[error(
        "the NLL keeps falling towards the temperature {bound} (the end of [{T_MIN}, {T_MAX}]): \
         the scores are (nearly) separated or carry no information, no temperature fits"
    )]
    TemperatureAtBound { bound: f64 },
    #[error(
        "Platt slope a = {a:.4} >= 0: higher decisions would mean less happy, a map that reverses \
         the model's order"
    )]
    PlattReversed { a: f64 },
    #[error("the Platt fit did not give finite parameters (a = {a}, b = {b})")]
    PlattNotFinite { a: f64, b: f64 },
}

/// `ln(1 + exp(x))`, without overflow.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Mean negative log-likelihood of p(happy) (`happy[i]`: row i is happy).
pub fn nll(p: &[f64], happy: &[bool]) -> f64 {
    let n = p.len().min(happy.len());
    if n == 0 {
        return f64::NAN;
    }
    p.iter()
        .zip(happy)
        .map(|(&p, &h)| {
            let p = p.clamp(P_CLAMP, 1.0 - P_CLAMP);
            -(if h { p } else { 1.0 - p }).ln()
        })
        .sum::<f64>()
        / n as f64
}

/// Brier score: the mean of `(p - y)^2`.
pub fn brier(p: &[f64], happy: &[bool]) -> f64 {
    let n = p.len().min(happy.len());
    if n == 0 {
        return f64::NAN;
    }
    p.iter()
        .zip(happy)
        .map(|(&p, &h)| (p - if h { 1.0 } else { 0.0 }).powi(2))
        .sum::<f64>()
        / n as f64
}

/// One equal-width bin of p(happy).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bin {
    pub lo: f64,
    pub hi: f64,
    pub n: usize,
    /// Mean p(happy) in the bin (NaN when empty).
    pub mean_p: f64,
    /// Share of happy rows in the bin (NaN when empty).
    pub happy: f64,
}

/// `bins` equal-width bins of p(happy) over [0, 1] (the last one closed): the reliability
/// diagram's points and the ECE's terms.
pub fn reliability(p: &[f64], happy: &[bool], bins: usize) -> Vec<Bin> {
    let bins = bins.max(1);
    let (mut n, mut sp, mut sh) = (vec![0usize; bins], vec![0.0; bins], vec![0.0; bins]);
    for (&p, &h) in p.iter().zip(happy) {
        let i = ((p.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1);
        n[i] += 1;
        sp[i] += p;
        sh[i] += if h { 1.0 } else { 0.0 };
    }
    (0..bins)
        .map(|i| Bin {
            lo: i as f64 / bins as f64,
            hi: (i + 1) as f64 / bins as f64,
            n: n[i],
            mean_p: sp[i] / n[i] as f64,
            happy: sh[i] / n[i] as f64,
        })
        .collect()
}

/// Expected calibration error over [`ECE_BINS`] equal-width bins of p(happy).
pub fn ece(p: &[f64], happy: &[bool]) -> f64 {
    let n = p.len().min(happy.len());
    if n == 0 {
        return f64::NAN;
    }
    reliability(p, happy, ECE_BINS)
        .iter()
        .filter(|b| b.n > 0)
        .map(|b| b.n as f64 / n as f64 * (b.mean_p - b.happy).abs())
        .sum()
}

/// NLL, ECE and Brier of p(happy).
pub fn scores(p: &[f64], happy: &[bool]) -> Scores {
    Scores {
        nll: nll(p, happy),
        ece: ece(p, happy),
        brier: brier(p, happy),
    }
}

/// The rows are usable for a fit: as many labels as scores, at least one, every score finite,
/// both classes. Returns the happy count.
fn check(x: &[f64], happy: &[bool]) -> Result<usize, CalibrationError> {
    if x.len() != happy.len() {
        return Err(CalibrationError::Lengths {
            scores: x.len(),
            labels: happy.len(),
        });
    }
    if x.is_empty() {
        return Err(CalibrationError::Empty);
    }
    if let Some((row, &value)) = x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(CalibrationError::NotFinite { row, value });
    }
    let h = happy.iter().filter(|&&h| h).count();
    if h == 0 || h == happy.len() {
        return Err(CalibrationError::OneClass {
            n: happy.len(),
            happy: h,
        });
    }
    Ok(h)
}

/// Fit the temperature `T` of [`apply_temperature`] to p(happy) `p` and labels `happy` by
/// minimizing the mean NLL.
///
/// Rules:
/// - both classes must be present and every p finite ([`CalibrationError`] otherwise);
/// - `p` is turned into log-odds `z = logit(p)` (clamped, see the module doc); the NLL of
///   `sigmoid(z / T)` is convex in `1 / T`, so it has one minimum along `u = ln T`;
/// - golden-section search on `u` over `[ln T_MIN, ln T_MAX]` to a width of 1e-9;
/// - a minimum within 1e-6 of either end is refused ([`CalibrationError::TemperatureAtBound`]):
///   separated scores (every log-odds on its right side) would drive `T` to 0, scores that say
///   nothing would drive it to infinity; neither is a calibration.
///
/// `T > 1` softens an over-confident model, `T < 1` sharpens an under-confident one; `T = 1`
/// is always inside the range searched, so the fitted NLL is never above the unscaled one.
pub fn fit_temperature(p: &[f64], happy: &[bool]) -> Result<f64, CalibrationError> {
    check(p, happy)?;
    let z: Vec<f64> = p.iter().map(|&p| logit(p)).collect();
    // NLL of sigmoid(z / T): softplus(-z/T) for a happy row, softplus(z/T) otherwise.
    let f = |u: f64| -> f64 {
        let beta = (-u).exp();
        z.iter()
            .zip(happy)
            .map(|(&z, &h)| softplus(if h { -beta * z } else { beta * z }))
            .sum::<f64>()
    };
    let (lo0, hi0) = (T_MIN.ln(), T_MAX.ln());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut lo, mut hi) = (lo0, hi0);
    let (mut c, mut d) = (hi - g * (hi - lo), lo + g * (hi - lo));
    let (mut fc, mut fd) = (f(c), f(d));
    while hi - lo > 1e-9 {
        if fc <= fd {
            hi = d;
            (d, fd) = (c, fc);
            c = hi - g * (hi - lo);
            fc = f(c);
        } else {
            lo = c;
            (c, fc) = (d, fd);
            d = lo + g * (hi - lo);
            fd = f(d);
        }
    }
    let u = (lo + hi) / 2.0;
    if u - lo0 < 1e-6 {
        return Err(CalibrationError::TemperatureAtBound { bound: T_MIN });
    }
    if hi0 - u < 1e-6 {
        return Err(CalibrationError::TemperatureAtBound { bound: T_MAX });
    }
    Ok(u.exp())
}

/// Platt's sigmoid fit `p(happy) = 1 / (1 + exp(a d + b))` to decision values `d` (Lin, Lin
/// and Weng 2007: Newton's method with backtracking on the regularized targets
/// `(n+ + 1) / (n+ + 2)` and `1 / (n- + 2)`, which keep a separated set finite).
///
/// Rules: both classes, finite decisions ([`CalibrationError`] otherwise); at most 100 Newton
/// steps, stopping when the gradient is below 1e-5 or the line search cannot improve (the
/// last parameters are kept, as in the reference); a slope `a >= 0` (higher decisions would
/// mean less happy) or non-finite parameters are errors, never a silent default.
pub fn fit_platt(d: &[f64], happy: &[bool]) -> Result<(f64, f64), CalibrationError> {
    let np = check(d, happy)? as f64;
    let nn = happy.len() as f64 - np;
    let (hi, lo) = ((np + 1.0) / (np + 2.0), 1.0 / (nn + 2.0));
    let t: Vec<f64> = happy.iter().map(|&p| if p { hi } else { lo }).collect();
    let (mut a, mut b) = (0.0, ((nn + 1.0) / (np + 1.0)).ln());
    let f = |a: f64, b: f64| -> f64 {
        d.iter()
            .zip(&t)
            .map(|(&x, &t)| {
                let z = x * a + b;
                if z >= 0.0 {
                    t * z + (-z).exp().ln_1p()
                } else {
                    (t - 1.0) * z + z.exp().ln_1p()
                }
            })
            .sum()
    };
    let mut fval = f(a, b);
    for _ in 0..100 {
        let (mut h11, mut h22, mut h21, mut g1, mut g2) = (1e-12, 1e-12, 0.0, 0.0, 0.0);
        for (&x, &t) in d.iter().zip(&t) {
            let z = x * a + b;
            // p = 1 / (1 + exp(z)), q = 1 - p.
            let p = sigmoid(-z);
            let q = 1.0 - p;
            let d2 = p * q;
            h11 += x * x * d2;
            h22 += d2;
            h21 += x * d2;
            let d1 = t - p;
            g1 += x * d1;
            g2 += d1;
        }
        if g1.abs() < 1e-5 && g2.abs() < 1e-5 {
            break;
        }
        let det = h11 * h22 - h21 * h21;
        let (da, db) = (-(h22 * g1 - h21 * g2) / det, -(-h21 * g1 + h11 * g2) / det);
        let gd = g1 * da + g2 * db;
        let mut step = 1.0;
        while step >= 1e-10 {
            let (na, nb) = (a + step * da, b + step * db);
            let nf = f(na, nb);
            if nf < fval + 1e-4 * step * gd {
                (a, b, fval) = (na, nb, nf);
                break;
            }
            step /= 2.0;
        }
        if step < 1e-10 {
            break;
        }
    }
    if !(a.is_finite() && b.is_finite()) {
        return Err(CalibrationError::PlattNotFinite { a, b });
    }
    if a >= 0.0 {
        return Err(CalibrationError::PlattReversed { a });
    }
    Ok((a, b))
}

/// The `calibration.json` record of a CNN: temperature scaling fitted on its **val** p(happy)
/// `p` (labels `happy`), or an `uncalibrated` record with the reason.
pub fn cnn_record(model: &str, p: &[f64], happy: &[bool]) -> ModelCalibration {
    record(model, p, happy, ScoreKind::PHappy, || {
        fit_temperature(p, happy).map(|temperature| Method::Temperature { temperature })
    })
}

/// The `calibration.json` record of an SVM: Platt scaling fitted on its **val** decisions
/// `d`, or an `uncalibrated` record with the reason.
pub fn svm_record(model: &str, d: &[f64], happy: &[bool]) -> ModelCalibration {
    record(model, d, happy, ScoreKind::SvmDecision, || {
        fit_platt(d, happy).map(|(a, b)| Method::Platt { a, b })
    })
}

fn record(
    model: &str,
    x: &[f64],
    happy: &[bool],
    kind: ScoreKind,
    fit: impl FnOnce() -> Result<Method, CalibrationError>,
) -> ModelCalibration {
    let method = fit().unwrap_or_else(|e| Method::Uncalibrated {
        reason: e.to_string(),
    });
    let measurable = x.len() == happy.len() && !x.is_empty() && x.iter().all(|v| v.is_finite());
    let probs = |m: &Method| -> Vec<f64> { x.iter().map(|&v| apply(m, kind, v)).collect() };
    let raw = Method::Uncalibrated {
        reason: String::new(),
    };
    let before = measurable.then(|| scores(&probs(&raw), happy));
    let after = match &method {
        Method::Uncalibrated { .. } => None,
        m => measurable.then(|| scores(&probs(m), happy)),
    };
    ModelCalibration {
        model: model.to_string(),
        method,
        n: x.len() as u64,
        n_happy: happy.iter().filter(|&&h| h).count() as u64,
        before,
        after,
    }
}

/// A whole `calibration.json` (fitted on val) of `records` of score kind `kind`.
pub fn file(kind: ScoreKind, records: Vec<ModelCalibration>) -> CalibrationFile {
    CalibrationFile {
        score: kind,
        fitted_on: "val".into(),
        ece_bins: ECE_BINS,
        models: records,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_a_perfect_and_a_constant_model() {
        let happy = [true, false, true, false];
        let s = scores(&[1.0, 0.0, 1.0, 0.0], &happy);
        assert!(s.nll < 1e-6 && s.ece == 0.0 && s.brier == 0.0, "{s:?}");
        let s = scores(&[0.5; 4], &happy);
        assert!((s.nll - 2f64.ln()).abs() < 1e-12);
        assert!(s.ece.abs() < 1e-12 && (s.brier - 0.25).abs() < 1e-12);
        // Always 0.9 where half are happy: ECE 0.4, in bin 13 (0.9 * 15 = 13.5).
        let s = scores(&[0.9; 4], &happy);
        assert!((s.ece - 0.4).abs() < 1e-12, "{s:?}");
        let bins = reliability(&[0.9; 4], &happy, ECE_BINS);
        assert_eq!(bins.len(), 15);
        assert_eq!(bins[13].n, 4);
        // p = 1 lands in the last bin.
        assert_eq!(reliability(&[1.0], &[true], ECE_BINS)[14].n, 1);
    }

    #[test]
    fn apply_maps_as_documented() {
        assert!((apply_temperature(0.5, 3.0) - 0.5).abs() < 1e-12);
        let p = apply_temperature(0.9, 2.0);
        assert!((logit(p) - logit(0.9) / 2.0).abs() < 1e-9);
        assert!((platt_p(-2.0, 0.0, 1.0) - sigmoid(2.0)).abs() < 1e-12);
        let u = Method::Uncalibrated { reason: "x".into() };
        assert_eq!(apply(&u, ScoreKind::PHappy, 0.7), 0.7);
        assert_eq!(apply(&u, ScoreKind::SvmDecision, 0.0), 0.5);
        assert_eq!(platt_p(-1.0, 0.0, 1e6), 1.0);
        assert_eq!(platt_p(-1.0, 0.0, -1e6), 0.0);
    }

    #[test]
    fn bad_rows_are_errors() {
        assert_eq!(fit_temperature(&[], &[]), Err(CalibrationError::Empty));
        assert!(matches!(
            fit_platt(&[0.1, f64::NAN], &[true, false]),
            Err(CalibrationError::NotFinite { row: 1, .. })
        ));
        assert!(matches!(
            fit_temperature(&[0.1], &[true, false]),
            Err(CalibrationError::Lengths { .. })
        ));
        // Separated scores drive T to 0: refused, not clamped.
        assert!(matches!(
            fit_temperature(&[0.9, 0.8, 0.2, 0.1], &[true, true, false, false]),
            Err(CalibrationError::TemperatureAtBound { bound: T_MIN })
        ));
    }
}
