//! Restarts: what the controller knows lives in the objects' status, not in the process. A clean
//! restart writes nothing and repeats no event; a `kill -9` during a pending wait moves neither
//! the wait's clock, its timeout nor its events.

use std::time::Duration;

use kube::api::PostParams;
use serde_json::json;

use crate::SETTLED_SCENARIO;
use crate::support::operator::wait_until;
use crate::support::world::{
    World as Fixture, events_for, is, query, reasons, seconds_until_failed,
};

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
