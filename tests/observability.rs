//! What people look at rather than read: the Grafana dashboard in `integrations/grafana/` queries
//! only metrics a running controller exposes on `/metrics`, and `kubectl get dcstq -o wide` adds
//! the awaited job id and the upstream error code.
//!
//! Runs the controller binary in `--sim` mode against the shared test control plane (needs
//! `KUBEBUILDER_ASSETS` or `scripts/control-plane.sh`, and kubectl from `scripts/tools.sh`).

mod promql;
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use dcs_task_operator::api::DcsTaskQuery;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};
use support::control_plane::ControlPlane;
use support::operator::{OperatorProcess, wait_until};
use support::sim_process::package_root;

const DASHBOARD: &str = "integrations/grafana/dcs-task-operator.json";

/// The job id of the switchover in the simulator's default scenario (examples/sim/switchover.yaml).
const DEMO_JOB_ID: &str = "ff80808190a1b2c30190a1b2c3d40000";

/// A `controller --sim` process watching one namespace, with its `/metrics` address.
struct Controller(OperatorProcess);

impl Controller {
    fn start(namespace: &str) -> Self {
        Self(OperatorProcess::start(namespace, &["--sim"]))
    }

    /// The `/metrics` text, empty while the server does not answer.
    async fn metrics(&self) -> String {
        self.0.metrics_text().await.unwrap_or_default()
    }

    /// Stops the process and returns what it printed, for failure messages.
    fn stop(self) -> String {
        self.0.stop()
    }
}

/// A query waiting for the demo switchover's job, polled every 2 s while pending.
fn waiting_query(name: &str) -> DcsTaskQuery {
    serde_json::from_value(json!({
        "apiVersion": "dcs.hwcloud.dev/v1alpha1", "kind": "DcsTaskQuery",
        "metadata": {"name": name},
        "spec": {"region": "cn-north-4", "activeInterval": "2s",
                 "waitFor": {"jobId": DEMO_JOB_ID}}
    }))
    .unwrap()
}

fn dashboard() -> Value {
    let path = package_root().join(DASHBOARD);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{DASHBOARD}: not JSON: {error}"))
}

/// Every `expr` string anywhere in `value`.
fn exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    _ => exprs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| exprs(item, out)),
        _ => {}
    }
}

/// The metric names the dashboard reads: panel expressions and `label_values` variables.
fn dashboard_metrics(dashboard: &Value) -> BTreeSet<String> {
    let mut expressions = Vec::new();
    exprs(&dashboard["panels"], &mut expressions);
    assert!(!expressions.is_empty(), "{DASHBOARD} has no expr");
    let mut names: BTreeSet<String> = expressions
        .iter()
        .flat_map(|expr| promql::metric_names(expr))
        .collect();
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if variable["type"] != "query" {
            continue;
        }
        let query = variable["query"]["query"]
            .as_str()
            .or_else(|| variable["query"].as_str())
            .unwrap_or_else(|| panic!("variable without a query: {variable}"));
        let metric = promql::label_values_metric(query)
            .unwrap_or_else(|| panic!("variable query is not label_values(...): {query}"));
        names.insert(metric);
    }
    names
}

#[test]
fn the_dashboard_is_importable_with_a_datasource_variable() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "dcs-task-operator");
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let datasource = variables
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(datasource["query"], "prometheus");
    let reference = format!("${{{}}}", datasource["name"].as_str().unwrap());
    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "a panel without a title: {panel}");
        assert!(
            ids.insert(panel["id"].as_i64().unwrap()),
            "{title}: id reused"
        );
        assert_eq!(panel["datasource"]["uid"], reference.as_str(), "{title}");
        assert!(
            panel["fieldConfig"]["defaults"]["unit"].is_string(),
            "{title}: no unit"
        );
        for target in panel["targets"].as_array().unwrap() {
            assert_eq!(target["datasource"]["uid"], reference.as_str(), "{title}");
        }
    }
    // The panels the operator's users asked for, by what they query.
    let mut expressions = Vec::new();
    exprs(&dashboard["panels"], &mut expressions);
    let all = expressions.join("\n");
    for needle in [
        "upstream_calls_total",
        "histogram_quantile",
        "shared_fetches_total",
        "dcs_task_operator_objects",
        "status_writes_total",
        "outcome=\"error\"",
    ] {
        assert!(all.contains(needle), "no panel queries {needle}");
    }
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_exposed_by_a_running_controller() {
    let wanted = dashboard_metrics(&dashboard());
    assert!(wanted.len() >= 6, "too few metrics found: {wanted:?}");
    for name in &wanted {
        assert!(
            name.starts_with(promql::OPERATOR_PREFIX),
            "{DASHBOARD} queries {name}, which the operator does not expose"
        );
    }

    let plane = ControlPlane::shared();
    let ns = plane.new_namespace("observability-metrics").await;
    let api: Api<DcsTaskQuery> = Api::namespaced(plane.admin_client(), &ns);
    let controller = Controller::start(&ns);
    // A wait, and two objects asking the same question, so the second is served by the shared
    // fetcher (a family without any sample is not exposed at all).
    let mut objects = vec![waiting_query("metrics-wait")];
    for name in ["metrics-same-a", "metrics-same-b"] {
        objects.push(
            serde_json::from_value(json!({
                "apiVersion": "dcs.hwcloud.dev/v1alpha1", "kind": "DcsTaskQuery",
                "metadata": {"name": name},
                "spec": {"region": "cn-north-4", "interval": "1m"}
            }))
            .unwrap(),
        );
    }
    for object in &objects {
        api.create(&PostParams::default(), object).await.unwrap();
    }
    for object in &objects {
        let name = object.metadata.name.as_deref().unwrap();
        wait_until(
            &api,
            name,
            Duration::from_secs(60),
            "a synced status",
            |o| {
                o.status
                    .as_ref()
                    .is_some_and(|s| s.last_sync_time.is_some())
            },
        )
        .await;
    }

    // Counters move: upstream calls, a shared fetch and status writes have happened, and the
    // reconciles behind them were timed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = controller.metrics().await;
        let counted = |prefix: &str| {
            text.lines()
                .any(|line| line.starts_with(prefix) && !line.ends_with(" 0"))
        };
        if counted("dcs_task_operator_upstream_calls_total{outcome=\"ok\"}")
            && counted("dcs_task_operator_shared_fetches_total")
            && counted("dcs_task_operator_status_writes_total")
            && counted("dcs_task_operator_reconcile_duration_seconds_count")
            && counted("dcs_task_operator_reconciles_total{outcome=\"ok\"}")
        {
            break text;
        }
        if Instant::now() >= deadline {
            let log = controller.stop();
            panic!("the counters did not move within 30 s; /metrics:\n{text}\nlog:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let exposed = promql::exposed_names(&text);
    let missing: Vec<&String> = wanted.difference(&exposed).collect();
    let log = controller.stop();
    assert!(
        missing.is_empty(),
        "{DASHBOARD} queries {missing:?}, absent from /metrics:\n{text}\nlog tail:\n{}",
        &log[log.len().saturating_sub(3000)..]
    );
}

#[test]
fn wide_printer_columns_read_fields_of_the_status_schema() {
    let crd: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(package_root().join("crds/dcstaskqueries.dcs.hwcloud.dev.yaml"))
            .unwrap(),
    )
    .unwrap();
    let version = &crd["spec"]["versions"][0];
    let columns = version["additionalPrinterColumns"].as_array().unwrap();
    let wide: Vec<(&str, &str)> = columns
        .iter()
        .filter(|c| c["priority"].as_i64().unwrap_or(0) > 0)
        .map(|c| (c["name"].as_str().unwrap(), c["jsonPath"].as_str().unwrap()))
        .collect();
    assert_eq!(
        wide,
        [
            ("Job", ".status.waitFor.jobId"),
            ("Error", ".status.lastError.errorCode")
        ]
    );
    let schema = &version["schema"]["openAPIV3Schema"];
    for (name, path) in wide {
        let mut node = schema;
        for field in path.trim_start_matches('.').split('.') {
            node = &node["properties"][field];
            assert!(
                node.is_object(),
                "column {name}: {path} is not in the schema"
            );
        }
        assert_eq!(node["type"], "string", "column {name}: {path}");
    }
}

#[tokio::test]
async fn kubectl_get_wide_shows_the_awaited_job_id_and_the_error_code_column() {
    let plane = ControlPlane::shared();
    let ns = plane.new_namespace("observability-wide").await;
    let api: Api<DcsTaskQuery> = Api::namespaced(plane.admin_client(), &ns);
    let controller = Controller::start(&ns);
    api.create(&PostParams::default(), &waiting_query("wide"))
        .await
        .unwrap();
    wait_until(
        &api,
        "wide",
        Duration::from_secs(60),
        "a synced status",
        |o| {
            o.status
                .as_ref()
                .and_then(|s| s.wait_for.as_ref())
                .and_then(|w| w.job_id.as_deref())
                == Some(DEMO_JOB_ID)
        },
    )
    .await;
    let log = controller.stop();

    // kubectl aligns cells under the header; a column name may hold one space (`LAST SYNC`) and
    // an empty cell is blank, so cut the row at the header's column starts.
    let columns = |output: &str| -> (Vec<String>, Vec<String>) {
        let mut lines = output.lines();
        let header = lines.next().unwrap_or_default();
        let row = lines.next().unwrap_or_default();
        let mut starts = Vec::new();
        let mut previous = ' ';
        let mut blanks = 2;
        for (index, c) in header.char_indices() {
            if c != ' ' && previous == ' ' && blanks >= 2 {
                starts.push(index);
            }
            blanks = if c == ' ' { blanks + 1 } else { 0 };
            previous = c;
        }
        let cut = |line: &str, i: usize| -> String {
            let end = starts
                .get(i + 1)
                .copied()
                .unwrap_or(usize::MAX)
                .min(line.len());
            line.get(starts[i].min(end)..end)
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let names = (0..starts.len()).map(|i| cut(header, i)).collect();
        let cells = (0..starts.len()).map(|i| cut(row, i)).collect();
        (names, cells)
    };
    let narrow = plane.kubectl(&["get", "dcstq", "-n", &ns]);
    let (header, _) = columns(&narrow);
    assert!(
        !header.iter().any(|c| c == "JOB" || c == "ERROR"),
        "the job and error columns are for -o wide only:\n{narrow}"
    );
    let wide = plane.kubectl(&["get", "dcstq", "-n", &ns, "-o", "wide"]);
    let (header, row) = columns(&wide);
    let job = header.iter().position(|c| c == "JOB");
    let error = header.iter().position(|c| c == "ERROR");
    assert!(
        job.is_some() && error.is_some(),
        "-o wide lacks JOB or ERROR:\n{wide}\ncontroller log:\n{log}"
    );
    assert_eq!(
        row.get(job.unwrap()).map(String::as_str),
        Some(DEMO_JOB_ID),
        "{wide}"
    );
    assert_eq!(
        row.get(error.unwrap()).map(String::as_str),
        Some(""),
        "no upstream error, no code:\n{wide}"
    );
}
