//! The report's charts, drawn with plotters into an RGB buffer and saved as PNG with
//! `fer_core::plot` (the embedded DejaVu Sans font, no system fonts needed).

mod operating;
mod training;

pub use operating::{SweepRow, precision_recall, threshold_sweep};
pub use training::{learning_curves, trials};

use crate::ReportError;
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
