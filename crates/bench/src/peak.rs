//! `fer-bench --only peak`: how close a fer-small training step comes to the machine's GEMM
//! limit.
//!
//! - The peak: the gemm crate's kernels (through `fer_ops::isa::gemm`, on the instruction set
//!   the kernels run) on a large square product (1024 x 1024 x 1024, single-threaded, as the
//!   training's GEMMs are), one per rayon thread at once, best of `repeat` rounds: GFLOP/s of
//!   the whole machine.
//! - The step: one epoch of fer-small training (`compare`'s `train fer-small` row), its
//!   convolutions' floating-point operations over the epoch's time, counted two ways: the
//!   layers' own (`fer_ops::layer_flops`: the direct convolution's `2·N·Cout·OH·OW·Cin·k²`
//!   per pass, forward, weight and input gradients) and what their GEMMs ran
//!   (`fer_ops::gemm_flops`, `2·m·n·k` each; fewer where Winograd took the pass). The dense
//!   layer and the element-wise ops are left out, under 1% of the work.
//!
//! The layers' ratio says how the step compares with a direct convolution at the GEMM's
//! speed: above 100% only by doing fewer multiplications (Winograd). The GEMMs' ratio says how
//! much of the step is spent at the GEMM's speed: the rest goes to im2col and the Winograd
//! transforms, batch norm, pooling, the optimizer and the GEMMs' own small-shape overhead.

use rayon::prelude::*;
use std::time::Instant;

/// Side of the square product.
pub const SIDE: usize = 1024;

/// The machine's GEMM GFLOP/s: one `SIDE`³ product per rayon thread at once, best of
/// `repeat` rounds.
pub fn gemm_peak(repeat: usize) -> f64 {
    let threads = rayon::current_num_threads();
    let a: Vec<f32> = (0..SIDE * SIDE).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..SIDE * SIDE).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut best = 0f64;
    for _ in 0..repeat.max(1) + 1 {
        let t = Instant::now();
        (0..threads).into_par_iter().for_each(|_| {
            let mut c = vec![0f32; SIDE * SIDE];
            // SAFETY: a, b, c are SIDE x SIDE row-major and distinct.
            unsafe {
                fer_ops::isa::gemm(
                    SIDE,
                    SIDE,
                    SIDE,
                    c.as_mut_ptr(),
                    1,
                    SIDE as isize,
                    false,
                    a.as_ptr(),
                    1,
                    SIDE as isize,
                    b.as_ptr(),
                    1,
                    SIDE as isize,
                );
            }
            std::hint::black_box(&c);
        });
        let flops = (2 * SIDE * SIDE * SIDE * threads) as f64;
        // The first round warms up (pages, caches) and is not counted.
        best = best.max(flops / t.elapsed().as_secs_f64() / 1e9);
    }
    best
}
