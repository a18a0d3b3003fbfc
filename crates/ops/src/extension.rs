//! The kernels registered as a burn backend extension: `FerOps` for the flex backend, and for
//! `Autodiff<Flex>` with hand-written backward passes (burn's extension macro generates the
//! runtime dispatch, never the derivatives).

mod autodiff;

use crate::conv::{self, Conv2dGeom};
use crate::norm::{self, NormGeom};
use crate::pool::{self, PoolGeom};
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Bytes, DType, Flex, Shape, backend_extension};

#[backend_extension(Flex, Autodiff)]
pub trait FerOps: Backend {
    /// Convolution without bias (`stride`, symmetric `padding`, one group, dilation 1).
    fn fer_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self>;
    /// Convolution with a bias.
    fn fer_conv2d_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self>;
    /// Max pool without padding (dilation 1, floor mode).
    fn fer_max_pool2d(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
    ) -> FloatTensor<Self>;
    /// Per-channel batch mean and biased variance of NCHW `x`, `[2, C]` (not differentiated:
    /// [`FerOps::fer_bn_train`]'s backward accounts for them).
    fn fer_bn_stats(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Training batch norm with the batch statistics `stats` (from `fer_bn_stats`), then a
    /// ReLU when `relu`.
    fn fer_bn_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> FloatTensor<Self>;
    /// Inference batch norm with running statistics, then a ReLU when `relu`.
    fn fer_bn_eval(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> FloatTensor<Self>;
}

/// A contiguous f32 copy-free view (copies only when the layout is strided).
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.is_contiguous() {
        t
    } else {
        t.to_contiguous()
    }
}

fn f32s(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("fer-ops: a contiguous f32 tensor (the wrappers check the dtype)")
}

fn dims(t: &FlexTensor) -> Vec<usize> {
    t.layout().shape().iter().copied().collect()
}

fn tensor(data: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(Shape::from(shape.to_vec())),
        DType::F32,
    )
}

fn conv_geom(
    x: &FlexTensor,
    w: &FlexTensor,
    stride: [usize; 2],
    padding: [usize; 2],
) -> Conv2dGeom {
    let (xd, wd) = (dims(x), dims(w));
    Conv2dGeom {
        n: xd[0],
        c_in: xd[1],
        h: xd[2],
        w: xd[3],
        c_out: wd[0],
        kh: wd[2],
        kw: wd[3],
        stride,
        padding,
    }
}

fn pool_geom(x: &FlexTensor, kernel: [usize; 2], stride: [usize; 2]) -> PoolGeom {
    let d = dims(x);
    PoolGeom {
        n: d[0],
        c: d[1],
        h: d[2],
        w: d[3],
        kernel,
        stride,
    }
}

fn flex_conv(
    x: FlexTensor,
    w: FlexTensor,
    bias: Option<FlexTensor>,
    stride: [usize; 2],
    padding: [usize; 2],
) -> FlexTensor {
    crate::count_call();
    let (x, w) = (contiguous(x), contiguous(w));
    let g = conv_geom(&x, &w, stride, padding);
    let bias = bias.map(contiguous);
    let out = conv::conv2d_forward(&g, f32s(&x), f32s(&w), bias.as_ref().map(f32s));
    tensor(out, &[g.n, g.c_out, g.out_h(), g.out_w()])
}

impl FerOps for Flex {
    fn fer_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FlexTensor {
        flex_conv(x, weight, None, stride, padding)
    }

    fn fer_conv2d_bias(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FlexTensor {
        flex_conv(x, weight, Some(bias), stride, padding)
    }

    fn fer_max_pool2d(x: FlexTensor, kernel: [usize; 2], stride: [usize; 2]) -> FlexTensor {
        crate::count_call();
        let x = contiguous(x);
        let g = pool_geom(&x, kernel, stride);
        let out = pool::max_pool2d_forward(&g, f32s(&x));
        tensor(out, &[g.n, g.c, g.out_h(), g.out_w()])
    }

    fn fer_bn_stats(x: FlexTensor) -> FlexTensor {
        crate::count_call();
        let x = contiguous(x);
        let g = norm_geom(&x);
        tensor(norm::bn_stats(&g, f32s(&x)), &[2, g.c])
    }

    fn fer_bn_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        stats: FlexTensor,
        epsilon: f64,
        relu: bool,
    ) -> FlexTensor {
        let stats = contiguous(stats);
        let c = dims(&stats)[1];
        let (mean, var) = f32s(&stats).split_at(c);
        bn_forward(x, gamma, beta, mean, var, epsilon, relu)
    }

    fn fer_bn_eval(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        var: FlexTensor,
        epsilon: f64,
        relu: bool,
    ) -> FlexTensor {
        let (mean, var) = (contiguous(mean), contiguous(var));
        bn_forward(x, gamma, beta, f32s(&mean), f32s(&var), epsilon, relu)
    }
}

fn norm_geom(x: &FlexTensor) -> NormGeom {
    let d = dims(x);
    NormGeom {
        n: d[0],
        c: d[1],
        hw: d[2..].iter().product(),
    }
}

fn bn_forward(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    mean: &[f32],
    var: &[f32],
    epsilon: f64,
    relu: bool,
) -> FlexTensor {
    crate::count_call();
    let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
    let g = norm_geom(&x);
    let y = norm::bn_forward(
        &g,
        f32s(&x),
        f32s(&gamma),
        f32s(&beta),
        mean,
        var,
        epsilon,
        relu,
    );
    tensor(y, &dims(&x))
}
