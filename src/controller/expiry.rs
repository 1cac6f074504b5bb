//! `spec.ttlAfterResolved`: a waiter that deletes itself that long after its wait resolved, as a
//! Job does with `ttlSecondsAfterFinished`.
//!
//! When an object expires is a pure function of its spec and its *persisted* status
//! (`status.waitFor.resolvedAt`, written with the verdict), so an operator restart neither
//! forgets the clock nor restarts it. The deletion judges the object again as the apiserver
//! stores it, publishes one `Expired` event and deletes with preconditions on the object's uid
//! and resourceVersion: an object re-created under the same name, or changed since it was judged,
//! is never deleted by mistake.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use tracing::{debug, info};

use super::Context;
use super::reconcile::ReconcileError;
use crate::api::time::to_chrono;
use crate::api::{DcsTaskQuery, DcsTaskQuerySpec, DcsTaskQueryStatus, WaitPhase};
use crate::{duration, query};

/// Reason of the Normal event published just before an expired object is deleted.
pub const EXPIRED_EVENT: &str = "Expired";

/// How soon a deletion that lost a race with a change of the object is judged again.
pub const RETRY_AFTER_CONFLICT: Duration = Duration::from_secs(1);

/// When and why an object expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    /// `resolved_at + ttl`.
    pub at: DateTime<Utc>,
    /// `spec.ttlAfterResolved`.
    pub ttl: Duration,
    /// `status.waitFor.resolvedAt`.
    pub resolved_at: DateTime<Utc>,
    pub phase: WaitPhase,
}

/// When an object with this spec, generation and status expires; `None` when it never does:
/// no (valid) `ttlAfterResolved`, no `waitFor`, no status for this generation, a wait not
/// resolved, or no recorded `resolvedAt` (a wait resolved by an operator before this field
/// existed is left alone).
pub fn expiry(
    spec: &DcsTaskQuerySpec,
    generation: Option<i64>,
    status: Option<&DcsTaskQueryStatus>,
) -> Option<Expiry> {
    spec.ttl_after_resolved.as_ref()?;
    // The same rules as everywhere (bounded, needs waitFor); an invalid spec never expires.
    let ttl = query::validate(spec).ok()?.ttl_after_resolved?;
    let wait = status
        .filter(|status| status.observed_generation == generation)?
        .wait_for
        .as_ref()
        .filter(|wait| wait.phase.is_resolved())?;
    let resolved_at = to_chrono(wait.resolved_at.as_ref()?);
    let at = resolved_at.checked_add_signed(TimeDelta::from_std(ttl).ok()?)?;
    Some(Expiry {
        at,
        ttl,
        resolved_at,
        phase: wait.phase,
    })
}

impl Expiry {
    /// How long until the object expires; `None` once it has.
    pub fn remaining(&self, now: DateTime<Utc>) -> Option<Duration> {
        (self.at - now).to_std().ok().filter(|left| !left.is_zero())
    }

    /// The note of the [`EXPIRED_EVENT`] event.
    pub fn note(&self) -> String {
        format!(
            "deleted {} after its wait resolved ({}) at {} (spec.ttlAfterResolved)",
            duration::format(self.ttl),
            self.phase.as_str(),
            self.resolved_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        )
    }
}

/// When a reconcile that leaves the wait resolved must look again: at the expiry (at once
/// when it is due), `None` without one.
pub fn recheck(
    spec: &DcsTaskQuerySpec,
    generation: Option<i64>,
    status: &DcsTaskQueryStatus,
    now: DateTime<Utc>,
) -> Option<Duration> {
    expiry(spec, generation, Some(status)).map(|expiry| expiry.remaining(now).unwrap_or_default())
}

/// What to do with an object whose wait had already resolved (`status`: as last written): wait
/// for a change without a TTL, look again at the expiry before it, delete the object once due.
pub async fn settle(
    ctx: &Context,
    query: &DcsTaskQuery,
    status: Option<&DcsTaskQueryStatus>,
    now: DateTime<Utc>,
) -> Result<Action, ReconcileError> {
    let Some(expiry) = expiry(&query.spec, query.metadata.generation, status) else {
        return Ok(Action::await_change());
    };
    match expiry.remaining(now) {
        Some(left) => Ok(Action::requeue(left)),
        None => expire(ctx, query).await,
    }
}

/// Deletes an expired object after judging it again on a fresh read (the cache can be behind
/// a spec change or our own status write), one event first.
async fn expire(ctx: &Context, cached: &DcsTaskQuery) -> Result<Action, ReconcileError> {
    let name = cached.name_any();
    let namespace = cached.namespace().unwrap_or_default();
    let failed = |source| ReconcileError::Expire {
        object: format!("{namespace}/{name}"),
        source,
    };
    let api: Api<DcsTaskQuery> = Api::namespaced(ctx.client.clone(), &namespace);
    let stored = api.get_opt(&name).await.map_err(failed)?;
    let Some(stored) = stored.filter(|stored| {
        stored.uid() == cached.uid() && stored.metadata.deletion_timestamp.is_none()
    }) else {
        // Gone or going already; a re-created object of this name is judged on its own.
        debug!(%namespace, %name, "expired object already gone or replaced");
        return Ok(Action::await_change());
    };
    let Some(expiry) = expiry(
        &stored.spec,
        stored.metadata.generation,
        stored.status.as_ref(),
    ) else {
        // Changed since (a new generation re-arms the wait): its watch event reconciles it.
        return Ok(Action::await_change());
    };
    if let Some(left) = expiry.remaining(Utc::now()) {
        return Ok(Action::requeue(left));
    }
    let delete = DeleteParams {
        preconditions: Some(Preconditions {
            uid: stored.uid(),
            resource_version: stored.resource_version(),
        }),
        ..DeleteParams::default()
    };
    // A dry run first, so that a refusal (no `delete` permission) or a lost race publishes no
    // event: the event announces a deletion that is about to happen.
    let dry_run = DeleteParams {
        dry_run: true,
        ..delete.clone()
    };
    if let Some(action) = settled_by(api.delete(&name, &dry_run).await).map_err(failed)? {
        return Ok(action);
    }
    let event = Event {
        type_: EventType::Normal,
        reason: EXPIRED_EVENT.to_string(),
        note: Some(expiry.note()),
        action: "Delete".to_string(),
        secondary: None,
    };
    ctx.events.publish_now(event, stored.object_ref(&())).await;
    if let Some(action) = settled_by(api.delete(&name, &delete).await).map_err(failed)? {
        return Ok(action);
    }
    info!(%namespace, %name, ttl = %duration::format(expiry.ttl), "deleted: spec.ttlAfterResolved passed");
    Ok(Action::await_change())
}

/// A delete's outcome: `Ok(None)` when it went through, `Ok(Some(action))` when there is nothing
/// more to do now (404: the object is gone, which is what was wanted; 409: it changed since it
/// was read, judged again shortly), or the error.
fn settled_by<T>(result: Result<T, kube::Error>) -> Result<Option<Action>, kube::Error> {
    match result {
        Ok(_) => Ok(None),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(Some(Action::await_change())),
        Err(kube::Error::Api(status)) if status.is_conflict() => {
            Ok(Some(Action::requeue(RETRY_AFTER_CONFLICT)))
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::WaitForStatus;
    use crate::api::time::from_chrono;
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap() + TimeDelta::seconds(seconds)
    }

    fn spec(ttl: Option<&str>, wait_for: bool) -> DcsTaskQuerySpec {
        let mut value = serde_json::json!({"region": "cn-north-4"});
        if let Some(ttl) = ttl {
            value["ttlAfterResolved"] = ttl.into();
        }
        if wait_for {
            value["waitFor"] = serde_json::json!({"jobId": "job-1"});
        }
        serde_json::from_value(value).unwrap()
    }

    fn status(generation: i64, phase: WaitPhase, resolved_at: Option<i64>) -> DcsTaskQueryStatus {
        DcsTaskQueryStatus {
            observed_generation: Some(generation),
            wait_for: Some(WaitForStatus {
                phase,
                started_at: Some(from_chrono(at(0))),
                resolved_at: resolved_at.map(|seconds| from_chrono(at(seconds))),
                ..WaitForStatus::default()
            }),
            ..DcsTaskQueryStatus::default()
        }
    }

    #[test]
    fn when_an_object_expires() {
        use WaitPhase::{Failed, Pending, Succeeded, TimedOut};
        let resolved = |phase| Some(status(1, phase, Some(10)));
        let cases: [(
            &str,
            DcsTaskQuerySpec,
            Option<DcsTaskQueryStatus>,
            Option<i64>,
        ); 14] = [
            ("no ttl", spec(None, true), resolved(Succeeded), None),
            (
                "succeeded",
                spec(Some("3s"), true),
                resolved(Succeeded),
                Some(13),
            ),
            ("failed", spec(Some("3s"), true), resolved(Failed), Some(13)),
            (
                "timed out",
                spec(Some("3s"), true),
                resolved(TimedOut),
                Some(13),
            ),
            (
                "zero ttl",
                spec(Some("0s"), true),
                resolved(Succeeded),
                Some(10),
            ),
            (
                "longest ttl",
                spec(Some("720h"), true),
                resolved(Failed),
                Some(10 + 720 * 3600),
            ),
            (
                "pending",
                spec(Some("3s"), true),
                Some(status(1, Pending, None)),
                None,
            ),
            ("no status yet", spec(Some("3s"), true), None, None),
            (
                "no resolvedAt",
                spec(Some("3s"), true),
                Some(status(1, Succeeded, None)),
                None,
            ),
            (
                "verdict of an older generation",
                spec(Some("3s"), true),
                Some(status(0, Succeeded, Some(10))),
                None,
            ),
            (
                "no waitFor",
                spec(Some("3s"), false),
                resolved(Succeeded),
                None,
            ),
            (
                "ttl too long",
                spec(Some("721h"), true),
                resolved(Succeeded),
                None,
            ),
            (
                "not a duration",
                spec(Some("1d"), true),
                resolved(Succeeded),
                None,
            ),
            (
                "no wait in status",
                spec(Some("3s"), true),
                Some(DcsTaskQueryStatus {
                    observed_generation: Some(1),
                    ..DcsTaskQueryStatus::default()
                }),
                None,
            ),
        ];
        for (name, spec, status, expected) in cases {
            let found = expiry(&spec, Some(1), status.as_ref());
            assert_eq!(found.map(|e| e.at), expected.map(at), "{name}");
            if let Some(found) = found {
                assert_eq!(found.resolved_at, at(10), "{name}");
            }
        }
    }

    #[test]
    fn an_object_expires_at_its_ttl_not_before() {
        let ttl = spec(Some("3s"), true);
        let done = status(1, WaitPhase::Succeeded, Some(10));
        let expiry = expiry(&ttl, Some(1), Some(&done)).unwrap();
        assert_eq!(expiry.remaining(at(10)), Some(Duration::from_secs(3)));
        assert_eq!(
            expiry.remaining(at(12) + TimeDelta::milliseconds(500)),
            Some(Duration::from_millis(500))
        );
        assert_eq!(expiry.remaining(at(13)), None, "due at the expiry itself");
        assert_eq!(expiry.remaining(at(100)), None);

        // After the reconcile that resolved the wait: look again at the expiry, or at once.
        assert_eq!(
            recheck(&ttl, Some(1), &done, at(11)),
            Some(Duration::from_secs(2))
        );
        assert_eq!(recheck(&ttl, Some(1), &done, at(20)), Some(Duration::ZERO));
        let pending = status(1, WaitPhase::Pending, None);
        assert_eq!(recheck(&ttl, Some(1), &pending, at(20)), None);
        assert_eq!(recheck(&spec(None, true), Some(1), &done, at(20)), None);
    }

    #[test]
    fn extreme_times_never_panic() {
        let spec = spec(Some("720h"), true);
        let mut late = status(1, WaitPhase::Succeeded, None);
        late.wait_for.as_mut().unwrap().resolved_at = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::MAX),
        );
        let expiry = expiry(&spec, Some(1), Some(&late)).expect("within chrono's calendar");
        assert!(expiry.remaining(at(0)).is_some());
        assert!(expiry.remaining(DateTime::<Utc>::MAX_UTC).is_none());
    }

    #[test]
    fn the_event_note_says_when_the_wait_resolved_and_the_ttl() {
        let spec = spec(Some("1m30s"), true);
        let status = status(1, WaitPhase::TimedOut, Some(10));
        let note = expiry(&spec, Some(1), Some(&status)).unwrap().note();
        assert_eq!(
            note,
            "deleted 1m30s after its wait resolved (TimedOut) at 2026-11-27T12:00:10Z \
             (spec.ttlAfterResolved)"
        );
        assert!(note.len() <= query::decide::MAX_EVENT_NOTE_BYTES);
    }
}
