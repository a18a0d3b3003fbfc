//! Pixel moments (count, mean, std, histogram) per split group and class or emotion.

use fer_core::dataset::ImageDataset;
use fer_core::{Emotion, Split};
use std::collections::BTreeMap;

/// Pixel moments of a group of images.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    pub images: u64,
    pub sum: f64,
    pub sum_sq: f64,
    pub hist: [u64; 256],
}

impl Default for Moments {
    fn default() -> Self {
        Moments {
            images: 0,
            sum: 0.0,
            sum_sq: 0.0,
            hist: [0; 256],
        }
    }
}

impl Moments {
    pub fn add(&mut self, pixels: &[u8]) {
        self.images += 1;
        let (mut s, mut q) = (0u64, 0u64);
        for &v in pixels {
            s += v as u64;
            q += (v as u64) * (v as u64);
            self.hist[v as usize] += 1;
        }
        self.sum += s as f64;
        self.sum_sq += q as f64;
    }
    pub fn pixels(&self) -> u64 {
        self.hist.iter().sum()
    }
    pub fn mean(&self) -> f64 {
        self.sum / self.pixels().max(1) as f64
    }
    /// Population standard deviation over all pixels pooled (numpy's `std`).
    pub fn std(&self) -> f64 {
        let n = self.pixels().max(1) as f64;
        (self.sum_sq / n - self.mean().powi(2)).max(0.0).sqrt()
    }
}

/// Group names: the splits plus `train+val` (FER2013's own train folder).
pub(super) const GROUPS: [&str; 4] = ["train", "val", "test", "train+val"];

fn groups_of(split: Split) -> &'static [&'static str] {
    match split {
        Split::Train => &["train", "train+val"],
        Split::Val => &["val", "train+val"],
        Split::Test => &["test"],
    }
}

/// Moments per (group, class name), where classes are the label classes and `all`.
pub fn class_moments(ds: &ImageDataset) -> BTreeMap<(String, String), Moments> {
    let names = ds.label_mode.class_names();
    let mut m: BTreeMap<(String, String), Moments> = BTreeMap::new();
    for r in &ds.records {
        for g in groups_of(r.split) {
            for c in [names[r.label as usize], "all"] {
                m.entry((g.to_string(), c.to_string()))
                    .or_default()
                    .add(&r.pixels);
            }
        }
    }
    m
}

/// Moments per (group, emotion).
pub fn emotion_moments(ds: &ImageDataset) -> BTreeMap<(String, Emotion), Moments> {
    let mut m: BTreeMap<(String, Emotion), Moments> = BTreeMap::new();
    for r in &ds.records {
        for g in groups_of(r.split) {
            m.entry((g.to_string(), r.emotion))
                .or_default()
                .add(&r.pixels);
        }
    }
    m
}
