//! The target phase: where the object's calls go and as whom (credentials, endpoint, project),
//! or why no call can be made ([`Unserved`], a status, not an error).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;

use super::super::credentials::{self, SecretCredentialsError};
use super::super::projects::{self, DiscoveryKey, Lookup};
use super::super::{Context, ObjectKey, UpstreamSharing};
use crate::api::{DcsTaskQuery, DcsTaskQueryStatus, LastError};
use crate::dcs::{CredentialSet, DcsClient, Endpoint, IamClient, JobId, ProjectDiscoveryError};
use crate::query::{self, CredentialSource, QueryPlan, Unserved};
use crate::upstream::feed::{FeedKey, FeedTarget};

/// How long a reconcile waits for the Secret cache's first list before saying so in status.
pub const SECRET_CACHE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The object's upstream target once resolved.
pub struct Target {
    /// The task feed.
    pub feed: FeedTarget,
    /// The job feed, for a wait that reads the job API.
    pub job: Option<FeedTarget<JobId>>,
    pub project: String,
    /// Which credentials these are, persisted with errors: a Secret's resourceVersion.
    pub revision: Option<String>,
}

impl Target {
    /// The refusal of these very credentials that still stands (see
    /// [`query::remembered_refusal`]): no call is made until it passes or the Secret changes.
    pub fn standing_refusal<'a>(
        &self,
        previous: Option<&'a DcsTaskQueryStatus>,
        now: DateTime<Utc>,
    ) -> Option<&'a LastError> {
        query::remembered_refusal(previous, self.revision.as_deref(), now)
    }
}

/// Credentials, endpoint and project, each failure an [`Unserved`] reason.
pub async fn resolve(
    ctx: &Context,
    query: &DcsTaskQuery,
    object: &ObjectKey,
    plan: &QueryPlan,
) -> Result<Target, Unserved> {
    let (set, source) = match &ctx.target_override {
        Some(fixed) => (fixed.credentials.clone(), CredentialSource::Override),
        None => resolve_credentials(ctx, query)
            .await
            .map_err(|error| Unserved::Credentials {
                operator_side: error.is_operator_side(),
                message: error.to_string(),
            })?,
    };
    let endpoint: Endpoint = match &ctx.target_override {
        Some(fixed) => fixed.endpoint.clone(),
        None => ctx
            .endpoints
            .resolve(&query.spec.region, query.spec.endpoint.as_deref())
            .map_err(|error| Unserved::Endpoint(format!("spec.endpoint: {error}")))?,
    };
    let chosen = query::choose_project(
        query.spec.project_id.as_deref(),
        set.project_id.as_deref(),
        &source,
    )
    .map_err(|error| Unserved::Credentials {
        message: error.to_string(),
        operator_side: false,
    })?;
    let project = match chosen {
        Some(project) => project,
        None => discover_project(ctx, &query.spec.region, &set)
            .await
            .map_err(|undiscovered| match undiscovered {
                Undiscovered::Failed(error) => Unserved::ProjectDiscovery {
                    error,
                    consecutive: ctx.memory.failed(object),
                },
                Undiscovered::Pending => Unserved::ProjectDiscoveryPending,
            })?,
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

/// The project IAM names for `region`, remembered per credential, region and IAM endpoint
/// (see [`projects`]), so polls do not repeat the call. Waits at most
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

/// The query's credentials from the Secret cache (or the operator defaults), never hanging on a
/// cache that cannot sync, and telling a missing Secret from one that lacks the label.
async fn resolve_credentials(
    ctx: &Context,
    query: &DcsTaskQuery,
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
            let namespace = query.namespace().unwrap_or_default();
            let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
            if let Ok(Some(_)) = api.get_metadata_opt(&reference.name).await {
                return Err(SecretCredentialsError::MissingLabel {
                    namespace,
                    name: reference.name.clone(),
                });
            }
        }
        return resolved;
    }
    credentials::resolve(query, &ctx.secrets, ctx.default_credentials.as_ref())
}
