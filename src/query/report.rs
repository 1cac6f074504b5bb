//! Poll outcome -> `DcsTaskQueryStatus`, conditions included.
//!
//! The CLI prints exactly what the controller writes because both build it here. Conditions
//! follow kstatus: `Reconciling` while a wait is pending or a retry is under way, `Stalled`
//! when a human must act (bad spec, missing credentials, refused credentials, failed task),
//! `Ready` once the answer is known; plus `Complete`/`Failed` for `kubectl wait`.

use chrono::{DateTime, Utc};

use super::evaluate::Evaluation;
use super::validate::SpecErrors;
use crate::api::conditions::{
    self, COMPLETE, ConditionStatus, DesiredCondition, FAILED, READY, RECONCILING, STALLED,
};
use crate::api::time::{from_chrono, to_chrono};
use crate::api::{DcsTaskQueryStatus, LastError, WaitForStatus, WaitPhase};
use crate::dcs::DcsError;

/// Condition reasons, CamelCase as Kubernetes expects.
pub mod reason {
    pub const SYNCED: &str = "Synced";
    pub const WAIT_PENDING: &str = "WaitPending";
    pub const TASK_SUCCEEDED: &str = "TaskSucceeded";
    pub const TASK_FAILED: &str = "TaskFailed";
    pub const TIMED_OUT: &str = "TimedOut";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const CREDENTIALS_UNAVAILABLE: &str = "CredentialsUnavailable";
    pub const AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
    pub const ENDPOINT_NOT_ALLOWED: &str = "EndpointNotAllowed";
    pub const UPSTREAM_ERROR: &str = "UpstreamError";
    pub const SUSPENDED: &str = "Suspended";
    pub const PROGRESSING: &str = "Progressing";
}

/// Longest message written to a condition, `waitFor.message` or `lastError`, in bytes. Messages
/// quote upstream text (an `error_msg` can be megabytes) and tenant input; this bound also
/// keeps the events built from them under the 1024-byte note limit Kubernetes enforces.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Longest upstream `error_code` kept in `lastError`.
pub const MAX_ERROR_CODE_BYTES: usize = 64;

fn bounded(text: &str, max_bytes: usize) -> String {
    crate::text::truncate_bytes(text, max_bytes).into_owned()
}

/// What happened at this poll.
#[derive(Debug, Clone, Copy)]
pub enum PollOutcome<'a> {
    /// The task center answered; here is what it means.
    Fetched(&'a Evaluation),
    /// The task center (or the way to it) failed.
    FetchFailed(&'a DcsError),
    /// The spec breaks a rule; no call was made.
    InvalidSpec(&'a SpecErrors),
    /// Credentials could not be assembled (missing Secret or key); no call was made.
    CredentialsUnavailable(&'a str),
    /// The endpoint is not on the operator's allow-list; no call was made.
    EndpointNotAllowed(&'a str),
    /// `spec.suspend` is set; nothing was polled.
    Suspended,
}

/// Everything the status depends on besides the outcome.
#[derive(Debug, Clone, Copy)]
pub struct StatusContext<'a> {
    pub previous: Option<&'a DcsTaskQueryStatus>,
    pub generation: Option<i64>,
    pub has_wait: bool,
    pub wait_started_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// When the current generation's wait started: kept from the previous status when it describes
/// the same generation, otherwise now (a new object, or a spec change restarts the wait).
pub fn wait_started_at(
    previous: Option<&DcsTaskQueryStatus>,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    previous
        .filter(|status| status.observed_generation == generation)
        .and_then(|status| status.wait_for.as_ref())
        .and_then(|wait| wait.started_at.as_ref())
        .map(to_chrono)
        .unwrap_or(now)
}

/// Builds the status for `outcome`, keeping what was known before where this poll adds nothing.
pub fn build_status(context: &StatusContext<'_>, outcome: PollOutcome<'_>) -> DcsTaskQueryStatus {
    let now = from_chrono(context.now);
    let same_generation = context
        .previous
        .is_some_and(|p| p.observed_generation == context.generation);
    let mut status = context.previous.cloned().unwrap_or_default();
    if !same_generation {
        // A verdict about an older spec must not be read as an answer about this one.
        status.wait_for = None;
    }
    status.observed_generation = context.generation;

    let desired = match outcome {
        PollOutcome::Fetched(evaluation) => {
            status.task_count = evaluation.task_count.and_then(|n| i64::try_from(n).ok());
            status.matched_count = i64::try_from(evaluation.matched_count).ok();
            status.tasks = evaluation.tasks.clone();
            status.latest = evaluation.latest.clone();
            status.last_sync_time = Some(now.clone());
            status.last_error = None;
            status.wait_for = evaluation.wait.as_ref().map(|verdict| WaitForStatus {
                phase: verdict.phase,
                task_id: verdict.task.as_ref().and_then(|t| t.id.clone()),
                job_id: verdict.task.as_ref().and_then(|t| t.job_id.clone()),
                status: verdict.task.as_ref().and_then(|t| t.status.clone()),
                started_at: Some(from_chrono(context.wait_started_at)),
                message: Some(bounded(&verdict.message, MAX_MESSAGE_BYTES)),
            });
            fetched_conditions(evaluation)
        }
        PollOutcome::FetchFailed(error) => {
            let api = error.api_error();
            status.last_error = Some(LastError {
                http_status: api.map(|a| i32::from(a.http_status)),
                error_code: api
                    .and_then(|a| a.error_code.as_deref())
                    .map(|code| bounded(code, MAX_ERROR_CODE_BYTES)),
                error_msg: api
                    .and_then(|a| a.error_msg.as_deref())
                    .map(|msg| bounded(msg, MAX_MESSAGE_BYTES)),
                message: bounded(&error.to_string(), MAX_MESSAGE_BYTES),
                time: now.clone(),
            });
            if error.is_auth_failure() {
                Verdict::STALLED.conditions(
                    context.has_wait,
                    reason::AUTHENTICATION_FAILED,
                    &error.to_string(),
                )
            } else {
                Verdict::RETRYING.conditions(
                    context.has_wait,
                    reason::UPSTREAM_ERROR,
                    &error.to_string(),
                )
            }
        }
        PollOutcome::InvalidSpec(errors) => {
            Verdict::STALLED.conditions(context.has_wait, reason::INVALID_SPEC, &errors.to_string())
        }
        PollOutcome::CredentialsUnavailable(message) => {
            Verdict::STALLED.conditions(context.has_wait, reason::CREDENTIALS_UNAVAILABLE, message)
        }
        PollOutcome::EndpointNotAllowed(message) => {
            Verdict::STALLED.conditions(context.has_wait, reason::ENDPOINT_NOT_ALLOWED, message)
        }
        PollOutcome::Suspended => Verdict::SUSPENDED.conditions(
            context.has_wait,
            reason::SUSPENDED,
            "spec.suspend is true: not polling",
        ),
    };
    status.conditions = conditions::merge(&status.conditions, &desired, context.generation, &now);
    status
}

fn fetched_conditions(evaluation: &Evaluation) -> Vec<DesiredCondition> {
    let Some(verdict) = &evaluation.wait else {
        let message = format!(
            "{} of {} tasks matched{}",
            evaluation.matched_count,
            evaluation
                .task_count
                .map_or_else(|| "?".to_string(), |n| n.to_string()),
            if evaluation.incomplete {
                " (paging stopped at spec.query.maxPages)"
            } else {
                ""
            }
        );
        let message = match evaluation.omitted_names {
            0 => message,
            n => format!(
                "{message}; status.latest keeps the {} task names with the newest tasks ({n} more left out)",
                super::evaluate::MAX_LATEST_NAMES
            ),
        };
        return Verdict::SYNCED.conditions(false, reason::SYNCED, &message);
    };
    let (verdict_kind, reason) = match verdict.phase {
        WaitPhase::Pending => (Verdict::WAIT_PENDING, reason::WAIT_PENDING),
        WaitPhase::Succeeded => (Verdict::SYNCED, reason::TASK_SUCCEEDED),
        WaitPhase::Failed => (Verdict::TASK_FAILED, reason::TASK_FAILED),
        WaitPhase::TimedOut => (Verdict::TASK_FAILED, reason::TIMED_OUT),
    };
    verdict_kind.conditions(true, reason, &verdict.message)
}

/// One row of the condition table: what each condition says in one situation.
#[derive(Clone, Copy)]
struct Verdict {
    ready: ConditionStatus,
    reconciling: bool,
    stalled: bool,
    /// `Complete` and `Failed`, written only for objects with `waitFor`.
    complete: ConditionStatus,
    failed: ConditionStatus,
}

impl Verdict {
    /// The answer is known and good (a plain query synced, or the wait succeeded).
    const SYNCED: Verdict = Verdict {
        ready: ConditionStatus::True,
        reconciling: false,
        stalled: false,
        complete: ConditionStatus::True,
        failed: ConditionStatus::False,
    };
    /// The awaited task is not finished yet.
    const WAIT_PENDING: Verdict = Verdict {
        ready: ConditionStatus::False,
        reconciling: true,
        stalled: false,
        complete: ConditionStatus::False,
        failed: ConditionStatus::False,
    };
    /// The awaited task failed or the wait timed out.
    const TASK_FAILED: Verdict = Verdict {
        ready: ConditionStatus::False,
        reconciling: false,
        stalled: true,
        complete: ConditionStatus::False,
        failed: ConditionStatus::True,
    };
    /// A human must act (bad spec, credentials, endpoint); the wait can be neither.
    const STALLED: Verdict = Verdict {
        ready: ConditionStatus::False,
        reconciling: false,
        stalled: true,
        complete: ConditionStatus::Unknown,
        failed: ConditionStatus::Unknown,
    };
    /// A transient failure being retried; the previous results stay.
    const RETRYING: Verdict = Verdict {
        ready: ConditionStatus::False,
        reconciling: true,
        stalled: false,
        complete: ConditionStatus::Unknown,
        failed: ConditionStatus::Unknown,
    };
    /// `spec.suspend`: nothing is known or being done.
    const SUSPENDED: Verdict = Verdict {
        ready: ConditionStatus::Unknown,
        reconciling: false,
        stalled: false,
        complete: ConditionStatus::Unknown,
        failed: ConditionStatus::Unknown,
    };
    /// Before the first poll.
    const FIRST_VISIT: Verdict = Verdict {
        ready: ConditionStatus::Unknown,
        reconciling: true,
        stalled: false,
        complete: ConditionStatus::Unknown,
        failed: ConditionStatus::Unknown,
    };

    fn conditions(self, has_wait: bool, reason: &str, message: &str) -> Vec<DesiredCondition> {
        let message = bounded(message, MAX_MESSAGE_BYTES);
        let message = message.as_str();
        let mut list = vec![
            DesiredCondition::new(READY, self.ready, reason, message),
            DesiredCondition::new(RECONCILING, self.reconciling, reason, message),
            DesiredCondition::new(STALLED, self.stalled, reason, message),
        ];
        if has_wait {
            list.push(DesiredCondition::new(
                COMPLETE,
                self.complete,
                reason,
                message,
            ));
            list.push(DesiredCondition::new(FAILED, self.failed, reason, message));
        }
        list
    }
}

/// The status a new object gets before its first poll, so it is never mistaken for healthy.
pub fn initial_status(context: &StatusContext<'_>) -> DcsTaskQueryStatus {
    let now = from_chrono(context.now);
    let desired = Verdict::FIRST_VISIT.conditions(
        context.has_wait,
        reason::PROGRESSING,
        "first poll of the DCS task center in progress",
    );
    DcsTaskQueryStatus {
        observed_generation: context.generation,
        conditions: conditions::merge(&[], &desired, context.generation, &now),
        ..DcsTaskQueryStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::LatestTask;
    use crate::api::conditions::find;
    use crate::dcs::{ApiError, DcsError};
    use crate::query::evaluate::WaitVerdict;
    use chrono::TimeZone;

    fn at(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, s).unwrap()
    }

    fn context(
        previous: Option<&DcsTaskQueryStatus>,
        generation: i64,
        now: u32,
    ) -> StatusContext<'_> {
        StatusContext {
            previous,
            generation: Some(generation),
            has_wait: true,
            wait_started_at: at(0),
            now: at(now),
        }
    }

    fn evaluation(phase: WaitPhase) -> Evaluation {
        Evaluation {
            task_count: Some(1),
            matched_count: 1,
            tasks: vec![],
            latest: vec![],
            wait: Some(WaitVerdict {
                phase,
                task: Some(LatestTask {
                    name: "masterStandbySwapJob".into(),
                    id: Some("t1".into()),
                    job_id: Some("j1".into()),
                    status: Some("SUCCESS".into()),
                    created_at: None,
                    updated_at: None,
                }),
                message: "m".into(),
            }),
            active: !phase.is_resolved(),
            omitted_tasks: 0,
            omitted_names: 0,
            incomplete: false,
        }
    }

    fn status_of(status: &DcsTaskQueryStatus, type_: &str) -> String {
        find(&status.conditions, type_).unwrap().status.clone()
    }

    #[test]
    fn pending_then_complete() {
        let pending = build_status(
            &context(None, 1, 1),
            PollOutcome::Fetched(&evaluation(WaitPhase::Pending)),
        );
        assert_eq!(status_of(&pending, READY), "False");
        assert_eq!(status_of(&pending, RECONCILING), "True");
        assert_eq!(status_of(&pending, COMPLETE), "False");
        assert_eq!(pending.wait_for.as_ref().unwrap().phase, WaitPhase::Pending);

        let done = build_status(
            &context(Some(&pending), 1, 9),
            PollOutcome::Fetched(&evaluation(WaitPhase::Succeeded)),
        );
        assert_eq!(status_of(&done, READY), "True");
        assert_eq!(status_of(&done, COMPLETE), "True");
        assert_eq!(status_of(&done, RECONCILING), "False");
        assert_eq!(status_of(&done, FAILED), "False");
        let failed = find(&done.conditions, FAILED).unwrap();
        assert_eq!(
            failed.last_transition_time,
            from_chrono(at(1)),
            "Failed stayed False"
        );
        assert!(
            done.conditions
                .iter()
                .all(|c| c.observed_generation == Some(1))
        );
    }

    #[test]
    fn failure_and_timeout_stall() {
        for (phase, why) in [
            (WaitPhase::Failed, reason::TASK_FAILED),
            (WaitPhase::TimedOut, reason::TIMED_OUT),
        ] {
            let s = build_status(
                &context(None, 1, 1),
                PollOutcome::Fetched(&evaluation(phase)),
            );
            assert_eq!(status_of(&s, FAILED), "True");
            assert_eq!(status_of(&s, STALLED), "True");
            assert_eq!(status_of(&s, READY), "False");
            assert_eq!(find(&s.conditions, STALLED).unwrap().reason, why);
        }
    }

    #[test]
    fn errors_keep_the_last_good_results() {
        let good = build_status(
            &context(None, 1, 1),
            PollOutcome::Fetched(&evaluation(WaitPhase::Pending)),
        );
        let error = DcsError::Api {
            endpoint: "https://e".into(),
            error: ApiError {
                http_status: 429,
                error_code: Some("APIG.0308".into()),
                error_msg: Some("throttled".into()),
                request_id: None,
                retry_after: None,
            },
        };
        let after = build_status(
            &context(Some(&good), 1, 5),
            PollOutcome::FetchFailed(&error),
        );
        assert_eq!(after.task_count, Some(1));
        assert_eq!(after.last_sync_time, good.last_sync_time);
        assert_eq!(after.wait_for, good.wait_for);
        let last = after.last_error.as_ref().unwrap();
        assert_eq!(last.http_status, Some(429));
        assert_eq!(last.error_code.as_deref(), Some("APIG.0308"));
        assert_eq!(status_of(&after, RECONCILING), "True");
        assert_eq!(status_of(&after, STALLED), "False");

        let recovered = build_status(
            &context(Some(&after), 1, 9),
            PollOutcome::Fetched(&evaluation(WaitPhase::Pending)),
        );
        assert_eq!(recovered.last_error, None);
    }

    #[test]
    fn auth_failures_and_bad_specs_stall_with_the_message() {
        let error = DcsError::Api {
            endpoint: "https://e".into(),
            error: ApiError {
                http_status: 401,
                error_code: Some("APIG.0301".into()),
                error_msg: None,
                request_id: None,
                retry_after: None,
            },
        };
        let s = build_status(&context(None, 1, 1), PollOutcome::FetchFailed(&error));
        assert_eq!(
            find(&s.conditions, STALLED).unwrap().reason,
            reason::AUTHENTICATION_FAILED
        );
        assert_eq!(status_of(&s, COMPLETE), "Unknown");

        let s = build_status(
            &context(None, 1, 1),
            PollOutcome::CredentialsUnavailable("Secret default/dcs not found"),
        );
        let stalled = find(&s.conditions, STALLED).unwrap();
        assert_eq!(stalled.status, "True");
        assert_eq!(stalled.message, "Secret default/dcs not found");
    }

    #[test]
    fn a_spec_change_drops_the_old_verdict_and_restarts_the_wait_clock() {
        let done = build_status(
            &context(None, 1, 1),
            PollOutcome::Fetched(&evaluation(WaitPhase::Succeeded)),
        );
        assert_eq!(wait_started_at(Some(&done), Some(1), at(30)), at(0));
        assert_eq!(wait_started_at(Some(&done), Some(2), at(30)), at(30));
        let errors = SpecErrors(vec![]);
        let changed = build_status(
            &context(Some(&done), 2, 3),
            PollOutcome::InvalidSpec(&errors),
        );
        assert_eq!(changed.wait_for, None);
        assert_eq!(changed.observed_generation, Some(2));
        assert!(
            changed
                .conditions
                .iter()
                .all(|c| c.observed_generation == Some(2))
        );
        assert_eq!(status_of(&changed, COMPLETE), "Unknown");
    }

    /// kstatus' documented rules for custom resources (what Flux's `wait: true` applies):
    /// observedGeneration behind generation -> InProgress; Reconciling=True -> InProgress;
    /// Stalled=True -> Failed; otherwise Current. The stricter reading some tools add
    /// (Ready=False is not Current) is checked as well.
    fn kstatus(generation: i64, status: &DcsTaskQueryStatus) -> &'static str {
        let is_true =
            |type_: &str| find(&status.conditions, type_).is_some_and(|c| c.status == "True");
        if status.observed_generation.is_some_and(|g| g != generation) {
            return "InProgress";
        }
        if is_true(RECONCILING) {
            return "InProgress";
        }
        if is_true(STALLED) {
            return "Failed";
        }
        "Current"
    }

    #[test]
    fn every_phase_maps_to_the_right_kstatus() {
        let first = initial_status(&context(None, 1, 0));
        let pending = build_status(
            &context(None, 1, 1),
            PollOutcome::Fetched(&evaluation(WaitPhase::Pending)),
        );
        let succeeded = build_status(
            &context(None, 1, 1),
            PollOutcome::Fetched(&evaluation(WaitPhase::Succeeded)),
        );
        let failed = build_status(
            &context(None, 1, 1),
            PollOutcome::Fetched(&evaluation(WaitPhase::Failed)),
        );
        let timed_out = build_status(
            &context(None, 1, 1),
            PollOutcome::Fetched(&evaluation(WaitPhase::TimedOut)),
        );
        let errors = SpecErrors(vec![]);
        let invalid = build_status(&context(None, 1, 1), PollOutcome::InvalidSpec(&errors));
        let transient_error = DcsError::Timeout {
            endpoint: "https://e".into(),
            timeout: std::time::Duration::from_secs(30),
        };
        let retrying = build_status(
            &context(None, 1, 1),
            PollOutcome::FetchFailed(&transient_error),
        );
        let mut plain = evaluation(WaitPhase::Pending);
        plain.wait = None;
        let plain_context = StatusContext {
            has_wait: false,
            ..context(None, 1, 1)
        };
        let synced = build_status(&plain_context, PollOutcome::Fetched(&plain));

        let cases = [
            ("first visit", &first, 1, "InProgress"),
            ("wait pending", &pending, 1, "InProgress"),
            ("wait succeeded", &succeeded, 1, "Current"),
            ("task failed", &failed, 1, "Failed"),
            ("wait timed out", &timed_out, 1, "Failed"),
            ("invalid spec", &invalid, 1, "Failed"),
            ("upstream error, retrying", &retrying, 1, "InProgress"),
            ("no waitFor, synced", &synced, 1, "Current"),
            (
                "spec changed, not yet observed",
                &succeeded,
                2,
                "InProgress",
            ),
        ];
        for (name, status, generation, expected) in cases {
            assert_eq!(kstatus(generation, status), expected, "{name}");
            if status.observed_generation != Some(generation) {
                // kubectl wait and kstatus see the lag through observedGeneration.
                assert!(
                    status
                        .conditions
                        .iter()
                        .all(|c| c.observed_generation < Some(generation))
                );
                continue;
            }
            let ready = find(&status.conditions, READY).map(|c| c.status.as_str());
            if expected == "Current" {
                assert_eq!(ready, Some("True"), "{name}: Current must also be Ready");
            } else {
                assert_ne!(ready, Some("True"), "{name}: not Current, so not Ready");
            }
        }
    }

    #[test]
    fn initial_status_is_never_healthy() {
        let s = initial_status(&context(None, 1, 0));
        assert_eq!(status_of(&s, READY), "Unknown");
        assert_eq!(status_of(&s, RECONCILING), "True");
        assert_eq!(status_of(&s, COMPLETE), "Unknown");
    }
}
