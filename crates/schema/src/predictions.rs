//! `predictions.parquet`: one row per val and test image (and per model for the SVMs).
//!
//! - A CNN's ([`CnnPrediction`]; train_cnn's model folders, tune's `best/`), written by
//!   train-cnn and read by the report. Columns: `split` (`val` | `test`), `row` (u32, the
//!   image's row in its split's tensors), `id` (the ingested image id), `label` (u8), `p_happy`
//!   (f64, the model's probability of class 0, **uncalibrated**: the calibration map fitted on
//!   val is in the folder's `calibration.json`), `pred` (u8, the argmax class).
//! - train_svm's ([`SvmPrediction`]), written by train-svm and read by the report (its Platt
//!   maps are in `calibration.json`). Columns: `model` (`hog/rbf`), `feature`, `kernel`,
//!   `split`, `row`, `id`, `label`, `decision` (f64, >= 0 means happy), `pred` (u8).
//! - Seven classes (`label_mode = "emotion7"`): the same columns, `label` and `pred` being
//!   emotion codes, then one f64 column per class in class order: a CNN's `prob_<class>`
//!   (its softmax output; `p_happy` is `prob_happy`), the SVMs' `decision_<class>` (the
//!   one-vs-rest decision of that class; `decision` is `decision_happy`, `pred` the argmax). A
//!   binary table has none of them, so its bytes are what they were before seven classes.

use super::column;
use arrow_array::{ArrayRef, Float64Array, StringArray, UInt8Array, UInt32Array};
use fer_core::Split;
use fer_core::error::{Error, Result};
use std::path::Path;
use std::sync::Arc;

/// One row of a CNN's `predictions.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct CnnPrediction {
    pub split: Split,
    pub row: u32,
    pub id: String,
    pub label: u8,
    pub p_happy: f64,
    pub pred: u8,
    /// Seven classes: the probability of each class, in class order (`prob_<class>`
    /// columns). Empty in a binary table.
    pub probs: Vec<f64>,
}

/// The column of class `name`'s probability in a CNN's table.
pub const PROB_PREFIX: &str = "prob_";
/// The column of class `name`'s one-vs-rest decision in train_svm's table.
pub const DECISION_PREFIX: &str = "decision_";

/// The fields both tables have, in column order around the table's own: `split`, `row`,
/// `id`, `label`, the score (`p_happy` or `decision`), `pred`.
struct Shared<S> {
    split: Split,
    row: u32,
    id: S,
    label: u8,
    score: f64,
    pred: u8,
}

/// Per-class score columns (`<prefix><class>`, f64) after the shared ones: `classes` names
/// them, `scores` gives a row's values in that order. No classes: no columns.
fn class_columns<R>(
    path: &Path,
    rows: &[R],
    prefix: &str,
    classes: &[&str],
    scores: impl Fn(&R) -> &[f64],
) -> Result<Vec<(String, ArrayRef)>> {
    if let Some(bad) = rows.iter().map(&scores).find(|s| s.len() != classes.len()) {
        return Err(Error::parquet(
            path,
            format!(
                "a row has {} per-class scores for {} classes",
                bad.len(),
                classes.len()
            ),
        ));
    }
    Ok(classes
        .iter()
        .enumerate()
        .map(|(k, c)| {
            (
                format!("{prefix}{c}"),
                Arc::new(Float64Array::from_iter_values(
                    rows.iter().map(|r| scores(r)[k]),
                )) as ArrayRef,
            )
        })
        .collect())
}

/// The class names of a table's `<prefix><class>` columns, in column order (none for a binary
/// table).
pub fn classes_of(path: &Path, prefix: &str) -> Result<Vec<String>> {
    let (schema, _) = fer_core::parquet_io::read_batches(path)?;
    Ok(schema
        .fields()
        .iter()
        .filter_map(|f| f.name().strip_prefix(prefix).map(str::to_string))
        .collect())
}

/// A string column.
fn strings<'a>(rows: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(rows))
}

/// Write a predictions table: the `lead` string columns, then the shared ones with the score
/// named `score`; returns the row count.
fn write_table<R>(
    path: &Path,
    rows: &[R],
    lead: &[(&str, fn(&R) -> &str)],
    score: &str,
    shared: impl Fn(&R) -> Shared<&str>,
    extra: Vec<(String, ArrayRef)>,
) -> Result<usize> {
    let sh: Vec<Shared<&str>> = rows.iter().map(&shared).collect();
    let mut cols: Vec<(&str, ArrayRef)> = lead
        .iter()
        .map(|(name, f)| (*name, strings(rows.iter().map(f))))
        .collect();
    cols.extend([
        ("split", strings(sh.iter().map(|r| r.split.as_str()))),
        (
            "row",
            Arc::new(UInt32Array::from_iter_values(sh.iter().map(|r| r.row))) as ArrayRef,
        ),
        ("id", strings(sh.iter().map(|r| r.id))),
        (
            "label",
            Arc::new(UInt8Array::from_iter_values(sh.iter().map(|r| r.label))),
        ),
        (
            score,
            Arc::new(Float64Array::from_iter_values(sh.iter().map(|r| r.score))),
        ),
        (
            "pred",
            Arc::new(UInt8Array::from_iter_values(sh.iter().map(|r| r.pred))),
        ),
    ]);
    cols.extend(extra.iter().map(|(n, a)| (n.as_str(), a.clone())));
    fer_core::parquet_io::write_columns(path, cols)
}

/// Read a predictions table: `make` gets a row's `lead` strings (in that order) and its shared
/// fields; a missing column or an unknown split names the file.
fn read_table<R>(
    path: &Path,
    lead: &[&str],
    score: &str,
    prefix: &str,
    make: impl Fn(Vec<String>, Shared<String>, Vec<f64>) -> R,
) -> Result<Vec<R>> {
    let (schema, batches) = fer_core::parquet_io::read_batches(path)?;
    let class_cols: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| n.starts_with(prefix))
        .collect();
    let mut rows = Vec::new();
    for b in &batches {
        let per_class = class_cols
            .iter()
            .map(|n| column::<Float64Array>(path, b, n, "float"))
            .collect::<Result<Vec<_>>>()?;
        let lead_cols = lead
            .iter()
            .map(|n| column::<StringArray>(path, b, n, "string"))
            .collect::<Result<Vec<_>>>()?;
        let split = column::<StringArray>(path, b, "split", "string")?;
        let row = column::<UInt32Array>(path, b, "row", "u32")?;
        let id = column::<StringArray>(path, b, "id", "string")?;
        let label = column::<UInt8Array>(path, b, "label", "u8")?;
        let sc = column::<Float64Array>(path, b, score, "float")?;
        let pred = column::<UInt8Array>(path, b, "pred", "u8")?;
        for i in 0..b.num_rows() {
            let s = split.value(i);
            let shared = Shared {
                split: Split::parse(s)
                    .ok_or_else(|| Error::parquet(path, format!("unknown split `{s}`")))?,
                row: row.value(i),
                id: id.value(i).to_string(),
                label: label.value(i),
                score: sc.value(i),
                pred: pred.value(i),
            };
            rows.push(make(
                lead_cols.iter().map(|c| c.value(i).to_string()).collect(),
                shared,
                per_class.iter().map(|c| c.value(i)).collect(),
            ));
        }
    }
    Ok(rows)
}

/// Write the rows of a binary model (no `prob_<class>` columns: every row's `probs` must be
/// empty); returns the row count.
pub fn write(path: &Path, rows: &[CnnPrediction]) -> Result<usize> {
    write_classes(path, rows, &[])
}

/// Write the rows with a `prob_<class>` column per name of `classes` (none: a binary table);
/// every row's `probs` has one value per class. Returns the row count.
pub fn write_classes(path: &Path, rows: &[CnnPrediction], classes: &[&str]) -> Result<usize> {
    let extra = class_columns(path, rows, PROB_PREFIX, classes, |r| &r.probs)?;
    write_table(
        path,
        rows,
        &[],
        "p_happy",
        |r| Shared {
            split: r.split,
            row: r.row,
            id: &r.id,
            label: r.label,
            score: r.p_happy,
            pred: r.pred,
        },
        extra,
    )
}

/// Read the rows; a missing column or an unknown split names the file.
pub fn read(path: &Path) -> Result<Vec<CnnPrediction>> {
    read_table(path, &[], "p_happy", PROB_PREFIX, |_, s, probs| {
        CnnPrediction {
            split: s.split,
            row: s.row,
            id: s.id,
            label: s.label,
            p_happy: s.score,
            pred: s.pred,
            probs,
        }
    })
}

/// One row of train_svm's `predictions.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct SvmPrediction {
    pub model: String,
    pub feature: String,
    pub kernel: String,
    pub split: Split,
    pub row: u32,
    pub id: String,
    pub label: u8,
    pub decision: f64,
    pub pred: u8,
    /// Seven classes: each class's one-vs-rest decision, in class order (`decision_<class>`
    /// columns). Empty in a binary table.
    pub decisions: Vec<f64>,
}

/// train_svm's leading columns: which model a row is of.
const SVM_LEAD: [&str; 3] = ["model", "feature", "kernel"];

/// Write train_svm's rows of binary models (every row's `decisions` empty); returns the row
/// count.
pub fn write_svm(path: &Path, rows: &[SvmPrediction]) -> Result<usize> {
    write_svm_classes(path, rows, &[])
}

/// Write train_svm's rows with a `decision_<class>` column per name of `classes` (none: a
/// binary table). Returns the row count.
pub fn write_svm_classes(path: &Path, rows: &[SvmPrediction], classes: &[&str]) -> Result<usize> {
    let extra = class_columns(path, rows, DECISION_PREFIX, classes, |r| &r.decisions)?;
    let lead: [(&str, fn(&SvmPrediction) -> &str); 3] = [
        (SVM_LEAD[0], |r| &r.model),
        (SVM_LEAD[1], |r| &r.feature),
        (SVM_LEAD[2], |r| &r.kernel),
    ];
    write_table(
        path,
        rows,
        &lead,
        "decision",
        |r| Shared {
            split: r.split,
            row: r.row,
            id: &r.id,
            label: r.label,
            score: r.decision,
            pred: r.pred,
        },
        extra,
    )
}

/// Read train_svm's rows; a missing column or an unknown split names the file.
pub fn read_svm(path: &Path) -> Result<Vec<SvmPrediction>> {
    // `decision_` also prefixes no shared column (`decision` has no underscore).
    read_table(
        path,
        &SVM_LEAD,
        "decision",
        DECISION_PREFIX,
        |lead, s, decisions| {
            let [model, feature, kernel]: [String; 3] =
                lead.try_into().expect("three lead columns");
            SvmPrediction {
                model,
                feature,
                kernel,
                split: s.split,
                row: s.row,
                id: s.id,
                label: s.label,
                decision: s.score,
                pred: s.pred,
                decisions,
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("predictions.parquet");
        let rows = vec![
            CnnPrediction {
                split: Split::Val,
                row: 0,
                id: "train/happy/1.jpg".into(),
                label: 0,
                p_happy: 0.875,
                pred: 0,
                probs: vec![],
            },
            CnnPrediction {
                split: Split::Test,
                row: 3,
                id: "test/sad/2.jpg".into(),
                label: 1,
                p_happy: 0.25,
                pred: 1,
                probs: vec![],
            },
        ];
        assert_eq!(write(&p, &rows).unwrap(), 2);
        assert_eq!(read(&p).unwrap(), rows);
        let svm = vec![SvmPrediction {
            model: "hog/rbf".into(),
            feature: "hog".into(),
            kernel: "rbf".into(),
            split: Split::Test,
            row: 7,
            id: "test/happy/9.jpg".into(),
            label: 0,
            decision: 0.75,
            pred: 0,
            decisions: vec![],
        }];
        assert_eq!(write_svm(&p, &svm).unwrap(), 1);
        assert_eq!(read_svm(&p).unwrap(), svm);
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("no float column `p_happy`"), "{e}");
    }

    #[test]
    fn seven_class_rows_round_trip_with_their_class_columns() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("predictions.parquet");
        let classes = [
            "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral",
        ];
        let probs = vec![0.1, 0.0, 0.05, 0.6, 0.1, 0.05, 0.1];
        let rows = vec![CnnPrediction {
            split: Split::Test,
            row: 0,
            id: "test/happy/1.jpg".into(),
            label: 3,
            p_happy: 0.6,
            pred: 3,
            probs,
        }];
        assert_eq!(write_classes(&p, &rows, &classes).unwrap(), 1);
        assert_eq!(read(&p).unwrap(), rows);
        assert_eq!(classes_of(&p, PROB_PREFIX).unwrap(), classes);
        // A binary writer refuses rows that carry per-class scores.
        let e = write(&p, &rows).unwrap_err().to_string();
        assert!(e.contains("7 per-class scores for 0 classes"), "{e}");
        let svm = vec![SvmPrediction {
            model: "hog/linear".into(),
            feature: "hog".into(),
            kernel: "linear".into(),
            split: Split::Val,
            row: 2,
            id: "train/sad/3.jpg".into(),
            label: 4,
            decision: -0.5,
            pred: 4,
            decisions: vec![-1.0, -2.0, -0.7, -0.5, 0.3, -1.1, -0.2],
        }];
        assert_eq!(write_svm_classes(&p, &svm, &classes).unwrap(), 1);
        assert_eq!(read_svm(&p).unwrap(), svm);
        assert_eq!(classes_of(&p, DECISION_PREFIX).unwrap(), classes);
    }
}
