//! The controller run as a ServiceAccount whose Role lacks something: a Secret watch that RBAC
//! forbids is reported in the status within seconds, with `/readyz` 503 and no upstream call; a
//! refused status write is retried with backoff until it lands.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::SETTLED_SCENARIO;
use crate::support::operator::{OperatorProcess as ControllerProcess, wait_until};
use crate::support::world::{World as Fixture, condition, is};

#[tokio::test]
async fn a_secret_watch_that_rbac_forbids_is_reported_in_seconds_and_unready() {
    let f = Fixture::new("no-secret-rbac", SETTLED_SCENARIO, true).await;
    let (plane, ns, api) = (f.plane, &f.ns, &f.api);
    // Everything the operator needs except Secrets.
    let role = format!(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: no-secrets, namespace: {ns}}}
rules:
- apiGroups: [dcs.hwcloud.dev]
  resources: [dcstaskqueries]
  verbs: [get, list, watch]
- apiGroups: [dcs.hwcloud.dev]
  resources: [dcstaskqueries/status]
  verbs: [get, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: no-secrets, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: no-secrets}}
subjects:
- {{kind: ServiceAccount, name: operator, namespace: {ns}}}
"#
    );
    plane.kubectl_with_stdin(&["apply", "-f", "-"], &role);
    let token = plane.service_account_token(ns, "operator").await;
    let kubeconfig = plane.write_kubeconfig(&format!("no-secrets-{ns}"), &token);
    let controller = ControllerProcess::start_as(&kubeconfig, ns, &[]);
    let started = Instant::now();
    f.create("q", json!({})).await;

    let stalled = wait_until(api, "q", Duration::from_secs(30), "Stalled", |o| {
        is(o, "Stalled", "True")
    })
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let (_, reason, message, _) = condition(&stalled, "Stalled").unwrap();
    assert_eq!(reason, "CredentialsUnavailable");
    assert!(message.contains("has not synced"), "{message}");
    assert!(message.contains("forbidden"), "{message}");
    assert!(seconds < 20.0, "status after {seconds:.1} s");
    assert_eq!(controller.readyz().await, 503);
    assert_eq!(f.sim.total_requests(), 0);
    let logs = controller.stop();
    assert!(!logs.contains("panicked"), "{logs}");
}

#[tokio::test]
async fn a_refused_status_write_is_retried_until_it_lands() {
    let f = Fixture::new("write-refused", SETTLED_SCENARIO, true).await;
    let (plane, ns, api) = (f.plane, &f.ns, &f.api);
    let rules = |with_status: bool| {
        let status_rule = if with_status {
            "- apiGroups: [dcs.hwcloud.dev]\n  resources: [dcstaskqueries/status]\n  verbs: [get, patch]\n"
        } else {
            ""
        };
        format!(
            r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: operator, namespace: {ns}}}
rules:
- apiGroups: [dcs.hwcloud.dev]
  resources: [dcstaskqueries]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{status_rule}---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: operator, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: operator}}
subjects:
- {{kind: ServiceAccount, name: operator, namespace: {ns}}}
"#
        )
    };
    plane.kubectl_with_stdin(&["apply", "-f", "-"], &rules(false));
    let token = plane.service_account_token(ns, "operator").await;
    let kubeconfig = plane.write_kubeconfig(&format!("write-refused-{ns}"), &token);
    let controller = ControllerProcess::start_as(&kubeconfig, ns, &[]);
    f.create("q", json!({})).await;
    // Every status write is refused (403) for a while...
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(api.get("q").await.unwrap().status.is_none());
    // ...then allowed: the backed-off retry lands without any change to the object.
    plane.kubectl_with_stdin(&["apply", "-f", "-"], &rules(true));
    wait_until(
        api,
        "q",
        Duration::from_secs(40),
        "Ready after the write was allowed",
        |o| is(o, "Ready", "True"),
    )
    .await;
    // The first refusal is told on the object, once for the whole run of refusals.
    let told = f.events("q", "StatusWriteFailed").await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].type_.as_deref(), Some("Warning"));
    let note = told[0].note.clone().unwrap_or_default();
    assert!(note.contains("writing status of"), "{note}");
    let logs = controller.stop();
    assert!(
        logs.contains("writing status"),
        "the refused writes were logged"
    );
    assert!(!logs.contains("panicked"), "{logs}");
}
