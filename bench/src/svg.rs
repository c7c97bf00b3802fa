//! A hand-written SVG line plot: side-by-side panels sharing a logarithmic y axis, a linear x axis
//! with named ticks, and one legend for all panels.

use std::fmt::Write as _;

/// A whole figure.
#[derive(Clone, Copy, Debug)]
pub struct Plot<'a> {
    /// Top line.
    pub title: &'a str,
    /// Second line, smaller.
    pub subtitle: &'a str,
    /// Under every panel's x axis.
    pub x_label: &'a str,
    /// Beside the y axis of the first panel.
    pub y_label: &'a str,
    /// Tick positions and labels of the x axis; they also fix its range.
    pub x_ticks: &'a [(f64, String)],
    /// The panels, left to right.
    pub panels: &'a [Panel],
}

/// One panel.
#[derive(Clone, Debug)]
pub struct Panel {
    /// Above the panel.
    pub title: String,
    /// Its lines.
    pub series: Vec<Series>,
}

/// One line.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Index into the palette; the same index is the same colour in every panel.
    pub color: usize,
    /// Points (x, y); y must be positive (log scale), other points are skipped.
    pub points: Vec<(f64, f64)>,
}

/// Renders the figure as a standalone SVG document.
pub fn render(plot: &Plot<'_>) -> String {
    let panel_count = plot.panels.len().max(1);
    let width = LEFT + panel_count as f64 * (PANEL_WIDTH + GAP) - GAP + RIGHT;
    let mut legend: Vec<(usize, &str)> = Vec::new();
    for series in plot.panels.iter().flat_map(|panel| &panel.series) {
        if !legend
            .iter()
            .any(|(color, label)| *color == series.color && *label == series.label)
        {
            legend.push((series.color, &series.label));
        }
    }
    let legend_top = TOP + PANEL_HEIGHT + 56.0;
    let height = legend_top + LEGEND_LINE * legend.len() as f64 + 16.0;

    let (y_low, y_high) = y_range(plot.panels);
    let (x_low, x_high) = x_range(plot.x_ticks);
    let x_of = |x: f64| (x - x_low) / (x_high - x_low) * PANEL_WIDTH;
    let y_of = |y: f64| PANEL_HEIGHT - (y.log10() - y_low) / (y_high - y_low) * PANEL_HEIGHT;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="12">
<rect x="0" y="0" width="{width:.0}" height="{height:.0}" fill="white"/>
<text x="{LEFT}" y="22" font-size="16" font-weight="bold">{}</text>
<text x="{LEFT}" y="40" fill="#555">{}</text>"##,
        escape(plot.title),
        escape(plot.subtitle)
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate(18,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + PANEL_HEIGHT / 2.0,
        escape(plot.y_label)
    );
    for (index, panel) in plot.panels.iter().enumerate() {
        let left = LEFT + index as f64 * (PANEL_WIDTH + GAP);
        let _ = writeln!(svg, r#"<g transform="translate({left:.1},{TOP:.1})">"#);
        let _ = writeln!(
            svg,
            r##"<rect x="0" y="0" width="{PANEL_WIDTH}" height="{PANEL_HEIGHT}" fill="none" stroke="#333"/>
<text x="{:.1}" y="-8" text-anchor="middle" font-weight="bold">{}</text>"##,
            PANEL_WIDTH / 2.0,
            escape(&panel.title)
        );
        // Decades: a labelled grid line each; 2x and 5x: lighter unlabelled lines.
        let mut decade = y_low.floor() as i32;
        while f64::from(decade) <= y_high {
            for (factor, major) in [(1.0, true), (2.0, false), (5.0, false)] {
                let value = factor * 10_f64.powi(decade);
                let exponent = value.log10();
                if exponent < y_low - 1e-9 || exponent > y_high + 1e-9 {
                    continue;
                }
                let y = y_of(value);
                let stroke = if major { "#bbb" } else { "#e6e6e6" };
                let _ = writeln!(
                    svg,
                    r#"<line x1="0" y1="{y:.1}" x2="{PANEL_WIDTH}" y2="{y:.1}" stroke="{stroke}"/>"#
                );
                if major && index == 0 {
                    let _ = writeln!(
                        svg,
                        r#"<text x="-6" y="{:.1}" text-anchor="end">{}</text>"#,
                        y + 4.0,
                        axis_number(value)
                    );
                }
            }
            decade += 1;
        }
        for (x, label) in plot.x_ticks {
            let x = x_of(*x);
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" y1="0" x2="{x:.1}" y2="{PANEL_HEIGHT}" stroke="#e6e6e6"/>
<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                PANEL_HEIGHT + 16.0,
                escape(label)
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            PANEL_WIDTH / 2.0,
            PANEL_HEIGHT + 34.0,
            escape(plot.x_label)
        );
        for series in &panel.series {
            let color = PALETTE[series.color % PALETTE.len()];
            let points: Vec<(f64, f64)> = series
                .points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite() && *y > 0.0)
                .map(|&(x, y)| (x_of(x), y_of(y)))
                .collect();
            let path: Vec<String> = points
                .iter()
                .map(|(x, y)| format!("{x:.1},{y:.1}"))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"><title>{}</title></polyline>"#,
                path.join(" "),
                escape(&series.label)
            );
            for (x, y) in points {
                let _ = writeln!(
                    svg,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{color}"/>"#
                );
            }
        }
        svg.push_str("</g>\n");
    }
    for (line, (color, label)) in legend.iter().enumerate() {
        let y = legend_top + line as f64 * LEGEND_LINE;
        let color = PALETTE[color % PALETTE.len()];
        let _ = writeln!(
            svg,
            r#"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{color}" stroke-width="3"/>
<text x="{:.1}" y="{:.1}">{}</text>"#,
            LEFT + 24.0,
            LEFT + 32.0,
            y + 4.0,
            escape(label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The y range in log10 units, whole decades around every positive value (1..1000 if none).
fn y_range(panels: &[Panel]) -> (f64, f64) {
    let values = panels
        .iter()
        .flat_map(|panel| &panel.series)
        .flat_map(|series| &series.points)
        .map(|&(_, y)| y)
        .filter(|y| y.is_finite() && *y > 0.0);
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), y| {
        (low.min(y.log10()), high.max(y.log10()))
    });
    if low > high {
        return (0.0, 3.0);
    }
    let (low, high) = (low.floor(), high.ceil());
    if high - low < 1.0 {
        (low, low + 1.0)
    } else {
        (low, high)
    }
}

fn x_range(ticks: &[(f64, String)]) -> (f64, f64) {
    let low = ticks.iter().map(|(x, _)| *x).fold(f64::INFINITY, f64::min);
    let high = ticks
        .iter()
        .map(|(x, _)| *x)
        .fold(f64::NEG_INFINITY, f64::max);
    if low.is_finite() && high > low {
        (low, high)
    } else {
        (0.0, 1.0)
    }
}

/// `1`, `10`, `100`, `1,000`, `0.1` without float noise.
fn axis_number(value: f64) -> String {
    if value >= 1.0 {
        crate::table::thousands(value.round() as u64)
    } else {
        format!("{value}")
    }
}

/// Escapes text for XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            _ => escaped.push(character),
        }
    }
    escaped
}

const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 76.0;
const GAP: f64 = 30.0;
const PANEL_WIDTH: f64 = 340.0;
const PANEL_HEIGHT: f64 = 300.0;
const LEGEND_LINE: f64 = 18.0;
/// Colour-blind-friendly (Okabe–Ito) palette.
const PALETTE: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
];

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Checks that every element is closed in order, attributes are quoted in pairs, and the
    /// root is `<svg>`.
    pub(crate) fn assert_well_formed(text: &str) {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = text;
        let mut saw_root = false;
        while let Some(open) = rest.find('<') {
            let after = &rest[open + 1..];
            let close = after.find('>').expect("unterminated tag");
            let tag = &after[..close];
            rest = &after[close + 1..];
            assert!(!tag.contains('<'), "'<' inside a tag: {tag}");
            if tag.starts_with('?') || tag.starts_with('!') {
                continue;
            }
            assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes: {tag}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(
                    stack.pop().as_deref(),
                    Some(name.trim()),
                    "mismatched </{name}>"
                );
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().expect("empty tag").to_owned();
                if stack.is_empty() {
                    assert!(!saw_root, "second root element <{name}>");
                    assert_eq!(name, "svg");
                    saw_root = true;
                }
                stack.push(name);
            }
        }
        assert!(saw_root, "no <svg> root");
        assert!(stack.is_empty(), "unclosed elements: {stack:?}");
        assert!(!rest.contains('>'), "stray '>' after the last tag");
    }

    #[test]
    fn render_escapes_text_and_balances_tags() {
        let panels = vec![Panel {
            title: "32 B".to_owned(),
            series: vec![
                Series {
                    label: "a <b> & \"c\"".to_owned(),
                    color: 0,
                    points: vec![(0.3, 4.0), (5.0, 90.0)],
                },
                Series {
                    label: "zero".to_owned(),
                    color: 9,
                    points: vec![(1.0, 0.0), (2.0, 2.0)],
                },
            ],
        }];
        let ticks = vec![(0.3, "50".to_owned()), (5.0, "max".to_owned())];
        let text = render(&Plot {
            title: "t & t",
            subtitle: "s",
            x_label: "percentile",
            y_label: "us",
            x_ticks: &ticks,
            panels: &panels,
        });
        assert_well_formed(&text);
        assert!(text.contains("a &lt;b&gt; &amp; &quot;c&quot;"));
        assert!(
            text.contains(">100</text>") && text.contains(">1</text>"),
            "{text}"
        );
    }

    #[test]
    fn render_handles_no_data() {
        let text = render(&Plot {
            title: "empty",
            subtitle: "",
            x_label: "x",
            y_label: "y",
            x_ticks: &[],
            panels: &[],
        });
        assert_well_formed(&text);
    }

    #[test]
    fn y_range_covers_whole_decades() {
        let panel = |values: &[f64]| Panel {
            title: String::new(),
            series: vec![Series {
                label: String::new(),
                color: 0,
                points: values.iter().map(|&y| (0.0, y)).collect(),
            }],
        };
        assert_eq!(y_range(&[panel(&[3.0, 250.0])]), (0.0, 3.0));
        assert_eq!(y_range(&[panel(&[10.0])]), (1.0, 2.0));
        assert_eq!(y_range(&[]), (0.0, 3.0));
    }
}
