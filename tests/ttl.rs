//! `spec.ttlAfterResolved` against a real kube-apiserver + etcd, the simulator and the
//! controller binary, each a real process: a resolved waiter deletes itself that long after its
//! wait resolved (counted from the persisted `status.waitFor.resolvedAt`, across restarts), with
//! one `Expired` event; nothing else is ever deleted.
//!
//! The assertions are about order (resolved, still there, then gone), never about how fast a busy
//! machine is: every wait polls with a generous timeout.

mod support;

use std::time::Duration;

use dcs_task_operator::api::DcsTaskQuery;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use support::operator::{OperatorProcess, wait_until};
use support::world::World;

/// How long any one step may take on a slow, shared machine.
const PATIENCE: Duration = Duration::from_secs(60);

fn complete(object: &DcsTaskQuery) -> bool {
    object.status.as_ref().is_some_and(|status| {
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Complete" && c.status == "True")
    })
}

fn resolved_at(object: &DcsTaskQuery) -> Timestamp {
    object
        .status
        .as_ref()
        .and_then(|s| s.wait_for.as_ref())
        .and_then(|w| w.resolved_at.as_ref())
        .unwrap_or_else(|| panic!("status.waitFor.resolvedAt of {:?}", object.status))
        .0
}

/// Exactly one event, counting a series as its count.
fn once(events: &[Event]) -> &Event {
    let total: i32 = events
        .iter()
        .map(|e| e.series.as_ref().map_or(1, |s| s.count))
        .sum();
    assert_eq!(total, 1, "{events:#?}");
    &events[0]
}

#[tokio::test]
async fn ttl_deletes_a_resolved_waiter_after_its_ttl_and_nothing_else() {
    let world = World::demo("ttl-expire").await;
    world.job("job-ttl-done", "SUCCESS");
    world.job("job-ttl-running", "EXECUTING");
    let controller = OperatorProcess::start(&world.ns, &[]);
    let ttl = json!("3s");
    world
        .create(
            "expiring",
            json!({"waitFor": {"jobId": "job-ttl-done"}, "ttlAfterResolved": ttl}),
        )
        .await;
    world
        .create(
            "running",
            json!({"waitFor": {"jobId": "job-ttl-running"}, "ttlAfterResolved": ttl}),
        )
        .await;
    world
        .create("kept", json!({"waitFor": {"jobId": "job-ttl-done"}}))
        .await;

    // Resolved, and still there: the TTL counts from the resolution.
    let resolved = wait_until(&world.api, "expiring", PATIENCE, "Complete", complete).await;
    let resolved_at = resolved_at(&resolved);
    wait_until(&world.api, "kept", PATIENCE, "Complete", complete).await;

    let Some(gone_at) = world.gone("expiring", PATIENCE).await else {
        panic!("not deleted after its TTL:\n{}", controller.stop());
    };
    assert!(
        gone_at.as_second() >= resolved_at.as_second() + 3,
        "deleted before its TTL: resolved at {resolved_at}, gone at {gone_at}"
    );
    let expired = world.events("expiring", "Expired").await;
    let event = once(&expired);
    assert_eq!(event.type_.as_deref(), Some("Normal"));
    let note = event.note.clone().unwrap_or_default();
    assert!(
        note.starts_with("deleted 3s after its wait resolved (Succeeded) at "),
        "{note}"
    );
    assert_eq!(
        event.regarding.as_ref().and_then(|r| r.uid.clone()),
        resolved.metadata.uid,
        "about the object that was deleted"
    );

    // Give a wrong deletion of the others time to happen (the same TTL, the same resolution).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let running = world.api.get("running").await.unwrap();
    assert_eq!(
        running
            .status
            .as_ref()
            .and_then(|s| s.wait_for.as_ref())
            .map(|w| w.phase.as_str()),
        Some("Pending"),
        "an unresolved wait is never deleted"
    );
    let kept = world.api.get("kept").await.unwrap();
    assert!(complete(&kept), "a resolved object without the field stays");
    for name in ["running", "kept"] {
        assert!(world.events(name, "Expired").await.is_empty(), "{name}");
    }
    let logs = controller.stop();
    assert!(logs.contains("spec.ttlAfterResolved passed"), "{logs}");
}

#[tokio::test]
async fn ttl_counts_from_the_persisted_resolution_across_a_restart() {
    let world = World::demo("ttl-restart").await;
    world.job("job-ttl-restart", "SUCCESS");
    let ttl = Duration::from_secs(10);
    let first = OperatorProcess::start(&world.ns, &[]);
    world
        .create(
            "restarted",
            json!({"waitFor": {"jobId": "job-ttl-restart"}, "ttlAfterResolved": "10s"}),
        )
        .await;
    let resolved = wait_until(&world.api, "restarted", PATIENCE, "Complete", complete).await;
    let resolved_at = resolved_at(&resolved);
    let first_logs = first.stop();
    assert!(
        world.exists("restarted").await,
        "deleted before the first operator stopped (a machine too slow for a 10s TTL?):\n{first_logs}"
    );

    // The TTL passes while no operator runs: nothing deletes the object meanwhile.
    let expires = resolved_at.as_second() + ttl.as_secs() as i64;
    while Timestamp::now().as_second() <= expires + 1 {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(world.exists("restarted").await);

    // A new process knows only what the status says; it deletes the object at once, long
    // before a TTL counted from its own start would have run out.
    let restarted_at = Timestamp::now();
    let second = OperatorProcess::start(&world.ns, &[]);
    let Some(gone_at) = world.gone("restarted", PATIENCE).await else {
        panic!("not deleted after a restart:\n{}", second.stop());
    };
    let second_logs = second.stop();
    assert!(
        gone_at.as_second() < restarted_at.as_second() + ttl.as_secs() as i64,
        "deleted {ttl:?} after the restart, not from the persisted resolvedAt {resolved_at}:\n{second_logs}"
    );
    let expired = world.events("restarted", "Expired").await;
    let note = once(&expired).note.clone().unwrap_or_default();
    let resolved_text = resolved_at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert!(
        note.contains(&format!("resolved (Succeeded) at {resolved_text}")),
        "{note}"
    );
}
