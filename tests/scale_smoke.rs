//! CI smoke of the scale benchmark (`benches/scale.rs`): a small N in the shared and the naive
//! (`--upstream-sharing=per-object`) mode side by side, asserting ratios and counts only, never
//! absolute times, so a loaded machine slows it down without failing it.
//!
//! Both runs go in parallel (own namespace, simulator and controller each) to stay within
//! about a minute; see `tests/support/scale/mod.rs` for what a run does. Sharing the apiserver,
//! they skip the apiserver-limit phase, which needs the apiserver to itself.
//!
//! [`waiter_verdicts_are_written_before_settled_refreshes`] plays one larger run (task-list
//! waits) and asserts the order of its writes (no refresh of a non-waiter while verdicts of its
//! answer are pending) and the longest wait's ratio to the apiserver's own limit, measured in
//! the same run. The two tests take turns ([`SCALE_RUNS`]): each measures the apiserver, so
//! neither may run while the other loads it.
//!
//! The renderer's own tests (`tests/support/scale/render.rs`: fixed reports in, table and plot
//! out) are here too, in [`render_tests`]; they need no control plane.

mod support;

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use support::scale::{self, Bound, ScaleConfig, ScaleReport, Sharing, WaitSource, render};

/// Held by each test that runs the scale scenario: one at a time on the shared apiserver.
static SCALE_RUNS: Mutex<()> = Mutex::new(());

fn scale_turn() -> MutexGuard<'static, ()> {
    // A failed test poisons it; the next one still gets its turn.
    SCALE_RUNS.lock().unwrap_or_else(PoisonError::into_inner)
}

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

/// N and K of the ordering run: 100 waiters, whose verdicts take the apiserver a while, and
/// 100 non-waiters that read the same two answers.
const ORDERING_OBJECTS: usize = 200;
const ORDERING_QUERIES: usize = 2;
/// The longest wait may take at most this many times its limit, `activeInterval` + W / R.
const MAX_WAIT_OVER_LIMIT: f64 = 3.0;

/// The side-by-side runs: N = [`OBJECTS`], K = [`QUERIES`], no limit phase (they share the
/// apiserver with each other).
fn config(sharing: Sharing) -> ScaleConfig {
    let mut config = sized(OBJECTS, QUERIES, sharing);
    config.limit_phase = false;
    config
}

/// The smoke's scenario at `objects` and `queries`.
fn sized(objects: usize, queries: usize, sharing: Sharing) -> ScaleConfig {
    let mut config = ScaleConfig::benchmark(objects, sharing);
    config.distinct_queries = queries;
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
    let _turn = scale_turn();
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

#[test]
fn waiter_verdicts_are_written_before_settled_refreshes() {
    let _turn = scale_turn();
    let mut config = sized(ORDERING_OBJECTS, ORDERING_QUERIES, Sharing::Shared);
    config.wait_source = WaitSource::TaskList;
    let report = scale::run(&config);
    let table = render::markdown_table(std::slice::from_ref(&report));
    eprintln!("{table}");
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
    // Every non-waiter lists the benchmark's task (it is the newest), so every one of them has
    // a refresh to write once the task succeeded.
    let listings = report.objects - report.waiters;
    assert_eq!(
        report.listings_with_flipped_task, listings,
        "{title}: non-waiters whose list showed the running task\n{table}"
    );
    assert_eq!(
        report.listing_refreshed_after_flip, report.listings_with_flipped_task,
        "{title}: non-waiters not written with the task's SUCCESS after the flip\n{table}"
    );
    assert_eq!(
        report.listing_writes_during_verdicts, 0,
        "{title}: non-waiters were written while verdicts of the same answer were pending\n{table}"
    );

    let rate = report
        .limit_writes_per_second
        .unwrap_or_else(|| panic!("{title}: the apiserver's limit was not measured\n{table}"));
    assert!(
        rate > 0.0 && report.limit_payload_bytes > 0,
        "{title}: limit {rate} writes/s of {} bytes\n{table}",
        report.limit_payload_bytes
    );
    let ratio = report
        .limit_ratio(Bound::WaitMax)
        .unwrap_or_else(|| panic!("{title}: no ratio of the longest wait\n{table}"));
    assert!(
        ratio <= MAX_WAIT_OVER_LIMIT,
        "{title}: the longest wait took {ratio:.2} times its limit (activeInterval + W / R), \
         more than {MAX_WAIT_OVER_LIMIT}\n{table}"
    );
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
            limit_writes_per_second: Some(50.0),
            limit_payload_bytes: 2_048,
            limit_in_flight: 16,
            limit_writes: 500,
            listing_writes_during_verdicts: 0,
            listing_writes_before_last_verdict: 4,
            listings_with_flipped_task: objects - waiters,
            listing_refreshed_after_flip: objects - waiters - 1,
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
        assert_eq!(lines.len(), 2 + 24, "{table}");
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
            (
                "waiters not Complete by the deadline after the flip",
                "0 (deadline 75 s) | 1 (deadline 75 s)",
            ),
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
                "non-waiters' writes while their query's verdicts were pending (flip → last Complete)",
                "0 | 0",
            ),
            (
                "non-waiters' writes after the flip, before the last Complete of any query",
                "4 | 4",
            ),
            (
                "non-waiters refreshed after the flip / listing the flipped task",
                "97 / 98 | 97 / 98",
            ),
            (
                "idle CPU (utime+stime, % of one core)",
                "0.25 % over 60 s | 0.25 % over 60 s",
            ),
            (
                "apiserver limit R: status writes per second, no operator",
                "50.0 (500 writes, 16 in flight) | 50.0 (500 writes, 16 in flight)",
            ),
            (
                "apiserver limit payload: largest waiter status (JSON)",
                "2048 bytes | 2048 bytes",
            ),
            // N / R = 100 / 50 = 2 s; activeInterval + 1 / 50 and + 2 / 50 (W = 2).
            (
                "cold start: measured / limit (N / R) = ratio",
                "2.50 s / 2.00 s = 1.25× | 2.50 s / 2.00 s = 1.25×",
            ),
            (
                "wait latency p50: measured / limit (activeInterval + W/2 / R) = ratio",
                "0.50 s / 10.0 s = 0.05× | 0.80 s / 10.0 s = 0.08×",
            ),
            (
                "wait latency max: measured / limit (activeInterval + W / R) = ratio",
                "1.20 s / 10.0 s = 0.12× | > 75 s / 10.0 s",
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
        unfinished.limit_writes_per_second = None;
        unfinished.limit_payload_bytes = 0;
        let table = markdown_table(&[unfinished]);
        for (figure, cell) in [
            (
                "apiserver limit R: status writes per second, no operator",
                "not measured",
            ),
            (
                "apiserver limit payload: largest waiter status (JSON)",
                "not measured",
            ),
            (
                "cold start: measured / limit (N / R) = ratio",
                "timed out / not measured",
            ),
            (
                "wait latency max: measured / limit (activeInterval + W / R) = ratio",
                "0.90 s / not measured",
            ),
        ] {
            assert_eq!(row(&table, figure), format!("| {figure} | {cell} |"));
        }
        assert_eq!(
            row(&table, "cold start: controller start → all lastSyncTime"),
            "| cold start: controller start → all lastSyncTime | timed out, 7 not synced |"
        );
        assert_eq!(
            row(
                &table,
                "waiters not Complete by the deadline after the flip"
            ),
            "| waiters not Complete by the deadline after the flip | 0 (deadline 90 s) |"
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

/// The figures derived from a run's raw data: the limits and ratios of [`Bound`], and the order
/// of writes ([`scale::write_order`]) from hand-made arrival times.
mod derived_tests {
    use std::time::{Duration, Instant};

    use dcs_task_operator::api::{DcsTaskQueryStatus, TaskStatus};

    use crate::support::scale::{
        Bound, OrderObject, ScaleReport, Sharing, StatusWrite, WaitSource, write_order,
    };

    fn report(objects: usize, latencies_ms: &[Option<u64>]) -> ScaleReport {
        let waiters = latencies_ms.len();
        ScaleReport {
            sharing: Sharing::Shared,
            wait_source: WaitSource::TaskList,
            jobs: 1,
            steady_job_calls: 0,
            objects,
            waiters,
            distinct_queries: 10,
            active_interval: Duration::from_secs(10),
            controller_flags: Vec::new(),
            create_time: Duration::from_secs(5),
            cold_start: Some(Duration::from_secs(15)),
            not_synced: 0,
            cold_start_calls: 10,
            steady_calls: 30,
            steady_window: Duration::from_secs(30),
            complete_before_flip: 0,
            wait_latencies: latencies_ms
                .iter()
                .map(|ms| ms.map(Duration::from_millis))
                .collect(),
            complete_deadline: Duration::from_secs(75),
            waiter_writes: vec![2; waiters],
            waiter_writes_after_complete: 0,
            waiter_versions: vec![2; waiters],
            listing_writes: vec![2; objects - waiters],
            vm_rss_kib: 0,
            vm_hwm_kib: 0,
            idle_cpu_percent: None,
            idle_window: None,
            watch_relists: 0,
            limit_writes_per_second: Some(100.0),
            limit_payload_bytes: 4_000,
            limit_in_flight: 16,
            limit_writes: 1_000,
            listing_writes_during_verdicts: 0,
            listing_writes_before_last_verdict: 0,
            listings_with_flipped_task: objects - waiters,
            listing_refreshed_after_flip: objects - waiters,
        }
    }

    #[test]
    fn limits_are_writes_at_the_apiserver_rate_and_ratios_measured_over_them() {
        // N = 1000, W = 4 (latencies 6, 8, 11 and 12.5 s), R = 100 writes/s.
        let mut run = report(
            1_000,
            &[Some(8_000), Some(12_500), Some(6_000), Some(11_000)],
        );
        // Equal to the microsecond (the limits are computed in floating point).
        let close = |figure: Option<Duration>, secs: f64| {
            figure.is_some_and(|figure| (figure.as_secs_f64() - secs).abs() < 1e-6)
        };
        let ratio_close = |ratio: Option<f64>, expected: f64| {
            ratio.is_some_and(|ratio| (ratio - expected).abs() < 1e-6)
        };
        assert!(close(run.limit(Bound::ColdStart), 10.0));
        assert!(close(run.limit(Bound::WaitP50), 10.02));
        assert!(close(run.limit(Bound::WaitMax), 10.04));
        assert!(close(run.measured(Bound::ColdStart), 15.0));
        assert!(close(run.measured(Bound::WaitP50), 8.0));
        assert!(close(run.measured(Bound::WaitMax), 12.5));
        assert!(ratio_close(run.limit_ratio(Bound::ColdStart), 1.5));
        assert!(ratio_close(run.limit_ratio(Bound::WaitP50), 8.0 / 10.02));
        assert!(ratio_close(run.limit_ratio(Bound::WaitMax), 12.5 / 10.04));

        // A waiter that never completed: the longest wait has no figure, hence no ratio.
        run.wait_latencies.push(None);
        run.waiters += 1;
        assert_eq!(run.measured(Bound::WaitMax), None);
        assert_eq!(run.limit_ratio(Bound::WaitMax), None);
        assert!(close(run.limit(Bound::WaitMax), 10.05));
        // No R: no limit and no ratio, whatever was measured.
        run.limit_writes_per_second = None;
        for bound in Bound::ALL {
            assert_eq!(run.limit(bound), None, "{bound:?}");
            assert_eq!(run.limit_ratio(bound), None, "{bound:?}");
        }
        assert!(close(run.measured(Bound::ColdStart), 15.0));
    }

    fn task(id: &str, status: &str) -> TaskStatus {
        TaskStatus {
            id: Some(id.into()),
            status: Some(status.into()),
            ..TaskStatus::default()
        }
    }

    #[test]
    fn a_status_write_shows_the_flip_when_every_benchmark_task_it_lists_succeeded() {
        let bench = [
            "bench-switchover-0000".to_string(),
            "bench-switchover-0001".to_string(),
        ];
        let at = Instant::now();
        let shows = |tasks: Vec<TaskStatus>| {
            let status = DcsTaskQueryStatus {
                tasks,
                ..DcsTaskQueryStatus::default()
            };
            let write = StatusWrite::of(&status, &bench, at);
            assert_eq!(write.at, at);
            (write.lists_bench_task, write.shows_flip)
        };
        assert_eq!(shows(vec![]), (false, false));
        assert_eq!(shows(vec![task("other", "SUCCESS")]), (false, false));
        assert_eq!(
            shows(vec![
                task("bench-switchover-0000", "RUNNING"),
                task("other", "SUCCESS")
            ]),
            (true, false)
        );
        assert_eq!(
            shows(vec![
                task("other", "RUNNING"),
                task("bench-switchover-0001", "SUCCESS")
            ]),
            (true, true)
        );
        assert_eq!(
            shows(vec![
                task("bench-switchover-0000", "SUCCESS"),
                task("bench-switchover-0001", "RUNNING"),
            ]),
            (true, false)
        );
    }

    /// A status write arriving `ms` after `base`.
    fn write(base: Instant, ms: u64, lists: bool, shows: bool) -> StatusWrite {
        StatusWrite {
            at: base + Duration::from_millis(ms),
            lists_bench_task: lists,
            shows_flip: shows,
        }
    }

    #[test]
    fn refreshes_count_against_the_verdicts_of_their_own_query() {
        let base = Instant::now();
        let at = |ms: u64| base + Duration::from_millis(ms);
        let (flip, waited_until) = (at(1_000), at(20_000));
        let running = |ms| write(base, ms, true, false);
        let succeeded = |ms| write(base, ms, true, true);
        // Query 0's verdicts end at 2.5 s, query 1's at 6 s.
        let waiter = |question, ms: Option<u64>| OrderObject {
            question,
            waiter: true,
            complete_at: ms.map(at),
            writes: &[],
        };
        let listing = |question, writes| OrderObject {
            question,
            waiter: false,
            complete_at: None,
            writes,
        };
        // Refreshed after its query's verdicts, before query 1's.
        let after_own = [running(100), succeeded(3_000)];
        // Refreshed during its query's verdicts.
        let during_own = [running(100), succeeded(5_000)];
        // Did not list the task before the flip; written during its query's verdicts.
        let unconcerned = [write(base, 100, false, false), succeeded(2_200)];
        // Lists the task, never refreshed; a write at the flip instant itself is not after it.
        let stale = [running(100), running(1_000)];
        let objects = [
            waiter(0, Some(2_000)),
            waiter(0, Some(2_500)),
            waiter(1, Some(6_000)),
            listing(0, &after_own),
            listing(1, &during_own),
            listing(0, &unconcerned),
            listing(1, &stale),
        ];
        let order = write_order(objects, flip, waited_until);
        assert_eq!(order.listing_writes_during_verdicts, 2, "{order:?}");
        assert_eq!(order.listing_writes_before_last_verdict, 3, "{order:?}");
        assert_eq!(order.listings_with_flipped_task, 3, "{order:?}");
        assert_eq!(order.listing_refreshed_after_flip, 2, "{order:?}");

        // Nothing is written during verdicts when each refresh follows its query's last one.
        let late = [running(100), succeeded(6_500)];
        let order = write_order(
            [
                waiter(0, Some(2_000)),
                waiter(1, Some(6_000)),
                listing(0, &after_own),
                listing(1, &late),
            ],
            flip,
            waited_until,
        );
        assert_eq!(order.listing_writes_during_verdicts, 0, "{order:?}");
        assert_eq!(order.listing_writes_before_last_verdict, 1, "{order:?}");
        assert_eq!(order.listing_refreshed_after_flip, 2, "{order:?}");

        // A waiter never Complete keeps its query's verdicts pending until the wait ended.
        let order = write_order(
            [waiter(1, Some(6_000)), waiter(1, None), listing(1, &late)],
            flip,
            at(7_000),
        );
        assert_eq!(order.listing_writes_during_verdicts, 1, "{order:?}");
        let order = write_order([waiter(1, None), listing(1, &late)], flip, at(6_400));
        assert_eq!(order.listing_writes_during_verdicts, 0, "{order:?}");
        // A query without waiters has no verdicts to wait for.
        let order = write_order(
            [waiter(0, Some(9_000)), listing(1, &late)],
            flip,
            waited_until,
        );
        assert_eq!(order.listing_writes_during_verdicts, 0, "{order:?}");
        assert_eq!(order.listing_writes_before_last_verdict, 1, "{order:?}");
    }
}
