//! Fixture helpers shared by train-svm's integration tests.

use arrow_array::{ArrayRef, StringArray, UInt8Array, UInt32Array};
use std::path::Path;
use std::sync::Arc;

/// A row of preprocess's `index.parquet`: split, row in its split, id, label.
pub type IndexRow = (String, u32, String, u8);

/// Write preprocess's `index.parquet` in `dir` from `index`, naming each label's emotion with
/// `emotion`; returns the row count.
pub fn write_index(
    dir: &Path,
    index: &[IndexRow],
    emotion: impl Fn(u8) -> &'static str,
) -> fer_core::Result<usize> {
    fer_core::parquet_io::write_columns(
        &dir.join("index.parquet"),
        vec![
            (
                "split",
                Arc::new(StringArray::from_iter_values(index.iter().map(|r| &r.0))) as ArrayRef,
            ),
            (
                "row",
                Arc::new(UInt32Array::from_iter_values(index.iter().map(|r| r.1))),
            ),
            (
                "id",
                Arc::new(StringArray::from_iter_values(index.iter().map(|r| &r.2))),
            ),
            (
                "label",
                Arc::new(UInt8Array::from_iter_values(index.iter().map(|r| r.3))),
            ),
            (
                "emotion",
                Arc::new(StringArray::from_iter_values(
                    index.iter().map(|r| emotion(r.3)),
                )),
            ),
        ],
    )
}
