//! Data-quality audit: exact and near duplicates (imageproc's DCT pHash, confirmed by pixel
//! RMS), and blank / near-constant images.

use fer_core::dataset::ImageRecord;
use image::{ImageBuffer, Luma};
use imageproc::image_hash::{PHash, phash};
use rayon::prelude::*;

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
