//! The Winograd F(2x2, 3x3) path (`fer_ops::winograd`) gives im2col's results, forward and both
//! gradients, within float tolerance, on the shapes our models use (fer-small's "same" 3x3
//! layers, seed-base's valid ones with odd maps) and edge cases (padding 2, non-square maps,
//! a 1x1 output, odd batches that leave a short last group); and it takes exactly the 3x3
//! stride-1 layers with enough channels.

use crate::common::{random, rel_diff};
use fer_ops::conv::{self, Conv2dGeom};
use fer_ops::winograd;

fn geom(n: usize, c_in: usize, hw: [usize; 2], c_out: usize, pad: usize) -> Conv2dGeom {
    Conv2dGeom {
        n,
        c_in,
        h: hw[0],
        w: hw[1],
        c_out,
        kh: 3,
        kw: 3,
        stride: [1, 1],
        padding: [pad, pad],
    }
}

#[test]
fn winograd_equals_im2col_forward_and_backward() {
    let cases = [
        // fer-small's blocks 2-4, a worker's batch of 32
        (32, 32, [24, 24], 64, 1),
        (32, 64, [12, 12], 128, 1),
        (32, 128, [6, 6], 192, 1),
        // seed-base's valid layers (odd output maps: 21x21, 8x8)
        (8, 32, [23, 23], 64, 0),
        (8, 64, [10, 10], 128, 0),
        // padding 2, non-square, a 1x1 output, odd batches with a short last group
        (5, 8, [7, 5], 12, 2),
        (3, 9, [11, 6], 7, 1),
        (7, 16, [3, 3], 5, 0),
        (19, 12, [5, 5], 9, 1),
        (1, 8, [1, 1], 3, 1),
    ];
    for (i, &(n, c_in, hw, c_out, pad)) in cases.iter().enumerate() {
        let g = geom(n, c_in, hw, c_out, pad);
        assert!(
            winograd::applies(&g),
            "case {i} should take the Winograd path"
        );
        let seed = 100 * i as u64;
        let x = random(n * c_in * hw[0] * hw[1], seed);
        let w = random(c_out * c_in * 9, seed + 1);
        let b = random(c_out, seed + 2);
        let dy = random(n * c_out * g.out_h() * g.out_w(), seed + 3);
        let what = format!("n={n} c_in={c_in} {hw:?} c_out={c_out} pad={pad}");
        let tol = 1e-5;
        for bias in [None, Some(&b[..])] {
            let d = rel_diff(
                &winograd::forward(&g, &x, &w, bias),
                &conv::im2col_forward(&g, &x, &w, bias),
            );
            assert!(
                d < tol,
                "forward (bias {}) differs by {d}: {what}",
                bias.is_some()
            );
        }
        let d = rel_diff(
            &winograd::input_grad(&g, &w, &dy),
            &conv::im2col_input_grad(&g, &w, &dy),
        );
        assert!(d < tol, "input gradient differs by {d}: {what}");
        let d = rel_diff(
            &winograd::weight_grad(&g, &x, &dy),
            &conv::im2col_weight_grad(&g, &x, &dy),
        );
        assert!(d < tol, "weight gradient differs by {d}: {what}");
    }
}

#[test]
fn winograd_takes_only_3x3_stride_1_layers_with_enough_channels() {
    // fer-small's first layer (one gray channel) keeps im2col.
    assert!(!winograd::applies(&geom(32, 1, [48, 48], 32, 1)));
    assert!(winograd::applies(&geom(32, 32, [24, 24], 64, 1)));
    let mut g = geom(4, 16, [12, 12], 24, 1);
    g.kh = 5;
    g.kw = 5;
    assert!(!winograd::applies(&g), "5x5 kernels");
    let mut g = geom(4, 16, [12, 12], 24, 1);
    g.stride = [2, 2];
    assert!(!winograd::applies(&g), "stride 2");
    assert!(
        !winograd::applies(&geom(4, 16, [12, 12], 24, 3)),
        "padding 3"
    );
    // A map smaller than the kernel with no padding is not a convolution at all.
    assert!(!winograd::applies(&geom(4, 16, [2, 2], 24, 0)));
}

#[test]
fn winograd_is_deterministic() {
    let g = geom(9, 16, [10, 10], 24, 1);
    let x = random(9 * 16 * 100, 7);
    let dy = random(9 * 24 * 100, 8);
    let a = winograd::weight_grad(&g, &x, &dy);
    let b = winograd::weight_grad(&g, &x, &dy);
    assert_eq!(a, b, "two runs of the weight gradient differ");
}
