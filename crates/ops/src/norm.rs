//! Batch norm over NCHW `f32` slices, with the ReLU that follows it fused in, forward and
//! backward.
//!
//! Why by hand: burn's default batch norm (flex has no kernel of its own) swaps the batch and
//! channel dims and reshapes to get per-channel rows, which copies the whole activation twice
//! in the forward and twice more in the backward, then runs a chain of broadcast ops, each its
//! own pass; that was 37% of a fer-small training step once the convolutions were fast.
//! Here each per-channel reduction walks the channel's planes in place, and the ReLU's mask
//! comes from the same `x * scale + shift` the forward computed, so nothing else is saved.
//!
//! Each kernel is compiled once per instruction set ([`crate::isa::multiversion`]): the same
//! arithmetic in the same order, on wider vectors where the CPU has them.
//!
//! Statistics follow burn's: the batch mean and the *biased* variance, each accumulated per
//! channel in a fixed order (planes in image order, f64 across planes), so a run is
//! deterministic whatever the thread count.

use rayon::prelude::*;

/// Shape of a batch-normalized NCHW tensor: `hw` is the pixels of one plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormGeom {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
}

impl NormGeom {
    fn count(&self) -> f64 {
        (self.n * self.hw) as f64
    }
    /// Planes handed to one rayon task.
    fn planes_per_task(&self) -> usize {
        (4096 / self.hw.max(1)).max(1)
    }
    /// The planes of channel `c`, in image order.
    fn planes<'a>(&self, x: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> + 'a {
        let (hw, stride) = (self.hw, self.c * self.hw);
        (0..self.n).map(move |i| &x[i * stride + c * hw..i * stride + (c + 1) * hw])
    }
}

crate::isa::multiversion! {
    /// Channel `c`'s batch mean and biased variance.
    fn channel_stats(g: &NormGeom, x: &[f32], c: usize) -> (f32, f32) {
        let sum: f64 = g.planes(x, c).map(|p| crate::conv::sum(p) as f64).sum();
        let mean = sum / g.count();
        let m = mean as f32;
        let sq: f64 = g
            .planes(x, c)
            .map(|p| p.iter().map(|&v| (v - m) * (v - m)).sum::<f32>() as f64)
            .sum();
        (m, (sq / g.count()) as f32)
    }
}

/// Per-channel batch mean and biased variance: `[mean_0..mean_C, var_0..var_C]`.
pub fn bn_stats(g: &NormGeom, x: &[f32]) -> Vec<f32> {
    let per: Vec<(f32, f32)> = (0..g.c)
        .into_par_iter()
        .map(|c| channel_stats(g, x, c))
        .collect();
    per.iter()
        .map(|p| p.0)
        .chain(per.iter().map(|p| p.1))
        .collect()
}

/// Per channel: `scale = gamma / sqrt(var + eps)`, `shift = beta - mean * scale`, and
/// `1 / sqrt(var + eps)` itself.
fn affine(
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f64,
) -> Vec<(f32, f32, f32)> {
    (0..gamma.len())
        .map(|c| {
            let inv_std = (1.0 / (var[c] as f64 + eps).sqrt()) as f32;
            let scale = gamma[c] * inv_std;
            (scale, beta[c] - mean[c] * scale, inv_std)
        })
        .collect()
}

/// `y = x * scale + shift` per channel (then `max(y, 0)` when `relu`), with the given
/// statistics (the batch's when training, the running ones in inference).
#[allow(clippy::too_many_arguments)]
pub fn bn_forward(
    g: &NormGeom,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f64,
    relu: bool,
) -> Vec<f32> {
    let ab = affine(gamma, beta, mean, var, eps);
    let mut y = vec![0f32; x.len()];
    let planes = g.planes_per_task();
    y.par_chunks_mut(planes * g.hw)
        .zip(x.par_chunks(planes * g.hw))
        .enumerate()
        .for_each(|(k, (yo, xi))| forward_planes(g, &ab, k * planes, yo, xi, relu));
    y
}

crate::isa::multiversion! {
    /// The forward of the planes `x` (plane `first` onwards, in NCHW order) into `y`.
    fn forward_planes(
        g: &NormGeom,
        ab: &[(f32, f32, f32)],
        first: usize,
        y: &mut [f32],
        x: &[f32],
        relu: bool,
    ) {
        for (j, (yp, xp)) in y.chunks_mut(g.hw).zip(x.chunks(g.hw)).enumerate() {
            let (s, t, _) = ab[(first + j) % g.c];
            if relu {
                for (o, &v) in yp.iter_mut().zip(xp) {
                    *o = (v * s + t).max(0.0);
                }
            } else {
                for (o, &v) in yp.iter_mut().zip(xp) {
                    *o = v * s + t;
                }
            }
        }
    }
}

crate::isa::multiversion! {
    /// Channel `c`'s `(dgamma, dbeta)`: `Σ g·x̂` and `Σ g`, `g` the masked output gradient.
    fn channel_grad_sums(
        g: &NormGeom,
        ab: &[(f32, f32, f32)],
        mean: &[f32],
        x: &[f32],
        dy: &[f32],
        c: usize,
        relu: bool,
    ) -> (f32, f32) {
        let (s, t, is) = ab[c];
        let m = mean[c];
        let (mut db, mut dg) = (0f64, 0f64);
        for (xp, gp) in g.planes(x, c).zip(g.planes(dy, c)) {
            let (mut b, mut w) = (0f32, 0f32);
            for (&v, &d) in xp.iter().zip(gp) {
                let d = if relu && v * s + t <= 0.0 { 0.0 } else { d };
                b += d;
                w += d * (v - m) * is;
            }
            db += b as f64;
            dg += w as f64;
        }
        (dg as f32, db as f32)
    }
}

crate::isa::multiversion! {
    /// The input gradient of the planes from plane `first` on:
    /// `dx = scale · (g − dbeta/M − x̂ · dgamma/M)`.
    fn backward_planes(
        g: &NormGeom,
        ab: &[(f32, f32, f32)],
        mean: &[f32],
        sums: &[(f32, f32)],
        first: usize,
        dx: &mut [f32],
        x: &[f32],
        dy: &[f32],
        relu: bool,
    ) {
        let count = g.count() as f32;
        for (j, ((dp, xp), gp)) in dx
            .chunks_mut(g.hw)
            .zip(x.chunks(g.hw))
            .zip(dy.chunks(g.hw))
            .enumerate()
        {
            let c = (first + j) % g.c;
            let (s, t, is) = ab[c];
            let m = mean[c];
            let (dg, db) = sums[c];
            let (db_m, dg_m) = (db / count, dg / count);
            for ((o, &v), &d) in dp.iter_mut().zip(xp).zip(gp) {
                let d = if relu && v * s + t <= 0.0 { 0.0 } else { d };
                *o = s * (d - db_m - (v - m) * is * dg_m);
            }
        }
    }
}

/// Gradients of the training forward (batch statistics `mean`, `var`): `(dx, dgamma, dbeta)`.
/// With `relu`, the output gradient is first masked where the forward's `x * scale + shift`
/// was not positive.
#[allow(clippy::too_many_arguments)]
pub fn bn_backward(
    g: &NormGeom,
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f64,
    relu: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let ab = affine(gamma, beta, mean, var, eps);
    // Pass 1, per channel: dbeta = Σ g and dgamma = Σ g·x̂ (g the masked output gradient).
    let sums: Vec<(f32, f32)> = (0..g.c)
        .into_par_iter()
        .map(|c| channel_grad_sums(g, &ab, mean, x, dy, c, relu))
        .collect();
    // Pass 2, per plane: dx = scale · (g − dbeta/M − x̂ · dgamma/M).
    let mut dx = vec![0f32; x.len()];
    let planes = g.planes_per_task();
    dx.par_chunks_mut(planes * g.hw)
        .zip(x.par_chunks(planes * g.hw))
        .zip(dy.par_chunks(planes * g.hw))
        .enumerate()
        .for_each(|(k, ((dxo, xi), dyi))| {
            backward_planes(g, &ab, mean, &sums, k * planes, dxo, xi, dyi, relu)
        });
    let dgamma = sums.iter().map(|p| p.0).collect();
    let dbeta = sums.iter().map(|p| p.1).collect();
    (dx, dgamma, dbeta)
}
