//! The grid: the job list (feature x kernel x C x gamma, in that order) and its fits, run in
//! parallel, each scored on val. An SMO job is one (C, gamma) point on the subsample; a DCD job
//! is one linear C on every train row; an RFF job maps the features once for its gamma and
//! fits every C of `c` on them. The grid keeps the job order whatever order the fits finish in.
//!
//! Seven classes: every grid point is a set of one-vs-rest SVMs, one per class (that class's
//! rows positive, the rest negative; `class_weight = "balanced"` weighs the two sides of each),
//! fitted in parallel by the same solver on the same rows (the RFF map is shared), and scored
//! on val by the argmax of their decisions. Its `fit_seconds`, `n_support` and `solver` sum or
//! list the seven fits'.

use crate::data::{FeatureSet, TrainRows};
use crate::model::FitInfo;
use crate::select::{metrics_of_tasks, task_values};
use crate::{
    Data, Decision, FeatureKind, Gamma, KernelKind, LinearSolver, Rff, STAGE, SvmError, SvmParams,
    model,
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
    /// Val macro F1 (the choice in seven-class mode).
    pub val_macro_f1: f64,
    pub n_support: usize,
    pub solver: String,
    /// One decision per task (`Data::tasks`): binary, the happy decision alone; seven
    /// classes, each class's one-vs-rest decision in class order.
    pub decisions: Vec<Decision>,
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
        sub_pos,
        all_pos,
        subs,
    } = rows;
    let tasks = sub_pos.len();
    let ovr = data.one_vs_rest();
    let names = data.names();
    let pb = fer_core::cli::progress(fits, "grid", quiet);
    // One line per fit (above the bar on a terminal; the bar is hidden in logs).
    let done = |g: &GridPoint| {
        if !quiet {
            let line = format!(
                "[{STAGE}] {}/{} C={} gamma={}: fit {:.1} s on {} rows, val acc {:.4}{}, {}",
                g.feature.as_str(),
                g.kernel.as_str(),
                g.c,
                g.gamma
                    .map_or("-".into(), |(s, v)| format!("{} ({v:.3e})", s.spec())),
                g.fit_seconds,
                g.n_train,
                g.val_accuracy,
                if ovr {
                    format!(
                        ", val macro F1 {:.4} ({tasks} one-vs-rest fits)",
                        g.val_macro_f1
                    )
                } else {
                    String::new()
                },
                // Seven solver reports make a long line: their sum (grid.parquet lists them).
                if ovr {
                    format!("{} support vectors in all", g.n_support)
                } else {
                    g.solver.clone()
                }
            );
            pb.suspend(|| eprintln!("{line}"));
        }
        pb.inc(1);
    };
    // The fitted decisions of feature set `f` (one per task, with their fit times and
    // reports), scored on val: its grid point (and progress line).
    let point = |f: usize,
                 kernel: KernelKind,
                 c: f64,
                 gamma: Option<(Gamma, f64)>,
                 n_train: usize,
                 extra_seconds: f64,
                 fits: Vec<(Decision, FitInfo, f64)>| {
        let fit_seconds = extra_seconds + fits.iter().map(|x| x.2).sum::<f64>();
        let info = if fits.len() == 1 {
            fits[0].1.clone()
        } else {
            FitInfo {
                n_support: fits.iter().map(|x| x.1.n_support).sum(),
                solver: fits
                    .iter()
                    .zip(&names)
                    .map(|(x, c)| format!("{c}: {}", x.1.solver))
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        };
        let decisions: Vec<Decision> = fits.into_iter().map(|x| x.0).collect();
        let m = metrics_of_tasks(data, &data.val.y, &task_values(&decisions, &sets[f].val));
        let g = GridPoint {
            feature: sets[f].pipeline.kind,
            kernel,
            c,
            gamma,
            n_train,
            fit_seconds,
            val_accuracy: m.accuracy,
            val_balanced_accuracy: m.balanced_accuracy,
            val_macro_f1: m.macro_avg.f1,
            n_support: info.n_support,
            solver: info.solver,
            decisions,
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
                let fits = (0..tasks)
                    .into_par_iter()
                    .map(|t| {
                        let pos = &sub_pos[t];
                        let t0 = Instant::now();
                        let (decision, info) = model::fit_smo(
                            subs[f].view(),
                            pos,
                            p.class_weight.c(c, pos),
                            g.map(|g| g.1),
                            p.tol,
                        )?;
                        Ok((decision, info, t0.elapsed().as_secs_f64()))
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                Ok(vec![point(f, kernel, c, g, sub.len(), 0.0, fits)])
            }
            Job::Dcd { f, c } => {
                let fits = (0..tasks)
                    .into_par_iter()
                    .map(|t| {
                        let pos = &all_pos[t];
                        let t0 = Instant::now();
                        let (w, bias, info) =
                            model::fit_dcd(&sets[f].train, pos, p.class_weight.c(c, pos), p.seed);
                        (
                            Decision::Linear { w, bias },
                            info,
                            t0.elapsed().as_secs_f64(),
                        )
                    })
                    .collect();
                let n_train = sets[f].train.nrows();
                Ok(vec![point(
                    f,
                    KernelKind::Linear,
                    c,
                    None,
                    n_train,
                    0.0,
                    fits,
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
                    let fits = (0..tasks)
                        .into_par_iter()
                        .map(|t| {
                            let pos = &all_pos[t];
                            let t1 = Instant::now();
                            let (w, bias, info) =
                                model::fit_dcd(&z, pos, p.class_weight.c(c, pos), p.seed);
                            let decision = Decision::Rff {
                                rff: rff.clone(),
                                w,
                                bias,
                            };
                            (decision, info, t1.elapsed().as_secs_f64())
                        })
                        .collect();
                    out.push(point(
                        f,
                        KernelKind::Rff,
                        c,
                        Some((gamma, gv)),
                        z.nrows(),
                        map_seconds,
                        fits,
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
