//! The operator: kube-runtime glue that keeps every `DcsTaskQuery`'s status true to the DCS
//! task center. The only module that knows both Kubernetes and DCS.

pub mod credentials;
pub mod events;
pub mod expiry;
pub mod lanes;
pub mod leader;
pub mod memory;
pub mod metrics;
pub mod projects;
pub mod reconcile;
pub mod server;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use self::lanes::Lanes;
use self::memory::Memory;
use self::metrics::Metrics;
use crate::api::DcsTaskQuery;
use crate::dcs::{CredentialSet, Endpoint, EndpointPolicy, HttpClient, HttpSettings};
use crate::upstream::{FeedObserver, FeedSet, FetchLimits, SharedFetcher, fetcher};

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
    /// Send every query to this endpoint with these credentials, whatever its spec says (the
    /// CLI's `--sim` mode points it at the built-in simulator).
    pub target_override: Option<TargetOverride>,
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

/// One endpoint and one set of credentials for every query (`--sim`).
#[derive(Debug, Clone)]
pub struct TargetOverride {
    pub endpoint: Endpoint,
    pub credentials: CredentialSet,
}

/// The key an object is kept under in every per-object map (memory, feeds, lanes), shared:
/// [`Memory::key`] hands out one copy per object, and each map holds a pointer to it. At
/// 10,000 objects, a copy per map (two strings each) would cost megabytes.
pub type ObjectKey = Arc<ObjectRef<DcsTaskQuery>>;

/// An object's namespace and name, which is all its key compares. `ObjectRef::from_obj` also
/// copies the uid and resourceVersion.
pub fn object_key(query: &DcsTaskQuery) -> ObjectRef<DcsTaskQuery> {
    let name = query.metadata.name.as_deref().unwrap_or_default();
    match query.metadata.namespace.as_deref() {
        Some(namespace) => ObjectRef::new(name).within(namespace),
        None => ObjectRef::new(name),
    }
}

/// Shared state of all reconciles.
pub struct Context {
    pub client: Client,
    pub secrets: Store<Secret>,
    /// Whether the Secret watch works (RBAC can forbid it).
    pub secret_health: Arc<credentials::SecretCacheHealth>,
    /// The budgets, auth cool-down and deadlines every upstream call goes through.
    pub fetcher: Arc<SharedFetcher>,
    /// One upstream feed per distinct query, and one per awaited job; objects subscribe in
    /// reconcile.
    pub feeds: Arc<FeedSet<ObjectKey>>,
    /// Whose status write goes first: awaiting objects' verdicts before everything else.
    pub lanes: Arc<Lanes<ObjectKey>>,
    pub http: HttpClient,
    pub endpoints: EndpointPolicy,
    /// Where project ids are discovered (the override's endpoint when there is one).
    pub iam_endpoint: Endpoint,
    /// Discovered project ids, per credential, region and IAM endpoint.
    pub projects: projects::ProjectCache,
    pub default_credentials: Option<credentials::DefaultCredentials>,
    /// Events to publish, off the reconcile path.
    pub events: events::EventQueue,
    pub metrics: Arc<Metrics>,
    pub memory: Arc<Memory>,
    pub upstream_sharing: UpstreamSharing,
    pub target_override: Option<TargetOverride>,
}

/// Errors that stop the controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("cannot connect to Kubernetes: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot set up the DCS client: {0}")]
    Dcs(#[from] crate::dcs::DcsError),
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
    let election = elect(
        &client,
        config.leader_election.as_ref(),
        &ready_tx,
        &mut shutdown,
    );
    let mut leadership = match election.await? {
        Election::Acting(leadership) => leadership,
        Election::ShutDown => return Ok(()),
    };
    if let Some(fixed) = &config.target_override {
        info!(endpoint = %fixed.endpoint, "every query goes to one endpoint (target override)");
    }

    let started = start(&client, &config, metrics, &shutdown).await?;
    let background = Background::spawn(&started, config.target_override.is_some(), ready_tx);
    log_started(&config);
    let mut run = run_reconciles(started.controller, started.context.clone());
    let stop = wait_for_stop(&mut run, &mut shutdown, &mut leadership).await;
    shut_down(
        run,
        stop,
        &started.context,
        background,
        started.event_publisher,
        leadership,
    )
    .await
}

/// What waiting for leadership ended in.
// Made once per process and unpacked at once: boxing the Lease would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Election {
    /// This replica acts: holding the Lease, or alone (no leader election).
    Acting(Option<leader::Leadership>),
    /// Shutdown was requested while standing by (a Lease taken meanwhile is released).
    ShutDown,
}

/// A standby must not watch or write anything, yet must stay stoppable and ready: it waits
/// here for the Lease or for a shutdown, whichever comes first.
async fn elect(
    client: &Client,
    settings: Option<&leader::LeaseSettings>,
    ready: &watch::Sender<bool>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Election, ControllerError> {
    let Some(settings) = settings else {
        return Ok(Election::Acting(None));
    };
    // A standby is healthy and ready: reporting it unready would block node drains
    // under a PodDisruptionBudget while doing nothing useful.
    let _ = ready.send(true);
    let held = tokio::select! {
        held = leader::acquire(client.clone(), settings) => held?,
        _ = requested(shutdown) => {
            info!("shutting down before acquiring leadership");
            // An attempt cut short may have taken the Lease just now.
            let leases = Api::namespaced(client.clone(), &settings.namespace);
            leader::release(&leases, settings).await;
            return Ok(Election::ShutDown);
        }
    };
    let _ = ready.send(false);
    Ok(Election::Acting(Some(held)))
}

/// What startup built that the run and the shutdown use.
struct Started {
    context: Arc<Context>,
    controller: Controller<DcsTaskQuery>,
    /// The query cache the controller's watch fills.
    queries: Store<DcsTaskQuery>,
    event_publisher: events::EventPublisher,
}

/// The caches, the upstream side and the Context, wired together in the order they depend on
/// each other. Nothing is watched or fetched yet: the controller polls the watches once it runs.
async fn start(
    client: &Client,
    config: &ControllerConfig,
    metrics: Arc<Metrics>,
    shutdown: &watch::Receiver<bool>,
) -> Result<Started, ControllerError> {
    let (queries_api, secrets_api) = scoped_apis(client, config.watch_namespace.as_deref());
    let secret_health = Arc::new(credentials::SecretCacheHealth::default());
    let (secrets, secret_writer) = reflector::store();
    let secret_stream = watch_secrets(secrets_api, secret_health.clone(), secret_writer);
    let memory = Arc::new(Memory::default());
    let (upstream, woken) = upstream(config, &metrics);
    let (queries, query_writer) = reflector::store();
    if let Some(selector) = &config.selector {
        check_selector(&queries_api, selector).await?;
    }
    let query_stream = watch_queries(
        queries_api,
        config.selector.as_deref(),
        &upstream,
        &memory,
        query_writer,
    );
    let (context, event_publisher) = new_context(
        client,
        config,
        metrics,
        memory,
        secrets,
        secret_health,
        upstream,
    )?;
    let controller = controller(
        query_stream,
        &queries,
        secret_stream,
        woken,
        shutdown,
        config.concurrency,
    );
    Ok(Started {
        context,
        controller,
        queries,
        event_publisher,
    })
}

/// `--watch-namespace` narrows both watches the same way: a query only ever reads Secrets of
/// its own namespace, so the Secret watch need not reach further than the query watch.
fn scoped_apis(client: &Client, namespace: Option<&str>) -> (Api<DcsTaskQuery>, Api<Secret>) {
    match namespace {
        Some(namespace) => (
            Api::namespaced(client.clone(), namespace),
            Api::namespaced(client.clone(), namespace),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    }
}

/// The Secret cache is fed by a watch that RBAC may forbid, so the watch itself reports to
/// `health` whether it works (for `/readyz` and for the reconciles' messages).
fn watch_secrets(
    api: Api<Secret>,
    health: Arc<credentials::SecretCacheHealth>,
    writer: reflector::store::Writer<Secret>,
) -> impl futures::Stream<Item = Result<Secret, watcher::Error>> + Send + 'static {
    // Only labelled Secrets: the operator never lists (or holds) every Secret of the cluster.
    watcher(
        api,
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
    .reflect(writer)
    .touched_objects()
}

/// The upstream side every reconcile shares.
struct Upstream {
    /// The budgets, auth cool-down and deadlines every upstream call goes through.
    fetcher: Arc<SharedFetcher>,
    feeds: Arc<FeedSet<ObjectKey>>,
    lanes: Arc<Lanes<ObjectKey>>,
}

/// Feeds poll on their own schedule and must wake the objects that read them; they do it
/// through the lanes (an awaiting object at once, a refresh when the apiserver has room) and
/// the returned receiver, which the controller reads as its own queue (`reconcile_on`), so a
/// woken object is reconciled like any other.
fn upstream(
    config: &ControllerConfig,
    metrics: &Arc<Metrics>,
) -> (
    Upstream,
    futures::channel::mpsc::UnboundedReceiver<ObjectRef<DcsTaskQuery>>,
) {
    let fetcher = Arc::new(SharedFetcher::with_limits(FetchLimits {
        requests_per_second: config.rate_limit,
        account_requests_per_second: config.account_rate_limit,
        listing_deadline: fetcher::listing_deadline(config.request_timeout),
        ..FetchLimits::default()
    }));
    metrics.watch_fetcher(&fetcher);
    let (wake, woken) = futures::channel::mpsc::unbounded();
    let lanes = Lanes::new(move |object: ObjectKey| {
        // Fails only once the controller is gone, when nobody needs waking.
        let _ = wake.unbounded_send(ObjectRef::clone(&object));
    });
    metrics.watch_lanes(&lanes);
    let observer: Arc<dyn FeedObserver> = metrics.clone();
    let woken_lanes = lanes.clone();
    let feeds = Arc::new(FeedSet::new(
        fetcher.clone(),
        move |object, wake| woken_lanes.woken(object, wake),
        Some(observer),
    ));
    (
        Upstream {
            fetcher,
            feeds,
            lanes,
        },
        woken,
    )
}

/// A selector the apiserver refuses would leave the watch failing forever: say so now.
async fn check_selector(
    queries: &Api<DcsTaskQuery>,
    selector: &str,
) -> Result<(), ControllerError> {
    queries
        .list_metadata(&ListParams::default().labels(selector).limit(1))
        .await
        .map_err(|source| ControllerError::Selector {
            selector: selector.to_string(),
            source,
        })?;
    Ok(())
}

/// The query watch is what triggers reconciles, so it decides what counts as a change: only
/// spec (generation) and annotation changes wake a reconcile. Our own status writes do not, so
/// the controller never triggers itself.
fn watch_queries(
    api: Api<DcsTaskQuery>,
    selector: Option<&str>,
    upstream: &Upstream,
    memory: &Arc<Memory>,
    writer: reflector::store::Writer<DcsTaskQuery>,
) -> impl futures::Stream<Item = Result<DcsTaskQuery, watcher::Error>> + Send + 'static {
    let config = match selector {
        Some(selector) => watcher::Config::default().labels(selector),
        None => watcher::Config::default(),
    };
    let cache_memory = memory.clone();
    let deleted_feeds = upstream.feeds.clone();
    let deleted_lanes = upstream.lanes.clone();
    let deleted_memory = memory.clone();
    watcher(api, config)
        .filter(relist_at_once_when_gone)
        .backoff(watch_backoff())
        .inspect(move |event| {
            // A deleted object leaves its feed at once (deletes do not reach reconcile).
            if let Ok(watcher::Event::Delete(query)) = event {
                let object = ObjectKey::new(object_key(query));
                deleted_feeds.unsubscribe(&object);
                deleted_lanes.forget(&object);
                deleted_memory.forget(&object);
            }
        })
        .modify(move |query| cache_memory.slim_for_cache(query))
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(predicates::annotations),
            Default::default(),
        )
}

/// Everything that makes a reconcile happen, in one place: a query's own change, a change of
/// the Secret it names, and its feed's wake; and the shutdown request that stops new work.
fn controller(
    query_stream: impl futures::Stream<Item = Result<DcsTaskQuery, watcher::Error>> + Send + 'static,
    queries: &Store<DcsTaskQuery>,
    secret_stream: impl futures::Stream<Item = Result<Secret, watcher::Error>> + Send + 'static,
    woken: futures::channel::mpsc::UnboundedReceiver<ObjectRef<DcsTaskQuery>>,
    shutdown: &watch::Receiver<bool>,
    concurrency: u16,
) -> Controller<DcsTaskQuery> {
    let by_secret = queries.clone();
    Controller::for_stream(query_stream, queries.clone())
        .with_config(controller::Config::default().concurrency(concurrency))
        .watches_stream(secret_stream, move |secret: Secret| {
            queries_using_secret(&by_secret, &secret)
        })
        .reconcile_on(woken)
        .graceful_shutdown_on({
            let mut shutdown = shutdown.clone();
            async move { requested(&mut shutdown).await }
        })
}

/// The Context is where the command line meets the shared state; it also starts the event
/// publisher, whose handle the shutdown drains.
fn new_context(
    client: &Client,
    config: &ControllerConfig,
    metrics: Arc<Metrics>,
    memory: Arc<Memory>,
    secrets: Store<Secret>,
    secret_health: Arc<credentials::SecretCacheHealth>,
    upstream: Upstream,
) -> Result<(Arc<Context>, events::EventPublisher), ControllerError> {
    let writer = Arc::new(events::EventWriter::new(
        client.clone(),
        Reporter {
            controller: FIELD_MANAGER.to_string(),
            instance: Some(config.identity.clone()),
        },
    ));
    let (events, event_publisher) = events::EventQueue::start(writer, upstream.lanes.clone());
    let context = Arc::new(Context {
        client: client.clone(),
        secrets,
        secret_health,
        fetcher: upstream.fetcher,
        feeds: upstream.feeds,
        lanes: upstream.lanes,
        http: HttpClient::new(HttpSettings {
            max_body_bytes: config.max_body_bytes,
            timeout: config.request_timeout,
            ..HttpSettings::default()
        })?,
        endpoints: config.endpoints.clone(),
        iam_endpoint: config.target_override.as_ref().map_or_else(
            || config.iam_endpoint.clone(),
            |fixed| fixed.endpoint.clone(),
        ),
        projects: projects::ProjectCache::default(),
        default_credentials: config.default_credentials.clone(),
        events,
        metrics,
        memory,
        upstream_sharing: config.upstream_sharing,
        target_override: config.target_override.clone(),
    });
    Ok((context, event_publisher))
}

/// The tasks beside the controller: they only report and tidy, so the shutdown aborts them
/// rather than waiting for them.
struct Background {
    housekeeping: JoinHandle<()>,
    readiness: JoinHandle<()>,
    lanes: JoinHandle<()>,
}

impl Background {
    /// Spawned once the Context exists, since housekeeping tidies its feeds and memory;
    /// readiness takes `ready` over from the leader election.
    fn spawn(started: &Started, fixed_target: bool, ready: watch::Sender<bool>) -> Self {
        let context = &started.context;
        Self {
            housekeeping: tokio::spawn(housekeeping(started.queries.clone(), context.clone())),
            lanes: tokio::spawn(sweep_lanes(context.lanes.clone())),
            readiness: tokio::spawn(report_readiness(
                started.queries.clone(),
                context.secrets.clone(),
                context.secret_health.clone(),
                fixed_target,
                ready,
            )),
        }
    }

    /// Their work means nothing once the reconciles stop, and neither holds anything that
    /// needs a clean end.
    fn abort(&self) {
        self.housekeeping.abort();
        self.readiness.abort();
        self.lanes.abort();
    }
}

/// One place that says, at startup, what this process watches and what it was warned about.
fn log_started(config: &ControllerConfig) {
    for warning in config.endpoints.warnings() {
        warn!(%warning, "endpoint allow-list");
    }
    info!(
        namespace = config.watch_namespace.as_deref().unwrap_or("(all)"),
        selector = config.selector.as_deref().unwrap_or("(all objects)"),
        "controller started"
    );
}

/// The controller as one future the shutdown can race, wait for and drop: dropping it aborts
/// every reconcile in flight. A reconcile's failure is logged, never the end of the loop.
fn run_reconciles(
    controller: Controller<DcsTaskQuery>,
    context: Arc<Context>,
) -> BoxFuture<'static, ()> {
    controller
        .run(reconcile::reconcile, reconcile::error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!(%error, "reconcile loop error");
            }
        })
        .boxed()
}

/// Whichever comes first ends the run: the controller ending, a shutdown request or lost
/// leadership. A requested shutdown is graceful, see [`finish_in_flight`].
async fn wait_for_stop(
    run: &mut BoxFuture<'static, ()>,
    shutdown: &mut watch::Receiver<bool>,
    leadership: &mut Option<leader::Leadership>,
) -> Stop {
    let stop = tokio::select! {
        _ = &mut *run => Stop::Ended,
        _ = requested(shutdown) => Stop::Requested,
        reason = lost(leadership) => Stop::Lost(reason),
    };
    match stop {
        Stop::Requested => finish_in_flight(run, leadership).await,
        other => other,
    }
}

/// Graceful: the controller takes no new work and finishes what is in flight, for a bounded
/// time and only while this replica may still act.
async fn finish_in_flight(
    run: &mut BoxFuture<'static, ()>,
    leadership: &mut Option<leader::Leadership>,
) -> Stop {
    info!("shutting down: finishing reconciles in flight");
    tokio::select! {
        _ = &mut *run => Stop::Ended,
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => {
            warn!(grace = ?SHUTDOWN_GRACE, "reconciles still running at shutdown; abandoning them");
            Stop::Ended
        }
        reason = lost(leadership) => Stop::Lost(reason),
    }
}

/// The order here is what keeps a stopping replica safe: nothing is written once the run is
/// dropped, the events of what was written are still published, and the Lease is released
/// last, so a new leader never overlaps with this one's writes.
async fn shut_down(
    run: BoxFuture<'static, ()>,
    stop: Stop,
    context: &Context,
    background: Background,
    event_publisher: events::EventPublisher,
    leadership: Option<leader::Leadership>,
) -> Result<(), ControllerError> {
    // Dropping the run aborts every reconcile still in flight: from here on nothing is fetched
    // upstream and nothing is written.
    drop(run);
    context.feeds.stop_all();
    // No verdict is pending any more: the events queued go at once.
    context.lanes.retain(|_| false);
    background.abort();
    // The statuses written have their events: publish what is queued (the lease is still
    // held, or was lost and nothing more is written but events).
    event_publisher.drain(SHUTDOWN_GRACE).await;
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

/// `/readyz` is ready once the query cache has synced and the Secret watch works (not needed
/// with a target override); it turns unready again while the Secret watch fails, e.g. on a 403 after an
/// RBAC change, so a broken operator is visible to `kubectl get pods` and to rollouts.
async fn report_readiness(
    queries: Store<DcsTaskQuery>,
    secrets: Store<Secret>,
    health: Arc<credentials::SecretCacheHealth>,
    fixed_target: bool,
    ready: watch::Sender<bool>,
) {
    if queries.wait_until_ready().await.is_err() {
        return;
    }
    let mut reported = None;
    loop {
        let secrets_ready = secrets.wait_until_ready().now_or_never().is_some();
        let problem = (!fixed_target)
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

/// Every 15 s: the objects-by-phase and feed gauges, and forgetting the memory and feed
/// subscriptions of objects that are gone (a delete missed by the watch, say across a relist).
async fn housekeeping(store: Store<DcsTaskQuery>, context: Arc<Context>) {
    loop {
        let objects = store.state();
        context
            .metrics
            .set_objects(objects.iter().map(AsRef::as_ref));
        let live: std::collections::HashSet<ObjectRef<DcsTaskQuery>> =
            objects.iter().map(|object| object_key(object)).collect();
        context.memory.retain(&live);
        context
            .feeds
            .retain(|object| live.contains(object.as_ref()));
        context
            .lanes
            .retain(|object| live.contains(object.as_ref()));
        let counts = context.feeds.counts();
        context
            .metrics
            .feeds
            .set(i64::try_from(counts.feeds).unwrap_or(i64::MAX));
        context
            .metrics
            .feed_subscribers
            .set(i64::try_from(counts.subscribers).unwrap_or(i64::MAX));
        tokio::time::sleep(Duration::from_secs(15)).await;
    }
}

/// Every second: a lane entry whose reconcile never came (its object went away unseen) expires
/// even when no write happens to look.
async fn sweep_lanes(lanes: Arc<Lanes<ObjectKey>>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        lanes.dispatch();
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
        .map(|query| object_key(query))
        .collect()
}
