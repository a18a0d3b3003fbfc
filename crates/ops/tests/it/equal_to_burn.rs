//! Every fer-ops kernel equals burn's default op, forward and backward, within float
//! tolerance, on random shapes covering the paddings, strides and kernel sizes our models use
//! (fer-small's 3x3 "same" convs, seed-base's valid 3x3 convs, tune's 5x5 kernels, seed-tuned's
//! valid 5x5 ones) and a few the models do not (stride 2, odd batches, non-square maps).

use crate::common::rel_diff;
use burn::module::{Module, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::tensor::{Device, Distribution, Tensor, TensorData};

fn device() -> Device {
    Device::flex().autodiff()
}

fn random(shape: [usize; 4], seed: u64) -> Tensor<4> {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_data(TensorData::new(v, shape), &device())
}

fn values(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32")
}

struct Case {
    n: usize,
    c_in: usize,
    hw: [usize; 2],
    c_out: usize,
    k: usize,
    stride: usize,
    pad: usize,
    bias: bool,
}

fn conv_case(c: &Case, seed: u64) {
    let dev = device();
    dev.seed(seed);
    let conv: Conv2d = Conv2dConfig::new([c.c_in, c.c_out], [c.k, c.k])
        .with_stride([c.stride, c.stride])
        .with_padding(if c.pad == 0 {
            PaddingConfig2d::Valid
        } else {
            PaddingConfig2d::Explicit(c.pad, c.pad, c.pad, c.pad)
        })
        .with_bias(c.bias)
        .init(&dev);
    let x = random([c.n, c.c_in, c.hw[0], c.hw[1]], seed + 1);
    let run = |fast: bool| {
        let x = x.clone().require_grad();
        let y = if fast {
            fer_ops::conv2d(&conv, x.clone())
        } else {
            conv.forward(x.clone())
        };
        // A random linear functional of the output, so every output element has its own weight.
        let r = random(y.dims(), seed + 2);
        let loss = (y.clone() * r).sum();
        let grads = loss.backward();
        let gx = x.grad(&grads).expect("input gradient");
        let gw = conv.weight.val().grad(&grads).expect("weight gradient");
        let gb = conv
            .bias
            .as_ref()
            .map(|b: &Param<Tensor<1>>| b.val().grad(&grads).expect("bias gradient"));
        (
            values(y.inner()),
            values(gx.inner()),
            values(gw.inner()),
            gb.map(|b| b.inner().into_data().try_to_vec::<f32>().expect("f32")),
        )
    };
    let before = fer_ops::kernel_calls_on_this_thread();
    let fast = run(true);
    // forward, and one backward pass for the gradients
    assert!(
        fer_ops::kernel_calls_on_this_thread() >= before + 2,
        "the kernels did not run"
    );
    let burn = run(false);
    let what = format!(
        "n={} c_in={} {:?} c_out={} k={} stride={} pad={} bias={}",
        c.n, c.c_in, c.hw, c.c_out, c.k, c.stride, c.pad, c.bias
    );
    let tol = 2e-5;
    assert!(rel_diff(&fast.0, &burn.0) < tol, "forward differs: {what}");
    assert!(
        rel_diff(&fast.1, &burn.1) < tol,
        "input gradient differs: {what}"
    );
    assert!(
        rel_diff(&fast.2, &burn.2) < tol,
        "weight gradient differs: {what}"
    );
    match (fast.3, burn.3) {
        (Some(a), Some(b)) => assert!(rel_diff(&a, &b) < tol, "bias gradient differs: {what}"),
        (None, None) => {}
        _ => panic!("bias gradient on one side only: {what}"),
    }
}

#[test]
fn conv2d_forward_and_gradients_equal_burns() {
    let cases = [
        // fer-small's four blocks (3x3, same padding, no bias), batch 32 per worker
        (32, 1, [48, 48], 32, 3, 1, 1, false),
        (32, 32, [24, 24], 64, 3, 1, 1, false),
        (32, 64, [12, 12], 128, 3, 1, 1, false),
        (32, 128, [6, 6], 192, 3, 1, 1, false),
        // seed-base: valid 3x3 with bias
        (8, 1, [48, 48], 32, 3, 1, 0, true),
        (8, 32, [23, 23], 64, 3, 1, 0, true),
        (8, 64, [10, 10], 128, 3, 1, 0, true),
        // tune's 5x5 kernels (same padding) and seed-tuned's valid 5x5
        (5, 16, [12, 12], 24, 5, 1, 2, false),
        (3, 8, [14, 14], 12, 5, 1, 0, true),
        // not in our models: stride 2, odd batch, non-square, 1x1, a map smaller than padding
        (7, 3, [11, 9], 5, 3, 2, 1, true),
        (9, 4, [6, 6], 6, 1, 1, 0, false),
        (1, 2, [2, 3], 3, 3, 1, 1, false),
        (13, 6, [4, 4], 10, 3, 1, 1, false),
    ];
    for (i, &(n, c_in, hw, c_out, k, stride, pad, bias)) in cases.iter().enumerate() {
        conv_case(
            &Case {
                n,
                c_in,
                hw,
                c_out,
                k,
                stride,
                pad,
                bias,
            },
            100 + i as u64,
        );
    }
}

fn pool_case(shape: [usize; 4], k: usize, s: usize, seed: u64) {
    let pool: MaxPool2d = MaxPool2dConfig::new([k, k]).with_strides([s, s]).init();
    let x = random(shape, seed);
    let run = |fast: bool| {
        let x = x.clone().require_grad();
        let y = if fast {
            fer_ops::max_pool2d(&pool, x.clone())
        } else {
            pool.forward(x.clone())
        };
        let r = random(y.dims(), seed + 1);
        let grads = (y.clone() * r).sum().backward();
        let gx = x.grad(&grads).expect("input gradient");
        (values(y.inner()), values(gx.inner()))
    };
    let before = fer_ops::kernel_calls_on_this_thread();
    let fast = run(true);
    assert!(
        fer_ops::kernel_calls_on_this_thread() >= before + 2,
        "the kernels did not run"
    );
    let burn = run(false);
    // Max pooling selects values: the forward and the routed gradient are exact.
    assert_eq!(fast.0, burn.0, "forward differs: {shape:?} k={k} s={s}");
    assert_eq!(fast.1, burn.1, "gradient differs: {shape:?} k={k} s={s}");
}

#[test]
fn max_pool2d_forward_and_gradient_equal_burns() {
    // Our models' 2x2 pools (48 -> 24 -> 12 -> 6, and seed-base's odd 46 and 21), then general
    // windows: overlapping 3x3 stride 2, and 3x3 stride 1.
    pool_case([4, 32, 48, 48], 2, 2, 1);
    pool_case([4, 64, 24, 24], 2, 2, 2);
    pool_case([3, 32, 46, 46], 2, 2, 3);
    pool_case([3, 64, 21, 21], 2, 2, 4);
    pool_case([2, 5, 9, 7], 3, 2, 5);
    pool_case([2, 3, 6, 6], 3, 1, 6);
}

#[test]
fn max_pool2d_ties_after_relu_route_the_gradient_like_burn() {
    // After a ReLU most windows hold zeros: the first maximum takes the gradient, as in burn.
    let x = burn::tensor::activation::relu(random([2, 4, 8, 8], 9) - 0.6);
    let pool: MaxPool2d = MaxPool2dConfig::new([2, 2]).init();
    let run = |fast: bool| {
        let x = x.clone().require_grad();
        let y = if fast {
            fer_ops::max_pool2d(&pool, x.clone())
        } else {
            pool.forward(x.clone())
        };
        let grads = (y * 3.0).sum().backward();
        values(x.grad(&grads).expect("input gradient").inner())
    };
    assert_eq!(run(true), run(false));
}

#[test]
fn inference_without_autodiff_equals_burn_and_other_cases_fall_back() {
    let dev = Device::flex();
    dev.seed(7);
    let conv: Conv2d = Conv2dConfig::new([3, 8], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&dev);
    let x = Tensor::<4>::random([4, 3, 10, 10], Distribution::Default, &dev);
    let before = fer_ops::kernel_calls_on_this_thread();
    let fast = values(fer_ops::conv2d(&conv, x.clone()));
    assert!(
        fer_ops::kernel_calls_on_this_thread() > before,
        "the kernel did not run"
    );
    let burn = values(conv.forward(x.clone()));
    assert!(rel_diff(&fast, &burn) < 2e-5);
    // `Same` padding is not handled here: the module's own forward runs, bit for bit.
    let same: Conv2d = Conv2dConfig::new([3, 8], [3, 3])
        .with_padding(PaddingConfig2d::Same)
        .init(&dev);
    assert_eq!(
        values(fer_ops::conv2d(&same, x.clone())),
        values(same.forward(x))
    );
}

fn bn_case(shape: [usize; 4], relu: bool, seed: u64) {
    use burn::nn::{BatchNorm, BatchNormConfig};
    let dev = device();
    let c = shape[1];
    let make = || -> BatchNorm {
        let mut bn = BatchNormConfig::new(c).init(&dev);
        // Non-trivial affine parameters (init is gamma 1, beta 0).
        let g = random([1, 1, 1, c], seed + 10).reshape([c]) + 1.0;
        let b = random([1, 1, 1, c], seed + 11).reshape([c]) * 0.5;
        bn.gamma = Param::from_tensor(g);
        bn.beta = Param::from_tensor(b);
        bn
    };
    let x = random(shape, seed) * 2.0 + 0.3;
    let run = |fast: bool| {
        let bn = make();
        let x = x.clone().require_grad();
        let y = if fast {
            fer_ops::batch_norm_relu(&bn, x.clone(), relu)
        } else {
            let y = bn.forward(x.clone());
            if relu {
                burn::tensor::activation::relu(y)
            } else {
                y
            }
        };
        let r = random(y.dims(), seed + 1);
        let grads = (y.clone() * r).sum().backward();
        let flat = |t: Tensor<1>| t.inner().into_data().try_to_vec::<f32>().expect("f32");
        let gx = values(x.grad(&grads).expect("input gradient").inner());
        let gg = flat(bn.gamma.val().grad(&grads).expect("gamma gradient"));
        let gb = flat(bn.beta.val().grad(&grads).expect("beta gradient"));
        let rm = flat(bn.running_mean.value());
        let rv = flat(bn.running_var.value());
        // Inference with the updated running statistics, off the autodiff device.
        let bn_eval = bn.valid();
        let xe = x.clone().inner();
        let ye = if fast {
            fer_ops::batch_norm_relu(&bn_eval, xe, relu)
        } else {
            let y = bn_eval.forward(xe);
            if relu {
                burn::tensor::activation::relu(y)
            } else {
                y
            }
        };
        [values(y.inner()), gx, gg, gb, rm, rv, values(ye)]
    };
    let before = fer_ops::kernel_calls_on_this_thread();
    let fast = run(true);
    // stats, forward, backward, inference
    assert!(
        fer_ops::kernel_calls_on_this_thread() >= before + 4,
        "the kernels did not run"
    );
    let burn = run(false);
    let what = [
        "forward",
        "input gradient",
        "gamma gradient",
        "beta gradient",
        "running mean",
        "running variance",
        "inference",
    ];
    for ((a, b), w) in fast.iter().zip(&burn).zip(what) {
        assert!(
            rel_diff(a, b) < 5e-5,
            "{w} differs ({shape:?}, relu {relu}): {}",
            rel_diff(a, b)
        );
    }
}

#[test]
fn batch_norm_relu_forward_gradients_and_running_statistics_equal_burns() {
    // fer-small's four blocks at 16 images a worker, with and without the fused ReLU.
    bn_case([16, 32, 48, 48], true, 1);
    bn_case([16, 64, 24, 24], true, 2);
    bn_case([16, 128, 12, 12], false, 3);
    bn_case([16, 192, 6, 6], true, 4);
    bn_case([3, 5, 7, 9], false, 5);
}
