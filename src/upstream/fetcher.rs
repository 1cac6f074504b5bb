//! Shared fetching: objects that ask the same question share one upstream call, and no tenant's
//! questions can hurt the others or the upstream accounts.
//!
//! Thousands of `DcsTaskQuery` objects often ask the same thing (same project, same window).
//! A [`RequestKey`] captures everything that makes two calls equal, credentials included by
//! fingerprint, so tenants with different credentials never share. For each key there is at most
//! one call in flight (single-flight); the upstream feeds ([`super::feed`]) keep the answers.
//!
//! Around every listing the fetcher enforces what a shared process owes its tenants and their
//! accounts:
//! - **Request budgets.** Every HTTP request (each page, each retry) waits on a global and a
//!   per-account rate limit (see [`super::budget`]), because the gateway throttles requests, not
//!   listings.
//! - **Auth cool-down per access key.** The API gateway locks an access key for 5 minutes after 5
//!   failed authentications in 5 minutes, and that lock hits everything using the key, far beyond
//!   this operator. So after a 401 / `APIG.0301` the failing credential is not sent to that
//!   endpoint again for [`AUTH_COOLDOWN`], whatever request key asks: callers get the remembered
//!   error at once ([`FetchSource::CoolingDown`]). A different credential for the same access key
//!   (a fixed secret) may try at once, but an unverified credential is tried by one call at a
//!   time per account, and after [`AUTH_FAILURES_PER_ACCOUNT`] failures in the window no new
//!   credential is tried until the oldest failure ages out (one that worked recently still may:
//!   it is not what fails). The memory is per endpoint (origin) and account: the gateway that
//!   answers `APIG.0301` is regional and is what counts the failures, and one endpoint that
//!   refuses everything (an allowed but hostile or broken one) must not shut a shared credential
//!   out of the real one. It lives in the process only; a restart forgets it.
//! - **Deadlines and per-endpoint slots.** A listing (all its pages and retries, and its waits
//!   for budget and slots) ends after [`FetchLimits::listing_deadline`] with a transient
//!   [`DcsError::Timeout`], and at most [`FetchLimits::listings_per_endpoint`] listings of one
//!   endpoint (origin) are in flight at once, so a hanging upstream holds a bounded number of
//!   connections and reconcile slots for a bounded time, and other endpoints' listings go on.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::Semaphore;

use super::budget::{DEFAULT_ACCOUNT_RATE_LIMIT, RequestBudget};
use crate::dcs::{
    AccountKey, DcsClient, DcsError, Endpoint, PageRequest, Paging, RequestGate, TaskListing,
};

/// How long a credential refused with 401 / `APIG.0301` is not sent again: the gateway's own
/// lock window (5 failures in 5 minutes lock the access key for 5 minutes).
pub use crate::dcs::AUTH_COOLDOWN;

/// Authentication failures of one account at one endpoint within [`AUTH_COOLDOWN`] after which
/// no credential that has not worked recently is tried for it there. Below the gateway's 5, leaving room for the
/// account owner's other clients, so that tenants naming someone's access key with wrong secret
/// keys cannot lock it.
pub const AUTH_FAILURES_PER_ACCOUNT: usize = 3;

/// How long a listing waits for one of its endpoint's slots before giving its reconcile slot
/// back (a transient [`DcsError::EndpointBusy`]; the object polls again later).
pub const ENDPOINT_QUEUE_WAIT: Duration = Duration::from_secs(2);

/// The shortest deadline of one listing (all pages, retries and waits).
pub const LISTING_DEADLINE: Duration = Duration::from_secs(60);

/// Listings of one endpoint (origin) in flight at once.
pub const LISTINGS_PER_ENDPOINT: usize = 4;

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

/// A finished call, shared by everyone who asked.
pub type FetchResult = Result<Arc<TaskListing>, Arc<DcsError>>;

/// How a result was obtained, for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchSource {
    /// This caller made the upstream call.
    Upstream,
    /// Joined a call already in flight.
    Joined,
    /// The credential was refused recently and its account is cooling down: the remembered
    /// authentication error, without a call.
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
    /// Listings of one endpoint in flight at once (at least 1).
    pub listings_per_endpoint: usize,
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
            auth_cooldown: AUTH_COOLDOWN,
        }
    }
}

/// A listing's shared outcome.
#[derive(Clone)]
struct Finished {
    result: FetchResult,
    /// Answered from the auth cool-down, without a call.
    cooling_down: bool,
}

struct Entry {
    call: Shared<BoxFuture<'static, Finished>>,
}

/// Single-flight, short-cache, budgeted fetching.
pub struct SharedFetcher {
    entries: Mutex<HashMap<RequestKey, Entry>>,
    budget: Arc<RequestBudget>,
    auth: AuthMemory,
    /// Listing slots per endpoint origin; a semaphore nobody holds is dropped.
    endpoint_slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    limits: FetchLimits,
    upstream_calls: AtomicU64,
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
        let retention = Duration::from_secs(600);
        Self {
            entries: Mutex::new(HashMap::new()),
            budget: Arc::new(RequestBudget::new(
                limits.requests_per_second,
                limits.account_requests_per_second,
            )),
            auth: AuthMemory {
                accounts: Mutex::new(HashMap::new()),
                cooldown: limits.auth_cooldown,
                retention,
            },
            endpoint_slots: Mutex::new(HashMap::new()),
            limits,
            upstream_calls: AtomicU64::new(0),
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

    /// The request budgets as a gate, for other upstream calls of the process (IAM project
    /// discovery) to wait on, so that they count against the same per-account limits.
    pub fn gate(&self) -> Arc<dyn RequestGate> {
        self.budget.clone()
    }

    /// The listing for `key`: the call in flight for it, the remembered refusal of a credential
    /// whose account is cooling down, or a new call made with `client`. Errors are shared too,
    /// so a hundred callers with refused credentials cause one refused call, not a hundred
    /// (which would lock the AK). Results are not kept: the upstream feeds own the answers.
    pub async fn fetch(
        self: &Arc<Self>,
        key: RequestKey,
        client: DcsClient,
    ) -> (FetchResult, FetchSource) {
        let (call, source) = {
            let mut entries = lock(&self.entries);
            entries.retain(|_, entry| entry.call.peek().is_none());
            match entries.get(&key) {
                Some(entry) => (entry.call.clone(), FetchSource::Joined),
                None => {
                    let scope = (origin(client.endpoint()), client.account());
                    if let Admission::Refused(error) =
                        self.auth.admission(&scope, &key.credential, Instant::now())
                    {
                        return (Err(error), FetchSource::CoolingDown);
                    }
                    let call = self.clone().start(key.clone(), client, scope);
                    entries.insert(key, Entry { call: call.clone() });
                    (call, FetchSource::Upstream)
                }
            }
        };
        let finished = call.await;
        let source = match source {
            FetchSource::Upstream if finished.cooling_down => FetchSource::CoolingDown,
            source => source,
        };
        (finished.result, source)
    }

    fn start(
        self: Arc<Self>,
        key: RequestKey,
        client: DcsClient,
        scope: AuthScope,
    ) -> Shared<BoxFuture<'static, Finished>> {
        async move {
            let deadline = self.limits.listing_deadline;
            let endpoint = key.endpoint.clone();
            let (result, cooling_down) =
                match tokio::time::timeout(deadline, self.listing(&key, client, &scope)).await {
                    Ok(done) => done,
                    Err(_) => (
                        Err(Arc::new(DcsError::Timeout {
                            endpoint,
                            timeout: deadline,
                        })),
                        false,
                    ),
                };
            Finished {
                result,
                cooling_down,
            }
        }
        .boxed()
        .shared()
    }

    /// One listing under the auth cool-down, the endpoint's slots and the request budgets.
    /// Returns whether it was answered from the cool-down instead of a call.
    async fn listing(
        &self,
        key: &RequestKey,
        client: DcsClient,
        scope: &AuthScope,
    ) -> (FetchResult, bool) {
        // Held until the outcome is recorded, so the next caller with the same credential sees
        // it instead of repeating a refused call.
        let _probe = match self.auth.admission(scope, &key.credential, Instant::now()) {
            Admission::Refused(error) => return (Err(error), true),
            Admission::Go => None,
            Admission::Probe(probe) => {
                let held = probe.lock_owned().await;
                match self.auth.admission(scope, &key.credential, Instant::now()) {
                    Admission::Refused(error) => return (Err(error), true),
                    Admission::Go => None,
                    Admission::Probe(_) => Some(held),
                }
            }
        };
        let slots = self.endpoint_slots(&scope.0);
        // Wait briefly for a slot, not for the whole deadline: a caller parked here holds one of
        // the controller's reconcile slots, and a slow endpoint must not take them all. The
        // semaphore is never closed; were it, the listing would simply go unslotted.
        let _slot = match tokio::time::timeout(ENDPOINT_QUEUE_WAIT, slots.acquire_owned()).await {
            Ok(slot) => slot.ok(),
            Err(_) => {
                let error = DcsError::EndpointBusy {
                    endpoint: key.endpoint.clone(),
                    in_flight: self.limits.listings_per_endpoint,
                };
                return (Err(Arc::new(error)), false);
            }
        };
        self.upstream_calls.fetch_add(1, Ordering::Relaxed);
        let gate: Arc<dyn RequestGate> = self.budget.clone();
        let result = client
            .with_gate(gate)
            .list_tasks(&key.page, key.paging)
            .await
            .map(Arc::new)
            .map_err(Arc::new);
        self.auth
            .record(scope, &key.credential, &result, Instant::now());
        (result, false)
    }

    /// The listing slots of an endpoint origin, created on first use.
    fn endpoint_slots(&self, origin: &str) -> Arc<Semaphore> {
        let mut slots = lock(&self.endpoint_slots);
        // Only the map holds it: no listing holds or awaits a slot of that endpoint.
        slots.retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
        let permits = self
            .limits
            .listings_per_endpoint
            .clamp(1, Semaphore::MAX_PERMITS);
        slots
            .entry(origin.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(permits)))
            .clone()
    }
}

/// `scheme://host:port` of an endpoint: what listing slots and auth memory are kept per.
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
    /// The credential worked last time: call.
    Go,
    /// Not known to work: call while holding the account's probe lock, one such call at a time.
    Probe(Arc<tokio::sync::Mutex<()>>),
    /// Cooling down: this remembered refusal instead of a call.
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
    /// The credential that last worked, and when.
    verified: Option<(String, Instant)>,
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
    fn admission(&self, scope: &AuthScope, fingerprint: &str, now: Instant) -> Admission {
        let mut accounts = lock(&self.accounts);
        accounts.retain(|_, auth| {
            auth.failures
                .retain(|failure| now.saturating_duration_since(failure.at) < self.cooldown);
            if auth
                .verified
                .as_ref()
                .is_some_and(|(_, at)| now.saturating_duration_since(*at) >= self.retention)
            {
                auth.verified = None;
            }
            !auth.failures.is_empty()
                || auth.verified.is_some()
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
            .as_ref()
            .is_some_and(|(verified, _)| verified == fingerprint)
        {
            return Admission::Go;
        }
        if auth.failures.len() >= AUTH_FAILURES_PER_ACCOUNT
            && let Some(latest) = auth.failures.back()
        {
            return Admission::Refused(latest.error.clone());
        }
        Admission::Probe(auth.probe.clone())
    }

    fn record(&self, scope: &AuthScope, fingerprint: &str, result: &FetchResult, now: Instant) {
        let mut accounts = lock(&self.accounts);
        let auth = accounts.entry(scope.clone()).or_default();
        match result {
            Ok(_) => auth.verified = Some((fingerprint.to_string(), now)),
            Err(error) if error.is_auth_failure() => {
                if auth
                    .verified
                    .as_ref()
                    .is_some_and(|(verified, _)| verified == fingerprint)
                {
                    auth.verified = None;
                }
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
    async fn concurrent_equal_requests_make_one_call_and_results_are_not_kept() {
        let (_sim, client) = simulator().await;
        let fetcher = Arc::new(SharedFetcher::new(NonZeroU32::new(100).unwrap()));
        let calls: Vec<_> = (0..50)
            .map(|_| fetcher.fetch(key("a"), client.clone()))
            .collect();
        let results = futures::future::join_all(calls).await;
        assert!(results.iter().all(|(r, _)| r.is_ok()));
        assert_eq!(fetcher.upstream_calls(), 1);
        let joined = results
            .iter()
            .filter(|(_, source)| *source == FetchSource::Joined)
            .count();
        assert_eq!(joined, 49);
        // A different credential never shares, and a finished call is not reused.
        let (other, _) = fetcher.fetch(key("b"), client.clone()).await;
        assert!(other.is_ok());
        assert_eq!(fetcher.upstream_calls(), 2);
        let (_, source) = fetcher.fetch(key("a"), client).await;
        assert_eq!(source, FetchSource::Upstream);
        assert_eq!(fetcher.upstream_calls(), 3);
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
        let scenario = sim::Scenario::from_yaml(
            r#"
credentials:
  - {accessKey: ACCOUNTONE, secretKey: one-sk}
  - {accessKey: ACCOUNTTWO, secretKey: two-sk}
generate:
  - {count: 5, name: EXTEND, firstCreatedAt: "-1h", every: 1m}
"#,
        )
        .unwrap();
        let running = sim::serve_on_loopback(scenario).await.unwrap();
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
            assert!(result.unwrap_err().is_auth_failure());
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

        // With a long deadline, a caller over the cap gives its reconcile slot back after
        // ENDPOINT_QUEUE_WAIT instead of waiting for the hanging listings to end.
        let patient = Arc::new(SharedFetcher::with_limits(FetchLimits {
            listing_deadline: Duration::from_secs(60),
            listings_per_endpoint: 1,
            ..roomy()
        }));
        let hanging = Credentials::ak_sk("HANGING", "sk");
        let first = patient.clone();
        let (first_key, first_client) = (
            key_with(&endpoint, &hanging, 1000),
            client_with(endpoint.clone(), hanging),
        );
        tokio::spawn(async move { first.fetch(first_key, first_client).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let queued = Credentials::ak_sk("QUEUED", "sk");
        let started = Instant::now();
        let (result, _) = tokio::time::timeout(
            Duration::from_secs(20),
            patient.fetch(
                key_with(&endpoint, &queued, 1000),
                client_with(endpoint.clone(), queued),
            ),
        )
        .await
        .expect("the queued caller waited for the hanging listing");
        assert!(matches!(
            *result.unwrap_err(),
            DcsError::EndpointBusy { in_flight: 1, .. }
        ));
        assert!(started.elapsed() >= ENDPOINT_QUEUE_WAIT);
    }
}
