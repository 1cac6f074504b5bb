//! The `ListCenterTask` client: signed requests, paging by `task_count`, retries.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tracing::debug;

use super::credentials::Credentials;
use super::endpoint::Endpoint;
use super::error::{ApiError, DcsError};
use super::model::{CenterTask, ErrorBody, ListCenterTaskResponse};
use super::sign::{self, SDK_DATE_FORMAT, SignableRequest};
use super::time::QueryTime;

/// The API's page-size ceiling.
pub const MAX_LIMIT: u32 = 1000;

/// How failed calls are retried: exponential backoff with jitter, for retryable errors only
/// (throttling, 5xx, timeouts, dropped connections).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Huawei's FAQ suggests retrying throttled calls after a few seconds.
    fn default() -> Self {
        Self {
            max_retries: 4,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
        }
    }
}

/// Connection pool and per-call settings, shared by every [`DcsClient`] of a process.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

/// A pooled HTTP client for DCS; cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
    settings: Arc<HttpSettings>,
}

impl HttpClient {
    pub fn new(settings: HttpSettings) -> Result<Self, DcsError> {
        // reqwest is built without a default TLS provider so that the binary carries only the
        // ring-based rustls that kube uses; install it once for the process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let inner = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("dcs-task-operator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| DcsError::Transport {
                endpoint: "(client setup)".into(),
                detail: error.to_string(),
            })?;
        Ok(Self {
            inner,
            settings: Arc::new(settings),
        })
    }
}

/// One page request: the API's own parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PageRequest {
    pub offset: u32,
    /// `None` leaves the API's default (10).
    pub limit: Option<u32>,
    pub start_time: Option<QueryTime>,
    pub end_time: Option<QueryTime>,
}

impl PageRequest {
    fn query_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = vec![("offset".to_string(), self.offset.to_string())];
        if let Some(limit) = self.limit {
            pairs.push(("limit".into(), limit.to_string()));
        }
        if let Some(start) = &self.start_time {
            pairs.push(("start_time".into(), start.to_param()));
        }
        if let Some(end) = &self.end_time {
            pairs.push(("end_time".into(), end.to_param()));
        }
        pairs
    }
}

/// One page, or the whole window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Paging {
    /// Exactly the page asked for (the API's own semantics).
    Single,
    /// Follow `task_count` from the first page on, at most `max_pages` calls.
    All { max_pages: u32 },
}

/// The tasks of one query, possibly gathered from several pages.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskListing {
    /// The API's `task_count` from the last page read.
    pub task_count: Option<u64>,
    pub tasks: Vec<CenterTask>,
    /// Upstream calls that succeeded (retries not counted).
    pub pages: u32,
    /// `false` when `max_pages` stopped paging before `task_count` was reached.
    pub complete: bool,
}

/// A client for one endpoint, project and credential.
#[derive(Clone, Debug)]
pub struct DcsClient {
    http: HttpClient,
    endpoint: Endpoint,
    project_id: String,
    credentials: Credentials,
}

impl DcsClient {
    pub fn new(
        http: HttpClient,
        endpoint: Endpoint,
        project_id: impl Into<String>,
        credentials: Credentials,
    ) -> Self {
        Self {
            http,
            endpoint,
            project_id: project_id.into(),
            credentials,
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `ListCenterTask` for `request`, paging through the window when asked.
    ///
    /// Paging reads `task_count` from each page and stops when the window is covered, so
    /// 2,500 tasks at limit 1000 take exactly 3 calls (no trailing empty-page call).
    pub async fn list_tasks(
        &self,
        request: &PageRequest,
        paging: Paging,
    ) -> Result<TaskListing, DcsError> {
        let max_pages = match paging {
            Paging::Single => 1,
            Paging::All { max_pages } => max_pages.max(1),
        };
        let mut listing = TaskListing::default();
        let mut page = request.clone();
        loop {
            let response = self.list_page(&page).await?;
            let received = u32::try_from(response.tasks.len()).unwrap_or(u32::MAX);
            listing.pages += 1;
            listing.task_count = response.task_count;
            listing.tasks.extend(response.tasks);
            if paging == Paging::Single {
                listing.complete = true;
                break;
            }
            let next_offset = page.offset.saturating_add(received);
            let more = match response.task_count {
                Some(total) => u64::from(next_offset) < total,
                // Without a count, a full page is the only hint that more may follow.
                None => page.limit.is_some_and(|limit| received >= limit),
            };
            if !more || received == 0 {
                listing.complete = true;
                break;
            }
            if listing.pages >= max_pages {
                listing.complete = false;
                break;
            }
            page.offset = next_offset;
        }
        Ok(listing)
    }

    /// One `GET /v2/{project_id}/tasks`, retried on throttling and transient failures.
    pub async fn list_page(&self, page: &PageRequest) -> Result<ListCenterTaskResponse, DcsError> {
        let retry = self.http.settings.retry;
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(retry.min_delay)
            .with_max_delay(retry.max_delay)
            .with_max_times(retry.max_retries);
        (|| self.call(page))
            .retry(backoff)
            .when(DcsError::is_retryable)
            .adjust(|error, delay| {
                let asked = error.api_error().and_then(|api| api.retry_after);
                match (asked, delay) {
                    (Some(asked), Some(_)) => Some(asked.min(retry.max_delay)),
                    (_, delay) => delay,
                }
            })
            .notify(|error, delay| {
                debug!(endpoint = %self.endpoint, ?delay, %error, "retrying DCS call");
            })
            .await
    }

    async fn call(&self, page: &PageRequest) -> Result<ListCenterTaskResponse, DcsError> {
        let path = format!("/v2/{}/tasks", self.project_id);
        let query = page.query_pairs();
        let headers = self.auth_headers("GET", &path, &query, Utc::now());
        let mut url = self.endpoint.url().clone();
        url.set_path(&path);
        let endpoint = self.endpoint.to_string();
        let response = self
            .http
            .inner
            .get(url)
            .query(&query)
            .headers(headers)
            .send()
            .await
            .map_err(|error| self.transport_error(error))?;
        let status = response.status();
        let request_id = header_text(response.headers(), "x-request-id");
        let retry_after = header_text(response.headers(), "retry-after")
            .and_then(|secs| secs.trim().parse().ok())
            .map(Duration::from_secs);
        let body = response
            .bytes()
            .await
            .map_err(|error| self.transport_error(error))?;
        debug!(%endpoint, status = status.as_u16(), bytes = body.len(), "DCS ListCenterTask");
        if !status.is_success() {
            let parsed = ErrorBody::from_json(&body).unwrap_or_default();
            return Err(DcsError::Api {
                endpoint,
                error: ApiError {
                    http_status: status.as_u16(),
                    error_code: parsed.error_code,
                    error_msg: parsed.error_msg,
                    request_id,
                    retry_after,
                },
            });
        }
        serde_json::from_slice(&body).map_err(|error| DcsError::Decode {
            endpoint,
            detail: error.to_string(),
        })
    }

    fn transport_error(&self, error: reqwest::Error) -> DcsError {
        let endpoint = self.endpoint.to_string();
        if error.is_timeout() {
            DcsError::Timeout {
                endpoint,
                timeout: self.http.settings.timeout,
            }
        } else {
            // Walk the source chain for the useful part ("connection refused"); the URL holds no
            // secrets, and headers are never part of reqwest's error text.
            let mut source = std::error::Error::source(&error);
            let mut detail = String::new();
            while let Some(cause) = source {
                if !detail.is_empty() {
                    detail.push_str(": ");
                }
                detail.push_str(&cause.to_string());
                source = cause.source();
            }
            if detail.is_empty() {
                detail = error.without_url().to_string();
            }
            DcsError::Transport { endpoint, detail }
        }
    }

    /// The authentication headers for one request, signed at `now`.
    fn auth_headers(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        now: DateTime<Utc>,
    ) -> HeaderMap {
        let mut signed: Vec<(String, String)> = vec![
            ("content-type".into(), "application/json".into()),
            ("host".into(), self.endpoint.authority()),
            ("x-project-id".into(), self.project_id.clone()),
        ];
        let mut headers = HeaderMap::new();
        match &self.credentials {
            Credentials::AkSk {
                access_key,
                secret_key,
                security_token,
            } => {
                signed.push(("x-sdk-date".into(), now.format(SDK_DATE_FORMAT).to_string()));
                if let Some(token) = security_token {
                    signed.push(("x-security-token".into(), token.expose().to_string()));
                }
                let authorization = sign::sign(
                    &SignableRequest {
                        method,
                        path,
                        query,
                        headers: &signed,
                        body: b"",
                    },
                    access_key,
                    secret_key.expose(),
                );
                insert(&mut headers, "authorization", &authorization.header_value());
            }
            Credentials::Token(token) => {
                insert(&mut headers, "x-auth-token", token.expose());
            }
        }
        for (name, value) in signed.iter().filter(|(name, _)| name != "host") {
            insert(&mut headers, name, value);
        }
        headers
    }
}

fn insert(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(mut value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        value.set_sensitive(matches!(
            name.as_str(),
            "authorization" | "x-auth-token" | "x-security-token"
        ));
        headers.insert(name, value);
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dcs::endpoint::EndpointPolicy;
    use chrono::TimeZone;

    fn client(credentials: Credentials) -> DcsClient {
        DcsClient::new(
            HttpClient::new(HttpSettings::default()).unwrap(),
            EndpointPolicy::default()
                .resolve("cn-north-4", None)
                .unwrap(),
            "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
            credentials,
        )
    }

    #[test]
    fn signs_date_host_project_and_token() {
        let c = client(Credentials::AkSk {
            access_key: "AK".into(),
            secret_key: crate::dcs::credentials::SecretString::new("SK"),
            security_token: Some(crate::dcs::credentials::SecretString::new("STS")),
        });
        let now = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let query = vec![("offset".to_string(), "0".to_string())];
        let headers = c.auth_headers("GET", "/v2/p/tasks", &query, now);
        let auth = headers["authorization"].to_str().unwrap();
        assert!(
            auth.contains(
                "SignedHeaders=content-type;host;x-project-id;x-sdk-date;x-security-token"
            ),
            "{auth}"
        );
        assert_eq!(headers["x-sdk-date"], "20260102T030405Z");
        assert!(headers["authorization"].is_sensitive());
        assert!(headers["x-security-token"].is_sensitive());
        assert!(!format!("{headers:?}").contains("STS"));
    }

    #[test]
    fn token_auth_sends_x_auth_token_and_no_signature() {
        let c = client(Credentials::Token(
            crate::dcs::credentials::SecretString::new("TOKEN"),
        ));
        let headers = c.auth_headers("GET", "/v2/p/tasks", &[], Utc::now());
        assert_eq!(headers["x-auth-token"], "TOKEN");
        assert!(headers.get("authorization").is_none());
    }

    /// Signs with this client and verifies with the simulator: permanent AK/SK, temporary
    /// AK/SK with a security token, and IAM token auth; wrong secrets are refused with 401.
    #[tokio::test]
    async fn the_simulator_accepts_exactly_the_right_credentials() {
        use crate::dcs::credentials::SecretString;
        use crate::sim;
        let scenario = sim::Scenario::from_yaml(
            r#"
credentials:
  - accessKey: PERMANENTAK
    secretKey: permanent-sk
  - accessKey: TEMPORARYAK
    secretKey: temporary-sk
    securityToken: sts-token
tokens: [iam-token]
tasks:
  - name: EXTEND
    status: SUCCESS
"#,
        )
        .unwrap();
        let running = sim::serve_on_loopback(scenario).await.unwrap();
        let endpoint = running.endpoint();
        let http = HttpClient::new(HttpSettings::default()).unwrap();
        let call = |credentials: Credentials| {
            let client = DcsClient::new(
                http.clone(),
                endpoint.clone(),
                sim::DEMO_PROJECT_ID,
                credentials,
            );
            async move {
                client
                    .list_tasks(&PageRequest::default(), Paging::Single)
                    .await
            }
        };
        let temporary = |token: Option<&str>| Credentials::AkSk {
            access_key: "TEMPORARYAK".into(),
            secret_key: SecretString::new("temporary-sk"),
            security_token: token.map(SecretString::new),
        };

        let listing = call(Credentials::ak_sk("PERMANENTAK", "permanent-sk"))
            .await
            .unwrap();
        assert_eq!((listing.task_count, listing.tasks.len()), (Some(1), 1));
        assert!(call(temporary(Some("sts-token"))).await.is_ok());
        assert!(
            call(Credentials::Token(SecretString::new("iam-token")))
                .await
                .is_ok()
        );

        for refused in [
            Credentials::ak_sk("PERMANENTAK", "wrong-sk"),
            Credentials::ak_sk("UNKNOWNAK", "permanent-sk"),
            temporary(None),
            temporary(Some("other-token")),
            Credentials::Token(SecretString::new("bad-token")),
        ] {
            let label = format!("{refused:?}");
            let error = call(refused).await.unwrap_err();
            assert!(error.is_auth_failure(), "{label}: {error}");
            assert!(!error.is_retryable());
            let text = error.to_string();
            for secret in [
                "wrong-sk",
                "permanent-sk",
                "temporary-sk",
                "other-token",
                "bad-token",
            ] {
                assert!(!text.contains(secret), "{text}");
            }
        }
        running.shutdown().await;
    }

    #[test]
    fn page_request_parameters() {
        let page = PageRequest {
            offset: 2000,
            limit: Some(1000),
            start_time: Some(QueryTime::parse("20260101000000").unwrap()),
            end_time: None,
        };
        assert_eq!(
            page.query_pairs(),
            vec![
                ("offset".to_string(), "2000".to_string()),
                ("limit".to_string(), "1000".to_string()),
                ("start_time".to_string(), "20260101000000".to_string()),
            ]
        );
    }
}
