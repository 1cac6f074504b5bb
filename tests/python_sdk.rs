//! Huawei Cloud's official Python SDK (`huaweicloudsdkcore` + `huaweicloudsdkdcs`, pinned in
//! `tests/python/requirements.txt`) against the simulator process: its signatures are accepted,
//! its models decode the simulator's answers to exactly what the simulator serves, and its error
//! handling sees the simulator's 404 and 401 as the real API's.
//!
//! The SDK runs in `tests/python/sdk_check.py` under the venv python that `scripts/tools.sh`
//! provisions (`dcs-sdk-python`, found like every test tool: `support::tools`). Without it the
//! test fails with the command that installs it; it never skips.
//!
//! What the SDK decoded is compared with the simulator's own answers to the same requests, made
//! here with the crate's signer and read as raw JSON (not through the crate's models, so a
//! decoding bug shared by the client and this test cannot hide).

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use chrono::Utc;
use dcs_task_operator::dcs::AUTH_FAILED_CODE;
use dcs_task_operator::dcs::sign::{self, SDK_DATE_FORMAT, SignableRequest};
use dcs_task_operator::sim::{DEMO_ACCESS_KEY, DEMO_PROJECT_ID, DEMO_SECRET_KEY};
use serde_json::{Value, json};
use support::sim_process::{ProjectCounts, SimProcess, package_root};
use support::tools;

const SCRIPT: &str = "tests/python/sdk_check.py";
const REQUIREMENTS: &str = "tests/python/requirements.txt";

/// The script makes six requests with 15 s read timeouts; interpreter start-up is under a second.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// A job the scenario does not have: declared here so one job is still running (no `end_time`).
const RUNNING_JOB: &str = "sdk-check-running-job";
const UNKNOWN_JOB: &str = "sdk-check-no-such-job";

/// The task fields the script reads from every `ListCenterTasksResp` (besides `details`).
const TASK_FIELDS: [&str; 11] = [
    "id",
    "name",
    "status",
    "job_id",
    "user_name",
    "user_id",
    "params",
    "error_code",
    "enable_show",
    "created_at",
    "updated_at",
];
const JOB_FIELDS: [&str; 6] = [
    "job_id",
    "job_type",
    "status",
    "begin_time",
    "end_time",
    "fail_reason",
];

#[test]
fn the_official_python_sdk_signs_calls_and_decodes_what_the_simulator_serves() {
    let python = tools::sdk_python();
    let sim = SimProcess::start(None, &[]);
    // Past the end of every timeline of the demo scenario, so nothing changes while the answers
    // are compared (signatures use the real clock, which this does not move).
    sim.advance_clock("1m");
    sim.add_job(json!({
        "id": RUNNING_JOB,
        "jobType": "modifyClientIpTransJob",
        "beginTime": "-5s",
        "status": "RUNNING",
    }));
    let direct = Direct::new(&sim);

    // The simulator's own answers, and from them the jobs worth asking for: the switchover's
    // (ended SUCCESS), a failed task's (FAIL with a reason) and the declared running one.
    let (status, tasks) = direct.get("tasks?offset=0&limit=100", DEMO_SECRET_KEY);
    assert_eq!(status, 200, "{tasks}");
    let raw_tasks = tasks["tasks"].as_array().expect("tasks[]").clone();
    let job_of = |matches: &dyn Fn(&Value) -> bool| -> String {
        raw_tasks
            .iter()
            .find(|task| matches(task) && task["job_id"].is_string())
            .and_then(|task| task["job_id"].as_str())
            .unwrap_or_else(|| panic!("the demo scenario lacks the task: {tasks}"))
            .to_string()
    };
    let switchover_job = job_of(&|task| task["name"] == "masterStandbySwapJob");
    let failed_job = job_of(&|task| task["status"] == "FAILED");
    let job_ids = [
        switchover_job.clone(),
        failed_job.clone(),
        RUNNING_JOB.into(),
    ];
    let raw_jobs: BTreeMap<String, Value> = job_ids
        .iter()
        .map(|id| {
            let (status, job) = direct.get(&format!("jobs/{id}"), DEMO_SECRET_KEY);
            assert_eq!(status, 200, "job {id}: {job}");
            (id.clone(), job)
        })
        .collect();
    // The three shapes a job answer takes are all covered.
    assert_eq!(raw_jobs[&switchover_job]["status"], "SUCCESS");
    assert!(raw_jobs[&switchover_job]["end_time"].is_string());
    assert_eq!(raw_jobs[&failed_job]["status"], "FAIL");
    assert!(raw_jobs[&failed_job]["fail_reason"].is_string());
    assert_eq!(raw_jobs[RUNNING_JOB]["status"], "RUNNING");
    assert!(raw_jobs[RUNNING_JOB]["end_time"].is_null());
    let (unknown_status, raw_unknown) = direct.get(&format!("jobs/{UNKNOWN_JOB}"), DEMO_SECRET_KEY);
    assert_eq!(unknown_status, 404, "{raw_unknown}");
    let (wrong_status, raw_wrong) = direct.get("tasks?limit=1", "not-the-secret-key");
    assert_eq!(wrong_status, 401, "{raw_wrong}");

    sim.reset_stats();
    let sdk = run_script(&python, &sim, &job_ids);

    // Every SDK request reached the simulator and was judged as intended: 2 task-list calls (one
    // refused for its signature) and 4 job calls (one unknown).
    assert_eq!(
        sim.counts(DEMO_PROJECT_ID),
        ProjectCounts {
            requests: 2,
            ok: 1,
            unauthorized: 1,
            ..ProjectCounts::default()
        },
        "task-list requests the simulator counted for the SDK's calls"
    );
    let job_stats = sim.stats()["jobs"]["projects"][DEMO_PROJECT_ID].clone();
    assert_eq!(
        (
            &job_stats["requests"],
            &job_stats["ok"],
            &job_stats["notFound"],
            &job_stats["unauthorized"]
        ),
        (&json!(4), &json!(3), &json!(1), &json!(0)),
        "job requests the simulator counted for the SDK's calls: {job_stats}"
    );

    assert_pinned_versions(&sdk);
    assert_eq!(sdk["problems"], json!([]), "the script's problems");
    assert_eq!(
        sdk["warnings"],
        json!([]),
        "the SDK warned while decoding the simulator's answers"
    );
    let models = &sdk["models"];

    // ListCenterTask.
    let list = &sdk["list"];
    assert_eq!(list["status_code"], 200);
    assert_eq!(
        list["task_count"],
        json!({"value": tasks["task_count"], "type": "str"}),
        "task_count"
    );
    assert_wire_type(
        "task_count",
        &tasks["task_count"],
        &models["ListCenterTaskResponse"]["task_count"],
    );
    assert_eq!(list["tasks_len"], json!(raw_tasks.len()));
    let decoded_tasks = list["tasks"].as_array().expect("decoded tasks");
    let mut coerced = Vec::new();
    for (raw, decoded) in raw_tasks.iter().zip(decoded_tasks) {
        let id = raw["id"].as_str().unwrap_or("?");
        for field in TASK_FIELDS {
            let served = raw.get(field).cloned().unwrap_or(Value::Null);
            let declared = &models["ListCenterTasksResp"][field];
            assert_wire_type(&format!("task {id} {field}"), &served, declared);
            assert_eq!(
                decoded[field]["value"], served,
                "task {id}: the SDK decoded {field} as {} where the simulator sent {served}",
                decoded[field]
            );
            assert_eq!(
                decoded[field]["type"],
                python_type(&served, declared),
                "task {id} {field}"
            );
        }
        compare_details(id, raw, &decoded["details"], models, &mut coerced);
    }

    // ShowJobInfo.
    for (id, raw) in &raw_jobs {
        let decoded = &sdk["jobs"][id];
        assert_eq!(decoded["status_code"], 200, "job {id}: {decoded}");
        for field in JOB_FIELDS {
            let served = raw.get(field).cloned().unwrap_or(Value::Null);
            let declared = &models["ShowJobInfoResponse"][field];
            assert_wire_type(&format!("job {id} {field}"), &served, declared);
            assert_eq!(
                decoded[field],
                json!({"value": served, "type": python_type(&served, declared)}),
                "job {id} {field}"
            );
        }
    }

    // The unknown job: the SDK raises ClientRequestException with the simulator's 404 body.
    assert_eq!(
        sdk["unknown_job"]["exception"], "ClientRequestException",
        "{}",
        sdk["unknown_job"]
    );
    assert_eq!(sdk["unknown_job"]["status_code"], 404);
    assert_eq!(sdk["unknown_job"]["error_code"], raw_unknown["error_code"]);
    assert_eq!(sdk["unknown_job"]["error_msg"], raw_unknown["error_msg"]);

    // The wrong secret key: refused as the gateway refuses a bad signature.
    let wrong = &sdk["wrong_secret_key"];
    assert_eq!(wrong["exception"], "ClientRequestException", "{wrong}");
    assert_eq!(wrong["status_code"], 401, "{wrong}");
    assert_eq!(wrong["error_code"], AUTH_FAILED_CODE, "{wrong}");
    assert_eq!(wrong["error_code"], raw_wrong["error_code"], "{wrong}");

    // Nothing moved while the SDK ran: what it was compared with is still what is served.
    assert_eq!(
        direct.get("tasks?offset=0&limit=100", DEMO_SECRET_KEY),
        (200, tasks)
    );
    for (id, raw) in &raw_jobs {
        assert_eq!(&direct.get(&format!("jobs/{id}"), DEMO_SECRET_KEY).1, raw);
    }

    eprintln!(
        "official Python SDK {} / {} decoded {} tasks and {} jobs as served{}",
        sdk["sdk"]["huaweicloudsdkcore"],
        sdk["sdk"]["huaweicloudsdkdcs"],
        raw_tasks.len(),
        raw_jobs.len(),
        if coerced.is_empty() {
            String::new()
        } else {
            format!(
                "; it converted JSON numbers where its model says str (the scenario sends \
                 numbers there on purpose): {}",
                coerced.join(", ")
            )
        }
    );
}

/// A task's `details`: null stays null; an object decodes to `DetailsBody` whose fields are the
/// served ones (every served key is a model field, every other model field is null). A served
/// number where the model says `str` is converted to its text by the SDK; the scenario does that
/// on purpose (clients must accept both), so it is allowed and recorded in `coerced`.
fn compare_details(
    id: &str,
    raw: &Value,
    decoded: &Value,
    models: &Value,
    coerced: &mut Vec<String>,
) {
    let served = raw.get("details").cloned().unwrap_or(Value::Null);
    let Value::Object(served) = served else {
        assert_eq!(served, Value::Null, "task {id} details");
        assert_eq!(
            decoded,
            &json!({"value": null, "type": "NoneType"}),
            "task {id}"
        );
        return;
    };
    assert_eq!(decoded["type"], "DetailsBody", "task {id} details");
    let model = models["DetailsBody"]
        .as_object()
        .expect("DetailsBody types");
    let fields = decoded["value"].as_object().expect("decoded details");
    for key in served.keys() {
        assert!(
            model.contains_key(key),
            "task {id}: details.{key} is no field of the SDK's DetailsBody, which would drop it"
        );
    }
    for (key, declared) in model {
        let sent = served.get(key).cloned().unwrap_or(Value::Null);
        let got = fields.get(key).cloned().unwrap_or(Value::Null);
        let what = format!("task {id} details.{key}");
        if sent.is_number() && declared == "str" {
            assert_eq!(got, Value::String(sent.to_string()), "{what}");
            coerced.push(format!("{what} = {sent}"));
            continue;
        }
        assert_wire_type(&what, &sent, declared);
        assert_eq!(got, sent, "{what}");
    }
}

/// Fails unless `value` (JSON the simulator served) has the type the SDK's model declares for it.
/// `null` and absent fields fit any type: every field of these models is optional.
fn assert_wire_type(what: &str, value: &Value, declared: &Value) {
    let declared = declared
        .as_str()
        .unwrap_or_else(|| panic!("{what}: the SDK model declares no type ({declared})"));
    let fits = match value {
        Value::Null => true,
        Value::String(_) => declared == "str",
        Value::Bool(_) => declared == "bool",
        Value::Number(number) => {
            declared == "float" || (declared == "int" && (number.is_i64() || number.is_u64()))
        }
        Value::Array(_) => declared.starts_with("list["),
        Value::Object(_) => !matches!(declared, "str" | "bool" | "int" | "float"),
    };
    assert!(
        fits,
        "{what}: the simulator sent {value}, which the official SDK's model types as `{declared}`"
    );
}

/// The Python type name the SDK gives a served value its model declares as `declared`.
fn python_type(value: &Value, declared: &Value) -> String {
    match value {
        Value::Null => "NoneType".into(),
        _ => declared.as_str().unwrap_or_default().to_string(),
    }
}

/// The installed SDK is the pinned one (a venv from an older pin would test other code).
fn assert_pinned_versions(sdk: &Value) {
    let requirements = std::fs::read_to_string(package_root().join(REQUIREMENTS))
        .unwrap_or_else(|error| panic!("cannot read {REQUIREMENTS}: {error}"));
    for package in ["huaweicloudsdkcore", "huaweicloudsdkdcs"] {
        let pinned = requirements
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{package}==")))
            .unwrap_or_else(|| panic!("{REQUIREMENTS} pins no {package}"));
        assert_eq!(
            sdk["sdk"][package],
            pinned.trim(),
            "{} runs {package} {} but {REQUIREMENTS} pins {pinned}; reinstall with\n    \
             export {}=$({})",
            tools::SDK_PYTHON,
            sdk["sdk"][package],
            tools::BIN_ENV,
            tools::INSTALLER
        );
    }
}

/// Runs the script against `sim` as the demo user; returns its JSON. Fails the test, showing
/// everything it printed, unless it exits 0 with a JSON object.
fn run_script(python: &Path, sim: &SimProcess, job_ids: &[String]) -> Value {
    let mut command = Command::new(python);
    command
        .arg(package_root().join(SCRIPT))
        .args(["--endpoint", sim.base_url()])
        .args(["--ak", DEMO_ACCESS_KEY, "--sk", DEMO_SECRET_KEY])
        .args(["--project-id", DEMO_PROJECT_ID])
        .args(["--unknown-job-id", UNKNOWN_JOB]);
    for id in job_ids {
        command.args(["--job-id", id]);
    }
    // Only what the script needs: no credentials, proxies or Python settings of the caller's
    // shell; no .pyc files written into the repository.
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LC_ALL", "C.UTF-8")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUTF8", "1")
        .current_dir(package_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    support::die_with_spawning_thread(&mut command);
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", python.display()));
    let pipe = |mut reader: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = reader.read_to_string(&mut text);
            text
        })
    };
    let stdout = pipe(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = pipe(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        match child.try_wait().expect("wait for the script") {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => thread::sleep(Duration::from_millis(50)),
        }
    };
    let (stdout, stderr) = (
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    );
    let shown = format!(
        "--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- simulator log\n{}",
        sim.log()
    );
    let status = status
        .unwrap_or_else(|| panic!("{SCRIPT} did not finish within {SCRIPT_TIMEOUT:?}\n{shown}"));
    assert!(status.success(), "{SCRIPT} failed ({status})\n{shown}");
    match serde_json::from_str::<Value>(&stdout) {
        Ok(value @ Value::Object(_)) => value,
        other => panic!("{SCRIPT} printed no JSON object ({other:?})\n{shown}"),
    }
}

/// Signed requests made here, as the SDKs make them, read as raw JSON.
struct Direct {
    base_url: String,
    authority: String,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Direct {
    fn new(sim: &SimProcess) -> Self {
        let base_url = sim.base_url().to_string();
        let authority = base_url.trim_start_matches("http://").to_string();
        Self {
            base_url,
            authority,
            // SimProcess::start installed the TLS provider reqwest needs.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime"),
        }
    }

    /// `GET /v2/{DEMO_PROJECT_ID}/{rest}` signed by the demo access key with `secret_key`.
    fn get(&self, rest: &str, secret_key: &str) -> (u16, Value) {
        let (tail, query) = rest.split_once('?').unwrap_or((rest, ""));
        let path = format!("/v2/{DEMO_PROJECT_ID}/{tail}");
        let pairs: Vec<(String, String)> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (key.to_string(), value.to_string())
            })
            .collect();
        let date = Utc::now().format(SDK_DATE_FORMAT).to_string();
        let headers = vec![
            ("host".to_string(), self.authority.clone()),
            ("x-sdk-date".to_string(), date.clone()),
            ("x-project-id".to_string(), DEMO_PROJECT_ID.to_string()),
        ];
        let authorization = sign::sign(
            &SignableRequest {
                method: "GET",
                path: &path,
                query: &pairs,
                headers: &headers,
                body: b"",
            },
            DEMO_ACCESS_KEY,
            secret_key,
        );
        let request = self
            .http
            .get(format!("{}{path}", self.base_url))
            .query(&pairs)
            .header("X-Sdk-Date", date)
            .header("X-Project-Id", DEMO_PROJECT_ID)
            .header("Authorization", authorization.header_value());
        self.runtime.block_on(async {
            let response = request
                .send()
                .await
                .unwrap_or_else(|error| panic!("GET {path}: {error}"));
            let status = response.status().as_u16();
            let text = response.text().await.expect("a body");
            let body = serde_json::from_str(&text)
                .unwrap_or_else(|error| panic!("GET {path} answered non-JSON {text:?}: {error}"));
            (status, body)
        })
    }
}
