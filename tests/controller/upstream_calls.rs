//! Upstream calls: how many the controller makes and what it does when they fail. Equal queries
//! share one call per interval, unchanged answers write no status and deleted objects leave no
//! feed behind; a refusal only a person can fix (403) stalls and is not hammered; a short 5xx
//! burst leaves a settled object `Ready`.

use std::time::{Duration, Instant};

use dcs_task_operator::api::DcsTaskQuery;
use kube::api::{ListParams, PostParams};
use serde_json::json;

use crate::SETTLED_SCENARIO;
use crate::support::operator::wait_until;
use crate::support::world::{World as Fixture, condition, is, query};

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
