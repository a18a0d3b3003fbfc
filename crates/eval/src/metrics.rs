//! Classification metrics shared by the training stages, in scikit-learn's terms: computed
//! here, recorded in `metrics.json` as `fer_schema::metrics`' types.

use fer_core::tensors::Truths;
pub use fer_schema::metrics::{Average, ByTruth, ClassReport, Metrics};

/// [`by_truth`] of predictions of a split with these truths.
pub fn score_truths(
    t: &Truths,
    pred: &[u8],
    class_names: &[&str],
    scores: Option<&[Vec<f64>]>,
) -> ByTruth {
    by_truth(
        &t.fer2013,
        &t.ferplus,
        fer_core::tensors::NO_LABEL,
        pred,
        class_names,
        scores,
    )
}

/// [`ByTruth`] of predictions `pred` (with per-class `scores` for ROC AUC) against a split's
/// truths (`fer_core::tensors::Truths`: `fer2013`, and `ferplus` with `no_label` for none;
/// [`score_truths`] on a split's `Truths`).
pub fn by_truth(
    fer2013: &[u8],
    ferplus: &[u8],
    no_label: u8,
    pred: &[u8],
    class_names: &[&str],
    scores: Option<&[Vec<f64>]>,
) -> ByTruth {
    let keep: Vec<usize> = (0..ferplus.len())
        .filter(|&i| ferplus[i] != no_label)
        .collect();
    let pick = |v: &[u8]| keep.iter().map(|&i| v[i]).collect::<Vec<u8>>();
    let kept_scores: Option<Vec<Vec<f64>>> =
        scores.map(|s| keep.iter().map(|&i| s[i].clone()).collect());
    let (fp, f13) = (pick(ferplus), pick(fer2013));
    let differ = fp.iter().zip(&f13).filter(|(a, b)| a != b).count();
    ByTruth {
        fer2013: classification_metrics(fer2013, pred, class_names, scores),
        ferplus: classification_metrics(&fp, &pick(pred), class_names, kept_scores.as_deref()),
        ferplus_excluded: (ferplus.len() - keep.len()) as u64,
        disagreement: div(differ as f64, keep.len() as f64),
        ferplus_ceiling_balanced_accuracy: classification_metrics(&f13, &fp, class_names, None)
            .balanced_accuracy,
    }
}

fn div(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

/// Metrics from true and predicted labels (`0..class_names.len()`), with optional per-class
/// scores (`scores[i][c]`, e.g. probabilities) for ROC AUC.
pub fn classification_metrics(
    y_true: &[u8],
    y_pred: &[u8],
    class_names: &[&str],
    scores: Option<&[Vec<f64>]>,
) -> Metrics {
    assert_eq!(
        y_true.len(),
        y_pred.len(),
        "y_true and y_pred lengths differ"
    );
    let k = class_names.len();
    let mut cm = vec![vec![0u64; k]; k];
    for (&t, &p) in y_true.iter().zip(y_pred) {
        cm[t as usize][p as usize] += 1;
    }
    let n = y_true.len() as u64;
    let correct: u64 = (0..k).map(|i| cm[i][i]).sum();
    let mut classes = Vec::with_capacity(k);
    for c in 0..k {
        let tp = cm[c][c] as f64;
        let support: u64 = cm[c].iter().sum();
        let predicted: u64 = (0..k).map(|r| cm[r][c]).sum();
        let precision = div(tp, predicted as f64);
        let recall = div(tp, support as f64);
        classes.push(ClassReport {
            name: class_names[c].to_string(),
            precision,
            recall,
            f1: div(2.0 * precision * recall, precision + recall),
            support,
        });
    }
    let present: Vec<&ClassReport> = classes.iter().filter(|c| c.support > 0).collect();
    let balanced_accuracy = div(present.iter().map(|c| c.recall).sum(), present.len() as f64);
    let avg = |w: &dyn Fn(&ClassReport) -> f64| {
        let tw: f64 = classes.iter().map(w).sum();
        Average {
            precision: div(classes.iter().map(|c| w(c) * c.precision).sum(), tw),
            recall: div(classes.iter().map(|c| w(c) * c.recall).sum(), tw),
            f1: div(classes.iter().map(|c| w(c) * c.f1).sum(), tw),
            support: n,
        }
    };
    let macro_avg = avg(&|_| 1.0);
    let weighted_avg = avg(&|c| c.support as f64);
    let roc_auc = scores.and_then(|s| {
        assert_eq!(s.len(), y_true.len(), "scores length differs");
        let per_class: Vec<f64> = (0..k)
            .filter_map(|c| {
                let pos: Vec<bool> = y_true.iter().map(|&t| t as usize == c).collect();
                let sc: Vec<f64> = s.iter().map(|r| r[c]).collect();
                roc_auc(&pos, &sc)
            })
            .collect();
        if k == 2 {
            per_class.first().copied()
        } else if per_class.is_empty() {
            None
        } else {
            Some(per_class.iter().sum::<f64>() / per_class.len() as f64)
        }
    });
    Metrics {
        n,
        accuracy: div(correct as f64, n as f64),
        balanced_accuracy,
        classes,
        macro_avg,
        weighted_avg,
        confusion: cm,
        roc_auc,
    }
}

/// Area under the ROC curve for `scores` (higher = more positive), ties counted half
/// (the Mann-Whitney U statistic). `None` when one class is absent.
pub fn roc_auc(positive: &[bool], scores: &[f64]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let n_pos = positive.iter().filter(|&&p| p).count() as f64;
    let n_neg = positive.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return None;
    }
    // Sum of (average) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &t in &idx[i..=j] {
            if positive[t] {
                rank_sum += avg_rank;
            }
        }
        i = j + 1;
    }
    Some((rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
}

/// ROC curve points `(false positive rate, true positive rate, threshold)`, from the highest
/// threshold down, starting at (0, 0).
pub fn roc_curve(positive: &[bool], scores: &[f64]) -> Vec<(f64, f64, f64)> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let n_pos = positive.iter().filter(|&&p| p).count().max(1) as f64;
    let n_neg = (positive.len() - positive.iter().filter(|&&p| p).count()).max(1) as f64;
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut out = vec![(0.0, 0.0, f64::INFINITY)];
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        while i < idx.len() && scores[idx[i]] == s {
            if positive[idx[i]] {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        out.push((fp / n_neg, tp / n_pos, s));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn binary_report_matches_hand_computation() {
        // 0 = happy, 1 = not happy
        let t = [0, 0, 0, 1, 1, 1, 1, 1];
        let p = [0, 0, 1, 1, 1, 1, 0, 1];
        let m = classification_metrics(&t, &p, &["happy", "not_happy"], None);
        assert_eq!(m.confusion, vec![vec![2, 1], vec![1, 4]]);
        assert_abs_diff_eq!(m.accuracy, 6.0 / 8.0);
        assert_abs_diff_eq!(m.classes[0].precision, 2.0 / 3.0);
        assert_abs_diff_eq!(m.classes[0].recall, 2.0 / 3.0);
        assert_abs_diff_eq!(m.classes[1].recall, 4.0 / 5.0);
        assert_abs_diff_eq!(m.balanced_accuracy, (2.0 / 3.0 + 0.8) / 2.0);
        assert_abs_diff_eq!(m.macro_avg.f1, (2.0 / 3.0 + 0.8) / 2.0, epsilon = 1e-12);
        assert_abs_diff_eq!(m.weighted_avg.recall, m.accuracy, epsilon = 1e-12);
        assert_eq!(m.roc_auc, None);
        let text = m.report_text();
        assert!(
            text.contains("     happy      0.67      0.67      0.67         3"),
            "{text}"
        );
    }

    #[test]
    fn auc_with_ties_and_curve() {
        let pos = [true, true, false, false];
        assert_abs_diff_eq!(roc_auc(&pos, &[0.9, 0.8, 0.3, 0.1]).unwrap(), 1.0);
        assert_abs_diff_eq!(roc_auc(&pos, &[0.1, 0.2, 0.8, 0.9]).unwrap(), 0.0);
        assert_abs_diff_eq!(roc_auc(&pos, &[0.5, 0.5, 0.5, 0.5]).unwrap(), 0.5);
        // sklearn: roc_auc_score([1,0,1,0],[0.8,0.6,0.4,0.2]) = 0.75
        assert_abs_diff_eq!(
            roc_auc(&[true, false, true, false], &[0.8, 0.6, 0.4, 0.2]).unwrap(),
            0.75
        );
        assert_eq!(roc_auc(&[true, true], &[0.1, 0.2]), None);
        let c = roc_curve(&pos, &[0.9, 0.8, 0.3, 0.1]);
        assert_eq!(c.first().unwrap().0, 0.0);
        assert_eq!((c.last().unwrap().0, c.last().unwrap().1), (1.0, 1.0));
    }

    #[test]
    fn scores_give_binary_auc_of_class_zero() {
        let t = [0, 0, 1, 1];
        let s = vec![
            vec![0.9, 0.1],
            vec![0.4, 0.6],
            vec![0.6, 0.4],
            vec![0.2, 0.8],
        ];
        let m = classification_metrics(&t, &[0, 1, 0, 1], &["happy", "not_happy"], Some(&s));
        assert_abs_diff_eq!(m.roc_auc.unwrap(), 0.75);
    }
}
