//! The Winograd F(2x2, 3x3) transforms of [`super`]: filters (`G g Gᵀ` and back), input tiles
//! (`Bᵀ d B` and the transpose that adds gradients back), output tiles (`Aᵀ M A`) and output
//! gradient tiles (`A dY Aᵀ`), each arithmetic pass over all of an image's tiles at once.

use crate::conv::Conv2dGeom;

/// Tiles a GEMM group aims for (images are grouped until they reach it).
const GROUP_TILES: usize = 144;

/// The tile layout of one image: `th x tw` tiles of 2x2 outputs, read from a zero-padded plane
/// of `ph x pw` pixels (`2·th + 2` by `2·tw + 2`, the image at offset `padding`).
#[derive(Clone, Copy)]
pub(super) struct Layout {
    th: usize,
    tw: usize,
    ph: usize,
    pw: usize,
}

impl Layout {
    pub(super) fn of(g: &Conv2dGeom) -> Layout {
        let (th, tw) = (g.out_h().div_ceil(2), g.out_w().div_ceil(2));
        Layout {
            th,
            tw,
            ph: 2 * th + 2,
            pw: 2 * tw + 2,
        }
    }
    pub(super) fn tiles(&self) -> usize {
        self.th * self.tw
    }
    /// Images per GEMM group.
    pub(super) fn group(&self, n: usize) -> usize {
        GROUP_TILES.div_ceil(self.tiles().max(1)).clamp(1, n.max(1))
    }
}

/// `U = G g Gᵀ` of every filter, as `[16][Cout][Cin]`.
pub(super) fn filter_tiles(g: &Conv2dGeom, w: &[f32]) -> Vec<f32> {
    let (co, ci) = (g.c_out, g.c_in);
    let mut u = vec![0f32; 16 * co * ci];
    for k in 0..co {
        for c in 0..ci {
            let f = &w[(k * ci + c) * 9..(k * ci + c + 1) * 9];
            // G f: 4 rows of 3.
            let mut t = [[0f32; 3]; 4];
            for j in 0..3 {
                let (a, b, d) = (f[j], f[3 + j], f[6 + j]);
                t[0][j] = a;
                t[1][j] = 0.5 * (a + b + d);
                t[2][j] = 0.5 * (a - b + d);
                t[3][j] = d;
            }
            for (i, r) in t.iter().enumerate() {
                let (a, b, d) = (r[0], r[1], r[2]);
                let row = [a, 0.5 * (a + b + d), 0.5 * (a - b + d), d];
                for (j, v) in row.into_iter().enumerate() {
                    u[((i * 4 + j) * co + k) * ci + c] = v;
                }
            }
        }
    }
    u
}

/// `Gᵀ dU G` of every filter's 4x4 gradient tile (`du` `[16][Cout][Cin]`): the weight
/// gradient, `[Cout, Cin, 3, 3]`.
pub(super) fn filter_grads(g: &Conv2dGeom, du: &[f32]) -> Vec<f32> {
    let (co, ci) = (g.c_out, g.c_in);
    let mut dw = vec![0f32; co * ci * 9];
    for k in 0..co {
        for c in 0..ci {
            let at = |x: usize| du[(x * co + k) * ci + c];
            // Gᵀ dU: 3 rows of 4.
            let mut s = [[0f32; 4]; 3];
            for j in 0..4 {
                let (a, b, d, e) = (at(j), at(4 + j), at(8 + j), at(12 + j));
                s[0][j] = a + 0.5 * (b + d);
                s[1][j] = 0.5 * (b - d);
                s[2][j] = 0.5 * (b + d) + e;
            }
            let out = &mut dw[(k * ci + c) * 9..(k * ci + c + 1) * 9];
            for (i, r) in s.iter().enumerate() {
                let (a, b, d, e) = (r[0], r[1], r[2], r[3]);
                out[i * 3] = a + 0.5 * (b + d);
                out[i * 3 + 1] = 0.5 * (b - d);
                out[i * 3 + 2] = 0.5 * (b + d) + e;
            }
        }
    }
    dw
}

/// Split the zero-padded plane of one channel (`[H, W]` at offset `padding`) into its even and
/// odd columns, `e` and `o` (`ph` rows of `tw + 1`), the form the horizontal transforms read
/// with unit stride. Positions the image does not cover stay as they are (zero).
fn split_columns(g: &Conv2dGeom, l: Layout, xc: &[f32], e: &mut [f32], o: &mut [f32]) {
    let [py, px] = g.padding;
    let half = l.tw + 1;
    let rows = g.h.min(l.ph - py);
    let cols = g.w.min(l.pw - px);
    for iy in 0..rows {
        let src = &xc[iy * g.w..iy * g.w + cols];
        let (er, or) = (
            &mut e[(iy + py) * half..(iy + py + 1) * half],
            &mut o[(iy + py) * half..(iy + py + 1) * half],
        );
        for (ix, &v) in src.iter().enumerate() {
            let c = ix + px;
            if c % 2 == 0 {
                er[c / 2] = v;
            } else {
                or[c / 2] = v;
            }
        }
    }
}

crate::isa::multiversion! {
    /// `V = Bᵀ d B` of every 4x4 input tile of the `gn` images `x` (`[gn, Cin, H, W]`) into
    /// `v` (`[16][Cin][ld]`; image `gi`'s tiles are columns `gi·tiles..`, row-major).
    ///
    /// Per channel: the columns split into even and odd, then `d B` along each padded row
    /// (`h[j]`, even and odd rows apart), then `Bᵀ` down the rows, each a unit-stride pass over
    /// all the image's tiles.
    pub(super) fn input_tiles(g: &Conv2dGeom, l: Layout, x: &[f32], gn: usize, v: &mut [f32], ld: usize) {
        let (ci, hw, tw, n) = (g.c_in, g.h * g.w, l.tw, l.tiles());
        let half = tw + 1;
        let (mut e, mut o) = (vec![0f32; l.ph * half], vec![0f32; l.ph * half]);
        // h[j][parity]: rows 0..=th of tw values (padded row 2·r + parity).
        let mut h = vec![0f32; 8 * (l.th + 1) * tw];
        let hs = (l.th + 1) * tw;
        for gi in 0..gn {
            for c in 0..ci {
                split_columns(g, l, &x[(gi * ci + c) * hw..(gi * ci + c + 1) * hw], &mut e, &mut o);
                for r in 0..l.ph {
                    let (er, or) = (&e[r * half..(r + 1) * half], &o[r * half..(r + 1) * half]);
                    let at = (r % 2) * hs + (r / 2) * tw;
                    for tx in 0..tw {
                        let (e0, e1, o0, o1) = (er[tx], er[tx + 1], or[tx], or[tx + 1]);
                        h[at + tx] = e0 - e1;
                        h[2 * hs + at + tx] = o0 + e1;
                        h[4 * hs + at + tx] = e1 - o0;
                        h[6 * hs + at + tx] = o0 - o1;
                    }
                }
                let col = gi * n;
                for j in 0..4 {
                    let he = &h[2 * j * hs..2 * j * hs + hs];
                    let ho = &h[(2 * j + 1) * hs..(2 * j + 1) * hs + hs];
                    let (e0, e1, o0, o1) = (&he[..n], &he[tw..tw + n], &ho[..n], &ho[tw..tw + n]);
                    let row = |i: usize| ((i * 4 + j) * ci + c) * ld + col;
                    for (d, (a, b)) in v[row(0)..row(0) + n].iter_mut().zip(e0.iter().zip(e1)) {
                        *d = a - b;
                    }
                    for (d, (a, b)) in v[row(1)..row(1) + n].iter_mut().zip(o0.iter().zip(e1)) {
                        *d = a + b;
                    }
                    for (d, (a, b)) in v[row(2)..row(2) + n].iter_mut().zip(e1.iter().zip(o0)) {
                        *d = a - b;
                    }
                    for (d, (a, b)) in v[row(3)..row(3) + n].iter_mut().zip(o0.iter().zip(o1)) {
                        *d = a - b;
                    }
                }
            }
        }
    }
}

crate::isa::multiversion! {
    /// Each 2x2 output tile `Aᵀ M A` from `m` (`[16][Cout][ld]`) into the `gn` images `y`
    /// (`[gn, Cout, OH, OW]`), plus the bias: the arithmetic over all of an image's tiles at
    /// once, then the four values of each tile put in place.
    pub(super) fn output_tiles(g: &Conv2dGeom, l: Layout, m: &[f32], ld: usize, gn: usize, y: &mut [f32], bias: Option<&[f32]>) {
        let (co, oh, ow, tw, n) = (g.c_out, g.out_h(), g.out_w(), l.tw, l.tiles());
        let mut q = vec![0f32; 4 * n];
        for gi in 0..gn {
            for k in 0..co {
                let b = bias.map_or(0.0, |b| b[k]);
                let col = gi * n;
                let r = |x: usize| &m[(x * co + k) * ld + col..(x * co + k) * ld + col + n];
                let (m0, m1, m2, m3) = (r(0), r(1), r(2), r(3));
                let (m4, m5, m6, m7) = (r(4), r(5), r(6), r(7));
                let (m8, m9, m10, m11) = (r(8), r(9), r(10), r(11));
                let (m12, m13, m14, m15) = (r(12), r(13), r(14), r(15));
                let (y00, rest) = q.split_at_mut(n);
                let (y01, rest) = rest.split_at_mut(n);
                let (y10, y11) = rest.split_at_mut(n);
                for t in 0..n {
                    // Aᵀ M: rows 0 + 1 + 2 and 1 - 2 - 3.
                    let s00 = m0[t] + m4[t] + m8[t];
                    let s01 = m1[t] + m5[t] + m9[t];
                    let s02 = m2[t] + m6[t] + m10[t];
                    let s03 = m3[t] + m7[t] + m11[t];
                    let s10 = m4[t] - m8[t] - m12[t];
                    let s11 = m5[t] - m9[t] - m13[t];
                    let s12 = m6[t] - m10[t] - m14[t];
                    let s13 = m7[t] - m11[t] - m15[t];
                    y00[t] = s00 + s01 + s02 + b;
                    y01[t] = s01 - s02 - s03 + b;
                    y10[t] = s10 + s11 + s12 + b;
                    y11[t] = s11 - s12 - s13 + b;
                }
                let yk = &mut y[(gi * co + k) * oh * ow..(gi * co + k + 1) * oh * ow];
                for oy in 0..oh {
                    let (ty, i) = (oy / 2, oy % 2);
                    let (even, odd) = if i == 0 { (&*y00, &*y01) } else { (&*y10, &*y11) };
                    let (even, odd) = (&even[ty * tw..ty * tw + tw], &odd[ty * tw..ty * tw + tw]);
                    let row = &mut yk[oy * ow..(oy + 1) * ow];
                    let mut pairs = row.chunks_exact_mut(2);
                    for (pair, (a, b)) in (&mut pairs).zip(even.iter().zip(odd)) {
                        pair[0] = *a;
                        pair[1] = *b;
                    }
                    if let [last] = pairs.into_remainder() {
                        *last = even[tw - 1];
                    }
                }
            }
        }
    }
}

crate::isa::multiversion! {
    /// `dM = A dY Aᵀ` of every 2x2 output-gradient tile of the `gn` images `dy`
    /// (`[gn, Cout, OH, OW]`) into `dm` (`[16][Cout][ld]`); outputs past the map's edge are 0.
    pub(super) fn grad_tiles(g: &Conv2dGeom, l: Layout, dy: &[f32], gn: usize, dm: &mut [f32], ld: usize) {
        let (co, oh, ow, tw, n) = (g.c_out, g.out_h(), g.out_w(), l.tw, l.tiles());
        // The tiles' four values, a b / c d, each over all tiles; then A on each pair.
        let mut q = vec![0f32; 4 * n];
        let mut pr = vec![0f32; 8 * n];
        for gi in 0..gn {
            for k in 0..co {
                let src = &dy[(gi * co + k) * oh * ow..(gi * co + k + 1) * oh * ow];
                for oy in 0..oh {
                    let (ty, i) = (oy / 2, oy % 2);
                    let at = 2 * i * n + ty * tw;
                    let (left, right) = q.split_at_mut(at + n);
                    let (left, right) = (&mut left[at..at + tw], &mut right[..tw]);
                    let mut pairs = src[oy * ow..(oy + 1) * ow].chunks_exact(2);
                    for (pair, (a, b)) in (&mut pairs).zip(left.iter_mut().zip(right.iter_mut())) {
                        *a = pair[0];
                        *b = pair[1];
                    }
                    if let [last] = pairs.remainder() {
                        left[tw - 1] = *last;
                        right[tw - 1] = 0.0;
                    }
                }
                // A applied to (a, b) and to (c, d): p[j] and r[j], j = 0..4.
                let (ab, cd) = q.split_at(2 * n);
                let (p_rows, r_rows) = pr.split_at_mut(4 * n);
                a_map(&ab[..n], &ab[n..], p_rows, n);
                a_map(&cd[..n], &cd[n..], r_rows, n);
                let col = gi * n;
                for j in 0..4 {
                    let (p, r) = (&pr[j * n..(j + 1) * n], &pr[(4 + j) * n..(5 + j) * n]);
                    let row = |i: usize| (((i * 4 + j) * co + k) * ld + col)..(((i * 4 + j) * co + k) * ld + col + n);
                    dm[row(0)].copy_from_slice(p);
                    for (d, (u, v)) in dm[row(1)].iter_mut().zip(p.iter().zip(r)) {
                        *d = u + v;
                    }
                    for (d, (u, v)) in dm[row(2)].iter_mut().zip(p.iter().zip(r)) {
                        *d = u - v;
                    }
                    for (d, v) in dm[row(3)].iter_mut().zip(r) {
                        *d = -v;
                    }
                }
            }
        }
    }
}

/// A's rows on a pair `(u, v)` of length-`n` rows: `u`, `u + v`, `u - v`, `-v`, into the four
/// rows of `out`.
#[inline(always)]
fn a_map(u: &[f32], v: &[f32], out: &mut [f32], n: usize) {
    let (o0, rest) = out.split_at_mut(n);
    let (o1, rest) = rest.split_at_mut(n);
    let (o2, o3) = rest.split_at_mut(n);
    o0.copy_from_slice(u);
    for (((d1, d2), d3), (a, b)) in o1
        .iter_mut()
        .zip(o2.iter_mut())
        .zip(o3.iter_mut())
        .zip(u.iter().zip(v))
    {
        *d1 = a + b;
        *d2 = a - b;
        *d3 = -b;
    }
}

crate::isa::multiversion! {
    /// `B dV Bᵀ` of every tile of `dv` (`[16][Cin][ld]`), added into the `gn` images `dx`
    /// (`[gn, Cin, H, W]`) where the tiles read the input: the input gradient. Each step is
    /// the transpose of one of [`input_tiles`]'s, in reverse order.
    pub(super) fn add_input_grads(g: &Conv2dGeom, l: Layout, dv: &[f32], ld: usize, gn: usize, dx: &mut [f32]) {
        let (ci, hw, tw, n) = (g.c_in, g.h * g.w, l.tw, l.tiles());
        let [py, px] = g.padding;
        let half = tw + 1;
        let hs = (l.th + 1) * tw;
        let mut h = vec![0f32; 8 * hs];
        let (mut e, mut o) = (vec![0f32; l.ph * half], vec![0f32; l.ph * half]);
        let rows = g.h.min(l.ph - py);
        let cols = g.w.min(l.pw - px);
        for gi in 0..gn {
            for c in 0..ci {
                let col = gi * n;
                let r = |x: usize| &dv[(x * ci + c) * ld + col..(x * ci + c) * ld + col + n];
                h.fill(0.0);
                for j in 0..4 {
                    let (v0, v1, v2, v3) = (r(j), r(4 + j), r(8 + j), r(12 + j));
                    let (he, ho) = h[2 * j * hs..(2 * j + 2) * hs].split_at_mut(hs);
                    // Transpose of: v0 = he[t] - he[t+tw], v1 = ho[t] + he[t+tw],
                    // v2 = he[t+tw] - ho[t], v3 = ho[t] - ho[t+tw].
                    for (d, a) in he[..n].iter_mut().zip(v0) {
                        *d += a;
                    }
                    for (d, ((a, b), c2)) in he[tw..tw + n].iter_mut().zip(v0.iter().zip(v1).zip(v2)) {
                        *d += b + c2 - a;
                    }
                    for (d, ((b, c2), f)) in ho[..n].iter_mut().zip(v1.iter().zip(v2).zip(v3)) {
                        *d += b - c2 + f;
                    }
                    for (d, f) in ho[tw..tw + n].iter_mut().zip(v3) {
                        *d -= f;
                    }
                }
                e.fill(0.0);
                o.fill(0.0);
                for pr in 0..l.ph {
                    let at = (pr % 2) * hs + (pr / 2) * tw;
                    let (er, or) = (&mut e[pr * half..(pr + 1) * half], &mut o[pr * half..(pr + 1) * half]);
                    // Transpose of: h0 = e[t] - e[t+1], h1 = o[t] + e[t+1], h2 = e[t+1] - o[t],
                    // h3 = o[t] - o[t+1].
                    for tx in 0..tw {
                        let (h0, h1, h2, h3) =
                            (h[at + tx], h[2 * hs + at + tx], h[4 * hs + at + tx], h[6 * hs + at + tx]);
                        er[tx] += h0;
                        er[tx + 1] += h1 + h2 - h0;
                        or[tx] += h1 - h2 + h3;
                        or[tx + 1] -= h3;
                    }
                }
                let xc = &mut dx[(gi * ci + c) * hw..(gi * ci + c + 1) * hw];
                for iy in 0..rows {
                    let (er, or) = (&e[(iy + py) * half..], &o[(iy + py) * half..]);
                    for (ix, d) in xc[iy * g.w..iy * g.w + cols].iter_mut().enumerate() {
                        let cc = ix + px;
                        *d += if cc % 2 == 0 { er[cc / 2] } else { or[cc / 2] };
                    }
                }
            }
        }
    }
}
