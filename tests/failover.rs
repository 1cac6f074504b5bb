//! Failover: a leader that is told to stop hands the Lease over at once, a leader cut off from
//! the apiserver stops acting before its Lease can pass to another replica, and the controller
//! rides out a kube-apiserver restart.
//!
//! Controllers and the simulator are real processes; the control plane is the shared one, except
//! for the restart test, which stops its own apiserver and so starts a private control plane.
//! The lease figures assume what the binary configures: a 15 s Lease that a leader stops acting
//! on after 10 s without a renewal.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use dcs_task_operator::api::DcsTaskQuery;
use dcs_task_operator::controller::credentials::CREDENTIALS_LABEL;
use dcs_task_operator::sim::{DEMO_ACCESS_KEY, DEMO_PROJECT_ID, DEMO_SECRET_KEY};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use support::control_plane::ControlPlane;
use support::operator::{OperatorProcess, printed, query_object};
use support::sim_process::SimProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The Lease the binary uses by default (`--lease-name`).
const LEASE_NAME: &str = "dcs-task-operator";
/// What the binary configures (`LeaseSettings` in `cli::controller`).
const LEASE_DURATION: Duration = Duration::from_secs(15);

const SCENARIO: &str = r#"
tasks:
  - name: EXTEND
    createdAt: "-2h"
    status: SUCCESS
  - name: BindEip
    createdAt: "-1h"
    status: SUCCESS
"#;

/// A controller process watching one namespace.
struct Operator(OperatorProcess);

impl Operator {
    fn start(kubeconfig: &Path, namespace: &str, extra: &[&str]) -> Self {
        Self(OperatorProcess::start_as(kubeconfig, namespace, extra))
    }

    /// With `--leader-elect`, the Lease in `namespace`, as `identity`.
    fn elect(kubeconfig: &Path, namespace: &str, identity: &str) -> Self {
        Self::start(
            kubeconfig,
            namespace,
            &[
                "--leader-elect",
                "--lease-namespace",
                namespace,
                "--identity",
                identity,
            ],
        )
    }

    /// A counter from `/metrics`; -1 when the server does not answer, 0 when absent.
    async fn metric(&self, prefix: &str) -> f64 {
        self.0.metric(prefix).await
    }

    /// SIGTERM, SIGKILL after 10 s; what it printed and whether it exited on its own, cleanly.
    fn terminate(self) -> (bool, String) {
        let output = self.0.terminate(Duration::from_secs(10));
        (
            output.status.success(),
            format!("{}\n{}", output.status, printed(&output)),
        )
    }
}

/// One test's world: a namespace with the demo credentials and a simulator.
struct World {
    client: Client,
    ns: String,
    sim: SimProcess,
    api: Api<DcsTaskQuery>,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new(plane: &ControlPlane, prefix: &str) -> Self {
        let client = plane.admin_client();
        let ns = plane.new_namespace(prefix).await;
        let dir = tempfile::tempdir().unwrap();
        let scenario = dir.path().join("scenario.yaml");
        std::fs::write(&scenario, SCENARIO).unwrap();
        let sim = SimProcess::start(Some(&scenario), &[]);
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "dcs-credentials", "labels": {CREDENTIALS_LABEL: "true"}},
            "stringData": {"accessKey": DEMO_ACCESS_KEY, "secretKey": DEMO_SECRET_KEY, "projectId": DEMO_PROJECT_ID}
        }))
        .unwrap();
        Api::<Secret>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
        let api = Api::namespaced(client.clone(), &ns);
        Self {
            client,
            ns,
            sim,
            api,
            _dir: dir,
        }
    }

    fn query(&self, name: &str, extra_spec: Value) -> DcsTaskQuery {
        query_object(name, self.sim.base_url(), extra_spec)
    }

    async fn create(&self, name: &str, extra_spec: Value) {
        self.api
            .create(&PostParams::default(), &self.query(name, extra_spec))
            .await
            .unwrap_or_else(|error| panic!("creating {name}: {error}"));
    }

    /// Polls `name` every 50 ms until `check` holds; returns it and how long that took.
    async fn wait_for(
        &self,
        name: &str,
        timeout: Duration,
        what: &str,
        check: impl Fn(&DcsTaskQuery) -> bool,
    ) -> (DcsTaskQuery, Duration) {
        let started = Instant::now();
        loop {
            // The apiserver may still be coming back: a failed read is not an answer.
            if let Ok(object) = self.api.get(name).await
                && check(&object)
            {
                return (object, started.elapsed());
            }
            if started.elapsed() > timeout {
                let status = self
                    .api
                    .get(name)
                    .await
                    .map(|object| serde_json::to_string_pretty(&object.status).unwrap())
                    .unwrap_or_else(|error| error.to_string());
                panic!("{name}: no {what} within {timeout:?}; status: {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn lease(&self) -> Option<LeaseView> {
        let lease = Api::<Lease>::namespaced(self.client.clone(), &self.ns)
            .get_opt(LEASE_NAME)
            .await
            .unwrap_or_else(|error| panic!("reading the Lease: {error}"))?;
        let spec = lease.spec.unwrap_or_default();
        Some(LeaseView {
            holder: spec.holder_identity.filter(|holder| !holder.is_empty()),
            renewed: spec.renew_time.map(|time| SystemTime::from(time.0)),
        })
    }

    /// Polls the Lease every 50 ms until `identity` holds it; how long that took.
    async fn wait_for_holder(&self, identity: &str, timeout: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let holder = self.lease().await.and_then(|lease| lease.holder);
            if holder.as_deref() == Some(identity) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < timeout,
                "{identity} did not take the Lease within {timeout:?}; holder: {holder:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Events about `name` by reason, each with the replicas that reported it.
    async fn events(&self, name: &str) -> BTreeMap<String, Vec<String>> {
        let mut by_reason: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let events = Api::<Event>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        for event in events {
            if event.regarding.as_ref().and_then(|r| r.name.as_deref()) != Some(name) {
                continue;
            }
            // A repeated event would be a new object or a bumped series count.
            let times = event.series.as_ref().map_or(1, |series| series.count);
            for _ in 0..times {
                by_reason
                    .entry(event.reason.clone().unwrap_or_default())
                    .or_default()
                    .push(event.reporting_instance.clone().unwrap_or_default());
            }
        }
        by_reason
    }
}

#[derive(Debug, Clone)]
struct LeaseView {
    holder: Option<String>,
    renewed: Option<SystemTime>,
}

fn has_status(object: &DcsTaskQuery) -> bool {
    object.status.is_some()
}

fn condition_is(object: &DcsTaskQuery, type_: &str, status: &str) -> bool {
    object.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == status)
    })
}

/// A TCP proxy on loopback in front of the apiserver, for one replica's traffic only. TLS passes
/// through untouched. [`Partition::cut`] freezes every connection, old and new, in both
/// directions: nothing more reaches the apiserver and nothing comes back, like a network
/// partition that drops packets (the replica sees hanging requests, not errors).
struct Partition {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Partition {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, cut_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((downstream, _)) = listener.accept().await {
                let cut = cut_rx.clone();
                tokio::spawn(async move {
                    let mut waiting = cut.clone();
                    if waiting.wait_for(|cut| !*cut).await.is_err() {
                        return;
                    }
                    let Ok(upstream) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (down_read, down_write) = downstream.into_split();
                    let (up_read, up_write) = upstream.into_split();
                    tokio::join!(
                        pipe(down_read, up_write, cut.clone()),
                        pipe(up_read, down_write, cut),
                    );
                });
            }
        });
        Self { addr, cut, task }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    fn cut(&self) {
        let _ = self.cut.send(true);
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to` while the link is up; once it is cut, reads nothing more and forwards
/// nothing already read.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut cut: watch::Receiver<bool>,
) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        if cut.wait_for(|cut| !*cut).await.is_err() {
            return;
        }
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            // `read` is cancel-safe: nothing is lost, and nothing more is read.
            _ = cut.wait_for(|cut| *cut) => continue,
        };
        let Ok(count @ 1..) = read else {
            let _ = to.shutdown().await;
            return;
        };
        if *cut.borrow() {
            // Cut while reading: hold the bytes forever, never deliver them late.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buffer[..count]).await.is_err() {
            return;
        }
    }
}

fn upstream_addr(plane: &ControlPlane) -> SocketAddr {
    plane
        .url()
        .trim_start_matches("https://")
        .parse()
        .unwrap_or_else(|error| panic!("apiserver URL {}: {error}", plane.url()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_the_lease_to_the_standby_within_seconds() {
    let plane = ControlPlane::shared();
    let world = World::new(plane, "failover-sigterm").await;
    let kubeconfig = plane.kubeconfig_path();
    let mut a = Operator::elect(kubeconfig, &world.ns, "replica-a");
    world
        .wait_for_holder("replica-a", Duration::from_secs(30))
        .await;
    let leading_since = Instant::now();
    let b = Operator::elect(kubeconfig, &world.ns, "replica-b");
    world.create("before", json!({})).await;
    world
        .wait_for("before", Duration::from_secs(30), "Ready", |o| {
            condition_is(o, "Ready", "True")
        })
        .await;
    // A healthy leader keeps acting past `duration - grace` (10 s): its renewals count.
    tokio::time::sleep(Duration::from_secs(12).saturating_sub(leading_since.elapsed())).await;
    assert!(a.0.is_running(), "the healthy leader exited");
    let lease = world.lease().await.expect("the Lease exists");
    assert_eq!(lease.holder.as_deref(), Some("replica-a"));
    let renewed_ago = SystemTime::now()
        .duration_since(lease.renewed.expect("a held Lease has a renewTime"))
        .unwrap_or_default();
    assert!(
        renewed_ago < Duration::from_secs(5),
        "the leader renews every 3 s, but the last renewal was {renewed_ago:?} ago"
    );
    assert_eq!(
        b.metric("dcs_task_operator_reconciles_total").await,
        0.0,
        "the standby reconciled"
    );

    let sent = Instant::now();
    let stopping = std::thread::spawn(move || a.terminate());
    let takeover = world
        .wait_for_holder("replica-b", Duration::from_secs(30))
        .await;
    world.create("after", json!({})).await;
    world
        .wait_for("after", Duration::from_secs(30), "a status", has_status)
        .await;
    let acting = sent.elapsed();
    let (clean, logs_a) = stopping.join().unwrap();
    eprintln!(
        "figures: SIGTERM to the standby holding the Lease {:.2} s; to its first status write for a new object {:.2} s (Lease {} s)",
        takeover.as_secs_f64(),
        acting.as_secs_f64(),
        LEASE_DURATION.as_secs()
    );
    assert!(
        clean,
        "the leader did not exit cleanly on SIGTERM: {logs_a}"
    );
    assert!(logs_a.contains("released the lease"), "{logs_a}");
    assert!(
        takeover < Duration::from_secs(8),
        "the standby took {takeover:?} to hold the Lease after SIGTERM (lease {LEASE_DURATION:?}); leader logs:\n{logs_a}"
    );
    assert!(b.metric("dcs_task_operator_status_writes_total").await >= 1.0);
    let (_, logs_b) = b.terminate();
    assert!(logs_b.contains("acquired leadership"), "{logs_b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_stops_acting_before_its_lease_can_pass() {
    let plane = ControlPlane::shared();
    let world = World::new(plane, "failover-partition").await;
    let partition = Partition::start(upstream_addr(plane)).await;
    let through_proxy = plane.write_admin_kubeconfig_for(&partition.url());
    let mut a = Operator::elect(&through_proxy, &world.ns, "replica-a");
    world
        .wait_for_holder("replica-a", Duration::from_secs(30))
        .await;
    let b = Operator::elect(plane.kubeconfig_path(), &world.ns, "replica-b");
    world.sim.add_task(
        json!({"id": "swap-p", "name": "masterStandbySwapJob", "jobId": "job-p", "status": "EXECUTING"}),
    );
    world
        .create("awaited", json!({"waitFor": {"jobId": "job-p"}}))
        .await;
    world
        .wait_for("awaited", Duration::from_secs(30), "Pending", |o| {
            condition_is(o, "Complete", "False") && condition_is(o, "Reconciling", "True")
        })
        .await;

    partition.cut();
    let cut_at = Instant::now();
    // The leader still polls the simulator (not behind the proxy) and sees the task finish; it
    // cannot write that down, and must not once the Lease may have passed.
    world.sim.set_status("swap-p", "SUCCESS");

    let mut last_renewal_by_a: Option<SystemTime> = None;
    let mut a_stopped: Option<(Instant, SystemTime)> = None;
    let mut b_took_over: Option<Instant> = None;
    while a_stopped.is_none() || b_took_over.is_none() {
        assert!(
            cut_at.elapsed() < Duration::from_secs(40),
            "40 s after the cut: leader stopped: {a_stopped:?}, standby took over: {b_took_over:?}"
        );
        if a_stopped.is_none() && !a.0.is_running() {
            a_stopped = Some((Instant::now(), SystemTime::now()));
        }
        if let Some(lease) = world.lease().await {
            match lease.holder.as_deref() {
                Some("replica-a") => last_renewal_by_a = lease.renewed.or(last_renewal_by_a),
                Some("replica-b") if b_took_over.is_none() => b_took_over = Some(Instant::now()),
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (a_stopped_at, a_stopped_wall) = a_stopped.unwrap();
    let b_took_over = b_took_over.unwrap();
    let last_renewal = last_renewal_by_a.expect("the Lease named replica-a before the cut");
    let expiry = last_renewal + LEASE_DURATION;
    let output = a.0.finish(Duration::from_secs(3600));
    let logs_a = printed(&output);
    eprintln!(
        "figures: after the cut the leader stopped at {:.2} s ({:.2} s after its last renewal, {:.2} s before the Lease expired); the standby held the Lease at {:.2} s",
        (a_stopped_at - cut_at).as_secs_f64(),
        a_stopped_wall
            .duration_since(last_renewal)
            .unwrap_or_default()
            .as_secs_f64(),
        expiry
            .duration_since(a_stopped_wall)
            .unwrap_or_default()
            .as_secs_f64(),
        (b_took_over - cut_at).as_secs_f64(),
    );
    assert!(
        !output.status.success() && logs_a.contains("lost leadership"),
        "the cut-off leader should exit with the lost-leadership error: {logs_a}"
    );
    // It stops `grace` (5 s) before the Lease expires; 2 s of that may go to a busy machine.
    assert!(
        a_stopped_wall + Duration::from_secs(2) < expiry,
        "the cut-off leader was still running 2 s before its Lease expired (last renewal {last_renewal:?}); logs:\n{logs_a}"
    );
    assert!(
        a_stopped_at < b_took_over,
        "the Lease passed before the old leader stopped"
    );

    // Only the new leader writes from now on: it records the outcome and the one event.
    let (done, _) = world
        .wait_for("awaited", Duration::from_secs(30), "Complete", |o| {
            condition_is(o, "Complete", "True")
        })
        .await;
    assert!(condition_is(&done, "Ready", "True"));
    assert!(b.metric("dcs_task_operator_status_writes_total").await >= 1.0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events = world.events("awaited").await;
    assert_eq!(
        events.get("TaskSucceeded"),
        Some(&vec!["replica-b".to_string()]),
        "{events:?}"
    );
    let (_, logs_b) = b.terminate();
    assert!(logs_b.contains("acquired leadership"), "{logs_b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_kube_apiserver_restart_new_objects_get_status_within_seconds() {
    // A private control plane: this test stops its apiserver.
    let plane =
        tokio::task::block_in_place(ControlPlane::start).unwrap_or_else(|error| panic!("{error}"));
    let world = World::new(&plane, "apiserver-restart").await;
    world.sim.add_task(
        json!({"id": "swap-r", "name": "masterStandbySwapJob", "jobId": "job-r", "status": "EXECUTING"}),
    );
    let kubeconfig: PathBuf = plane.kubeconfig_path().to_path_buf();
    let mut operator = Operator::start(&kubeconfig, &world.ns, &[]);
    world
        .create("awaited", json!({"waitFor": {"jobId": "job-r"}}))
        .await;
    world
        .wait_for("awaited", Duration::from_secs(30), "Pending", |o| {
            condition_is(o, "Complete", "False") && condition_is(o, "Reconciling", "True")
        })
        .await;

    tokio::task::block_in_place(|| plane.stop_apiserver());
    let stopped = Instant::now();
    // The task finishes while the operator cannot write: that write must be retried later.
    world.sim.set_status("swap-r", "SUCCESS");
    tokio::time::sleep(Duration::from_secs(5)).await;
    tokio::task::block_in_place(|| plane.start_apiserver());
    let outage = stopped.elapsed();

    // A fresh client: the old one's connections died with the apiserver.
    let world = World {
        client: plane.admin_client(),
        api: Api::namespaced(plane.admin_client(), &world.ns),
        ..world
    };
    world.create("fresh", json!({})).await;
    let (_, first_status) = world
        .wait_for("fresh", Duration::from_secs(60), "a status", has_status)
        .await;
    let (done, completed) = world
        .wait_for("awaited", Duration::from_secs(60), "Complete", |o| {
            condition_is(o, "Complete", "True")
        })
        .await;
    eprintln!(
        "figures: apiserver down {:.1} s (stopped 5 s, then ready); a new object's first status {:.2} s after /readyz; the write missed during the outage had landed by {:.2} s after /readyz",
        outage.as_secs_f64(),
        first_status.as_secs_f64(),
        (first_status + completed).as_secs_f64()
    );
    assert!(
        first_status < Duration::from_secs(15),
        "first status after the restart took {first_status:?}"
    );
    assert!(condition_is(&done, "Ready", "True"));
    assert!(operator.0.is_running(), "the operator exited");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events = world.events("awaited").await;
    assert_eq!(
        events.get("TaskSucceeded").map(Vec::len),
        Some(1),
        "{events:?}"
    );
    let (_, logs) = operator.terminate();
    assert!(logs.contains("controller started"), "{logs}");
}
