//! CI smoke of the scale benchmark (`benches/scale.rs`): a small N in the shared and the naive
//! (`--upstream-sharing=per-object`) mode side by side, asserting ratios and counts only, never
//! absolute times, so a loaded machine slows it down without failing it.
//!
//! Both runs go in parallel (own namespace, simulator and controller each) to stay within
//! about a minute; see `tests/support/scale/mod.rs` for what a run does.
//!
//! The renderer's own tests (`tests/support/scale/render.rs`: fixed reports in, table and plot
//! out) are here too, in [`render_tests`]; they need no control plane.

mod support;

use std::thread;
use std::time::Duration;

use support::scale::{self, ScaleConfig, ScaleReport, Sharing, render};

/// N: objects per run, half of them waiting.
const OBJECTS: usize = 60;
/// K: distinct upstream queries among them.
const QUERIES: usize = 3;
/// Upstream calls per active interval the shared mode may make beyond K: an interval is
/// counted on the simulator's side, and a feed's jittered poll (±10 %) can fall on either side
/// of the window's edges.
const SHARED_CALL_SLACK: f64 = 1.0;
/// The naive mode must make at least this many times the shared mode's calls...
const NAIVE_OVER_SHARED: f64 = 5.0;
/// ...and at least this share of N per active interval (every object polls alone).
const NAIVE_SHARE_OF_OBJECTS: f64 = 0.33;
/// Status writes a waiter may cause from creation to `Complete=True`: its first answer
/// (`Pending`, with no separate "first poll in progress" write when the answer comes within
/// 2 s) and the `Complete` one.
const MAX_STATUS_WRITES_PER_WAITER: u32 = 2;

fn config(sharing: Sharing) -> ScaleConfig {
    let mut config = ScaleConfig::benchmark(OBJECTS, sharing);
    config.distinct_queries = QUERIES;
    // The shortest active interval the schema allows times 2.5: three count intervals in 15 s.
    config.active_interval = "5s";
    config.steady_intervals = 3;
    // Generous limits: they only bound a hang; nothing asserts how long anything took.
    config.complete_deadline = Duration::from_secs(90);
    config.cold_start_timeout = Duration::from_secs(90);
    config.settle = Duration::from_secs(1);
    config.idle_window = None;
    config
}

#[test]
fn shared_polling_costs_one_call_per_distinct_query_and_every_waiter_completes() {
    let (shared, naive) = thread::scope(|scope| {
        // Each run spawns its processes from its own thread, which lives until the run ends.
        let shared = scope.spawn(|| scale::run(&config(Sharing::Shared)));
        let naive = scope.spawn(|| scale::run(&config(Sharing::PerObject)));
        let join = |handle: thread::ScopedJoinHandle<'_, ScaleReport>| {
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        };
        (join(shared), join(naive))
    });
    let reports = [shared, naive];
    let table = render::markdown_table(&reports);
    eprintln!("{table}");
    let [shared, naive] = &reports;

    for report in &reports {
        let title = report.title();
        assert!(
            report.cold_start.is_some(),
            "{title}: {} objects never synced\n{table}",
            report.not_synced
        );
        assert_eq!(
            report.complete_before_flip, 0,
            "{title}: waiters were Complete before the task succeeded\n{table}"
        );
        assert_eq!(
            report.not_complete(),
            0,
            "{title}: waiters not Complete after the task succeeded\n{table}"
        );
        let (_, max_writes) = report.waiter_writes_mean_max();
        assert!(
            max_writes <= MAX_STATUS_WRITES_PER_WAITER,
            "{title}: a waiter's status was written {max_writes} times from creation to Complete \
             (at most {MAX_STATUS_WRITES_PER_WAITER})\n{table}"
        );
        assert_eq!(
            report.waiter_writes_after_complete, 0,
            "{title}: a resolved wait is final, yet its status was written again\n{table}"
        );
    }

    let (shared_calls, naive_calls) = (shared.calls_per_interval(), naive.calls_per_interval());
    assert!(
        shared.steady_calls > 0,
        "the shared mode made no upstream call in the steady window\n{table}"
    );
    assert!(
        shared_calls <= QUERIES as f64 + SHARED_CALL_SLACK,
        "shared mode: {shared_calls:.1} upstream calls per active interval for K = {QUERIES} \
         distinct queries (at most K + {SHARED_CALL_SLACK})\n{table}"
    );
    // The waiters read the job API (the default for jobId): one job feed per distinct job.
    let job_calls = shared.job_calls_per_interval();
    assert!(
        shared.steady_job_calls > 0 && job_calls <= shared.jobs as f64 + SHARED_CALL_SLACK,
        "shared mode: {job_calls:.1} job API calls per active interval for J = {} distinct jobs \
         (at most J + {SHARED_CALL_SLACK})\n{table}",
        shared.jobs
    );
    assert!(
        naive_calls >= NAIVE_OVER_SHARED * shared_calls,
        "naive mode: {naive_calls:.1} upstream calls per active interval, not {NAIVE_OVER_SHARED}x \
         the shared mode's {shared_calls:.1}\n{table}"
    );
    assert!(
        naive_calls >= NAIVE_SHARE_OF_OBJECTS * OBJECTS as f64,
        "naive mode: {naive_calls:.1} upstream calls per active interval for N = {OBJECTS} \
         objects polling alone\n{table}"
    );

    // The plot renders whatever was measured.
    let svg = render::svg_plot(&reports);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("<circle"), "the plot shows no point:\n{svg}");
}

/// The renderer from fixed reports: the rows, columns, axes, legend and points it must show.
mod render_tests {
    use std::time::Duration;

    use crate::support::scale::render::{markdown_table, svg_plot};
    use crate::support::scale::{ScaleReport, Sharing, WaitSource, naive_rate_flags};

    /// A report of `objects` objects, one waiter per wait latency (milliseconds; `None`: not
    /// complete), `steady_calls` task-list calls in a 30 s window of 10 s active intervals.
    fn report(
        sharing: Sharing,
        objects: usize,
        steady_calls: u64,
        latencies_ms: &[Option<u64>],
    ) -> ScaleReport {
        let waiters = latencies_ms.len();
        ScaleReport {
            sharing,
            wait_source: WaitSource::Job,
            jobs: 1,
            steady_job_calls: 3,
            objects,
            waiters,
            distinct_queries: 10,
            active_interval: Duration::from_secs(10),
            controller_flags: match sharing {
                Sharing::Shared => Vec::new(),
                Sharing::PerObject => naive_rate_flags(),
            },
            create_time: Duration::from_millis(1_500),
            cold_start: Some(Duration::from_millis(2_500)),
            not_synced: 0,
            cold_start_calls: 10,
            steady_calls,
            steady_window: Duration::from_secs(30),
            complete_before_flip: 0,
            wait_latencies: latencies_ms
                .iter()
                .map(|ms| ms.map(Duration::from_millis))
                .collect(),
            complete_deadline: Duration::from_secs(75),
            waiter_writes: vec![2; waiters],
            waiter_writes_after_complete: 0,
            waiter_versions: vec![3; waiters],
            listing_writes: vec![1; objects - waiters],
            vm_rss_kib: 51_200,
            vm_hwm_kib: 65_536,
            idle_cpu_percent: Some(0.25),
            idle_window: Some(Duration::from_secs(60)),
            watch_relists: 0,
        }
    }

    /// The table's row named `figure`, whole.
    fn row<'a>(table: &'a str, figure: &str) -> &'a str {
        table
            .lines()
            .find(|line| line.starts_with(&format!("| {figure} |")))
            .unwrap_or_else(|| panic!("no row {figure:?} in\n{table}"))
    }

    #[test]
    fn the_table_has_a_column_per_report_and_a_row_per_figure() {
        let reports = [
            report(Sharing::Shared, 100, 30, &[Some(500), Some(1_200)]),
            report(Sharing::PerObject, 100, 3_000, &[Some(800), None]),
        ];
        let table = markdown_table(&reports);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "| figure | shared N=100 (job API) | naive N=100 (job API) |"
        );
        assert_eq!(lines[1], "|---|---|---|");
        assert_eq!(lines.len(), 2 + 16, "{table}");
        for line in &lines[2..] {
            assert_eq!(line.matches(" | ").count(), 2, "three cells: {line}");
        }
        for (figure, cells) in [
            (
                "objects (waiters) / distinct queries K",
                "100 (2) / 10 | 100 (2) / 10",
            ),
            (
                "wait latency p50 / p99 / max (flip → Complete=True)",
                "0.50 s / 1.20 s / 1.20 s | 0.80 s / > 75 s / > 75 s",
            ),
            ("waiters not Complete 75 s after the flip", "0 | 1"),
            (
                "waits read from / distinct jobs J",
                "job API / 1 | job API / 1",
            ),
            (
                "job API calls per active interval (steady)",
                "1.0 (3 in 30 s) | 1.0 (3 in 30 s)",
            ),
            (
                "task-list calls per active interval (steady)",
                "10.0 (30 in 30 s) | 1000.0 (3000 in 30 s)",
            ),
            (
                "cold start: controller start → all lastSyncTime",
                "2.50 s | 2.50 s",
            ),
            ("upstream calls during cold start", "10 | 10"),
            ("creating the N objects (32 in flight)", "1.50 s | 1.50 s"),
            (
                "controller VmRSS / VmHWM after settling",
                "50.0 MiB / 64.0 MiB | 50.0 MiB / 64.0 MiB",
            ),
            (
                "status writes per waiter, create → Complete (mean / max)",
                "2.00 / 2 | 2.00 / 2",
            ),
            ("status writes of waiters after Complete (all)", "0 | 0"),
            (
                "resourceVersion changes per waiter, whole run (mean / max)",
                "3.00 / 3 | 3.00 / 3",
            ),
            (
                "status writes per non-waiter, whole run (mean / max)",
                "1.00 / 1 | 1.00 / 1",
            ),
            (
                "idle CPU (utime+stime, % of one core)",
                "0.25 % over 60 s | 0.25 % over 60 s",
            ),
            (
                "controller flags (besides --upstream-sharing)",
                "defaults | `--rate-limit 100000 --account-rate-limit 100000`",
            ),
        ] {
            assert_eq!(row(&table, figure), format!("| {figure} | {cells} |"));
        }
        assert!(!table.contains("Note:"), "{table}");
    }

    #[test]
    fn the_table_says_what_was_not_measured_and_when_its_watch_listed_again() {
        let mut unfinished = report(Sharing::Shared, 20, 30, &[Some(900)]);
        unfinished.cold_start = None;
        unfinished.not_synced = 7;
        unfinished.idle_cpu_percent = None;
        unfinished.idle_window = None;
        unfinished.complete_deadline = Duration::from_secs(90);
        unfinished.watch_relists = 1;
        let table = markdown_table(&[unfinished]);
        assert_eq!(
            row(&table, "cold start: controller start → all lastSyncTime"),
            "| cold start: controller start → all lastSyncTime | timed out, 7 not synced |"
        );
        assert_eq!(
            row(&table, "waiters not Complete 75 s after the flip"),
            "| waiters not Complete 75 s after the flip | 0 (deadline 90 s) |"
        );
        assert_eq!(
            row(&table, "idle CPU (utime+stime, % of one core)"),
            "| idle CPU (utime+stime, % of one core) | not measured |"
        );
        assert!(
            table.contains("Note: the benchmark's own watch listed again"),
            "{table}"
        );
    }

    #[test]
    fn the_plot_draws_latency_and_calls_against_n_for_both_modes() {
        // Shared: 10 calls per interval whatever N; naive: N calls per interval. The naive run
        // at N = 100 has a waiter that never completed, so its p99 has no point there.
        let reports = [
            report(Sharing::Shared, 1_000, 30, &[Some(400), Some(2_000)]),
            report(Sharing::Shared, 10, 30, &[Some(300), Some(600)]),
            report(Sharing::PerObject, 100, 300, &[Some(1_000), None]),
            report(Sharing::Shared, 100, 30, &[Some(350), Some(900)]),
            report(Sharing::PerObject, 10, 30, &[Some(500), Some(700)]),
        ];
        let svg = svg_plot(&reports);
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{svg}"
        );
        assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
        for text in [
            ">Wait latency: task SUCCESS → Complete=True</text>",
            ">Upstream task-list calls per active interval</text>",
            // Axis labels: N spans a factor of 100 (log), latency stays linear, calls span 10x.
            ">seconds</text>",
            ">calls (log scale)</text>",
            ">K = 10</text>",
            // N's ticks are the measured sizes.
            ">10</text>",
            ">100</text>",
            ">1k</text>",
            // Legend.
            ">shared p50</text>",
            ">shared p99</text>",
            ">naive p50</text>",
            ">naive p99</text>",
            ">shared</text>",
            ">naive</text>",
            // A point's tooltip.
            "<title>naive: N=100 → 100</title>",
            "<title>shared p99: N=1k → 2</title>",
        ] {
            assert!(svg.contains(text), "no {text:?} in\n{svg}");
        }
        assert_eq!(svg.matches(">N (objects, log scale)</text>").count(), 2);
        // Latency: 3 + 3 shared, 2 + 1 naive points; calls: 3 shared, 2 naive.
        assert_eq!(svg.matches("<circle").count(), 14, "{svg}");
        // A line for every series of two points or more (not naive p99).
        assert_eq!(svg.matches("<polyline").count(), 5, "{svg}");
    }

    #[test]
    fn the_plot_of_one_size_has_linear_axes_and_no_reports_render_empty() {
        let svg = svg_plot(&[report(Sharing::Shared, 50, 30, &[Some(500)])]);
        assert_eq!(svg.matches(">N (objects)</text>").count(), 2, "{svg}");
        assert!(!svg.contains("log scale"), "{svg}");
        assert_eq!(svg.matches("<circle").count(), 3, "{svg}");
        assert!(!svg.contains("<polyline"), "{svg}");

        let empty = svg_plot(&[]);
        assert!(empty.starts_with("<svg") && empty.trim_end().ends_with("</svg>"));
        assert!(!empty.contains("<circle"), "{empty}");
        let table = markdown_table(&[]);
        assert!(table.starts_with("| figure |\n|---|\n"), "{table}");
        assert!(!table.contains("Note:"), "{table}");
    }
}
