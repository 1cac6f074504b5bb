//! `dcs-task-operator query` end to end: the real binary against the simulator running as a
//! separate process, checked through the CLI's output and the simulator's request counters.
//!
//! Each test starts its own simulator, so tests run in parallel without sharing counters.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use dcs_task_operator::sim::{DEMO_ACCESS_KEY, DEMO_PROJECT_ID, DEMO_SECRET_KEY};
use serde_json::{Value, json};
use support::sim_process::{CliProcess, SimProcess, demo_env, describe, package_root, run_cli};

/// What `--allow-endpoint` needs for a simulator on any loopback port.
const ALLOW_LOOPBACK: &str = "http://127.0.0.1:*";

/// 2,500 finished tasks in the demo project.
const MANY_TASKS: &str = "examples/sim/many-tasks.yaml";

/// The gateway's throttling answer, as Huawei Cloud sends it.
fn throttle_body() -> Value {
    json!({
        "error_code": "APIG.0308",
        "error_msg": "The throttling threshold has been reached: policy user over ratelimit,limit:5,time:1 minute"
    })
}

/// Temporary manifests, removed with the value.
struct Manifests {
    dir: tempfile::TempDir,
}

impl Manifests {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    /// Writes a `DcsTaskQuery` named `name` with `spec` as YAML and returns its path.
    fn write(&self, name: &str, spec: Value) -> PathBuf {
        let object = json!({
            "apiVersion": "dcs.hwcloud.dev/v1alpha1",
            "kind": "DcsTaskQuery",
            "metadata": {"name": name},
            "spec": spec,
        });
        let path = self.dir.path().join(format!("{name}.yaml"));
        let yaml = serde_yaml_ng::to_string(&object).expect("JSON values render as YAML");
        std::fs::write(&path, yaml).expect("the manifest is written");
        path
    }
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn exit_code(output: &Output) -> i32 {
    output
        .status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal\n{}", describe(output)))
}

#[track_caller]
fn assert_exit(output: &Output, expected: i32) {
    assert_eq!(exit_code(output), expected, "{}", describe(output));
}

/// The `.status` of the object a `-o json` one-shot run printed.
#[track_caller]
fn status_of(output: &Output) -> Value {
    let object: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "stdout is not one JSON object ({error})\n{}",
            describe(output)
        )
    });
    object["status"].clone()
}

/// Every object a `-o json --watch` run printed, in order.
fn json_stream(output: &Output) -> Vec<Value> {
    serde_json::Deserializer::from_slice(&output.stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|error| {
            panic!(
                "stdout is not a JSON stream ({error})\n{}",
                describe(output)
            )
        })
}

/// The condition of type `type_` in a status.
#[track_caller]
fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status:#}"))
}

/// `query -f MANIFEST -o json ARGS...` with the demo credentials.
fn query_json(manifest: &Path, args: &[&str]) -> Output {
    let mut all = vec!["query", "-f", path_arg(manifest), "-o", "json"];
    all.extend_from_slice(args);
    run_cli(&all, &demo_env())
}

// ---------------------------------------------------------------------------------------------
// Paging

fn paging_with_task_count_as(encoding: &str) {
    let sim = SimProcess::start(Some(Path::new(MANY_TASKS)), &["--task-count-as", encoding]);
    assert_eq!(
        sim.config()["taskCount"],
        encoding,
        "--task-count-as reached the simulator"
    );
    let files = Manifests::new();
    let spec =
        |query: Value| json!({"region": "cn-north-4", "endpoint": sim.base_url(), "query": query});
    let allow = ["--allow-endpoint", ALLOW_LOOPBACK];

    // The whole window: 1000 + 1000 + 500, and no trailing empty page.
    let all_pages = files.write("all-pages", spec(json!({"allPages": true, "limit": 1000})));
    let output = query_json(&all_pages, &allow);
    assert_exit(&output, 0);
    let status = status_of(&output);
    assert_eq!(status["taskCount"], 2500, "{status:#}");
    assert_eq!(status["matchedCount"], 2500, "{status:#}");
    assert_eq!(
        status["tasks"].as_array().map(Vec::len),
        Some(20),
        "default maxTasks"
    );
    assert_eq!(condition(&status, "Ready")["status"], "True");
    assert!(status.get("lastError").is_none(), "{status:#}");
    let counts = sim.counts(DEMO_PROJECT_ID);
    assert_eq!(
        (counts.requests, counts.ok),
        (3, 3),
        "2,500 tasks at limit 1000 take exactly 3 calls: {counts:?}"
    );
    assert_eq!(
        sim.total_requests(),
        3,
        "no request went to another project"
    );

    // One page, exactly as asked.
    sim.reset_stats();
    let one_page = files.write("one-page", spec(json!({"allPages": false, "limit": 1000})));
    let output = query_json(&one_page, &allow);
    assert_exit(&output, 0);
    let status = status_of(&output);
    assert_eq!(status["taskCount"], 2500, "{status:#}");
    assert_eq!(status["matchedCount"], 1000, "{status:#}");
    assert_eq!(sim.counts(DEMO_PROJECT_ID).requests, 1);

    // Paging stopped by maxPages: two calls, and the status says the listing is partial.
    sim.reset_stats();
    let two_pages = files.write(
        "two-pages",
        spec(json!({"allPages": true, "limit": 1000, "maxPages": 2})),
    );
    let output = query_json(&two_pages, &allow);
    assert_exit(&output, 0);
    let status = status_of(&output);
    assert_eq!(status["taskCount"], 2500, "{status:#}");
    assert_eq!(status["matchedCount"], 2000, "{status:#}");
    let ready = condition(&status, "Ready");
    assert_eq!(ready["status"], "True", "{status:#}");
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("2000 of 2500") && message.contains("maxPages"),
        "the Ready message tells the listing stopped early: {message}"
    );
    assert_eq!(sim.counts(DEMO_PROJECT_ID).requests, 2);
}

#[test]
fn paging_follows_task_count_sent_as_a_string() {
    paging_with_task_count_as("string");
}

#[test]
fn paging_follows_task_count_sent_as_a_number() {
    paging_with_task_count_as("number");
}

// ---------------------------------------------------------------------------------------------
// Faults

#[test]
fn a_short_throttling_burst_is_retried_away() {
    let sim = SimProcess::start(None, &[]);
    let files = Manifests::new();
    let manifest = files.write("throttled", json!({"region": "cn-north-4"}));
    sim.inject_fault(json!({"count": 3, "status": 429, "body": throttle_body()}));

    let output = query_json(&manifest, &["--endpoint", sim.base_url()]);
    assert_exit(&output, 0);
    let status = status_of(&output);
    assert_eq!(
        status["matchedCount"], 5,
        "the default scenario's tasks: {status:#}"
    );
    assert_eq!(condition(&status, "Ready")["status"], "True");
    assert!(status.get("lastError").is_none(), "{status:#}");
    let counts = sim.counts(DEMO_PROJECT_ID);
    assert_eq!(
        (counts.requests, counts.faulted, counts.ok),
        (4, 3, 1),
        "three throttled attempts, then the answer: {counts:?}"
    );
}

#[test]
fn a_throttling_burst_longer_than_the_retry_budget_fails_the_query() {
    let sim = SimProcess::start(None, &[]);
    let files = Manifests::new();
    let manifest = files.write("throttled-long", json!({"region": "cn-north-4"}));
    sim.inject_fault(json!({"count": 10, "status": 429, "body": throttle_body()}));

    let output = query_json(&manifest, &["--endpoint", sim.base_url()]);
    assert_exit(&output, 1);
    let status = status_of(&output);
    let error = &status["lastError"];
    assert_eq!(error["httpStatus"], 429, "{status:#}");
    assert_eq!(error["errorCode"], "APIG.0308", "{status:#}");
    assert!(
        error["errorMsg"]
            .as_str()
            .is_some_and(|m| m.contains("throttling threshold")),
        "{status:#}"
    );
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("throttling"),
        "lastError.message says what happened: {message}"
    );
    assert_ne!(condition(&status, "Ready")["status"], "True");
    assert!(
        stderr(&output).contains("429"),
        "the failure is logged\n{}",
        describe(&output)
    );
    // One attempt plus the 4 retries of the default policy, then it gave up.
    let counts = sim.counts(DEMO_PROJECT_ID);
    assert_eq!(
        (counts.requests, counts.faulted, counts.ok),
        (5, 5, 0),
        "{counts:?}"
    );
    assert_eq!(
        sim.clear_faults(),
        5,
        "the rest of the burst was never asked for"
    );
}

#[test]
fn a_dropped_connection_is_survived() {
    let sim = SimProcess::start(None, &[]);
    let files = Manifests::new();
    let manifest = files.write("dropped", json!({"region": "cn-north-4"}));
    sim.inject_fault(json!({"count": 1, "drop": true}));

    let output = query_json(&manifest, &["--endpoint", sim.base_url()]);
    assert_exit(&output, 0);
    let status = status_of(&output);
    assert_eq!(status["matchedCount"], 5, "{status:#}");
    let counts = sim.counts(DEMO_PROJECT_ID);
    assert_eq!(
        (counts.requests, counts.faulted, counts.ok),
        (2, 1, 1),
        "{counts:?}"
    );
}

#[test]
fn throttling_with_retry_after_waits_as_asked() {
    let sim = SimProcess::start(None, &[]);
    let files = Manifests::new();
    let manifest = files.write("retry-after", json!({"region": "cn-north-4"}));
    sim.inject_fault(json!({"count": 1, "status": 429, "retryAfter": 2, "body": throttle_body()}));
    let started = Instant::now();
    let output = query_json(&manifest, &["--endpoint", sim.base_url()]);
    let took = started.elapsed();
    assert_exit(&output, 0);
    // The default backoff would retry after ~0.5 s; the gateway asked for 2 s.
    assert!(took >= Duration::from_secs(2), "retried after {took:?}");
    let counts = sim.counts(DEMO_PROJECT_ID);
    assert_eq!(
        (counts.requests, counts.faulted, counts.ok),
        (2, 1, 1),
        "{counts:?}"
    );
}

#[test]
fn an_answer_slower_than_the_request_timeout_is_retried() {
    let sim = SimProcess::start(None, &[]);
    let files = Manifests::new();
    let manifest = files.write("slow", json!({"region": "cn-north-4"}));
    sim.inject_fault(json!({"count": 1, "latency": "5s"}));
    let started = Instant::now();
    let output = query_json(
        &manifest,
        &["--endpoint", sim.base_url(), "--request-timeout", "1s"],
    );
    let took = started.elapsed();
    assert_exit(&output, 0);
    assert_eq!(status_of(&output)["matchedCount"], 5);
    // It gave up on the slow answer (the simulator drops a request whose client left, so only
    // the retry is counted) instead of waiting the 5 s out.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(sim.counts(DEMO_PROJECT_ID).ok, 1);
}

#[test]
fn truncated_and_non_json_bodies_are_reported_not_decoded() {
    let files = Manifests::new();
    let manifest = files.write("garbled", json!({"region": "cn-north-4"}));
    for body in [
        json!("<html>502 Bad Gateway</html>"),
        json!("{\"task_count\": \"3\", \"tasks\": [{\"id\": \"a\""),
    ] {
        let sim = SimProcess::start(None, &[]);
        sim.inject_fault(json!({"count": 1, "status": 200, "body": body}));
        let output = query_json(&manifest, &["--endpoint", sim.base_url()]);
        assert_exit(&output, 1);
        let status = status_of(&output);
        let message = status["lastError"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("not the task list"), "{status:#}");
        assert_ne!(condition(&status, "Stalled")["status"], "True", "transient");
    }
}

#[test]
fn a_task_count_that_disagrees_with_the_pages_stops_at_max_pages_counting_each_task_once() {
    let sim = SimProcess::start(None, &[]);
    let files = Manifests::new();
    let manifest = files.write(
        "liar",
        json!({"region": "cn-north-4", "query": {"maxPages": 3, "limit": 100}}),
    );
    // Claims 5,000 tasks, sends the same three (one of them twice) on every page.
    let task = |id: &str| {
        json!({"id": id, "name": "EXTEND", "status": "SUCCESS",
        "created_at": "2026-11-27T08:00:00.000Z"})
    };
    sim.inject_fault(json!({"count": 100, "status": 200,
        "body": {"task_count": "5000", "tasks": [task("a"), task("b"), task("c"), task("a")]}}));
    let output = query_json(&manifest, &["--endpoint", sim.base_url()]);
    assert_exit(&output, 0);
    let status = status_of(&output);
    assert_eq!(status["matchedCount"], 3, "{status:#}");
    let message = condition(&status, "Ready")["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("paging stopped at spec.query.maxPages"),
        "{message}"
    );
    assert_eq!(
        sim.counts(DEMO_PROJECT_ID).requests,
        3,
        "maxPages bounds the calls"
    );
}

// ---------------------------------------------------------------------------------------------
// Authentication

#[test]
fn a_wrong_secret_key_fails_once_without_leaking_it() {
    const WRONG_SECRET: &str = "wrong-secret-Zq9xK2";
    let sim = SimProcess::start(None, &[]);
    let files = Manifests::new();
    let manifest = files.write("bad-signature", json!({"region": "cn-north-4"}));
    let env = [
        ("HUAWEICLOUD_SDK_AK", DEMO_ACCESS_KEY),
        ("HUAWEICLOUD_SDK_SK", WRONG_SECRET),
        ("HUAWEICLOUD_SDK_PROJECT_ID", DEMO_PROJECT_ID),
    ];
    for (format, log_args) in [
        ("json", &["--log-level", "info"][..]),
        ("table", &["--log-level", "debug"][..]),
        (
            "yaml",
            &["--log-level", "trace", "--log-format", "json"][..],
        ),
    ] {
        sim.reset_stats();
        let mut args = vec![
            "query",
            "-f",
            path_arg(&manifest),
            "--endpoint",
            sim.base_url(),
            "-o",
            format,
        ];
        args.extend_from_slice(log_args);
        let output = run_cli(&args, &env);
        let run = format!("-o {format} {log_args:?}");
        assert_exit(&output, 1);
        let (out, err) = (stdout(&output), stderr(&output));
        for (stream, text) in [("stdout", &out), ("stderr", &err)] {
            assert!(
                text.contains("401") && text.contains("APIG.0301"),
                "{run}: {stream} names the refusal\n{}",
                describe(&output)
            );
            assert!(
                !text.contains(WRONG_SECRET),
                "{run}: the secret key appears on {stream}\n{}",
                describe(&output)
            );
        }
        if format == "json" {
            let status = status_of(&output);
            assert_eq!(status["lastError"]["httpStatus"], 401, "{status:#}");
            assert_eq!(status["lastError"]["errorCode"], "APIG.0301", "{status:#}");
            let stalled = condition(&status, "Stalled");
            assert_eq!(stalled["status"], "True", "{status:#}");
            assert_eq!(stalled["reason"], "AuthenticationFailed", "{status:#}");
        }
        let counts = sim.counts(DEMO_PROJECT_ID);
        assert_eq!(
            (counts.requests, counts.unauthorized, counts.ok),
            (1, 1, 0),
            "{run}: one refused request and no retry: {counts:?}"
        );
    }
}

#[test]
fn credentials_come_only_from_the_environment() {
    let sim = SimProcess::start(None, &[]);
    let files = Manifests::new();
    let manifest = files.write("credentials", json!({"region": "cn-north-4"}));
    let run = |env: &[(&str, &str)]| {
        run_cli(
            &[
                "query",
                "-f",
                path_arg(&manifest),
                "--endpoint",
                sim.base_url(),
                "-o",
                "json",
            ],
            env,
        )
    };

    // Terraform's variable names work as well as the SDK's.
    let output = run(&[
        ("HW_ACCESS_KEY", DEMO_ACCESS_KEY),
        ("HW_SECRET_KEY", DEMO_SECRET_KEY),
        ("HW_PROJECT_ID", DEMO_PROJECT_ID),
    ]);
    assert_exit(&output, 0);
    assert_eq!(sim.counts(DEMO_PROJECT_ID).ok, 1);
    sim.reset_stats();

    // Missing or incomplete credentials: exit 2 naming what to set, no request. (Without a
    // project id the project is discovered: see the next test.)
    for (env, expected) in [
        (&[][..], "HUAWEICLOUD_SDK_AK"),
        (
            &[("HUAWEICLOUD_SDK_AK", DEMO_ACCESS_KEY)][..],
            "HUAWEICLOUD_SDK_AK is set but HUAWEICLOUD_SDK_SK is not",
        ),
    ] {
        let output = run(env);
        assert_exit(&output, 2);
        assert!(
            stderr(&output).contains(expected),
            "stderr names `{expected}`\n{}",
            describe(&output)
        );
        assert_eq!(sim.total_requests(), 0, "{}", describe(&output));
    }
}

#[test]
fn the_project_id_is_discovered_through_iam_when_none_is_given() {
    let sim = SimProcess::start(None, &[]);
    let files = Manifests::new();
    let env = [
        ("HUAWEICLOUD_SDK_AK", DEMO_ACCESS_KEY),
        ("HUAWEICLOUD_SDK_SK", DEMO_SECRET_KEY),
        ("HUAWEICLOUD_SDK_IAM_ENDPOINT", sim.base_url()),
    ];
    let run = |region: &str, allow: &[&str]| {
        let manifest = files.write(region, json!({"region": region}));
        let mut args = vec![
            "query",
            "-f",
            path_arg(&manifest),
            "--endpoint",
            sim.base_url(),
            "-o",
            "json",
        ];
        args.extend_from_slice(allow);
        run_cli(&args, &env)
    };
    let allow = ["--allow-endpoint", ALLOW_LOOPBACK];

    // The simulator's IAM names the demo project for cn-north-4: one IAM call, then the list.
    let output = run("cn-north-4", &allow);
    assert_exit(&output, 0);
    assert_eq!(status_of(&output)["projectId"], DEMO_PROJECT_ID);
    assert_eq!(sim.counts(DEMO_PROJECT_ID).ok, 1);
    assert_eq!(sim.stats()["iam"]["ok"], 1, "{}", sim.stats());

    // A region without a project: exit 1, the exact reason, Stalled, and no task-list call.
    sim.reset_stats();
    let output = run("eu-west-101", &allow);
    assert_exit(&output, 1);
    let message = stderr(&output);
    assert!(
        message.contains("IAM lists no project named \"eu-west-101\"")
            && message.contains("set spec.projectId"),
        "{}",
        describe(&output)
    );
    let stalled = condition(&status_of(&output), "Stalled").clone();
    assert_eq!(stalled["reason"], "ProjectDiscoveryFailed", "{stalled}");
    assert_eq!(sim.stats()["iam"]["requests"], 1);
    assert_eq!(sim.total_requests(), 0);

    // A non-default IAM endpoint must pass the allow-list, like a DCS endpoint (the typed
    // --endpoint allows only its own origin): no request.
    sim.reset_stats();
    let output = run("cn-north-4", &["--iam-endpoint", "http://127.0.0.1:1"]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("--allow-endpoint"),
        "{}",
        describe(&output)
    );
    assert_eq!(sim.stats()["iam"]["requests"], 0);
    assert_eq!(sim.total_requests(), 0);
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// Index of the first line containing every one of `parts`.
fn line_with(text: &str, parts: &[&str]) -> Option<usize> {
    text.lines()
        .position(|line| parts.iter().all(|part| line.contains(part)))
}

/// Runs the README's demo with `sim` and checks the watch prints Pending/EXECUTING first, then
/// `final_phase`/`final_status`, and exits with `exit` within 25 s. Returns stdout.
fn watch_demo(sim: &str, exit: i32, final_phase: &str, final_status: &str) -> String {
    let started = Instant::now();
    let output = run_cli(
        &[
            "query",
            sim,
            "-f",
            "examples/wait-for-switchover.yaml",
            "--watch",
        ],
        &[],
    );
    let took = started.elapsed();
    assert_exit(&output, exit);
    assert!(took < Duration::from_secs(25), "took {took:?}");
    let out = stdout(&output);
    let pending = line_with(&out, &["Wait=Pending", "EXECUTING"]);
    let last = line_with(&out, &[&format!("Wait={final_phase}"), final_status]);
    assert!(
        matches!((pending, last), (Some(p), Some(l)) if p < l),
        "Pending/EXECUTING first, then {final_phase}\n{}",
        describe(&output)
    );
    out
}

#[test]
fn watching_the_demo_switchover_ends_in_success() {
    let out = watch_demo("--sim", 0, "Succeeded", "SUCCESS");
    assert!(!out.contains("Wait=Failed"), "{out}");
}

#[test]
fn watching_a_failing_switchover_exits_1() {
    let out = watch_demo(
        "--sim=examples/sim/failed-switchover.yaml",
        1,
        "Failed",
        "FAILED",
    );
    assert!(out.contains("DCS.5094"), "the task's error code is shown");
}

/// What `query --watch` printed for a `jobId` wait read from `source`, whose job the test ends
/// (SUCCESS) once the CLI has seen it running: the waits printed, and the simulator's stats at
/// the end. For the task list the job is a task (EXECUTING); for the job API, a job without a
/// task (RUNNING), so nothing in the list runs and it is polled at `interval`.
fn watch_a_job_wait(source: &str) -> (Vec<Value>, Value) {
    let sim = SimProcess::start(None, &[]);
    // Past the demo's own timelines: no demo task is running.
    sim.advance_clock("1h");
    if source == "Job" {
        let added = sim.add_job(json!({"id": JOB_ID, "jobType": "EXTEND", "status": "RUNNING"}));
        assert_eq!(added, JOB_ID);
    } else {
        let added = sim.add_task(json!({
            "id": JOB_TASK_ID,
            "name": "EXTEND",
            "jobId": JOB_ID,
            "createdAt": "-1s",
            "status": "EXECUTING",
        }));
        assert_eq!(added, JOB_TASK_ID);
    }
    let files = Manifests::new();
    let manifest = files.write(
        "wait-for-job",
        json!({
            "region": "cn-north-4",
            "query": {"since": "1h"},
            "waitFor": {"jobId": JOB_ID, "source": source, "timeout": "5m"},
            "activeInterval": "2s",
        }),
    );
    let started = Instant::now();
    let cli = CliProcess::spawn(
        &[
            "query",
            "-f",
            path_arg(&manifest),
            "--endpoint",
            sim.base_url(),
            "-o",
            "json",
            "--watch",
        ],
        &demo_env(),
    );
    // The task stays EXECUTING until told otherwise; change it once the CLI has seen it so.
    let deadline = Instant::now() + Duration::from_secs(20);
    let polled = || match source {
        "Job" => sim.stats()["jobs"]["projects"][DEMO_PROJECT_ID]["ok"]
            .as_u64()
            .unwrap_or(0),
        _ => sim.counts(DEMO_PROJECT_ID).ok,
    };
    while polled() == 0 {
        assert!(Instant::now() < deadline, "the CLI never polled");
        std::thread::sleep(Duration::from_millis(50));
    }
    if source == "Job" {
        sim.set_job_status(JOB_ID, "SUCCESS");
    } else {
        sim.set_status(JOB_TASK_ID, "SUCCESS");
    }
    let output = cli.finish(Duration::from_secs(40));
    assert_exit(&output, 0);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let waits = json_stream(&output)
        .iter()
        .map(|o| o["status"]["waitFor"].clone())
        .collect();
    (waits, sim.stats())
}

const JOB_ID: &str = "ff80808190a1b2c30190a1b2c3d4e0f0";
const JOB_TASK_ID: &str = "ff80808190a1b2c30190a1b2c3d4e0f1";

#[test]
fn waiting_for_a_job_id_in_the_task_list_follows_a_status_set_through_the_admin_api() {
    let (waits, stats) = watch_a_job_wait("TaskList");
    let (first, last) = (&waits[0], &waits[waits.len() - 1]);
    assert_eq!(
        (&first["phase"], &first["status"]),
        (&json!("Pending"), &json!("EXECUTING")),
        "{waits:?}"
    );
    assert_eq!(
        (&last["phase"], &last["status"]),
        (&json!("Succeeded"), &json!("SUCCESS")),
        "{waits:?}"
    );
    assert_eq!(last["jobId"], JOB_ID);
    assert_eq!(last["taskId"], JOB_TASK_ID);
    assert!(stats["projects"][DEMO_PROJECT_ID]["ok"].as_u64() >= Some(2));
    assert_eq!(
        stats.get("jobs"),
        None,
        "a TaskList wait never asks the job API"
    );
}

#[test]
fn waiting_for_a_job_id_asks_the_job_api_by_default() {
    let (waits, stats) = watch_a_job_wait("Job");
    let (first, last) = (&waits[0], &waits[waits.len() - 1]);
    // The job vocabulary: RUNNING, then SUCCESS; the job's type and times come from the job API.
    assert_eq!(
        (&first["phase"], &first["status"]),
        (&json!("Pending"), &json!("RUNNING")),
        "{waits:?}"
    );
    assert_eq!(
        (&last["phase"], &last["status"], &last["jobType"]),
        (&json!("Succeeded"), &json!("SUCCESS"), &json!("EXTEND")),
        "{waits:?}"
    );
    assert_eq!(last["jobId"], JOB_ID);
    assert!(
        last["beganAt"].is_string() && last["endedAt"].is_string(),
        "{last}"
    );
    assert_eq!(last.get("taskId"), None, "{last}");
    let jobs = &stats["jobs"]["projects"][DEMO_PROJECT_ID];
    assert!(jobs["byJob"][JOB_ID].as_u64() >= Some(2), "{stats}");
    // The task list, polled at spec.interval (1m) while only the job is awaited, is asked once.
    assert_eq!(stats["projects"][DEMO_PROJECT_ID]["ok"], 1, "{stats}");
}

// ---------------------------------------------------------------------------------------------
// Invalid input

/// Merges `patch` into `base`, objects recursively.
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(base.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

/// The part of `text` that starts at `field` (as a whole path, not a prefix of a longer one) and
/// runs to the end of that error: the next `; ` or line end.
fn field_errors<'a>(text: &'a str, field: &str) -> Vec<&'a str> {
    text.match_indices(field)
        .filter(|(at, _)| {
            let next = text[at + field.len()..].chars().next();
            !next.is_some_and(|c| c.is_alphanumeric() || c == '.' || c == '_')
        })
        .map(|(at, _)| {
            let rest = &text[at..];
            let end = [rest.find("; "), rest.find('\n')]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

#[test]
fn invalid_specs_exit_2_naming_field_and_rule_without_calling_the_api() {
    let sim = SimProcess::start(None, &[]);
    let files = Manifests::new();
    let base = json!({"region": "cn-north-4", "endpoint": sim.base_url()});
    let allow = ["--allow-endpoint", ALLOW_LOOPBACK];

    // The harness can reach the simulator: a valid spec makes exactly one call.
    let valid = files.write("valid", base.clone());
    let output = query_json(&valid, &allow);
    assert_exit(&output, 0);
    assert_eq!(sim.total_requests(), 1);
    sim.reset_stats();

    // (what, patch, field, rule fragment, whether a status is printed)
    let cases: Vec<(&str, Value, &str, &str, bool)> = vec![
        (
            "limit 0",
            json!({"query": {"limit": 0}}),
            "spec.query.limit",
            "between 1 and 1000",
            true,
        ),
        (
            "limit 1001",
            json!({"query": {"limit": 1001}}),
            "spec.query.limit",
            "between 1 and 1000",
            true,
        ),
        (
            "negative offset",
            json!({"query": {"offset": -1}}),
            "spec.query.offset",
            "at least 0",
            true,
        ),
        (
            "startTime not yyyyMMddHHmmss",
            json!({"query": {"startTime": "2024-01-01 00:00:00"}}),
            "spec.query.startTime",
            "yyyyMMddHHmmss",
            true,
        ),
        (
            "startTime after endTime",
            json!({"query": {"startTime": "20240102000000", "endTime": "20240101000000"}}),
            "spec.query.startTime",
            "must not be after spec.query.endTime",
            true,
        ),
        (
            "since with startTime",
            json!({"query": {"since": "24h", "startTime": "20240101000000"}}),
            "spec.query.since",
            "mutually exclusive",
            true,
        ),
        (
            "interval 5s",
            json!({"interval": "5s"}),
            "spec.interval",
            "between 10s and 24h",
            true,
        ),
        (
            "activeInterval 1s",
            json!({"activeInterval": "1s"}),
            "spec.activeInterval",
            "between 2s and 24h",
            true,
        ),
        (
            "maxTasks 201",
            json!({"maxTasks": 201}),
            "spec.maxTasks",
            "between 0 and 200",
            true,
        ),
        (
            "waitFor with jobId and name",
            json!({"waitFor": {"jobId": "ff80808188bfde180188c36bb9c44a2f", "name": "EXTEND"}}),
            "spec.waitFor",
            "exactly one of jobId",
            true,
        ),
        (
            "waitFor with neither jobId nor name",
            json!({"waitFor": {"timeout": "10m"}}),
            "spec.waitFor",
            "exactly one of jobId",
            true,
        ),
        (
            "overlapping success and failure statuses",
            json!({"waitFor": {"jobId": "j1", "successStatuses": ["SUCCESS", "FAILED"]}}),
            "spec.waitFor.successStatuses",
            "must not overlap spec.waitFor.failureStatuses",
            true,
        ),
        (
            "bad region",
            json!({"region": "Beijing"}),
            "spec.region",
            "region id",
            true,
        ),
        (
            "endpoint with a path",
            json!({"endpoint": format!("{}/v2", sim.base_url())}),
            "spec.endpoint",
            "no path",
            true,
        ),
        (
            "misspelled waitFor",
            json!({"waitfor": {"jobId": "ff80808188bfde180188c36bb9c44a2f"}}),
            "spec.waitfor",
            "did you mean spec.waitFor",
            false,
        ),
    ];

    let mut failures = Vec::new();
    for (index, (what, patch, field, rule, prints_status)) in cases.iter().enumerate() {
        let mut spec = base.clone();
        merge(&mut spec, patch);
        let manifest = files.write(&format!("bad-{index}"), spec);
        let output = query_json(&manifest, &allow);
        let err = stderr(&output);
        let mut problems = Vec::new();
        if exit_code(&output) != 2 {
            problems.push(format!("exit code {:?}, not 2", output.status.code()));
        }
        let named = field_errors(&err, field);
        if !named.iter().any(|error| error.contains(rule)) {
            problems.push(format!(
                "stderr does not name {field} with `{rule}` (found {named:?})"
            ));
        }
        if *prints_status {
            let stalled = serde_json::from_slice::<Value>(&output.stdout)
                .ok()
                .map(|object| condition(&object["status"], "Stalled").clone());
            let ok = stalled.as_ref().is_some_and(|c| {
                c["status"] == "True"
                    && c["reason"] == "InvalidSpec"
                    && c["message"].as_str().is_some_and(|m| m.contains(field))
            });
            if !ok {
                problems.push(format!("stdout has no Stalled/InvalidSpec naming {field}"));
            }
        }
        let requests = sim.total_requests();
        if requests != 0 {
            problems.push(format!("{requests} request(s) reached the simulator"));
            sim.reset_stats();
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{what}: {}\n{}",
                problems.join("; "),
                describe(&output)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn an_endpoint_off_the_allow_list_exits_2_suggesting_allow_endpoint() {
    let sim = SimProcess::start(None, &[]);
    let files = Manifests::new();
    let manifest = files.write(
        "unlisted-endpoint",
        json!({"region": "cn-north-4", "endpoint": sim.base_url()}),
    );
    let output = query_json(&manifest, &[]);
    assert_exit(&output, 2);
    let suggestion = format!("--allow-endpoint {}", sim.base_url());
    assert!(
        stderr(&output).contains(&suggestion),
        "stderr suggests `{suggestion}`\n{}",
        describe(&output)
    );
    let status = status_of(&output);
    assert_eq!(
        condition(&status, "Stalled")["reason"],
        "EndpointNotAllowed"
    );
    assert_eq!(sim.total_requests(), 0);

    // The suggestion works as given.
    let output = query_json(&manifest, &["--allow-endpoint", sim.base_url()]);
    assert_exit(&output, 0);
    assert_eq!(sim.total_requests(), 1);
}

// ---------------------------------------------------------------------------------------------
// Other output

#[test]
fn crd_prints_the_committed_crd() {
    let output = run_cli(&["crd"], &[]);
    assert_exit(&output, 0);
    let committed =
        std::fs::read_to_string(package_root().join("crds/dcstaskqueries.dcs.hwcloud.dev.yaml"))
            .expect("the committed CRD");
    assert!(
        stdout(&output) == committed,
        "`dcs-task-operator crd` differs from crds/dcstaskqueries.dcs.hwcloud.dev.yaml; \
         regenerate it with `cargo run -- crd > crds/dcstaskqueries.dcs.hwcloud.dev.yaml`"
    );
}

#[test]
fn yaml_and_table_output() {
    let sim = SimProcess::start(None, &[]);
    let files = Manifests::new();
    let manifest = files.write("formats", json!({"region": "cn-north-4", "maxTasks": 3}));
    let args = |format: Option<&'static str>| {
        let mut args = vec![
            "query".to_string(),
            "-f".into(),
            path_arg(&manifest).into(),
            "--endpoint".into(),
            sim.base_url().into(),
        ];
        if let Some(format) = format {
            args.extend(["-o".to_string(), format.into()]);
        }
        args
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&args, &demo_env())
    };

    let output = run(args(Some("yaml")));
    assert_exit(&output, 0);
    let out = stdout(&output);
    assert!(out.starts_with("---\n"), "{}", describe(&output));
    let object: Value = serde_yaml_ng::from_str(&out)
        .unwrap_or_else(|error| panic!("not YAML ({error})\n{}", describe(&output)));
    assert_eq!(object["kind"], "DcsTaskQuery");
    assert_eq!(object["metadata"]["name"], "formats");
    assert_eq!(object["spec"]["maxTasks"], 3);
    assert_eq!(object["status"]["matchedCount"], 5, "{object:#}");
    assert_eq!(object["status"]["tasks"].as_array().map(Vec::len), Some(3));
    assert_eq!(condition(&object["status"], "Ready")["status"], "True");

    let output = run(args(None));
    assert_exit(&output, 0);
    let out = stdout(&output);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 2, "{}", describe(&output));
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header[..3],
        ["NAME", "READY", "WAIT"],
        "{}",
        describe(&output)
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        row[..4],
        ["formats", "True", "-", "5"],
        "{}",
        describe(&output)
    );
    // Columns line up: each value starts under its heading.
    assert_eq!(lines[0].find("READY"), lines[1].find("True"), "{out}");
    assert_eq!(lines[0].find("MATCHED"), lines[1].find('5'), "{out}");
    assert!(
        out.contains("TASKS (newest first, 3 of 5 matched, task_count 5)"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile input

#[test]
fn upstream_text_cannot_drive_the_terminal() {
    let sim = SimProcess::start(None, &[]);
    sim.inject_fault(
        json!({"count": 10, "status": 200, "body": {"task_count": 1, "tasks": [{
            "id": "t1", "name": "\u{1b}]0;owned\u{7}EXTEND\u{1b}[2J", "status": "SUCCESS\u{9b}31m",
            "created_at": "2026-11-27T08:00:00.000Z", "params": "\u{1b}[31mred"
        }]}}),
    );
    let files = Manifests::new();
    let manifest = files.write(
        "escapes",
        json!({"region": "cn-north-4", "endpoint": sim.base_url()}),
    );
    for format in ["table", "json", "yaml"] {
        let output = run_cli(
            &[
                "query",
                "-f",
                path_arg(&manifest),
                "--allow-endpoint",
                ALLOW_LOOPBACK,
                "-o",
                format,
            ],
            &demo_env(),
        );
        assert_exit(&output, 0);
        let printed = stdout(&output);
        assert!(printed.contains("EXTEND"), "{format}: {printed}");
        for control in ['\u{1b}', '\u{9b}', '\u{7}'] {
            assert!(
                !printed.contains(control),
                "{format} printed {control:?}: {printed:?}"
            );
        }
    }
}

#[test]
fn durations_beyond_any_calendar_are_refused_not_a_crash() {
    let files = Manifests::new();
    for (field, spec) in [
        (
            "spec.query.since",
            json!({"query": {"since": "3000000000h"}}),
        ),
        ("spec.interval", json!({"interval": "3000000000h"})),
        (
            "spec.activeInterval",
            json!({"activeInterval": "3000000000h"}),
        ),
        (
            "spec.waitFor.timeout",
            json!({"waitFor": {"jobId": "j", "timeout": "3000000000h"}}),
        ),
        (
            "spec.waitFor.lookback",
            json!({"waitFor": {"name": "n", "lookback": "3000000000h"}}),
        ),
    ] {
        let mut full = json!({"region": "cn-north-4"});
        full.as_object_mut()
            .unwrap()
            .extend(spec.as_object().unwrap().clone());
        let manifest = files.write("huge", full);
        let output = query_json(&manifest, &[]);
        assert_exit(&output, 2);
        let status = status_of(&output);
        let message = condition(&status, "Stalled")["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(message.contains(&format!("{field}: must be")), "{message}");
    }
}

#[test]
fn a_project_id_from_the_environment_is_checked_before_any_call() {
    let sim = SimProcess::start(None, &[]);
    let files = Manifests::new();
    let manifest = files.write(
        "bad-project",
        json!({"region": "cn-north-4", "endpoint": sim.base_url()}),
    );
    let output = run_cli(
        &[
            "query",
            "-f",
            path_arg(&manifest),
            "--allow-endpoint",
            ALLOW_LOOPBACK,
        ],
        &[
            ("HUAWEICLOUD_SDK_AK", DEMO_ACCESS_KEY),
            ("HUAWEICLOUD_SDK_SK", DEMO_SECRET_KEY),
            ("HUAWEICLOUD_SDK_PROJECT_ID", "../x"),
        ],
    );
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("HUAWEICLOUD_SDK_PROJECT_ID / HW_PROJECT_ID: must be"),
        "{}",
        describe(&output)
    );
    assert_eq!(sim.total_requests(), 0, "nothing reached the wire");
}

#[test]
fn an_answer_larger_than_max_body_bytes_is_refused_once() {
    let sim = SimProcess::start(Some(Path::new(MANY_TASKS)), &[]);
    let files = Manifests::new();
    let manifest = files.write(
        "capped",
        json!({"region": "cn-north-4", "endpoint": sim.base_url()}),
    );
    let output = query_json(
        &manifest,
        &[
            "--allow-endpoint",
            ALLOW_LOOPBACK,
            "--max-body-bytes",
            "4096",
        ],
    );
    assert_exit(&output, 1);
    let status = status_of(&output);
    let message = status["lastError"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("4096"), "{message}");
    assert_eq!(
        sim.total_requests(),
        1,
        "a body over the cap is not retried"
    );
}
