//! The two DCS time formats, parsed once at the boundary into typed UTC times.
//!
//! - Query parameters `start_time`/`end_time`: `yyyyMMddHHmmss` in UTC ([`QueryTime`]).
//! - Task `created_at`/`updated_at`: RFC 3339 with milliseconds, `2020-06-17T07:38:42.503Z`
//!   ([`TaskTime`]); the raw text is kept so that an unparsable value is shown, not lost.
//! - Job `begin_time`/`end_time` (`ShowJobInfo`): milliseconds since the Unix epoch, as text
//!   (`"1684191545379"`) or a number, held as a [`TaskTime`] too
//!   ([`TaskTime::from_epoch_millis`]).

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer};

const QUERY_TIME_FORMAT: &str = "%Y%m%d%H%M%S";

/// A `start_time`/`end_time` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueryTime(DateTime<Utc>);

/// Why a `yyyyMMddHHmmss` string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a UTC time in the form yyyyMMddHHmmss (e.g. 20200609160000)")]
pub struct QueryTimeError {
    pub input: String,
}

impl QueryTime {
    pub fn parse(input: &str) -> Result<Self, QueryTimeError> {
        let error = || QueryTimeError {
            input: input.to_string(),
        };
        if input.len() != 14 || !input.bytes().all(|b| b.is_ascii_digit()) {
            return Err(error());
        }
        NaiveDateTime::parse_from_str(input, QUERY_TIME_FORMAT)
            .map(|naive| QueryTime(Utc.from_utc_datetime(&naive)))
            .map_err(|_| error())
    }

    /// Truncates to whole seconds, the format's precision.
    pub fn from_datetime(time: DateTime<Utc>) -> Self {
        let seconds = time.timestamp();
        QueryTime(Utc.timestamp_opt(seconds, 0).single().unwrap_or(time))
    }

    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// The wire form, `yyyyMMddHHmmss`.
    pub fn to_param(&self) -> String {
        self.0.format(QUERY_TIME_FORMAT).to_string()
    }
}

/// A task timestamp as received, with its parsed value when it parses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTime {
    pub raw: String,
    pub parsed: Option<DateTime<Utc>>,
}

impl TaskTime {
    pub fn new(raw: impl Into<String>) -> Self {
        let raw = raw.into();
        let parsed = DateTime::parse_from_rfc3339(raw.trim())
            .ok()
            .map(|time| time.with_timezone(&Utc));
        Self { raw, parsed }
    }
}

impl TaskTime {
    /// A job time (`ShowJobInfo`'s `begin_time`/`end_time`): whole milliseconds since the Unix
    /// epoch, as the API sends them, or the JSON text of a number (`1684191545379.0`; the
    /// fraction is dropped). Zero and negative values are kept as raw text but parse to nothing:
    /// they mean "not yet" (a job that has not ended), not 1970.
    pub fn from_epoch_millis(raw: impl Into<String>) -> Self {
        let raw = raw.into();
        let parsed = parse_epoch_millis(&raw);
        Self { raw, parsed }
    }
}

fn parse_epoch_millis(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    let millis = text.parse::<i64>().ok().or_else(|| {
        // Only plain decimals: `f64` would also read `inf`, `NaN` and `1e3`.
        if !text
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        {
            return None;
        }
        let value = text.parse::<f64>().ok().filter(|value| value.is_finite())?;
        // Saturates at the ends of `i64`, which `from_timestamp_millis` then refuses.
        Some(value.trunc() as i64)
    })?;
    if millis <= 0 {
        return None;
    }
    DateTime::from_timestamp_millis(millis)
}

impl<'de> Deserialize<'de> for TaskTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(TaskTime::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn query_time_round_trips_and_refuses_impossible_dates() {
        let time = QueryTime::parse("20200609160000").unwrap();
        assert_eq!(time.to_param(), "20200609160000");
        assert_eq!(
            time.as_datetime(),
            Utc.with_ymd_and_hms(2020, 6, 9, 16, 0, 0).unwrap()
        );
        for bad in [
            "20200230120000",
            "2020060916000",
            "202006091600000",
            "2020-06-09T16:00",
            "20201301000000",
            "+0200609160000",
        ] {
            assert!(QueryTime::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn task_time_keeps_the_raw_text() {
        let good = TaskTime::new("2020-06-17T07:38:42.503Z");
        assert_eq!(
            good.parsed.unwrap().timestamp_millis(),
            Utc.with_ymd_and_hms(2020, 6, 17, 7, 38, 42)
                .unwrap()
                .timestamp_millis()
                + 503
        );
        let bad = TaskTime::new("yesterday");
        assert_eq!(bad.raw, "yesterday");
        assert_eq!(bad.parsed, None);
    }

    #[test]
    fn huge_years_are_refused_not_panicked_on() {
        for input in [
            "99999999999999",
            "999999999999999999999",
            "99991231235959",
            "00000000000000",
            "+99999-01-01T00:00:00Z",
        ] {
            let _ = QueryTime::parse(input);
        }
        assert!(QueryTime::parse("99999999999999").is_err());
        assert_eq!(
            QueryTime::parse("99991231235959").unwrap().to_param(),
            "99991231235959"
        );
        for raw in [
            "99999999999999-12-31T23:59:59.999Z",
            "9999-12-31T23:59:59.999-23:59",
            "0000-01-01T00:00:00+23:59",
            "2020-06-17T07:38:42.99999999999999999999Z",
        ] {
            let time = TaskTime::new(raw);
            assert_eq!(time.raw, raw);
        }
        assert_eq!(
            TaskTime::new("99999999999999-12-31T23:59:59.999Z").parsed,
            None
        );
    }

    #[test]
    fn job_times_are_epoch_milliseconds_as_text_or_number() {
        let documented = TaskTime::from_epoch_millis("1684191545379");
        assert_eq!(
            documented.parsed.unwrap().timestamp_millis(),
            1_684_191_545_379
        );
        assert_eq!(
            documented.parsed.unwrap(),
            Utc.with_ymd_and_hms(2023, 5, 15, 22, 59, 5).unwrap()
                + chrono::TimeDelta::milliseconds(379)
        );
        assert_eq!(
            TaskTime::from_epoch_millis(" 1684191545379.0 ").parsed,
            documented.parsed
        );
        for unset in ["0", "-1", "", "  ", "0.0"] {
            let time = TaskTime::from_epoch_millis(unset);
            assert_eq!((time.raw.as_str(), time.parsed), (unset, None), "{unset}");
        }
        for bad in [
            "2023-05-15T22:59:05Z",
            "soon",
            "inf",
            "NaN",
            "1e12",
            "99999999999999999999999",
            "9223372036854775807",
            "1.7976931348623157e308",
            "--1",
        ] {
            assert_eq!(TaskTime::from_epoch_millis(bad).parsed, None, "{bad}");
        }
    }

    proptest! {
        /// Every millisecond of years 1970-9999 round-trips through its epoch text.
        #[test]
        fn valid_job_times_round_trip(millis in 1i64..=Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap().timestamp_millis()) {
            let time = TaskTime::from_epoch_millis(millis.to_string());
            prop_assert_eq!(time.parsed.map(|t| t.timestamp_millis()), Some(millis));
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(
            input in prop_oneof![
                any::<String>(),
                "[0-9]{0,30}",
                "[0-9+-]{1,20}-[0-9]{2}-[0-9]{2}T[0-9:.]{0,20}(Z|[+-][0-9]{2}:[0-9]{2})?",
            ]
        ) {
            if let Ok(time) = QueryTime::parse(&input) {
                // Whatever parses is exactly the wire form.
                prop_assert_eq!(time.to_param(), input.clone());
            }
            let task = TaskTime::new(input.clone());
            prop_assert_eq!(task.raw, input.clone());
            let job = TaskTime::from_epoch_millis(input.clone());
            prop_assert_eq!(job.raw, input);
        }

        /// Every second of years 0000-9999 round-trips through `yyyyMMddHHmmss`.
        #[test]
        fn valid_query_times_round_trip(
            seconds in Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap().timestamp()
                ..=Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap().timestamp(),
            millis in 0u32..1000,
        ) {
            let time = Utc.timestamp_opt(seconds, millis * 1_000_000).unwrap();
            let query = QueryTime::from_datetime(time);
            prop_assert_eq!(query.as_datetime().timestamp(), seconds);
            let param = query.to_param();
            prop_assert_eq!(param.len(), 14);
            prop_assert_eq!(QueryTime::parse(&param), Ok(query));
        }

        /// Task times written as the API writes them (RFC 3339, milliseconds, `Z`) parse back to
        /// the same instant.
        #[test]
        fn valid_task_times_round_trip(
            seconds in Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap().timestamp()
                ..=Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap().timestamp(),
            millis in 0u32..1000,
        ) {
            let time = Utc.timestamp_opt(seconds, millis * 1_000_000).unwrap();
            let raw = time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let task = TaskTime::new(raw.clone());
            prop_assert_eq!(task.parsed, Some(time), "{}", raw);
        }
    }
}
