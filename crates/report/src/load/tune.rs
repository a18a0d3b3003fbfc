//! The tune stage's outputs: `summary.json` and `trials.parquet`.

use super::table::Table;
use super::{Trial, Tune, read_json};
use crate::ReportError;
use serde_json::Value;
use std::path::Path;

pub(super) fn tune(stage: &str, dir: &Path) -> Result<Tune, ReportError> {
    let summary_path = dir.join("summary.json");
    let summary = if summary_path.exists() {
        read_json(stage, &summary_path)?
    } else {
        Value::Null
    };
    let tp = dir.join("trials.parquet");
    let mut trials = Vec::new();
    if tp.exists() {
        let t = Table::read(stage, &tp)?;
        let (trial, strategy, status, params, epochs_run, val_acc, val_loss, seconds, error) = (
            t.u32s("trial")?,
            t.strings("strategy")?,
            t.strings("status")?,
            t.strings("params")?,
            t.u32s("epochs_run")?,
            t.f64s("val_acc")?,
            t.f64s("val_loss")?,
            t.f64s("seconds")?,
            t.opt_strings("error")?,
        );
        for i in 0..trial.len() {
            trials.push(Trial {
                trial: trial[i],
                strategy: strategy[i].clone(),
                status: status[i].clone(),
                params: params[i].clone(),
                epochs_run: epochs_run[i],
                val_acc: val_acc[i],
                val_loss: val_loss[i],
                seconds: seconds[i],
                error: error[i].clone(),
            });
        }
    }
    Ok(Tune { summary, trials })
}
