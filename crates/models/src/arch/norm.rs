//! Per-image standardization inside the network: by the whole image's statistics or by its
//! centre's, clamped.

use burn::tensor::Tensor;

/// The smallest standard deviation [`standardize_images`] divides by, in the transform's
/// units (standardized pixels, where the training images' std is 1): a flat image stays flat
/// instead of turning its last bits of noise into full-range texture.
pub const MIN_IMAGE_STD: f32 = 1e-2;

/// Each image of `[N, C, H, W]` minus its own mean, divided by its own standard deviation
/// (at least [`MIN_IMAGE_STD`]): burn's tensor ops, so it runs and differentiates on any
/// backend.
pub fn standardize_images(x: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let flat: Tensor<2> = x.reshape([n, c * h * w]);
    let mean = flat.clone().mean_dim(1);
    let centred = flat - mean;
    let var = centred.clone().square().mean_dim(1);
    let std = var.sqrt().clamp_min(MIN_IMAGE_STD);
    (centred / std).reshape([n, c, h, w])
}

/// The clamp of [`standardize_images_centre`], in standard deviations.
pub const CENTRE_NORM_CLAMP: f32 = 3.0;

/// Each image of `[N, C, H, W]` minus the mean of its central square (half its side, rows
/// and columns `H/4..H-H/4`, `W/4..W-W/4`), divided by that square's standard deviation (at
/// least [`MIN_IMAGE_STD`]), clamped to plus and minus [`CENTRE_NORM_CLAMP`]: the face sets
/// the scale, and what is far brighter or darker at the edges is cut off rather than
/// averaged in. burn's tensor ops, as [`standardize_images`].
pub fn standardize_images_centre(x: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let (h0, w0) = (h / 4, w / 4);
    let (h1, w1) = ((h - h0).max(h0 + 1), (w - w0).max(w0 + 1));
    let centre: Tensor<2> = x
        .clone()
        .slice([0..n, 0..c, h0..h1, w0..w1])
        .reshape([n, c * (h1 - h0) * (w1 - w0)]);
    let mean = centre.clone().mean_dim(1);
    let std = (centre - mean.clone())
        .square()
        .mean_dim(1)
        .sqrt()
        .clamp_min(MIN_IMAGE_STD);
    let flat: Tensor<2> = x.reshape([n, c * h * w]);
    ((flat - mean) / std)
        .clamp(-CENTRE_NORM_CLAMP, CENTRE_NORM_CLAMP)
        .reshape([n, c, h, w])
}
