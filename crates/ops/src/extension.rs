//! The kernels registered as a burn backend extension: `FerOps` for the flex backend, and for
//! `Autodiff<Flex>` with hand-written backward passes (burn's extension macro generates the
//! runtime dispatch, never the derivatives).

use crate::conv::{self, Conv2dGeom};
use crate::norm::{self, NormGeom};
use crate::pool::{self, PoolGeom};
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Bytes, DType, Flex, Shape, backend_extension};

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

/// The backward pass of training batch norm (+ ReLU): gradients of the input, gamma and beta.
#[derive(Debug)]
struct NormBackward;

impl Backward<Flex, 3> for NormBackward {
    /// Checkpointed input; gamma, beta and the batch statistics; epsilon; the fused ReLU.
    type State = (NodeId, FlexTensor, FlexTensor, FlexTensor, f64, bool);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, ck: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (xs, gamma, beta, stats, epsilon, relu) = ops.state;
        crate::count_call();
        let x = contiguous(ck.retrieve_node_output::<FlexTensor>(xs));
        let (gamma, beta, stats) = (contiguous(gamma), contiguous(beta), contiguous(stats));
        let g = norm_geom(&x);
        let (mean, var) = f32s(&stats).split_at(g.c);
        let (dx, dgamma, dbeta) = norm::bn_backward(
            &g,
            f32s(&x),
            f32s(&dy),
            f32s(&gamma),
            f32s(&beta),
            mean,
            var,
            epsilon,
            relu,
        );
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, tensor(dx, &dims(&x)));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, tensor(dgamma, &[g.c]));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, tensor(dbeta, &[g.c]));
        }
    }
}

/// The backward pass of a convolution (with or without bias): input, weight and bias
/// gradients from the saved input and weights.
#[derive(Debug)]
struct ConvBackward;

/// Checkpointed input and weights, and the geometry's stride and padding.
type ConvState = (NodeId, NodeId, [usize; 2], [usize; 2]);

fn conv_grads(
    x: FlexTensor,
    w: FlexTensor,
    dy: FlexTensor,
    stride: [usize; 2],
    padding: [usize; 2],
    want: [bool; 3],
) -> [Option<FlexTensor>; 3] {
    crate::count_call();
    let (x, w, dy) = (contiguous(x), contiguous(w), contiguous(dy));
    let g = conv_geom(&x, &w, stride, padding);
    let dx = want[0].then(|| tensor(conv::conv2d_input_grad(&g, f32s(&w), f32s(&dy)), &dims(&x)));
    let dw = want[1].then(|| tensor(conv::conv2d_weight_grad(&g, f32s(&x), f32s(&dy)), &dims(&w)));
    let db = want[2].then(|| tensor(conv::conv2d_bias_grad(&g, f32s(&dy)), &[g.c_out]));
    [dx, dw, db]
}

/// [`ConvBackward`] for `N` parents (input, weights, and the bias when `N` is 3): each parent
/// that wants a gradient gets it.
fn conv_backward<const N: usize>(
    ops: Ops<ConvState, N>,
    grads: &mut Gradients,
    ck: &mut Checkpointer,
) {
    let dy = grads.consume::<Flex>(&ops.node);
    let (xs, ws, stride, padding) = ops.state;
    let x: FlexTensor = ck.retrieve_node_output(xs);
    let w: FlexTensor = ck.retrieve_node_output(ws);
    let mut want = [false; 3];
    for (k, parent) in ops.parents.iter().enumerate() {
        want[k] = parent.is_some();
    }
    let computed = conv_grads(x, w, dy, stride, padding, want);
    for (parent, g) in ops.parents.into_iter().zip(computed) {
        if let (Some(node), Some(g)) = (parent, g) {
            grads.register::<Flex>(node.id, g);
        }
    }
}

impl Backward<Flex, 2> for ConvBackward {
    type State = ConvState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, ck: &mut Checkpointer) {
        conv_backward(ops, grads, ck);
    }
}

impl Backward<Flex, 3> for ConvBackward {
    type State = ConvState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, ck: &mut Checkpointer) {
        conv_backward(ops, grads, ck);
    }
}

/// The backward pass of a max pool: the gradient routed to each window's maximum.
#[derive(Debug)]
struct PoolBackward;

impl Backward<Flex, 1> for PoolBackward {
    /// Checkpointed input, kernel and stride.
    type State = (NodeId, [usize; 2], [usize; 2]);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, ck: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (xs, kernel, stride) = ops.state;
        let Some(node) = node_x else { return };
        crate::count_call();
        let x = contiguous(ck.retrieve_node_output::<FlexTensor>(xs));
        let dy = contiguous(dy);
        let g = pool_geom(&x, kernel, stride);
        let dx = pool::max_pool2d_backward(&g, f32s(&x), f32s(&dy));
        grads.register::<Flex>(node.id, tensor(dx, &dims(&x)));
    }
}

impl<C: CheckpointStrategy> FerOps for Autodiff<Flex, C> {
    fn fer_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self> {
        match ConvBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let xs = prep.checkpoint(&x);
                let ws = prep.checkpoint(&weight);
                let out =
                    Flex::fer_conv2d(x.into_primitive(), weight.into_primitive(), stride, padding);
                prep.finish((xs, ws, stride, padding), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fer_conv2d(
                x.into_primitive(),
                weight.into_primitive(),
                stride,
                padding,
            )),
        }
    }

    fn fer_conv2d_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self> {
        match ConvBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let xs = prep.checkpoint(&x);
                let ws = prep.checkpoint(&weight);
                let out = Flex::fer_conv2d_bias(
                    x.into_primitive(),
                    weight.into_primitive(),
                    bias.into_primitive(),
                    stride,
                    padding,
                );
                prep.finish((xs, ws, stride, padding), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fer_conv2d_bias(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
                stride,
                padding,
            )),
        }
    }

    fn fer_max_pool2d(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
    ) -> FloatTensor<Self> {
        match PoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let xs = prep.checkpoint(&x);
                let out = Flex::fer_max_pool2d(x.into_primitive(), kernel, stride);
                prep.finish((xs, kernel, stride), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(Flex::fer_max_pool2d(x.into_primitive(), kernel, stride))
            }
        }
    }

    fn fer_bn_stats(x: FloatTensor<Self>) -> FloatTensor<Self> {
        // Not differentiated: an untracked tensor (the backward of fer_bn_train covers them).
        FloatTensor::<Self>::new(Flex::fer_bn_stats(x.into_primitive()))
    }

    fn fer_bn_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> FloatTensor<Self> {
        let stats = stats.into_primitive();
        match NormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let xs = prep.checkpoint(&x);
                let (g, b) = (gamma.into_primitive(), beta.into_primitive());
                let out = Flex::fer_bn_train(
                    x.into_primitive(),
                    g.clone(),
                    b.clone(),
                    stats.clone(),
                    epsilon,
                    relu,
                );
                prep.finish((xs, g, b, stats, epsilon, relu), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fer_bn_train(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                stats,
                epsilon,
                relu,
            )),
        }
    }

    fn fer_bn_eval(
        _x: FloatTensor<Self>,
        _gamma: FloatTensor<Self>,
        _beta: FloatTensor<Self>,
        _mean: FloatTensor<Self>,
        _var: FloatTensor<Self>,
        _epsilon: f64,
        _relu: bool,
    ) -> FloatTensor<Self> {
        unreachable!(
            "fer-ops: inference batch norm on an autodiff device runs burn's op \
             (fer_ops::batch_norm_relu routes it there)"
        )
    }
}
