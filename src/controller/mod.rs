//! The operator: kube-runtime glue that keeps every `DcsTaskQuery`'s status true to the DCS
//! task center. The only module that knows both Kubernetes and DCS.

pub mod budget;
pub mod credentials;
pub mod fetcher;
pub mod leader;
pub mod metrics;
pub mod projects;
pub mod reconcile;
pub mod server;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{info, warn};

use self::fetcher::SharedFetcher;
use self::metrics::Metrics;
use crate::api::DcsTaskQuery;
use crate::dcs::{CredentialSet, Endpoint, EndpointPolicy, HttpClient, HttpSettings};
use crate::sim;

/// Field manager for server-side apply of status, and the events' reporting controller.
pub const FIELD_MANAGER: &str = "dcs-task-operator";

/// How the controller runs, from the command line.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Only this namespace; `None` watches all.
    pub watch_namespace: Option<String>,
    /// Only `DcsTaskQuery` objects matching this label selector (`--selector`), so several
    /// releases can shard the objects between them.
    pub selector: Option<String>,
    pub endpoints: EndpointPolicy,
    /// Where project ids are discovered (`--iam-endpoint`, `HUAWEICLOUD_SDK_IAM_ENDPOINT`),
    /// already checked against `endpoints`.
    pub iam_endpoint: Endpoint,
    /// HTTP requests per second to DCS, across all accounts (`--rate-limit`).
    pub rate_limit: NonZeroU32,
    /// HTTP requests per second to DCS, per account (`--account-rate-limit`).
    pub account_rate_limit: NonZeroU32,
    pub concurrency: u16,
    /// Whether equal queries share upstream calls (`--upstream-sharing`).
    pub upstream_sharing: UpstreamSharing,
    /// Largest DCS response body read (`--max-body-bytes`).
    pub max_body_bytes: usize,
    /// Time limit of one HTTP request to DCS (`--request-timeout`).
    pub request_timeout: Duration,
    /// Operator-wide credentials for queries that name no Secret, and who may use them.
    pub default_credentials: Option<credentials::DefaultCredentials>,
    pub leader_election: Option<leader::LeaseSettings>,
    pub listen: SocketAddr,
    /// Run the simulator in-process and point every query at it.
    pub simulator: Option<sim::Scenario>,
    /// Events' reporting instance (the pod name).
    pub identity: String,
}

/// Whether objects with equal queries share upstream calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UpstreamSharing {
    /// One upstream feed per distinct query (the operator's design).
    Shared,
    /// Every object polls alone: the naive baseline the benchmark compares against.
    PerObject,
}

/// The in-process simulator every query is pointed at in `--sim` mode.
pub struct SimulatorTarget {
    pub endpoint: Endpoint,
    pub credentials: CredentialSet,
    _running: sim::RunningSimulator,
}

/// Shared state of all reconciles.
pub struct Context {
    pub client: Client,
    pub secrets: Store<Secret>,
    /// Whether the Secret watch works (RBAC can forbid it).
    pub secret_health: Arc<credentials::SecretCacheHealth>,
    pub fetcher: Arc<SharedFetcher>,
    pub http: HttpClient,
    pub endpoints: EndpointPolicy,
    /// Where project ids are discovered (the simulator in `--sim` mode).
    pub iam_endpoint: Endpoint,
    /// Discovered project ids, per credential, region and IAM endpoint.
    pub projects: projects::ProjectCache,
    pub default_credentials: Option<credentials::DefaultCredentials>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub memory: reconcile::Memory,
    pub upstream_sharing: UpstreamSharing,
    pub simulator: Option<SimulatorTarget>,
}

/// Errors that stop the controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("cannot connect to Kubernetes: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot set up the DCS client: {0}")]
    Dcs(#[from] crate::dcs::DcsError),
    #[error("cannot start the simulator: {0}")]
    Simulator(#[from] sim::SimError),
    #[error("health/metrics server on {addr}: {source}")]
    Server {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("leader election: {0}")]
    Leader(#[from] kube_lease_manager::LeaseManagerError),
    #[error("--selector {selector:?} was refused by the apiserver: {source}")]
    Selector {
        selector: String,
        #[source]
        source: kube::Error,
    },
    #[error("lost leadership; exiting so that only the new leader writes")]
    LostLeadership,
    #[error("cannot listen for SIGTERM/SIGINT: {0}")]
    Signals(std::io::Error),
}

/// Runs until SIGINT/SIGTERM (or, with leader election, until leadership is lost).
pub async fn run(config: ControllerConfig) -> Result<(), ControllerError> {
    let client = Client::try_default().await?;
    run_with_client(client, config).await
}

/// [`run`] with a given client (tests use this against their control plane).
pub async fn run_with_client(
    client: Client,
    config: ControllerConfig,
) -> Result<(), ControllerError> {
    let metrics = Arc::new(Metrics::default());
    let (ready_tx, ready_rx) = watch::channel(false);
    let server = server::serve(config.listen, metrics.clone(), ready_rx).await?;
    info!(addr = %server.local_addr, "health and metrics listening");
    let mut shutdown = shutdown_on_signals()?;

    let mut leadership = match &config.leader_election {
        Some(settings) => {
            // A standby is healthy and ready: reporting it unready would block node drains
            // under a PodDisruptionBudget while doing nothing useful.
            let _ = ready_tx.send(true);
            let held = tokio::select! {
                held = leader::acquire(client.clone(), settings) => held?,
                _ = requested(&mut shutdown) => {
                    info!("shutting down before acquiring leadership");
                    // An attempt cut short may have taken the Lease just now.
                    let leases = Api::namespaced(client.clone(), &settings.namespace);
                    leader::release(&leases, settings).await;
                    return Ok(());
                }
            };
            let _ = ready_tx.send(false);
            Some(held)
        }
        None => None,
    };

    let simulator = match &config.simulator {
        Some(scenario) => {
            let running = sim::serve_on_loopback(scenario.clone()).await?;
            info!(url = %running.base_url(), "simulator mode: every query goes to the built-in simulator");
            Some(SimulatorTarget {
                endpoint: running.endpoint(),
                credentials: sim::demo_credentials(),
                _running: running,
            })
        }
        None => None,
    };

    let (queries, secrets_api): (Api<DcsTaskQuery>, Api<Secret>) = match &config.watch_namespace {
        Some(namespace) => (
            Api::namespaced(client.clone(), namespace),
            Api::namespaced(client.clone(), namespace),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };

    // Only labelled Secrets: the operator never lists (or holds) every Secret of the cluster.
    let secret_health = Arc::new(credentials::SecretCacheHealth::default());
    let health = secret_health.clone();
    let (secret_reader, secret_writer) = reflector::store();
    let secret_stream = watcher(
        secrets_api,
        watcher::Config::default().labels(&credentials::credentials_selector()),
    )
    .filter(relist_at_once_when_gone)
    .inspect(move |event| match event {
        Ok(watcher::Event::InitDone | watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {
            health.record_ok()
        }
        Ok(_) => {}
        Err(error) => health.record_error(&error.to_string()),
    })
    .backoff(watch_backoff())
    .modify(credentials::keep_only_credential_keys)
    .reflect(secret_writer)
    .touched_objects();

    let (query_reader, query_writer) = reflector::store();
    // Only spec (generation) and annotation changes wake a reconcile: our own status writes do
    // not, so the controller never triggers itself.
    if let Some(selector) = &config.selector {
        // A selector the apiserver refuses would leave the watch failing forever: say so now.
        queries
            .list_metadata(&ListParams::default().labels(selector).limit(1))
            .await
            .map_err(|source| ControllerError::Selector {
                selector: selector.clone(),
                source,
            })?;
    }
    let query_config = match &config.selector {
        Some(selector) => watcher::Config::default().labels(selector),
        None => watcher::Config::default(),
    };
    let query_stream = watcher(queries, query_config)
        .filter(relist_at_once_when_gone)
        .backoff(watch_backoff())
        .reflect(query_writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(predicates::annotations),
            Default::default(),
        );

    let context = Arc::new(Context {
        client: client.clone(),
        secrets: secret_reader.clone(),
        secret_health: secret_health.clone(),
        fetcher: Arc::new(SharedFetcher::with_limits(fetcher::FetchLimits {
            requests_per_second: config.rate_limit,
            account_requests_per_second: config.account_rate_limit,
            listing_deadline: fetcher::listing_deadline(config.request_timeout),
            ..fetcher::FetchLimits::default()
        })),
        http: HttpClient::new(HttpSettings {
            max_body_bytes: config.max_body_bytes,
            timeout: config.request_timeout,
            ..HttpSettings::default()
        })?,
        endpoints: config.endpoints.clone(),
        iam_endpoint: simulator
            .as_ref()
            .map_or_else(|| config.iam_endpoint.clone(), |sim| sim.endpoint.clone()),
        projects: projects::ProjectCache::default(),
        default_credentials: config.default_credentials.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.to_string(),
                instance: Some(config.identity.clone()),
            },
        ),
        metrics: metrics.clone(),
        memory: Default::default(),
        upstream_sharing: config.upstream_sharing,
        simulator,
    });

    let by_secret = query_reader.clone();
    let controller = Controller::for_stream(query_stream, query_reader.clone())
        .with_config(controller::Config::default().concurrency(config.concurrency))
        .watches_stream(secret_stream, move |secret: Secret| {
            queries_using_secret(&by_secret, &secret)
        })
        .graceful_shutdown_on({
            let mut shutdown = shutdown.clone();
            async move { requested(&mut shutdown).await }
        });

    let housekeeping = tokio::spawn(housekeeping(query_reader.clone(), context.clone()));
    let readiness = tokio::spawn(report_readiness(
        query_reader.clone(),
        secret_reader,
        secret_health,
        config.simulator.is_some(),
        ready_tx,
    ));
    for warning in config.endpoints.warnings() {
        warn!(%warning, "endpoint allow-list");
    }

    info!(
        namespace = config.watch_namespace.as_deref().unwrap_or("(all)"),
        selector = config.selector.as_deref().unwrap_or("(all objects)"),
        "controller started"
    );
    let mut run = controller
        .run(reconcile::reconcile, reconcile::error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!(%error, "reconcile loop error");
            }
        })
        .boxed();
    let stop = tokio::select! {
        _ = &mut run => Stop::Ended,
        _ = requested(&mut shutdown) => Stop::Requested,
        reason = lost(&mut leadership) => Stop::Lost(reason),
    };
    let stop = match stop {
        // Graceful: the controller takes no new work and finishes what is in flight, for a
        // bounded time and only while this replica may still act.
        Stop::Requested => {
            info!("shutting down: finishing reconciles in flight");
            tokio::select! {
                _ = &mut run => Stop::Ended,
                _ = tokio::time::sleep(SHUTDOWN_GRACE) => {
                    warn!(grace = ?SHUTDOWN_GRACE, "reconciles still running at shutdown; abandoning them");
                    Stop::Ended
                }
                reason = lost(&mut leadership) => Stop::Lost(reason),
            }
        }
        other => other,
    };
    // Dropping the run aborts every reconcile still in flight: from here on nothing is fetched
    // upstream and nothing is written.
    drop(run);
    housekeeping.abort();
    readiness.abort();
    match stop {
        Stop::Ended | Stop::Requested => {
            if let Some(lease) = leadership {
                lease.release().await;
            }
            info!("stopped");
            Ok(())
        }
        Stop::Lost(reason) => {
            warn!(%reason, "lost leadership: stopped acting");
            Err(ControllerError::LostLeadership)
        }
    }
}

/// Why the controller stopped.
enum Stop {
    Ended,
    Requested,
    Lost(leader::LossReason),
}

/// How long a shutdown waits for reconciles in flight before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Watch errors back off from 250 ms, doubling, to at most 5 s (2.5 s plus up to 100 % jitter),
/// so a watch reconnects within seconds when the apiserver comes back; kube-runtime's default
/// grows to half a minute and more.
fn watch_backoff() -> watcher::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(Duration::from_millis(2500))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .into()
}

/// A 410 Gone (the watch's resourceVersion is too old, e.g. after an apiserver restart) is not
/// an error to wait out: the watcher has already reset and relists on the next poll, so the
/// error is logged and dropped before the backoff would delay that relist.
fn relist_at_once_when_gone<K>(
    event: &Result<watcher::Event<K>, watcher::Error>,
) -> std::future::Ready<bool> {
    let gone = matches!(event, Err(watcher::Error::WatchError(status)) if status.code == 410);
    if gone {
        info!("watch expired (410 Gone); relisting");
    }
    std::future::ready(!gone)
}

/// A flag that turns true on the first SIGTERM or SIGINT.
fn shutdown_on_signals() -> Result<watch::Receiver<bool>, ControllerError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).map_err(ControllerError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(ControllerError::Signals)?;
    let (flag, requested) = watch::channel(false);
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        info!(signal = name, "shutdown requested");
        let _ = flag.send(true);
        flag.closed().await;
    });
    Ok(requested)
}

async fn requested(shutdown: &mut watch::Receiver<bool>) {
    // A dropped sender cannot ask for shutdown any more.
    if shutdown.wait_for(|requested| *requested).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves when this replica must stop acting; never without leader election.
async fn lost(leadership: &mut Option<leader::Leadership>) -> leader::LossReason {
    match leadership {
        Some(leadership) => leadership.lost().await,
        None => std::future::pending().await,
    }
}

/// `/readyz` is ready once the query cache has synced and the Secret watch works (not needed in
/// simulator mode); it turns unready again while the Secret watch fails, e.g. on a 403 after an
/// RBAC change, so a broken operator is visible to `kubectl get pods` and to rollouts.
async fn report_readiness(
    queries: Store<DcsTaskQuery>,
    secrets: Store<Secret>,
    health: Arc<credentials::SecretCacheHealth>,
    simulator: bool,
    ready: watch::Sender<bool>,
) {
    if queries.wait_until_ready().await.is_err() {
        return;
    }
    let mut reported = None;
    loop {
        let secrets_ready = secrets.wait_until_ready().now_or_never().is_some();
        let problem = (!simulator)
            .then(|| health.problem(secrets_ready))
            .flatten();
        let is_ready = problem.is_none();
        if reported != Some(is_ready) {
            match &problem {
                Some(problem) => warn!(%problem, "not ready: the Secret watch is failing"),
                None => info!("ready"),
            }
            let _ = ready.send(is_ready);
            reported = Some(is_ready);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Every 15 s: the objects-by-phase gauge from the cache, and forgetting per-object memory of
/// objects that are gone (deletes do not reach reconcile).
async fn housekeeping(store: Store<DcsTaskQuery>, context: Arc<Context>) {
    loop {
        let objects = store.state();
        context
            .metrics
            .set_objects(objects.iter().map(AsRef::as_ref));
        let live: std::collections::HashSet<ObjectRef<DcsTaskQuery>> = objects
            .iter()
            .map(|object| ObjectRef::from_obj(object.as_ref()))
            .collect();
        context
            .memory
            .lock()
            .expect("memory lock poisoned")
            .retain(|key, _| live.contains(key));
        tokio::time::sleep(Duration::from_secs(15)).await;
    }
}

/// The queries in the Secret's namespace that name it, to re-poll when it changes.
fn queries_using_secret(
    store: &Store<DcsTaskQuery>,
    secret: &Secret,
) -> Vec<ObjectRef<DcsTaskQuery>> {
    let (Some(name), Some(namespace)) = (&secret.metadata.name, &secret.metadata.namespace) else {
        return Vec::new();
    };
    store
        .state()
        .iter()
        .filter(|query| query.metadata.namespace.as_ref() == Some(namespace))
        .filter(|query| {
            query
                .spec
                .credentials_secret_ref
                .as_ref()
                .is_some_and(|r| &r.name == name)
        })
        .map(|query| ObjectRef::from_obj(query.as_ref()))
        .collect()
}
