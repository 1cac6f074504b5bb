//! Injected faults: throttling, server errors, slow answers and dropped connections, queued
//! through `POST /_sim/faults` so tests can prove how a client retries and backs off.

use std::collections::VecDeque;
use std::time::Duration;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::wire;

/// What a faulted request gets instead of (or, for a latency-only fault, before) its answer.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum FaultAction {
    /// Answer with this status and body. A JSON string body is sent as raw text, to mimic a
    /// proxy's non-JSON error page. `retry_after` (seconds) becomes a `Retry-After` header, as
    /// a throttling gateway sends.
    Answer {
        status: StatusCode,
        body: Value,
        retry_after: Option<u32>,
    },
    /// Break the connection without a complete HTTP response.
    Drop,
    /// Only the latency; then answer normally.
    Delay,
}

/// The DCS APIs a fault can be aimed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Api {
    /// `GET /v2/{project_id}/tasks` (`ListCenterTask`).
    Tasks,
    /// `GET /v2/{project_id}/jobs/{job_id}` (`ShowJobInfo`).
    Jobs,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Fault {
    /// `None`: any project.
    pub project_id: Option<String>,
    /// `None`: either API.
    pub api: Option<Api>,
    pub latency: Duration,
    pub action: FaultAction,
}

/// `POST /_sim/faults` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct FaultRequest {
    #[serde(default = "one")]
    count: u32,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    latency: Option<String>,
    #[serde(default)]
    drop: bool,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    api: Option<Api>,
    /// Seconds for a `Retry-After` header on the answer (needs `status`).
    #[serde(default)]
    retry_after: Option<u32>,
}

fn one() -> u32 {
    1
}

impl FaultRequest {
    /// Validates the request into a fault and how many requests it applies to.
    pub fn into_fault(self) -> Result<(Fault, u32), String> {
        if self.count == 0 {
            return Err("`count` must be at least 1".into());
        }
        let latency = match &self.latency {
            None => Duration::ZERO,
            Some(text) => {
                dcs_common::duration::parse(text).map_err(|error| format!("`latency`: {error}"))?
            }
        };
        let action = match (self.status, self.drop) {
            (Some(_), true) => return Err("give `status` or `drop: true`, not both".into()),
            (None, _) if self.retry_after.is_some() => {
                return Err("`retryAfter` needs a `status`".into());
            }
            (None, true) => {
                if self.body.is_some() {
                    return Err("`body` makes no sense with `drop: true`".into());
                }
                FaultAction::Drop
            }
            (None, false) => {
                if self.body.is_some() {
                    return Err("`body` needs a `status`".into());
                }
                FaultAction::Delay
            }
            (Some(code), false) => {
                let status = StatusCode::from_u16(code)
                    .ok()
                    .filter(|status| (100..=599).contains(&status.as_u16()))
                    .ok_or_else(|| format!("`status` {code} is not an HTTP status code"))?;
                FaultAction::Answer {
                    status,
                    body: self.body.unwrap_or_else(|| default_body(status)),
                    retry_after: self.retry_after,
                }
            }
        };
        Ok((
            Fault {
                project_id: self.project_id,
                api: self.api,
                latency,
                action,
            },
            self.count,
        ))
    }
}

/// A plausible body for a status when the test did not give one.
fn default_body(status: StatusCode) -> Value {
    match status.as_u16() {
        429 => wire::error_body(
            "APIG.0308",
            "The throttling threshold has been reached: policy user over ratelimit,limit:5,time:1 minute",
        ),
        500..=599 => wire::error_body("111500000", "Internal service error."),
        code => wire::error_body(
            "SIM.0001",
            &format!("HTTP {code} injected by the simulator"),
        ),
    }
}

#[derive(Debug)]
struct Queued {
    fault: Fault,
    remaining: u32,
}

/// Pending faults, first in first out.
#[derive(Debug, Default)]
pub(super) struct FaultQueue {
    entries: VecDeque<Queued>,
}

impl FaultQueue {
    pub fn push(&mut self, fault: Fault, count: u32) {
        self.entries.push_back(Queued {
            fault,
            remaining: count,
        });
    }

    /// Takes one use of the oldest entry that applies to a request of `project_id` to `api`.
    pub fn take_for(&mut self, project_id: &str, api: Api) -> Option<Fault> {
        let index = self.entries.iter().position(|entry| {
            let fault = &entry.fault;
            fault
                .project_id
                .as_deref()
                .is_none_or(|project| project == project_id)
                && fault.api.is_none_or(|aimed| aimed == api)
        })?;
        let entry = &mut self.entries[index];
        entry.remaining -= 1;
        let fault = entry.fault.clone();
        if entry.remaining == 0 {
            self.entries.remove(index);
        }
        Some(fault)
    }

    /// Requests still to be faulted, over all entries.
    pub fn pending(&self) -> u64 {
        self.entries
            .iter()
            .map(|entry| u64::from(entry.remaining))
            .sum()
    }

    /// Removes everything; returns how many requests would still have been faulted.
    pub fn clear(&mut self) -> u64 {
        let pending = self.pending();
        self.entries.clear();
        pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fault(body: Value) -> Result<(Fault, u32), String> {
        serde_json::from_value::<FaultRequest>(body)
            .map_err(|error| error.to_string())?
            .into_fault()
    }

    #[test]
    fn requests_become_faults() {
        let (throttle, count) = fault(json!({"count": 3, "status": 429})).unwrap();
        assert_eq!(count, 3);
        assert!(matches!(
            throttle.action,
            FaultAction::Answer { status: StatusCode::TOO_MANY_REQUESTS, ref body, retry_after: None }
                if body["error_code"] == "APIG.0308"
        ));
        let (asked, _) = fault(json!({"status": 429, "retryAfter": 2})).unwrap();
        assert!(matches!(
            asked.action,
            FaultAction::Answer {
                retry_after: Some(2),
                ..
            }
        ));
        assert!(fault(json!({"retryAfter": 2})).is_err());
        let (drop, _) = fault(json!({"drop": true, "latency": "250ms", "projectId": "p"})).unwrap();
        assert_eq!(drop.action, FaultAction::Drop);
        assert_eq!(drop.latency, Duration::from_millis(250));
        assert_eq!(drop.project_id.as_deref(), Some("p"));
        let (delay, count) = fault(json!({"latency": "1s"})).unwrap();
        assert_eq!((delay.action, count), (FaultAction::Delay, 1));
    }

    #[test]
    fn contradictory_requests_are_refused() {
        for bad in [
            json!({"count": 0, "status": 500}),
            json!({"status": 429, "drop": true}),
            json!({"body": {}}),
            json!({"status": 1000}),
            json!({"status": 503, "latency": "soon"}),
            json!({"statuz": 503}),
        ] {
            assert!(fault(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn faults_aimed_at_one_api_leave_the_other_alone() {
        let mut queue = FaultQueue::default();
        let (jobs, _) = fault(json!({"status": 403, "api": "jobs"})).unwrap();
        let (tasks, _) = fault(json!({"status": 500, "api": "tasks", "projectId": "p"})).unwrap();
        let (any, _) = fault(json!({"status": 429})).unwrap();
        queue.push(jobs, 1);
        queue.push(tasks, 1);
        queue.push(any, 2);
        let status = |fault: Option<Fault>| match fault.map(|fault| fault.action) {
            Some(FaultAction::Answer { status, .. }) => Some(status.as_u16()),
            _ => None,
        };
        assert_eq!(status(queue.take_for("p", Api::Tasks)), Some(500));
        assert_eq!(status(queue.take_for("p", Api::Tasks)), Some(429));
        assert_eq!(status(queue.take_for("p", Api::Jobs)), Some(403));
        assert_eq!(status(queue.take_for("p", Api::Jobs)), Some(429));
        assert_eq!(queue.pending(), 0);
        assert!(fault(json!({"status": 500, "api": "instances"})).is_err());
    }

    #[test]
    fn the_queue_is_fifo_and_respects_projects() {
        let mut queue = FaultQueue::default();
        let (only_p, _) = fault(json!({"status": 500, "projectId": "p"})).unwrap();
        let (any, _) = fault(json!({"status": 429})).unwrap();
        queue.push(only_p, 1);
        queue.push(any, 2);
        assert_eq!(queue.pending(), 3);
        let status = |fault: Option<Fault>| match fault.map(|fault| fault.action) {
            Some(FaultAction::Answer { status, .. }) => Some(status.as_u16()),
            _ => None,
        };
        assert_eq!(status(queue.take_for("q", Api::Tasks)), Some(429));
        assert_eq!(status(queue.take_for("p", Api::Tasks)), Some(500));
        assert_eq!(status(queue.take_for("p", Api::Tasks)), Some(429));
        assert_eq!(status(queue.take_for("p", Api::Tasks)), None);
        queue.push(fault(json!({"drop": true})).unwrap().0, 5);
        assert_eq!(queue.clear(), 5);
        assert!(queue.take_for("p", Api::Tasks).is_none());
    }
}
