//! The query parameters of `GET /v2/{project_id}/tasks`, validated exactly as documented.
//!
//! `offset` >= 0 (default 0), `limit` 1..=1000 (default 10), `start_time` / `end_time` in
//! `yyyyMMddHHmmss` UTC naming a real date. Anything else is a 400 naming the parameter, so a
//! client that builds a bad request finds out in tests rather than in production.

use chrono::{DateTime, NaiveDate, Utc};

/// The default page size when `limit` is absent.
pub(super) const DEFAULT_LIMIT: usize = 10;
/// The largest page the API serves.
pub(super) const MAX_LIMIT: usize = 1000;

/// Validated list parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ListParams {
    pub offset: usize,
    pub limit: usize,
    pub window: Window,
}

/// The `created_at` window, inclusive at both ends, at the one-second resolution of the
/// `yyyyMMddHHmmss` format: `end_time=20230612155959` includes a task created at
/// `15:59:59.503`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Window {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

impl Window {
    /// Whether `created_at` falls inside, comparing whole seconds.
    pub fn contains(&self, created_at: DateTime<Utc>) -> bool {
        let second = created_at.timestamp();
        self.start.is_none_or(|start| second >= start.timestamp())
            && self.end.is_none_or(|end| second <= end.timestamp())
    }
}

/// The name of the parameter that was refused, as it appears in the DCS error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct InvalidParam(pub &'static str);

/// Validates the decoded query pairs. Unknown parameters are ignored; when a parameter is
/// repeated the first occurrence counts.
pub(super) fn parse(query: &[(String, String)]) -> Result<ListParams, InvalidParam> {
    let first = |name: &str| {
        query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let offset = match first("offset") {
        None => 0,
        Some(text) => parse_count(text)
            .filter(|offset| *offset <= i32::MAX as usize)
            .ok_or(InvalidParam("offset"))?,
    };
    let limit = match first("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => parse_count(text)
            .filter(|limit| (1..=MAX_LIMIT).contains(limit))
            .ok_or(InvalidParam("limit"))?,
    };
    let start = first("start_time")
        .map(|text| parse_time(text).ok_or(InvalidParam("start_time")))
        .transpose()?;
    let end = first("end_time")
        .map(|text| parse_time(text).ok_or(InvalidParam("end_time")))
        .transpose()?;
    Ok(ListParams {
        offset,
        limit,
        window: Window { start, end },
    })
}

/// A non-negative decimal integer with no sign, spaces or other decoration.
fn parse_count(text: &str) -> Option<usize> {
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `yyyyMMddHHmmss`: exactly 14 digits forming a real UTC date and time.
pub(super) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if text.len() != 14 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let field = |range: std::ops::Range<usize>| text[range].parse::<u32>().ok();
    let year = i32::try_from(field(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, field(4..6)?, field(6..8)?)?
        .and_hms_opt(field(8..10)?, field(10..12)?, field(12..14)?)
        .map(|time| time.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    fn time(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn defaults_apply_when_absent() {
        assert_eq!(
            parse(&query(&[("other", "x")])),
            Ok(ListParams {
                offset: 0,
                limit: 10,
                window: Window::default()
            })
        );
    }

    #[test]
    fn valid_values_are_read() {
        let params = parse(&query(&[
            ("offset", "20"),
            ("limit", "1000"),
            ("start_time", "20200609160000"),
            ("end_time", "20230612155959"),
            ("limit", "not-this-one"),
        ]))
        .unwrap();
        assert_eq!(params.offset, 20);
        assert_eq!(params.limit, 1000);
        assert_eq!(params.window.start, Some(time("2020-06-09T16:00:00Z")));
        assert_eq!(params.window.end, Some(time("2023-06-12T15:59:59Z")));
    }

    #[test]
    fn each_invalid_value_names_its_parameter() {
        let cases = [
            ("offset", "-1"),
            ("offset", "1.5"),
            ("offset", ""),
            ("offset", "+3"),
            ("offset", "99999999999"),
            ("limit", "0"),
            ("limit", "1001"),
            ("limit", "ten"),
            ("limit", " 5"),
            ("start_time", "2020-06-09"),
            ("start_time", "20200230120000"),
            ("start_time", "20200609250000"),
            ("end_time", "2023061215595"),
            ("end_time", "202306121559590"),
        ];
        for (name, value) in cases {
            assert_eq!(
                parse(&query(&[(name, value)])),
                Err(InvalidParam(name)),
                "{name}={value}"
            );
        }
    }

    #[test]
    fn the_window_is_inclusive_at_second_resolution() {
        let window = Window {
            start: Some(time("2023-06-12T15:00:00Z")),
            end: Some(time("2023-06-12T15:59:59Z")),
        };
        assert!(window.contains(time("2023-06-12T15:00:00Z")));
        assert!(window.contains(time("2023-06-12T15:59:59.999Z")));
        assert!(!window.contains(time("2023-06-12T14:59:59.999Z")));
        assert!(!window.contains(time("2023-06-12T16:00:00Z")));
        assert!(Window::default().contains(time("1970-01-01T00:00:00Z")));
    }

    proptest::proptest! {
        #[test]
        fn no_query_panics_and_what_passes_is_in_range(
            pairs in proptest::collection::vec(
                (
                    "offset|limit|start_time|end_time|other",
                    "[0-9]{0,16}|[+-]?[0-9]{1,12}|[0-9]{4}(0[0-9]|1[0-9])[0-3][0-9][0-2][0-9][0-6][0-9][0-6][0-9]|\\PC{0,16}",
                ),
                0..6,
            )
        ) {
            if let Ok(params) = parse(&pairs) {
                proptest::prop_assert!((1..=MAX_LIMIT).contains(&params.limit));
                proptest::prop_assert!(params.offset <= i32::MAX as usize);
                for time in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
                    let _ = params.window.contains(time);
                }
            }
        }
    }
}
