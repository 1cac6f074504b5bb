//! One reconcile: validate -> credentials -> plan -> shared fetch -> evaluate -> write status ->
//! events -> schedule the next poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use super::credentials::{self, SecretCredentialsError};
use super::fetcher::{FetchSource, RequestKey};
use super::metrics::{self, Metrics};
use super::projects::DiscoveryKey;
use super::{Context, FIELD_MANAGER};
use crate::api::conditions::{self, STALLED};
use crate::api::time::to_chrono;
use crate::api::{DcsTaskQuery, DcsTaskQueryStatus, WaitPhase};
use crate::dcs::{
    ApiError, CredentialSet, DcsClient, DcsError, Endpoint, FailureClass, IamClient,
    ProjectDiscoveryError,
};
use crate::query::schedule::{PollKind, next_poll, no_later_than_deadline};
use crate::query::{self, CredentialSource, PlanContext, PollOutcome, StatusContext};
use k8s_openapi::api::core::v1::Secret;

/// Flux's "reconcile now" annotation; its value is echoed in `status.lastHandledReconcileAt`.
pub const FLUX_REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";

/// A status whose content did not change is re-written at most this often, so
/// `lastSyncTime` shows the operator is alive without a write per poll.
pub const SYNC_HEARTBEAT: Duration = Duration::from_secs(600);

/// Kubernetes refuses events whose note exceeds 1 KiB; messages quote upstream text.
pub const MAX_EVENT_NOTE_BYTES: usize = 1024;

/// What can fail in a reconcile itself (upstream failures are status, not errors).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("writing status of {object}: {source}")]
    WriteStatus {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("object {0} has no namespace")]
    NoNamespace(String),
}

/// Per-object memory that does not belong in status.
#[derive(Default)]
pub struct ObjectMemory {
    /// Consecutive failures (upstream or status writes), for exponential backoff.
    pub failures: u32,
    /// The delay last scheduled; shared results younger than ~this are reused.
    pub last_delay: Option<Duration>,
    /// The status last written, with the resourceVersion of the object it was written over:
    /// while the cache still shows that version, the cache is behind our own write.
    pub written: Option<(String, DcsTaskQueryStatus)>,
}

/// Per-object memory, keyed by object.
pub type Memory = Mutex<HashMap<ObjectRef<DcsTaskQuery>, ObjectMemory>>;

pub async fn reconcile(
    query: Arc<DcsTaskQuery>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let name = query.name_any();
    let namespace = query
        .namespace()
        .ok_or_else(|| ReconcileError::NoNamespace(name.clone()))?;
    let key = ObjectRef::from_obj(query.as_ref());
    let now = Utc::now();
    let generation = query.metadata.generation;
    let written = {
        let memory = ctx.memory.lock().expect("memory lock poisoned");
        memory.get(&key).and_then(|m| m.written.clone())
    };
    // If the watch has not delivered our last write yet, that write is the truth.
    let previous = match &written {
        Some((over, status)) if query.metadata.resource_version.as_ref() == Some(over) => {
            Some(status)
        }
        _ => query.status.as_ref(),
    };
    let requested_at = query.annotations().get(FLUX_REQUESTED_AT).cloned();
    let refresh_requested = requested_at.is_some()
        && requested_at.as_ref() != previous.and_then(|s| s.last_handled_reconcile_at.as_ref());
    let created_at = query
        .metadata
        .creation_timestamp
        .as_ref()
        .map(to_chrono)
        .unwrap_or(now);
    let wait_started_at = query::wait_started_at(previous, generation, created_at, now);
    let plan_ctx = PlanContext {
        now,
        created_at,
        wait_started_at,
    };
    let planned = (!query.spec.suspend).then(|| query::plan(&query.spec, &plan_ctx));
    let status_ctx = StatusContext {
        previous,
        generation,
        has_wait: query.spec.wait_for.is_some(),
        wait_started_at,
        wait_deadline: planned
            .as_ref()
            .and_then(|plan| plan.as_ref().ok())
            .and_then(|plan| plan.wait.as_ref())
            .and_then(|wait| wait.deadline),
        credentials_revision: None,
        now,
    };

    // A wait that resolved for this generation is final until the spec changes.
    let resolved = previous.is_some_and(|status| {
        status.observed_generation == generation
            && status
                .wait_for
                .as_ref()
                .is_some_and(|w| w.phase.is_resolved())
    });
    if resolved && !refresh_requested {
        debug!(%namespace, %name, "wait already resolved; not polling");
        return Ok(Action::await_change());
    }

    // First visit: say at once that work is under way, so the new object is never read as
    // healthy (kstatus treats a status-less object as Current) while the first poll runs.
    if previous.is_none() {
        let initial = query::initial_status(&status_ctx);
        write_status_if_changed(&ctx, &query, &namespace, None, &initial).await?;
    }

    let (mut status, kind, plan) = match planned {
        None => (
            query::build_status(&status_ctx, PollOutcome::Suspended),
            PollKind::Suspended,
            None,
        ),
        Some(Err(errors)) => (
            query::build_status(&status_ctx, PollOutcome::InvalidSpec(&errors)),
            PollKind::InvalidSpec,
            None,
        ),
        Some(Ok(plan)) => {
            let (status, kind) = poll(
                &ctx,
                &query,
                &namespace,
                &key,
                &plan,
                &status_ctx,
                refresh_requested,
            )
            .await;
            (status, kind, Some(plan))
        }
    };
    if requested_at.is_some() {
        status.last_handled_reconcile_at = requested_at;
    }

    let wrote = write_status_if_changed(&ctx, &query, &namespace, previous, &status).await?;
    publish_transition_events(&ctx, &query, previous, &status).await;

    // A resolved wait (by this poll, a timeout, or before a refresh) polls no more.
    let resolved_now = status
        .wait_for
        .as_ref()
        .is_some_and(|w| w.phase.is_resolved());
    let delay = if resolved_now {
        None
    } else {
        no_later_than_deadline(
            next_poll(kind, plan.as_ref(), rand::random_range(-1.0..=1.0)),
            status_ctx.wait_deadline,
            now,
        )
    };
    {
        let mut memory = ctx.memory.lock().expect("memory lock poisoned");
        let entry = memory.entry(key).or_default();
        entry.last_delay = delay;
        if wrote {
            entry.written = query
                .metadata
                .resource_version
                .clone()
                .map(|version| (version, status));
        }
        if !matches!(kind, PollKind::Failed { .. }) {
            entry.failures = 0;
        }
    }
    Metrics::count(&ctx.metrics.reconciles, "ok");
    Ok(delay.map_or_else(Action::await_change, Action::requeue))
}

/// Credentials, endpoint, shared fetch, evaluation.
async fn poll(
    ctx: &Context,
    query: &DcsTaskQuery,
    namespace: &str,
    key: &ObjectRef<DcsTaskQuery>,
    plan: &query::QueryPlan,
    status_ctx: &StatusContext<'_>,
    refresh_requested: bool,
) -> (DcsTaskQueryStatus, PollKind) {
    let resolved = match &ctx.simulator {
        Some(sim) => Ok((sim.credentials.clone(), CredentialSource::Simulator)),
        None => resolve_credentials(ctx, query, namespace).await,
    };
    let (set, source) = match resolved {
        Ok(resolved) => resolved,
        Err(error) => {
            let message = error.to_string();
            let kind = if error.is_operator_side() {
                PollKind::OperatorNotReady
            } else {
                PollKind::Unusable
            };
            return (
                query::build_status(status_ctx, PollOutcome::CredentialsUnavailable(&message)),
                kind,
            );
        }
    };
    let endpoint: Result<Endpoint, _> = match &ctx.simulator {
        Some(sim) => Ok(sim.endpoint.clone()),
        None => ctx
            .endpoints
            .resolve(&query.spec.region, query.spec.endpoint.as_deref()),
    };
    let endpoint = match endpoint {
        Ok(endpoint) => endpoint,
        Err(error) => {
            let message = format!("spec.endpoint: {error}");
            return (
                query::build_status(status_ctx, PollOutcome::EndpointNotAllowed(&message)),
                PollKind::Unusable,
            );
        }
    };
    let project = match query::choose_project(
        query.spec.project_id.as_deref(),
        set.project_id.as_deref(),
        &source,
    ) {
        Ok(Some(project)) => project,
        Ok(None) => match discover_project(ctx, &query.spec.region, &set).await {
            Ok(project) => project,
            Err(error) => {
                return discovery_failed(ctx, key, status_ctx, &error);
            }
        },
        Err(error) => {
            let message = error.to_string();
            return (
                query::build_status(status_ctx, PollOutcome::CredentialsUnavailable(&message)),
                PollKind::Unusable,
            );
        }
    };

    // Which credentials these are, persisted with errors: a Secret's resourceVersion.
    let revision = match &source {
        CredentialSource::Secret { namespace, name } => ctx
            .secrets
            .get(&ObjectRef::new(name).within(namespace))
            .and_then(|secret| secret.metadata.resource_version.clone()),
        _ => None,
    };
    let status_ctx = &StatusContext {
        credentials_revision: revision.as_deref(),
        ..*status_ctx
    };
    if let Some(refused) =
        query::remembered_refusal(status_ctx.previous, revision.as_deref(), status_ctx.now)
    {
        // These very credentials were refused less than a cool-down ago (perhaps before a
        // restart): another call could lock the access key. Keep the refusal as it stands.
        let error = DcsError::Api {
            endpoint: endpoint.to_string(),
            error: ApiError {
                http_status: refused
                    .http_status
                    .and_then(|code| u16::try_from(code).ok())
                    .unwrap_or(401),
                error_code: refused.error_code.clone(),
                error_msg: refused.error_msg.clone(),
                request_id: None,
                retry_after: None,
            },
        };
        let mut status = query::build_status(status_ctx, PollOutcome::FetchFailed(&error));
        status.last_error = Some(refused.clone());
        status.project_id = Some(project);
        Metrics::count(&ctx.metrics.shared_fetches, "cooling_down");
        return (
            status,
            PollKind::Failed {
                consecutive: 1,
                class: FailureClass::Auth,
            },
        );
    }
    let request_key = RequestKey {
        endpoint: endpoint.to_string(),
        project_id: project.clone(),
        credential: set.credentials.fingerprint(),
        page: plan.page.clone(),
        paging: plan.paging,
        owner: (ctx.upstream_sharing == super::UpstreamSharing::PerObject)
            .then(|| query.uid().unwrap_or_else(|| key.to_string())),
    };
    let max_age = if refresh_requested {
        Duration::ZERO
    } else {
        let memory = ctx.memory.lock().expect("memory lock poisoned");
        let last = memory
            .get(key)
            .and_then(|m| m.last_delay)
            .unwrap_or(plan.active_interval);
        last.mul_f64(0.9)
    };
    let client = DcsClient::new(ctx.http.clone(), endpoint, project.clone(), set.credentials);
    let started = Instant::now();
    let (result, source) = ctx.fetcher.fetch(request_key, client, max_age).await;
    match source {
        FetchSource::Upstream => {
            ctx.metrics
                .upstream_latency
                .observe(started.elapsed().as_secs_f64());
            let outcome = result
                .as_ref()
                .err()
                .map_or("ok", |e| metrics::error_outcome(e));
            Metrics::count(&ctx.metrics.upstream_calls, outcome);
        }
        FetchSource::Cached => Metrics::count(&ctx.metrics.shared_fetches, "cached"),
        FetchSource::Joined => Metrics::count(&ctx.metrics.shared_fetches, "joined"),
        FetchSource::CoolingDown => Metrics::count(&ctx.metrics.shared_fetches, "cooling_down"),
    }
    let (mut status, kind) = match result {
        Ok(listing) => {
            let evaluation = query::evaluate(plan, &listing, status_ctx.now);
            let kind = PollKind::Answered {
                active: evaluation.active,
                resolved: evaluation
                    .wait
                    .as_ref()
                    .is_some_and(|w| w.phase.is_resolved()),
            };
            (
                query::build_status(status_ctx, PollOutcome::Fetched(&evaluation)),
                kind,
            )
        }
        Err(error) => {
            let consecutive = {
                let mut memory = ctx.memory.lock().expect("memory lock poisoned");
                let entry = memory.entry(key.clone()).or_default();
                entry.failures += 1;
                entry.failures
            };
            warn!(%namespace, name = %query.name_any(), %error, consecutive, "task-center poll failed");
            (
                query::build_status(status_ctx, PollOutcome::FetchFailed(&error)),
                PollKind::Failed {
                    consecutive,
                    class: error.class(),
                },
            )
        }
    };
    status.project_id = Some(project);
    (status, kind)
}

/// The project IAM names for `region`, remembered per credential, region and IAM endpoint
/// (see [`super::projects`]), so polls do not repeat the call.
async fn discover_project(
    ctx: &Context,
    region: &str,
    set: &CredentialSet,
) -> Result<String, Arc<ProjectDiscoveryError>> {
    let key = DiscoveryKey {
        credential: set.credentials.fingerprint(),
        region: region.to_string(),
        iam_endpoint: ctx.iam_endpoint.to_string(),
    };
    let client = IamClient::new(
        ctx.http.clone(),
        ctx.iam_endpoint.clone(),
        set.credentials.clone(),
    )
    .with_gate(ctx.fetcher.gate());
    let (discovery, called) = ctx.projects.discover(key, client).await;
    if called {
        match &discovery {
            Ok(project) => {
                info!(region, project, iam = %ctx.iam_endpoint, "discovered the project id through IAM")
            }
            Err(error) => {
                warn!(region, iam = %ctx.iam_endpoint, %error, "project discovery failed")
            }
        }
    }
    discovery
}

/// The status of a poll whose project could not be discovered: a transient IAM failure is
/// retried like a failed fetch; anything else (no project, several, refused credentials) needs
/// a person and stalls with the exact reason.
fn discovery_failed(
    ctx: &Context,
    key: &ObjectRef<DcsTaskQuery>,
    status_ctx: &StatusContext<'_>,
    error: &ProjectDiscoveryError,
) -> (DcsTaskQueryStatus, PollKind) {
    let (mut status, kind) = match error.upstream() {
        Some(upstream) if upstream.class() == FailureClass::Transient => {
            let consecutive = {
                let mut memory = ctx.memory.lock().expect("memory lock poisoned");
                let entry = memory.entry(key.clone()).or_default();
                entry.failures += 1;
                entry.failures
            };
            (
                query::build_status(status_ctx, PollOutcome::FetchFailed(upstream)),
                PollKind::Failed {
                    consecutive,
                    class: FailureClass::Transient,
                },
            )
        }
        _ => {
            let message = error.to_string();
            (
                query::build_status(status_ctx, PollOutcome::ProjectDiscoveryFailed(&message)),
                PollKind::Unusable,
            )
        }
    };
    status.project_id = None;
    (status, kind)
}

/// How long a reconcile waits for the Secret cache's first list before saying so in status.
pub const SECRET_CACHE_WAIT: Duration = Duration::from_secs(5);

/// The query's credentials from the Secret cache (or the operator defaults), never hanging on a
/// cache that cannot sync, and telling a missing Secret from one that lacks the label.
async fn resolve_credentials(
    ctx: &Context,
    query: &DcsTaskQuery,
    namespace: &str,
) -> Result<(CredentialSet, CredentialSource), SecretCredentialsError> {
    if let Some(reference) = &query.spec.credentials_secret_ref {
        // Wait for the first list so a Secret that exists is never reported missing just
        // after start-up, but not forever: a watch that RBAC forbids never lists.
        let synced = tokio::time::timeout(SECRET_CACHE_WAIT, ctx.secrets.wait_until_ready())
            .await
            .is_ok_and(|ready| ready.is_ok());
        if !synced {
            let detail = ctx
                .secret_health
                .problem(false)
                .unwrap_or_else(|| "the first list has not completed".to_string());
            return Err(SecretCredentialsError::CacheNotSynced { detail });
        }
        let resolved = credentials::resolve(query, &ctx.secrets, ctx.default_credentials.as_ref());
        if let Err(SecretCredentialsError::NotFound { .. }) = &resolved {
            // Not in the cache of labelled Secrets: read only the metadata (never the data) to
            // say whether it exists without the label.
            let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
            if let Ok(Some(_)) = api.get_metadata_opt(&reference.name).await {
                return Err(SecretCredentialsError::MissingLabel {
                    namespace: namespace.to_string(),
                    name: reference.name.clone(),
                });
            }
        }
        return resolved;
    }
    credentials::resolve(query, &ctx.secrets, ctx.default_credentials.as_ref())
}

/// Server-side apply on the status subresource, only when something other than the sync time
/// changed (or the heartbeat is due). Unchanged polls write nothing, so the controller never
/// wakes itself and the apiserver sees no churn.
async fn write_status_if_changed(
    ctx: &Context,
    query: &DcsTaskQuery,
    namespace: &str,
    previous: Option<&DcsTaskQueryStatus>,
    status: &DcsTaskQueryStatus,
) -> Result<bool, ReconcileError> {
    let strip = |s: &DcsTaskQueryStatus| DcsTaskQueryStatus {
        last_sync_time: None,
        ..s.clone()
    };
    let heartbeat_due = match (
        previous.and_then(|p| p.last_sync_time.as_ref()),
        status.last_sync_time.as_ref(),
    ) {
        (Some(old), Some(new)) => {
            to_chrono(new) - to_chrono(old)
                >= chrono::TimeDelta::from_std(SYNC_HEARTBEAT).unwrap_or(chrono::TimeDelta::MAX)
        }
        (None, Some(_)) => true,
        _ => false,
    };
    let unchanged = previous.is_some_and(|p| strip(p) == strip(status));
    if unchanged && !heartbeat_due {
        return Ok(false);
    }
    let api: Api<DcsTaskQuery> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = json!({
        "apiVersion": DcsTaskQuery::api_version(&()),
        "kind": DcsTaskQuery::kind(&()),
        "status": status,
    });
    api.patch_status(
        &query.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| ReconcileError::WriteStatus {
        object: format!("{namespace}/{}", query.name_any()),
        source,
    })?;
    ctx.metrics.status_writes.inc();
    Ok(true)
}

/// One event per transition of the awaited task or of `Stalled`, computed against the persisted
/// status, so a restart or a repeated poll publishes nothing new.
async fn publish_transition_events(
    ctx: &Context,
    query: &DcsTaskQuery,
    previous: Option<&DcsTaskQueryStatus>,
    status: &DcsTaskQueryStatus,
) {
    let mut events = Vec::new();
    let old_phase = previous
        .filter(|p| p.observed_generation == status.observed_generation)
        .and_then(|p| p.wait_for.as_ref())
        .map(|w| w.phase);
    if let Some(wait) = &status.wait_for
        && Some(wait.phase) != old_phase
    {
        let note = wait.message.clone();
        match wait.phase {
            WaitPhase::Succeeded => events.push((EventType::Normal, "TaskSucceeded", note)),
            WaitPhase::Failed => events.push((EventType::Warning, "TaskFailed", note)),
            WaitPhase::TimedOut => events.push((EventType::Warning, "WaitTimedOut", note)),
            WaitPhase::Pending => {}
        }
    }
    if let Some(note) = query::report::ambiguous_wait_note(&query.spec, previous, status) {
        let reason = query::report::AMBIGUOUS_WAIT_EVENT;
        events.push((EventType::Warning, reason, Some(note)));
    }
    let stalled = |s: Option<&DcsTaskQueryStatus>| {
        s.and_then(|s| conditions::find(&s.conditions, STALLED))
            .filter(|c| c.status == "True")
            .map(|c| (c.reason.clone(), c.message.clone(), c.observed_generation))
    };
    let before = stalled(previous);
    let after = stalled(Some(status));
    if let Some((reason, message, _)) = &after
        && before.as_ref().map(|(r, m, g)| (r, m, g)) != after.as_ref().map(|(r, m, g)| (r, m, g))
        && !matches!(reason.as_str(), "TaskFailed" | "TimedOut")
    {
        events.push((
            EventType::Warning,
            "Stalled",
            Some(format!("{reason}: {message}")),
        ));
    }
    for (type_, reason, note) in events {
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: note.map(|n| crate::text::truncate_bytes(&n, MAX_EVENT_NOTE_BYTES).into_owned()),
            action: "Poll".to_string(),
            secondary: None,
        };
        if let Err(error) = ctx.recorder.publish(&event, &query.object_ref(&())).await {
            warn!(name = %query.name_any(), %error, "could not publish event");
        } else {
            info!(name = %query.name_any(), reason, "published event");
        }
    }
}

/// Reconcile errors (status writes) back off per object: 1 s, 2 s, 4 s ... capped at 5 min.
pub fn error_policy(query: Arc<DcsTaskQuery>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    Metrics::count(&ctx.metrics.reconciles, "error");
    let failures = {
        let mut memory = ctx.memory.lock().expect("memory lock poisoned");
        let entry = memory
            .entry(ObjectRef::from_obj(query.as_ref()))
            .or_default();
        entry.failures += 1;
        entry.failures
    };
    let delay = Duration::from_secs(1)
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)))
        .min(crate::query::schedule::MAX_BACKOFF);
    warn!(name = %query.name_any(), %error, failures, ?delay, "reconcile failed");
    Action::requeue(delay)
}
