//! The Helm chart: `helm lint --strict`, `helm template` with the defaults and with every
//! documented value changed (`charts/dcs-task-operator/ci/*-values.yaml`), assertions on the
//! rendered objects (hardening, probes, least-privilege RBAC, leader election, credentials), typo
//! rejection by `values.schema.json`, the CRD copy, and yamllint.
//!
//! Needs helm and yamllint: `export DCS_TOOLS_BIN=$(scripts/tools.sh)`.

mod promql;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;

use dcs_task_operator::controller::credentials::CREDENTIALS_LABEL;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};
use k8s_openapi::api::rbac::v1::PolicyRule;
use serde::Deserialize;
use serde_json::{Value, json};

use support::tools;

const CHART: &str = "charts/dcs-task-operator";
const RELEASE: &str = "dcs-task-operator";
const NAMESPACE: &str = "dcs-system";
const CRD_FILE: &str = "crds/dcstaskqueries.dcs.hwcloud.dev.yaml";

/// Objects the chart creates that are Kubernetes objects passed through verbatim (`toYaml`): for
/// the "every value changed" check they count as one value each.
const VERBATIM_VALUES: &[&str] = &["resources", "podSecurityContext", "securityContext"];

// ---------------------------------------------------------------------------------------------
// Rendering

/// The objects one `helm template` produced.
struct Manifests {
    objects: Vec<Value>,
}

impl Manifests {
    fn kinds(&self) -> BTreeSet<String> {
        self.objects.iter().map(|o| str_at(o, "/kind")).collect()
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    fn has_kind(&self, kind: &str) -> bool {
        !self.of_kind(kind).is_empty()
    }

    fn one(&self, kind: &str) -> &Value {
        match self.of_kind(kind).as_slice() {
            [object] => object,
            found => panic!(
                "expected exactly one {kind}, found {}: {:#?}",
                found.len(),
                found
            ),
        }
    }

    fn named(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} named {name} among {:?}", self.names()))
    }

    fn names(&self) -> Vec<String> {
        self.objects
            .iter()
            .map(|o| format!("{}/{}", str_at(o, "/kind"), str_at(o, "/metadata/name")))
            .collect()
    }

    fn deployment(&self) -> Deployment {
        typed(self.one("Deployment"))
    }
}

fn chart_dir() -> PathBuf {
    tools::repo_root().join(CHART)
}

fn ci_values_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(chart_dir().join("ci"))
        .expect("charts/dcs-task-operator/ci exists")
        .map(|entry| entry.expect("readable ci folder").path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.ends_with("-values.yaml"))
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "expected the ci/*-values.yaml files, found {files:?}"
    );
    files
}

/// `helm template` with `extra` arguments; Err(stderr) when helm refuses.
fn try_render(extra: &[&str]) -> Result<Manifests, String> {
    let mut args = vec!["template", RELEASE, CHART, "--namespace", NAMESPACE];
    args.extend_from_slice(extra);
    let output = tools::run(&tools::helm(), &args);
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let stdout = String::from_utf8(output.stdout).expect("helm output is UTF-8");
    let mut objects = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&stdout) {
        let value = Value::deserialize(document)
            .unwrap_or_else(|err| panic!("helm rendered invalid YAML ({err}):\n{stdout}"));
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(Manifests { objects })
}

fn render(extra: &[&str]) -> Manifests {
    try_render(extra).unwrap_or_else(|stderr| panic!("helm template {extra:?} failed:\n{stderr}"))
}

fn render_values_file(name: &str) -> Manifests {
    let path = chart_dir().join("ci").join(name);
    render(&["--values", path.to_str().expect("UTF-8 path")])
}

fn typed<T: serde::de::DeserializeOwned>(value: &Value) -> T {
    serde_json::from_value(value.clone()).unwrap_or_else(|err| {
        panic!(
            "rendered object does not fit {}: {err}\n{value:#}",
            std::any::type_name::<T>()
        )
    })
}

fn str_at(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value:#}"))
        .to_string()
}

fn pod_spec(deployment: &Deployment) -> &PodSpec {
    deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .expect("Deployment has a pod spec")
}

fn controller(deployment: &Deployment) -> &Container {
    let containers = &pod_spec(deployment).containers;
    assert_eq!(containers.len(), 1, "one container: {containers:#?}");
    &containers[0]
}

fn args(deployment: &Deployment) -> Vec<String> {
    controller(deployment).args.clone().unwrap_or_default()
}

fn env<'a>(deployment: &'a Deployment, name: &str) -> Option<&'a EnvVar> {
    controller(deployment)
        .env
        .as_ref()
        .and_then(|env| env.iter().find(|var| var.name == name))
}

fn env_value(deployment: &Deployment, name: &str) -> Option<String> {
    env(deployment, name).and_then(|var| var.value.clone())
}

// ---------------------------------------------------------------------------------------------
// RBAC

/// One permission: (API group, resource, verb, resource names).
type Grant = (String, String, String, Vec<String>);

fn grants(rules: &[PolicyRule]) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in rules {
        let names = rule.resource_names.clone().unwrap_or_default();
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    assert_ne!(verb, "*", "wildcard verb in {rule:?}");
                    assert_ne!(resource, "*", "wildcard resource in {rule:?}");
                    out.insert((group.clone(), resource.clone(), verb.clone(), names.clone()));
                }
            }
        }
    }
    out
}

fn grant(group: &str, resource: &str, verbs: &[&str], names: &[&str]) -> Vec<Grant> {
    verbs
        .iter()
        .map(|verb| {
            (
                group.to_string(),
                resource.to_string(),
                verb.to_string(),
                names.iter().map(|n| n.to_string()).collect(),
            )
        })
        .collect()
}

/// Exactly the controller's API usage in a watched namespace (see the controller contract).
fn expected_watch_grants() -> BTreeSet<Grant> {
    [
        // `delete`: spec.ttlAfterResolved removes resolved waiters; on the objects only.
        grant(
            "dcs.hwcloud.dev",
            "dcstaskqueries",
            &["get", "list", "watch", "delete"],
            &[],
        ),
        grant(
            "dcs.hwcloud.dev",
            "dcstaskqueries/status",
            &["get", "patch"],
            &[],
        ),
        grant("", "secrets", &["get", "list", "watch"], &[]),
        grant("events.k8s.io", "events", &["create", "patch"], &[]),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn expected_lease_grants(lease: &str) -> BTreeSet<Grant> {
    [
        grant("coordination.k8s.io", "leases", &["create"], &[]),
        grant("coordination.k8s.io", "leases", &["get", "patch"], &[lease]),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn rules_of(object: &Value) -> Vec<PolicyRule> {
    typed(&object["rules"])
}

/// Checks that `binding` binds `role_kind/role_name` to the chart's ServiceAccount.
fn assert_binds(binding: &Value, role_kind: &str, role_name: &str, service_account: &str) {
    assert_eq!(binding["roleRef"]["kind"], role_kind, "{binding:#}");
    assert_eq!(binding["roleRef"]["name"], role_name, "{binding:#}");
    assert_eq!(
        binding["roleRef"]["apiGroup"], "rbac.authorization.k8s.io",
        "{binding:#}"
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": service_account, "namespace": NAMESPACE}]),
        "{binding:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// Lint

#[test]
fn helm_lint_strict_passes_with_defaults_and_every_ci_values_file() {
    let helm = tools::helm();
    tools::run_ok(&helm, ["lint", "--strict", CHART]);
    for file in ci_values_files() {
        let file = file.to_str().expect("UTF-8 path").to_string();
        tools::run_ok(
            &helm,
            ["lint", "--strict", CHART, "--values", file.as_str()],
        );
    }
}

#[test]
fn every_ci_values_file_renders() {
    for file in ci_values_files() {
        let manifests = render(&["--values", file.to_str().expect("UTF-8 path")]);
        assert!(
            manifests.has_kind("Deployment"),
            "{}: no Deployment",
            file.display()
        );
    }
}

#[test]
fn notes_render_for_defaults_and_every_ci_values_file() {
    let helm = tools::helm();
    let mut variants = vec![Vec::new()];
    for file in ci_values_files() {
        variants.push(vec![
            "--values".to_string(),
            file.to_str().expect("UTF-8 path").to_string(),
        ]);
    }
    for extra in variants {
        let mut args: Vec<String> = [
            "install",
            RELEASE,
            CHART,
            "--namespace",
            NAMESPACE,
            "--dry-run=client",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().cloned());
        let out = tools::run_ok(&helm, &args);
        let notes = out
            .split_once("NOTES:")
            .unwrap_or_else(|| panic!("no NOTES in `helm install --dry-run` {extra:?}:\n{out}"))
            .1;
        assert!(notes.contains("kubectl wait"), "NOTES {extra:?}:\n{notes}");
        assert!(!notes.contains("<no value>"), "NOTES {extra:?}:\n{notes}");
        if !notes.contains("SIMULATOR MODE") {
            assert!(
                notes.contains(&format!(
                    "kubectl label secret dcs-credentials {CREDENTIALS_LABEL}=true"
                )),
                "NOTES {extra:?} must show how to label the credentials Secret:\n{notes}"
            );
            assert!(
                notes.contains("invisible"),
                "NOTES {extra:?} must say unlabelled Secrets are invisible:\n{notes}"
            );
        }
    }
}

#[test]
fn notes_name_the_namespaces_and_project_rule_of_the_default_credentials() {
    let helm = tools::helm();
    let all_values = chart_dir().join("ci").join("all-values.yaml");
    let notes_of = |extra: &[&str]| {
        let mut args = vec![
            "install",
            RELEASE,
            CHART,
            "--namespace",
            NAMESPACE,
            "--dry-run=client",
        ];
        args.extend_from_slice(extra);
        let out = tools::run_ok(&helm, &args);
        out.split_once("NOTES:")
            .unwrap_or_else(|| panic!("no NOTES for {extra:?}:\n{out}"))
            .1
            .to_string()
    };

    let notes = notes_of(&["--values", all_values.to_str().expect("UTF-8 path")]);
    assert!(
        notes.contains(&format!("{NAMESPACE}/dcs-default-credentials")),
        "{notes}"
    );
    assert!(notes.contains("dcs-apps, dcs-batch only"), "{notes}");
    assert!(notes.contains("any project"), "{notes}");

    let notes = notes_of(&[
        "--set",
        "defaultCredentials.existingSecret=dcs-defaults",
        "--set",
        "defaultCredentials.namespaces={*}",
    ]);
    assert!(notes.contains("in every namespace"), "{notes}");
    assert!(notes.contains("is Stalled"), "{notes}");

    let notes = notes_of(&[]);
    assert!(!notes.contains("Default credentials"), "{notes}");
}

// ---------------------------------------------------------------------------------------------
// Defaults

#[test]
fn defaults_render_the_cluster_wide_single_replica_install() {
    let manifests = render(&[]);
    let kinds = manifests.kinds();
    let expected: BTreeSet<String> = [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "ServiceAccount",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(kinds, expected, "objects: {:?}", manifests.names());

    for object in &manifests.objects {
        let kind = str_at(object, "/kind");
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str);
        if kind.starts_with("Cluster") {
            assert_eq!(namespace, None, "{kind} is cluster-scoped");
        } else {
            assert_eq!(
                namespace,
                Some(NAMESPACE),
                "{kind} in the release namespace"
            );
        }
        for label in [
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/managed-by",
            "helm.sh/chart",
        ] {
            assert!(
                object["metadata"]["labels"][label].is_string(),
                "{kind} lacks label {label}"
            );
        }
    }

    let deployment = manifests.deployment();
    assert_eq!(deployment.spec.as_ref().unwrap().replicas, Some(1));
    assert_eq!(
        controller(&deployment).image.as_deref(),
        Some("dcs-task-operator:0.1.0"),
        "the image tag defaults to the chart's appVersion"
    );
    assert_eq!(
        args(&deployment),
        vec![
            "controller",
            "--listen=0.0.0.0:8080",
            "--rate-limit=10",
            "--account-rate-limit=5",
            "--concurrency=16",
        ]
    );
    assert_eq!(
        env_value(&deployment, "DCS_LOG_FORMAT").as_deref(),
        Some("json")
    );
    assert_eq!(
        env_value(&deployment, "DCS_LOG_LEVEL").as_deref(),
        Some("info")
    );
    assert!(env(&deployment, "HUAWEICLOUD_SDK_AK").is_none());
}

#[test]
fn pod_is_hardened_by_default() {
    let manifests = render(&[]);
    let deployment = manifests.deployment();
    let pod = pod_spec(&deployment);

    let pod_security = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert!(
        pod_security.run_as_user.is_some_and(|uid| uid != 0),
        "a numeric non-root user: {pod_security:?}"
    );
    assert_eq!(
        pod_security
            .seccomp_profile
            .as_ref()
            .map(|p| p.type_.as_str()),
        Some("RuntimeDefault")
    );

    let container = controller(&deployment);
    let security = container
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.run_as_non_root, Some(true));
    assert_ne!(security.privileged, Some(true));
    let capabilities = security.capabilities.as_ref().expect("capabilities");
    assert_eq!(capabilities.drop.as_deref(), Some(&["ALL".to_string()][..]));
    assert!(capabilities.add.as_ref().is_none_or(Vec::is_empty));
    assert_eq!(
        security.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
        Some("RuntimeDefault")
    );
    assert!(
        container.volume_mounts.as_ref().is_none_or(Vec::is_empty),
        "the operator writes no files, so it mounts no writable volume"
    );
    assert_eq!(pod.host_network, None);
    assert_eq!(pod.host_pid, None);

    // The token: off on the ServiceAccount, on for the operator pod only.
    let service_account = manifests.one("ServiceAccount");
    assert_eq!(
        service_account["automountServiceAccountToken"],
        json!(false)
    );
    assert_eq!(pod.automount_service_account_token, Some(true));
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some(str_at(service_account, "/metadata/name").as_str())
    );

    let resources = container.resources.as_ref().expect("resources");
    assert!(
        resources
            .requests
            .as_ref()
            .is_some_and(|r| r.contains_key("memory"))
    );
    assert!(
        resources
            .limits
            .as_ref()
            .is_some_and(|r| r.contains_key("memory"))
    );
}

#[test]
fn probes_hit_the_health_endpoints_on_the_listen_port() {
    for (extra, port) in [(vec![], 8080), (vec!["--set", "port=9443"], 9443)] {
        let manifests = render(&extra);
        let deployment = manifests.deployment();
        let container = controller(&deployment);
        assert!(
            args(&deployment).contains(&format!("--listen=0.0.0.0:{port}")),
            "{:?}",
            args(&deployment)
        );
        let ports = container.ports.as_ref().expect("container ports");
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].container_port, port);
        assert_eq!(ports[0].name.as_deref(), Some("http"));

        for (probe, path) in [
            (container.liveness_probe.as_ref(), "/healthz"),
            (container.readiness_probe.as_ref(), "/readyz"),
        ] {
            let get = probe
                .and_then(|p| p.http_get.as_ref())
                .unwrap_or_else(|| panic!("an httpGet probe on {path}"));
            assert_eq!(get.path.as_deref(), Some(path));
            let target = serde_json::to_value(&get.port).unwrap();
            assert!(
                target == json!("http") || target == json!(port),
                "probe {path} targets {target}"
            );
        }

        let service = manifests.one("Service");
        assert_eq!(
            service["spec"]["ports"],
            json!([{"name": "http-metrics", "port": port, "targetPort": "http", "protocol": "TCP"}])
        );
        assert_eq!(
            service["spec"]["selector"],
            json!(deployment.spec.as_ref().unwrap().selector.match_labels)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// RBAC

#[test]
fn cluster_rbac_grants_exactly_the_controller_api_usage() {
    let manifests = render(&[]);
    let role = manifests.one("ClusterRole");
    assert_eq!(grants(&rules_of(role)), expected_watch_grants());
    let role_name = str_at(role, "/metadata/name");
    let service_account = str_at(manifests.one("ServiceAccount"), "/metadata/name");
    assert_binds(
        manifests.one("ClusterRoleBinding"),
        "ClusterRole",
        &role_name,
        &service_account,
    );
    assert!(
        !manifests.has_kind("Role") && !manifests.has_kind("RoleBinding"),
        "one replica: no leader-election Role; no watchNamespace: no namespaced Role"
    );
}

#[test]
fn watch_namespace_scopes_every_permission_to_a_role_in_that_namespace() {
    let manifests = render(&["--set", "watchNamespace=tenant-a"]);
    assert!(
        !manifests.has_kind("ClusterRole") && !manifests.has_kind("ClusterRoleBinding"),
        "no cluster-wide permission when one namespace is watched: {:?}",
        manifests.names()
    );
    let role = manifests.one("Role");
    assert_eq!(role["metadata"]["namespace"], "tenant-a");
    assert_eq!(grants(&rules_of(role)), expected_watch_grants());
    let binding = manifests.one("RoleBinding");
    assert_eq!(binding["metadata"]["namespace"], "tenant-a");
    let service_account = str_at(manifests.one("ServiceAccount"), "/metadata/name");
    assert_binds(
        binding,
        "Role",
        &str_at(role, "/metadata/name"),
        &service_account,
    );

    let deployment = manifests.deployment();
    assert!(
        args(&deployment).contains(&"--watch-namespace=tenant-a".to_string()),
        "{:?}",
        args(&deployment)
    );
}

#[test]
fn more_than_one_replica_elects_a_leader() {
    let single = render(&[]);
    let deployment = single.deployment();
    assert!(
        !args(&deployment)
            .iter()
            .any(|a| a.starts_with("--leader-elect"))
    );
    assert_eq!(
        deployment
            .spec
            .as_ref()
            .unwrap()
            .strategy
            .as_ref()
            .and_then(|s| s.type_.as_deref()),
        Some("Recreate"),
        "a single controller without election must not overlap with its successor"
    );
    assert!(!single.has_kind("PodDisruptionBudget"));

    let manifests = render(&["--set", "replicaCount=2"]);
    let deployment = manifests.deployment();
    assert_eq!(deployment.spec.as_ref().unwrap().replicas, Some(2));
    let fullname = str_at(manifests.one("Deployment"), "/metadata/name");
    let args = args(&deployment);
    assert!(args.contains(&"--leader-elect".to_string()), "{args:?}");
    assert!(
        args.contains(&format!("--lease-name={fullname}")),
        "{args:?}"
    );
    for (name, field) in [
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_NAME", "metadata.name"),
    ] {
        let var = env(&deployment, name).unwrap_or_else(|| panic!("env {name}"));
        let field_ref = var
            .value_from
            .as_ref()
            .and_then(|from| from.field_ref.as_ref())
            .unwrap_or_else(|| panic!("{name} from the downward API"));
        assert_eq!(field_ref.field_path, field);
    }
    assert_eq!(
        deployment
            .spec
            .as_ref()
            .unwrap()
            .strategy
            .as_ref()
            .and_then(|s| s.type_.as_deref()),
        Some("RollingUpdate")
    );

    let lease_role = manifests.named("Role", &format!("{fullname}-leader-election"));
    assert_eq!(lease_role["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        grants(&rules_of(lease_role)),
        expected_lease_grants(&fullname)
    );
    let service_account = str_at(manifests.one("ServiceAccount"), "/metadata/name");
    assert_binds(
        manifests.named("RoleBinding", &format!("{fullname}-leader-election")),
        "Role",
        &format!("{fullname}-leader-election"),
        &service_account,
    );
    // The cluster-wide grants are unchanged by election.
    assert_eq!(
        grants(&rules_of(manifests.one("ClusterRole"))),
        expected_watch_grants()
    );

    let budget = manifests.one("PodDisruptionBudget");
    assert_eq!(budget["apiVersion"], "policy/v1");
    assert_eq!(budget["spec"]["maxUnavailable"], json!(1));
    assert_eq!(
        budget["spec"]["selector"]["matchLabels"],
        json!(deployment.spec.as_ref().unwrap().selector.match_labels)
    );
}

#[test]
fn leader_election_with_a_watched_namespace_keeps_the_lease_in_the_release_namespace() {
    let manifests = render(&[
        "--set",
        "replicaCount=3",
        "--set",
        "watchNamespace=tenant-b",
    ]);
    let roles = manifests.of_kind("Role");
    assert_eq!(roles.len(), 2, "{:?}", manifests.names());
    let fullname = str_at(manifests.one("Deployment"), "/metadata/name");
    let watch_role = manifests.named("Role", &fullname);
    assert_eq!(watch_role["metadata"]["namespace"], "tenant-b");
    assert_eq!(grants(&rules_of(watch_role)), expected_watch_grants());
    let lease_role = manifests.named("Role", &format!("{fullname}-leader-election"));
    assert_eq!(lease_role["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        grants(&rules_of(lease_role)),
        expected_lease_grants(&fullname)
    );
    assert!(!manifests.has_kind("ClusterRole"));
}

#[test]
fn no_rendered_permission_exceeds_the_controller_contract() {
    // Across every ci values file: each Role/ClusterRole grants a subset of what the controller
    // uses, and Secrets are never readable cluster-wide when a namespace is watched.
    let lease_grants = |name: &str| expected_lease_grants(name);
    for file in ci_values_files() {
        let manifests = render(&["--values", file.to_str().unwrap()]);
        for kind in ["Role", "ClusterRole"] {
            for role in manifests.of_kind(kind) {
                let name = str_at(role, "/metadata/name");
                let have = grants(&rules_of(role));
                let lease_name = name.trim_end_matches("-leader-election");
                let allowed: BTreeSet<Grant> = expected_watch_grants()
                    .union(&lease_grants(lease_name))
                    .cloned()
                    .collect();
                assert!(
                    have.is_subset(&allowed),
                    "{}: {kind} {name} grants more than the controller uses: {:?}",
                    file.display(),
                    have.difference(&allowed).collect::<Vec<_>>()
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Values

#[test]
fn default_credentials_come_from_the_existing_secret() {
    let manifests = render(&[
        "--set",
        "defaultCredentials.existingSecret=dcs-defaults",
        "--set",
        "defaultCredentials.namespaces={team-a,team-b}",
    ]);
    let deployment = manifests.deployment();
    let flags: Vec<String> = args(&deployment)
        .into_iter()
        .filter(|arg| arg.starts_with("--default-credentials"))
        .collect();
    assert_eq!(
        flags,
        vec![
            "--default-credentials",
            "--default-credentials-namespaces=team-a,team-b",
        ],
        "scoped to the listed namespaces, and to the defaults' own project"
    );
    for (name, key, optional) in [
        ("HUAWEICLOUD_SDK_AK", "accessKey", None),
        ("HUAWEICLOUD_SDK_SK", "secretKey", None),
        (
            "HUAWEICLOUD_SDK_SECURITY_TOKEN",
            "securityToken",
            Some(true),
        ),
        ("HUAWEICLOUD_SDK_PROJECT_ID", "projectId", Some(true)),
    ] {
        let var = env(&deployment, name).unwrap_or_else(|| panic!("env {name}"));
        assert_eq!(var.value, None, "{name} never carries a literal value");
        let secret = var
            .value_from
            .as_ref()
            .and_then(|from| from.secret_key_ref.as_ref())
            .unwrap_or_else(|| panic!("{name} from a secretKeyRef"));
        assert_eq!(secret.name, "dcs-defaults");
        assert_eq!(secret.key, key);
        assert_eq!(secret.optional, optional, "{name}");
    }
    // The kubelet injects the Secret: the operator itself gets no extra permission for it.
    assert_eq!(
        grants(&rules_of(manifests.one("ClusterRole"))),
        expected_watch_grants()
    );
}

#[test]
fn default_credentials_without_namespaces_fail_to_render() {
    // The controller refuses --default-credentials without --default-credentials-namespaces, so
    // the chart refuses first instead of rendering a crash-looping pod.
    let err = try_render(&["--set", "defaultCredentials.existingSecret=dcs-defaults"])
        .err()
        .expect("default credentials without namespaces are refused");
    assert!(err.contains("defaultCredentials.namespaces"), "{err}");
    assert!(err.contains("is empty"), "{err}");

    let err = try_render(&[
        "--set",
        "defaultCredentials.existingSecret=dcs-defaults",
        "--set",
        "defaultCredentials.anyProject=true",
    ])
    .err()
    .expect("anyProject does not replace namespaces");
    assert!(err.contains("defaultCredentials.namespaces"), "{err}");

    // And the scope flags without default credentials: the controller refuses those too.
    for extra in [
        ["--set", "defaultCredentials.namespaces={team-a}"],
        ["--set", "defaultCredentials.anyProject=true"],
    ] {
        let err = try_render(&extra)
            .err()
            .unwrap_or_else(|| panic!("{extra:?} without existingSecret is refused"));
        assert!(err.contains("defaultCredentials.existingSecret"), "{err}");
    }
}

#[test]
fn any_project_and_every_namespace_reach_the_default_credentials_flags() {
    let manifests = render(&[
        "--set",
        "defaultCredentials.existingSecret=dcs-defaults",
        "--set",
        "defaultCredentials.namespaces={*}",
        "--set",
        "defaultCredentials.anyProject=true",
    ]);
    let flags: Vec<String> = args(&manifests.deployment())
        .into_iter()
        .filter(|arg| arg.starts_with("--default-credentials"))
        .collect();
    assert_eq!(
        flags,
        vec![
            "--default-credentials",
            "--default-credentials-namespaces=*",
            "--default-credentials-any-project",
        ]
    );

    // anyProject=false (the default) renders no flag at all.
    let manifests = render(&[
        "--set",
        "defaultCredentials.existingSecret=dcs-defaults",
        "--set",
        "defaultCredentials.namespaces={team-a}",
        "--set",
        "defaultCredentials.anyProject=false",
    ]);
    assert!(
        !args(&manifests.deployment()).contains(&"--default-credentials-any-project".to_string())
    );
}

#[test]
fn sim_mode_runs_the_simulator_without_credentials() {
    let manifests = render_values_file("sim-values.yaml");
    let deployment = manifests.deployment();
    let args = args(&deployment);
    assert!(args.contains(&"--sim".to_string()), "{args:?}");
    assert!(
        !args.contains(&"--default-credentials".to_string()),
        "{args:?}"
    );
    assert!(env(&deployment, "HUAWEICLOUD_SDK_AK").is_none());
    assert_eq!(
        env_value(&deployment, "DCS_LOG_FORMAT").as_deref(),
        Some("text")
    );

    let err = try_render(&[
        "--set",
        "sim=true",
        "--set",
        "defaultCredentials.existingSecret=real-credentials",
    ])
    .err()
    .expect("sim with real default credentials is refused");
    assert!(err.contains("sim=true"), "{err}");
}

#[test]
fn minimal_values_leave_the_service_account_and_rbac_to_the_user() {
    let manifests = render_values_file("minimal-values.yaml");
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "PodDisruptionBudget",
    ] {
        assert!(
            !manifests.has_kind(kind),
            "{kind} rendered: {:?}",
            manifests.names()
        );
    }
    let deployment = manifests.deployment();
    assert_eq!(
        pod_spec(&deployment).service_account_name.as_deref(),
        Some("dcs-operator-managed-elsewhere")
    );
    assert!(args(&deployment).contains(&"--leader-elect".to_string()));

    let err = try_render(&["--set", "serviceAccount.create=false"])
        .err()
        .expect("an existing ServiceAccount needs a name");
    assert!(err.contains("serviceAccount.name"), "{err}");
}

#[test]
fn every_value_in_all_values_reaches_the_manifests() {
    let manifests = render_values_file("all-values.yaml");
    let fullname = "dcs-operator";
    let deployment_object = manifests.one("Deployment");
    assert_eq!(deployment_object["metadata"]["name"], fullname);
    assert_eq!(
        deployment_object["metadata"]["labels"]["app.kubernetes.io/name"],
        "dcsop"
    );
    let deployment = manifests.deployment();
    let pod = pod_spec(&deployment);
    let container = controller(&deployment);

    assert_eq!(
        container.image.as_deref(),
        Some("registry.example.com/platform/dcs-task-operator:0.1.0-rc.1")
    );
    assert_eq!(container.image_pull_policy.as_deref(), Some("Always"));
    assert_eq!(json!(pod.image_pull_secrets), json!([{"name": "regcred"}]));
    assert_eq!(deployment.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(
        args(&deployment),
        vec![
            "controller",
            "--listen=0.0.0.0:9090",
            "--watch-namespace=dcs-apps",
            "--selector=dcs.hwcloud.dev/shard=a",
            "--allow-endpoint=https://dcs.private-cloud.example:8443",
            "--allow-endpoint=https://*.internal.example:*",
            "--iam-endpoint=https://iam.internal.example",
            "--rate-limit=25",
            "--account-rate-limit=7",
            "--concurrency=4",
            "--default-credentials",
            "--default-credentials-namespaces=dcs-apps,dcs-batch",
            "--default-credentials-any-project",
            "--leader-elect",
            "--lease-name=dcs-operator",
        ]
    );
    assert_eq!(
        env_value(&deployment, "DCS_LOG_FORMAT").as_deref(),
        Some("text")
    );
    assert_eq!(
        env_value(&deployment, "DCS_LOG_LEVEL").as_deref(),
        Some("info,dcs_task_operator=debug")
    );
    let ak = env(&deployment, "HUAWEICLOUD_SDK_AK").expect("default credentials");
    assert_eq!(
        ak.value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap()
            .name,
        "dcs-default-credentials"
    );
    assert_eq!(container.ports.as_ref().unwrap()[0].container_port, 9090);
    assert_eq!(
        json!(container.resources),
        json!({"requests": {"cpu": "100m", "memory": "96Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}})
    );
    assert_eq!(
        pod.security_context.as_ref().unwrap().run_as_user,
        Some(10001)
    );
    assert_eq!(
        container.security_context.as_ref().unwrap().run_as_user,
        Some(10001)
    );

    let template_meta = &deployment_object["spec"]["template"]["metadata"];
    assert_eq!(template_meta["annotations"]["example.com/scrape"], "true");
    assert_eq!(template_meta["labels"]["example.com/team"], "platform");
    assert_eq!(
        json!(pod.node_selector),
        json!({"kubernetes.io/os": "linux"})
    );
    assert_eq!(
        json!(pod.tolerations),
        json!([{"key": "dedicated", "operator": "Equal", "value": "operators", "effect": "NoSchedule"}])
    );
    assert!(
        pod.affinity
            .as_ref()
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .is_some(),
        "affinity passed through"
    );
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("dcs-operator-critical")
    );

    let service_account = manifests.one("ServiceAccount");
    assert_eq!(service_account["metadata"]["name"], "dcs-operator-sa");
    assert_eq!(
        service_account["metadata"]["annotations"]["example.com/owner"],
        "platform"
    );
    assert_eq!(pod.service_account_name.as_deref(), Some("dcs-operator-sa"));

    let service = manifests.one("Service");
    assert_eq!(service["spec"]["type"], "NodePort");
    assert_eq!(service["spec"]["ports"][0]["port"], json!(9090));
    assert_eq!(
        service["metadata"]["annotations"]["example.com/purpose"],
        "metrics"
    );

    let monitor = manifests.one("ServiceMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        monitor["spec"]["endpoints"],
        json!([{"port": "http-metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "5s"}])
    );
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        json!(deployment.spec.as_ref().unwrap().selector.match_labels)
    );

    assert_eq!(
        manifests.one("PodDisruptionBudget")["spec"]["maxUnavailable"],
        "50%"
    );
    assert_eq!(
        manifests.named("Role", fullname)["metadata"]["namespace"],
        "dcs-apps"
    );
}

/// Flattens values into path -> value; maps recurse except empty ones and the verbatim objects.
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() && !VERBATIM_VALUES.contains(&prefix) => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, child, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), value.clone());
        }
    }
}

fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |node, key| node.get(key))
}

fn load_yaml(path: &PathBuf) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

#[test]
fn ci_values_files_change_every_value_in_values_yaml() {
    let defaults = load_yaml(&chart_dir().join("values.yaml"));
    let mut leaves = BTreeMap::new();
    flatten("", &defaults, &mut leaves);
    let ci: Vec<Value> = ci_values_files().iter().map(load_yaml).collect();
    let unchanged: Vec<&String> = leaves
        .iter()
        .filter(|(path, default)| {
            !ci.iter()
                .any(|file| lookup(file, path).is_some_and(|value| value != *default))
        })
        .map(|(path, _)| path)
        .collect();
    assert!(
        unchanged.is_empty(),
        "no charts/dcs-task-operator/ci/*-values.yaml sets these values to something other than \
         their default, so no test renders them: {unchanged:?}"
    );
}

/// The line of `path`'s key in values.yaml, found by indentation.
fn key_line(lines: &[&str], path: &str) -> Option<usize> {
    let mut start = 0;
    let mut found = None;
    for (depth, key) in path.split('.').enumerate() {
        let indent = " ".repeat(depth * 2);
        let wanted = format!("{indent}{key}:");
        let mut hit = None;
        for (index, line) in lines.iter().enumerate().skip(start) {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let line_indent = line.len() - trimmed.len();
            if line_indent < depth * 2 {
                break; // left the parent block
            }
            if line_indent == depth * 2
                && line.starts_with(&wanted)
                && line[wanted.len()..].chars().next().is_none_or(|c| c == ' ')
            {
                hit = Some(index);
                break;
            }
        }
        let index = hit?;
        start = index + 1;
        found = Some(index);
    }
    found
}

#[test]
fn every_value_is_documented_in_values_yaml() {
    let text = fs::read_to_string(chart_dir().join("values.yaml")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let defaults: Value = serde_yaml_ng::from_str(&text).unwrap();
    let mut leaves = BTreeMap::new();
    flatten("", &defaults, &mut leaves);
    let undocumented: Vec<&String> = leaves
        .keys()
        .filter(|path| {
            let line = key_line(&lines, path)
                .unwrap_or_else(|| panic!("cannot find the key of {path} in values.yaml"));
            !(line > 0 && lines[line - 1].trim_start().starts_with('#'))
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "values without a comment right above them in values.yaml: {undocumented:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// values.schema.json

#[test]
fn typos_and_bad_values_fail_helm_template() {
    let cases: &[(&[&str], &str)] = &[
        (&["--set", "replicas=2"], "replicas"),
        (&["--set", "image.tga=latest"], "tga"),
        (&["--set", "serviceMonitor.enable=true"], "enable"),
        (&["--set", "prometheusRule.enable=true"], "enable"),
        (&["--set", "defaultCredentials.secretName=x"], "secretName"),
        (
            &["--set", "podDisruptionBudget.minAvailable=1"],
            "minAvailable",
        ),
        (&["--set", "resources.request.cpu=1"], "request"),
        (&["--set", "logFormat=xml"], "logFormat"),
        (&["--set", "replicaCount=0"], "replicaCount"),
        (&["--set-string", "replicaCount=two"], "replicaCount"),
        (&["--set", "rateLimit=0"], "rateLimit"),
        (&["--set", "accountRateLimit=0"], "accountRateLimit"),
        (&["--set", "iamEndpoint=iam.example"], "iamEndpoint"),
        (
            &["--set", "watchNamespace=Not_A_Namespace"],
            "watchNamespace",
        ),
        (
            &["--set", "allowEndpoints={dcs.example.com}"],
            "allowEndpoints",
        ),
        (
            &["--set", "allowEndpoints={https://dcs.example.com/v2}"],
            "allowEndpoints",
        ),
        (&["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
        (&["--set", "sim=yes-please"], "sim"),
        (
            &[
                "--set",
                "defaultCredentials.existingSecret=dcs-defaults",
                "--set",
                "defaultCredentials.namespaces={Team_A}",
            ],
            "namespaces",
        ),
        (
            &[
                "--set",
                "defaultCredentials.existingSecret=dcs-defaults",
                "--set",
                "defaultCredentials.namespaces=team-a",
            ],
            "namespaces",
        ),
        (
            &[
                "--set",
                "defaultCredentials.existingSecret=dcs-defaults",
                "--set",
                "defaultCredentials.namespaces={team-a}",
                "--set-string",
                "defaultCredentials.anyProject=yes",
            ],
            "anyProject",
        ),
    ];
    for (extra, mention) in cases {
        match try_render(extra) {
            Ok(manifests) => panic!(
                "helm template {extra:?} should fail schema validation but rendered {:?}",
                manifests.names()
            ),
            Err(stderr) => assert!(
                stderr.contains(mention),
                "helm template {extra:?} failed without naming `{mention}`:\n{stderr}"
            ),
        }
    }
}

#[test]
fn values_schema_closes_every_object_it_describes() {
    let path = chart_dir().join("values.schema.json");
    let schema: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    fn walk(pointer: String, node: &Value, open: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                if map.contains_key("properties")
                    && map.get("additionalProperties") != Some(&json!(false))
                {
                    open.push(pointer.clone());
                }
                for (key, child) in map {
                    walk(format!("{pointer}/{key}"), child, open);
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    walk(format!("{pointer}/{index}"), child, open);
                }
            }
            _ => {}
        }
    }
    let mut open = Vec::new();
    walk(String::new(), &schema, &mut open);
    assert!(
        open.is_empty(),
        "schema objects that accept unknown keys (add \"additionalProperties\": false): {open:?}"
    );

    // And every top-level value has a schema entry.
    let defaults = load_yaml(&chart_dir().join("values.yaml"));
    let properties = schema["properties"].as_object().unwrap();
    for key in defaults.as_object().unwrap().keys() {
        assert!(
            properties.contains_key(key),
            "values.schema.json lacks `{key}`"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Files

#[test]
fn chart_crd_is_identical_to_the_generated_crd() {
    let root = tools::repo_root();
    let generated = fs::read(root.join(CRD_FILE)).expect("the generated CRD");
    let chart_copy = chart_dir().join(CRD_FILE);
    let copy =
        fs::read(&chart_copy).unwrap_or_else(|err| panic!("{}: {err}", chart_copy.display()));
    assert!(
        generated == copy,
        "{} differs from {CRD_FILE}; refresh it with\n    cp {CRD_FILE} {CHART}/crds/",
        chart_copy.display()
    );
    let entries: Vec<_> = fs::read_dir(chart_dir().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        entries.len(),
        1,
        "only the generated CRD under the chart's crds/: {entries:?}"
    );
}

#[test]
fn the_credentials_label_is_in_the_example_secret_and_the_docs() {
    let root = tools::repo_root();
    let example = load_yaml(&root.join("examples/credentials-secret.yaml"));
    assert_eq!(
        example["metadata"]["labels"][CREDENTIALS_LABEL],
        json!("true"),
        "examples/credentials-secret.yaml must carry the label the operator watches: {example:#}"
    );
    let command = format!("{CREDENTIALS_LABEL}=true");
    for doc in [
        root.join("README.md"),
        chart_dir().join("README.md"),
        chart_dir().join("templates/NOTES.txt"),
    ] {
        let text =
            fs::read_to_string(&doc).unwrap_or_else(|err| panic!("{}: {err}", doc.display()));
        assert!(
            text.lines().any(|line| line.contains("kubectl")
                && line.contains("label secret")
                && line.contains(&command)),
            "{} must show `kubectl [-n NS] label secret NAME {command}`",
            doc.display()
        );
    }
}

#[test]
fn yamllint_passes_on_chart_values_examples_and_integrations() {
    let mut targets = vec![
        ".yamllint.yaml".to_string(),
        format!("{CHART}/Chart.yaml"),
        format!("{CHART}/values.yaml"),
        format!("{CHART}/ci"),
        "examples".to_string(),
        "integrations".to_string(),
    ];
    targets.retain(|t| tools::repo_root().join(t).exists());
    let mut args = vec![
        "--strict".to_string(),
        "--format".to_string(),
        "parsable".to_string(),
        "--config-file".to_string(),
        ".yamllint.yaml".to_string(),
    ];
    args.extend(targets);
    tools::run_ok(&tools::yamllint(), &args);
}

// ---------------------------------------------------------------------------------------------
// PrometheusRule

/// The series names the operator's metrics make queryable, every family populated once (a
/// family without samples is not rendered at all).
fn operator_series() -> BTreeSet<String> {
    use dcs_task_operator::controller::metrics::{Metrics, SharedOutcome, UpstreamOutcome};
    let metrics = Metrics::default();
    metrics.count_upstream(UpstreamOutcome::Ok);
    metrics.count_shared(SharedOutcome::Fed);
    metrics.reconciled(std::time::Duration::from_millis(3), None);
    metrics.reconciled(std::time::Duration::from_millis(3), Some("status_write"));
    metrics.count_unserved("credentials");
    metrics.upstream_latency.observe(0.1);
    metrics.status_writes.inc();
    metrics.set_objects(std::iter::empty());
    promql::exposed_names(&metrics.render())
}

fn prometheus_rules(manifests: &Manifests) -> Vec<Value> {
    let rule = manifests.one("PrometheusRule");
    rule["spec"]["groups"]
        .as_array()
        .expect("spec.groups")
        .iter()
        .flat_map(|group| group["rules"].as_array().expect("group.rules").clone())
        .collect()
}

#[test]
fn prometheus_rule_renders_only_when_enabled_and_carries_its_labels() {
    assert!(!render(&[]).has_kind("PrometheusRule"), "off by default");
    for file in ["minimal-values.yaml", "sim-values.yaml"] {
        assert!(
            !render_values_file(file).has_kind("PrometheusRule"),
            "{file}"
        );
    }
    let manifests = render_values_file("all-values.yaml");
    let rule = manifests.one("PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["name"], "dcs-operator");
    assert_eq!(rule["metadata"]["namespace"], NAMESPACE);
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        rule["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "Helm"
    );
    // The alerts select what the chart's ServiceMonitor scrapes: the metrics Service's job.
    let service = manifests.one("Service");
    let job = format!("job=\"{}\"", str_at(service, "/metadata/name"));
    for rule in prometheus_rules(&manifests) {
        let expr = rule["expr"].as_str().unwrap();
        assert!(
            expr.contains(&job),
            "{} does not select {job}: {expr}",
            rule["alert"]
        );
        assert!(
            expr.contains(&format!("namespace=\"{NAMESPACE}\"")),
            "{}: {expr}",
            rule["alert"]
        );
    }
}

#[test]
fn prometheus_rule_alerts_are_well_formed_and_query_only_exposed_metrics() {
    let manifests = render(&["--set", "prometheusRule.enabled=true"]);
    let rules = prometheus_rules(&manifests);
    let exposed = operator_series();
    assert!(
        exposed.contains("dcs_task_operator_upstream_calls_total"),
        "{exposed:?}"
    );
    let duration = regex::Regex::new(r"^([0-9]+(ms|s|m|h|d|w|y))+$").unwrap();
    let mut names = BTreeSet::new();
    let mut all = String::new();
    for rule in &rules {
        let alert = rule["alert"].as_str().expect("every rule is an alert");
        assert!(names.insert(alert.to_string()), "{alert} twice");
        assert!(
            alert.starts_with("DcsTaskOperator")
                && alert.chars().all(|c| c.is_ascii_alphanumeric()),
            "{alert}: alert names are CamelCase with the operator's prefix"
        );
        let expr = rule["expr"]
            .as_str()
            .unwrap_or_else(|| panic!("{alert}: no expr"));
        assert!(!expr.trim().is_empty(), "{alert}: empty expr");
        assert!(!expr.contains("{{"), "{alert}: template left in {expr}");
        let mut depth = Vec::new();
        for c in expr.chars() {
            match c {
                '(' | '{' | '[' => depth.push(c),
                ')' | '}' | ']' => {
                    let open = depth.pop();
                    let expected = match c {
                        ')' => '(',
                        '}' => '{',
                        _ => '[',
                    };
                    assert_eq!(open, Some(expected), "{alert}: unbalanced {expr}");
                }
                _ => {}
            }
        }
        assert!(depth.is_empty(), "{alert}: unbalanced {expr}");
        let metrics = promql::metric_names(expr);
        assert!(!metrics.is_empty(), "{alert}: selects no metric: {expr}");
        for metric in &metrics {
            assert!(
                exposed.contains(metric) || promql::SCRAPE_SERIES.contains(&metric.as_str()),
                "{alert} queries {metric}, which the operator does not expose ({exposed:?})"
            );
        }
        let for_ = rule["for"]
            .as_str()
            .unwrap_or_else(|| panic!("{alert}: no `for`"));
        assert!(duration.is_match(for_), "{alert}: for {for_:?}");
        let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            ["warning", "critical"].contains(&severity),
            "{alert}: severity {severity:?}"
        );
        for annotation in ["summary", "description"] {
            assert!(
                rule["annotations"][annotation]
                    .as_str()
                    .is_some_and(|text| text.trim().len() > 10),
                "{alert}: annotations.{annotation}"
            );
        }
        all.push_str(expr);
        all.push('\n');
    }
    // What the alerts are for.
    for needle in [
        "outcome=\"auth_failed\"",
        "server_error",
        "phase=\"TimedOut\"",
        "== 0",
        "absent(up",
    ] {
        assert!(all.contains(needle), "no alert on {needle}:\n{all}");
    }
}
