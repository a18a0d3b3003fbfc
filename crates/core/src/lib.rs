//! fer-core: what every fer-pipeline stage shares.
//!
//! Reads and writes nothing by itself; it gives the stages:
//! - [`label`]: the binary label (`Happy = 0`, `NotHappy = 1`, the study's encoding), the 7
//!   FER2013 emotions and the label mode;
//! - [`classes`]: the class vocabulary ([`Classes`]: a model's class names, and which is
//!   happy);
//! - [`split`]: train / val / test;
//! - [`ferplus`]: FERPlus votes, the join to the Kaggle folders and the vote-to-label rules;
//! - [`dataset`]: the Arrow schema of an image dataset and its Parquet read/write;
//! - [`parquet_io`]: deterministic Parquet read/write helpers;
//! - [`hash`]: blake3 hashing of files, folders and bytes;
//! - [`manifest`] and [`stage`]: the per-stage JSON manifest and the runner that skips,
//!   restores (from the content-addressed run cache `FER_CACHE_DIR`) or computes a stage;
//! - [`lock`]: the per-pipeline lock every stage binary holds while it runs;
//! - [`cache`]: the run cache's checks, quarantine, leftover temporaries and size bound;
//! - [`pipeline`]: the `pipelines/<name>.toml` loader (unknown sections and keys are errors;
//!   `extends = "<pipeline>"` lays a file over its parent);
//! - [`schema`]: typed artifact schemas, one type per file shared by its writer and readers
//!   (`epochs.parquet`, a CNN's `predictions.parquet`, the model stages' `metrics.json`);
//! - [`calibration`]: temperature and Platt scaling fitted on val, NLL / ECE (15 equal-width
//!   bins) / Brier and the reliability bins of p(happy), the records of `calibration.json`;
//! - [`metrics`]: accuracy, balanced accuracy, per-class precision/recall/F1/support, macro
//!   and weighted averages, confusion matrix, ROC AUC;
//! - [`plot`]: the embedded font and image-grid helpers for PNG charts;
//! - [`cli`]: the common command line of every stage binary, the [`cli::Stage`] trait every
//!   stage implements ([`impl_stage!`]) and the one generic `main` of their binaries;
//! - [`tensors`]: model-ready f32 tensors per split (safetensors) and their index;
//! - [`transform`]: the fitted preprocessing transform and the colour-to-gray helper.

pub mod atomic;
pub mod cache;
pub mod classes;
pub mod cli;
pub mod dataset;
pub mod error;
pub mod ferplus;
pub mod hash;
pub mod imagefile;
pub mod label;
pub mod lock;
pub mod manifest;
pub mod mini;
pub mod parquet_io;
pub mod pipeline;
pub mod plot;
pub mod split;
pub mod stage;
pub mod tensors;
pub mod transform;

pub use classes::Classes;
pub use error::{Error, Result};
/// The stage graph, declared once (crates/graph).
pub use fer_graph as graph;
pub use label::{BinaryLabel, Emotion, LabelMode, LabelSource};
pub use manifest::Manifest;
pub use split::Split;

/// Side of a FER2013 image in pixels.
pub const IMAGE_SIDE: usize = 48;
/// Pixels per FER2013 image.
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
