//! `fer-report diff A B` (`make report-diff A=... B=...`): the metrics and params that differ
//! between two runs, like `dvc metrics diff` and `dvc params diff`.
//!
//! A and B are each a pipeline name (`artifacts/<name>/`), a path to a pipeline's artifacts
//! folder, or a path to a report folder (`artifacts/<name>/report/`, or a copy of one, such
//! as a run-cache entry). A report folder is read from its `metrics.json` and `params.json`;
//! a pipeline folder from its report when it has one, else straight from the upstream stages'
//! metrics files and manifests.

use crate::ReportError;
use crate::load::{self, Study};
use crate::stats::Ci;
use fer_core::manifest::MANIFEST_FILE;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Headline numbers per model (keyed `svm:<name>`, `cnn:<name>`, `tune:best`). In a
/// seven-class pipeline (`seven`: [`crate::seven::figures`]), each seven-class model adds
/// `seven_classes` (its figures over the seven emotions, PrivateTest's included) and the
/// document a top-level `seven_classes`; the other per-model keys are then the happy-vs-rest
/// reading. A binary pipeline's document has neither.
pub fn metrics_json(
    study: &Study,
    cis: Option<&BTreeMap<String, Ci>>,
    seven: Option<&crate::seven::SevenFigures>,
) -> Value {
    let mut models = Map::new();
    for m in &study.models {
        let mut v = json!({
            "val_accuracy": m.val.accuracy,
            "test_accuracy": m.test.accuracy,
            "test_balanced_accuracy": m.test.balanced_accuracy,
            "test_roc_auc": m.test.roc_auc,
            "test_macro_f1": m.test.macro_avg.f1,
            "params": m.params,
            "size_bytes": m.size_bytes,
            "train_seconds": m.train_seconds,
            "inference_images_per_second": m.inference_images_per_second,
        });
        if let Some(c) = cis.and_then(|c| c.get(&m.key)) {
            v["test_accuracy_ci_low"] = json!(c.lo);
            v["test_accuracy_ci_high"] = json!(c.hi);
        }
        // Both truths side by side; "not available" without FERPlus votes.
        for (truth, metrics) in [
            ("fer2013", m.test_by_truth.as_ref().map(|t| &t.fer2013)),
            ("ferplus", m.test_by_truth.as_ref().map(|t| &t.ferplus)),
        ] {
            v[format!("test_{truth}")] = match metrics {
                Some(t) => json!({
                    "accuracy": t.accuracy,
                    "balanced_accuracy": t.balanced_accuracy,
                    "roc_auc": t.roc_auc,
                    "n": t.n,
                }),
                None => json!("not available"),
            };
        }
        if let Some(sm) = seven.and_then(|f| f.models.iter().find(|s| s.model.key == m.key)) {
            v["seven_classes"] = crate::seven::model_json(sm);
        }
        models.insert(m.key.clone(), v);
    }
    let mut out = json!({ "models": models });
    if let Some(f) = seven {
        out["seven_classes"] = crate::seven::summary_json(f);
    }
    if let Some(t) = &study.tune {
        out["tune"] = t.summary.clone();
    }
    if let Some(m) = study.stage("ingest") {
        out["data"] = m.summary["counts"].clone();
    }
    out["label_noise"] = match study.models.iter().find_map(|m| m.test_by_truth.as_ref()) {
        Some(t) => json!({
            "test_disagreement": t.disagreement,
            "ferplus_ceiling_balanced_accuracy": t.ferplus_ceiling_balanced_accuracy,
            "ferplus_excluded": t.ferplus_excluded,
        }),
        None => json!("not available"),
    };
    out
}

/// Every upstream stage's resolved params, by stage.
pub fn params_json(study: &Study) -> Value {
    let mut out = Map::new();
    for s in &study.stages {
        if let Some(m) = &s.manifest {
            out.insert(s.name.to_string(), m.params.clone());
        }
    }
    Value::Object(out)
}

/// What one side of a diff holds.
pub struct Side {
    pub label: String,
    pub metrics: Value,
    pub params: Value,
}

fn read(path: &Path) -> Result<Value, ReportError> {
    load::read_json("report", path)
}

/// Resolve `arg` (pipeline name, pipeline folder or report folder) under `artifacts`.
pub fn side(arg: &str, artifacts: &Path) -> Result<Side, ReportError> {
    let as_path = PathBuf::from(arg);
    let dir = if as_path.is_dir() {
        as_path
    } else if artifacts.join(arg).is_dir() {
        artifacts.join(arg)
    } else {
        return Err(ReportError::Missing(format!(
            "`{arg}`: neither a folder nor a pipeline under {} (run `make all PIPELINE={arg}` first)",
            artifacts.display()
        )));
    };
    let is_report = |d: &Path| d.join("metrics.json").exists() && d.join("params.json").exists();
    let report_dir = if is_report(&dir) {
        Some(dir.clone())
    } else if is_report(&dir.join("report")) {
        Some(dir.join("report"))
    } else {
        None
    };
    if let Some(r) = report_dir {
        let mut params = read(&r.join("params.json"))?;
        if let Ok(m) = fer_core::manifest::Manifest::read(&r.join(MANIFEST_FILE)) {
            params["report"] = m.params;
        }
        return Ok(Side {
            label: arg.to_string(),
            metrics: read(&r.join("metrics.json"))?,
            params,
        });
    }
    let name = dir
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let study = load::load(&dir, &name)?;
    if study.stages.iter().all(|s| s.manifest.is_none()) {
        return Err(ReportError::Missing(format!(
            "{}: no stage has run there (run `make all PIPELINE={name}`)",
            dir.display()
        )));
    }
    Ok(Side {
        label: arg.to_string(),
        metrics: metrics_json(&study, None, crate::seven::figures(&study, None).as_ref()),
        params: params_json(&study),
    })
}

/// `{"a": {"b": 1}, "c": [2]}` -> `a.b = 1`, `c[0] = 2`.
pub fn flatten(v: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(x, &p, out);
            }
        }
        Value::Array(a) if a.iter().any(|x| x.is_object() || x.is_array()) => {
            for (i, x) in a.iter().enumerate() {
                flatten(x, &format!("{prefix}[{i}]"), out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), v.clone());
        }
    }
}

fn is_timing(key: &str) -> bool {
    key.contains("seconds") || key.contains("per_second") || key.contains("duration")
}

fn show(v: Option<&Value>) -> String {
    match v {
        None => "–".into(),
        Some(Value::Number(n)) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            format!("{}", (x * 1e6).round() / 1e6)
        }
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

fn change(a: Option<&Value>, b: Option<&Value>) -> String {
    match (a.and_then(Value::as_f64), b.and_then(Value::as_f64)) {
        (Some(x), Some(y)) => format!("{:+}", ((y - x) * 1e6).round() / 1e6),
        _ => String::new(),
    }
}

/// One table: the keys of `a` and `b` that differ (or all of them).
fn table(title: &str, a: &Value, b: &Value, all: bool, timings: bool) -> (String, usize) {
    let (mut fa, mut fb) = (BTreeMap::new(), BTreeMap::new());
    flatten(a, "", &mut fa);
    flatten(b, "", &mut fb);
    let mut keys: Vec<&String> = fa.keys().chain(fb.keys()).collect();
    keys.sort();
    keys.dedup();
    let rows: Vec<[String; 4]> = keys
        .into_iter()
        .filter(|k| timings || !is_timing(k))
        .filter(|k| all || fa.get(*k) != fb.get(*k))
        .map(|k| {
            [
                k.clone(),
                show(fa.get(k)),
                show(fb.get(k)),
                change(fa.get(k), fb.get(k)),
            ]
        })
        .collect();
    let n = rows.len();
    if rows.is_empty() {
        return (format!("{title}: no differences\n"), 0);
    }
    let head = [title.to_string(), "A".into(), "B".into(), "Change".into()];
    let mut w = head.clone().map(|h| h.chars().count());
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |r: &[String; 4]| {
        r.iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut s = line(&head) + "\n";
    for r in &rows {
        s += &line(r);
        s += "\n";
    }
    (s, n)
}

/// The diff of `a` and `b` as text.
pub fn diff(
    a: &str,
    b: &str,
    artifacts: &Path,
    all: bool,
    timings: bool,
) -> Result<String, ReportError> {
    let (sa, sb) = (side(a, artifacts)?, side(b, artifacts)?);
    let (m, _) = table("Metric", &sa.metrics, &sb.metrics, all, timings);
    let (p, _) = table("Param", &sa.params, &sb.params, all, timings);
    Ok(format!("A = {}\nB = {}\n\n{m}\n{p}", sa.label, sb.label))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_and_table_show_only_differences() {
        let a = json!({"m": {"x": 0.5, "t": "a", "train_seconds": 3.0}, "l": [1, 2]});
        let b = json!({"m": {"x": 0.75, "t": "a", "train_seconds": 4.0}, "l": [1, 2], "n": 1});
        let (s, n) = table("Metric", &a, &b, false, false);
        assert_eq!(n, 2, "{s}");
        assert!(s.contains("m.x"), "{s}");
        assert!(s.contains("+0.25"), "{s}");
        assert!(s.contains("n "), "{s}");
        assert!(!s.contains("train_seconds"), "{s}");
        let (_, n) = table("Metric", &a, &b, false, true);
        assert_eq!(n, 3);
        let (_, n) = table("Metric", &a, &b, true, true);
        assert_eq!(n, 5);
    }
}
