//! The Huawei Cloud side: wire model, request signing, credentials, endpoints, the
//! `ListCenterTask` and `ShowJobInfo` clients, and project-id discovery through IAM. Usable as a plain client library; it never imports `kube`.

mod client;
pub mod credentials;
pub mod endpoint;
mod error;
pub mod iam;
mod job;
pub mod model;
pub mod sign;
pub mod time;

pub use client::{
    AccountKey, DEFAULT_MAX_BODY_BYTES, DcsClient, HttpClient, HttpSettings, MAX_LIMIT,
    MAX_LISTING_BYTES, MAX_LISTING_TASKS, PageRequest, Paging, RequestGate, RetryPolicy,
    TaskListing,
};
pub use credentials::{CredentialSet, Credentials, CredentialsError, SecretString};
pub use endpoint::{AllowedEndpoint, Endpoint, EndpointError, EndpointPolicy};
pub use error::{
    AUTH_COOLDOWN, AUTH_FAILED_CODE, ApiError, DcsError, FailureClass, IamAction,
    MAX_ERROR_CODE_BYTES, MAX_ERROR_MSG_BYTES, MAX_REQUEST_ID_BYTES, THROTTLED_CODE,
};
pub use iam::{IamClient, ProjectDiscoveryError};
pub use job::{JobId, JobIdError, JobInfo, JobLookupFailure, JobStatus, MAX_JOB_ID_LEN};
pub use model::{
    CenterTask, ListCenterTaskResponse, MAX_DECODED_PARAMS_BYTES, MAX_DECODED_TEXT_BYTES,
    MAX_DECODED_TIME_BYTES, MAX_TASKS_PER_PAGE, ShowJobInfoResponse, TaskDetails, decode_job_info,
    decode_task_page,
};
pub use time::{QueryTime, TaskTime};
