//! Patterns shared by the CRD schema and the operator's own checks, so the apiserver and the
//! code refuse exactly the same strings.

/// Huawei Cloud region ids: `cn-north-4`, `ap-southeast-1`, `my-kualalumpur-1`, `eu-west-101`.
pub const REGION: &str = r"^[a-z]{2}-[a-z]+-[0-9]{1,3}$";

/// Project ids, see [`dcs_common::project_id`] (IAM discovery holds the ids it finds to the same
/// pattern).
pub const PROJECT_ID: &str = dcs_common::project_id::PATTERN;

/// An origin (scheme, host, optional port, optional trailing slash). No path, query or userinfo:
/// the operator appends `/v2/{project_id}/tasks` itself.
pub const ENDPOINT: &str =
    r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?/?$";

/// The DCS query time format `yyyyMMddHHmmss`, with calendar-plausible fields.
pub const DCS_TIME: &str =
    r"^[0-9]{4}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])([01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]$";

/// A Kubernetes object name (DNS-1123 subdomain), used for the credentials Secret.
pub const SECRET_NAME: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// Durations, see [`crate::duration`].
pub const DURATION: &str = crate::duration::PATTERN;

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn check(pattern: &str, good: &[&str], bad: &[&str]) {
        let re = Regex::new(pattern).unwrap();
        for g in good {
            assert!(re.is_match(g), "{g} should match {pattern}");
        }
        for b in bad {
            assert!(!re.is_match(b), "{b} should not match {pattern}");
        }
    }

    #[test]
    fn regions_from_the_sdk_list_match() {
        check(
            REGION,
            &[
                "cn-north-4",
                "ap-southeast-1",
                "my-kualalumpur-1",
                "eu-west-101",
                "ae-ad-1",
            ],
            &[
                "",
                "cn-north",
                "CN-NORTH-4",
                "cn_north_4",
                "cn-north-4/..",
                "x.y",
            ],
        );
    }

    #[test]
    fn endpoints_are_origins_only() {
        check(
            ENDPOINT,
            &[
                "https://dcs.cn-north-4.myhuaweicloud.com",
                "http://127.0.0.1:18080",
                "http://[::1]:8080/",
            ],
            &[
                "ftp://x",
                "https://user:pw@host",
                "https://host/path",
                "https://host?x=1",
                "https://",
            ],
        );
    }

    #[test]
    fn dcs_times_are_fourteen_plausible_digits() {
        check(
            DCS_TIME,
            &["20200609160000", "20231231235959"],
            &[
                "2020060916000",
                "20201301000000",
                "20200609240000",
                "2020-06-09",
            ],
        );
    }

    #[test]
    fn project_ids_cannot_escape_the_path() {
        check(
            PROJECT_ID,
            &["0a1b2c3d4e5f60718293a4b5c6d7e8f9", "proj-1"],
            &["", "a/b", "..%2F", "a b"],
        );
    }
}
