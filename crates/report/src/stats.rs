//! The statistics behind the report's "honest uncertainty": percentile bootstrap confidence
//! intervals, McNemar's test for two classifiers on the same images, and the alert figures at
//! a threshold (the threshold itself is chosen in `crate::operating`).

use crate::load::Pred;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A point estimate with its bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Ci {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Linear interpolation between order statistics (numpy's default).
    let pos = q * (sorted.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos - pos.floor());
    let j = (i + 1).min(sorted.len() - 1);
    sorted[i] * (1.0 - f) + sorted[j] * f
}

/// Percentile bootstrap of several statistics over the same `n` items: every resample draws
/// `n` indices with replacement (seeded) and evaluates each statistic on them, so intervals of
/// different models use the same resamples (paired). `stat(k, idx)` is statistic `k` on the
/// resampled indices; `None` (e.g. no alerts in a resample) skips that value.
pub fn bootstrap(
    n: usize,
    stats: usize,
    resamples: usize,
    seed: u64,
    confidence: f64,
    stat: impl Fn(usize, &[usize]) -> Option<f64>,
) -> Vec<Ci> {
    let all: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut values: Vec<Vec<f64>> = vec![Vec::with_capacity(resamples); stats];
    let mut idx = vec![0usize; n];
    for _ in 0..resamples {
        for v in idx.iter_mut() {
            *v = rng.random_range(0..n.max(1));
        }
        for (k, vals) in values.iter_mut().enumerate() {
            if let Some(x) = stat(k, &idx) {
                vals.push(x);
            }
        }
    }
    let alpha = (1.0 - confidence) / 2.0;
    values
        .into_iter()
        .enumerate()
        .map(|(k, mut v)| {
            v.sort_by(f64::total_cmp);
            Ci {
                value: stat(k, &all).unwrap_or(f64::NAN),
                lo: quantile(&v, alpha),
                hi: quantile(&v, 1.0 - alpha),
            }
        })
        .collect()
}

/// McNemar's test of two classifiers on the same images.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct McNemar {
    /// Images only the first model got right.
    pub only_a: u64,
    /// Images only the second model got right.
    pub only_b: u64,
    /// Both right, both wrong.
    pub both_right: u64,
    pub both_wrong: u64,
    /// Two-sided exact (binomial) p-value.
    pub p_value: f64,
}

fn ln_choose(n: u64, k: u64) -> f64 {
    let lf = |m: u64| (1..=m).map(|i| (i as f64).ln()).sum::<f64>();
    lf(n) - lf(k) - lf(n - k)
}

/// Exact McNemar test (two-sided binomial test of the discordant pairs at p = 1/2).
pub fn mcnemar(a_right: &[bool], b_right: &[bool]) -> McNemar {
    let mut t = McNemar {
        only_a: 0,
        only_b: 0,
        both_right: 0,
        both_wrong: 0,
        p_value: 1.0,
    };
    for (&a, &b) in a_right.iter().zip(b_right) {
        match (a, b) {
            (true, false) => t.only_a += 1,
            (false, true) => t.only_b += 1,
            (true, true) => t.both_right += 1,
            (false, false) => t.both_wrong += 1,
        }
    }
    let n = t.only_a + t.only_b;
    let k = t.only_a.min(t.only_b);
    if n > 0 {
        let tail: f64 = (0..=k)
            .map(|i| (ln_choose(n, i) - n as f64 * std::f64::consts::LN_2).exp())
            .sum();
        t.p_value = (2.0 * tail).min(1.0);
    }
    t
}

// The alert figures and the threshold rule are part of `recommendation.json`'s schema.
pub use fer_schema::recommendation::{AlertStats, ThresholdRule};

/// Label of "not happy" in the binary labels.
pub const NOT_HAPPY: u8 = fer_core::classes::NOT_HAPPY_LABEL;

pub fn alert_stats(preds: &[Pred], idx: Option<&[usize]>, threshold: f64) -> AlertStats {
    let (mut tp, mut fp, mut fneg, mut tn) = (0u64, 0u64, 0u64, 0u64);
    let mut visit = |p: &Pred| {
        let alert = p.score < threshold;
        match (alert, p.label == NOT_HAPPY) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fneg += 1,
            (false, false) => tn += 1,
        }
    };
    match idx {
        Some(ix) => ix.iter().for_each(|&i| visit(&preds[i])),
        None => preds.iter().for_each(&mut visit),
    }
    let d = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let n = tp + fp + fneg + tn;
    AlertStats {
        threshold,
        alerts: tp + fp,
        n,
        not_happy: tp + fneg,
        true_alerts: tp,
        precision: d(tp, tp + fp),
        recall: d(tp, tp + fneg),
        accuracy: d(tp + tn, n),
        balanced_accuracy: (d(tp, tp + fneg) + d(tn, tn + fp)) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    fn p(label: u8, score: f64) -> Pred {
        Pred {
            row: 0,
            id: String::new(),
            label,
            score,
            pred: u8::from(score < 0.5),
        }
    }

    #[test]
    fn alert_stats_count_alerts_below_the_threshold() {
        // Not happy (1) scores low; one happy image scores low too.
        let val = vec![p(1, 0.1), p(0, 0.2), p(1, 0.3), p(1, 0.8), p(0, 0.9)];
        let s = alert_stats(&val, None, 0.5);
        assert_eq!((s.alerts, s.true_alerts, s.not_happy, s.n), (3, 2, 3, 5));
        assert_abs_diff_eq!(s.precision, 2.0 / 3.0);
        assert_abs_diff_eq!(s.recall, 2.0 / 3.0);
        assert_abs_diff_eq!(s.balanced_accuracy, (2.0 / 3.0 + 0.5) / 2.0);
        // A resample: indices 0, 0, 4.
        let r = alert_stats(&val, Some(&[0, 0, 4]), 0.5);
        assert_eq!((r.alerts, r.n), (2, 3));
    }

    #[test]
    fn mcnemar_matches_the_binomial_test() {
        // scipy.stats.binomtest(2, 12, 0.5).pvalue = 0.03857421875
        let a: Vec<bool> = (0..20).map(|i| !(10..18).contains(&i)).collect();
        let b: Vec<bool> = (0..20).map(|i| i >= 8).collect();
        let t = mcnemar(&a, &b);
        assert_eq!((t.only_a, t.only_b), (8, 8));
        assert_abs_diff_eq!(t.p_value, 1.0);
        let a = [true; 12];
        let mut b = vec![false; 12];
        b[0] = true;
        b[1] = true;
        let a2: Vec<bool> = a.iter().zip(&b).map(|(x, y)| *x && !*y).collect();
        let t = mcnemar(&a2, &b);
        assert_eq!((t.only_a, t.only_b), (10, 2));
        assert_abs_diff_eq!(t.p_value, 0.03857421875, epsilon = 1e-12);
    }

    #[test]
    fn bootstrap_interval_brackets_the_estimate_and_is_seeded() {
        let right: Vec<bool> = (0..400).map(|i| i % 5 != 0).collect();
        let acc = |_: usize, idx: &[usize]| {
            Some(idx.iter().filter(|&&i| right[i]).count() as f64 / idx.len() as f64)
        };
        let a = bootstrap(400, 1, 1000, 3, 0.95, acc);
        let b = bootstrap(400, 1, 1000, 3, 0.95, acc);
        assert_eq!(a, b);
        assert_abs_diff_eq!(a[0].value, 0.8);
        // Normal approximation: 1.96 * sqrt(0.8 * 0.2 / 400) = 0.0392.
        assert!(
            (a[0].hi - a[0].lo - 2.0 * 0.0392).abs() < 0.015,
            "{:?}",
            a[0]
        );
    }
}
