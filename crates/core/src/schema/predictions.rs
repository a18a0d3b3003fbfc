//! `predictions.parquet`: one row per val and test image (and per model for the SVMs).
//!
//! - A CNN's ([`CnnPrediction`]; train_cnn's model folders, tune's `best/`), written by
//!   train-cnn and read by the report. Columns: `split` (`val` | `test`), `row` (u32, the
//!   image's row in its split's tensors), `id` (the ingested image id), `label` (u8), `p_happy`
//!   (f64, the model's probability of class 0), `pred` (u8, the argmax class).
//! - train_svm's ([`SvmPrediction`]), written by train-svm and read by the report and by
//!   predict (Platt scaling on val). Columns: `model` (`hog/rbf`), `feature`, `kernel`,
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

/// A string column.
fn strings<'a>(rows: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(rows))
}

/// Write the rows; returns the row count.
pub fn write(path: &Path, rows: &[CnnPrediction]) -> Result<usize> {
    crate::parquet_io::write_columns(
        path,
        vec![
            ("split", strings(rows.iter().map(|r| r.split.as_str()))),
            (
                "row",
                Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.row))),
            ),
            ("id", strings(rows.iter().map(|r| r.id.as_str()))),
            (
                "label",
                Arc::new(UInt8Array::from_iter_values(rows.iter().map(|r| r.label))),
            ),
            (
                "p_happy",
                Arc::new(Float64Array::from_iter_values(
                    rows.iter().map(|r| r.p_happy),
                )),
            ),
            (
                "pred",
                Arc::new(UInt8Array::from_iter_values(rows.iter().map(|r| r.pred))),
            ),
        ],
    )
}

/// Read the rows; a missing column or an unknown split names the file.
pub fn read(path: &Path) -> Result<Vec<CnnPrediction>> {
    let (_, batches) = crate::parquet_io::read_batches(path)?;
    let mut rows = Vec::new();
    for b in &batches {
        let split = column::<StringArray>(path, b, "split", "string")?;
        let row = column::<UInt32Array>(path, b, "row", "u32")?;
        let id = column::<StringArray>(path, b, "id", "string")?;
        let label = column::<UInt8Array>(path, b, "label", "u8")?;
        let p = column::<Float64Array>(path, b, "p_happy", "float")?;
        let pred = column::<UInt8Array>(path, b, "pred", "u8")?;
        for i in 0..b.num_rows() {
            let s = split.value(i);
            rows.push(CnnPrediction {
                split: Split::parse(s)
                    .ok_or_else(|| Error::parquet(path, format!("unknown split `{s}`")))?,
                row: row.value(i),
                id: id.value(i).to_string(),
                label: label.value(i),
                p_happy: p.value(i),
                pred: pred.value(i),
            });
        }
    }
    Ok(rows)
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

/// Write train_svm's rows; returns the row count.
pub fn write_svm(path: &Path, rows: &[SvmPrediction]) -> Result<usize> {
    crate::parquet_io::write_columns(
        path,
        vec![
            ("model", strings(rows.iter().map(|r| r.model.as_str()))),
            ("feature", strings(rows.iter().map(|r| r.feature.as_str()))),
            ("kernel", strings(rows.iter().map(|r| r.kernel.as_str()))),
            ("split", strings(rows.iter().map(|r| r.split.as_str()))),
            (
                "row",
                Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.row))),
            ),
            ("id", strings(rows.iter().map(|r| r.id.as_str()))),
            (
                "label",
                Arc::new(UInt8Array::from_iter_values(rows.iter().map(|r| r.label))),
            ),
            (
                "decision",
                Arc::new(Float64Array::from_iter_values(
                    rows.iter().map(|r| r.decision),
                )),
            ),
            (
                "pred",
                Arc::new(UInt8Array::from_iter_values(rows.iter().map(|r| r.pred))),
            ),
        ],
    )
}

/// Read train_svm's rows; a missing column or an unknown split names the file.
pub fn read_svm(path: &Path) -> Result<Vec<SvmPrediction>> {
    let (_, batches) = crate::parquet_io::read_batches(path)?;
    let mut rows = Vec::new();
    for b in &batches {
        let s = |n: &str| column::<StringArray>(path, b, n, "string");
        let (model, feature, kernel, split, id) = (
            s("model")?,
            s("feature")?,
            s("kernel")?,
            s("split")?,
            s("id")?,
        );
        let row = column::<UInt32Array>(path, b, "row", "u32")?;
        let label = column::<UInt8Array>(path, b, "label", "u8")?;
        let decision = column::<Float64Array>(path, b, "decision", "float")?;
        let pred = column::<UInt8Array>(path, b, "pred", "u8")?;
        for i in 0..b.num_rows() {
            let sp = split.value(i);
            rows.push(SvmPrediction {
                model: model.value(i).to_string(),
                feature: feature.value(i).to_string(),
                kernel: kernel.value(i).to_string(),
                split: Split::parse(sp)
                    .ok_or_else(|| Error::parquet(path, format!("unknown split `{sp}`")))?,
                row: row.value(i),
                id: id.value(i).to_string(),
                label: label.value(i),
                decision: decision.value(i),
                pred: pred.value(i),
            });
        }
    }
    Ok(rows)
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
