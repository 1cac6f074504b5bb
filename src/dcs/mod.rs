//! The Huawei Cloud side: wire model, request signing, credentials, endpoints and the
//! `ListCenterTask` client. Usable as a plain client library; it never imports `kube`.

mod client;
pub mod credentials;
pub mod endpoint;
mod error;
pub mod model;
pub mod sign;
pub mod time;

pub use client::{
    DcsClient, HttpClient, HttpSettings, MAX_LIMIT, PageRequest, Paging, RetryPolicy, TaskListing,
};
pub use credentials::{CredentialSet, Credentials, CredentialsError, SecretString};
pub use endpoint::{AllowedEndpoint, Endpoint, EndpointError, EndpointPolicy};
pub use error::{AUTH_FAILED_CODE, ApiError, DcsError, THROTTLED_CODE};
pub use model::{CenterTask, ListCenterTaskResponse, TaskDetails};
pub use time::{QueryTime, TaskTime};
