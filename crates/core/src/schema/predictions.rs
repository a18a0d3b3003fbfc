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

use super::column;
use crate::Split;
use crate::error::{Error, Result};
use arrow::array::{ArrayRef, Float64Array, StringArray, UInt8Array, UInt32Array};
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
}

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
    crate::parquet_io::write_columns(path, cols)
}

/// Read a predictions table: `make` gets a row's `lead` strings (in that order) and its shared
/// fields; a missing column or an unknown split names the file.
fn read_table<R>(
    path: &Path,
    lead: &[&str],
    score: &str,
    make: impl Fn(Vec<String>, Shared<String>) -> R,
) -> Result<Vec<R>> {
    let (_, batches) = crate::parquet_io::read_batches(path)?;
    let mut rows = Vec::new();
    for b in &batches {
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
            ));
        }
    }
    Ok(rows)
}

/// Write the rows; returns the row count.
pub fn write(path: &Path, rows: &[CnnPrediction]) -> Result<usize> {
    write_table(path, rows, &[], "p_happy", |r| Shared {
        split: r.split,
        row: r.row,
        id: &r.id,
        label: r.label,
        score: r.p_happy,
        pred: r.pred,
    })
}

/// Read the rows; a missing column or an unknown split names the file.
pub fn read(path: &Path) -> Result<Vec<CnnPrediction>> {
    read_table(path, &[], "p_happy", |_, s| CnnPrediction {
        split: s.split,
        row: s.row,
        id: s.id,
        label: s.label,
        p_happy: s.score,
        pred: s.pred,
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
}

/// train_svm's leading columns: which model a row is of.
const SVM_LEAD: [&str; 3] = ["model", "feature", "kernel"];

/// Write train_svm's rows; returns the row count.
pub fn write_svm(path: &Path, rows: &[SvmPrediction]) -> Result<usize> {
    let lead: [(&str, fn(&SvmPrediction) -> &str); 3] = [
        (SVM_LEAD[0], |r| &r.model),
        (SVM_LEAD[1], |r| &r.feature),
        (SVM_LEAD[2], |r| &r.kernel),
    ];
    write_table(path, rows, &lead, "decision", |r| Shared {
        split: r.split,
        row: r.row,
        id: &r.id,
        label: r.label,
        score: r.decision,
        pred: r.pred,
    })
}

/// Read train_svm's rows; a missing column or an unknown split names the file.
pub fn read_svm(path: &Path) -> Result<Vec<SvmPrediction>> {
    read_table(path, &SVM_LEAD, "decision", |lead, s| {
        let [model, feature, kernel]: [String; 3] = lead.try_into().expect("three lead columns");
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
        }
    })
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
            },
            CnnPrediction {
                split: Split::Test,
                row: 3,
                id: "test/sad/2.jpg".into(),
                label: 1,
                p_happy: 0.25,
                pred: 1,
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
        }];
        assert_eq!(write_svm(&p, &svm).unwrap(), 1);
        assert_eq!(read_svm(&p).unwrap(), svm);
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("no float column `p_happy`"), "{e}");
    }
}
