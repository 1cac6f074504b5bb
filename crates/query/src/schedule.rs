//! When to poll next: fast while something is running or awaited, slow once settled, never
//! after a wait resolved, and exponentially later after failures.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::dcs::FailureClass;

/// Upper bound of the error backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// First delay after a refused credential: long enough that retries cannot lock the AK
/// (5 failures within 5 minutes lock it for 5 minutes).
pub const AUTH_FAILURE_BACKOFF: Duration = Duration::from_secs(60);

/// How long to wait before retrying when credentials or the endpoint are unusable; a change to
/// the Secret or spec triggers a poll sooner in the controller.
pub const UNUSABLE_RETRY: Duration = Duration::from_secs(300);

/// Retry delay while the operator itself is not ready (see [`PollKind::OperatorNotReady`]).
pub const OPERATOR_NOT_READY_RETRY: Duration = Duration::from_secs(10);

/// Share of an interval by which the next poll may move either way, so that many objects
/// created together do not poll together.
pub const JITTER_FRACTION: f64 = 0.1;

/// The polling intervals a query asks for (`spec.activeInterval`, `spec.interval`); an upstream
/// feed polls at the shortest its subscribers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intervals {
    /// While something is awaited or running.
    pub active: Duration,
    /// Once settled.
    pub settled: Duration,
}

impl Default for Intervals {
    /// The spec's defaults.
    fn default() -> Self {
        Self {
            active: Duration::from_secs(10),
            settled: Duration::from_secs(60),
        }
    }
}

/// What a feed's last poll was, for planning its next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastPoll {
    /// The API answered: the next poll follows the interval its subscribers need.
    Answered,
    /// The API failed; `consecutive` failures so far (1 for the first).
    Failed {
        consecutive: u32,
        class: FailureClass,
    },
}

/// Why an object tries again by itself, when no feed drives it (it has nothing to poll with,
/// or what it would poll with was refused moments ago).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Something upstream failed (project discovery, a refused credential still cooling down);
    /// `consecutive` failures so far (1 for the first).
    Failed {
        consecutive: u32,
        class: FailureClass,
    },
    /// Credentials or endpoint unusable: retry later, or when the Secret/spec changes.
    Unusable,
    /// The operator itself cannot serve the object yet (its Secret cache has not synced, a
    /// project discovery is still running): retry soon, the fix is on the operator's side.
    OperatorNotReady,
}

/// The delay before a feed's next poll, when its subscribers need `interval`: the interval
/// after an answer, backed off from it after failures (a settled feed retries at its
/// `interval`, doubling, not at some subscriber's `activeInterval`).
///
/// `jitter` in [-1, 1] (a random draw by the caller) moves the delay by up to
/// [`JITTER_FRACTION`] so this stays a pure function.
pub fn feed_delay(last: LastPoll, interval: Duration, jitter: f64) -> Duration {
    let base = match last {
        LastPoll::Answered => interval,
        LastPoll::Failed { consecutive, class } => backoff(consecutive, class, interval),
    };
    jittered(base, jitter)
}

/// The delay before an object's own retry (see [`Retry`]); `active_interval` is its query's,
/// from which transient failures back off.
pub fn retry_delay(retry: Retry, active_interval: Duration, jitter: f64) -> Duration {
    let base = match retry {
        Retry::Failed { consecutive, class } => backoff(consecutive, class, active_interval),
        Retry::Unusable => UNUSABLE_RETRY,
        Retry::OperatorNotReady => OPERATOR_NOT_READY_RETRY,
    };
    jittered(base, jitter)
}

/// The `consecutive`-th failure's delay: from `first` (or [`AUTH_FAILURE_BACKOFF`] for a
/// refused credential), doubling up to [`MAX_BACKOFF`]; errors only a person can fix are
/// retried at [`UNUSABLE_RETRY`].
fn backoff(consecutive: u32, class: FailureClass, first: Duration) -> Duration {
    let first = match class {
        FailureClass::NeedsPerson => return UNUSABLE_RETRY,
        FailureClass::Auth => AUTH_FAILURE_BACKOFF,
        FailureClass::Transient => first,
    };
    let factor = 2u32.saturating_pow(consecutive.saturating_sub(1).min(16));
    first.saturating_mul(factor).min(MAX_BACKOFF)
}

fn jittered(base: Duration, jitter: f64) -> Duration {
    base.mul_f64(1.0 + JITTER_FRACTION * jitter.clamp(-1.0, 1.0))
}

/// How long from `now` until the poll a wait's `deadline` needs: [`DEADLINE_MARGIN`] after the
/// deadline, when the last answer (fetched at `answered_at`) predates it. A wait is judged
/// `TimedOut` only on an answer fetched at or after its deadline, so that poll gives the task
/// its last chance; once an answer that late exists, the deadline asks for nothing more.
/// A deadline already behind `now` (a late poll) asks for a poll at once.
pub fn until_deadline_poll(
    deadline: Option<DateTime<Utc>>,
    answered_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let deadline = deadline.filter(|deadline| *deadline > answered_at)?;
    let due = chrono::TimeDelta::from_std(DEADLINE_MARGIN)
        .ok()
        .and_then(|margin| deadline.checked_add_signed(margin))
        .unwrap_or(deadline);
    Some((due - now).to_std().unwrap_or(Duration::ZERO))
}

/// Polled this long after a wait's deadline, so the deadline has certainly passed.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PlanContext, plan};

    fn the_plan() -> Intervals {
        let spec = serde_json::from_value(serde_json::json!({
            "region": "cn-north-4", "interval": "2m", "activeInterval": "5s"
        }))
        .unwrap();
        plan(&spec, &PlanContext::starting_at(chrono::Utc::now()))
            .unwrap()
            .intervals()
    }

    #[test]
    fn answered_polls_follow_the_interval_their_subscribers_need() {
        let p = the_plan();
        assert_eq!(feed_delay(LastPoll::Answered, p.active, 0.0), p.active);
        assert_eq!(feed_delay(LastPoll::Answered, p.settled, 0.0), p.settled);
        assert_eq!(
            feed_delay(LastPoll::Answered, p.settled, 1.0),
            Duration::from_secs(132)
        );
        assert_eq!(
            feed_delay(LastPoll::Answered, p.settled, -1.0),
            Duration::from_secs(108)
        );
        // Out-of-range draws are clamped, never a negative or doubled delay.
        assert_eq!(
            feed_delay(LastPoll::Answered, p.settled, 7.0),
            Duration::from_secs(132)
        );
        assert_eq!(
            feed_delay(LastPoll::Answered, p.settled, -7.0),
            Duration::from_secs(108)
        );
    }

    #[test]
    fn an_objects_own_retries_wait_by_what_fixes_them() {
        let p = the_plan();
        assert_eq!(retry_delay(Retry::Unusable, p.active, 0.0), UNUSABLE_RETRY);
        assert_eq!(
            retry_delay(Retry::OperatorNotReady, p.active, 0.0),
            OPERATOR_NOT_READY_RETRY
        );
        let discovery = |consecutive| Retry::Failed {
            consecutive,
            class: FailureClass::Transient,
        };
        assert_eq!(
            retry_delay(discovery(1), p.active, 0.0),
            Duration::from_secs(5)
        );
        assert_eq!(
            retry_delay(discovery(3), p.active, 0.0),
            Duration::from_secs(20)
        );
        let refused = Retry::Failed {
            consecutive: 1,
            class: FailureClass::Auth,
        };
        assert_eq!(retry_delay(refused, p.active, 0.0), AUTH_FAILURE_BACKOFF);
        assert_eq!(
            retry_delay(Retry::Unusable, p.active, 1.0),
            UNUSABLE_RETRY.mul_f64(1.1)
        );
    }

    #[test]
    fn failures_back_off_exponentially_up_to_five_minutes() {
        let p = the_plan();
        let failed = |consecutive, class| LastPoll::Failed { consecutive, class };
        let delays: Vec<u64> = (1..=8)
            .map(|n| feed_delay(failed(n, FailureClass::Transient), p.active, 0.0).as_secs())
            .collect();
        assert_eq!(delays, vec![5, 10, 20, 40, 80, 160, 300, 300]);
        // A settled feed backs off from its own interval.
        assert_eq!(
            feed_delay(failed(2, FailureClass::Transient), p.settled, 0.0),
            Duration::from_secs(240)
        );
        let auth = feed_delay(failed(1, FailureClass::Auth), p.active, 0.0);
        assert_eq!(auth, AUTH_FAILURE_BACKOFF);
        assert_eq!(
            feed_delay(failed(2, FailureClass::Auth), p.active, 0.0),
            AUTH_FAILURE_BACKOFF * 2
        );
        let huge = feed_delay(failed(u32::MAX, FailureClass::Auth), p.active, 0.0);
        assert_eq!(huge, MAX_BACKOFF);
        let refused = feed_delay(failed(1, FailureClass::NeedsPerson), p.active, 0.0);
        assert_eq!(refused, UNUSABLE_RETRY, "polled slowly");
        assert_eq!(
            feed_delay(failed(5, FailureClass::NeedsPerson), p.active, 0.0),
            UNUSABLE_RETRY,
            "not doubled"
        );
    }

    #[test]
    fn a_deadline_asks_for_one_poll_after_it_until_an_answer_that_late_exists() {
        let now = chrono::Utc::now();
        let deadline = now + chrono::TimeDelta::seconds(20);
        let earlier = now - chrono::TimeDelta::seconds(5);
        assert_eq!(
            until_deadline_poll(Some(deadline), earlier, now),
            Some(Duration::from_secs(20) + DEADLINE_MARGIN)
        );
        // Answered at or after the deadline: that answer judged it, nothing more is needed.
        assert_eq!(until_deadline_poll(Some(deadline), deadline, now), None);
        assert_eq!(
            until_deadline_poll(
                Some(deadline),
                deadline + chrono::TimeDelta::seconds(1),
                now
            ),
            None
        );
        // The deadline passed since the last answer (a late poll, say after a backoff): at once,
        // or within the margin.
        let passed = now - chrono::TimeDelta::seconds(1);
        assert_eq!(
            until_deadline_poll(Some(passed), earlier, now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            until_deadline_poll(Some(now), earlier, now),
            Some(DEADLINE_MARGIN)
        );
        assert_eq!(until_deadline_poll(None, earlier, now), None);
        // Times at the end of the calendar plan without panicking.
        let end = DateTime::<Utc>::MAX_UTC;
        assert!(until_deadline_poll(Some(end), earlier, now).is_some());
    }
}
