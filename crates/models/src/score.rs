//! Batch scoring: class probabilities of a tensor set, in parallel batches on the CPU.

use crate::arch::Net;
use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use fer_core::tensors::TensorSet;

/// Class probabilities `[N][classes]` for a split (no autodiff), optionally averaged with
/// the mirrored images.
pub fn predict(
    model: &Net,
    data: &TensorSet,
    batch: usize,
    tta_flip: bool,
    device: &Device,
) -> Vec<Vec<f64>> {
    use rayon::prelude::*;
    let model = model.valid();
    let px = data.height * data.width;
    // One batch per rayon task: flex's ops on one small batch are mostly serial loops (im2col,
    // layout copies), so two batches on two cores beat one batch split across both (fer-tiny:
    // 2,540 -> 3,290 images/s). An image's output does not depend on its batch. A GPU gets
    // its batches in order from one thread.
    let starts: Vec<usize> = (0..data.n).step_by(batch.max(1)).collect();
    let one = |&start: &usize| -> Vec<Vec<f64>> {
        let end = (start + batch).min(data.n);
        let x = Tensor::<4>::from_data(
            TensorData::new(
                data.x[start * px..end * px].to_vec(),
                [end - start, 1, data.height, data.width],
            ),
            device,
        );
        let mut p = softmax(model.forward(x.clone()), 1);
        if tta_flip {
            p = (p + softmax(model.forward(x.flip([3])), 1)) / 2.0;
        }
        let k = p.dims()[1];
        let v: Vec<f32> = p.into_data().try_to_vec().expect("f32 probabilities");
        v.chunks(k)
            .map(|r| r.iter().map(|&x| x as f64).collect::<Vec<f64>>())
            .collect()
    };
    let parts: Vec<Vec<Vec<f64>>> = if *device == Device::flex() {
        starts.par_iter().map(one).collect()
    } else {
        starts.iter().map(one).collect()
    };
    parts.concat()
}

/// The index of the largest value (the first on ties).
pub fn argmax<T: PartialOrd + Copy>(p: &[T]) -> usize {
    p.iter()
        .enumerate()
        .fold(0, |b, (i, &v)| if v > p[b] { i } else { b })
}
