//! Several controllers on one namespace: with leader election only the leader writes and the
//! standby takes over when it goes; releases with `--selector` shard the objects between them
//! (none touches another's, an object no selector matches is left alone) and a malformed
//! selector is refused at start.

use std::time::Duration;

use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::SETTLED_SCENARIO;
use crate::support;
use crate::support::operator::{OperatorProcess as ControllerProcess, wait_until};
use crate::support::world::{World as Fixture, is, query};

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
