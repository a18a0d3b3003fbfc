//! Max pooling kernels (no padding, dilation 1, floor mode) on contiguous NCHW `f32` slices.
//!
//! Why by hand: burn-flex runs every 2-D max pool through its 3-D pooling with indices, a
//! general loop that took about 15% of a fer-small training step for what is one pass over the
//! activations. Here the forward keeps no indices: the backward recomputes each window's
//! argmax from the saved input (one more cheap pass) and routes the gradient there. The window
//! rule is burn's: the first maximum in row-major window order, a NaN taking the place.

use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Shape of a max pool over NCHW tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
}

impl PoolGeom {
    pub fn is_valid(&self) -> bool {
        self.kernel[0] > 0
            && self.kernel[1] > 0
            && self.stride[0] > 0
            && self.stride[1] > 0
            && self.h >= self.kernel[0]
            && self.w >= self.kernel[1]
    }
    pub fn out_h(&self) -> usize {
        (self.h - self.kernel[0]) / self.stride[0] + 1
    }
    pub fn out_w(&self) -> usize {
        (self.w - self.kernel[1]) / self.stride[1] + 1
    }
    /// Planes handed to one rayon task.
    fn planes_per_task(&self) -> usize {
        (4096 / (self.h * self.w).max(1)).max(1)
    }
}

/// Offset (in the plane) of the window maximum for output `(oy, ox)`, and its value.
#[inline(always)]
fn window_max(g: &PoolGeom, plane: &[f32], oy: usize, ox: usize) -> (usize, f32) {
    let (y0, x0) = (oy * g.stride[0], ox * g.stride[1]);
    let mut best = y0 * g.w + x0;
    let mut m = plane[best];
    for i in 0..g.kernel[0] {
        let row = (y0 + i) * g.w + x0;
        for j in 0..g.kernel[1] {
            let v = plane[row + j];
            if v > m || v.is_nan() {
                m = v;
                best = row + j;
            }
        }
    }
    (best, m)
}

/// Which of a 2x2 window's values `[top-left, top-right, bottom-left, bottom-right]` is its
/// maximum, by the rule of [`window_max`]: the first maximum, a NaN taking the place.
#[inline(always)]
fn argmax4(v: [f32; 4]) -> usize {
    let mut at = 0;
    for k in 1..4 {
        if v[k] > v[at] || v[k].is_nan() {
            at = k;
        }
    }
    at
}

/// Whether `v` takes the place of the running maximum `m` (the rule of [`window_max`]).
#[inline(always)]
fn takes(v: f32, m: f32) -> bool {
    v > m || v.is_nan()
}

crate::isa::multiversion! {
    /// One output row of a 2x2, stride-2 max pool from its two input rows (`2·out.len()`
    /// values each): the rule of [`argmax4`] as selects, so that the row vectorizes.
    fn max2x2_row(r0: &[f32], r1: &[f32], out: &mut [f32]) {
        for ((v, p), q) in out.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
            let mut m = p[0];
            m = if takes(p[1], m) { p[1] } else { m };
            m = if takes(q[0], m) { q[0] } else { m };
            *v = if takes(q[1], m) { q[1] } else { m };
        }
    }
}

crate::isa::multiversion! {
    /// The gradient of one output row of a 2x2, stride-2 max pool (`gy`) routed to its two
    /// input rows (`x0`, `x1`; written into `d0`, `d1`, every element: the gradient at the
    /// window's [`argmax4`], 0 elsewhere), as selects, so that the row vectorizes.
    fn max2x2_back_row(x0: &[f32], x1: &[f32], gy: &[f32], d0: &mut [MaybeUninit<f32>], d1: &mut [MaybeUninit<f32>]) {
        let rows = d0.chunks_exact_mut(2).zip(d1.chunks_exact_mut(2));
        let windows = x0.chunks_exact(2).zip(x1.chunks_exact(2));
        for (((o0, o1), (p, q)), &gv) in rows.zip(windows).zip(gy) {
            let s1 = takes(p[1], p[0]);
            let m1 = if s1 { p[1] } else { p[0] };
            let s2 = takes(q[0], m1);
            let m2 = if s2 { q[0] } else { m1 };
            let s3 = takes(q[1], m2);
            let pick = |on: bool| MaybeUninit::new(if on { gv } else { 0.0 });
            o0[0] = pick(!s1 && !s2 && !s3);
            o0[1] = pick(s1 && !s2 && !s3);
            o1[0] = pick(s2 && !s3);
            o1[1] = pick(s3);
        }
    }
}

/// Max pool forward: `[N, C, H, W]` -> `[N, C, OH, OW]`.
pub fn max_pool2d_forward(g: &PoolGeom, x: &[f32]) -> Vec<f32> {
    let (oh, ow, hw) = (g.out_h(), g.out_w(), g.h * g.w);
    let mut out = vec![0f32; g.n * g.c * oh * ow];
    let k = g.planes_per_task();
    out.par_chunks_mut(k * oh * ow)
        .zip(x.par_chunks(k * hw))
        .for_each(|(o, xs)| {
            for (op, plane) in o.chunks_exact_mut(oh * ow).zip(xs.chunks_exact(hw)) {
                if g.kernel == [2, 2] && g.stride == [2, 2] {
                    // The common case, written out.
                    for (oy, orow) in op.chunks_exact_mut(ow).enumerate() {
                        let r0 = &plane[2 * oy * g.w..2 * oy * g.w + 2 * ow];
                        let r1 = &plane[(2 * oy + 1) * g.w..(2 * oy + 1) * g.w + 2 * ow];
                        max2x2_row(r0, r1, orow);
                    }
                } else {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            op[oy * ow + ox] = window_max(g, plane, oy, ox).1;
                        }
                    }
                }
            }
        });
    out
}

/// Max pool backward: the gradient `dy` (`[N, C, OH, OW]`) routed to each window's maximum
/// in `x`; returns `[N, C, H, W]`.
pub fn max_pool2d_backward(g: &PoolGeom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (oh, ow, hw) = (g.out_h(), g.out_w(), g.h * g.w);
    if g.kernel == [2, 2] && g.stride == [2, 2] && g.h % 2 == 0 && g.w % 2 == 0 {
        return max_pool2x2_backward_tiled(g, x, dy);
    }
    let mut dx = vec![0f32; g.n * g.c * hw];
    let k = g.planes_per_task();
    dx.par_chunks_mut(k * hw)
        .zip(x.par_chunks(k * hw))
        .zip(dy.par_chunks(k * oh * ow))
        .for_each(|((d, xs), gs)| {
            for ((dp, plane), gp) in d
                .chunks_exact_mut(hw)
                .zip(xs.chunks_exact(hw))
                .zip(gs.chunks_exact(oh * ow))
            {
                if g.kernel == [2, 2] && g.stride == [2, 2] {
                    // Windows do not overlap: each gradient lands on one untouched input.
                    for oy in 0..oh {
                        let (r0, r1) = (2 * oy * g.w, (2 * oy + 1) * g.w);
                        for ox in 0..ow {
                            let (a, c) = (r0 + 2 * ox, r1 + 2 * ox);
                            let at = [a, a + 1, c, c + 1];
                            let win = at.map(|i| plane[i]);
                            dp[at[argmax4(win)]] = gp[oy * ow + ox];
                        }
                    }
                    continue;
                }
                for oy in 0..oh {
                    for ox in 0..ow {
                        let (at, _) = window_max(g, plane, oy, ox);
                        dp[at] += gp[oy * ow + ox];
                    }
                }
            }
        });
    dx
}

/// 2x2, stride 2 over even maps: the windows tile the input, so every input element is written
/// once (the gradient or 0) and the output needs no zeroing pass first.
fn max_pool2x2_backward_tiled(g: &PoolGeom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (ow, w) = (g.w / 2, g.w);
    let n = g.n * g.c * g.h * g.w;
    // The writes below cover every element only when the inputs have the geometry's lengths
    // (a short `x` or `dy` would leave some unwritten before `set_len`).
    assert_eq!(x.len(), n, "max pool backward: input length");
    assert_eq!(dy.len(), n / 4, "max pool backward: gradient length");
    let mut dx: Vec<f32> = Vec::with_capacity(n);
    // Two input rows (one output row) per item: rows of x and dx, one row of dy.
    dx.spare_capacity_mut()[..n]
        .par_chunks_mut(2 * w)
        .zip(x.par_chunks(2 * w))
        .zip(dy.par_chunks(ow))
        .for_each(|((d, xs), gy)| {
            let (d0, d1) = d.split_at_mut(w);
            let (x0, x1) = xs.split_at(w);
            max2x2_back_row(x0, x1, gy, d0, d1);
        });
    // SAFETY: the chunks cover all n elements (n is a multiple of 2w: H is even) and every
    // element of each chunk was written above (W is even, so the ow windows cover each row).
    unsafe { dx.set_len(n) };
    dx
}
