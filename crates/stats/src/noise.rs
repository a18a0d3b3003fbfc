//! The label-noise audit: FER2013's label (one annotator) against FERPlus's 10 votes, for the
//! images that carry votes (`images.parquet`'s `ferplus_votes`).
//!
//! Writes `label_noise.parquet` (FER2013 emotion, FERPlus outcome, images: the confusion per
//! emotion in long form) and `label_noise.png` (the most disputed faces: per FER2013 emotion,
//! the faces whose FER2013 label got the smallest share of FERPlus's emotion votes, ties by
//! id); returns the `label_noise` part of `stats.json`. Without votes (synthetic data, or no
//! FERPlus folder) it writes nothing and says "not available".
//!
//! The FERPlus outcome of an image is the plurality of its 8 emotion votes, or why there is
//! none (the order of `fer_core::ferplus`'s rules): `no votes`, `not a face` (NF votes at
//! least the top emotion's), `unknown` (likewise), `tie` (two emotions share the top).

use crate::StatsError;
use arrow_array::{ArrayRef, StringArray, UInt64Array};
use fer_core::dataset::{ImageDataset, ImageRecord};
use fer_core::ferplus::{self, Reject, Votes};
use fer_core::parquet_io::write_columns;
use fer_core::stage::Outputs;
use fer_core::{Emotion, Split};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// FERPlus's emotion columns, in file order.
pub use ferplus::VOTE_CLASSES as FERPLUS_EMOTIONS;

/// The FERPlus outcome of one image's votes (see the module doc): `fer_core::ferplus`'s
/// plurality of the 8 columns, or its reason for none.
pub fn outcome(v: &Votes) -> &'static str {
    match ferplus::plurality(v) {
        Ok(i) => FERPLUS_EMOTIONS[i],
        Err(Reject::NoVotes) => "no votes",
        Err(Reject::NotAFace) => "not a face",
        Err(Reject::Unknown) => "unknown",
        Err(_) => "tie",
    }
}

/// The share of an image's emotion votes that went to FER2013's own label (0 without votes).
pub fn agreement(r: &ImageRecord, v: &Votes) -> f64 {
    v.share_of(r.emotion).unwrap_or(0.0)
}

/// Faces per emotion row of the gallery.
const GALLERY_PER_EMOTION: usize = 6;

pub(crate) fn label_noise_section(
    ds: &ImageDataset,
    dir: &Path,
    out: &mut Outputs,
) -> Result<Value, StatsError> {
    let voted: Vec<(&ImageRecord, Votes)> = ds
        .records
        .iter()
        .filter_map(|r| r.ferplus_votes.map(|v| (r, v)))
        .collect();
    if voted.is_empty() {
        return Ok(json!("not available"));
    }
    // Confusion: FER2013 emotion -> FERPlus outcome -> images.
    let mut confusion: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for (r, v) in &voted {
        *confusion
            .entry(r.emotion.as_str())
            .or_default()
            .entry(outcome(v))
            .or_default() += 1;
    }
    let cells: Vec<(&str, &str, u64)> = confusion
        .iter()
        .flat_map(|(e, row)| row.iter().map(move |(o, n)| (*e, *o, *n)))
        .collect();
    let n = write_columns(
        &dir.join("label_noise.parquet"),
        vec![
            (
                "fer2013",
                Arc::new(StringArray::from_iter_values(cells.iter().map(|c| c.0))) as ArrayRef,
            ),
            (
                "ferplus",
                Arc::new(StringArray::from_iter_values(cells.iter().map(|c| c.1))),
            ),
            (
                "images",
                Arc::new(UInt64Array::from_iter_values(cells.iter().map(|c| c.2))),
            ),
        ],
    )?;
    out.table("label_noise.parquet", n);
    let agree_by_emotion: BTreeMap<&str, f64> = confusion
        .iter()
        .map(|(e, row)| {
            let total: u64 = row.values().sum();
            (*e, *row.get(e).unwrap_or(&0) as f64 / total.max(1) as f64)
        })
        .collect();
    // Binary disagreement per split, on the images both truths label.
    let mut binary: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (r, v) in &voted {
        if let Ok(fp) = ferplus::binary_label(v) {
            let fp_happy = fp == fer_core::BinaryLabel::Happy;
            let e = binary.entry(r.split.as_str()).or_default();
            e.0 += 1;
            e.1 += u64::from(fp_happy != (r.emotion == Emotion::Happy));
        }
    }
    // The gallery: the most disputed faces per FER2013 emotion.
    let mut disputed = Vec::new();
    let mut rows: Vec<(String, Vec<&[u8]>)> = Vec::new();
    for e in Emotion::ALL {
        let mut of_e: Vec<&(&ImageRecord, Votes)> =
            voted.iter().filter(|(r, _)| r.emotion == e).collect();
        of_e.sort_by(|a, b| {
            agreement(a.0, &a.1)
                .total_cmp(&agreement(b.0, &b.1))
                .then_with(|| a.0.id.cmp(&b.0.id))
        });
        of_e.truncate(GALLERY_PER_EMOTION);
        if of_e.is_empty() {
            continue;
        }
        rows.push((
            format!("FER2013: {e}"),
            of_e.iter().map(|(r, _)| r.pixels.as_slice()).collect(),
        ));
        for (r, v) in of_e {
            disputed.push(json!({
                "id": r.id,
                "split": r.split.as_str(),
                "fer2013": e.as_str(),
                "ferplus": outcome(v),
                "votes_for_fer2013_label": v.of(e),
                "votes": v.to_bytes().to_vec(),
            }));
        }
    }
    fer_core::plot::image_grid(
        &dir.join("label_noise.png"),
        "Most disputed faces: FER2013's label against FERPlus's 10 votes",
        &rows,
        ds.side as u32,
        2,
    )?;
    out.file("label_noise.png");
    Ok(json!({
        "images_with_votes": voted.len(),
        "fer2013_label_is_ferplus_plurality": agree_by_emotion,
        "confusion": confusion,
        "binary_disagreement": binary
            .iter()
            .map(|(s, (n, d))| (s.to_string(), json!({"images": n, "disagree": d, "rate": *d as f64 / (*n).max(1) as f64})))
            .collect::<serde_json::Map<_, _>>(),
        "test_binary_disagreement": binary.get(Split::Test.as_str()).map(|(n, d)| *d as f64 / (*n).max(1) as f64),
        "disputed": disputed,
        "vote_columns": "neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn votes(emotions: [u8; 8], unknown: u8, not_face: u8) -> Votes {
        Votes {
            emotions,
            unknown,
            not_face,
        }
    }

    #[test]
    fn outcomes_follow_the_rule_order() {
        assert_eq!(outcome(&votes([0; 8], 3, 0)), "no votes");
        assert_eq!(
            outcome(&votes([2, 3, 0, 0, 0, 0, 0, 0], 0, 3)),
            "not a face"
        );
        assert_eq!(outcome(&votes([2, 3, 0, 0, 0, 0, 0, 0], 4, 0)), "unknown");
        assert_eq!(outcome(&votes([3, 3, 0, 0, 0, 0, 0, 1], 0, 0)), "tie");
        assert_eq!(outcome(&votes([1, 1, 0, 0, 0, 0, 0, 6], 0, 0)), "contempt");
        assert_eq!(outcome(&votes([1, 7, 0, 2, 0, 0, 0, 0], 0, 0)), "happy");
    }
}
