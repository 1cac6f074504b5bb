//! `GET /v2/{project_id}/tasks`: faults first (they stand in for the gateway and network),
//! then authentication, then parameter validation, then the page, the order a real request
//! meets them in. Every request is counted, refused or not.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::faults::FaultAction;
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
    let fault = lock(&state.faults).take(&project_id);
    let mut faulted = false;
    if let Some(fault) = fault {
        if !fault.latency.is_zero() {
            tokio::time::sleep(fault.latency).await;
        }
        match fault.action {
            FaultAction::Answer {
                status,
                body,
                retry_after,
            } => {
                lock(&state.stats).record(&project_id, Outcome::Injected, true);
                let mut response = raw_or_json(status, body);
                if let Some(seconds) = retry_after {
                    response
                        .headers_mut()
                        .insert(axum::http::header::RETRY_AFTER, seconds.into());
                }
                return response;
            }
            FaultAction::Drop => {
                lock(&state.stats).record(&project_id, Outcome::Injected, true);
                return dropped_connection();
            }
            FaultAction::Delay => faulted = true,
        }
    }
    let (outcome, response) = answer(&state, &project_id, request).await;
    tracing::debug!(project_id, ?outcome, faulted, "simulated task list request");
    lock(&state.stats).record(&project_id, outcome, faulted);
    response
}

async fn answer(state: &SimState, project_id: &str, request: Request) -> (Outcome, Response) {
    let query = match gateway::admit(state, request, Some(project_id)).await {
        Ok(query) => query,
        Err(Rejected::UnreadableBody) => {
            return client_error(
                StatusCode::BAD_REQUEST,
                "111400063",
                "The request body could not be read.",
            );
        }
        Err(Rejected::BadQuery) => return invalid_param("query"),
        Err(Rejected::Refused(outcome, response)) => return (outcome, response),
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
    (Outcome::Ok, json(StatusCode::OK, body))
}

fn invalid_param(name: &str) -> (Outcome, Response) {
    client_error(
        StatusCode::BAD_REQUEST,
        "111400063",
        &format!("Invalid {name} parameter in the request."),
    )
}

fn client_error(status: StatusCode, code: &str, message: &str) -> (Outcome, Response) {
    (
        Outcome::ClientError,
        json(status, wire::error_body(code, message)),
    )
}

pub(super) fn json(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
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
        body => json(status, body),
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
