//! The Huawei Cloud side of dcs-task-operator: the lenient wire model ([`model`], and the plain
//! listing data [`PageRequest`], [`Paging`] and [`TaskListing`] that the layers above read), the
//! SDK-HMAC-SHA256 signer ([`sign`]), credentials, the endpoint allow-list, the `ListCenterTask`
//! ([`DcsClient::list_tasks`]), `ShowJobInfo` ([`DcsClient::show_job`]) and IAM project discovery
//! ([`IamClient`]) clients, and the error classes callers retry by ([`DcsError`]).
//!
//! Usable as a plain client library. It must not know of Kubernetes (`kube`, `k8s-openapi`,
//! `schemars`), of the `DcsTaskQuery` spec, of what a query means, of who polls when, or of the
//! simulator: its only workspace dependency is `dcs-common`. The manifest says so, and
//! `tests/layers.rs` at the repository root checks it.

mod client;
pub mod credentials;
pub mod endpoint;
mod error;
pub mod iam;
mod job;
mod listing;
pub mod model;
pub mod sign;
pub mod time;

pub use client::{
    AccountKey, DEFAULT_MAX_BODY_BYTES, DcsClient, HttpClient, HttpSettings, MAX_LIMIT,
    MAX_LISTING_BYTES, MAX_LISTING_TASKS, RequestGate, RetryPolicy,
};
pub use credentials::{CredentialSet, Credentials, CredentialsError, SecretString};
pub use endpoint::{AllowedEndpoint, Endpoint, EndpointError, EndpointPolicy};
pub use error::{
    AUTH_COOLDOWN, AUTH_FAILED_CODE, ApiError, DcsError, FailureClass, IamAction,
    MAX_ERROR_CODE_BYTES, MAX_ERROR_MSG_BYTES, MAX_REQUEST_ID_BYTES, THROTTLED_CODE,
};
pub use iam::{IamClient, ProjectDiscoveryError};
pub use job::{JobId, JobIdError, JobInfo, JobLookupFailure, JobStatus, MAX_JOB_ID_LEN};
pub use listing::{PageRequest, Paging, TaskListing};
pub use model::{
    CenterTask, ListCenterTaskResponse, MAX_DECODED_PARAMS_BYTES, MAX_DECODED_TEXT_BYTES,
    MAX_DECODED_TIME_BYTES, MAX_TASKS_PER_PAGE, ShowJobInfoResponse, TaskDetails, decode_job_info,
    decode_task_page,
};
pub use time::{QueryTime, TaskTime};
