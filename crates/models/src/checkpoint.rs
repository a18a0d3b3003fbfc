//! A trained CNN on disk: `model.safetensors` (burn-store) and `model.json` ([`ModelArtifact`]:
//! the config that rebuilds the network, its training settings, the fitted transform and the
//! class names), read and written here and nowhere else.

use crate::ModelError;
use crate::arch::{ModelConfig, Net};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use fer_schema::model::ModelJson;
use std::path::Path;

/// Everything a consumer needs to rebuild and use a trained model (`model.json`; the schema
/// is core's, with the network's config type). `ModelArtifact::load(dir)` reads it.
pub type ModelArtifact = ModelJson<ModelConfig>;

/// Rebuild the network of a [`ModelArtifact`] and load its `model.safetensors`.
pub trait LoadModel {
    fn load_model(&self, dir: &Path, device: &Device) -> Result<Net, ModelError>;
}

impl LoadModel for ModelArtifact {
    fn load_model(&self, dir: &Path, device: &Device) -> Result<Net, ModelError> {
        load_weights(&self.model, &dir.join("model.safetensors"), device)
    }
}

/// A store writing `tmp` whose bytes are a function of the weights alone. burn-store's default
/// header metadata (format, producer, version) is a hash map, serialized in that map's order,
/// which changes from process to process: the same weights gave six different files, so a
/// winner's `model.safetensors` (and its hash in manifests and tests) changed from run to run.
/// One key has one order. Nothing reads the metadata back (burn's loader ignores it).
fn store(tmp: &Path) -> SafetensorsStore {
    SafetensorsStore::from_file(tmp)
        .overwrite(true)
        .clear_metadata()
        .metadata("producer", "burn")
}

/// Save a model's weights as safetensors, atomically (a temporary file in the same folder,
/// fsync, rename over `path`): a crash leaves the old file or the new one, never a part. The
/// same weights give the same bytes.
pub fn save_weights(model: &Net, path: &Path) -> Result<(), ModelError> {
    fer_core::atomic::write_with(path, |tmp| {
        let mut store = store(tmp);
        model
            .save_into(&mut store)
            .map_err(|e| ModelError::Checkpoint {
                path: path.display().to_string(),
                message: format!("cannot save weights: {e}"),
            })
    })
}

/// Save a model's weights in PyTorch's layout (BatchNorm `weight`/`bias`, Linear weights
/// `[out, in]`), the layout [`load_pytorch`] and `init` read; atomically, as [`save_weights`].
pub fn save_pytorch(model: &Net, path: &Path) -> Result<(), ModelError> {
    fer_core::atomic::write_with(path, |tmp| {
        let mut store = store(tmp).with_to_adapter(burn::store::BurnToPyTorchAdapter);
        model
            .save_into(&mut store)
            .map_err(|e| ModelError::Checkpoint {
                path: path.display().to_string(),
                message: format!("cannot save weights: {e}"),
            })
    })
}

/// Rebuild a model from its config and load weights in PyTorch's layout (a file someone
/// trained elsewhere, or [`save_pytorch`]'s), checking nothing is missing.
pub fn load_pytorch(cfg: &ModelConfig, path: &Path, device: &Device) -> Result<Net, ModelError> {
    load_with(cfg, path, device, true)
}

/// Rebuild a model from its config and load its weights, checking nothing is missing.
pub fn load_weights(cfg: &ModelConfig, path: &Path, device: &Device) -> Result<Net, ModelError> {
    load_with(cfg, path, device, false)
}

fn load_with(
    cfg: &ModelConfig,
    path: &Path,
    device: &Device,
    pytorch: bool,
) -> Result<Net, ModelError> {
    let bad = |m: String| ModelError::Checkpoint {
        path: path.display().to_string(),
        message: m,
    };
    if !path.is_file() {
        return Err(bad("checkpoint not found".into()));
    }
    let mut model = cfg.init(device);
    let mut store = SafetensorsStore::from_file(path);
    if pytorch {
        store = store.with_from_adapter(burn::store::PyTorchToBurnAdapter);
    }
    let r = model
        .load_from(&mut store)
        .map_err(|e| bad(format!("corrupt or incompatible checkpoint: {e}")))?;
    if !r.missing.is_empty() || !r.errors.is_empty() || !r.unused.is_empty() {
        return Err(bad(format!(
            "checkpoint does not fit a `{}` model: {} tensors missing{}, {} not in the model{}, {} errors{}",
            cfg.arch,
            r.missing.len(),
            r.missing
                .first()
                .map(|m| format!(" (first: `{}`)", m.0))
                .unwrap_or_default(),
            r.unused.len(),
            r.unused
                .first()
                .map(|m| format!(" (first: `{m}`)"))
                .unwrap_or_default(),
            r.errors.len(),
            r.errors
                .first()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        )));
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_weights_are_saved_as_the_same_bytes_and_load_back() {
        let device = Device::flex();
        let cfg = ModelConfig::new("fer-small".into()).with_widths(vec![4, 8]);
        let net = cfg.init(&device);
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        // Each save builds a new store and so a new hash map: with burn's three metadata keys,
        // eight saves gave several orders.
        for i in 0..8 {
            for (kind, save) in [
                ("burn", save_weights as fn(&Net, &Path) -> _),
                ("pt", save_pytorch),
            ] {
                let p = dir.path().join(format!("{kind}-{i}.safetensors"));
                save(&net, &p).unwrap();
                files.push((kind, std::fs::read(&p).unwrap()));
            }
        }
        for kind in ["burn", "pt"] {
            let mine: Vec<&Vec<u8>> = files.iter().filter(|f| f.0 == kind).map(|f| &f.1).collect();
            assert!(
                mine.iter().all(|b| *b == mine[0]),
                "{kind}: the bytes differ between saves"
            );
        }
        let back = load_weights(&cfg, &dir.path().join("burn-0.safetensors"), &device).unwrap();
        let again = dir.path().join("again.safetensors");
        save_weights(&back, &again).unwrap();
        assert_eq!(std::fs::read(&again).unwrap(), files[0].1);
        let back = load_pytorch(&cfg, &dir.path().join("pt-0.safetensors"), &device).unwrap();
        save_weights(&back, &again).unwrap();
        assert_eq!(std::fs::read(&again).unwrap(), files[0].1);
    }
}
