//! The scale benchmark's harness: N `DcsTaskQuery` objects over K distinct queries, half of them
//! waiting on one job, against the real kube-apiserver, the simulator (`dcs-task-operator sim`)
//! and the controller (`dcs-task-operator controller`), each a separate process.
//!
//! [`run`] plays one scenario and returns a [`ScaleReport`], plain data; [`render`] turns reports
//! into a markdown table and an SVG plot, and measures nothing. `benches/scale.rs` runs it at
//! benchmark sizes, `tests/scale_smoke.rs` at a small size asserting ratios only.
//!
//! What one run does, in order (every figure is measured from outside the controller):
//! 1. a fresh namespace with the demo credentials Secret, a simulator playing [`SCENARIO`] (settled
//!    tasks) plus, through `POST /_sim/tasks`, the benchmark's tasks ([`bench_task_id`], job
//!    [`bench_job_id`]) in status `RUNNING`, and a watch on the namespace's
//!    `DcsTaskQuery` objects that timestamps every change ([`Observer`]);
//! 2. creates the N objects through the API, [`ScaleConfig::create_concurrency`] in flight: object
//!    `i` asks `query.limit = FIRST_LIMIT + (i / 2) % K` (K distinct upstream requests) and every
//!    even `i` waits for the job (`spec.waitFor.jobId`, read from [`ScaleConfig::wait_source`], over
//!    [`ScaleConfig::jobs`] jobs);
//! 3. starts the controller and waits until every object has `status.lastSyncTime` (cold start);
//! 4. lets one more active interval pass, then counts the simulator's task-list requests over
//!    [`ScaleConfig::steady_intervals`] active intervals (upstream calls per active interval);
//! 5. flips the task to `SUCCESS` through the admin API and records, per waiter, when the watch
//!    first shows `Complete=True` (wait latency, relative to the moment the flip returned);
//!    then waits until every non-waiter whose list showed the task has been written with it
//!    `SUCCESS` (its refresh); the watch's arrival times of all status writes say whether
//!    refreshes went before verdicts still pending ([`WriteOrder`]);
//! 6. after [`ScaleConfig::settle`], reads the controller's VmRSS/VmHWM from `/proc/PID/status`,
//!    then its utime+stime over [`ScaleConfig::idle_window`] from `/proc/PID/stat` (idle CPU);
//! 7. counts, per object, the watch events whose `.status` differed from the one before (status
//!    writes) and stops the controller;
//! 8. with the controller gone, measures the apiserver's own limit on the same objects
//!    ([`limit`], when [`ScaleConfig::limit_phase`]): status writes of the largest waiter status
//!    per second, which [`Bound`] turns into the limit of each latency and of the cold start;
//!    then deletes the objects.

// Every test binary includes this module but uses only part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use dcs_task_operator::api::{DcsTaskQuery, DcsTaskQueryStatus};
use dcs_task_operator::controller::credentials::CREDENTIALS_LABEL;
use dcs_task_operator::sim::{DEMO_ACCESS_KEY, DEMO_PROJECT_ID, DEMO_SECRET_KEY};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::control_plane::ControlPlane;
use super::operator::{OperatorProcess, query_object};
use super::sim_process::SimProcess;

pub mod limit;
pub mod render;

/// The `j`-th simulator task the waiters follow; added `RUNNING`, flipped to `SUCCESS`.
pub fn bench_task_id(j: usize) -> String {
    format!("bench-switchover-{j:04}")
}

/// Its job id, what the waiters name in `spec.waitFor.jobId` (the job API derives the job from
/// the task: `RUNNING`, then `SUCCESS`).
pub fn bench_job_id(j: usize) -> String {
    format!("bench-job-{j:04}")
}
/// The simulator's world besides the benchmark's task: settled tasks only, so nothing but the
/// flip changes what the objects see (the default demo's switchover would finish on its own
/// a few seconds in and cost every object one more status write).
pub const SCENARIO: &str = r#"
tasks:
  - {name: EXTEND, createdAt: "-3h", status: SUCCESS, details: {old_capacity: 0.125, new_capacity: "0.25"}}
  - {name: BindEip, createdAt: "-2h", status: SUCCESS}
  - {name: AddWhitelist, createdAt: "-1h", status: FAILED, errorCode: "111400063"}
  - {name: modify, createdAt: "-30m", status: SUCCESS}
"#;
/// `query.limit` of the first distinct query; the others count up from it.
pub const FIRST_LIMIT: usize = 100;
/// Rates (`--rate-limit`, `--account-rate-limit`) given to the naive mode, which otherwise is
/// throttled by the defaults (10 and 5 requests per second) and would measure the limiter.
pub const NAIVE_RATE_LIMIT: &str = "100000";
/// Controller log level: warnings only, so logging costs the controller neither CPU nor memory.
pub const LOG_LEVEL: &str = "warn";
/// Set to an object name (e.g. `wait-00000`) to print every status that object is written with.
pub const TRACE_ENV: &str = "DCS_SCALE_TRACE";
/// What the benchmark's tasks are flipped to.
pub const FLIPPED_STATUS: &str = "SUCCESS";
/// Name prefixes: waiters and plain listings.
pub const WAITER_PREFIX: &str = "wait-";
pub const LISTING_PREFIX: &str = "list-";

/// How objects share upstream calls (`controller --upstream-sharing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// One upstream call per distinct query (the operator's design).
    Shared,
    /// Every object polls alone (`--upstream-sharing=per-object`): the naive baseline.
    PerObject,
}

impl Sharing {
    /// The `--upstream-sharing` value.
    pub fn flag(self) -> &'static str {
        match self {
            Sharing::Shared => "shared",
            Sharing::PerObject => "per-object",
        }
    }

    /// How tables and plots name the mode.
    pub fn label(self) -> &'static str {
        match self {
            Sharing::Shared => "shared",
            Sharing::PerObject => "naive",
        }
    }
}

/// Where the waiters' `spec.waitFor.source` reads the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitSource {
    /// The DCS job API (`ShowJobInfo`), the default for `jobId`: one job feed per job.
    Job,
    /// The task-center list: the waiters' task feeds poll at `activeInterval`.
    TaskList,
}

impl WaitSource {
    /// The `spec.waitFor.source` value.
    pub fn spec(self) -> &'static str {
        match self {
            WaitSource::Job => "Job",
            WaitSource::TaskList => "TaskList",
        }
    }

    /// How tables name it.
    pub fn label(self) -> &'static str {
        match self {
            WaitSource::Job => "job API",
            WaitSource::TaskList => "task list",
        }
    }
}

/// One scenario to play.
#[derive(Clone, Debug)]
pub struct ScaleConfig {
    /// N, the number of objects; every even one waits.
    pub objects: usize,
    /// K, the number of distinct upstream requests the objects ask (at most 900).
    pub distinct_queries: usize,
    pub sharing: Sharing,
    /// Where the waiters read their job.
    pub wait_source: WaitSource,
    /// J, the number of distinct jobs the waiters await (waiter `i` awaits job `(i / 2) % J`).
    pub jobs: usize,
    /// `spec.activeInterval` (poll interval while the task runs or a wait is pending).
    pub active_interval: &'static str,
    /// `spec.interval` (poll interval once settled).
    pub interval: &'static str,
    /// Object creations in flight at once.
    pub create_concurrency: usize,
    /// Controller flags besides the fixed ones (namespace, endpoint allow-list, listen address,
    /// log level, `--upstream-sharing`), e.g. `--rate-limit 100000`.
    pub controller_flags: Vec<String>,
    /// The upstream calls are counted over this many active intervals.
    pub steady_intervals: u32,
    /// Waiters not `Complete` this long after the flip are reported as such; the run goes on.
    pub complete_deadline: Duration,
    /// Pause between the last waiter completing and the memory reading.
    pub settle: Duration,
    /// Window of the idle CPU measurement; `None` skips it.
    pub idle_window: Option<Duration>,
    /// Limit of the cold start (every object synced); the run goes on after it, reporting how
    /// many were not synced.
    pub cold_start_timeout: Duration,
    /// Measure the apiserver's own limit after the run ([`limit`]). Off only when another run
    /// shares the apiserver at the same time: it would be measured against that run's load.
    pub limit_phase: bool,
    /// Print progress to stderr.
    pub progress: bool,
}

impl ScaleConfig {
    /// The benchmark's scenario: K = 10, `activeInterval: 10s`, `interval: 1m`, 32 creations
    /// in flight, a 30 s count window, 75 s + 30 ms per object to complete, a 60 s idle window. The naive mode gets
    /// [`NAIVE_RATE_LIMIT`] for both rate limits.
    pub fn benchmark(objects: usize, sharing: Sharing) -> Self {
        let controller_flags = match sharing {
            Sharing::Shared => Vec::new(),
            Sharing::PerObject => naive_rate_flags(),
        };
        Self {
            objects,
            distinct_queries: 10,
            sharing,
            wait_source: WaitSource::Job,
            jobs: 1,
            active_interval: "10s",
            interval: "1m",
            create_concurrency: 32,
            controller_flags,
            steady_intervals: 3,
            // A slow apiserver takes ~80 writes/s at 10,000 objects: the waiters' verdicts alone
            // take a minute there, so the deadline grows with N (375 s at 10,000).
            complete_deadline: Duration::from_secs(75)
                + Duration::from_millis(30).saturating_mul(objects as u32),
            settle: Duration::from_secs(10),
            idle_window: Some(Duration::from_secs(60)),
            cold_start_timeout: Duration::from_secs(120)
                + Duration::from_millis(60).saturating_mul(objects as u32),
            limit_phase: true,
            progress: true,
        }
    }

    fn active(&self) -> Duration {
        dcs_task_operator::duration::parse(self.active_interval).expect("a valid activeInterval")
    }

    /// How a report names this run, e.g. `shared N=1000 (job API)`.
    pub fn label(&self) -> String {
        run_title(self.sharing, self.objects, self.wait_source)
    }
}

/// `--rate-limit` and `--account-rate-limit` at [`NAIVE_RATE_LIMIT`].
pub fn naive_rate_flags() -> Vec<String> {
    [
        "--rate-limit",
        NAIVE_RATE_LIMIT,
        "--account-rate-limit",
        NAIVE_RATE_LIMIT,
    ]
    .map(String::from)
    .to_vec()
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct ScaleReport {
    pub sharing: Sharing,
    pub wait_source: WaitSource,
    /// J, the distinct jobs awaited.
    pub jobs: usize,
    /// `ShowJobInfo` requests counted in the steady window (the same window as `steady_calls`).
    pub steady_job_calls: u64,
    pub objects: usize,
    pub waiters: usize,
    pub distinct_queries: usize,
    pub active_interval: Duration,
    /// The controller flags besides the fixed ones.
    pub controller_flags: Vec<String>,
    /// Creating the N objects through the API.
    pub create_time: Duration,
    /// Controller start until every object has `status.lastSyncTime`; `None`: not within
    /// [`ScaleConfig::cold_start_timeout`].
    pub cold_start: Option<Duration>,
    /// Objects without `lastSyncTime` when the cold start ended (0 unless it timed out).
    pub not_synced: usize,
    /// Task-list requests from controller start until the cold start ended.
    pub cold_start_calls: u64,
    /// Task-list requests counted in the steady window, and the window.
    pub steady_calls: u64,
    pub steady_window: Duration,
    /// Waiters already `Complete` before the flip (must be 0: the task was running).
    pub complete_before_flip: usize,
    /// Per waiter: flip until `Complete=True` was first seen; `None` if not within the deadline.
    pub wait_latencies: Vec<Option<Duration>>,
    pub complete_deadline: Duration,
    /// Per waiter: `.status` changes from creation until `Complete=True` (all of them when it
    /// never completed).
    pub waiter_writes: Vec<u32>,
    /// Status changes of waiters after they were `Complete`, all waiters together.
    pub waiter_writes_after_complete: u64,
    /// Per waiter: new resourceVersions after creation over the whole run (the watch's
    /// MODIFIED events; equals the status writes unless something else writes the objects).
    pub waiter_versions: Vec<u32>,
    /// Per non-waiter: `.status` changes over the whole run.
    pub listing_writes: Vec<u32>,
    /// Controller memory after settling, KiB.
    pub vm_rss_kib: u64,
    pub vm_hwm_kib: u64,
    /// Controller CPU (utime + stime) over the idle window, % of one core.
    pub idle_cpu_percent: Option<f64>,
    pub idle_window: Option<Duration>,
    /// Times the benchmark's own watch had to list again (its counts may then miss writes).
    pub watch_relists: u32,
    /// R, the apiserver's own limit: status writes per second it took in the limit phase
    /// ([`limit`]: the controller stopped, [`limit_in_flight`](Self::limit_in_flight) writes in
    /// flight, each the largest waiter status); `None` when not measured.
    pub limit_writes_per_second: Option<f64>,
    /// Bytes of that status's JSON (the `status` the operator sends), 0 when not measured.
    pub limit_payload_bytes: usize,
    /// Writes in flight at once in the limit phase, and how many it made.
    pub limit_in_flight: usize,
    pub limit_writes: usize,
    /// Status writes of non-waiters that the watch saw after the flip and before the last
    /// `Complete=True` of the waiters reading the same answer (the same distinct query), summed
    /// over the non-waiters: refreshes written while verdicts they could have waited for were
    /// still pending. See [`WriteOrder`].
    pub listing_writes_during_verdicts: u64,
    /// The same over one window for everyone: after the flip, before the last waiter's
    /// `Complete=True` (whichever query it asks). Includes refreshes of a query whose waiters
    /// were all done while another query's feed had not yet seen the flip.
    pub listing_writes_before_last_verdict: u64,
    /// Non-waiters whose status, when the task flipped, listed a flipped task.
    pub listings_with_flipped_task: usize,
    /// Of those, how many the watch saw written after the flip with every flipped task they
    /// list `SUCCESS`.
    pub listing_refreshed_after_flip: usize,
}

/// A figure that has a limit set by the apiserver's write rate R ([`ScaleReport::limit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// Controller start until every object synced; limit N / R (one status write per object).
    ColdStart,
    /// The median wait latency; limit `activeInterval` + (W / 2) / R: one interval to see the
    /// end, then the writes of the waiters ahead of it.
    WaitP50,
    /// The longest wait latency; limit `activeInterval` + W / R.
    WaitMax,
}

impl Bound {
    pub const ALL: [Bound; 3] = [Bound::ColdStart, Bound::WaitP50, Bound::WaitMax];

    /// How tables name it.
    pub fn label(self) -> &'static str {
        match self {
            Bound::ColdStart => "cold start",
            Bound::WaitP50 => "wait latency p50",
            Bound::WaitMax => "wait latency max",
        }
    }

    /// Its limit as a formula of N, W, R and `activeInterval`.
    pub fn formula(self) -> &'static str {
        match self {
            Bound::ColdStart => "N / R",
            Bound::WaitP50 => "activeInterval + W/2 / R",
            Bound::WaitMax => "activeInterval + W / R",
        }
    }
}

impl ScaleReport {
    /// Column title, e.g. `shared N=1000 (job API)`.
    pub fn title(&self) -> String {
        run_title(self.sharing, self.objects, self.wait_source)
    }

    /// Job API calls per active interval in the steady window.
    pub fn job_calls_per_interval(&self) -> f64 {
        per_interval(
            self.steady_job_calls,
            self.active_interval,
            self.steady_window,
        )
    }

    /// Upstream task-list calls per active interval in the steady window.
    pub fn calls_per_interval(&self) -> f64 {
        per_interval(self.steady_calls, self.active_interval, self.steady_window)
    }

    /// Waiters not `Complete` within the deadline.
    pub fn not_complete(&self) -> usize {
        self.wait_latencies.iter().filter(|l| l.is_none()).count()
    }

    /// The `q`-quantile (nearest rank) of the wait latency; `None` when it falls on a waiter
    /// that did not complete within the deadline (or there are no waiters).
    pub fn latency_quantile(&self, q: f64) -> Option<Duration> {
        let mut sorted: Vec<Option<Duration>> = self.wait_latencies.clone();
        // `None` (not complete) sorts last, as "infinitely late".
        sorted.sort_by_key(|latency| (latency.is_none(), *latency));
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
        sorted.get(rank - 1).copied().flatten()
    }

    /// Mean and max of status writes per waiter, creation to `Complete`.
    pub fn waiter_writes_mean_max(&self) -> (f64, u32) {
        mean_max(&self.waiter_writes)
    }

    /// Mean and max of new resourceVersions per waiter over the whole run.
    pub fn waiter_versions_mean_max(&self) -> (f64, u32) {
        mean_max(&self.waiter_versions)
    }

    /// Mean and max of status writes per non-waiter over the whole run.
    pub fn listing_writes_mean_max(&self) -> (f64, u32) {
        mean_max(&self.listing_writes)
    }

    /// The least the apiserver allows for `bound` at R ([`Bound`]); `None` without R.
    pub fn limit(&self, bound: Bound) -> Option<Duration> {
        let rate = self
            .limit_writes_per_second
            .filter(|rate| rate.is_finite() && *rate > 0.0)?;
        let queued = |writes: f64| Duration::from_secs_f64(writes / rate);
        Some(match bound {
            Bound::ColdStart => queued(self.objects as f64),
            Bound::WaitP50 => self.active_interval + queued(self.waiters as f64 / 2.0),
            Bound::WaitMax => self.active_interval + queued(self.waiters as f64),
        })
    }

    /// What the run measured for `bound`; `None` when it did not finish (cold start timed out,
    /// the quantile falls on a waiter not complete).
    pub fn measured(&self, bound: Bound) -> Option<Duration> {
        match bound {
            Bound::ColdStart => self.cold_start,
            Bound::WaitP50 => self.latency_quantile(0.5),
            Bound::WaitMax => self.latency_quantile(1.0),
        }
    }

    /// Measured over limit (1.0: as fast as the apiserver allows).
    pub fn limit_ratio(&self, bound: Bound) -> Option<f64> {
        let limit = self.limit(bound).filter(|limit| !limit.is_zero())?;
        Some(self.measured(bound)?.as_secs_f64() / limit.as_secs_f64())
    }
}

fn mean_max(values: &[u32]) -> (f64, u32) {
    if values.is_empty() {
        return (0.0, 0);
    }
    let sum: u64 = values.iter().map(|&v| u64::from(v)).sum();
    (
        sum as f64 / values.len() as f64,
        values.iter().copied().max().unwrap_or(0),
    )
}

/// Plays one scenario and measures it. Blocks; spawns the simulator and the controller from
/// the calling thread (they die with it), so call it from a thread that outlives the run.
pub fn run(config: &ScaleConfig) -> ScaleReport {
    assert!(
        (1..=900).contains(&config.distinct_queries),
        "K must be 1..=900"
    );
    let label = config.label();
    let progress = |message: String| {
        if config.progress {
            eprintln!("[scale {label}] {message}");
        }
    };
    let plane = ControlPlane::shared();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the benchmark's API calls");
    let client = runtime.block_on(async { plane.admin_client() });
    let namespace = runtime.block_on(plane.new_namespace(&format!(
        "scale-{}-{}",
        config.sharing.flag(),
        config.objects
    )));
    runtime.block_on(credentials_secret(&client, &namespace));
    let scenario_dir = tempfile::tempdir().expect("a folder for the scenario");
    let scenario = scenario_dir.path().join("scale.yaml");
    std::fs::write(&scenario, SCENARIO).expect("writing the scenario");
    let sim = SimProcess::start(Some(&scenario), &[]);
    let bench_tasks: Vec<String> = (0..config.jobs.max(1)).map(bench_task_id).collect();
    for j in 0..config.jobs.max(1) {
        sim.add_task(json!({
            "id": bench_task_id(j),
            "name": "masterStandbySwapJob",
            "jobId": bench_job_id(j),
            "createdAt": "-30s",
            "status": "RUNNING",
        }));
    }
    let observer = Observer::start(&namespace, bench_tasks);
    let api: Api<DcsTaskQuery> = Api::namespaced(client.clone(), &namespace);

    // 2. Objects, through the API.
    let objects: Vec<DcsTaskQuery> = (0..config.objects)
        .map(|index| bench_object(index, config, sim.base_url()))
        .collect();
    let waiters = objects
        .iter()
        .filter(|o| o.name_any().starts_with(WAITER_PREFIX))
        .count();
    progress(format!(
        "namespace {namespace}: creating {} objects ({waiters} waiters, K = {}), {} in flight",
        config.objects, config.distinct_queries, config.create_concurrency
    ));
    let started = Instant::now();
    runtime.block_on(create_all(&api, objects, config.create_concurrency));
    let create_time = started.elapsed();
    progress(format!("created in {:.1} s", create_time.as_secs_f64()));
    // The watch must know every object before the clock of the cold start runs.
    wait_until_observed(
        &observer,
        Duration::from_secs(120),
        "every created object",
        |o| o.objects.len() >= config.objects,
    );

    // 3. Cold start.
    let mut flags: Vec<String> = vec!["--upstream-sharing".into(), config.sharing.flag().into()];
    flags.extend(config.controller_flags.iter().cloned());
    let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    sim.reset_stats();
    let controller_started = Instant::now();
    let mut controller = OperatorProcess::start_logging(
        plane.kubeconfig_path(),
        &namespace,
        LOG_LEVEL,
        &flag_refs,
        &[],
    );
    let pid = controller.pid().expect("the controller runs");
    let deadline = controller_started + config.cold_start_timeout;
    let not_synced = loop {
        let not_synced = observer.read(|o| o.count(|t| t.synced_at.is_none()));
        if not_synced == 0 || Instant::now() >= deadline {
            break not_synced;
        }
        pause(&mut controller, Duration::from_millis(200));
    };
    let cold_start_calls = sim.total_requests();
    let cold_start = (not_synced == 0).then(|| {
        observer.read(|o| {
            o.objects
                .values()
                .filter_map(|t| t.synced_at)
                .max()
                .map_or(Duration::ZERO, |at| {
                    at.saturating_duration_since(controller_started)
                })
        })
    });
    progress(match cold_start {
        Some(took) => format!(
            "cold start: every object synced {:.1} s after the controller started ({cold_start_calls} upstream calls)",
            took.as_secs_f64()
        ),
        None => format!(
            "cold start: {not_synced} objects still without lastSyncTime after {:?}",
            config.cold_start_timeout
        ),
    });

    // 4. Steady state: one interval to let every object pass a regular poll, then count.
    let active = config.active();
    pause(&mut controller, active);
    let job_requests = || sim.stats()["jobs"]["total"].as_u64().unwrap_or(0);
    let before = sim.total_requests();
    let jobs_before = job_requests();
    let window_started = Instant::now();
    pause(&mut controller, active * config.steady_intervals);
    let steady_calls = sim.total_requests() - before;
    let steady_job_calls = job_requests() - jobs_before;
    let steady_window = window_started.elapsed();
    progress(format!(
        "steady: {steady_calls} task-list and {steady_job_calls} job calls in {:.1} s",
        steady_window.as_secs_f64()
    ));

    // 5. The flip.
    let complete_before_flip = observer.read(|o| {
        o.objects
            .values()
            .filter(|t| t.waiter && t.complete_at.is_some())
            .count()
    });
    // The order of writes is judged from before the first flip: a poll may see it at once.
    let flip_started = Instant::now();
    for j in 0..config.jobs.max(1) {
        sim.set_status(&bench_task_id(j), FLIPPED_STATUS);
    }
    let flipped = Instant::now();
    let deadline = flipped + config.complete_deadline;
    loop {
        let pending = observer.read(|o| o.count(|t| t.waiter && t.complete_at.is_none()));
        if pending == 0 || Instant::now() >= deadline {
            break;
        }
        pause(&mut controller, Duration::from_millis(100));
    }
    // Waiters still pending now count as pending until now.
    let verdicts_waited = Instant::now();
    let order_now = |o: &Observed| {
        write_order(
            o.order_objects(config.distinct_queries),
            flip_started,
            verdicts_waited,
        )
    };
    // The refreshes of the non-waiters (their lists show the task), within the same deadline
    // (and one active interval at least).
    let refresh_deadline = deadline.max(Instant::now() + active);
    let refreshes = loop {
        let order = observer.read(order_now);
        if order.listing_refreshed_after_flip >= order.listings_with_flipped_task
            || Instant::now() >= refresh_deadline
        {
            break order;
        }
        pause(&mut controller, Duration::from_millis(100));
    };
    let wait_latencies: Vec<Option<Duration>> = observer.read(|o| {
        o.objects
            .values()
            .filter(|t| t.waiter)
            .map(|t| {
                t.complete_at
                    .map(|at| at.saturating_duration_since(flipped))
                    .filter(|latency| *latency <= config.complete_deadline)
            })
            .collect()
    });
    progress(format!(
        "flip: {} of {waiters} waiters Complete within {:?}; {} of {} non-waiters refreshed, \
         {} of their writes while verdicts of their query were pending",
        wait_latencies.iter().filter(|l| l.is_some()).count(),
        config.complete_deadline,
        refreshes.listing_refreshed_after_flip,
        refreshes.listings_with_flipped_task,
        refreshes.listing_writes_during_verdicts,
    ));

    // 6. Memory after settling, then idle CPU.
    pause(&mut controller, config.settle);
    let (vm_rss_kib, vm_hwm_kib) = memory_kib(pid);
    let idle_cpu_percent = config.idle_window.map(|window| {
        progress(format!("idle CPU over {window:?}"));
        let (ticks_before, at) = (cpu_ticks(pid), Instant::now());
        pause(&mut controller, window);
        let ticks = cpu_ticks(pid) - ticks_before;
        ticks as f64 / clock_ticks_per_second() / at.elapsed().as_secs_f64() * 100.0
    });

    // 7. Writes, then clean up.
    let writes = observer.read(|o| {
        let mut writes = Writes {
            relists: o.inits.saturating_sub(1),
            ..Writes::default()
        };
        for track in o.objects.values() {
            if track.waiter {
                let until_complete = track.writes_at_complete.unwrap_or(track.status_writes);
                writes.waiter.push(until_complete);
                writes.waiter_after_complete += u64::from(track.status_writes - until_complete);
                writes.waiter_versions.push(track.modified);
            } else {
                writes.listing.push(track.status_writes);
            }
        }
        writes
    });
    let order = observer.read(order_now);
    if !controller.is_running() {
        let output = controller.stop_in_place();
        panic!("the controller exited during the run:\n{}", tail(&output));
    }
    controller.stop_in_place();

    // 8. The apiserver's own limit, on a client of its own, nothing else writing. The
    // benchmark's watch stays open, as it was while the controller wrote.
    let limit = config.limit_phase.then(|| {
        let writes = limit::writes_for(config.objects);
        progress(format!(
            "limit: {writes} status writes, {} in flight, no operator",
            limit::IN_FLIGHT
        ));
        let limit = runtime.block_on(async {
            let api: Api<DcsTaskQuery> = Api::namespaced(plane.admin_client(), &namespace);
            limit::measure(&api, writes).await
        });
        progress(match (limit.writes_per_second, &limit.problem) {
            (Some(rate), _) => format!(
                "limit: {rate:.1} writes/s ({} writes of {} bytes in {:.2} s)",
                limit.writes,
                limit.payload_bytes,
                limit.took.as_secs_f64()
            ),
            (None, problem) => {
                format!("limit: not measured: {}", problem.as_deref().unwrap_or("?"))
            }
        });
        limit
    });
    drop(observer);
    runtime.block_on(async {
        if let Err(error) = api
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await
        {
            eprintln!("[scale {label}] deleting the objects of {namespace}: {error}");
        }
    });
    drop(sim);

    ScaleReport {
        sharing: config.sharing,
        objects: config.objects,
        waiters,
        distinct_queries: config.distinct_queries,
        active_interval: active,
        controller_flags: config.controller_flags.clone(),
        create_time,
        cold_start,
        not_synced,
        cold_start_calls,
        steady_calls,
        steady_job_calls,
        wait_source: config.wait_source,
        jobs: config.jobs.max(1),
        steady_window,
        complete_before_flip,
        wait_latencies,
        complete_deadline: config.complete_deadline,
        waiter_writes: writes.waiter,
        waiter_writes_after_complete: writes.waiter_after_complete,
        waiter_versions: writes.waiter_versions,
        listing_writes: writes.listing,
        vm_rss_kib,
        vm_hwm_kib,
        idle_cpu_percent,
        idle_window: config.idle_window,
        watch_relists: writes.relists,
        limit_writes_per_second: limit.as_ref().and_then(|l| l.writes_per_second),
        limit_payload_bytes: limit.as_ref().map_or(0, |l| l.payload_bytes),
        limit_in_flight: limit.as_ref().map_or(0, |l| l.in_flight),
        limit_writes: limit.as_ref().map_or(0, |l| l.writes),
        listing_writes_during_verdicts: order.listing_writes_during_verdicts,
        listing_writes_before_last_verdict: order.listing_writes_before_last_verdict,
        listings_with_flipped_task: order.listings_with_flipped_task,
        listing_refreshed_after_flip: order.listing_refreshed_after_flip,
    }
}

/// The write counts of one run, per kind of object.
#[derive(Default)]
struct Writes {
    waiter: Vec<u32>,
    waiter_after_complete: u64,
    waiter_versions: Vec<u32>,
    listing: Vec<u32>,
    relists: u32,
}

/// Object `index`: query `(index / 2) % K`, waiting for the job when `index` is even.
fn bench_object(index: usize, config: &ScaleConfig, endpoint: &str) -> DcsTaskQuery {
    let waiter = index.is_multiple_of(2);
    let query = question_of(index, config.distinct_queries);
    let prefix = if waiter {
        WAITER_PREFIX
    } else {
        LISTING_PREFIX
    };
    let mut spec = json!({
        "activeInterval": config.active_interval,
        "interval": config.interval,
        "query": {"limit": FIRST_LIMIT + query},
    });
    if waiter {
        let job = bench_job_id((index / 2) % config.jobs.max(1));
        spec["waitFor"] = json!({"jobId": job, "source": config.wait_source.spec()});
    }
    query_object(&format!("{prefix}{index:05}"), endpoint, spec)
}

/// The distinct query (0..K) object `index` asks.
pub fn question_of(index: usize, distinct_queries: usize) -> usize {
    (index / 2) % distinct_queries.max(1)
}

/// The index in an object's name (`wait-00042` is 42).
pub fn object_index(name: &str) -> Option<usize> {
    name.strip_prefix(WAITER_PREFIX)
        .or_else(|| name.strip_prefix(LISTING_PREFIX))?
        .parse()
        .ok()
}

/// The demo credentials as the Secret `dcs-credentials` that [`query_object`] names.
async fn credentials_secret(client: &kube::Client, namespace: &str) {
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "dcs-credentials", "labels": {CREDENTIALS_LABEL: "true"}},
        "stringData": {
            "accessKey": DEMO_ACCESS_KEY,
            "secretKey": DEMO_SECRET_KEY,
            "projectId": DEMO_PROJECT_ID,
        }
    }))
    .expect("a valid Secret");
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap_or_else(|error| panic!("creating the credentials Secret in {namespace}: {error}"));
}

async fn create_all(api: &Api<DcsTaskQuery>, objects: Vec<DcsTaskQuery>, in_flight: usize) {
    let results: Vec<Result<(), String>> = futures::stream::iter(objects)
        .map(|object| async move {
            let name = object.name_any();
            api.create(&PostParams::default(), &object)
                .await
                .map(drop)
                .map_err(|error| format!("creating {name}: {error}"))
        })
        .buffer_unordered(in_flight.max(1))
        .collect()
        .await;
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(
        errors.is_empty(),
        "{} creations failed, e.g. {}",
        errors.len(),
        errors[0]
    );
}

/// Sleeps `duration` in short steps; fails the run if the controller exits meanwhile.
fn pause(controller: &mut OperatorProcess, duration: Duration) {
    let until = Instant::now() + duration;
    loop {
        if !controller.is_running() {
            let output = controller.stop_in_place();
            panic!("the controller exited during the run:\n{}", tail(&output));
        }
        let now = Instant::now();
        if now >= until {
            return;
        }
        thread::sleep((until - now).min(Duration::from_millis(250)));
    }
}

fn tail(text: &str) -> &str {
    let start = text.len().saturating_sub(4000);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    &text[start..]
}

fn wait_until_observed(
    observer: &Observer,
    timeout: Duration,
    what: &str,
    done: impl Fn(&Observed) -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !observer.read(&done) {
        assert!(
            Instant::now() < deadline,
            "the benchmark's watch did not see {what} within {timeout:?} (last watch error: {:?})",
            observer.read(|o| o.last_error.clone())
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// `VmRSS` and `VmHWM` of `/proc/PID/status`, KiB (0 when unreadable).
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// utime + stime of `/proc/PID/stat`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|error| panic!("reading /proc/{pid}/stat: {error}"));
    // Fields after the command name (which is in parentheses and may hold spaces): the state
    // is field 3, utime field 14 and stime field 15.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |number: usize| -> u64 {
        fields
            .get(number - 3)
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("/proc/{pid}/stat without field {number}: {stat}"))
    };
    field(14) + field(15)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// What the benchmark's watch saw of one object.
#[derive(Default)]
pub struct Track {
    pub waiter: bool,
    resource_version: Option<String>,
    status: Option<DcsTaskQueryStatus>,
    /// Versions seen after the first.
    pub modified: u32,
    /// Changes of `.status` (the first status counts: it is a write over none).
    pub status_writes: u32,
    /// When `status.lastSyncTime` was first set.
    pub synced_at: Option<Instant>,
    /// When `Complete=True` was first seen, and the status writes up to then.
    pub complete_at: Option<Instant>,
    pub writes_at_complete: Option<u32>,
    /// Every status write, in the order the watch saw them.
    pub writes: Vec<StatusWrite>,
}

/// One status write as the watch saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusWrite {
    /// When its event arrived.
    pub at: Instant,
    /// `status.tasks` lists one of the benchmark's tasks...
    pub lists_bench_task: bool,
    /// ...and every one it lists is [`FLIPPED_STATUS`].
    pub shows_flip: bool,
}

impl StatusWrite {
    /// What `status`, arriving `at`, shows of the tasks `bench_tasks`.
    pub fn of(status: &DcsTaskQueryStatus, bench_tasks: &[String], at: Instant) -> Self {
        let mut listed = status.tasks.iter().filter(|task| {
            task.id
                .as_deref()
                .is_some_and(|id| bench_tasks.iter().any(|bench| bench == id))
        });
        let first = listed.next();
        Self {
            at,
            lists_bench_task: first.is_some(),
            shows_flip: first.is_some()
                && first
                    .into_iter()
                    .chain(listed)
                    .all(|task| task.status.as_deref() == Some(FLIPPED_STATUS)),
        }
    }
}

/// What [`write_order`] needs of one object.
#[derive(Clone, Copy, Debug)]
pub struct OrderObject<'a> {
    /// The distinct query it asks ([`question_of`]): objects asking the same one read the same
    /// answers, so a waiter and a non-waiter of one query learn of the flip from one answer.
    pub question: usize,
    pub waiter: bool,
    pub complete_at: Option<Instant>,
    pub writes: &'a [StatusWrite],
}

/// The order of the waiters' verdicts and the non-waiters' writes around the flip, from the
/// watch's arrival times (one watch stream: the order in which the apiserver stored them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOrder {
    /// Status writes of non-waiters after the flip and before the last `Complete=True` of the
    /// waiters of their own query (a query whose waiters are not all Complete: before the end
    /// of the wait for them). 0 when every verdict of an answer is written before any refresh
    /// that answer causes.
    pub listing_writes_during_verdicts: u64,
    /// Status writes of non-waiters after the flip and before the last `Complete=True` of any
    /// waiter.
    pub listing_writes_before_last_verdict: u64,
    /// Non-waiters whose last status before the flip listed a benchmark task.
    pub listings_with_flipped_task: usize,
    /// Of those, the ones written after the flip with every benchmark task they list
    /// [`FLIPPED_STATUS`].
    pub listing_refreshed_after_flip: usize,
}

/// The [`WriteOrder`] of `objects` for a flip at `flip`, waiters not `Complete` by
/// `waited_until` counting as pending until then.
pub fn write_order<'a>(
    objects: impl IntoIterator<Item = OrderObject<'a>>,
    flip: Instant,
    waited_until: Instant,
) -> WriteOrder {
    let objects: Vec<OrderObject<'a>> = objects.into_iter().collect();
    // When the last verdict of each query's waiters arrived.
    let mut verdicts_end: HashMap<usize, Instant> = HashMap::new();
    for waiter in objects.iter().filter(|o| o.waiter) {
        let verdict = waiter
            .complete_at
            .map_or(waited_until, |at| at.min(waited_until));
        verdicts_end
            .entry(waiter.question)
            .and_modify(|end| *end = (*end).max(verdict))
            .or_insert(verdict);
    }
    let last_verdict = verdicts_end.values().copied().max();
    let mut order = WriteOrder::default();
    for listing in objects.iter().filter(|o| !o.waiter) {
        let between = |end: Option<Instant>| {
            let Some(end) = end else { return 0 };
            let inside = listing.writes.iter().filter(|w| w.at > flip && w.at < end);
            inside.count() as u64
        };
        order.listing_writes_during_verdicts +=
            between(verdicts_end.get(&listing.question).copied());
        order.listing_writes_before_last_verdict += between(last_verdict);
        let before_flip = listing.writes.iter().rev().find(|w| w.at <= flip);
        if before_flip.is_some_and(|w| w.lists_bench_task) {
            order.listings_with_flipped_task += 1;
            if listing.writes.iter().any(|w| w.at > flip && w.shows_flip) {
                order.listing_refreshed_after_flip += 1;
            }
        }
    }
    order
}

/// Everything the watch saw.
#[derive(Default)]
pub struct Observed {
    pub objects: HashMap<String, Track>,
    /// The benchmark's task ids, which [`StatusWrite`] looks for.
    pub bench_tasks: Vec<String>,
    /// `Init` events: 1 for the first list, more when the watch had to list again.
    pub inits: u32,
    pub errors: u32,
    pub last_error: Option<String>,
}

impl Observed {
    fn count(&self, predicate: impl Fn(&Track) -> bool) -> usize {
        self.objects.values().filter(|t| predicate(t)).count()
    }

    /// The benchmark's objects as [`write_order`] takes them, for K distinct queries.
    pub fn order_objects(&self, distinct_queries: usize) -> impl Iterator<Item = OrderObject<'_>> {
        self.objects.iter().filter_map(move |(name, track)| {
            Some(OrderObject {
                question: question_of(object_index(name)?, distinct_queries),
                waiter: track.waiter,
                complete_at: track.complete_at,
                writes: &track.writes,
            })
        })
    }

    fn observe(&mut self, object: DcsTaskQuery, at: Instant) {
        let name = object.name_any();
        let waiter = name.starts_with(WAITER_PREFIX);
        let track = self.objects.entry(name).or_insert_with(|| Track {
            waiter,
            ..Track::default()
        });
        // A list after a watch gap repeats versions already seen.
        if object.metadata.resource_version.is_some()
            && track.resource_version == object.metadata.resource_version
        {
            return;
        }
        if track.resource_version.is_some() {
            track.modified += 1;
        }
        track.resource_version = object.metadata.resource_version.clone();
        if object.status.is_some() && object.status != track.status {
            track.status_writes += 1;
            track.status = object.status.clone();
            if let Some(status) = &track.status {
                let write = StatusWrite::of(status, &self.bench_tasks, at);
                track.writes.push(write);
            }
            if std::env::var(TRACE_ENV).is_ok_and(|traced| traced == object.name_any()) {
                eprintln!(
                    "[scale trace] {} status write {}: {}",
                    object.name_any(),
                    track.status_writes,
                    serde_json::to_string(&object.status).unwrap_or_default()
                );
            }
        }
        let Some(status) = &object.status else {
            return;
        };
        if track.synced_at.is_none() && status.last_sync_time.is_some() {
            track.synced_at = Some(at);
        }
        let complete = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Complete" && c.status == "True");
        if complete && track.complete_at.is_none() {
            track.complete_at = Some(at);
            track.writes_at_complete = Some(track.status_writes);
        }
    }
}

/// A watch on the namespace's `DcsTaskQuery` objects on a thread (and runtime) of its own, so
/// every change is timestamped when it arrives, whatever the benchmark's thread is doing.
pub struct Observer {
    state: Arc<Mutex<Observed>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Observer {
    /// Starts watching and returns once the initial (empty) list is done. `bench_tasks`: the
    /// benchmark's task ids (see [`StatusWrite`]).
    pub fn start(namespace: &str, bench_tasks: Vec<String>) -> Self {
        let state = Arc::new(Mutex::new(Observed {
            bench_tasks,
            ..Observed::default()
        }));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel::<()>();
        let thread = {
            let (state, namespace) = (Arc::clone(&state), namespace.to_string());
            thread::Builder::new()
                .name("scale-observer".into())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime for the watch");
                    runtime.block_on(async move {
                        let client = ControlPlane::shared().admin_client();
                        let api: Api<DcsTaskQuery> = Api::namespaced(client, &namespace);
                        let mut events = watcher(api, watcher::Config::default())
                            .default_backoff()
                            .boxed();
                        let mut ready = Some(ready_tx);
                        loop {
                            let event = tokio::select! {
                                _ = &mut stopped => break,
                                event = events.next() => event,
                            };
                            let at = Instant::now();
                            let Some(event) = event else { break };
                            let mut observed = lock(&state);
                            match event {
                                Ok(watcher::Event::Init) => observed.inits += 1,
                                Ok(
                                    watcher::Event::InitApply(object)
                                    | watcher::Event::Apply(object),
                                ) => observed.observe(object, at),
                                Ok(watcher::Event::InitDone) => {
                                    if let Some(ready) = ready.take() {
                                        let _ = ready.send(());
                                    }
                                }
                                Ok(watcher::Event::Delete(_)) => {}
                                Err(error) => {
                                    observed.errors += 1;
                                    observed.last_error = Some(error.to_string());
                                }
                            }
                        }
                    });
                })
                .expect("a thread for the watch")
        };
        ready_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "the benchmark's watch on {namespace} did not start within 60 s (last error: {:?})",
                    lock(&state).last_error
                )
            });
        Self {
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Reads the observations under the lock.
    pub fn read<R>(&self, read: impl FnOnce(&Observed) -> R) -> R {
        read(&lock(&self.state))
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(state: &Mutex<Observed>) -> MutexGuard<'_, Observed> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `shared N=1000 (job API)`.
fn run_title(sharing: Sharing, objects: usize, source: WaitSource) -> String {
    format!("{} N={objects} ({})", sharing.label(), source.label())
}

/// `calls` in `window`, per `interval`.
fn per_interval(calls: u64, interval: Duration, window: Duration) -> f64 {
    if window.is_zero() {
        return 0.0;
    }
    calls as f64 * interval.as_secs_f64() / window.as_secs_f64()
}
