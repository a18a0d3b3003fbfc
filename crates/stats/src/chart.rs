//! The pixel histogram chart (`histograms.png`).

use crate::{Moments, StatsError};
use std::path::Path;

/// Normalized pixel histograms, one line per (split, class), drawn with plotters.
pub(super) fn histogram_chart(
    path: &Path,
    rows: &[(&str, &str, &Moments)],
) -> Result<(), StatsError> {
    use plotters::prelude::*;
    fer_core::plot::register_font();
    let (w, h) = (900u32, 500u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let ce = |e: &dyn std::fmt::Display| StatsError::Chart(format!("{}: {e}", path.display()));
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| ce(&e))?;
        let series: Vec<(String, Vec<(f64, f64)>)> = rows
            .iter()
            .map(|(g, c, m)| {
                let total = m.pixels().max(1) as f64;
                (
                    format!("{g} {c}"),
                    m.hist
                        .iter()
                        .enumerate()
                        .map(|(b, &n)| (b as f64, 100.0 * n as f64 / total))
                        .collect(),
                )
            })
            .collect();
        let ymax = series
            .iter()
            .flat_map(|s| s.1.iter().map(|p| p.1))
            .fold(0.0f64, f64::max)
            .max(0.1)
            * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption("Pixel intensity histograms", ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..255f64, 0f64..ymax)
            .map_err(|e| ce(&e))?;
        chart
            .configure_mesh()
            .x_desc("pixel value")
            .y_desc("% of pixels")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| ce(&e))?;
        for (i, (name, pts)) in series.into_iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(|e| ce(&e))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| ce(&e))?;
        root.present().map_err(|e| ce(&e))?;
    }
    fer_core::plot::save_rgb_png(path, w, h, buf)?;
    Ok(())
}
