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
