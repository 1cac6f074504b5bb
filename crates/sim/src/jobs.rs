//! `GET /v2/{project_id}/jobs/{job_id}` (`ShowJobInfo`): the same faults, gateway checks and
//! counting as the task list, then the job.
//!
//! A job is either declared (in the scenario's `jobs`, or through `POST /_sim/jobs`) or derived
//! from the newest task of the project whose `job_id` it is, as DCS runs a task for a job: its
//! `job_type` is the task's name, it begins at the task's `created_at`, and its status follows
//! the task's timeline in the job vocabulary (see [`job_status_of_task`]), ending when the
//! task's status last changed. A declared job hides a derived one with the same id, which is
//! how `PUT /_sim/jobs/{id}/status` changes a derived job without touching its task. Like tasks,
//! a job that begins in the future is not there yet.
//!
//! An unknown job gets HTTP 404 with a DCS error body. The real API's code for it is not
//! documented; [`JOB_NOT_FOUND_CODE`] is of the DCS family whose middle digits are the status.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};

use super::faults::Api;
use super::list::{admit, take_fault};
use super::state::{SimState, lock};
use super::stats::Outcome;
use super::store::{JobStore, StoredJob, StoredTask, TaskStore};
use super::wire;

/// The `error_code` of the 404 for an unknown job.
pub(super) const JOB_NOT_FOUND_CODE: &str = "111404000";

pub(super) async fn show_job(
    State(state): State<Arc<SimState>>,
    Path((project_id, job_id)): Path<(String, String)>,
    request: Request,
) -> Response {
    let faulted = match take_fault(&state, &project_id, Api::Jobs).await {
        Ok(faulted) => faulted,
        Err(response) => {
            lock(&state.stats).record_job(&project_id, &job_id, Outcome::Injected, true);
            return response;
        }
    };
    let (outcome, response) = answer(&state, &project_id, &job_id, request).await;
    tracing::debug!(
        project_id,
        job_id,
        ?outcome,
        faulted,
        "simulated job request"
    );
    lock(&state.stats).record_job(&project_id, &job_id, outcome, faulted);
    response
}

async fn answer(
    state: &SimState,
    project_id: &str,
    job_id: &str,
    request: Request,
) -> (Outcome, Response) {
    if let Err(refused) = admit(state, project_id, request).await {
        return refused;
    }
    let now = state.clock.now();
    let found = {
        let jobs = lock(&state.jobs);
        let store = lock(&state.store);
        find(&jobs, &store, Some(project_id), job_id, now)
    };
    match found {
        Some(job) => (
            Outcome::Ok,
            wire::json(StatusCode::OK, wire::job(&job, now)),
        ),
        None => (
            Outcome::NotFound,
            wire::json(
                StatusCode::NOT_FOUND,
                wire::error_body(
                    JOB_NOT_FOUND_CODE,
                    &format!("The job {job_id} does not exist."),
                ),
            ),
        ),
    }
}

/// The job `job_id` of `project_id` (of any project for `None`) as it stands at `now`: the
/// declared one if it has begun, else the one derived from its task.
pub(super) fn find(
    jobs: &JobStore,
    store: &TaskStore,
    project_id: Option<&str>,
    job_id: &str,
    now: DateTime<Utc>,
) -> Option<StoredJob> {
    let declared = jobs.get(job_id).filter(|job| {
        project_id.is_none_or(|project| job.project_id == project) && job.began_at <= now
    });
    match declared {
        Some(job) => Some(job.clone()),
        None => store
            .job_task(project_id, job_id, now)
            .map(|task| derived_job(task, now)),
    }
}

/// The job a task stands for, at `now` (which only its failure reason depends on).
pub(super) fn derived_job(task: &StoredTask, now: DateTime<Utc>) -> StoredJob {
    let task_status = task.timeline.at(task.elapsed(now)).status;
    let error_code = task
        .error_code
        .as_deref()
        .map(|code| format!(" (error_code {code})"))
        .unwrap_or_default();
    StoredJob {
        id: task.job_id.clone().unwrap_or_default(),
        project_id: task.project_id.clone(),
        job_type: Some(task.name.clone()),
        began_at: task.created_at,
        timeline: task
            .timeline
            .renamed(|status| job_status_of_task(status).to_string()),
        fail_reason: Some(format!(
            "task {} ({}) ended {task_status}{error_code}",
            task.id, task.name
        )),
    }
}

/// A task status in the job vocabulary: `EXECUTING` is `RUNNING`, `CREATED` and `WAITING` are
/// `INIT`, `FAILED`, `CANCELLED` and `DELETED` are `FAIL`; `SUCCESS`, job statuses and unknown
/// text stay as they are (so a scenario can give a job any status through its task).
pub(super) fn job_status_of_task(status: &str) -> &str {
    match status {
        "EXECUTING" => "RUNNING",
        "CREATED" | "WAITING" => "INIT",
        "FAILED" | "CANCELLED" | "DELETED" => "FAIL",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;
    use chrono::TimeDelta;

    fn world(yaml: &str, start: DateTime<Utc>) -> (JobStore, TaskStore) {
        let scenario = Scenario::from_yaml(yaml).unwrap();
        (
            JobStore::from_scenario(&scenario, start),
            TaskStore::from_scenario(&scenario, start).unwrap(),
        )
    }

    #[test]
    fn task_statuses_map_to_the_job_vocabulary() {
        for (task, job) in [
            ("EXECUTING", "RUNNING"),
            ("CREATED", "INIT"),
            ("WAITING", "INIT"),
            ("SUCCESS", "SUCCESS"),
            ("FAILED", "FAIL"),
            ("CANCELLED", "FAIL"),
            ("DELETED", "FAIL"),
            ("RUNNING", "RUNNING"),
            ("PAUSED", "PAUSED"),
        ] {
            assert_eq!(job_status_of_task(task), job, "{task}");
        }
    }

    #[test]
    fn jobs_are_derived_from_their_newest_task_in_the_project() {
        let start: DateTime<Utc> = "2024-01-01T12:00:00Z".parse().unwrap();
        let (jobs, store) = world(
            r#"
tasks:
  - {id: old, name: EXTEND, jobId: j, createdAt: -1h, status: SUCCESS}
  - id: new
    name: masterStandbySwapJob
    jobId: j
    createdAt: -10s
    errorCode: "DCS.5094"
    timeline: [{status: WAITING, for: 2s}, {status: EXECUTING, for: 3s}, {status: FAILED}]
  - {id: other, name: n, jobId: k, projectId: elsewhere, status: SUCCESS}
  - {id: later, name: n, jobId: soon, createdAt: 1m, status: SUCCESS}
"#,
            start,
        );
        let project = Some(crate::DEMO_PROJECT_ID);
        let at = |seconds: i64| {
            let now = start + TimeDelta::seconds(seconds);
            wire::job(&find(&jobs, &store, project, "j", now).unwrap(), now)
        };
        assert_eq!(at(-9)["status"], "INIT");
        assert_eq!(at(-6)["status"], "RUNNING");
        let failed = at(0);
        assert_eq!(failed["status"], "FAIL");
        assert_eq!(failed["job_type"], "masterStandbySwapJob");
        assert_eq!(
            failed["begin_time"],
            (start - TimeDelta::seconds(10))
                .timestamp_millis()
                .to_string()
        );
        assert_eq!(
            failed["end_time"],
            (start - TimeDelta::seconds(5))
                .timestamp_millis()
                .to_string()
        );
        assert_eq!(
            failed["fail_reason"],
            "task new (masterStandbySwapJob) ended FAILED (error_code DCS.5094)"
        );
        assert!(find(&jobs, &store, project, "k", start).is_none());
        assert!(find(&jobs, &store, Some("elsewhere"), "k", start).is_some());
        assert!(find(&jobs, &store, None, "k", start).is_some());
        assert!(find(&jobs, &store, project, "soon", start).is_none());
        assert!(
            find(
                &jobs,
                &store,
                project,
                "soon",
                start + TimeDelta::minutes(1)
            )
            .is_some()
        );
        assert!(find(&jobs, &store, project, "nope", start).is_none());
    }

    #[test]
    fn a_declared_job_hides_the_task_derived_one() {
        let start: DateTime<Utc> = "2024-01-01T12:00:00Z".parse().unwrap();
        let (jobs, store) = world(
            r#"
tasks: [{id: t, name: EXTEND, jobId: j, status: SUCCESS}]
jobs:
  - {id: j, status: RUNNING, beginTime: -5s}
  - {id: f, projectId: p2, status: FAIL, beginTime: "2024-01-01T11:00:00Z", failReason: no}
  - {id: later, status: INIT, beginTime: 30s}
"#,
            start,
        );
        let project = Some(crate::DEMO_PROJECT_ID);
        let job = find(&jobs, &store, project, "j", start).unwrap();
        assert_eq!(wire::job(&job, start)["status"], "RUNNING");
        assert_eq!(job.job_type, None);
        assert!(find(&jobs, &store, project, "f", start).is_none());
        let failed = wire::job(&find(&jobs, &store, Some("p2"), "f", start).unwrap(), start);
        assert_eq!(
            (&failed["status"], &failed["fail_reason"]),
            (&"FAIL".into(), &"no".into())
        );
        assert!(find(&jobs, &store, project, "later", start).is_none());
    }
}
