//! Data-quality audit: exact and near duplicates (imageproc's DCT pHash, confirmed by pixel
//! RMS), and blank / near-constant images; `audit_section` writes `duplicates.parquet`,
//! `duplicates.png`, `blank.parquet`, `blank.png` and returns the `audit` part of `stats.json`.

use crate::{StatsError, StatsParams};
use arrow_array::{ArrayRef, Float64Array, StringArray, UInt8Array, UInt32Array};
use fer_core::Split;
use fer_core::dataset::{ImageDataset, ImageRecord};
use fer_core::parquet_io::write_columns;
use fer_core::stage::Outputs;
use image::{ImageBuffer, Luma};
use imageproc::image_hash::{PHash, phash};
use rayon::prelude::*;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// A pair of images that are the same picture (exact) or nearly so (near).
#[derive(Debug, Clone, PartialEq)]
pub struct DupPair {
    pub a: usize,
    pub b: usize,
    pub hamming: u32,
    pub rms: f64,
    pub exact: bool,
}

pub fn hashes(records: &[ImageRecord], side: usize) -> Vec<PHash> {
    records
        .par_iter()
        .map(|r| {
            let img: ImageBuffer<Luma<f32>, Vec<f32>> =
                ImageBuffer::from_fn(side as u32, side as u32, |x, y| {
                    Luma([r.pixels[y as usize * side + x as usize] as f32 / 255.0])
                });
            phash(&img)
        })
        .collect()
}

pub fn rms(a: &[u8], b: &[u8]) -> f64 {
    let s: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum();
    (s / a.len() as f64).sqrt()
}

/// All pairs `(i < j)` within `max_hamming` pHash bits whose pixel RMS is at most `max_rms`.
/// Brute force over pHash (64-bit popcount), which takes well under a second for FER2013.
/// Images flagged `flat` (near-constant) have DCT coefficients near zero, so their pHash bits
/// are noise: two flat images skip the pHash filter and are compared by RMS alone.
pub fn near_pairs(
    records: &[ImageRecord],
    hashes: &[PHash],
    flat: &[bool],
    max_hamming: u32,
    max_rms: f64,
) -> Vec<DupPair> {
    let n = records.len();
    let mut pairs: Vec<DupPair> = (0..n)
        .into_par_iter()
        .flat_map_iter(|i| {
            let hi = hashes[i];
            ((i + 1)..n).filter_map(move |j| {
                let d = hi.hamming_distance(hashes[j]);
                if d > max_hamming && !(flat[i] && flat[j]) {
                    return None;
                }
                let (pa, pb) = (&records[i].pixels, &records[j].pixels);
                let exact = pa == pb;
                let r = if exact { 0.0 } else { rms(pa, pb) };
                (r <= max_rms).then_some(DupPair {
                    a: i,
                    b: j,
                    hamming: d,
                    rms: r,
                    exact,
                })
            })
        })
        .collect();
    pairs.sort_by_key(|p| (p.a, p.b));
    pairs
}

/// Pixel standard deviation of one image.
pub fn pixel_std(p: &[u8]) -> f64 {
    let n = p.len() as f64;
    let m = p.iter().map(|&v| v as f64).sum::<f64>() / n;
    (p.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n).sqrt()
}

pub(crate) fn audit_section(
    ds: &ImageDataset,
    sp: &StatsParams,
    dir: &Path,
    out: &mut Outputs,
) -> Result<serde_json::Value, StatsError> {
    let recs: &[ImageRecord] = &ds.records;
    let hashes = hashes(recs, ds.side);
    let stds: Vec<f64> = recs.iter().map(|r| pixel_std(&r.pixels)).collect();
    let flat: Vec<bool> = stds.iter().map(|&s| s < sp.blank_std).collect();
    let pairs = near_pairs(recs, &hashes, &flat, sp.near_dup_hamming, sp.near_dup_rms);
    let scope = |p: &DupPair| {
        let (a, b) = (recs[p.a].split, recs[p.b].split);
        if a == b {
            format!("within {a}")
        } else {
            format!("{}~{}", a.min(b), a.max(b))
        }
    };
    let n = write_columns(
        &dir.join("duplicates.parquet"),
        vec![
            (
                "id_a",
                Arc::new(StringArray::from_iter_values(
                    pairs.iter().map(|p| recs[p.a].id.as_str()),
                )) as ArrayRef,
            ),
            (
                "split_a",
                Arc::new(StringArray::from_iter_values(
                    pairs.iter().map(|p| recs[p.a].split.as_str()),
                )),
            ),
            (
                "label_a",
                Arc::new(UInt8Array::from_iter_values(
                    pairs.iter().map(|p| recs[p.a].label),
                )),
            ),
            (
                "id_b",
                Arc::new(StringArray::from_iter_values(
                    pairs.iter().map(|p| recs[p.b].id.as_str()),
                )),
            ),
            (
                "split_b",
                Arc::new(StringArray::from_iter_values(
                    pairs.iter().map(|p| recs[p.b].split.as_str()),
                )),
            ),
            (
                "label_b",
                Arc::new(UInt8Array::from_iter_values(
                    pairs.iter().map(|p| recs[p.b].label),
                )),
            ),
            (
                "kind",
                Arc::new(StringArray::from_iter_values(
                    pairs.iter().map(|p| if p.exact { "exact" } else { "near" }),
                )),
            ),
            (
                "hamming",
                Arc::new(UInt32Array::from_iter_values(
                    pairs.iter().map(|p| p.hamming),
                )),
            ),
            (
                "rms",
                Arc::new(Float64Array::from_iter_values(pairs.iter().map(|p| p.rms))),
            ),
        ],
    )?;
    out.table("duplicates.parquet", n);

    // Counts per scope and kind, with example id pairs.
    let mut by_scope: BTreeMap<String, (u64, u64, u64, Vec<String>)> = BTreeMap::new();
    for p in &pairs {
        let e = by_scope.entry(scope(p)).or_default();
        if p.exact {
            e.0 += 1
        } else {
            e.1 += 1
        }
        if recs[p.a].label != recs[p.b].label {
            e.2 += 1;
        }
        if e.3.len() < sp.examples {
            e.3.push(format!(
                "{} ~ {} ({}, rms {:.2})",
                recs[p.a].id,
                recs[p.b].id,
                if p.exact { "exact" } else { "near" },
                p.rms
            ));
        }
    }
    // Files involved in exact duplicates within their own split.
    let mut exact_files: HashMap<&str, std::collections::HashSet<usize>> = HashMap::new();
    for p in pairs
        .iter()
        .filter(|p| p.exact && recs[p.a].split == recs[p.b].split)
    {
        let s = exact_files.entry(recs[p.a].split.as_str()).or_default();
        s.insert(p.a);
        s.insert(p.b);
    }
    // Test images that have a twin (exact or near) in train or val: leakage.
    let mut test_twins = std::collections::BTreeSet::new();
    let mut conflicts = 0u64;
    for p in &pairs {
        let (a, b) = (&recs[p.a], &recs[p.b]);
        let t = match (a.split, b.split) {
            (Split::Test, Split::Train | Split::Val) => Some((p.a, a.label != b.label)),
            (Split::Train | Split::Val, Split::Test) => Some((p.b, a.label != b.label)),
            _ => None,
        };
        if let Some((ti, conflict)) = t {
            test_twins.insert(ti);
            conflicts += conflict as u64;
        }
    }
    let cross: Vec<&DupPair> = pairs
        .iter()
        .filter(|p| recs[p.a].split != recs[p.b].split)
        .take(12)
        .collect();
    let dup_rows: Vec<(String, Vec<&[u8]>)> = cross
        .iter()
        .map(|p| {
            (
                format!("{} ~ {} rms {:.1}", recs[p.a].split, recs[p.b].split, p.rms),
                vec![recs[p.a].pixels.as_slice(), recs[p.b].pixels.as_slice()],
            )
        })
        .collect();
    fer_core::plot::image_grid(
        &dir.join("duplicates.png"),
        "cross-split duplicates",
        &dup_rows,
        ds.side as u32,
        2,
    )?;
    out.file("duplicates.png");

    // Blank images.
    let blank: Vec<usize> = (0..recs.len())
        .filter(|&i| stds[i] < sp.blank_std)
        .collect();
    let n = write_columns(
        &dir.join("blank.parquet"),
        vec![
            (
                "id",
                Arc::new(StringArray::from_iter_values(
                    blank.iter().map(|&i| recs[i].id.as_str()),
                )) as ArrayRef,
            ),
            (
                "split",
                Arc::new(StringArray::from_iter_values(
                    blank.iter().map(|&i| recs[i].split.as_str()),
                )),
            ),
            (
                "label",
                Arc::new(UInt8Array::from_iter_values(
                    blank.iter().map(|&i| recs[i].label),
                )),
            ),
            (
                "pixel_std",
                Arc::new(Float64Array::from_iter_values(
                    blank.iter().map(|&i| stds[i]),
                )),
            ),
        ],
    )?;
    out.table("blank.parquet", n);
    let blank_rows: Vec<(String, Vec<&[u8]>)> = blank
        .chunks(10)
        .take(5)
        .enumerate()
        .map(|(k, c)| {
            (
                format!("blank {}-{}", k * 10 + 1, k * 10 + c.len()),
                c.iter().map(|&i| recs[i].pixels.as_slice()).collect(),
            )
        })
        .collect();
    fer_core::plot::image_grid(
        &dir.join("blank.png"),
        "blank / near-constant images",
        &blank_rows,
        ds.side as u32,
        2,
    )?;
    out.file("blank.png");

    let mut scopes = serde_json::Map::new();
    for (k, (exact, near, conf, ex)) in by_scope {
        scopes.insert(k, json!({"exact_pairs": exact, "near_pairs": near, "label_conflicts": conf, "examples": ex}));
    }
    let exact_files: BTreeMap<&str, usize> =
        exact_files.into_iter().map(|(k, v)| (k, v.len())).collect();
    Ok(json!({
        "method": format!("pHash (imageproc, 64-bit DCT) within {} bits, confirmed by pixel RMS <= {}", sp.near_dup_hamming, sp.near_dup_rms),
        "exact_pairs": pairs.iter().filter(|p| p.exact).count(),
        "near_pairs": pairs.iter().filter(|p| !p.exact).count(),
        "files_in_exact_duplicates_within_split": exact_files,
        "by_scope": scopes,
        "test_with_train_twin": test_twins.len(),
        "test_with_train_twin_label_conflicts": conflicts,
        "test_with_train_twin_examples": test_twins.iter().take(sp.examples).map(|&i| recs[i].id.clone()).collect::<Vec<_>>(),
        "blank": {
            "threshold_std": sp.blank_std,
            "count": blank.len(),
            "ids": blank.iter().take(sp.examples.max(20)).map(|&i| recs[i].id.clone()).collect::<Vec<_>>(),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fer_core::{Emotion, Split};

    fn rec(id: &str, pixels: Vec<u8>) -> ImageRecord {
        ImageRecord {
            id: id.into(),
            split: Split::Train,
            usage: "Training".into(),
            emotion: Emotion::Happy,
            label: 0,
            pixels,
            source: id.into(),
            ferplus_label: None,
            ferplus_votes: None,
        }
    }

    fn pattern(seed: u32) -> Vec<u8> {
        (0..48 * 48u32)
            .map(|i| {
                let (x, y) = (i % 48, i / 48);
                ((x * seed + y * (seed + 3) + (x * y) % (seed + 7)) % 251) as u8
            })
            .collect()
    }

    #[test]
    fn finds_exact_and_near_but_not_different() {
        let a = pattern(5);
        let mut near = a.clone();
        for v in near.iter_mut().step_by(7) {
            *v = v.saturating_add(3);
        }
        let other = pattern(11);
        let recs = vec![
            rec("a", a.clone()),
            rec("b", a),
            rec("c", near),
            rec("d", other),
        ];
        let h = hashes(&recs, 48);
        let pairs = near_pairs(&recs, &h, &[false; 4], 8, 4.0);
        let ids: Vec<(usize, usize, bool)> = pairs.iter().map(|p| (p.a, p.b, p.exact)).collect();
        assert_eq!(ids, vec![(0, 1, true), (0, 2, false), (1, 2, false)]);
        assert!(pairs[1].rms > 0.0 && pairs[1].rms < 4.0);
    }

    #[test]
    fn std_of_constant_is_zero() {
        assert_eq!(pixel_std(&[9; 100]), 0.0);
        assert!((pixel_std(&[0, 255]) - 127.5).abs() < 1e-9);
    }
}
