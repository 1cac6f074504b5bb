//! Poll outcome -> `DcsTaskQueryStatus`, conditions included.
//!
//! The CLI prints exactly what the controller writes because both build it here. Conditions
//! follow kstatus: `Reconciling` while a wait is pending or a retry is under way, `Stalled`
//! when a human must act (bad spec, missing credentials, refused credentials, failed task),
//! `Ready` once the answer is known; plus `Complete`/`Failed` for `kubectl wait`.

use chrono::{DateTime, Utc};

use super::evaluate::{Evaluation, WaitVerdict};
use super::validate::SpecErrors;
use crate::api::conditions::{
    self, COMPLETE, ConditionStatus, DesiredCondition, FAILED, READY, RECONCILING, STALLED,
};
use crate::api::time::{from_chrono, to_chrono};
use crate::api::{DcsTaskQuerySpec, DcsTaskQueryStatus, LastError, WaitForStatus, WaitPhase};
use crate::dcs::{AUTH_COOLDOWN, DcsError, FailureClass, JobLookupFailure};

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
    /// No project id was given and IAM named none, or several, for the region.
    pub const PROJECT_DISCOVERY_FAILED: &str = "ProjectDiscoveryFailed";
    pub const UPSTREAM_ERROR: &str = "UpstreamError";
    /// The API refused the request in a way only a person can fix (400, 403, 404, redirect).
    pub const UPSTREAM_REFUSED: &str = "UpstreamRefused";
    /// The DCS job API does not know the awaited job (asked twice).
    pub const JOB_NOT_FOUND: &str = "JobNotFound";
    /// The credentials may not read the awaited job (`dcs:job:get`).
    pub const JOB_ACCESS_DENIED: &str = "JobAccessDenied";
    pub const SUSPENDED: &str = "Suspended";
    pub const PROGRESSING: &str = "Progressing";
}

/// Longest message written to a condition, `waitFor.message` or `lastError`, in bytes. Messages
/// quote upstream text (an `error_msg` can be megabytes) and tenant input; this bound also
/// keeps the events built from them under the 1024-byte note limit Kubernetes enforces.
/// Why a listing may not cover its window: `spec.query.maxPages`, or the operator's cap on one
/// listing (`dcs::MAX_LISTING_TASKS` tasks, `dcs::MAX_LISTING_BYTES` of bodies).
pub fn paging_stopped() -> String {
    format!(
        "paging stopped at spec.query.maxPages or at the operator's listing cap ({} tasks, {} MiB)",
        crate::dcs::MAX_LISTING_TASKS,
        crate::dcs::MAX_LISTING_BYTES / (1024 * 1024)
    )
}

pub const MAX_MESSAGE_BYTES: usize = 1024;

// The longest upstream `error_code` kept in `lastError` is what the client keeps of it.
use crate::dcs::MAX_ERROR_CODE_BYTES;

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
    /// The job API refused the awaited job in a way only a person can fix (it does not know
    /// the job, or the credentials lack `dcs:job:get`): the wait stalls with the advice.
    JobRefused {
        failure: JobLookupFailure,
        job: &'a str,
        error: &'a DcsError,
    },
    /// These credentials were refused less than a cool-down ago (`lastError` as recorded then,
    /// and the error it describes): no call was made, the refusal stands as it was.
    StillRefused(&'a LastError, &'a DcsError),
    /// The spec breaks a rule; no call was made.
    InvalidSpec(&'a SpecErrors),
    /// Credentials could not be assembled (missing Secret or key); no call was made.
    CredentialsUnavailable(&'a str),
    /// The endpoint is not on the operator's allow-list; no call was made.
    EndpointNotAllowed(&'a str),
    /// No project id was given and IAM could not name exactly one for the region.
    ProjectDiscoveryFailed(&'a str),
    /// `spec.suspend` is set; nothing was polled.
    Suspended,
    /// The first answer is still on its way (a new object).
    FirstPoll,
}

/// Everything the status depends on besides the outcome.
#[derive(Debug, Clone, Copy)]
pub struct StatusContext<'a> {
    pub previous: Option<&'a DcsTaskQueryStatus>,
    pub generation: Option<i64>,
    pub has_wait: bool,
    pub wait_started_at: DateTime<Utc>,
    /// When this generation's wait times out (`waitFor.timeout` after `wait_started_at`).
    pub wait_deadline: Option<DateTime<Utc>>,
    /// Identifies the credentials in use (a Secret's resourceVersion), recorded with errors.
    pub credentials_revision: Option<&'a str>,
    /// When the upstream last answered well, if newer than `lastSyncTime` says: an unchanged
    /// answer is not written (only at the sync heartbeat), so the status alone can show an
    /// older time than the feed knows.
    pub last_good_at: Option<DateTime<Utc>>,
    /// When the poll behind a failed outcome finished (`upstream::feed::Answer::fetched_at`):
    /// the wait clock judges a failure by when it happened, so a failure from before the
    /// deadline read after it does not time the wait out; the poll after the deadline does.
    /// `None` when no poll was made (no credentials, a remembered refusal, no answer yet):
    /// those are judged at `now`.
    pub answered_at: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// How long a settled object (`Ready=True`) keeps `Ready=True` through failing polls after its
/// last good answer. Throttling or a 5xx burst shorter than this shows only in `lastError`, so
/// Argo CD and Flux health does not flap; a longer outage turns `Ready=False`/`Reconciling=True`.
pub const GLITCH_GRACE: std::time::Duration = std::time::Duration::from_secs(300);

/// The refusal to keep honouring instead of calling: the persisted `lastError` says these very
/// credentials (same `revision`) were refused less than [`AUTH_COOLDOWN`] ago. This carries the
/// access key's cool-down across operator restarts; an edited Secret (new revision) lifts it.
pub fn remembered_refusal<'a>(
    previous: Option<&'a DcsTaskQueryStatus>,
    revision: Option<&str>,
    now: DateTime<Utc>,
) -> Option<&'a LastError> {
    let last = previous?.last_error.as_ref()?;
    let refused = last.http_status == Some(401)
        || last.error_code.as_deref() == Some(crate::dcs::AUTH_FAILED_CODE);
    let same_credentials = revision.is_some() && last.credentials_revision.as_deref() == revision;
    let age = (now - to_chrono(&last.time)).to_std().unwrap_or_default();
    (refused && same_credentials && age < AUTH_COOLDOWN).then_some(last)
}

/// When the current generation's wait started: kept from the previous status when it describes
/// the same generation; for generation 1 (or an object without generations) the object's
/// creation, so the clock survives restarts and runs even when no poll ever succeeds; for a
/// later generation, now (the spec change restarts the wait).
pub fn wait_started_at(
    previous: Option<&DcsTaskQueryStatus>,
    generation: Option<i64>,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let kept = previous
        .filter(|status| status.observed_generation == generation)
        .and_then(|status| status.wait_for.as_ref())
        .and_then(|wait| wait.started_at.as_ref())
        .map(to_chrono);
    match (kept, generation) {
        (Some(kept), _) => kept,
        (None, None | Some(1)) => created_at.min(now),
        (None, Some(_)) => now,
    }
}

/// Builds the status for `outcome`, keeping what was known before where this poll adds nothing.
///
/// Three rules make waits trustworthy under faults:
/// - a verdict that resolved for this generation is final: later polls may refresh `tasks` and
///   `latest` (or record `lastError`), never the verdict or its conditions;
/// - the wait clock runs whatever the upstream does: when no answer (or no credentials) arrives
///   before the deadline, the wait is `TimedOut` all the same;
/// - a settled object rides out a short transient failure ([`GLITCH_GRACE`]) with its last good
///   data and conditions, while errors only a person can fix stall at once.
pub fn build_status(context: &StatusContext<'_>, outcome: PollOutcome<'_>) -> DcsTaskQueryStatus {
    let now = from_chrono(context.now);
    let same_generation = context
        .previous
        .filter(|p| p.observed_generation == context.generation);
    let resolved_before = same_generation
        .and_then(|p| p.wait_for.as_ref())
        .is_some_and(|w| w.phase.is_resolved());
    let mut status = context.previous.cloned().unwrap_or_default();
    if same_generation.is_none() {
        // A verdict about an older spec must not be read as an answer about this one.
        status.wait_for = None;
    }
    status.observed_generation = context.generation;

    let mut desired = match outcome {
        PollOutcome::Fetched(evaluation) => {
            status.task_count = evaluation.task_count.and_then(|n| i64::try_from(n).ok());
            status.matched_count = i64::try_from(evaluation.matched_count).ok();
            status.tasks = evaluation.tasks.clone();
            status.latest = evaluation.latest.clone();
            status.last_sync_time = Some(from_chrono(evaluation.fetched_at.unwrap_or(context.now)));
            status.last_error = None;
            if resolved_before {
                None
            } else {
                status.wait_for = evaluation
                    .wait
                    .as_ref()
                    .map(|verdict| wait_status(verdict, context));
                Some(fetched_conditions(evaluation))
            }
        }
        PollOutcome::FetchFailed(error)
        | PollOutcome::StillRefused(_, error)
        | PollOutcome::JobRefused { error, .. } => {
            let record = ErrorRecord::of(error);
            let revision = context.credentials_revision.map(str::to_string);
            // The same failure again keeps the time it was first seen, so an outage costs one
            // write, not one per retry; a refusal is the exception, its time starts the
            // access key's cool-down (see `remembered_refusal`).
            let repeated = status.last_error.as_ref().filter(|previous| {
                !error.is_auth_failure()
                    && ErrorRecord::from_last_error(previous) == record
                    && previous.credentials_revision == revision
            });
            let time = repeated.map_or(context.now, |previous| to_chrono(&previous.time));
            status.last_error = Some(record.at(time, revision));
            if let PollOutcome::StillRefused(recorded, _) = outcome {
                // Its time starts the cool-down: a remembered refusal must not renew it.
                status.last_error = Some(recorded.clone());
            }
            let message = error.to_string();
            match error.class() {
                _ if resolved_before => None,
                _ if let PollOutcome::JobRefused { failure, job, .. } = outcome => {
                    let (reason, advice) = job_refusal(failure, job);
                    Some(Verdict::STALLED.conditions(
                        context.has_wait,
                        reason,
                        &format!("{advice} ({})", answered(error)),
                    ))
                }
                FailureClass::Auth => Some(Verdict::STALLED.conditions(
                    context.has_wait,
                    reason::AUTHENTICATION_FAILED,
                    &message,
                )),
                FailureClass::NeedsPerson => Some(Verdict::STALLED.conditions(
                    context.has_wait,
                    reason::UPSTREAM_REFUSED,
                    &message,
                )),
                FailureClass::Transient if within_glitch_grace(context) => None,
                FailureClass::Transient => Some(Verdict::RETRYING.conditions(
                    context.has_wait,
                    reason::UPSTREAM_ERROR,
                    &message,
                )),
            }
        }
        PollOutcome::InvalidSpec(errors) => Some(Verdict::STALLED.conditions(
            context.has_wait,
            reason::INVALID_SPEC,
            &errors.to_string(),
        )),
        PollOutcome::CredentialsUnavailable(_)
        | PollOutcome::EndpointNotAllowed(_)
        | PollOutcome::ProjectDiscoveryFailed(_)
            if resolved_before =>
        {
            None
        }
        PollOutcome::CredentialsUnavailable(message) => Some(Verdict::STALLED.conditions(
            context.has_wait,
            reason::CREDENTIALS_UNAVAILABLE,
            message,
        )),
        PollOutcome::EndpointNotAllowed(message) => Some(Verdict::STALLED.conditions(
            context.has_wait,
            reason::ENDPOINT_NOT_ALLOWED,
            message,
        )),
        PollOutcome::ProjectDiscoveryFailed(message) => Some(Verdict::STALLED.conditions(
            context.has_wait,
            reason::PROJECT_DISCOVERY_FAILED,
            message,
        )),
        PollOutcome::Suspended => Some(Verdict::SUSPENDED.conditions(
            context.has_wait,
            reason::SUSPENDED,
            "spec.suspend is true: not polling",
        )),
        PollOutcome::FirstPoll => Some(Verdict::FIRST_VISIT.conditions(
            context.has_wait,
            reason::PROGRESSING,
            FIRST_POLL_MESSAGE,
        )),
    };

    let without_answer = match outcome {
        PollOutcome::FetchFailed(error) | PollOutcome::StillRefused(_, error) => {
            Some(error.to_string())
        }
        PollOutcome::JobRefused { failure, job, .. } => Some(job_refusal(failure, job).1),
        PollOutcome::CredentialsUnavailable(message)
        | PollOutcome::EndpointNotAllowed(message)
        | PollOutcome::ProjectDiscoveryFailed(message) => Some(message.to_string()),
        PollOutcome::FirstPoll => Some(FIRST_POLL_MESSAGE.to_string()),
        PollOutcome::Fetched(_) | PollOutcome::InvalidSpec(_) | PollOutcome::Suspended => None,
    };
    if let Some(problem) = without_answer.filter(|_| context.has_wait && !resolved_before)
        && let Some(timed_out) = run_wait_clock(&mut status, context, &problem)
    {
        desired = Some(timed_out);
    }

    // The moment the wait resolves is kept from then on (`spec.ttlAfterResolved` counts from
    // it, across restarts); a resolved wait's status is never rebuilt, so it is set only once.
    if let Some(wait) = status.wait_for.as_mut()
        && wait.phase.is_resolved()
        && !resolved_before
    {
        wait.resolved_at = Some(now.clone());
    }

    if let Some(desired) = desired {
        status.conditions =
            conditions::merge(&status.conditions, &desired, context.generation, &now);
    }
    status
}

/// What the API answered, without the advice a task listing's error carries (a job lookup's
/// advice is [`super::job::advice`]): `the DCS API answered HTTP 403 DCS.4003: no permission`.
fn answered(error: &DcsError) -> String {
    match error.api_error() {
        Some(api) => {
            let mut text = format!("the DCS API answered HTTP {}", api.http_status);
            for part in [&api.error_code, &api.error_msg].into_iter().flatten() {
                text.push(' ');
                text.push_str(&bounded(part, MAX_ERROR_CODE_BYTES.max(256)));
            }
            text
        }
        None => error.to_string(),
    }
}

/// The condition reason and the advice for a refused job lookup.
fn job_refusal(failure: JobLookupFailure, job: &str) -> (&'static str, String) {
    let reason = match failure {
        JobLookupFailure::NotFound => reason::JOB_NOT_FOUND,
        JobLookupFailure::Forbidden => reason::JOB_ACCESS_DENIED,
    };
    (reason, super::job::advice(failure, job))
}

/// `status.waitFor` for a verdict: the task it found in the list, or the job the job API
/// described.
fn wait_status(verdict: &WaitVerdict, context: &StatusContext<'_>) -> WaitForStatus {
    let task = verdict.task.as_ref();
    let job = verdict.job.as_ref();
    WaitForStatus {
        phase: verdict.phase,
        task_id: task.and_then(|t| t.id.clone()),
        job_id: task
            .and_then(|t| t.job_id.clone())
            .or_else(|| job.map(|j| j.job_id.clone())),
        status: task
            .and_then(|t| t.status.clone())
            .or_else(|| job.and_then(|j| j.status.clone())),
        matched_tasks: if job.is_some() {
            None
        } else {
            i64::try_from(verdict.matched).ok()
        },
        started_at: Some(from_chrono(context.wait_started_at)),
        message: Some(bounded(&verdict.message, MAX_MESSAGE_BYTES)),
        job_type: job.and_then(|j| j.job_type.clone()),
        began_at: job.and_then(|j| j.began_at).map(from_chrono),
        ended_at: job.and_then(|j| j.ended_at).map(from_chrono),
        fail_reason: job.and_then(|j| j.fail_reason.clone()),
        // Set by `build_status` when the phase first resolves.
        resolved_at: None,
    }
}

/// What `lastError` records of a failure, its time and credentials aside.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ErrorRecord {
    http_status: Option<i32>,
    error_code: Option<String>,
    error_msg: Option<String>,
    message: String,
}

impl ErrorRecord {
    fn of(error: &DcsError) -> Self {
        let api = error.api_error();
        Self {
            http_status: api.map(|a| i32::from(a.http_status)),
            error_code: api
                .and_then(|a| a.error_code.as_deref())
                .map(|code| bounded(code, MAX_ERROR_CODE_BYTES)),
            error_msg: api
                .and_then(|a| a.error_msg.as_deref())
                .map(|msg| bounded(msg, MAX_MESSAGE_BYTES)),
            message: bounded(&error.to_string(), MAX_MESSAGE_BYTES),
        }
    }

    fn from_last_error(last: &LastError) -> Self {
        Self {
            http_status: last.http_status,
            error_code: last.error_code.clone(),
            error_msg: last.error_msg.clone(),
            message: last.message.clone(),
        }
    }

    fn at(self, time: DateTime<Utc>, credentials_revision: Option<String>) -> LastError {
        LastError {
            http_status: self.http_status,
            error_code: self.error_code,
            error_msg: self.error_msg,
            message: self.message,
            time: from_chrono(time),
            credentials_revision,
        }
    }
}

/// Whether two failures would show the same in `lastError` (HTTP status, `error_code`,
/// `error_msg` and message; the request id and `Retry-After`, which differ per request, are
/// not shown): a feed's error answer the same as its previous one changes no subscriber's view.
pub fn same_error(a: &DcsError, b: &DcsError) -> bool {
    ErrorRecord::of(a) == ErrorRecord::of(b)
}

/// Event reason when a `waitFor.name` matched several tasks (searchable in `kubectl describe`).
pub const AMBIGUOUS_WAIT_EVENT: &str = "AmbiguousWait";

/// The note of the `AmbiguousWait` Warning event, when `status` is the first of its generation
/// to show a `waitFor.name` matching more than one task; `None` otherwise (a `jobId` wait is
/// exact, and a generation whose previous status already said so is not told again).
pub fn ambiguous_wait_note(
    spec: &DcsTaskQuerySpec,
    previous: Option<&DcsTaskQueryStatus>,
    status: &DcsTaskQueryStatus,
) -> Option<String> {
    let wait_spec = spec.wait_for.as_ref()?;
    let name = wait_spec
        .name
        .as_deref()
        .filter(|_| wait_spec.job_id.is_none())?;
    let wait = status.wait_for.as_ref()?;
    let matched = wait.matched_tasks.filter(|&n| n > 1)?;
    let told_before = previous
        .filter(|p| p.observed_generation == status.observed_generation)
        .and_then(|p| p.wait_for.as_ref())
        .and_then(|w| w.matched_tasks)
        .is_some_and(|n| n > 1);
    if told_before {
        return None;
    }
    let chosen = wait
        .task_id
        .as_deref()
        .map(|id| format!(" (task {id})"))
        .unwrap_or_default();
    Some(bounded(
        &format!(
            "{matched} tasks named {name} match spec.waitFor; following the newest{chosen}. \
             Set spec.waitFor.jobId to the job id the DCS API returned, or narrow the match with \
             spec.filter.userNames / spec.filter.paramsContains"
        ),
        MAX_MESSAGE_BYTES,
    ))
}

/// A poll brought no answer: keep the wait's clock in status (so it survives restarts) and, once
/// the deadline has passed, time the wait out. Returns the conditions of a timeout.
fn run_wait_clock(
    status: &mut DcsTaskQueryStatus,
    context: &StatusContext<'_>,
    problem: &str,
) -> Option<Vec<DesiredCondition>> {
    let wait = status.wait_for.get_or_insert_with(|| WaitForStatus {
        phase: WaitPhase::Pending,
        started_at: Some(from_chrono(context.wait_started_at)),
        message: Some(bounded(
            &format!("no answer from the task center yet: {problem}"),
            MAX_MESSAGE_BYTES,
        )),
        ..WaitForStatus::default()
    });
    if wait.started_at.is_none() {
        wait.started_at = Some(from_chrono(context.wait_started_at));
    }
    let deadline = context.wait_deadline?;
    if context.answered_at.unwrap_or(context.now) < deadline {
        return None;
    }
    let waited = (deadline - context.wait_started_at)
        .to_std()
        .map(crate::duration::format)
        .unwrap_or_default();
    let message = bounded(
        &format!("timed out after {waited} (spec.waitFor.timeout) without an answer: {problem}"),
        MAX_MESSAGE_BYTES,
    );
    wait.phase = WaitPhase::TimedOut;
    wait.message = Some(message.clone());
    Some(Verdict::TASK_FAILED.conditions(true, reason::TIMED_OUT, &message))
}

/// The object was settled (`Ready=True` for this generation) and its last good answer is
/// younger than [`GLITCH_GRACE`].
fn within_glitch_grace(context: &StatusContext<'_>) -> bool {
    let Some(previous) = context
        .previous
        .filter(|p| p.observed_generation == context.generation)
    else {
        return false;
    };
    let ready = conditions::find(&previous.conditions, READY).is_some_and(|c| c.status == "True");
    let fresh = last_good_answer(context).is_some_and(|at| {
        (context.now - at)
            .to_std()
            .is_ok_and(|age| age < GLITCH_GRACE)
    });
    ready && fresh
}

/// When the upstream last answered well: the newer of the written `lastSyncTime` and what the
/// caller knows beyond it.
pub fn last_good_answer(context: &StatusContext<'_>) -> Option<DateTime<Utc>> {
    let written = context
        .previous
        .and_then(|p| p.last_sync_time.as_ref())
        .map(to_chrono);
    written.max(context.last_good_at)
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
                format!(" ({})", paging_stopped())
            } else {
                String::new()
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

    /// The conditions of this verdict. The message goes on `Ready` and on the conditions that
    /// are `True` only: those are the ones `kubectl wait`, kstatus, Flux and Argo CD show, and a
    /// `False` condition repeating it would only make every status write bigger.
    fn conditions(self, has_wait: bool, reason: &str, message: &str) -> Vec<DesiredCondition> {
        let message = bounded(message, MAX_MESSAGE_BYTES);
        let condition = |type_: &'static str, status: ConditionStatus| {
            let shown = type_ == READY || status == ConditionStatus::True;
            DesiredCondition::new(type_, status, reason, if shown { &message } else { "" })
        };
        let mut list = vec![
            condition(READY, self.ready),
            condition(RECONCILING, self.reconciling.into()),
            condition(STALLED, self.stalled.into()),
        ];
        if has_wait {
            list.push(condition(COMPLETE, self.complete));
            list.push(condition(FAILED, self.failed));
        }
        list
    }
}

const FIRST_POLL_MESSAGE: &str = "first poll of the DCS task center in progress";

/// The status a new object gets before its first answer, so it is never mistaken for healthy.
pub fn initial_status(context: &StatusContext<'_>) -> DcsTaskQueryStatus {
    build_status(context, PollOutcome::FirstPoll)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::LatestTask;
    use crate::api::conditions::find;
    use crate::dcs::{ApiError, DcsError};
    use crate::evaluate::WaitVerdict;
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
            wait_deadline: None,
            credentials_revision: None,
            last_good_at: None,
            answered_at: None,
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
                job: None,
                phase,
                task: Some(LatestTask {
                    name: "masterStandbySwapJob".into(),
                    id: Some("t1".into()),
                    job_id: Some("j1".into()),
                    status: Some("SUCCESS".into()),
                    created_at: None,
                    updated_at: None,
                }),
                matched: 1,
                message: "m".into(),
            }),
            active: !phase.is_resolved(),
            omitted_tasks: 0,
            omitted_names: 0,
            incomplete: false,
            fetched_at: None,
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
                iam_action: crate::dcs::IamAction::ListTasks,
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

    fn api_error(http_status: u16) -> DcsError {
        DcsError::Api {
            endpoint: "https://e".into(),
            error: ApiError {
                http_status,
                error_code: None,
                error_msg: Some("refused".into()),
                request_id: None,
                retry_after: None,
                iam_action: crate::dcs::IamAction::ListTasks,
            },
        }
    }

    fn reason_of(status: &DcsTaskQueryStatus, type_: &str) -> String {
        conditions::find(&status.conditions, type_)
            .map(|c| c.reason.clone())
            .unwrap_or_default()
    }

    #[test]
    fn the_wait_clock_runs_out_while_no_poll_succeeds() {
        let mut ctx = context(None, 1, 10);
        ctx.wait_deadline = Some(at(30));
        let unavailable = build_status(&ctx, PollOutcome::FetchFailed(&api_error(503)));
        let wait = unavailable.wait_for.as_ref().unwrap();
        assert_eq!(wait.phase, WaitPhase::Pending);
        assert_eq!(wait.started_at.as_ref().map(to_chrono), Some(at(0)));
        assert_eq!(status_of(&unavailable, RECONCILING), "True");

        let mut later = context(Some(&unavailable), 1, 30);
        later.wait_deadline = Some(at(30));
        for outcome in [
            PollOutcome::FetchFailed(&api_error(503)),
            PollOutcome::CredentialsUnavailable("Secret ns/x not found"),
        ] {
            let timed_out = build_status(&later, outcome);
            let wait = timed_out.wait_for.as_ref().unwrap();
            assert_eq!(wait.phase, WaitPhase::TimedOut);
            assert!(
                wait.message
                    .as_deref()
                    .unwrap()
                    .starts_with("timed out after 30s"),
                "{wait:?}"
            );
            assert_eq!(status_of(&timed_out, FAILED), "True");
            assert_eq!(status_of(&timed_out, STALLED), "True");
            assert_eq!(reason_of(&timed_out, STALLED), reason::TIMED_OUT);
            assert_eq!(status_of(&timed_out, COMPLETE), "False");
        }
    }

    #[test]
    fn a_failed_poll_times_the_wait_out_only_if_it_failed_at_or_after_the_deadline() {
        let pending = build_status(
            &context(None, 1, 10),
            PollOutcome::Fetched(&evaluation(WaitPhase::Pending)),
        );
        // Read after the deadline, but the poll failed before it: the poll after the deadline
        // gives the task its last chance.
        let mut read_late = context(Some(&pending), 1, 45);
        read_late.wait_deadline = Some(at(30));
        read_late.answered_at = Some(at(29));
        let early_failure = build_status(&read_late, PollOutcome::FetchFailed(&api_error(503)));
        assert_eq!(early_failure.wait_for.unwrap().phase, WaitPhase::Pending);
        // That final poll failing times it out, whenever it is read.
        for answered in [30, 31] {
            read_late.answered_at = Some(at(answered));
            let final_failure = build_status(&read_late, PollOutcome::FetchFailed(&api_error(503)));
            assert_eq!(
                final_failure.wait_for.unwrap().phase,
                WaitPhase::TimedOut,
                "{answered}"
            );
        }
        // Without a poll (no credentials), now is all there is.
        read_late.answered_at = None;
        let unserved = build_status(
            &read_late,
            PollOutcome::CredentialsUnavailable("Secret ns/x not found"),
        );
        assert_eq!(unserved.wait_for.unwrap().phase, WaitPhase::TimedOut);
    }

    #[test]
    fn a_resolved_wait_never_regresses_on_a_refresh() {
        let done = build_status(
            &context(None, 1, 1),
            PollOutcome::Fetched(&evaluation(WaitPhase::Succeeded)),
        );
        let failed_refresh = build_status(
            &context(Some(&done), 1, 50),
            PollOutcome::FetchFailed(&api_error(503)),
        );
        assert_eq!(failed_refresh.conditions, done.conditions);
        assert_eq!(failed_refresh.wait_for, done.wait_for);
        assert_eq!(failed_refresh.last_error.unwrap().http_status, Some(503));

        // The task left the window: the evaluation alone would say TimedOut.
        let mut gone = evaluation(WaitPhase::TimedOut);
        gone.task_count = Some(7);
        let refreshed = build_status(&context(Some(&done), 1, 50), PollOutcome::Fetched(&gone));
        assert_eq!(refreshed.wait_for, done.wait_for);
        assert_eq!(refreshed.conditions, done.conditions);
        assert_eq!(refreshed.task_count, Some(7), "the data is refreshed");
        assert_eq!(status_of(&refreshed, COMPLETE), "True");

        // Long after, and with errors that would stall an unresolved wait.
        let mut much_later = context(Some(&done), 1, 0);
        much_later.now = at(0) + chrono::TimeDelta::hours(2);
        much_later.wait_deadline = Some(at(30));
        for error in [api_error(403), api_error(401), api_error(503)] {
            let after = build_status(&much_later, PollOutcome::FetchFailed(&error));
            assert_eq!(after.conditions, done.conditions, "{error}");
            assert_eq!(after.wait_for, done.wait_for, "{error}");
        }
        let after = build_status(
            &much_later,
            PollOutcome::CredentialsUnavailable("Secret ns/x not found"),
        );
        assert_eq!(after.conditions, done.conditions);
        assert_eq!(after.wait_for, done.wait_for);
    }

    #[test]
    fn resolved_at_is_set_once_when_the_wait_resolves_and_kept() {
        let resolved_at = |status: &DcsTaskQueryStatus| {
            status
                .wait_for
                .as_ref()
                .and_then(|w| w.resolved_at.as_ref())
                .map(to_chrono)
        };
        let pending = build_status(
            &context(None, 1, 1),
            PollOutcome::Fetched(&evaluation(WaitPhase::Pending)),
        );
        assert_eq!(
            resolved_at(&pending),
            None,
            "a pending wait has not resolved"
        );
        let still = build_status(
            &context(Some(&pending), 1, 3),
            PollOutcome::FetchFailed(&api_error(503)),
        );
        assert_eq!(resolved_at(&still), None);

        for phase in [WaitPhase::Succeeded, WaitPhase::Failed, WaitPhase::TimedOut] {
            let done = build_status(
                &context(Some(&pending), 1, 9),
                PollOutcome::Fetched(&evaluation(phase)),
            );
            assert_eq!(resolved_at(&done), Some(at(9)), "{phase:?}");
            // Later rounds (a refresh, failures, the task leaving the window) keep it.
            let mut later = done.clone();
            for (now, outcome) in [
                (20, PollOutcome::Fetched(&evaluation(WaitPhase::Pending))),
                (30, PollOutcome::Fetched(&evaluation(WaitPhase::Succeeded))),
                (40, PollOutcome::FetchFailed(&api_error(503))),
                (
                    50,
                    PollOutcome::CredentialsUnavailable("Secret ns/x not found"),
                ),
            ] {
                later = build_status(&context(Some(&later), 1, now), outcome);
                assert_eq!(resolved_at(&later), Some(at(9)), "{phase:?} at {now}");
            }
            // A new generation is a new wait: its resolution is its own.
            let next = build_status(
                &context(Some(&later), 2, 55),
                PollOutcome::Fetched(&evaluation(WaitPhase::Pending)),
            );
            assert_eq!(resolved_at(&next), None);
            let next_done = build_status(
                &context(Some(&next), 2, 58),
                PollOutcome::Fetched(&evaluation(phase)),
            );
            assert_eq!(resolved_at(&next_done), Some(at(58)));
        }

        // A wait timed out by its clock (no answer) resolves too.
        let mut ctx = context(Some(&pending), 1, 40);
        ctx.wait_deadline = Some(at(30));
        let timed_out = build_status(&ctx, PollOutcome::FetchFailed(&api_error(503)));
        assert_eq!(
            timed_out.wait_for.as_ref().unwrap().phase,
            WaitPhase::TimedOut
        );
        assert_eq!(resolved_at(&timed_out), Some(at(40)));
    }

    #[test]
    fn objects_without_a_wait_get_no_wait_clock() {
        let mut ctx = context(None, 1, 50);
        ctx.has_wait = false;
        ctx.wait_deadline = Some(at(30));
        let status = build_status(&ctx, PollOutcome::FetchFailed(&api_error(503)));
        assert_eq!(status.wait_for, None);
        assert!(conditions::find(&status.conditions, COMPLETE).is_none());
    }

    #[test]
    fn errors_a_person_must_fix_stall_and_transient_ones_retry() {
        for (http, reason_expected, stalled) in [
            (400, reason::UPSTREAM_REFUSED, "True"),
            (403, reason::UPSTREAM_REFUSED, "True"),
            (404, reason::UPSTREAM_REFUSED, "True"),
            (401, reason::AUTHENTICATION_FAILED, "True"),
            (429, reason::UPSTREAM_ERROR, "False"),
            (503, reason::UPSTREAM_ERROR, "False"),
        ] {
            let status = build_status(
                &context(None, 1, 1),
                PollOutcome::FetchFailed(&api_error(http)),
            );
            assert_eq!(status_of(&status, STALLED), stalled, "{http}");
            assert_eq!(reason_of(&status, READY), reason_expected, "{http}");
        }
    }

    #[test]
    fn a_refused_job_lookup_stalls_with_its_own_reason_and_advice() {
        for (failure, http, reason_expected, says) in [
            (
                JobLookupFailure::NotFound,
                404,
                reason::JOB_NOT_FOUND,
                "does not know job job-1",
            ),
            (
                JobLookupFailure::Forbidden,
                403,
                reason::JOB_ACCESS_DENIED,
                "dcs:job:get",
            ),
        ] {
            let error = api_error(http);
            let status = build_status(
                &context(None, 1, 1),
                PollOutcome::JobRefused {
                    failure,
                    job: "job-1",
                    error: &error,
                },
            );
            assert_eq!(status_of(&status, STALLED), "True", "{failure:?}");
            assert_eq!(status_of(&status, RECONCILING), "False", "{failure:?}");
            assert_eq!(reason_of(&status, STALLED), reason_expected);
            let message = &find(&status.conditions, STALLED).unwrap().message;
            assert!(message.contains(says), "{message}");
            assert!(
                message.contains(&format!("HTTP {http}")),
                "what the API answered: {message}"
            );
            // The task list's advice (grant dcs:task:list) is not the job's.
            assert!(
                !message.contains("grant the IAM action dcs:task:list"),
                "{message}"
            );
            let last = status.last_error.as_ref().unwrap();
            assert_eq!(last.http_status, Some(i32::from(http)));
        }
    }

    #[test]
    fn a_settled_object_rides_out_a_short_glitch() {
        let mut settled_ctx = context(None, 1, 0);
        settled_ctx.has_wait = false;
        let mut answer = evaluation(WaitPhase::Pending);
        answer.wait = None;
        answer.fetched_at = Some(at(0));
        let settled = build_status(&settled_ctx, PollOutcome::Fetched(&answer));
        assert_eq!(status_of(&settled, READY), "True");

        let glitch_at = |secs: u32, previous: &DcsTaskQueryStatus| {
            let mut ctx = context(Some(previous), 1, 0);
            ctx.has_wait = false;
            ctx.now = at(0) + chrono::TimeDelta::seconds(i64::from(secs));
            build_status(&ctx, PollOutcome::FetchFailed(&api_error(503)))
        };
        let short = glitch_at(120, &settled);
        assert_eq!(short.conditions, settled.conditions, "Ready stays True");
        assert_eq!(short.last_error.as_ref().unwrap().http_status, Some(503));
        let at_the_limit = glitch_at(300, &short);
        assert_eq!(
            status_of(&at_the_limit, READY),
            "False",
            "the grace is 5 min, not more"
        );
        let long = glitch_at(301, &short);
        assert_eq!(status_of(&long, READY), "False");
        assert_eq!(status_of(&long, RECONCILING), "True");
        // A person-needed error does not wait for the grace to run out.
        let mut ctx = context(Some(&settled), 1, 0);
        ctx.has_wait = false;
        let refused = build_status(&ctx, PollOutcome::FetchFailed(&api_error(403)));
        assert_eq!(status_of(&refused, STALLED), "True");
    }

    #[test]
    fn a_refusal_is_remembered_for_the_same_credentials_until_the_cool_down_ends() {
        let mut ctx = context(None, 1, 0);
        ctx.credentials_revision = Some("41");
        let refused = build_status(&ctx, PollOutcome::FetchFailed(&api_error(401)));
        assert_eq!(
            refused
                .last_error
                .as_ref()
                .unwrap()
                .credentials_revision
                .as_deref(),
            Some("41")
        );
        let soon = at(59);
        assert!(remembered_refusal(Some(&refused), Some("41"), soon).is_some());
        assert!(
            remembered_refusal(Some(&refused), Some("42"), soon).is_none(),
            "edited"
        );
        assert!(remembered_refusal(Some(&refused), None, soon).is_none());
        let later = at(0) + chrono::TimeDelta::minutes(5);
        assert!(remembered_refusal(Some(&refused), Some("41"), later).is_none());
        let throttled = build_status(&ctx, PollOutcome::FetchFailed(&api_error(429)));
        assert!(remembered_refusal(Some(&throttled), Some("41"), soon).is_none());
    }

    #[test]
    fn last_sync_time_is_when_the_data_was_fetched() {
        let mut answer = evaluation(WaitPhase::Pending);
        answer.fetched_at = Some(at(3));
        let status = build_status(&context(None, 1, 9), PollOutcome::Fetched(&answer));
        assert_eq!(status.last_sync_time.as_ref().map(to_chrono), Some(at(3)));
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
                iam_action: crate::dcs::IamAction::ListTasks,
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
        assert_eq!(wait_started_at(Some(&done), Some(1), at(5), at(30)), at(0));
        assert_eq!(wait_started_at(Some(&done), Some(2), at(5), at(30)), at(30));
        // Without a persisted start, generation 1 counts from the object's creation.
        assert_eq!(wait_started_at(None, Some(1), at(5), at(30)), at(5));
        assert_eq!(wait_started_at(None, None, at(5), at(30)), at(5));
        assert_eq!(wait_started_at(None, Some(3), at(5), at(30)), at(30));
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
    fn messages_go_on_ready_and_on_true_conditions_only() {
        let transient_error = DcsError::Timeout {
            endpoint: "https://e".into(),
            timeout: std::time::Duration::from_secs(30),
        };
        let statuses = [
            initial_status(&context(None, 1, 0)),
            build_status(
                &context(None, 1, 1),
                PollOutcome::Fetched(&evaluation(WaitPhase::Pending)),
            ),
            build_status(
                &context(None, 1, 1),
                PollOutcome::Fetched(&evaluation(WaitPhase::Succeeded)),
            ),
            build_status(
                &context(None, 1, 1),
                PollOutcome::Fetched(&evaluation(WaitPhase::TimedOut)),
            ),
            build_status(
                &context(None, 1, 1),
                PollOutcome::FetchFailed(&transient_error),
            ),
        ];
        for status in &statuses {
            let ready = find(&status.conditions, READY).unwrap();
            assert!(
                !ready.message.is_empty(),
                "Ready always says why: {ready:?}"
            );
            for condition in &status.conditions {
                if condition.type_ == READY || condition.status == "True" {
                    assert_eq!(condition.message, ready.message, "{condition:?}");
                } else {
                    assert_eq!(condition.message, "", "{condition:?}");
                }
                // Every condition still has its reason: kstatus and Argo CD fall back on it.
                assert_eq!(condition.reason, ready.reason, "{condition:?}");
            }
        }
        // A pending wait shows its message twice (Ready=False, Reconciling=True), not five
        // times.
        let pending = &statuses[1];
        let shown = pending.conditions.iter().filter(|c| !c.message.is_empty());
        assert_eq!(shown.count(), 2);
    }

    #[test]
    fn initial_status_is_never_healthy() {
        let s = initial_status(&context(None, 1, 0));
        assert_eq!(status_of(&s, READY), "Unknown");
        assert_eq!(status_of(&s, RECONCILING), "True");
        assert_eq!(status_of(&s, COMPLETE), "Unknown");
    }

    #[test]
    fn matched_tasks_is_written_and_ambiguity_is_told_once_per_generation() {
        let spec: DcsTaskQuerySpec = serde_json::from_value(serde_json::json!({
            "region": "cn-north-4", "waitFor": {"name": "masterStandbySwapJob"}
        }))
        .unwrap();
        let with_matched = |matched: usize| {
            let mut e = evaluation(WaitPhase::Pending);
            e.wait.as_mut().unwrap().matched = matched;
            e
        };
        let one = build_status(&context(None, 1, 1), PollOutcome::Fetched(&with_matched(1)));
        assert_eq!(one.wait_for.as_ref().unwrap().matched_tasks, Some(1));
        assert_eq!(ambiguous_wait_note(&spec, None, &one), None);

        let two = build_status(
            &context(Some(&one), 1, 2),
            PollOutcome::Fetched(&with_matched(2)),
        );
        assert_eq!(two.wait_for.as_ref().unwrap().matched_tasks, Some(2));
        let note = ambiguous_wait_note(&spec, Some(&one), &two).unwrap();
        assert!(
            note.starts_with("2 tasks named masterStandbySwapJob"),
            "{note}"
        );
        assert!(
            note.contains("(task t1)") && note.contains("spec.waitFor.jobId"),
            "{note}"
        );

        // Told already for this generation: not again, even when the count grows...
        let three = build_status(
            &context(Some(&two), 1, 3),
            PollOutcome::Fetched(&with_matched(3)),
        );
        assert_eq!(ambiguous_wait_note(&spec, Some(&two), &three), None);
        // ...but a new generation is told again.
        let next = build_status(
            &context(Some(&three), 2, 4),
            PollOutcome::Fetched(&with_matched(2)),
        );
        assert!(ambiguous_wait_note(&spec, Some(&three), &next).is_some());

        // A job id is exact: never ambiguous.
        let by_job: DcsTaskQuerySpec = serde_json::from_value(serde_json::json!({
            "region": "cn-north-4", "waitFor": {"jobId": "j1"}
        }))
        .unwrap();
        assert_eq!(ambiguous_wait_note(&by_job, Some(&one), &two), None);
    }
}
