//! Waits and conditions: what `spec.waitFor` does from creation to its verdict (`Pending`, then
//! `Complete` and a returning `kubectl wait`, `Failed`, `TimedOut` while every poll fails, an
//! ambiguous name), one event per verdict, and how the conditions and `observedGeneration`
//! follow a spec change or an invalid spec.

use std::time::{Duration, Instant};

use dcs_task_operator::sim::DEMO_SECRET_KEY;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::SETTLED_SCENARIO;
use crate::support::operator::wait_until;
use crate::support::world::{
    World as Fixture, condition, events_for, is, query, reasons, seconds_until_failed,
};

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
