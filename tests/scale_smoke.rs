//! CI smoke of the scale benchmark (`benches/scale.rs`): a small N in the shared and the naive
//! (`--upstream-sharing=per-object`) mode side by side, asserting ratios and counts only, never
//! absolute times, so a loaded machine slows it down without failing it.
//!
//! Both runs go in parallel (own namespace, simulator and controller each) to stay within
//! about a minute; see `tests/support/scale.rs` for what a run does.

mod support;

use std::thread;
use std::time::Duration;

use support::scale::{self, ScaleConfig, ScaleReport, Sharing};

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
    let table = scale::markdown_table(&reports);
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
    let svg = scale::svg_plot(&reports);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("<circle"), "the plot shows no point:\n{svg}");
}
