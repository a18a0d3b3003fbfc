//! Deterministic Parquet read/write. Same batches in, byte-identical file out: fixed
//! compression (LZ4_RAW), fixed `created_by`, no timestamps.
//!
//! LZ4_RAW rather than zstd: the tables are mostly 48x48 pixels, which zstd shrank by about
//! 10%, and parquet's `lz4` feature is pure Rust (lz4_flex) where `zstd` compiles the C library
//! (19 s of a fresh build on 2 cores).

use crate::error::{Error, IoContext, Result};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::fs::File;
use std::path::Path;

fn props() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::LZ4_RAW)
        .set_created_by("fer-pipeline".to_string())
        .build()
}

/// Write `batches` (all with `schema`) to `path`, returning the row count.
pub fn write_batches(path: &Path, schema: SchemaRef, batches: &[RecordBatch]) -> Result<usize> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).at(parent)?;
    }
    let file = File::create(path).at(path)?;
    let mut w =
        ArrowWriter::try_new(file, schema, Some(props())).map_err(|e| Error::parquet(path, e))?;
    let mut rows = 0;
    for b in batches {
        rows += b.num_rows();
        w.write(b).map_err(|e| Error::parquet(path, e))?;
    }
    w.close().map_err(|e| Error::parquet(path, e))?;
    Ok(rows)
}

/// Read every batch of a Parquet file, with its schema.
pub fn read_batches(path: &Path) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let file = File::open(path).at(path)?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| Error::parquet(path, e))?;
    let schema = builder.schema().clone();
    let reader = builder
        .with_batch_size(8192)
        .build()
        .map_err(|e| Error::parquet(path, e))?;
    let mut out = Vec::new();
    for b in reader {
        out.push(b.map_err(|e| Error::parquet(path, e))?);
    }
    Ok((schema, out))
}

/// Build a table from named columns (all the same length) and write it.
pub fn write_columns(path: &Path, columns: Vec<(&str, arrow_array::ArrayRef)>) -> Result<usize> {
    let fields: Vec<arrow_schema::Field> = columns
        .iter()
        .map(|(n, a)| arrow_schema::Field::new(*n, a.data_type().clone(), a.null_count() > 0))
        .collect();
    let schema = std::sync::Arc::new(arrow_schema::Schema::new(fields));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .map_err(|e| Error::parquet(path, e))?;
    write_batches(path, schema, &[batch])
}
