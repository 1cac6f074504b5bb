//! Command-line interface: argument definitions and the commands that are not the controller.

pub mod controller;
pub mod input;
pub mod output;
pub mod query;
pub mod sim;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::dcs::AllowedEndpoint;

/// Huawei Cloud DCS background tasks as Kubernetes objects you can wait on.
#[derive(Debug, Parser)]
#[command(name = "dcs-task-operator", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "DCS_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// Log filter (tracing `EnvFilter` syntax, e.g. `info`, `dcs_task_operator=debug`).
    #[arg(long, global = true, default_value = "info", env = "DCS_LOG_LEVEL")]
    pub log_level: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Evaluate a DcsTaskQuery once (or keep watching) and print the status the controller
    /// would write. Exit code: 0 done or waitFor succeeded, 1 waitFor failed or timed out or the
    /// API failed, 2 invalid input.
    Query(QueryArgs),
    /// Run the DCS task-center simulator on loopback.
    Sim(SimArgs),
    /// Print the DcsTaskQuery CustomResourceDefinition (what `crds/` holds).
    Crd,
    /// Run the operator: keep every DcsTaskQuery's status true to the DCS task center.
    Controller(ControllerArgs),
}

/// Arguments of `controller`.
#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// Watch only this namespace (empty: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE", default_value = "")]
    pub watch_namespace: String,

    /// Reconcile only DcsTaskQuery objects matching this label selector (e.g.
    /// `dcs.hwcloud.dev/shard=a`), so several releases can share the objects out between them.
    /// Equal queries in different shards do not share upstream calls.
    #[arg(long, value_name = "LABEL_SELECTOR")]
    pub selector: Option<String>,

    /// Extra endpoints a DcsTaskQuery may name in spec.endpoint, e.g. `https://*.corp.example`
    /// (repeatable). By default only https://dcs.<region>.myhuaweicloud.com hosts are allowed.
    #[arg(long = "allow-endpoint", value_name = "SCHEME://HOST[:PORT]")]
    pub allow_endpoints: Vec<AllowedEndpoint>,

    /// IAM endpoint for project-id discovery (`GET /v3/projects?name={region}`), used when
    /// neither spec.projectId nor the credentials name a project. Default
    /// https://iam.myhuaweicloud.com; any other host than https://iam[.<region>].myhuaweicloud.com
    /// must be allowed with --allow-endpoint, like a DCS endpoint.
    #[arg(long, env = "HUAWEICLOUD_SDK_IAM_ENDPOINT", value_name = "URL")]
    pub iam_endpoint: Option<String>,

    /// Upstream DCS HTTP requests per second, across all queries (every page and every retry
    /// counts).
    #[arg(long, default_value_t = std::num::NonZeroU32::new(10).expect("non-zero"))]
    pub rate_limit: std::num::NonZeroU32,

    /// Upstream DCS HTTP requests per second per account (access key), so one busy account
    /// cannot spend the whole --rate-limit.
    #[arg(long, default_value_t = crate::upstream::budget::DEFAULT_ACCOUNT_RATE_LIMIT)]
    pub account_rate_limit: std::num::NonZeroU32,

    /// Reconciles running at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: u16,

    /// How objects with equal queries share upstream calls: `shared` (one feed per distinct
    /// query, the default) or `per-object` (every object polls alone; for benchmarks only).
    #[arg(long, value_enum, default_value_t = crate::controller::UpstreamSharing::Shared, hide = true)]
    pub upstream_sharing: crate::controller::UpstreamSharing,

    /// Largest DCS response body read, in bytes; a larger answer is an error, so one upstream
    /// cannot exhaust the process's memory.
    #[arg(long, env = "DCS_MAX_BODY_BYTES", default_value_t = crate::dcs::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// Time limit of one HTTP request to DCS (e.g. `30s`); a slower answer is a timeout, retried.
    #[arg(long, default_value = "30s", value_parser = parse_duration_flag)]
    pub request_timeout: std::time::Duration,

    /// Use credentials from the environment (HUAWEICLOUD_SDK_AK/SK/SECURITY_TOKEN/PROJECT_ID or
    /// HW_ACCESS_KEY/...) for queries that name no Secret, in the namespaces listed by
    /// --default-credentials-namespaces only.
    #[arg(long)]
    pub default_credentials: bool,

    /// Namespaces whose queries may use the default credentials (comma-separated or repeated;
    /// `*` for every namespace). Required with --default-credentials: whoever can create a
    /// DcsTaskQuery in such a namespace can make the operator call DCS with these credentials.
    #[arg(long, value_delimiter = ',', value_name = "NAMESPACE")]
    pub default_credentials_namespaces: Vec<String>,

    /// Let spec.projectId send the default credentials to a project other than their own
    /// projectId (off: such queries are Stalled).
    #[arg(long)]
    pub default_credentials_any_project: bool,

    /// Hold a Lease before writing, so that only one replica acts.
    #[arg(long)]
    pub leader_elect: bool,

    /// Name of the leader-election Lease.
    #[arg(long, default_value = "dcs-task-operator")]
    pub lease_name: String,

    /// Namespace of the leader-election Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,

    /// This replica's identity in the Lease and in events (default: the pod name or hostname).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Address of the /healthz, /readyz and /metrics server.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: std::net::SocketAddr,

    /// Run the built-in simulator in-process and point every query at it (demo credentials;
    /// no cloud account or Secret needed). `--sim=FILE` picks a scenario.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "")]
    pub sim: Option<String>,
}

/// Arguments of `query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The DcsTaskQuery manifest (YAML or JSON); `-` reads standard input.
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,

    /// Run against the built-in simulator, started in-process: `--sim` uses the default
    /// switchover scenario, `--sim=FILE` a scenario file (see examples/sim/).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "")]
    pub sim: Option<String>,

    /// Endpoint override for this run (takes precedence over spec.endpoint; allowed because
    /// you typed it).
    #[arg(long)]
    pub endpoint: Option<String>,

    /// IAM endpoint for project-id discovery (`GET /v3/projects?name={region}`), used when
    /// neither spec.projectId nor the credentials name a project. Default
    /// https://iam.myhuaweicloud.com; any other host than https://iam[.<region>].myhuaweicloud.com
    /// must be allowed with --allow-endpoint, like a DCS endpoint.
    #[arg(long, env = "HUAWEICLOUD_SDK_IAM_ENDPOINT", value_name = "URL")]
    pub iam_endpoint: Option<String>,

    /// Extra allowed endpoints for spec.endpoint, e.g. `http://127.0.0.1:*` (repeatable).
    #[arg(long = "allow-endpoint", value_name = "SCHEME://HOST[:PORT]")]
    pub allow_endpoints: Vec<AllowedEndpoint>,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Keep polling on the spec's intervals and print each change; exits when waitFor resolves.
    #[arg(short = 'w', long)]
    pub watch: bool,

    /// Largest DCS response body read, in bytes; a larger answer is an error, so one upstream
    /// cannot exhaust the process's memory.
    #[arg(long, env = "DCS_MAX_BODY_BYTES", default_value_t = crate::dcs::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// Time limit of one HTTP request to DCS (e.g. `30s`); a slower answer is a timeout, retried.
    #[arg(long, default_value = "30s", value_parser = parse_duration_flag)]
    pub request_timeout: std::time::Duration,
}

/// Arguments of `sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to listen on; port 0 picks a free port (the first stdout line names it).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,

    /// Scenario file (see examples/sim/); default: the switchover demo.
    #[arg(long)]
    pub scenario: Option<PathBuf>,

    /// Wire type of `task_count`, overriding the scenario.
    #[arg(long, value_enum)]
    pub task_count_as: Option<TaskCountArg>,
}

/// A duration flag in the CRD's syntax (`500ms`, `30s`, `2m`), at least 1 ms.
fn parse_duration_flag(text: &str) -> Result<std::time::Duration, String> {
    match crate::duration::parse(text) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err("must be more than 0".to_string()),
        Err(error) => Err(error.to_string()),
    }
}

/// The scenario a `--sim[=FILE]` flag names: the default demo for a bare `--sim`.
fn scenario_from_flag(value: &str) -> Result<crate::sim::Scenario, crate::sim::SimError> {
    if value.is_empty() {
        Ok(crate::sim::Scenario::default_demo())
    } else {
        crate::sim::Scenario::load(std::path::Path::new(value))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TaskCountArg {
    String,
    Number,
}
