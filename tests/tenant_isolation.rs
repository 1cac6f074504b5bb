//! Tenants sharing one operator and one DCS endpoint, against a real kube-apiserver + etcd and the
//! simulator process: what one tenant does to its own objects (deleting them mid-poll, asking
//! for refreshes of a slow query) must never leave anything held, or hold a worker, that another
//! tenant's object needs.
//!
//! Each test runs one controller over every namespace, restricted by a label selector of its own
//! (`--selector`), so that it sees its two tenants' namespaces and nothing of the other tests.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dcs_task_operator::api::DcsTaskQuery;
use dcs_task_operator::controller::credentials::CREDENTIALS_LABEL;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use support::control_plane::ControlPlane;
use support::operator::{OperatorProcess, query_object, wait_until};
use support::sim_process::SimProcess;

/// Two accounts with a project each; tenant A's project answers slowly (see each test).
const TWO_TENANTS: &str = r#"
credentials:
  - {accessKey: TENANTAKEY, secretKey: tenant-a-sk, projects: [project-a]}
  - {accessKey: TENANTBKEY, secretKey: tenant-b-sk, projects: [project-b]}
tasks:
  - {projectId: project-a, name: EXTEND, createdAt: "-1h", status: SUCCESS}
  - {projectId: project-b, name: EXTEND, createdAt: "-1h", status: SUCCESS}
"#;

/// A tenant: its namespace, its credentials Secret and its objects' API.
struct Tenant {
    api: Api<DcsTaskQuery>,
}

impl Tenant {
    async fn new(
        client: &Client,
        prefix: &str,
        access_key: &str,
        secret_key: &str,
        project: &str,
    ) -> Self {
        let ns = ControlPlane::shared().new_namespace(prefix).await;
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "dcs-credentials", "labels": {CREDENTIALS_LABEL: "true"}},
            "stringData": {"accessKey": access_key, "secretKey": secret_key, "projectId": project}
        }))
        .unwrap();
        Api::<Secret>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
        Self {
            api: Api::namespaced(client.clone(), &ns),
        }
    }

    async fn create(&self, name: &str, sim: &SimProcess, selector: &str, extra_spec: Value) {
        let mut object = query_object(name, sim.base_url(), extra_spec);
        let (key, value) = selector.split_once('=').unwrap();
        object.metadata.labels = Some([(key.to_string(), value.to_string())].into());
        self.api
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    }
}

/// The simulator and the two tenants of one test, with the label its controller selects.
struct World {
    sim: SimProcess,
    a: Tenant,
    b: Tenant,
    selector: String,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new(prefix: &str) -> Self {
        let client = ControlPlane::shared().admin_client();
        let dir = tempfile::tempdir().unwrap();
        let sim = SimProcess::start(Some(&scenario_file(&dir)), &[]);
        let a = Tenant::new(
            &client,
            &format!("{prefix}-a"),
            "TENANTAKEY",
            "tenant-a-sk",
            "project-a",
        )
        .await;
        let b = Tenant::new(
            &client,
            &format!("{prefix}-b"),
            "TENANTBKEY",
            "tenant-b-sk",
            "project-b",
        )
        .await;
        Self {
            sim,
            a,
            b,
            selector: format!("tenant-isolation={prefix}"),
            _dir: dir,
        }
    }

    /// How long a new object of tenant B takes to be `Ready`.
    async fn b_serves_a_new_object(&self, name: &str) -> Duration {
        let created = Instant::now();
        self.b
            .create(name, &self.sim, &self.selector, json!({}))
            .await;
        wait_until(&self.b.api, name, Duration::from_secs(20), "Ready", |o| {
            is(o, "Ready", "True")
        })
        .await;
        let took = created.elapsed();
        eprintln!("measured: tenant B's new object was Ready {took:?} after its creation");
        took
    }
}

fn scenario_file(dir: &tempfile::TempDir) -> PathBuf {
    let path = dir.path().join("scenario.yaml");
    std::fs::write(&path, TWO_TENANTS).unwrap();
    path
}

fn is(object: &DcsTaskQuery, type_: &str, status: &str) -> bool {
    object.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == status)
    })
}

/// One controller for every namespace, seeing only objects labelled `selector`.
fn controller(selector: &str, extra: &[&str]) -> OperatorProcess {
    let mut args = vec!["--selector", selector];
    args.extend_from_slice(extra);
    OperatorProcess::start("", &args)
}

/// Issue 15, item 1. Tenant A (whose credential has worked) creates and deletes objects while
/// their first poll is on the wire to a slow upstream, eight times over; each deletion aborts its
/// feed mid-poll. Before, each
/// abandoned call kept one of the endpoint's 4 listing slots (and the account's probe lock) for
/// good, and tenant B's new object then got `EndpointBusy` until a restart. Now B is served at
/// once, and the slot and probe gauges come back to 0.
#[tokio::test]
async fn objects_deleted_mid_poll_leak_nothing_and_another_tenant_is_served_at_once() {
    let world = World::new("leak").await;
    let (sim, a) = (&world.sim, &world.a);
    let controller = controller(&world.selector, &[]);
    // Tenant A's credential works (so its listings need no probe and each takes a slot).
    a.create("verified", sim, &world.selector, json!({})).await;
    wait_until(&a.api, "verified", Duration::from_secs(20), "Ready", |o| {
        is(o, "Ready", "True")
    })
    .await;
    a.api
        .delete("verified", &DeleteParams::default())
        .await
        .unwrap();
    sim.inject_fault(json!({"count": 1000, "latency": "4s", "projectId": "project-a"}));

    for round in 0..8 {
        let name = format!("doomed-{round}");
        // A query of its own (its own feed) each time.
        a.create(
            &name,
            sim,
            &world.selector,
            json!({"query": {"limit": 100 + round}}),
        )
        .await;
        // Its first poll goes out at once and is on the wire for 4 s.
        tokio::time::sleep(Duration::from_millis(800)).await;
        a.api.delete(&name, &DeleteParams::default()).await.unwrap();
    }

    let took = world.b_serves_a_new_object("served").await;
    assert!(took < Duration::from_secs(6), "tenant B waited {took:?}");

    // Everything the abandoned polls held is released once their requests are answered.
    let text = controller.metrics_text().await.unwrap_or_default();
    for gauge in [
        "dcs_task_operator_upstream_listings_in_flight",
        "dcs_task_operator_upstream_auth_probes_in_flight",
        "dcs_task_operator_upstream_requests_queued",
    ] {
        assert!(text.contains(gauge), "no {gauge} in /metrics");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listings = controller
            .metric("dcs_task_operator_upstream_listings_in_flight")
            .await;
        let probes = controller
            .metric("dcs_task_operator_upstream_auth_probes_in_flight")
            .await;
        let queued = controller
            .metric("dcs_task_operator_upstream_requests_queued")
            .await;
        if (listings, probes, queued) == (0.0, 0.0, 0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still held: {listings} listings, {probes} probes, {queued} queued requests"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Issue 15, item 3. With one reconcile worker, tenant A asks Flux-style refreshes of a query
/// whose upstream takes 8 s. Before, each refresh held the worker until the new answer (up to
/// 30 s), and tenant B's new object waited behind it. Now a refresh waits a small fixed bound
/// and the feed wakes the object with the refreshed answer, which is then echoed.
#[tokio::test]
async fn a_refresh_of_a_slow_query_holds_no_worker_and_is_echoed_when_answered() {
    let world = World::new("refresh").await;
    let (sim, a) = (&world.sim, &world.a);
    let _controller = controller(&world.selector, &["--concurrency", "1"]);
    a.create("slow", sim, &world.selector, json!({"interval": "1h"}))
        .await;
    wait_until(&a.api, "slow", Duration::from_secs(20), "Ready", |o| {
        is(o, "Ready", "True")
    })
    .await;

    sim.inject_fault(json!({"count": 1000, "latency": "8s", "projectId": "project-a"}));
    a.api
        .patch(
            "slow",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "refresh-1"}}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let took = world.b_serves_a_new_object("meanwhile").await;
    assert!(took < Duration::from_secs(5), "tenant B waited {took:?}");

    let echoed = wait_until(&a.api, "slow", Duration::from_secs(30), "the echo", |o| {
        o.status
            .as_ref()
            .and_then(|s| s.last_handled_reconcile_at.as_deref())
            == Some("refresh-1")
    })
    .await;
    assert!(is(&echoed, "Ready", "True"));
}
