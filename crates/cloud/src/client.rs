//! The `ListCenterTask` client: signed requests, paging by `task_count`, retries.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tracing::debug;

use super::credentials::Credentials;
use super::endpoint::Endpoint;
use super::error::{ApiError, DcsError, MAX_REQUEST_ID_BYTES};
use super::listing::{PageRequest, Paging, TaskListing};
use super::model::{ErrorBody, ListCenterTaskResponse, decode_task_page};
use super::sign::{self, SDK_DATE_FORMAT, SignableRequest};
use dcs_common::text::truncate_bytes;

/// The API's page-size ceiling.
pub const MAX_LIMIT: u32 = 1000;

/// The default cap on one response body: 32 MiB, about 25 times a full page of 1000 tasks with
/// every field filled.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// The most tasks one listing keeps, summed over its pages. A listing stops paging when it
/// reaches this many and is marked incomplete (as at `max_pages`), keeping the tasks the API
/// sent first. 20 full pages: the status shows at most a few hundred tasks and a wait looks for
/// one, and a window holding more than 20,000 tasks is far beyond what either needs; without a
/// cap, 100 pages of 10,000 blank `{}` tasks (about 30 MiB on the wire) would keep a million task
/// records, about a GiB.
pub const MAX_LISTING_TASKS: usize = 20_000;

/// The most response-body bytes one listing reads, summed over its pages (or one page's limit,
/// when that is set higher). Reaching it stops paging and marks the listing incomplete; the page
/// that would pass it is dropped whole. A full page of 1000 realistic tasks is about 0.5 to
/// 1.5 MiB, so 64 MiB holds the 20 pages of [`MAX_LISTING_TASKS`] with room to spare, while 100
/// pages of 32 MiB (3.2 GiB) no longer can be gathered. Decoded text is never longer than its
/// wire form (each field is also cut, see [`super::model`]; only a number read as text may grow,
/// to at most 24 bytes), so this bounds the text a listing keeps.
pub const MAX_LISTING_BYTES: usize = 64 * 1024 * 1024;

/// The longest host name kept from a `Location` header (DNS names have at most 253 bytes).
const MAX_LOCATION_HOST_BYTES: usize = 253;

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
    /// The largest response body read, in bytes; a larger one (announced by `Content-Length` or
    /// counted while streaming) fails the call with [`DcsError::BodyTooLarge`].
    pub max_body_bytes: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
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
    /// Builds the pooled client. Redirects are never followed: every request carries an
    /// `Authorization` or `X-Auth-Token`, and following a `Location` would send them (or a signed
    /// request) to a host the endpoint allow-list never approved. A 3xx answer is
    /// [`DcsError::Redirected`] instead.
    pub fn new(settings: HttpSettings) -> Result<Self, DcsError> {
        // reqwest is built without a default TLS provider so that the binary carries only the
        // ring-based rustls that kube uses; install it once for the process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let inner = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("dcs-task-operator/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
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

/// The upstream account a request is charged to: the access key of AK/SK credentials (throttling
/// and the 5-failure lockout are per AK, whatever the secret key), or the IAM token itself.
///
/// It is an in-process map key only: `Debug` shows nothing of it, and it is never logged.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AccountKey(String);

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountKey(<redacted>)")
    }
}

/// Asked before every HTTP request a [`DcsClient`] sends: each page and each retry.
///
/// This is how a process budgets its requests to DCS (a gateway throttles requests, not the
/// listings they make up) without this layer knowing any policy: the operator plugs in global and
/// per-account rate limits, the `query` command nothing.
pub trait RequestGate: Send + Sync {
    /// Resolves when one more request charged to `account` may be sent.
    fn admit<'a>(&'a self, account: &'a AccountKey) -> BoxFuture<'a, ()>;
}

/// The optional gate of a client, shown by `Debug` only as present or not.
#[derive(Clone)]
pub(super) struct Gate(pub(super) Arc<dyn RequestGate>);

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestGate")
    }
}

/// A client for one endpoint, project and credential.
#[derive(Clone, Debug)]
pub struct DcsClient {
    http: HttpClient,
    endpoint: Endpoint,
    project_id: String,
    credentials: Credentials,
    gate: Option<Gate>,
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
            gate: None,
        }
    }

    /// This client, waiting on `gate` before each HTTP request it sends (retries included).
    pub fn with_gate(mut self, gate: Arc<dyn RequestGate>) -> Self {
        self.gate = Some(Gate(gate));
        self
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The account this client's requests are charged to (see [`AccountKey`]). Temporary keys
    /// count under their AK; a token is its own account.
    pub fn account(&self) -> AccountKey {
        account_of(&self.credentials)
    }

    /// How this client's credential may be named to users (see [`Credentials::public_label`]).
    pub fn credential_label(&self) -> String {
        self.credentials.public_label()
    }

    /// `ListCenterTask` for `request`, paging through the window when asked.
    ///
    /// Paging reads `task_count` from each page and stops when the window is covered, so
    /// 2,500 tasks at limit 1000 take exactly 3 calls (no trailing empty-page call).
    ///
    /// A listing holds at most [`MAX_LISTING_TASKS`] tasks and [`MAX_LISTING_BYTES`] of bodies
    /// (one page is always read, within its own body limit). Reaching either stops paging with
    /// what was gathered and `complete = false`, as `max_pages` does, rather than an error: the
    /// tasks kept (the first the API sent) are real and still serve every subscriber, and the
    /// status says paging stopped early.
    pub async fn list_tasks(
        &self,
        request: &PageRequest,
        paging: Paging,
    ) -> Result<TaskListing, DcsError> {
        let max_pages = match paging {
            Paging::Single => 1,
            Paging::All { max_pages } => max_pages.max(1),
        };
        let max_bytes = MAX_LISTING_BYTES.max(self.http.settings.max_body_bytes);
        let mut listing = TaskListing::default();
        let mut bytes = 0usize;
        let mut page = request.clone();
        loop {
            let (mut response, body_bytes) = self.fetch_page(&page).await?;
            if listing.pages > 0 && bytes.saturating_add(body_bytes) > max_bytes {
                debug!(endpoint = %self.endpoint, bytes, body_bytes, max_bytes, "listing stopped at its byte cap; last page dropped");
                listing.complete = false;
                break;
            }
            listing.fetched_at = Some(Utc::now());
            bytes = bytes.saturating_add(body_bytes);
            let received = u32::try_from(response.tasks.len()).unwrap_or(u32::MAX);
            listing.pages += 1;
            listing.task_count = response.task_count;
            let room = MAX_LISTING_TASKS.saturating_sub(listing.tasks.len());
            let cut = response.tasks.len() > room;
            response.tasks.truncate(room);
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
            if !cut && (!more || received == 0) {
                listing.complete = true;
                break;
            }
            if cut || listing.tasks.len() >= MAX_LISTING_TASKS || bytes >= max_bytes {
                debug!(endpoint = %self.endpoint, tasks = listing.tasks.len(), bytes, "listing stopped at its task or byte cap");
                listing.complete = false;
                break;
            }
            if listing.pages >= max_pages {
                listing.complete = false;
                break;
            }
            page.offset = next_offset;
        }
        // Pages were appended one by one; keep no spare capacity of up to as many again.
        listing.tasks.shrink_to_fit();
        Ok(listing)
    }

    /// One `GET /v2/{project_id}/tasks`, retried on throttling and transient failures.
    pub async fn list_page(&self, page: &PageRequest) -> Result<ListCenterTaskResponse, DcsError> {
        self.fetch_page(page).await.map(|(response, _)| response)
    }

    /// [`Self::list_page`], with the size of the body it decoded.
    async fn fetch_page(
        &self,
        page: &PageRequest,
    ) -> Result<(ListCenterTaskResponse, usize), DcsError> {
        let path = format!("/v2/{}/tasks", self.project_id);
        let query = page.query_pairs();
        let body = self.signed_get().get(&path, &query).await?;
        let response = decode_task_page(&body).map_err(|error| DcsError::Decode {
            endpoint: self.endpoint.to_string(),
            expected: "the task list",
            detail: error.to_string(),
        })?;
        Ok((response, body.len()))
    }

    pub(super) fn signed_get(&self) -> SignedGet<'_> {
        SignedGet {
            http: &self.http,
            endpoint: &self.endpoint,
            credentials: &self.credentials,
            gate: self.gate.as_ref(),
            project_id: Some(&self.project_id),
            operation: "DCS ListCenterTask",
            iam_action: super::error::IamAction::ListTasks,
        }
    }

    /// The authentication headers for one request, signed at `now`.
    #[cfg(test)]
    fn auth_headers(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        now: DateTime<Utc>,
    ) -> HeaderMap {
        self.signed_get().auth_headers(method, path, query, now)
    }
}

/// The account `credentials` are charged to (see [`AccountKey`]).
pub(super) fn account_of(credentials: &Credentials) -> AccountKey {
    match credentials {
        Credentials::AkSk { access_key, .. } => AccountKey(format!("ak:{access_key}")),
        // The token's keyed fingerprint, not the token: map keys are not secrets.
        Credentials::Token(_) => AccountKey(format!("token:{}", credentials.fingerprint())),
    }
}

/// One signed `GET` against an allowed endpoint, as every client of this module sends it:
/// admitted by the gate, signed at send time, never redirected, body capped, retried on
/// throttling and transient failures. DCS and IAM calls differ only in what they decode.
pub(super) struct SignedGet<'a> {
    pub(super) http: &'a HttpClient,
    pub(super) endpoint: &'a Endpoint,
    pub(super) credentials: &'a Credentials,
    pub(super) gate: Option<&'a Gate>,
    /// Sent and signed as `X-Project-Id` (DCS calls); IAM calls carry none.
    pub(super) project_id: Option<&'a str>,
    /// For logs: which API operation this is.
    pub(super) operation: &'static str,
    /// The IAM action the call needs: a 403's advice names it.
    pub(super) iam_action: super::error::IamAction,
}

impl SignedGet<'_> {
    /// The successful body of `GET {endpoint}{path}?{query}`, after retries.
    pub(super) async fn get(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Vec<u8>, DcsError> {
        let retry = self.http.settings.retry;
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(retry.min_delay)
            .with_max_delay(retry.max_delay)
            .with_max_times(retry.max_retries);
        (|| self.attempt(path, query))
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
                debug!(endpoint = %self.endpoint, operation = self.operation, ?delay, %error, "retrying call");
            })
            .await
    }

    async fn attempt(&self, path: &str, query: &[(String, String)]) -> Result<Vec<u8>, DcsError> {
        // Every attempt (each page, each retry) is one request against the budgets; it is
        // admitted before it is signed, so a long wait never makes `X-Sdk-Date` stale.
        if let Some(Gate(gate)) = self.gate {
            gate.admit(&account_of(self.credentials)).await;
        }
        let headers = self.auth_headers("GET", path, query, Utc::now());
        let mut url = self.endpoint.url().clone();
        url.set_path(path);
        let endpoint = self.endpoint.to_string();
        let operation = self.operation;
        let mut response = self
            .http
            .inner
            .get(url)
            .query(query)
            .headers(headers)
            .send()
            .await
            .map_err(|error| self.transport_error(error))?;
        let status = response.status();
        let request_id = header_text(response.headers(), "x-request-id")
            .map(|id| truncate_bytes(&id, MAX_REQUEST_ID_BYTES).into_owned());
        let retry_after = header_text(response.headers(), "retry-after")
            .and_then(|secs| secs.trim().parse().ok())
            .map(Duration::from_secs);
        if status.is_redirection() {
            let location_host = header_text(response.headers(), "location")
                .and_then(|location| location_host(self.endpoint.url(), &location));
            debug!(%endpoint, operation, status = status.as_u16(), ?location_host, "answered a redirect; not followed");
            return Err(DcsError::Redirected {
                endpoint,
                status: status.as_u16(),
                location_host,
            });
        }
        let limit = self.http.settings.max_body_bytes;
        let body = read_body(&mut response, limit).await;
        if !status.is_success() {
            // The status alone classifies the error (401 is never retried, 429 is), so an error
            // body that is too large or breaks off still yields the API error, without details.
            let body = body.unwrap_or_default();
            debug!(%endpoint, operation, status = status.as_u16(), bytes = body.len(), "call failed");
            let parsed = ErrorBody::from_json(&body).unwrap_or_default();
            return Err(DcsError::Api {
                endpoint,
                error: ApiError {
                    http_status: status.as_u16(),
                    error_code: parsed.error_code,
                    error_msg: parsed.error_msg,
                    request_id,
                    retry_after,
                    iam_action: self.iam_action,
                },
            });
        }
        match body {
            Ok(body) => {
                debug!(%endpoint, operation, status = status.as_u16(), bytes = body.len(), "call answered");
                Ok(body)
            }
            Err(BodyError::TooLarge) => Err(DcsError::BodyTooLarge { endpoint, limit }),
            Err(BodyError::Transport(error)) => Err(self.transport_error(error)),
        }
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
    pub(super) fn auth_headers(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        now: DateTime<Utc>,
    ) -> HeaderMap {
        let mut signed: Vec<(String, String)> = vec![
            ("content-type".into(), "application/json".into()),
            ("host".into(), self.endpoint.authority()),
        ];
        if let Some(project_id) = self.project_id {
            signed.push(("x-project-id".into(), project_id.to_string()));
        }
        let mut headers = HeaderMap::new();
        match self.credentials {
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

/// Why a body was not read whole.
#[derive(Debug)]
enum BodyError {
    /// More than the limit was announced or sent; reading stopped there.
    TooLarge,
    Transport(reqwest::Error),
}

/// Reads the response body, never holding more than `limit` bytes: a `Content-Length` above the
/// limit fails before reading, and a streamed body fails as soon as it passes the limit.
async fn read_body(response: &mut reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    let announced = response.content_length();
    if announced.is_some_and(|length| length > limit_u64) {
        return Err(BodyError::TooLarge);
    }
    // Trust the announced length for the first allocation only up to a modest size.
    let initial = announced
        .and_then(|length| usize::try_from(length).ok())
        .unwrap_or(0)
        .min(64 * 1024);
    let mut body = Vec::with_capacity(initial);
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        match body.len().checked_add(chunk.len()) {
            Some(total) if total <= limit => body.extend_from_slice(&chunk),
            _ => return Err(BodyError::TooLarge),
        }
    }
    Ok(body)
}

/// The host a `Location` header points at (resolved against the request's endpoint when it is
/// relative), bounded in length. Path, query and user info are never kept: they may hold tokens.
fn location_host(base: &reqwest::Url, location: &str) -> Option<String> {
    let target = base.join(location.trim()).ok()?;
    let host = target.host_str()?;
    Some(truncate_bytes(host, MAX_LOCATION_HOST_BYTES).into_owned())
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
    use crate::endpoint::EndpointPolicy;
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
            secret_key: crate::credentials::SecretString::new("SK"),
            security_token: Some(crate::credentials::SecretString::new("STS")),
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
        let c = client(Credentials::Token(crate::credentials::SecretString::new(
            "TOKEN",
        )));
        let headers = c.auth_headers("GET", "/v2/p/tasks", &[], Utc::now());
        assert_eq!(headers["x-auth-token"], "TOKEN");
        assert!(headers.get("authorization").is_none());
    }

    /// Serves `router` on 127.0.0.1:0 until the test's runtime ends.
    async fn serve_router(router: axum::Router) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        address
    }

    /// A client for a loopback server: one attempt, a short timeout, the given body limit.
    fn loopback_client(address: std::net::SocketAddr, max_body_bytes: usize) -> DcsClient {
        let url = format!("http://{address}");
        let endpoint = EndpointPolicy::new(vec![url.parse().unwrap()])
            .resolve("loopback", Some(&url))
            .unwrap();
        let settings = HttpSettings {
            timeout: Duration::from_secs(10),
            retry: RetryPolicy {
                max_retries: 0,
                ..RetryPolicy::default()
            },
            max_body_bytes,
        };
        DcsClient::new(
            HttpClient::new(settings).unwrap(),
            endpoint,
            "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
            Credentials::ak_sk("LOOPBACKAK", "loopback-sk"),
        )
    }

    fn respond(
        status: u16,
        headers: &[(&str, String)],
        body: axum::body::Body,
    ) -> axum::response::Response {
        let mut response = axum::response::Response::builder().status(status);
        for (name, value) in headers {
            response = response.header(*name, value.as_str());
        }
        response.body(body).unwrap()
    }

    /// A 307 to another loopback port: the client stops, names only the target's host, and the
    /// target never sees a request (so never sees the signed headers).
    #[tokio::test]
    async fn redirects_are_refused_and_never_followed() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let reached = Arc::new(AtomicUsize::new(0));
        let counter = reached.clone();
        let target = serve_router(axum::Router::new().fallback(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                r#"{"task_count":0,"tasks":[]}"#
            }
        }))
        .await;
        let location = format!(
            "http://127.0.0.1:{}/steal?token=SECRET-QUERY",
            target.port()
        );
        let redirecting = serve_router(axum::Router::new().fallback(move || {
            let location = location.clone();
            async move { respond(307, &[("location", location)], axum::body::Body::empty()) }
        }))
        .await;

        let error = loopback_client(redirecting, DEFAULT_MAX_BODY_BYTES)
            .list_tasks(&PageRequest::default(), Paging::Single)
            .await
            .unwrap_err();
        match &error {
            DcsError::Redirected {
                status,
                location_host,
                ..
            } => {
                assert_eq!(*status, 307);
                assert_eq!(location_host.as_deref(), Some("127.0.0.1"));
            }
            other => panic!("expected a refused redirect, got {other:?}"),
        }
        assert!(!error.is_retryable());
        let message = error.to_string();
        assert!(message.contains("host 127.0.0.1"), "{message}");
        assert!(message.contains("never follows redirects"), "{message}");
        assert!(
            !message.contains("SECRET-QUERY") && !message.contains("steal"),
            "{message}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            reached.load(Ordering::SeqCst),
            0,
            "the redirect target was contacted"
        );
    }

    #[test]
    fn location_host_keeps_only_the_host() {
        let base: reqwest::Url = "https://dcs.cn-north-4.myhuaweicloud.com".parse().unwrap();
        let host = |location: &str| location_host(&base, location);
        assert_eq!(
            host("https://user:pw@evil.example:8443/p?sig=x#f").as_deref(),
            Some("evil.example")
        );
        assert_eq!(
            host("/v2/other?x=1").as_deref(),
            Some("dcs.cn-north-4.myhuaweicloud.com")
        );
        assert_eq!(host("http://[::1]:9/").as_deref(), Some("[::1]"));
        assert_eq!(host("http://"), None);
        let long = format!("http://{}.example/", "a".repeat(1000));
        assert!(host(&long).is_none_or(|h| h.len() <= MAX_LOCATION_HOST_BYTES));
    }

    /// A `Content-Length` above the limit fails before the body is read; a body of exactly the
    /// limit is fine.
    #[tokio::test]
    async fn announced_bodies_above_the_limit_are_refused() {
        let page = r#"{"task_count":1,"tasks":[{"id":"a"}]}"#;
        let limit = 1024;
        let exact = format!("{page}{}", " ".repeat(limit - page.len()));
        let over = format!("{exact} ");
        let server = serve_router(
            axum::Router::new()
                .route(
                    "/v2/{project}/tasks",
                    axum::routing::get(move || async move { exact }),
                )
                .route(
                    "/over/{project}/tasks",
                    axum::routing::get(move || async move { over }),
                ),
        )
        .await;
        let client = loopback_client(server, limit);
        let listing = client
            .list_tasks(&PageRequest::default(), Paging::Single)
            .await
            .unwrap();
        assert_eq!(listing.tasks.len(), 1);

        let mut url = client.endpoint.url().clone();
        url.set_path("/over/p/tasks");
        let mut response = client.http.inner.get(url).send().await.unwrap();
        assert_eq!(response.content_length(), Some(limit as u64 + 1));
        assert!(matches!(
            read_body(&mut response, limit).await,
            Err(BodyError::TooLarge)
        ));
    }

    /// An endless chunked body (no `Content-Length`) fails as soon as it passes the limit,
    /// instead of being buffered until the timeout or the memory runs out.
    #[tokio::test]
    async fn endless_streamed_bodies_stop_at_the_limit() {
        let server = serve_router(axum::Router::new().fallback(|| async {
            let chunks = futures::stream::repeat_with(|| {
                Ok::<_, std::io::Error>(axum::body::Bytes::from_static(&[b' '; 8192]))
            });
            respond(200, &[], axum::body::Body::from_stream(chunks))
        }))
        .await;
        let started = std::time::Instant::now();
        let error = loopback_client(server, 256 * 1024)
            .list_tasks(&PageRequest::default(), Paging::Single)
            .await
            .unwrap_err();
        assert!(
            matches!(error, DcsError::BodyTooLarge { limit: 262_144, .. }),
            "{error:?}"
        );
        assert!(!error.is_retryable());
        assert!(
            error.to_string().contains("larger than 262144 bytes"),
            "{error}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    /// Error answers keep their status classification whatever the body: a 2 MiB `error_msg` is
    /// cut to the bound, and an error body above the limit is dropped, not the error.
    #[tokio::test]
    async fn error_answers_are_bounded_but_keep_their_status() {
        let huge_msg = "任".repeat(700 * 1024);
        let throttled =
            serde_json::json!({"error_code": "APIG.0308", "error_msg": huge_msg}).to_string();
        let refused = format!(
            r#"{{"error_code":"APIG.0301","error_msg":"{}"}}"#,
            "x".repeat(8192)
        );
        let server = serve_router(axum::Router::new().route(
            "/v2/{project}/tasks",
            axum::routing::get(
                move |axum::extract::Path(project): axum::extract::Path<String>| {
                    let (throttled, refused) = (throttled.clone(), refused.clone());
                    async move {
                        if project == "throttled" {
                            respond(429, &[("x-request-id", "r".repeat(4096))], throttled.into())
                        } else {
                            respond(401, &[], refused.into())
                        }
                    }
                },
            ),
        ))
        .await;

        let mut client = loopback_client(server, 4 * 1024 * 1024);
        client.project_id = "throttled".into();
        let error = client
            .list_tasks(&PageRequest::default(), Paging::Single)
            .await
            .unwrap_err();
        assert!(error.is_retryable());
        let api = error.api_error().unwrap();
        assert_eq!(api.error_code.as_deref(), Some("APIG.0308"));
        let msg = api.error_msg.as_deref().unwrap();
        assert!(msg.len() <= crate::MAX_ERROR_MSG_BYTES, "{}", msg.len());
        assert!(msg.starts_with("任任"));
        assert!(api.request_id.as_ref().unwrap().len() <= MAX_REQUEST_ID_BYTES);
        assert!(error.to_string().len() < 2048);

        // The 401 body (8 KiB) is over this client's 1 KiB limit: no details, still an auth
        // failure (so never retried into an AK lock).
        let mut client = loopback_client(server, 1024);
        client.project_id = "refused".into();
        let error = client
            .list_tasks(&PageRequest::default(), Paging::Single)
            .await
            .unwrap_err();
        assert!(error.is_auth_failure(), "{error:?}");
        assert_eq!(error.api_error().unwrap().http_status, 401);
        assert_eq!(error.api_error().unwrap().error_msg, None);
    }

    /// Serves a window of tasks `t0`, `t1`, ... by `offset`/`limit`: as many as the project id
    /// (the path segment) says, each page announcing that total as `task_count`.
    async fn serve_counted_tasks() -> std::net::SocketAddr {
        use std::collections::HashMap;
        serve_router(axum::Router::new().route(
            "/v2/{project}/tasks",
            axum::routing::get(
                |axum::extract::Path(project): axum::extract::Path<String>,
                 axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>| async move {
                    let number = |key: &str| query.get(key).and_then(|v| v.parse::<usize>().ok());
                    let total: usize = project.parse().unwrap();
                    let offset = number("offset").unwrap_or(0);
                    let limit = number("limit").unwrap_or(10);
                    let tasks: Vec<String> = (offset..total.min(offset + limit))
                        .map(|i| format!(r#"{{"id":"t{i}","status":"SUCCESS"}}"#))
                        .collect();
                    format!(r#"{{"task_count":{total},"tasks":[{}]}}"#, tasks.join(","))
                },
            ),
        ))
        .await
    }

    /// A listing keeps at most `MAX_LISTING_TASKS` tasks: a window of exactly that many is
    /// complete; one task more stops paging there (no 21st call), and a page that crosses the
    /// cap is cut; both say they are incomplete and keep the first tasks the API sent.
    #[tokio::test]
    async fn listings_stop_at_the_task_cap_and_say_so() {
        let server = serve_counted_tasks().await;
        let list = |total: usize, limit: u32| {
            let mut client = loopback_client(server, DEFAULT_MAX_BODY_BYTES);
            client.project_id = total.to_string();
            async move {
                let page = PageRequest {
                    limit: Some(limit),
                    ..PageRequest::default()
                };
                client
                    .list_tasks(&page, Paging::All { max_pages: 100 })
                    .await
                    .unwrap()
            }
        };
        let ids_in_order = |listing: &TaskListing| {
            listing
                .tasks
                .iter()
                .enumerate()
                .all(|(i, task)| task.id.as_deref() == Some(format!("t{i}").as_str()))
        };

        let exact = list(MAX_LISTING_TASKS, 1000).await;
        assert_eq!(exact.tasks.len(), MAX_LISTING_TASKS);
        assert_eq!((exact.pages, exact.complete), (20, true));

        let over = list(MAX_LISTING_TASKS + 1, 1000).await;
        assert_eq!(over.tasks.len(), MAX_LISTING_TASKS);
        assert_eq!((over.pages, over.complete), (20, false));
        assert!(ids_in_order(&over));

        // Pages of 3000: the 7th page brings 18,000 + 3000, of which 2000 are kept.
        let crossing = list(25_000, 3000).await;
        assert_eq!(crossing.tasks.len(), MAX_LISTING_TASKS);
        assert_eq!((crossing.pages, crossing.complete), (7, false));
        assert!(ids_in_order(&crossing));
        assert_eq!(crossing.task_count, Some(25_000));
    }

    /// A listing reads at most `MAX_LISTING_BYTES` of bodies over its pages (each page within
    /// the 32 MiB page limit): pages summing to exactly the cap give a complete listing; one byte
    /// more and the page that passes the cap is dropped, the listing incomplete; a listing that
    /// reaches the cap exactly with pages still to come stops without asking for them.
    #[tokio::test]
    async fn listings_stop_at_the_byte_cap_and_say_so() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let half = MAX_LISTING_BYTES / 2;
        let sizes = move |case: &str| -> [usize; 3] {
            match case {
                "exact" => [half, half - 100, 100],
                "over" => [half, half - 100, 101],
                _ => [half, half, 100],
            }
        };
        let server = serve_router(axum::Router::new().route(
            "/v2/{project}/tasks",
            axum::routing::get(
                move |axum::extract::Path(project): axum::extract::Path<String>,
                      axum::extract::Query(query): axum::extract::Query<
                    std::collections::HashMap<String, String>,
                >| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let offset: usize = query["offset"].parse().unwrap();
                        let page = format!(r#"{{"task_count":3,"tasks":[{{"id":"p{offset}"}}]}}"#);
                        let size = sizes(&project)[offset];
                        format!("{page}{}", " ".repeat(size - page.len()))
                    }
                },
            ),
        ))
        .await;
        let list = |case: &str| {
            let mut client = loopback_client(server, DEFAULT_MAX_BODY_BYTES);
            client.project_id = case.to_string();
            async move {
                let page = PageRequest {
                    limit: Some(1),
                    ..PageRequest::default()
                };
                client
                    .list_tasks(&page, Paging::All { max_pages: 100 })
                    .await
                    .unwrap()
            }
        };

        let exact = list("exact").await;
        assert_eq!(
            (exact.tasks.len(), exact.pages, exact.complete),
            (3, 3, true)
        );

        let over = list("over").await;
        assert_eq!((over.tasks.len(), over.pages, over.complete), (2, 2, false));
        assert_eq!(over.tasks[1].id.as_deref(), Some("p1"));

        requests.store(0, Ordering::SeqCst);
        let full = list("full").await;
        assert_eq!((full.tasks.len(), full.pages, full.complete), (2, 2, false));
        assert_eq!(
            requests.load(Ordering::SeqCst),
            2,
            "a page past the cap was asked for"
        );
    }
}
