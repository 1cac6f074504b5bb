//! The apply phase: write the round's status (server-side apply on the status subresource,
//! only when it changed, in its lane: see [`super::super::lanes`]), remember it, queue its
//! events, and read the stored status back in the rare case the round needs the tasks the
//! object cache dropped.

use chrono::{DateTime, Utc};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::super::{Context, FIELD_MANAGER, ObjectKey};
use super::feeds;
use crate::api::{DcsTaskQuery, DcsTaskQueryStatus};
use crate::query::{Notice, Step};

/// What can fail while applying a round.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("writing status of {object}: {source}")]
    WriteStatus {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("reading the status of {object}: {source}")]
    ReadStatus {
        object: String,
        #[source]
        source: kube::Error,
    },
}

impl ApplyError {
    /// Whether the apiserver failed for its load rather than refused this write.
    pub fn overloaded(&self) -> bool {
        match self {
            ApplyError::WriteStatus { source, .. } | ApplyError::ReadStatus { source, .. } => {
                super::super::events::overloaded(source)
            }
        }
    }

    /// What failed, for metric labels and logs.
    pub fn category(&self) -> &'static str {
        match self {
            ApplyError::WriteStatus { .. } => "status_write",
            ApplyError::ReadStatus { .. } => "status_read",
        }
    }
}

/// Applies `step` to the object: the status write (if any), its events, then the feeds; and
/// says when to reconcile again. A write nobody waits on that meets a verdict pending gives its
/// turn up instead: the object is reconciled again, afresh, when the apiserver has room.
pub async fn apply(
    ctx: &Context,
    query: &DcsTaskQuery,
    object: &ObjectKey,
    step: Step,
    now: DateTime<Utc>,
) -> Result<Action, ApplyError> {
    let mut recheck = step.recheck;
    if let Some(decision) = &step.decision {
        if decision.write {
            let turn = if query.spec.wait_for.is_some() {
                // A wait already resolved never gets here: whoever waits is still waiting.
                ctx.lanes.awaiting_write()
            } else {
                match ctx.lanes.background_write(object) {
                    Some(turn) => turn,
                    None => {
                        ctx.lanes.defer(object.clone());
                        return Ok(Action::await_change());
                    }
                }
            };
            let written = write_status(ctx, query, &decision.status).await;
            turn.finish(written.as_ref().is_err_and(ApplyError::overloaded));
            written?;
            ctx.memory.wrote(
                object,
                query.metadata.resource_version.clone(),
                &decision.status,
                decision.digest,
            );
        }
        publish(ctx, query, &decision.events).await;
        // A resolved wait is looked at again only when spec.ttlAfterResolved deletes it.
        recheck = recheck.or_else(|| {
            let generation = query.metadata.generation;
            super::super::expiry::recheck(&query.spec, generation, &decision.status, now)
        });
    }
    feeds::follow(ctx, object, step.feeds);
    Ok(recheck.map_or_else(Action::await_change, Action::requeue))
}

/// `previous` with the `tasks` and `latest` the object cache dropped, read from the apiserver
/// (rare: an error or a stall right after a restart, before the feed has a good listing).
pub async fn with_stored_tasks(
    ctx: &Context,
    query: &DcsTaskQuery,
    previous: &DcsTaskQueryStatus,
) -> Result<DcsTaskQueryStatus, ApplyError> {
    let stored = api(ctx, query)
        .get_status(&query.name_any())
        .await
        .map_err(|source| ApplyError::ReadStatus {
            object: name(query),
            source,
        })?;
    let stored = stored.status.unwrap_or_default();
    Ok(DcsTaskQueryStatus {
        tasks: stored.tasks,
        latest: stored.latest,
        ..previous.clone()
    })
}

/// Server-side apply of the whole status on the status subresource, under one stable field
/// manager.
async fn write_status(
    ctx: &Context,
    query: &DcsTaskQuery,
    status: &DcsTaskQueryStatus,
) -> Result<(), ApplyError> {
    let patch = json!({
        "apiVersion": DcsTaskQuery::api_version(&()),
        "kind": DcsTaskQuery::kind(&()),
        "status": status,
    });
    api(ctx, query)
        .patch_status(
            &query.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|source| ApplyError::WriteStatus {
            object: name(query),
            source,
        })?;
    ctx.metrics.status_writes.inc();
    Ok(())
}

/// Queues the decision's events (see [`super::super::events`]); a failure to publish is
/// logged, never fatal.
async fn publish(ctx: &Context, query: &DcsTaskQuery, notices: &[Notice]) {
    for notice in notices {
        let event = Event {
            type_: if notice.reason.is_warning() {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: notice.reason.to_string(),
            note: notice.note.clone(),
            action: "Poll".to_string(),
            secondary: None,
        };
        ctx.events.send(event, query.object_ref(&())).await;
    }
}

fn api(ctx: &Context, query: &DcsTaskQuery) -> Api<DcsTaskQuery> {
    Api::namespaced(ctx.client.clone(), &query.namespace().unwrap_or_default())
}

fn name(query: &DcsTaskQuery) -> String {
    format!(
        "{}/{}",
        query.namespace().unwrap_or_default(),
        query.name_any()
    )
}
