//! The `train_svm` folder: every SVM's metrics, predictions and settings, and its share of
//! `model.safetensors` (read from the file's header).

use super::{Family, ModelRun, Pred, artifact_error, read_typed, split_preds};
use crate::ReportError;
use fer_schema::metrics::SvmMetrics;
use fer_schema::predictions;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Tensor name -> element count and byte length, from a safetensors header (no data read).
pub fn safetensors_tensors(path: &Path) -> Option<BTreeMap<String, (u64, u64)>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).ok()?;
    let n = u64::from_le_bytes(len);
    if n > 100_000_000 {
        return None;
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).ok()?;
    let v: Value = serde_json::from_slice(&header).ok()?;
    let mut out = BTreeMap::new();
    for (k, t) in v.as_object()? {
        if k == "__metadata__" {
            continue;
        }
        let elems: u64 = t["shape"]
            .as_array()?
            .iter()
            .filter_map(Value::as_u64)
            .product();
        let offs = t["data_offsets"].as_array()?;
        let bytes = offs.get(1)?.as_u64()? - offs.first()?.as_u64()?;
        out.insert(k.clone(), (elems, bytes));
    }
    Some(out)
}

fn feature_words(f: &str) -> &str {
    match f {
        "raw" => "raw pixels",
        "hog" => "HOG features",
        other => other,
    }
}

fn kernel_words(k: &str) -> String {
    match k {
        "rbf" => "RBF kernel".into(),
        "linear" => "linear".into(),
        "rff" => "RBF via random Fourier features".into(),
        other => other.to_string(),
    }
}

pub(super) fn svm_models(
    stage: &str,
    dir: &Path,
) -> Result<(Vec<ModelRun>, SvmMetrics), ReportError> {
    let mpath = dir.join("metrics.json");
    let m: SvmMetrics = read_typed(stage, &mpath)?;
    let ppath = dir.join("predictions.parquet");
    let rows = predictions::read_svm(&ppath).map_err(|e| artifact_error(stage, &ppath, &e))?;
    let tensors = safetensors_tensors(&dir.join("model.safetensors")).unwrap_or_default();
    let mut out = Vec::new();
    for mm in &m.models {
        let (name, feature, kernel) = (mm.name.clone(), mm.feature.clone(), mm.kernel.clone());
        let (val_preds, test_preds) =
            split_preds(rows.iter().filter(|r| r.model == name).map(|r| {
                let p = Pred {
                    row: r.row,
                    id: r.id.clone(),
                    label: r.label,
                    score: r.decision,
                    pred: r.pred,
                };
                (r.split, p)
            }));
        // Numbers stored for this model: its own tensors and its feature pipeline's.
        let mine = |(elems, bytes): (u64, u64), k: &String| {
            if k.starts_with(&format!("{name}.")) || k.starts_with(&format!("{feature}.")) {
                (elems, bytes)
            } else {
                (0, 0)
            }
        };
        let (params, bytes) = tensors
            .iter()
            .map(|(k, v)| mine(*v, k))
            .fold((0u64, 0u64), |a, b| (a.0 + b.0, a.1 + b.1));
        // C as JSON writes it (`1.0`, `0.001`), as the report always showed it.
        let mut config = vec![format!("C = {}", Value::from(mm.c))];
        if let Some(g) = &mm.gamma_spec {
            config.push(format!("gamma = {g}"));
        }
        config.push(format!("{} support vectors", mm.n_support));
        // Training time: the grid search and the feature pipeline's fit.
        let train_seconds = Some(mm.grid_seconds + mm.feature_fit_seconds);
        out.push(ModelRun {
            key: format!("svm:{name}"),
            display: format!(
                "SVM, {}, {}",
                feature_words(&feature),
                kernel_words(&kernel)
            ),
            role: "the study's proposed SVM, never reported".into(),
            family: Family::Svm,
            dir: dir.to_path_buf(),
            svm_name: Some(name.clone()),
            feature: Some(feature.clone()),
            config: config.join(", "),
            val: mm.val.clone(),
            test: mm.test.clone(),
            test_by_truth: mm.test_by_truth.clone(),
            params: (!tensors.is_empty()).then_some(params),
            size_bytes: (!tensors.is_empty()).then_some(bytes),
            train_seconds,
            inference_images_per_second: Some(mm.inference_images_per_second),
            score_name: "svm_decision",
            default_threshold: 0.0,
            val_preds,
            test_preds,
            epochs: Vec::new(),
            best_epoch: None,
            final_train_acc: None,
            seven: None,
        });
    }
    Ok((out, m))
}
