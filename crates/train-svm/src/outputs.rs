//! The stage's outputs, written into its folder in this order: `model.safetensors` (the chosen
//! models and the feature pipelines), `predictions.parquet` (val and test decisions of every
//! chosen model), `calibration.json` (Platt scaling of each chosen model, fitted on its val
//! decisions), `grid.parquet` (every grid point, the chosen ones marked), `metrics.json`
//! (per model and the best by val accuracy) and `report.txt` (classification reports on test);
//! then the chosen-model table on stderr and the summary the manifest keeps. Seven classes add
//! the per-class columns (`decision_<class>` in predictions, `val_macro_f1` in the grid), the
//! class names and per-class decisions in `model.safetensors`, and choose the best by val
//! macro F1; a binary run writes exactly what it did before seven classes.

use crate::data::FeatureSet;
use crate::grid::GridPoint;
use crate::select::{Chosen, best_model};
use crate::{Data, SavedModel, SavedSvms, SvmError, SvmParams, log};
use arrow_array::{ArrayRef, BooleanArray, Float64Array, StringArray, UInt32Array};
use fer_core::Split;
use fer_core::stage::Outputs;
use fer_schema::metrics::{SvmBest, SvmCounts, SvmFeature, SvmMetrics, SvmModelMetrics, ValTest};
use fer_schema::predictions::{self, SvmPrediction};
use fer_schema::write_json_sorted;
use std::path::Path;
use std::sync::Arc;

/// Write every output of the chosen models into `dir`; `kernel_train` is the kernel SVMs'
/// training row count.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write(
    dir: &Path,
    data: &Data,
    p: &SvmParams,
    sets: &[FeatureSet],
    kernel_train: usize,
    grid: &[GridPoint],
    chosen: &[Chosen],
    quiet: bool,
) -> Result<Outputs, SvmError> {
    let mut out = Outputs::default();
    saved(data, sets, grid, chosen).save(&dir.join("model.safetensors"))?;
    out.file("model.safetensors");

    let n = write_predictions(&dir.join("predictions.parquet"), data, sets, chosen)?;
    out.table("predictions.parquet", n);

    let cal = calibration(data, chosen);
    for m in &cal.models {
        if let fer_schema::calibration::Method::Uncalibrated { reason } = &m.method {
            log(quiet, format!("{}: not calibrated: {reason}", m.model));
        }
    }
    let cpath = dir.join(fer_schema::calibration::FILE);
    fer_schema::calibration::write(&cpath, &cal)?;
    out.file("calibration.json");

    let n = write_grid(&dir.join("grid.parquet"), grid, chosen, data.one_vs_rest())?;
    out.table("grid.parquet", n);

    let models = models_json(sets, grid, chosen, data);
    let best = best_model(&models, data.one_vs_rest());
    let metrics = metrics_json(data, p, sets, kernel_train, models, best);
    write_json_sorted(&dir.join("metrics.json"), &metrics)?;
    out.file("metrics.json");
    std::fs::write(dir.join("report.txt"), report(grid, chosen))
        .map_err(|e| fer_core::Error::io(dir.join("report.txt"), e))?;
    out.file("report.txt");

    log(quiet, chosen_table(grid, chosen, &metrics.best.name));
    out.summary = summary(&metrics);
    Ok(out)
}

/// `model.safetensors`: every feature pipeline and the chosen model of each (feature, kernel);
/// seven classes: with the class names, each model's seven one-vs-rest decisions in `classes`
/// and its happy one as `decision`.
fn saved(data: &Data, sets: &[FeatureSet], grid: &[GridPoint], chosen: &[Chosen]) -> SavedSvms {
    let ovr = data.one_vs_rest();
    SavedSvms {
        class_names: if ovr {
            data.class_names.clone()
        } else {
            fer_core::Classes::default()
        },
        features: sets.iter().map(|s| s.pipeline.clone()).collect(),
        models: chosen
            .iter()
            .map(|ch| {
                let g = &grid[ch.best];
                SavedModel {
                    name: ch.name.clone(),
                    feature: sets[ch.set].pipeline.kind,
                    kernel: ch.kernel,
                    c: g.c,
                    gamma: g.gamma.map(|x| x.1),
                    decision: g.decisions[data.happy_task()].clone(),
                    classes: if ovr { g.decisions.clone() } else { Vec::new() },
                }
            })
            .collect(),
    }
}

/// The prediction rows: per chosen model, val then test, in row order; `pred` is happy (0)
/// when the decision is >= 0. Seven classes: `decision` is happy's one-vs-rest decision,
/// `decisions` all seven, `pred` their argmax.
fn pred_rows(data: &Data, sets: &[FeatureSet], chosen: &[Chosen]) -> Vec<SvmPrediction> {
    let ovr = data.one_vs_rest();
    let mut rows = Vec::new();
    for ch in chosen {
        for (split, y, ids, d, v) in [
            (Split::Val, &data.val.y, &data.val_ids, &ch.val_d, &ch.val_v),
            (
                Split::Test,
                &data.test.y,
                &data.test_ids,
                &ch.test_d,
                &ch.test_v,
            ),
        ] {
            let pred = crate::select::predict_tasks(v);
            for i in 0..y.len() {
                rows.push(SvmPrediction {
                    model: ch.name.clone(),
                    feature: sets[ch.set].pipeline.kind.as_str().to_string(),
                    kernel: ch.kernel.as_str().to_string(),
                    split,
                    row: i as u32,
                    id: ids[i].clone(),
                    label: y[i],
                    decision: d[i],
                    pred: pred[i],
                    decisions: if ovr { v.row(i).to_vec() } else { Vec::new() },
                });
            }
        }
    }
    rows
}

/// `calibration.json`: Platt scaling of every chosen model's **val** happy decisions against
/// (label == the class named `happy`: 0 in binary, 3 of seven), or an `uncalibrated` record
/// with the reason (never a silent default).
fn calibration(data: &Data, chosen: &[Chosen]) -> fer_schema::calibration::CalibrationFile {
    let h = data.happy() as u8;
    let happy: Vec<bool> = data.val.y.iter().map(|&y| y == h).collect();
    fer_eval::calibration::file(
        fer_schema::calibration::ScoreKind::SvmDecision,
        chosen
            .iter()
            .map(|ch| fer_eval::calibration::svm_record(&ch.name, &ch.val_d.to_vec(), &happy))
            .collect(),
    )
}

fn col_s(v: Vec<&str>) -> ArrayRef {
    Arc::new(StringArray::from(v)) as ArrayRef
}

/// `predictions.parquet` (core's `SvmPrediction` rows); returns its row count.
fn write_predictions(
    path: &Path,
    data: &Data,
    sets: &[FeatureSet],
    chosen: &[Chosen],
) -> fer_core::Result<usize> {
    let names = if data.one_vs_rest() {
        data.names()
    } else {
        Vec::new()
    };
    predictions::write_svm_classes(path, &pred_rows(data, sets, chosen), &names)
}

/// `grid.parquet`: every grid point in grid order, `chosen` marking the models (`macro_f1`:
/// seven classes, with a `val_macro_f1` column after `val_balanced_accuracy`); returns its row
/// count.
fn write_grid(
    path: &Path,
    grid: &[GridPoint],
    chosen: &[Chosen],
    macro_f1: bool,
) -> fer_core::Result<usize> {
    let chosen_idx: Vec<usize> = chosen.iter().map(|ch| ch.best).collect();
    let mut cols: Vec<(&str, ArrayRef)> = vec![
        (
            "feature",
            col_s(grid.iter().map(|g| g.feature.as_str()).collect()),
        ),
        (
            "kernel",
            col_s(grid.iter().map(|g| g.kernel.as_str()).collect()),
        ),
        (
            "c",
            Arc::new(Float64Array::from_iter_values(grid.iter().map(|g| g.c))),
        ),
        (
            "gamma",
            Arc::new(Float64Array::from(
                grid.iter()
                    .map(|g| g.gamma.map(|x| x.1))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "gamma_spec",
            Arc::new(StringArray::from(
                grid.iter()
                    .map(|g| g.gamma.map(|x| x.0.spec()))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "n_train",
            Arc::new(UInt32Array::from_iter_values(
                grid.iter().map(|g| g.n_train as u32),
            )),
        ),
        (
            "fit_seconds",
            Arc::new(Float64Array::from_iter_values(
                grid.iter().map(|g| g.fit_seconds),
            )),
        ),
        (
            "val_accuracy",
            Arc::new(Float64Array::from_iter_values(
                grid.iter().map(|g| g.val_accuracy),
            )),
        ),
        (
            "val_balanced_accuracy",
            Arc::new(Float64Array::from_iter_values(
                grid.iter().map(|g| g.val_balanced_accuracy),
            )),
        ),
    ];
    if macro_f1 {
        cols.push((
            "val_macro_f1",
            Arc::new(Float64Array::from_iter_values(
                grid.iter().map(|g| g.val_macro_f1),
            )),
        ));
    }
    cols.extend([
        (
            "n_support",
            Arc::new(UInt32Array::from_iter_values(
                grid.iter().map(|g| g.n_support as u32),
            )) as ArrayRef,
        ),
        (
            "solver",
            col_s(grid.iter().map(|g| g.solver.as_str()).collect()),
        ),
        (
            "chosen",
            Arc::new(BooleanArray::from(
                (0..grid.len())
                    .map(|i| chosen_idx.contains(&i))
                    .collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
    ]);
    fer_core::parquet_io::write_columns(path, cols)
}

/// One `metrics.json` entry per chosen model.
fn models_json(
    sets: &[FeatureSet],
    grid: &[GridPoint],
    chosen: &[Chosen],
    data: &Data,
) -> Vec<SvmModelMetrics> {
    chosen
        .iter()
        .map(|ch| {
            let (set, g) = (&sets[ch.set], &grid[ch.best]);
            SvmModelMetrics {
                name: ch.name.clone(),
                feature: set.pipeline.kind.as_str().to_string(),
                kernel: ch.kernel.as_str().to_string(),
                c: g.c,
                gamma: g.gamma.map(|x| x.1),
                gamma_spec: g.gamma.map(|x| x.0.spec()),
                n_features: set.pipeline.dim(),
                n_train: g.n_train,
                n_support: g.n_support,
                solver: g.solver.clone(),
                train_seconds: g.fit_seconds,
                grid_points: ch.grid_points,
                grid_seconds: ch.grid_seconds,
                feature_fit_seconds: set.seconds,
                inference_seconds: ch.infer,
                inference_images_per_second: ch.ips,
                val: ch.mv.clone(),
                test: ch.mt.clone(),
                test_by_truth: data.test.truths.as_ref().map(|t| {
                    let scores = crate::select::task_scores(&ch.test_v);
                    fer_eval::metrics::score_truths(
                        t,
                        &crate::select::predict_tasks(&ch.test_v),
                        &data.names(),
                        Some(&scores),
                    )
                }),
            }
        })
        .collect()
}

/// `metrics.json`: counts, majority baselines, the features, the models and the best one.
fn metrics_json(
    data: &Data,
    p: &SvmParams,
    sets: &[FeatureSet],
    kernel_train: usize,
    models: Vec<SvmModelMetrics>,
    best: usize,
) -> SvmMetrics {
    // The share of the most frequent class.
    let majority = |y: &[u8]| {
        let most = (0..=u8::MAX)
            .map(|c| y.iter().filter(|&&v| v == c).count())
            .max()
            .unwrap_or(0) as f64;
        most / y.len() as f64
    };
    let ovr = data.one_vs_rest();
    let b = &models[best];
    SvmMetrics {
        positive_class: if ovr {
            format!(
                "one-vs-rest, one SVM per class ({}): decision_<class> >= 0 means that class's SVM says yes, pred = the argmax class, decision = the happy (label {}) one-vs-rest decision; ROC AUC is the macro one-vs-rest AUC of the decisions",
                data.class_names.join(", "),
                data.happy()
            )
        } else {
            "happy (label 0): decision >= 0 predicts happy; ROC AUC scores class 0 by the decision value".into()
        },
        n: SvmCounts {
            train: data.train.n,
            kernel_train,
            val: data.val.n,
            test: data.test.n,
        },
        majority_baseline: ValTest {
            val: majority(&data.val.y),
            test: majority(&data.test.y),
        },
        threads: rayon::current_num_threads(),
        features: sets
            .iter()
            .map(|s| SvmFeature {
                name: s.pipeline.kind.as_str().to_string(),
                dim: s.pipeline.dim(),
                pca: p.pca,
                gamma_scale: s.gamma_scale,
                fit_seconds: s.seconds,
            })
            .collect(),
        best: SvmBest {
            name: b.name.clone(),
            by: if ovr { "val macro F1" } else { "val accuracy" }.into(),
            val_accuracy: b.val.accuracy,
            test_accuracy: b.test.accuracy,
        },
        models,
    }
}

/// `report.txt`: the classification report on test of every chosen model.
fn report(grid: &[GridPoint], chosen: &[Chosen]) -> String {
    let mut report = String::new();
    for ch in chosen {
        let g = &grid[ch.best];
        report += &format!(
            "== {} (C = {}, gamma = {}) test\n{}\n",
            ch.name,
            g.c,
            g.gamma
                .map_or("-".into(), |(s, v)| format!("{} = {v:.4e}", s.spec())),
            ch.mt.report_text()
        );
    }
    report
}

/// The chosen-model table logged at the end.
fn chosen_table(grid: &[GridPoint], chosen: &[Chosen], best: &str) -> String {
    let table: Vec<String> = chosen
        .iter()
        .map(|ch| {
            let g = &grid[ch.best];
            format!(
                "{:<12} {:>6} {:>16} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>9.1} {:>10.0}",
                ch.name,
                g.c,
                g.gamma.map_or("-".into(), |(s, _)| s.spec()),
                g.val_accuracy,
                ch.mt.accuracy,
                ch.mt.balanced_accuracy,
                ch.mt.roc_auc.unwrap_or(f64::NAN),
                g.fit_seconds,
                ch.ips
            )
        })
        .collect();
    let header = format!(
        "{:<12} {:>6} {:>16} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10}",
        "model", "C", "gamma", "val acc", "test acc", "bal acc", "ROC AUC", "train s", "test img/s"
    );
    format!(
        "chosen on val (best: {}):\n{header}\n{}",
        best,
        table.join("\n")
    )
}

/// The summary the manifest keeps: the best model and per model its choice and scores.
fn summary(metrics: &SvmMetrics) -> serde_json::Value {
    serde_json::json!({
        "best": metrics.best,
        "models": metrics.models.iter().map(|m| serde_json::json!({
            "name": m.name,
            "c": m.c,
            "gamma": m.gamma,
            "val_accuracy": m.val.accuracy,
            "test_accuracy": m.test.accuracy,
            "test_balanced_accuracy": m.test.balanced_accuracy,
            "test_roc_auc": m.test.roc_auc,
            "train_seconds": m.train_seconds,
            "inference_images_per_second": m.inference_images_per_second,
        })).collect::<Vec<_>>(),
    })
}
