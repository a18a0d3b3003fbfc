//! Scoring and choosing on val: happy (label 0) is the positive class ([`predict`],
//! [`metrics_of`]); per (feature, kernel) the grid point with the highest val accuracy is the
//! model (ties: the first in grid order), and the chosen models are predicted on val and test
//! (test is only predicted, never used to choose). The best model overall is the one with the
//! highest val accuracy (ties: the first listed).
//!
//! Seven classes ([`metrics_of_tasks`]): the predicted class is the argmax of the seven
//! one-vs-rest decisions (the first class on a tie), ROC AUC is the macro one-vs-rest AUC of
//! the seven decisions (what `fer_eval::metrics::Metrics` says of k classes, as the CNNs'), and
//! both choices (per (feature, kernel), and the best model) go by val **macro F1** instead of
//! accuracy (ties as above).

use crate::data::FeatureSet;
use crate::grid::GridPoint;
use crate::{Data, KernelKind, SvmError};
use fer_eval::metrics::{Metrics, classification_metrics};
use fer_models::svm::{Decision, argmax_rows, decision_columns};
use fer_schema::metrics::SvmModelMetrics;
use ndarray::{Array1, Array2};
use std::time::Instant;

/// Predicted labels: 0 (happy) when the decision is >= 0.
pub fn predict(decision: &Array1<f64>) -> Vec<u8> {
    decision.iter().map(|&d| u8::from(d < 0.0)).collect()
}

/// Metrics of decision values against labels; ROC AUC scores class 0 (happy) by the decision.
pub fn metrics_of(y: &[u8], decision: &Array1<f64>) -> Metrics {
    let scores: Vec<Vec<f64>> = decision.iter().map(|&d| vec![d, -d]).collect();
    let binary = fer_core::Classes::binary();
    classification_metrics(y, &predict(decision), &binary.strs(), Some(&scores))
}

/// Decision values of a grid point's decisions (one per task) on features `x`: rows x tasks.
pub(crate) fn task_values(decisions: &[Decision], x: &Array2<f64>) -> Array2<f64> {
    match decisions {
        [one] => decision_columns(one, &[], x),
        many => decision_columns(&many[0], many, x),
    }
}

/// Predicted labels from task values (rows x tasks): binary (one column), happy (0) when the
/// decision is >= 0; seven classes, the argmax class.
pub(crate) fn predict_tasks(v: &Array2<f64>) -> Vec<u8> {
    if v.ncols() == 1 {
        predict(&v.column(0).to_owned())
    } else {
        argmax_rows(v)
    }
}

/// Per-class scores of task values for ROC AUC: binary `[d, -d]` (class 0 = happy scored by
/// the decision), seven classes the row of decisions.
pub(crate) fn task_scores(v: &Array2<f64>) -> Vec<Vec<f64>> {
    if v.ncols() == 1 {
        v.column(0).iter().map(|&d| vec![d, -d]).collect()
    } else {
        v.outer_iter().map(|r| r.to_vec()).collect()
    }
}

/// Metrics of task values (rows x tasks) against labels: binary as [`metrics_of`]; seven
/// classes of the argmax, with the macro one-vs-rest ROC AUC of the decisions.
pub(crate) fn metrics_of_tasks(data: &Data, y: &[u8], v: &Array2<f64>) -> Metrics {
    if v.ncols() == 1 {
        return metrics_of(y, &v.column(0).to_owned());
    }
    let scores = task_scores(v);
    classification_metrics(y, &predict_tasks(v), &data.names(), Some(&scores))
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
    /// Decision values on val and test, rows x tasks (binary: one column; seven classes: one
    /// per class).
    pub(crate) val_v: Array2<f64>,
    pub(crate) test_v: Array2<f64>,
    /// The happy decision (binary: the decision; seven classes: happy's one-vs-rest) on val
    /// and test.
    pub(crate) val_d: Array1<f64>,
    pub(crate) test_d: Array1<f64>,
    /// Test features and decisions: seconds, and images per second.
    pub(crate) infer: f64,
    pub(crate) ips: f64,
    pub(crate) mv: Metrics,
    pub(crate) mt: Metrics,
}

/// Of the grid points `idx` (in grid order), the one with the highest val accuracy (`macro_f1`:
/// val macro F1); on a tie the first keeps it (a later point must be strictly better).
fn winner(grid: &[GridPoint], idx: &[usize], macro_f1: bool) -> usize {
    let score = |g: &GridPoint| {
        if macro_f1 {
            g.val_macro_f1
        } else {
            g.val_accuracy
        }
    };
    let mut best = idx[0];
    for &i in &idx[1..] {
        if score(&grid[i]) > score(&grid[best]) {
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
            let best = winner(grid, &idx, data.one_vs_rest());
            let g = &grid[best];
            let name = format!("{}/{}", set.pipeline.kind.as_str(), kernel.as_str());
            let grid_seconds: f64 = idx.iter().map(|&i| grid[i].fit_seconds).sum();
            // Inference: features from the normalized test images, then the decision.
            let t0 = Instant::now();
            let test_x = set.pipeline.transform(&data.test).map_err(SvmError::Data)?;
            let test_v = task_values(&g.decisions, &test_x);
            let infer = t0.elapsed().as_secs_f64();
            let val_v = task_values(&g.decisions, &set.val);
            let (mv, mt) = (
                metrics_of_tasks(data, &data.val.y, &val_v),
                metrics_of_tasks(data, &data.test.y, &test_v),
            );
            let h = data.happy_task();
            let (val_d, test_d) = (val_v.column(h).to_owned(), test_v.column(h).to_owned());
            let ips = data.test.n as f64 / infer.max(1e-9);
            chosen.push(Chosen {
                name,
                set: s,
                kernel,
                best,
                grid_points: idx.len(),
                grid_seconds,
                val_v,
                test_v,
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

/// The best model by val accuracy (`macro_f1`: val macro F1), as written in `metrics.json`'s
/// models (ties: the first listed).
pub(crate) fn best_model(models: &[SvmModelMetrics], macro_f1: bool) -> usize {
    // A NaN score ranks below every number (it never wins, and loses every comparison).
    let acc = |m: &SvmModelMetrics| {
        Some(if macro_f1 {
            m.val.macro_avg.f1
        } else {
            m.val.accuracy
        })
        .filter(|a| !a.is_nan())
    };
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
