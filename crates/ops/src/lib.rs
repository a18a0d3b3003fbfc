//! fer-ops: fast CPU convolution, max pooling and batch norm (+ ReLU) for burn's flex backend,
//! with hand-written backward passes, registered through burn's backend-extension mechanism.
//!
//! Reads and writes no files and takes no params. The models call [`conv2d`], [`max_pool2d`]
//! and [`batch_norm_relu`] with burn's own `Conv2d`, `MaxPool2d` and `BatchNorm` modules (so
//! parameters, names and saved weights are unchanged). On a flex device (with or without
//! autodiff) and `f32` tensors they run this crate's kernels ([`conv`], [`pool`], [`norm`]);
//! anywhere else (wgpu, other dtypes, groups, dilation, asymmetric or `Same` padding, pooling
//! with padding or ceil mode) they call the module's own `forward`, so every backend keeps
//! working. The kernels are Rust plus the `gemm` crate's microkernels, on the instruction set
//! [`isa`] chooses at run time (AVX-512 where the CPU has it, else AVX2 + FMA, else portable;
//! `FER_OPS_ISA` can ask for a lower one): one binary runs on any x86-64. 3x3 stride-1
//! convolutions with enough channels run as Winograd F(2x2, 3x3) ([`winograd`]; im2col
//! otherwise, and with `FER_OPS_WINOGRAD=off`).
//!
//! Where the time went before (perf, fer-small training on 2 cores): the weight gradient as a
//! convolution over batch/channel-swapped tensors 28%, the forward 21%, the input gradient as a
//! transposed convolution 15%, max pool 15%, layout copies 11%; with the convolutions and pool
//! replaced, batch norm's own layout copies and broadcast passes were 37%. See `conv`, `pool`
//! and `norm` for what replaces them.

pub mod alloc;
pub mod conv;
mod extension;
pub mod isa;
pub mod norm;
pub mod pool;
mod scratch;
pub mod winograd;

pub use extension::FerOps;

use burn::backend::Dispatch;
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::{DType, Device, Tensor};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(true);
static CALLS: AtomicU64 = AtomicU64::new(0);
static GEMM_FLOPS: AtomicU64 = AtomicU64::new(0);
static LAYER_FLOPS: AtomicU64 = AtomicU64::new(0);

/// Floating-point operations the convolution GEMMs ran so far in this process (`2·m·n·k` per
/// product: forward, weight and input gradients, im2col's and Winograd's): `fer-bench` divides
/// it by a training step's time for the GEMMs' achieved GFLOP/s.
pub fn gemm_flops() -> u64 {
    GEMM_FLOPS.load(Ordering::Relaxed)
}

pub(crate) fn count_flops(m: usize, n: usize, k: usize) {
    GEMM_FLOPS.fetch_add((2 * m * n * k) as u64, Ordering::Relaxed);
}

/// The convolution layers' own floating-point operations so far in this process, whatever
/// algorithm ran them: `2·N·Cout·OH·OW·Cin·kh·kw` per pass (forward, weight and input
/// gradients), the direct convolution's count. Winograd's passes do fewer (see
/// [`gemm_flops`]), so their rate in these units can pass the GEMM peak.
pub fn layer_flops() -> u64 {
    LAYER_FLOPS.load(Ordering::Relaxed)
}

pub(crate) fn count_layer_flops(g: &conv::Conv2dGeom) {
    let per = 2 * g.n * g.c_out * g.out_h() * g.out_w() * g.c_in * g.kh * g.kw;
    LAYER_FLOPS.fetch_add(per as u64, Ordering::Relaxed);
}

thread_local! {
    static THREAD_CALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Kernel runs so far in this process (each forward or backward pass counts one): lets
/// benchmarks check that the fast path, not the fallback, ran.
pub fn kernel_calls() -> u64 {
    CALLS.load(Ordering::Relaxed)
}

/// [`kernel_calls`] counted on the calling thread only (autodiff runs a backward pass on the
/// thread that called `backward`): what tests running side by side can rely on.
pub fn kernel_calls_on_this_thread() -> u64 {
    THREAD_CALLS.with(|c| c.get())
}

pub(crate) fn count_call() {
    CALLS.fetch_add(1, Ordering::Relaxed);
    THREAD_CALLS.with(|c| c.set(c.get() + 1));
}

/// Turn this crate's kernels on or off for the whole process (on by default). Off, every call
/// runs burn's default op: `fer-bench` uses it to time both in one run.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether this crate's kernels are on (see [`set_enabled`]).
pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Whether the kernels take tensors on `device` of `dtype`: flex (with or without autodiff)
/// and `f32`.
pub fn supports(device: &Device, dtype: DType) -> bool {
    is_enabled() && dtype == DType::F32 && device.clone().inner() == Device::flex()
}

/// Symmetric padding `[h, w]`, if the config is one (`Valid` or an explicit symmetric one).
fn symmetric(p: &PaddingConfig2d) -> Option<[usize; 2]> {
    match *p {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(t, l, b, r) if t == b && l == r => Some([t, l]),
        _ => None,
    }
}

/// `conv.forward(x)`, through this crate's kernels where they apply.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let Some(padding) = symmetric(&conv.padding) else {
        return conv.forward(x);
    };
    let [n, c_in, h, w] = x.dims();
    let [kh, kw] = conv.kernel_size;
    let geom = conv::Conv2dGeom {
        n,
        c_in,
        h,
        w,
        c_out: conv.weight.dims()[0],
        kh,
        kw,
        stride: conv.stride,
        padding,
    };
    if !supports(&x.device(), x.dtype())
        || conv.groups != 1
        || conv.dilation != [1, 1]
        || !geom.is_valid()
    {
        return conv.forward(x);
    }
    let weight = conv.weight.val().into_dispatch();
    let out = match &conv.bias {
        None => <Dispatch as FerOps>::fer_conv2d(x.into_dispatch(), weight, conv.stride, padding),
        Some(b) => <Dispatch as FerOps>::fer_conv2d_bias(
            x.into_dispatch(),
            weight,
            b.val().into_dispatch(),
            conv.stride,
            padding,
        ),
    };
    Tensor::from_dispatch(out)
}

/// `pool.forward(x)`, through this crate's kernels where they apply.
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let geom = pool::PoolGeom {
        n,
        c,
        h,
        w,
        kernel: pool.kernel_size,
        stride: pool.stride,
    };
    if !supports(&x.device(), x.dtype())
        || symmetric(&pool.padding) != Some([0, 0])
        || pool.dilation != [1, 1]
        || pool.ceil_mode
        || !geom.is_valid()
    {
        return pool.forward(x);
    }
    let out =
        <Dispatch as FerOps>::fer_max_pool2d(x.into_dispatch(), pool.kernel_size, pool.stride);
    Tensor::from_dispatch(out)
}

/// `relu(bn.forward(x))` when `relu`, else `bn.forward(x)`, through this crate's kernels where
/// they apply. Training mode (an autodiff device and the layer's training flag) normalizes
/// with the batch statistics and updates the running ones exactly as burn's `BatchNorm` does
/// (`running = running * (1 - momentum) + batch * momentum`, biased variance); inference uses
/// the running statistics. Batch norm on an autodiff device outside training mode (a frozen
/// layer) runs burn's op.
pub fn batch_norm_relu(bn: &BatchNorm, x: Tensor<4>, relu: bool) -> Tensor<4> {
    let device = x.device();
    let training = device.is_autodiff() && bn.training.is_enabled();
    let burn_op = |x: Tensor<4>| {
        let y = bn.forward(x);
        if relu {
            burn::tensor::activation::relu(y)
        } else {
            y
        }
    };
    if !supports(&device, x.dtype()) || (device.is_autodiff() && !training) {
        return burn_op(x);
    }
    let (gamma, beta) = (
        bn.gamma.val().into_dispatch(),
        bn.beta.val().into_dispatch(),
    );
    if !training {
        let mean = bn.running_mean.value().to_device(&device).into_dispatch();
        let var = bn.running_var.value().to_device(&device).into_dispatch();
        let out = <Dispatch as FerOps>::fer_bn_eval(
            x.into_dispatch(),
            gamma,
            beta,
            mean,
            var,
            bn.epsilon,
            relu,
        );
        return Tensor::from_dispatch(out);
    }
    let stats: Tensor<2> = Tensor::from_dispatch(<Dispatch as FerOps>::fer_bn_stats(
        x.clone().into_dispatch(),
    ));
    let c = stats.dims()[1];
    let out = <Dispatch as FerOps>::fer_bn_train(
        x.into_dispatch(),
        gamma,
        beta,
        stats.clone().into_dispatch(),
        bn.epsilon,
        relu,
    );
    // The running statistics, updated as burn's BatchNorm::forward_train does.
    let mean = stats.clone().narrow(0, 0, 1).reshape([c]);
    let var = stats.narrow(0, 1, 1).reshape([c]);
    let running_mean = bn.running_mean.value_sync().to_device(&device);
    let running_var = bn.running_var.value_sync().to_device(&device);
    let running_mean = running_mean
        .mul_scalar(1.0 - bn.momentum)
        .add(mean.detach().mul_scalar(bn.momentum));
    let running_var = running_var
        .mul_scalar(1.0 - bn.momentum)
        .add(var.detach().mul_scalar(bn.momentum));
    bn.running_mean.update(running_mean.detach());
    bn.running_var.update(running_var.detach());
    Tensor::from_dispatch(out)
}
