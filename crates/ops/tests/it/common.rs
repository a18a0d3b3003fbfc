//! Helpers the kernel tests share: seeded random inputs and a scaled difference.

use rand::{RngExt, SeedableRng};

/// `n` values uniform in [-1, 1), from a ChaCha8 stream seeded with `seed`.
pub fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Largest absolute difference, scaled by the reference's largest magnitude.
pub fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}
