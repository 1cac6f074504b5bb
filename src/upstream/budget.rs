//! Request budgets: how many HTTP requests the operator sends to DCS, globally and per account.
//!
//! The API gateway throttles (`APIG.0308`, HTTP 429) per user and per API by *requests*, so the
//! budget counts every request a [`DcsClient`](crate::dcs::DcsClient) sends, each page and each
//! retry, not the listings they make up: a listing of ten pages costs ten. Each account (access
//! key) also has its own budget, so one tenant's busy account cannot spend the whole global budget
//! and starve the others, and no account is driven into its own throttling by this process alone.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::dcs::{AccountKey, RequestGate};

/// The default per-account rate (`--account-rate-limit`): requests per second per access key.
pub const DEFAULT_ACCOUNT_RATE_LIMIT: NonZeroU32 = NonZeroU32::new(5).expect("non-zero");

/// Every this many admissions, accounts idle long enough to have a full budget again are
/// forgotten, so the per-account state stays as small as the set of recently active accounts.
const FORGET_IDLE_EVERY: u64 = 256;

/// A global and a per-account token bucket, both waited on before each request.
pub struct RequestBudget {
    global: DefaultDirectRateLimiter,
    per_account: DefaultKeyedRateLimiter<AccountKey>,
    admitted: AtomicU64,
}

impl RequestBudget {
    /// `global` requests per second across all accounts, `per_account` for each account; each
    /// may be spent in a burst of its own size.
    pub fn new(global: NonZeroU32, per_account: NonZeroU32) -> Self {
        Self {
            global: RateLimiter::direct(Quota::per_second(global)),
            per_account: RateLimiter::keyed(Quota::per_second(per_account)),
            admitted: AtomicU64::new(0),
        }
    }

    /// Requests admitted so far.
    pub fn admitted(&self) -> u64 {
        self.admitted.load(Ordering::Relaxed)
    }
}

impl RequestGate for RequestBudget {
    fn admit<'a>(&'a self, account: &'a AccountKey) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // The account's own budget first: a request its account cannot afford yet waits
            // without holding a global token that another account could use meanwhile.
            self.per_account.until_key_ready(account).await;
            self.global.until_ready().await;
            let admitted = self.admitted.fetch_add(1, Ordering::Relaxed);
            if admitted % FORGET_IDLE_EVERY == FORGET_IDLE_EVERY - 1 {
                self.per_account.retain_recent();
                self.per_account.shrink_to_fit();
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::dcs::{Credentials, DcsClient, EndpointPolicy, HttpClient, HttpSettings};

    fn account(access_key: &str) -> AccountKey {
        DcsClient::new(
            HttpClient::new(HttpSettings::default()).unwrap(),
            EndpointPolicy::default()
                .resolve("cn-north-4", None)
                .unwrap(),
            "p",
            Credentials::ak_sk(access_key, "sk"),
        )
        .account()
    }

    /// An account past its budget waits; another account does not.
    #[tokio::test]
    async fn accounts_wait_for_their_own_budget_only() {
        let budget =
            RequestBudget::new(NonZeroU32::new(1000).unwrap(), NonZeroU32::new(2).unwrap());
        let (busy, quiet) = (account("BUSY"), account("QUIET"));
        let started = Instant::now();
        for _ in 0..3 {
            budget.admit(&busy).await;
        }
        let busy_took = started.elapsed();
        let started = Instant::now();
        budget.admit(&quiet).await;
        let quiet_took = started.elapsed();
        assert!(busy_took >= Duration::from_millis(400), "{busy_took:?}");
        assert!(quiet_took < Duration::from_millis(200), "{quiet_took:?}");
        assert_eq!(budget.admitted(), 4);
    }
}
