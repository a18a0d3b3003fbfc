//! The "Tuning trials" section: the hyperparameter search's summary, its trials chart and
//! every trial.

use super::{Ctx, pct, secs};
use crate::ReportError;
use crate::charts;
use crate::doc::Tone;
use serde_json::Value;

pub(super) fn tuning(cx: &mut Ctx) -> Result<(), ReportError> {
    cx.doc.h2("Tuning trials");
    let Some(t) = cx.study.tune.clone() else {
        cx.not_run("The hyperparameter search", "tune");
        return Ok(());
    };
    if cx.seven() {
        cx.doc.note(
            Tone::Info,
            "Seven classes: the trials' validation accuracies are over the seven emotions.",
        );
    }
    let sm = &t.summary;
    let g = |k: &str| -> String {
        match &sm[k] {
            Value::Null => "–".into(),
            Value::String(s) => s.clone(),
            Value::Number(n) if n.is_f64() && k.contains("acc") => {
                pct(n.as_f64().unwrap_or(f64::NAN))
            }
            Value::Number(n) if n.is_f64() && k.contains("seconds") => {
                secs(n.as_f64().unwrap_or(0.0))
            }
            v => v.to_string(),
        }
    };
    let budget = match &sm["budget"] {
        Value::Null => "–".to_string(),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{} {v}", k.replace('_', " ")))
            .collect::<Vec<_>>()
            .join(", "),
        v => v.to_string(),
    };
    cx.doc.table(
        &["", "Value"],
        vec![
            vec!["Search strategy".into(), g("strategy")],
            vec!["Trials".into(), g("trials")],
            vec![
                "Configurations trained by the search".into(),
                g("searched_trials"),
            ],
            vec![
                "Completed / pruned / failed".into(),
                format!("{} / {} / {}", g("completed"), g("pruned"), g("failed")),
            ],
            vec!["Best trial".into(), g("best_trial")],
            vec!["Best validation accuracy".into(), g("best_val_acc")],
            vec!["Search time".into(), g("seconds")],
            vec!["Budget".into(), budget],
        ],
    );
    if let Some(from) = sm["incumbent_reused_from"].as_str() {
        cx.doc.p(format!(
            "Trial 0 is the untuned model's own configuration, the incumbent every searched \
             configuration has to beat. It was not trained again: its validation figures per \
             rung and, if it wins, its model are taken from `{from}`."
        ));
    }
    if t.trials.is_empty() {
        cx.doc
            .note(Tone::Warn, "`tune/trials.parquet` lists no trial.");
        return Ok(());
    }
    let pts: Vec<(u32, f64, String)> = t
        .trials
        .iter()
        .map(|x| (x.trial, x.val_acc, x.status.clone()))
        .collect();
    let p = cx.img_path("trials.png")?;
    charts::trials(&p, &pts)?;
    cx.doc.image(
        "img/trials.png",
        "Each dot is one trial's best validation accuracy; pruned trials were stopped early because they trailed; the line is the best so far.",
    );
    let mut sorted = t.trials.clone();
    sorted.sort_by(|a, b| b.val_acc.total_cmp(&a.val_acc).then(a.trial.cmp(&b.trial)));
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|x| {
            vec![
                x.trial.to_string(),
                x.status.clone(),
                pct(x.val_acc),
                format!("{:.3}", x.val_loss),
                x.epochs_run.to_string(),
                secs(x.seconds),
                x.error.clone().map_or_else(
                    || format!("`{}`", x.params),
                    |e| format!("`{}` (error: {e})", x.params),
                ),
            ]
        })
        .collect();
    cx.doc.p("Every trial, best first:");
    cx.doc.table(
        &[
            "Trial",
            "Status",
            "Validation accuracy",
            "Validation loss",
            "Epochs",
            "Time",
            "Hyperparameters",
        ],
        rows,
    );
    Ok(())
}
