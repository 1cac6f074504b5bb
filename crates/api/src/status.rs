//! `DcsTaskQuery` status: what the task center said at the last poll, shaped for `kubectl get`,
//! jsonpath and kstatus.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state written by the operator (or printed by `dcs-task-operator query`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DcsTaskQueryStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`, `Reconciling`, `Stalled` (kstatus) and, with `waitFor`, `Complete` and `Failed`.
    /// A condition with nothing to say has no `message`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "crate::conditions::serialize_without_empty_messages"
    )]
    #[schemars(
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]),
        transform = crate::conditions::message_optional
    )]
    pub conditions: Vec<Condition>,

    /// `task_count` as the API reported it (total in the window, before the filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_count: Option<i64>,

    /// Fetched tasks that passed the filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_count: Option<i64>,

    /// Matched tasks, newest first, at most `spec.maxTasks`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub tasks: Vec<TaskStatus>,

    /// The newest matched task of each name, so `{.status.latest[?(@.name=="EXTEND")].status}`
    /// works in jsonpath.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub latest: Vec<LatestTask>,

    /// Verdict on `spec.waitFor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for: Option<WaitForStatus>,

    /// When the task center last answered successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,

    /// The last failed poll; kept beside the last good results until the next success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,

    /// The project queried: `spec.projectId`, the credentials' `projectId`, or the one
    /// discovered through IAM (`GET /v3/projects?name={spec.region}`) when neither names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,

    /// Echo of the `reconcile.fluxcd.io/requestedAt` annotation last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// One task-center task, every documented field in camelCase.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// As received (`2020-06-17T07:38:42.503Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Task parameters (JSON in a string), truncated when very long to bound the status size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_show: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<TaskDetailsStatus>,
}

/// The documented `details` object. Capacities are strings whatever the wire type.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TaskDetailsStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_capacity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_capacity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_public_ip: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ssl: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_cache_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_cache_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_resource_spec_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_resource_spec_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_replica_num: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_replica_num: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_cache_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_cache_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_az: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_only_adjust_charging: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rename_commands: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_config_length: Option<i64>,
}

/// The newest matched task of one name.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct LatestTask {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// Where a wait stands.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WaitPhase {
    /// The task is not found yet, running, or in a status that is neither success nor failure.
    #[default]
    Pending,
    Succeeded,
    Failed,
    TimedOut,
}

impl WaitPhase {
    /// Whether the wait is over; a resolved wait stops polling until the spec changes.
    pub fn is_resolved(self) -> bool {
        !matches!(self, WaitPhase::Pending)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WaitPhase::Pending => "Pending",
            WaitPhase::Succeeded => "Succeeded",
            WaitPhase::Failed => "Failed",
            WaitPhase::TimedOut => "TimedOut",
        }
    }
}

/// The verdict on `spec.waitFor` and the task it is about.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WaitForStatus {
    pub phase: WaitPhase,
    /// The awaited task's id, once found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The awaited task's status as the API reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// How many listed tasks matched the wait (name, `createdAfter`, `spec.filter.userNames`
    /// and `paramsContains`; or the job id). More than one for a `name` wait means the wait is
    /// ambiguous: the newest (`taskId`) is followed; set `jobId` to be exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_tasks: Option<i64>,
    /// When this generation's wait started; the timeout counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// The awaited job's type as the job API reports it (`masterStandbySwapJob`, ...; with
    /// `source: Job`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_type: Option<String>,
    /// When the job began, as the job API reports it (`source: Job`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub began_at: Option<Time>,
    /// When the job ended, as the job API reports it (`source: Job`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Time>,
    /// Why the job failed, as the job API reports it (`source: Job`; cut to a bounded length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_reason: Option<String>,
    /// When this generation's wait first resolved (Succeeded, Failed or TimedOut); kept from
    /// then on. `spec.ttlAfterResolved` counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Time>,
    /// Human-readable account of the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A failed poll, as the task center (or the network) reported it. Never holds credentials.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    /// HTTP status, when a response arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i32>,
    /// DCS/APIG `error_code` (or the older `code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// DCS/APIG `error_msg` (or the older `message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_msg: Option<String>,
    /// What failed and what to do about it.
    pub message: String,
    /// When this error was first seen in a row: the same error again keeps it (so an outage
    /// costs no status writes); a refused credential renews it, since it starts the cool-down.
    pub time: Time,
    /// Which credentials the answer was about (the Secret's resourceVersion): after a refusal,
    /// a restarted operator leaves the access key alone until the cool-down ends or these change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_revision: Option<String>,
}
