//! One reconcile, as a driver over one module per phase:
//!
//! 1. [`seen`]: what the object says itself (the status written before, a Flux refresh, the
//!    wait clock); a wait already resolved is final, and only `spec.ttlAfterResolved` acts.
//! 2. plan the spec ([`query::plan`]): suspended, invalid, or a plan;
//! 3. [`target`]: credentials, endpoint and project, or why no call can be made;
//! 4. [`feeds`]: subscribe to the object's feeds and read their answers;
//! 5. [`query::round`] (pure): the status, its write, its events, the feeds' next step;
//! 6. [`apply`]: write, publish, follow or leave the feeds.
//!
//! Objects do not poll on their own timers: their feed is the clock, and it wakes them when an
//! answer concerns them. Each phase that stops early hands the round its reason, so every
//! outcome is turned into a status in one place.

mod apply;
mod feeds;
mod seen;
mod target;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::{Span, debug, field, instrument, warn};

pub use apply::ApplyError;
pub use feeds::FIRST_ANSWER_WAIT;
pub use seen::FLUX_REQUESTED_AT;
pub use target::SECRET_CACHE_WAIT;

use super::{Context, ObjectKey};
use crate::api::DcsTaskQuery;
use crate::query::decide::MAX_EVENT_NOTE_BYTES;
use crate::query::{self, NeedsStoredTasks, Outcome, PlanContext, Previous, QueryPlan, Round};
use seen::Seen;
use target::Target;

/// What can fail in a reconcile itself (upstream failures are status, not errors).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("object {0} has no namespace")]
    NoNamespace(String),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("deleting {object} after spec.ttlAfterResolved: {source}")]
    Expire {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Round(#[from] NeedsStoredTasks),
}

impl ReconcileError {
    /// The reason of the Warning event the first failure in a row publishes.
    pub fn event_reason(&self) -> &'static str {
        match self.category() {
            "status_write" => "StatusWriteFailed",
            "status_read" => "StatusReadFailed",
            "expire" => "ExpireFailed",
            _ => "ReconcileFailed",
        }
    }

    /// What failed, for the `reconcile_failures` metric's label and the logs.
    pub fn category(&self) -> &'static str {
        match self {
            ReconcileError::NoNamespace(_) => "object",
            ReconcileError::Apply(error) => error.category(),
            ReconcileError::Expire { .. } => "expire",
            ReconcileError::Round(_) => "round",
        }
    }
}

/// Reconciles one object, timed and counted by outcome (see [`super::metrics`]).
#[instrument(skip_all, fields(
    object = %ObjectRef::from_obj(query.as_ref()),
    endpoint = field::Empty,
    project = field::Empty,
    request = field::Empty,
))]
pub async fn reconcile(
    query: Arc<DcsTaskQuery>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    // Whatever this reconcile ends in, or wherever it is cancelled, it releases the object's
    // place in the lanes.
    let object = ctx.memory.key(&query);
    let _turn = ctx.lanes.reconciling(object.clone());
    let result = run(&query, &object, &ctx).await;
    let failure = result.as_ref().err().map(ReconcileError::category);
    ctx.metrics.reconciled(started.elapsed(), failure);
    if failure.is_none() {
        ctx.memory.reconciled(&object);
    }
    result
}

async fn run(
    query: &DcsTaskQuery,
    object: &ObjectKey,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    if query.namespace().is_none() {
        return Err(ReconcileError::NoNamespace(query.name_any()));
    }
    let now = Utc::now();
    let seen = Seen::of(query, &ctx.memory, now);
    if seen.is_final(query.metadata.generation) {
        debug!("wait already resolved; not polling");
        ctx.feeds.unsubscribe(object);
        let previous = seen.previous.status.as_ref();
        return super::expiry::settle(ctx, query, previous, now).await;
    }
    let round = Conclusion {
        ctx,
        query,
        object,
        seen: &seen,
        now,
    };
    if query.spec.suspend {
        return round.run(None, None, Outcome::Suspended, false).await;
    }
    let planned = query::plan(
        &query.spec,
        &PlanContext {
            now,
            wait_started_at: seen.wait_started_at,
        },
    );
    let plan = match planned {
        Ok(plan) => plan,
        Err(errors) => {
            return round
                .run(None, None, Outcome::Invalid(&errors), false)
                .await;
        }
    };
    let plan_ref = Some(&plan);
    let target = match target::resolve(ctx, query, object, &plan).await {
        Ok(target) => target,
        Err(why) => {
            return round
                .run(plan_ref, None, Outcome::Unserved(&why), false)
                .await;
        }
    };
    record(&target);
    if let Some(refusal) = target.standing_refusal(seen.previous.status.as_ref(), now) {
        let endpoint = &target.feed.key.endpoint;
        let outcome = Outcome::StillRefused { refusal, endpoint };
        return round.run(plan_ref, Some(&target), outcome, false).await;
    }
    let answers = feeds::read(ctx, object, &target, &plan, seen.refresh()).await;
    let outcome = answers.outcome();
    round
        .run(plan_ref, Some(&target), outcome, answers.refreshed)
        .await
}

/// The last two phases, the round and apply, wherever the reconcile stopped.
struct Conclusion<'a> {
    ctx: &'a Context,
    query: &'a DcsTaskQuery,
    object: &'a ObjectKey,
    seen: &'a Seen,
    now: DateTime<Utc>,
}

impl Conclusion<'_> {
    async fn run(
        &self,
        plan: Option<&QueryPlan>,
        target: Option<&Target>,
        outcome: Outcome<'_>,
        refreshed: bool,
    ) -> Result<Action, ReconcileError> {
        let seen = self.seen;
        let mut input = Round {
            spec: &self.query.spec,
            plan,
            generation: self.query.metadata.generation,
            previous: Previous {
                status: seen.previous.status.as_ref(),
                digest: seen.previous.digest,
                complete: false,
            },
            wait_started_at: seen.wait_started_at,
            credentials_revision: target.and_then(|target| target.revision.as_deref()),
            project: target.map(|target| target.project.as_str()),
            requested_at: seen.requested_at.as_deref(),
            refresh_pending: seen.refresh_requested && !refreshed,
            now: self.now,
            jitter: rand::random_range(-1.0..=1.0),
        };
        let full;
        let step = match (query::round(&input, outcome), input.previous.status) {
            (Err(NeedsStoredTasks), Some(previous)) => {
                full = apply::with_stored_tasks(self.ctx, self.query, previous).await?;
                input.previous.status = Some(&full);
                input.previous.complete = true;
                query::round(&input, outcome)?
            }
            (step, _) => step?,
        };
        Ok(apply::apply(self.ctx, self.query, self.object, step, self.now).await?)
    }
}

/// Names the object's upstream question in the reconcile's span.
fn record(target: &Target) {
    let span = Span::current();
    span.record("endpoint", target.feed.key.endpoint.as_str());
    span.record("project", target.project.as_str());
    span.record("request", field::debug(&target.feed.key.request));
}

/// Reconcile errors (status writes) back off per object: 1 s, 2 s, 4 s ... capped at 5 min.
/// The first failure in a row is told on the object as a Warning event (`kubectl describe`
/// shows why its status is not moving); the retries are only logged.
pub fn error_policy(query: Arc<DcsTaskQuery>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let failures = ctx.memory.reconcile_failed(&ctx.memory.key(&query));
    let delay = Duration::from_secs(1)
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)))
        .min(crate::query::schedule::MAX_BACKOFF);
    let category = error.category();
    warn!(name = %query.name_any(), %error, category, failures, ?delay, "reconcile failed");
    if failures == 1 {
        let event = Event {
            type_: EventType::Warning,
            reason: error.event_reason().to_string(),
            note: Some(
                crate::text::truncate_bytes(&error.to_string(), MAX_EVENT_NOTE_BYTES).into_owned(),
            ),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        let object = query.object_ref(&());
        tokio::spawn(async move { ctx.events.send(event, object).await });
    }
    Action::requeue(delay)
}
