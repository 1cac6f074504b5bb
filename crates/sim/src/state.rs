//! The shared state the HTTP handlers hold: the world ([`super::store`]), the virtual clock, the
//! authentication policy, the fault queue, the counters and the list encoding, each behind its
//! own lock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::auth::AuthPolicy;
use super::faults::FaultQueue;
use super::limits::{MAX_CLOCK_OFFSET, add_saturating};
use super::scenario::{Scenario, TaskCountEncoding, truncate_to_millis};
use super::stats::Stats;
use super::store::{DuplicateId, JobStore, TaskStore};

/// Sim time: the real clock plus an offset that only moves forward, through the admin API.
///
/// Tying it to the real clock (rather than freezing it) lets the demo's switchover finish on
/// its own while a user watches, and lets tests skip ahead without sleeping.
///
/// Invariant: the offset stays within `0..=MAX_CLOCK_OFFSET` (in milliseconds), so `now` is
/// always a valid instant.
#[derive(Debug, Default)]
pub(super) struct VirtualClock {
    offset_ms: AtomicI64,
}

/// An advance the clock refused because it would move more than [`MAX_CLOCK_OFFSET`] in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ClockLimit {
    /// How far the clock had moved before the refused advance.
    pub moved: TimeDelta,
}

impl VirtualClock {
    pub fn now(&self) -> DateTime<Utc> {
        truncate_to_millis(add_saturating(Utc::now(), self.offset()))
    }

    pub fn offset(&self) -> TimeDelta {
        let offset = self.offset_ms.load(Ordering::SeqCst);
        TimeDelta::milliseconds(offset.clamp(0, MAX_CLOCK_OFFSET.num_milliseconds()))
    }

    /// Moves sim time forward by `by` (sub-millisecond parts are dropped) and returns the new
    /// sim now; refuses, leaving the clock as it was, when the total would pass
    /// [`MAX_CLOCK_OFFSET`].
    pub fn advance(&self, by: Duration) -> Result<DateTime<Utc>, ClockLimit> {
        let limit = MAX_CLOCK_OFFSET.num_milliseconds();
        let by = i64::try_from(by.as_millis()).ok();
        self.offset_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |offset| {
                offset.checked_add(by?).filter(|total| *total <= limit)
            })
            .map_err(|offset| ClockLimit {
                moved: TimeDelta::milliseconds(offset.clamp(0, limit)),
            })?;
        Ok(self.now())
    }
}

/// Everything the handlers share. Each part has its own lock so that stats and faults never
/// wait on a large list rendering. Where both are held, `jobs` is locked before `store`.
#[derive(Debug)]
pub(super) struct SimState {
    pub clock: VirtualClock,
    pub auth: AuthPolicy,
    pub store: Mutex<TaskStore>,
    pub jobs: Mutex<JobStore>,
    pub faults: Mutex<FaultQueue>,
    pub stats: Mutex<Stats>,
    pub encoding: Mutex<TaskCountEncoding>,
}

impl SimState {
    pub fn new(
        scenario: &Scenario,
        encoding: TaskCountEncoding,
        auth: AuthPolicy,
        start: DateTime<Utc>,
    ) -> Result<Self, DuplicateId> {
        Ok(Self {
            clock: VirtualClock::default(),
            auth,
            store: Mutex::new(TaskStore::from_scenario(scenario, start)?),
            jobs: Mutex::new(JobStore::from_scenario(scenario, start)),
            faults: Mutex::new(FaultQueue::default()),
            stats: Mutex::new(Stats::default()),
            encoding: Mutex::new(encoding),
        })
    }
}

/// Locks a mutex, carrying on after a panic elsewhere: every critical section leaves the data
/// consistent, and a test simulator should keep answering.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_only_moves_by_advance() {
        let clock = VirtualClock::default();
        let before = clock.now();
        let after = clock.advance(Duration::from_secs(3600)).unwrap();
        assert!(after - before >= TimeDelta::hours(1));
        assert_eq!(clock.offset(), TimeDelta::hours(1));
    }

    #[test]
    fn the_clock_refuses_to_pass_its_limit_and_keeps_working() {
        let clock = VirtualClock::default();
        // 3,000,000,000 hours: panicked with "`DateTime + TimeDelta` overflowed" before the limit.
        let huge = Duration::from_secs(3_000_000_000 * 3600);
        assert_eq!(
            clock.advance(huge),
            Err(ClockLimit {
                moved: TimeDelta::zero()
            })
        );
        assert_eq!(clock.offset(), TimeDelta::zero());
        assert_eq!(
            clock.advance(Duration::MAX),
            Err(ClockLimit {
                moved: TimeDelta::zero()
            })
        );
        let limit = MAX_CLOCK_OFFSET.to_std().unwrap();
        clock.advance(limit - Duration::from_secs(1)).unwrap();
        assert_eq!(
            clock.advance(Duration::from_secs(2)),
            Err(ClockLimit {
                moved: MAX_CLOCK_OFFSET - TimeDelta::seconds(1)
            })
        );
        clock.advance(Duration::from_secs(1)).unwrap();
        assert_eq!(clock.offset(), MAX_CLOCK_OFFSET);
        assert!(clock.advance(Duration::from_millis(1)).is_err());
        assert!(clock.advance(Duration::ZERO).is_ok());
        assert!(clock.now() > Utc::now() + TimeDelta::days(36_000));
    }
}
