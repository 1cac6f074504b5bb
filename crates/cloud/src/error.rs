//! Errors from the DCS side, typed so callers can decide: retry, back off, or stop and tell
//! the user. Messages name the endpoint and project and say what to do; they never contain
//! credentials (requests are described by URL, which carries none).

use std::time::Duration;

use super::credentials::CredentialsError;
use super::endpoint::EndpointError;

/// Gateway throttling (`APIG.0308`, HTTP 429).
pub const THROTTLED_CODE: &str = "APIG.0308";
/// Gateway authentication failure (`APIG.0301`, HTTP 401). Five in a row lock the AK for 5 min.
pub const AUTH_FAILED_CODE: &str = "APIG.0301";

/// How long an access key is left alone after a refused call: the gateway's lock window.
pub const AUTH_COOLDOWN: Duration = Duration::from_secs(5 * 60);

/// The longest `error_msg` kept from an error answer, in bytes (DCS documents 1024 at most; an
/// upstream may send megabytes). Longer messages are cut on a character boundary and marked.
pub const MAX_ERROR_MSG_BYTES: usize = 512;
/// The longest `error_code` kept from an error answer, in bytes (DCS documents 9 at most).
pub const MAX_ERROR_CODE_BYTES: usize = 64;
/// The longest `X-Request-Id` kept from an answer, in bytes.
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// The IAM action a call needs, which the advice of a 403 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IamAction {
    /// `ListCenterTask`: `dcs:task:list`.
    ListTasks,
    /// `ShowJobInfo`: `dcs:job:get`.
    ShowJob,
    /// IAM `KeystoneListProjects`: `iam:projects:list`.
    ListProjects,
}

impl IamAction {
    pub fn as_str(self) -> &'static str {
        match self {
            IamAction::ListTasks => "dcs:task:list",
            IamAction::ShowJob => "dcs:job:get",
            IamAction::ListProjects => "iam:projects:list",
        }
    }
}

/// An error answer from the DCS API or its gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub http_status: u16,
    pub error_code: Option<String>,
    pub error_msg: Option<String>,
    pub request_id: Option<String>,
    /// The `Retry-After` the gateway asked for, if any.
    pub retry_after: Option<Duration>,
    /// The IAM action the refused call needs: the advice of a 403 names it.
    pub iam_action: IamAction,
}

impl ApiError {
    fn advice(&self) -> std::borrow::Cow<'static, str> {
        let advice = match (self.http_status, self.error_code.as_deref()) {
            (429, _) | (_, Some(THROTTLED_CODE)) => {
                "the API gateway is throttling; lower the poll rate or the operator's --rate-limit"
            }
            (401, _) | (_, Some(AUTH_FAILED_CODE)) => {
                "check the access key and secret key (and security token for temporary keys); not retried, because 5 failures lock the AK for 5 minutes"
            }
            (403, _) => {
                return format!(
                    "the credentials lack permission: grant the IAM action {} in this project",
                    self.iam_action.as_str()
                )
                .into();
            }
            (404, _) => "check region, projectId and endpoint",
            (400, _) => "the request parameters were refused; check spec.query",
            (500..=599, _) => "the DCS service failed; it will be retried",
            _ => "unexpected answer",
        };
        advice.into()
    }
}

/// How a failure should be handled, from the caller's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Throttling, 5xx, timeouts, dropped connections, garbled bodies: retried with backoff;
    /// the object stays `Reconciling`.
    Transient,
    /// The credentials were refused (401 / `APIG.0301`): `Stalled`, and the access key is left
    /// alone for a cool-down, since five failures lock it.
    Auth,
    /// 400, 403, 404, a redirect, an oversized body: only a person can fix it (permissions,
    /// project, endpoint, query window): `Stalled`, polled slowly.
    NeedsPerson,
}

/// What can go wrong talking to DCS.
#[derive(Debug, thiserror::Error)]
pub enum DcsError {
    #[error(
        "DCS API at {endpoint} answered HTTP {status}{code}{msg}: {advice}",
        status = .error.http_status,
        code = .error.error_code.as_deref().map(|c| format!(" {c}")).unwrap_or_default(),
        msg = .error.error_msg.as_deref().map(|m| format!(" ({m})")).unwrap_or_default(),
        advice = .error.advice()
    )]
    Api { endpoint: String, error: ApiError },

    #[error("DCS API at {endpoint} did not answer within {}s", .timeout.as_secs_f32())]
    Timeout { endpoint: String, timeout: Duration },

    #[error(
        "DCS API at {endpoint} answered HTTP {status} redirecting to {target}; the operator never follows redirects, because its requests carry credentials: check the endpoint URL (scheme, host, path) so that it names the API itself",
        target = .location_host.as_deref().map(|host| format!("host {host}")).unwrap_or_else(|| "no usable location".to_string())
    )]
    Redirected {
        endpoint: String,
        status: u16,
        /// Only the host of the `Location` header: its path and query are never kept.
        location_host: Option<String>,
    },

    #[error(
        "DCS API at {endpoint} sent a response body larger than {limit} bytes, the operator's limit; the endpoint is probably not the DCS API (or raise --max-body-bytes)"
    )]
    BodyTooLarge { endpoint: String, limit: usize },

    #[error("could not reach the DCS API at {endpoint}: {detail}")]
    Transport { endpoint: String, detail: String },

    /// Another credential with the same access key (a different secret key) failed
    /// authentication here often enough that no untried credential of that key is sent until
    /// the oldest failure ages out: this one is not refused, it is waiting its turn.
    #[error(
        "{access_key} is cooling down at {endpoint} after {failures} failed authentications with a different secret key; this credential has not been tried and will be once the oldest of those failures is 5 minutes old (the API gateway locks an access key after 5 failures in 5 minutes)"
    )]
    AccessKeyCoolingDown {
        endpoint: String,
        /// The access key's public label (`AK ABCD…`), never the key.
        access_key: String,
        failures: usize,
    },

    #[error("the DCS API at {endpoint} sent a response that is not {expected}: {detail}")]
    Decode {
        endpoint: String,
        /// What the answer should have been: `the task list`, `a ShowJobInfo answer`.
        expected: &'static str,
        detail: String,
    },

    #[error(transparent)]
    Endpoint(#[from] EndpointError),

    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

impl DcsError {
    /// Worth another attempt after a pause: throttling, server errors, timeouts and dropped
    /// connections. Never authentication failures or bad requests.
    pub fn is_retryable(&self) -> bool {
        match self {
            DcsError::Api { error, .. } => {
                error.http_status == 429
                    || error.error_code.as_deref() == Some(THROTTLED_CODE)
                    || (500..=599).contains(&error.http_status)
            }
            DcsError::Timeout { .. }
            | DcsError::Transport { .. }
            | DcsError::AccessKeyCoolingDown { .. } => true,
            DcsError::Decode { .. }
            | DcsError::Redirected { .. }
            | DcsError::BodyTooLarge { .. }
            | DcsError::Endpoint(_)
            | DcsError::Credentials(_) => false,
        }
    }

    /// The credentials were refused; callers must not hammer (the AK locks after 5 failures).
    pub fn is_auth_failure(&self) -> bool {
        matches!(self, DcsError::Api { error, .. }
            if error.http_status == 401 || error.error_code.as_deref() == Some(AUTH_FAILED_CODE))
    }

    /// What a failed poll means for the user: wait it out, or go and fix something.
    pub fn class(&self) -> FailureClass {
        if self.is_auth_failure() {
            FailureClass::Auth
        } else if self.is_retryable() || matches!(self, DcsError::Decode { .. }) {
            // A cut-off or garbled body is what a flaky proxy produces: retry it.
            FailureClass::Transient
        } else {
            FailureClass::NeedsPerson
        }
    }

    /// The API's error answer, when there was one.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            DcsError::Api { error, .. } => Some(error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: Option<&str>) -> DcsError {
        DcsError::Api {
            endpoint: "https://dcs.cn-north-4.myhuaweicloud.com".into(),
            error: ApiError {
                http_status: status,
                error_code: code.map(String::from),
                error_msg: Some("m".into()),
                request_id: None,
                retry_after: None,
                iam_action: IamAction::ListTasks,
            },
        }
    }

    #[test]
    fn classification() {
        assert!(api(429, Some(THROTTLED_CODE)).is_retryable());
        assert!(api(503, None).is_retryable());
        assert!(!api(401, Some(AUTH_FAILED_CODE)).is_retryable());
        assert!(api(401, Some(AUTH_FAILED_CODE)).is_auth_failure());
        assert!(!api(400, Some("111400063")).is_retryable());
        assert!(!api(403, None).is_auth_failure());
        assert_eq!(api(401, None).class(), FailureClass::Auth);
        assert_eq!(api(400, Some(AUTH_FAILED_CODE)).class(), FailureClass::Auth);
        for status in [400, 403, 404, 409] {
            assert_eq!(
                api(status, None).class(),
                FailureClass::NeedsPerson,
                "{status}"
            );
        }
        for status in [429, 500, 502, 503] {
            assert_eq!(
                api(status, None).class(),
                FailureClass::Transient,
                "{status}"
            );
        }
        assert_eq!(
            api(400, Some(THROTTLED_CODE)).class(),
            FailureClass::Transient
        );
    }

    #[test]
    fn messages_say_what_to_do() {
        let message = api(401, Some(AUTH_FAILED_CODE)).to_string();
        assert!(message.contains("HTTP 401 APIG.0301 (m)"), "{message}");
        assert!(message.contains("not retried"), "{message}");
        assert!(api(403, None).to_string().contains("dcs:task:list"));
    }

    #[test]
    fn redirects_and_oversized_bodies_are_final_and_explained() {
        let redirected = DcsError::Redirected {
            endpoint: "https://dcs.cn-north-4.myhuaweicloud.com".into(),
            status: 307,
            location_host: Some("elsewhere.example".into()),
        };
        assert!(!redirected.is_retryable());
        let message = redirected.to_string();
        assert!(message.contains("HTTP 307"), "{message}");
        assert!(message.contains("host elsewhere.example"), "{message}");
        assert!(message.contains("never follows redirects"), "{message}");
        assert!(message.contains("credentials"), "{message}");

        let without_location = DcsError::Redirected {
            endpoint: "e".into(),
            status: 302,
            location_host: None,
        };
        assert!(without_location.to_string().contains("no usable location"));

        let too_large = DcsError::BodyTooLarge {
            endpoint: "e".into(),
            limit: 1024,
        };
        assert!(!too_large.is_retryable());
        assert!(too_large.to_string().contains("larger than 1024 bytes"));
    }
}
