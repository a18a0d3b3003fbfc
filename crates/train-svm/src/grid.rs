//! The grid: the job list (feature x kernel x C x gamma, in that order) and its fits, run in
//! parallel, each scored on val. An SMO job is one (C, gamma) point on the subsample; a DCD job
//! is one linear C on every train row; an RFF job maps the features once for its gamma and
//! fits every C of `c` on them. The grid keeps the job order whatever order the fits finish in.

use crate::data::{FeatureSet, TrainRows};
use crate::model::FitInfo;
use crate::{
    Data, Decision, FeatureKind, Gamma, KernelKind, LinearSolver, Rff, STAGE, SvmError, SvmParams,
    metrics_of, model,
};
use rayon::prelude::*;
use std::time::Instant;

/// One trained grid point.
#[derive(Debug, Clone)]
pub struct GridPoint {
    pub feature: FeatureKind,
    pub kernel: KernelKind,
    pub c: f64,
    pub gamma: Option<(Gamma, f64)>,
    pub n_train: usize,
    pub fit_seconds: f64,
    pub val_accuracy: f64,
    pub val_balanced_accuracy: f64,
    pub n_support: usize,
    pub solver: String,
    pub decision: Decision,
}

pub(crate) enum Job {
    Smo {
        f: usize,
        kernel: KernelKind,
        c: f64,
        gamma: Option<Gamma>,
    },
    Dcd {
        f: usize,
        c: f64,
    },
    Rff {
        f: usize,
        gamma: Gamma,
    },
}

/// The jobs of `n_features` feature sets, in grid order, and the number of fits they make
/// (the progress bar's length).
pub(crate) fn jobs(p: &SvmParams, n_features: usize) -> (Vec<Job>, u64) {
    let mut jobs = Vec::new();
    let mut fits = 0u64;
    for f in 0..n_features {
        for &kernel in &p.kernels {
            match kernel {
                KernelKind::Rbf => {
                    for &g in &p.gamma {
                        for &c in &p.c {
                            jobs.push(Job::Smo {
                                f,
                                kernel,
                                c,
                                gamma: Some(g),
                            });
                        }
                    }
                    fits += (p.gamma.len() * p.c.len()) as u64;
                }
                KernelKind::Linear => {
                    for &c in &p.c_linear {
                        jobs.push(match p.linear_solver {
                            LinearSolver::Smo => Job::Smo {
                                f,
                                kernel,
                                c,
                                gamma: None,
                            },
                            LinearSolver::Dcd => Job::Dcd { f, c },
                        });
                    }
                    fits += p.c_linear.len() as u64;
                }
                KernelKind::Rff => {
                    for &g in &p.gamma {
                        jobs.push(Job::Rff { f, gamma: g });
                    }
                    fits += (p.gamma.len() * p.c.len()) as u64;
                }
            }
        }
    }
    (jobs, fits)
}

/// Fit every job (in parallel), score each fit on val; the grid points in job order.
pub(crate) fn fit(
    jobs: &[Job],
    fits: u64,
    sets: &[FeatureSet],
    rows: &TrainRows,
    data: &Data,
    p: &SvmParams,
    quiet: bool,
) -> Result<Vec<GridPoint>, SvmError> {
    let TrainRows {
        sub,
        sub_happy,
        all_happy,
        subs,
    } = rows;
    let pb = fer_core::cli::progress(fits, "grid", quiet);
    // One line per fit (above the bar on a terminal; the bar is hidden in logs).
    let done = |g: &GridPoint| {
        if !quiet {
            let line = format!(
                "[{STAGE}] {}/{} C={} gamma={}: fit {:.1} s on {} rows, val acc {:.4}, {}",
                g.feature.as_str(),
                g.kernel.as_str(),
                g.c,
                g.gamma
                    .map_or("-".into(), |(s, v)| format!("{} ({v:.3e})", s.spec())),
                g.fit_seconds,
                g.n_train,
                g.val_accuracy,
                g.solver
            );
            pb.suspend(|| eprintln!("{line}"));
        }
        pb.inc(1);
    };
    // A fitted decision of feature set `f`, scored on val: its grid point (and progress line).
    let point = |f: usize,
                 kernel: KernelKind,
                 c: f64,
                 gamma: Option<(Gamma, f64)>,
                 n_train: usize,
                 fit_seconds: f64,
                 info: FitInfo,
                 decision: Decision| {
        let m = metrics_of(&data.val.y, &decision.values(&sets[f].val));
        let g = GridPoint {
            feature: sets[f].pipeline.kind,
            kernel,
            c,
            gamma,
            n_train,
            fit_seconds,
            val_accuracy: m.accuracy,
            val_balanced_accuracy: m.balanced_accuracy,
            n_support: info.n_support,
            solver: info.solver,
            decision,
        };
        done(&g);
        g
    };
    let results: Vec<Result<Vec<GridPoint>, String>> = jobs
        .par_iter()
        .map(|job| match *job {
            Job::Smo {
                f,
                kernel,
                c,
                gamma,
            } => {
                let g = gamma.map(|g| (g, g.resolve(sets[f].gamma_scale)));
                let t0 = Instant::now();
                let (decision, info) = model::fit_smo(
                    subs[f].view(),
                    sub_happy,
                    p.class_weight.c(c, sub_happy),
                    g.map(|g| g.1),
                    p.tol,
                )?;
                let fit_seconds = t0.elapsed().as_secs_f64();
                Ok(vec![point(
                    f,
                    kernel,
                    c,
                    g,
                    sub.len(),
                    fit_seconds,
                    info,
                    decision,
                )])
            }
            Job::Dcd { f, c } => {
                let t0 = Instant::now();
                let (w, bias, info) = model::fit_dcd(
                    &sets[f].train,
                    all_happy,
                    p.class_weight.c(c, all_happy),
                    p.seed,
                );
                let fit_seconds = t0.elapsed().as_secs_f64();
                let decision = Decision::Linear { w, bias };
                let n_train = sets[f].train.nrows();
                Ok(vec![point(
                    f,
                    KernelKind::Linear,
                    c,
                    None,
                    n_train,
                    fit_seconds,
                    info,
                    decision,
                )])
            }
            Job::Rff { f, gamma } => {
                let gv = gamma.resolve(sets[f].gamma_scale);
                let t0 = Instant::now();
                let rff = Rff::new(sets[f].train.ncols(), p.rff_dim, gv, p.seed);
                let z = rff.map(&sets[f].train);
                let map_seconds = t0.elapsed().as_secs_f64();
                let mut out = Vec::new();
                for &c in &p.c {
                    let t1 = Instant::now();
                    let (w, bias, info) =
                        model::fit_dcd(&z, all_happy, p.class_weight.c(c, all_happy), p.seed);
                    let fit_seconds = map_seconds + t1.elapsed().as_secs_f64();
                    let decision = Decision::Rff {
                        rff: rff.clone(),
                        w,
                        bias,
                    };
                    out.push(point(
                        f,
                        KernelKind::Rff,
                        c,
                        Some((gamma, gv)),
                        z.nrows(),
                        fit_seconds,
                        info,
                        decision,
                    ));
                }
                Ok(out)
            }
        })
        .collect();
    pb.finish_and_clear();
    let mut grid: Vec<GridPoint> = Vec::new();
    for r in results {
        grid.extend(r.map_err(SvmError::Data)?);
    }
    Ok(grid)
}
