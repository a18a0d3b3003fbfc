//! The CNN training library that the stages `train_cnn` and `tune` share (a library, not a
//! stage: it reads and writes nothing by itself, and no stage crate depends on another).
//!
//! - [`ops`]: the seeded augmentation ops; [`chain`]: the op list as a pipeline file writes it,
//!   checked into steps (both fer-augment-ops', re-exported: the augment stage is built from
//!   that crate alone);
//! - [`settings`]: `[train_cnn]` as written and checked ([`settings::TrainCnnParams`]);
//! - [`Prepared`]: what `preprocess` wrote, loaded once for training;
//! - [`train`]: training one model ([`train::train`], [`train::train_until`]), run by a
//!   [`trainer::Trainer`] in small steps; [`loss`]: the losses; [`checkpoint`]: resumable
//!   checkpoints;
//! - [`export_model`]: a trained model's folder (`model.safetensors`, `model.json`,
//!   `epochs.parquet`, `predictions.parquet`, `metrics.json`, `calibration.json`).
//!
//! The architectures, `TrainSettings`, batch scoring and device choice are fer-models'.

pub mod checkpoint;
pub mod ema;
mod export;
pub mod loss;
mod prepared;
pub mod settings;
pub mod train;
pub mod trainer;

pub use checkpoint::remove_resume;
pub use export::export_model;
pub use fer_augment_ops::{chain, ops};
pub use fer_models::{
    Device, DeviceInfo, ModelArtifact, ModelError, check_device, device, device_info,
};
pub use prepared::{Prepared, timing_augmenter, timing_set};
pub use train::TrainError;

/// What training a model can fail with.
#[derive(Debug, thiserror::Error)]
pub enum TrainCnnError {
    #[error(transparent)]
    Core(#[from] fer_core::Error),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{0}")]
    Data(String),
}
