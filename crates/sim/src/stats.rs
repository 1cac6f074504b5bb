//! Request counters per project, so tests and benchmarks can assert how many upstream calls a
//! client really made (the operator's whole point is to share and limit them). Task-list, job
//! and IAM requests are counted apart, jobs also per job id.

use std::collections::BTreeMap;

use serde::Serialize;

/// How a request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// 200 with a task list.
    Ok,
    /// 400 / 403 / 404: the client asked for something wrong.
    ClientError,
    /// 404 for a job the simulator does not know (a client error of its own, for job waits).
    NotFound,
    /// 401: missing or wrong credentials.
    Unauthorized,
    /// An injected fault answered (or dropped) instead of the API.
    Injected,
}

/// Counters of one project. `faulted` counts requests that consumed a fault entry; a
/// latency-only fault is counted there *and* under the answer that followed it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ProjectStats {
    pub requests: u64,
    pub ok: u64,
    pub client_errors: u64,
    pub unauthorized: u64,
    pub faulted: u64,
}

/// Counters of IAM's project list (`GET /v3/projects`), apart from the task-list counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct IamStats {
    pub requests: u64,
    pub ok: u64,
    pub client_errors: u64,
    pub unauthorized: u64,
}

/// How many distinct job ids a project's `byJob` counts; requests for further ids still count
/// in the project's totals. Ids come from request paths, so this keeps a client that asks for
/// random ids from growing the map without bound.
pub(super) const MAX_COUNTED_JOB_IDS: usize = 10_000;

/// Counters of one project's `ShowJobInfo` requests (`GET /v2/{project_id}/jobs/{job_id}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ProjectJobStats {
    pub requests: u64,
    pub ok: u64,
    pub not_found: u64,
    pub client_errors: u64,
    pub unauthorized: u64,
    pub faulted: u64,
    /// Requests per job id asked for, answered or not.
    pub by_job: BTreeMap<String, u64>,
}

/// Job requests of all projects. Rendered only once one was counted, so that the stats of a
/// client that never asks for a job look as they did before the job API existed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(super) struct JobStats {
    projects: BTreeMap<String, ProjectJobStats>,
    total: u64,
}

impl JobStats {
    fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// All counters, rendered by `GET /_sim/stats`. `projects` and `total` count task-list requests
/// only; `jobs` counts job requests, `iam` IAM's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(super) struct Stats {
    projects: BTreeMap<String, ProjectStats>,
    total: u64,
    iam: IamStats,
    #[serde(skip_serializing_if = "JobStats::is_empty")]
    jobs: JobStats,
}

impl Stats {
    /// Counts one task-list request of `project_id`.
    pub fn record(&mut self, project_id: &str, outcome: Outcome, faulted: bool) {
        self.total += 1;
        let project = self.projects.entry(project_id.to_string()).or_default();
        project.requests += 1;
        match outcome {
            Outcome::Ok => project.ok += 1,
            Outcome::ClientError | Outcome::NotFound => project.client_errors += 1,
            Outcome::Unauthorized => project.unauthorized += 1,
            Outcome::Injected => {}
        }
        if faulted || outcome == Outcome::Injected {
            project.faulted += 1;
        }
    }

    /// Counts one job request of `project_id` for `job_id`.
    pub fn record_job(&mut self, project_id: &str, job_id: &str, outcome: Outcome, faulted: bool) {
        self.jobs.total += 1;
        let project = self
            .jobs
            .projects
            .entry(project_id.to_string())
            .or_default();
        project.requests += 1;
        match outcome {
            Outcome::Ok => project.ok += 1,
            Outcome::NotFound => project.not_found += 1,
            Outcome::ClientError => project.client_errors += 1,
            Outcome::Unauthorized => project.unauthorized += 1,
            Outcome::Injected => {}
        }
        if faulted || outcome == Outcome::Injected {
            project.faulted += 1;
        }
        if let Some(count) = project.by_job.get_mut(job_id) {
            *count += 1;
        } else if project.by_job.len() < MAX_COUNTED_JOB_IDS {
            project.by_job.insert(job_id.to_string(), 1);
        }
    }

    /// Counts one IAM project-list request.
    pub fn record_iam(&mut self, outcome: Outcome) {
        self.iam.requests += 1;
        match outcome {
            Outcome::Ok => self.iam.ok += 1,
            Outcome::ClientError | Outcome::NotFound => self.iam.client_errors += 1,
            Outcome::Unauthorized => self.iam.unauthorized += 1,
            Outcome::Injected => {}
        }
    }

    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_render_per_project_in_camel_case() {
        let mut stats = Stats::default();
        stats.record("p", Outcome::Ok, false);
        stats.record("p", Outcome::Ok, true);
        stats.record("p", Outcome::Injected, false);
        stats.record("p", Outcome::ClientError, false);
        stats.record("q", Outcome::Unauthorized, false);
        stats.record_iam(Outcome::Ok);
        stats.record_iam(Outcome::Unauthorized);
        assert_eq!(
            serde_json::to_value(&stats).unwrap(),
            json!({
                "projects": {
                    "p": {"requests": 4, "ok": 2, "clientErrors": 1, "unauthorized": 0, "faulted": 2},
                    "q": {"requests": 1, "ok": 0, "clientErrors": 0, "unauthorized": 1, "faulted": 0}
                },
                "total": 5,
                "iam": {"requests": 2, "ok": 1, "clientErrors": 0, "unauthorized": 1}
            })
        );
        stats.reset();
        assert_eq!(
            serde_json::to_value(&stats).unwrap(),
            json!({
                "projects": {},
                "total": 0,
                "iam": {"requests": 0, "ok": 0, "clientErrors": 0, "unauthorized": 0}
            })
        );
    }

    #[test]
    fn job_requests_are_counted_apart_and_per_job() {
        let mut stats = Stats::default();
        stats.record("p", Outcome::Ok, false);
        stats.record_job("p", "j1", Outcome::Ok, false);
        stats.record_job("p", "j1", Outcome::Ok, true);
        stats.record_job("p", "j2", Outcome::Injected, false);
        stats.record_job("p", "nope", Outcome::NotFound, false);
        stats.record_job("q", "j1", Outcome::Unauthorized, false);
        let rendered = serde_json::to_value(&stats).unwrap();
        assert_eq!(rendered["total"], 1);
        assert_eq!(rendered["projects"]["p"]["requests"], 1);
        assert_eq!(
            rendered["jobs"],
            json!({
                "projects": {
                    "p": {"requests": 4, "ok": 2, "notFound": 1, "clientErrors": 0,
                          "unauthorized": 0, "faulted": 2, "byJob": {"j1": 2, "j2": 1, "nope": 1}},
                    "q": {"requests": 1, "ok": 0, "notFound": 0, "clientErrors": 0,
                          "unauthorized": 1, "faulted": 0, "byJob": {"j1": 1}}
                },
                "total": 5
            })
        );
        stats.reset();
        assert_eq!(serde_json::to_value(&stats).unwrap().get("jobs"), None);
    }

    #[test]
    fn per_job_counts_are_bounded() {
        let mut stats = Stats::default();
        for id in 0..MAX_COUNTED_JOB_IDS + 5 {
            stats.record_job("p", &id.to_string(), Outcome::NotFound, false);
        }
        stats.record_job("p", "0", Outcome::NotFound, false);
        let project = &stats.jobs.projects["p"];
        assert_eq!(project.by_job.len(), MAX_COUNTED_JOB_IDS);
        assert_eq!(project.by_job["0"], 2);
        assert_eq!(project.requests, MAX_COUNTED_JOB_IDS as u64 + 6);
    }
}
