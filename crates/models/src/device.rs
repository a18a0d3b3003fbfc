//! The burn device for a `--device` name; only binaries (and their stage libraries' `run`)
//! choose one.

use crate::ModelError;
pub use burn::tensor::Device;

/// The burn device for a `--device` name.
pub fn device(name: &str) -> Result<Device, ModelError> {
    match name {
        "cpu" => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(Default::default())),
        #[cfg(not(feature = "wgpu"))]
        "wgpu" => Err(ModelError::Device(
            "--device wgpu: this binary was built without the `wgpu` feature (cargo build --release -p fer-train-cnn --features wgpu)".into(),
        )),
        d => Err(ModelError::Device(format!("--device {d}: unknown device (expected cpu or wgpu)"))),
    }
}
