//! Metric names in PromQL expressions and in the Prometheus text exposition format, so the
//! Grafana dashboard (tests/observability.rs) and the chart's PrometheusRule (tests/chart.rs)
//! are checked against what the operator really exposes. Include with `mod promql;`.
//!
//! This is not a PromQL parser: it knows enough of the grammar the dashboard and the rules use
//! (selectors, range and subquery brackets, function calls, aggregation modifiers, binary
//! operators and their matching modifiers, string and number literals, Grafana variables).

// Every test binary that includes this module uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

/// The prefix of every metric the operator registers.
pub const OPERATOR_PREFIX: &str = "dcs_task_operator_";

/// Series Prometheus writes itself for every scrape target, usable by alerts on the operator.
pub const SCRAPE_SERIES: &[&str] = &["up", "scrape_samples_scraped"];

/// PromQL words that look like identifiers but name no metric.
const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
    "inf",
    "nan",
];

static STRING: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'"#).unwrap());
static MATCHERS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\{[^{}]*\}").unwrap());
static RANGE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\[[^\[\]]*\]").unwrap());
static LABEL_LIST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)").unwrap()
});
static VARIABLE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\$\{?\w+\}?").unwrap());
static IDENTIFIER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[a-zA-Z_:][\w:]*").unwrap());
static LABEL_VALUES: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*label_values\(\s*([a-zA-Z_:][\w:]*)").unwrap());

/// The metric names a PromQL expression selects (`sum(rate(x_total{a="b"}[5m])) by (c)` gives
/// `x_total`).
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let text = STRING.replace_all(expr, "\"\"");
    let text = VARIABLE.replace_all(&text, "");
    let text = MATCHERS.replace_all(&text, " ");
    let mut text = text.into_owned();
    // Nested brackets (subqueries) unwrap from the inside out.
    while RANGE.is_match(&text) {
        text = RANGE.replace_all(&text, " ").into_owned();
    }
    let text = LABEL_LIST.replace_all(&text, " ");
    IDENTIFIER
        .find_iter(&text)
        // Not the tail of a number or duration (`0.5e3`, `5m`).
        .filter(|word| {
            !text[..word.start()]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
        })
        // Not a function or aggregation (`rate(`, `sum (`).
        .filter(|word| !text[word.end()..].trim_start().starts_with('('))
        .map(|word| word.as_str().to_string())
        .filter(|word| !KEYWORDS.contains(&word.to_lowercase().as_str()))
        .collect()
}

/// The metric a Grafana `label_values(metric, label)` variable query reads, if it is one.
pub fn label_values_metric(query: &str) -> Option<String> {
    LABEL_VALUES
        .captures(query)
        .map(|captures| captures[1].to_string())
}

/// The series names a `/metrics` text (Prometheus or OpenMetrics format) makes queryable: the
/// families' `# TYPE` lines (a counter `x` is queried as `x_total`, a histogram `x` as
/// `x_bucket`, `x_sum` and `x_count`), so a family counts before its first sample, plus the name
/// of every sample line.
pub fn exposed_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" | "gaugehistogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["", "_sum", "_count"],
                _ => &[""],
            };
            for suffix in suffixes {
                // Prometheus-format counters already end in `_total`.
                if name.ends_with(suffix) && !suffix.is_empty() {
                    names.insert(name.to_string());
                } else {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

#[test]
fn extraction_finds_metrics_and_skips_functions_labels_and_variables() {
    let expr = r#"histogram_quantile(0.9, sum by (le) (rate(a_bucket{job=~"$job", x="y{z}"}[$__rate_interval])))
        / on (job) group_left (instance) sum without (pod) (b_total offset 5m) > bool 0
        or absent(up{job="op"}) unless max_over_time(c[10m:1m])"#;
    let names: Vec<String> = metric_names(expr).into_iter().collect();
    assert_eq!(names, ["a_bucket", "b_total", "c", "up"]);
    assert_eq!(
        label_values_metric("label_values(x_total{job=~\"$job\"}, instance)").as_deref(),
        Some("x_total")
    );
}

#[test]
fn exposition_names_cover_families_without_samples() {
    let text =
        "# TYPE a counter\n# TYPE h histogram\nh_bucket{le=\"1\"} 0\n# TYPE g gauge\n# EOF\n";
    let names: Vec<String> = exposed_names(text).into_iter().collect();
    assert_eq!(names, ["a_total", "g", "h_bucket", "h_count", "h_sum"]);
}
