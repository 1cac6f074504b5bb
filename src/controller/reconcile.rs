//! One reconcile, in phases: plan the spec -> resolve the target (credentials, endpoint,
//! project) -> subscribe to the upstream feed and read its answer -> [`query::decide`] (pure) ->
//! apply (write the status if it changed, publish the transition's events, follow or leave the
//! feed). Objects do not poll on their own timers: their feed is the clock, and it wakes them
//! when an answer concerns them.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, warn};

use super::credentials::{self, SecretCredentialsError};
use super::memory::Previous;
use super::metrics::{Metrics, ReconcileResult, SharedOutcome};
use super::projects::{self, DiscoveryKey, Lookup};
use super::{Context, FIELD_MANAGER, UpstreamSharing};
use crate::api::time::to_chrono;
use crate::api::{DcsTaskQuery, DcsTaskQueryStatus, LastError};
use crate::dcs::{
    ApiError, CredentialSet, DcsClient, DcsError, Endpoint, FailureClass, IamClient, JobId,
    JobInfo, JobLookupFailure, ProjectDiscoveryError, TaskListing,
};
use crate::query::job::{Combined, JobAnswer};
use crate::query::schedule::{PollKind, next_poll};
use crate::query::{
    self, CredentialSource, DecisionInput, Notice, PlanContext, PollOutcome, ProjectShown,
    QueryPlan, SpecErrors, StatusContext,
};
use crate::upstream::feed::{Answer, AnswerReceiver, FeedKey, FeedTarget, Interest};
use k8s_openapi::api::core::v1::Secret;

/// Flux's "reconcile now" annotation; its value is echoed in `status.lastHandledReconcileAt`.
pub const FLUX_REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";

/// How long a reconcile waits for its feed's first answer before writing a "first poll in
/// progress" status: an answer within this time is the object's first write.
pub const FIRST_ANSWER_WAIT: Duration = Duration::from_secs(2);

/// How long a reconcile waits for the Secret cache's first list before saying so in status.
pub const SECRET_CACHE_WAIT: Duration = Duration::from_secs(5);

/// What can fail in a reconcile itself (upstream failures are status, not errors).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
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
    #[error("object {0} has no namespace")]
    NoNamespace(String),
    #[error("deleting {object} after spec.ttlAfterResolved: {source}")]
    Expire {
        object: String,
        #[source]
        source: kube::Error,
    },
}

/// What the object gets this time, before the decision.
enum Outcome {
    Suspended,
    InvalidSpec(SpecErrors),
    /// No call could be made (credentials, endpoint, project); the object retries by itself.
    Unserved(Unserved),
    /// These credentials were refused less than a cool-down ago: the refusal stands.
    CoolingDown {
        refusal: LastError,
        error: DcsError,
    },
    /// The feed has not answered yet.
    NoAnswerYet,
    /// The feed's answer: a listing, evaluated for this object.
    Fetched {
        answer: Arc<Answer>,
        evaluation: query::Evaluation,
    },
    /// An error: the task feed's, or the job feed's (`answered_at` is when that poll ended).
    Failed {
        answer: Arc<Answer>,
        error: Arc<DcsError>,
        answered_at: DateTime<Utc>,
    },
    /// The job feed's answer is older than a listing that shows the job's task ended: the job
    /// feed is asked again, and its answer wakes the object.
    JobBehindList,
    /// The job API refused the awaited job in a way only a person can fix.
    JobRefused {
        answer: Arc<Answer>,
        failure: JobLookupFailure,
        /// The awaited job id.
        job: String,
        error: Arc<DcsError>,
        answered_at: DateTime<Utc>,
    },
}

impl Outcome {
    /// The task feed's answer behind this outcome.
    fn answer(&self) -> Option<&Arc<Answer>> {
        match self {
            Outcome::Fetched { answer, .. }
            | Outcome::Failed { answer, .. }
            | Outcome::JobRefused { answer, .. } => Some(answer),
            _ => None,
        }
    }

    /// When the poll behind a failed outcome ended.
    fn answered_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Outcome::Fetched { answer, .. } => Some(answer.fetched_at),
            Outcome::Failed { answered_at, .. } | Outcome::JobRefused { answered_at, .. } => {
                Some(*answered_at)
            }
            _ => None,
        }
    }

    /// What the feeds' answers mean together (see [`query::job::combine`]).
    fn of_answers(
        plan: &QueryPlan,
        tasks: Arc<Answer>,
        job: Option<&Answer<JobInfo>>,
        now: DateTime<Utc>,
    ) -> Outcome {
        let listing = tasks.result.as_ref();
        let job = job.map(|job| JobAnswer {
            result: job.result.as_deref(),
            failures: job.failures,
            fetched_at: job.fetched_at,
        });
        let combined = query::job::combine(
            plan,
            listing,
            tasks.fetched_at,
            tasks.last_good.as_deref(),
            job,
            now,
        );
        match combined {
            Combined::Evaluated(evaluation) => Outcome::Fetched {
                answer: tasks,
                evaluation: *evaluation,
            },
            Combined::Failed { error, answered_at } => Outcome::Failed {
                answer: tasks,
                error,
                answered_at,
            },
            Combined::JobBehindList => Outcome::JobBehindList,
            Combined::JobRefused {
                failure,
                job,
                error,
                answered_at,
            } => Outcome::JobRefused {
                answer: tasks,
                failure,
                job,
                error,
                answered_at,
            },
        }
    }
}

/// Why no upstream call could be made, and when to try again.
struct Unserved {
    problem: Problem,
    kind: PollKind,
}

enum Problem {
    Credentials(String),
    Endpoint(String),
    Discovery(String),
    /// Project discovery failed in a way that passes (IAM down): retried like a failed fetch.
    DiscoveryTransient {
        error: Arc<ProjectDiscoveryError>,
        message: String,
    },
    /// Project discovery is still running: nothing is known yet, and nothing is wrong.
    DiscoveryPending,
}

/// The object's upstream target once resolved.
struct Target {
    feed: FeedTarget,
    /// The job feed, for a wait that reads the job API.
    job: Option<FeedTarget<JobId>>,
    project: String,
    /// Which credentials these are, persisted with errors: a Secret's resourceVersion.
    revision: Option<String>,
}

pub async fn reconcile(
    query: Arc<DcsTaskQuery>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let name = query.name_any();
    let namespace = query
        .namespace()
        .ok_or_else(|| ReconcileError::NoNamespace(name.clone()))?;
    let object = ObjectRef::from_obj(query.as_ref());
    let now = Utc::now();
    let generation = query.metadata.generation;
    let Previous {
        status: previous,
        digest: previous_digest,
    } = ctx.memory.previous(&query);
    let requested_at = query.annotations().get(FLUX_REQUESTED_AT).cloned();
    let refresh_requested = requested_at.is_some()
        && requested_at.as_ref()
            != previous
                .as_ref()
                .and_then(|s| s.last_handled_reconcile_at.as_ref());
    let created_at = query
        .metadata
        .creation_timestamp
        .as_ref()
        .map(to_chrono)
        .unwrap_or(now);
    let wait_started_at = query::wait_started_at(previous.as_ref(), generation, created_at, now);

    // A wait that resolved for this generation is final until the spec changes.
    let resolved = previous.as_ref().is_some_and(|status| {
        status.observed_generation == generation
            && status
                .wait_for
                .as_ref()
                .is_some_and(|w| w.phase.is_resolved())
    });
    if resolved && !refresh_requested {
        debug!(%namespace, %name, "wait already resolved; not polling");
        ctx.feeds.unsubscribe(&object);
        // Nothing more to do, unless spec.ttlAfterResolved deletes the object (now or later).
        return super::expiry::settle(&ctx, &query, previous.as_ref(), now).await;
    }

    // Phase 1: the plan.
    let plan_ctx = PlanContext {
        now,
        wait_started_at,
    };
    let (plan, unplanned) = match (!query.spec.suspend).then(|| query::plan(&query.spec, &plan_ctx))
    {
        None => (None, Some(Outcome::Suspended)),
        Some(Err(errors)) => (None, Some(Outcome::InvalidSpec(errors))),
        Some(Ok(plan)) => (Some(Arc::new(plan)), None),
    };
    // Phase 2 and 3: the target, and the feed's answer.
    let mut revision = None;
    let mut project = None;
    let mut refreshed = false;
    let outcome = match (unplanned, &plan) {
        (Some(unplanned), _) => unplanned,
        (None, None) => Outcome::NoAnswerYet,
        (None, Some(plan)) => match resolve_target(&ctx, &query, &namespace, &object, plan).await {
            Err(unserved) => Outcome::Unserved(unserved),
            Ok(target) => {
                revision = target.revision.clone();
                project = Some(target.project.clone());
                match remembered_refusal(previous.as_ref(), &target, now) {
                    Some(cooling) => cooling,
                    None => {
                        let refresh = requested_at.as_deref().filter(|_| refresh_requested);
                        let job = target.job;
                        let (read, job) = tokio::join!(
                            read_feed(&ctx, &object, target.feed, plan, refresh),
                            read_job_feed(&ctx, &object, job, plan),
                        );
                        refreshed = read.refreshed;
                        match read.answer {
                            None => Outcome::NoAnswerYet,
                            Some(answer) => Outcome::of_answers(plan, answer, job.as_deref(), now),
                        }
                    }
                }
            }
        },
    };
    if outcome.answer().is_none()
        && !matches!(outcome, Outcome::NoAnswerYet | Outcome::JobBehindList)
    {
        // Nothing to poll for now: the object retries by itself, or waits for a spec change.
        ctx.feeds.unsubscribe(&object);
    }
    if matches!(outcome, Outcome::JobBehindList) {
        // One write with the verdict, instead of one for the listing and one for the verdict:
        // the job feed's fresh answer wakes the object.
        ctx.feeds.jobs.refresh(&object);
    }
    if matches!(outcome, Outcome::NoAnswerYet | Outcome::JobBehindList) && previous.is_some() {
        // The feed wakes the object with its first answer; what is written stays until then.
        return Ok(Action::await_change());
    }
    if let Outcome::Unserved(Unserved {
        problem: Problem::DiscoveryPending,
        kind,
    }) = &outcome
        && previous.is_some()
    {
        // What is written stays true while the project is being discovered again.
        let intervals = plan.as_ref().map(|p| p.intervals()).unwrap_or_default();
        let retry = next_poll(*kind, intervals, 0.0).unwrap_or(projects::DISCOVERY_WAIT);
        return Ok(Action::requeue(retry));
    }

    // Phase 4: the decision.
    let status_ctx = StatusContext {
        previous: previous.as_ref(),
        generation,
        has_wait: query.spec.wait_for.is_some(),
        wait_started_at,
        wait_deadline: plan
            .as_ref()
            .and_then(|plan| plan.wait.as_ref())
            .and_then(|wait| wait.deadline),
        credentials_revision: revision.as_deref(),
        last_good_at: outcome
            .answer()
            .and_then(|answer| answer.last_good.as_ref())
            .and_then(|listing| listing.fetched_at),
        answered_at: outcome.answered_at(),
        now,
    };
    // Anything but a fresh listing keeps the tasks already known, which the cache dropped.
    let full_previous = match (&outcome, &previous) {
        (Outcome::Fetched { .. }, _) | (_, None) => None,
        (_, Some(previous)) => {
            let last_good = outcome.answer().and_then(|answer| answer.last_good.clone());
            let plan = plan.as_deref();
            Some(known_content(&ctx, &query, previous, last_good.as_deref(), plan, now).await?)
        }
    };
    let status_ctx = StatusContext {
        previous: full_previous.as_ref().or(previous.as_ref()),
        ..status_ctx
    };
    let (poll_outcome, retry) = match &outcome {
        Outcome::Fetched { evaluation, .. } => (PollOutcome::Fetched(evaluation), None),
        Outcome::Failed { error, .. } => (PollOutcome::FetchFailed(error), None),
        Outcome::JobRefused {
            failure,
            job,
            error,
            ..
        } => (
            PollOutcome::JobRefused {
                failure: *failure,
                job,
                error,
            },
            None,
        ),
        Outcome::Suspended => (PollOutcome::Suspended, Some(PollKind::Suspended)),
        Outcome::InvalidSpec(errors) => (
            PollOutcome::InvalidSpec(errors),
            Some(PollKind::InvalidSpec),
        ),
        Outcome::Unserved(unserved) => (unserved.problem.outcome(), Some(unserved.kind)),
        Outcome::CoolingDown { refusal, error } => (
            PollOutcome::StillRefused(refusal, error),
            Some(PollKind::Failed {
                consecutive: 1,
                class: FailureClass::Auth,
            }),
        ),
        Outcome::NoAnswerYet | Outcome::JobBehindList => (PollOutcome::FirstPoll, None),
    };
    let intervals = plan.as_ref().map(|p| p.intervals()).unwrap_or_default();
    let shown = match (&outcome, &project) {
        (
            Outcome::Unserved(Unserved {
                problem:
                    Problem::Discovery(_)
                    | Problem::DiscoveryTransient { .. }
                    | Problem::DiscoveryPending,
                ..
            }),
            _,
        ) => ProjectShown::Unknown,
        (_, Some(project)) => ProjectShown::Queried(project),
        (_, None) => ProjectShown::Unchanged,
    };
    let decision = query::decide(DecisionInput {
        context: status_ctx,
        previous_digest,
        outcome: poll_outcome,
        spec: &query.spec,
        // A refresh is echoed once an answer polled after it is decided on.
        requested_at: requested_at
            .as_deref()
            .filter(|_| !refresh_requested || refreshed),
        retry_after: retry
            .and_then(|kind| next_poll(kind, intervals, rand::random_range(-1.0..=1.0))),
        project: shown,
    });
    // Phase 5: apply.
    if decision.write {
        write_status(&ctx, &query, &namespace, &decision.status).await?;
        ctx.memory.wrote(
            object.clone(),
            query.metadata.resource_version.clone(),
            &decision.status,
            decision.digest,
        );
    }
    publish(&ctx, &query, &decision.events).await;
    if outcome.answer().is_some() {
        Metrics::count_shared(&ctx.metrics, SharedOutcome::Fed);
        if decision.resolved {
            ctx.feeds.unsubscribe(&object);
        } else if let Outcome::Fetched { evaluation, .. } = &outcome {
            // Tell the feed the interval this object needs now.
            ctx.feeds.tasks.set_active(&object, evaluation.active);
        }
    }
    Metrics::count_reconcile(&ctx.metrics, ReconcileResult::Ok);
    // A resolved wait is looked at again only when spec.ttlAfterResolved deletes it.
    let recheck = decision
        .recheck
        .or_else(|| super::expiry::recheck(&query.spec, generation, &decision.status, now));
    Ok(recheck.map_or_else(Action::await_change, Action::requeue))
}

impl Problem {
    fn outcome(&self) -> PollOutcome<'_> {
        match self {
            Problem::Credentials(message) => PollOutcome::CredentialsUnavailable(message),
            Problem::Endpoint(message) => PollOutcome::EndpointNotAllowed(message),
            Problem::Discovery(message) => PollOutcome::ProjectDiscoveryFailed(message),
            Problem::DiscoveryTransient { error, message } => match error.upstream() {
                Some(upstream) => PollOutcome::FetchFailed(upstream),
                None => PollOutcome::ProjectDiscoveryFailed(message),
            },
            Problem::DiscoveryPending => PollOutcome::FirstPoll,
        }
    }
}

/// What the object reads from its feed.
struct FeedRead {
    answer: Option<Arc<Answer>>,
    /// The requested refresh (if any) is answered: `answer` was polled after it was asked.
    refreshed: bool,
}

/// Subscribes the object to its feed and returns the answer to decide on: the feed's latest,
/// or, for a new feed, its first answer if it comes within [`FIRST_ANSWER_WAIT`]. A requested
/// refresh (`refresh`: the annotation's value) asks the feed to poll now and waits for that
/// answer no longer than [`FIRST_ANSWER_WAIT`] either: a slower answer wakes the object itself.
async fn read_feed(
    ctx: &Context,
    object: &ObjectRef<DcsTaskQuery>,
    target: FeedTarget,
    plan: &Arc<QueryPlan>,
    refresh: Option<&str>,
) -> FeedRead {
    // What the object needed on its feed so far; a new subscriber awaiting a task in the list
    // starts active (a job wait's fast polls are the job feed's).
    let feeds = &ctx.feeds.tasks;
    let active = feeds
        .is_active(object)
        .unwrap_or(plan.wait.as_ref().is_some_and(|wait| !wait.reads_job_api()));
    let interest = Interest {
        plan: plan.clone(),
        active,
    };
    let mut answers: AnswerReceiver = feeds.subscribe(object.clone(), target, interest);
    let current = answers.borrow_and_update().clone();
    let latest = current.as_ref().map_or(0, |answer| answer.sequence);
    let Some(requested) = refresh else {
        let answer = match current {
            None => newer_answer(&mut answers, 0, FIRST_ANSWER_WAIT).await,
            current => current,
        };
        if let Some(answer) = &answer {
            feeds.saw(object, answer.sequence);
        }
        return FeedRead {
            answer,
            refreshed: false,
        };
    };
    let after = match ctx.memory.pending_refresh(object, requested) {
        Some(after) => after,
        None => {
            feeds.refresh(object);
            ctx.memory
                .refresh_asked(object, Some((requested.to_string(), latest)));
            latest
        }
    };
    let refreshed = match current.filter(|answer| answer.sequence > after) {
        Some(answer) => Some(answer),
        None => newer_answer(&mut answers, after, FIRST_ANSWER_WAIT).await,
    };
    match refreshed {
        Some(answer) => {
            ctx.memory.refresh_asked(object, None);
            feeds.saw(object, answer.sequence);
            FeedRead {
                answer: Some(answer),
                refreshed: true,
            }
        }
        // Not marked seen: the refreshed answer wakes the object.
        None => FeedRead {
            answer: answers.borrow().clone(),
            refreshed: false,
        },
    }
}

/// Subscribes the object to the job feed of its wait (leaving any job feed when its wait
/// reads no job) and returns the feed's latest answer, or its first if it comes within
/// [`FIRST_ANSWER_WAIT`]. The job feed polls at `activeInterval` until the job ends.
async fn read_job_feed(
    ctx: &Context,
    object: &ObjectRef<DcsTaskQuery>,
    target: Option<FeedTarget<JobId>>,
    plan: &Arc<QueryPlan>,
) -> Option<Arc<Answer<JobInfo>>> {
    let feeds = &ctx.feeds.jobs;
    let Some(target) = target else {
        feeds.unsubscribe(object);
        return None;
    };
    let interest = Interest {
        plan: plan.clone(),
        active: true,
    };
    let mut answers = feeds.subscribe(object.clone(), target, interest);
    let current = answers.borrow_and_update().clone();
    let answer = match current {
        None => newer_answer(&mut answers, 0, FIRST_ANSWER_WAIT).await,
        current => current,
    };
    if let Some(answer) = &answer {
        feeds.saw(object, answer.sequence);
    }
    answer
}

/// The first answer after `after`, if it comes within `wait`.
async fn newer_answer<R>(
    answers: &mut AnswerReceiver<R>,
    after: u64,
    wait: Duration,
) -> Option<Arc<Answer<R>>> {
    let newer = answers.wait_for(|answer| answer.as_ref().is_some_and(|a| a.sequence > after));
    match tokio::time::timeout(wait, newer).await {
        Ok(Ok(answer)) => answer.clone(),
        _ => None,
    }
}

/// Credentials, endpoint and project, each failure a typed [`Unserved`].
async fn resolve_target(
    ctx: &Context,
    query: &DcsTaskQuery,
    namespace: &str,
    object: &ObjectRef<DcsTaskQuery>,
    plan: &QueryPlan,
) -> Result<Target, Unserved> {
    let resolved = match &ctx.target_override {
        Some(fixed) => Ok((fixed.credentials.clone(), CredentialSource::Override)),
        None => resolve_credentials(ctx, query, namespace).await,
    };
    let (set, source) = resolved.map_err(|error| Unserved {
        kind: if error.is_operator_side() {
            PollKind::OperatorNotReady
        } else {
            PollKind::Unusable
        },
        problem: Problem::Credentials(error.to_string()),
    })?;
    let endpoint: Endpoint = match &ctx.target_override {
        Some(fixed) => fixed.endpoint.clone(),
        None => ctx
            .endpoints
            .resolve(&query.spec.region, query.spec.endpoint.as_deref())
            .map_err(|error| Unserved {
                problem: Problem::Endpoint(format!("spec.endpoint: {error}")),
                kind: PollKind::Unusable,
            })?,
    };
    let chosen = query::choose_project(
        query.spec.project_id.as_deref(),
        set.project_id.as_deref(),
        &source,
    )
    .map_err(|error| Unserved {
        problem: Problem::Credentials(error.to_string()),
        kind: PollKind::Unusable,
    })?;
    let project = match chosen {
        Some(project) => project,
        None => match discover_project(ctx, &query.spec.region, &set).await {
            Ok(project) => project,
            Err(Undiscovered::Failed(error)) => return Err(discovery_failed(ctx, object, &error)),
            Err(Undiscovered::Pending) => {
                return Err(Unserved {
                    problem: Problem::DiscoveryPending,
                    kind: PollKind::OperatorNotReady,
                });
            }
        },
    };
    ctx.memory.recovered(object);
    let revision = match &source {
        CredentialSource::Secret { namespace, name } => ctx
            .secrets
            .get(&ObjectRef::new(name).within(namespace))
            .and_then(|secret| secret.metadata.resource_version.clone()),
        _ => None,
    };
    let key = FeedKey {
        endpoint: endpoint.to_string(),
        project_id: project.clone(),
        credential: set.credentials.fingerprint(),
        request: plan.list_request(),
        owner: (ctx.upstream_sharing == UpstreamSharing::PerObject)
            .then(|| query.uid().unwrap_or_else(|| object.to_string())),
    };
    let client = DcsClient::new(ctx.http.clone(), endpoint, project.clone(), set.credentials);
    let job = plan.awaited_job().map(|job| FeedTarget {
        key: key.asking(job),
        client: client.clone(),
    });
    Ok(Target {
        job,
        feed: FeedTarget { key, client },
        project,
        revision,
    })
}

/// The refusal to keep honouring instead of calling (see [`query::remembered_refusal`]).
fn remembered_refusal(
    previous: Option<&DcsTaskQueryStatus>,
    target: &Target,
    now: DateTime<Utc>,
) -> Option<Outcome> {
    let refused = query::remembered_refusal(previous, target.revision.as_deref(), now)?;
    let error = DcsError::Api {
        endpoint: target.feed.key.endpoint.clone(),
        error: ApiError {
            http_status: refused
                .http_status
                .and_then(|code| u16::try_from(code).ok())
                .unwrap_or(401),
            error_code: refused.error_code.clone(),
            error_msg: refused.error_msg.clone(),
            request_id: None,
            retry_after: None,
            iam_action: crate::dcs::IamAction::ListTasks,
        },
    };
    Some(Outcome::CoolingDown {
        refusal: refused.clone(),
        error,
    })
}

/// The previous status with the tasks the cache dropped: rebuilt from the feed's last good
/// listing when there is one (the data the status was written from), else read from the
/// apiserver (rare: an error or a stall right after a restart).
async fn known_content(
    ctx: &Context,
    query: &DcsTaskQuery,
    previous: &DcsTaskQueryStatus,
    last_good: Option<&TaskListing>,
    plan: Option<&QueryPlan>,
    now: DateTime<Utc>,
) -> Result<DcsTaskQueryStatus, ReconcileError> {
    if let (Some(listing), Some(plan)) = (last_good, plan) {
        let evaluation = query::evaluate(plan, listing, now);
        return Ok(DcsTaskQueryStatus {
            tasks: evaluation.tasks,
            latest: evaluation.latest,
            ..previous.clone()
        });
    }
    let namespace = query.namespace().unwrap_or_default();
    let api: Api<DcsTaskQuery> = Api::namespaced(ctx.client.clone(), &namespace);
    let stored =
        api.get_status(&query.name_any())
            .await
            .map_err(|source| ReconcileError::ReadStatus {
                object: format!("{namespace}/{}", query.name_any()),
                source,
            })?;
    let stored = stored.status.unwrap_or_default();
    Ok(DcsTaskQueryStatus {
        tasks: stored.tasks,
        latest: stored.latest,
        ..previous.clone()
    })
}

/// The project IAM names for `region`, remembered per credential, region and IAM endpoint
/// (see [`super::projects`]), so polls do not repeat the call. Waits at most
/// [`projects::DISCOVERY_WAIT`] for a discovery in flight.
async fn discover_project(
    ctx: &Context,
    region: &str,
    set: &CredentialSet,
) -> Result<String, Undiscovered> {
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
    match ctx
        .projects
        .discover(key, client, projects::DISCOVERY_WAIT)
        .await
    {
        Lookup::Known(Ok(project)) => Ok(project),
        Lookup::Known(Err(error)) => Err(Undiscovered::Failed(error)),
        Lookup::Discovering => Err(Undiscovered::Pending),
    }
}

/// Why no project id is known yet.
enum Undiscovered {
    Failed(Arc<ProjectDiscoveryError>),
    /// The discovery outlived the reconcile's wait and goes on by itself.
    Pending,
}

/// A transient IAM failure is retried like a failed fetch; anything else (no project, several,
/// refused credentials) needs a person and stalls with the exact reason.
fn discovery_failed(
    ctx: &Context,
    object: &ObjectRef<DcsTaskQuery>,
    error: &Arc<ProjectDiscoveryError>,
) -> Unserved {
    match error.upstream() {
        Some(upstream) if upstream.class() == FailureClass::Transient => Unserved {
            kind: PollKind::Failed {
                consecutive: ctx.memory.failed(object),
                class: FailureClass::Transient,
            },
            problem: Problem::DiscoveryTransient {
                message: error.to_string(),
                error: error.clone(),
            },
        },
        _ => Unserved {
            problem: Problem::Discovery(error.to_string()),
            kind: PollKind::Unusable,
        },
    }
}

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

/// Server-side apply of the whole status on the status subresource, under one stable field
/// manager.
async fn write_status(
    ctx: &Context,
    query: &DcsTaskQuery,
    namespace: &str,
    status: &DcsTaskQueryStatus,
) -> Result<(), ReconcileError> {
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
    Ok(())
}

/// Queues the decision's events (see [`super::events`]); a failure to publish is logged, never
/// fatal.
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

/// Reconcile errors (status writes) back off per object: 1 s, 2 s, 4 s ... capped at 5 min.
pub fn error_policy(query: Arc<DcsTaskQuery>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    Metrics::count_reconcile(&ctx.metrics, ReconcileResult::Error);
    let failures = ctx.memory.failed(&ObjectRef::from_obj(query.as_ref()));
    let delay = Duration::from_secs(1)
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)))
        .min(crate::query::schedule::MAX_BACKOFF);
    warn!(name = %query.name_any(), %error, failures, ?delay, "reconcile failed");
    Action::requeue(delay)
}
