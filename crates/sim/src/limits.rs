//! How far a scenario or an admin request may move simulated time, and how many tasks it may
//! generate.
//!
//! chrono panics when an instant leaves its calendar (about ±262,000 years) or a `TimeDelta`
//! its range (about ±292 million years), while the duration syntax reaches much further
//! (`3000000000h` parses, and so does a long run of such parts). So every value that moves time
//! is checked against one of these limits where it comes in: a scenario that breaks one is
//! refused at load time with a [`super::scenario::FieldError`] naming the field and the limit,
//! an admin request that breaks one gets a 400 naming the parameter. The limits are far beyond
//! what a test needs, yet their sum stays far inside chrono's range, so instants computed later
//! (a task's `updated_at`, the sim clock's now) cannot overflow; those computations saturate
//! anyway ([`add_saturating`]) so that a bug here could never turn into a panic.

use chrono::{DateTime, TimeDelta, Utc};

/// 100 Julian years of 365.25 days.
const CENTURY: TimeDelta = TimeDelta::days(36_525);

/// How far the admin API may move the simulated clock ahead of the real one, in total over all
/// `POST /_sim/clock/advance` calls.
pub(super) const MAX_CLOCK_OFFSET: TimeDelta = CENTURY;

/// How far before or after its base instant (simulator start, or the sim clock's now for a task
/// added through the admin API) a relative `createdAt` or `firstCreatedAt` may lie. Tasks
/// further away can be given an RFC 3339 time.
pub(super) const MAX_RELATIVE_CREATED_AT: TimeDelta = CENTURY;

/// How long all the `for` durations of one task's timeline may add up to.
pub(super) const MAX_TIMELINE_SPAN: TimeDelta = CENTURY;

/// How many tasks the `generate` entries of one scenario may create, all entries together.
/// More is almost surely a typo, and would eat the machine's memory.
pub(super) const MAX_GENERATED_TASKS: usize = 100_000;

/// How far apart the first and the last task of one `generate` entry may be
/// (`every` × (`count` − 1)).
pub(super) const MAX_GENERATED_SPAN: TimeDelta = CENTURY;

/// A limit as error messages show it: in the duration syntax the fields take, plus years,
/// e.g. `876600h (100 years)`.
pub(super) fn describe(limit: TimeDelta) -> String {
    format!(
        "{} ({} years)",
        show(limit),
        limit.num_days().saturating_mul(4) / 1461
    )
}

/// A non-negative span in the duration syntax (`1h30m`); negative spans show their magnitude.
pub(super) fn show(span: TimeDelta) -> String {
    dcs_common::duration::format(span.abs().to_std().unwrap_or_default())
}

/// `time + delta`, or the end of the calendar in the direction of `delta` when that would leave
/// it. Used wherever an instant is computed after the inputs were validated.
pub(super) fn add_saturating(time: DateTime<Utc>, delta: TimeDelta) -> DateTime<Utc> {
    time.checked_add_signed(delta)
        .unwrap_or(if delta < TimeDelta::zero() {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_as_the_field_syntax_plus_years() {
        assert_eq!(describe(MAX_CLOCK_OFFSET), "876600h (100 years)");
        assert_eq!(show(TimeDelta::seconds(-90)), "1m30s");
    }

    #[test]
    fn adding_saturates_at_the_ends_of_the_calendar() {
        let now = Utc::now();
        assert_eq!(
            add_saturating(now, TimeDelta::MAX),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(
            add_saturating(now, TimeDelta::MIN),
            DateTime::<Utc>::MIN_UTC
        );
        assert_eq!(
            add_saturating(now, TimeDelta::hours(1)),
            now + TimeDelta::hours(1)
        );
    }

    #[test]
    fn every_limit_together_stays_inside_the_calendar() {
        // The latest instant the simulator computes: an absolute createdAt in year 9999, a
        // relative one from a sim clock at its limit, the longest generate run, the longest
        // timeline; the earliest: year 0 or a relative createdAt from the real now.
        let latest: DateTime<Utc> = "9999-12-31T23:59:59.999Z".parse().unwrap();
        let spans = [
            MAX_CLOCK_OFFSET,
            MAX_RELATIVE_CREATED_AT,
            MAX_GENERATED_SPAN,
            MAX_TIMELINE_SPAN,
        ];
        let total = spans
            .iter()
            .try_fold(TimeDelta::zero(), |sum, span| sum.checked_add(span))
            .unwrap();
        assert!(latest.checked_add_signed(total).is_some());
        let earliest: DateTime<Utc> = "0000-01-01T00:00:00Z".parse().unwrap();
        assert!(earliest.checked_sub_signed(total).is_some());
    }
}
