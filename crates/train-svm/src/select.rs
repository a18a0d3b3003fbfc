//! Scoring and choosing on val: happy (label 0) is the positive class ([`predict`],
//! [`metrics_of`]); per (feature, kernel) the grid point with the highest val accuracy is the
//! model (ties: the first in grid order), and the chosen models are predicted on val and test
//! (test is only predicted, never used to choose). The best model overall is the one with the
//! highest val accuracy (ties: the first listed).

use crate::data::FeatureSet;
use crate::grid::GridPoint;
use crate::{Data, KernelKind, SvmError};
use fer_core::metrics::{Metrics, classification_metrics};
use fer_core::schema::metrics::SvmModelMetrics;
use ndarray::Array1;
use std::time::Instant;

/// Class names of the binary labels (0 = happy).
pub const CLASSES: [&str; 2] = ["happy", "not_happy"];

/// Predicted labels: 0 (happy) when the decision is >= 0.
pub fn predict(decision: &Array1<f64>) -> Vec<u8> {
    decision.iter().map(|&d| u8::from(d < 0.0)).collect()
}

/// Metrics of decision values against labels; ROC AUC scores class 0 (happy) by the decision.
pub fn metrics_of(y: &[u8], decision: &Array1<f64>) -> Metrics {
    let scores: Vec<Vec<f64>> = decision.iter().map(|&d| vec![d, -d]).collect();
    classification_metrics(y, &predict(decision), &CLASSES, Some(&scores))
}

/// The chosen model of one (feature, kernel) and its predictions.
pub(crate) struct Chosen {
    /// `raw/rbf`, ...
    pub(crate) name: String,
    /// The feature set's index.
    pub(crate) set: usize,
    pub(crate) kernel: KernelKind,
    /// The chosen grid point's index.
    pub(crate) best: usize,
    /// Grid points of this (feature, kernel) and their summed fit time.
    pub(crate) grid_points: usize,
    pub(crate) grid_seconds: f64,
    /// Decision values on val and test.
    pub(crate) val_d: Array1<f64>,
    pub(crate) test_d: Array1<f64>,
    /// Test features and decisions: seconds, and images per second.
    pub(crate) infer: f64,
    pub(crate) ips: f64,
    pub(crate) mv: Metrics,
    pub(crate) mt: Metrics,
}

/// Of the grid points `idx` (in grid order), the one with the highest val accuracy; on a tie
/// the first keeps it (a later point must be strictly better).
fn winner(grid: &[GridPoint], idx: &[usize]) -> usize {
    let mut best = idx[0];
    for &i in &idx[1..] {
        if grid[i].val_accuracy > grid[best].val_accuracy {
            best = i;
        }
    }
    best
}

/// Choose per feature (in set order) and kernel (in `kernels` order) on val; predict val and
/// test with the chosen model (the test features and decisions are timed: inference).
pub(crate) fn choose(
    grid: &[GridPoint],
    sets: &[FeatureSet],
    kernels: &[KernelKind],
    data: &Data,
) -> Result<Vec<Chosen>, SvmError> {
    let mut chosen = Vec::new();
    for (s, set) in sets.iter().enumerate() {
        for &kernel in kernels {
            let idx: Vec<usize> = (0..grid.len())
                .filter(|&i| grid[i].feature == set.pipeline.kind && grid[i].kernel == kernel)
                .collect();
            let best = winner(grid, &idx);
            let g = &grid[best];
            let name = format!("{}/{}", set.pipeline.kind.as_str(), kernel.as_str());
            let grid_seconds: f64 = idx.iter().map(|&i| grid[i].fit_seconds).sum();
            // Inference: features from the normalized test images, then the decision.
            let t0 = Instant::now();
            let test_x = set.pipeline.transform(&data.test).map_err(SvmError::Data)?;
            let test_d = g.decision.values(&test_x);
            let infer = t0.elapsed().as_secs_f64();
            let val_d = g.decision.values(&set.val);
            let (mv, mt) = (
                metrics_of(&data.val.y, &val_d),
                metrics_of(&data.test.y, &test_d),
            );
            let ips = data.test.n as f64 / infer.max(1e-9);
            chosen.push(Chosen {
                name,
                set: s,
                kernel,
                best,
                grid_points: idx.len(),
                grid_seconds,
                val_d,
                test_d,
                infer,
                ips,
                mv,
                mt,
            });
        }
    }
    Ok(chosen)
}

/// The best model by val accuracy, as written in `metrics.json`'s models (ties: the first
/// listed).
pub(crate) fn best_model(models: &[SvmModelMetrics]) -> usize {
    // A NaN accuracy ranks below every number (it never wins, and loses every comparison).
    let acc = |m: &SvmModelMetrics| Some(m.val.accuracy).filter(|a| !a.is_nan());
    let mut best = 0;
    for (i, m) in models.iter().enumerate() {
        if acc(m) > acc(&models[best]) {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn happy_is_the_positive_class() {
        let d = Array1::from(vec![2.0, 0.0, -1.0, -3.0]);
        assert_eq!(predict(&d), vec![0, 0, 1, 1]);
        let m = metrics_of(&[0, 0, 1, 1], &d);
        assert_eq!(m.accuracy, 1.0);
        assert_eq!(m.roc_auc, Some(1.0));
    }
}
