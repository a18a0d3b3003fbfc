//! `FerOps` for `Autodiff<Flex>`: the hand-written backward passes of the convolution, the max
//! pool and training batch norm, and the forward ops that record them.

use super::{FerOps, contiguous, conv_geom, dims, f32s, norm_geom, pool_geom, tensor};
use crate::{conv, norm, pool};
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex};

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
