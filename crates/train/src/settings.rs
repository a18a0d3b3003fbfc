//! `[train_cnn]` params: defaults for every model at the top of the section, one
//! `[[train_cnn.models]]` table per model (its keys override the defaults), and
//! `[[train_cnn.ops]]`, the online augmentation chain (the augment library's op list).

use crate::chain::OpSection;
use crate::ops::Step;
use fer_core::pipeline::PipelineFile;
use fer_models::arch::ARCHS;
pub use fer_models::settings::{MIN_PART, TrainSettings, auto_workers};
use serde::Serialize;

pub const SECTION: &str = "train_cnn";

/// Validated `[train_cnn]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
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
        None => crate::chain::default_ops(),
        Some(v) => v.try_into().map_err(|e: toml::de::Error| {
            pf.param_error(SECTION, "ops", e.message().to_string())
        })?,
    };
    let steps = crate::chain::validate_ops(&ops, pf, SECTION)?;
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
    check_input_side(pf, &out, listed)?;
    check_ingest_rules(pf, &out, listed)?;
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

pub use fer_core::pipeline::image_side as input_side;

/// Every model must fit the images preprocess makes: a network whose spatial size would reach
/// zero (`seed-base` below 18 pixels, ...) is an error naming `[preprocess] size` and the
/// model, before any data is read.
fn check_input_side(
    pf: &PipelineFile,
    models: &[TrainSettings],
    listed: bool,
) -> fer_core::Result<()> {
    let side = input_side(pf)?;
    for (i, s) in models.iter().enumerate() {
        if let Err(m) = fer_models::arch::check_side(&s.arch, s.widths.len(), side) {
            let model = if listed {
                format!("[train_cnn] models[{i}] (`{}`)", s.name)
            } else {
                format!("[train_cnn] (`{}`)", s.name)
            };
            return Err(pf.param_error(
                "preprocess",
                "size",
                format!("{m}; raise it or change the arch of {model}"),
            ));
        }
    }
    Ok(())
}

/// The rules between `[train_cnn]` and `[ingest]`, checked from the pipeline file before any
/// data is read (train-cnn and tune both parse `[train_cnn]` here):
/// - `pretrain_epochs > 0` needs `[ingest] pretrain_pool = true`, the pool it pretrains on;
/// - `soft_targets = true` needs FERPlus's votes, which `[ingest] source = "synthetic"` never
///   has (with real data, that FERPLUS_DIR held them is known only once ingest has read it:
///   train-cnn says so then);
/// - a validation split: `[ingest] val_fraction = 0` with the carved validation leaves none,
///   and every model's best epoch is chosen on it.
fn check_ingest_rules(
    pf: &PipelineFile,
    models: &[TrainSettings],
    listed: bool,
) -> fer_core::Result<()> {
    let ingest: toml::Table = pf.section("ingest")?;
    let text = |k: &str, default: &'static str| {
        ingest
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or(default)
            .to_string()
    };
    let pool = ingest
        .get("pretrain_pool")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let val_fraction = ingest.get("val_fraction").and_then(|v| match v {
        toml::Value::Float(f) => Some(*f),
        toml::Value::Integer(i) => Some(*i as f64),
        _ => None,
    });
    if val_fraction == Some(0.0) && text("validation", "carve") == "carve" {
        return Err(pf.param_error(
            "ingest",
            "val_fraction",
            "0 leaves no validation split, and [train_cnn] chooses each model's best epoch on \
             it: set val_fraction > 0, or validation = \"public_test\"",
        ));
    }
    let synthetic = text("source", "auto") == "synthetic";
    for (i, s) in models.iter().enumerate() {
        let key = |k: &str| {
            if listed {
                format!("models[{i}].{k}")
            } else {
                k.to_string()
            }
        };
        if s.pretrain_epochs > 0 && !pool {
            return Err(pf.param_error(
                SECTION,
                &key("pretrain_epochs"),
                format!(
                    "{} needs [ingest] pretrain_pool = true (the images it pretrains on); set \
                     it, or pretrain_epochs = 0",
                    s.pretrain_epochs
                ),
            ));
        }
        if s.soft_targets && synthetic {
            return Err(pf.param_error(
                SECTION,
                &key("soft_targets"),
                "true needs FERPlus's votes, and [ingest] source = \"synthetic\" has none; \
                 use real data with FERPLUS_DIR, or soft_targets = false",
            ));
        }
    }
    Ok(())
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
    if !["adamw", "adam", "sgd"].contains(&s.optimizer.as_str()) {
        return Err(err(
            "optimizer",
            format!(
                "unknown optimizer `{}` (expected adamw, adam or sgd)",
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
    if !(0.0..1.0).contains(&s.momentum) {
        return Err(err("momentum", format!("{} is not in [0, 1)", s.momentum)));
    }
    if s.momentum != fer_schema::model::DEFAULT_MOMENTUM && s.optimizer != "sgd" {
        return Err(err(
            "momentum",
            format!(
                "is for optimizer = \"sgd\" (the optimizer is `{}`, whose betas are fixed)",
                s.optimizer
            ),
        ));
    }
    if !(s.class_weight_power > 0.0 && s.class_weight_power <= 1.0) {
        return Err(err(
            "class_weight_power",
            format!(
                "{} is not in (0, 1] (1: inverse frequency, 0.5: its square root)",
                s.class_weight_power
            ),
        ));
    }
    if !(s.mixup >= 0.0 && s.mixup.is_finite()) {
        return Err(err(
            "mixup",
            format!(
                "{} must be >= 0 (the Beta distribution's alpha; 0 = off)",
                s.mixup
            ),
        ));
    }
    if !(0.0..1.0).contains(&s.ema) {
        return Err(err(
            "ema",
            format!(
                "{} is not in [0, 1) (the average's decay per step; 0 = off)",
                s.ema
            ),
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
    if !(s.pretrain_lr >= 0.0 && s.pretrain_lr.is_finite()) {
        return Err(err(
            "pretrain_lr",
            format!("{} must be >= 0 (0: the same as lr)", s.pretrain_lr),
        ));
    }
    if !s.init.is_empty() && !std::path::Path::new(&s.init).is_file() {
        return Err(err(
            "init",
            format!(
                "`{}`: file not found (a safetensors file of this architecture, PyTorch layout)",
                s.init
            ),
        ));
    }
    if s.dense > 4096 {
        return Err(err("dense", format!("{} must be at most 4096", s.dense)));
    }
    if s.per_image_norm_centre && !s.per_image_norm {
        return Err(err(
            "per_image_norm_centre",
            "needs per_image_norm = true (it says where the standardization's statistics come from)".to_string(),
        ));
    }
    if s.per_image_norm && s.arch != "fer-small" {
        return Err(err(
            "per_image_norm",
            format!(
                "is for fer-small only (`{}` is the study's network, kept as it was)",
                s.arch
            ),
        ));
    }
    Ok(s)
}
