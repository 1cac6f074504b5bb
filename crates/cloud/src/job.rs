//! The `ShowJobInfo` client: `GET /v2/{project_id}/jobs/{job_id}`, the call Terraform and the
//! SDKs poll to wait for an asynchronous DCS operation (a switchover, a resize) by the job id
//! the operation returned.
//!
//! Asking for one job is exact where the task-center list is not: the answer does not depend on
//! a query window, paging or the job showing up in the list at all. The request goes through the
//! same signed GET as `ListCenterTask` (gate, retries, body cap, no redirects), and the answer is
//! decoded as leniently as a task page: numbers or strings, unknown fields ignored, text capped.
//!
//! The job vocabulary is not the task vocabulary: a job ends `SUCCESS` or `FAIL` (not `FAILED`),
//! and is pending while `INIT` or `RUNNING`; any other status is kept as text and never ends a
//! wait, as in Terraform's `checkDcsInstanceJobFinish`.

use std::fmt;

use super::client::{DcsClient, SignedGet};
use super::error::DcsError;
use super::model::{ShowJobInfoResponse, decode_job_info};
use super::time::TaskTime;
use dcs_common::text::truncate_bytes;

/// The longest job id accepted. Real ids are 32 hex digits; 64 leaves room for other shapes
/// without letting a CR put kilobytes into a path.
pub const MAX_JOB_ID_LEN: usize = 64;

/// How much of a refused job id an error message repeats, in bytes.
const MAX_SHOWN_JOB_ID_BYTES: usize = 80;

/// A job id that is safe to put into a request path: 1 to [`MAX_JOB_ID_LEN`] characters of
/// `[A-Za-z0-9_-]`.
///
/// The id comes from a custom resource, so it is validated rather than percent-encoded: a `/`,
/// `..`, `?`, `#` or `%` could otherwise address another API of the same signed endpoint, and
/// no real job id holds any of them. Refusing says so plainly instead of asking DCS about a job
/// that cannot exist.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(String);

/// Why a text is not a [`JobId`]; the caller names the field the text came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{shown} is not a DCS job id: it must be 1 to {MAX_JOB_ID_LEN} characters \
     of A-Z, a-z, 0-9, `_` and `-` (DCS job ids are 32 hex digits, as returned by the call that \
     started the job)"
)]
pub struct JobIdError {
    /// The refused text, quoted and escaped, cut to a bounded length.
    shown: String,
}

impl JobId {
    pub fn parse(text: &str) -> Result<Self, JobIdError> {
        let valid = (1..=MAX_JOB_ID_LEN).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(text.to_string()))
        } else {
            Err(JobIdError {
                shown: format!("{:?}", truncate_bytes(text, MAX_SHOWN_JOB_ID_BYTES)),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A job's `status`. Only [`JobStatus::Success`] and [`JobStatus::Fail`] end a wait.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JobStatus {
    Init,
    Running,
    Success,
    Fail,
    /// Any other text (a missing or `null` status reads as empty text), kept as sent and cut like
    /// other upstream text. Never terminal: `FAILED`, the task vocabulary, is one of these.
    Other(String),
}

impl JobStatus {
    /// Reads the wire text exactly (the API and the SDK enum are upper case).
    pub fn from_wire(text: &str) -> Self {
        match text {
            "INIT" => Self::Init,
            "RUNNING" => Self::Running,
            "SUCCESS" => Self::Success,
            "FAIL" => Self::Fail,
            other => Self::Other(other.to_string()),
        }
    }

    /// The job ended, well or not: the wait has its verdict.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Success | Self::Fail)
    }

    /// The wire text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Init => "INIT",
            Self::Running => "RUNNING",
            Self::Success => "SUCCESS",
            Self::Fail => "FAIL",
            Self::Other(text) => text,
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `ShowJobInfo` answer, typed. Text fields are cut while decoding (see
/// [`super::model`]): ids, type, status and `fail_reason` to
/// [`super::model::MAX_DECODED_TEXT_BYTES`], times to [`super::model::MAX_DECODED_TIME_BYTES`].
#[derive(Debug, Clone, PartialEq)]
pub struct JobInfo {
    pub job_id: Option<String>,
    /// `masterStandbySwapJob`, `modifyClientIpTransJob`, ...; not an enum, the list grows.
    pub job_type: Option<String>,
    pub status: JobStatus,
    /// Absent, `null` or blank on the wire is `None`; text that is no positive ms-epoch time
    /// keeps its raw text with no parsed value.
    pub begin_time: Option<TaskTime>,
    pub end_time: Option<TaskTime>,
    /// Why a `FAIL` job failed; `null` in the documented example.
    pub fail_reason: Option<String>,
}

impl JobInfo {
    /// Decodes an answer body: never panics, fails only when the body is not a JSON object.
    pub fn decode(body: &[u8]) -> Result<Self, serde_json::Error> {
        decode_job_info(body).map(Self::from)
    }
}

impl From<ShowJobInfoResponse> for JobInfo {
    fn from(wire: ShowJobInfoResponse) -> Self {
        let time = |raw: Option<String>| {
            raw.filter(|raw| !raw.trim().is_empty())
                .map(TaskTime::from_epoch_millis)
        };
        Self {
            job_id: wire.job_id,
            job_type: wire.job_type,
            status: JobStatus::from_wire(wire.status.as_deref().unwrap_or_default()),
            begin_time: time(wire.begin_time),
            end_time: time(wire.end_time),
            fail_reason: wire.fail_reason,
        }
    }
}

/// A failed `ShowJobInfo` that only a person can resolve, told apart so a waiter can say which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobLookupFailure {
    /// The API does not know the job in this project: HTTP 404 from DCS (not the gateway's
    /// `APIG.*` 404 for an unknown API, which means a wrong endpoint), or a DCS error code of
    /// the `111404xxx` family (documented as "not found" codes) whatever the status.
    NotFound,
    /// The credentials may not read jobs: HTTP 403 or a `111403xxx` code. The IAM action is
    /// `dcs:job:get`, which a policy granting `dcs:task:list` may lack.
    Forbidden,
}

impl JobLookupFailure {
    /// What `error`, returned by [`DcsClient::show_job`], means for the wait; `None` for every
    /// other failure (throttling, 5xx, auth, transport), which the caller handles as for a
    /// task listing.
    pub fn of(error: &DcsError) -> Option<Self> {
        let api = error.api_error()?;
        let code = api.error_code.as_deref().unwrap_or_default();
        if error.is_auth_failure() {
            None
        } else if api.http_status == 403 || code.starts_with("111403") {
            Some(Self::Forbidden)
        } else if (api.http_status == 404 && !code.starts_with("APIG."))
            || code.starts_with("111404")
        {
            Some(Self::NotFound)
        } else {
            None
        }
    }
}

impl DcsClient {
    /// `ShowJobInfo` for `job_id`: one `GET /v2/{project_id}/jobs/{job_id}`, retried on
    /// throttling and transient failures like a task page (same gate, body cap, and refusal of
    /// redirects). [`JobLookupFailure::of`] tells an unknown job and a missing `dcs:job:get`
    /// apart from other errors.
    pub async fn show_job(&self, job_id: &JobId) -> Result<JobInfo, DcsError> {
        let get = SignedGet {
            operation: "DCS ShowJobInfo",
            iam_action: super::error::IamAction::ShowJob,
            ..self.signed_get()
        };
        // A DCS client always signs its project; the path names the same one.
        let project_id = get.project_id.unwrap_or_default();
        let path = format!("/v2/{project_id}/jobs/{job_id}");
        let body = get.get(&path, &[]).await?;
        JobInfo::decode(&body).map_err(|error| DcsError::Decode {
            endpoint: self.endpoint().to_string(),
            expected: "a ShowJobInfo answer",
            detail: error.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ApiError;
    use crate::model::{MAX_DECODED_TEXT_BYTES, MAX_DECODED_TIME_BYTES};
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn decode(body: &str) -> JobInfo {
        JobInfo::decode(body.as_bytes()).unwrap()
    }

    fn millis(time: &Option<TaskTime>) -> Option<i64> {
        time.as_ref()
            .and_then(|time| time.parsed)
            .map(|time| time.timestamp_millis())
    }

    /// The OTC documentation's example, verbatim.
    #[test]
    fn decodes_the_documented_example() {
        let job = decode(
            r#"{"job_id":"ff8080818822bbf70188235afc24141a","job_type":"masterStandbySwapJob","status":"SUCCESS","begin_time":"1684191545379","end_time":"1684191548248","fail_reason":null}"#,
        );
        assert_eq!(
            job.job_id.as_deref(),
            Some("ff8080818822bbf70188235afc24141a")
        );
        assert_eq!(job.job_type.as_deref(), Some("masterStandbySwapJob"));
        assert_eq!(job.status, JobStatus::Success);
        assert!(job.status.is_terminal());
        assert_eq!(millis(&job.begin_time), Some(1_684_191_545_379));
        assert_eq!(
            job.end_time.as_ref().unwrap().parsed,
            Some(
                Utc.with_ymd_and_hms(2023, 5, 15, 22, 59, 8).unwrap()
                    + chrono::TimeDelta::milliseconds(248)
            )
        );
        assert_eq!(job.fail_reason, None);
    }

    #[test]
    fn times_may_be_numbers_or_strings() {
        let job = decode(
            r#"{"status":"RUNNING","begin_time":1684191545379,"end_time":"  1684191548248 "}"#,
        );
        assert_eq!(millis(&job.begin_time), Some(1_684_191_545_379));
        assert_eq!(millis(&job.end_time), Some(1_684_191_548_248));
        let float = decode(r#"{"begin_time":1684191545379.0}"#);
        assert_eq!(millis(&float.begin_time), Some(1_684_191_545_379));
        // A running job's end: absent, null, blank, or zero all mean "not yet".
        for end in [
            r#""#,
            r#","end_time":null"#,
            r#","end_time":"""#,
            r#","end_time":" ""#,
        ] {
            let job = decode(&format!(r#"{{"status":"RUNNING"{end}}}"#));
            assert_eq!(job.end_time, None, "{end}");
        }
        let zero = decode(r#"{"end_time":0}"#);
        assert_eq!(
            zero.end_time.as_ref().map(|t| (t.raw.as_str(), t.parsed)),
            Some(("0", None))
        );
        let text = decode(r#"{"begin_time":"2023-05-15T22:59:05Z"}"#);
        let begin = text.begin_time.unwrap();
        assert_eq!(
            (begin.raw.as_str(), begin.parsed),
            ("2023-05-15T22:59:05Z", None)
        );
    }

    #[test]
    fn fail_reason_is_nullable_and_kept_when_given() {
        let failed = decode(r#"{"status":"FAIL","fail_reason":"Master standby swap failed."}"#);
        assert_eq!(failed.status, JobStatus::Fail);
        assert!(failed.status.is_terminal());
        assert_eq!(
            failed.fail_reason.as_deref(),
            Some("Master standby swap failed.")
        );
        assert_eq!(
            decode(r#"{"status":"FAIL","fail_reason":null}"#).fail_reason,
            None
        );
        assert_eq!(decode(r#"{"status":"FAIL"}"#).fail_reason, None);
        assert_eq!(
            decode(r#"{"fail_reason":4842}"#).fail_reason.as_deref(),
            Some("4842")
        );
    }

    #[test]
    fn only_success_and_fail_are_terminal() {
        for (wire, status, terminal) in [
            ("INIT", JobStatus::Init, false),
            ("RUNNING", JobStatus::Running, false),
            ("SUCCESS", JobStatus::Success, true),
            ("FAIL", JobStatus::Fail, true),
        ] {
            let job = decode(&format!(r#"{{"status":"{wire}"}}"#));
            assert_eq!((&job.status, job.status.is_terminal()), (&status, terminal));
            assert_eq!(job.status.to_string(), wire);
        }
        // The task vocabulary, other spellings and missing statuses never end a wait.
        for wire in [
            r#""FAILED""#,
            r#""success""#,
            r#"" FAIL""#,
            r#""PAUSED""#,
            "null",
            "[]",
            "{}",
        ] {
            let job = decode(&format!(r#"{{"status":{wire}}}"#));
            assert!(matches!(job.status, JobStatus::Other(_)), "{wire}");
            assert!(!job.status.is_terminal(), "{wire}");
        }
        assert_eq!(decode("{}").status, JobStatus::Other(String::new()));
    }

    #[test]
    fn unknown_and_misshapen_fields_are_read_past() {
        let job = decode(
            r#"{"job_id":["x"],"job_type":{"a":1},"status":"SUCCESS","new_field":{"deep":[1,2,3]},"begin_time":true}"#,
        );
        assert_eq!((job.job_id, job.job_type), (None, None));
        assert_eq!(job.status, JobStatus::Success);
        assert_eq!(
            job.begin_time.map(|t| (t.raw, t.parsed)),
            Some(("true".into(), None))
        );
    }

    #[test]
    fn only_json_objects_are_answers() {
        for garbage in [
            "",
            "null",
            "[]",
            "\"SUCCESS\"",
            "<html>502</html>",
            "{\"status\":",
            "{} {}",
        ] {
            assert!(JobInfo::decode(garbage.as_bytes()).is_err(), "{garbage}");
        }
    }

    #[test]
    fn text_is_capped_while_decoding() {
        let long = "x".repeat(100_000);
        let job = decode(
            &json!({"job_id": long, "job_type": long, "status": long, "fail_reason": long,
                    "begin_time": long, "end_time": long})
            .to_string(),
        );
        for text in [&job.job_id, &job.job_type, &job.fail_reason] {
            assert!(text.as_ref().unwrap().len() <= MAX_DECODED_TEXT_BYTES);
        }
        assert!(job.status.as_str().len() <= MAX_DECODED_TEXT_BYTES);
        for time in [&job.begin_time, &job.end_time] {
            assert!(time.as_ref().unwrap().raw.len() <= MAX_DECODED_TIME_BYTES);
        }
    }

    #[test]
    fn job_ids_that_could_change_the_path_are_refused() {
        for good in [
            "ff8080818822bbf70188235afc24141a",
            "a",
            "job_1-2",
            &"A".repeat(MAX_JOB_ID_LEN),
        ] {
            assert_eq!(JobId::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "../tasks",
            "..",
            "a/b",
            "a?offset=1",
            "a#b",
            "a%2Fb",
            "a b",
            " a",
            "a\n",
            "ä",
            "a.b",
            &"A".repeat(MAX_JOB_ID_LEN + 1),
        ] {
            let error = JobId::parse(bad).unwrap_err().to_string();
            assert!(error.contains("is not a DCS job id"), "{error}");
            assert!(error.contains("A-Z, a-z, 0-9"), "{error}");
        }
        // The refused text is quoted, escaped and bounded.
        let error = JobId::parse("a\nb").unwrap_err().to_string();
        assert!(error.contains(r#""a\nb""#), "{error}");
        let error = JobId::parse(&"/".repeat(10_000)).unwrap_err().to_string();
        assert!(error.len() < 400, "{}", error.len());
    }

    fn api(status: u16, code: Option<&str>) -> DcsError {
        DcsError::Api {
            endpoint: "https://dcs.example".into(),
            error: ApiError {
                http_status: status,
                error_code: code.map(String::from),
                error_msg: None,
                request_id: None,
                retry_after: None,
                iam_action: crate::IamAction::ShowJob,
            },
        }
    }

    #[test]
    fn not_found_and_forbidden_are_recognised() {
        use JobLookupFailure::*;
        for (status, code, expected) in [
            (404, Some("111404022"), Some(NotFound)),
            (404, None, Some(NotFound)),
            (400, Some("111404000"), Some(NotFound)),
            (404, Some("APIG.0101"), None),
            (403, Some("APIG.0302"), Some(Forbidden)),
            (403, Some("DCS.4003"), Some(Forbidden)),
            (400, Some("111403002"), Some(Forbidden)),
            (401, Some("APIG.0301"), None),
            (404, Some("APIG.0301"), None),
            (429, Some("APIG.0308"), None),
            (500, Some("DCS.4842"), None),
            (400, Some("111400063"), None),
        ] {
            assert_eq!(
                JobLookupFailure::of(&api(status, code)),
                expected,
                "{status} {code:?}"
            );
        }
        let timeout = DcsError::Timeout {
            endpoint: "e".into(),
            timeout: std::time::Duration::from_secs(1),
        };
        assert_eq!(JobLookupFailure::of(&timeout), None);
    }

    /// Any JSON value, nested a few levels.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            "[0-9]{0,20}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop::sample::select(vec![
                        "job_id",
                        "job_type",
                        "status",
                        "begin_time",
                        "end_time",
                        "fail_reason",
                        "other",
                    ])
                    .prop_map(String::from),
                    inner,
                    0..7,
                )
                .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = JobInfo::decode(&bytes);
        }

        /// Every JSON object decodes, whatever its fields hold; nothing else does.
        #[test]
        fn arbitrary_json_never_panics_and_objects_always_decode(value in json_value()) {
            let decoded = JobInfo::decode(value.to_string().as_bytes());
            prop_assert_eq!(decoded.is_ok(), value.is_object());
            if let Ok(job) = decoded {
                let terminal = job.status.is_terminal();
                prop_assert_eq!(terminal, matches!(value["status"].as_str(), Some("SUCCESS" | "FAIL")));
            }
        }

        /// A time sent as a number or as its text reads back as the same instant.
        #[test]
        fn times_round_trip_as_number_or_string(millis in 1i64..=253_402_300_799_999) {
            for body in [
                json!({"begin_time": millis}),
                json!({"begin_time": millis.to_string()}),
            ] {
                let job = JobInfo::decode(body.to_string().as_bytes()).unwrap();
                prop_assert_eq!(super::tests::millis(&job.begin_time), Some(millis));
            }
        }
    }
}
