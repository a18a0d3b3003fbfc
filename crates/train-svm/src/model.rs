//! Fitting the SVMs: linfa-svm's SMO for `rbf` and `linear`, dual coordinate descent on
//! random Fourier features for `rff`. The fitted decision function and its saved form
//! (`model.safetensors`) are fer-models' (`fer_models::svm`), which predict reads too.
//!
//! Decision values are positive for **happy** (label 0): the SVM's positive class is
//! `label == 0`, and `pred = 0` when `decision >= 0` (linfa's rule). The fitters take any
//! positive rows (`happy` below): in seven-class mode each one-vs-rest SVM's positive rows are
//! its class's.

pub use fer_models::svm::{Decision, KernelKind, SavedModel, SavedSvms};
use linfa::traits::Fit;
use linfa_svm::Svm;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// What a fit reports besides the decision function.
#[derive(Debug, Clone, PartialEq)]
pub struct FitInfo {
    /// Support vectors (alpha > 0).
    pub n_support: usize,
    /// The solver's own summary (iterations, objective, exit reason).
    pub solver: String,
}

/// linfa-svm's C-SVC with an RBF (`gamma = Some`) or linear (`None`) kernel; `c` is (C of
/// happy rows, C of not-happy rows). `tol` is the SMO stopping tolerance; linfa's
/// `gaussian_kernel(eps)` takes eps = 1 / gamma.
pub fn fit_smo(
    x: ArrayView2<f64>,
    happy: &[bool],
    c: (f64, f64),
    gamma: Option<f64>,
    tol: f64,
) -> Result<(Decision, FitInfo), String> {
    // No shrinking: linfa-svm 0.8.1's `do_shrinking` can step its active-set counter below 0
    // and panic (index usize::MAX) when every variable qualifies for shrinking.
    let params = Svm::<f64, bool>::params()
        .pos_neg_weights(c.0, c.1)
        .eps(tol)
        .shrinking(false);
    let params = match gamma {
        Some(g) => params.gaussian_kernel(1.0 / g),
        None => params.linear_kernel(),
    };
    let ds = linfa::DatasetBase::new(x, ndarray::ArrayView1::from(happy));
    let svm = params.fit(&ds).map_err(|e| format!("linfa-svm: {e}"))?;
    let tiny = 100.0 * f64::EPSILON;
    let idx: Vec<usize> = (0..svm.alpha.len())
        .filter(|&i| svm.alpha[i].abs() > tiny)
        .collect();
    let info = FitInfo {
        n_support: idx.len(),
        solver: svm.to_string(),
    };
    let decision = match gamma {
        Some(g) => Decision::Rbf {
            gamma: g,
            sv: x.select(Axis(0), &idx),
            coef: idx.iter().map(|&i| svm.alpha[i]).collect(),
            rho: svm.rho,
        },
        None => {
            // linfa keeps the hyperplane private; its weighted sum of a unit vector is exactly
            // the weight (every other product is 0).
            let d = x.ncols();
            let mut e = Array1::<f64>::zeros(d);
            let mut w = Array1::<f64>::zeros(d);
            for j in 0..d {
                e[j] = 1.0;
                w[j] = svm.weighted_sum(&e);
                e[j] = 0.0;
            }
            Decision::Linear { w, bias: -svm.rho }
        }
    };
    Ok((decision, info))
}

/// Stopping tolerance of [`fit_dcd`] on the projected gradient (liblinear's default, 0.1).
pub const DCD_TOL: f64 = 0.1;
/// Epoch cap of [`fit_dcd`] (liblinear's default, 1000).
pub const DCD_MAX_EPOCHS: usize = 1000;

/// Linear C-SVC (hinge loss, L2 penalty) by dual coordinate descent (Hsieh et al. 2008, the
/// solver of liblinear and scikit-learn's `LinearSVC(loss="hinge")`), the bias as a constant
/// feature; `c` is (C of happy rows, C of not-happy rows). Visits rows in a seeded random
/// order: deterministic for a seed.
pub fn fit_dcd(
    z: &Array2<f64>,
    happy: &[bool],
    c: (f64, f64),
    seed: u64,
) -> (Array1<f64>, f64, FitInfo) {
    let n = z.nrows();
    let y: Vec<f64> = happy.iter().map(|&h| if h { 1.0 } else { -1.0 }).collect();
    let upper: Vec<f64> = happy.iter().map(|&h| if h { c.0 } else { c.1 }).collect();
    let qii: Vec<f64> = z.outer_iter().map(|r| r.dot(&r) + 1.0).collect();
    let mut alpha = vec![0.0f64; n];
    let mut w = Array1::<f64>::zeros(z.ncols());
    let mut b = 0.0f64;
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut epochs = 0;
    let mut gap = f64::INFINITY;
    while epochs < DCD_MAX_EPOCHS {
        epochs += 1;
        order.shuffle(&mut rng);
        let (mut maxpg, mut minpg) = (f64::NEG_INFINITY, f64::INFINITY);
        for &i in &order {
            let zi = z.row(i);
            let g = y[i] * (w.dot(&zi) + b) - 1.0;
            let pg = if alpha[i] == 0.0 {
                g.min(0.0)
            } else if alpha[i] == upper[i] {
                g.max(0.0)
            } else {
                g
            };
            maxpg = maxpg.max(pg);
            minpg = minpg.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (old - g / qii[i]).clamp(0.0, upper[i]);
                let delta = (alpha[i] - old) * y[i];
                w.scaled_add(delta, &zi);
                b += delta;
            }
        }
        gap = maxpg - minpg;
        if gap < DCD_TOL {
            break;
        }
    }
    let n_support = alpha.iter().filter(|&&a| a > 0.0).count();
    let solver = format!(
        "dual coordinate descent: {epochs} epochs, projected-gradient gap {gap:.3e}{}, {n_support} support vectors",
        if gap < DCD_TOL {
            ""
        } else {
            " (epoch cap reached)"
        }
    );
    (w, b, FitInfo { n_support, solver })
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use rand::RngExt;

    /// Two Gaussian blobs in 5-D, `n` rows, happy = first blob.
    fn blobs(n: usize, seed: u64) -> (Array2<f64>, Vec<bool>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let happy: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        let x = Array2::from_shape_fn((n, 5), |(i, j)| {
            let centre = if happy[i] { 1.0 } else { -1.0 };
            centre * if j < 2 { 1.0 } else { 0.2 } + rng.random::<f64>() - 0.5
        });
        (x, happy)
    }

    #[test]
    fn decisions_match_linfa_and_separate_the_blobs() {
        let (x, happy) = blobs(80, 1);
        for gamma in [Some(0.5), None] {
            let params = Svm::<f64, bool>::params()
                .pos_neg_weights(1.0, 1.0)
                .eps(1e-3);
            let params = match gamma {
                Some(g) => params.gaussian_kernel(1.0 / g),
                None => params.linear_kernel(),
            };
            let ds = linfa::DatasetBase::new(x.view(), ndarray::ArrayView1::from(&happy[..]));
            let svm = params.fit(&ds).unwrap();
            let (d, info) = fit_smo(x.view(), &happy, (1.0, 1.0), gamma, 1e-3).unwrap();
            assert!(info.n_support > 0 && info.n_support < 80, "{info:?}");
            let ours = d.values(&x);
            for (i, row) in x.outer_iter().enumerate() {
                let theirs = svm.weighted_sum(&row) - svm.rho;
                assert_abs_diff_eq!(ours[i], theirs, epsilon = 1e-9);
            }
            let correct = ours
                .iter()
                .zip(&happy)
                .filter(|(v, h)| (**v >= 0.0) == **h)
                .count();
            assert!(correct >= 76, "{gamma:?}: {correct}/80");
        }
    }

    #[test]
    fn dual_coordinate_descent_separates_and_is_deterministic() {
        let (x, happy) = blobs(200, 2);
        let (w, b, info) = fit_dcd(&x, &happy, (1.0, 1.0), 7);
        assert!(!info.solver.contains("cap"), "{}", info.solver);
        let d = Decision::Linear {
            w: w.clone(),
            bias: b,
        }
        .values(&x);
        let correct = d
            .iter()
            .zip(&happy)
            .filter(|(v, h)| (**v >= 0.0) == **h)
            .count();
        assert!(correct >= 195, "{correct}/200");
        let (w2, b2, _) = fit_dcd(&x, &happy, (1.0, 1.0), 7);
        assert_eq!((w, b), (w2, b2));
    }

    #[test]
    fn decision_blocks_do_not_change_values() {
        let (x, happy) = blobs(600, 3);
        let (d, _) = fit_smo(x.view(), &happy, (1.0, 1.0), Some(0.3), 1e-3).unwrap();
        let all = d.values(&x);
        let one = d.values(&x.slice(ndarray::s![300..301, ..]).to_owned());
        assert_eq!(all[300], one[0]);
    }
}
