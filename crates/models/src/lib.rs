//! fer-models: the trained models as code, for every crate that builds, loads or scores one.
//!
//! Reads and writes nothing by itself; its readers and writers are called by the stages and
//! tools: `model.json` + `model.safetensors` ([`checkpoint`]) in a CNN's model folder, and
//! train_svm's `model.safetensors` ([`svm`]).
//! Takes no params: the stages pass their validated settings.
//!
//! - [`arch`]: the CNN architectures (the study's two and ours) and [`arch::ModelConfig`];
//! - [`settings`]: [`settings::TrainSettings`], one model's training settings (core's type,
//!   since `model.json` records it);
//! - [`checkpoint`]: weights and [`checkpoint::ModelArtifact`] (`model.json`, core's
//!   `schema::model::ModelJson` with this crate's [`arch::ModelConfig`]) on disk;
//! - [`score`]: batch scoring of a tensor set;
//! - [`device`]: the burn device for a `--device` name (`wgpu` behind the `wgpu` feature);
//! - [`features`]: the SVMs' feature pipelines (raw pixels or HOG, scaling, PCA, random
//!   Fourier features);
//! - [`svm`]: the SVMs' decision functions and their saved form
//!   ([`svm::SavedSvms`], train_svm's `model.safetensors`).

pub mod arch;
pub mod checkpoint;
pub mod device;
pub mod features;
pub mod score;
pub mod settings;
pub mod svm;

pub use checkpoint::{LoadModel, ModelArtifact};
pub use device::{Device, DeviceInfo, check_device, device, device_info};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Core(#[from] fer_core::Error),
    /// A checkpoint that is missing, corrupt or of another architecture.
    #[error("{path}: {message}")]
    Checkpoint { path: String, message: String },
    #[error("{0}")]
    Device(String),
}
