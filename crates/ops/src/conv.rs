//! 2-D convolution kernels on contiguous NCHW `f32` slices: the forward pass and both gradients,
//! each as im2col (or col2im) plus one GEMM per group of images.
//!
//! Why by hand: burn-flex's forward is already im2col + GEMM, but burn's default backward runs
//! the weight gradient as a convolution over tensors with batch and channel dims swapped (whose
//! output map is the kernel: a poor shape for its tiles, plus layout copies) and the input
//! gradient as a transposed convolution. Here both are the textbook GEMMs on the same im2col
//! matrix the forward builds:
//!
//! - forward: `y[Cout, P] = W[Cout, Ck²] · col[Ck², P]`
//! - weight gradient: `dW[Cout, Ck²] = Σ dy[Cout, P] · colᵀ[P, Ck²]`
//! - input gradient: `dcol[Ck², P] = Wᵀ[Ck², Cout] · dy[Cout, P]`, then col2im.
//!
//! `P` is the output pixels of a *group* of images laid side by side, so that late layers
//! (6x6 maps: 36 pixels an image) still give the GEMM a long enough inner dimension. The GEMM
//! is the `gemm` crate burn-flex itself uses, on the instruction set [`crate::isa`] chooses.
//!
//! Groups run on rayon. The weight gradient sums one partial per rayon lane in lane order, so a
//! run is deterministic for a given thread count (the data-parallel training workers use one
//! thread each).

use crate::scratch::Scratch;
use rayon::prelude::*;

/// Output pixels a GEMM group aims for (images are grouped until they reach it).
const GROUP_PIXELS: usize = 256;

/// Shape of a 2-D convolution over NCHW tensors (one group, dilation 1, symmetric padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeom {
    pub n: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub padding: [usize; 2],
}

impl Conv2dGeom {
    /// Whether the kernel fits the padded input and strides are positive (what these kernels
    /// need; callers fall back to burn's convolution otherwise).
    pub fn is_valid(&self) -> bool {
        self.stride[0] > 0
            && self.stride[1] > 0
            && self.kh > 0
            && self.kw > 0
            && self.h + 2 * self.padding[0] >= self.kh
            && self.w + 2 * self.padding[1] >= self.kw
    }
    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.padding[0] - self.kh) / self.stride[0] + 1
    }
    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.padding[1] - self.kw) / self.stride[1] + 1
    }
    fn pixels(&self) -> usize {
        self.out_h() * self.out_w()
    }
    fn patch(&self) -> usize {
        self.c_in * self.kh * self.kw
    }
    fn image(&self) -> usize {
        self.c_in * self.h * self.w
    }
    /// Images per GEMM group.
    fn group(&self) -> usize {
        GROUP_PIXELS
            .div_ceil(self.pixels().max(1))
            .clamp(1, self.n.max(1))
    }
}

/// Write image `x` (`[C, H, W]`) as im2col columns `off..off + P` of `col` (rows of length `ld`).
fn im2col(g: &Conv2dGeom, x: &[f32], col: &mut [f32], ld: usize, off: usize) {
    let (oh, ow) = (g.out_h(), g.out_w());
    let ([sh, sw], [ph, pw]) = (g.stride, g.padding);
    for c in 0..g.c_in {
        let xc = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = (c * g.kh + i) * g.kw + j;
                let dst = &mut col[row * ld + off..row * ld + off + oh * ow];
                for (y, d) in dst.chunks_exact_mut(ow).enumerate() {
                    let iy = (y * sh + i).wrapping_sub(ph);
                    if iy >= g.h {
                        d.fill(0.0);
                        continue;
                    }
                    let xr = &xc[iy * g.w..(iy + 1) * g.w];
                    if sw == 1 {
                        // ix = ox + j - pw is inside [0, W) for ox in lo..hi.
                        let lo = pw.saturating_sub(j).min(ow);
                        let hi = (g.w + pw).saturating_sub(j).min(ow).max(lo);
                        d[..lo].fill(0.0);
                        d[hi..].fill(0.0);
                        d[lo..hi].copy_from_slice(&xr[lo + j - pw..hi + j - pw]);
                    } else {
                        for (ox, v) in d.iter_mut().enumerate() {
                            let ix = (ox * sw + j).wrapping_sub(pw);
                            *v = if ix < g.w { xr[ix] } else { 0.0 };
                        }
                    }
                }
            }
        }
    }
}

crate::isa::multiversion! {
    /// Add im2col columns `off..off + P` of `col` back into image `dx` (`[C, H, W]`): col2im.
    fn col2im_add(g: &Conv2dGeom, col: &[f32], ld: usize, off: usize, dx: &mut [f32]) {
        let (oh, ow) = (g.out_h(), g.out_w());
        let ([sh, sw], [ph, pw]) = (g.stride, g.padding);
        for c in 0..g.c_in {
            let xc = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
            for i in 0..g.kh {
                for j in 0..g.kw {
                    let row = (c * g.kh + i) * g.kw + j;
                    let src = &col[row * ld + off..row * ld + off + oh * ow];
                    for (y, s) in src.chunks_exact(ow).enumerate() {
                        let iy = (y * sh + i).wrapping_sub(ph);
                        if iy >= g.h {
                            continue;
                        }
                        let xr = &mut xc[iy * g.w..(iy + 1) * g.w];
                        if sw == 1 {
                            let lo = pw.saturating_sub(j).min(ow);
                            let hi = (g.w + pw).saturating_sub(j).min(ow).max(lo);
                            for (d, v) in xr[lo + j - pw..hi + j - pw].iter_mut().zip(&s[lo..hi]) {
                                *d += v;
                            }
                        } else {
                            for (ox, v) in s.iter().enumerate() {
                                let ix = (ox * sw + j).wrapping_sub(pw);
                                if ix < g.w {
                                    xr[ix] += v;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A strided matrix view for [`matmul`]: element `(r, c)` is at `ptr + r * rs + c * cs`.
#[derive(Clone, Copy)]
pub(crate) struct Mat {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}

impl Mat {
    pub(crate) fn rows(s: &[f32], ld: usize) -> Mat {
        Mat {
            ptr: s.as_ptr(),
            rs: ld as isize,
            cs: 1,
        }
    }
    pub(crate) fn cols(s: &[f32], ld: usize) -> Mat {
        Mat {
            ptr: s.as_ptr(),
            rs: 1,
            cs: ld as isize,
        }
    }
}

/// `dst[m, n] (+)= lhs[m, k] · rhs[k, n]`, `dst` row-major with rows of length `n`; adds to
/// `dst` when `accumulate`. Single-threaded: parallelism is over groups of images.
pub(crate) fn matmul(
    dst: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
    lhs: Mat,
    rhs: Mat,
    accumulate: bool,
) {
    assert!(dst.len() >= m * n, "matmul: destination too small");
    crate::count_flops(m, n, k);
    // SAFETY: `dst` holds m*n elements (checked above); the callers build `lhs` and `rhs`
    // views from slices that hold every (r, c) they address (m x k and k x n), and `dst`
    // does not alias them (it is a distinct &mut).
    unsafe {
        crate::isa::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.ptr,
            lhs.cs,
            lhs.rs,
            rhs.ptr,
            rhs.cs,
            rhs.rs,
        );
    }
}

/// Copy `dy` of `gn` images (`[gn, Cout, P]`) into `[Cout, gn * P]` (the group's GEMM layout).
fn pack_rows(src: &[f32], gn: usize, c: usize, p: usize, dst: &mut [f32]) {
    let ld = gn * p;
    for gi in 0..gn {
        for ch in 0..c {
            dst[ch * ld + gi * p..ch * ld + (gi + 1) * p]
                .copy_from_slice(&src[(gi * c + ch) * p..(gi * c + ch + 1) * p]);
        }
    }
}

/// Forward convolution: `x` `[N, Cin, H, W]`, `w` `[Cout, Cin, kh, kw]`, optional `bias`
/// `[Cout]`; returns `[N, Cout, OH, OW]`.
pub fn conv2d_forward(g: &Conv2dGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    crate::count_layer_flops(g);
    if crate::winograd::chosen(g, crate::winograd::Pass::Forward) {
        crate::winograd::forward(g, x, w, bias)
    } else {
        im2col_forward(g, x, w, bias)
    }
}

/// [`conv2d_forward`] by im2col and one GEMM per group, whatever [`crate::winograd`] would take.
pub fn im2col_forward(g: &Conv2dGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let (p, ck, chw) = (g.pixels(), g.patch(), g.image());
    let gs = g.group();
    let mut out = vec![0f32; g.n * g.c_out * p];
    if g.n == 0 || p == 0 {
        return out;
    }
    out.par_chunks_mut(gs * g.c_out * p)
        .zip(x.par_chunks(gs * chw))
        .for_each(|(o, xg)| {
            let gn = xg.len() / chw;
            let ld = gn * p;
            let mut col = Scratch::new(ck * ld);
            for gi in 0..gn {
                im2col(g, &xg[gi * chw..(gi + 1) * chw], &mut col, ld, gi * p);
            }
            let lhs = Mat::rows(w, ck);
            let rhs = Mat::rows(&col, ld);
            if gn == 1 {
                matmul(o, g.c_out, p, ck, lhs, rhs, false);
            } else {
                let mut tmp = Scratch::new(g.c_out * ld);
                matmul(&mut tmp, g.c_out, ld, ck, lhs, rhs, false);
                for gi in 0..gn {
                    for ch in 0..g.c_out {
                        o[(gi * g.c_out + ch) * p..(gi * g.c_out + ch + 1) * p]
                            .copy_from_slice(&tmp[ch * ld + gi * p..ch * ld + (gi + 1) * p]);
                    }
                }
            }
            if let Some(b) = bias {
                for (plane, &bv) in o.chunks_exact_mut(p).zip(b.iter().cycle()) {
                    plane.iter_mut().for_each(|v| *v += bv);
                }
            }
        });
    out
}

/// Gradient of the loss with respect to the weights, `[Cout, Cin, kh, kw]`, from the input `x`
/// and the output gradient `dy` (`[N, Cout, OH, OW]`).
pub fn conv2d_weight_grad(g: &Conv2dGeom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    crate::count_layer_flops(g);
    if crate::winograd::chosen(g, crate::winograd::Pass::WeightGrad) {
        crate::winograd::weight_grad(g, x, dy)
    } else {
        im2col_weight_grad(g, x, dy)
    }
}

/// [`conv2d_weight_grad`] by im2col and one GEMM per group, whatever [`crate::winograd`] would take.
pub fn im2col_weight_grad(g: &Conv2dGeom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (p, ck, chw) = (g.pixels(), g.patch(), g.image());
    let gs = g.group();
    let groups = g.n.div_ceil(gs);
    let size = g.c_out * ck;
    if groups == 0 || p == 0 {
        return vec![0f32; size];
    }
    let most = gs * p;
    let buffers = || (Scratch::new(ck * most), Scratch::new(g.c_out * most));
    sum_over_groups(groups, size, buffers, |(col, packed), grp, acc, add| {
        let lo = grp * gs;
        let gn = gs.min(g.n - lo);
        let ld = gn * p;
        let col = &mut col[..ck * ld];
        for gi in 0..gn {
            let i = lo + gi;
            im2col(g, &x[i * chw..(i + 1) * chw], col, ld, gi * p);
        }
        let dyg = &dy[lo * g.c_out * p..(lo + gn) * g.c_out * p];
        let lhs = if gn == 1 {
            dyg
        } else {
            let packed = &mut packed[..g.c_out * ld];
            pack_rows(dyg, gn, g.c_out, p, packed);
            &packed[..]
        };
        matmul(
            acc,
            g.c_out,
            ck,
            ld,
            Mat::rows(lhs, ld),
            Mat::cols(col, ld),
            add,
        );
    })
}

/// A weight gradient's sum over `groups` groups of images, the same for a given thread count
/// run after run: the groups are dealt to one lane per rayon thread in a fixed stride, each
/// lane keeps its own `size` sums (`group(buffers, grp, acc, add)` writes group `grp`'s
/// product into `acc`, or adds it when `add`; the lane's first group writes), and the lanes'
/// sums are added in lane order, the order `collect` keeps. `buffers` makes a lane's working
/// buffers once. im2col's and Winograd's weight gradients both run on it.
pub(crate) fn sum_over_groups<B>(
    groups: usize,
    size: usize,
    buffers: impl Fn() -> B + Sync,
    group: impl Fn(&mut B, usize, &mut [f32], bool) + Sync,
) -> Vec<f32> {
    if groups == 0 {
        return vec![0f32; size];
    }
    let lanes = rayon::current_num_threads().clamp(1, groups);
    let partials: Vec<Vec<f32>> = (0..lanes)
        .into_par_iter()
        .map(|lane| {
            let mut acc = vec![0f32; size];
            let mut b = buffers();
            for grp in (lane..groups).step_by(lanes) {
                group(&mut b, grp, &mut acc, grp != lane);
            }
            acc
        })
        .collect();
    let mut parts = partials.into_iter();
    let mut total = parts.next().unwrap_or_else(|| vec![0f32; size]);
    for part in parts {
        for (t, v) in total.iter_mut().zip(&part) {
            *t += v;
        }
    }
    total
}

/// Gradient of the loss with respect to the input, `[N, Cin, H, W]`, from the weights and the
/// output gradient `dy`.
pub fn conv2d_input_grad(g: &Conv2dGeom, w: &[f32], dy: &[f32]) -> Vec<f32> {
    crate::count_layer_flops(g);
    if crate::winograd::chosen(g, crate::winograd::Pass::InputGrad) {
        crate::winograd::input_grad(g, w, dy)
    } else {
        im2col_input_grad(g, w, dy)
    }
}

/// [`conv2d_input_grad`] by im2col and one GEMM per group, whatever [`crate::winograd`] would take.
pub fn im2col_input_grad(g: &Conv2dGeom, w: &[f32], dy: &[f32]) -> Vec<f32> {
    let (p, ck, chw) = (g.pixels(), g.patch(), g.image());
    let gs = g.group();
    let mut dx = vec![0f32; g.n * chw];
    if g.n == 0 || p == 0 {
        return dx;
    }
    dx.par_chunks_mut(gs * chw)
        .zip(dy.par_chunks(gs * g.c_out * p))
        .for_each(|(dxg, dyg)| {
            let gn = dxg.len() / chw;
            let ld = gn * p;
            let mut packed = Scratch::new(if gn == 1 { 0 } else { g.c_out * ld });
            let rhs = if gn == 1 {
                dyg
            } else {
                pack_rows(dyg, gn, g.c_out, p, &mut packed);
                &packed[..]
            };
            let mut dcol = Scratch::new(ck * ld);
            // Wᵀ: element (j, o) of the [Ck², Cout] matrix is w[o * Ck² + j].
            matmul(
                &mut dcol,
                ck,
                ld,
                g.c_out,
                Mat::cols(w, ck),
                Mat::rows(rhs, ld),
                false,
            );
            for gi in 0..gn {
                col2im_add(g, &dcol, ld, gi * p, &mut dxg[gi * chw..(gi + 1) * chw]);
            }
        });
    dx
}

/// Gradient with respect to the bias, `[Cout]`: `dy` summed over images and pixels.
pub fn conv2d_bias_grad(g: &Conv2dGeom, dy: &[f32]) -> Vec<f32> {
    let p = g.pixels();
    let mut db = vec![0f32; g.c_out];
    if p == 0 {
        return db;
    }
    for (i, plane) in dy.chunks_exact(p).enumerate() {
        db[i % g.c_out] += sum(plane);
    }
    db
}

/// Sum of a slice in 8 interleaved lanes (a plain `iter().sum()` of floats cannot vectorize:
/// the compiler keeps the sequential order).
pub(crate) fn sum(v: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (l, x) in lanes.iter_mut().zip(c) {
            *l += x;
        }
    }
    lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}
