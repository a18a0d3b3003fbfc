//! The image dataset: its Arrow schema and Parquet read/write.
//!
//! Columns: `id` (from the source file name), `split` (train/val/test), `usage` (FER2013's
//! Training/PublicTest/PrivateTest, or Synthetic), `emotion` (name), `emotion_code` (fer2013.csv
//! code), `label` (binary 0 = happy / 1 = not happy, or the emotion code in `emotion7` mode),
//! `pixels` (`FixedSizeBinary(side*side)`, row-major 8-bit gray), `source` (path relative to the
//! data folder, or `fer2013.csv:<line>`), `ferplus_label` (nullable: the FERPlus label in the
//! label mode, null without FERPlus votes or where a rule of `fer_core::ferplus` rejects them),
//! `ferplus_votes` (nullable `FixedSizeBinary(10)`: the 8 emotion, unknown and NF vote counts).
//! Schema metadata: `fer.image_side`, `fer.label_mode`, `fer.labels` (which truth `label`
//! holds: `fer2013`, or `ferplus` with FER2013's own label still in `emotion`).
//!
//! Files of schema version 1 (no FERPlus columns, no `fer.labels`) read as FER2013-labelled
//! without votes.

use crate::error::{Error, Result};
use crate::ferplus::Votes;
use crate::label::{Emotion, LabelMode, LabelSource};
use crate::parquet_io;
use crate::split::Split;
use arrow_array::{Array, ArrayRef, FixedSizeBinaryArray, RecordBatch, StringArray, UInt8Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

pub const SCHEMA_VERSION: &str = "2";

/// One image row.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRecord {
    pub id: String,
    pub split: Split,
    pub usage: String,
    pub emotion: Emotion,
    pub label: u8,
    pub pixels: Vec<u8>,
    pub source: String,
    /// FERPlus's label in the label mode (`None`: no votes, or the votes give no label).
    pub ferplus_label: Option<u8>,
    /// FERPlus's 10 votes (`None`: the image has no FERPlus row).
    pub ferplus_votes: Option<Votes>,
}

impl ImageRecord {
    /// FER2013's own label of this image in `mode` (what `label` holds with FER2013 labels).
    pub fn fer2013_label(&self, mode: LabelMode) -> u8 {
        mode.label_of(self.emotion)
    }
}

/// A whole dataset: all splits, one side length, one label mode, one label source.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageDataset {
    pub side: usize,
    pub label_mode: LabelMode,
    pub labels: LabelSource,
    pub records: Vec<ImageRecord>,
}

/// The Arrow schema of an image dataset with images of `side` x `side` pixels.
pub fn image_schema(side: usize, mode: LabelMode, labels: LabelSource) -> SchemaRef {
    let meta: HashMap<String, String> = [
        ("fer.image_side".to_string(), side.to_string()),
        ("fer.label_mode".to_string(), mode.as_str().to_string()),
        ("fer.labels".to_string(), labels.as_str().to_string()),
        ("fer.schema_version".to_string(), SCHEMA_VERSION.to_string()),
    ]
    .into_iter()
    .collect();
    Arc::new(
        Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("split", DataType::Utf8, false),
            Field::new("usage", DataType::Utf8, false),
            Field::new("emotion", DataType::Utf8, false),
            Field::new("emotion_code", DataType::UInt8, false),
            Field::new("label", DataType::UInt8, false),
            Field::new(
                "pixels",
                DataType::FixedSizeBinary((side * side) as i32),
                false,
            ),
            Field::new("source", DataType::Utf8, false),
            Field::new("ferplus_label", DataType::UInt8, true),
            Field::new("ferplus_votes", DataType::FixedSizeBinary(10), true),
        ])
        .with_metadata(meta),
    )
}

impl ImageDataset {
    pub fn count(&self, split: Split, label: u8) -> usize {
        self.records
            .iter()
            .filter(|r| r.split == split && r.label == label)
            .count()
    }

    /// Whether any image carries FERPlus votes (false for synthetic data or without FERPlus).
    pub fn has_ferplus(&self) -> bool {
        self.records.iter().any(|r| r.ferplus_votes.is_some())
    }

    /// Write as Parquet; returns the row count.
    pub fn write_parquet(&self, path: &Path) -> Result<usize> {
        let schema = image_schema(self.side, self.label_mode, self.labels);
        let mut batches = Vec::new();
        for chunk in self.records.chunks(8192) {
            let n = self.side * self.side;
            for r in chunk {
                if r.pixels.len() != n {
                    return Err(Error::Other(format!(
                        "{}: image {} has {} pixels, expected {n}",
                        path.display(),
                        r.id,
                        r.pixels.len()
                    )));
                }
            }
            let cols: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from_iter_values(
                    chunk.iter().map(|r| r.id.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    chunk.iter().map(|r| r.split.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    chunk.iter().map(|r| r.usage.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    chunk.iter().map(|r| r.emotion.as_str()),
                )),
                Arc::new(UInt8Array::from_iter_values(
                    chunk.iter().map(|r| r.emotion.code()),
                )),
                Arc::new(UInt8Array::from_iter_values(chunk.iter().map(|r| r.label))),
                Arc::new(
                    FixedSizeBinaryArray::try_from_iter(chunk.iter().map(|r| r.pixels.as_slice()))
                        .map_err(|e| Error::parquet(path, e))?,
                ),
                Arc::new(StringArray::from_iter_values(
                    chunk.iter().map(|r| r.source.as_str()),
                )),
                Arc::new(UInt8Array::from_iter(chunk.iter().map(|r| r.ferplus_label))),
                Arc::new(
                    FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                        chunk.iter().map(|r| r.ferplus_votes.map(|v| v.to_bytes())),
                        10,
                    )
                    .map_err(|e| Error::parquet(path, e))?,
                ),
            ];
            batches.push(
                RecordBatch::try_new(schema.clone(), cols).map_err(|e| Error::parquet(path, e))?,
            );
        }
        if batches.is_empty() {
            batches.push(RecordBatch::new_empty(schema.clone()));
        }
        parquet_io::write_batches(path, schema, &batches)
    }

    /// Read a dataset written by [`ImageDataset::write_parquet`], checking its schema.
    pub fn read_parquet(path: &Path) -> Result<ImageDataset> {
        let (schema, batches) = parquet_io::read_batches(path)?;
        let bad = |m: String| Error::Parquet {
            path: path.to_path_buf(),
            message: m,
        };
        let meta = schema.metadata();
        let side: usize = meta
            .get("fer.image_side")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("not an image dataset (no fer.image_side metadata)".into()))?;
        let label_mode = meta
            .get("fer.label_mode")
            .and_then(|s| LabelMode::parse(s))
            .ok_or_else(|| bad("not an image dataset (no fer.label_mode metadata)".into()))?;
        let labels = match meta.get("fer.labels") {
            None => LabelSource::Fer2013,
            Some(s) => LabelSource::parse(s)
                .ok_or_else(|| bad(format!("unknown label source `{s}` in fer.labels")))?,
        };
        let mut records = Vec::new();
        for b in &batches {
            let col = |name: &str| {
                b.column_by_name(name)
                    .cloned()
                    .ok_or_else(|| bad(format!("missing column `{name}`")))
            };
            let s = |name: &str| -> Result<StringArray> {
                col(name)?
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .cloned()
                    .ok_or_else(|| bad(format!("column `{name}` is not Utf8")))
            };
            let u = |name: &str| -> Result<UInt8Array> {
                col(name)?
                    .as_any()
                    .downcast_ref::<UInt8Array>()
                    .cloned()
                    .ok_or_else(|| bad(format!("column `{name}` is not UInt8")))
            };
            let (id, split, usage, source) = (s("id")?, s("split")?, s("usage")?, s("source")?);
            let (code, label) = (u("emotion_code")?, u("label")?);
            let pix = col("pixels")?;
            let pix = pix
                .as_any()
                .downcast_ref::<FixedSizeBinaryArray>()
                .ok_or_else(|| bad("column `pixels` is not FixedSizeBinary".into()))?;
            let fp_label = match b.column_by_name("ferplus_label") {
                None => None,
                Some(_) => Some(u("ferplus_label")?),
            };
            let fp_votes = match b.column_by_name("ferplus_votes") {
                None => None,
                Some(c) => Some(
                    c.as_any()
                        .downcast_ref::<FixedSizeBinaryArray>()
                        .filter(|a| a.value_length() == 10)
                        .cloned()
                        .ok_or_else(|| {
                            bad("column `ferplus_votes` is not FixedSizeBinary(10)".into())
                        })?,
                ),
            };
            if pix.value_length() as usize != side * side {
                return Err(bad(format!(
                    "pixels are {} bytes, expected {}",
                    pix.value_length(),
                    side * side
                )));
            }
            for i in 0..b.num_rows() {
                let split_v = Split::parse(split.value(i)).ok_or_else(|| {
                    bad(format!(
                        "row {}: unknown split `{}`",
                        records.len(),
                        split.value(i)
                    ))
                })?;
                let emotion = Emotion::from_code(code.value(i)).ok_or_else(|| {
                    bad(format!(
                        "row {}: unknown emotion code {}",
                        records.len(),
                        code.value(i)
                    ))
                })?;
                records.push(ImageRecord {
                    id: id.value(i).to_string(),
                    split: split_v,
                    usage: usage.value(i).to_string(),
                    emotion,
                    label: label.value(i),
                    pixels: pix.value(i).to_vec(),
                    source: source.value(i).to_string(),
                    ferplus_label: fp_label
                        .as_ref()
                        .and_then(|a| a.is_valid(i).then(|| a.value(i))),
                    ferplus_votes: fp_votes
                        .as_ref()
                        .and_then(|a| a.is_valid(i).then(|| a.value(i)))
                        .and_then(Votes::from_bytes),
                });
            }
        }
        Ok(ImageDataset {
            side,
            label_mode,
            labels,
            records,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, split: Split, e: Emotion, fill: u8) -> ImageRecord {
        ImageRecord {
            id: id.into(),
            split,
            usage: "Training".into(),
            emotion: e,
            label: LabelMode::Binary.label_of(e),
            pixels: vec![fill; 48 * 48],
            source: format!("train/{e}/{id}.jpg"),
            ferplus_label: None,
            ferplus_votes: None,
        }
    }

    #[test]
    fn round_trip_and_deterministic_bytes() {
        let mut ds = ImageDataset {
            side: 48,
            label_mode: LabelMode::Binary,
            labels: LabelSource::Fer2013,
            records: vec![
                rec("a", Split::Train, Emotion::Happy, 3),
                rec("b", Split::Val, Emotion::Sad, 200),
                rec("c", Split::Test, Emotion::Neutral, 0),
            ],
        };
        ds.records[1].ferplus_label = Some(0);
        ds.records[1].ferplus_votes = Some(Votes {
            emotions: [1, 6, 0, 2, 0, 0, 0, 1],
            unknown: 0,
            not_face: 0,
        });
        ds.records[2].ferplus_votes = Some(Votes {
            not_face: 10,
            ..Votes::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let p1 = dir.path().join("a.parquet");
        let p2 = dir.path().join("b.parquet");
        assert_eq!(ds.write_parquet(&p1).unwrap(), 3);
        ds.write_parquet(&p2).unwrap();
        assert_eq!(std::fs::read(&p1).unwrap(), std::fs::read(&p2).unwrap());
        let back = ImageDataset::read_parquet(&p1).unwrap();
        assert_eq!(back, ds);
        assert_eq!(back.count(Split::Train, 0), 1);
    }

    #[test]
    fn wrong_pixel_count_is_an_error() {
        let mut r = rec("a", Split::Train, Emotion::Happy, 1);
        r.pixels.pop();
        let ds = ImageDataset {
            side: 48,
            label_mode: LabelMode::Binary,
            labels: LabelSource::Fer2013,
            records: vec![r],
        };
        let dir = tempfile::tempdir().unwrap();
        let err = ds
            .write_parquet(&dir.path().join("x.parquet"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("image a has 2303 pixels"), "{err}");
    }
}
