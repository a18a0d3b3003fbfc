//! [`Prepared`]: what `preprocess` wrote, loaded once for training.

use crate::settings::TrainSettings;
use crate::{TrainCnnError, train};
use fer_core::tensors::TensorSet;
use fer_core::transform::Transform;
use fer_models::arch::ModelConfig;
use std::path::{Path, PathBuf};

/// `n` synthetic 48x48 inputs in -2..2 and alternating labels, for timings, whose speed does not
/// depend on content: fer-bench's rows and train-cnn's `gpu` example.
pub fn timing_set(n: usize) -> TensorSet {
    TensorSet {
        n,
        height: 48,
        width: 48,
        x: (0..n * 2304)
            .map(|i| ((i * 7919) % 997) as f32 / 250.0 - 2.0)
            .collect(),
        y: (0..n).map(|i| (i % 2) as u8).collect(),
        truths: None,
    }
}

/// No augmentation, for [`timing_set`]'s images: what timed training runs take.
pub fn timing_augmenter() -> crate::ops::Augmenter {
    crate::ops::Augmenter {
        steps: vec![],
        side: 48,
        range: (-2.0, 2.0),
    }
}

/// What `preprocess` wrote, loaded once: the three splits, their ids, the fitted transform
/// and the class names (from the label mode); the pretraining pool, if there is one, is read
/// on first use ([`Prepared::pretrain`]: only models with `pretrain_epochs` need it).
pub struct Prepared {
    pub train: TensorSet,
    pub val: TensorSet,
    pub test: TensorSet,
    /// `pretrain.safetensors` when preprocess wrote one, and its tensors once read.
    pool: Option<(PathBuf, std::sync::OnceLock<TensorSet>)>,
    pub ids: [Vec<String>; 3],
    pub transform: Transform,
    pub class_names: fer_core::Classes,
}

impl Prepared {
    /// The network config of `s` for this data (its side and class count). Errors when the
    /// training labels don't span the label mode's classes, since the network is sized from
    /// them.
    pub fn model_config(&self, s: &TrainSettings) -> Result<ModelConfig, TrainCnnError> {
        let k = train::num_classes(&self.train);
        if k != self.class_names.len() {
            return Err(TrainCnnError::Data(format!(
                "the training split has labels 0..{} but the label mode has {} classes ({}): every class needs training images",
                k - 1,
                self.class_names.len(),
                self.class_names.join(", ")
            )));
        }
        let cfg = ModelConfig::for_settings(s, self.train.height, k);
        fer_models::arch::check_side(&cfg.arch, cfg.widths.len(), self.train.height)
            .map_err(|m| TrainCnnError::Data(format!("{}: {m} ([preprocess] size)", s.name)))?;
        Ok(cfg)
    }

    /// The pretraining pool (`None`: preprocess wrote none), read on the first call.
    pub fn pretrain(&self) -> fer_core::Result<Option<&TensorSet>> {
        let Some((path, set)) = &self.pool else {
            return Ok(None);
        };
        if let Some(t) = set.get() {
            return Ok(Some(t));
        }
        let t = TensorSet::read(path)?.0;
        Ok(Some(set.get_or_init(|| t)))
    }

    /// Read `artifacts/<pipeline>/preprocess/` (`dir_in`).
    pub fn load(dir_in: &Path) -> fer_core::Result<Prepared> {
        let transform = Transform::load(&dir_in.join("transform.json"))?;
        let (train, meta) = TensorSet::read(&dir_in.join("train.safetensors"))?;
        let (val, _) = TensorSet::read(&dir_in.join("val.safetensors"))?;
        let (test, _) = TensorSet::read(&dir_in.join("test.safetensors"))?;
        let ids = fer_core::tensors::read_ids(&dir_in.join("index.parquet"))?;
        let pool = dir_in.join("pretrain.safetensors");
        let pool = pool.is_file().then(|| (pool, std::sync::OnceLock::new()));
        let mode = meta["label_mode"]
            .as_str()
            .and_then(fer_core::LabelMode::parse)
            .unwrap_or_default();
        let class_names = fer_core::Classes::of_mode(mode);
        Ok(Prepared {
            train,
            val,
            test,
            pool,
            ids,
            transform,
            class_names,
        })
    }
}
