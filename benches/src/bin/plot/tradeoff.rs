//! CPU per reply against p99 latency: at a fixed offered rate every server answers the same
//! load, so what separates them is what each reply costs and how long it waits. Batching
//! windows trade one for the other; the engine's variants form the curve, peers are points.

use anyhow::bail;
use benches::results::{Cell, Summary};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    draw_header, is_engine, palette, run_counts, AXIS_SIZE, FONT, GRID, HEIGHT, MARGIN,
    PANEL_TITLE_SIZE, VALUE_SIZE, WIDTH,
};

/// Panels per row.
const COLUMNS: usize = 2;
const POINT_SIZE: i32 = 6;
/// Where a point's label starts, from the point, in pixels.
const LABEL_OFFSET: (i32, i32) = (POINT_SIZE + 3, -POINT_SIZE - 2);
/// Room around the points, as a share of each axis' span; more on the right for the labels.
const AXIS_PAD: f64 = 0.12;
const LABEL_PAD: f64 = 0.25;
const CURVE: RGBColor = RGBColor(0xd9, 0x48, 0x01);

/// One server in one panel: its median p99 (µs) and CPU per reply (µs).
struct Point {
    server: usize,
    p99_us: f64,
    cpu_us: f64,
}

/// Renders one panel per fixed-rate scenario as an SVG document.
pub fn draw(summary: &Summary) -> anyhow::Result<String> {
    let panels: Vec<(&str, Vec<Point>)> = summary
        .scenarios
        .iter()
        .filter(|s| s.fixed_rate && !s.per_connection)
        .map(|s| (s.name.as_str(), points(&s.cells)))
        .filter(|(_, points)| !points.is_empty())
        .collect();
    if panels.is_empty() {
        bail!("no fixed-rate scenario with p99 latencies in these results");
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let subtitle = format!(
            "each point: a server's median p99 latency and median CPU per reply over {} ok runs; \
             lower left is better; the line is the engine's frontier (the least CPU any of its \
             settings reached at that p99 or less)",
            run_counts(summary)
        );
        let header = draw_header(&root, summary, &subtitle)?;
        let (_, body) = root.split_vertically(header);
        let rows = panels.len().div_ceil(COLUMNS);
        let columns = panels.len().min(COLUMNS);
        let colours = palette(&summary.servers);
        for ((name, points), area) in panels.iter().zip(body.split_evenly((rows, columns))) {
            draw_panel(&area, summary, &colours, name, points)?;
        }
        root.present()?;
    }
    Ok(svg)
}

fn points(cells: &[Option<Cell>]) -> Vec<Point> {
    cells
        .iter()
        .enumerate()
        .filter_map(|(server, cell)| match cell {
            Some(Cell::Measured(m)) => m.p99_us.map(|p99| Point {
                server,
                p99_us: p99.median,
                cpu_us: m.cpu_us.median,
            }),
            _ => None,
        })
        .collect()
}

/// The points no other point beats on both axes (lower p99 and lower CPU), by rising p99.
fn frontier(mut points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut kept: Vec<(f64, f64)> = Vec::new();
    for point in points {
        if kept.last().is_none_or(|last| point.1 < last.1) {
            kept.push(point);
        }
    }
    kept
}

/// An axis range around `values`, never below zero, with `high_pad` of the span above them.
fn padded(values: impl Iterator<Item = f64> + Clone, high_pad: f64) -> std::ops::Range<f64> {
    let low = values.clone().fold(f64::MAX, f64::min);
    let high = values.fold(f64::MIN, f64::max);
    let span = (high - low).max(high.abs() / 4.0).max(1e-9);
    (low - span * AXIS_PAD).max(0.0)..high + span * high_pad
}

fn draw_panel(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    summary: &Summary,
    colours: &[RGBColor],
    name: &str,
    points: &[Point],
) -> anyhow::Result<()> {
    let x_range = padded(points.iter().map(|p| p.p99_us), LABEL_PAD);
    let y_range = padded(points.iter().map(|p| p.cpu_us), AXIS_PAD);
    let mut chart = ChartBuilder::on(area)
        .caption(name, (FONT, PANEL_TITLE_SIZE))
        .margin(MARGIN as u32)
        .x_label_area_size(48)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range, y_range)?;
    chart
        .configure_mesh()
        .x_desc("p99 latency, µs")
        .y_desc("server CPU µs per reply")
        .axis_desc_style((FONT, AXIS_SIZE))
        .label_style((FONT, AXIS_SIZE))
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .draw()?;

    let of_engine = |p: &&Point| is_engine(&summary.servers[p.server]);
    let engine: Vec<(f64, f64)> = points
        .iter()
        .filter(of_engine)
        .map(|p| (p.p99_us, p.cpu_us))
        .collect();
    chart.draw_series([PathElement::new(frontier(engine), CURVE.stroke_width(2))])?;

    let label =
        TextStyle::from((FONT, VALUE_SIZE).into_font()).pos(Pos::new(HPos::Left, VPos::Bottom));
    for point in points {
        let at = (point.p99_us, point.cpu_us);
        let fill = colours[point.server].filled();
        if of_engine(&point) {
            chart.draw_series([Circle::new(at, POINT_SIZE, fill)])?;
        } else {
            chart.draw_series([TriangleMarker::new(at, POINT_SIZE + 2, fill)])?;
        }
        chart.draw_series([EmptyElement::at(at)
            + Text::new(
                summary.servers[point.server].clone(),
                LABEL_OFFSET,
                label.clone(),
            )])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use benches::results::summarize;

    #[test]
    fn draws_fixed_rate_scenarios_only() {
        let json = r#"{
            "machine": {"date": "2026-01-02", "kernel": "6.1", "cpu_model": "Test CPU", "commit": "abc1234"},
            "scenarios": {"fixed-20k": ["--rate", 20000], "pipelined": ["--pipeline", "16"]},
            "runs": [
                {"server": "engine", "scenario": "fixed-20k", "ok": true, "rate": 2e4, "cpu_us_per_unit": 20.0, "p99_us": 250},
                {"server": "engine-batch100", "scenario": "fixed-20k", "ok": true, "rate": 2e4, "cpu_us_per_unit": 15.0, "p99_us": 400},
                {"server": "tokio", "scenario": "fixed-20k", "ok": true, "rate": 2e4, "cpu_us_per_unit": 21.0, "p99_us": 280},
                {"server": "engine", "scenario": "pipelined", "ok": true, "rate": 2e6, "cpu_us_per_unit": 0.3, "p99_us": 700}
            ]
        }"#;
        let svg = draw(&summarize(json).unwrap()).unwrap();
        for text in ["fixed-20k", "engine-batch100", "tokio", "p99 latency, µs"] {
            assert!(
                svg.contains(&format!("\n{text}\n</text>")),
                "no {text} in {svg}"
            );
        }
        assert!(!svg.contains("\npipelined\n</text>"), "{svg}");
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }

    #[test]
    fn the_frontier_keeps_only_points_nothing_beats_on_both_axes() {
        // (p99, CPU): 300/23 and 610/15 are on it; 380/34 and 850/15.5 are beaten by them.
        let points = vec![(850.0, 15.5), (300.0, 23.0), (380.0, 34.0), (610.0, 15.0)];
        assert_eq!(frontier(points), vec![(300.0, 23.0), (610.0, 15.0)]);
        assert_eq!(frontier(vec![]), vec![]);
    }

    #[test]
    fn results_without_a_fixed_rate_are_an_error() {
        let json = r#"{"runs": [{"server": "engine", "scenario": "pipelined", "ok": true,
                                 "rate": 2e6, "cpu_us_per_unit": 0.3, "p99_us": 700}]}"#;
        let err = draw(&summarize(json).unwrap()).unwrap_err();
        assert!(err.to_string().contains("no fixed-rate scenario"), "{err}");
    }
}
