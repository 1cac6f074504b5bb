//! Whose write goes first at the apiserver.
//!
//! When one answer changes thousands of objects, the apiserver's write rate, not the upstream,
//! decides how soon each `kubectl wait` returns. So writes go in two lanes:
//!
//! - **awaiting**: an object whose wait is open, woken by its feed. It is woken at once, and its
//!   write goes at once: someone is waiting on its verdict.
//! - **background**: everything else (refreshes of settled objects, lists whose tasks changed,
//!   events). While any awaiting object woken by a feed has not finished its reconcile, no
//!   background write starts. Then background writes share the apiserver at an in-flight limit
//!   learnt from the latency of the writes ([`Pacer`]), so they use what the apiserver has left
//!   however fast or slow it is.
//!
//! Objects a feed wakes for a refresh are not woken at all until the background lane has room:
//! they wait in the backlog, in order, holding no reconcile slot and costing no round they would
//! throw away. A background reconcile started some other way (a spec change, a restart) that
//! finds an awaiting write pending, or no room, gives its turn up ([`Lanes::background_write`]
//! says `None`): it joins the backlog rather than hold a reconcile slot that an awaiting object,
//! or an admitted refresh, needs.
//!
//! Everything an object holds here is released by a guard ([`Reconciling`], [`WritePermit`]), so
//! a reconcile cancelled at any await (its object deleted) leaves nothing behind.

mod pacer;

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

pub use pacer::Pacer;

use crate::upstream::Wake;

/// An awaiting object whose reconcile never ran (its object went away between the wake and its
/// turn) stops holding the background lane back after this long. Generous: at 10,000 objects the
/// last of 5,000 verdicts may be written a minute after the first.
pub const AWAITING_EXPIRY: Duration = Duration::from_secs(300);

/// A refresh woken from the backlog whose reconcile never ran gives its place back after this
/// long.
pub const ADMITTED_EXPIRY: Duration = Duration::from_secs(30);

/// How often an event waiting for its turn looks again whether its queue is filling up.
pub const EVENT_RECHECK: Duration = Duration::from_millis(100);

/// Stale entries are looked for at most this often (each look walks every entry).
const EXPIRY_SWEEP: Duration = Duration::from_secs(1);

/// The two lanes of one process, keyed by object.
pub struct Lanes<K> {
    state: Mutex<LaneState<K>>,
    /// Told whenever a write ends or an awaiting object is done: events waiting for their turn
    /// look again.
    changed: Notify,
    /// Starts a reconcile of the object (the controller's trigger channel).
    wake: Box<dyn Fn(K) + Send + Sync>,
}

struct LaneState<K> {
    /// Objects woken for their open wait whose reconcile has not ended since: when woken.
    awaiting: HashMap<K, Instant>,
    /// Objects woken for a refresh, waiting for room, in the order they were woken. An entry
    /// counts only while it is in `queued` too (forgotten objects are skipped).
    backlog: VecDeque<K>,
    queued: HashSet<K>,
    /// Objects woken from the backlog whose reconcile has not reached its write or ended: when.
    admitted: HashMap<K, Instant>,
    /// Background writes in flight.
    writing: usize,
    pacer: Pacer,
    swept: Instant,
}

/// What the lanes hold now (metrics, tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LaneCounts {
    /// Awaiting objects woken whose reconcile has not ended.
    pub awaiting: usize,
    /// Refreshes waiting in the backlog.
    pub deferred: usize,
    /// Refreshes woken from the backlog, not yet writing.
    pub admitted: usize,
    /// Background writes in flight.
    pub writing: usize,
    /// Background writes allowed in flight.
    pub limit: usize,
}

impl<K> Lanes<K>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
{
    /// Lanes that start reconciles with `wake`, which must not block.
    pub fn new(wake: impl Fn(K) + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(LaneState {
                awaiting: HashMap::new(),
                backlog: VecDeque::new(),
                queued: HashSet::new(),
                admitted: HashMap::new(),
                writing: 0,
                pacer: Pacer::default(),
                swept: Instant::now(),
            }),
            changed: Notify::new(),
            wake: Box::new(wake),
        })
    }

    /// A feed woke `object` (see [`Wake`]): an awaiting object is reconciled at once and holds
    /// the background lane back until that reconcile ends; a refresh waits for room.
    pub fn woken(&self, object: K, wake: Wake) {
        match wake {
            Wake::Awaiting => {
                {
                    let mut state = self.lock();
                    state.queued.remove(&object);
                    state.awaiting.insert(object.clone(), Instant::now());
                }
                // Background writes waiting for room give their turn up.
                self.changed.notify_waiters();
                (self.wake)(object);
            }
            Wake::Refresh => self.defer(object),
        }
    }

    /// `object`'s refresh waits in the backlog for room in the background lane (once, however
    /// often it is deferred before its turn).
    pub fn defer(&self, object: K) {
        {
            let mut state = self.lock();
            if state.queued.insert(object.clone()) {
                state.backlog.push_back(object);
            }
        }
        self.dispatch();
    }

    /// Forgets `object` (deleted): it holds nothing back any more.
    pub fn forget(&self, object: &K) {
        {
            let mut state = self.lock();
            state.awaiting.remove(object);
            state.admitted.remove(object);
            state.queued.remove(object);
        }
        self.changed.notify_waiters();
        self.dispatch();
    }

    /// Forgets every object `keep` rejects (gone, a delete the watch missed).
    pub fn retain(&self, mut keep: impl FnMut(&K) -> bool) {
        {
            let mut state = self.lock();
            state.awaiting.retain(|object, _| keep(object));
            state.admitted.retain(|object, _| keep(object));
            state.queued.retain(|object| keep(object));
            let LaneState {
                backlog, queued, ..
            } = &mut *state;
            backlog.retain(|object| queued.contains(object));
        }
        self.changed.notify_waiters();
        self.dispatch();
    }

    /// Wakes the refreshes there is room for now, and drops stale entries; also called
    /// periodically, so an entry that expired frees the lane even when nothing else happens.
    pub fn dispatch(&self) {
        let due = {
            let mut state = self.lock();
            state.sweep(Instant::now());
            state.admit()
        };
        for object in due {
            (self.wake)(object);
        }
    }

    /// Marks the start of a reconcile of `object`. The guard, dropped when the reconcile ends
    /// or is cancelled, releases what the object held: its awaiting mark or its admission, if
    /// they came before this reconcile started (a wake during it brings another reconcile,
    /// which releases that one).
    pub fn reconciling(self: &Arc<Self>, object: K) -> Reconciling<K> {
        Reconciling {
            lanes: self.clone(),
            object,
            started: Instant::now(),
        }
    }

    /// A write of an object whose wait is open: it goes at once. The permit only times it.
    pub fn awaiting_write(self: &Arc<Self>) -> WritePermit<K> {
        WritePermit::new(self, false)
    }

    /// A background status write of `object` if it may go now: `None` while an awaiting object
    /// is pending or when the lane has no room, and the caller gives its turn up
    /// ([`Lanes::defer`]). It never waits for room: a reconcile slot held while waiting could be
    /// the one an admitted refresh needs to free that room, and with every slot so held the
    /// lanes would stall until the admissions expire.
    pub fn background_write(self: &Arc<Self>, object: &K) -> Option<WritePermit<K>> {
        let mut state = self.lock();
        state.sweep(Instant::now());
        if !state.awaiting.is_empty() {
            return None;
        }
        // A refresh woken from the backlog writes in the place it was admitted to.
        let admitted = state.admitted.remove(object).is_some();
        if admitted || state.has_room() {
            state.writing += 1;
            return Some(WritePermit::new(self, true));
        }
        None
    }

    /// A background write that must happen (an event): once no awaiting object is pending and
    /// there is room, or at once when `cannot_wait` says so (its queue is filling up, and the
    /// reconciles queueing into it would otherwise stall).
    pub async fn event_write(self: &Arc<Self>, cannot_wait: impl Fn() -> bool) -> WritePermit<K> {
        loop {
            let changed = self.changed.notified();
            {
                let mut state = self.lock();
                state.sweep(Instant::now());
                if (state.awaiting.is_empty() && state.has_room()) || cannot_wait() {
                    state.writing += 1;
                    return WritePermit::new(self, true);
                }
            }
            let _ = tokio::time::timeout(EVENT_RECHECK, changed).await;
        }
    }

    pub fn counts(&self) -> LaneCounts {
        let state = self.lock();
        LaneCounts {
            awaiting: state.awaiting.len(),
            deferred: state.queued.len(),
            admitted: state.admitted.len(),
            writing: state.writing,
            limit: state.pacer.limit(),
        }
    }

    fn finished(&self, object: &K, started: Instant) {
        {
            let mut state = self.lock();
            let before = |at: Option<&Instant>| at.is_some_and(|at| *at <= started);
            if before(state.awaiting.get(object)) {
                state.awaiting.remove(object);
            }
            if before(state.admitted.get(object)) {
                state.admitted.remove(object);
            }
        }
        self.changed.notify_waiters();
        self.dispatch();
    }

    fn wrote(&self, background: bool, outcome: Option<(Duration, bool)>) {
        {
            let mut state = self.lock();
            if background {
                state.writing = state.writing.saturating_sub(1);
            }
            if let Some((latency, overloaded)) = outcome {
                state.pacer.record(latency, overloaded);
            }
        }
        self.changed.notify_waiters();
        self.dispatch();
    }

    fn lock(&self) -> MutexGuard<'_, LaneState<K>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<K: Clone + Eq + Hash> LaneState<K> {
    fn has_room(&self) -> bool {
        self.writing + self.admitted.len() < self.pacer.limit()
    }

    /// The refreshes to wake now: none while an awaiting object is pending, else as many as
    /// the limit leaves room for, oldest first.
    fn admit(&mut self) -> Vec<K> {
        let mut due = Vec::new();
        if !self.awaiting.is_empty() {
            return due;
        }
        let now = Instant::now();
        while self.has_room() {
            let Some(object) = self.backlog.pop_front() else {
                break;
            };
            if self.queued.remove(&object) {
                self.admitted.insert(object.clone(), now);
                due.push(object);
            }
        }
        due
    }

    /// Drops awaiting marks and admissions whose reconcile never came.
    fn sweep(&mut self, now: Instant) {
        if now.duration_since(self.swept) < EXPIRY_SWEEP {
            return;
        }
        self.swept = now;
        let fresh =
            |limit: Duration| move |_: &K, at: &mut Instant| now.duration_since(*at) < limit;
        self.awaiting.retain(fresh(AWAITING_EXPIRY));
        self.admitted.retain(fresh(ADMITTED_EXPIRY));
    }
}

/// Held for one reconcile of one object; see [`Lanes::reconciling`].
pub struct Reconciling<K>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
{
    lanes: Arc<Lanes<K>>,
    object: K,
    started: Instant,
}

impl<K> Drop for Reconciling<K>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
{
    fn drop(&mut self) {
        self.lanes.finished(&self.object, self.started);
    }
}

/// One write's turn: a background one holds a place in the lane until it is dropped. Its
/// latency teaches the lane's [`Pacer`] when [`WritePermit::finish`] says how it went (a write
/// cancelled midway teaches nothing).
pub struct WritePermit<K>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
{
    lanes: Arc<Lanes<K>>,
    background: bool,
    started: Instant,
    outcome: Option<(Duration, bool)>,
}

impl<K> WritePermit<K>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
{
    fn new(lanes: &Arc<Lanes<K>>, background: bool) -> Self {
        Self {
            lanes: lanes.clone(),
            background,
            started: Instant::now(),
            outcome: None,
        }
    }

    /// The write ended; `overloaded` when the apiserver throttled it, timed out or failed on
    /// its side (a refusal such as a 403 or 422 says nothing of its load).
    pub fn finish(mut self, overloaded: bool) {
        self.outcome = Some((self.started.elapsed(), overloaded));
    }
}

impl<K> std::fmt::Debug for WritePermit<K>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WritePermit")
            .field("background", &self.background)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl<K> Drop for WritePermit<K>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
{
    fn drop(&mut self) {
        self.lanes.wrote(self.background, self.outcome.take());
    }
}

#[cfg(test)]
mod tests;
