//! `epochs.parquet`: one row per finished epoch of a CNN's training (train_cnn's model
//! folders and tune's `best/`), written by train-cnn and read by tune and the report.
//!
//! Columns: `epoch` (u32, 1, 2, 3, ... in order), `train_loss`, `train_acc`, `val_loss`,
//! `val_acc`, `lr`, `seconds` (f64); with more than two classes also `val_macro_f1` (f64, the
//! validation macro F1, which tune ranks seven-class trials by). A binary table has no
//! `val_macro_f1` column, so its bytes are what they were before seven classes.

use super::column;
use arrow_array::{ArrayRef, Float64Array, UInt32Array};
use fer_core::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// One row of `epochs.parquet` (also kept in train-cnn's resume state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_loss: f64,
    pub val_acc: f64,
    pub lr: f64,
    pub seconds: f64,
    /// Validation macro F1 (more than two classes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_macro_f1: Option<f64>,
}

/// Write the rows; returns the row count.
pub fn write(path: &Path, rows: &[EpochRow]) -> Result<usize> {
    let f = |g: fn(&EpochRow) -> f64| {
        Arc::new(Float64Array::from_iter_values(rows.iter().map(g))) as ArrayRef
    };
    let mut cols = vec![
        (
            "epoch",
            Arc::new(UInt32Array::from_iter_values(
                rows.iter().map(|r| r.epoch as u32),
            )) as ArrayRef,
        ),
        ("train_loss", f(|r| r.train_loss)),
        ("train_acc", f(|r| r.train_acc)),
        ("val_loss", f(|r| r.val_loss)),
        ("val_acc", f(|r| r.val_acc)),
        ("lr", f(|r| r.lr)),
        ("seconds", f(|r| r.seconds)),
    ];
    if rows.iter().any(|r| r.val_macro_f1.is_some()) {
        cols.push(("val_macro_f1", f(|r| r.val_macro_f1.unwrap_or(f64::NAN))));
    }
    fer_core::parquet_io::write_columns(path, cols)
}

/// Read the rows; a missing column or epochs out of order name the file.
pub fn read(path: &Path) -> Result<Vec<EpochRow>> {
    let (_, batches) = fer_core::parquet_io::read_batches(path)?;
    let mut rows = Vec::new();
    for b in &batches {
        let f64s = |n: &str| column::<Float64Array>(path, b, n, "float");
        let epoch = column::<UInt32Array>(path, b, "epoch", "u32")?;
        let (tl, ta, vl, va, lr, sec) = (
            f64s("train_loss")?,
            f64s("train_acc")?,
            f64s("val_loss")?,
            f64s("val_acc")?,
            f64s("lr")?,
            f64s("seconds")?,
        );
        let f1 = b
            .column_by_name("val_macro_f1")
            .map(|_| f64s("val_macro_f1"))
            .transpose()?;
        for i in 0..b.num_rows() {
            rows.push(EpochRow {
                epoch: epoch.value(i) as usize,
                train_loss: tl.value(i),
                train_acc: ta.value(i),
                val_loss: vl.value(i),
                val_acc: va.value(i),
                lr: lr.value(i),
                seconds: sec.value(i),
                val_macro_f1: f1.as_ref().map(|c| c.value(i)),
            });
        }
    }
    if rows.iter().enumerate().any(|(i, r)| r.epoch != i + 1) {
        return Err(Error::parquet(path, "epochs are not 1, 2, 3, ... in order"));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_a_gap_is_named() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("epochs.parquet");
        let row = |epoch| EpochRow {
            epoch,
            train_loss: 0.5,
            train_acc: 0.75,
            val_loss: 0.625,
            val_acc: 0.5,
            lr: 1e-3,
            seconds: 1.5,
            val_macro_f1: None,
        };
        let rows = vec![row(1), row(2)];
        assert_eq!(write(&p, &rows).unwrap(), 2);
        assert_eq!(read(&p).unwrap(), rows);
        let seven: Vec<EpochRow> = rows
            .iter()
            .map(|r| EpochRow {
                val_macro_f1: Some(0.375),
                ..r.clone()
            })
            .collect();
        write(&p, &seven).unwrap();
        assert_eq!(read(&p).unwrap(), seven);
        write(&p, &[row(2)]).unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(
            e.contains("epochs.parquet") && e.contains("not 1, 2, 3"),
            "{e}"
        );
    }
}
