//! The SVM rows of `fer-bench`'s stages group: features, training and inference.

use crate::{Row, best};
use fer_core::classes::HAPPY_LABEL;
use std::path::Path;

/// SVM training and inference on a preprocess output folder: HOG + PCA 150 fitted on train,
/// linfa-svm's RBF C-SVC on a stratified 2,000-row subsample (C = 3, gamma = scale), the
/// linear SVM (dual coordinate descent, C = 0.001) on every train row, and inference (HOG,
/// scaling, PCA, decision) on test.
pub(crate) fn svm_rows(
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
    preprocess: &Path,
    repeat: usize,
) {
    use fer_train_svm::ndarray::Axis;
    use fer_train_svm::{Decision, FeatureKind, FeaturePipeline, HogParams, features, model};
    let data = match fer_train_svm::Data::read(preprocess) {
        Ok(d) => d,
        Err(e) => {
            notes.push(format!("train_svm rows skipped: {e}"));
            return;
        }
    };
    let range = data.transform.value_range();
    let (s, fitted) = best(repeat, || {
        FeaturePipeline::fit(
            FeatureKind::Hog,
            HogParams::default(),
            range,
            150,
            &data.train,
        )
    });
    let (pipeline, x) = match fitted {
        Ok(v) => v,
        Err(e) => {
            notes.push(format!("train_svm features failed: {e}"));
            return;
        }
    };
    rows.push(Row {
        name: "svm features: HOG + scale + PCA 150 (fit)".into(),
        items: data.train.n as f64,
        unit: "images",
        seconds: s,
    });
    let happy: Vec<bool> = data.train.y.iter().map(|&v| v == HAPPY_LABEL).collect();
    let sub = fer_train_svm::stratified_subsample(&data.train.y, 2000, 42);
    let xs = x.select(Axis(0), &sub);
    let hs: Vec<bool> = sub.iter().map(|&i| happy[i]).collect();
    let gamma = features::gamma_scale(&x);
    let (s, rbf) = best(repeat, || {
        model::fit_smo(xs.view(), &hs, (3.0, 3.0), Some(gamma), 1e-3)
    });
    let rbf = match rbf {
        Ok((d, _)) => d,
        Err(e) => {
            notes.push(format!("train_svm rbf failed: {e}"));
            return;
        }
    };
    rows.push(Row {
        name: "svm rbf fit (linfa SMO), 2000 rows".into(),
        items: sub.len() as f64,
        unit: "images",
        seconds: s,
    });
    let (s, (w, bias, _)) = best(repeat, || model::fit_dcd(&x, &happy, (0.001, 0.001), 42));
    rows.push(Row {
        name: "svm linear fit (dual coord. descent), all".into(),
        items: data.train.n as f64,
        unit: "images",
        seconds: s,
    });
    let linear = Decision::Linear { w, bias };
    for (name, d) in [("rbf", &rbf), ("linear", &linear)] {
        let (s, out) = best(repeat, || {
            pipeline.transform(&data.test).map(|t| d.values(&t).len())
        });
        match out {
            Ok(n) => rows.push(Row {
                name: format!("svm {name} inference (HOG..decision), test"),
                items: n as f64,
                unit: "images",
                seconds: s,
            }),
            Err(e) => notes.push(format!("train_svm inference failed: {e}")),
        }
    }
}
