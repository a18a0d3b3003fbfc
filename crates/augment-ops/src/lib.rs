//! fer-augment-ops: the augmentation op library ([`ops`]: seeded, composable transforms on
//! one-channel f32 images) and the op chain's checks ([`chain`]: `[augment]`'s and
//! `[train_cnn]`'s `ops` as written, validated, and the default chain).
//!
//! Reads and writes no files. Takes the `ops` lists of `[augment]` and `[train_cnn]` (through
//! the stages that parse them). A crate of its own so that the augment stage is built from
//! it alone, not from the training library (fer-train, which re-exports both modules): an
//! edit to the trainer, an evaluation file or a schema then reruns train_cnn and tune, not
//! augment.

pub mod chain;
pub mod ops;
