//! How many background writes the apiserver is given at once, learnt from the latency of the
//! writes the operator makes.
//!
//! A write's latency is what it costs the apiserver plus the time it queued there. While the
//! apiserver keeps up, latency stays near the lowest it has shown; once more writes are in flight
//! than it can serve, they only queue, and latency grows with every one added. So the limit
//! grows by about one per round of writes answered near that floor (additive increase), and
//! shrinks by a tenth for a write answered well above it and by half for a refused or failed
//! one (multiplicative decrease). The limit then settles where the apiserver is busy but not
//! queueing: on a fast apiserver that is many writes, on a slow one few, and nobody had to guess
//! a per-object delay.

use std::time::Duration;

/// Background writes in flight at first, before any latency is known.
pub const INITIAL_LIMIT: f64 = 4.0;
/// At least one background write can always go (no awaiting write pending).
pub const MIN_LIMIT: f64 = 1.0;
/// At most as many background writes at once as reconciles run by default (`--concurrency`).
pub const MAX_LIMIT: f64 = 16.0;
/// A write answered within this many times the floor latency counts as "the apiserver kept up".
pub const QUEUEING_TOLERANCE: f64 = 2.0;
/// How far the floor moves towards a slower write, per write: slow enough that a burst of
/// queueing does not raise it, fast enough that an apiserver that became slower for good is
/// learnt within a few hundred writes.
const FLOOR_DRIFT: f64 = 1.0 / 256.0;

/// The adaptive limit of background writes in flight.
#[derive(Debug, Clone)]
pub struct Pacer {
    limit: f64,
    /// The lowest latency recently seen (drifting up slowly, down at once).
    floor: Option<Duration>,
}

impl Default for Pacer {
    fn default() -> Self {
        Self {
            limit: INITIAL_LIMIT,
            floor: None,
        }
    }
}

impl Pacer {
    /// Background writes allowed in flight now.
    pub fn limit(&self) -> usize {
        // The limit stays within [MIN_LIMIT, MAX_LIMIT], so the cast cannot overflow.
        self.limit.floor() as usize
    }

    /// The floor latency learnt so far.
    pub fn floor(&self) -> Option<Duration> {
        self.floor
    }

    /// One write answered after `latency`; `overloaded` when the apiserver throttled it, timed
    /// out or failed on its side (it asks for fewer writes, whatever the write took).
    pub fn record(&mut self, latency: Duration, overloaded: bool) {
        if overloaded {
            self.limit = (self.limit / 2.0).max(MIN_LIMIT);
            return;
        }
        let floor = match self.floor {
            Some(floor) if latency > floor => floor + (latency - floor).mul_f64(FLOOR_DRIFT),
            _ => latency,
        };
        self.floor = Some(floor);
        if latency.as_secs_f64() <= floor.as_secs_f64() * QUEUEING_TOLERANCE {
            self.limit = (self.limit + 1.0 / self.limit).min(MAX_LIMIT);
        } else {
            self.limit = (self.limit * 0.9).max(MIN_LIMIT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn writes_answered_near_the_floor_open_the_lane_up_to_its_cap() {
        let mut pacer = Pacer::default();
        assert_eq!(pacer.limit(), 4);
        pacer.record(ms(10), false);
        assert_eq!(pacer.floor(), Some(ms(10)));
        // About one more per round of `limit` writes: 4 -> 5 takes 5 writes.
        for _ in 0..3 {
            pacer.record(ms(15), false);
        }
        assert_eq!(pacer.limit(), 4);
        pacer.record(ms(15), false);
        assert_eq!(pacer.limit(), 5);
        for _ in 0..500 {
            pacer.record(ms(20), false);
        }
        assert_eq!(pacer.limit(), 16, "never above the cap");
    }

    #[test]
    fn queueing_shrinks_the_limit_and_failures_halve_it() {
        let mut pacer = Pacer::default();
        for _ in 0..500 {
            pacer.record(ms(10), false);
        }
        assert_eq!(pacer.limit(), 16);
        // Writes now wait at the apiserver: five times the floor.
        pacer.record(ms(50), false);
        assert_eq!(pacer.limit(), 14, "16 * 0.9");
        pacer.record(ms(10), true);
        assert_eq!(pacer.limit(), 7, "14.4 / 2");
        for _ in 0..100 {
            pacer.record(ms(10), true);
        }
        assert_eq!(pacer.limit(), 1, "one write can always go");
    }

    #[test]
    fn the_floor_falls_at_once_and_rises_only_slowly() {
        let mut pacer = Pacer::default();
        pacer.record(ms(100), false);
        pacer.record(ms(20), false);
        assert_eq!(pacer.floor(), Some(ms(20)));
        // One slow write moves the floor by 1/256 of the gap only.
        pacer.record(ms(276), false);
        assert_eq!(pacer.floor(), Some(ms(21)));
        // An apiserver slower for good is learnt: the floor approaches its latency.
        for _ in 0..2_000 {
            pacer.record(ms(276), false);
        }
        assert!(pacer.floor().unwrap() > ms(270), "{:?}", pacer.floor());
        // ...and the lane opened again at that pace.
        assert_eq!(pacer.limit(), 16);
    }
}
