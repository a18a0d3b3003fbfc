//! The operating point's charts: precision against recall of the "not happy" alerts, and the
//! threshold sweep.

use super::{Curve, canvas, s};
use crate::ReportError;
use plotters::prelude::*;
use std::path::Path;

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
