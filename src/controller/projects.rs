//! Project ids discovered through IAM, remembered per credential, region and IAM endpoint, so
//! that a query without a project id costs one IAM call an hour, not one per poll.
//!
//! A discovery runs as a task of its own under [`DISCOVERY_DEADLINE`], and a reconcile waits for
//! it at most [`DISCOVERY_WAIT`]: a slow IAM, or a tenant saturating its own account's budget,
//! cannot hold the controller's reconcile workers. Concurrent reconciles that need the same
//! project share the one discovery in flight. IAM calls take the same per-account budget and the
//! same turns at the global budget as task listings (the fetcher's gate). Failures are
//! remembered too, briefly ([`FAILURE_TTL`]), and a refused credential for the gateway's
//! lock-out cool-down ([`AUTH_COOLDOWN`]): five refusals lock an access key, and a burst of
//! objects must not spend them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{info, warn};

use crate::dcs::{AUTH_COOLDOWN, DcsError, FailureClass, IamClient, ProjectDiscoveryError};

/// How long a discovered project id is reused.
pub const SUCCESS_TTL: Duration = Duration::from_secs(60 * 60);

/// How long a failed discovery is reused before IAM is asked again.
pub const FAILURE_TTL: Duration = Duration::from_secs(60);

/// The most one discovery may take, its retries and budget waits included; then it fails as a
/// transient timeout (remembered for [`FAILURE_TTL`]).
pub const DISCOVERY_DEADLINE: Duration = Duration::from_secs(30);

/// How long a reconcile waits for a discovery in flight before giving its worker back (the
/// object is reconciled again shortly and finds the answer remembered).
pub const DISCOVERY_WAIT: Duration = Duration::from_secs(2);

/// Most remembered keys; expired ones are dropped first when there are more.
const MAX_ENTRIES: usize = 10_000;

/// What a discovery gave: the project id, or why there is none (shared between callers).
pub type Discovery = Result<String, Arc<ProjectDiscoveryError>>;

/// What the remembered answers are keyed by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DiscoveryKey {
    /// The credential's keyed fingerprint (never the credential).
    pub credential: String,
    pub region: String,
    /// The IAM endpoint's origin.
    pub iam_endpoint: String,
}

/// What a caller learns within its wait.
#[derive(Debug)]
pub enum Lookup {
    /// The discovery's answer, remembered or just made.
    Known(Discovery),
    /// Still being discovered: ask again shortly.
    Discovering,
}

enum Slot {
    Known {
        discovery: Discovery,
        expires: Instant,
    },
    Discovering(watch::Receiver<Option<Discovery>>),
}

type Slots = Arc<Mutex<HashMap<DiscoveryKey, Slot>>>;

/// The remembered discoveries of a process.
#[derive(Default)]
pub struct ProjectCache {
    slots: Slots,
    iam_calls: Arc<AtomicU64>,
}

impl ProjectCache {
    /// IAM calls made so far (one per discovery, retries not counted).
    pub fn iam_calls(&self) -> u64 {
        self.iam_calls.load(Ordering::Relaxed)
    }

    /// The project for `key`: remembered while fresh, else asked of `client` by a discovery of
    /// its own (one for all concurrent callers), waited for at most `wait`.
    pub async fn discover(&self, key: DiscoveryKey, client: IamClient, wait: Duration) -> Lookup {
        let mut answer = {
            let mut slots = lock(&self.slots);
            match slots.get(&key) {
                Some(Slot::Known { discovery, expires }) if Instant::now() < *expires => {
                    return Lookup::Known(discovery.clone());
                }
                Some(Slot::Discovering(answer)) => answer.clone(),
                _ => {
                    make_room(&mut slots);
                    let (sender, answer) = watch::channel(None);
                    slots.insert(key.clone(), Slot::Discovering(answer.clone()));
                    self.iam_calls.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(run_discovery(self.slots.clone(), key, client, sender));
                    answer
                }
            }
        };
        let known = match tokio::time::timeout(wait, answer.wait_for(Option::is_some)).await {
            Ok(Ok(known)) => known.clone(),
            _ => None,
        };
        known.map_or(Lookup::Discovering, Lookup::Known)
    }
}

/// One discovery, under its deadline; remembers and publishes the answer.
async fn run_discovery(
    slots: Slots,
    key: DiscoveryKey,
    client: IamClient,
    sender: watch::Sender<Option<Discovery>>,
) {
    let discovery = match tokio::time::timeout(
        DISCOVERY_DEADLINE,
        client.discover_project(&key.region),
    )
    .await
    {
        Ok(found) => found.map_err(Arc::new),
        Err(_) => Err(Arc::new(ProjectDiscoveryError::Upstream(
            DcsError::Timeout {
                endpoint: key.iam_endpoint.clone(),
                timeout: DISCOVERY_DEADLINE,
            },
        ))),
    };
    match &discovery {
        Ok(project) => {
            info!(region = %key.region, project, iam = %key.iam_endpoint, "discovered the project id through IAM")
        }
        Err(error) => {
            warn!(region = %key.region, iam = %key.iam_endpoint, %error, "project discovery failed")
        }
    }
    let ttl = match &discovery {
        Ok(_) => SUCCESS_TTL,
        Err(error) => match error.upstream().map(|upstream| upstream.class()) {
            Some(FailureClass::Auth) => AUTH_COOLDOWN,
            _ => FAILURE_TTL,
        },
    };
    lock(&slots).insert(
        key,
        Slot::Known {
            discovery: discovery.clone(),
            expires: Instant::now() + ttl,
        },
    );
    sender.send_replace(Some(discovery));
}

/// Keeps the map under [`MAX_ENTRIES`]: expired answers go first, then every answer (not the
/// discoveries in flight).
fn make_room(slots: &mut HashMap<DiscoveryKey, Slot>) {
    if slots.len() < MAX_ENTRIES {
        return;
    }
    let now = Instant::now();
    slots.retain(|_, slot| match slot {
        Slot::Known { expires, .. } => now < *expires,
        Slot::Discovering(_) => true,
    });
    if slots.len() >= MAX_ENTRIES {
        slots.retain(|_, slot| matches!(slot, Slot::Discovering(_)));
    }
}

/// A lock whose data stays usable even if a holder panicked: every critical section leaves the
/// map consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dcs::{HttpClient, HttpSettings};
    use crate::sim;

    fn key(region: &str, endpoint: &str) -> DiscoveryKey {
        DiscoveryKey {
            credential: sim::demo_credentials().credentials.fingerprint(),
            region: region.to_string(),
            iam_endpoint: endpoint.to_string(),
        }
    }

    fn known(lookup: Lookup) -> Discovery {
        match lookup {
            Lookup::Known(discovery) => discovery,
            Lookup::Discovering => panic!("still discovering"),
        }
    }

    #[tokio::test]
    async fn one_call_per_key_for_many_callers_and_failures_are_remembered_too() {
        let running = sim::serve_on_loopback(sim::Scenario::default_demo())
            .await
            .unwrap();
        let client = IamClient::new(
            HttpClient::new(HttpSettings::default()).unwrap(),
            running.endpoint(),
            sim::demo_credentials().credentials,
        );
        let cache = Arc::new(ProjectCache::default());
        let endpoint = running.endpoint().to_string();
        let wait = Duration::from_secs(10);
        let callers = (0..8).map(|_| {
            let cache = cache.clone();
            let client = client.clone();
            let key = key(sim::DEMO_REGION, &endpoint);
            tokio::spawn(async move { cache.discover(key, client, wait).await })
        });
        for caller in callers {
            assert_eq!(known(caller.await.unwrap()).unwrap(), sim::DEMO_PROJECT_ID);
        }
        assert_eq!(cache.iam_calls(), 1);

        for _ in 0..3 {
            let discovery = known(
                cache
                    .discover(key("eu-west-101", &endpoint), client.clone(), wait)
                    .await,
            );
            assert!(matches!(
                discovery.unwrap_err().as_ref(),
                ProjectDiscoveryError::NoProject { .. }
            ));
        }
        assert_eq!(cache.iam_calls(), 2);
        // Another IAM endpoint is another key.
        known(
            cache
                .discover(key(sim::DEMO_REGION, "http://other"), client, wait)
                .await,
        )
        .unwrap();
        assert_eq!(cache.iam_calls(), 3);
    }

    /// A slow IAM holds no caller beyond its wait: the discovery goes on by itself, one call for
    /// every caller, and a caller after it finished gets the answer at once. Before, every
    /// reconcile needing the project waited for the IAM call, retries and budget waits included,
    /// with no deadline.
    #[tokio::test]
    async fn a_slow_discovery_holds_no_caller_beyond_its_wait() {
        // An IAM that takes 1.5 s to say something that is not a project list.
        let router = axum::Router::new().fallback(|| async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            "{}"
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        let endpoint = crate::dcs::EndpointPolicy::new(vec![url.parse().unwrap()])
            .resolve("loopback", Some(&url))
            .unwrap();
        let client = IamClient::new(
            HttpClient::new(HttpSettings::default()).unwrap(),
            endpoint,
            sim::demo_credentials().credentials,
        );
        let cache = ProjectCache::default();
        let wait = Duration::from_millis(200);
        for _ in 0..3 {
            let started = Instant::now();
            let lookup = cache
                .discover(key(sim::DEMO_REGION, &url), client.clone(), wait)
                .await;
            assert!(matches!(lookup, Lookup::Discovering), "{lookup:?}");
            assert!(started.elapsed() < Duration::from_millis(600));
        }
        tokio::time::sleep(Duration::from_millis(1800)).await;
        let started = Instant::now();
        let found = known(
            cache
                .discover(key(sim::DEMO_REGION, &url), client, wait)
                .await,
        );
        assert!(found.is_err(), "{found:?}");
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(cache.iam_calls(), 1);
    }
}
