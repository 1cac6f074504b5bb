//! The decision step of a reconcile (and of each `query --watch` round), as one pure function:
//! given what was written before and what just happened, the status to show, whether it must be
//! written, the events of the transition and when to look again without a new answer.
//!
//! Both the controller and the CLI call [`decide`], so a query resolves, stalls, times out and
//! tells about it the same way everywhere; the callers only do the I/O around it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::report::{
    GLITCH_GRACE, PollOutcome, StatusContext, ambiguous_wait_note, build_status, last_good_answer,
    reason,
};
use super::schedule::DEADLINE_MARGIN;
use crate::api::conditions::{self, STALLED};
use crate::api::time::to_chrono;
use crate::api::{DcsTaskQuerySpec, DcsTaskQueryStatus, WaitPhase};
use crate::dcs::FailureClass;

/// A status whose content did not change is re-written this often while its feed keeps
/// answering, so `lastSyncTime` shows the data is fresh without a write per poll. Every
/// settled object costs one write per heartbeat (10,000 objects: 5.6 writes a second at 30
/// minutes), which is why it is long: freshness between heartbeats shows in the feed's metrics,
/// and the glitch grace is judged from the feed's last good answer, not from this time.
pub const SYNC_HEARTBEAT: Duration = Duration::from_secs(1800);

/// Kubernetes refuses events whose note exceeds 1 KiB; notes quote upstream text.
pub const MAX_EVENT_NOTE_BYTES: usize = 1024;

/// The reasons of the events the operator publishes, as `kubectl describe` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventReason {
    /// The awaited task reached a success status.
    TaskSucceeded,
    /// The awaited task reached a failure status.
    TaskFailed,
    /// `waitFor.timeout` passed before the task finished.
    WaitTimedOut,
    /// A `waitFor.name` matched several tasks; the newest is followed.
    AmbiguousWait,
    /// A person must act (the note names the condition reason and what to fix).
    Stalled,
}

impl EventReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EventReason::TaskSucceeded => "TaskSucceeded",
            EventReason::TaskFailed => "TaskFailed",
            EventReason::WaitTimedOut => "WaitTimedOut",
            EventReason::AmbiguousWait => "AmbiguousWait",
            EventReason::Stalled => "Stalled",
        }
    }

    /// Whether the event is a warning (`type: Warning`) rather than `Normal`.
    pub fn is_warning(self) -> bool {
        !matches!(self, EventReason::TaskSucceeded)
    }
}

impl std::fmt::Display for EventReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event to publish for a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub reason: EventReason,
    /// At most [`MAX_EVENT_NOTE_BYTES`].
    pub note: Option<String>,
}

/// Everything a decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct DecisionInput<'a> {
    /// The status context; `context.previous` is the status as last written (the controller's
    /// cache may hold it without `tasks` and `latest`: see `previous_digest`).
    pub context: StatusContext<'a>,
    /// [`content_digest`] of the status last written, `None` when unknown (nothing written yet).
    pub previous_digest: Option<u64>,
    pub outcome: PollOutcome<'a>,
    pub spec: &'a DcsTaskQuerySpec,
    /// Flux's `reconcile.fluxcd.io/requestedAt`, echoed as `lastHandledReconcileAt`.
    pub requested_at: Option<&'a str>,
    /// When the object must try again by itself because no upstream feed drives it (missing
    /// credentials, a refused endpoint, a failed project discovery...); `None` when a feed does.
    pub retry_after: Option<Duration>,
    /// What `status.projectId` shows.
    pub project: ProjectShown<'a>,
}

/// What `status.projectId` shows after a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectShown<'a> {
    /// The project queried (given, from the credentials, or discovered).
    Queried(&'a str),
    /// Discovery failed: no project is known.
    Unknown,
    /// Nothing new was learnt (the request never got that far): keep what was shown.
    Unchanged,
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub status: DcsTaskQueryStatus,
    /// [`content_digest`] of `status`, to remember once written.
    pub digest: u64,
    /// Whether the status must be written: its content changed, or the sync heartbeat is due.
    pub write: bool,
    /// The events of this transition (none when nothing changed), to publish after the write.
    pub events: Vec<Notice>,
    /// The wait resolved for this generation (now or before): nothing more to poll for it.
    pub resolved: bool,
    /// When to decide again without a new answer: a retry, a wait deadline, the end of a
    /// glitch grace, the sync heartbeat. `None`: only when something changes.
    pub recheck: Option<Duration>,
}

/// Decides what `input.outcome` means for the object.
pub fn decide(input: DecisionInput<'_>) -> Decision {
    let context = &input.context;
    let previous = context.previous;
    let mut status = build_status(context, input.outcome);
    if let Some(requested_at) = input.requested_at {
        status.last_handled_reconcile_at = Some(requested_at.to_string());
    }
    match input.project {
        ProjectShown::Queried(project) => status.project_id = Some(project.to_string()),
        ProjectShown::Unknown => status.project_id = None,
        ProjectShown::Unchanged => {}
    }
    let digest = content_digest(&status);
    let changed = input.previous_digest != Some(digest);
    let heartbeat_due = match (
        previous.and_then(|p| p.last_sync_time.as_ref()),
        status.last_sync_time.as_ref(),
    ) {
        (Some(old), Some(new)) => elapsed(to_chrono(old), to_chrono(new)) >= SYNC_HEARTBEAT,
        (None, Some(_)) => true,
        _ => false,
    };
    let write = changed || heartbeat_due;
    let events = if changed {
        transition_notices(input.spec, previous, &status)
    } else {
        Vec::new()
    };
    let resolved = status
        .wait_for
        .as_ref()
        .is_some_and(|wait| wait.phase.is_resolved());
    let recheck = if resolved {
        None
    } else {
        recheck_after(&input, &status)
    };
    Decision {
        status,
        digest,
        write,
        events,
        resolved,
        recheck,
    }
}

/// The soonest time-driven reason to decide again.
fn recheck_after(input: &DecisionInput<'_>, status: &DcsTaskQueryStatus) -> Option<Duration> {
    let context = &input.context;
    let now = context.now;
    let until = |at: DateTime<Utc>| (at - now).to_std().unwrap_or(Duration::ZERO);
    let mut reasons = vec![input.retry_after];
    // A wait times out at its deadline even when no answer ever changes. Once the deadline
    // has passed, a wait still pending waits for the feed's poll after the deadline, whose
    // answer wakes it (rechecking would only re-read the older answer, every margin).
    if context.has_wait
        && let Some(deadline) = context.wait_deadline.filter(|deadline| *deadline > now)
    {
        reasons.push(Some(until(deadline) + DEADLINE_MARGIN));
    }
    let fed = matches!(
        input.outcome,
        PollOutcome::Fetched(_) | PollOutcome::FetchFailed(_) | PollOutcome::JobRefused { .. }
    );
    if fed && let Some(synced) = status.last_sync_time.as_ref().map(to_chrono) {
        // lastSyncTime is refreshed at least this often while the feed keeps answering.
        reasons.push(Some(
            until(shifted(synced, SYNC_HEARTBEAT)).max(MIN_RECHECK),
        ));
    }
    // A settled object riding out a glitch must turn Ready=False when the grace ends, even if
    // the upstream keeps failing the same way (which wakes nobody).
    if let PollOutcome::FetchFailed(error) = input.outcome
        && error.class() == FailureClass::Transient
        && let Some(good) = last_good_answer(context)
    {
        reasons.push(Some(until(shifted(good, GLITCH_GRACE)) + DEADLINE_MARGIN));
    }
    reasons.into_iter().flatten().min()
}

/// The shortest heartbeat recheck, so a sync time in the future never makes a busy loop.
const MIN_RECHECK: Duration = Duration::from_secs(1);

fn shifted(at: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(by)
        .ok()
        .and_then(|by| at.checked_add_signed(by))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn elapsed(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or(Duration::ZERO)
}

/// A digest of everything in a status except `lastSyncTime`: equal digests mean a write would
/// change nothing a reader cares about. It lets the controller drop `tasks` and `latest` from its
/// object cache (memory independent of status size) and still tell whether a status changed.
/// In-process only: the hash is not stable across builds.
pub fn content_digest(status: &DcsTaskQueryStatus) -> u64 {
    let content = DcsTaskQueryStatus {
        last_sync_time: None,
        ..status.clone()
    };
    let mut hasher = DefaultHasher::new();
    // Serializing a status cannot fail (plain data, string keys); an empty text would only make
    // two failed serializations look equal.
    serde_json::to_string(&content)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

/// One event per transition of the awaited task or of `Stalled`, judged against the status
/// written before, so a restart or a repeated answer publishes nothing new.
pub fn transition_notices(
    spec: &DcsTaskQuerySpec,
    previous: Option<&DcsTaskQueryStatus>,
    status: &DcsTaskQueryStatus,
) -> Vec<Notice> {
    let mut notices = Vec::new();
    let old_phase = previous
        .filter(|p| p.observed_generation == status.observed_generation)
        .and_then(|p| p.wait_for.as_ref())
        .map(|w| w.phase);
    if let Some(wait) = &status.wait_for
        && Some(wait.phase) != old_phase
    {
        let reason = match wait.phase {
            WaitPhase::Succeeded => Some(EventReason::TaskSucceeded),
            WaitPhase::Failed => Some(EventReason::TaskFailed),
            WaitPhase::TimedOut => Some(EventReason::WaitTimedOut),
            WaitPhase::Pending => None,
        };
        if let Some(reason) = reason {
            notices.push(notice(reason, wait.message.clone()));
        }
    }
    if let Some(note) = ambiguous_wait_note(spec, previous, status) {
        notices.push(notice(EventReason::AmbiguousWait, Some(note)));
    }
    let stalled = |s: Option<&DcsTaskQueryStatus>| {
        s.and_then(|s| conditions::find(&s.conditions, STALLED))
            .filter(|c| c.status == "True")
            .map(|c| (c.reason.clone(), c.message.clone(), c.observed_generation))
    };
    let after = stalled(Some(status));
    if let Some((stall_reason, message, _)) = &after
        && stalled(previous) != after
        // A failed task or a timeout has its own event above.
        && stall_reason != reason::TASK_FAILED
        && stall_reason != reason::TIMED_OUT
    {
        notices.push(notice(
            EventReason::Stalled,
            Some(format!("{stall_reason}: {message}")),
        ));
    }
    notices
}

fn notice(reason: EventReason, note: Option<String>) -> Notice {
    Notice {
        reason,
        note: note
            .map(|note| crate::text::truncate_bytes(&note, MAX_EVENT_NOTE_BYTES).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::LatestTask;
    use crate::api::time::from_chrono;
    use crate::dcs::{ApiError, DcsError};
    use crate::evaluate::{Evaluation, WaitVerdict};
    use chrono::TimeZone;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap() + TimeDelta::seconds(s)
    }

    fn spec(wait: bool) -> DcsTaskQuerySpec {
        let mut spec = serde_json::json!({"region": "cn-north-4"});
        if wait {
            spec["waitFor"] = serde_json::json!({"jobId": "j1"});
        }
        serde_json::from_value(spec).unwrap()
    }

    fn evaluation(phase: WaitPhase, status: &str, fetched: i64) -> Evaluation {
        Evaluation {
            task_count: Some(1),
            matched_count: 1,
            tasks: vec![],
            latest: vec![LatestTask {
                name: "masterStandbySwapJob".into(),
                status: Some(status.into()),
                ..LatestTask::default()
            }],
            wait: Some(WaitVerdict {
                job: None,
                phase,
                task: None,
                matched: 1,
                message: format!("task is {status}"),
            }),
            active: !phase.is_resolved(),
            omitted_tasks: 0,
            omitted_names: 0,
            incomplete: false,
            fetched_at: Some(at(fetched)),
        }
    }

    fn server_error() -> DcsError {
        DcsError::Api {
            endpoint: "https://e".into(),
            error: ApiError {
                http_status: 503,
                error_code: None,
                error_msg: Some("busy".into()),
                request_id: None,
                retry_after: None,
                iam_action: crate::dcs::IamAction::ListTasks,
            },
        }
    }

    /// One row of a case table: the previous status (written at `now`), what happened, when.
    struct Case<'a> {
        previous: Option<&'a DcsTaskQueryStatus>,
        outcome: PollOutcome<'a>,
        now: i64,
        deadline: Option<i64>,
        retry_after: Option<Duration>,
    }

    /// A decision about `spec` at `now` with nothing else known; tests set what they vary.
    fn input<'a>(
        spec: &'a DcsTaskQuerySpec,
        previous: Option<&'a DcsTaskQueryStatus>,
        outcome: PollOutcome<'a>,
        now: i64,
    ) -> DecisionInput<'a> {
        DecisionInput {
            context: StatusContext {
                previous,
                generation: Some(1),
                has_wait: spec.wait_for.is_some(),
                wait_started_at: at(0),
                wait_deadline: None,
                credentials_revision: None,
                last_good_at: None,
                answered_at: None,
                now: at(now),
            },
            previous_digest: previous.map(content_digest),
            outcome,
            spec,
            requested_at: None,
            retry_after: None,
            project: ProjectShown::Unchanged,
        }
    }

    fn run(case: Case<'_>) -> Decision {
        let spec = spec(true);
        let mut input = input(&spec, case.previous, case.outcome, case.now);
        input.context.wait_deadline = case.deadline.map(at);
        input.retry_after = case.retry_after;
        decide(input)
    }

    fn case<'a>(
        previous: Option<&'a DcsTaskQueryStatus>,
        outcome: PollOutcome<'a>,
        now: i64,
    ) -> Case<'a> {
        Case {
            previous,
            outcome,
            now,
            deadline: None,
            retry_after: None,
        }
    }

    fn reasons(decision: &Decision) -> Vec<EventReason> {
        decision.events.iter().map(|n| n.reason).collect()
    }

    #[test]
    fn event_reasons_read_as_kubectl_describe_shows_them() {
        for (reason, text, warning) in [
            (EventReason::TaskSucceeded, "TaskSucceeded", false),
            (EventReason::TaskFailed, "TaskFailed", true),
            (EventReason::WaitTimedOut, "WaitTimedOut", true),
            (EventReason::AmbiguousWait, "AmbiguousWait", true),
            (EventReason::Stalled, "Stalled", true),
        ] {
            assert_eq!(reason.as_str(), text);
            assert_eq!(reason.to_string(), text);
            assert_eq!(reason.is_warning(), warning, "{text}");
        }
    }

    #[test]
    fn writes_happen_only_for_changes_and_the_heartbeat() {
        let pending = evaluation(WaitPhase::Pending, "RUNNING", 0);
        let first = run(case(None, PollOutcome::Fetched(&pending), 0));
        assert!(first.write, "a new object's first answer is written");
        assert!(reasons(&first).is_empty(), "pending tells nothing");

        // The same answer again, polled later: nothing to write.
        let again = evaluation(WaitPhase::Pending, "RUNNING", 30);
        let same = run(case(Some(&first.status), PollOutcome::Fetched(&again), 30));
        assert!(!same.write);
        assert_eq!(same.digest, first.digest, "lastSyncTime is not content");

        // ... until the heartbeat is due.
        let due = i64::try_from(SYNC_HEARTBEAT.as_secs()).unwrap();
        let not_yet = evaluation(WaitPhase::Pending, "RUNNING", due - 1);
        let early = run(case(
            Some(&first.status),
            PollOutcome::Fetched(&not_yet),
            due - 1,
        ));
        assert!(!early.write);
        let later = evaluation(WaitPhase::Pending, "RUNNING", due);
        let heartbeat = run(case(Some(&first.status), PollOutcome::Fetched(&later), due));
        assert!(heartbeat.write);
        assert!(heartbeat.events.is_empty());

        // A status that never showed when its data was fetched gets the time written.
        let timeless = DcsTaskQueryStatus {
            last_sync_time: None,
            ..first.status.clone()
        };
        let dated = run(case(Some(&timeless), PollOutcome::Fetched(&again), 30));
        assert!(dated.write);

        // A changed task is written at once.
        let changed = evaluation(WaitPhase::Pending, "EXECUTING", 31);
        let moved = run(case(
            Some(&first.status),
            PollOutcome::Fetched(&changed),
            31,
        ));
        assert!(moved.write && moved.digest != first.digest);
    }

    #[test]
    fn each_verdict_has_one_event_and_ends_the_polling() {
        let pending = run(case(
            None,
            PollOutcome::Fetched(&evaluation(WaitPhase::Pending, "RUNNING", 0)),
            0,
        ));
        for (phase, reason) in [
            (WaitPhase::Succeeded, EventReason::TaskSucceeded),
            (WaitPhase::Failed, EventReason::TaskFailed),
            (WaitPhase::TimedOut, EventReason::WaitTimedOut),
        ] {
            let answer = evaluation(phase, "SUCCESS", 10);
            let resolved = run(case(
                Some(&pending.status),
                PollOutcome::Fetched(&answer),
                10,
            ));
            assert_eq!(reasons(&resolved), vec![reason], "{phase:?}");
            assert_eq!(
                resolved.events[0].reason.is_warning(),
                phase != WaitPhase::Succeeded
            );
            assert!(resolved.write && resolved.resolved, "{phase:?}");
            assert_eq!(resolved.recheck, None, "{phase:?}: nothing left to do");
            // Told once: the same verdict again publishes nothing.
            let again = run(case(
                Some(&resolved.status),
                PollOutcome::Fetched(&answer),
                20,
            ));
            assert!(again.events.is_empty() && !again.write, "{phase:?}");
            // Nor when the task list around it changed and is written.
            let newer = evaluation(phase, "SUCCESS-AGAIN", 30);
            let refreshed = run(case(
                Some(&resolved.status),
                PollOutcome::Fetched(&newer),
                30,
            ));
            assert!(refreshed.write, "{phase:?}");
            assert!(
                refreshed.events.is_empty(),
                "{phase:?}: {:?}",
                refreshed.events
            );
        }
    }

    #[test]
    fn stalls_are_told_once_with_their_reason() {
        let missing = PollOutcome::CredentialsUnavailable("Secret ns/creds not found");
        let stalled = run(Case {
            retry_after: Some(Duration::from_secs(300)),
            ..case(None, missing, 0)
        });
        assert_eq!(reasons(&stalled), vec![EventReason::Stalled]);
        let note = stalled.events[0].note.as_deref().unwrap();
        assert!(
            note.starts_with("CredentialsUnavailable: Secret ns/creds"),
            "{note}"
        );
        assert_eq!(stalled.recheck, Some(Duration::from_secs(300)));
        let again = run(case(Some(&stalled.status), missing, 60));
        assert!(again.events.is_empty() && !again.write);
    }

    #[test]
    fn a_wait_comes_back_at_its_deadline_even_if_nothing_changes() {
        let answer = evaluation(WaitPhase::Pending, "RUNNING", 0);
        let pending = run(Case {
            deadline: Some(30),
            ..case(None, PollOutcome::Fetched(&answer), 0)
        });
        assert_eq!(
            pending.recheck,
            Some(Duration::from_secs(30) + DEADLINE_MARGIN)
        );
        let failing = run(Case {
            deadline: Some(30),
            retry_after: Some(Duration::from_secs(5)),
            ..case(None, PollOutcome::CredentialsUnavailable("x"), 0)
        });
        assert_eq!(
            failing.recheck,
            Some(Duration::from_secs(5)),
            "the sooner wins"
        );
        let timed_out = run(Case {
            deadline: Some(30),
            ..case(
                Some(&pending.status),
                PollOutcome::FetchFailed(&server_error()),
                31,
            )
        });
        assert_eq!(reasons(&timed_out), vec![EventReason::WaitTimedOut]);
        assert!(timed_out.resolved);
    }

    #[test]
    fn a_wait_past_its_deadline_on_an_older_answer_waits_for_the_feed_without_spinning() {
        // Fetched at 25, read at 31 with the deadline at 30: pending, the feed's poll after
        // the deadline will wake the object; no recheck every margin meanwhile.
        let older = evaluation(WaitPhase::Pending, "RUNNING", 25);
        let pending = run(Case {
            deadline: Some(30),
            ..case(None, PollOutcome::Fetched(&older), 31)
        });
        assert!(!pending.resolved);
        let heartbeat = SYNC_HEARTBEAT - Duration::from_secs(6);
        assert_eq!(pending.recheck, Some(heartbeat));
        // The same for a poll that failed at 29, read at 31.
        let spec = spec(true);
        let error = server_error();
        let mut failed = input(
            &spec,
            Some(&pending.status),
            PollOutcome::FetchFailed(&error),
            31,
        );
        failed.context.wait_deadline = Some(at(30));
        failed.context.answered_at = Some(at(29));
        let failed = decide(failed);
        assert!(!failed.resolved);
        assert!(
            failed
                .recheck
                .is_some_and(|after| after > Duration::from_secs(60)),
            "{:?}",
            failed.recheck
        );
    }

    fn failure(http_status: u16, request_id: &str) -> DcsError {
        DcsError::Api {
            endpoint: "https://e".into(),
            error: ApiError {
                http_status,
                error_code: (http_status == 401).then(|| "APIG.0301".to_string()),
                error_msg: Some("busy".into()),
                request_id: Some(request_id.into()),
                retry_after: None,
                iam_action: crate::dcs::IamAction::ListTasks,
            },
        }
    }

    #[test]
    fn the_same_error_again_costs_no_write() {
        let first_error = failure(503, "req-1");
        let first = run(case(None, PollOutcome::FetchFailed(&first_error), 10));
        assert!(first.write);
        // The outage goes on: the same failure (another request id), 30 s and 5 min later.
        let again_error = failure(503, "req-2");
        for now in [40, 310] {
            let again = run(case(
                Some(&first.status),
                PollOutcome::FetchFailed(&again_error),
                now,
            ));
            assert!(!again.write, "at {now}: {:?}", again.status.last_error);
            assert_eq!(again.digest, first.digest);
            assert_eq!(again.status.last_error, first.status.last_error);
        }
        // Another failure is news, written with its own time.
        let other_error = failure(502, "req-3");
        let other = run(case(
            Some(&first.status),
            PollOutcome::FetchFailed(&other_error),
            40,
        ));
        assert!(other.write);
        let recorded = other.status.last_error.as_ref().unwrap();
        assert_eq!(to_chrono(&recorded.time), at(40));
        // A refusal's time starts the access key's cool-down: renewed at each refusal.
        let refused = failure(401, "req-4");
        let first_refusal = run(case(None, PollOutcome::FetchFailed(&refused), 10));
        let refused_again = run(case(
            Some(&first_refusal.status),
            PollOutcome::FetchFailed(&refused),
            400,
        ));
        let recorded = refused_again.status.last_error.as_ref().unwrap();
        assert_eq!(to_chrono(&recorded.time), at(400));
    }

    #[test]
    fn a_settled_object_rechecks_when_its_glitch_grace_ends() {
        let spec = spec(false);
        let synced = Evaluation {
            wait: None,
            active: false,
            ..evaluation(WaitPhase::Pending, "SUCCESS", 0)
        };
        let input = |previous, outcome, now| DecisionInput {
            project: ProjectShown::Queried("p1"),
            ..input(&spec, previous, outcome, now)
        };
        let ready = decide(input(None, PollOutcome::Fetched(&synced), 0));
        assert_eq!(ready.status.project_id.as_deref(), Some("p1"));
        assert_eq!(ready.recheck, Some(SYNC_HEARTBEAT), "the heartbeat");
        let error = server_error();
        let glitch = decide(input(
            Some(&ready.status),
            PollOutcome::FetchFailed(&error),
            60,
        ));
        assert!(glitch.events.is_empty());
        assert_eq!(
            glitch.recheck,
            Some(GLITCH_GRACE - Duration::from_secs(60) + DEADLINE_MARGIN)
        );
    }

    #[test]
    fn the_grace_counts_from_the_feeds_last_good_answer_not_the_last_write() {
        let spec = spec(false);
        let synced = Evaluation {
            wait: None,
            active: false,
            ..evaluation(WaitPhase::Pending, "SUCCESS", 0)
        };
        let ready = decide(input(&spec, None, PollOutcome::Fetched(&synced), 0));
        // Twenty minutes of unchanged answers wrote nothing; the last one came a minute ago.
        let error = server_error();
        let mut after_a_minute = input(
            &spec,
            Some(&ready.status),
            PollOutcome::FetchFailed(&error),
            1200,
        );
        after_a_minute.context.last_good_at = Some(at(1140));
        let glitch = decide(after_a_minute);
        let ready_now = conditions::find(&glitch.status.conditions, "Ready").unwrap();
        assert_eq!(ready_now.status, "True", "a one-minute-old answer is fresh");
        assert_eq!(
            glitch.recheck,
            Some(GLITCH_GRACE - Duration::from_secs(60) + DEADLINE_MARGIN)
        );
        // Without that knowledge the written time is all there is: the grace is over.
        let stale = decide(input(
            &spec,
            Some(&ready.status),
            PollOutcome::FetchFailed(&error),
            1200,
        ));
        let ready_then = conditions::find(&stale.status.conditions, "Ready").unwrap();
        assert_eq!(ready_then.status, "False");
    }

    #[test]
    fn the_project_shown_follows_what_was_learnt() {
        let spec = spec(false);
        let mut previous = DcsTaskQueryStatus {
            project_id: Some("old".into()),
            ..DcsTaskQueryStatus::default()
        };
        previous.last_sync_time = Some(from_chrono(at(0)));
        for (shown, expected) in [
            (ProjectShown::Queried("new"), Some("new")),
            (ProjectShown::Unknown, None),
            (ProjectShown::Unchanged, Some("old")),
        ] {
            let decision = decide(DecisionInput {
                requested_at: Some("2026-11-28T12:00:00Z"),
                project: shown,
                ..input(
                    &spec,
                    Some(&previous),
                    PollOutcome::EndpointNotAllowed("spec.endpoint: not allowed"),
                    1,
                )
            });
            assert_eq!(decision.status.project_id.as_deref(), expected, "{shown:?}");
            assert_eq!(
                decision.status.last_handled_reconcile_at.as_deref(),
                Some("2026-11-28T12:00:00Z")
            );
            assert!(decision.write);
        }
    }

    #[test]
    fn a_new_object_without_an_answer_says_work_is_under_way() {
        let first = run(case(None, PollOutcome::FirstPoll, 0));
        assert!(first.write && !first.resolved);
        let ready = conditions::find(&first.status.conditions, "Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        let reconciling = conditions::find(&first.status.conditions, "Reconciling").unwrap();
        assert_eq!(reconciling.status, "True");
        assert_eq!(first.recheck, None, "the feed wakes it");
    }

    #[test]
    fn a_remembered_refusal_keeps_its_time() {
        let refused = DcsError::Api {
            endpoint: "https://e".into(),
            error: ApiError {
                http_status: 401,
                error_code: Some("APIG.0301".into()),
                error_msg: Some("Incorrect IAM authentication information".into()),
                request_id: None,
                retry_after: None,
                iam_action: crate::dcs::IamAction::ListTasks,
            },
        };
        let first = run(case(None, PollOutcome::FetchFailed(&refused), 0));
        let recorded = first.status.last_error.clone().unwrap();
        let still = run(case(
            Some(&first.status),
            PollOutcome::StillRefused(&recorded, &refused),
            120,
        ));
        assert_eq!(still.status.last_error, Some(recorded));
        assert!(!still.write, "nothing new");
        assert!(still.events.is_empty());
    }
}
