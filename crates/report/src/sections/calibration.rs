//! The "Calibration" section: does p(happy) = 0.8 mean that 8 faces in 10 are happy?
//!
//! Reads each model folder's `calibration.json` (`fer_schema::calibration`: the map
//! fitted on **val** by the stage that trained the model; train_svm's holds one record per
//! SVM) and the model's **test** predictions (already loaded: `predictions.parquet`, whose
//! p(happy) is uncalibrated). Writes `img/calibration_<model>.png` per model: a reliability
//! diagram on test before and after the map (15 equal-width bins of p(happy),
//! `fer_eval::calibration::reliability`), and a table of ECE, Brier and NLL on test before and
//! after. A model folder without `calibration.json` (trained before it existed) is listed as
//! not calibrated with the make target that writes it; an SVM's "before" is the unfitted
//! `1 / (1 + exp(-decision))`.

use super::{Ctx, thousands};
use crate::ReportError;
use crate::doc::{Tone, slug};
use crate::load::{Family, ModelRun, make_target};
use fer_core::classes::HAPPY_LABEL;
use fer_eval::calibration::{self as cal, Bin, ECE_BINS};
use fer_schema::calibration::{self as calfile, Method, ScoreKind, Scores};
use plotters::prelude::*;
use std::path::Path;

/// The stage whose folder holds a model (for the make target in messages).
fn stage_of(m: &ModelRun) -> &'static str {
    match m.key.split(':').next() {
        Some("svm") => "train_svm",
        Some("tune") => "tune",
        _ => "train_cnn",
    }
}

/// A model's map: from its folder's `calibration.json`, or `Err(why not)` in words.
fn method_of(m: &ModelRun) -> Result<Result<Method, String>, ReportError> {
    let path = m.dir.join(calfile::FILE);
    let target = make_target(stage_of(m));
    if !path.is_file() {
        return Ok(Err(format!(
            "no `calibration.json` (trained before calibration was saved; `make {target}`)"
        )));
    }
    let f = calfile::read(&path).map_err(|e| ReportError::Artifact {
        path: path.clone(),
        message: fer_core::cli::error_chain(&e),
        target: Some(target.to_string()),
    })?;
    let kind = match m.family {
        Family::Svm => ScoreKind::SvmDecision,
        Family::Cnn => ScoreKind::PHappy,
    };
    if f.score != kind {
        return Err(ReportError::Artifact {
            path,
            message: format!(
                "maps {}, but the model scores {}",
                f.score.as_str(),
                kind.as_str()
            ),
            target: Some(target.to_string()),
        });
    }
    Ok(match f.model(m.svm_name.as_deref()) {
        Some(r) => match &r.method {
            Method::Uncalibrated { reason } => Err(reason.clone()),
            other => Ok(other.clone()),
        },
        None => Err(format!(
            "`calibration.json` has no record for {}",
            m.svm_name.as_deref().unwrap_or("it")
        )),
    })
}

fn f3(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "–".into()
    }
}

pub(super) fn calibration(cx: &mut Ctx) -> Result<(), ReportError> {
    let models: Vec<&ModelRun> = cx
        .study
        .models
        .iter()
        .filter(|m| !m.test_preds.is_empty())
        .collect();
    if models.is_empty() {
        return Ok(());
    }
    cx.doc.h2("Calibration: does p(happy) mean what it says?");
    cx.happy_vs_rest_note();
    cx.doc.p(format!(
        "A calibrated model's p(happy) = 0.8 means that about 8 in 10 such faces are happy. Each \
         model's map was fitted on the validation images only, by the stage that trained it, \
         and saved beside its weights (`calibration.json`; the predict tool applies it): \
         temperature scaling of the CNNs' p(happy) (its log-odds divided by T; T above 1 \
         softens an over-confident model) and Platt scaling of the SVMs' decision values \
         (an SVM's uncalibrated p(happy) is taken as 1 / (1 + e^-decision)). The figures \
         below are on the test images, which no map saw. ECE: expected calibration error over \
         {ECE_BINS} equal-width bins of p(happy) (0 is perfect); Brier: mean squared error of \
         p(happy); NLL: mean negative log-likelihood (nats). Lower is better for all three. \
         Thresholds and accuracies elsewhere in this report use the uncalibrated scores; the \
         map keeps their order, so it changes no label at the recommended threshold."
    ));
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    let mut images = Vec::new();
    for (i, m) in models.iter().enumerate() {
        let happy: Vec<bool> = m
            .test_preds
            .iter()
            .map(|p| p.label == HAPPY_LABEL)
            .collect();
        let kind = match m.family {
            Family::Svm => ScoreKind::SvmDecision,
            Family::Cnn => ScoreKind::PHappy,
        };
        let raw = Method::Uncalibrated {
            reason: String::new(),
        };
        let probs = |me: &Method| -> Vec<f64> {
            m.test_preds
                .iter()
                .map(|p| cal::apply(me, kind, p.score))
                .collect()
        };
        let p0 = probs(&raw);
        let before = cal::scores(&p0, &happy);
        let (label, after, p1) = match method_of(m)? {
            Ok(me) => {
                let label = match &me {
                    Method::Temperature { temperature } => {
                        format!("temperature T = {temperature:.3}")
                    }
                    Method::Platt { a, b } => format!("Platt a = {a:.3}, b = {b:.3}"),
                    Method::Uncalibrated { .. } => unreachable!("filtered by method_of"),
                };
                let p1 = probs(&me);
                (label, Some(cal::scores(&p1, &happy)), Some(p1))
            }
            Err(why) => {
                missing.push(format!("{}: {why}", m.display));
                ("none (see below)".to_string(), None, None)
            }
        };
        let cell = |f: fn(&Scores) -> f64| -> [String; 2] {
            [
                f3(f(&before)),
                after.as_ref().map_or("–".into(), |a| f3(f(a))),
            ]
        };
        let [e0, e1] = cell(|s| s.ece);
        let [b0, b1] = cell(|s| s.brier);
        let [n0, n1] = cell(|s| s.nll);
        rows.push(vec![
            m.display.clone(),
            label,
            thousands(happy.len() as u64),
            e0,
            e1,
            b0,
            b1,
            n0,
            n1,
        ]);
        let name = format!("calibration_{}.png", slug(&m.key));
        let path = cx.img_path(&name)?;
        let bins0 = cal::reliability(&p0, &happy, ECE_BINS);
        let bins1 = p1.map(|p| cal::reliability(&p, &happy, ECE_BINS));
        reliability_chart(
            &path,
            &format!("{}: reliability on test", m.display),
            &bins0,
            bins1.as_deref(),
            i,
            m.family == Family::Svm,
        )?;
        images.push((
            format!("img/{name}"),
            format!(
                "{}: share of happy faces against mean p(happy) in each of {ECE_BINS} bins, on \
                 test, before (grey) and after (colour) the map fitted on validation; the \
                 diagonal is perfect calibration, dot sizes follow the faces in the bin.",
                m.display
            ),
        ));
    }
    cx.doc.table(
        &[
            "model",
            "map (fitted on validation)",
            "test faces",
            "ECE before",
            "ECE after",
            "Brier before",
            "Brier after",
            "NLL before",
            "NLL after",
        ],
        rows,
    );
    if !missing.is_empty() {
        cx.doc.note(
            Tone::Warn,
            format!(
                "Not calibrated (the predict tool uses these scores as they are and says so): {}.",
                missing.join("; ")
            ),
        );
    }
    for (file, caption) in images {
        cx.doc.image(file, caption);
    }
    Ok(())
}

/// A reliability diagram: per non-empty bin, the share of happy faces against the mean
/// p(happy), before (grey) and after (the model's colour: `i`-th of its family's palette)
/// calibration, over the diagonal.
fn reliability_chart(
    path: &Path,
    title: &str,
    before: &[Bin],
    after: Option<&[Bin]>,
    i: usize,
    svm: bool,
) -> Result<(), ReportError> {
    let (w, h) = (620u32, 540u32);
    let err = |e: &dyn std::fmt::Display| ReportError::Chart(format!("{}: {e}", path.display()));
    fer_core::plot::register_font();
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let draw = || -> Result<(), String> {
            let s = |e: &dyn std::fmt::Display| e.to_string();
            let mut chart = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 18))
                .margin(14)
                .x_label_area_size(44)
                .y_label_area_size(56)
                .build_cartesian_2d(0f64..1f64, 0f64..1f64)
                .map_err(|e| s(&e))?;
            chart
                .configure_mesh()
                .x_desc("mean p(happy) in the bin")
                .y_desc("share of happy faces")
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(|e| s(&e))?;
            let grey = RGBColor(160, 160, 160);
            chart
                .draw_series(LineSeries::new(
                    vec![(0.0, 0.0), (1.0, 1.0)],
                    RGBColor(200, 200, 200).stroke_width(1),
                ))
                .map_err(|e| s(&e))?;
            let total: usize = before.iter().map(|b| b.n).sum::<usize>().max(1);
            let mut series = vec![("before", before, grey)];
            let color = crate::charts::model_color(i, svm);
            if let Some(a) = after {
                series.push(("after", a, color));
            }
            for (name, bins, c) in series {
                let pts: Vec<(f64, f64, usize)> = bins
                    .iter()
                    .filter(|b| b.n > 0)
                    .map(|b| (b.mean_p, b.happy, b.n))
                    .collect();
                chart
                    .draw_series(LineSeries::new(
                        pts.iter().map(|&(x, y, _)| (x, y)),
                        c.stroke_width(2),
                    ))
                    .map_err(|e| s(&e))?
                    .label(name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3))
                    });
                chart
                    .draw_series(pts.iter().map(|&(x, y, n)| {
                        let r = 3.0 + 9.0 * (n as f64 / total as f64).sqrt();
                        Circle::new((x, y), r as i32, c.filled())
                    }))
                    .map_err(|e| s(&e))?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .label_font(("sans-serif", 13))
                .draw()
                .map_err(|e| s(&e))?;
            Ok(())
        };
        draw().map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    fer_core::plot::save_rgb_png(path, w, h, buf)?;
    Ok(())
}
