//! A Parquet file's columns by name, for the loaders of `load/`: errors name the file, the
//! column and the stage to run again.

use super::bad_in;
use crate::ReportError;
use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch, StringArray, UInt32Array};
use std::path::{Path, PathBuf};

/// A Parquet file's batches, columns looked up by name with errors naming file and column.
pub(super) struct Table {
    path: PathBuf,
    stage: String,
    batches: Vec<RecordBatch>,
}

impl Table {
    pub(super) fn read(stage: &str, path: &Path) -> Result<Table, ReportError> {
        let (_, batches) = fer_core::parquet_io::read_batches(path)
            .map_err(|e| bad_in(stage, path, e.to_string()))?;
        Ok(Table {
            path: path.to_path_buf(),
            stage: stage.to_string(),
            batches,
        })
    }
    pub(super) fn col(&self, name: &str) -> Result<Vec<ArrayRef>, ReportError> {
        self.batches
            .iter()
            .map(|b| {
                b.column_by_name(name)
                    .cloned()
                    .ok_or_else(|| bad_in(&self.stage, &self.path, format!("no column `{name}`")))
            })
            .collect()
    }
    pub(super) fn typed<T: Array + Clone + 'static, V>(
        &self,
        name: &str,
        ty: &str,
        get: impl Fn(&T, usize) -> V,
    ) -> Result<Vec<V>, ReportError> {
        let mut out = Vec::new();
        for a in self.col(name)? {
            let t = a.as_any().downcast_ref::<T>().ok_or_else(|| {
                bad_in(
                    &self.stage,
                    &self.path,
                    format!("column `{name}` is not {ty}"),
                )
            })?;
            for i in 0..t.len() {
                out.push(get(t, i));
            }
        }
        Ok(out)
    }
    pub(super) fn strings(&self, name: &str) -> Result<Vec<String>, ReportError> {
        self.typed::<StringArray, _>(name, "Utf8", |a, i| a.value(i).to_string())
    }
    pub(super) fn opt_strings(&self, name: &str) -> Result<Vec<Option<String>>, ReportError> {
        self.typed::<StringArray, _>(name, "Utf8", |a, i| {
            (!a.is_null(i)).then(|| a.value(i).to_string())
        })
    }
    pub(super) fn u32s(&self, name: &str) -> Result<Vec<u32>, ReportError> {
        self.typed::<UInt32Array, _>(name, "UInt32", |a, i| a.value(i))
    }
    pub(super) fn f64s(&self, name: &str) -> Result<Vec<f64>, ReportError> {
        self.typed::<Float64Array, _>(name, "Float64", |a, i| a.value(i))
    }
}
