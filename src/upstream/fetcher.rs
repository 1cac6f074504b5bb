//! What every upstream listing goes through, so that no tenant's questions can hurt the others
//! or the upstream accounts, and no cancelled poll can leave anything behind.
//!
//! The upstream feeds ([`super::feed`]) are the only callers, one per distinct question, so
//! there is nothing to share between callers here: a [`RequestKey`] names the call for the auth
//! memory and the logs. Around every listing the fetcher enforces:
//! - **Request budgets.** Every HTTP request (each page, each retry) waits on its account's rate
//!   limit and then on its account's turn at the global one (see [`super::budget`]): accounts
//!   share the global budget round-robin, so one account saturating it cannot starve another.
//! - **Concurrency per account.** At most [`FetchLimits::listings_per_account`] listings of one
//!   account (access key) at one endpoint are in flight, and at most
//!   [`FetchLimits::listings_per_endpoint`] of all accounts, a cap on connections that only a
//!   hanging endpoint reaches. Nothing is held while waiting on another account.
//! - **Auth cool-down per access key.** The API gateway locks an access key for 5 minutes after 5
//!   failed authentications in 5 minutes, and that lock hits everything using the key, far beyond
//!   this operator. So after a 401 / `APIG.0301` the failing credential is not sent to that
//!   endpoint again for [`AUTH_COOLDOWN`]: callers get its remembered error at once
//!   ([`FetchSource::CoolingDown`]). A different credential for the same access key (a fixed
//!   secret) may try at once, but an unverified credential is tried by one call at a time per
//!   account (its *probe*), and after [`AUTH_FAILURES_PER_ACCOUNT`] failures in the window no
//!   untried credential is sent until the oldest failure ages out: it gets
//!   [`DcsError::AccessKeyCoolingDown`], which says so, never another credential's error. A
//!   credential that worked within [`VERIFIED_RETENTION`] is not what fails, and keeps being
//!   used. The memory is per endpoint (origin) and account, and in the process only.
//! - **Deadlines and cancellation.** A listing (all its pages, retries and waits) ends after
//!   [`FetchLimits::listing_deadline`] with a transient [`DcsError::Timeout`]. It runs as a task
//!   of its own: a caller that goes away (its feed lost its last subscriber) abandons it, and it
//!   stops at its next wait (for the probe, a slot or the budget) without sending anything more.
//!   A request already sent is let finish under the deadline, so that a 401 that reached the
//!   gateway is always counted. Every slot, probe lock and budget place is released when the
//!   listing's task ends, whatever ended it.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::sync::{Notify, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore, watch};

use super::budget::{DEFAULT_ACCOUNT_RATE_LIMIT, RequestBudget};
use crate::dcs::{
    AccountKey, DcsClient, DcsError, Endpoint, PageRequest, Paging, RequestGate, TaskListing,
};

/// How long a credential refused with 401 / `APIG.0301` is not sent again: the gateway's own
/// lock window (5 failures in 5 minutes lock the access key for 5 minutes).
pub use crate::dcs::AUTH_COOLDOWN;

/// Authentication failures of one account at one endpoint within [`AUTH_COOLDOWN`] after which
/// no credential that has not worked recently is tried for it there. Below the gateway's 5,
/// leaving room for the account owner's other clients, so that tenants naming someone's access
/// key with wrong secret keys cannot lock it.
pub const AUTH_FAILURES_PER_ACCOUNT: usize = 3;

/// How long a credential that worked stays known to work without another success: longer than
/// the longest poll interval (24 h), so that a credential polled daily never has to be
/// re-proven while another credential of its access key is cooling down.
pub const VERIFIED_RETENTION: Duration = Duration::from_secs(25 * 60 * 60);

/// Credentials of one access key remembered as working (the newest first): a key's owner
/// rarely has more than a current and a rotated secret in use.
const MAX_VERIFIED_PER_ACCOUNT: usize = 4;

/// The shortest deadline of one listing (all pages, retries and waits).
pub const LISTING_DEADLINE: Duration = Duration::from_secs(60);

/// Listings of one account at one endpoint in flight at once: enough for a feed that pages
/// while another polls, few enough that one account cannot hold the endpoint's connections.
pub const LISTINGS_PER_ACCOUNT: usize = 2;

/// Listings of one endpoint (origin) in flight at once, all accounts together: a bound on the
/// connections a hanging endpoint can hold, far above what a healthy one ever has in flight.
pub const LISTINGS_PER_ENDPOINT: usize = 64;

/// Failures remembered per account, at most (older ones are forgotten first).
const MAX_REMEMBERED_FAILURES: usize = 16;

/// The deadline of one listing for a per-request timeout: two full request timeouts (a timed-out
/// attempt and its retry), and never less than [`LISTING_DEADLINE`].
pub fn listing_deadline(request_timeout: Duration) -> Duration {
    LISTING_DEADLINE.max(request_timeout.saturating_mul(2))
}

/// Everything that makes two upstream calls interchangeable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestKey {
    pub endpoint: String,
    pub project_id: String,
    /// One-way fingerprint of the credential (see `Credentials::fingerprint`).
    pub credential: String,
    pub page: PageRequest,
    pub paging: Paging,
    /// The one object this key belongs to, in `--upstream-sharing=per-object` mode.
    pub owner: Option<String>,
}

/// One kind of upstream call the fetcher makes: what it asks, and for whom. Every call kind
/// goes through the same budgets, slots, auth memory, deadline and cancellation.
pub trait UpstreamCall: Send + Sync + 'static {
    /// What a successful call returns.
    type Reply: Send + Sync + 'static;

    /// One-way fingerprint of the credential the call is made with (the auth memory's key).
    fn credential(&self) -> &str;

    /// The endpoint, as shown in errors.
    fn endpoint(&self) -> &str;

    /// Makes the call with `client` (already gated by the fetcher).
    fn send(
        &self,
        client: &DcsClient,
    ) -> impl Future<Output = Result<Self::Reply, DcsError>> + Send;
}

impl UpstreamCall for RequestKey {
    type Reply = TaskListing;

    fn credential(&self) -> &str {
        &self.credential
    }

    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn send(
        &self,
        client: &DcsClient,
    ) -> impl Future<Output = Result<TaskListing, DcsError>> + Send {
        client.list_tasks(&self.page, self.paging)
    }
}

/// A finished call: a task listing unless said otherwise.
pub type FetchResult<T = TaskListing> = Result<Arc<T>, Arc<DcsError>>;

/// How a result was obtained, for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchSource {
    /// This caller made the upstream call.
    Upstream,
    /// The credential, or its account, is cooling down after authentication failures: an
    /// answer without a call.
    CoolingDown,
}

/// The fetcher's limits; [`FetchLimits::default`] holds the operator's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchLimits {
    /// HTTP requests per second across all accounts (`--rate-limit`).
    pub requests_per_second: NonZeroU32,
    /// HTTP requests per second per account (`--account-rate-limit`).
    pub account_requests_per_second: NonZeroU32,
    /// The most one listing may take, waits included (see [`listing_deadline`]).
    pub listing_deadline: Duration,
    /// Listings of one endpoint in flight at once, all accounts together (at least 1).
    pub listings_per_endpoint: usize,
    /// Listings of one account at one endpoint in flight at once (at least 1).
    pub listings_per_account: usize,
    /// How long a refused credential is not sent again.
    pub auth_cooldown: Duration,
}

impl Default for FetchLimits {
    fn default() -> Self {
        Self {
            requests_per_second: NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN),
            account_requests_per_second: DEFAULT_ACCOUNT_RATE_LIMIT,
            listing_deadline: LISTING_DEADLINE,
            listings_per_endpoint: LISTINGS_PER_ENDPOINT,
            listings_per_account: LISTINGS_PER_ACCOUNT,
            auth_cooldown: AUTH_COOLDOWN,
        }
    }
}

/// What the fetcher holds right now; all zero when nothing is being fetched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InFlight {
    /// Listings holding their account's and endpoint's slots.
    pub listings: usize,
    /// Unverified credentials being tried (each holds its account's probe lock).
    pub probes: usize,
    /// Requests waiting for their turn at the global budget.
    pub queued_requests: usize,
}

/// A call's outcome.
struct Finished<T> {
    result: FetchResult<T>,
    /// Answered from the auth cool-down, without a call.
    cooling_down: bool,
}

/// Budgeted, deadline-bound, cancel-safe fetching for every feed of a process.
pub struct SharedFetcher {
    budget: Arc<RequestBudget>,
    auth: AuthMemory,
    slots: Slots,
    limits: FetchLimits,
    upstream_calls: AtomicU64,
    listings_in_flight: AtomicUsize,
    probes_in_flight: AtomicUsize,
}

impl SharedFetcher {
    /// `requests_per_second` caps HTTP requests across all keys; the other limits are defaults.
    pub fn new(requests_per_second: NonZeroU32) -> Self {
        Self::with_limits(FetchLimits {
            requests_per_second,
            ..FetchLimits::default()
        })
    }

    pub fn with_limits(limits: FetchLimits) -> Self {
        Self {
            budget: Arc::new(RequestBudget::new(
                limits.requests_per_second,
                limits.account_requests_per_second,
            )),
            auth: AuthMemory {
                accounts: Mutex::new(HashMap::new()),
                cooldown: limits.auth_cooldown,
                retention: VERIFIED_RETENTION,
            },
            slots: Slots::default(),
            limits,
            upstream_calls: AtomicU64::new(0),
            listings_in_flight: AtomicUsize::new(0),
            probes_in_flight: AtomicUsize::new(0),
        }
    }

    /// Listings sent upstream so far (each may take several HTTP requests).
    pub fn upstream_calls(&self) -> u64 {
        self.upstream_calls.load(Ordering::Relaxed)
    }

    /// HTTP requests sent upstream so far: every page and every retry.
    pub fn http_requests(&self) -> u64 {
        self.budget.admitted()
    }

    /// What is held right now (the controller's gauges; all zero when idle).
    pub fn in_flight(&self) -> InFlight {
        InFlight {
            listings: self.listings_in_flight.load(Ordering::SeqCst),
            probes: self.probes_in_flight.load(Ordering::SeqCst),
            queued_requests: self.budget.queued(),
        }
    }

    /// The request budgets as a gate, for other upstream calls of the process (IAM project
    /// discovery) to wait on, so that they count against the same per-account limits and take
    /// the same turns at the global one.
    pub fn gate(&self) -> Arc<dyn RequestGate> {
        self.budget.clone()
    }

    /// The listing for `key`, made with `client`, or the remembered refusal of a credential (or
    /// the cool-down of its account) without a call.
    ///
    /// The listing runs as a task of its own. Dropping this future abandons it: it stops before
    /// its next request (a request on the wire finishes, so its outcome is recorded) and
    /// releases everything it holds.
    pub async fn fetch<C: UpstreamCall>(
        self: &Arc<Self>,
        key: C,
        client: DcsClient,
    ) -> (FetchResult<C::Reply>, FetchSource) {
        let scope = (origin(client.endpoint()), client.account());
        let label = client.credential_label();
        if let Admission::Refused(error) =
            self.auth
                .admission(&scope, key.credential(), &label, Instant::now())
        {
            return (Err(error), FetchSource::CoolingDown);
        }
        let endpoint = key.endpoint().to_string();
        // Dropped with this future: the listing sees it abandoned.
        let (_caller, abandoned) = watch::channel(());
        let listing = tokio::spawn(self.clone().listing(key, client, scope, abandoned));
        match listing.await {
            Ok(Some(finished)) if finished.cooling_down => {
                (finished.result, FetchSource::CoolingDown)
            }
            Ok(Some(finished)) => (finished.result, FetchSource::Upstream),
            // Abandoned while its caller is still here, or panicked: neither can happen, and
            // neither may take the caller down.
            Ok(None) | Err(_) => {
                let error = DcsError::Transport {
                    endpoint,
                    detail: "the listing ended without an answer".to_string(),
                };
                (Err(Arc::new(error)), FetchSource::Upstream)
            }
        }
    }

    /// One call under its deadline; `None` when abandoned.
    async fn listing<C: UpstreamCall>(
        self: Arc<Self>,
        key: C,
        client: DcsClient,
        scope: AuthScope,
        abandoned: watch::Receiver<()>,
    ) -> Option<Finished<C::Reply>> {
        let deadline = self.limits.listing_deadline;
        match tokio::time::timeout(
            deadline,
            self.admitted_listing(&key, client, &scope, abandoned),
        )
        .await
        {
            Ok(finished) => finished,
            Err(_) => Some(Finished {
                result: Err(Arc::new(DcsError::Timeout {
                    endpoint: key.endpoint().to_string(),
                    timeout: deadline,
                })),
                cooling_down: false,
            }),
        }
    }

    /// The listing once admitted by the auth cool-down, its account's and endpoint's slots, and
    /// the budgets; `None` when abandoned at one of those waits.
    async fn admitted_listing<C: UpstreamCall>(
        &self,
        key: &C,
        client: DcsClient,
        scope: &AuthScope,
        abandoned: watch::Receiver<()>,
    ) -> Option<Finished<C::Reply>> {
        let gone = until_abandoned(abandoned.clone());
        tokio::pin!(gone);
        let label = client.credential_label();
        let refused = |error| {
            Some(Finished {
                result: Err(error),
                cooling_down: true,
            })
        };
        // Held until the outcome is recorded, so the next caller with the same credential sees
        // it instead of repeating a refused call.
        let _probe = match self
            .auth
            .admission(scope, key.credential(), &label, Instant::now())
        {
            Admission::Refused(error) => return refused(error),
            Admission::Go => None,
            Admission::Probe(probe) => {
                let held = tokio::select! {
                    held = probe.lock_owned() => held,
                    () = &mut gone => return None,
                };
                match self
                    .auth
                    .admission(scope, key.credential(), &label, Instant::now())
                {
                    Admission::Refused(error) => return refused(error),
                    Admission::Go => None,
                    Admission::Probe(_) => Some(Probing {
                        _lock: held,
                        _counted: Counted::new(&self.probes_in_flight),
                    }),
                }
            }
        };
        let account_slots = self
            .slots
            .of_account(scope, self.limits.listings_per_account);
        let _account_slot: Option<OwnedSemaphorePermit> = tokio::select! {
            slot = account_slots.acquire_owned() => slot.ok(),
            () = &mut gone => return None,
        };
        let endpoint_slots = self
            .slots
            .of_endpoint(&scope.0, self.limits.listings_per_endpoint);
        let _endpoint_slot: Option<OwnedSemaphorePermit> = tokio::select! {
            slot = endpoint_slots.acquire_owned() => slot.ok(),
            () = &mut gone => return None,
        };
        let _listing = Counted::new(&self.listings_in_flight);
        self.upstream_calls.fetch_add(1, Ordering::Relaxed);
        let gate = Arc::new(ListingGate {
            budget: self.budget.clone(),
            abandoned,
            parked: Notify::new(),
        });
        let client = client.with_gate(gate.clone());
        let result = tokio::select! {
            biased;
            result = key.send(&client) => result,
            // Abandoned, and about to send another request: nobody wants the rest.
            () = gate.parked.notified() => return None,
        };
        let result = result.map(Arc::new).map_err(Arc::new);
        self.auth
            .record(scope, key.credential(), &result, Instant::now());
        Some(Finished {
            result,
            cooling_down: false,
        })
    }
}

/// Resolves once the caller of a listing is gone.
async fn until_abandoned(mut abandoned: watch::Receiver<()>) {
    // Nothing is ever sent: the only change is the sender going away.
    while abandoned.changed().await.is_ok() {}
}

/// The gate of one listing: the process's budgets, unless the listing is abandoned, in which
/// case no further request is admitted and the listing is told to stop ([`ListingGate::parked`]).
struct ListingGate {
    budget: Arc<RequestBudget>,
    abandoned: watch::Receiver<()>,
    /// Notified when an abandoned listing asks to send another request.
    parked: Notify,
}

impl RequestGate for ListingGate {
    fn admit<'a>(&'a self, account: &'a AccountKey) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            tokio::select! {
                biased;
                () = until_abandoned(self.abandoned.clone()) => {
                    self.parked.notify_one();
                    std::future::pending::<()>().await;
                }
                () = self.budget.admit(account) => {}
            }
        })
    }
}

/// Counts itself in a gauge while it lives.
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn new(gauge: &'a AtomicUsize) -> Self {
        gauge.fetch_add(1, Ordering::SeqCst);
        Self(gauge)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An unverified credential's call: its account's probe lock, counted.
struct Probing<'a> {
    _lock: OwnedMutexGuard<()>,
    _counted: Counted<'a>,
}

/// Listing slots per account at an endpoint, and per endpoint; a semaphore nobody holds or
/// awaits is dropped.
#[derive(Default)]
struct Slots {
    accounts: Mutex<HashMap<AuthScope, Arc<Semaphore>>>,
    endpoints: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Slots {
    fn of_account(&self, scope: &AuthScope, permits: usize) -> Arc<Semaphore> {
        slots_in(&mut lock(&self.accounts), scope, permits)
    }

    fn of_endpoint(&self, origin: &str, permits: usize) -> Arc<Semaphore> {
        slots_in(&mut lock(&self.endpoints), &origin.to_string(), permits)
    }
}

fn slots_in<K: Clone + Eq + std::hash::Hash>(
    map: &mut HashMap<K, Arc<Semaphore>>,
    key: &K,
    permits: usize,
) -> Arc<Semaphore> {
    // Only the map holds it: no listing holds or awaits one of its slots.
    map.retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
    map.entry(key.clone())
        .or_insert_with(|| Arc::new(Semaphore::new(permits.clamp(1, Semaphore::MAX_PERMITS))))
        .clone()
}

/// `scheme://host:port` of an endpoint: what slots and auth memory are kept per.
fn origin(endpoint: &Endpoint) -> String {
    endpoint.url().origin().ascii_serialization()
}

/// A lock whose data stays usable even if a holder panicked: every critical section here leaves
/// the maps consistent, so a poisoned lock must not take the fetcher down with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the cool-down allows for one credential of one account.
enum Admission {
    /// The credential worked recently: call.
    Go,
    /// Not known to work: call while holding the account's probe lock, one such call at a time.
    Probe(Arc<tokio::sync::Mutex<()>>),
    /// Cooling down: this answer instead of a call (the credential's own refusal, or the
    /// account's cool-down).
    Refused(Arc<DcsError>),
}

/// One authentication failure.
struct AuthFailure {
    fingerprint: String,
    at: Instant,
    error: Arc<DcsError>,
}

/// What the gateway said lately about one account's credentials.
#[derive(Default)]
struct AccountAuth {
    /// Within the cool-down, oldest first.
    failures: VecDeque<AuthFailure>,
    /// Credentials that worked, and when they last did; newest first.
    verified: VecDeque<(String, Instant)>,
    /// Serializes calls with credentials not known to work.
    probe: Arc<tokio::sync::Mutex<()>>,
}

/// Which gateway refused or accepted which account: endpoint origin and account.
type AuthScope = (String, AccountKey);

/// Authentication outcomes per endpoint and account (access key), in memory only.
struct AuthMemory {
    accounts: Mutex<HashMap<AuthScope, AccountAuth>>,
    cooldown: Duration,
    /// How long a credential that worked stays known to work without another success.
    retention: Duration,
}

impl AuthMemory {
    /// What `fingerprint` (shown to users as `label`) may do now.
    fn admission(
        &self,
        scope: &AuthScope,
        fingerprint: &str,
        label: &str,
        now: Instant,
    ) -> Admission {
        let mut accounts = lock(&self.accounts);
        accounts.retain(|_, auth| {
            auth.failures
                .retain(|failure| now.saturating_duration_since(failure.at) < self.cooldown);
            auth.verified
                .retain(|(_, at)| now.saturating_duration_since(*at) < self.retention);
            !auth.failures.is_empty()
                || !auth.verified.is_empty()
                || Arc::strong_count(&auth.probe) > 1
        });
        let auth = accounts.entry(scope.clone()).or_default();
        if let Some(failure) = auth
            .failures
            .iter()
            .rev()
            .find(|failure| failure.fingerprint == fingerprint)
        {
            return Admission::Refused(failure.error.clone());
        }
        if auth
            .verified
            .iter()
            .any(|(verified, _)| verified == fingerprint)
        {
            return Admission::Go;
        }
        if auth.failures.len() >= AUTH_FAILURES_PER_ACCOUNT {
            // Not this credential's failures: say what is true, never another's error.
            return Admission::Refused(Arc::new(DcsError::AccessKeyCoolingDown {
                endpoint: scope.0.clone(),
                access_key: label.to_string(),
                failures: auth.failures.len(),
            }));
        }
        Admission::Probe(auth.probe.clone())
    }

    fn record<T>(
        &self,
        scope: &AuthScope,
        fingerprint: &str,
        result: &FetchResult<T>,
        now: Instant,
    ) {
        let mut accounts = lock(&self.accounts);
        let auth = accounts.entry(scope.clone()).or_default();
        match result {
            Ok(_) => {
                auth.verified
                    .retain(|(verified, _)| verified != fingerprint);
                auth.verified.push_front((fingerprint.to_string(), now));
                auth.verified.truncate(MAX_VERIFIED_PER_ACCOUNT);
            }
            Err(error) if error.is_auth_failure() => {
                auth.verified
                    .retain(|(verified, _)| verified != fingerprint);
                auth.failures.push_back(AuthFailure {
                    fingerprint: fingerprint.to_string(),
                    at: now,
                    error: error.clone(),
                });
                while auth.failures.len() > MAX_REMEMBERED_FAILURES {
                    auth.failures.pop_front();
                }
            }
            // Anything else says nothing about the credential.
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dcs::{Credentials, EndpointPolicy, HttpClient, HttpSettings};
    use crate::sim;
    use futures::FutureExt;
    use serde_json::{Value, json};

    async fn simulator() -> (sim::RunningSimulator, DcsClient) {
        let running = sim::serve_on_loopback(sim::Scenario::default_demo())
            .await
            .unwrap();
        let client = DcsClient::new(
            HttpClient::new(HttpSettings::default()).unwrap(),
            running.endpoint(),
            sim::DEMO_PROJECT_ID,
            sim::demo_credentials().credentials,
        );
        (running, client)
    }

    fn key(credential: &str) -> RequestKey {
        RequestKey {
            endpoint: "e".into(),
            project_id: sim::DEMO_PROJECT_ID.into(),
            credential: credential.into(),
            page: PageRequest {
                limit: Some(1000),
                ..PageRequest::default()
            },
            paging: Paging::All { max_pages: 10 },
            owner: None,
        }
    }

    #[tokio::test]
    async fn every_fetch_is_its_own_call_and_results_are_not_kept() {
        let (_sim, client) = simulator().await;
        let fetcher = Arc::new(SharedFetcher::new(NonZeroU32::new(100).unwrap()));
        let calls: Vec<_> = (0..5)
            .map(|_| fetcher.fetch(key("a"), client.clone()))
            .collect();
        let results = futures::future::join_all(calls).await;
        assert!(
            results
                .iter()
                .all(|(r, s)| r.is_ok() && *s == FetchSource::Upstream)
        );
        assert_eq!(fetcher.upstream_calls(), 5);
        assert_eq!(fetcher.in_flight(), InFlight::default());
    }

    #[tokio::test]
    async fn the_rate_limit_spaces_calls() {
        let (_sim, client) = simulator().await;
        let fetcher = Arc::new(SharedFetcher::new(NonZeroU32::new(2).unwrap()));
        let started = Instant::now();
        for i in 0..4 {
            let (result, _) = fetcher.fetch(key(&i.to_string()), client.clone()).await;
            assert!(result.is_ok());
        }
        // Burst of 2, then 2 per second: the 4th call cannot start before ~1 s.
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(fetcher.upstream_calls(), 4);
    }

    /// Limits that stay out of the way unless a test tightens one.
    fn roomy() -> FetchLimits {
        FetchLimits {
            requests_per_second: NonZeroU32::new(1000).unwrap(),
            account_requests_per_second: NonZeroU32::new(1000).unwrap(),
            listing_deadline: Duration::from_secs(20),
            listings_per_endpoint: 16,
            listings_per_account: 16,
            auth_cooldown: AUTH_COOLDOWN,
        }
    }

    fn client_with(endpoint: Endpoint, credentials: Credentials) -> DcsClient {
        DcsClient::new(
            HttpClient::new(HttpSettings::default()).unwrap(),
            endpoint,
            sim::DEMO_PROJECT_ID,
            credentials,
        )
    }

    /// The request key a reconcile would build for `client`'s endpoint and `credentials`.
    fn key_with(endpoint: &Endpoint, credentials: &Credentials, limit: u32) -> RequestKey {
        RequestKey {
            endpoint: endpoint.to_string(),
            project_id: sim::DEMO_PROJECT_ID.into(),
            credential: credentials.fingerprint(),
            page: PageRequest {
                limit: Some(limit),
                ..PageRequest::default()
            },
            paging: Paging::All { max_pages: 10 },
            owner: None,
        }
    }

    async fn admin(
        running: &sim::RunningSimulator,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        // reqwest is built without a default TLS provider; plain http still needs one installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut request =
            reqwest::Client::new().request(method, format!("{}{path}", running.base_url()));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap().json().await.unwrap()
    }

    async fn stats(running: &sim::RunningSimulator) -> Value {
        admin(running, reqwest::Method::GET, "/_sim/stats", None).await
    }

    /// A simulator with two accounts (`ACCOUNTONE`/`one-sk`, `ACCOUNTTWO`/`two-sk`) and `tasks`
    /// tasks, one a minute.
    async fn two_accounts(tasks: usize) -> sim::RunningSimulator {
        let scenario = sim::Scenario::from_yaml(&format!(
            r#"
credentials:
  - {{accessKey: ACCOUNTONE, secretKey: one-sk}}
  - {{accessKey: ACCOUNTTWO, secretKey: two-sk}}
generate:
  - {{count: {tasks}, name: EXTEND, firstCreatedAt: "-2h", every: 1m}}
"#
        ))
        .unwrap();
        sim::serve_on_loopback(scenario).await.unwrap()
    }

    /// A simulator whose every task-list request hangs for 30 s (longer than the test lasts).
    async fn hanging_simulator() -> sim::RunningSimulator {
        let running = sim::serve_on_loopback(sim::Scenario::default_demo())
            .await
            .unwrap();
        admin(
            &running,
            reqwest::Method::POST,
            "/_sim/faults",
            Some(json!({"count": 1000, "latency": "30s"})),
        )
        .await;
        running
    }

    /// Five pages cost five requests of the global budget: at 2 per second (a burst of 2) the
    /// fifth cannot go before 1.5 s. Counting listings, it took one token and no time.
    #[tokio::test]
    async fn the_rate_limit_counts_every_page_not_every_listing() {
        let (running, client) = simulator().await;
        let fetcher = Arc::new(SharedFetcher::with_limits(FetchLimits {
            requests_per_second: NonZeroU32::new(2).unwrap(),
            ..roomy()
        }));
        let credentials = sim::demo_credentials().credentials;
        let started = Instant::now();
        let (result, source) = fetcher
            .fetch(key_with(&running.endpoint(), &credentials, 1), client)
            .await;
        let elapsed = started.elapsed();
        assert_eq!(source, FetchSource::Upstream);
        assert_eq!(result.unwrap().pages, 5);
        assert_eq!((fetcher.upstream_calls(), fetcher.http_requests()), (1, 5));
        assert!(elapsed >= Duration::from_millis(1200), "{elapsed:?}");
    }

    /// An account past its own budget waits, while another account's listing goes at once:
    /// five pages of account ONE at 2 requests per second take 1.5 s; account TWO's single page
    /// started at the same moment does not queue behind them.
    #[tokio::test]
    async fn each_account_spends_its_own_budget() {
        let running = two_accounts(5).await;
        let endpoint = running.endpoint();
        let fetcher = Arc::new(SharedFetcher::with_limits(FetchLimits {
            account_requests_per_second: NonZeroU32::new(2).unwrap(),
            ..roomy()
        }));
        let (one, two) = (
            Credentials::ak_sk("ACCOUNTONE", "one-sk"),
            Credentials::ak_sk("ACCOUNTTWO", "two-sk"),
        );
        let timed = |credentials: Credentials, limit: u32| {
            let fetcher = fetcher.clone();
            let key = key_with(&endpoint, &credentials, limit);
            let client = client_with(endpoint.clone(), credentials);
            async move {
                let started = Instant::now();
                let (result, _) = fetcher.fetch(key, client).await;
                (result.unwrap().pages, started.elapsed())
            }
        };
        let ((one_pages, one_took), (two_pages, two_took)) =
            futures::join!(timed(one, 1), timed(two, 1000));
        assert_eq!((one_pages, two_pages), (5, 1));
        assert!(one_took >= Duration::from_millis(1200), "{one_took:?}");
        assert!(two_took < Duration::from_millis(900), "{two_took:?}");
        assert_eq!(fetcher.http_requests(), 6);
    }

    /// Five objects with different page parameters share one wrong secret key: one 401 call,
    /// and four remembered refusals (today's behaviour was five calls, one AK lock closer each).
    /// A fixed secret key for the same AK calls at once; the wrong one stays cooled down.
    #[tokio::test]
    async fn an_auth_failure_cools_the_access_key_down_across_request_keys() {
        let (running, _) = simulator().await;
        let endpoint = running.endpoint();
        let fetcher = Arc::new(SharedFetcher::with_limits(roomy()));
        let wrong = Credentials::ak_sk(sim::DEMO_ACCESS_KEY, "wrong-secret");
        let calls: Vec<_> = (1..=5)
            .map(|limit| {
                fetcher.fetch(
                    key_with(&endpoint, &wrong, limit),
                    client_with(endpoint.clone(), wrong.clone()),
                )
            })
            .collect();
        let results = futures::future::join_all(calls).await;
        for (result, _) in &results {
            assert!(result.as_ref().unwrap_err().is_auth_failure(), "{result:?}");
        }
        let sources: Vec<_> = results.iter().map(|(_, source)| *source).collect();
        assert_eq!(
            sources
                .iter()
                .filter(|s| **s == FetchSource::Upstream)
                .count(),
            1,
            "{sources:?}"
        );
        assert_eq!(
            sources
                .iter()
                .filter(|s| **s == FetchSource::CoolingDown)
                .count(),
            4,
            "{sources:?}"
        );
        let counted = stats(&running).await;
        assert_eq!(counted["total"], 1, "{counted}");
        assert_eq!(counted["projects"][sim::DEMO_PROJECT_ID]["unauthorized"], 1);

        // The Secret is fixed: a different credential for the same AK is tried at once.
        let fixed = sim::demo_credentials().credentials;
        let (result, source) = fetcher
            .fetch(
                key_with(&endpoint, &fixed, 1000),
                client_with(endpoint.clone(), fixed.clone()),
            )
            .await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(source, FetchSource::Upstream);
        // The wrong one is still refused without a call, under a new request key too.
        let (result, source) = fetcher
            .fetch(
                key_with(&endpoint, &wrong, 77),
                client_with(endpoint.clone(), wrong.clone()),
            )
            .await;
        assert!(result.unwrap_err().is_auth_failure());
        assert_eq!(source, FetchSource::CoolingDown);
        assert_eq!(stats(&running).await["total"], 2);
    }

    /// Tenants naming one access key with ever new wrong secret keys get at most
    /// AUTH_FAILURES_PER_ACCOUNT refused calls per window (the gateway locks at 5); the
    /// credential that works goes on working; after the cool-down a refused one may try again.
    #[tokio::test]
    async fn wrong_secret_keys_cannot_lock_the_access_key_and_the_cool_down_ends() {
        let (running, _) = simulator().await;
        let endpoint = running.endpoint();
        let cooldown = Duration::from_secs(2);
        let fetcher = Arc::new(SharedFetcher::with_limits(FetchLimits {
            auth_cooldown: cooldown,
            ..roomy()
        }));
        let fetch = |credentials: Credentials, limit: u32| {
            fetcher.fetch(
                key_with(&endpoint, &credentials, limit),
                client_with(endpoint.clone(), credentials),
            )
        };
        let good = sim::demo_credentials().credentials;
        let wrong = |n: u32| Credentials::ak_sk(sim::DEMO_ACCESS_KEY, format!("wrong-{n}"));
        assert!(fetch(good.clone(), 1000).await.0.is_ok());
        let started = Instant::now();
        let mut sources = Vec::new();
        for n in 0..6 {
            let (result, source) = fetch(wrong(n), 1000).await;
            let error = result.unwrap_err();
            if n < 3 {
                assert!(error.is_auth_failure(), "{error}");
            } else {
                // Not tried, and not told another credential's refusal.
                assert!(
                    matches!(*error, DcsError::AccessKeyCoolingDown { failures: 3, .. }),
                    "{error:?}"
                );
            }
            sources.push(source);
        }
        assert!(
            started.elapsed() < cooldown,
            "the test machine is too slow for this test"
        );
        let upstream = sources
            .iter()
            .filter(|s| **s == FetchSource::Upstream)
            .count();
        assert_eq!(upstream, AUTH_FAILURES_PER_ACCOUNT, "{sources:?}");
        assert_eq!(
            stats(&running).await["projects"][sim::DEMO_PROJECT_ID]["unauthorized"],
            AUTH_FAILURES_PER_ACCOUNT
        );
        // The credential that worked is not what fails: it is still used.
        let (result, source) = fetch(good, 10).await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(source, FetchSource::Upstream);

        tokio::time::sleep(cooldown + Duration::from_millis(300)).await;
        let (result, source) = fetch(wrong(0), 1000).await;
        assert!(result.unwrap_err().is_auth_failure());
        assert_eq!(source, FetchSource::Upstream);
        assert_eq!(
            stats(&running).await["projects"][sim::DEMO_PROJECT_ID]["unauthorized"],
            AUTH_FAILURES_PER_ACCOUNT + 1
        );
    }

    /// A tenant who knows another tenant's access key spends the key's failure budget with wrong
    /// secret keys. The owner's correct credential, not yet verified (a restart), is then held
    /// back, but told the truth: its access key is cooling down after *another* secret's failures,
    /// without the attacker's error and without the secret; once the budget frees up it is tried
    /// and works. Before, it got the attacker's 401 and showed `AuthenticationFailed`.
    #[tokio::test]
    async fn an_untried_credential_is_told_its_key_is_cooling_down_not_another_credentials_error() {
        let (running, _) = simulator().await;
        let endpoint = running.endpoint();
        let cooldown = Duration::from_secs(2);
        let fetcher = Arc::new(SharedFetcher::with_limits(FetchLimits {
            auth_cooldown: cooldown,
            ..roomy()
        }));
        let fetch = |credentials: Credentials| {
            fetcher.fetch(
                key_with(&endpoint, &credentials, 1000),
                client_with(endpoint.clone(), credentials),
            )
        };
        for n in 0..AUTH_FAILURES_PER_ACCOUNT {
            let wrong = Credentials::ak_sk(sim::DEMO_ACCESS_KEY, format!("attacker-{n}"));
            assert!(fetch(wrong).await.0.unwrap_err().is_auth_failure());
        }
        let owner = sim::demo_credentials().credentials;
        let (result, source) = fetch(owner.clone()).await;
        let error = result.unwrap_err();
        assert_eq!(source, FetchSource::CoolingDown);
        assert!(!error.is_auth_failure(), "{error}");
        assert_eq!(error.class(), crate::dcs::FailureClass::Transient);
        let message = error.to_string();
        assert!(message.contains(&owner.public_label()), "{message}");
        assert!(message.contains("different secret key"), "{message}");
        assert!(!message.contains("attacker"), "{message}");
        assert!(!message.contains(sim::DEMO_ACCESS_KEY), "{message}");
        tokio::time::sleep(cooldown + Duration::from_millis(300)).await;
        let (result, source) = fetch(owner).await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(source, FetchSource::Upstream);
    }

    /// A credential that worked keeps serving through another credential's cool-down for as long
    /// as [`VERIFIED_RETENTION`], past the longest poll interval; before, it was forgotten after
    /// 10 minutes and a daily poll met the attacker's budget like an untried credential.
    #[test]
    fn a_credential_that_worked_is_remembered_past_the_longest_interval() {
        let memory = AuthMemory {
            accounts: Mutex::new(HashMap::new()),
            cooldown: AUTH_COOLDOWN,
            retention: VERIFIED_RETENTION,
        };
        let scope: AuthScope = ("https://dcs.example".into(), account("OWNER"));
        let start = Instant::now();
        let listing: FetchResult = Ok(Arc::new(TaskListing::default()));
        memory.record(&scope, "owner", &listing, start);
        let refused = failed_with(401);
        let day = start + Duration::from_secs(24 * 60 * 60);
        for n in 0..AUTH_FAILURES_PER_ACCOUNT {
            memory.record(&scope, &format!("attacker-{n}"), &refused, day);
        }
        assert!(matches!(
            memory.admission(&scope, "owner", "AK OWNE…", day),
            Admission::Go
        ));
        assert!(matches!(
            memory.admission(&scope, "someone-new", "AK OWNE…", day),
            Admission::Refused(error) if matches!(*error, DcsError::AccessKeyCoolingDown { .. })
        ));
        // Past the retention it has to be proven again, like any untried credential.
        let later = start + VERIFIED_RETENTION + Duration::from_secs(1);
        memory.record(&scope, "attacker-late", &refused, later);
        for n in 0..AUTH_FAILURES_PER_ACCOUNT {
            memory.record(&scope, &format!("attacker-late-{n}"), &refused, later);
        }
        assert!(matches!(
            memory.admission(&scope, "owner", "AK OWNE…", later),
            Admission::Refused(_)
        ));
    }

    /// A failure is remembered for exactly the cool-down, and a success for exactly the
    /// retention: at the boundary it is gone.
    #[test]
    fn the_auth_memory_forgets_at_its_boundaries() {
        let cooldown = Duration::from_secs(300);
        let memory = AuthMemory {
            accounts: Mutex::new(HashMap::new()),
            cooldown,
            retention: VERIFIED_RETENTION,
        };
        let scope: AuthScope = ("https://dcs.example".into(), account("OWNER"));
        let start = Instant::now();
        let refused = failed_with(401);
        memory.record(&scope, "wrong", &refused, start);
        let admitted =
            |fingerprint: &str, at: Instant| memory.admission(&scope, fingerprint, "AK", at);
        assert!(matches!(
            admitted("wrong", start + cooldown - Duration::from_millis(1)),
            Admission::Refused(_)
        ));
        assert!(matches!(
            admitted("wrong", start + cooldown),
            Admission::Probe(_)
        ));
        let listing: FetchResult = Ok(Arc::new(TaskListing::default()));
        memory.record(&scope, "right", &listing, start);
        assert!(matches!(
            admitted(
                "right",
                start + VERIFIED_RETENTION - Duration::from_millis(1)
            ),
            Admission::Go
        ));
        assert!(matches!(
            admitted("right", start + VERIFIED_RETENTION),
            Admission::Probe(_)
        ));
        // A failure that is not about the credential (a 503) says nothing about it.
        let unavailable = failed_with(503);
        memory.record(&scope, "unlucky", &unavailable, start);
        assert!(matches!(admitted("unlucky", start), Admission::Probe(_)));
        // Several credentials of one key may work at once (a rotation in progress).
        memory.record(&scope, "rotated", &listing, start);
        memory.record(&scope, "right", &listing, start);
        assert!(matches!(admitted("rotated", start), Admission::Go));
        assert!(matches!(admitted("right", start), Admission::Go));
        // At most MAX_REMEMBERED_FAILURES failures are kept, the newest.
        for n in 0..MAX_REMEMBERED_FAILURES + 4 {
            memory.record(&scope, &format!("f{n}"), &refused, start);
        }
        let own_refusal = |fingerprint: &str| match admitted(fingerprint, start) {
            Admission::Refused(error) => error.is_auth_failure(),
            _ => false,
        };
        assert!(
            own_refusal("f4"),
            "the 16th newest failure is remembered as its own"
        );
        assert!(!own_refusal("f3"), "the 17th newest is forgotten");
        // An account with nothing left to remember is forgotten.
        let other: AuthScope = ("https://dcs.example".into(), account("OTHER"));
        let later = start + VERIFIED_RETENTION + cooldown;
        let _ = memory.admission(&other, "any", "AK", later);
        assert_eq!(lock(&memory.accounts).len(), 1);
    }

    #[test]
    fn a_listing_deadline_covers_a_timed_out_attempt_and_its_retry() {
        assert_eq!(listing_deadline(Duration::from_secs(10)), LISTING_DEADLINE);
        assert_eq!(
            listing_deadline(Duration::from_secs(45)),
            Duration::from_secs(90)
        );
    }

    /// An upstream error answer with `http_status` (401 is an authentication failure).
    fn failed_with(http_status: u16) -> FetchResult {
        Err(Arc::new(DcsError::Api {
            endpoint: "e".into(),
            error: crate::dcs::ApiError {
                http_status,
                error_code: None,
                error_msg: None,
                request_id: None,
                retry_after: None,
                iam_action: crate::dcs::IamAction::ListTasks,
            },
        }))
    }

    fn account(access_key: &str) -> AccountKey {
        client_with(
            EndpointPolicy::default()
                .resolve("cn-north-4", None)
                .unwrap(),
            Credentials::ak_sk(access_key, "sk"),
        )
        .account()
    }

    /// A feed deleted mid-poll drops its fetch. Before, the abandoned call kept one of the
    /// endpoint's listing slots and the account's probe lock for ever (nobody polled it again),
    /// and four such deletions left the endpoint `EndpointBusy` for every tenant. Now the
    /// listing finishes the request it has on the wire (its 401 is counted) and then releases
    /// everything; a listing abandoned while it waits releases at once. Many times over, on a
    /// slow upstream, the gauges come back to zero and another account is served at once.
    #[tokio::test]
    async fn abandoned_listings_release_every_slot_probe_and_place_in_line() {
        let (slow, _) = simulator().await;
        admin(
            &slow,
            reqwest::Method::POST,
            "/_sim/faults",
            Some(json!({"count": 1000, "latency": "700ms"})),
        )
        .await;
        let endpoint = slow.endpoint();
        let fetcher = Arc::new(SharedFetcher::with_limits(FetchLimits {
            listings_per_endpoint: 4,
            listings_per_account: 2,
            ..roomy()
        }));
        for round in 0..6u32 {
            // Unverified credentials of one account: one probes, the others wait for it.
            let abandoned: Vec<_> = (0..6u32)
                .map(|n| {
                    let credentials = Credentials::ak_sk("TENANTA", format!("sk-{round}-{n}"));
                    let fetch = fetcher.fetch(
                        key_with(&endpoint, &credentials, 1000 - n),
                        client_with(endpoint.clone(), credentials),
                    );
                    tokio::time::timeout(Duration::from_millis(100), fetch)
                })
                .collect();
            for outcome in futures::future::join_all(abandoned).await {
                assert!(outcome.is_err(), "the slow upstream answered within 100 ms");
            }
            // One probe is on the wire (it finishes, so its outcome counts); the others waited
            // for it and are gone.
            let held = fetcher.in_flight();
            if round == 0 {
                assert_eq!((held.listings, held.probes), (1, 1), "{held:?}");
            }
            assert!(held.probes <= 1 && held.listings <= 1, "{held:?}");
        }
        // Another account's object, in another namespace, is served without waiting for them.
        let other = sim::demo_credentials().credentials;
        let started = Instant::now();
        let (result, _) = fetcher
            .fetch(
                key_with(&endpoint, &other, 1000),
                client_with(endpoint.clone(), other),
            )
            .await;
        assert!(result.is_ok(), "{result:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        let quiet = async {
            while fetcher.in_flight() != InFlight::default() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), quiet)
            .await
            .unwrap_or_else(|_| panic!("still held: {:?}", fetcher.in_flight()));
    }

    /// A 401 whose caller went away while the request was on the wire still counts against the
    /// access key: the gateway saw it. Before, aborting the poll between sending and recording
    /// lost it, and a tenant could spend the gateway's 5 failures unseen.
    #[tokio::test]
    async fn a_refusal_whose_caller_left_is_still_counted() {
        let (running, _) = simulator().await;
        admin(
            &running,
            reqwest::Method::POST,
            "/_sim/faults",
            Some(json!({"count": 1, "latency": "500ms", "status": 401,
                "body": {"error_code": "APIG.0301", "error_msg": "refused"}})),
        )
        .await;
        let endpoint = running.endpoint();
        let fetcher = Arc::new(SharedFetcher::with_limits(roomy()));
        let credentials = sim::demo_credentials().credentials;
        let fetch = || {
            fetcher.fetch(
                key_with(&endpoint, &credentials, 1000),
                client_with(endpoint.clone(), credentials.clone()),
            )
        };
        let abandoned = tokio::time::timeout(Duration::from_millis(100), fetch()).await;
        assert!(abandoned.is_err());
        tokio::time::sleep(Duration::from_millis(900)).await;
        let (result, source) = fetch().await;
        assert!(result.unwrap_err().is_auth_failure());
        assert_eq!(source, FetchSource::CoolingDown, "the 401 was not recorded");
        assert_eq!(stats(&running).await["total"], 1);
    }

    /// One account saturating its budget with multi-page listings (`limit: 1`, 100 pages each)
    /// does not delay another account: the second account's first answer comes at once. Before,
    /// the first account's listings held the endpoint's 4 slots while waiting on their own
    /// account's budget, and the second account got `EndpointBusy` after 2 s.
    #[tokio::test]
    async fn one_account_saturating_does_not_delay_another() {
        let running = two_accounts(100).await;
        let endpoint = running.endpoint();
        let fetcher = Arc::new(SharedFetcher::with_limits(FetchLimits::default()));
        let busy = Credentials::ak_sk("ACCOUNTONE", "one-sk");
        let saturating: Vec<_> = (0..6u32)
            .map(|n| {
                let fetcher = fetcher.clone();
                let mut key = key_with(&endpoint, &busy, 1);
                key.page.offset = n;
                key.paging = Paging::All { max_pages: 100 };
                let client = client_with(endpoint.clone(), busy.clone());
                tokio::spawn(async move { fetcher.fetch(key, client).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let quiet = Credentials::ak_sk("ACCOUNTTWO", "two-sk");
        let started = Instant::now();
        let (result, _) = fetcher
            .fetch(
                key_with(&endpoint, &quiet, 1000),
                client_with(endpoint.clone(), quiet),
            )
            .await;
        let took = started.elapsed();
        eprintln!("measured: the quiet account's first answer took {took:?}");
        assert!(result.is_ok(), "{result:?}");
        // Its interval is at least 2 s; a turn of the global budget is 0.1 s at the default 10/s.
        assert!(took < Duration::from_secs(1), "{took:?}");
        for listing in saturating {
            listing.abort();
        }
    }

    /// An allowed endpoint that refuses everything (hostile or broken) cools the credential down
    /// for itself only: the same credential goes on working against the real endpoint.
    #[tokio::test]
    async fn a_refusing_endpoint_cools_the_credential_down_there_only() {
        let (healthy, _) = simulator().await;
        let (refusing, _) = simulator().await;
        admin(
            &refusing,
            reqwest::Method::POST,
            "/_sim/faults",
            Some(json!({"count": 100, "status": 401,
                "body": {"error_code": "APIG.0301", "error_msg": "refused"}})),
        )
        .await;
        let fetcher = Arc::new(SharedFetcher::with_limits(roomy()));
        let credentials = sim::demo_credentials().credentials;
        let fetch = |endpoint: Endpoint, limit: u32| {
            fetcher.fetch(
                key_with(&endpoint, &credentials, limit),
                client_with(endpoint, credentials.clone()),
            )
        };
        let (result, source) = fetch(refusing.endpoint(), 1).await;
        assert!(result.unwrap_err().is_auth_failure());
        assert_eq!(source, FetchSource::Upstream);
        let (result, source) = fetch(refusing.endpoint(), 2).await;
        assert!(result.unwrap_err().is_auth_failure());
        assert_eq!(source, FetchSource::CoolingDown);
        let (result, source) = fetch(healthy.endpoint(), 1).await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(source, FetchSource::Upstream);
        assert_eq!(stats(&refusing).await["total"], 1);
    }

    /// A listing against an upstream that never answers ends at its deadline with a transient
    /// timeout, not after the HTTP timeout (30 s) times every retry.
    #[tokio::test]
    async fn a_hanging_endpoint_ends_at_the_listing_deadline() {
        let hanging = hanging_simulator().await;
        let credentials = sim::demo_credentials().credentials;
        let fetcher = Arc::new(SharedFetcher::with_limits(FetchLimits {
            listing_deadline: Duration::from_secs(1),
            ..roomy()
        }));
        let started = Instant::now();
        let fetch = fetcher.fetch(
            key_with(&hanging.endpoint(), &credentials, 1000),
            client_with(hanging.endpoint(), credentials.clone()),
        );
        let (result, _) = tokio::time::timeout(Duration::from_secs(20), fetch)
            .await
            .expect("the listing outlived its deadline by far");
        let error = result.unwrap_err();
        assert!(
            matches!(*error, DcsError::Timeout { timeout, .. } if timeout == Duration::from_secs(1)),
            "{error:?}"
        );
        assert_eq!(error.class(), crate::dcs::FailureClass::Transient);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }

    /// Reconciles run in a few slots (kube-runtime's concurrency). Three objects on a hanging
    /// endpoint take all three slots first; an object on a healthy endpoint still gets its
    /// answer within a few listing deadlines, not after the hanging requests' timeouts.
    #[tokio::test]
    async fn a_hanging_endpoint_does_not_starve_another_endpoint() {
        let hanging = hanging_simulator().await;
        let (healthy, _) = simulator().await;
        let credentials = sim::demo_credentials().credentials;
        let deadline = Duration::from_secs(1);
        let fetcher = Arc::new(SharedFetcher::with_limits(FetchLimits {
            listing_deadline: deadline,
            listings_per_endpoint: 2,
            ..roomy()
        }));
        let slots = Arc::new(Semaphore::new(3));
        let reconcile = |endpoint: Endpoint, limit: u32| {
            let (fetcher, slots, credentials) =
                (fetcher.clone(), slots.clone(), credentials.clone());
            async move {
                let started = Instant::now();
                let _slot = slots.acquire_owned().await.unwrap();
                let key = key_with(&endpoint, &credentials, limit);
                let (result, _) = fetcher.fetch(key, client_with(endpoint, credentials)).await;
                (result, started.elapsed())
            }
        };
        // join_all polls in order, so the hanging endpoint's objects take the slots first.
        let mut reconciles: Vec<_> = (1..=3)
            .map(|limit| reconcile(hanging.endpoint(), limit).boxed())
            .collect();
        reconciles.push(reconcile(healthy.endpoint(), 1000).boxed());
        let mut done = tokio::time::timeout(
            Duration::from_secs(20),
            futures::future::join_all(reconciles),
        )
        .await
        .expect("the healthy endpoint's object was starved");
        let (healthy_result, healthy_took) = done.pop().unwrap();
        assert!(healthy_result.is_ok(), "{healthy_result:?}");
        assert!(healthy_took < deadline * 5, "{healthy_took:?}");
        for (result, _) in done {
            assert!(matches!(*result.unwrap_err(), DcsError::Timeout { .. }));
        }
    }

    /// At most `listings_per_endpoint` listings of one endpoint are in flight: five objects on a
    /// hanging server put only two requests on the wire, and the waiting three end at their
    /// deadline too.
    #[tokio::test]
    async fn listings_in_flight_per_endpoint_are_capped() {
        let arrived = Arc::new(AtomicU64::new(0));
        let counter = arrived.clone();
        let router = axum::Router::new().fallback(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(30)).await;
                "{}"
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        let endpoint = EndpointPolicy::new(vec![url.parse().unwrap()])
            .resolve("loopback", Some(&url))
            .unwrap();
        let deadline = Duration::from_secs(1);
        let fetcher = Arc::new(SharedFetcher::with_limits(FetchLimits {
            listing_deadline: deadline,
            listings_per_endpoint: 2,
            ..roomy()
        }));
        // Five accounts: one account's unverified credentials are tried one call at a time,
        // which is not what this test is about.
        let calls: Vec<_> = (1..=5)
            .map(|n| {
                let credentials = Credentials::ak_sk(format!("ACCOUNT{n}"), "sk");
                fetcher.fetch(
                    key_with(&endpoint, &credentials, 1000),
                    client_with(endpoint.clone(), credentials),
                )
            })
            .collect();
        let started = Instant::now();
        // Half-way to the deadline: what is on the wire, and what waits for a slot.
        let midway = async {
            tokio::time::sleep(deadline / 2).await;
            (arrived.load(Ordering::SeqCst), fetcher.http_requests())
        };
        let (results, on_the_wire) = tokio::time::timeout(
            Duration::from_secs(20),
            futures::future::join(futures::future::join_all(calls), midway),
        )
        .await
        .expect("waiting for a slot outlived the deadline");
        assert_eq!(on_the_wire, (2, 2));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        for (result, _) in results {
            assert!(matches!(*result.unwrap_err(), DcsError::Timeout { .. }));
        }
    }
}
