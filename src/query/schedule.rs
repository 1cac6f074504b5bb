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

/// What the last poll was, as far as scheduling cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollKind {
    /// The API answered. `active`: something awaited or running; `resolved`: the wait is over.
    Answered { active: bool, resolved: bool },
    /// The API failed; `consecutive` failures so far (1 for the first).
    Failed {
        consecutive: u32,
        class: FailureClass,
    },
    /// The spec is invalid: nothing to do until it changes.
    InvalidSpec,
    /// Credentials or endpoint unusable: retry later, or when the Secret/spec changes.
    Unusable,
    /// The operator itself cannot serve the object yet (its Secret cache has not synced):
    /// retry soon, the fix is on the operator's side.
    OperatorNotReady,
    /// `spec.suspend`.
    Suspended,
}

/// The delay before the next poll, or `None` for "only when something changes".
///
/// `jitter` in [-1, 1] (a random draw by the caller) moves the delay by up to
/// [`JITTER_FRACTION`] so this stays a pure function.
pub fn next_poll(kind: PollKind, intervals: Intervals, jitter: f64) -> Option<Duration> {
    let Intervals {
        active: active_interval,
        settled: interval,
    } = intervals;
    let base = match kind {
        PollKind::Answered { resolved: true, .. } | PollKind::InvalidSpec | PollKind::Suspended => {
            return None;
        }
        PollKind::Answered { active: true, .. } => active_interval,
        PollKind::Answered { active: false, .. } => interval,
        PollKind::Failed {
            class: FailureClass::NeedsPerson,
            ..
        } => UNUSABLE_RETRY,
        PollKind::Failed { consecutive, class } => {
            let first = if class == FailureClass::Auth {
                AUTH_FAILURE_BACKOFF
            } else {
                active_interval
            };
            let factor = 2u32.saturating_pow(consecutive.saturating_sub(1).min(16));
            first.saturating_mul(factor).min(MAX_BACKOFF)
        }
        PollKind::Unusable => UNUSABLE_RETRY,
        PollKind::OperatorNotReady => OPERATOR_NOT_READY_RETRY,
    };
    Some(base.mul_f64(1.0 + JITTER_FRACTION * jitter.clamp(-1.0, 1.0)))
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
    use crate::query::plan::{PlanContext, plan};

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
    fn answered_polls_follow_the_spec_intervals() {
        let p = the_plan();
        let active = PollKind::Answered {
            active: true,
            resolved: false,
        };
        let settled = PollKind::Answered {
            active: false,
            resolved: false,
        };
        assert_eq!(next_poll(active, p, 0.0), Some(Duration::from_secs(5)));
        assert_eq!(next_poll(settled, p, 0.0), Some(Duration::from_secs(120)));
        assert_eq!(next_poll(settled, p, 1.0), Some(Duration::from_secs(132)));
        assert_eq!(next_poll(settled, p, -1.0), Some(Duration::from_secs(108)));
    }

    #[test]
    fn resolved_waits_invalid_specs_and_suspension_stop_polling() {
        let p = the_plan();
        let resolved = PollKind::Answered {
            active: false,
            resolved: true,
        };
        assert_eq!(next_poll(resolved, p, 0.0), None);
        assert_eq!(
            next_poll(PollKind::InvalidSpec, Intervals::default(), 0.0),
            None
        );
        assert_eq!(next_poll(PollKind::Suspended, p, 0.0), None);
        assert_eq!(
            next_poll(PollKind::Unusable, Intervals::default(), 0.0),
            Some(UNUSABLE_RETRY)
        );
    }

    #[test]
    fn failures_back_off_exponentially_up_to_five_minutes() {
        let p = the_plan();
        let delays: Vec<u64> = (1..=8)
            .map(|n| {
                next_poll(
                    PollKind::Failed {
                        consecutive: n,
                        class: FailureClass::Transient,
                    },
                    p,
                    0.0,
                )
                .unwrap()
                .as_secs()
            })
            .collect();
        assert_eq!(delays, vec![5, 10, 20, 40, 80, 160, 300, 300]);
        let auth = next_poll(
            PollKind::Failed {
                consecutive: 1,
                class: FailureClass::Auth,
            },
            p,
            0.0,
        );
        assert_eq!(auth, Some(AUTH_FAILURE_BACKOFF));
        let huge = next_poll(
            PollKind::Failed {
                consecutive: u32::MAX,
                class: FailureClass::Auth,
            },
            p,
            0.0,
        );
        assert_eq!(huge, Some(MAX_BACKOFF));
        let refused = next_poll(
            PollKind::Failed {
                consecutive: 1,
                class: FailureClass::NeedsPerson,
            },
            p,
            0.0,
        );
        assert_eq!(refused, Some(UNUSABLE_RETRY), "polled slowly");
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
