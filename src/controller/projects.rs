//! Project ids discovered through IAM, remembered per credential, region and IAM endpoint, so
//! that a query without a project id costs one IAM call an hour, not one per poll.
//!
//! Concurrent reconciles that need the same project wait for the one call in flight. Failures
//! are remembered too, briefly ([`FAILURE_TTL`]), and a refused credential for the gateway's
//! lock-out cool-down ([`AUTH_COOLDOWN`]): five refusals lock an access key, and a burst of
//! objects must not spend them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::dcs::{AUTH_COOLDOWN, FailureClass, IamClient, ProjectDiscoveryError};

/// How long a discovered project id is reused.
pub const SUCCESS_TTL: Duration = Duration::from_secs(60 * 60);

/// How long a failed discovery is reused before IAM is asked again.
pub const FAILURE_TTL: Duration = Duration::from_secs(60);

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

type Slot = Arc<tokio::sync::Mutex<Option<(Discovery, Instant)>>>;

/// The remembered discoveries of a process.
#[derive(Default)]
pub struct ProjectCache {
    slots: Mutex<HashMap<DiscoveryKey, Slot>>,
    iam_calls: AtomicU64,
}

impl ProjectCache {
    /// IAM calls made so far (one per discovery, retries not counted).
    pub fn iam_calls(&self) -> u64 {
        self.iam_calls.load(Ordering::Relaxed)
    }

    /// The project for `key`: remembered while fresh, else asked of `client` (one call for all
    /// concurrent callers). The second value says whether this caller made the call.
    pub async fn discover(&self, key: DiscoveryKey, client: IamClient) -> (Discovery, bool) {
        let slot = self.slot(&key);
        let mut held = slot.lock().await;
        if let Some((discovery, expires)) = held.as_ref()
            && Instant::now() < *expires
        {
            return (discovery.clone(), false);
        }
        self.iam_calls.fetch_add(1, Ordering::Relaxed);
        let discovery = client.discover_project(&key.region).await.map_err(Arc::new);
        let ttl = match &discovery {
            Ok(_) => SUCCESS_TTL,
            Err(error) => match error.upstream().map(|upstream| upstream.class()) {
                Some(FailureClass::Auth) => AUTH_COOLDOWN,
                _ => FAILURE_TTL,
            },
        };
        *held = Some((discovery.clone(), Instant::now() + ttl));
        (discovery, true)
    }

    fn slot(&self, key: &DiscoveryKey) -> Slot {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !slots.contains_key(key) && slots.len() >= MAX_ENTRIES {
            let now = Instant::now();
            // Keep what is fresh or being discovered right now (its lock is held).
            slots.retain(|_, slot| match slot.try_lock() {
                Ok(entry) => entry.as_ref().is_some_and(|(_, expires)| now < *expires),
                Err(_) => true,
            });
            if slots.len() >= MAX_ENTRIES {
                slots.clear();
            }
        }
        slots.entry(key.clone()).or_default().clone()
    }
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
        let callers = (0..8).map(|_| {
            let cache = cache.clone();
            let client = client.clone();
            let key = key(sim::DEMO_REGION, &endpoint);
            tokio::spawn(async move { cache.discover(key, client).await })
        });
        let mut called = 0;
        for caller in callers {
            let (discovery, made_call) = caller.await.unwrap();
            assert_eq!(discovery.unwrap(), sim::DEMO_PROJECT_ID);
            called += usize::from(made_call);
        }
        assert_eq!(called, 1);
        assert_eq!(cache.iam_calls(), 1);

        for _ in 0..3 {
            let (discovery, _) = cache
                .discover(key("eu-west-101", &endpoint), client.clone())
                .await;
            assert!(matches!(
                discovery.unwrap_err().as_ref(),
                ProjectDiscoveryError::NoProject { .. }
            ));
        }
        assert_eq!(cache.iam_calls(), 2);
        // Another IAM endpoint is another key.
        let (_, made_call) = cache
            .discover(key(sim::DEMO_REGION, "http://other"), client)
            .await;
        assert!(made_call);
    }
}
