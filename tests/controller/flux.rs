//! Flux's refresh: `reconcile.fluxcd.io/requestedAt` forces one poll past the shared cache and is
//! echoed in `status.lastHandledReconcileAt`; a refresh of a resolved wait whose poll fails keeps
//! the verdict and starts no retry loop.

use std::time::Duration;

use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::SETTLED_SCENARIO;
use crate::support::operator::wait_until;
use crate::support::world::{World as Fixture, events_for, is, query, reasons};

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
