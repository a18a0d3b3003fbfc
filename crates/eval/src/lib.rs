//! Evaluation: what the training stages and the report compute from predictions.
//!
//! Reads and writes no file; takes predictions, truths and scores from its callers.
//! - [`metrics`]: accuracy, balanced accuracy, per-class precision/recall/F1, confusion, ROC
//!   AUC, against FER2013's and FERPlus's truths (recorded as `fer_schema::metrics` types);
//! - [`calibration`]: temperature and Platt scaling fitted on validation, reliability, ECE,
//!   Brier and NLL (recorded as `fer_schema::calibration` types).

pub mod calibration;
pub mod metrics;
