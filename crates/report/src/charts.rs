//! The report's charts, drawn with plotters into an RGB buffer and saved as PNG with
//! `fer_core::plot` (the embedded DejaVu Sans font, no system fonts needed).

use crate::ReportError;
use crate::load::Epoch;
use crate::stats::Ci;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn ce(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> ReportError + '_ {
    move |e| ReportError::Chart(format!("{}: {e}", path.display()))
}

/// Draw into a `w` x `h` white RGB buffer.
fn draw_buf(
    path: &Path,
    w: u32,
    h: u32,
    draw: impl FnOnce(&Area) -> Result<(), String>,
) -> Result<Vec<u8>, ReportError> {
    fer_core::plot::register_font();
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| ce(path)(&e))?;
        draw(&root).map_err(|e| ce(path)(&e))?;
        root.present().map_err(|e| ce(path)(&e))?;
    }
    Ok(buf)
}

/// Draw into a `w` x `h` white canvas and save it as PNG.
fn canvas(
    path: &Path,
    w: u32,
    h: u32,
    draw: impl FnOnce(&Area) -> Result<(), String>,
) -> Result<(), ReportError> {
    let buf = draw_buf(path, w, h, draw)?;
    fer_core::plot::save_rgb_png(path, w, h, buf)?;
    Ok(())
}

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Colour of the i-th model of a family: SVMs warm, CNNs cool.
pub fn model_color(i: usize, svm: bool) -> RGBColor {
    const WARM: [RGBColor; 4] = [
        RGBColor(217, 95, 2),
        RGBColor(231, 41, 138),
        RGBColor(166, 118, 29),
        RGBColor(230, 171, 2),
    ];
    const COOL: [RGBColor; 5] = [
        RGBColor(31, 111, 235),
        RGBColor(27, 158, 119),
        RGBColor(117, 112, 179),
        RGBColor(20, 54, 93),
        RGBColor(102, 166, 30),
    ];
    if svm {
        WARM[i % WARM.len()]
    } else {
        COOL[i % COOL.len()]
    }
}

/// One row of the accuracy chart.
pub struct CiRow {
    pub name: String,
    pub ci: Ci,
    pub color: RGBColor,
}

/// Test accuracy of every model with its bootstrap interval; optional reference lines (the
/// study's figure, the majority baseline).
pub fn accuracy_ci(
    path: &Path,
    title: &str,
    rows: &[CiRow],
    refs: &[(String, f64)],
) -> Result<(), ReportError> {
    let n = rows.len().max(1) as i32;
    let h = 90 + 38 * n as u32;
    let lo = rows
        .iter()
        .map(|r| r.ci.lo)
        .chain(refs.iter().map(|r| r.1))
        .fold(1.0f64, f64::min);
    let xmin = ((lo * 100.0 / 5.0).floor() * 5.0 - 5.0).max(0.0);
    canvas(path, 1000, h, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(330)
            .build_cartesian_2d(xmin..106f64, (0..n).into_segmented())
            .map_err(s)?;
        let names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("test accuracy (%)")
            .x_label_formatter(&|x| {
                if *x <= 100.0 {
                    format!("{x:.0}")
                } else {
                    String::new()
                }
            })
            .label_style(("sans-serif", 14))
            .y_labels(n as usize)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(s)?;
        for (k, (label, v)) in refs.iter().enumerate() {
            let x = v * 100.0;
            let style = RGBColor(110, 110, 110).stroke_width(1);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x, SegmentValue::Exact(0)), (x, SegmentValue::Exact(n))],
                    style,
                )))
                .map_err(s)?;
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at((x, SegmentValue::Exact(n)))
                        + Text::new(
                            label.clone(),
                            (4, 2 + 15 * k as i32),
                            ("sans-serif", 13).into_font(),
                        ),
                ))
                .map_err(s)?;
        }
        for (i, r) in rows.iter().enumerate() {
            let y = SegmentValue::CenterOf(i as i32);
            let st = r.color.stroke_width(3);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(r.ci.lo * 100.0, y.clone()), (r.ci.hi * 100.0, y.clone())],
                    st,
                )))
                .map_err(s)?;
            for x in [r.ci.lo, r.ci.hi] {
                chart
                    .draw_series(std::iter::once(
                        EmptyElement::at((x * 100.0, y.clone()))
                            + PathElement::new(vec![(0, -7), (0, 7)], r.color.stroke_width(2)),
                    ))
                    .map_err(s)?;
            }
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at((r.ci.value * 100.0, y.clone()))
                        + Circle::new((0, 0), 6, r.color.filled()),
                ))
                .map_err(s)?;
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at((r.ci.hi * 100.0, y.clone()))
                        + Text::new(
                            format!("{:.1}%", r.ci.value * 100.0),
                            (8, -7),
                            ("sans-serif", 13).into_font(),
                        ),
                ))
                .map_err(s)?;
        }
        Ok(())
    })
}

/// One ROC curve: its legend, its points (false positive rate, true positive rate), colour.
pub type Curve = (String, Vec<(f64, f64)>, RGBColor);

/// ROC curves of several models on one plot (positive class: happy).
pub fn roc(path: &Path, curves: &[Curve]) -> Result<(), ReportError> {
    canvas(path, 760, 640, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                "ROC curves on the test set (happy = positive)",
                ("sans-serif", 20),
            )
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)
            .map_err(s)?;
        chart
            .configure_mesh()
            .x_desc("false positive rate (not-happy faces called happy)")
            .y_desc("true positive rate (happy faces found)")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(s)?;
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, 0.0), (1.0, 1.0)],
                RGBColor(170, 170, 170).stroke_width(1),
            ))
            .map_err(s)?
            .label("chance")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RGBColor(170, 170, 170)));
        for (name, pts, color) in curves {
            let c = *color;
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                .map_err(s)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3))
                });
        }
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

/// Confusion matrices side by side: rows = true class, columns = predicted class; each cell
/// with its count and its share of the row.
pub fn confusions(
    path: &Path,
    mats: &[(String, Vec<Vec<u64>>)],
    classes: &[String],
) -> Result<(), ReportError> {
    let k = classes.len().max(1) as i32;
    let cell = if k > 2 { 62 } else { 86 };
    let per_row = 3usize;
    let (pw, ph) = (120 + cell * k + 30, 70 + cell * k + 40);
    let cols = mats.len().clamp(1, per_row) as i32;
    let rows = mats.len().div_ceil(per_row).max(1) as i32;
    canvas(path, (pw * cols) as u32, (ph * rows) as u32, |root| {
        let font = |sz: i32| ("sans-serif", sz).into_font();
        for (m, (name, cm)) in mats.iter().enumerate() {
            let ox = (m % per_row) as i32 * pw;
            let oy = (m / per_row) as i32 * ph;
            root.draw(&Text::new(name.clone(), (ox + 10, oy + 8), font(15)))
                .map_err(s)?;
            root.draw(&Text::new(
                "predicted →".to_string(),
                (ox + 120, oy + 30),
                font(12),
            ))
            .map_err(s)?;
            for (j, c) in classes.iter().enumerate() {
                let short = c.replace('_', " ");
                root.draw(&Text::new(
                    short.clone(),
                    (ox + 120 + cell * j as i32 + 4, oy + 48),
                    font(12),
                ))
                .map_err(s)?;
                root.draw(&Text::new(
                    short,
                    (ox + 10, oy + 62 + cell * j as i32 + cell / 2 - 6),
                    font(12),
                ))
                .map_err(s)?;
            }
            for (i, row) in cm.iter().enumerate() {
                let total: u64 = row.iter().sum::<u64>().max(1);
                for (j, &v) in row.iter().enumerate() {
                    let share = v as f64 / total as f64;
                    let good = i == j;
                    let (r, g, b) = if good { (27, 158, 119) } else { (217, 95, 2) };
                    let mix = |c: u8| (255.0 - (255.0 - c as f64) * share.min(1.0)) as u8;
                    let x0 = ox + 120 + cell * j as i32;
                    let y0 = oy + 62 + cell * i as i32;
                    root.draw(&Rectangle::new(
                        [(x0, y0), (x0 + cell - 2, y0 + cell - 2)],
                        RGBColor(mix(r), mix(g), mix(b)).filled(),
                    ))
                    .map_err(s)?;
                    let ink = if share > 0.55 { WHITE } else { BLACK };
                    root.draw(&Text::new(
                        format!("{v}"),
                        (x0 + 8, y0 + cell / 2 - 16),
                        font(if k > 2 { 12 } else { 18 }).color(&ink),
                    ))
                    .map_err(s)?;
                    root.draw(&Text::new(
                        format!("{:.0}%", share * 100.0),
                        (x0 + 8, y0 + cell / 2 + 6),
                        font(12).color(&ink),
                    ))
                    .map_err(s)?;
                }
            }
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

/// A gallery of faces, each with two caption lines.
pub fn gallery(
    path: &Path,
    items: &[(Vec<u8>, String, String)],
    side: u32,
) -> Result<(), ReportError> {
    let scale = 2u32;
    let per_row = 6usize;
    let (cw, ch) = (side * scale + 100, side * scale + 48);
    let cols = items.len().clamp(1, per_row) as u32;
    let rows = items.len().div_ceil(per_row).max(1) as u32;
    let (w, h) = (cols * cw + 10, rows * ch + 10);
    let mut img = draw_buf(path, w, h, |root| {
        for (i, (_, l1, l2)) in items.iter().enumerate() {
            let y = (i / per_row) as u32 * ch + 5;
            let font = ("sans-serif", 12).into_font();
            root.draw(&Text::new(
                l1.clone(),
                (
                    ((i % per_row) as u32 * cw + 8) as i32,
                    (y + side * scale + 4) as i32,
                ),
                font.clone(),
            ))
            .map_err(s)?;
            root.draw(&Text::new(
                l2.clone(),
                (
                    ((i % per_row) as u32 * cw + 8) as i32,
                    (y + side * scale + 20) as i32,
                ),
                font.color(&RGBColor(90, 90, 90)),
            ))
            .map_err(s)?;
        }
        Ok(())
    })?;
    // The faces are pasted into the pixels after plotters drew the captions.
    for (i, (px, _, _)) in items.iter().enumerate() {
        let x = (i % per_row) as u32 * cw + 5 + (cw - side * scale) / 2;
        let y = (i / per_row) as u32 * ch + 5;
        fer_core::plot::blit_gray(&mut img, w, x, y, px, side, scale);
    }
    fer_core::plot::save_rgb_png(path, w, h, img)?;
    Ok(())
}

/// Precision against recall of "not happy" alerts (both in %), one curve per entry (every
/// candidate threshold, at one base rate); `chosen` (recall, precision) is ringed and
/// `goal_precision` (%) drawn as a dashed line.
pub fn precision_recall(
    path: &Path,
    title: &str,
    curves: &[Curve],
    chosen: Option<(f64, f64)>,
    goal_precision: Option<f64>,
) -> Result<(), ReportError> {
    canvas(path, 760, 560, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..100f64, 0f64..101f64)
            .map_err(s)?;
        chart
            .configure_mesh()
            .x_desc("recall: unhappy customers flagged (%)")
            .y_desc("precision: alerts that are right (%)")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(s)?;
        if let Some(g) = goal_precision {
            let grey = RGBColor(110, 110, 110);
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(0.0, g), (100.0, g)],
                    6,
                    4,
                    grey.stroke_width(1),
                ))
                .map_err(s)?
                .label(format!("goal: {g:.0}% precision"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], grey));
        }
        for (name, pts, color) in curves {
            let c = *color;
            let pts: Vec<(f64, f64)> = pts
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(pts, c.stroke_width(2)))
                .map_err(s)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3))
                });
        }
        if let Some((r, p)) = chosen.filter(|(r, p)| r.is_finite() && p.is_finite()) {
            chart
                .draw_series(std::iter::once(Circle::new(
                    (r, p),
                    7,
                    BLACK.stroke_width(2),
                )))
                .map_err(s)?
                .label("chosen threshold")
                .legend(|(x, y)| Circle::new((x + 9, y), 5, BLACK.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(s)?;
        Ok(())
    })
}

/// One row of the threshold sweep: threshold, precision (%), recall (%), alerts per 100.
pub type SweepRow = (f64, f64, f64, f64);

/// Precision, recall (%) and alerts per 100 customers against the threshold, at one base
/// rate; the chosen threshold as a vertical line, the goal (label, value on the same axis)
/// dashed. `x` is the threshold axis's range.
pub fn threshold_sweep(
    path: &Path,
    title: &str,
    x_desc: &str,
    x: (f64, f64),
    rows: &[SweepRow],
    chosen: f64,
    goal: Option<(String, f64)>,
) -> Result<(), ReportError> {
    let (mut x0, mut x1) = x;
    if !(x0.is_finite() && x1.is_finite() && x1 > x0) {
        (x0, x1) = (0.0, 1.0);
    }
    canvas(path, 900, 520, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, 0f64..101f64)
            .map_err(s)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc("% (alerts: per 100 customers)")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(s)?;
        let dark = RGBColor(60, 60, 60);
        if chosen.is_finite() {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(chosen, 0.0), (chosen, 101.0)],
                    dark.stroke_width(2),
                )))
                .map_err(s)?
                .label(format!("chosen threshold {chosen:.3}"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], dark.stroke_width(2))
                });
        }
        if let Some((label, g)) = goal {
            let grey = RGBColor(110, 110, 110);
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(x0, g), (x1, g)],
                    6,
                    4,
                    grey.stroke_width(1),
                ))
                .map_err(s)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], grey));
        }
        type Get = fn(&SweepRow) -> f64;
        let series: [(&str, Get, RGBColor); 3] = [
            ("precision (%)", |r| r.1, RGBColor(31, 111, 235)),
            ("recall (%)", |r| r.2, RGBColor(217, 95, 2)),
            ("alerts per 100 customers", |r| r.3, RGBColor(27, 158, 119)),
        ];
        for (name, get, color) in series {
            let pts: Vec<(f64, f64)> = rows
                .iter()
                .map(|r| (r.0, get(r)))
                .filter(|(a, b)| a.is_finite() && b.is_finite() && *a >= x0 && *a <= x1)
                .collect();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(s)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::MiddleRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(s)?;
        Ok(())
    })
}
