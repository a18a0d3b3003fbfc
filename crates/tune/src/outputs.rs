//! The stage's outputs: runs the search, then writes the winner to `best/` (trained on to its
//! epochs and exported, or train-cnn's folder copied), `trials.parquet` and `summary.json`.

use crate::TuneError;
use crate::params::{Strategy, TuneParams};
use crate::schedule::{Status, Trial, best_trial};
use crate::search::{SearchData, load_incumbent};
use fer_core::stage::Outputs;
use fer_schema::metrics::{CnnMetrics, TunedFrom};
use fer_schema::write_json_sorted;
use fer_schema::{read_json, write_json};
use fer_train::settings::TrainSettings;
use fer_train::{Prepared, train};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

/// Search, then export the winner and the trials table into `dir`. `incumbent`: train-cnn's
/// folder of the base model, trial 0 without training it again (`reuse_base`).
pub fn compute(
    dir_in: &Path,
    incumbent: Option<&Path>,
    p: &TuneParams,
    plan: &crate::workers::Plan,
    device: &fer_train::Device,
    work: &Path,
    dir: &Path,
    quiet: bool,
) -> Result<Outputs, TuneError> {
    let prepared = Prepared::load(dir_in)?;
    let Prepared {
        train: train_set,
        val,
        test,
        transform,
        ..
    } = &prepared;

    let pb = fer_core::cli::progress(p.max_trials as u64, "tune", quiet);
    let last = std::cell::RefCell::new(String::new());
    let report = |msg: &str, pos: u64, len: u64| {
        pb.set_length(len);
        pb.set_position(pos);
        pb.set_message(msg.to_string());
        // In a log, each new step of the search (a trial's rung and epoch) on a line.
        if *last.borrow() != msg {
            fer_core::cli::log_line("tune", quiet, msg);
            *last.borrow_mut() = msg.to_string();
        }
    };
    let data = SearchData {
        train: train_set,
        val,
        transform,
        incumbent: incumbent.map(|d| load_incumbent(p, d)).transpose()?,
    };
    let st = crate::workers::run_search(plan, p, &data, device, work, &report)?;
    pb.finish_and_clear();

    let failed: Vec<&Trial> = st
        .trials
        .iter()
        .filter(|t| t.status == Status::Failed)
        .collect();
    let Some(best) = best_trial(&st) else {
        if !failed.is_empty() && failed.len() == st.trials.len() {
            return Err(TuneError::AllFailed(
                failed.len(),
                failed[0].error.clone().unwrap_or_default(),
            ));
        }
        return Err(TuneError::NothingFinished(format!(
            "time_limit {} s, first rung {} epochs",
            p.time_limit_s,
            p.rungs()[0]
        )));
    };

    // The winner's best checkpoint, scored on val and (once) on test.
    let s = p.settings(best.id, &best.config);
    let bdir = dir.join("best");
    let (mut info, epoch_rows) = match (&best.reused_from, incumbent) {
        // The incumbent won: train-cnn already exported and scored it; copy its folder.
        (Some(_), Some(src)) => {
            std::fs::create_dir_all(&bdir).map_err(|e| fer_core::Error::io(&bdir, e))?;
            for f in [
                "model.safetensors",
                "model.json",
                "epochs.parquet",
                "predictions.parquet",
                "metrics.json",
                "calibration.json",
            ] {
                std::fs::copy(src.join(f), bdir.join(f))
                    .map_err(|e| fer_core::Error::io(src.join(f), e))?;
            }
            let info: CnnMetrics = read_json(&bdir.join("metrics.json"))?;
            (info, best.epochs_run)
        }
        _ => {
            let steps = fer_train::ops::scale_steps(&p.steps, best.config.aug_strength as f32);
            let aug = fer_train::chain::augmenter(&steps, transform);
            let trained = train::train_until(
                &s,
                train_set,
                val,
                &aug,
                device,
                &work.join(&s.name),
                best.epochs_run,
                &|_, _, _| {},
            )?;
            let cfg = prepared.model_config(&s)?;
            let info = fer_train::export_model(&trained, &s, &cfg, &prepared, device, &bdir)?;
            (info, trained.state.epochs.len())
        }
    };
    info.tune = Some(TunedFrom {
        tune_trial: best.id,
        reused_from: best.reused_from.clone(),
        search_seconds: st.elapsed,
    });
    write_json_sorted(&bdir.join("metrics.json"), &info)?;
    let winner = TrainSettings {
        name: "tuned".into(),
        ..s.clone()
    };
    let snippet = format!(
        "# The tune winner (trial {}), as a [[train_cnn.models]] table.\n[[train_cnn.models]]\n{}",
        best.id,
        toml::to_string(&winner).expect("settings serialize to TOML")
    );
    let sp = bdir.join("train_cnn.toml");
    std::fs::write(&sp, snippet).map_err(|e| fer_core::Error::io(&sp, e))?;

    let rows = write_trials(&dir.join("trials.parquet"), p.strategy, &st.trials)?;
    let count = |s: Status| st.trials.iter().filter(|t| t.status == s).count();
    let mut summary = json!({
        "strategy": p.strategy.as_str(),
        "trials": st.trials.len(),
        "completed": count(Status::Completed),
        "pruned": count(Status::Pruned),
        "failed": count(Status::Failed),
        "stopped": count(Status::Stopped),
        "best_trial": best.id,
        "best_val_acc": best.rungs.last().map(|r| r.val_acc),
        "best_epochs": best.epochs_run,
        "best_params": best.config,
        "best_reused_from": best.reused_from,
        "searched_trials": st.trials.iter().filter(|t| t.reused_from.is_none()).count(),
        "incumbent_reused_from": st.trials.iter().find_map(|t| t.reused_from.clone()),
        "epochs_trained": st.trials.iter().map(|t| t.epochs_run).sum::<usize>(),
        "seconds": st.elapsed,
        "budget": {
            "max_trials": p.max_trials,
            "max_epochs": p.max_epochs,
            "rungs": p.rungs(),
            "time_limit_s": p.time_limit_s,
        },
        "test_accuracy": info.metrics.test.accuracy,
        "val_accuracy_tta": info.metrics.val.accuracy,
    });
    // Seven classes: the objective was validation macro F1 (binary summaries are unchanged).
    if let Some(f1) = best.rungs.last().and_then(|r| r.val_macro_f1) {
        summary["objective"] = "val_macro_f1".into();
        summary["best_val_macro_f1"] = f1.into();
        summary["test_macro_f1"] = info.metrics.test.macro_avg.f1.into();
    }
    write_json(&dir.join("summary.json"), &summary)?;
    if !quiet {
        eprintln!(
            "tune ({}): {} trials ({} completed, {} pruned, {} failed, {} stopped) in {:.0} s, {} epochs; best trial-{:03} {:?}: val acc {:.4}, test acc {:.4}",
            p.strategy.as_str(),
            st.trials.len(),
            count(Status::Completed),
            count(Status::Pruned),
            count(Status::Failed),
            count(Status::Stopped),
            st.elapsed,
            summary["epochs_trained"],
            best.id,
            best.config,
            info.metrics.val.accuracy,
            info.metrics.test.accuracy,
        );
    }
    let mut out = Outputs::default();
    out.table("trials.parquet", rows);
    out.file("summary.json");
    for f in [
        "model.safetensors",
        "model.json",
        "metrics.json",
        "calibration.json",
        "train_cnn.toml",
    ] {
        out.file(&format!("best/{f}"));
    }
    out.table("best/epochs.parquet", epoch_rows);
    out.table("best/predictions.parquet", val.n + test.n);
    out.summary = json!({
        "strategy": p.strategy.as_str(),
        "trials": st.trials.len(),
        "pruned": count(Status::Pruned),
        "best_trial": best.id,
        "best_val_acc": summary["best_val_acc"],
        "test_accuracy": summary["test_accuracy"],
        "seconds": st.elapsed,
    });
    Ok(out)
}

/// The trials table (one row per trial).
pub fn write_trials(path: &Path, strategy: Strategy, trials: &[Trial]) -> fer_core::Result<usize> {
    use arrow_array::{ArrayRef, Float64Array, StringArray, UInt32Array};
    let u32s = |f: fn(&Trial) -> u32| {
        Arc::new(UInt32Array::from_iter_values(trials.iter().map(f))) as ArrayRef
    };
    let f64s = |f: fn(&Trial) -> f64| {
        Arc::new(Float64Array::from_iter_values(trials.iter().map(f))) as ArrayRef
    };
    let strs = |f: &dyn Fn(&Trial) -> String| {
        Arc::new(StringArray::from_iter_values(trials.iter().map(f))) as ArrayRef
    };
    let mut cols = vec![
        ("trial", u32s(|t| t.id as u32)),
        ("strategy", strs(&|_| strategy.as_str().to_string())),
        ("status", strs(&|t| t.status.as_str().to_string())),
        (
            "params",
            strs(&|t| serde_json::to_string(&t.config).expect("JSON")),
        ),
        ("epochs_run", u32s(|t| t.epochs_run as u32)),
        (
            "val_acc",
            f64s(|t| t.rungs.last().map_or(f64::NAN, |r| r.val_acc)),
        ),
        (
            "val_loss",
            f64s(|t| t.rungs.last().map_or(f64::NAN, |r| r.val_loss)),
        ),
        (
            "rungs",
            strs(&|t| serde_json::to_string(&t.rungs).expect("JSON")),
        ),
        ("seconds", f64s(|t| t.seconds)),
        (
            "reused_from",
            Arc::new(StringArray::from(
                trials
                    .iter()
                    .map(|t| t.reused_from.clone())
                    .collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
        (
            "error",
            Arc::new(StringArray::from(
                trials.iter().map(|t| t.error.clone()).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
    ];
    // Seven classes: the validation macro F1 trials were ranked by (none in a binary table).
    if trials
        .iter()
        .any(|t| t.rungs.iter().any(|r| r.val_macro_f1.is_some()))
    {
        cols.push((
            "val_macro_f1",
            f64s(|t| {
                t.rungs
                    .last()
                    .and_then(|r| r.val_macro_f1)
                    .unwrap_or(f64::NAN)
            }),
        ));
    }
    fer_core::parquet_io::write_columns(path, cols)
}
