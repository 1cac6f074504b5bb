//! The controller against a real kube-apiserver + etcd and the simulator, each a real process.
//!
//! Every test gets its own namespace, simulator and controller process (`--watch-namespace`),
//! so tests run in parallel on the shared control plane without seeing each other.

mod support;

use std::time::{Duration, Instant};

use dcs_task_operator::api::DcsTaskQuery;
use dcs_task_operator::controller::credentials::CREDENTIALS_LABEL;
use dcs_task_operator::sim::{DEMO_ACCESS_KEY, DEMO_PROJECT_ID, DEMO_SECRET_KEY};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::control_plane::ControlPlane;
use support::operator::{OperatorProcess as ControllerProcess, wait_until};
use support::sim_process::SimProcess;
use support::world::{
    World as Fixture, condition, credentials_secret, events_for, is, query, reasons,
    seconds_until_failed,
};

const SETTLED_SCENARIO: &str = r#"
tasks:
  - name: EXTEND
    createdAt: "-2h"
    status: SUCCESS
    details: {old_capacity: 0.125, new_capacity: "0.25"}
  - name: BindEip
    createdAt: "-1h"
    status: SUCCESS
"#;

#[tokio::test]
async fn a_waited_task_goes_pending_then_complete_and_kubectl_wait_returns() {
    let f = Fixture::new("wait-complete", SETTLED_SCENARIO, true).await;
    let (plane, client, ns, sim, api) = (f.plane, &f.client, &f.ns, &f.sim, &f.api);
    sim.add_task(json!({"id": "swap-1", "name": "masterStandbySwapJob", "jobId": "job-1", "status": "EXECUTING"}));
    let controller = f.controller(&[]);
    api.create(
        &PostParams::default(),
        &query(
            "swap",
            sim,
            json!({"waitFor": {"source": "TaskList", "jobId": "job-1"}}),
        ),
    )
    .await
    .unwrap();

    let pending = wait_until(api, "swap", Duration::from_secs(30), "Pending", |o| {
        o.status
            .as_ref()
            .and_then(|s| s.wait_for.as_ref())
            .is_some_and(|w| w.status.as_deref() == Some("EXECUTING"))
    })
    .await;
    assert!(is(&pending, "Reconciling", "True"));
    assert!(is(&pending, "Complete", "False"));
    assert!(is(&pending, "Ready", "False"));

    sim.set_status("swap-1", "SUCCESS");
    f.kubectl_wait("swap", "Complete", "30s");
    let done = api.get("swap").await.unwrap();
    assert!(is(&done, "Ready", "True"));
    assert!(is(&done, "Failed", "False"));
    assert!(is(&done, "Reconciling", "False"));
    let status = done.status.as_ref().unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert!(
        status
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(1))
    );
    let wait = status.wait_for.as_ref().unwrap();
    assert_eq!(wait.task_id.as_deref(), Some("swap-1"));
    assert_eq!(wait.status.as_deref(), Some("SUCCESS"));

    let table = plane.kubectl(&["get", "dcstq", "-n", ns]);
    assert!(table.contains("Succeeded"), "{table}");
    let logs = controller.stop();
    assert!(
        !logs.contains(DEMO_SECRET_KEY),
        "the secret key leaked into logs"
    );
    let events = reasons(&events_for(client, ns, "swap").await);
    assert_eq!(events.get("TaskSucceeded"), Some(&1), "{events:?}");
}

#[tokio::test]
async fn a_failed_task_marks_failed_and_stalled_with_one_event() {
    let f = Fixture::new("wait-failed", SETTLED_SCENARIO, true).await;
    let (client, ns, sim, api) = (&f.client, &f.ns, &f.sim, &f.api);
    sim.add_task(json!({"id": "swap-2", "name": "masterStandbySwapJob", "jobId": "job-2", "status": "EXECUTING", "errorCode": "DCS.5094"}));
    let _controller = f.controller(&[]);
    api.create(
        &PostParams::default(),
        &query("swap", sim, json!({"waitFor": {"jobId": "job-2"}})),
    )
    .await
    .unwrap();
    wait_until(api, "swap", Duration::from_secs(30), "Pending", |o| {
        is(o, "Reconciling", "True") && o.status.as_ref().is_some_and(|s| s.wait_for.is_some())
    })
    .await;
    sim.set_status("swap-2", "FAILED");
    let failed = wait_until(api, "swap", Duration::from_secs(30), "Failed", |o| {
        is(o, "Failed", "True")
    })
    .await;
    assert!(is(&failed, "Stalled", "True"));
    assert!(is(&failed, "Complete", "False"));
    assert!(is(&failed, "Ready", "False"));
    let stalled = condition(&failed, "Stalled").unwrap();
    assert_eq!(stalled.1, "TaskFailed");
    assert!(stalled.2.contains("DCS.5094"), "{}", stalled.2);
    // Let a few polls pass: a resolved wait is final, so no more events and no more writes.
    let version = failed.metadata.resource_version.clone();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        api.get("swap").await.unwrap().metadata.resource_version,
        version
    );
    let events = reasons(&events_for(client, ns, "swap").await);
    assert_eq!(events.get("TaskFailed"), Some(&1), "{events:?}");
}

#[tokio::test]
async fn a_spec_change_bumps_generation_and_the_conditions_follow() {
    let f = Fixture::new("spec-change", SETTLED_SCENARIO, true).await;
    let (sim, api) = (&f.sim, &f.api);
    sim.add_task(json!({"id": "swap-3", "name": "masterStandbySwapJob", "jobId": "job-3", "status": "EXECUTING"}));
    let _controller = f.controller(&[]);
    api.create(&PostParams::default(), &query("q", sim, json!({})))
        .await
        .unwrap();
    let ready = wait_until(api, "q", Duration::from_secs(30), "Ready", |o| {
        is(o, "Ready", "True")
    })
    .await;
    assert_eq!(ready.status.as_ref().unwrap().matched_count, Some(3));
    assert!(
        condition(&ready, "Complete").is_none(),
        "no waitFor, no Complete"
    );

    api.patch(
        "q",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"waitFor": {"jobId": "job-3"}}})),
    )
    .await
    .unwrap();
    let changed = wait_until(api, "q", Duration::from_secs(30), "generation 2", |o| {
        o.status.as_ref().and_then(|s| s.observed_generation) == Some(2)
    })
    .await;
    assert_eq!(changed.metadata.generation, Some(2));
    assert!(
        changed
            .status
            .as_ref()
            .unwrap()
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(2))
    );
    assert!(is(&changed, "Ready", "False"));
    assert!(is(&changed, "Reconciling", "True"));
    assert!(is(&changed, "Complete", "False"));

    // An invalid spec the 1.20 server cannot catch (CEL) stalls with the field named.
    api.patch(
        "q",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"waitFor": {"name": "masterStandbySwapJob"}}})),
    )
    .await
    .unwrap();
    let invalid = wait_until(api, "q", Duration::from_secs(30), "InvalidSpec", |o| {
        o.status.as_ref().and_then(|s| s.observed_generation) == Some(3)
    })
    .await;
    let stalled = condition(&invalid, "Stalled").unwrap();
    assert_eq!(
        (stalled.0.as_str(), stalled.1.as_str()),
        ("True", "InvalidSpec")
    );
    assert!(stalled.2.contains("spec.waitFor"), "{}", stalled.2);
    assert!(
        invalid.status.as_ref().unwrap().wait_for.is_none(),
        "no verdict from an older spec"
    );
    assert_eq!(
        invalid.status.as_ref().unwrap().matched_count,
        Some(3),
        "known results kept"
    );
}

#[tokio::test]
async fn a_missing_secret_stalls_with_its_name_until_it_appears() {
    let f = Fixture::new("missing-secret", SETTLED_SCENARIO, false).await;
    let (client, ns, sim, api) = (&f.client, &f.ns, &f.sim, &f.api);
    let _controller = f.controller(&[]);
    api.create(&PostParams::default(), &query("q", sim, json!({})))
        .await
        .unwrap();
    let stalled = wait_until(api, "q", Duration::from_secs(30), "Stalled", |o| {
        is(o, "Stalled", "True")
    })
    .await;
    let (_, reason, message, _) = condition(&stalled, "Stalled").unwrap();
    assert_eq!(reason, "CredentialsUnavailable");
    assert!(
        message.contains(&format!("Secret {ns}/dcs-credentials")),
        "{message}"
    );
    assert!(is(&stalled, "Ready", "False"));
    assert_eq!(sim.total_requests(), 0, "no call without credentials");
    let events = reasons(&events_for(client, ns, "q").await);
    assert_eq!(events.get("Stalled"), Some(&1), "{events:?}");

    // A Secret without the label is invisible to the operator's watch: the message says which
    // label to add, and adding it wakes the query through the watch, well before the 5 min retry.
    credentials_secret(client, ns, "dcs-credentials", DEMO_PROJECT_ID, false).await;
    api.patch(
        "q",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"touch": "1"}}})),
    )
    .await
    .unwrap();
    let unlabelled = wait_until(api, "q", Duration::from_secs(30), "the label hint", |o| {
        condition(o, "Stalled").is_some_and(|c| c.2.contains("lacks the label"))
    })
    .await;
    let (_, _, message, _) = condition(&unlabelled, "Stalled").unwrap();
    assert!(
        message.contains(&format!(
            "kubectl label secret -n {ns} dcs-credentials {CREDENTIALS_LABEL}=true"
        )),
        "{message}"
    );
    assert_eq!(
        sim.total_requests(),
        0,
        "no call without usable credentials"
    );
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(
            "dcs-credentials",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {CREDENTIALS_LABEL: "true"}}})),
        )
        .await
        .unwrap();
    wait_until(
        api,
        "q",
        Duration::from_secs(20),
        "Ready after the Secret was labelled",
        |o| is(o, "Ready", "True"),
    )
    .await;
}

#[tokio::test]
async fn a_hundred_equal_queries_share_one_upstream_call_per_interval() {
    let f = Fixture::new("shared-fetch", SETTLED_SCENARIO, true).await;
    let (sim, api) = (&f.sim, &f.api);
    let controller = f.controller(&["--rate-limit", "50"]);
    // Created concurrently, as `kubectl apply -f dir/` would, so they arrive together.
    let objects: Vec<DcsTaskQuery> = (0..100)
        .map(|i| query(&format!("q{i:03}"), sim, json!({})))
        .collect();
    let params = PostParams::default();
    for created in
        futures::future::join_all(objects.iter().map(|object| api.create(&params, object))).await
    {
        created.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = api.list(&ListParams::default()).await.unwrap();
        if list.items.iter().filter(|o| is(o, "Ready", "True")).count() == 100 {
            break;
        }
        assert!(Instant::now() < deadline, "not all 100 became Ready");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let first_round = sim.total_requests();
    assert!(
        first_round <= 3,
        "100 new objects made {first_round} upstream calls"
    );

    // Three settled intervals (10 s each, ±10% jitter): about one call per interval.
    sim.reset_stats();
    let versions: Vec<_> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| o.metadata.resource_version)
        .collect();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let calls = sim.total_requests();
    assert!(
        (2..=5).contains(&calls),
        "100 objects over 3 intervals made {calls} upstream calls"
    );
    // Nothing changed upstream, so nothing was written: the polls were silent.
    let after: Vec<_> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| o.metadata.resource_version)
        .collect();
    assert_eq!(versions, after, "unchanged polls must not write status");
    let shared = controller
        .metric("dcs_task_operator_shared_fetches_total{outcome=\"fed\"}")
        .await;
    assert!(shared >= 100.0, "answers fed to objects: {shared}");
    // The first answer came within the first-answer wait: one status write per object.
    let writes = controller
        .metric("dcs_task_operator_status_writes_total")
        .await;
    assert!(writes <= 110.0, "{writes} status writes for 100 objects");
    assert_eq!(
        controller.metric("dcs_task_operator_upstream_feeds").await,
        1.0
    );
    // Deleted objects leave no feed behind.
    api.delete_collection(&Default::default(), &ListParams::default())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    while controller
        .metric("dcs_task_operator_feed_subscribers")
        .await
        > 0.0
    {
        assert!(
            Instant::now() < deadline,
            "subscriptions outlived their objects"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        controller.metric("dcs_task_operator_upstream_feeds").await,
        0.0
    );
    eprintln!(
        "figures: 100 new objects -> {first_round} upstream call(s) and {writes} status writes; 30 s settled -> {calls} call(s); {shared} answers fed from one feed"
    );
}

#[tokio::test]
async fn a_restart_loses_nothing_and_repeats_no_event() {
    let f = Fixture::new("restart", SETTLED_SCENARIO, true).await;
    let (client, ns, sim, api) = (&f.client, &f.ns, &f.sim, &f.api);
    sim.add_task(json!({"id": "swap-4", "name": "masterStandbySwapJob", "jobId": "job-4", "status": "SUCCESS"}));
    api.create(
        &PostParams::default(),
        &query("done", sim, json!({"waitFor": {"jobId": "job-4"}})),
    )
    .await
    .unwrap();
    api.create(&PostParams::default(), &query("plain", sim, json!({})))
        .await
        .unwrap();
    let first = f.controller(&[]);
    let done = wait_until(api, "done", Duration::from_secs(30), "Complete", |o| {
        is(o, "Complete", "True")
    })
    .await;
    let plain = wait_until(api, "plain", Duration::from_secs(30), "Ready", |o| {
        is(o, "Ready", "True")
    })
    .await;
    first.stop();

    let second = f.controller(&[]);
    // Give the new process time to list, reconcile everything and poll at least once.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let logs = second.stop();
    assert!(logs.contains("controller started"), "{logs}");
    let done_after = api.get("done").await.unwrap();
    let plain_after = api.get("plain").await.unwrap();
    assert_eq!(done_after.status, done.status, "resolved wait untouched");
    assert_eq!(
        done_after.metadata.resource_version,
        done.metadata.resource_version
    );
    assert_eq!(
        plain_after.metadata.resource_version,
        plain.metadata.resource_version
    );
    let events = reasons(&events_for(client, ns, "done").await);
    assert_eq!(events.get("TaskSucceeded"), Some(&1), "{events:?}");
}

#[tokio::test]
async fn two_replicas_with_leader_election_never_both_write() {
    let f = Fixture::new("leader", SETTLED_SCENARIO, true).await;
    let (ns, sim, api) = (&f.ns, &f.sim, &f.api);
    let elect = |identity: &'static str| {
        ControllerProcess::start(
            ns,
            &[
                "--leader-elect",
                "--lease-namespace",
                ns,
                "--identity",
                identity,
            ],
        )
    };
    let mut a = elect("replica-a");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut b = elect("replica-b");
    api.create(&PostParams::default(), &query("q", sim, json!({})))
        .await
        .unwrap();
    wait_until(api, "q", Duration::from_secs(30), "Ready", |o| {
        is(o, "Ready", "True")
    })
    .await;
    let writes_a = a.metric("dcs_task_operator_status_writes_total").await;
    let writes_b = b.metric("dcs_task_operator_status_writes_total").await;
    let reconciles_b = b.metric("dcs_task_operator_reconciles_total").await;
    assert!(writes_a >= 1.0, "the leader wrote {writes_a}");
    assert_eq!((writes_b, reconciles_b), (0.0, 0.0), "the standby acted");

    // The leader goes away; the standby takes over within the lease duration and acts.
    let logs_a = a.stop_in_place();
    assert!(logs_a.contains("acquired leadership"), "{logs_a}");
    api.patch(
        "q",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"maxTasks": 5}})),
    )
    .await
    .unwrap();
    wait_until(
        api,
        "q",
        Duration::from_secs(40),
        "the standby's write",
        |o| o.status.as_ref().and_then(|s| s.observed_generation) == Some(2),
    )
    .await;
    assert!(b.metric("dcs_task_operator_status_writes_total").await >= 1.0);
    let logs_b = b.stop_in_place();
    assert!(logs_b.contains("acquired leadership"), "{logs_b}");
}

#[tokio::test]
async fn status_stays_under_256_kib_with_200_large_tasks() {
    let big = "x".repeat(20_000);
    let mut yaml = String::from("tasks:\n");
    for i in 0..300 {
        yaml.push_str(&format!(
            "  - name: EXTEND\n    createdAt: \"-{}m\"\n    status: SUCCESS\n    params: \"{big}\"\n    details: {{node_name: \"{big}\", rename_commands: [\"{big}\", \"{big}\"]}}\n",
            i + 1
        ));
    }
    let f = Fixture::new("big-status", &yaml, true).await;
    let _controller = f.controller(&[]);
    f.create("big", json!({"maxTasks": 200})).await;
    let ready = wait_until(&f.api, "big", Duration::from_secs(60), "Ready", |o| {
        is(o, "Ready", "True")
    })
    .await;
    let status = ready.status.unwrap();
    let bytes = serde_json::to_vec(&status).unwrap().len();
    assert!(bytes < 256 * 1024, "status is {bytes} bytes");
    assert_eq!(status.matched_count, Some(300));
    assert!(!status.tasks.is_empty());
}

#[tokio::test]
async fn simulator_mode_needs_no_secret() {
    let plane = ControlPlane::shared();
    let ns = plane.new_namespace("sim-mode").await;
    let api: Api<DcsTaskQuery> = Api::namespaced(plane.admin_client(), &ns);
    let _controller = ControllerProcess::start(&ns, &["--sim"]);
    let object: DcsTaskQuery = serde_json::from_value(json!({
        "apiVersion": "dcs.hwcloud.dev/v1alpha1", "kind": "DcsTaskQuery",
        "metadata": {"name": "demo"},
        "spec": {"region": "cn-north-4", "activeInterval": "2s",
                 "waitFor": {"name": "masterStandbySwapJob"}}
    }))
    .unwrap();
    api.create(&PostParams::default(), &object).await.unwrap();
    let done = wait_until(&api, "demo", Duration::from_secs(40), "Complete", |o| {
        is(o, "Complete", "True")
    })
    .await;
    assert!(is(&done, "Ready", "True"));
}

#[tokio::test]
async fn the_flux_requested_at_annotation_forces_a_poll_and_is_echoed() {
    let f = Fixture::new("flux-refresh", SETTLED_SCENARIO, true).await;
    let (client, ns, sim, api) = (&f.client, &f.ns, &f.sim, &f.api);
    sim.add_task(json!({"id": "swap-5", "name": "masterStandbySwapJob", "jobId": "job-5", "status": "SUCCESS"}));
    let _controller = f.controller(&[]);
    api.create(
        &PostParams::default(),
        &query("done", sim, json!({"waitFor": {"jobId": "job-5"}})),
    )
    .await
    .unwrap();
    wait_until(api, "done", Duration::from_secs(30), "Complete", |o| {
        is(o, "Complete", "True")
    })
    .await;
    // A resolved wait does not poll by itself...
    sim.reset_stats();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sim.total_requests(), 0);
    // ...but Flux's "reconcile now" does, bypassing the shared cache, and is echoed.
    api.patch(
        "done",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "2026-11-27T17:00:00Z"}}})),
    )
    .await
    .unwrap();
    let echoed = wait_until(api, "done", Duration::from_secs(20), "the echo", |o| {
        o.status
            .as_ref()
            .and_then(|s| s.last_handled_reconcile_at.as_deref())
            == Some("2026-11-27T17:00:00Z")
    })
    .await;
    assert_eq!(sim.total_requests(), 1, "exactly one forced poll");
    assert!(is(&echoed, "Complete", "True"));
    let events = reasons(&events_for(client, ns, "done").await);
    assert_eq!(events.get("TaskSucceeded"), Some(&1), "{events:?}");
}

/// A 200 answer from a hostile upstream: `names` distinct task names of CJK text (three bytes a
/// character) with long fields, as one page.
fn hostile_page(names: usize) -> Value {
    let long = "任务".repeat(1_000);
    let tasks: Vec<Value> = (0..names)
        .map(|i| {
            json!({
                "id": format!("h{i}"), "name": format!("任务{i}"), "status": "EXECUTING",
                "created_at": "2026-11-27T08:00:00.000Z",
                "params": if i < 2 { long.clone() } else { String::new() },
            })
        })
        .collect();
    json!({"task_count": names, "tasks": tasks})
}

#[tokio::test]
async fn one_hostile_object_cannot_take_the_operator_down_for_the_others() {
    let f = Fixture::new("hostile", SETTLED_SCENARIO, true).await;
    let (client, ns, sim, api) = (&f.client, &f.ns, &f.sim, &f.api);
    sim.add_task(json!({"id": "swap-h", "name": "masterStandbySwapJob", "jobId": "job-h", "status": "EXECUTING"}));
    // Two hostile upstreams: one answers with 9,000 distinct task names on one page (the client refuses pages of over 10,000), one refuses every call
    // with a 1.5 MiB CJK error message.
    let flood = SimProcess::start(None, &[]);
    flood.inject_fault(json!({"count": 1000, "status": 200, "body": hostile_page(9_000)}));
    let refusing = SimProcess::start(None, &[]);
    let huge_message = "错误".repeat(256 * 1024);
    refusing.inject_fault(json!({"count": 1000, "status": 401,
        "body": {"error_code": "APIG.0301", "error_msg": huge_message}}));
    credentials_secret(client, ns, "bad-project", "../x", true).await;
    let mut controller = f.controller(&[]);

    // Durations the 1.20 apiserver accepts (it drops CEL) but no calendar can hold.
    let huge = "3000000000h";
    let hostile = [
        (
            "since",
            json!({"query": {"since": huge}}),
            "spec.query.since",
        ),
        ("interval", json!({"interval": huge}), "spec.interval"),
        (
            "active",
            json!({"activeInterval": huge}),
            "spec.activeInterval",
        ),
        (
            "timeout",
            json!({"waitFor": {"jobId": "j", "timeout": huge}}),
            "spec.waitFor.timeout",
        ),
        (
            "lookback",
            json!({"waitFor": {"name": "n", "lookback": huge}}),
            "spec.waitFor.lookback",
        ),
        (
            "project",
            json!({"credentialsSecretRef": {"name": "bad-project"}}),
            "Secret {ns}/bad-project key `projectId`",
        ),
    ];
    for (name, spec, _) in &hostile {
        f.create(&format!("hostile-{name}"), spec.clone()).await;
    }
    f.create(
        "flood",
        json!({"endpoint": flood.base_url(), "maxTasks": 200}),
    )
    .await;
    f.create("refused", json!({"endpoint": refusing.base_url()}))
        .await;
    f.create(
        "healthy",
        json!({"waitFor": {"source": "TaskList", "jobId": "job-h"}}),
    )
    .await;

    wait_until(api, "healthy", Duration::from_secs(30), "Pending", |o| {
        o.status
            .as_ref()
            .and_then(|s| s.wait_for.as_ref())
            .is_some_and(|w| w.status.as_deref() == Some("EXECUTING"))
    })
    .await;
    sim.set_status("swap-h", "SUCCESS");
    wait_until(api, "healthy", Duration::from_secs(30), "Complete", |o| {
        is(o, "Complete", "True")
    })
    .await;

    for (name, _, field) in &hostile {
        let field = field.replace("{ns}", ns);
        let object = wait_until(
            api,
            &format!("hostile-{name}"),
            Duration::from_secs(30),
            "Stalled naming the field",
            |o| condition(o, "Stalled").is_some_and(|c| c.0 == "True" && c.2.contains(&field)),
        )
        .await;
        assert!(is(&object, "Ready", "False"), "{name}");
    }

    let flooded = wait_until(api, "flood", Duration::from_secs(90), "synced", |o| {
        o.status
            .as_ref()
            .is_some_and(|s| s.last_sync_time.is_some())
    })
    .await;
    let bytes = serde_json::to_vec(flooded.status.as_ref().unwrap())
        .unwrap()
        .len();
    assert!(bytes < 256 * 1024, "status of {bytes} bytes");
    let status = flooded.status.as_ref().unwrap();
    assert_eq!(status.matched_count, Some(9_000));
    assert_eq!(status.latest.len(), 64);

    let refused = wait_until(api, "refused", Duration::from_secs(90), "Stalled", |o| {
        is(o, "Stalled", "True")
    })
    .await;
    let last_error = refused.status.as_ref().unwrap().last_error.clone().unwrap();
    assert!(last_error.error_msg.unwrap().len() <= 1024);
    assert!(last_error.message.len() <= 1024);
    let deadline = Instant::now() + Duration::from_secs(20);
    let stalled_event = loop {
        let events = events_for(client, ns, "refused").await;
        if let Some(event) = events
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Stalled"))
        {
            break event;
        }
        assert!(
            Instant::now() < deadline,
            "the Stalled event was not accepted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(stalled_event.note.unwrap().len() <= 1024);

    assert!(controller.is_running(), "the operator exited");
    let logs = controller.stop();
    assert!(!logs.contains("panicked"), "{logs}");
}

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
async fn a_wait_times_out_while_every_poll_fails() {
    let f = Fixture::new("timeout-503", SETTLED_SCENARIO, true).await;
    let (client, ns, sim, api) = (&f.client, &f.ns, &f.sim, &f.api);
    sim.inject_fault(json!({"count": 10000, "status": 503,
        "body": {"error_code": "DCS.5000", "error_msg": "service unavailable"}}));
    let _controller = f.controller(&[]);
    f.create(
        "doomed",
        json!({"waitFor": {"source": "TaskList", "jobId": "never-listed", "timeout": "10s"}}),
    )
    .await;
    let timed_out = wait_until(api, "doomed", Duration::from_secs(60), "TimedOut", |o| {
        is(o, "Failed", "True")
    })
    .await;
    let status = timed_out.status.as_ref().unwrap();
    let wait = status.wait_for.as_ref().unwrap();
    assert_eq!(wait.phase, dcs_task_operator::api::WaitPhase::TimedOut);
    let (_, reason, message, _) = condition(&timed_out, "Stalled").unwrap();
    assert_eq!(reason, "TimedOut");
    assert!(message.contains("503"), "{message}");
    // The clock started at creation and ran out within the timeout plus one retry.
    let waited = seconds_until_failed(&timed_out);
    eprintln!("measured: timed out {waited} s after creation");
    assert!((10..=20).contains(&waited), "timed out after {waited} s");
    let before = sim.total_requests();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        sim.total_requests(),
        before,
        "a timed-out wait polls no more"
    );
    let events = reasons(&events_for(client, ns, "doomed").await);
    assert_eq!(events.get("WaitTimedOut"), Some(&1), "{events:?}");
}

#[tokio::test]
async fn a_refresh_of_a_resolved_wait_keeps_its_verdict_when_the_poll_fails() {
    let f = Fixture::new("refresh-keeps", SETTLED_SCENARIO, true).await;
    let (sim, api) = (&f.sim, &f.api);
    sim.add_task(json!({"id": "swap-r", "name": "masterStandbySwapJob", "jobId": "job-r", "status": "SUCCESS"}));
    let _controller = f.controller(&[]);
    f.create("done", json!({"waitFor": {"jobId": "job-r"}}))
        .await;
    let done = wait_until(api, "done", Duration::from_secs(30), "Complete", |o| {
        is(o, "Complete", "True")
    })
    .await;
    sim.inject_fault(json!({"count": 10000, "status": 503}));
    api.patch(
        "done",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "refresh-1"}}}),
        ),
    )
    .await
    .unwrap();
    let refreshed = wait_until(api, "done", Duration::from_secs(30), "the refresh", |o| {
        o.status
            .as_ref()
            .and_then(|s| s.last_handled_reconcile_at.as_deref())
            == Some("refresh-1")
    })
    .await;
    let before = done.status.as_ref().unwrap();
    let after = refreshed.status.as_ref().unwrap();
    assert_eq!(after.conditions, before.conditions, "the verdict stands");
    assert_eq!(after.wait_for, before.wait_for);
    assert_eq!(
        after.last_error.as_ref().and_then(|e| e.http_status),
        Some(503)
    );
    let requests = sim.total_requests();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        sim.total_requests(),
        requests,
        "no retry loop after a refresh"
    );
}

#[tokio::test]
async fn a_refusal_only_a_person_can_fix_stalls_and_is_not_hammered() {
    let f = Fixture::new("forbidden", SETTLED_SCENARIO, true).await;
    let (sim, api) = (&f.sim, &f.api);
    sim.inject_fault(json!({"count": 1000, "status": 403,
        "body": {"error_code": "DCS.4003", "error_msg": "no permission dcs:task:list"}}));
    let _controller = f.controller(&[]);
    f.create(
        "q",
        json!({"waitFor": {"source": "TaskList", "jobId": "j"}}),
    )
    .await;
    let stalled = wait_until(api, "q", Duration::from_secs(30), "Stalled", |o| {
        is(o, "Stalled", "True")
    })
    .await;
    let (_, reason, message, _) = condition(&stalled, "Stalled").unwrap();
    assert_eq!(reason, "UpstreamRefused");
    assert!(
        message.contains("403") && message.contains("dcs:task:list"),
        "{message}"
    );
    assert!(is(&stalled, "Reconciling", "False"));
    let calls = sim.total_requests();
    assert_eq!(calls, 1, "a 403 is not retried");
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        sim.total_requests(),
        calls,
        "polled slowly, not every activeInterval"
    );
}

#[tokio::test]
async fn a_settled_object_stays_ready_through_a_short_5xx_burst() {
    let f = Fixture::new("glitch", SETTLED_SCENARIO, true).await;
    let (sim, api) = (&f.sim, &f.api);
    let _controller = f.controller(&[]);
    f.create("q", json!({})).await;
    wait_until(api, "q", Duration::from_secs(30), "Ready", |o| {
        is(o, "Ready", "True")
    })
    .await;
    // Two listings' worth of failures (each listing tries 5 times).
    sim.inject_fault(json!({"count": 10, "status": 503}));
    let glitched = wait_until(api, "q", Duration::from_secs(60), "lastError", |o| {
        o.status.as_ref().is_some_and(|s| s.last_error.is_some())
    })
    .await;
    assert!(
        is(&glitched, "Ready", "True"),
        "Ready=True through the glitch"
    );
    assert!(is(&glitched, "Reconciling", "False"));
    let recovered = wait_until(api, "q", Duration::from_secs(90), "recovered", |o| {
        o.status.as_ref().is_some_and(|s| s.last_error.is_none())
    })
    .await;
    assert!(is(&recovered, "Ready", "True"));
}

#[tokio::test]
async fn a_kill_9_during_a_pending_wait_changes_neither_its_timeout_nor_its_events() {
    let f = Fixture::new("kill9", SETTLED_SCENARIO, true).await;
    let (client, ns, sim, api) = (&f.client, &f.ns, &f.sim, &f.api);
    sim.inject_fault(json!({"count": 10000, "status": 503}));
    let first = f.controller(&[]);
    f.create(
        "clocked",
        json!({"waitFor": {"source": "TaskList", "jobId": "never", "timeout": "20s"}}),
    )
    .await;
    wait_until(
        api,
        "clocked",
        Duration::from_secs(30),
        "the persisted clock",
        |o| {
            o.status
                .as_ref()
                .and_then(|s| s.wait_for.as_ref())
                .is_some_and(|w| w.started_at.is_some())
        },
    )
    .await;
    drop(first); // SIGKILL: no shutdown, no lease release, nothing flushed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _second = f.controller(&[]);
    let timed_out = wait_until(api, "clocked", Duration::from_secs(60), "TimedOut", |o| {
        is(o, "Failed", "True")
    })
    .await;
    let created = timed_out.metadata.creation_timestamp.as_ref().unwrap().0;
    let started = timed_out
        .status
        .as_ref()
        .unwrap()
        .wait_for
        .as_ref()
        .unwrap();
    assert_eq!(
        started.started_at.as_ref().unwrap().0.as_second(),
        created.as_second(),
        "the clock started at creation and survived the kill"
    );
    let waited = seconds_until_failed(&timed_out);
    eprintln!("measured: timed out {waited} s after creation");
    assert!((20..=35).contains(&waited), "timed out after {waited} s");
    let events = reasons(&events_for(client, ns, "clocked").await);
    assert_eq!(events.get("WaitTimedOut"), Some(&1), "{events:?}");
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
    let logs = controller.stop();
    assert!(
        logs.contains("writing status"),
        "the refused writes were logged"
    );
    assert!(!logs.contains("panicked"), "{logs}");
}

#[tokio::test]
async fn a_refused_access_key_is_left_alone_across_objects_and_restarts_until_its_secret_changes() {
    let f = Fixture::new("ak-cooldown", SETTLED_SCENARIO, false).await;
    let (client, ns, sim, api) = (&f.client, &f.ns, &f.sim, &f.api);
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "dcs-credentials", "labels": {CREDENTIALS_LABEL: "true"}},
        "stringData": {"accessKey": DEMO_ACCESS_KEY, "secretKey": "wrong-secret", "projectId": DEMO_PROJECT_ID}
    }))
    .unwrap();
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let first = f.controller(&[]);
    // Five objects with different queries, one wrong secret key.
    for n in 1..=5 {
        f.create(&format!("q{n}"), json!({"query": {"limit": 100 + n}}))
            .await;
    }
    for n in 1..=5 {
        wait_until(
            api,
            &format!("q{n}"),
            Duration::from_secs(30),
            "Stalled",
            |o| is(o, "Stalled", "True"),
        )
        .await;
    }
    let refused = sim.counts(DEMO_PROJECT_ID).unauthorized;
    assert_eq!(refused, 1, "one refused call for five objects");
    // A restart does not forget the refusal: no new call with the same credentials.
    first.stop();
    let _second = f.controller(&[]);
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        sim.counts(DEMO_PROJECT_ID).unauthorized,
        refused,
        "called again after a restart"
    );
    // Fixing the Secret lifts the cool-down at once.
    secrets
        .patch(
            "dcs-credentials",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"secretKey": DEMO_SECRET_KEY}})),
        )
        .await
        .unwrap();
    for n in 1..=5 {
        wait_until(
            api,
            &format!("q{n}"),
            Duration::from_secs(30),
            "Ready",
            |o| is(o, "Ready", "True"),
        )
        .await;
    }
}

#[tokio::test]
async fn an_ambiguous_name_wait_says_so_once_and_params_contains_picks_the_right_task() {
    let scenario = r#"
tasks:
  - id: swap-a
    name: masterStandbySwapJob
    createdAt: "-2m"
    status: SUCCESS
    userName: pipeline
    params: '{"instance_id":"inst-a"}'
  - id: swap-b
    name: masterStandbySwapJob
    createdAt: "-1m"
    status: SUCCESS
    userName: ops
    params: '{"instance_id":"inst-b"}'
"#;
    let f = Fixture::new("ambiguous-wait", scenario, true).await;
    let _controller = f.controller(&[]);
    f.create("any", json!({"waitFor": {"name": "masterStandbySwapJob"}}))
        .await;
    f.create(
        "exact",
        json!({"filter": {"paramsContains": ["inst-a"]},
               "waitFor": {"name": "masterStandbySwapJob"}}),
    )
    .await;

    let any = wait_until(&f.api, "any", Duration::from_secs(30), "Complete", |o| {
        is(o, "Complete", "True")
    })
    .await;
    let wait = any.status.as_ref().unwrap().wait_for.clone().unwrap();
    assert_eq!(wait.matched_tasks, Some(2), "{wait:?}");
    assert_eq!(
        wait.task_id.as_deref(),
        Some("swap-b"),
        "the newest is chosen"
    );
    assert!(
        wait.message.as_deref().unwrap_or("").contains("ambiguous"),
        "{wait:?}"
    );

    let exact = wait_until(&f.api, "exact", Duration::from_secs(30), "Complete", |o| {
        is(o, "Complete", "True")
    })
    .await;
    let wait = exact.status.as_ref().unwrap().wait_for.clone().unwrap();
    assert_eq!(wait.matched_tasks, Some(1), "{wait:?}");
    assert_eq!(wait.task_id.as_deref(), Some("swap-a"));
    assert_eq!(
        exact.status.as_ref().unwrap().matched_count,
        Some(1),
        "the filter also narrows the task list"
    );

    // Events are published after the status write: give them a moment, then let a few
    // polls pass to show the warning is not repeated.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let events = reasons(&events_for(&f.client, &f.ns, "any").await);
        if events.contains_key("AmbiguousWait") || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let any_events = reasons(&events_for(&f.client, &f.ns, "any").await);
    assert_eq!(any_events.get("AmbiguousWait"), Some(&1), "{any_events:?}");
    assert_eq!(any_events.get("TaskSucceeded"), Some(&1), "{any_events:?}");
    let exact_events = reasons(&events_for(&f.client, &f.ns, "exact").await);
    assert_eq!(exact_events.get("AmbiguousWait"), None, "{exact_events:?}");
    let described = f.plane.kubectl(&["describe", "dcstq", "any", "-n", &f.ns]);
    assert!(described.contains("AmbiguousWait"), "{described}");
}

/// A Secret without `projectId`: the controller discovers the project through IAM (the
/// simulator's, named by `HUAWEICLOUD_SDK_IAM_ENDPOINT` as with the SDKs), shows it in
/// `status.projectId`, and asks IAM once, not at every poll. A region IAM knows no project for
/// stalls with the exact reason.
#[tokio::test]
async fn a_project_id_is_discovered_once_through_iam_and_shown_in_status() {
    let f = Fixture::new("discovery", SETTLED_SCENARIO, false).await;
    let (sim, api) = (&f.sim, &f.api);
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "dcs-credentials", "labels": {CREDENTIALS_LABEL: "true"}},
        "stringData": {"accessKey": DEMO_ACCESS_KEY, "secretKey": DEMO_SECRET_KEY}
    }))
    .unwrap();
    Api::<Secret>::namespaced(f.client.clone(), &f.ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let _controller = ControllerProcess::start_with_env(
        &f.ns,
        &[],
        &[("HUAWEICLOUD_SDK_IAM_ENDPOINT", sim.base_url())],
    );
    f.create("q", json!({})).await;
    let ready = wait_until(api, "q", Duration::from_secs(30), "Ready", |o| {
        is(o, "Ready", "True")
    })
    .await;
    let status = ready.status.as_ref().unwrap();
    assert_eq!(status.project_id.as_deref(), Some(DEMO_PROJECT_ID));
    // Two more polls (activeInterval 2 s, interval 10 s): still the one IAM call.
    let polls_before = sim.counts(DEMO_PROJECT_ID).ok;
    let deadline = Instant::now() + Duration::from_secs(40);
    while sim.counts(DEMO_PROJECT_ID).ok < polls_before + 2 {
        assert!(Instant::now() < deadline, "no further polls");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(sim.stats()["iam"]["requests"], 1, "{}", sim.stats());

    f.create("nowhere", json!({"region": "eu-west-101"})).await;
    let stalled = wait_until(api, "nowhere", Duration::from_secs(30), "Stalled", |o| {
        is(o, "Stalled", "True")
    })
    .await;
    let (_, reason, message, _) = condition(&stalled, "Stalled").unwrap();
    assert_eq!(reason, "ProjectDiscoveryFailed");
    assert!(
        message.contains("no project named \"eu-west-101\""),
        "{message}"
    );
    assert_eq!(stalled.status.as_ref().unwrap().project_id, None);
}

#[tokio::test]
async fn releases_with_label_selectors_shard_the_objects_between_them() {
    let f = Fixture::new("shards", SETTLED_SCENARIO, true).await;
    let (ns, sim, api) = (&f.ns, &f.sim, &f.api);
    let mut shard_a = f.controller(&["--selector", "dcs.hwcloud.dev/shard=a"]);
    let _shard_b = f.controller(&["--selector", "dcs.hwcloud.dev/shard=b"]);
    for (name, shard) in [("in-a", "a"), ("in-b", "b"), ("in-none", "c")] {
        let mut object = query(name, sim, json!({}));
        object.metadata.labels =
            Some([("dcs.hwcloud.dev/shard".to_string(), shard.to_string())].into());
        api.create(&PostParams::default(), &object).await.unwrap();
    }
    for name in ["in-a", "in-b"] {
        wait_until(api, name, Duration::from_secs(30), "Ready", |o| {
            is(o, "Ready", "True")
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        api.get("in-none").await.unwrap().status.is_none(),
        "no shard owns it"
    );
    assert!(shard_a.is_running());
    let logs = shard_a.stop_in_place();
    assert!(!logs.contains("in-b"), "shard a touched shard b's object");

    let refused = ControllerProcess::start(ns, &["--selector", "not a selector!"])
        .finish(Duration::from_secs(60));
    assert!(!refused.status.success());
    let printed = support::operator::printed(&refused);
    assert!(printed.contains("--selector"), "{printed}");
}
