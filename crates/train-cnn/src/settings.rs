//! `[train_cnn]` params: defaults for every model at the top of the section, one
//! `[[train_cnn.models]]` table per model (its keys override the defaults), and
//! `[[train_cnn.ops]]`, the online augmentation chain (the augment library's op list).

use crate::model::{ARCHS, ModelConfig};
use fer_augment::{OpSection, Step};
use fer_core::pipeline::PipelineFile;
use serde::{Deserialize, Serialize};

pub const SECTION: &str = "train_cnn";

/// Training settings of one model (all keys optional; defaults below).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSettings {
    /// `seed-base`, `seed-tuned` or `fer-small` (ours).
    pub arch: String,
    /// Folder name of this model's outputs (default: the arch).
    pub name: String,
    pub seed: u64,
    pub batch_size: usize,
    pub epochs: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Floor of the cosine schedule / plateau reductions.
    pub min_lr: f64,
    /// `cosine` (per step, after `warmup_epochs`), `plateau` (halve after `plateau_patience`
    /// epochs without a better val loss) or `constant`.
    pub schedule: String,
    pub warmup_epochs: usize,
    pub plateau_patience: usize,
    /// `adamw` or `adam`.
    pub optimizer: String,
    pub weight_decay: f64,
    pub label_smoothing: f32,
    /// Weight the loss by inverse class frequency.
    pub class_weights: bool,
    /// Stop after this many epochs without a better validation loss (0 = never).
    pub patience: usize,
    /// Apply the `ops` chain to every training batch.
    pub augment: bool,
    /// Average the predictions of the image and its mirror at evaluation.
    pub tta_flip: bool,
    /// Cap on training batches per epoch (0 = all): for short, documented CPU runs of
    /// `seed-tuned`.
    pub max_train_batches: usize,
    pub eval_batch_size: usize,
    /// Ours only: dropout before the classifier and the channels of the conv blocks.
    pub dropout: f64,
    pub widths: Vec<usize>,
    /// Ours only: kernel size per conv block (empty = 3 everywhere; odd, 1..=7).
    pub kernels: Vec<usize>,
    /// Ours only: units of a hidden dense layer before the classifier (0 = none).
    pub dense: usize,
    /// Ours only: conv-BN-ReLU layers per block (1, or 2 for VGG-style blocks).
    pub convs: usize,
    /// Data-parallel CPU workers: each batch is split into this many equal parts, each part's
    /// forward and backward pass runs on its own single-threaded pool, and the gradients are
    /// summed (1 = the whole batch on the shared pool). burn's flex ops on one small batch
    /// barely use a second thread, so one part per core trains fastest. BatchNorm normalizes
    /// each part with its own statistics (ghost batch norm) and its running statistics follow
    /// part 0. Results are deterministic for a given value. In the pipeline file, `"auto"`
    /// (the default) resolves at validation to [`auto_workers`]: the machine's cores, but never
    /// fewer than [`MIN_PART`] images a part; the resolved number is what the stage signature
    /// records. Keep 1 on a GPU.
    pub workers: usize,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            arch: "fer-small".into(),
            name: String::new(),
            seed: 42,
            batch_size: 64,
            epochs: 30,
            lr: 2e-3,
            min_lr: 1e-5,
            schedule: "cosine".into(),
            warmup_epochs: 1,
            plateau_patience: 3,
            optimizer: "adamw".into(),
            weight_decay: 1e-4,
            label_smoothing: 0.05,
            class_weights: true,
            patience: 8,
            augment: true,
            tta_flip: true,
            max_train_batches: 0,
            eval_batch_size: 256,
            dropout: 0.3,
            widths: vec![32, 64, 128, 192],
            kernels: Vec::new(),
            dense: 0,
            convs: 1,
            workers: auto_workers(64),
        }
    }
}

/// The fewest images a data-parallel part trains on when `workers = "auto"`: BatchNorm's
/// statistics over a handful of images are noise (16 is the ghost-batch size that keeps
/// them close to the whole batch's; batch 64 gets at most 4 workers).
pub const MIN_PART: usize = 16;

/// `workers = "auto"` for a batch of `batch_size`: the machine's cores, at most
/// `batch_size / MIN_PART` (and 16), at least 1.
pub fn auto_workers(batch_size: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.min(batch_size / MIN_PART).clamp(1, 16)
}

impl TrainSettings {
    pub fn model_config(&self) -> ModelConfig {
        ModelConfig::new(self.arch.clone())
            .with_dropout(self.dropout)
            .with_widths(self.widths.clone())
            .with_kernels(self.kernels.clone())
            .with_dense(self.dense)
            .with_convs(self.convs)
    }

    /// [`Self::model_config`] for data of `side` x `side` pixels and `num_classes` classes.
    pub fn model_config_for(&self, side: usize, num_classes: usize) -> ModelConfig {
        let mut cfg = self.model_config();
        cfg.side = side;
        cfg.num_classes = num_classes;
        cfg
    }
}

/// Validated `[train_cnn]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainCnnParams {
    pub models: Vec<TrainSettings>,
    pub steps: Vec<Step>,
}

/// Parse and validate `[train_cnn]`; every error names the file and key.
pub fn parse(pf: &PipelineFile) -> fer_core::Result<TrainCnnParams> {
    let mut table: toml::Table = pf.section(SECTION)?;
    let listed = table.contains_key("models");
    let models = match table.remove("models") {
        None => vec![toml::Table::new()],
        Some(toml::Value::Array(a)) => a
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                toml::Value::Table(t) => Ok(t),
                _ => Err(pf.param_error(
                    SECTION,
                    &format!("models[{i}]"),
                    "must be a table ([[train_cnn.models]])",
                )),
            })
            .collect::<fer_core::Result<Vec<_>>>()?,
        Some(_) => {
            return Err(pf.param_error(
                SECTION,
                "models",
                "must be an array of tables ([[train_cnn.models]])",
            ));
        }
    };
    let ops: Vec<OpSection> = match table.remove("ops") {
        None => fer_augment::default_ops(),
        Some(v) => v.try_into().map_err(|e: toml::de::Error| {
            pf.param_error(SECTION, "ops", e.message().to_string())
        })?,
    };
    let steps = fer_augment::validate_ops(&ops, pf, SECTION)?;
    if models.is_empty() {
        return Err(pf.param_error(SECTION, "models", "is empty: list at least one model"));
    }
    let mut out = Vec::new();
    for (i, m) in models.into_iter().enumerate() {
        let mut merged = table.clone();
        merged.extend(m);
        let prefix = if listed {
            format!("models[{i}].")
        } else {
            String::new()
        };
        resolve_auto_workers(&mut merged)
            .map_err(|m| pf.param_error(SECTION, &format!("{prefix}workers"), m))?;
        let s: TrainSettings =
            toml::Value::Table(merged)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    pf.param_error(
                        SECTION,
                        prefix.trim_end_matches('.'),
                        e.message().split_whitespace().collect::<Vec<_>>().join(" "),
                    )
                })?;
        out.push(validate(s, pf, &prefix)?);
    }
    let mut names: Vec<&str> = out.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(pf.param_error(
            SECTION,
            "models",
            format!("two models are named `{}`: give one a `name`", w[0]),
        ));
    }
    Ok(TrainCnnParams { models: out, steps })
}

/// Replace `workers = "auto"` (also the default when the key is absent) by its value for the
/// table's batch size. Another string is an error (the message); numbers are left for
/// deserialization and [`validate`].
fn resolve_auto_workers(t: &mut toml::Table) -> Result<(), String> {
    let auto = match t.get("workers") {
        None => true,
        Some(toml::Value::String(v)) if v == "auto" => true,
        Some(toml::Value::String(v)) => {
            return Err(format!("`{v}` is not a worker count or \"auto\""));
        }
        _ => false,
    };
    if auto {
        let batch = match t.get("batch_size") {
            Some(toml::Value::Integer(b)) if *b > 0 => *b as usize,
            _ => TrainSettings::default().batch_size,
        };
        t.insert(
            "workers".into(),
            toml::Value::Integer(auto_workers(batch) as i64),
        );
    }
    Ok(())
}

fn validate(
    mut s: TrainSettings,
    pf: &PipelineFile,
    prefix: &str,
) -> fer_core::Result<TrainSettings> {
    let err = |k: &str, m: String| pf.param_error(SECTION, &format!("{prefix}{k}"), m);
    if !ARCHS.contains(&s.arch.as_str()) {
        return Err(err(
            "arch",
            format!(
                "unknown architecture `{}` (expected one of: {})",
                s.arch,
                ARCHS.join(", ")
            ),
        ));
    }
    if s.name.is_empty() {
        s.name = s.arch.clone();
    }
    if !s
        .name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(err(
            "name",
            format!("`{}` may only use letters, digits, - and _", s.name),
        ));
    }
    if s.batch_size == 0 {
        return Err(err("batch_size", "must be at least 1".into()));
    }
    if s.workers == 0 || s.workers > 16 {
        return Err(err("workers", format!("{} is not in 1..=16", s.workers)));
    }
    if s.workers > 1 && s.batch_size < 2 * s.workers {
        return Err(err(
            "workers",
            format!(
                "{} workers need batch_size >= {} (BatchNorm needs 2 images per part), got {}",
                s.workers,
                2 * s.workers,
                s.batch_size
            ),
        ));
    }
    if s.eval_batch_size == 0 {
        return Err(err("eval_batch_size", "must be at least 1".into()));
    }
    if s.epochs == 0 {
        return Err(err("epochs", "must be at least 1".into()));
    }
    if !(s.lr > 0.0 && s.lr.is_finite()) {
        return Err(err("lr", format!("{} must be > 0", s.lr)));
    }
    if !(s.min_lr >= 0.0 && s.min_lr <= s.lr) {
        return Err(err("min_lr", format!("{} is not in [0, lr]", s.min_lr)));
    }
    if !["cosine", "plateau", "constant"].contains(&s.schedule.as_str()) {
        return Err(err(
            "schedule",
            format!(
                "unknown schedule `{}` (expected cosine, plateau or constant)",
                s.schedule
            ),
        ));
    }
    if !["adamw", "adam"].contains(&s.optimizer.as_str()) {
        return Err(err(
            "optimizer",
            format!(
                "unknown optimizer `{}` (expected adamw or adam)",
                s.optimizer
            ),
        ));
    }
    if !(s.weight_decay >= 0.0 && s.weight_decay.is_finite()) {
        return Err(err(
            "weight_decay",
            format!("{} must be >= 0", s.weight_decay),
        ));
    }
    if !(0.0..1.0).contains(&s.label_smoothing) {
        return Err(err(
            "label_smoothing",
            format!("{} is not in [0, 1)", s.label_smoothing),
        ));
    }
    if !(0.0..1.0).contains(&s.dropout) {
        return Err(err("dropout", format!("{} is not in [0, 1)", s.dropout)));
    }
    if s.widths.is_empty() || s.widths.iter().any(|&w| w == 0 || w > 1024) {
        return Err(err(
            "widths",
            "needs 1 to n channel counts, each in 1..=1024".into(),
        ));
    }
    if s.arch == "fer-small" && s.widths.len() > 6 {
        return Err(err("widths", "at most 6 blocks for 48x48 inputs".into()));
    }
    if !s.kernels.is_empty() && s.kernels.len() != s.widths.len() {
        return Err(err(
            "kernels",
            format!(
                "has {} sizes for {} conv blocks (give one per entry of `widths`, or none)",
                s.kernels.len(),
                s.widths.len()
            ),
        ));
    }
    if let Some(k) = s.kernels.iter().find(|&&k| k % 2 == 0 || k > 7) {
        return Err(err("kernels", format!("{k} must be odd and at most 7")));
    }
    if !(1..=4).contains(&s.convs) {
        return Err(err("convs", format!("{} is not in 1..=4", s.convs)));
    }
    if s.dense > 4096 {
        return Err(err("dense", format!("{} must be at most 4096", s.dense)));
    }
    Ok(s)
}
