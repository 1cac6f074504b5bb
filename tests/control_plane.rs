//! Proves the test control plane (`tests/support/control_plane.rs`) behaves like a real cluster in
//! the ways other tests rely on: version, namespaces, optimistic concurrency, watches, RBAC, kubectl.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, ResourceExt};
use support::control_plane::{ControlPlane, KUBERNETES_VERSION};

fn config_map(name: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("value".to_owned(), value.to_owned())])),
        ..ConfigMap::default()
    }
}

fn api_status(error: kube::Error) -> Box<kube::core::Status> {
    match error {
        kube::Error::Api(status) => status,
        other => panic!("expected an API error status, got {other:?}"),
    }
}

#[tokio::test]
async fn apiserver_reports_the_expected_version() {
    let cp = ControlPlane::shared();
    let info = cp.admin_client().apiserver_version().await.unwrap();
    assert_eq!(info.git_version, KUBERNETES_VERSION);
    assert!(
        cp.startup_time() < Duration::from_secs(30),
        "startup took {:?}",
        cp.startup_time()
    );
}

#[tokio::test]
async fn new_namespace_creates_a_unique_namespace() {
    let cp = ControlPlane::shared();
    let first = cp.new_namespace("Harness_Namespace").await;
    let second = cp.new_namespace("Harness_Namespace").await;
    assert!(first.starts_with("harness-namespace-"), "{first}");
    assert_ne!(first, second);
    let namespaces = Api::<Namespace>::all(cp.admin_client());
    assert!(namespaces.get(&first).await.is_ok());
    assert!(namespaces.get(&second).await.is_ok());
}

#[tokio::test]
async fn update_with_a_stale_resource_version_conflicts() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("conflict").await;
    let config_maps = Api::<ConfigMap>::namespaced(cp.admin_client(), &ns);
    let created = config_maps
        .create(&PostParams::default(), &config_map("cm", "1"))
        .await
        .unwrap();

    let mut fresh = created.clone();
    fresh.data = Some(BTreeMap::from([("value".to_owned(), "2".to_owned())]));
    let updated = config_maps
        .replace("cm", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_ne!(updated.resource_version(), created.resource_version());

    let mut stale = created;
    stale.data = Some(BTreeMap::from([("value".to_owned(), "3".to_owned())]));
    let error = config_maps
        .replace("cm", &PostParams::default(), &stale)
        .await
        .expect_err("a stale resourceVersion must be refused");
    let status = api_status(error);
    assert!(status.is_conflict(), "{status:?}");
    assert_eq!(status.code, 409);

    let current = config_maps.get("cm").await.unwrap();
    assert_eq!(current.data.unwrap()["value"], "2");
}

#[tokio::test]
async fn a_watch_sees_changes() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("watch").await;
    let config_maps = Api::<ConfigMap>::namespaced(cp.admin_client(), &ns);
    let version = config_maps
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = config_maps
        .watch(&WatchParams::default().timeout(30), &version)
        .await
        .unwrap()
        .boxed();

    config_maps
        .create(&PostParams::default(), &config_map("watched", "1"))
        .await
        .unwrap();
    let mut changed = config_map("watched", "2");
    changed.metadata.resource_version = config_maps
        .get("watched")
        .await
        .unwrap()
        .metadata
        .resource_version;
    config_maps
        .replace("watched", &PostParams::default(), &changed)
        .await
        .unwrap();

    let mut seen = Vec::new();
    let watched = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.try_next().await.unwrap() {
            match event {
                WatchEvent::Added(cm) | WatchEvent::Modified(cm) => {
                    let value = cm.data.unwrap_or_default()["value"].clone();
                    seen.push(value);
                    if seen.last().map(String::as_str) == Some("2") {
                        return;
                    }
                }
                WatchEvent::Bookmark(_) => {}
                other => panic!("unexpected watch event {other:?}"),
            }
        }
        panic!("watch ended early");
    })
    .await;
    assert!(watched.is_ok(), "watch saw only {seen:?}");
    assert_eq!(seen, ["1", "2"]);
}

/// Lists ConfigMaps in `ns` as `client`, retrying while RBAC's caches catch up with a new binding.
async fn list_config_maps_eventually(client: &Client, ns: &str) -> Result<(), kube::Error> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let result = Api::<ConfigMap>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await;
        match result {
            Err(kube::Error::Api(status)) if status.code == 403 && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other.map(|_| ()),
        }
    }
}

#[tokio::test]
async fn service_account_needs_rbac_to_list_config_maps() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("rbac").await;
    let operator = cp.service_account_client(&ns, "operator").await;
    let as_operator = Api::<ConfigMap>::namespaced(operator.clone(), &ns);

    let refused = as_operator
        .list(&ListParams::default())
        .await
        .expect_err("a ServiceAccount without bindings must be refused");
    let status = api_status(refused);
    assert!(status.is_forbidden(), "{status:?}");
    assert_eq!(status.code, 403);
    assert!(
        status
            .message
            .contains(&format!("system:serviceaccount:{ns}:operator")),
        "{}",
        status.message
    );

    let admin = cp.admin_client();
    let role = Role {
        metadata: ObjectMeta {
            name: Some("read-config-maps".into()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".into()]),
            verbs: vec!["get".into(), "list".into(), "watch".into()],
            ..PolicyRule::default()
        }]),
    };
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("operator-reads-config-maps".into()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: "read-config-maps".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "operator".into(),
            namespace: Some(ns.clone()),
            ..Subject::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin, &ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();

    list_config_maps_eventually(&operator, &ns)
        .await
        .expect("the Role allows listing ConfigMaps");

    // The Role grants reading in its namespace only.
    let write = as_operator
        .create(&PostParams::default(), &config_map("nope", "1"))
        .await
        .expect_err("the Role grants no create");
    assert_eq!(api_status(write).code, 403);
    let elsewhere = Api::<ConfigMap>::namespaced(operator, "default")
        .list(&ListParams::default())
        .await
        .expect_err("the Role grants nothing outside its namespace");
    assert_eq!(api_status(elsewhere).code, 403);
}

#[tokio::test]
async fn kubectl_talks_to_the_control_plane() {
    let cp = ControlPlane::shared();
    let ns = cp.new_namespace("kubectl").await;
    let created = cp.kubectl_with_stdin(
        &["apply", "-n", &ns, "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-kubectl\ndata:\n  value: \"1\"\n",
    );
    assert!(created.contains("from-kubectl"), "{created}");
    let value = cp.kubectl(&[
        "get",
        "configmap",
        "from-kubectl",
        "-n",
        &ns,
        "-o",
        "jsonpath={.data.value}",
    ]);
    assert_eq!(value, "1");

    let missing = cp.try_kubectl(&["get", "configmap", "absent", "-n", &ns], None);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("NotFound"));

    // A kubeconfig for a ServiceAccount token works with kubectl too, with its limited rights.
    let token = cp.service_account_token(&ns, "kubectl-user").await;
    let kubeconfig = cp.write_kubeconfig("kubectl-user", &token);
    let refused =
        cp.try_kubectl_with_kubeconfig(&kubeconfig, &["get", "configmaps", "-n", &ns], None);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Forbidden"));
}

#[tokio::test]
async fn a_private_control_plane_stops_when_dropped() {
    let cp = ControlPlane::start().unwrap_or_else(|error| panic!("{error}"));
    let dir = cp.dir().to_path_buf();
    let config = cp.admin_config();
    let info = cp.admin_client().apiserver_version().await.unwrap();
    assert_eq!(info.git_version, KUBERNETES_VERSION);

    drop(cp);
    assert!(!dir.exists(), "{} was not removed", dir.display());
    let mut config = config;
    config.connect_timeout = Some(Duration::from_secs(2));
    let client = Client::try_from(config).unwrap();
    assert!(
        client.apiserver_version().await.is_err(),
        "the apiserver still answers after drop"
    );
}
