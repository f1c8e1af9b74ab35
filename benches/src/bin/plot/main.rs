//! Draws a compare.py results JSON as one SVG: throughput and server CPU per reply of each
//! server in each scenario, or (`--tradeoff`) CPU per reply against p99 latency in the
//! fixed-rate scenarios. See `plot --help`.

mod tradeoff;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use benches::results::{summarize, Cell, Measured, Stat, Summary};
use clap::Parser;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Draws the results of benches/scripts/compare.py as an SVG.
///
/// Two panels, throughput and server CPU per reply (per connection for the churn scenario),
/// with one group of bars per scenario and one bar per server. Scenario scales differ by
/// orders of magnitude, so every bar is its server's median over the ok runs divided by the
/// best server's median in that scenario (best = 1.0; the most throughput, the least CPU);
/// the whisker spans min to max and the number under the bar is the absolute median.
///
/// With --tradeoff: one panel per fixed-rate scenario, each server a point at its median p99
/// latency and median CPU per reply; the engine's variants (e.g. batching windows) are joined
/// into a curve, the peers are points.
#[derive(Debug, Parser)]
#[command(about, long_about)]
struct Args {
    /// Results JSON written by compare.py, e.g. `benches/results/<date>-compare.json`.
    results: PathBuf,
    /// Where to write the SVG [default: RESULTS with the extension .svg, or -tradeoff.svg].
    #[arg(short, long, value_name = "SVG")]
    out: Option<PathBuf>,
    /// Draw CPU per reply against p99 latency in the fixed-rate scenarios instead.
    #[arg(long)]
    tradeoff: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(out) => {
            eprintln!("wrote {}", out.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("plot: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<PathBuf> {
    let json = std::fs::read_to_string(&args.results)
        .with_context(|| format!("cannot read {}", args.results.display()))?;
    let summary = summarize(&json).with_context(|| args.results.display().to_string())?;
    let (svg, default_out) = if args.tradeoff {
        let stem = args.results.with_extension("");
        let name = format!("{}-tradeoff.svg", stem.display());
        (tradeoff::draw(&summary)?, PathBuf::from(name))
    } else {
        (draw(&summary)?, args.results.with_extension("svg"))
    };
    let out = args.out.clone().unwrap_or(default_out);
    std::fs::write(&out, svg).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(out)
}

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 1000;
/// Title, subtitle and the first legend row above the panels; each further row adds a row height.
const HEADER_HEIGHT: u32 = 110;
const LEGEND_ROW_HEIGHT: i32 = 26;
const MARGIN: i32 = 16;
const Y_LABEL_AREA: u32 = 70;
/// Below each bar its absolute median, rotated, then the scenario names.
const VALUE_AREA: i32 = 48;
const X_LABEL_AREA: u32 = VALUE_AREA as u32 + 30;
/// Share of a scenario's slot the bars take; the rest separates the groups.
const GROUP_FILL: f64 = 0.82;
/// Share of a bar's slot it fills; the rest separates it from its neighbour.
const BAR_FILL: f64 = 0.92;
/// Half the width of a whisker's end caps, in bar slots.
const WHISKER_CAP: f64 = 0.2;

const FONT: &str = "sans-serif";
// plotters sizes; the SVG font-size is these divided by 1.24.
const TITLE_SIZE: f64 = 24.0;
const SUBTITLE_SIZE: f64 = 17.0;
const PANEL_TITLE_SIZE: f64 = 20.0;
const AXIS_SIZE: f64 = 16.0;
const SCENARIO_SIZE: f64 = 18.0;
const VALUE_SIZE: f64 = 15.0;
/// Average glyph width of a sans-serif font per pixel of font-size, to centre the legend.
const GLYPH_WIDTH: f64 = 0.55;
const VALUE_PAD: i32 = 5;

const MUTED_TEXT: RGBColor = RGBColor(0x60, 0x60, 0x60);
const GRID: RGBColor = RGBColor(0xdd, 0xdd, 0xdd);
const WHISKER: RGBColor = RGBColor(0x30, 0x30, 0x30);
/// Strong warm colours for the engine and its variants, so they stand out...
const ENGINE_COLOURS: [RGBColor; 8] = [
    RGBColor(0xd9, 0x48, 0x01),
    RGBColor(0xe3, 0x1a, 0x1c),
    RGBColor(0xfd, 0xbf, 0x6f),
    RGBColor(0xb1, 0x59, 0x28),
    RGBColor(0xfb, 0x9a, 0x99),
    RGBColor(0xe7, 0xb0, 0x00),
    RGBColor(0x7f, 0x27, 0x04),
    RGBColor(0xf7, 0x68, 0xa1),
];
/// ...from the muted cool colours of the peers.
const PEER_COLOURS: [RGBColor; 5] = [
    RGBColor(0x6b, 0xae, 0xd6),
    RGBColor(0x74, 0xc4, 0x76),
    RGBColor(0x9e, 0x9a, 0xc8),
    RGBColor(0xa6, 0xa6, 0xa6),
    RGBColor(0x7f, 0xc6, 0xbc),
];

/// The engine and its variants (`engine-batch`, ...), apart from the peer servers.
fn is_engine(server: &str) -> bool {
    server.starts_with("engine")
}

/// Fill colour of each server, in `summary.servers` order.
fn palette(servers: &[String]) -> Vec<RGBColor> {
    let (mut engines, mut peers) = (0, 0);
    servers
        .iter()
        .map(|server| {
            if is_engine(server) {
                engines += 1;
                ENGINE_COLOURS[(engines - 1) % ENGINE_COLOURS.len()]
            } else {
                peers += 1;
                PEER_COLOURS[(peers - 1) % PEER_COLOURS.len()]
            }
        })
        .collect()
}

/// What one panel shows of a cell.
struct Metric {
    title: &'static str,
    y_desc: &'static str,
    value: fn(&Measured) -> Stat,
    /// Whether more is better: picks the scenario's best server, the 1.0.
    higher_is_better: bool,
}

const PANELS: [Metric; 2] = [
    Metric {
        title: "Throughput: replies/s (churn: connections/s), higher is better",
        y_desc: "median / best server's median",
        value: |cell| cell.rate,
        higher_is_better: true,
    },
    Metric {
        title: "Server CPU µs per reply (churn: per connection), lower is better",
        y_desc: "median / lowest server's median",
        value: |cell| cell.cpu_us,
        higher_is_better: false,
    },
];

/// Renders the summary as an SVG document.
fn draw(summary: &Summary) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let subtitle = format!(
            "bar: median of {} ok runs relative to the scenario's best server (= 1.0); \
             whisker: min-max; number below: absolute median",
            run_counts(summary)
        );
        let header = draw_header(&root, summary, &subtitle)?;
        let (_, body) = root.split_vertically(header);
        let (top, bottom) = body.split_vertically((HEIGHT - header) / 2);
        for (area, metric) in [top, bottom].iter().zip(&PANELS) {
            draw_panel(&root, area, summary, metric)?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// How many ok runs the cells are over: "11", or "9-11" when they differ.
fn run_counts(summary: &Summary) -> String {
    let runs: Vec<usize> = summary
        .scenarios
        .iter()
        .flat_map(|s| s.cells.iter().flatten())
        .filter_map(|cell| match cell {
            Cell::Measured(m) => Some(m.runs),
            Cell::Failed { .. } => None,
        })
        .collect();
    let (fewest, most) = (runs.iter().min(), runs.iter().max());
    match (fewest, most) {
        (Some(a), Some(b)) if a == b => format!("{a}"),
        (Some(a), Some(b)) => format!("{a}-{b}"),
        _ => "no".to_owned(),
    }
}

/// Title, subtitle and legend rows of every server's colour; returns the height they take.
fn draw_header(
    root: &DrawingArea<SVGBackend, Shift>,
    summary: &Summary,
    subtitle: &str,
) -> anyhow::Result<u32> {
    let m = &summary.machine;
    let cpus = m
        .cpus_online
        .map(|n| format!(" ({n} CPUs)"))
        .unwrap_or_default();
    let title = format!(
        "engine vs peers, {}, kernel {}, {}{cpus}, commit {}",
        m.date, m.kernel, m.cpu_model, m.commit
    );
    let centre = Pos::new(HPos::Center, VPos::Top);
    let x = WIDTH as i32 / 2;
    root.draw(&Text::new(
        title,
        (x, MARGIN),
        TextStyle::from((FONT, TITLE_SIZE).into_font().style(FontStyle::Bold)).pos(centre),
    ))?;
    root.draw(&Text::new(
        subtitle,
        (x, MARGIN + 34),
        TextStyle::from((FONT, SUBTITLE_SIZE).into_font())
            .color(&MUTED_TEXT)
            .pos(centre),
    ))?;

    // Legend: one swatch and name per server, in centred rows that fit the width.
    const SWATCH: i32 = 16;
    const GAP: i32 = 28;
    let px = SUBTITLE_SIZE / 1.24;
    let widths: Vec<i32> = summary
        .servers
        .iter()
        .map(|s| SWATCH + 6 + (s.len() as f64 * px * GLYPH_WIDTH) as i32)
        .collect();
    let mut rows: Vec<Vec<usize>> = vec![Vec::new()];
    let mut row_width = 0;
    for (index, width) in widths.iter().enumerate() {
        if row_width + width + GAP > WIDTH as i32 - 2 * MARGIN && !rows[rows.len() - 1].is_empty() {
            rows.push(Vec::new());
            row_width = 0;
        }
        row_width += width + GAP;
        rows.last_mut().expect("one row at least").push(index);
    }
    let colours = palette(&summary.servers);
    let left = Pos::new(HPos::Left, VPos::Center);
    for (row, servers) in rows.iter().enumerate() {
        let total: i32 = servers.iter().map(|&i| widths[i] + GAP).sum();
        let (mut x, y) = (
            x - (total - GAP) / 2,
            MARGIN + 66 + row as i32 * LEGEND_ROW_HEIGHT,
        );
        for &index in servers {
            let swatch = [(x, y - SWATCH / 2), (x + SWATCH, y + SWATCH / 2)];
            root.draw(&Rectangle::new(swatch, colours[index].filled()))?;
            root.draw(&Text::new(
                summary.servers[index].as_str(),
                (x + SWATCH + 6, y),
                TextStyle::from((FONT, SUBTITLE_SIZE).into_font()).pos(left),
            ))?;
            x += widths[index] + GAP;
        }
    }
    Ok(HEADER_HEIGHT + (rows.len() as u32 - 1) * LEGEND_ROW_HEIGHT as u32)
}

/// What a panel draws for one server in one scenario.
enum Bar {
    Failed,
    /// Relative to the scenario's best server, and the absolute stat.
    Measured {
        relative: Stat,
        absolute: Stat,
    },
}

/// One panel: a bar per server in a group per scenario, each group relative to its best server.
/// A group has bars only for the servers run in its scenario, in their legend order.
/// Labels go on `root` in pixels, so they are placed where the bars are but never clipped.
fn draw_panel(
    root: &DrawingArea<SVGBackend, Shift>,
    area: &DrawingArea<SVGBackend, Shift>,
    summary: &Summary,
    metric: &Metric,
) -> anyhow::Result<()> {
    let colours = palette(&summary.servers);
    // Per scenario: (colour, bar) of each server run in it.
    let groups: Vec<Vec<(RGBColor, Bar)>> = summary
        .scenarios
        .iter()
        .map(|scenario| {
            let stats = scenario.cells.iter().map(|cell| match cell {
                Some(Cell::Measured(m)) => Some((metric.value)(m)),
                _ => None,
            });
            let medians = stats.clone().flatten().map(|s| s.median);
            let best = if metric.higher_is_better {
                medians.fold(f64::MIN, f64::max)
            } else {
                medians.fold(f64::MAX, f64::min)
            };
            // A zero best (no CPU tick counted) would make every ratio infinite.
            let best = if best > 0.0 { best } else { 1.0 };
            scenario
                .cells
                .iter()
                .zip(stats)
                .zip(&colours)
                .filter_map(|((cell, stat), colour)| {
                    let bar = match stat {
                        Some(s) => Bar::Measured {
                            relative: Stat {
                                median: s.median / best,
                                min: s.min / best,
                                max: s.max / best,
                            },
                            absolute: s,
                        },
                        None => Bar::Failed,
                    };
                    cell.map(|_| (*colour, bar))
                })
                .collect()
        })
        .collect();
    let top = groups
        .iter()
        .flatten()
        .filter_map(|(_, bar)| match bar {
            Bar::Measured { relative, .. } => Some(relative.max),
            Bar::Failed => None,
        })
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max)
        * 1.08;

    let scenarios = summary.scenarios.len() as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(metric.title, (FONT, PANEL_TITLE_SIZE))
        .margin(MARGIN as u32)
        .x_label_area_size(X_LABEL_AREA)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(0.0..scenarios, 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(8)
        .y_label_formatter(&|v| format!("{v:.1}"))
        .y_desc(metric.y_desc)
        .axis_desc_style((FONT, AXIS_SIZE))
        .label_style((FONT, AXIS_SIZE))
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .draw()?;
    // Group separators, and the line every group is measured against.
    for i in 1..summary.scenarios.len() {
        let x = i as f64;
        chart.draw_series([PathElement::new([(x, 0.0), (x, top)], GRID)])?;
    }
    chart.draw_series([PathElement::new([(0.0, 1.0), (scenarios, 1.0)], BLACK)])?;

    // Every bar as wide as in the fullest group.
    let widest = groups.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let slot = GROUP_FILL / widest as f64;
    // Rotated to read upwards and ending at the anchor, so it hangs below it.
    let value_font = TextStyle::from((FONT, VALUE_SIZE).into_font())
        .transform(FontTransform::Rotate270)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for (g, (scenario, group)) in summary.scenarios.iter().zip(&groups).enumerate() {
        let name = if scenario.per_connection {
            format!("{} (per conn)", scenario.name)
        } else {
            scenario.name.clone()
        };
        let (cx, cy) = chart.backend_coord(&(g as f64 + 0.5, 0.0));
        root.draw(&Text::new(
            name,
            (cx, cy + VALUE_AREA + VALUE_PAD),
            TextStyle::from((FONT, SCENARIO_SIZE).into_font())
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;

        let start = g as f64 + 0.5 - slot * group.len() as f64 / 2.0;
        for (s, (fill, bar)) in group.iter().enumerate() {
            let x0 = start + s as f64 * slot;
            let (x1, xc) = (x0 + slot * BAR_FILL, x0 + slot * BAR_FILL / 2.0);
            let (px, foot) = chart.backend_coord(&(xc, 0.0));
            // The absolute median goes under the bar: in it, a whisker reaching low would cross it.
            let label_at = (px, foot + VALUE_PAD);
            let Bar::Measured { relative, absolute } = bar else {
                let style = value_font.color(&MUTED_TEXT);
                root.draw(&Text::new("failed", label_at, style))?;
                continue;
            };
            chart.draw_series([Rectangle::new(
                [(x0, 0.0), (x1, relative.median)],
                fill.filled(),
            )])?;
            let cap = slot * WHISKER_CAP;
            let whisker = [
                [(xc, relative.min), (xc, relative.max)],
                [(xc - cap, relative.min), (xc + cap, relative.min)],
                [(xc - cap, relative.max), (xc + cap, relative.max)],
            ];
            chart.draw_series(whisker.map(|line| PathElement::new(line, WHISKER)))?;
            root.draw(&Text::new(
                significant(absolute.median),
                label_at,
                value_font.clone(),
            ))?;
        }
    }
    Ok(())
}

/// Three significant digits with a k/M suffix: 1398727 -> "1.40M", 7.686 -> "7.69".
fn significant(value: f64) -> String {
    let (scaled, suffix) = match value.abs() {
        v if v >= 1e6 => (value / 1e6, "M"),
        v if v >= 1e3 => (value / 1e3, "k"),
        _ => (value, ""),
    };
    let decimals = match scaled.abs() {
        v if v >= 100.0 => 0,
        v if v >= 10.0 => 1,
        v if v >= 1.0 => 2,
        _ => 3,
    };
    format!("{scaled:.decimals$}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn significant_keeps_three_digits() {
        assert_eq!(significant(1_398_727.0), "1.40M");
        assert_eq!(significant(97_532.7), "97.5k");
        assert_eq!(significant(19_967.0), "20.0k");
        assert_eq!(significant(7.686), "7.69");
        assert_eq!(significant(0.582), "0.582");
        assert_eq!(significant(46.0), "46.0");
    }

    #[test]
    fn draws_every_server_scenario_and_failure() {
        let json = r#"{
            "machine": {"date": "2026-01-02", "kernel": "6.1", "cpu_model": "Test CPU", "commit": "abc1234"},
            "runs": [
                {"server": "engine", "scenario": "pingpong", "ok": true, "rate": 1500.0, "cpu_us_per_unit": 3.0},
                {"server": "tokio", "scenario": "pingpong", "ok": false},
                {"server": "tokio", "scenario": "4k", "ok": true, "rate": 20.0, "cpu_us_per_unit": 0.0}
            ]
        }"#;
        let svg = draw(&summarize(json).unwrap()).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("commit abc1234"), "{svg}");
        // plotters writes each text on a line of its own.
        for text in ["engine", "tokio", "pingpong", "4k", "1.50k", "failed"] {
            assert!(
                svg.contains(&format!("\n{text}\n</text>")),
                "no {text} in {svg}"
            );
        }
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }
}
