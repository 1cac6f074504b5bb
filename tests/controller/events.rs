//! The operator's event writer against a real apiserver: a repeat within the series window is
//! the same `events.k8s.io/v1` object with a counted series, as kube-runtime's `Recorder` does
//! it, and a different event is an object of its own.

use dcs_task_operator::controller::events::EventWriter;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::Api;
use kube::api::ListParams;
use kube::runtime::events::{Event, EventType, Reporter};

use crate::support::control_plane::ControlPlane;

fn event(reason: &str, note: &str) -> Event {
    Event {
        type_: EventType::Normal,
        reason: reason.into(),
        note: Some(note.into()),
        action: "Wait".into(),
        secondary: None,
    }
}

#[tokio::test]
async fn a_repeated_event_is_one_object_with_a_series_and_another_is_its_own() {
    let plane = ControlPlane::shared();
    let ns = plane.new_namespace("event-writer").await;
    let client = plane.admin_client();
    let writer = EventWriter::new(
        client.clone(),
        Reporter {
            controller: "dcs-task-operator".into(),
            instance: Some("test-pod".into()),
        },
    );
    let regarding = ObjectReference {
        api_version: Some("dcs.hwcloud.dev/v1alpha1".into()),
        kind: Some("DcsTaskQuery".into()),
        namespace: Some(ns.clone()),
        name: Some("swap".into()),
        uid: Some("0b7c1f9e-2d0a-4c1e-9a55-3f1d2b8e7a10".into()),
        ..ObjectReference::default()
    };
    for note in ["first", "second", "third"] {
        writer
            .publish(&event("UpstreamError", note), &regarding)
            .await
            .expect("the apiserver takes the event");
    }
    writer
        .publish(&event("TaskSucceeded", "done"), &regarding)
        .await
        .expect("the apiserver takes the event");

    let events: Api<K8sEvent> = Api::namespaced(client, &ns);
    let listed = events
        .list(&ListParams::default())
        .await
        .expect("listing events");
    let by_reason = |reason: &str| -> Vec<&K8sEvent> {
        listed
            .items
            .iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .collect()
    };
    let repeated = by_reason("UpstreamError");
    assert_eq!(
        repeated.len(),
        1,
        "three repeats, one object: {repeated:#?}"
    );
    let series = repeated[0]
        .series
        .as_ref()
        .expect("a series on the repeated event");
    assert_eq!(series.count, 3);
    assert_eq!(
        repeated[0].note.as_deref(),
        Some("third"),
        "the latest note shows"
    );
    assert_eq!(
        repeated[0].reporting_controller.as_deref(),
        Some("dcs-task-operator")
    );
    assert_eq!(repeated[0].reporting_instance.as_deref(), Some("test-pod"));
    assert_eq!(repeated[0].regarding.as_ref(), Some(&regarding));
    let other = by_reason("TaskSucceeded");
    assert_eq!(other.len(), 1);
    assert!(other[0].series.is_none(), "published once: no series");
    assert_eq!(other[0].type_.as_deref(), Some("Normal"));
}
