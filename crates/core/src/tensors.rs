//! Model-ready tensors: what `preprocess` writes and the trainers read.
//!
//! One safetensors file per split, `<split>.safetensors`, holding `x`: f32 `[N, 1, H, W]`
//! (row-major, already normalized by the fitted transform) and `y`: u8 `[N]` (labels). Row `i`
//! of a split is the `i`-th row of that split in `index.parquet` (split, row, id, label,
//! emotion), which carries the ids that safetensors cannot. The header metadata key `fer`
//! holds a small JSON document (split, label mode, label source, transform hash).
//!
//! When the dataset carries FERPlus votes, three more tensors give both truths ([`Truths`]):
//! `y_fer2013` (u8), `y_ferplus` (u8, [`NO_LABEL`] where FERPlus gives none) and
//! `happy_share` (f32, happiness' share of the 8 emotion votes, [`NO_SHARE`] without votes);
//! seven-class sets also `emotion_shares` (f32 `[n, 7]`: each FER2013 emotion's share of the
//! votes for the seven, by emotion code, contempt left out; [`NO_SHARE`] rows without votes).

use crate::error::{Error, IoContext, Result};
use crate::split::Split;
use arrow_array::{Array, StringArray, UInt32Array};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::HashMap;
use std::path::Path;

/// `y_ferplus` of an image FERPlus gives no label.
pub const NO_LABEL: u8 = u8::MAX;
/// `happy_share` of an image without FERPlus votes.
pub const NO_SHARE: f32 = -1.0;

/// A split's images and labels.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSet {
    pub n: usize,
    pub height: usize,
    pub width: usize,
    /// `n * height * width` values (one channel).
    pub x: Vec<f32>,
    /// The training target (FER2013's or FERPlus's label, as the dataset says).
    pub y: Vec<u8>,
    /// Both truths and the soft target, when the dataset has FERPlus votes.
    pub truths: Option<Truths>,
}

/// The labels of a split by both truths, row for row with `y`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Truths {
    pub fer2013: Vec<u8>,
    /// [`NO_LABEL`] where FERPlus gives none.
    pub ferplus: Vec<u8>,
    /// Happiness' share of the 8 emotion votes; [`NO_SHARE`] without votes.
    pub happy_share: Vec<f32>,
    /// Seven classes only (empty otherwise): `n * 7` values, each image's row the seven
    /// emotions' shares of their votes (by emotion code, contempt left out), or
    /// [`NO_SHARE`] seven times without votes.
    pub emotion_shares: Vec<f32>,
}

impl TensorSet {
    pub fn image(&self, i: usize) -> &[f32] {
        let s = self.height * self.width;
        &self.x[i * s..(i + 1) * s]
    }

    pub fn write(&self, path: &Path, meta: &serde_json::Value) -> Result<()> {
        let xb: Vec<u8> = self.x.iter().flat_map(|v| v.to_le_bytes()).collect();
        let bad =
            |e: safetensors::SafeTensorError| Error::parquet(path, format!("safetensors: {e}"));
        let x = TensorView::new(Dtype::F32, vec![self.n, 1, self.height, self.width], &xb)
            .map_err(bad)?;
        let y = TensorView::new(Dtype::U8, vec![self.n], &self.y).map_err(bad)?;
        // A single metadata key keeps the header (a JSON map) byte-for-byte deterministic.
        let info: HashMap<String, String> = [("fer".to_string(), meta.to_string())]
            .into_iter()
            .collect();
        let mut views = vec![("x", x), ("y", y)];
        let (share, shares7): (Vec<u8>, Vec<u8>);
        if let Some(t) = &self.truths {
            share = t.happy_share.iter().flat_map(|v| v.to_le_bytes()).collect();
            shares7 = t
                .emotion_shares
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            views.push((
                "y_fer2013",
                TensorView::new(Dtype::U8, vec![self.n], &t.fer2013).map_err(bad)?,
            ));
            views.push((
                "y_ferplus",
                TensorView::new(Dtype::U8, vec![self.n], &t.ferplus).map_err(bad)?,
            ));
            views.push((
                "happy_share",
                TensorView::new(Dtype::F32, vec![self.n], &share).map_err(bad)?,
            ));
            if !t.emotion_shares.is_empty() {
                let k = t.emotion_shares.len() / self.n.max(1);
                views.push((
                    "emotion_shares",
                    TensorView::new(Dtype::F32, vec![self.n, k], &shares7).map_err(bad)?,
                ));
            }
        }
        let bytes = safetensors::serialize(views, Some(info)).map_err(bad)?;
        std::fs::write(path, bytes).at(path)
    }

    /// Read a split written by [`TensorSet::write`]; the `fer` metadata comes back too.
    pub fn read(path: &Path) -> Result<(TensorSet, serde_json::Value)> {
        let bytes = std::fs::read(path).at(path)?;
        let bad = |m: String| Error::Parquet {
            path: path.to_path_buf(),
            message: m,
        };
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let (_, md) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let meta = md
            .metadata()
            .as_ref()
            .and_then(|m| m.get("fer"))
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(serde_json::Value::Null);
        let x = st.tensor("x").map_err(|e| bad(format!("tensor x: {e}")))?;
        let y = st.tensor("y").map_err(|e| bad(format!("tensor y: {e}")))?;
        if x.dtype() != Dtype::F32 || x.shape().len() != 4 || x.shape()[1] != 1 {
            return Err(bad(format!(
                "x is {:?} {:?}, expected F32 [N, 1, H, W]",
                x.dtype(),
                x.shape()
            )));
        }
        let (n, h, w) = (x.shape()[0], x.shape()[2], x.shape()[3]);
        if y.dtype() != Dtype::U8 || y.shape() != [n] {
            return Err(bad(format!(
                "y is {:?} {:?}, expected U8 [{n}]",
                y.dtype(),
                y.shape()
            )));
        }
        let f32s = |d: &[u8]| -> Vec<f32> {
            d.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        let xs = f32s(x.data());
        let truths = if st.names().contains(&"y_fer2013") {
            let get = |name: &str, dtype: Dtype| {
                let t = st
                    .tensor(name)
                    .map_err(|e| bad(format!("tensor {name}: {e}")))?;
                if t.dtype() != dtype || t.shape() != [n] {
                    return Err(bad(format!(
                        "{name} is {:?} {:?}, expected {dtype:?} [{n}]",
                        t.dtype(),
                        t.shape()
                    )));
                }
                Ok(t.data().to_vec())
            };
            Some(Truths {
                fer2013: get("y_fer2013", Dtype::U8)?,
                ferplus: get("y_ferplus", Dtype::U8)?,
                happy_share: f32s(&get("happy_share", Dtype::F32)?),
                emotion_shares: match st.tensor("emotion_shares") {
                    Err(_) => Vec::new(),
                    Ok(t)
                        if t.dtype() == Dtype::F32 && t.shape().len() == 2 && t.shape()[0] == n =>
                    {
                        f32s(t.data())
                    }
                    Ok(t) => {
                        return Err(bad(format!(
                            "emotion_shares is {:?} {:?}, expected F32 [{n}, 7]",
                            t.dtype(),
                            t.shape()
                        )));
                    }
                },
            })
        } else {
            None
        };
        Ok((
            TensorSet {
                n,
                height: h,
                width: w,
                x: xs,
                y: y.data().to_vec(),
                truths,
            },
            meta,
        ))
    }
}

/// The ids of each split (indexed by `Split as usize`), in tensor row order, from an
/// `index.parquet` written beside the tensors (columns `split`, `row`, `id`).
pub fn read_ids(index: &Path) -> Result<[Vec<String>; 3]> {
    let (_, batches) = crate::parquet_io::read_batches(index)?;
    let mut rows: [Vec<(u32, String)>; 3] = Default::default();
    for b in &batches {
        let col = |n: &str| {
            b.column_by_name(n)
                .cloned()
                .ok_or_else(|| Error::parquet(index, format!("missing column `{n}`")))
        };
        let (split, row, id) = (col("split")?, col("row")?, col("id")?);
        let (Some(split), Some(row), Some(id)) = (
            split.as_any().downcast_ref::<StringArray>(),
            row.as_any().downcast_ref::<UInt32Array>(),
            id.as_any().downcast_ref::<StringArray>(),
        ) else {
            return Err(Error::parquet(
                index,
                "expected split: Utf8, row: UInt32, id: Utf8",
            ));
        };
        for i in 0..b.num_rows() {
            let s = Split::parse(split.value(i)).ok_or_else(|| {
                Error::parquet(index, format!("unknown split `{}`", split.value(i)))
            })?;
            rows[s as usize].push((row.value(i), id.value(i).to_string()));
        }
    }
    Ok(rows.map(|mut v| {
        v.sort_by_key(|r| r.0);
        v.into_iter().map(|r| r.1).collect()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_exact_and_deterministic() {
        let t = TensorSet {
            n: 2,
            height: 2,
            width: 3,
            x: vec![
                0.0, 0.5, -1.0, 1.0, 0.25, 3.5, 7.0, 8.0, 9.0, -0.125, 1e-7, 2.0,
            ],
            y: vec![0, 1],
            truths: None,
        };
        let d = tempfile::tempdir().unwrap();
        let meta = serde_json::json!({"split": "train"});
        t.write(&d.path().join("a.safetensors"), &meta).unwrap();
        t.write(&d.path().join("b.safetensors"), &meta).unwrap();
        let (back, m) = TensorSet::read(&d.path().join("a.safetensors")).unwrap();
        assert_eq!(back, t);
        assert_eq!(m, meta);
        assert_eq!(back.image(1), &t.x[6..]);
        assert_eq!(
            std::fs::read(d.path().join("a.safetensors")).unwrap(),
            std::fs::read(d.path().join("b.safetensors")).unwrap()
        );
        let with = TensorSet {
            truths: Some(Truths {
                fer2013: vec![0, 1],
                ferplus: vec![NO_LABEL, 0],
                happy_share: vec![NO_SHARE, 0.625],
                emotion_shares: Vec::new(),
            }),
            ..t
        };
        with.write(&d.path().join("c.safetensors"), &meta).unwrap();
        let (back, _) = TensorSet::read(&d.path().join("c.safetensors")).unwrap();
        assert_eq!(back, with);
        // Seven classes: each image's row of vote shares comes back as written.
        let mut seven = with.clone();
        if let Some(t) = seven.truths.as_mut() {
            t.emotion_shares = [[NO_SHARE; 7], [0.5, 0.0, 0.0, 0.25, 0.0, 0.0, 0.25]].concat();
        }
        seven.write(&d.path().join("d.safetensors"), &meta).unwrap();
        let (back, _) = TensorSet::read(&d.path().join("d.safetensors")).unwrap();
        assert_eq!(back, seven);
    }
}
