//! The instruction-set paths (`fer_ops::isa`): which one this machine selects, and that every
//! kernel gives the same results on each set the CPU has (AVX-512, AVX2 + FMA, portable),
//! forward and backward, within float tolerance; each GEMM path also against an f64 product.
//!
//! One test function: the selection is process-wide, and this file is its own test binary.

use crate::common::{random, rel_diff};
use fer_ops::conv::{self, Conv2dGeom};
use fer_ops::isa::{self, Isa};
use fer_ops::norm::{self, NormGeom};
use fer_ops::pool::{self, PoolGeom};

/// Every kernel's outputs on fixed random inputs, named, under the selected set.
fn outputs() -> Vec<(String, Vec<f32>)> {
    let mut out = Vec::new();
    // fer-small's first and middle layers (the second's gradients and the third's every pass
    // by Winograd), tune's 5x5, seed-base's valid 3x3, a stride 2.
    let convs = [
        (8, 1, 48, 16, 3, 1, 1),
        (8, 32, 12, 64, 3, 1, 1),
        (4, 64, 6, 96, 3, 1, 1),
        (5, 16, 11, 24, 5, 1, 2),
        (4, 8, 10, 16, 3, 1, 0),
        (3, 4, 9, 8, 3, 2, 1),
    ];
    for (i, &(n, c_in, hw, c_out, k, s, p)) in convs.iter().enumerate() {
        let g = Conv2dGeom {
            n,
            c_in,
            h: hw,
            w: hw,
            c_out,
            kh: k,
            kw: k,
            stride: [s, s],
            padding: [p, p],
        };
        let x = random(n * c_in * hw * hw, 10 + i as u64);
        let w = random(c_out * c_in * k * k, 20 + i as u64);
        let b = random(c_out, 30 + i as u64);
        let y = conv::conv2d_forward(&g, &x, &w, Some(&b));
        let dy = random(y.len(), 40 + i as u64);
        out.push((format!("conv{i} forward"), y));
        out.push((
            format!("conv{i} weight grad"),
            conv::conv2d_weight_grad(&g, &x, &dy),
        ));
        out.push((
            format!("conv{i} input grad"),
            conv::conv2d_input_grad(&g, &w, &dy),
        ));
        out.push((
            format!("conv{i} bias grad"),
            conv::conv2d_bias_grad(&g, &dy),
        ));
    }
    let g = NormGeom {
        n: 6,
        c: 12,
        hw: 49,
    };
    let x = random(g.n * g.c * g.hw, 50);
    let dy = random(x.len(), 51);
    let gamma = random(g.c, 52);
    let beta = random(g.c, 53);
    let stats = norm::bn_stats(&g, &x);
    let (mean, var) = stats.split_at(g.c);
    out.push(("batch norm stats".into(), stats.clone()));
    for relu in [false, true] {
        out.push((
            format!("batch norm forward (relu {relu})"),
            norm::bn_forward(&g, &x, &gamma, &beta, mean, var, 1e-5, relu),
        ));
        let (dx, dg, db) = norm::bn_backward(&g, &x, &dy, &gamma, &beta, mean, var, 1e-5, relu);
        out.push((format!("batch norm dx (relu {relu})"), dx));
        out.push((format!("batch norm dgamma (relu {relu})"), dg));
        out.push((format!("batch norm dbeta (relu {relu})"), db));
    }
    for (i, (hw, k, s)) in [(12, 2, 2), (9, 3, 2)].into_iter().enumerate() {
        let g = PoolGeom {
            n: 3,
            c: 5,
            h: hw,
            w: hw,
            kernel: [k, k],
            stride: [s, s],
        };
        let x = random(g.n * g.c * hw * hw, 60 + i as u64);
        let y = pool::max_pool2d_forward(&g, &x);
        let dy = random(y.len(), 70 + i as u64);
        out.push((format!("max pool{i} forward"), y));
        out.push((
            format!("max pool{i} backward"),
            pool::max_pool2d_backward(&g, &x, &dy),
        ));
    }
    out
}

/// A GEMM through `isa::gemm` (row-major, `m x k` times `k x n`), and its f64 reference.
fn gemm_case(m: usize, n: usize, k: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let a = random(m * k, seed);
    let b = random(k * n, seed + 1);
    let mut c = vec![0f32; m * n];
    // SAFETY: a is m x k, b is k x n, c is m x n, all row-major and distinct.
    unsafe {
        isa::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
        );
    }
    let mut r = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            r[i * n + j] = (0..k)
                .map(|l| a[i * k + l] as f64 * b[l * n + j] as f64)
                .sum::<f64>() as f32;
        }
    }
    (c, r)
}

#[test]
fn each_instruction_set_gives_the_same_results() {
    let best = Isa::best();
    let selected = isa::selected();
    eprintln!(
        "fer-ops instruction sets on this machine: selected {selected}, best {best}; supported: {}",
        Isa::ALL
            .iter()
            .filter(|i| i.supported())
            .map(|i| i.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if std::env::var_os("FER_OPS_ISA").is_none() {
        assert_eq!(selected, best, "without FER_OPS_ISA the best set runs");
    }
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(
            Isa::Avx512.supported(),
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma"),
        );
        assert_eq!(
            Isa::Avx2.supported(),
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma"),
        );
    }
    for i in Isa::ALL.into_iter().filter(|i| !i.supported()) {
        eprintln!("the {i} path is not run here: this CPU has no {i}");
        assert!(isa::select(i).is_err());
    }

    let mut results = Vec::new();
    for i in Isa::ALL.into_iter().filter(|i| i.supported()) {
        isa::select(i).unwrap();
        assert_eq!(isa::selected(), i);
        // Square, tall, wide, and the conv layers' odd shapes (m below one microkernel's rows).
        for (m, n, k) in [
            (64, 64, 64),
            (32, 300, 9),
            (7, 5, 300),
            (96, 37, 200),
            (1, 1, 1),
        ] {
            let (c, r) = gemm_case(m, n, k, (m * 1000 + n) as u64);
            let d = rel_diff(&c, &r);
            assert!(d < 1e-5, "{i}: gemm {m}x{n}x{k} differs from f64 by {d}");
        }
        results.push((i, outputs()));
    }
    isa::select(best).unwrap();
    let (reference_isa, reference) = &results[0];
    for (i, out) in &results[1..] {
        for ((name, a), (_, b)) in out.iter().zip(reference) {
            let d = rel_diff(a, b);
            assert!(
                d < 2e-5,
                "{name}: {i} differs from {reference_isa} by {d} (relative)"
            );
        }
        eprintln!(
            "{i} and {reference_isa} agree on {} kernel outputs",
            out.len()
        );
    }
}
