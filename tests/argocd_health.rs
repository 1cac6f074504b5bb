//! The Argo CD health check `integrations/argocd/health.lua`, run by a real Lua 5.1 interpreter
//! (the dialect Argo CD embeds) over DcsTaskQuery objects in each state the operator produces.
//!
//! Each object is turned into a Lua table literal here; a small harness sets it as the global `obj`
//! (as Argo CD does), runs the script in an environment holding only Lua's base, string, table and
//! math functions, and prints the returned status and message.
//!
//! Needs lua5.1: `export DCS_TOOLS_BIN=$(scripts/tools.sh)`.

mod support;

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use support::tools;

const SCRIPT: &str = "integrations/argocd/health.lua";
const ARGOCD_CM: &str = "integrations/argocd/argocd-cm.yaml";
const HEALTH_KEY: &str = "resource.customizations.health.dcs.hwcloud.dev_DcsTaskQuery";

/// The statuses Argo CD understands.
const ARGO_STATUSES: &[&str] = &[
    "Healthy",
    "Progressing",
    "Degraded",
    "Suspended",
    "Missing",
    "Unknown",
];

#[derive(Debug)]
struct Health {
    status: String,
    message: String,
}

/// A Lua 5.1 string literal for `text`: quotes, backslashes, control characters and every
/// non-ASCII byte become decimal escapes (always three digits, so a following digit is safe).
fn lua_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for byte in text.bytes() {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(byte as char),
            _ => {
                write!(out, "\\{byte:03}").unwrap();
            }
        }
    }
    out.push('"');
    out
}

/// A Lua table constructor equivalent to `value` as Argo CD hands objects to Lua: objects become
/// tables with string keys, arrays 1-based sequences, null nil.
fn lua_value(value: &Value) -> String {
    match value {
        Value::Null => "nil".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(lua_value).collect();
            format!("{{{}}}", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_value(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

fn harness(object: &Value, script_path: &str) -> String {
    format!(
        r#"local chunk = assert(loadfile({script}))
local env = {{
  obj = {obj},
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall,
  select = select, tonumber = tonumber, tostring = tostring, type = type, unpack = unpack,
  string = string, table = table, math = math,
}}
setfenv(chunk, env)
local hs = chunk()
assert(type(hs) == "table", "the script must return a table, got " .. type(hs))
assert(type(hs.status) == "string", "hs.status must be a string, got " .. type(hs.status))
assert(hs.message == nil or type(hs.message) == "string", "hs.message must be a string")
io.write(hs.status, "\n", hs.message or "")
"#,
        script = lua_string(script_path),
        obj = lua_value(object),
    )
}

fn health(object: &Value) -> Health {
    let script = tools::repo_root().join(SCRIPT);
    let mut child = Command::new(tools::lua51())
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lua5.1");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(harness(object, script.to_str().expect("UTF-8 path")).as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{SCRIPT} failed on {object:#}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    let (status, message) = stdout.split_once('\n').expect("status and message");
    assert!(
        ARGO_STATUSES.contains(&status),
        "`{status}` is not an Argo CD health status"
    );
    Health {
        status: status.to_string(),
        message: message.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Test objects

const GENERATION: i64 = 3;

fn condition(kind: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": GENERATION,
        "lastTransitionTime": "2025-01-01T00:00:00Z",
    })
}

fn query(status: Option<Value>) -> Value {
    let mut object = json!({
        "apiVersion": "dcs.hwcloud.dev/v1alpha1",
        "kind": "DcsTaskQuery",
        "metadata": {"name": "wait-for-switchover", "namespace": "redis-ops", "generation": GENERATION},
        "spec": {
            "region": "cn-north-4",
            "query": {"since": "1h"},
            "waitFor": {"name": "masterStandbySwapJob", "timeout": "30m"},
        },
    });
    if let Some(status) = status {
        object["status"] = status;
    }
    object
}

fn status(conditions: Vec<Value>, wait_phase: Option<&str>) -> Value {
    let mut status = json!({
        "observedGeneration": GENERATION,
        "conditions": conditions,
        "matchedCount": 4,
    });
    if let Some(phase) = wait_phase {
        status["waitFor"] = json!({"phase": phase, "message": format!("wait is {phase}")});
    }
    status
}

fn assert_health(object: &Value, want_status: &str, want_message: &str) {
    let got = health(object);
    assert_eq!(got.status, want_status, "{got:?} for {object:#}");
    assert!(
        got.message.contains(want_message),
        "message {:?} should contain {want_message:?} for {object:#}",
        got.message
    );
}

// ---------------------------------------------------------------------------------------------
// States

#[test]
fn no_status_yet_is_progressing() {
    assert_health(&query(None), "Progressing", "Waiting for the operator");
    assert_health(
        &query(Some(Value::Null)),
        "Progressing",
        "Waiting for the operator",
    );
}

#[test]
fn status_without_observed_generation_is_progressing() {
    assert_health(
        &query(Some(
            json!({"conditions": [condition("Ready", "True", "Succeeded", "done")]}),
        )),
        "Progressing",
        "generation 3",
    );
}

#[test]
fn lagging_observed_generation_is_progressing_even_when_ready() {
    let mut object = query(Some(status(
        vec![
            condition("Ready", "True", "Succeeded", "switchover finished"),
            condition("Complete", "True", "Succeeded", "switchover finished"),
        ],
        Some("Succeeded"),
    )));
    object["metadata"]["generation"] = json!(GENERATION + 1);
    assert_health(
        &object,
        "Progressing",
        "generation 4 (status describes generation 3)",
    );
}

#[test]
fn first_visit_is_progressing() {
    let object = query(Some(status(
        vec![
            condition("Ready", "Unknown", "Reconciling", "first visit"),
            condition(
                "Reconciling",
                "True",
                "Reconciling",
                "Fetching tasks for the first time",
            ),
            condition("Stalled", "False", "Reconciling", ""),
        ],
        None,
    )));
    assert_health(&object, "Progressing", "Fetching tasks for the first time");
}

#[test]
fn pending_wait_is_progressing() {
    let object = query(Some(status(
        vec![
            condition(
                "Ready",
                "False",
                "Waiting",
                "waiting for masterStandbySwapJob",
            ),
            condition(
                "Reconciling",
                "True",
                "Waiting",
                "masterStandbySwapJob is EXECUTING",
            ),
            condition("Stalled", "False", "Waiting", ""),
            condition("Complete", "False", "Waiting", ""),
            condition("Failed", "False", "Waiting", ""),
        ],
        Some("Pending"),
    )));
    assert_health(&object, "Progressing", "masterStandbySwapJob is EXECUTING");
}

#[test]
fn pending_wait_phase_alone_is_progressing() {
    // Even if Reconciling were missing, a pending wait is not healthy.
    let object = query(Some(status(
        vec![condition("Ready", "False", "Waiting", "")],
        Some("Pending"),
    )));
    assert_health(&object, "Progressing", "wait is Pending");
}

#[test]
fn transient_upstream_error_is_progressing() {
    let object = query(Some(status(
        vec![
            condition(
                "Ready",
                "False",
                "UpstreamError",
                "DCS answered 503; retrying in 20s",
            ),
            condition(
                "Reconciling",
                "True",
                "UpstreamError",
                "DCS answered 503; retrying in 20s",
            ),
            condition("Stalled", "False", "UpstreamError", ""),
        ],
        None,
    )));
    assert_health(&object, "Progressing", "retrying in 20s");
}

#[test]
fn succeeded_wait_is_healthy() {
    let object = query(Some(status(
        vec![
            condition(
                "Ready",
                "True",
                "Succeeded",
                "masterStandbySwapJob succeeded",
            ),
            condition("Reconciling", "False", "Succeeded", ""),
            condition("Stalled", "False", "Succeeded", ""),
            condition(
                "Complete",
                "True",
                "Succeeded",
                "masterStandbySwapJob succeeded at 12:00",
            ),
            condition("Failed", "False", "Succeeded", ""),
        ],
        Some("Succeeded"),
    )));
    assert_health(
        &object,
        "Healthy",
        "masterStandbySwapJob succeeded at 12:00",
    );
}

#[test]
fn ready_query_without_wait_is_healthy() {
    let mut object = query(Some(status(
        vec![
            condition("Ready", "True", "Fetched", "4 tasks matched"),
            condition("Reconciling", "False", "Fetched", ""),
            condition("Stalled", "False", "Fetched", ""),
        ],
        None,
    )));
    object["spec"].as_object_mut().unwrap().remove("waitFor");
    assert_health(&object, "Healthy", "4 tasks matched");
}

#[test]
fn failed_wait_is_degraded_with_the_condition_message() {
    for phase in ["Failed", "TimedOut"] {
        let message = format!("masterStandbySwapJob ended {phase}: error DCS.4126");
        let object = query(Some(status(
            vec![
                condition("Ready", "False", phase, &message),
                condition("Reconciling", "False", phase, ""),
                condition("Stalled", "True", phase, &message),
                condition("Complete", "False", phase, ""),
                condition("Failed", "True", phase, &message),
            ],
            Some(phase),
        )));
        assert_health(&object, "Degraded", &message);
    }
}

#[test]
fn bad_spec_or_credentials_are_degraded_with_the_stalled_message() {
    for (reason, message) in [
        (
            "InvalidSpec",
            "spec.query.since: \"yesterday\" is not a duration (use e.g. 24h)",
        ),
        (
            "SecretNotFound",
            "Secret redis-ops/dcs-credentials not found; create it with accessKey and secretKey",
        ),
        (
            "CredentialsRefused",
            "DCS refused the credentials of Secret redis-ops/dcs-credentials (APIGW.0301)",
        ),
    ] {
        let object = query(Some(status(
            vec![
                condition("Ready", "False", reason, message),
                condition("Reconciling", "False", reason, ""),
                condition("Stalled", "True", reason, message),
            ],
            None,
        )));
        let got = health(&object);
        assert_eq!(got.status, "Degraded", "{reason}");
        assert_eq!(
            got.message, message,
            "{reason}: the message passes through unchanged"
        );
    }
}

#[test]
fn failed_without_stalled_is_still_degraded() {
    let object = query(Some(status(
        vec![
            condition("Ready", "False", "Failed", "task failed"),
            condition(
                "Failed",
                "True",
                "TaskFailed",
                "masterStandbySwapJob FAILED",
            ),
        ],
        Some("Failed"),
    )));
    assert_health(&object, "Degraded", "masterStandbySwapJob FAILED");
}

#[test]
fn reconciling_wins_over_stalled_as_in_kstatus() {
    let object = query(Some(status(
        vec![
            condition(
                "Reconciling",
                "True",
                "Retrying",
                "retrying after a spec change",
            ),
            condition("Stalled", "True", "InvalidSpec", "old problem"),
        ],
        None,
    )));
    assert_health(&object, "Progressing", "retrying after a spec change");
}

#[test]
fn conditions_from_an_older_generation_are_ignored() {
    let mut stale = condition("Stalled", "True", "InvalidSpec", "old spec was bad");
    stale["observedGeneration"] = json!(GENERATION - 1);
    let mut stale_ready = condition("Ready", "True", "Fetched", "old spec was fine");
    stale_ready["observedGeneration"] = json!(GENERATION - 1);
    let object = query(Some(status(vec![stale, stale_ready], None)));
    assert_health(&object, "Progressing", "Waiting for the Ready condition");
}

#[test]
fn ready_false_without_other_conditions_is_progressing() {
    let object = query(Some(status(
        vec![condition("Ready", "False", "Waiting", "not yet")],
        None,
    )));
    assert_health(&object, "Progressing", "not yet");
    let object = query(Some(status(vec![], None)));
    assert_health(&object, "Progressing", "Waiting for the Ready condition");
}

#[test]
fn a_condition_without_message_reports_its_reason() {
    let object = query(Some(status(
        vec![
            json!({"type": "Stalled", "status": "True", "reason": "SecretNotFound", "observedGeneration": GENERATION}),
        ],
        None,
    )));
    assert_health(&object, "Degraded", "Stalled: SecretNotFound");
}

#[test]
fn messages_survive_quotes_newlines_and_unicode() {
    let message = "line one\nline \"two\" with \\ and ünïcödé 任务 and a tab\t";
    let object = query(Some(status(
        vec![condition("Stalled", "True", "InvalidSpec", message)],
        None,
    )));
    let got = health(&object);
    assert_eq!(got.status, "Degraded");
    assert_eq!(got.message, message);
}

// ---------------------------------------------------------------------------------------------
// Shipping

#[test]
fn argocd_cm_snippet_carries_exactly_the_tested_script() {
    let root = tools::repo_root();
    let script = std::fs::read_to_string(root.join(SCRIPT)).unwrap();
    let snippet: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(root.join(ARGOCD_CM)).unwrap())
            .unwrap_or_else(|err| panic!("{ARGOCD_CM}: {err}"));
    assert_eq!(snippet["kind"], "ConfigMap");
    assert_eq!(snippet["metadata"]["name"], "argocd-cm");
    let embedded = snippet["data"][HEALTH_KEY]
        .as_str()
        .unwrap_or_else(|| panic!("{ARGOCD_CM} has no data.{HEALTH_KEY}"));
    assert!(
        embedded == script,
        "{ARGOCD_CM} embeds a different script than {SCRIPT}; regenerate its data block with\n    \
         sed -e 's/^/    /' -e 's/^    $//' {SCRIPT}"
    );
}

#[test]
fn lua_literals_round_trip_through_the_interpreter() {
    // The encoder itself, independent of the health script: Lua re-serialises what it was given.
    let value = json!({"a": [1, 2.5, -3], "b": {"c": "x\"y\\z\n", "d": true}, "e": "é"});
    let program = format!(
        r#"local v = {}
io.write(v.a[1], ",", v.a[2], ",", v.a[3], ",", #v.a, ",", v.b.c, ",", tostring(v.b.d), ",", v.e)"#,
        lua_value(&value)
    );
    let mut child = Command::new(tools::lua51())
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(program.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "1,2.5,-3,3,x\"y\\z\n,true,é"
    );
}
