//! `DcsTaskQuery` spec: what to ask the DCS task center and what to wait for.
//!
//! Every rule the schema can express lives here as a schema attribute, so the apiserver refuses
//! bad input at `kubectl apply` time. Cross-field rules are CEL (`x-kubernetes-validations`);
//! `query::validate` (crate `dcs-query`) repeats them in code for servers that drop CEL.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::DcsTaskQueryStatus;
use super::{limits, patterns};

/// A query against the Huawei Cloud DCS task center (`GET /v2/{project_id}/tasks`), kept fresh
/// in `.status`, optionally waiting for one task to finish.
// clippy reads the `type_ = ...` of separate `printcolumn(...)` lists as one repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dcs.hwcloud.dev",
    version = "v1alpha1",
    kind = "DcsTaskQuery",
    plural = "dcstaskqueries",
    namespaced,
    shortname = "dcstq",
    category = "dcs",
    category = "huaweicloud",
    status = "DcsTaskQueryStatus",
    derive = "PartialEq",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Wait",
        type_ = "string",
        description = "Phase of spec.waitFor",
        json_path = ".status.waitFor.phase"
    ),
    printcolumn(
        name = "Matched",
        type_ = "integer",
        description = "Tasks that passed the filter",
        json_path = ".status.matchedCount"
    ),
    printcolumn(
        name = "Latest",
        type_ = "string",
        description = "Status of the newest matched task",
        json_path = ".status.tasks[0].status"
    ),
    printcolumn(name = "Last Sync", type_ = "date", json_path = ".status.lastSyncTime"),
    printcolumn(
        name = "Job",
        type_ = "string",
        description = "Job id of the awaited task (kubectl get -o wide)",
        json_path = ".status.waitFor.jobId",
        priority = 1
    ),
    printcolumn(
        name = "Error",
        type_ = "string",
        description = "DCS error code of the last failed call (kubectl get -o wide)",
        json_path = ".status.lastError.errorCode",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = limits::INTERVAL.rule(false),
    validation = limits::ACTIVE_INTERVAL.rule(false),
    validation = limits::TTL_AFTER_RESOLVED.rule(true),
    validation = Rule::new("!has(self.ttlAfterResolved) || has(self.waitFor)")
        .message("ttlAfterResolved needs waitFor: only a wait resolves")
        .field_path(".ttlAfterResolved")
)]
pub struct DcsTaskQuerySpec {
    /// Huawei Cloud region, e.g. `cn-north-4`. Selects the endpoint
    /// `https://dcs.{region}.myhuaweicloud.com`.
    #[schemars(pattern(patterns::REGION))]
    pub region: String,

    /// Project id. Optional when the credentials Secret (or the operator's default credentials)
    /// carry one under `projectId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::PROJECT_ID))]
    pub project_id: Option<String>,

    /// Endpoint override (`https://host[:port]`). Used only when the operator's allow-list
    /// permits it: https DCS hosts by default, anything else only when explicitly allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::ENDPOINT))]
    pub endpoint: Option<String>,

    /// Secret in this namespace with keys `accessKey`, `secretKey`, optional `securityToken`
    /// and `projectId`. When absent, the operator's default credentials are used if enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<CredentialsSecretRef>,

    /// Which tasks to fetch.
    #[serde(default)]
    pub query: TaskQuerySpec,

    /// Client-side filter over the fetched tasks (the API has none). Empty lists match all.
    #[serde(default, skip_serializing_if = "TaskFilter::is_empty")]
    pub filter: TaskFilter,

    /// Makes the object something to wait on: `Complete`/`Failed` conditions follow one task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for: Option<WaitForSpec>,

    /// Poll interval once settled (nothing awaited or running), 10s to 24h.
    #[serde(default = "default_interval")]
    #[schemars(pattern(patterns::DURATION), length(max = limits::MAX_DURATION_CHARS))]
    pub interval: String,

    /// Poll interval while an awaited or non-terminal task exists, 2s to 24h.
    #[serde(default = "default_active_interval")]
    #[schemars(pattern(patterns::DURATION), length(max = limits::MAX_DURATION_CHARS))]
    pub active_interval: String,

    /// Stops polling; the last status stays as it is.
    #[serde(default)]
    pub suspend: bool,

    /// How many tasks `.status.tasks` keeps, newest first.
    #[serde(default = "default_max_tasks")]
    #[schemars(range(min = limits::MIN_TASKS, max = limits::MAX_TASKS))]
    pub max_tasks: i32,

    /// Deletes this object this long after its wait resolved (`status.waitFor.resolvedAt`:
    /// Succeeded, Failed or TimedOut), like a Job's `ttlSecondsAfterFinished`; at most `720h`.
    /// Needs `waitFor`. Unset: never deleted. For pipelines that create one object per run; not
    /// for objects a GitOps tool (Flux, Argo CD) applies, which would re-create them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::DURATION), length(max = limits::MAX_DURATION_CHARS))]
    pub ttl_after_resolved: Option<String>,
}

/// Reference to the credentials Secret; same namespace only, so a query cannot borrow another
/// tenant's credentials.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Name of a Secret in the object's namespace.
    #[schemars(pattern(patterns::SECRET_NAME), length(min = 1, max = limits::MAX_SECRET_NAME_CHARS))]
    pub name: String,
}

/// The request parameters, mirroring the API's own (`offset`, `limit`, `start_time`,
/// `end_time`), plus paging and a relative window.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.since) && has(self.startTime))")
        .message("query.since and query.startTime are mutually exclusive: set one of them")
        .field_path(".since"),
    validation = Rule::new("!has(self.startTime) || !has(self.endTime) || self.startTime <= self.endTime")
        .message("query.startTime must not be after query.endTime")
        .field_path(".startTime"),
    validation = limits::SINCE.rule(true)
)]
pub struct TaskQuerySpec {
    /// Page through the whole window (stopping by `task_count`, at most `maxPages` pages), as
    /// Terraform's data source does. `false` fetches exactly one page at `offset`/`limit`.
    #[serde(default = "default_true")]
    pub all_pages: bool,

    /// Upper bound on pages fetched per poll when `allPages` is on.
    #[serde(default = "default_max_pages")]
    #[schemars(range(min = limits::MIN_PAGES, max = limits::MAX_PAGES))]
    pub max_pages: i32,

    /// Position of the first record (0-based).
    #[serde(default)]
    #[schemars(range(min = limits::MIN_OFFSET))]
    pub offset: i32,

    /// Page size, 1 to 1000. Default: 1000 when `allPages` is on (fewest calls), otherwise the
    /// API's own default of 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = limits::MIN_QUERY_LIMIT, max = limits::MAX_QUERY_LIMIT))]
    pub limit: Option<i32>,

    /// Window start, `yyyyMMddHHmmss` UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::DCS_TIME))]
    pub start_time: Option<String>,

    /// Window end, `yyyyMMddHHmmss` UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::DCS_TIME))]
    pub end_time: Option<String>,

    /// Relative window start instead of `startTime` (e.g. `24h`, at most `8760h`), evaluated
    /// at each poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::DURATION), length(max = limits::MAX_DURATION_CHARS))]
    pub since: Option<String>,
}

impl Default for TaskQuerySpec {
    fn default() -> Self {
        Self {
            all_pages: true,
            max_pages: default_max_pages(),
            offset: 0,
            limit: None,
            start_time: None,
            end_time: None,
            since: None,
        }
    }
}

/// Client-side filter; each non-empty list must contain the task's value.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "camelCase")]
pub struct TaskFilter {
    /// Task names, e.g. `masterStandbySwapJob`, `EXTEND`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::MAX_FILTER_NAMES))]
    pub names: Vec<String>,
    /// Task statuses, e.g. `EXECUTING`, `SUCCESS`, `FAILED`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::MAX_FILTER_STATUSES))]
    pub statuses: Vec<String>,
    /// Job ids as returned by the asynchronous DCS APIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::MAX_FILTER_JOB_IDS))]
    pub job_ids: Vec<String>,
    /// IAM user names (the task's `user_name`, exact and case-sensitive), e.g. the pipeline's
    /// user. Also applies to `waitFor`: a task by another user cannot satisfy the wait.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = limits::MAX_FILTER_USER_NAMES),
        inner(length(min = limits::MIN_FILTER_VALUE_CHARS, max = limits::MAX_FILTER_VALUE_CHARS))
    )]
    pub user_names: Vec<String>,
    /// Substrings that must ALL appear in the task's `params` text (case-sensitive), e.g. an
    /// instance id. A task without `params` never matches. Also applies to `waitFor`: a task
    /// whose `params` lack one of them cannot satisfy the wait.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = limits::MAX_FILTER_PARAMS_CONTAINS),
        inner(length(min = limits::MIN_FILTER_VALUE_CHARS, max = limits::MAX_FILTER_VALUE_CHARS))
    )]
    pub params_contains: Vec<String>,
}

impl TaskFilter {
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
            && self.statuses.is_empty()
            && self.job_ids.is_empty()
            && self.user_names.is_empty()
            && self.params_contains.is_empty()
    }

    /// Whether the filter narrows which task a wait may follow (`userNames`,
    /// `paramsContains`). `names`, `statuses` and `jobIds` only shape the task list: a wait
    /// must see its task in every status to follow it to the end.
    pub fn narrows_waits(&self) -> bool {
        !self.user_names.is_empty() || !self.params_contains.is_empty()
    }
}

/// The task to wait for: by `jobId` (exact; the async DCS APIs return it) or by `name` (the
/// newest task of that name created after `createdAfter`). Either way only tasks that pass
/// `spec.filter.userNames` and `spec.filter.paramsContains` count; `spec.filter.names`,
/// `statuses` and `jobIds` shape the task list only and never hide the awaited task.
/// When several tasks match a `name` wait, the newest is followed, `status.waitFor.matchedTasks`
/// says how many matched and an `AmbiguousWait` Warning event recommends `jobId` (or the
/// `userNames`/`paramsContains` filters).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.jobId) != has(self.name)")
        .message("waitFor needs exactly one of jobId or name"),
    validation = Rule::new("self.successStatuses.all(s, !(s in self.failureStatuses))")
        .message("waitFor.successStatuses and waitFor.failureStatuses must not overlap")
        .field_path(".successStatuses"),
    validation = Rule::new("!has(self.source) || self.source == 'TaskList' || has(self.jobId)")
        .message("waitFor.source: Job needs jobId (a name wait reads the task list)")
        .field_path(".source"),
    validation = limits::LOOKBACK.rule(false),
    validation = limits::TIMEOUT.rule(true)
)]
pub struct WaitForSpec {
    /// Job id returned by the call that started the job (`job_id` in the task list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::MAX_WAIT_TARGET_CHARS))]
    pub job_id: Option<String>,

    /// Where a `jobId` wait learns the job's status. `Job` (the default for `jobId`) asks the
    /// DCS job API for that one job (`ShowJobInfo`, IAM action `dcs:job:get`), exactly as
    /// Terraform does: no query window, paging or `maxPages` can hide it, and it ends on the
    /// job's `SUCCESS` or `FAIL`. `TaskList` looks for the job in the task-center list
    /// (`dcs:task:list`), within `spec.query`'s window, judged by `successStatuses` and
    /// `failureStatuses`. A `name` wait always reads the task list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<WaitSource>,

    /// Task name; the newest task with this name created after `createdAfter` is awaited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::MAX_WAIT_TARGET_CHARS))]
    pub name: Option<String>,

    /// Only tasks created at or after this time count (for `name`; ignored with `jobId`, which
    /// is exact). RFC 3339, e.g. `2026-11-27T12:00:00Z`, between 1970-01-01T00:00:00Z and
    /// 9999-01-01T00:00:00Z: set it when a pipeline knows when it triggered the job (take a
    /// little margin for clock skew). When set, `lookback` is not used. Default: the object's
    /// creation time minus `lookback`, so a job triggered just before apply still counts while
    /// an old success does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_after: Option<Time>,

    /// See `createdAfter` (unused when `createdAfter` is set); at most `8760h`.
    #[serde(default = "default_lookback")]
    #[schemars(pattern(patterns::DURATION), length(max = limits::MAX_DURATION_CHARS))]
    pub lookback: String,

    /// Task statuses that complete a wait read from the task list (`source: TaskList`, or a
    /// `name` wait); a job-API wait ends on the job's `SUCCESS` or `FAIL`.
    #[serde(default = "default_success_statuses")]
    #[schemars(length(min = 1, max = limits::MAX_WAIT_STATUSES))]
    pub success_statuses: Vec<String>,

    /// Task statuses that fail a wait read from the task list (a deleted task will never
    /// succeed).
    #[serde(default = "default_failure_statuses")]
    #[schemars(length(max = limits::MAX_WAIT_STATUSES))]
    pub failure_statuses: Vec<String>,

    /// Give up (`TimedOut`) when the task has not reached a terminal status by then, counted
    /// from when this generation of the wait started; at most `720h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::DURATION), length(max = limits::MAX_DURATION_CHARS))]
    pub timeout: Option<String>,
}

/// Where a wait learns the awaited task's status (`spec.waitFor.source`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WaitSource {
    /// The DCS job API (`GET /v2/{project_id}/jobs/{job_id}`), for a `jobId` wait.
    Job,
    /// The task-center list (`GET /v2/{project_id}/tasks`).
    TaskList,
}

impl WaitForSpec {
    /// The source this wait uses: as set, else `Job` for a `jobId` wait and `TaskList` for a
    /// `name` wait.
    pub fn effective_source(&self) -> WaitSource {
        match (self.source, &self.job_id) {
            (Some(source), _) => source,
            (None, Some(_)) => WaitSource::Job,
            (None, None) => WaitSource::TaskList,
        }
    }
}

/// Poll interval once settled.
pub const DEFAULT_INTERVAL: &str = "1m";
/// Poll interval while something is running or awaited.
pub const DEFAULT_ACTIVE_INTERVAL: &str = "10s";

fn default_interval() -> String {
    DEFAULT_INTERVAL.to_string()
}
fn default_active_interval() -> String {
    DEFAULT_ACTIVE_INTERVAL.to_string()
}
fn default_max_tasks() -> i32 {
    20
}
fn default_max_pages() -> i32 {
    10
}
fn default_true() -> bool {
    true
}
fn default_lookback() -> String {
    "5m".to_string()
}
fn default_success_statuses() -> Vec<String> {
    vec!["SUCCESS".to_string()]
}
fn default_failure_statuses() -> Vec<String> {
    ["FAILED", "FAIL", "CANCELLED", "DELETED"]
        .map(String::from)
        .to_vec()
}
