//! A CNN's `predictions.parquet` (train_cnn's model folders, tune's `best/`): one row per val
//! and test image, written by train-cnn and read by the report.
//!
//! Columns: `split` (`val` | `test`), `row` (u32, the image's row in its split's tensors), `id`
//! (the ingested image id), `label` (u8), `p_happy` (f64, the model's probability of class 0),
//! `pred` (u8, the argmax class).

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

/// Write the rows; returns the row count.
pub fn write(path: &Path, rows: &[CnnPrediction]) -> Result<usize> {
    crate::parquet_io::write_columns(
        path,
        vec![
            (
                "split",
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.split.as_str()),
                )) as ArrayRef,
            ),
            (
                "row",
                Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.row))),
            ),
            (
                "id",
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.id.as_str()),
                )),
            ),
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
    }
}
