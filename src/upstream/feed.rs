//! One upstream feed per distinct question.
//!
//! Objects that ask the same question (same endpoint, project, credentials and request) subscribe
//! to one [`Feed`](Feeds) keyed by [`FeedKey`]. The feed is the only poller of its key: it polls
//! at the shortest interval its subscribers currently need (`activeInterval` while any of them
//! awaits a task or sees one running, `interval` otherwise, with jitter; backing off after
//! failures), keeps the latest answer and the last good listing in memory (one per key), and
//! after each answer wakes exactly the subscribers whose view of it may have changed: those that
//! have not seen the previous answer, and those a changed task concerns
//! ([`crate::query::evaluate::concerns`]). Each wake says whether someone waits on it
//! ([`Wake::Awaiting`]) or it is a refresh ([`Wake::Refresh`]): the controller writes the former
//! first, so a change seen by thousands of objects does not push the waiters' verdicts behind
//! everybody else's (its `lanes`). The feed itself wakes everyone at once and paces nobody.
//!
//! Upstream calls are therefore one per key per interval, whatever the number of subscribers,
//! and a waiter learns of a change one feed interval (plus its own write) after it happens.
//! A feed with no subscribers left stops at once.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::fetcher::{FetchResult, FetchSource, RequestKey, SharedFetcher, UpstreamCall};
use crate::dcs::{
    CenterTask, DcsClient, DcsError, FailureClass, JobId, JobInfo, JobLookupFailure, TaskListing,
};
use crate::query::evaluate::{concerns, distinct_tasks, needs_active, newest_first};
use crate::query::job::{JobAnswer, NOT_FOUND_ANSWERS_TO_STALL};
use crate::query::report::same_error;
use crate::query::schedule::{LastPoll, feed_delay, until_deadline_poll};
use crate::query::{Concern, ListRequest, Listed, Outcome};

/// Everything that makes two subscribers' questions the same upstream call: who asks
/// (endpoint, project, credential) and what ([`Question`]: a task listing or a job).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FeedKey<Q = ListRequest> {
    pub endpoint: String,
    pub project_id: String,
    /// One-way fingerprint of the credential (see `Credentials::fingerprint`): tenants with
    /// different credentials never share a feed.
    pub credential: String,
    pub request: Q,
    /// Set in `--upstream-sharing=per-object` mode: the one subscriber this feed serves.
    pub owner: Option<String>,
}

impl<Q> FeedKey<Q> {
    /// The key of another question asked by the same caller (endpoint, project, credential,
    /// owner): a job wait's job feed beside its query's task feed.
    pub fn asking<R>(&self, request: R) -> FeedKey<R> {
        FeedKey {
            endpoint: self.endpoint.clone(),
            project_id: self.project_id.clone(),
            credential: self.credential.clone(),
            request,
            owner: self.owner.clone(),
        }
    }
}

/// A feed's key and the client it polls with.
#[derive(Clone)]
pub struct FeedTarget<Q = ListRequest> {
    pub key: FeedKey<Q>,
    pub client: DcsClient,
}

/// What a kind of feed asks upstream, and how its answers change for subscribers: the task
/// list ([`ListRequest`]) or one job ([`JobId`], `ShowJobInfo`). Both kinds share the poll loop,
/// the subscriber bookkeeping and the fetcher.
pub trait Question: Clone + Eq + Hash + std::fmt::Debug + Send + Sync + Sized + 'static {
    /// What an answered poll holds.
    type Reply: PartialEq + std::fmt::Debug + Send + Sync + 'static;
    /// The upstream call one poll makes.
    type Call: UpstreamCall<Reply = Self::Reply>;

    /// The call for `key`'s poll at `now`.
    fn call(key: &FeedKey<Self>, now: DateTime<Utc>) -> Self::Call;

    /// When `reply` was fetched, if it says (else: when the poll ended).
    fn fetched_at(reply: &Self::Reply) -> Option<DateTime<Utc>>;

    /// What changed between two replies, as far as subscribers' views go.
    fn change<'a>(old: &'a Self::Reply, new: &'a Self::Reply) -> Change<'a>;

    /// The reply will not change any more: the feed stops polling, keeping it as its answer.
    fn is_final(reply: &Self::Reply) -> bool;

    /// How the `consecutive`-th failed poll in a row is retried: by its error's class, unless
    /// the question knows better.
    fn retry_class(error: &DcsError, _consecutive: u32) -> FailureClass {
        error.class()
    }

    /// Judges from a good `reply` whether each subscriber (`interests`) needs
    /// `activeInterval`: the feed holds every subscriber's plan, so objects need not tell it.
    /// By default a subscriber keeps what it asked for when it subscribed.
    fn judge_activity<'i>(
        _reply: &Self::Reply,
        _interests: impl Iterator<Item = &'i mut Interest>,
        _now: DateTime<Utc>,
    ) {
    }
}

impl Question for ListRequest {
    type Reply = TaskListing;
    type Call = RequestKey;

    fn call(key: &FeedKey<Self>, now: DateTime<Utc>) -> RequestKey {
        RequestKey {
            endpoint: key.endpoint.clone(),
            project_id: key.project_id.clone(),
            credential: key.credential.clone(),
            page: key.request.page_at(now),
            paging: key.request.paging,
            owner: key.owner.clone(),
        }
    }

    fn fetched_at(reply: &TaskListing) -> Option<DateTime<Utc>> {
        reply.fetched_at
    }

    fn change<'a>(old: &'a TaskListing, new: &'a TaskListing) -> Change<'a> {
        Change::between_listings(old, new)
    }

    fn is_final(_: &TaskListing) -> bool {
        false
    }

    /// Something awaited in the list or running for the subscriber: see
    /// [`crate::query::evaluate::needs_active`].
    fn judge_activity<'i>(
        reply: &TaskListing,
        interests: impl Iterator<Item = &'i mut Interest>,
        now: DateTime<Utc>,
    ) {
        let ordered = newest_first(reply);
        for interest in interests {
            interest.active = needs_active(&interest.concern, &ordered, reply, now);
        }
    }
}

impl Question for JobId {
    type Reply = JobInfo;
    type Call = FeedKey<JobId>;

    /// A job lookup does not depend on the moment: the feed's key is the call.
    fn call(key: &FeedKey<Self>, _: DateTime<Utc>) -> FeedKey<JobId> {
        key.clone()
    }

    fn fetched_at(_: &JobInfo) -> Option<DateTime<Utc>> {
        None
    }

    /// Every subscriber awaits the job, so any change concerns them all.
    fn change<'a>(old: &'a JobInfo, new: &'a JobInfo) -> Change<'a> {
        if old == new {
            Change::Tasks(Vec::new())
        } else {
            Change::Everything
        }
    }

    /// A job that ended will not change: its feed stops (`ShowJobInfo` until the verdict).
    fn is_final(reply: &JobInfo) -> bool {
        reply.status.is_terminal()
    }

    /// A job the API does not know yet may have just been started: it is asked again at the
    /// next interval, not after the long wait of errors only a person can fix, so that the
    /// wait stalls (`JobNotFound`) one interval later, not minutes later.
    fn retry_class(error: &DcsError, consecutive: u32) -> FailureClass {
        match JobLookupFailure::of(error) {
            Some(JobLookupFailure::NotFound) if consecutive < NOT_FOUND_ANSWERS_TO_STALL => {
                FailureClass::Transient
            }
            _ => error.class(),
        }
    }
}

/// A job feed's key names the whole `ShowJobInfo` call.
impl UpstreamCall for FeedKey<JobId> {
    type Reply = JobInfo;

    fn credential(&self) -> &str {
        &self.credential
    }

    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn send(&self, client: &DcsClient) -> impl Future<Output = Result<JobInfo, DcsError>> + Send {
        client.show_job(&self.request)
    }
}

/// What a subscriber needs from its feed.
#[derive(Clone, Debug)]
pub struct Interest {
    /// Which tasks concern the subscriber, its wait, and its intervals: one copy per distinct
    /// concern of a feed, whoever brings it ([`Feeds::subscribe`] swaps it for the feed's).
    pub concern: Arc<Concern>,
    /// Something is awaited or running for it, so it needs `activeInterval`. The subscriber's
    /// guess until the feed has a good answer; from then on the feed judges it
    /// ([`Question::judge_activity`]) on every good answer and when the subscriber (re)joins.
    pub active: bool,
}

impl Interest {
    fn interval(&self) -> Duration {
        if self.active {
            self.concern.active_interval
        } else {
            self.concern.interval
        }
    }
}

/// The distinct concerns of one feed's subscribers, counted: thousands of objects asking the
/// same query (a rollout's objects, all settled) share one copy, and the last to leave drops it.
#[derive(Default)]
struct SharedConcerns(HashMap<Arc<Concern>, usize>);

impl SharedConcerns {
    /// The feed's copy of `concern`, kept for one more subscriber (`concern` becomes that copy
    /// when the feed had none).
    fn share(&mut self, concern: Arc<Concern>) -> Arc<Concern> {
        match self.0.entry(concern) {
            Entry::Occupied(mut held) => {
                *held.get_mut() += 1;
                held.key().clone()
            }
            Entry::Vacant(new) => {
                let shared = new.key().clone();
                new.insert(1);
                shared
            }
        }
    }

    /// One subscriber fewer holds `concern`.
    fn release(&mut self, concern: &Concern) {
        if let Some(holders) = self.0.get_mut(concern) {
            *holders -= 1;
            if *holders == 0 {
                self.0.remove(concern);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// One answer of a feed.
#[derive(Debug)]
pub struct Answer<R = TaskListing> {
    /// 1 for a feed's first answer, then counting up.
    pub sequence: u64,
    pub result: FetchResult<R>,
    /// Failed polls in a row, this one included (0 for an answered poll).
    pub failures: u32,
    /// When the answer was fetched: a listing's last page, or the end of a failed poll. A wait
    /// is judged on answers fetched after it started, and timed out only on one fetched at or
    /// after its deadline.
    pub fetched_at: DateTime<Utc>,
    /// The newest successful listing, kept through failures so that an error never erases
    /// what was already known.
    pub last_good: Option<Arc<R>>,
}

/// The feeds' latest answers as a query round reads them: no answer yet until the task feed's
/// first; the job feed's (for a wait that reads the job API) alongside once it has one.
pub fn round_outcome<'a>(
    tasks: Option<&'a Answer>,
    job: Option<&'a Answer<JobInfo>>,
) -> Outcome<'a> {
    let Some(tasks) = tasks else {
        return Outcome::NoAnswerYet;
    };
    Outcome::Answered {
        tasks: Listed {
            result: tasks.result.as_ref(),
            fetched_at: tasks.fetched_at,
            last_good: tasks.last_good.as_deref(),
        },
        job: job.map(|job| JobAnswer {
            result: job.result.as_deref(),
            failures: job.failures,
            fetched_at: job.fetched_at,
        }),
    }
}

/// A subscriber's view of its feed's latest answer (`None` before the first).
pub type AnswerReceiver<R = TaskListing> = watch::Receiver<Option<Arc<Answer<R>>>>;

/// How feeds report what they do (the controller's metrics).
pub trait FeedObserver: Send + Sync {
    /// One poll: how it was answered, how long it took, and the error if it failed.
    fn polled(&self, source: FetchSource, took: Duration, failure: Option<&DcsError>);
}

/// The least time between a feed's poll and the next one it makes for a wait's own need (its
/// first answer must be fetched after it started; its deadline needs a poll after it) rather
/// than for its interval: a burst of new waiters, or of deadlines, on one settled feed costs one
/// call a second at most, not a call each.
pub const MIN_FRESH_POLL_SPACING: Duration = Duration::from_secs(1);

/// Every feed of one kind ([`Question`]) of the process, and who subscribes to which.
pub struct Feeds<S, Q: Question = ListRequest> {
    fetcher: Arc<SharedFetcher>,
    wake: Box<dyn Fn(S, Wake) + Send + Sync>,
    observer: Option<Arc<dyn FeedObserver>>,
    state: Mutex<State<S, Q>>,
}

struct State<S, Q: Question> {
    feeds: HashMap<Arc<FeedKey<Q>>, FeedEntry<S, Q>>,
    /// Each subscriber's feed, by the feed's own key: thousands of subscribers share one copy.
    subscriptions: HashMap<S, Arc<FeedKey<Q>>>,
}

struct FeedEntry<S, Q: Question> {
    client: DcsClient,
    subscribers: HashMap<S, Subscription>,
    /// The subscribers' distinct concerns, each with how many subscribers hold it.
    concerns: SharedConcerns,
    signals: Arc<Signals<Q::Reply>>,
    /// The interval the poll loop last planned with: a subscriber needing less pokes it.
    planned_interval: Option<Duration>,
    /// When the poll loop last planned to poll: a subscriber whose wait needs an answer sooner
    /// pokes it.
    planned_due: Option<Instant>,
    task: tokio::task::AbortHandle,
}

struct Subscription {
    interest: Interest,
    /// The sequence of the last answer the subscriber evaluated.
    seen: Option<u64>,
}

struct Signals<R> {
    answers: watch::Sender<Option<Arc<Answer<R>>>>,
    /// Tells the poll loop to plan again (a subscriber needs a shorter interval, or a refresh).
    poke: Notify,
    refresh: AtomicBool,
}

/// The task-list and the job feeds of one process: a subscriber is on at most one of each
/// (its query's listing, and the job its wait reads from the job API).
pub struct FeedSet<S> {
    pub tasks: Arc<Feeds<S>>,
    pub jobs: Arc<Feeds<S, JobId>>,
}

impl<S> FeedSet<S>
where
    S: Clone + Eq + Hash + Send + Sync + 'static,
{
    /// Both kinds share the fetcher (budgets, slots, auth memory), `wake` and `observer`.
    pub fn new(
        fetcher: Arc<SharedFetcher>,
        wake: impl Fn(S, Wake) + Send + Sync + 'static,
        observer: Option<Arc<dyn FeedObserver>>,
    ) -> Self {
        let wake = Arc::new(wake);
        let job_wake = wake.clone();
        Self {
            tasks: Feeds::new(fetcher.clone(), move |s, w| wake(s, w), observer.clone()),
            jobs: Feeds::new(fetcher, move |s, w| job_wake(s, w), observer),
        }
    }

    /// Removes `subscriber` from every feed it is on.
    pub fn unsubscribe(&self, subscriber: &S) {
        self.tasks.unsubscribe(subscriber);
        self.jobs.unsubscribe(subscriber);
    }

    /// Removes every subscriber `keep` rejects, from both kinds of feed.
    pub fn retain(&self, mut keep: impl FnMut(&S) -> bool) {
        self.tasks.retain(&mut keep);
        self.jobs.retain(keep);
    }

    /// Stops every feed of both kinds (see [`Feeds::stop_all`]).
    pub fn stop_all(&self) {
        self.tasks.stop_all();
        self.jobs.stop_all();
    }

    /// Feeds of both kinds, and subscriptions to them (an object awaiting a job counts twice).
    pub fn counts(&self) -> FeedCounts {
        let (tasks, jobs) = (self.tasks.counts(), self.jobs.counts());
        FeedCounts {
            feeds: tasks.feeds + jobs.feeds,
            subscribers: tasks.subscribers + jobs.subscribers,
        }
    }
}

/// What feeds hold right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeedCounts {
    pub feeds: usize,
    pub subscribers: usize,
}

impl<S, Q> Feeds<S, Q>
where
    S: Clone + Eq + Hash + Send + Sync + 'static,
    Q: Question,
{
    /// `wake` is called with each subscriber to notify of a new answer, and whether someone
    /// waits on it (the controller turns it into a reconcile, in its lane); it must not block.
    pub fn new(
        fetcher: Arc<SharedFetcher>,
        wake: impl Fn(S, Wake) + Send + Sync + 'static,
        observer: Option<Arc<dyn FeedObserver>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            fetcher,
            wake: Box::new(wake),
            observer,
            state: Mutex::new(State {
                feeds: HashMap::new(),
                subscriptions: HashMap::new(),
            }),
        })
    }

    /// Subscribes `subscriber` to the feed of `target.key` (leaving any other feed it was on)
    /// with `interest`, and returns its view of the feed's answers. A new feed polls at once;
    /// an existing one polls sooner if this subscriber needs a shorter interval, or if its wait
    /// needs an answer sooner (it started after the feed's last answer, or its deadline comes
    /// before the planned poll: see [`MIN_FRESH_POLL_SPACING`]).
    pub fn subscribe(
        self: &Arc<Self>,
        subscriber: S,
        target: FeedTarget<Q>,
        interest: Interest,
    ) -> AnswerReceiver<Q::Reply> {
        let mut state = lock(&self.state);
        if let Some(old) = state.subscriptions.get(&subscriber).cloned()
            && *old != target.key
        {
            state.leave(&subscriber, &old);
        }
        let State {
            feeds,
            subscriptions,
        } = &mut *state;
        let key = match feeds.get_key_value(&target.key) {
            Some((key, _)) => key.clone(),
            None => Arc::new(target.key.clone()),
        };
        let entry = feeds
            .entry(key.clone())
            .or_insert_with(|| self.start(&target));
        entry.client = target.client;
        let existing = entry.subscribers.get(&subscriber);
        let seen = existing.and_then(|subscription| subscription.seen);
        let mut interest = Interest {
            concern: entry.concerns.share(interest.concern),
            active: interest.active,
        };
        match existing.filter(|old| old.interest.concern == interest.concern) {
            // Judged on the feed's last good answer already, for this very concern.
            Some(old) => interest.active = old.interest.active,
            None => {
                if let Some(reply) = entry.last_good() {
                    Q::judge_activity(&reply, std::iter::once(&mut interest), Utc::now());
                }
            }
        }
        let needs = interest.interval();
        let wanted = entry
            .last_answered_at()
            .and_then(|answered_at| wait_needs_within(&interest.concern, answered_at, Utc::now()))
            .map(|within| Instant::now() + within);
        let replaced = entry
            .subscribers
            .insert(subscriber.clone(), Subscription { interest, seen });
        if let Some(old) = replaced {
            entry.concerns.release(&old.interest.concern);
        }
        subscriptions.insert(subscriber, key);
        entry.replan_if_sooner(needs);
        if wanted.is_some_and(|wanted| entry.planned_due.is_some_and(|due| wanted < due)) {
            entry.signals.poke.notify_one();
        }
        entry.signals.answers.subscribe()
    }

    /// Records that `subscriber` evaluated the answer `sequence`, so that an answer which does
    /// not concern it need not wake it.
    pub fn saw(&self, subscriber: &S, sequence: u64) {
        let mut state = lock(&self.state);
        if let Some(subscription) = state
            .feed_of(subscriber)
            .and_then(|entry| entry.subscribers.get_mut(subscriber))
        {
            subscription.seen = Some(sequence);
        }
    }

    /// Asks `subscriber`'s feed to poll now (Flux's "reconcile now"); the answer wakes the
    /// subscriber whatever it holds, so the caller need not wait for it. Says whether this call
    /// asked for that poll: `false` when the subscriber is on no feed, or another refresh of the
    /// feed was already waiting for its poll to start.
    pub fn refresh(&self, subscriber: &S) -> bool {
        let mut state = lock(&self.state);
        let Some(entry) = state.feed_of(subscriber) else {
            return false;
        };
        if let Some(subscription) = entry.subscribers.get_mut(subscriber) {
            subscription.seen = None;
        }
        let asked_already = entry.signals.refresh.swap(true, Ordering::SeqCst);
        entry.signals.poke.notify_one();
        !asked_already
    }

    /// Removes `subscriber` from its feed; a feed left without subscribers stops.
    pub fn unsubscribe(&self, subscriber: &S) {
        let mut state = lock(&self.state);
        if let Some(key) = state.subscriptions.get(subscriber).cloned() {
            state.leave(subscriber, &key);
        }
    }

    /// Removes every subscriber `keep` rejects (objects that are gone).
    pub fn retain(&self, mut keep: impl FnMut(&S) -> bool) {
        let mut state = lock(&self.state);
        let gone: Vec<(S, Arc<FeedKey<Q>>)> = state
            .subscriptions
            .iter()
            .filter(|(subscriber, _)| !keep(subscriber))
            .map(|(subscriber, key)| (subscriber.clone(), key.clone()))
            .collect();
        for (subscriber, key) in gone {
            state.leave(&subscriber, &key);
        }
    }

    /// Stops every feed and forgets every subscription: nothing is polled any more (a replica
    /// that stops acting, say on losing its lease, must not keep calling upstream).
    pub fn stop_all(&self) {
        let mut state = lock(&self.state);
        for entry in state.feeds.values() {
            entry.task.abort();
        }
        state.feeds.clear();
        state.subscriptions.clear();
    }

    pub fn counts(&self) -> FeedCounts {
        let state = lock(&self.state);
        FeedCounts {
            feeds: state.feeds.len(),
            subscribers: state.subscriptions.len(),
        }
    }

    fn start(self: &Arc<Self>, target: &FeedTarget<Q>) -> FeedEntry<S, Q> {
        let signals = Arc::new(Signals {
            answers: watch::channel(None).0,
            poke: Notify::new(),
            refresh: AtomicBool::new(false),
        });
        let task = tokio::spawn(poll_loop(
            Arc::downgrade(self),
            target.key.clone(),
            signals.clone(),
        ))
        .abort_handle();
        FeedEntry {
            client: target.client.clone(),
            subscribers: HashMap::new(),
            concerns: SharedConcerns::default(),
            signals,
            planned_interval: None,
            planned_due: None,
            task,
        }
    }
}

impl<S, Q: Question> FeedEntry<S, Q> {
    /// When the feed's latest answer was fetched (`None` before the first).
    /// The newest good reply the feed holds.
    fn last_good(&self) -> Option<Arc<Q::Reply>> {
        self.signals
            .answers
            .borrow()
            .as_ref()
            .and_then(|answer| answer.last_good.clone())
    }

    fn last_answered_at(&self) -> Option<DateTime<Utc>> {
        self.signals
            .answers
            .borrow()
            .as_ref()
            .map(|answer| answer.fetched_at)
    }

    /// Tells the poll loop to plan again when a subscriber now needs a shorter interval than
    /// the one it planned with.
    fn replan_if_sooner(&self, needs: Duration) {
        if self.planned_interval.is_some_and(|planned| needs < planned) {
            self.signals.poke.notify_one();
        }
    }
}

impl<S: Clone + Eq + Hash, Q: Question> State<S, Q> {
    /// The feed `subscriber` is on.
    fn feed_of(&mut self, subscriber: &S) -> Option<&mut FeedEntry<S, Q>> {
        let key = self.subscriptions.get(subscriber)?;
        self.feeds.get_mut(key)
    }

    fn leave(&mut self, subscriber: &S, key: &FeedKey<Q>) {
        self.subscriptions.remove(subscriber);
        let Some(entry) = self.feeds.get_mut(key) else {
            return;
        };
        if let Some(old) = entry.subscribers.remove(subscriber) {
            entry.concerns.release(&old.interest.concern);
        }
        if entry.subscribers.is_empty() {
            entry.task.abort();
            self.feeds.remove(key);
        }
    }
}

/// What one feed's loop remembers between polls.
struct LoopMemory<R> {
    last_poll: Option<Instant>,
    failures: u32,
    last_kind: Option<LastPoll>,
    previous: Option<Arc<Answer<R>>>,
}

/// Polls one key until its feed is dropped (no subscribers, or the process's feeds are gone),
/// or until its answer is final ([`Question::is_final`]).
async fn poll_loop<S, Q>(feeds: Weak<Feeds<S, Q>>, key: FeedKey<Q>, signals: Arc<Signals<Q::Reply>>)
where
    S: Clone + Eq + Hash + Send + Sync + 'static,
    Q: Question,
{
    let mut memory = LoopMemory {
        last_poll: None,
        failures: 0,
        last_kind: None,
        previous: None,
    };
    loop {
        // Created before planning, so that a poke during planning is not lost.
        let poked = signals.poke.notified();
        let Some(due) = plan_next_poll(&feeds, &key, &signals, &memory) else {
            return;
        };
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = poked => continue,
        }
        signals.refresh.store(false, Ordering::SeqCst);
        let Some(feeds) = feeds.upgrade() else {
            return;
        };
        if !poll_once(&feeds, &key, &signals, &mut memory).await {
            return;
        }
        let settled = memory
            .previous
            .as_ref()
            .is_some_and(|answer| answer.result.as_deref().is_ok_and(Q::is_final));
        if settled {
            return;
        }
    }
}

/// How soon, from `now`, the wait of `plan` needs the feed's next answer, given when the last
/// one was fetched: at once when the wait started after it (that answer cannot give the wait
/// its first verdict), just after the deadline when the deadline lies after it; `None` when
/// the interval decides.
fn wait_needs_within(
    concern: &Concern,
    answered_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let wait = concern.wait.as_ref()?;
    if wait.started_at > answered_at {
        return Some(Duration::ZERO);
    }
    until_deadline_poll(wait.deadline, answered_at, now)
}

/// When the next poll is due, or `None` when the feed is gone.
fn plan_next_poll<S, Q>(
    feeds: &Weak<Feeds<S, Q>>,
    key: &FeedKey<Q>,
    signals: &Signals<Q::Reply>,
    memory: &LoopMemory<Q::Reply>,
) -> Option<Instant>
where
    S: Clone + Eq + Hash + Send + Sync + 'static,
    Q: Question,
{
    let feeds = feeds.upgrade()?;
    let mut state = lock(&feeds.state);
    let entry = state.feeds.get_mut(key)?;
    let needed = entry
        .subscribers
        .values()
        .map(|subscription| subscription.interest.interval())
        .min()?;
    entry.planned_interval = Some(needed);
    let (Some(last_poll), Some(kind)) = (memory.last_poll, memory.last_kind) else {
        return Some(Instant::now());
    };
    if signals.refresh.load(Ordering::SeqCst) {
        return Some(Instant::now());
    }
    let delay = feed_delay(kind, needed, rand::random_range(-1.0..=1.0));
    let mut due = last_poll + delay;
    // A wait's own need comes first (a fresh first answer, the poll after its deadline), but
    // never sooner than MIN_FRESH_POLL_SPACING after the last poll.
    if let Some(answered_at) = memory.previous.as_ref().map(|answer| answer.fetched_at) {
        let now = Utc::now();
        let wanted = entry
            .subscribers
            .values()
            .filter_map(|subscription| {
                wait_needs_within(&subscription.interest.concern, answered_at, now)
            })
            .min();
        if let Some(within) = wanted {
            due = due.min((Instant::now() + within).max(last_poll + MIN_FRESH_POLL_SPACING));
        }
    }
    entry.planned_due = Some(due);
    Some(due)
}

/// One poll and its publication; `false` when the feed is gone.
async fn poll_once<S, Q>(
    feeds: &Arc<Feeds<S, Q>>,
    key: &FeedKey<Q>,
    signals: &Signals<Q::Reply>,
    memory: &mut LoopMemory<Q::Reply>,
) -> bool
where
    S: Clone + Eq + Hash + Send + Sync + 'static,
    Q: Question,
{
    let client = {
        let state = lock(&feeds.state);
        match state.feeds.get(key) {
            Some(entry) => entry.client.clone(),
            None => return false,
        }
    };
    let started = Instant::now();
    let (result, source) = feeds.fetcher.fetch(Q::call(key, Utc::now()), client).await;
    if let Some(observer) = &feeds.observer {
        observer.polled(
            source,
            started.elapsed(),
            result.as_ref().err().map(|e| &**e),
        );
    }
    memory.last_poll = Some(Instant::now());
    memory.last_kind = Some(match &result {
        Ok(_) => {
            memory.failures = 0;
            LastPoll::Answered
        }
        Err(error) => {
            memory.failures = memory.failures.saturating_add(1);
            LastPoll::Failed {
                consecutive: memory.failures,
                class: Q::retry_class(error, memory.failures),
            }
        }
    });
    let previous = memory.previous.take();
    let fetched_at = match &result {
        Ok(reply) => Q::fetched_at(reply).unwrap_or_else(Utc::now),
        Err(_) => Utc::now(),
    };
    let answer = Arc::new(Answer {
        sequence: previous.as_ref().map_or(1, |p| p.sequence + 1),
        failures: memory.failures,
        fetched_at,
        last_good: match &result {
            Ok(listing) => Some(listing.clone()),
            Err(_) => previous.as_ref().and_then(|p| p.last_good.clone()),
        },
        result,
    });
    memory.previous = Some(answer.clone());

    let wakes = {
        let mut state = lock(&feeds.state);
        let Some(entry) = state.feeds.get_mut(key) else {
            return false;
        };
        // Published under the lock, so a subscriber joining now either sees this answer or is
        // counted below as not having seen the previous one.
        signals.answers.send_replace(Some(answer.clone()));
        let wakes = who_to_wake(entry, previous.as_deref(), &answer);
        if let Ok(reply) = answer.result.as_deref() {
            let interests = entry.subscribers.values_mut().map(|s| &mut s.interest);
            Q::judge_activity(reply, interests, Utc::now());
        }
        wakes
    };
    for (subscriber, wake) in wakes {
        (feeds.wake)(subscriber, wake);
    }
    true
}

/// Why a feed wakes a subscriber: how soon its write matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Its wait is open: someone (`kubectl wait`, a pipeline) is waiting on the verdict this
    /// answer may give.
    Awaiting,
    /// Its view changed, but nobody waits on it: a refresh, which can go after the verdicts.
    Refresh,
}

/// The subscribers an answer wakes, awaiting ones first. A subscriber that saw the previous
/// answer and is not concerned by this one has, in effect, seen this one too: its view did not
/// change, unless this is the first answer fetched after its wait started or after its deadline
/// (it may now give the verdict the older answer could not).
fn who_to_wake<S: Clone, Q: Question>(
    entry: &mut FeedEntry<S, Q>,
    previous: Option<&Answer<Q::Reply>>,
    answer: &Answer<Q::Reply>,
) -> Vec<(S, Wake)> {
    let change = Change::between::<Q>(previous, answer);
    let mut wakes = Vec::new();
    for (subscriber, subscription) in &mut entry.subscribers {
        if subscription.seen == Some(answer.sequence) {
            continue;
        }
        let missed = subscription.seen != previous.map(|p| p.sequence);
        let crossed = |moment: DateTime<Utc>| {
            first_fetched_since(previous.map(|p| p.fetched_at), answer.fetched_at, moment)
        };
        let wait = subscription.interest.concern.wait.as_ref();
        let wait_due =
            wait.is_some_and(|wait| crossed(wait.started_at) || wait.deadline.is_some_and(crossed));
        let concerned = change.concerns(&subscription.interest.concern);
        if !(missed || concerned || wait_due) {
            subscription.seen = Some(answer.sequence);
            continue;
        }
        let wake = if wait.is_some() {
            Wake::Awaiting
        } else {
            Wake::Refresh
        };
        wakes.push((subscriber.clone(), wake));
    }
    // Awaiting first: a stable partition keeps the rest in the map's order.
    wakes.sort_by_key(|(_, wake)| *wake != Wake::Awaiting);
    wakes
}

/// Whether an answer fetched at `answered_at` is the first at or after `moment`, the previous
/// one having been fetched at `previous_at` (`None`: no previous answer, which wakes everyone
/// anyway). The same boundary as the wait's judgement: fetched at `moment` counts as after it.
fn first_fetched_since(
    previous_at: Option<DateTime<Utc>>,
    answered_at: DateTime<Utc>,
    moment: DateTime<Utc>,
) -> bool {
    previous_at.is_some_and(|previous| previous < moment) && moment <= answered_at
}

/// What changed between two answers, as far as subscribers' views go.
pub enum Change<'a> {
    /// Anything may have changed (first answer, a new error, completeness changed, tasks
    /// without ids changed).
    Everything,
    /// Only these tasks appeared, changed or vanished: both copies of a changed task (the one
    /// before and the one after), since a task that leaves a subscriber's filter (EXECUTING to
    /// CANCELLED under `statuses: [EXECUTING, SUCCESS, FAILED]`) concerns it by its old copy.
    Tasks(Vec<&'a CenterTask>),
}

impl<'a> Change<'a> {
    /// Whether the change may alter what a plan of `concern` makes of the listing: anything, or
    /// a task whose copy before or after concerns it.
    fn concerns(&self, concern: &Concern) -> bool {
        match self {
            Change::Everything => true,
            Change::Tasks(tasks) => tasks.iter().any(|task| concerns(concern, task)),
        }
    }

    fn between<Q: Question>(
        previous: Option<&'a Answer<Q::Reply>>,
        answer: &'a Answer<Q::Reply>,
    ) -> Change<'a> {
        match (previous.map(|p| &p.result), &answer.result) {
            (Some(Ok(old)), Ok(new)) => Q::change(old, new),
            // The same failure again: every subscriber shows it already (and a subscriber
            // whose deadline it passes is woken all the same, see `who_to_wake`), unless it
            // now means something else (a job still unknown at the second asking).
            (Some(Err(old)), Err(new))
                if same_error(old, new)
                    && previous.is_some_and(|previous| {
                        Q::retry_class(old, previous.failures)
                            == Q::retry_class(new, answer.failures)
                    }) =>
            {
                Change::Tasks(Vec::new())
            }
            // A first answer, an error that is new, or the end of one: every subscriber shows
            // it.
            _ => Change::Everything,
        }
    }

    fn between_listings(old: &'a TaskListing, new: &'a TaskListing) -> Change<'a> {
        // `task_count` alone is not a reason to wake everyone: a task the listing gained or
        // lost shows as that task below, and wakes those it concerns; the others' `taskCount`
        // catches up at their next concerned change or the sync heartbeat.
        if old.complete != new.complete {
            return Change::Everything;
        }
        // The copy of a repeated id that evaluation keeps is the one compared.
        let ids = |listing: &'a TaskListing| -> Option<HashMap<&'a str, &'a CenterTask>> {
            distinct_tasks(&listing.tasks)
                .into_iter()
                .map(|task| task.id.as_deref().map(|id| (id, task)))
                .collect()
        };
        let (Some(before), Some(after)) = (ids(old), ids(new)) else {
            return if old.tasks == new.tasks {
                Change::Tasks(Vec::new())
            } else {
                Change::Everything
            };
        };
        let mut changed: Vec<&CenterTask> = Vec::new();
        for (id, task) in &after {
            match before.get(id) {
                Some(old) if old == task => {}
                Some(old) => changed.extend([*old, *task]),
                None => changed.push(task),
            }
        }
        changed.extend(
            before
                .iter()
                .filter(|(id, _)| !after.contains_key(*id))
                .map(|(_, task)| *task),
        );
        Change::Tasks(changed)
    }
}

/// A lock whose data stays usable even if a holder panicked: every critical section here leaves
/// the maps consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
