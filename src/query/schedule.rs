//! When to poll next: fast while something is running or awaited, slow once settled, never
//! after a wait resolved, and exponentially later after failures.

use std::time::Duration;

use super::plan::QueryPlan;

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

/// What the last poll was, as far as scheduling cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollKind {
    /// The API answered. `active`: something awaited or running; `resolved`: the wait is over.
    Answered { active: bool, resolved: bool },
    /// The API failed; `consecutive` failures so far (1 for the first).
    Failed { consecutive: u32, auth: bool },
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
pub fn next_poll(kind: PollKind, plan: Option<&QueryPlan>, jitter: f64) -> Option<Duration> {
    let (active_interval, interval) = plan
        .map_or((Duration::from_secs(10), Duration::from_secs(60)), |plan| {
            (plan.active_interval, plan.interval)
        });
    let base = match kind {
        PollKind::Answered { resolved: true, .. } | PollKind::InvalidSpec | PollKind::Suspended => {
            return None;
        }
        PollKind::Answered { active: true, .. } => active_interval,
        PollKind::Answered { active: false, .. } => interval,
        PollKind::Failed { consecutive, auth } => {
            let first = if auth {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::plan::{PlanContext, plan};

    fn the_plan() -> QueryPlan {
        let spec = serde_json::from_value(serde_json::json!({
            "region": "cn-north-4", "interval": "2m", "activeInterval": "5s"
        }))
        .unwrap();
        plan(&spec, &PlanContext::starting_at(chrono::Utc::now())).unwrap()
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
        assert_eq!(
            next_poll(active, Some(&p), 0.0),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            next_poll(settled, Some(&p), 0.0),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            next_poll(settled, Some(&p), 1.0),
            Some(Duration::from_secs(132))
        );
        assert_eq!(
            next_poll(settled, Some(&p), -1.0),
            Some(Duration::from_secs(108))
        );
    }

    #[test]
    fn resolved_waits_invalid_specs_and_suspension_stop_polling() {
        let p = the_plan();
        let resolved = PollKind::Answered {
            active: false,
            resolved: true,
        };
        assert_eq!(next_poll(resolved, Some(&p), 0.0), None);
        assert_eq!(next_poll(PollKind::InvalidSpec, None, 0.0), None);
        assert_eq!(next_poll(PollKind::Suspended, Some(&p), 0.0), None);
        assert_eq!(
            next_poll(PollKind::Unusable, None, 0.0),
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
                        auth: false,
                    },
                    Some(&p),
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
                auth: true,
            },
            Some(&p),
            0.0,
        );
        assert_eq!(auth, Some(AUTH_FAILURE_BACKOFF));
        let huge = next_poll(
            PollKind::Failed {
                consecutive: u32::MAX,
                auth: true,
            },
            Some(&p),
            0.0,
        );
        assert_eq!(huge, Some(MAX_BACKOFF));
    }
}
