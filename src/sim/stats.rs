//! Request counters per project, so tests and benchmarks can assert how many upstream calls a
//! client really made (the operator's whole point is to share and limit them).

use std::collections::BTreeMap;

use serde::Serialize;

/// How a task-list request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// 200 with a task list.
    Ok,
    /// 400 / 403 / 404: the client asked for something wrong.
    ClientError,
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

/// All counters, rendered by `GET /_sim/stats`. `total` counts task-list requests only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(super) struct Stats {
    projects: BTreeMap<String, ProjectStats>,
    total: u64,
    iam: IamStats,
}

impl Stats {
    /// Counts one task-list request of `project_id`.
    pub fn record(&mut self, project_id: &str, outcome: Outcome, faulted: bool) {
        self.total += 1;
        let project = self.projects.entry(project_id.to_string()).or_default();
        project.requests += 1;
        match outcome {
            Outcome::Ok => project.ok += 1,
            Outcome::ClientError => project.client_errors += 1,
            Outcome::Unauthorized => project.unauthorized += 1,
            Outcome::Injected => {}
        }
        if faulted || outcome == Outcome::Injected {
            project.faulted += 1;
        }
    }

    /// Counts one IAM project-list request.
    pub fn record_iam(&mut self, outcome: Outcome) {
        self.iam.requests += 1;
        match outcome {
            Outcome::Ok => self.iam.ok += 1,
            Outcome::ClientError => self.iam.client_errors += 1,
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
}
