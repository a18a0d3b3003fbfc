//! Winograd F(2x2, 3x3) convolutions: the forward pass and both gradients of a 3x3, stride-1
//! convolution in 16 multiplications per 2x2 output tile and channel pair, where im2col's GEMM
//! spends 36 (Lavin & Gray 2016, "Fast Algorithms for Convolutional Neural Networks").
//!
//! With `U = G g Gᵀ` (each 3x3 filter as a 4x4 tile), `V = Bᵀ d B` (each 4x4 input tile, tiles
//! two pixels apart) and `Y = Aᵀ M A`, the convolution is, for each of the 16 tile positions
//! `ξ`, one GEMM over channels:
//!
//! - forward: `M[ξ][Cout, T] = U[ξ][Cout, Cin] · V[ξ][Cin, T]`, then each 2x2 output tile
//!   `Aᵀ M A`;
//! - input gradient: `dM = A dY Aᵀ` per tile, `dV[ξ][Cin, T] = U[ξ]ᵀ · dM[ξ]`, then `B dV Bᵀ`
//!   added back into the (overlapping) input tiles;
//! - weight gradient: `dU[ξ][Cout, Cin] = Σ dM[ξ][Cout, T] · V[ξ]ᵀ[T, Cin]`, then `Gᵀ dU G`.
//!
//! `T` is the tiles of a group of images laid side by side, as [`crate::conv`] groups pixels.
//! The transforms are adds and halvings (the fast algorithm's small-tile choice: its rounding
//! stays within a few units in the last place of im2col's, where F(4x4, 3x3) would lose about
//! two digits). They cost a pass over the data each, against the GEMM's `Cout` (or `Cin`)
//! multiplications per value, so a layer with few input channels (the first, on one gray
//! channel) keeps im2col.
//!
//! Why by hand: neither burn nor the `gemm` crate has a Winograd convolution, and with the
//! GEMMs at about 80% of this CPU's peak, doing fewer multiplications was the only way left to
//! a faster training step. The GEMMs are still the `gemm` crate's ([`crate::isa::gemm`]).

use crate::conv::{Conv2dGeom, Mat, matmul, sum_over_groups};
use crate::scratch::Scratch;

mod transforms;
use rayon::prelude::*;
use std::sync::atomic::{AtomicU8, Ordering};
use transforms::{
    Layout, add_input_grads, filter_grads, filter_tiles, grad_tiles, input_tiles, output_tiles,
};

/// Input channels below which im2col is kept (the transforms would cost more than they save).
const MIN_CHANNELS: usize = 8;

/// 0: not read yet; 1: on; 2: off.
static STATE: AtomicU8 = AtomicU8::new(0);

/// Whether 3x3 convolutions take this path (on, unless `FER_OPS_WINOGRAD=off` or `0`, or a
/// program calls [`set_enabled`]).
pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        0 => {
            let on = !matches!(
                std::env::var("FER_OPS_WINOGRAD").ok().as_deref(),
                Some("0" | "off" | "false")
            );
            STATE.store(if on { 1 } else { 2 }, Ordering::Relaxed);
            on
        }
        v => v == 1,
    }
}

/// Turn this path on or off for the whole process (`fer-bench` times both in one run).
pub fn set_enabled(on: bool) {
    STATE.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

/// Whether the convolution `g` can run here: a 3x3 kernel, stride 1, padding of at most 2, and
/// enough input channels to pay for the transforms.
pub fn applies(g: &Conv2dGeom) -> bool {
    g.kh == 3
        && g.kw == 3
        && g.stride == [1, 1]
        && g.padding[0] <= 2
        && g.padding[1] <= 2
        && g.c_in >= MIN_CHANNELS
        && g.is_valid()
}

/// The reduction length (the GEMM's inner dimension) below which a pass keeps im2col: the
/// forward's is `Cin` and the input gradient's `Cout`, where im2col's is nine times as long.
/// At 32 the gemm crate's kernels run at about 55% of their speed at im2col's 288 on this
/// path's shapes (measured on an AVX-512 EPYC), which eats the 2.25x fewer multiplications
/// and the transforms.
pub const MIN_REDUCTION: usize = 64;

/// The weight gradient reduces over tiles, always long enough, but its product is only
/// `Cout x Cin` per tile position: below this on either side (fer-tiny's 8 to 32 channels)
/// the 16 small products and the transforms cost more than im2col's one.
pub const MIN_WEIGHT_SIDE: usize = 32;

/// Which pass of a convolution asks [`chosen`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    Forward,
    InputGrad,
    WeightGrad,
}

/// Whether `pass` of the convolution `g` runs here: [`enabled`], [`applies`], and the pass's
/// reduction at least [`MIN_REDUCTION`] (the weight gradient's sides at least
/// [`MIN_WEIGHT_SIDE`]). What [`crate::conv`]'s entry points ask.
pub fn chosen(g: &Conv2dGeom, pass: Pass) -> bool {
    let reduction = match pass {
        Pass::Forward => g.c_in,
        Pass::InputGrad => g.c_out,
        Pass::WeightGrad if g.c_in.min(g.c_out) >= MIN_WEIGHT_SIDE => MIN_REDUCTION,
        Pass::WeightGrad => 0,
    };
    applies(g) && reduction >= MIN_REDUCTION && enabled()
}

/// Forward convolution on this path; the same contract as [`crate::conv::conv2d_forward`].
pub fn forward(g: &Conv2dGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let (l, chw, ohw) = (Layout::of(g), g.c_in * g.h * g.w, g.out_h() * g.out_w());
    let (co, ci) = (g.c_out, g.c_in);
    let mut out = vec![0f32; g.n * co * ohw];
    if g.n == 0 || ohw == 0 {
        return out;
    }
    let u = filter_tiles(g, w);
    let gs = l.group(g.n);
    out.par_chunks_mut(gs * co * ohw)
        .zip(x.par_chunks(gs * chw))
        .for_each(|(o, xg)| {
            let gn = xg.len() / chw;
            let ld = gn * l.tiles();
            let mut v = Scratch::new(16 * ci * ld);
            input_tiles(g, l, xg, gn, &mut v, ld);
            let mut m = Scratch::new(16 * co * ld);
            for x in 0..16 {
                matmul(
                    &mut m[x * co * ld..(x + 1) * co * ld],
                    co,
                    ld,
                    ci,
                    Mat::rows(&u[x * co * ci..], ci),
                    Mat::rows(&v[x * ci * ld..], ld),
                    false,
                );
            }
            output_tiles(g, l, &m, ld, gn, o, bias);
        });
    out
}

/// Input gradient on this path; the same contract as [`crate::conv::conv2d_input_grad`].
pub fn input_grad(g: &Conv2dGeom, w: &[f32], dy: &[f32]) -> Vec<f32> {
    let (l, chw, ohw) = (Layout::of(g), g.c_in * g.h * g.w, g.out_h() * g.out_w());
    let (co, ci) = (g.c_out, g.c_in);
    let mut dx = vec![0f32; g.n * chw];
    if g.n == 0 || ohw == 0 {
        return dx;
    }
    let u = filter_tiles(g, w);
    let gs = l.group(g.n);
    dx.par_chunks_mut(gs * chw)
        .zip(dy.par_chunks(gs * co * ohw))
        .for_each(|(dxg, dyg)| {
            let gn = dxg.len() / chw;
            let ld = gn * l.tiles();
            let mut dm = Scratch::new(16 * co * ld);
            grad_tiles(g, l, dyg, gn, &mut dm, ld);
            let mut dv = Scratch::new(16 * ci * ld);
            for x in 0..16 {
                // U[ξ]ᵀ: element (c, k) of the [Cin, Cout] matrix is u[ξ][k][c].
                matmul(
                    &mut dv[x * ci * ld..(x + 1) * ci * ld],
                    ci,
                    ld,
                    co,
                    Mat::cols(&u[x * co * ci..], ci),
                    Mat::rows(&dm[x * co * ld..], ld),
                    false,
                );
            }
            add_input_grads(g, l, &dv, ld, gn, dxg);
        });
    dx
}

/// Weight gradient on this path; the same contract as [`crate::conv::conv2d_weight_grad`]
/// (one partial per rayon lane, summed in lane order: deterministic for a thread count).
pub fn weight_grad(g: &Conv2dGeom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (l, chw, ohw) = (Layout::of(g), g.c_in * g.h * g.w, g.out_h() * g.out_w());
    let (co, ci) = (g.c_out, g.c_in);
    let size = 16 * co * ci;
    let gs = l.group(g.n);
    let groups = g.n.div_ceil(gs);
    if groups == 0 || ohw == 0 {
        return vec![0f32; co * ci * 9];
    }
    let most = gs * l.tiles();
    let buffers = || (Scratch::new(16 * ci * most), Scratch::new(16 * co * most));
    let du = sum_over_groups(groups, size, buffers, |(v, dm), grp, acc, add| {
        let lo = grp * gs;
        let gn = gs.min(g.n - lo);
        let ld = gn * l.tiles();
        let (v, dm) = (&mut v[..16 * ci * ld], &mut dm[..16 * co * ld]);
        input_tiles(g, l, &x[lo * chw..(lo + gn) * chw], gn, v, ld);
        let dyg = &dy[lo * co * ohw..(lo + gn) * co * ohw];
        grad_tiles(g, l, dyg, gn, dm, ld);
        for xi in 0..16 {
            // V[ξ]ᵀ: element (t, c) of the [T, Cin] matrix is v[ξ][c][t].
            matmul(
                &mut acc[xi * co * ci..(xi + 1) * co * ci],
                co,
                ci,
                ld,
                Mat::rows(&dm[xi * co * ld..], ld),
                Mat::cols(&v[xi * ci * ld..], ld),
                add,
            );
        }
    });
    filter_grads(g, &du)
}
