//! Typed artifact schemas: the files one stage writes and others read, each with one type
//! that its writer and every reader share (no burn here, so the report stays light).
//!
//! Reads and writes the files below for its callers; takes no params. Each schema is a module
//! behind a feature of its own name, and a crate enables the schemas it reads or writes
//! (`fer-schema = { workspace = true, features = ["model"] }`). A stage's code version
//! (fer-codeversion) hashes this crate's shared files and only the enabled schemas' files, so
//! editing one schema reruns only the stages that use it.
//!
//! - [`write_json`] / [`write_json_sorted`] / [`read_json`]: the stages' JSON files (pretty,
//!   one trailing newline), read into their type with the file named in any error;
//! - [`epochs`]: `epochs.parquet` (train_cnn's model folders, tune's `best/`);
//! - [`predictions`]: a CNN's `predictions.parquet`;
//! - [`metrics`]: train_cnn's and train_svm's `metrics.json`;
//! - [`model`]: a CNN model folder's `model.json` (with [`model::TrainSettings`]);
//! - [`recommendation`]: the report's `recommendation.json`;
//! - [`calibration`]: a model folder's `calibration.json` (train-cnn, tune, train-svm);
//! - [`scenes`]: `scenes/scene_bench.json`, the scene benchmark of a model (`make scenes`).

#[cfg(feature = "calibration")]
pub mod calibration;
#[cfg(feature = "epochs")]
pub mod epochs;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "model")]
pub mod model;
#[cfg(feature = "predictions")]
pub mod predictions;
#[cfg(feature = "recommendation")]
pub mod recommendation;
#[cfg(feature = "scenes")]
pub mod scenes;

use fer_core::error::{Error, IoContext, Result};
use std::path::Path;

/// Write `v` as pretty JSON, keys in the type's own order, and a trailing newline.
pub fn write_json(path: &Path, v: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(v).expect("artifact types serialize") + "\n";
    std::fs::write(path, text).at(path)
}

/// [`write_json`] with every object's keys sorted (through a `serde_json::Value`): the order
/// the metrics files have always had (they were first written from `json!` maps).
pub fn write_json_sorted(path: &Path, v: &impl serde::Serialize) -> Result<()> {
    write_json(
        path,
        &serde_json::to_value(v).expect("artifact types serialize"),
    )
}

/// Read a JSON file into its schema type; a missing key or wrong type names the file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).at(path)?;
    serde_json::from_str(&text).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        source: e,
    })
}

/// A column of a Parquet table as the array type `A`, or an error naming file and column.
#[allow(dead_code)] // used by the `epochs` and `predictions` schemas
pub(crate) fn column<A: arrow_array::Array + Clone + 'static>(
    path: &Path,
    b: &arrow_array::RecordBatch,
    name: &str,
    what: &str,
) -> Result<A> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<A>().cloned())
        .ok_or_else(|| Error::parquet(path, format!("no {what} column `{name}`")))
}
