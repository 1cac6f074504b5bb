//! The admin API: lets a test or a demo script change the simulated world while it runs.
//!
//! All routes live under `/_sim/`, take and return JSON, need no authentication, and answer only
//! clients connecting from a loopback address (others get 403), so a simulator listening on
//! `0.0.0.0` for a container demo cannot be steered from the network. Errors are
//! `{"error": "<what was wrong>"}` with status 400 (bad body), 404 (unknown task) or 409
//! (duplicate id).
//!
//! | Route | Body | Effect |
//! |---|---|---|
//! | `POST /_sim/tasks` | one scenario task (camelCase, as in a scenario file) | adds it; a relative `createdAt` counts from the sim clock's now; 201 `{"id": "..."}` |
//! | `PUT /_sim/tasks/{id}/status` | `{"status": "SUCCESS"}` | the task holds that status from now on (the rest of its timeline is dropped); 200 `{"id", "status"}` |
//! | `POST /_sim/clock/advance` | `{"by": "10s"}` | moves the virtual clock forward; 200 `{"now", "offset"}` |
//! | `GET /_sim/clock` | | 200 `{"now", "offset"}` |
//! | `POST /_sim/faults` | `{"count": 3, "status": 429, "body": {...}, "latency": "0s", "drop": false, "projectId": "..."}` | the next `count` task-list requests (of that project, or of any) get the fault instead of an answer; 201 `{"queued", "pending"}` |
//! | `DELETE /_sim/faults` | | drops all queued faults; 200 `{"cleared": n}` |
//! | `PUT /_sim/config` | `{"taskCount": "number"}` | switches the `task_count` wire type; 200 the new config |
//! | `GET /_sim/config` | | 200 `{"taskCount": "string"}` |
//! | `GET /_sim/stats` | | 200 `{"projects": {"<id>": {"requests", "ok", "clientErrors", "unauthorized", "faulted"}}, "total"}` |
//! | `POST /_sim/stats/reset` | | zeroes the counters; 200 the zeroed stats |
//!
//! Faults: every field is optional. `count` defaults to 1. `latency` (duration syntax) is waited
//! first. Then `drop: true` breaks the connection without a valid response, `status` answers
//! with that status and `body` (default: a DCS-style body fitting the status; a JSON string is
//! sent as raw text), and a fault with neither just delays the normal answer. Entries are used
//! first in, first out. Stats count every task-list request, refused ones included; `faulted`
//! counts requests that consumed a fault (a latency-only fault also counts under its answer).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::faults::FaultRequest;
use super::list::json;
use super::scenario::{TaskCountEncoding, TaskFile};
use super::state::{DuplicateId, SimState, StoredTask, lock};
use super::wire;

/// The `/_sim/` routes, guarded by the loopback check.
pub(super) fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/_sim/tasks", post(add_task))
        .route("/_sim/tasks/{id}/status", put(set_status))
        .route("/_sim/clock", get(clock))
        .route("/_sim/clock/advance", post(advance_clock))
        .route("/_sim/faults", post(add_fault).delete(clear_faults))
        .route("/_sim/config", get(config).put(set_config))
        .route("/_sim/stats", get(stats))
        .route("/_sim/stats/reset", post(reset_stats))
        .route_layer(middleware::from_fn(loopback_only))
}

async fn loopback_only(request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip().to_canonical());
    match peer {
        Some(ip) if ip.is_loopback() => next.run(request).await,
        _ => error(
            StatusCode::FORBIDDEN,
            "the /_sim/ admin API only answers clients on a loopback address".into(),
        ),
    }
}

fn error(status: StatusCode, message: String) -> Response {
    json(status, json!({ "error": message }))
}

/// Parses a JSON body; the error is serde's explanation (line, column, field) for a 400.
fn parse<T: DeserializeOwned>(route: &str, body: &Bytes) -> Result<T, String> {
    serde_json::from_slice(body)
        .map_err(|problem| format!("invalid JSON body for {route}: {problem}"))
}

async fn add_task(State(state): State<Arc<SimState>>, body: Bytes) -> Response {
    let task: TaskFile = match parse("POST /_sim/tasks", &body) {
        Ok(task) => task,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
    };
    let spec = match task.validate("") {
        Ok(spec) => spec,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem.to_string()),
    };
    let task = StoredTask::from_spec(spec, state.clock.now());
    let id = task.id.clone();
    match lock(&state.store).insert(task) {
        Ok(()) => json(StatusCode::CREATED, json!({ "id": id })),
        Err(DuplicateId(id)) => error(
            StatusCode::CONFLICT,
            format!("a task with id {id} already exists"),
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusChange {
    status: String,
}

async fn set_status(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let change: StatusChange = match parse("PUT /_sim/tasks/{id}/status", &body) {
        Ok(change) => change,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
    };
    if change.status.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "`status` must not be empty".into());
    }
    let now = state.clock.now();
    let mut store = lock(&state.store);
    let Some(task) = store.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, format!("no task has id {id}"));
    };
    let elapsed = task.elapsed(now);
    task.timeline.set_from(elapsed, change.status.clone());
    json(StatusCode::OK, json!({ "id": id, "status": change.status }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    by: String,
}

async fn advance_clock(State(state): State<Arc<SimState>>, body: Bytes) -> Response {
    let advance: Advance = match parse("POST /_sim/clock/advance", &body) {
        Ok(advance) => advance,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
    };
    let by = match crate::duration::parse(&advance.by)
        .ok()
        .and_then(|by| chrono::TimeDelta::from_std(by).ok())
    {
        Some(by) => by,
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "`by`: `{}` is not a duration such as 10s, 5m or 1h30m",
                    advance.by
                ),
            );
        }
    };
    state.clock.advance(by);
    clock(State(state)).await
}

async fn clock(State(state): State<Arc<SimState>>) -> Response {
    let offset = state.clock.offset().to_std().unwrap_or_default();
    json(
        StatusCode::OK,
        json!({
            "now": wire::timestamp(state.clock.now()),
            "offset": crate::duration::format(offset),
        }),
    )
}

async fn add_fault(State(state): State<Arc<SimState>>, body: Bytes) -> Response {
    let request: FaultRequest = match parse("POST /_sim/faults", &body) {
        Ok(request) => request,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
    };
    let (fault, count) = match request.into_fault() {
        Ok(fault) => fault,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
    };
    let mut faults = lock(&state.faults);
    faults.push(fault, count);
    json(
        StatusCode::CREATED,
        json!({ "queued": count, "pending": faults.pending() }),
    )
}

async fn clear_faults(State(state): State<Arc<SimState>>) -> Response {
    let cleared = lock(&state.faults).clear();
    json(StatusCode::OK, json!({ "cleared": cleared }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConfigChange {
    task_count: TaskCountEncoding,
}

async fn set_config(State(state): State<Arc<SimState>>, body: Bytes) -> Response {
    let change: ConfigChange = match parse("PUT /_sim/config", &body) {
        Ok(change) => change,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
    };
    *lock(&state.encoding) = change.task_count;
    config(State(state)).await
}

async fn config(State(state): State<Arc<SimState>>) -> Response {
    let encoding = *lock(&state.encoding);
    json(StatusCode::OK, json!({ "taskCount": encoding }))
}

async fn stats(State(state): State<Arc<SimState>>) -> Response {
    let stats = lock(&state.stats).clone();
    json(
        StatusCode::OK,
        serde_json::to_value(stats).unwrap_or(Value::Null),
    )
}

async fn reset_stats(State(state): State<Arc<SimState>>) -> Response {
    lock(&state.stats).reset();
    stats(State(state)).await
}
