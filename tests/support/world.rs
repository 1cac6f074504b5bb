//! One test's world on the shared control plane: a namespace, a simulator (a real process),
//! the demo credentials and an admin client; and the helpers controller tests read objects,
//! conditions and events with.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dcs_task_operator::api::DcsTaskQuery;
use dcs_task_operator::controller::credentials::CREDENTIALS_LABEL;
use dcs_task_operator::sim::{DEMO_ACCESS_KEY, DEMO_PROJECT_ID, DEMO_SECRET_KEY};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::control_plane::ControlPlane;
use super::operator::{OperatorProcess, query_object};
use super::sim_process::SimProcess;

/// The demo credentials as the Secret `dcs-credentials`, labelled for the operator.
pub async fn demo_secret(client: &Client, namespace: &str) {
    credentials_secret(client, namespace, "dcs-credentials", DEMO_PROJECT_ID, true).await;
}

pub async fn credentials_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    project_id: &str,
    labelled: bool,
) {
    let labels = if labelled {
        json!({CREDENTIALS_LABEL: "true"})
    } else {
        json!({})
    };
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "labels": labels},
        "stringData": {"accessKey": DEMO_ACCESS_KEY, "secretKey": DEMO_SECRET_KEY, "projectId": project_id}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

pub fn query(name: &str, sim: &SimProcess, extra_spec: Value) -> DcsTaskQuery {
    query_object(name, sim.base_url(), extra_spec)
}

pub fn condition(
    object: &DcsTaskQuery,
    type_: &str,
) -> Option<(String, String, String, Option<i64>)> {
    object
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| {
            (
                c.status.clone(),
                c.reason.clone(),
                c.message.clone(),
                c.observed_generation,
            )
        })
}

/// Seconds from the object's creation to its `Failed` condition's last transition.
pub fn seconds_until_failed(object: &DcsTaskQuery) -> i64 {
    let created = object.metadata.creation_timestamp.as_ref().unwrap().0;
    let failed_at = object
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Failed"))
        .expect("a Failed condition")
        .last_transition_time
        .0;
    failed_at.as_second() - created.as_second()
}

pub fn is(object: &DcsTaskQuery, type_: &str, status: &str) -> bool {
    condition(object, type_).is_some_and(|c| c.0 == status)
}

pub async fn events_for(client: &Client, namespace: &str, name: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect()
}

pub fn reasons(events: &[Event]) -> BTreeMap<String, i32> {
    let mut counts = BTreeMap::new();
    for event in events {
        // A repeated event would be a new object or a bumped series count.
        let times = event.series.as_ref().map_or(1, |s| s.count);
        *counts
            .entry(event.reason.clone().unwrap_or_default())
            .or_default() += times;
    }
    counts
}

pub fn write_scenario(dir: &tempfile::TempDir, yaml: &str) -> PathBuf {
    let path = dir.path().join("scenario.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// One test's world: its namespace, its simulator and an admin client.
pub struct World {
    pub plane: &'static ControlPlane,
    pub client: Client,
    pub ns: String,
    pub sim: SimProcess,
    pub api: Api<DcsTaskQuery>,
    _scenario_dir: tempfile::TempDir,
}

impl World {
    /// A namespace named after `prefix`, a simulator playing `scenario`, and (when `secret`)
    /// the demo credentials Secret.
    pub async fn new(prefix: &str, scenario: &str, secret: bool) -> Self {
        Self::start(prefix, Some(scenario), secret).await
    }

    /// A namespace named after `prefix`, a simulator playing the demo scenario, and the demo
    /// credentials Secret.
    pub async fn demo(prefix: &str) -> Self {
        Self::start(prefix, None, true).await
    }

    async fn start(prefix: &str, scenario: Option<&str>, secret: bool) -> Self {
        let plane = ControlPlane::shared();
        let client = plane.admin_client();
        let ns = plane.new_namespace(prefix).await;
        let dir = tempfile::tempdir().unwrap();
        let scenario = scenario.map(|yaml| write_scenario(&dir, yaml));
        let sim = SimProcess::start(scenario.as_deref(), &[]);
        if secret {
            demo_secret(&client, &ns).await;
        }
        let api = Api::namespaced(client.clone(), &ns);
        Self {
            plane,
            client,
            ns,
            sim,
            api,
            _scenario_dir: dir,
        }
    }

    /// `kubectl wait --for=condition=CONDITION dcstq/NAME --timeout=TIMEOUT`, which must
    /// succeed.
    pub fn kubectl_wait(&self, name: &str, condition: &str, timeout: &str) {
        let output = self.plane.try_kubectl(
            &[
                "wait",
                "-n",
                &self.ns,
                &format!("--for=condition={condition}"),
                &format!("dcstq/{name}"),
                &format!("--timeout={timeout}"),
            ],
            None,
        );
        assert!(
            output.status.success(),
            "kubectl wait failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub fn controller(&self, extra: &[&str]) -> OperatorProcess {
        OperatorProcess::start(&self.ns, extra)
    }

    pub async fn create(&self, name: &str, extra_spec: Value) {
        self.api
            .create(&PostParams::default(), &query(name, &self.sim, extra_spec))
            .await
            .unwrap();
    }

    /// A simulator task with this job id (so also a job the job API derives from it).
    pub fn job(&self, job_id: &str, status: &str) {
        self.sim.add_task(json!({
            "id": format!("task-{job_id}"), "name": "masterStandbySwapJob",
            "jobId": job_id, "status": status
        }));
    }

    pub async fn exists(&self, name: &str) -> bool {
        self.api.get_opt(name).await.unwrap().is_some()
    }

    /// Waits until `name` is gone; `None` (with the last status printed) if it never goes.
    pub async fn gone(&self, name: &str, within: Duration) -> Option<Timestamp> {
        let deadline = Instant::now() + within;
        loop {
            match self.api.get_opt(name).await.unwrap() {
                None => return Some(Timestamp::now()),
                Some(object) if Instant::now() > deadline => {
                    eprintln!("{name} still there: {:?}", object.status);
                    return None;
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// The events about `name` with `reason`.
    pub async fn events(&self, name: &str, reason: &str) -> Vec<Event> {
        events_for(&self.client, &self.ns, name)
            .await
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .collect()
    }
}
