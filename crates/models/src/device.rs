//! The burn device for a `--device` name; only binaries (and their stage libraries' `run`)
//! choose one. [`device_info`] also says what it runs on: for `wgpu`, the adapter wgpu picked
//! (its name, graphics API and kind), so a run on a software Vulkan (Mesa's lavapipe, whose
//! adapter is "llvmpipe") is never mistaken for a GPU run.

use crate::ModelError;
pub use burn::tensor::Device;

/// What a device runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `cpu` or `wgpu`.
    pub device: String,
    /// The adapter's name (`llvmpipe (LLVM 15.0.6, 256 bits)`, `NVIDIA H100 80GB HBM3`), or
    /// `flex` on the CPU.
    pub adapter: String,
    /// The graphics API (`vulkan`, `metal`, ...); empty on the CPU.
    pub backend: String,
    /// wgpu's kind of adapter (`discrete gpu`, `integrated gpu`, `virtual gpu`, `cpu`,
    /// `other`); `cpu` on the CPU.
    pub kind: String,
    /// The driver and its version, where the adapter reports them.
    pub driver: String,
}

impl DeviceInfo {
    /// A GPU adapter, as opposed to burn's CPU backend or a Vulkan running on the CPU.
    pub fn is_gpu(&self) -> bool {
        self.device == "wgpu" && self.kind != "cpu"
    }
}

impl std::fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.device == "cpu" {
            return write!(f, "cpu (burn flex)");
        }
        write!(
            f,
            "wgpu on {} ({}, {}",
            self.adapter, self.backend, self.kind
        )?;
        if !self.driver.is_empty() {
            write!(f, ", {}", self.driver)?;
        }
        write!(f, ")")
    }
}

/// `Ok` when `name` is a device this binary can try (`cpu`, or `wgpu` when built with it),
/// without bringing an adapter up: what parameter checks call.
pub fn check_device(name: &str) -> Result<(), ModelError> {
    match name {
        "cpu" => Ok(()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(()),
        _ => device_info(name).map(|_| ()),
    }
}

/// The burn device for a `--device` name.
pub fn device(name: &str) -> Result<Device, ModelError> {
    device_info(name).map(|(d, _)| d)
}

/// The burn device for a `--device` name, and what it runs on. `wgpu` brings up wgpu's
/// default adapter once per process (the first call; later calls share it).
pub fn device_info(name: &str) -> Result<(Device, DeviceInfo), ModelError> {
    match name {
        "cpu" => Ok((
            Device::flex(),
            DeviceInfo {
                device: "cpu".into(),
                adapter: "flex".into(),
                backend: String::new(),
                kind: "cpu".into(),
                driver: String::new(),
            },
        )),
        #[cfg(feature = "wgpu")]
        "wgpu" => gpu::wgpu().map_err(|e| ModelError::Device(e.clone())),
        #[cfg(not(feature = "wgpu"))]
        "wgpu" => Err(ModelError::Device(
            "--device wgpu: this binary was built without the `wgpu` feature (cargo build --release -p fer-train-cnn --features wgpu)".into(),
        )),
        d => Err(ModelError::Device(format!("--device {d}: unknown device (expected cpu or wgpu)"))),
    }
}

#[cfg(feature = "wgpu")]
mod gpu {
    use super::{Device, DeviceInfo};
    use burn::tensor::wgpu::wgpu::DeviceType;
    use std::sync::OnceLock;

    static WGPU: OnceLock<Result<(Device, DeviceInfo), String>> = OnceLock::new();

    pub(super) fn wgpu() -> Result<(Device, DeviceInfo), &'static String> {
        WGPU.get_or_init(|| {
            let (device, setup) = Device::wgpu_options().init_with_setup().map_err(|e| {
                format!(
                    "--device wgpu: no usable adapter ({e}); on a machine without a GPU, Mesa's \
                     lavapipe gives a Vulkan on the CPU (Debian: apt-get install \
                     mesa-vulkan-drivers)"
                )
            })?;
            let a = setup.adapter.get_info();
            let kind = match a.device_type {
                DeviceType::DiscreteGpu => "discrete gpu",
                DeviceType::IntegratedGpu => "integrated gpu",
                DeviceType::VirtualGpu => "virtual gpu",
                DeviceType::Cpu => "cpu",
                DeviceType::Other => "other",
            };
            let driver = [a.driver.as_str(), a.driver_info.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            Ok((
                device,
                DeviceInfo {
                    device: "wgpu".into(),
                    adapter: a.name,
                    backend: format!("{:?}", a.backend).to_lowercase(),
                    kind: kind.into(),
                    driver,
                },
            ))
        })
        .as_ref()
        .map(|(d, i)| (d.clone(), i.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_without_bringing_an_adapter_up() {
        assert!(check_device("cpu").is_ok());
        let e = check_device("tpu").unwrap_err().to_string();
        assert!(
            e.contains("--device tpu") && e.contains("cpu or wgpu"),
            "{e}"
        );
        #[cfg(not(feature = "wgpu"))]
        {
            let e = check_device("wgpu").unwrap_err().to_string();
            assert!(e.contains("without the `wgpu` feature"), "{e}");
        }
        #[cfg(feature = "wgpu")]
        assert!(check_device("wgpu").is_ok());
    }

    #[test]
    fn the_cpu_is_described_as_burn_flex_and_is_not_a_gpu() {
        let (_, info) = device_info("cpu").unwrap();
        assert_eq!(info.to_string(), "cpu (burn flex)");
        assert!(!info.is_gpu());
        // lavapipe's adapter is a Vulkan on the CPU: wgpu, but not a GPU.
        let lavapipe = DeviceInfo {
            device: "wgpu".into(),
            adapter: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
            backend: "vulkan".into(),
            kind: "cpu".into(),
            driver: "llvmpipe Mesa 22.3.6".into(),
        };
        assert!(!lavapipe.is_gpu());
        assert_eq!(
            lavapipe.to_string(),
            "wgpu on llvmpipe (LLVM 15.0.6, 256 bits) (vulkan, cpu, llvmpipe Mesa 22.3.6)"
        );
        let h100 = DeviceInfo {
            kind: "discrete gpu".into(),
            ..lavapipe
        };
        assert!(h100.is_gpu());
    }
}
