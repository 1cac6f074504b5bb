//! Request budgets: how many HTTP requests the operator sends to DCS, globally and per account,
//! and who gets the global budget when several accounts want more than it holds.
//!
//! The API gateway throttles (`APIG.0308`, HTTP 429) per user and per API by *requests*, so the
//! budget counts every request a [`DcsClient`](crate::dcs::DcsClient) sends, each page and each
//! retry, not the listings they make up: a listing of ten pages costs ten.
//!
//! A request first waits on its own account's token bucket (`--account-rate-limit`), holding
//! nothing anyone else could use, and then queues for the global bucket (`--rate-limit`) in its
//! account's line. The global tokens are handed out round-robin over the accounts that have a
//! request waiting, so an account that saturates the budget gets at most its turn: with `A`
//! accounts waiting, each gets at least `1/A` of the global rate, however many requests the
//! others queue. A waiter that is dropped (its listing was abandoned) gives up its place; a token
//! handed to a waiter that is gone goes to the next one.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use futures::future::BoxFuture;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{Notify, oneshot};

use crate::dcs::{AccountKey, RequestGate};

/// The default per-account rate (`--account-rate-limit`): requests per second per access key.
pub const DEFAULT_ACCOUNT_RATE_LIMIT: NonZeroU32 = NonZeroU32::new(5).expect("non-zero");

/// Every this many admissions, accounts idle long enough to have a full budget again are
/// forgotten, so the per-account state stays as small as the set of recently active accounts.
const FORGET_IDLE_EVERY: u64 = 256;

/// A per-account token bucket, then a global one shared round-robin between accounts.
pub struct RequestBudget {
    per_account: DefaultKeyedRateLimiter<AccountKey>,
    global: Arc<FairQueue>,
    /// The dispatcher of the global tokens, started with the first request (it needs a runtime).
    dispatcher: OnceLock<()>,
    admitted: AtomicU64,
}

/// The global bucket and the accounts' lines in front of it.
struct FairQueue {
    limiter: DefaultDirectRateLimiter,
    lines: Mutex<Lines>,
    /// Tells the dispatcher a request joined a line (or the budget is gone).
    joined: Arc<Notify>,
}

/// Accounts with a request waiting, in turn order, and each one's waiters, oldest first.
#[derive(Default)]
struct Lines {
    turns: VecDeque<AccountKey>,
    waiting: HashMap<AccountKey, VecDeque<oneshot::Sender<()>>>,
}

impl Lines {
    fn join(&mut self, account: &AccountKey, waiter: oneshot::Sender<()>) {
        let line = self.waiting.entry(account.clone()).or_default();
        if line.is_empty() {
            self.turns.push_back(account.clone());
        }
        line.push_back(waiter);
    }

    /// The oldest waiter of the account whose turn it is; the account goes to the back of the
    /// turns while it still has waiters. Waiters that are gone are skipped.
    fn next(&mut self) -> Option<oneshot::Sender<()>> {
        while let Some(account) = self.turns.pop_front() {
            let Some(line) = self.waiting.get_mut(&account) else {
                continue;
            };
            while let Some(waiter) = line.pop_front() {
                if waiter.is_closed() {
                    continue;
                }
                if line.is_empty() {
                    self.waiting.remove(&account);
                } else {
                    self.turns.push_back(account);
                }
                return Some(waiter);
            }
            self.waiting.remove(&account);
        }
        None
    }

    fn is_empty(&self) -> bool {
        self.turns.is_empty()
    }
}

impl RequestBudget {
    /// `global` requests per second across all accounts, `per_account` for each account; each
    /// may be spent in a burst of its own size.
    pub fn new(global: NonZeroU32, per_account: NonZeroU32) -> Self {
        Self {
            per_account: RateLimiter::keyed(Quota::per_second(per_account)),
            global: Arc::new(FairQueue {
                limiter: RateLimiter::direct(Quota::per_second(global)),
                lines: Mutex::new(Lines::default()),
                joined: Arc::new(Notify::new()),
            }),
            dispatcher: OnceLock::new(),
            admitted: AtomicU64::new(0),
        }
    }

    /// Requests admitted so far.
    pub fn admitted(&self) -> u64 {
        self.admitted.load(Ordering::Relaxed)
    }

    /// Accounts whose budget state is remembered (idle ones are forgotten now and then).
    #[cfg(test)]
    fn accounts_remembered(&self) -> usize {
        self.per_account.len()
    }

    /// Requests queued for the global budget right now (a gauge for tests and metrics).
    pub fn queued(&self) -> usize {
        lock(&self.global.lines)
            .waiting
            .values()
            .map(|line| line.iter().filter(|waiter| !waiter.is_closed()).count())
            .sum()
    }

    /// Waits for a global token in `account`'s line.
    async fn global_turn(&self, account: &AccountKey) {
        self.dispatcher.get_or_init(|| {
            tokio::spawn(dispatch(
                Arc::downgrade(&self.global),
                self.global.joined.clone(),
            ));
        });
        let (granted, turn) = oneshot::channel();
        lock(&self.global.lines).join(account, granted);
        self.global.joined.notify_one();
        // The dispatcher only drops a sender when the budget itself is gone; then nothing is
        // left to wait for.
        let _ = turn.await;
    }
}

impl Drop for RequestBudget {
    fn drop(&mut self) {
        // Wakes the dispatcher so that it sees the queue is gone and ends.
        self.global.joined.notify_one();
    }
}

/// Hands out global tokens, one at a time, to the accounts' lines in turn, until the budget is
/// dropped.
async fn dispatch(queue: Weak<FairQueue>, joined: Arc<Notify>) {
    loop {
        // Created before looking, so that a request joining meanwhile is not missed.
        let notified = joined.notified();
        let waiting = match queue.upgrade() {
            Some(queue) => !lock(&queue.lines).is_empty(),
            None => return,
        };
        if !waiting {
            notified.await;
            continue;
        }
        let Some(queue) = queue.upgrade() else {
            return;
        };
        queue.limiter.until_ready().await;
        // A token handed to a waiter that left meanwhile goes to the next one.
        loop {
            let Some(waiter) = lock(&queue.lines).next() else {
                break;
            };
            if waiter.send(()).is_ok() {
                break;
            }
        }
    }
}

impl RequestGate for RequestBudget {
    fn admit<'a>(&'a self, account: &'a AccountKey) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // The account's own budget first: a request its account cannot afford yet waits
            // without holding a place in the global queue that another account could use.
            self.per_account.until_key_ready(account).await;
            self.global_turn(account).await;
            let admitted = self.admitted.fetch_add(1, Ordering::Relaxed);
            if admitted % FORGET_IDLE_EVERY == FORGET_IDLE_EVERY - 1 {
                self.per_account.retain_recent();
                self.per_account.shrink_to_fit();
            }
        })
    }
}

/// A lock whose data stays usable even if a holder panicked: every critical section leaves the
/// lines consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// Nobody waiting, no token is spent: the burst is there for the next requests.
    #[tokio::test]
    async fn an_idle_budget_keeps_its_burst() {
        let budget =
            RequestBudget::new(NonZeroU32::new(2).unwrap(), NonZeroU32::new(1000).unwrap());
        let anyone = account("ANYONE");
        budget.admit(&anyone).await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let started = Instant::now();
        budget.admit(&anyone).await;
        budget.admit(&anyone).await;
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
    }

    /// The dispatcher of the global tokens ends with its budget (a fetcher per test, per CLI
    /// run, must not leave a task behind).
    #[tokio::test]
    async fn the_dispatcher_ends_with_its_budget() {
        let budget = RequestBudget::new(NonZeroU32::new(10).unwrap(), NonZeroU32::new(10).unwrap());
        let joined = budget.global.joined.clone();
        budget.admit(&account("ANYONE")).await;
        assert_eq!(
            Arc::strong_count(&joined),
            3,
            "the queue, the dispatcher and this test"
        );
        drop(budget);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(Arc::strong_count(&joined), 1);
    }

    /// Every FORGET_IDLE_EVERY admissions, accounts whose budget is full again are forgotten, so
    /// many accounts passing through do not grow the budget's memory for ever.
    #[tokio::test]
    async fn idle_accounts_are_forgotten() {
        let budget = RequestBudget::new(
            NonZeroU32::new(100_000).unwrap(),
            NonZeroU32::new(1000).unwrap(),
        );
        let until_forgetting = usize::try_from(FORGET_IDLE_EVERY - 1).unwrap();
        for n in 0..until_forgetting {
            budget.admit(&account(&format!("PASSING{n}"))).await;
        }
        assert_eq!(budget.accounts_remembered(), until_forgetting);
        // Their budgets fill up again; the next admission forgets them.
        tokio::time::sleep(Duration::from_millis(50)).await;
        budget.admit(&account("LAST")).await;
        assert!(
            budget.accounts_remembered() <= 1,
            "{}",
            budget.accounts_remembered()
        );
    }

    /// Accounts within their own budgets share the global one in turns: with 40 requests of one
    /// account queued at 10 per second, another account's request is admitted within a couple of
    /// turns, not behind the queue (governor's own waiters race for each token, so it used to
    /// wait about half the queue, ~2 s). Dropped waiters give their place up.
    #[tokio::test]
    async fn accounts_take_turns_at_the_global_budget() {
        let budget = Arc::new(RequestBudget::new(
            NonZeroU32::new(10).unwrap(),
            NonZeroU32::new(1000).unwrap(),
        ));
        let (busy, quiet) = (account("BUSY"), account("QUIET"));
        let queued: Vec<_> = (0..40)
            .map(|_| {
                let (budget, busy) = (budget.clone(), busy.clone());
                tokio::spawn(async move { budget.admit(&busy).await })
            })
            .collect();
        // The burst is spent and the busy account's line is long.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(budget.queued() > 20, "{}", budget.queued());
        let started = Instant::now();
        budget.admit(&quiet).await;
        let took = started.elapsed();
        assert!(took < Duration::from_millis(450), "{took:?}");
        for waiter in &queued {
            waiter.abort();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(budget.queued(), 0);
        // The places of the dropped waiters are not served: the next request goes at once.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        budget.admit(&quiet).await;
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
    }
}
