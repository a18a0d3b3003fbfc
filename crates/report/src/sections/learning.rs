//! The "Learning curves" section: each CNN's training and validation accuracy and loss per
//! epoch.

use super::{Ctx, pct};
use crate::ReportError;
use crate::charts;
use crate::load::{Family, ModelRun};
use crate::recommend::short_name;

pub(super) fn learning(cx: &mut Ctx) -> Result<(), ReportError> {
    cx.doc.h2("Learning curves");
    let cnns: Vec<&ModelRun> = cx
        .study
        .models
        .iter()
        .filter(|m| m.family == Family::Cnn && !m.epochs.is_empty())
        .collect();
    if cnns.is_empty() {
        cx.not_run("The learning curves", "train_cnn");
        return Ok(());
    }
    if cx.seven() {
        cx.doc.note(
            crate::doc::Tone::Info,
            "Seven classes: the accuracies and losses per epoch are over the seven emotions, as the CNNs trained.",
        );
    }
    cx.doc.p("Accuracy and loss on the training images (what the model learns from) and the validation images (faces it never trains on), epoch by epoch. When training accuracy keeps rising while validation accuracy stalls or falls, the model is memorising the training faces rather than learning what a smile looks like: it overfits. The kept checkpoint is the epoch with the lowest validation loss.");
    for m in cnns {
        let last = m.epochs.last().expect("non-empty");
        let peak = m
            .epochs
            .iter()
            .max_by(|a, b| a.val_acc.total_cmp(&b.val_acc))
            .expect("non-empty");
        let name = format!("learning_{}.png", crate::doc::slug(&short_name(m)));
        let p = cx.img_path(&name)?;
        charts::learning_curves(
            &p,
            &format!("{}: train versus validation", m.display),
            &m.epochs,
            m.best_epoch,
        )?;
        cx.doc.h3(m.display.clone());
        cx.doc.p(format!(
            "After {} epochs: training accuracy {}, validation accuracy {} (a gap of {:.1} points). Validation accuracy peaked at {} in epoch {}.",
            m.epochs.len(),
            pct(last.train_acc),
            pct(last.val_acc),
            (last.train_acc - last.val_acc) * 100.0,
            pct(peak.val_acc),
            peak.epoch
        ));
        cx.doc.image(
            format!("img/{name}"),
            format!("{}: accuracy (left) and loss (right) per epoch; the grey line marks the kept checkpoint.", m.display),
        );
    }
    Ok(())
}
