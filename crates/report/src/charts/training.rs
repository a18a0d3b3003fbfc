//! The training charts: learning curves per epoch and the tuning trials.

use super::{canvas, s};
use crate::ReportError;
use crate::load::Epoch;
use plotters::prelude::*;
use std::path::Path;

/// Train versus validation accuracy and loss per epoch; the kept epoch marked.
pub fn learning_curves(
    path: &Path,
    title: &str,
    epochs: &[Epoch],
    best_epoch: Option<u64>,
) -> Result<(), ReportError> {
    canvas(path, 1000, 380, |root| {
        let root = root.titled(title, ("sans-serif", 19)).map_err(s)?;
        let panels = root.split_evenly((1, 2));
        let last = epochs.iter().map(|e| e.epoch).max().unwrap_or(1).max(2) as f64;
        let first = epochs.iter().map(|e| e.epoch).min().unwrap_or(1) as f64;
        type Get = fn(&Epoch) -> f64;
        let specs: [(&str, Get, Get); 2] = [
            (
                "accuracy (%)",
                |e| e.train_acc * 100.0,
                |e| e.val_acc * 100.0,
            ),
            ("loss", |e| e.train_loss, |e| e.val_loss),
        ];
        for (panel, (ylabel, tr, va)) in panels.iter().zip(specs) {
            let vals: Vec<f64> = epochs
                .iter()
                .flat_map(|e| [tr(e), va(e)])
                .filter(|v| v.is_finite())
                .collect();
            let (mut lo, mut hi) = (
                vals.iter().copied().fold(f64::INFINITY, f64::min),
                vals.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            );
            if !lo.is_finite() || !hi.is_finite() {
                (lo, hi) = (0.0, 1.0);
            }
            let pad = ((hi - lo) * 0.08).max(1e-3);
            let mut chart = ChartBuilder::on(panel)
                .margin(10)
                .margin_right(24)
                .x_label_area_size(36)
                .y_label_area_size(52)
                .build_cartesian_2d(first..last, (lo - pad)..(hi + pad))
                .map_err(s)?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .x_label_formatter(&|x| {
                    if x.fract().abs() < 1e-9 {
                        format!("{x:.0}")
                    } else {
                        String::new()
                    }
                })
                .y_desc(ylabel)
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(s)?;
            if let Some(b) = best_epoch {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(b as f64, lo - pad), (b as f64, hi + pad)],
                        RGBColor(60, 60, 60).stroke_width(2),
                    )))
                    .map_err(s)?
                    .label(format!("kept: epoch {b}"))
                    .legend(|(x, y)| {
                        PathElement::new(
                            vec![(x, y), (x + 18, y)],
                            RGBColor(60, 60, 60).stroke_width(2),
                        )
                    });
            }
            for (name, get, color) in [
                ("train", tr, RGBColor(217, 95, 2)),
                ("validation", va, RGBColor(31, 111, 235)),
            ] {
                let pts: Vec<(f64, f64)> =
                    epochs.iter().map(|e| (e.epoch as f64, get(e))).collect();
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(s)?
                    .label(name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                    });
                chart
                    .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                    .map_err(s)?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerLeft)
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .label_font(("sans-serif", 12))
                .draw()
                .map_err(s)?;
        }
        Ok(())
    })
}

/// Validation accuracy of every tuning trial, coloured by status, with the best so far.
pub fn trials(path: &Path, pts: &[(u32, f64, String)]) -> Result<(), ReportError> {
    canvas(path, 900, 420, |root| {
        let xmax = pts.iter().map(|p| p.0).max().unwrap_or(1).max(1) as f64 + 0.5;
        let xmin = pts.iter().map(|p| p.0).min().unwrap_or(0) as f64 - 0.5;
        let vals: Vec<f64> = pts
            .iter()
            .map(|p| p.1 * 100.0)
            .filter(|v| v.is_finite())
            .collect();
        let lo = vals.iter().copied().fold(100.0f64, f64::min);
        let hi = vals.iter().copied().fold(0.0f64, f64::max);
        let pad = ((hi - lo) * 0.1).max(1.0);
        let mut chart = ChartBuilder::on(root)
            .caption("Tuning trials: validation accuracy", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(xmin..xmax, (lo - pad).max(0.0)..(hi + pad).min(100.0))
            .map_err(s)?;
        chart
            .configure_mesh()
            .x_desc("trial")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc("best validation accuracy (%)")
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(s)?;
        for (status, color) in [
            ("completed", RGBColor(31, 111, 235)),
            ("pruned", RGBColor(160, 160, 160)),
            ("failed", RGBColor(200, 30, 30)),
        ] {
            let these: Vec<(f64, f64)> = pts
                .iter()
                .filter(|p| p.2 == status && p.1.is_finite())
                .map(|p| (p.0 as f64, p.1 * 100.0))
                .collect();
            if these.is_empty() {
                continue;
            }
            chart
                .draw_series(these.into_iter().map(|p| Circle::new(p, 5, color.filled())))
                .map_err(s)?
                .label(status)
                .legend(move |(x, y)| Circle::new((x + 8, y), 5, color.filled()));
        }
        let mut best = f64::NEG_INFINITY;
        let mut line = Vec::new();
        let mut sorted: Vec<&(u32, f64, String)> = pts.iter().collect();
        sorted.sort_by_key(|p| p.0);
        for p in sorted {
            if p.1.is_finite() && p.2 != "failed" {
                best = best.max(p.1 * 100.0);
            }
            if best.is_finite() {
                line.push((p.0 as f64, best));
            }
        }
        chart
            .draw_series(LineSeries::new(
                line,
                RGBColor(27, 158, 119).stroke_width(2),
            ))
            .map_err(s)?
            .label("best so far")
            .legend(|(x, y)| {
                PathElement::new(
                    vec![(x, y), (x + 18, y)],
                    RGBColor(27, 158, 119).stroke_width(2),
                )
            });
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(s)?;
        Ok(())
    })
}
