//! The picture of a run (SVG, plotters): on the left the latency
//! distribution of each path (CDF of the exchange time, every round pooled),
//! on the right one bar per target, scaled so that the goal is 1 and a bar
//! at or under the line meets it (green) and one over it misses (red).

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

use crate::bed::PathKind;
use crate::report::Summary;
use crate::stats::{PathRuns, percentile};

const SIZE: (u32, u32) = (1400, 560);
const FONT: &str = "sans-serif";

/// Draws the chart to `file`.
pub(crate) fn draw(file: &Path, runs: &[PathRuns], summary: &Summary) -> anyhow::Result<()> {
    let root = SVGBackend::new(file, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let (left, right) = root.split_horizontally(760);
    latency(&left, runs)?;
    targets(&right, summary)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

fn plot_err(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("drawing the chart: {e:?}")
}

fn color(kind: PathKind) -> RGBColor {
    match kind {
        PathKind::Direct => RGBColor(100, 100, 100),
        PathKind::Egress => RGBColor(31, 119, 180),
        PathKind::Haproxy => RGBColor(214, 39, 40),
    }
}

fn latency(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    runs: &[PathRuns],
) -> anyhow::Result<()> {
    let pooled: Vec<(PathKind, Vec<f64>)> = runs
        .iter()
        .map(|r| (r.kind, r.pooled_latency()))
        .filter(|(_, s)| !s.is_empty())
        .collect();
    let x_max = pooled
        .iter()
        .map(|(_, s)| percentile(s, 99.5))
        .fold(1.0_f64, f64::max)
        * 1.1;
    let x_min = pooled
        .iter()
        .map(|(_, s)| percentile(s, 0.0))
        .fold(x_max, f64::min)
        * 0.9;
    let mut chart = ChartBuilder::on(area)
        .caption("new-connection latency (all rounds)", (FONT, 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(x_min..x_max, 0.0..100.0)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("connect + TLS 1.3 handshake + GET + response (us)")
        .y_desc("percentile")
        .draw()
        .map_err(plot_err)?;
    for (kind, samples) in &pooled {
        let c = color(*kind);
        let points: Vec<(f64, f64)> = (0..=400)
            .map(|i| {
                let p = f64::from(i) / 4.0;
                (percentile(samples, p).min(x_max), p)
            })
            .collect();
        let p50 = percentile(samples, 50.0);
        let p99 = percentile(samples, 99.0);
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))
            .map_err(plot_err)?
            .label(format!("{} (p50 {p50:.0}, p99 {p99:.0} us)", kind.as_str()))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

fn targets(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    summary: &Summary,
) -> anyhow::Result<()> {
    // Score: measured / goal for a maximum, goal / measured for a minimum;
    // at most 1 meets the target.
    let bars: Vec<(String, f64, String, bool)> = summary
        .targets
        .iter()
        .filter_map(|t| {
            let m = t.measured?;
            let score = if t.at_most {
                m / t.goal
            } else {
                t.goal / m.max(1e-9)
            };
            Some((t.short.to_owned(), score, t.text(m), t.met() == Some(true)))
        })
        .collect();
    let n = bars.len().max(1) as f64;
    let y_max = bars.iter().map(|b| b.1).fold(1.5_f64, f64::max).min(5.0) * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "egress-proxy vs targets (goal = 1, lower meets)",
            (FONT, 20),
        )
        .margin(15)
        .x_label_area_size(70)
        .y_label_area_size(45)
        .build_cartesian_2d(-0.5..n - 0.5, 0.0..y_max)
        .map_err(plot_err)?;
    let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len().max(1))
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() > 0.01 || i < 0.0 {
                return String::new();
            }
            names.get(i as usize).cloned().unwrap_or_default()
        })
        .y_desc("measured / goal (goal / measured for a minimum)")
        .draw()
        .map_err(plot_err)?;
    for (i, (_, score, label, met)) in bars.iter().enumerate() {
        let x = i as f64;
        let fill = if *met { GREEN.mix(0.7) } else { RED.mix(0.7) };
        let top = score.min(y_max);
        chart
            .draw_series([Rectangle::new(
                [(x - 0.35, 0.0), (x + 0.35, top)],
                fill.filled(),
            )])
            .map_err(plot_err)?;
        // Above the bar, or inside its top when it is clipped.
        let text_y = if top + y_max * 0.05 < y_max {
            top + y_max * 0.04
        } else {
            top - y_max * 0.02
        };
        chart
            .draw_series([Text::new(label.clone(), (x - 0.3, text_y), (FONT, 13))])
            .map_err(plot_err)?;
    }
    chart
        .draw_series(LineSeries::new(
            [(-0.5, 1.0), (n - 0.5, 1.0)],
            BLACK.stroke_width(2),
        ))
        .map_err(plot_err)?;
    Ok(())
}
