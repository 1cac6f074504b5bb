//! Rendering of the scale benchmark's results: [`ScaleReport`]s in, text out. [`markdown_table`]
//! gives one row per figure and one column per report (`docs/BENCHMARKS.md`), [`svg_plot`] two
//! panels against N (`docs/benchmarks/*.svg`). Nothing here measures, starts or reads anything:
//! the reports are plain data, built by [`super::run`] or, in the renderer's own tests
//! (`tests/scale_smoke.rs`, module `render_tests`), by hand.

// Every test binary includes this module but uses only part of it.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::time::Duration;

use super::{Bound, ScaleReport, Sharing};

fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.2} s")
    } else {
        format!("{secs:.1} s")
    }
}

fn latency_cell(latency: Option<Duration>, deadline: Duration) -> String {
    latency.map_or_else(|| format!("> {} s", deadline.as_secs()), seconds)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// `measured / limit = ratio×` of one [`Bound`].
fn bound_cell(report: &ScaleReport, bound: Bound) -> String {
    let measured = match bound {
        Bound::ColdStart => report
            .measured(bound)
            .map_or_else(|| "timed out".to_string(), seconds),
        Bound::WaitP50 | Bound::WaitMax => {
            latency_cell(report.measured(bound), report.complete_deadline)
        }
    };
    match (report.limit(bound), report.limit_ratio(bound)) {
        (Some(limit), Some(ratio)) => format!("{measured} / {} = {ratio:.2}×", seconds(limit)),
        (Some(limit), None) => format!("{measured} / {}", seconds(limit)),
        (None, _) => format!("{measured} / not measured"),
    }
}

/// The figures as a markdown table: one row per figure, one column per report.
pub fn markdown_table(reports: &[ScaleReport]) -> String {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: &str, cell: &dyn Fn(&ScaleReport) -> String| {
        rows.push((name.to_string(), reports.iter().map(cell).collect()));
    };
    row("objects (waiters) / distinct queries K", &|r| {
        format!("{} ({}) / {}", r.objects, r.waiters, r.distinct_queries)
    });
    row(
        "wait latency p50 / p99 / max (flip → Complete=True)",
        &|r| {
            let max = r.latency_quantile(1.0);
            format!(
                "{} / {} / {}",
                latency_cell(r.latency_quantile(0.5), r.complete_deadline),
                latency_cell(r.latency_quantile(0.99), r.complete_deadline),
                latency_cell(max, r.complete_deadline)
            )
        },
    );
    row(
        "waiters not Complete by the deadline after the flip",
        &|r| {
            format!(
                "{} (deadline {} s)",
                r.not_complete(),
                r.complete_deadline.as_secs()
            )
        },
    );
    row("waits read from / distinct jobs J", &|r| {
        format!("{} / {}", r.wait_source.label(), r.jobs)
    });
    row("job API calls per active interval (steady)", &|r| {
        format!(
            "{:.1} ({} in {:.0} s)",
            r.job_calls_per_interval(),
            r.steady_job_calls,
            r.steady_window.as_secs_f64()
        )
    });
    row("task-list calls per active interval (steady)", &|r| {
        format!(
            "{:.1} ({} in {:.0} s)",
            r.calls_per_interval(),
            r.steady_calls,
            r.steady_window.as_secs_f64()
        )
    });
    row(
        "cold start: controller start → all lastSyncTime",
        &|r| match r.cold_start {
            Some(took) => seconds(took),
            None => format!("timed out, {} not synced", r.not_synced),
        },
    );
    row("upstream calls during cold start", &|r| {
        r.cold_start_calls.to_string()
    });
    row("creating the N objects (32 in flight)", &|r| {
        seconds(r.create_time)
    });
    row("controller VmRSS / VmHWM after settling", &|r| {
        format!("{} / {}", mib(r.vm_rss_kib), mib(r.vm_hwm_kib))
    });
    row(
        "status writes per waiter, create → Complete (mean / max)",
        &|r| {
            let (mean, max) = r.waiter_writes_mean_max();
            format!("{mean:.2} / {max}")
        },
    );
    row("status writes of waiters after Complete (all)", &|r| {
        r.waiter_writes_after_complete.to_string()
    });
    row(
        "resourceVersion changes per waiter, whole run (mean / max)",
        &|r| {
            let (mean, max) = r.waiter_versions_mean_max();
            format!("{mean:.2} / {max}")
        },
    );
    row(
        "status writes per non-waiter, whole run (mean / max)",
        &|r| {
            let (mean, max) = r.listing_writes_mean_max();
            format!("{mean:.2} / {max}")
        },
    );
    row(
        "non-waiters' writes while their query's verdicts were pending (flip → last Complete)",
        &|r| r.listing_writes_during_verdicts.to_string(),
    );
    row(
        "non-waiters' writes after the flip, before the last Complete of any query",
        &|r| r.listing_writes_before_last_verdict.to_string(),
    );
    row(
        "non-waiters refreshed after the flip / listing the flipped task",
        &|r| {
            format!(
                "{} / {}",
                r.listing_refreshed_after_flip, r.listings_with_flipped_task
            )
        },
    );
    row(
        "idle CPU (utime+stime, % of one core)",
        &|r| match (r.idle_cpu_percent, r.idle_window) {
            (Some(percent), Some(window)) => {
                format!("{percent:.2} % over {} s", window.as_secs())
            }
            _ => "not measured".into(),
        },
    );
    row(
        "apiserver limit R: status writes per second, no operator",
        &|r| match r.limit_writes_per_second {
            Some(rate) => format!(
                "{rate:.1} ({} writes, {} in flight)",
                r.limit_writes, r.limit_in_flight
            ),
            None => "not measured".into(),
        },
    );
    row(
        "apiserver limit payload: largest waiter status (JSON)",
        &|r| {
            if r.limit_payload_bytes == 0 {
                "not measured".into()
            } else {
                format!("{} bytes", r.limit_payload_bytes)
            }
        },
    );
    for bound in Bound::ALL {
        let name = format!(
            "{}: measured / limit ({}) = ratio",
            bound.label(),
            bound.formula()
        );
        row(&name, &|r| bound_cell(r, bound));
    }
    row("controller flags (besides --upstream-sharing)", &|r| {
        if r.controller_flags.is_empty() {
            "defaults".into()
        } else {
            format!("`{}`", r.controller_flags.join(" "))
        }
    });
    let mut table = String::new();
    let _ = write!(table, "| figure |");
    for report in reports {
        let _ = write!(table, " {} |", report.title());
    }
    let _ = write!(table, "\n|---|");
    for _ in reports {
        let _ = write!(table, "---|");
    }
    table.push('\n');
    for (name, cells) in rows {
        let _ = write!(table, "| {name} |");
        for cell in cells {
            let _ = write!(table, " {cell} |");
        }
        table.push('\n');
    }
    if reports.iter().any(|r| r.watch_relists > 0) {
        table.push_str(
            "\nNote: the benchmark's own watch listed again during a run; its write counts may \
             miss writes made during the gap.\n",
        );
    }
    table
}

// ---------------------------------------------------------------------------------------------
// SVG

/// One line of a plot.
struct Series {
    name: String,
    color: &'static str,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

const SHARED_COLOR: &str = "#1f77b4";
const NAIVE_COLOR: &str = "#d62728";

/// Two panels against N: wait latency (p50 solid, p99 dashed) and upstream calls per active
/// interval, each mode in its colour. Axes in N are logarithmic when N spans a factor of 10 or
/// more; the calls axis is logarithmic when its values do.
pub fn svg_plot(reports: &[ScaleReport]) -> String {
    let by_mode = |sharing: Sharing| -> Vec<&ScaleReport> {
        let mut chosen: Vec<&ScaleReport> =
            reports.iter().filter(|r| r.sharing == sharing).collect();
        chosen.sort_by_key(|r| r.objects);
        chosen
    };
    let mut latency = Vec::new();
    let mut calls = Vec::new();
    for (sharing, color) in [
        (Sharing::Shared, SHARED_COLOR),
        (Sharing::PerObject, NAIVE_COLOR),
    ] {
        let chosen = by_mode(sharing);
        if chosen.is_empty() {
            continue;
        }
        for (quantile, dashed) in [(0.5_f64, false), (0.99, true)] {
            latency.push(Series {
                name: format!("{} p{}", sharing.label(), (quantile * 100.0).round()),
                color,
                dashed,
                points: chosen
                    .iter()
                    .filter_map(|r| {
                        r.latency_quantile(quantile)
                            .map(|l| (r.objects as f64, l.as_secs_f64()))
                    })
                    .collect(),
            });
        }
        calls.push(Series {
            name: sharing.label().to_string(),
            color,
            dashed: false,
            points: chosen
                .iter()
                .map(|r| (r.objects as f64, r.calls_per_interval()))
                .collect(),
        });
    }
    let k = reports.first().map_or(0, |r| r.distinct_queries) as f64;
    let (width, height) = (960.0, 420.0);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="{width}" height="{height}" fill="white"/>"#
    );
    panel(
        &mut svg,
        (0.0, 0.0, width / 2.0, height),
        "Wait latency: task SUCCESS → Complete=True",
        "seconds",
        &latency,
        None,
    );
    panel(
        &mut svg,
        (width / 2.0, 0.0, width / 2.0, height),
        "Upstream task-list calls per active interval",
        "calls",
        &calls,
        Some((k, format!("K = {k}"))),
    );
    svg.push_str("</svg>\n");
    svg
}

/// An axis: value → pixel, and where to put ticks.
struct Axis {
    log: bool,
    min: f64,
    max: f64,
}

impl Axis {
    /// Linear from 0 with some room above the largest value, or logarithmic when the positive
    /// values span a factor of 10 (`allow_log`): then whole decades when `decades` (readable
    /// ticks), else just some room on both sides.
    fn new(values: &[f64], allow_log: bool, decades: bool) -> Self {
        let positive: Vec<f64> = values.iter().copied().filter(|v| *v > 0.0).collect();
        let lo = positive.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(0.0, f64::max);
        if allow_log && !positive.is_empty() && hi / lo >= 10.0 {
            let (min, max) = if decades {
                (
                    10f64.powf((lo / 1.2).log10().floor()),
                    10f64.powf((hi * 1.2).log10().ceil()),
                )
            } else {
                (lo / 1.5, hi * 1.5)
            };
            return Self {
                log: true,
                min,
                max,
            };
        }
        if hi <= 0.0 {
            return Self {
                log: false,
                min: 0.0,
                max: 1.0,
            };
        }
        let step = nice_step(hi * 1.1 / 5.0);
        Self {
            log: false,
            min: 0.0,
            max: (hi * 1.1 / step).ceil() * step,
        }
    }

    /// 0..1 along the axis.
    fn fraction(&self, value: f64) -> f64 {
        if self.log {
            let value = value.max(self.min);
            (value.log10() - self.min.log10()) / (self.max.log10() - self.min.log10())
        } else {
            (value - self.min) / (self.max - self.min)
        }
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (lo, hi) = (
                (self.min.log10() - 1e-9).ceil() as i32,
                (self.max.log10() + 1e-9).floor() as i32,
            );
            (lo..=hi).map(|e| 10f64.powi(e)).collect()
        } else {
            let step = nice_step((self.max - self.min) / 5.0);
            let count = ((self.max - self.min) / step).round() as usize;
            (0..=count).map(|i| self.min + step * i as f64).collect()
        }
    }
}

fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let scaled = raw / magnitude;
    let nice = if scaled <= 1.0 {
        1.0
    } else if scaled <= 2.0 {
        2.0
    } else if scaled <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

fn number(value: f64) -> String {
    if value >= 1000.0 && value % 1000.0 == 0.0 {
        format!("{}k", value / 1000.0)
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn panel(
    svg: &mut String,
    (x0, y0, width, height): (f64, f64, f64, f64),
    title: &str,
    y_label: &str,
    series: &[Series],
    reference: Option<(f64, String)>,
) {
    let (left, right, top, bottom) = (x0 + 60.0, x0 + width - 20.0, y0 + 40.0, y0 + height - 90.0);
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    let mut ys: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .collect();
    if let Some((value, _)) = &reference {
        ys.push(*value);
    }
    let x_axis = Axis::new(&xs, true, false);
    let y_axis = Axis::new(&ys, true, true);
    let px = |x: f64| left + x_axis.fraction(x) * (right - left);
    let py = |y: f64| bottom - y_axis.fraction(y) * (bottom - top);

    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"#,
        (left + right) / 2.0,
        y0 + 22.0,
        escape(title)
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{left}" y="{top}" width="{}" height="{}" fill="none" stroke="#888"/>"##,
        right - left,
        bottom - top
    );
    // Grid and tick labels.
    let mut x_ticks: Vec<f64> = xs.clone();
    x_ticks.sort_by(f64::total_cmp);
    x_ticks.dedup();
    if x_ticks.len() < 2 {
        x_ticks = x_axis.ticks();
    }
    for x in x_ticks {
        let at = px(x);
        let _ = writeln!(
            svg,
            r##"<line x1="{at:.1}" y1="{top}" x2="{at:.1}" y2="{bottom}" stroke="#eee"/><text x="{at:.1}" y="{}" text-anchor="middle">{}</text>"##,
            bottom + 16.0,
            number(x)
        );
    }
    for y in y_axis.ticks() {
        let at = py(y);
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{at:.1}" x2="{right}" y2="{at:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            left - 6.0,
            at + 4.0,
            number(y)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">N (objects{})</text>"#,
        (left + right) / 2.0,
        bottom + 34.0,
        if x_axis.log { ", log scale" } else { "" }
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle" transform="rotate(-90 {} {})">{}{}</text>"#,
        x0 + 16.0,
        (top + bottom) / 2.0,
        x0 + 16.0,
        (top + bottom) / 2.0,
        escape(y_label),
        if y_axis.log { " (log scale)" } else { "" }
    );
    if let Some((value, label)) = &reference {
        let at = py(*value);
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{at:.1}" x2="{right}" y2="{at:.1}" stroke="#555" stroke-dasharray="2,3"/><text x="{}" y="{:.1}" text-anchor="end" fill="#555">{}</text>"##,
            right - 4.0,
            at - 4.0,
            escape(label)
        );
    }
    for line in series {
        let dash = if line.dashed {
            r#" stroke-dasharray="6,4""#
        } else {
            ""
        };
        let points: Vec<String> = line
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        if points.len() > 1 {
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
                points.join(" "),
                line.color
            );
        }
        for &(x, y) in &line.points {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{}"><title>{}: N={} → {}</title></circle>"#,
                px(x),
                py(y),
                line.color,
                escape(&line.name),
                number(x),
                number((y * 10.0).round() / 10.0)
            );
        }
    }
    // Legend, below the axis label.
    let mut at = left;
    for line in series {
        let dash = if line.dashed {
            r#" stroke-dasharray="6,4""#
        } else {
            ""
        };
        let y = bottom + 58.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{at:.1}" y1="{y}" x2="{:.1}" y2="{y}" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="{}">{}</text>"#,
            at + 24.0,
            line.color,
            at + 28.0,
            y + 4.0,
            escape(&line.name)
        );
        at += 36.0 + 7.0 * line.name.len() as f64;
    }
}
