//! Miniature runs (`MINI=1 make all`, `FER_MINI=1`, `--mini`): a pipeline file run with its
//! sizes shrunk and its code paths kept, so every pipeline can be run end to end in CI in
//! minutes.
//!
//! What changes, and nothing else (each a cap: a value already smaller is kept):
//! - the name: `<name>-mini`, so the run writes `artifacts/<name>-mini/` and never mixes with
//!   the real one (nor shares its lock); the description ends with "(in miniature)";
//! - `[ingest] max_train_images` = [`TRAIN_IMAGES`] (the same fraction of test and of the
//!   pretraining pool, every emotion kept: see fer-ingest);
//! - `[train_cnn]` and each `[[train_cnn.models]]`: `epochs` [`EPOCHS`], `pretrain_epochs`
//!   [`PRETRAIN_EPOCHS`] (a model that pretrains still does), `warmup_epochs` 1;
//! - `[tune]`: `max_trials` [`TRIALS`], `max_epochs` [`EPOCHS`] (so it still equals the base
//!   model's epochs, as `reuse_base` needs), `min_epochs` 1, `time_limit` [`TIME_LIMIT`];
//! - `[train_svm] max_train` [`TRAIN_IMAGES`]; `[report] bootstrap` [`BOOTSTRAP`].
//!
//! Labels (FERPlus or FER2013), seven classes, pretraining, `reuse_base`, augmentation, the
//! models and their widths, the device and the report's sections stay as the file says.

/// Appended to the pipeline's name.
pub const SUFFIX: &str = "-mini";
/// Training images (train and val) a miniature run keeps at most (400 until 2026-12-07: the
/// `-gpu` pipelines' big models on the CPU made CI's miniature runs its longest section).
pub const TRAIN_IMAGES: i64 = 200;
/// Epochs of every model, and the search's `max_epochs`.
pub const EPOCHS: i64 = 2;
/// Pretraining epochs of a model that pretrains.
pub const PRETRAIN_EPOCHS: i64 = 1;
/// Trials of a search.
pub const TRIALS: i64 = 3;
/// A search's time limit.
pub const TIME_LIMIT: &str = "2m";
/// Bootstrap resamples of the report's confidence intervals.
pub const BOOTSTRAP: i64 = 200;

/// The miniature of a merged pipeline table (see the module doc).
pub fn shrink(mut table: toml::Table) -> toml::Table {
    if let Some(t) = section(&mut table, "pipeline") {
        let d = t
            .get("description")
            .and_then(toml::Value::as_str)
            .unwrap_or("");
        let d = format!("{d} (in miniature)").trim_start().to_string();
        t.insert("description".into(), d.into());
    }
    if let Some(t) = section(&mut table, "ingest") {
        cap(t, "max_train_images", TRAIN_IMAGES, true);
    }
    if let Some(t) = section(&mut table, "train_cnn") {
        shrink_training(t, true);
        if let Some(toml::Value::Array(models)) = t.get_mut("models") {
            for m in models.iter_mut().filter_map(toml::Value::as_table_mut) {
                shrink_training(m, false);
            }
        }
    }
    if let Some(t) = section(&mut table, "tune") {
        cap(t, "max_trials", TRIALS, true);
        cap(t, "max_epochs", EPOCHS, true);
        t.insert("min_epochs".into(), toml::Value::Integer(1));
        let shorter = t
            .get("time_limit")
            .and_then(toml::Value::as_str)
            .and_then(|s| humantime::parse_duration(s).ok())
            .is_some_and(|d| d <= humantime::parse_duration(TIME_LIMIT).expect("a duration"));
        if !shorter {
            t.insert("time_limit".into(), TIME_LIMIT.into());
        }
    }
    if let Some(t) = section(&mut table, "train_svm") {
        cap(t, "max_train", TRAIN_IMAGES, true);
    }
    if let Some(t) = section(&mut table, "report") {
        cap(t, "bootstrap", BOOTSTRAP, true);
    }
    table
}

/// `[train_cnn]` (`defaults`: the section, which sets every model's epochs) or one model.
fn shrink_training(t: &mut toml::Table, defaults: bool) {
    cap(t, "epochs", EPOCHS, defaults);
    cap(t, "pretrain_epochs", PRETRAIN_EPOCHS, false);
    cap(t, "warmup_epochs", 1, false);
}

/// The section `name`, created empty when the file has none (the stage's defaults are not
/// miniature); `None` when it is not a table (the loader's error to report).
fn section<'a>(table: &'a mut toml::Table, name: &str) -> Option<&'a mut toml::Table> {
    table
        .entry(name)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
}

/// `t[key] = min(t[key], max)`; an absent key is set to `max` when `insert`. A value that is
/// not an integer is left for the stage's validation to report.
fn cap(t: &mut toml::Table, key: &str, max: i64, insert: bool) {
    match t.get(key) {
        Some(toml::Value::Integer(v)) if *v > max => {
            t.insert(key.into(), toml::Value::Integer(max));
        }
        None if insert => {
            t.insert(key.into(), toml::Value::Integer(max));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shrunk(text: &str) -> toml::Table {
        shrink(text.parse().unwrap())
    }

    #[test]
    fn caps_sizes_and_keeps_code_paths() {
        let t = shrunk(
            "[ingest]\nlabels = \"ferplus\"\npretrain_pool = true\n\
             [train_cnn]\nepochs = 30\nsoft_targets = true\n\
             [[train_cnn.models]]\narch = \"fer-small\"\npretrain_epochs = 15\nepochs = 20\n\
             [[train_cnn.models]]\narch = \"seed-base\"\n\
             [tune]\nreuse_base = true\nmax_trials = 40\nmax_epochs = 20\nmin_epochs = 6\ntime_limit = \"25m\"\n\
             [report]\nbootstrap = 2000\n",
        );
        assert_eq!(
            t["ingest"]["max_train_images"].as_integer(),
            Some(TRAIN_IMAGES)
        );
        assert_eq!(t["ingest"]["labels"].as_str(), Some("ferplus"));
        assert_eq!(t["ingest"]["pretrain_pool"].as_bool(), Some(true));
        assert_eq!(t["train_cnn"]["epochs"].as_integer(), Some(EPOCHS));
        assert_eq!(t["train_cnn"]["soft_targets"].as_bool(), Some(true));
        let models = t["train_cnn"]["models"].as_array().unwrap();
        assert_eq!(models[0]["pretrain_epochs"].as_integer(), Some(1));
        assert_eq!(models[0]["epochs"].as_integer(), Some(EPOCHS));
        // A model without its own epochs takes the section's (already capped).
        assert!(models[1].get("epochs").is_none());
        assert_eq!(t["tune"]["max_trials"].as_integer(), Some(TRIALS));
        assert_eq!(t["tune"]["max_epochs"].as_integer(), Some(EPOCHS));
        assert_eq!(t["tune"]["min_epochs"].as_integer(), Some(1));
        assert_eq!(t["tune"]["time_limit"].as_str(), Some(TIME_LIMIT));
        assert_eq!(t["tune"]["reuse_base"].as_bool(), Some(true));
        assert_eq!(t["report"]["bootstrap"].as_integer(), Some(BOOTSTRAP));
        assert_eq!(
            t["pipeline"]["description"].as_str(),
            Some("(in miniature)")
        );
    }

    #[test]
    fn smaller_values_stay() {
        let t = shrunk(
            "[ingest]\nmax_train_images = 50\n[train_cnn]\nepochs = 1\n\
             [tune]\nmax_trials = 2\nmax_epochs = 1\ntime_limit = \"30s\"\n[report]\nbootstrap = 10\n",
        );
        assert_eq!(t["ingest"]["max_train_images"].as_integer(), Some(50));
        assert_eq!(t["train_cnn"]["epochs"].as_integer(), Some(1));
        assert_eq!(t["tune"]["max_trials"].as_integer(), Some(2));
        assert_eq!(t["tune"]["max_epochs"].as_integer(), Some(1));
        assert_eq!(t["tune"]["time_limit"].as_str(), Some("30s"));
        assert_eq!(t["report"]["bootstrap"].as_integer(), Some(10));
    }

    #[test]
    fn absent_sections_get_the_caps() {
        let t = shrunk("[stats]\nseed = 1\n");
        assert_eq!(t["stats"]["seed"].as_integer(), Some(1));
        assert_eq!(
            t["ingest"]["max_train_images"].as_integer(),
            Some(TRAIN_IMAGES)
        );
        assert_eq!(t["train_cnn"]["epochs"].as_integer(), Some(EPOCHS));
        assert_eq!(t["tune"]["max_epochs"].as_integer(), Some(EPOCHS));
        assert_eq!(t["report"]["bootstrap"].as_integer(), Some(BOOTSTRAP));
        // Warmup and pretraining are never switched on.
        assert!(t["train_cnn"].get("warmup_epochs").is_none());
        assert!(t["train_cnn"].get("pretrain_epochs").is_none());
    }
}
