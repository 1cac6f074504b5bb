//! One round of a query, as one pure function: what an object's feeds gave it (or why it has
//! none), and what was written before -> the status to show, whether to write it, its events,
//! when to look again, and what its feeds should do next.
//!
//! The controller's reconcile and `query --watch` both call [`round`] with an [`Outcome`]; they
//! only do the I/O around it (read the feeds, write the status, publish the events). So an
//! object and the CLI resolve, stall, retry and time out the same way, and every outcome is
//! mapped to a status in one place.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::decide::{Decision, DecisionInput, ProjectShown, decide};
use super::evaluate::evaluate;
use super::job::{Combined, JobAnswer, combine};
use super::plan::QueryPlan;
use super::report::{PollOutcome, StatusContext};
use super::schedule::{Retry, retry_delay};
use super::validate::SpecErrors;
use crate::api::{DcsTaskQuerySpec, DcsTaskQueryStatus, LastError};
use crate::dcs::{ApiError, DcsError, FailureClass, IamAction, ProjectDiscoveryError, TaskListing};

/// What an object has to go on this round.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// `spec.suspend`: nothing is polled.
    Suspended,
    /// The spec breaks these rules: nothing is polled until it changes.
    Invalid(&'a SpecErrors),
    /// No call could be made, and why.
    Unserved(&'a Unserved),
    /// These credentials were refused by `endpoint` less than a cool-down ago (`refusal` is the
    /// `lastError` recorded then): no call was made, the refusal stands.
    StillRefused {
        refusal: &'a LastError,
        endpoint: &'a str,
    },
    /// The feeds have not answered yet.
    NoAnswerYet,
    /// The task feed's latest answer and, for a wait that reads the job API, the job feed's
    /// (`None` until its first).
    Answered {
        tasks: Listed<'a>,
        job: Option<JobAnswer<'a>>,
    },
}

/// The task feed's latest answer.
#[derive(Debug, Clone, Copy)]
pub struct Listed<'a> {
    pub result: Result<&'a Arc<TaskListing>, &'a Arc<DcsError>>,
    /// When the listing was fetched, or the failed poll ended.
    pub fetched_at: DateTime<Utc>,
    /// The newest good listing, kept through failures.
    pub last_good: Option<&'a TaskListing>,
}

/// Why no upstream call could be made.
#[derive(Debug, Clone)]
pub enum Unserved {
    /// The credentials could not be assembled (the message names the Secret or key).
    /// `operator_side`: the operator cannot read Secrets yet, so it retries soon.
    Credentials {
        message: String,
        operator_side: bool,
    },
    /// The endpoint is not on the operator's allow-list (the message says which and why).
    Endpoint(String),
    /// Project discovery failed, the `consecutive`-th time in a row. A transient IAM failure is
    /// retried like a failed fetch; anything else (no project, several, refused credentials)
    /// needs a person and stalls with the exact reason.
    ProjectDiscovery {
        error: Arc<ProjectDiscoveryError>,
        consecutive: u32,
    },
    /// Project discovery is still running: nothing is known yet, and nothing is wrong.
    ProjectDiscoveryPending,
}

impl Unserved {
    /// What the reason is about, for metric labels and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Unserved::Credentials { .. } => "credentials",
            Unserved::Endpoint(_) => "endpoint",
            Unserved::ProjectDiscovery { .. } | Unserved::ProjectDiscoveryPending => {
                "project_discovery"
            }
        }
    }
}

/// What was written before.
#[derive(Debug, Clone, Copy, Default)]
pub struct Previous<'a> {
    pub status: Option<&'a DcsTaskQueryStatus>,
    /// [`super::content_digest`] of the full status written, when known.
    pub digest: Option<u64>,
    /// Whether `status` still holds `tasks` and `latest` (the controller's cache drops them).
    pub complete: bool,
}

/// Everything a round depends on besides the outcome.
#[derive(Debug, Clone, Copy)]
pub struct Round<'a> {
    pub spec: &'a DcsTaskQuerySpec,
    /// `None` when the spec is suspended or invalid.
    pub plan: Option<&'a QueryPlan>,
    pub generation: Option<i64>,
    pub previous: Previous<'a>,
    /// When this generation's wait started (see [`super::wait_started_at`]).
    pub wait_started_at: DateTime<Utc>,
    /// Which credentials are in use (a Secret's resourceVersion), recorded with errors.
    pub credentials_revision: Option<&'a str>,
    /// The project queried, once the target is known.
    pub project: Option<&'a str>,
    /// Flux's `reconcile.fluxcd.io/requestedAt`, to echo as `lastHandledReconcileAt`.
    pub requested_at: Option<&'a str>,
    /// A refresh was asked and its answer has not come yet: `requested_at` is not echoed.
    pub refresh_pending: bool,
    pub now: DateTime<Utc>,
    /// A random draw in [-1, 1] that spreads retries (see [`super::schedule::JITTER_FRACTION`]).
    pub jitter: f64,
}

/// What to do after a round.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The status to show, its write and events; `None`: what is written stays, and the feed's
    /// next answer (or `recheck`) starts the next round.
    pub decision: Option<Decision>,
    /// What the object's feeds should do.
    pub feeds: FeedStep,
    /// When to run the next round without a new answer (`None`: only when something changes).
    pub recheck: Option<Duration>,
    /// The round showed a failure of this class rather than a fresh answer: retried by itself
    /// (`Transient`), or only a person can fix it.
    pub failure: Option<FailureClass>,
}

/// What an object's feeds should do after a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedStep {
    /// Stay subscribed: the feeds wake the object when an answer concerns it (and judge
    /// themselves whether it needs `activeInterval`).
    Stay,
    /// Stay subscribed, and ask the job feed again now: the task list shows the awaited job
    /// ended while the job feed's answer predates that (one write with the verdict, not two).
    AskJobAgain,
    /// Leave every feed: nothing to poll for (the wait resolved, or no call can be made).
    Leave,
}

/// The previous status's `tasks` and `latest` are needed and neither the caller nor the feed's
/// last good listing has them: read the stored status and run the round again with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the round needs the stored status's tasks, which the object cache does not keep")]
pub struct NeedsStoredTasks;

/// How an outcome reads as a status, before the decision.
struct Reading<'o> {
    outcome: PollOutcome<'o>,
    /// When the poll behind the outcome ended (`None`: no poll, judged at `now`).
    answered_at: Option<DateTime<Utc>>,
    /// The object's own retry, when no feed drives it.
    retry: Option<Retry>,
    feeds: FeedStep,
    failure: Option<FailureClass>,
}

impl<'o> Reading<'o> {
    fn unfed(
        outcome: PollOutcome<'o>,
        retry: Option<Retry>,
        failure: Option<FailureClass>,
    ) -> Self {
        Reading {
            outcome,
            answered_at: None,
            retry,
            feeds: FeedStep::Leave,
            failure,
        }
    }
}

/// What the status is built from besides the outcome's borrowed parts: the feeds' answers
/// combined, the error a remembered refusal stands for, a discovery failure's message.
struct Derived {
    combined: Option<Combined>,
    refused: Option<DcsError>,
    discovery: String,
}

impl Derived {
    fn of(input: &Round<'_>, outcome: Outcome<'_>) -> Derived {
        let combined = match (outcome, input.plan) {
            (Outcome::Answered { tasks, job }, Some(plan)) => Some(combine(
                plan,
                tasks.result,
                tasks.fetched_at,
                tasks.last_good,
                job,
                input.now,
            )),
            _ => None,
        };
        let refused = match outcome {
            Outcome::StillRefused { refusal, endpoint } => Some(refusal_error(refusal, endpoint)),
            _ => None,
        };
        let discovery = match outcome {
            Outcome::Unserved(Unserved::ProjectDiscovery { error, .. }) => error.to_string(),
            _ => String::new(),
        };
        Derived {
            combined,
            refused,
            discovery,
        }
    }
}

/// Runs one round: see the module documentation.
pub fn round(input: &Round<'_>, outcome: Outcome<'_>) -> Result<Step, NeedsStoredTasks> {
    let derived = Derived::of(input, outcome);
    let reading = match read(input, outcome, &derived) {
        Ok(reading) => reading,
        Err(Kept { feeds, recheck }) => return Ok(Step::keep(feeds, recheck)),
    };
    let last_good = match outcome {
        Outcome::Answered { tasks, .. } => tasks.last_good,
        _ => None,
    };
    let fresh = matches!(reading.outcome, PollOutcome::Fetched(_));
    let rebuilt = match input.previous.status {
        // Anything but a fresh listing keeps the tasks already known.
        Some(status) if !fresh && !input.previous.complete => {
            let (Some(listing), Some(plan)) = (last_good, input.plan) else {
                return Err(NeedsStoredTasks);
            };
            Some(with_tasks_of(status, plan, listing, input.now))
        }
        _ => None,
    };
    let decision = decide(DecisionInput {
        context: StatusContext {
            previous: rebuilt.as_ref().or(input.previous.status),
            generation: input.generation,
            has_wait: input.spec.wait_for.is_some(),
            wait_started_at: input.wait_started_at,
            wait_deadline: input
                .plan
                .and_then(|plan| plan.concern.wait.as_ref()?.deadline),
            credentials_revision: input.credentials_revision,
            last_good_at: last_good.and_then(|listing| listing.fetched_at),
            answered_at: reading.answered_at,
            now: input.now,
        },
        previous_digest: input.previous.digest,
        outcome: reading.outcome,
        spec: input.spec,
        requested_at: input.requested_at.filter(|_| !input.refresh_pending),
        retry_after: reading
            .retry
            .map(|retry| retry_delay(retry, active_interval(input), input.jitter)),
        project: project_shown(input, outcome),
    });
    Ok(Step {
        feeds: if decision.resolved {
            FeedStep::Leave
        } else {
            reading.feeds
        },
        recheck: decision.recheck,
        failure: reading.failure,
        decision: Some(decision),
    })
}

/// What is written stays: the feeds' first answer is on its way, the job feed is asked again,
/// or the project is being discovered again.
struct Kept {
    feeds: FeedStep,
    recheck: Option<Duration>,
}

/// How `outcome` reads as a status, or why what is written stays.
fn read<'o>(
    input: &Round<'_>,
    outcome: Outcome<'o>,
    derived: &'o Derived,
) -> Result<Reading<'o>, Kept> {
    let written = input.previous.status.is_some();
    let pending = matches!(outcome, Outcome::NoAnswerYet)
        || matches!(outcome, Outcome::Answered { .. }) && derived.combined.is_none();
    Ok(match (outcome, &derived.combined, &derived.refused) {
        (Outcome::Suspended, ..) => Reading::unfed(PollOutcome::Suspended, None, None),
        (Outcome::Invalid(errors), ..) => {
            Reading::unfed(PollOutcome::InvalidSpec(errors), None, None)
        }
        (Outcome::Unserved(Unserved::ProjectDiscoveryPending), ..) if written => {
            // What is written stays true while the project is discovered again.
            let retry = retry_delay(
                Retry::OperatorNotReady,
                active_interval(input),
                input.jitter,
            );
            return Err(Kept {
                feeds: FeedStep::Leave,
                recheck: Some(retry),
            });
        }
        (Outcome::Unserved(unserved), ..) => unserved_reading(unserved, &derived.discovery),
        (Outcome::StillRefused { refusal, .. }, _, Some(error)) => Reading::unfed(
            PollOutcome::StillRefused(refusal, error),
            Some(Retry::Failed {
                consecutive: 1,
                class: FailureClass::Auth,
            }),
            Some(FailureClass::Auth),
        ),
        // The feed wakes the object with its first answer; what is written stays until then.
        _ if pending && written => {
            return Err(Kept {
                feeds: FeedStep::Stay,
                recheck: None,
            });
        }
        (_, Some(Combined::JobBehindList), _) if written => {
            return Err(Kept {
                feeds: FeedStep::AskJobAgain,
                recheck: None,
            });
        }
        (Outcome::Answered { tasks, .. }, Some(combined), _) => answered_reading(tasks, combined),
        // No answer yet for a new object (a refusal always has its error).
        _ => Reading {
            feeds: FeedStep::Stay,
            ..Reading::unfed(PollOutcome::FirstPoll, None, None)
        },
    })
}

/// What `status.projectId` shows: nothing once discovery failed or is under way, the project
/// queried once the target is known, else what was shown.
fn project_shown<'a>(input: &Round<'a>, outcome: Outcome<'_>) -> ProjectShown<'a> {
    match (outcome, input.project) {
        (
            Outcome::Unserved(
                Unserved::ProjectDiscovery { .. } | Unserved::ProjectDiscoveryPending,
            ),
            _,
        ) => ProjectShown::Unknown,
        (_, Some(project)) => ProjectShown::Queried(project),
        (_, None) => ProjectShown::Unchanged,
    }
}

impl Step {
    /// What is written stays.
    fn keep(feeds: FeedStep, recheck: Option<Duration>) -> Step {
        Step {
            decision: None,
            feeds,
            recheck,
            failure: None,
        }
    }
}

fn active_interval(input: &Round<'_>) -> Duration {
    input
        .plan
        .map(|plan| plan.concern.active_interval)
        .unwrap_or(super::schedule::Intervals::default().active)
}

fn unserved_reading<'o>(unserved: &'o Unserved, discovery: &'o str) -> Reading<'o> {
    let person = Some(FailureClass::NeedsPerson);
    match unserved {
        Unserved::Credentials {
            message,
            operator_side,
        } => {
            let retry = if *operator_side {
                Retry::OperatorNotReady
            } else {
                Retry::Unusable
            };
            Reading::unfed(
                PollOutcome::CredentialsUnavailable(message),
                Some(retry),
                person,
            )
        }
        Unserved::Endpoint(message) => Reading::unfed(
            PollOutcome::EndpointNotAllowed(message),
            Some(Retry::Unusable),
            person,
        ),
        Unserved::ProjectDiscovery { error, consecutive } => match error
            .upstream()
            .filter(|upstream| upstream.class() == FailureClass::Transient)
        {
            Some(upstream) => Reading::unfed(
                PollOutcome::FetchFailed(upstream),
                Some(Retry::Failed {
                    consecutive: *consecutive,
                    class: FailureClass::Transient,
                }),
                Some(FailureClass::Transient),
            ),
            None => Reading::unfed(
                PollOutcome::ProjectDiscoveryFailed(discovery),
                Some(Retry::Unusable),
                person,
            ),
        },
        Unserved::ProjectDiscoveryPending => {
            Reading::unfed(PollOutcome::FirstPoll, Some(Retry::OperatorNotReady), None)
        }
    }
}

fn answered_reading<'o>(tasks: Listed<'_>, combined: &'o Combined) -> Reading<'o> {
    let fed = |outcome, answered_at, failure| Reading {
        outcome,
        answered_at: Some(answered_at),
        retry: None,
        feeds: FeedStep::Stay,
        failure,
    };
    match combined {
        Combined::Evaluated(evaluation) => {
            fed(PollOutcome::Fetched(evaluation), tasks.fetched_at, None)
        }
        Combined::Failed { error, answered_at } => fed(
            PollOutcome::FetchFailed(error),
            *answered_at,
            Some(error.class()),
        ),
        Combined::JobRefused {
            failure,
            job,
            error,
            answered_at,
        } => fed(
            PollOutcome::JobRefused {
                failure: *failure,
                job,
                error,
            },
            *answered_at,
            Some(FailureClass::NeedsPerson),
        ),
        Combined::JobBehindList => Reading {
            feeds: FeedStep::AskJobAgain,
            ..Reading::unfed(PollOutcome::FirstPoll, None, None)
        },
    }
}

/// The error a remembered refusal stands for, as the feed would report it again.
fn refusal_error(refused: &LastError, endpoint: &str) -> DcsError {
    DcsError::Api {
        endpoint: endpoint.to_string(),
        error: ApiError {
            http_status: refused
                .http_status
                .and_then(|code| u16::try_from(code).ok())
                .unwrap_or(401),
            error_code: refused.error_code.clone(),
            error_msg: refused.error_msg.clone(),
            request_id: None,
            retry_after: None,
            iam_action: IamAction::ListTasks,
        },
    }
}

/// `status` with the tasks and latest of the listing it was written from.
fn with_tasks_of(
    status: &DcsTaskQueryStatus,
    plan: &QueryPlan,
    listing: &TaskListing,
    now: DateTime<Utc>,
) -> DcsTaskQueryStatus {
    let evaluation = evaluate(plan, listing, now);
    DcsTaskQueryStatus {
        tasks: evaluation.tasks,
        latest: evaluation.latest,
        ..status.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::{self, READY, RECONCILING, STALLED};
    use crate::api::time::from_chrono;
    use crate::api::{TaskStatus, WaitPhase};
    use crate::dcs::{JobInfo, JobStatus};
    use crate::decide::EventReason;
    use crate::plan::{PlanContext, plan};
    use crate::report::reason;
    use crate::schedule::{AUTH_FAILURE_BACKOFF, OPERATOR_NOT_READY_RETRY, UNUSABLE_RETRY};
    use chrono::TimeZone;
    use serde_json::json;

    fn at(second: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap() + chrono::TimeDelta::seconds(second)
    }

    /// A query waiting for job `job-1` through the task list or the job API, polled every 5 s
    /// while active.
    fn spec(source: &str) -> DcsTaskQuerySpec {
        serde_json::from_value(json!({
            "region": "cn-north-4",
            "activeInterval": "5s",
            "waitFor": {"jobId": "job-1", "source": source, "timeout": "10m"},
        }))
        .unwrap()
    }

    fn planned(spec: &DcsTaskQuerySpec) -> QueryPlan {
        plan(spec, &PlanContext::starting_at(at(0))).unwrap()
    }

    fn listing(status: &str, fetched: i64) -> Arc<TaskListing> {
        crate::fixtures::switchover_listing(status, at(fetched))
    }

    fn failure(http_status: u16, action: IamAction) -> Arc<DcsError> {
        Arc::new(api_error(http_status, action))
    }

    fn api_error(http_status: u16, action: IamAction) -> DcsError {
        DcsError::Api {
            endpoint: "https://dcs.example".into(),
            error: ApiError {
                http_status,
                error_code: Some("DCS.0001".into()),
                error_msg: Some("boom".into()),
                request_id: None,
                retry_after: None,
                iam_action: action,
            },
        }
    }

    fn answered<'a>(
        result: Result<&'a Arc<TaskListing>, &'a Arc<DcsError>>,
        fetched: i64,
        last_good: Option<&'a TaskListing>,
        job: Option<JobAnswer<'a>>,
    ) -> Outcome<'a> {
        Outcome::Answered {
            tasks: Listed {
                result,
                fetched_at: at(fetched),
                last_good,
            },
            job,
        }
    }

    /// A round of `spec` at second 20 with `previous` written before and the project known.
    fn input<'a>(
        spec: &'a DcsTaskQuerySpec,
        plan: Option<&'a QueryPlan>,
        previous: Option<&'a DcsTaskQueryStatus>,
        complete: bool,
    ) -> Round<'a> {
        Round {
            spec,
            plan,
            generation: Some(1),
            previous: Previous {
                status: previous,
                digest: previous.map(super::super::content_digest),
                complete,
            },
            wait_started_at: at(0),
            credentials_revision: Some("7"),
            project: Some("p1"),
            requested_at: None,
            refresh_pending: false,
            now: at(20),
            jitter: 0.0,
        }
    }

    /// A refusal recorded at second 5.
    fn refused(code: Option<&str>) -> LastError {
        LastError {
            http_status: Some(401),
            error_code: code.map(str::to_string),
            error_msg: Some("Incorrect IAM authentication information".into()),
            message: "refused".into(),
            time: from_chrono(at(5)),
            credentials_revision: Some("7".into()),
        }
    }

    fn condition_reason(status: &DcsTaskQueryStatus, kind: &str) -> Option<String> {
        conditions::find(&status.conditions, kind).map(|c| c.reason.clone())
    }

    fn decided(step: &Step) -> &Decision {
        step.decision.as_ref().expect("a decision")
    }

    /// The status a round writes for a running task, complete with its tasks.
    fn written_running(spec: &DcsTaskQuerySpec, plan: &QueryPlan) -> DcsTaskQueryStatus {
        let running = listing("EXECUTING", 10);
        let outcome = answered(Ok(&running), 10, Some(&running), None);
        let step = round(&input(spec, Some(plan), None, true), outcome).unwrap();
        decided(&step).status.clone()
    }

    #[test]
    fn outcomes_without_a_call_give_their_reason_retry_and_leave_the_feeds() {
        let spec = spec("TaskList");
        let plan = planned(&spec);
        let errors =
            crate::validate(&serde_json::from_value(json!({"region": ""})).unwrap()).unwrap_err();
        let credentials = |operator_side| Unserved::Credentials {
            message: "Secret team-a/dcs has no key accessKey".into(),
            operator_side,
        };
        let (no_access, broken) = (credentials(true), credentials(false));
        let endpoint = Unserved::Endpoint("spec.endpoint: not allowed".into());
        let refusal = refused(None);
        type Row<'a> = (
            &'a str,
            Outcome<'a>,
            Option<&'a QueryPlan>,
            (&'a str, &'a str, &'a str),
            Option<Duration>,
            Option<FailureClass>,
        );
        let rows: Vec<Row<'_>> = vec![
            (
                "suspended",
                Outcome::Suspended,
                None,
                (READY, "Unknown", reason::SUSPENDED),
                None,
                None,
            ),
            (
                "invalid",
                Outcome::Invalid(&errors),
                None,
                (STALLED, "True", reason::INVALID_SPEC),
                None,
                None,
            ),
            (
                "no Secret access yet",
                Outcome::Unserved(&no_access),
                Some(&plan),
                (STALLED, "True", reason::CREDENTIALS_UNAVAILABLE),
                Some(OPERATOR_NOT_READY_RETRY),
                Some(FailureClass::NeedsPerson),
            ),
            (
                "a broken Secret",
                Outcome::Unserved(&broken),
                Some(&plan),
                (STALLED, "True", reason::CREDENTIALS_UNAVAILABLE),
                Some(UNUSABLE_RETRY),
                Some(FailureClass::NeedsPerson),
            ),
            (
                "an endpoint off the allow-list",
                Outcome::Unserved(&endpoint),
                Some(&plan),
                (STALLED, "True", reason::ENDPOINT_NOT_ALLOWED),
                Some(UNUSABLE_RETRY),
                Some(FailureClass::NeedsPerson),
            ),
            (
                "a refusal cooling down",
                Outcome::StillRefused {
                    refusal: &refusal,
                    endpoint: "https://dcs.example",
                },
                Some(&plan),
                (STALLED, "True", reason::AUTHENTICATION_FAILED),
                Some(AUTH_FAILURE_BACKOFF),
                Some(FailureClass::Auth),
            ),
        ];
        let categories: Vec<&str> = [&no_access, &broken, &endpoint]
            .iter()
            .map(|unserved| unserved.category())
            .collect();
        assert_eq!(categories, ["credentials", "credentials", "endpoint"]);
        assert_eq!(
            Unserved::ProjectDiscoveryPending.category(),
            "project_discovery"
        );
        for (name, outcome, plan, (kind, truth, expected), retry, failure) in rows {
            let step = round(&input(&spec, plan, None, true), outcome).unwrap();
            assert_eq!(step.feeds, FeedStep::Leave, "{name}");
            assert_eq!(step.failure, failure, "{name}");
            let decision = decided(&step);
            assert!(decision.write, "{name}: a first status is written");
            let shown = conditions::find(&decision.status.conditions, kind)
                .map(|c| (c.status.as_str(), c.reason.as_str()));
            assert_eq!(
                shown,
                Some((truth, expected)),
                "{name}: {:?}",
                decision.status.conditions
            );
            if let Some(retry) = retry {
                assert_eq!(step.recheck, Some(retry), "{name}");
            }
        }
    }

    #[test]
    fn a_remembered_refusal_reads_as_the_refusal_it_was() {
        let spec = spec("TaskList");
        let plan = planned(&spec);
        let refusal = refused(Some("APIG.0301"));
        let outcome = Outcome::StillRefused {
            refusal: &refusal,
            endpoint: "https://dcs.example",
        };
        let step = round(&input(&spec, Some(&plan), None, true), outcome).unwrap();
        let last = decided(&step).status.last_error.clone().unwrap();
        assert_eq!(last.http_status, Some(401));
        assert_eq!(last.error_code.as_deref(), Some("APIG.0301"));
        assert_eq!(last.time, refusal.time, "the cool-down keeps its start");
        assert_eq!(last.message, "refused", "the refusal stands as recorded");
    }

    #[test]
    fn project_discovery_retries_what_passes_and_stalls_on_what_does_not() {
        let spec = spec("TaskList");
        let plan = planned(&spec);
        let transient = Unserved::ProjectDiscovery {
            error: Arc::new(ProjectDiscoveryError::Upstream(api_error(
                503,
                IamAction::ListProjects,
            ))),
            consecutive: 3,
        };
        let step = round(
            &input(&spec, Some(&plan), None, true),
            Outcome::Unserved(&transient),
        )
        .unwrap();
        assert_eq!(step.failure, Some(FailureClass::Transient));
        assert_eq!(
            step.recheck,
            Some(plan.concern.active_interval * 4),
            "backed off"
        );
        let status = &decided(&step).status;
        assert_eq!(status.project_id, None, "no project is known");
        assert!(status.last_error.is_some());

        let none = Unserved::ProjectDiscovery {
            error: Arc::new(ProjectDiscoveryError::NoProject {
                region: "cn-north-4".into(),
            }),
            consecutive: 1,
        };
        let step = round(
            &input(&spec, Some(&plan), None, true),
            Outcome::Unserved(&none),
        )
        .unwrap();
        assert_eq!(step.failure, Some(FailureClass::NeedsPerson));
        assert_eq!(step.recheck, Some(UNUSABLE_RETRY));
        let status = &decided(&step).status;
        assert_eq!(
            condition_reason(status, STALLED).as_deref(),
            Some(reason::PROJECT_DISCOVERY_FAILED)
        );
        let stalled = conditions::find(&status.conditions, STALLED).unwrap();
        assert!(
            stalled.message.contains("IAM lists no project"),
            "{}",
            stalled.message
        );

        // Still discovering: a new object says work is under way; a written one keeps its
        // status and looks again soon.
        let pending = Unserved::ProjectDiscoveryPending;
        let step = round(
            &input(&spec, Some(&plan), None, true),
            Outcome::Unserved(&pending),
        )
        .unwrap();
        assert_eq!(step.recheck, Some(OPERATOR_NOT_READY_RETRY));
        assert_eq!(step.failure, None);
        assert_eq!(decided(&step).status.project_id, None);
        let written = written_running(&spec, &plan);
        let step = round(
            &input(&spec, Some(&plan), Some(&written), false),
            Outcome::Unserved(&pending),
        )
        .unwrap();
        assert_eq!(step.decision, None, "what is written stays");
        assert_eq!(step.feeds, FeedStep::Leave);
        assert_eq!(step.recheck, Some(OPERATOR_NOT_READY_RETRY));
    }

    #[test]
    fn no_answer_yet_keeps_what_is_written_and_follows_the_feed() {
        let spec = spec("TaskList");
        let plan = planned(&spec);
        let step = round(&input(&spec, Some(&plan), None, true), Outcome::NoAnswerYet).unwrap();
        assert_eq!(step.feeds, FeedStep::Stay);
        let first = decided(&step);
        assert!(first.write);
        assert_eq!(
            condition_reason(&first.status, RECONCILING).as_deref(),
            Some(reason::PROGRESSING)
        );
        let written = written_running(&spec, &plan);
        let step = round(
            &input(&spec, Some(&plan), Some(&written), false),
            Outcome::NoAnswerYet,
        )
        .unwrap();
        assert_eq!(
            step,
            Step {
                decision: None,
                feeds: FeedStep::Stay,
                recheck: None,
                failure: None,
            }
        );
    }

    #[test]
    fn a_listing_decides_tells_the_feed_the_interval_and_leaves_once_resolved() {
        let spec = spec("TaskList");
        let plan = planned(&spec);
        let running = listing("EXECUTING", 10);
        let step = round(
            &input(&spec, Some(&plan), None, true),
            answered(Ok(&running), 10, Some(&running), None),
        )
        .unwrap();
        assert_eq!(step.feeds, FeedStep::Stay);
        assert_eq!(step.failure, None);
        let decision = decided(&step);
        assert_eq!(decision.status.project_id.as_deref(), Some("p1"));
        assert_eq!(decision.status.tasks.len(), 1);
        assert!(decision.events.is_empty());

        let written = decision.status.clone();
        let done = listing("SUCCESS", 18);
        let step = round(
            &input(&spec, Some(&plan), Some(&written), true),
            answered(Ok(&done), 18, Some(&done), None),
        )
        .unwrap();
        assert_eq!(step.feeds, FeedStep::Leave, "nothing more to poll for");
        let decision = decided(&step);
        assert!(decision.resolved);
        assert_eq!(
            decision.status.wait_for.as_ref().map(|w| w.phase),
            Some(WaitPhase::Succeeded)
        );
        let reasons: Vec<_> = decision.events.iter().map(|n| n.reason).collect();
        assert_eq!(reasons, vec![EventReason::TaskSucceeded]);
    }

    #[test]
    fn a_failed_poll_keeps_the_tasks_known_and_asks_for_them_when_nobody_has_them() {
        let spec = spec("TaskList");
        let plan = planned(&spec);
        let written = written_running(&spec, &plan);
        let slim = DcsTaskQueryStatus {
            tasks: Vec::new(),
            latest: Vec::new(),
            ..written.clone()
        };
        let error = failure(503, IamAction::ListTasks);
        // The cache dropped the tasks and the feed has no good listing: ask for the stored ones.
        assert_eq!(
            round(
                &input(&spec, Some(&plan), Some(&slim), false),
                answered(Err(&error), 19, None, None),
            ),
            Err(NeedsStoredTasks)
        );
        // The feed's last good listing rebuilds them.
        let good = listing("EXECUTING", 10);
        let step = round(
            &input(&spec, Some(&plan), Some(&slim), false),
            answered(Err(&error), 19, Some(&good), None),
        )
        .unwrap();
        assert_eq!(step.failure, Some(FailureClass::Transient));
        assert_eq!(step.feeds, FeedStep::Stay);
        let status = &decided(&step).status;
        assert_eq!(status.tasks, written.tasks, "nothing known is lost");
        assert_eq!(status.latest, written.latest);
        assert!(status.last_error.is_some());
        // A complete previous status is kept as it is.
        let step = round(
            &input(&spec, Some(&plan), Some(&written), true),
            answered(Err(&error), 19, None, None),
        )
        .unwrap();
        let tasks: &Vec<TaskStatus> = &decided(&step).status.tasks;
        assert_eq!(tasks, &written.tasks);
        // Other outcomes without a listing need the stored tasks too.
        let endpoint = Unserved::Endpoint("spec.endpoint: not allowed".into());
        assert_eq!(
            round(
                &input(&spec, Some(&plan), Some(&slim), false),
                Outcome::Unserved(&endpoint),
            ),
            Err(NeedsStoredTasks)
        );
    }

    fn job(status: &str) -> JobInfo {
        JobInfo {
            job_id: Some("job-1".into()),
            job_type: Some("masterStandbySwapJob".into()),
            status: JobStatus::from_wire(status),
            begin_time: None,
            end_time: None,
            fail_reason: None,
        }
    }

    #[test]
    fn a_job_wait_asks_the_job_feed_again_when_the_list_is_ahead() {
        let spec = spec("Job");
        let plan = planned(&spec);
        let done = listing("SUCCESS", 15);
        let running = job("RUNNING");
        let behind = JobAnswer {
            result: Ok(&running),
            failures: 0,
            fetched_at: at(12),
        };
        let outcome = answered(Ok(&done), 15, Some(&done), Some(behind));
        let step = round(&input(&spec, Some(&plan), None, true), outcome).unwrap();
        assert_eq!(step.feeds, FeedStep::AskJobAgain);
        assert!(
            decided(&step).write,
            "a new object still gets a first status"
        );
        let written = written_running(&spec, &plan);
        let step = round(&input(&spec, Some(&plan), Some(&written), false), outcome).unwrap();
        assert_eq!(step.decision, None, "one write, with the verdict");
        assert_eq!(step.feeds, FeedStep::AskJobAgain);

        let ended = job("SUCCESS");
        let fresh = JobAnswer {
            result: Ok(&ended),
            failures: 0,
            fetched_at: at(16),
        };
        let outcome = answered(Ok(&done), 15, Some(&done), Some(fresh));
        let step = round(&input(&spec, Some(&plan), Some(&written), true), outcome).unwrap();
        assert_eq!(step.feeds, FeedStep::Leave);
        assert!(decided(&step).resolved);
    }

    #[test]
    fn a_job_the_credentials_may_not_read_stalls_naming_the_permission() {
        let spec = spec("Job");
        let plan = planned(&spec);
        let running = listing("EXECUTING", 10);
        let forbidden = failure(403, IamAction::ShowJob);
        let job = JobAnswer {
            result: Err(&forbidden),
            failures: 1,
            fetched_at: at(11),
        };
        let outcome = answered(Ok(&running), 10, Some(&running), Some(job));
        let step = round(&input(&spec, Some(&plan), None, true), outcome).unwrap();
        assert_eq!(step.failure, Some(FailureClass::NeedsPerson));
        assert_eq!(step.feeds, FeedStep::Stay);
        let status = &decided(&step).status;
        assert_eq!(
            condition_reason(status, STALLED).as_deref(),
            Some(reason::JOB_ACCESS_DENIED)
        );
    }

    #[test]
    fn a_refresh_is_echoed_only_once_answered() {
        let spec = spec("TaskList");
        let plan = planned(&spec);
        let running = listing("EXECUTING", 10);
        let outcome = answered(Ok(&running), 10, Some(&running), None);
        for (pending, echoed) in [(true, None), (false, Some("2026-12-02T12:00:00Z"))] {
            let round_input = Round {
                requested_at: Some("2026-12-02T12:00:00Z"),
                refresh_pending: pending,
                ..input(&spec, Some(&plan), None, true)
            };
            let step = round(&round_input, outcome).unwrap();
            assert_eq!(
                decided(&step).status.last_handled_reconcile_at.as_deref(),
                echoed,
                "pending: {pending}"
            );
        }
    }

    #[test]
    fn an_unknown_project_is_shown_as_unknown_and_an_unresolved_target_changes_nothing() {
        let spec = spec("TaskList");
        let plan = planned(&spec);
        let mut written = written_running(&spec, &plan);
        written.project_id = Some("p0".into());
        let credentials = Unserved::Credentials {
            message: "no Secret".into(),
            operator_side: false,
        };
        let unresolved = Round {
            project: None,
            credentials_revision: None,
            ..input(&spec, Some(&plan), Some(&written), true)
        };
        let step = round(&unresolved, Outcome::Unserved(&credentials)).unwrap();
        assert_eq!(decided(&step).status.project_id.as_deref(), Some("p0"));
    }
}
