//! What the API gateway does before any service sees a request: read it, and check its
//! signature. The task list and the IAM project list both sit behind it, so they share one
//! reading of the request and one set of refusal answers.

use axum::extract::{Query, Request};
use axum::http::StatusCode;
use axum::response::Response;

use super::auth::{IncomingRequest, Refusal};
use super::state::SimState;
use super::stats::Outcome;
use super::wire;

/// Largest request body read (the APIs take none).
const MAX_BODY: usize = 1 << 20;

/// Why a request did not get past the gateway.
pub(super) enum Rejected {
    /// The body could not be read (too large, broken connection).
    UnreadableBody,
    /// The query string is not `key=value` pairs.
    BadQuery,
    /// The signature was refused; the gateway's own answer.
    Refused(Outcome, Response),
}

/// The query pairs of a request whose signature the gateway accepted. `project_id` is the
/// project a task-center path names (`None` for IAM, which names none).
pub(super) async fn admit(
    state: &SimState,
    request: Request,
    project_id: Option<&str>,
) -> Result<Vec<(String, String)>, Rejected> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| Rejected::UnreadableBody)?;
    let Query(query) =
        Query::<Vec<(String, String)>>::try_from_uri(&parts.uri).map_err(|_| Rejected::BadQuery)?;
    let incoming = IncomingRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        authority: parts.uri.authority().map(|authority| authority.as_str()),
        headers: &parts.headers,
        query: &query,
        body: &body,
        project_id,
    };
    match state.auth.check(&incoming, chrono::Utc::now()) {
        Ok(()) => Ok(query),
        Err(Refusal::Unauthorized(reason)) => Err(Rejected::Refused(
            Outcome::Unauthorized,
            wire::json(
                StatusCode::UNAUTHORIZED,
                wire::error_body(
                    "APIG.0301",
                    &format!("Incorrect IAM authentication information: {reason}"),
                ),
            ),
        )),
        Err(Refusal::Forbidden(reason)) => Err(Rejected::Refused(
            Outcome::ClientError,
            wire::json(
                StatusCode::FORBIDDEN,
                wire::error_body(
                    "APIG.0302",
                    &format!("The IAM user is not authorized to access the API: {reason}"),
                ),
            ),
        )),
    }
}
