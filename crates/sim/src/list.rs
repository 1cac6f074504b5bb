//! `GET /v2/{project_id}/tasks`: faults first (they stand in for the gateway and network),
//! then authentication, then parameter validation, then the page, the order a real request
//! meets them in. Every request is counted, refused or not. The fault and admission steps are
//! shared with the job API (`jobs` module).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::faults::{Api, FaultAction};
use super::gateway::{self, Rejected};
use super::params::{self, InvalidParam};
use super::state::{SimState, lock};
use super::stats::Outcome;
use super::wire;

pub(super) async fn list_tasks(
    State(state): State<Arc<SimState>>,
    Path(project_id): Path<String>,
    request: Request,
) -> Response {
    let faulted = match take_fault(&state, &project_id, Api::Tasks).await {
        Ok(faulted) => faulted,
        Err(response) => {
            lock(&state.stats).record(&project_id, Outcome::Injected, true);
            return response;
        }
    };
    let (outcome, response) = answer(&state, &project_id, request).await;
    tracing::debug!(project_id, ?outcome, faulted, "simulated task list request");
    lock(&state.stats).record(&project_id, outcome, faulted);
    response
}

/// Applies the next fault queued for a request of `project_id` to `api`: waits its latency, then
/// `Err` with the answer that replaces the API's (an injected status, or a dropped connection),
/// or `Ok(faulted)` to answer normally, `faulted` saying whether a latency-only fault was used.
pub(super) async fn take_fault(
    state: &SimState,
    project_id: &str,
    api: Api,
) -> Result<bool, Response> {
    let Some(fault) = lock(&state.faults).take_for(project_id, api) else {
        return Ok(false);
    };
    if !fault.latency.is_zero() {
        tokio::time::sleep(fault.latency).await;
    }
    match fault.action {
        FaultAction::Answer {
            status,
            body,
            retry_after,
        } => {
            let mut response = raw_or_json(status, body);
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, seconds.into());
            }
            Err(response)
        }
        FaultAction::Drop => Err(dropped_connection()),
        FaultAction::Delay => Ok(true),
    }
}

async fn answer(state: &SimState, project_id: &str, request: Request) -> (Outcome, Response) {
    let query = match admit(state, project_id, request).await {
        Ok(query) => query,
        Err(refused) => return refused,
    };
    let params = match params::parse(&query) {
        Ok(params) => params,
        Err(InvalidParam(name)) => return invalid_param(name),
    };
    let now = state.clock.now();
    let encoding = *lock(&state.encoding);
    let body = {
        let store = lock(&state.store);
        let page = store.page(project_id, &params, now);
        let tasks = page
            .tasks
            .iter()
            .map(|task| wire::task(task, now))
            .collect();
        wire::task_list(page.total, tasks, encoding)
    };
    (Outcome::Ok, wire::json(StatusCode::OK, body))
}

/// The gateway's admission of a request to a DCS API of `project_id`: its query pairs, or the
/// answer (and how to count it) when it is refused.
pub(super) async fn admit(
    state: &SimState,
    project_id: &str,
    request: Request,
) -> Result<Vec<(String, String)>, (Outcome, Response)> {
    gateway::admit(state, request, Some(project_id))
        .await
        .map_err(|rejected| match rejected {
            Rejected::UnreadableBody => client_error(
                StatusCode::BAD_REQUEST,
                "111400063",
                "The request body could not be read.",
            ),
            Rejected::BadQuery => invalid_param("query"),
            Rejected::Refused(outcome, response) => (outcome, response),
        })
}

fn invalid_param(name: &str) -> (Outcome, Response) {
    client_error(
        StatusCode::BAD_REQUEST,
        "111400063",
        &format!("Invalid {name} parameter in the request."),
    )
}

pub(super) fn client_error(status: StatusCode, code: &str, message: &str) -> (Outcome, Response) {
    (
        Outcome::ClientError,
        wire::json(status, wire::error_body(code, message)),
    )
}

/// A JSON body, or a JSON string sent as raw text (to mimic non-JSON error pages).
fn raw_or_json(status: StatusCode, body: Value) -> Response {
    match body {
        Value::String(text) => (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            text,
        )
            .into_response(),
        body => wire::json(status, body),
    }
}

/// A response whose body fails on the first read: hyper then aborts the connection without
/// completing the message, which clients see as a transport error (connection closed before
/// the message completed, or a body read error if the head got out first).
fn dropped_connection() -> Response {
    let failing = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other(
            "connection dropped by a simulator fault",
        ))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(failing))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
