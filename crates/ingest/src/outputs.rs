//! The stage's tables and text besides the dataset: rejects, the summary, counts per class.

use crate::params::Source;
use crate::source::Reject;
use fer_core::Split;
use fer_core::dataset::ImageDataset;
use std::sync::Arc;

pub(super) fn write_rejects(path: &std::path::Path, rejects: &[Reject]) -> fer_core::Result<usize> {
    use arrow_array::{ArrayRef, StringArray};
    fer_core::parquet_io::write_columns(
        path,
        vec![
            (
                "file",
                Arc::new(StringArray::from_iter_values(
                    rejects.iter().map(|r| r.file.as_str()),
                )) as ArrayRef,
            ),
            (
                "reason",
                Arc::new(StringArray::from_iter_values(
                    rejects.iter().map(|r| r.reason.as_str()),
                )),
            ),
        ],
    )
}

pub(super) fn summary(
    ds: &ImageDataset,
    source: Source,
    pool: (usize, usize),
    rejects: &[Reject],
) -> serde_json::Value {
    let names = ds.label_mode.class_names();
    let mut counts = serde_json::Map::new();
    for split in Split::ALL {
        let mut m = serde_json::Map::new();
        for (c, name) in names.iter().enumerate() {
            m.insert(name.to_string(), ds.count(split, c as u8).into());
        }
        counts.insert(split.as_str().into(), m.into());
    }
    serde_json::json!({
        "source": source,
        "label_mode": ds.label_mode.as_str(),
        "rows": ds.records.len(),
        "counts": counts,
        "images_read": pool.0,
        "rejected": pool.1,
        "reject_examples": rejects.iter().take(5).map(|r| format!("{}: {}", r.file, r.reason)).collect::<Vec<_>>(),
    })
}

/// Counts per split and class as a small text table.
pub fn counts_table(ds: &ImageDataset) -> String {
    let names = ds.label_mode.class_names();
    let mut s = format!("{:<10}", "split");
    for n in &names {
        s += &format!("{n:>11}");
    }
    s += &format!("{:>9}\n", "total");
    for split in Split::ALL {
        s += &format!("{:<10}", split.as_str());
        let mut total = 0;
        for c in 0..names.len() {
            let n = ds.count(split, c as u8);
            total += n;
            s += &format!("{n:>11}");
        }
        s += &format!("{total:>9}\n");
    }
    s
}
