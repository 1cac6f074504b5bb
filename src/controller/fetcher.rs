//! Shared fetching: objects that ask the same question share one upstream call.
//!
//! Thousands of `DcsTaskQuery` objects often ask the same thing (same project, same window).
//! A [`RequestKey`] captures everything that makes two calls equal, credentials included by
//! fingerprint, so tenants with different credentials never share. For each key there is at most
//! one call in flight (single-flight) and its result is reused while fresh; a global rate limit
//! caps the calls per second across all keys.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::dcs::{DcsClient, DcsError, PageRequest, Paging, TaskListing};

/// Everything that makes two upstream calls interchangeable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestKey {
    pub endpoint: String,
    pub project_id: String,
    /// One-way fingerprint of the credential (see `Credentials::fingerprint`).
    pub credential: String,
    pub page: PageRequest,
    pub paging: Paging,
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
    /// Reused a fresh cached result.
    Cached,
}

struct Entry {
    call: Shared<BoxFuture<'static, (FetchResult, Instant)>>,
}

/// Single-flight, short-cache, rate-limited fetching.
pub struct SharedFetcher {
    entries: Mutex<HashMap<RequestKey, Entry>>,
    limiter: DefaultDirectRateLimiter,
    /// Entries older than this are swept.
    retention: Duration,
    upstream_calls: std::sync::atomic::AtomicU64,
}

impl SharedFetcher {
    /// `calls_per_second` caps upstream calls across all keys.
    pub fn new(calls_per_second: NonZeroU32) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            limiter: RateLimiter::direct(Quota::per_second(calls_per_second)),
            retention: Duration::from_secs(600),
            upstream_calls: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Upstream calls started so far (each may page several times).
    pub fn upstream_calls(&self) -> u64 {
        self.upstream_calls
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The listing for `key`: a result younger than `max_age`, the call in flight, or a new
    /// call made with `client`. Errors are shared too, so a hundred objects with refused
    /// credentials cause one refused call, not a hundred (which would lock the AK).
    pub async fn fetch(
        self: &Arc<Self>,
        key: RequestKey,
        client: DcsClient,
        max_age: Duration,
    ) -> (FetchResult, FetchSource) {
        let (call, source) = {
            let mut entries = self.entries.lock().expect("fetcher lock poisoned");
            let now = Instant::now();
            entries.retain(|_, entry| match entry.call.peek() {
                Some((_, finished)) => now.duration_since(*finished) < self.retention,
                None => true,
            });
            let reusable = entries.get(&key).and_then(|entry| match entry.call.peek() {
                None => Some((entry.call.clone(), FetchSource::Joined)),
                Some((_, finished)) if now.duration_since(*finished) < max_age => {
                    Some((entry.call.clone(), FetchSource::Cached))
                }
                Some(_) => None,
            });
            match reusable {
                Some(found) => found,
                None => {
                    let call = self.clone().start(key.clone(), client);
                    entries.insert(key, Entry { call: call.clone() });
                    (call, FetchSource::Upstream)
                }
            }
        };
        let (result, _) = call.await;
        (result, source)
    }

    fn start(
        self: Arc<Self>,
        key: RequestKey,
        client: DcsClient,
    ) -> Shared<BoxFuture<'static, (FetchResult, Instant)>> {
        let fetcher = self;
        async move {
            fetcher.limiter.until_ready().await;
            fetcher
                .upstream_calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let result = client
                .list_tasks(&key.page, key.paging)
                .await
                .map(Arc::new)
                .map_err(Arc::new);
            (result, Instant::now())
        }
        .boxed()
        .shared()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dcs::{HttpClient, HttpSettings};
    use crate::sim;

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
        }
    }

    #[tokio::test]
    async fn concurrent_equal_requests_make_one_call_and_fresh_results_are_reused() {
        let (_sim, client) = simulator().await;
        let fetcher = Arc::new(SharedFetcher::new(NonZeroU32::new(100).unwrap()));
        let calls: Vec<_> = (0..50)
            .map(|_| fetcher.fetch(key("a"), client.clone(), Duration::from_secs(30)))
            .collect();
        let results = futures::future::join_all(calls).await;
        assert!(results.iter().all(|(r, _)| r.is_ok()));
        assert_eq!(fetcher.upstream_calls(), 1);
        let (_, source) = fetcher
            .fetch(key("a"), client.clone(), Duration::from_secs(30))
            .await;
        assert_eq!(source, FetchSource::Cached);
        assert_eq!(fetcher.upstream_calls(), 1);
        // A different credential never shares, and a stale result is refreshed.
        let (other, _) = fetcher
            .fetch(key("b"), client.clone(), Duration::from_secs(30))
            .await;
        assert!(other.is_ok());
        assert_eq!(fetcher.upstream_calls(), 2);
        let (_, source) = fetcher.fetch(key("a"), client, Duration::ZERO).await;
        assert_eq!(source, FetchSource::Upstream);
        assert_eq!(fetcher.upstream_calls(), 3);
    }

    #[tokio::test]
    async fn the_rate_limit_spaces_calls() {
        let (_sim, client) = simulator().await;
        let fetcher = Arc::new(SharedFetcher::new(NonZeroU32::new(2).unwrap()));
        let started = Instant::now();
        for i in 0..4 {
            let (result, _) = fetcher
                .fetch(key(&i.to_string()), client.clone(), Duration::from_secs(30))
                .await;
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
}
