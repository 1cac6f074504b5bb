//! The DcsTaskQuery CRD on a real apiserver: schema validation, the status subresource,
//! optimistic concurrency, watches and printer columns.

mod support;

use std::time::Duration;

use dcs_task_operator::api::{DcsTaskQuery, DcsTaskQueryStatus};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::{Value, json};
use support::control_plane::ControlPlane;

fn manifest(name: &str, spec: Value) -> Value {
    let mut full = json!({"region": "cn-north-4"});
    full.as_object_mut()
        .unwrap()
        .extend(spec.as_object().unwrap().clone());
    json!({
        "apiVersion": "dcs.hwcloud.dev/v1alpha1", "kind": "DcsTaskQuery",
        "metadata": {"name": name}, "spec": full
    })
}

async fn api(client: Client, namespace: &str) -> Api<DcsTaskQuery> {
    Api::namespaced(client, namespace)
}

#[tokio::test]
async fn the_server_refuses_invalid_fields_with_the_schema_message() {
    let plane = ControlPlane::shared();
    let ns = plane.new_namespace("crd-schema").await;
    let cases = [
        (
            json!({"query": {"limit": 0}}),
            "spec.query.limit",
            "should be greater than or equal to 1",
        ),
        (
            json!({"query": {"limit": 1001}}),
            "spec.query.limit",
            "should be less than or equal to 1000",
        ),
        (
            json!({"query": {"startTime": "2026-01-01"}}),
            "spec.query.startTime",
            "should match",
        ),
        (
            json!({"query": {"offset": -1}}),
            "spec.query.offset",
            "should be greater than or equal to 0",
        ),
        (json!({"region": "Beijing"}), "spec.region", "should match"),
        (
            json!({"maxTasks": 500}),
            "spec.maxTasks",
            "should be less than or equal to 200",
        ),
        (
            json!({"interval": "1 minute"}),
            "spec.interval",
            "should match",
        ),
        (
            json!({"endpoint": "https://host/path"}),
            "spec.endpoint",
            "should match",
        ),
        (
            json!({"waitFor": {"jobId": "j"}, "ttlAfterResolved": "1 hour"}),
            "spec.ttlAfterResolved",
            "should match",
        ),
    ];
    for (index, (spec, field, rule)) in cases.into_iter().enumerate() {
        let output = plane.try_kubectl(
            &["apply", "-n", &ns, "-f", "-"],
            Some(&manifest(&format!("bad-{index}"), spec.clone()).to_string()),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{spec} was accepted");
        assert!(
            stderr.contains(field) && stderr.contains(rule),
            "{spec}: expected {field} ~ {rule}, got {stderr}"
        );
    }
    let output = plane.try_kubectl(
        &["apply", "-n", &ns, "-f", "-"],
        Some(&manifest("good", json!({"query": {"limit": 1000}})).to_string()),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn status_writes_do_not_bump_generation_and_stale_updates_conflict() {
    let plane = ControlPlane::shared();
    let ns = plane.new_namespace("crd-status").await;
    let queries = api(plane.admin_client(), &ns).await;
    let created = queries
        .create(
            &PostParams::default(),
            &serde_json::from_value(manifest("q", json!({}))).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    // Defaults from the schema are applied by the server.
    assert_eq!(created.spec.interval, "1m");
    assert!(created.spec.query.all_pages);

    let status = DcsTaskQueryStatus {
        observed_generation: Some(1),
        matched_count: Some(3),
        ..DcsTaskQueryStatus::default()
    };
    let patched = queries
        .patch_status(
            "q",
            &PatchParams::apply("test").force(),
            &Patch::Apply(json!({
                "apiVersion": "dcs.hwcloud.dev/v1alpha1", "kind": "DcsTaskQuery", "status": status
            })),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.metadata.generation,
        Some(1),
        "status write bumped generation"
    );
    assert_eq!(patched.status.unwrap().matched_count, Some(3));

    // A spec write through the main resource bumps it, and ignores status.
    let mut stale = created.clone();
    let mut fresh = queries.get("q").await.unwrap();
    fresh.spec.max_tasks = 5;
    let updated = queries
        .replace("q", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_eq!(updated.metadata.generation, Some(2));

    stale.spec.max_tasks = 7;
    match queries.replace("q", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(status)) => assert!(status.is_conflict(), "{status:?}"),
        other => panic!("a stale resourceVersion must conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn a_watch_sees_status_changes() {
    let plane = ControlPlane::shared();
    let ns = plane.new_namespace("crd-watch").await;
    let queries = api(plane.admin_client(), &ns).await;
    queries
        .create(
            &PostParams::default(),
            &serde_json::from_value(manifest("w", json!({}))).unwrap(),
        )
        .await
        .unwrap();
    let mut stream = watcher(queries.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    let first = stream.try_next().await.unwrap().unwrap();
    assert_eq!(first.status, None);
    queries
        .patch_status(
            "w",
            &PatchParams::apply("test").force(),
            &Patch::Apply(json!({
                "apiVersion": "dcs.hwcloud.dev/v1alpha1", "kind": "DcsTaskQuery",
                "status": {"matchedCount": 9}
            })),
        )
        .await
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let object = stream.try_next().await.unwrap().unwrap();
            if let Some(status) = object.status {
                return status;
            }
        }
    })
    .await
    .expect("the watch saw no change");
    assert_eq!(seen.matched_count, Some(9));
}

#[tokio::test]
async fn kubectl_get_prints_the_printer_columns() {
    let plane = ControlPlane::shared();
    let ns = plane.new_namespace("crd-columns").await;
    plane.kubectl_with_stdin(
        &["apply", "-n", &ns, "-f", "-"],
        &manifest("cols", json!({"waitFor": {"jobId": "j"}})).to_string(),
    );
    let queries = api(plane.admin_client(), &ns).await;
    queries
        .patch_status(
            "cols",
            &PatchParams::apply("test").force(),
            &Patch::Apply(json!({
                "apiVersion": "dcs.hwcloud.dev/v1alpha1", "kind": "DcsTaskQuery",
                "status": {
                    "conditions": [{"type": "Ready", "status": "True", "reason": "TaskSucceeded",
                                    "message": "m", "lastTransitionTime": "2026-11-27T12:00:00Z"}],
                    "waitFor": {"phase": "Succeeded"},
                    "matchedCount": 4,
                    "tasks": [{"status": "SUCCESS", "name": "masterStandbySwapJob"}],
                    "lastSyncTime": "2026-11-27T12:00:00Z"
                }
            })),
        )
        .await
        .unwrap();
    let table = plane.kubectl(&["get", "dcstaskqueries", "-n", &ns]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        vec![
            "NAME", "READY", "WAIT", "MATCHED", "LATEST", "LAST", "SYNC", "AGE"
        ],
        "{table}"
    );
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..5],
        &["cols", "True", "Succeeded", "4", "SUCCESS"],
        "{table}"
    );
    // The short name and the categories work too.
    assert!(plane.kubectl(&["get", "dcstq", "-n", &ns]).contains("cols"));
    assert!(
        plane
            .kubectl(&["get", "huaweicloud", "-n", &ns])
            .contains("cols")
    );
}
