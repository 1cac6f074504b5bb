//! Durations written the way Kubernetes users write them (`10s`, `5m`, `1h30m`, `24h`).
//!
//! The CRD, the simulator's scenario files and the CLI all accept this one syntax, a subset of
//! Go's `time.ParseDuration` (whole numbers, units `ms`, `s`, `m`, `h`; no `d`, which Go and CEL's `duration()` refuse), so that a value
//! that passes the CRD's pattern also parses here and means the same thing everywhere.

use std::time::Duration;

/// The schema pattern for [`parse`]; shared with the CRD so both accept exactly the same strings.
pub const PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{input}` is not a duration: use whole numbers with units ms, s, m or h, e.g. 30s, 5m, 1h30m, 24h"
)]
pub struct DurationError {
    pub input: String,
}

/// Parses `1h30m`-style durations.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let error = || DurationError {
        input: input.to_string(),
    };
    if input.is_empty() {
        return Err(error());
    }
    let mut total = Duration::ZERO;
    let mut rest = input;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(error());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| error())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else {
            let unit = match rest.as_bytes().first() {
                Some(b's') => Duration::from_secs(1),
                Some(b'm') => Duration::from_secs(60),
                Some(b'h') => Duration::from_secs(3600),
                _ => return Err(error()),
            };
            (unit, 1)
        };
        rest = &rest[len..];
        let part = unit
            .checked_mul(u32::try_from(value).map_err(|_| error())?)
            .ok_or_else(error)?;
        total = total.checked_add(part).ok_or_else(error)?;
    }
    Ok(total)
}

/// Renders a duration in the same syntax, largest units first (`90s` -> `1m30s`).
pub fn format(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit_ms, suffix) in [(3_600_000, "h"), (60_000, "m"), (1_000, "s"), (1, "ms")] {
        if millis >= unit_ms {
            out.push_str(&format!("{}{suffix}", millis / unit_ms));
            millis %= unit_ms;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compound_durations() {
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("48h"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse("1m500ms"), Ok(Duration::from_millis(60_500)));
    }

    #[test]
    fn refuses_what_the_pattern_refuses() {
        let pattern = regex::Regex::new(PATTERN).unwrap();
        for bad in [
            "",
            "10",
            "s",
            "1.5h",
            "-1s",
            "10 s",
            "1y",
            "2d",
            "99999999999999999999s",
        ] {
            assert!(parse(bad).is_err(), "{bad} should fail");
            if bad != "99999999999999999999s" {
                assert!(!pattern.is_match(bad), "{bad} should not match the pattern");
            }
        }
        for good in ["0s", "10s", "1h30m", "250ms", "168h"] {
            assert!(pattern.is_match(good));
            assert!(parse(good).is_ok());
        }
    }

    #[test]
    fn formats_largest_units_first() {
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_secs(7200)), "2h");
        assert_eq!(format(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(format(Duration::ZERO), "0s");
        for text in ["1h30m", "10s", "2h5m7s"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
    }
}
