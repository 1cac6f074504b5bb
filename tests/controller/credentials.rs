//! Credentials and Secrets: a missing or unlabelled Secret stalls naming it (and the label to
//! add) with no upstream call, and the watch wakes the object once it is fixed; `--sim` needs no
//! Secret; a refused access key is not tried again, across objects and restarts, until its
//! Secret changes; a Secret without `projectId` has its project discovered once through IAM.

use std::time::{Duration, Instant};

use dcs_task_operator::api::DcsTaskQuery;
use dcs_task_operator::controller::credentials::CREDENTIALS_LABEL;
use dcs_task_operator::sim::{DEMO_ACCESS_KEY, DEMO_PROJECT_ID, DEMO_SECRET_KEY};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::SETTLED_SCENARIO;
use crate::support::control_plane::ControlPlane;
use crate::support::operator::{OperatorProcess as ControllerProcess, wait_until};
use crate::support::world::{
    World as Fixture, condition, credentials_secret, events_for, is, query, reasons,
};

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
