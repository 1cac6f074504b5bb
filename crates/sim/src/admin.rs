//! The admin API: lets a test or a demo script change the simulated world while it runs.
//!
//! All routes live under `/_sim/`, take and return JSON, need no authentication, and answer only
//! clients connecting from a loopback address (others get 403), so a simulator listening on
//! `0.0.0.0` for a container demo cannot be steered from the network. Errors are
//! `{"error": "<what was wrong>"}` with status 400 (bad body), 404 (unknown task or job) or 409
//! (duplicate id).
//!
//! | Route | Body | Effect |
//! |---|---|---|
//! | `POST /_sim/tasks` | one scenario task (camelCase, as in a scenario file) | adds it; a relative `createdAt` counts from the sim clock's now; 201 `{"id": "..."}` |
//! | `PUT /_sim/tasks/{id}/status` | `{"status": "SUCCESS"}` | the task holds that status from now on (the rest of its timeline is dropped); 200 `{"id", "status"}` |
//! | `POST /_sim/jobs` | one scenario job (camelCase, as in a scenario file's `jobs`) | declares it; a relative `beginTime` counts from the sim clock's now; 201 `{"id": "..."}`; 409 if a job with that id is declared already |
//! | `PUT /_sim/jobs/{id}/status` | `{"status": "FAIL", "failReason": "..."}` (`failReason` optional: kept as it was when absent) | the job (declared, or derived from the task with that `jobId`, in any project) holds that status from now on; a derived job becomes a declared one and its task is left as it is; 200 `{"id", "status"}` |
//! | `POST /_sim/clock/advance` | `{"by": "10s"}` | moves the virtual clock forward, at most 100 years ahead of the real clock in all (400 beyond); 200 `{"now", "offset"}` |
//! | `GET /_sim/clock` | | 200 `{"now", "offset"}` |
//! | `POST /_sim/faults` | `{"count": 3, "status": 429, "body": {...}, "latency": "0s", "drop": false, "projectId": "...", "api": "tasks"}` | the next `count` DCS requests (of that project, or of any; to `api` `tasks` or `jobs`, or to either) get the fault instead of an answer; 201 `{"queued", "pending"}` |
//! | `DELETE /_sim/faults` | | drops all queued faults; 200 `{"cleared": n}` |
//! | `PUT /_sim/config` | `{"taskCount": "number"}` | switches the `task_count` wire type; 200 the new config |
//! | `GET /_sim/config` | | 200 `{"taskCount": "string"}` |
//! | `GET /_sim/stats` | | 200 `{"projects": {"<id>": {"requests", "ok", "clientErrors", "unauthorized", "faulted"}}, "total", "iam": {"requests", "ok", "clientErrors", "unauthorized"}, "jobs": {"projects": {"<id>": {"requests", "ok", "notFound", "clientErrors", "unauthorized", "faulted", "byJob": {"<job id>": n}}}, "total"}}`; `projects` and `total` count task-list requests, `jobs` (present once a job request was counted) `ShowJobInfo` requests |
//! | `POST /_sim/stats/reset` | | zeroes the counters; 200 the zeroed stats |
//!
//! Faults: every field is optional. `count` defaults to 1. `latency` (duration syntax) is waited
//! first. Then `drop: true` breaks the connection without a valid response, `status` answers
//! with that status and `body` (default: a DCS-style body fitting the status; a JSON string is
//! sent as raw text), and a fault with neither just delays the normal answer. Entries are used
//! first in, first out. Stats count every task-list and job request, refused ones included;
//! `faulted` counts requests that consumed a fault (a latency-only fault also counts under its
//! answer); `byJob` counts at most 10,000 job ids per project.

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
use super::jobs;
use super::limits::{MAX_CLOCK_OFFSET, describe, show};
use super::scenario::{JobFile, TaskCountEncoding, TaskFile};
use super::state::{ClockLimit, SimState, VirtualClock, lock};
use super::store::{DuplicateId, StoredJob, StoredTask};
use super::wire;

/// The `/_sim/` routes, guarded by the loopback check.
pub(super) fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/_sim/tasks", post(add_task))
        .route("/_sim/tasks/{id}/status", put(set_status))
        .route("/_sim/jobs", post(add_job))
        .route("/_sim/jobs/{id}/status", put(set_job_status))
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
    wire::json(status, json!({ "error": message }))
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
        Ok(()) => wire::json(StatusCode::CREATED, json!({ "id": id })),
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
    wire::json(StatusCode::OK, json!({ "id": id, "status": change.status }))
}

async fn add_job(State(state): State<Arc<SimState>>, body: Bytes) -> Response {
    let job: JobFile = match parse("POST /_sim/jobs", &body) {
        Ok(job) => job,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
    };
    let spec = match job.validate("") {
        Ok(spec) => spec,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem.to_string()),
    };
    let job = StoredJob::from_spec(spec, state.clock.now());
    let id = job.id.clone();
    match lock(&state.jobs).insert(job) {
        Ok(()) => wire::json(StatusCode::CREATED, json!({ "id": id })),
        Err(DuplicateId(id)) => error(
            StatusCode::CONFLICT,
            format!("a job with id {id} is declared already"),
        ),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JobStatusChange {
    status: String,
    #[serde(default)]
    fail_reason: Option<String>,
}

async fn set_job_status(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let change: JobStatusChange = match parse("PUT /_sim/jobs/{id}/status", &body) {
        Ok(change) => change,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
    };
    if change.status.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "`status` must not be empty".into());
    }
    let now = state.clock.now();
    let mut jobs = lock(&state.jobs);
    let mut job = match jobs.get(&id) {
        Some(job) => job.clone(),
        None => {
            let store = lock(&state.store);
            match jobs::find(&jobs, &store, None, &id, now) {
                Some(job) => job,
                None => {
                    return error(
                        StatusCode::NOT_FOUND,
                        format!("no job has id {id} (declared, or as the jobId of a task)"),
                    );
                }
            }
        }
    };
    let elapsed = job.elapsed(now);
    job.timeline.set_from(elapsed, change.status.clone());
    if let Some(reason) = change.fail_reason {
        job.fail_reason = Some(reason);
    }
    jobs.put(job);
    wire::json(StatusCode::OK, json!({ "id": id, "status": change.status }))
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
    match advance_by(&state.clock, &advance.by) {
        Ok(()) => clock(State(state)).await,
        Err(problem) => error(StatusCode::BAD_REQUEST, problem),
    }
}

/// Moves `clock` by the duration text `by`, or says (naming `by`) why it did not move.
fn advance_by(clock: &VirtualClock, by: &str) -> Result<(), String> {
    let duration = dcs_common::duration::parse(by)
        .map_err(|_| format!("`by`: `{by}` is not a duration such as 10s, 5m or 1h30m"))?;
    clock
        .advance(duration)
        .map(|_| ())
        .map_err(|ClockLimit { moved }| {
            format!(
                "`by`: `{by}` would move the simulated clock past the limit of {} ahead of the \
                 real clock; it is {} ahead now",
                describe(MAX_CLOCK_OFFSET),
                show(moved)
            )
        })
}

async fn clock(State(state): State<Arc<SimState>>) -> Response {
    wire::json(
        StatusCode::OK,
        json!({
            "now": wire::timestamp(state.clock.now()),
            "offset": show(state.clock.offset()),
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
    wire::json(
        StatusCode::CREATED,
        json!({ "queued": count, "pending": faults.pending() }),
    )
}

async fn clear_faults(State(state): State<Arc<SimState>>) -> Response {
    let cleared = lock(&state.faults).clear();
    wire::json(StatusCode::OK, json!({ "cleared": cleared }))
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
    wire::json(StatusCode::OK, json!({ "taskCount": encoding }))
}

async fn stats(State(state): State<Arc<SimState>>) -> Response {
    let stats = lock(&state.stats).clone();
    wire::json(
        StatusCode::OK,
        serde_json::to_value(stats).unwrap_or(Value::Null),
    )
}

async fn reset_stats(State(state): State<Arc<SimState>>) -> Response {
    lock(&state.stats).reset();
    stats(State(state)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use proptest::prelude::*;

    #[test]
    fn an_advance_past_the_limit_is_refused_naming_by_and_the_limit() {
        let clock = VirtualClock::default();
        let problem = advance_by(&clock, "3000000000h").unwrap_err();
        assert!(problem.starts_with("`by`: `3000000000h`"), "{problem}");
        assert!(problem.contains("876600h (100 years)"), "{problem}");
        assert!(problem.contains("it is 0s ahead now"), "{problem}");
        assert_eq!(clock.offset(), TimeDelta::zero());
        assert!(advance_by(&clock, "soon").unwrap_err().starts_with("`by`:"));
        advance_by(&clock, "876599h").unwrap();
        let problem = advance_by(&clock, "2h").unwrap_err();
        assert!(problem.contains("it is 876599h ahead now"), "{problem}");
        advance_by(&clock, "1h").unwrap();
        assert_eq!(clock.offset(), MAX_CLOCK_OFFSET);
    }

    /// Duration-like text: digit runs of any length with units, and some noise.
    fn duration_text() -> impl Strategy<Value = String> {
        let part = (
            any::<u64>(),
            prop::sample::select(vec!["ms", "s", "m", "h", "", "d"]),
        )
            .prop_map(|(value, unit)| format!("{value}{unit}"));
        prop_oneof![
            prop::collection::vec(part, 0..6).prop_map(|parts| parts.concat()),
            "[0-9]{1,30}(ms|s|m|h)",
            any::<String>(),
        ]
    }

    proptest! {
        #[test]
        fn no_advance_text_panics_or_passes_the_limit(
            texts in prop::collection::vec(duration_text(), 1..8)
        ) {
            let clock = VirtualClock::default();
            for text in &texts {
                let before = clock.offset();
                match advance_by(&clock, text) {
                    Ok(()) => prop_assert!(clock.offset() >= before),
                    Err(problem) => {
                        prop_assert!(problem.starts_with("`by`:"));
                        prop_assert_eq!(clock.offset(), before);
                    }
                }
                prop_assert!(clock.offset() <= MAX_CLOCK_OFFSET);
                let _ = clock.now();
            }
        }

        #[test]
        fn no_advance_duration_panics_or_passes_the_limit(
            steps in prop::collection::vec((any::<u64>(), any::<u32>()), 1..8)
        ) {
            let clock = VirtualClock::default();
            for (secs, nanos) in steps {
                let by = std::time::Duration::new(secs, nanos % 1_000_000_000);
                let _ = clock.advance(by);
                prop_assert!(clock.offset() >= TimeDelta::zero());
                prop_assert!(clock.offset() <= MAX_CLOCK_OFFSET);
                prop_assert!(clock.now() >= chrono::Utc::now() - TimeDelta::seconds(1));
            }
        }
    }
}
