//! Authentication of task-list requests the way the API gateway does it: an SDK-HMAC-SHA256
//! signature (AK/SK, optionally a temporary credential with `X-Security-Token`) or an IAM
//! `X-Auth-Token`.
//!
//! Verification goes through the same `dcs_cloud::sign` code the client signs with, but the
//! inputs are rebuilt from the request as received (the headers named in `SignedHeaders`, the
//! path, the decoded query, the body), so a client that signs something other than what it
//! sends is caught. Refusal messages say what was wrong and never contain a secret key or
//! token.

use std::collections::HashMap;

use axum::http::HeaderMap;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};

use dcs_cloud::sign::{self, Authorization, SDK_DATE_FORMAT, SDK_DATE_HEADER, SignableRequest};

use super::scenario::Credential;

const SECURITY_TOKEN_HEADER: &str = "x-security-token";
const AUTH_TOKEN_HEADER: &str = "x-auth-token";
const PROJECT_ID_HEADER: &str = "x-project-id";

/// Who may call the simulated API.
#[derive(Debug)]
pub(super) struct AuthPolicy {
    credentials: HashMap<String, Credential>,
    tokens: Vec<String>,
    max_clock_skew: TimeDelta,
}

/// A request as the verifier needs it.
#[derive(Debug, Clone, Copy)]
pub(super) struct IncomingRequest<'a> {
    pub method: &'a str,
    /// The path as received, before any decoding.
    pub path: &'a str,
    /// The authority of the request line, used for a signed `host` when no Host header came.
    pub authority: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub query: &'a [(String, String)],
    pub body: &'a [u8],
    /// The project of a task-center request; `None` for IAM calls, which name none.
    pub project_id: Option<&'a str>,
}

/// Why a request was refused; the text is shown to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    /// 401: credentials missing, unknown, expired or not matching.
    Unauthorized(String),
    /// 403: valid credentials that may not use this project.
    Forbidden(String),
}

impl AuthPolicy {
    pub fn new(
        credentials: &[Credential],
        tokens: &[String],
        max_clock_skew: std::time::Duration,
    ) -> Self {
        Self {
            credentials: credentials
                .iter()
                .map(|credential| (credential.access_key.clone(), credential.clone()))
                .collect(),
            tokens: tokens.to_vec(),
            max_clock_skew: TimeDelta::from_std(max_clock_skew).unwrap_or(TimeDelta::MAX),
        }
    }

    /// Accepts or refuses `request`; `real_now` is the wall clock (never the virtual one:
    /// signatures are made with real clocks).
    pub fn check(
        &self,
        request: &IncomingRequest<'_>,
        real_now: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        if let Some(value) = request.headers.get(axum::http::header::AUTHORIZATION) {
            let value = value
                .to_str()
                .map_err(|_| unauthorized("the Authorization header is not plain ASCII text"))?;
            self.check_signature(request, value, real_now)?;
        } else if let Some(token) = request.headers.get(AUTH_TOKEN_HEADER) {
            let known = token
                .to_str()
                .is_ok_and(|token| self.tokens.iter().any(|known| known == token));
            if !known {
                return Err(unauthorized(
                    "the X-Auth-Token is not valid (not a token this simulator accepts)",
                ));
            }
        } else {
            return Err(unauthorized(
                "the request has neither an Authorization header (AK/SK signature) nor an \
                 X-Auth-Token header",
            ));
        }
        check_project_header(request)
    }

    fn check_signature(
        &self,
        request: &IncomingRequest<'_>,
        header: &str,
        real_now: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        let claimed =
            Authorization::parse(header).map_err(|error| unauthorized(&error.to_string()))?;
        let credential = self
            .credentials
            .get(&claimed.access_key)
            .ok_or_else(|| unauthorized(&format!("unknown access key {}", claimed.access_key)))?;
        if !claimed
            .signed_headers
            .iter()
            .any(|name| name == SDK_DATE_HEADER)
        {
            return Err(unauthorized(
                "x-sdk-date is not among the SignedHeaders: the signing time must be signed",
            ));
        }
        let mut signed = Vec::with_capacity(claimed.signed_headers.len());
        for name in &claimed.signed_headers {
            let value = header_text(request, name)?.ok_or_else(|| {
                unauthorized(&format!(
                    "the signed header {name} is missing from the request"
                ))
            })?;
            signed.push((name.clone(), value.to_string()));
        }
        let sdk_date = lookup(&signed, SDK_DATE_HEADER).unwrap_or_default();
        let signed_at = NaiveDateTime::parse_from_str(sdk_date, SDK_DATE_FORMAT)
            .map_err(|_| {
                unauthorized(&format!(
                    "X-Sdk-Date {sdk_date} is not in the format YYYYMMDDTHHMMSSZ"
                ))
            })?
            .and_utc();
        // Cannot overflow: any two instants of chrono's calendar (which bounds what
        // `parse_from_str` accepts) are well inside `TimeDelta`'s range apart.
        if real_now.signed_duration_since(signed_at).abs() > self.max_clock_skew {
            return Err(unauthorized(&format!(
                "X-Sdk-Date {sdk_date} has expired or is in the future: it is more than {} away \
                 from the server clock {}",
                dcs_common::duration::format(self.max_clock_skew.to_std().unwrap_or_default()),
                real_now.format(SDK_DATE_FORMAT)
            )));
        }
        let signable = SignableRequest {
            method: request.method,
            path: request.path,
            query: request.query,
            headers: &signed,
            body: request.body,
        };
        if !sign::verify(&signable, &claimed, &credential.secret_key) {
            // Header names only: the canonical request would carry a security token's value.
            tracing::debug!(
                access_key = %claimed.access_key,
                signed_headers = %claimed.signed_headers.join(";"),
                "simulator refused a signature"
            );
            return Err(unauthorized(&format!(
                "signature mismatch: the signature does not match the one computed over the \
                 request with the secret key of access key {}",
                claimed.access_key
            )));
        }
        if let Some(expected) = &credential.security_token {
            match lookup(&signed, SECURITY_TOKEN_HEADER) {
                None => {
                    return Err(unauthorized(&format!(
                        "access key {} is a temporary credential: the request needs a signed \
                         X-Security-Token header",
                        claimed.access_key
                    )));
                }
                Some(token) if token != expected => {
                    return Err(unauthorized(&format!(
                        "the X-Security-Token does not belong to access key {}",
                        claimed.access_key
                    )));
                }
                Some(_) => {}
            }
        }
        if let (Some(projects), Some(requested)) = (&credential.projects, request.project_id)
            && !projects.iter().any(|project| project == requested)
        {
            return Err(Refusal::Forbidden(format!(
                "access key {} may not use project {requested}",
                claimed.access_key
            )));
        }
        Ok(())
    }
}

/// `X-Project-Id`, when sent, must name the project in the path.
fn check_project_header(request: &IncomingRequest<'_>) -> Result<(), Refusal> {
    let Some(project_id) = request.project_id else {
        return Ok(());
    };
    match request.headers.get(PROJECT_ID_HEADER) {
        None => Ok(()),
        Some(value) if value.as_bytes() == project_id.as_bytes() => Ok(()),
        Some(value) => Err(Refusal::Forbidden(format!(
            "the X-Project-Id header ({}) does not match the project in the path ({project_id})",
            String::from_utf8_lossy(value.as_bytes()),
        ))),
    }
}

/// The text of a header; `host` falls back to the request line's authority.
fn header_text<'a>(request: &IncomingRequest<'a>, name: &str) -> Result<Option<&'a str>, Refusal> {
    match request.headers.get(name) {
        Some(value) => value.to_str().map(Some).map_err(|_| {
            unauthorized(&format!("the signed header {name} is not plain ASCII text"))
        }),
        None if name == "host" => Ok(request.authority),
        None => Ok(None),
    }
}

fn lookup<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(candidate, _)| candidate == name)
        .map(|(_, value)| value.trim())
}

fn unauthorized(reason: &str) -> Refusal {
    Refusal::Unauthorized(reason.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const PROJECT: &str = "p1";

    fn credential(security_token: Option<&str>, projects: Option<Vec<&str>>) -> Credential {
        Credential {
            access_key: "AK".into(),
            secret_key: "top-secret-sk".into(),
            security_token: security_token.map(str::to_string),
            projects: projects.map(|list| list.into_iter().map(str::to_string).collect()),
        }
    }

    fn policy(credential: Credential) -> AuthPolicy {
        AuthPolicy::new(
            &[credential],
            &["iam-token".to_string()],
            std::time::Duration::from_secs(900),
        )
    }

    /// Signs a GET of `/v2/{project}/tasks?limit=5` the way a client does, with `extra`
    /// headers, and returns the header map it would send.
    fn signed(
        secret: &str,
        date: DateTime<Utc>,
        project: &str,
        extra: &[(&str, &str)],
    ) -> HeaderMap {
        let mut pairs = vec![
            ("host".to_string(), "127.0.0.1:8080".to_string()),
            (
                "x-sdk-date".to_string(),
                date.format(SDK_DATE_FORMAT).to_string(),
            ),
        ];
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let query = vec![("limit".to_string(), "5".to_string())];
        let path = format!("/v2/{project}/tasks");
        let auth = sign::sign(
            &SignableRequest {
                method: "GET",
                path: &path,
                query: &query,
                headers: &pairs,
                body: b"",
            },
            "AK",
            secret,
        );
        let mut headers = HeaderMap::new();
        for (name, value) in &pairs {
            headers.insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers.insert(
            "authorization",
            HeaderValue::from_str(&auth.header_value()).unwrap(),
        );
        headers
    }

    fn check(
        policy: &AuthPolicy,
        headers: &HeaderMap,
        project: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        let query = vec![("limit".to_string(), "5".to_string())];
        let path = format!("/v2/{project}/tasks");
        policy.check(
            &IncomingRequest {
                method: "GET",
                path: &path,
                authority: None,
                headers,
                query: &query,
                body: b"",
                project_id: Some(project),
            },
            now,
        )
    }

    fn reason(result: Result<(), Refusal>) -> String {
        match result {
            Err(Refusal::Unauthorized(reason)) => reason,
            other => panic!("expected 401, got {other:?}"),
        }
    }

    #[test]
    fn a_correct_signature_passes() {
        let now = Utc::now();
        let policy = policy(credential(None, None));
        assert_eq!(
            check(
                &policy,
                &signed("top-secret-sk", now, PROJECT, &[]),
                PROJECT,
                now
            ),
            Ok(())
        );
        let with_project = signed("top-secret-sk", now, PROJECT, &[("x-project-id", PROJECT)]);
        assert_eq!(check(&policy, &with_project, PROJECT, now), Ok(()));
    }

    #[test]
    fn wrong_secret_is_a_mismatch_that_does_not_echo_the_secret() {
        let now = Utc::now();
        let policy = policy(credential(None, None));
        let message = reason(check(
            &policy,
            &signed("wrong-sk", now, PROJECT, &[]),
            PROJECT,
            now,
        ));
        assert!(message.contains("signature mismatch"), "{message}");
        assert!(!message.contains("top-secret-sk") && !message.contains("wrong-sk"));
    }

    #[test]
    fn the_clock_skew_is_bounded_both_ways() {
        let now = Utc::now();
        let policy = policy(credential(None, None));
        for offset in [TimeDelta::minutes(-16), TimeDelta::minutes(16)] {
            let headers = signed("top-secret-sk", now + offset, PROJECT, &[]);
            assert!(reason(check(&policy, &headers, PROJECT, now)).contains("expired"));
        }
        let headers = signed("top-secret-sk", now - TimeDelta::minutes(14), PROJECT, &[]);
        assert_eq!(check(&policy, &headers, PROJECT, now), Ok(()));
    }

    #[test]
    fn dates_at_the_ends_of_the_calendar_are_401_not_a_panic() {
        let now = Utc::now();
        let policy = policy(credential(None, None));
        // The earliest and latest dates the four-digit X-Sdk-Date can hold.
        let year_0: DateTime<Utc> = "0000-01-01T00:00:00Z".parse().unwrap();
        let year_9999: DateTime<Utc> = "9999-12-31T23:59:59Z".parse().unwrap();
        for date in [year_0, year_9999] {
            let headers = signed("top-secret-sk", date, PROJECT, &[]);
            assert!(reason(check(&policy, &headers, PROJECT, now)).contains("expired"));
        }
        // Server clocks at the ends of chrono's calendar.
        for server_now in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            let headers = signed("top-secret-sk", year_9999, PROJECT, &[]);
            assert!(reason(check(&policy, &headers, PROJECT, server_now)).contains("expired"));
        }
        // Beyond four digits the date does not parse back, whatever its sign.
        for date in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            let headers = signed("top-secret-sk", date, PROJECT, &[]);
            assert!(reason(check(&policy, &headers, PROJECT, now)).contains("X-Sdk-Date"));
        }
        let unlimited = AuthPolicy::new(&[credential(None, None)], &[], std::time::Duration::MAX);
        let headers = signed("top-secret-sk", year_0, PROJECT, &[]);
        assert_eq!(
            check(&unlimited, &headers, PROJECT, DateTime::<Utc>::MAX_UTC),
            Ok(())
        );
        for date in [
            "+99999999991231T235959Z",
            "-2621441231T235959Z",
            "20240230T000000Z",
        ] {
            let mut headers = signed("top-secret-sk", now, PROJECT, &[]);
            headers.insert("x-sdk-date", HeaderValue::from_str(date).unwrap());
            assert!(
                reason(check(&policy, &headers, PROJECT, now)).contains("X-Sdk-Date"),
                "{date}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn no_authorization_or_date_header_panics(
            authorization in "SDK-HMAC-SHA256 [ -~]{0,80}|[ -~]{0,40}",
            date in "[+-]?[0-9]{0,12}T?[0-9]{0,8}Z?|[ -~]{0,20}",
        ) {
            let policy = policy(credential(None, None));
            let mut headers = signed("top-secret-sk", Utc::now(), PROJECT, &[]);
            if let Ok(value) = HeaderValue::from_str(&authorization) {
                headers.insert("authorization", value);
            }
            if let Ok(value) = HeaderValue::from_str(&date) {
                headers.insert("x-sdk-date", value);
            }
            let _ = check(&policy, &headers, PROJECT, Utc::now());
        }
    }

    #[test]
    fn unknown_keys_missing_headers_and_missing_auth_are_401() {
        let now = Utc::now();
        let policy = policy(credential(None, None));
        let mut headers = signed("top-secret-sk", now, PROJECT, &[]);
        let other_key = headers["authorization"]
            .to_str()
            .unwrap()
            .replace("Access=AK", "Access=AK2");
        headers.insert("authorization", HeaderValue::from_str(&other_key).unwrap());
        assert!(reason(check(&policy, &headers, PROJECT, now)).contains("unknown access key AK2"));

        let mut headers = signed("top-secret-sk", now, PROJECT, &[]);
        headers.remove("host");
        assert!(reason(check(&policy, &headers, PROJECT, now)).contains("host is missing"));

        let mut headers = signed("top-secret-sk", now, PROJECT, &[]);
        let unsigned_date = headers["authorization"]
            .to_str()
            .unwrap()
            .replace("SignedHeaders=host;x-sdk-date", "SignedHeaders=host");
        headers.insert(
            "authorization",
            HeaderValue::from_str(&unsigned_date).unwrap(),
        );
        assert!(reason(check(&policy, &headers, PROJECT, now)).contains("x-sdk-date is not among"));

        assert!(reason(check(&policy, &HeaderMap::new(), PROJECT, now)).contains("neither"));
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Basic abc"));
        assert!(reason(check(&policy, &headers, PROJECT, now)).contains("SDK-HMAC-SHA256"));
    }

    #[test]
    fn a_changed_query_breaks_the_signature() {
        let now = Utc::now();
        let policy = policy(credential(None, None));
        let headers = signed("top-secret-sk", now, PROJECT, &[]);
        let query = vec![("limit".to_string(), "6".to_string())];
        let result = policy.check(
            &IncomingRequest {
                method: "GET",
                path: "/v2/p1/tasks",
                authority: None,
                headers: &headers,
                query: &query,
                body: b"",
                project_id: Some(PROJECT),
            },
            now,
        );
        assert!(reason(result).contains("signature mismatch"));
    }

    #[test]
    fn temporary_credentials_need_their_signed_token() {
        let now = Utc::now();
        let policy = policy(credential(Some("sts-token-value"), None));
        let with_token = signed(
            "top-secret-sk",
            now,
            PROJECT,
            &[("x-security-token", "sts-token-value")],
        );
        assert_eq!(check(&policy, &with_token, PROJECT, now), Ok(()));
        let without = signed("top-secret-sk", now, PROJECT, &[]);
        assert!(
            reason(check(&policy, &without, PROJECT, now))
                .contains("needs a signed X-Security-Token")
        );
        let wrong = signed(
            "top-secret-sk",
            now,
            PROJECT,
            &[("x-security-token", "other-token")],
        );
        let message = reason(check(&policy, &wrong, PROJECT, now));
        assert!(
            !message.contains("sts-token-value") && !message.contains("other-token"),
            "{message}"
        );
    }

    #[test]
    fn projects_and_the_project_header_are_enforced() {
        let now = Utc::now();
        let policy = policy(credential(None, Some(vec![PROJECT])));
        let other = signed("top-secret-sk", now, "p2", &[]);
        assert!(
            matches!(check(&policy, &other, "p2", now), Err(Refusal::Forbidden(m)) if m.contains("may not use project p2"))
        );
        let mismatch = signed("top-secret-sk", now, PROJECT, &[("x-project-id", "p9")]);
        assert!(
            matches!(check(&policy, &mismatch, PROJECT, now), Err(Refusal::Forbidden(m)) if m.contains("p9"))
        );
    }

    #[test]
    fn iam_tokens_are_an_alternative() {
        let now = Utc::now();
        let policy = policy(credential(None, None));
        let mut headers = HeaderMap::new();
        headers.insert("x-auth-token", HeaderValue::from_static("iam-token"));
        assert_eq!(check(&policy, &headers, PROJECT, now), Ok(()));
        headers.insert("x-auth-token", HeaderValue::from_static("forged"));
        let message = reason(check(&policy, &headers, PROJECT, now));
        assert!(!message.contains("forged") && !message.contains("iam-token"));
    }
}
