//! The Helm chart's manifests on a real apiserver: they apply, and the controller does its job
//! with the chart's ServiceAccount and RBAC, and nothing more.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use dcs_task_operator::api::DcsTaskQuery;
use dcs_task_operator::controller::credentials::CREDENTIALS_LABEL;
use dcs_task_operator::sim::{DEMO_ACCESS_KEY, DEMO_PROJECT_ID, DEMO_SECRET_KEY};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use support::control_plane::ControlPlane;
use support::sim_process::{CliProcess, SimProcess};
use support::tools;

/// `helm template` with the given `--set` values, as multi-document YAML.
fn render(release_namespace: &str, sets: &[String]) -> String {
    let mut command = Command::new(tools::helm());
    command.args([
        "template",
        "dcs",
        "charts/dcs-task-operator",
        "--namespace",
        release_namespace,
    ]);
    for set in sets {
        command.args(["--set", set]);
    }
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    let output = command.output().expect("helm runs");
    assert!(
        output.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn the_chart_applies_and_its_rbac_is_enough_and_no_more() {
    let plane = ControlPlane::shared();
    let client = plane.admin_client();
    let operator_ns = plane.new_namespace("chart-operator").await;
    let watched = plane.new_namespace("chart-watched").await;
    let other = plane.new_namespace("chart-other").await;

    // The 1.20 apiserver serves no policy/v1, so the budget stays off here.
    let manifests = render(
        &operator_ns,
        &[
            format!("watchNamespace={watched}"),
            "replicaCount=2".to_string(),
            "podDisruptionBudget.enabled=false".to_string(),
            "allowEndpoints[0]=http://127.0.0.1:*".to_string(),
        ],
    );
    // Server-side dry run first (validates every object against the real API), then for real.
    plane.kubectl_with_stdin(&["apply", "--dry-run=server", "-f", "-"], &manifests);
    plane.kubectl_with_stdin(&["apply", "-f", "-"], &manifests);

    let sim = SimProcess::start(None, &[]);
    for namespace in [&watched, &other] {
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "dcs-credentials", "labels": {CREDENTIALS_LABEL: "true"}},
            "stringData": {"accessKey": DEMO_ACCESS_KEY, "secretKey": DEMO_SECRET_KEY, "projectId": DEMO_PROJECT_ID}
        }))
        .unwrap();
        Api::<Secret>::namespaced(client.clone(), namespace)
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }

    // The controller, authenticated as the chart's ServiceAccount, with the chart's flags.
    let token = plane
        .service_account_token(&operator_ns, "dcs-dcs-task-operator")
        .await;
    let kubeconfig = plane.write_kubeconfig("operator", &token);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let controller = CliProcess::spawn(
        &[
            "controller",
            "--watch-namespace",
            &watched,
            "--allow-endpoint",
            "http://127.0.0.1:*",
            "--leader-elect",
            "--lease-name",
            "dcs-dcs-task-operator",
            "--lease-namespace",
            &operator_ns,
            "--listen",
            &listen,
        ],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );

    let api: Api<DcsTaskQuery> = Api::namespaced(client.clone(), &watched);
    let query: DcsTaskQuery = serde_json::from_value(json!({
        "apiVersion": "dcs.hwcloud.dev/v1alpha1", "kind": "DcsTaskQuery",
        "metadata": {"name": "q"},
        "spec": {"region": "cn-north-4", "endpoint": sim.base_url(),
                 "credentialsSecretRef": {"name": "dcs-credentials"},
                 "waitFor": {"name": "masterStandbySwapJob"}, "activeInterval": "2s",
                 "ttlAfterResolved": "2s"}
    }))
    .unwrap();
    api.create(&PostParams::default(), &query).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(45);
    let done = loop {
        let object = api.get("q").await.unwrap();
        let complete = object.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Complete" && c.status == "True")
        });
        if complete {
            break object;
        }
        if Instant::now() > deadline {
            let output = controller.terminate(Duration::from_secs(2));
            panic!(
                "not Complete with the chart's RBAC: {:?}\n{}",
                object.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(done.status.unwrap().last_error.is_none());

    // spec.ttlAfterResolved: the chart lets the controller delete the resolved waiter.
    let deadline = Instant::now() + Duration::from_secs(45);
    while api.get_opt("q").await.unwrap().is_some() {
        if Instant::now() > deadline {
            let output = controller.terminate(Duration::from_secs(2));
            panic!(
                "not deleted 2s after its wait resolved with the chart's RBAC:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Events were allowed too (the controller logs a refusal otherwise).
    let output = controller.terminate(Duration::from_secs(5));
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(logs.contains("acquired leadership"), "{logs}");
    assert!(!logs.contains("could not publish event"), "{logs}");
    assert!(!logs.contains("Forbidden"), "{logs}");
    assert!(logs.contains("spec.ttlAfterResolved passed"), "{logs}");

    // The same identity cannot read Secrets outside the watched namespace.
    let operator = plane.client_with_token(&token);
    match Api::<Secret>::namespaced(operator.clone(), &other)
        .get("dcs-credentials")
        .await
    {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("reading a Secret in an unwatched namespace must be refused: {other:?}"),
    }
    match Api::<Secret>::all(operator).list(&Default::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("listing Secrets cluster-wide must be refused: {other:?}"),
    }
}
