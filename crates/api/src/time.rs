//! The one place where Kubernetes times (jiff, as k8s-openapi uses) and DCS-side times (chrono)
//! meet. Both are UTC instants; conversion is exact to the nanosecond.

use chrono::{DateTime, Utc};
/// The Kubernetes time types, for layers that read them without depending on k8s-openapi.
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
pub use k8s_openapi::jiff::Timestamp;

/// A Kubernetes `Time` as a chrono UTC time.
pub fn to_chrono(time: &Time) -> DateTime<Utc> {
    let ts = time.0;
    DateTime::from_timestamp(
        ts.as_second(),
        u32::try_from(ts.subsec_nanosecond()).unwrap_or(0),
    )
    .unwrap_or_default()
}

/// A chrono UTC time as a Kubernetes `Time`.
pub fn from_chrono(time: DateTime<Utc>) -> Time {
    Time(
        Timestamp::new(
            time.timestamp(),
            i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
        )
        .unwrap_or(Timestamp::UNIX_EPOCH),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn round_trips_exactly() {
        let time = Utc.with_ymd_and_hms(2026, 11, 27, 16, 42, 31).unwrap()
            + chrono::TimeDelta::nanoseconds(123_456_789);
        assert_eq!(to_chrono(&from_chrono(time)), time);
        assert_eq!(
            from_chrono(time).0.to_string(),
            "2026-11-27T16:42:31.123456789Z"
        );
    }
}
