//! The first phase: what the object itself says before anything is asked upstream — the status
//! written before (from the controller's memory), a Flux refresh request, and the wait clock.

use chrono::{DateTime, Utc};
use kube::ResourceExt;

use super::super::memory::{Memory, Previous};
use crate::api::DcsTaskQuery;
use crate::api::time::to_chrono;
use crate::query;

/// Flux's "reconcile now" annotation; its value is echoed in `status.lastHandledReconcileAt`.
pub const FLUX_REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";

/// What the object says about itself.
pub struct Seen {
    /// The status written before, without `tasks` and `latest` (see [`Memory::previous`]).
    pub previous: Previous,
    /// Flux's `requestedAt`, when set.
    pub requested_at: Option<String>,
    /// `requested_at` is a request not handled yet.
    pub refresh_requested: bool,
    /// When this generation's wait started (see [`query::wait_started_at`]).
    pub wait_started_at: DateTime<Utc>,
}

impl Seen {
    pub fn of(query: &DcsTaskQuery, memory: &Memory, now: DateTime<Utc>) -> Seen {
        let previous = memory.previous(query);
        let status = previous.status.as_ref();
        let requested_at = query.annotations().get(FLUX_REQUESTED_AT).cloned();
        let refresh_requested = requested_at.is_some()
            && requested_at.as_ref() != status.and_then(|s| s.last_handled_reconcile_at.as_ref());
        let created_at = query
            .metadata
            .creation_timestamp
            .as_ref()
            .map(to_chrono)
            .unwrap_or(now);
        let wait_started_at =
            query::wait_started_at(status, query.metadata.generation, created_at, now);
        Seen {
            previous,
            requested_at,
            refresh_requested,
            wait_started_at,
        }
    }

    /// The wait resolved for this generation and no refresh is asked: the verdict is final
    /// until the spec changes, so nothing is polled.
    pub fn is_final(&self, generation: Option<i64>) -> bool {
        let resolved = self.previous.status.as_ref().is_some_and(|status| {
            status.observed_generation == generation
                && status
                    .wait_for
                    .as_ref()
                    .is_some_and(|wait| wait.phase.is_resolved())
        });
        resolved && !self.refresh_requested
    }

    /// The refresh to ask of the feed, if one was requested and not handled yet.
    pub fn refresh(&self) -> Option<&str> {
        self.requested_at
            .as_deref()
            .filter(|_| self.refresh_requested)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::time::from_chrono;
    use crate::api::{DcsTaskQueryStatus, WaitForStatus, WaitPhase};
    use chrono::TimeZone;

    fn at(second: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap() + chrono::TimeDelta::seconds(second)
    }

    /// An object of `generation`, created at second 0, with `annotation` as Flux's request and
    /// `status` written before.
    fn object(
        generation: i64,
        annotation: Option<&str>,
        status: Option<DcsTaskQueryStatus>,
    ) -> DcsTaskQuery {
        let mut metadata = serde_json::json!({
            "name": "q", "namespace": "ns", "resourceVersion": "7",
            "generation": generation, "creationTimestamp": "2026-12-02T12:00:00Z",
        });
        if let Some(value) = annotation {
            metadata["annotations"] = serde_json::json!({ FLUX_REQUESTED_AT: value });
        }
        let mut query: DcsTaskQuery = serde_json::from_value(serde_json::json!({
            "apiVersion": "dcs.hwcloud.dev/v1alpha1", "kind": "DcsTaskQuery",
            "metadata": metadata,
            "spec": {"region": "cn-north-4", "waitFor": {"jobId": "j1"}},
        }))
        .unwrap();
        query.status = status;
        query
    }

    /// A status of generation 1 whose wait is `phase`, started at second 5, that handled
    /// Flux's request `handled`.
    fn status(phase: WaitPhase, handled: Option<&str>) -> DcsTaskQueryStatus {
        DcsTaskQueryStatus {
            observed_generation: Some(1),
            wait_for: Some(WaitForStatus {
                phase,
                started_at: Some(from_chrono(at(5))),
                ..WaitForStatus::default()
            }),
            last_handled_reconcile_at: handled.map(str::to_string),
            ..DcsTaskQueryStatus::default()
        }
    }

    /// One row: an object and what the phase must make of it.
    struct Case {
        name: &'static str,
        generation: i64,
        annotation: Option<&'static str>,
        written: Option<DcsTaskQueryStatus>,
        is_final: bool,
        refresh: Option<&'static str>,
        started: i64,
    }

    #[test]
    fn what_the_object_says_about_itself() {
        use WaitPhase::{Pending, Succeeded};
        let case = |name, generation, annotation, written, is_final, refresh, started| Case {
            name,
            generation,
            annotation,
            written,
            is_final,
            refresh,
            started,
        };
        let rows = [
            case(
                "new: the clock starts at creation",
                1,
                None,
                None,
                false,
                None,
                0,
            ),
            case(
                "pending: its clock is kept",
                1,
                None,
                Some(status(Pending, None)),
                false,
                None,
                5,
            ),
            case(
                "resolved: final",
                1,
                None,
                Some(status(Succeeded, None)),
                true,
                None,
                5,
            ),
            case(
                "resolved, a new Flux request: polled once more",
                1,
                Some("r2"),
                Some(status(Succeeded, Some("r1"))),
                false,
                Some("r2"),
                5,
            ),
            case(
                "resolved, the request already handled: final",
                1,
                Some("r1"),
                Some(status(Succeeded, Some("r1"))),
                true,
                None,
                5,
            ),
            case(
                "a new generation: not final, its clock restarts now",
                2,
                None,
                Some(status(Succeeded, None)),
                false,
                None,
                30,
            ),
        ];
        for row in rows {
            let query = object(row.generation, row.annotation, row.written);
            let seen = Seen::of(&query, &Memory::default(), at(30));
            let name = row.name;
            assert_eq!(
                seen.is_final(query.metadata.generation),
                row.is_final,
                "{name}"
            );
            assert_eq!(seen.refresh(), row.refresh, "{name}");
            assert_eq!(seen.requested_at.as_deref(), row.annotation, "{name}");
            assert_eq!(seen.wait_started_at, at(row.started), "{name}");
        }
    }

    #[test]
    fn the_previous_status_comes_without_the_tasks_the_cache_drops() {
        let mut written = status(WaitPhase::Pending, None);
        written.tasks = vec![crate::api::TaskStatus::default()];
        let query = object(1, None, Some(written));
        let seen = Seen::of(&query, &Memory::default(), at(30));
        let previous = seen.previous.status.expect("a previous status");
        assert!(previous.tasks.is_empty());
        assert_eq!(previous.wait_for.map(|w| w.phase), Some(WaitPhase::Pending));
    }
}
