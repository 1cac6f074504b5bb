//! The spec rules, checked in code.
//!
//! The CRD schema enforces most of these at `kubectl apply` time, but not every server enforces
//! every rule (CEL arrived in Kubernetes 1.25, the CLI reads plain files), and a rule skipped
//! there must still produce a clear message here rather than a confusing API error later.
//! Every error names the field (`spec.query.limit`) and the rule it broke.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use crate::api::time::Time;
use regex::Regex;

use crate::api::limits::{self, DurationBounds};
use crate::api::{
    CredentialsSecretRef, DcsTaskQuerySpec, TaskFilter, TaskQuerySpec, WaitForSpec, WaitSource,
    patterns,
};
use crate::dcs::{JobId, QueryTime};
use crate::duration;

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path from the object root, e.g. `spec.query.limit`.
    pub field: String,
    /// What the rule requires and what was found.
    pub rule: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

/// Every broken rule of a spec, in field order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecErrors(pub Vec<FieldError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "invalid spec: {}", parts.join("; "))
    }
}

struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn fail(&mut self, field: &str, rule: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_string(),
            rule: rule.into(),
        });
    }

    fn pattern(&mut self, field: &str, value: &str, pattern: &Regex, expected: &str) {
        if !pattern.is_match(value) {
            self.fail(field, format!("must be {expected} (got {value:?})"));
        }
    }

    fn range(&mut self, field: &str, value: i64, min: i64, max: Option<i64>) {
        let ok = value >= min && max.is_none_or(|max| value <= max);
        if !ok {
            let rule = match max {
                Some(max) => format!("must be between {min} and {max} (got {value})"),
                None => format!("must be at least {min} (got {value})"),
            };
            self.fail(field, rule);
        }
    }

    /// A duration within `bounds`; `None` (and an error) when it is not one.
    fn duration(&mut self, field: &str, value: &str, bounds: DurationBounds) -> Option<Duration> {
        let max_chars = limits::MAX_DURATION_CHARS as usize;
        if value.len() > max_chars {
            self.fail(
                field,
                format!(
                    "must be a duration of at most {max_chars} characters, {} (got {} characters)",
                    bounds.describe(),
                    value.len()
                ),
            );
            return None;
        }
        let parsed = match duration::parse(value) {
            Ok(parsed) => parsed,
            Err(error) => {
                self.fail(field, error.to_string());
                return None;
            }
        };
        let too_short = bounds.min.is_some_and(|min| parsed < min);
        if too_short || parsed > bounds.max {
            self.fail(
                field,
                format!("must be {} (got {value:?})", bounds.describe()),
            );
            return None;
        }
        Some(parsed)
    }

    fn query_time(&mut self, field: &str, value: &str) -> Option<QueryTime> {
        match QueryTime::parse(value) {
            Ok(time) => Some(time),
            Err(error) => {
                self.fail(field, error.to_string());
                None
            }
        }
    }
}

/// A Unix time in RFC 3339 (seconds, `Z`), for messages.
fn rfc3339(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| seconds.to_string())
}

fn compiled(pattern: &str) -> Regex {
    Regex::new(pattern).expect("the API patterns are valid regular expressions")
}

static REGION: LazyLock<Regex> = LazyLock::new(|| compiled(patterns::REGION));
static PROJECT_ID: LazyLock<Regex> = LazyLock::new(|| compiled(patterns::PROJECT_ID));
static ENDPOINT: LazyLock<Regex> = LazyLock::new(|| compiled(patterns::ENDPOINT));
static SECRET_NAME: LazyLock<Regex> = LazyLock::new(|| compiled(patterns::SECRET_NAME));

/// The parsed values validation produced, so planning does not parse twice.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSpec {
    pub start_time: Option<QueryTime>,
    pub end_time: Option<QueryTime>,
    pub since: Option<Duration>,
    pub interval: Duration,
    pub active_interval: Duration,
    pub lookback: Option<Duration>,
    pub timeout: Option<Duration>,
    /// `spec.ttlAfterResolved`: how long after its wait resolved the object is deleted.
    pub ttl_after_resolved: Option<Duration>,
}

/// Checks every rule of the spec; all broken rules are reported at once.
pub fn validate(spec: &DcsTaskQuerySpec) -> Result<ValidSpec, SpecErrors> {
    let mut check = Checker { errors: Vec::new() };
    // One group per part of the spec, in field order: the messages come out in that order.
    check_location(&mut check, spec);
    if let Some(secret) = &spec.credentials_secret_ref {
        check_credentials_ref(&mut check, secret);
    }
    check_paging(&mut check, &spec.query);
    let window = check_window(&mut check, &spec.query);
    check_filter_lengths(&mut check, &spec.filter);
    check_filter_items(&mut check, &spec.filter);
    let (interval, active_interval) = check_polling(&mut check, spec);
    let (lookback, timeout) = match &spec.wait_for {
        Some(wait) => check_wait_for(&mut check, wait),
        None => (None, None),
    };
    let ttl_after_resolved = check_ttl_after_resolved(&mut check, spec);

    if check.errors.is_empty() {
        Ok(ValidSpec {
            start_time: window.start_time,
            end_time: window.end_time,
            since: window.since,
            interval,
            active_interval,
            lookback,
            timeout,
            ttl_after_resolved,
        })
    } else {
        Err(SpecErrors(check.errors))
    }
}

/// Where requests go (region, project, endpoint): these end up in the request URL, so a bad
/// value must be refused here rather than change which host or path is called.
fn check_location(check: &mut Checker, spec: &DcsTaskQuerySpec) {
    check.pattern(
        "spec.region",
        &spec.region,
        &REGION,
        "a Huawei Cloud region id such as cn-north-4",
    );
    if let Some(project) = &spec.project_id {
        check.pattern(
            "spec.projectId",
            project,
            &PROJECT_ID,
            &format!(
                "1-{} letters, digits, '-' or '_'",
                limits::MAX_PROJECT_ID_CHARS
            ),
        );
    }
    if let Some(endpoint) = &spec.endpoint {
        check.pattern(
            "spec.endpoint",
            endpoint,
            &ENDPOINT,
            "an origin such as https://dcs.cn-north-4.myhuaweicloud.com (no path)",
        );
    }
}

/// The Secret name is looked up in the apiserver: a name it could never hold is a spec error,
/// not a "Secret not found" that reads like a missing object.
fn check_credentials_ref(check: &mut Checker, secret: &CredentialsSecretRef) {
    let field = "spec.credentialsSecretRef.name";
    check.pattern(
        field,
        &secret.name,
        &SECRET_NAME,
        "a Kubernetes object name",
    );
    if secret.name.chars().count() > limits::MAX_SECRET_NAME_CHARS as usize {
        check.fail(
            field,
            format!(
                "must be at most {} characters",
                limits::MAX_SECRET_NAME_CHARS
            ),
        );
    }
}

/// Paging bounds the requests one poll spends from the account's budget.
fn check_paging(check: &mut Checker, query: &TaskQuerySpec) {
    check.range(
        "spec.query.maxPages",
        query.max_pages.into(),
        limits::MIN_PAGES.into(),
        Some(limits::MAX_PAGES.into()),
    );
    check.range(
        "spec.query.offset",
        query.offset.into(),
        limits::MIN_OFFSET.into(),
        None,
    );
    if let Some(limit) = query.limit {
        check.range(
            "spec.query.limit",
            limit.into(),
            limits::MIN_QUERY_LIMIT.into(),
            Some(limits::MAX_QUERY_LIMIT.into()),
        );
    }
}

/// The parsed query window, kept so planning does not parse it again.
struct Window {
    start_time: Option<QueryTime>,
    end_time: Option<QueryTime>,
    since: Option<Duration>,
}

/// The window's fields only make sense together (start before end, `since` or `startTime`),
/// so they are parsed and cross-checked in one place.
fn check_window(check: &mut Checker, query: &TaskQuerySpec) -> Window {
    let start_time = query
        .start_time
        .as_deref()
        .and_then(|value| check.query_time("spec.query.startTime", value));
    let end_time = query
        .end_time
        .as_deref()
        .and_then(|value| check.query_time("spec.query.endTime", value));
    if let (Some(start), Some(end)) = (start_time, end_time)
        && start > end
    {
        check.fail(
            "spec.query.startTime",
            format!(
                "must not be after spec.query.endTime ({} > {})",
                start.to_param(),
                end.to_param()
            ),
        );
    }
    let since = query
        .since
        .as_deref()
        .and_then(|value| check.duration("spec.query.since", value, limits::SINCE));
    if query.since.is_some() && query.start_time.is_some() {
        check.fail(
            "spec.query.since",
            "is mutually exclusive with spec.query.startTime: set one of them",
        );
    }
    Window {
        start_time,
        end_time,
        since,
    }
}

/// Every filter list is matched against every task of every poll: its length bounds that work.
fn check_filter_lengths(check: &mut Checker, filter: &TaskFilter) {
    for (field, list, max) in [
        ("spec.filter.names", &filter.names, limits::MAX_FILTER_NAMES),
        (
            "spec.filter.statuses",
            &filter.statuses,
            limits::MAX_FILTER_STATUSES,
        ),
        (
            "spec.filter.jobIds",
            &filter.job_ids,
            limits::MAX_FILTER_JOB_IDS,
        ),
    ]
    .into_iter()
    .chain(free_text_filters(filter))
    {
        let max = max as usize;
        if list.len() > max {
            check.fail(
                field,
                format!("must have at most {max} items (got {})", list.len()),
            );
        }
    }
}

/// The filters whose items are free text (not matched against a closed set): each with its
/// field and its most items.
fn free_text_filters(filter: &TaskFilter) -> [(&'static str, &Vec<String>, u32); 2] {
    [
        (
            "spec.filter.userNames",
            &filter.user_names,
            limits::MAX_FILTER_USER_NAMES,
        ),
        (
            "spec.filter.paramsContains",
            &filter.params_contains,
            limits::MAX_FILTER_PARAMS_CONTAINS,
        ),
    ]
}

/// The free-text filters (user names, `params` substrings) are the only ones whose items are
/// not matched against a closed set, so each item's own length is bounded here.
fn check_filter_items(check: &mut Checker, filter: &TaskFilter) {
    let (min_chars, max_chars) = (
        limits::MIN_FILTER_VALUE_CHARS as usize,
        limits::MAX_FILTER_VALUE_CHARS as usize,
    );
    for (field, list, max_items) in free_text_filters(filter) {
        // An over-long list was refused by check_filter_lengths: its items beyond the limit
        // are not read.
        for (index, item) in list.iter().enumerate().take(max_items as usize) {
            let chars = item.chars().count();
            if chars < min_chars || chars > max_chars {
                check.fail(
                    &format!("{field}[{index}]"),
                    format!("must be {min_chars} to {max_chars} characters (got {chars})"),
                );
            }
        }
    }
}

/// How often the object polls and how much of each poll it keeps. A bad interval still yields
/// its minimum, so the other rules are checked against a usable value.
fn check_polling(check: &mut Checker, spec: &DcsTaskQuerySpec) -> (Duration, Duration) {
    let interval = check
        .duration("spec.interval", &spec.interval, limits::INTERVAL)
        .unwrap_or(limits::MIN_INTERVAL);
    let active_interval = check
        .duration(
            "spec.activeInterval",
            &spec.active_interval,
            limits::ACTIVE_INTERVAL,
        )
        .unwrap_or(limits::MIN_ACTIVE_INTERVAL);
    check.range(
        "spec.maxTasks",
        spec.max_tasks.into(),
        limits::MIN_TASKS.into(),
        Some(limits::MAX_TASKS.into()),
    );
    (interval, active_interval)
}

/// `spec.waitFor` as a whole; returns its parsed `lookback` and `timeout`.
///
/// A wait is the part of the spec a pipeline blocks on, so each of its rules says which of
/// the wait's fields to fix; the steps run in field order, so messages keep that order.
fn check_wait_for(check: &mut Checker, wait: &WaitForSpec) -> (Option<Duration>, Option<Duration>) {
    check_wait_target(check, wait);
    check_wait_source(check, wait);
    check_wait_status_lengths(check, wait);
    if let Some(created_after) = &wait.created_after {
        check_created_after(check, created_after);
    }
    let lookback = check.duration("spec.waitFor.lookback", &wait.lookback, limits::LOOKBACK);
    let timeout = wait
        .timeout
        .as_deref()
        .and_then(|value| check.duration("spec.waitFor.timeout", value, limits::TIMEOUT));
    check_wait_verdicts(check, wait);
    (lookback, timeout)
}

/// A wait follows exactly one task: by job id or by name, never both, never neither.
fn check_wait_target(check: &mut Checker, wait: &WaitForSpec) {
    match (&wait.job_id, &wait.name) {
        (Some(_), Some(_)) | (None, None) => check.fail(
            "spec.waitFor",
            "needs exactly one of jobId (preferred) or name",
        ),
        _ => {}
    }
    let max = limits::MAX_WAIT_TARGET_CHARS as usize;
    for (field, value) in [
        ("spec.waitFor.jobId", &wait.job_id),
        ("spec.waitFor.name", &wait.name),
    ] {
        match value.as_deref().map(|value| value.chars().count()) {
            Some(0) => check.fail(field, "must not be empty"),
            Some(chars) if chars > max => check.fail(
                field,
                format!("must be at most {max} characters (got {chars})"),
            ),
            _ => {}
        }
    }
}

/// A job-API wait puts the job id in the request path: it must be one, and it must be there.
fn check_wait_source(check: &mut Checker, wait: &WaitForSpec) {
    match (wait.effective_source(), &wait.job_id) {
        (WaitSource::Job, Some(job)) => {
            if let Err(error) = JobId::parse(job) {
                check.fail(
                    "spec.waitFor.jobId",
                    format!("with source Job (the default for jobId), {error}"),
                );
            }
        }
        (WaitSource::Job, None) => check.fail(
            "spec.waitFor.source",
            "Job needs spec.waitFor.jobId (a name wait reads the task list: use TaskList)",
        ),
        (WaitSource::TaskList, _) => {}
    }
}

/// The status lists are read on every poll of the wait: their length bounds that work.
fn check_wait_status_lengths(check: &mut Checker, wait: &WaitForSpec) {
    let max_statuses = limits::MAX_WAIT_STATUSES as usize;
    for (field, list) in [
        ("spec.waitFor.successStatuses", &wait.success_statuses),
        ("spec.waitFor.failureStatuses", &wait.failure_statuses),
    ] {
        if list.len() > max_statuses {
            check.fail(
                field,
                format!(
                    "must have at most {max_statuses} items (got {})",
                    list.len()
                ),
            );
        }
    }
}

/// Its bounds are instants, not counts or lengths: the message gives them in RFC 3339, the
/// way the field is written.
fn check_created_after(check: &mut Checker, created_after: &Time) {
    let seconds = created_after.0.as_second();
    if !(limits::MIN_CREATED_AFTER_UNIX_SECONDS..=limits::MAX_CREATED_AFTER_UNIX_SECONDS)
        .contains(&seconds)
    {
        check.fail(
            "spec.waitFor.createdAfter",
            format!(
                "must be between {} and {} (got {})",
                rfc3339(limits::MIN_CREATED_AFTER_UNIX_SECONDS),
                rfc3339(limits::MAX_CREATED_AFTER_UNIX_SECONDS),
                created_after.0
            ),
        );
    }
}

/// A task-list wait can only end if some status succeeds it, and a status cannot both
/// succeed and fail it.
fn check_wait_verdicts(check: &mut Checker, wait: &WaitForSpec) {
    if wait.success_statuses.is_empty() {
        check.fail(
            "spec.waitFor.successStatuses",
            "must list at least one status (default SUCCESS)",
        );
    }
    let overlap: Vec<&str> = wait
        .success_statuses
        .iter()
        .filter(|status| wait.failure_statuses.contains(status))
        .map(String::as_str)
        .collect();
    if !overlap.is_empty() {
        check.fail(
            "spec.waitFor.successStatuses",
            format!(
                "must not overlap spec.waitFor.failureStatuses (both list {})",
                overlap.join(", ")
            ),
        );
    }
}

/// The TTL deletes the object, so it is bounded and only allowed where a wait decides when
/// its clock starts.
fn check_ttl_after_resolved(check: &mut Checker, spec: &DcsTaskQuerySpec) -> Option<Duration> {
    let ttl = spec.ttl_after_resolved.as_deref().and_then(|value| {
        check.duration("spec.ttlAfterResolved", value, limits::TTL_AFTER_RESOLVED)
    });
    if spec.ttl_after_resolved.is_some() && spec.wait_for.is_none() {
        check.fail(
            "spec.ttlAfterResolved",
            "needs spec.waitFor: only a wait resolves (set spec.waitFor or remove spec.ttlAfterResolved)",
        );
    }
    ttl
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DcsTaskQuerySpec {
        serde_json::from_value(serde_json::json!({"region": "cn-north-4"})).unwrap()
    }

    fn wait(job_id: Option<&str>, name: Option<&str>) -> WaitForSpec {
        let mut value = serde_json::json!({});
        if let Some(job) = job_id {
            value["jobId"] = job.into();
        }
        if let Some(name) = name {
            value["name"] = name.into();
        }
        serde_json::from_value(value).unwrap()
    }

    fn errors(spec: &DcsTaskQuerySpec) -> Vec<String> {
        validate(spec)
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn assert_refused(spec: &DcsTaskQuerySpec, field: &str, rule_fragment: &str) {
        let all = errors(spec);
        assert!(
            all.iter()
                .any(|e| e.starts_with(&format!("{field}: ")) && e.contains(rule_fragment)),
            "expected {field} ~ {rule_fragment}, got {all:?}"
        );
    }

    #[test]
    fn defaults_are_valid() {
        let valid = validate(&spec()).unwrap();
        assert_eq!(valid.interval, Duration::from_secs(60));
        assert_eq!(valid.active_interval, Duration::from_secs(10));
    }

    #[test]
    fn project_id_length_is_the_limit_the_message_names() {
        let max = limits::MAX_PROJECT_ID_CHARS as usize;
        let mut s = spec();
        s.project_id = Some("p".repeat(max));
        assert!(validate(&s).is_ok());
        s.project_id = Some("p".repeat(max + 1));
        assert_refused(&s, "spec.projectId", &format!("1-{max} letters"));
    }

    #[test]
    fn every_rule_names_its_field() {
        let mut s = spec();
        s.region = "Beijing".into();
        assert_refused(&s, "spec.region", "region id");

        let mut s = spec();
        s.project_id = Some("../etc".into());
        assert_refused(&s, "spec.projectId", "letters");

        let mut s = spec();
        s.endpoint = Some("https://x/v2".into());
        assert_refused(&s, "spec.endpoint", "no path");

        let mut s = spec();
        s.credentials_secret_ref = Some(CredentialsSecretRef {
            name: "Bad_Name".into(),
        });
        assert_refused(&s, "spec.credentialsSecretRef.name", "object name");

        for (limit, ok) in [(0, false), (1, true), (1000, true), (1001, false)] {
            let mut s = spec();
            s.query.limit = Some(limit);
            assert_eq!(validate(&s).is_ok(), ok, "limit {limit}");
            if !ok {
                assert_refused(&s, "spec.query.limit", "between 1 and 1000");
            }
        }

        let mut s = spec();
        s.query.offset = -1;
        assert_refused(&s, "spec.query.offset", "at least 0");

        let mut s = spec();
        s.query.max_pages = 0;
        assert_refused(&s, "spec.query.maxPages", "between 1 and 100");

        let mut s = spec();
        s.query.start_time = Some("20200230000000".into());
        assert_refused(&s, "spec.query.startTime", "yyyyMMddHHmmss");

        let mut s = spec();
        s.query.end_time = Some("2020-06-09".into());
        assert_refused(&s, "spec.query.endTime", "yyyyMMddHHmmss");

        let mut s = spec();
        s.query.start_time = Some("20240101000000".into());
        s.query.end_time = Some("20230101000000".into());
        assert_refused(
            &s,
            "spec.query.startTime",
            "not be after spec.query.endTime",
        );

        let mut s = spec();
        s.query.start_time = Some("20240101000000".into());
        s.query.since = Some("24h".into());
        assert_refused(&s, "spec.query.since", "mutually exclusive");

        let mut s = spec();
        s.query.since = Some("1d".into());
        assert_refused(&s, "spec.query.since", "not a duration");

        let mut s = spec();
        s.interval = "5s".into();
        assert_refused(&s, "spec.interval", "between 10s and 24h");

        let mut s = spec();
        s.active_interval = "1s".into();
        assert_refused(&s, "spec.activeInterval", "between 2s and 24h");

        for huge in ["3000000000h", "8760h1ms", "99999999999999999999s"] {
            let mut s = spec();
            s.interval = huge.into();
            s.active_interval = huge.into();
            s.query.since = Some(huge.into());
            let mut w = wait(Some("j"), None);
            w.lookback = huge.into();
            w.timeout = Some(huge.into());
            s.wait_for = Some(w);
            for field in [
                "spec.interval",
                "spec.activeInterval",
                "spec.query.since",
                "spec.waitFor.lookback",
                "spec.waitFor.timeout",
            ] {
                assert_refused(&s, field, "");
            }
        }

        let mut s = spec();
        s.query.since = Some("1s".repeat(20));
        assert_refused(&s, "spec.query.since", "at most 32 characters");

        let mut s = spec();
        s.max_tasks = 201;
        assert_refused(&s, "spec.maxTasks", "between 0 and 200");

        let mut s = spec();
        s.filter.names = vec!["x".into(); 65];
        assert_refused(&s, "spec.filter.names", "at most 64");
        let mut s = spec();
        s.wait_for = serde_json::from_value(serde_json::json!({
            "jobId": "j".repeat(129), "successStatuses": vec!["S"; 17]
        }))
        .unwrap();
        assert_refused(&s, "spec.waitFor.jobId", "at most 128 characters (got 129)");
        assert_refused(
            &s,
            "spec.waitFor.successStatuses",
            "at most 16 items (got 17)",
        );
    }

    #[test]
    fn wait_for_rules() {
        let mut s = spec();
        s.wait_for = Some(wait(None, None));
        assert_refused(&s, "spec.waitFor", "exactly one of jobId");

        s.wait_for = Some(wait(Some("j"), Some("n")));
        assert_refused(&s, "spec.waitFor", "exactly one of jobId");

        let mut w = wait(Some("j"), None);
        w.success_statuses = vec!["SUCCESS".into(), "FAILED".into()];
        s.wait_for = Some(w);
        assert_refused(&s, "spec.waitFor.successStatuses", "both list FAILED");

        let mut w = wait(None, Some("masterStandbySwapJob"));
        w.timeout = Some("ten minutes".into());
        s.wait_for = Some(w);
        assert_refused(&s, "spec.waitFor.timeout", "not a duration");

        let mut w = wait(None, Some("masterStandbySwapJob"));
        w.success_statuses.clear();
        s.wait_for = Some(w);
        assert_refused(&s, "spec.waitFor.successStatuses", "at least one");

        s.wait_for = Some(wait(Some("job-1"), None));
        assert!(validate(&s).is_ok());
    }

    #[test]
    fn a_job_api_wait_needs_a_job_id_the_path_can_carry() {
        let mut s = spec();
        // The job API is the default for jobId: the id must be a DCS job id.
        s.wait_for = Some(wait(Some("a/../b"), None));
        assert_refused(&s, "spec.waitFor.jobId", "is not a DCS job id");
        assert_refused(&s, "spec.waitFor.jobId", "source Job");
        // The task list compares the id as text: any id within the length bound.
        let mut w = wait(Some("a/../b"), None);
        w.source = Some(WaitSource::TaskList);
        s.wait_for = Some(w);
        assert!(validate(&s).is_ok());
        // A name wait reads the task list only.
        let mut w = wait(None, Some("masterStandbySwapJob"));
        w.source = Some(WaitSource::Job);
        s.wait_for = Some(w);
        assert_refused(&s, "spec.waitFor.source", "needs spec.waitFor.jobId");
        let mut w = wait(None, Some("masterStandbySwapJob"));
        w.source = Some(WaitSource::TaskList);
        s.wait_for = Some(w);
        assert!(validate(&s).is_ok());
    }

    #[test]
    fn ttl_after_resolved_is_a_bounded_duration_and_needs_a_wait() {
        let with = |ttl: &str, wait_for: bool| {
            let mut s = spec();
            s.ttl_after_resolved = Some(ttl.into());
            if wait_for {
                s.wait_for = Some(wait(Some("job-1"), None));
            }
            s
        };
        for (ttl, expected) in [
            ("0s", Duration::ZERO),
            ("3s", Duration::from_secs(3)),
            ("1h30m", Duration::from_secs(5400)),
            ("720h", limits::MAX_TTL_AFTER_RESOLVED),
        ] {
            let valid = validate(&with(ttl, true)).unwrap();
            assert_eq!(valid.ttl_after_resolved, Some(expected), "{ttl}");
        }
        assert_eq!(validate(&spec()).unwrap().ttl_after_resolved, None);

        assert_refused(&with("721h", true), "spec.ttlAfterResolved", "at most 720h");
        assert_refused(
            &with("720h1ms", true),
            "spec.ttlAfterResolved",
            "at most 720h",
        );
        assert_refused(
            &with("3000000000h", true),
            "spec.ttlAfterResolved",
            "at most 720h",
        );
        assert_refused(&with("1d", true), "spec.ttlAfterResolved", "not a duration");
        assert_refused(
            &with(&"1s".repeat(20), true),
            "spec.ttlAfterResolved",
            "at most 32 characters",
        );
        // Without a wait nothing resolves: refused, naming both fields.
        assert_refused(
            &with("1h", false),
            "spec.ttlAfterResolved",
            "needs spec.waitFor",
        );
    }

    #[test]
    fn all_errors_are_reported_together() {
        let mut s = spec();
        s.region = "x".into();
        s.query.limit = Some(0);
        s.interval = "1s".into();
        let message = validate(&s).unwrap_err().to_string();
        assert!(
            message.starts_with("invalid spec: spec.region"),
            "{message}"
        );
        assert!(message.contains("spec.query.limit"), "{message}");
        assert!(message.contains("spec.interval"), "{message}");
    }

    #[test]
    fn user_names_and_params_contains_are_bounded_like_the_schema() {
        use crate::api::limits::{
            MAX_FILTER_PARAMS_CONTAINS, MAX_FILTER_USER_NAMES, MAX_FILTER_VALUE_CHARS,
        };
        let longest = "名".repeat(MAX_FILTER_VALUE_CHARS as usize);
        let mut s = spec();
        s.filter.user_names = vec![longest.clone(); MAX_FILTER_USER_NAMES as usize];
        s.filter.params_contains = vec![longest.clone(); MAX_FILTER_PARAMS_CONTAINS as usize];
        assert!(validate(&s).is_ok(), "characters, not bytes, are counted");

        let mut s = spec();
        s.filter.user_names = vec!["u".into(); MAX_FILTER_USER_NAMES as usize + 1];
        assert_refused(&s, "spec.filter.userNames", "at most 64 items");
        let mut s = spec();
        s.filter.params_contains = vec!["p".into(); MAX_FILTER_PARAMS_CONTAINS as usize + 1];
        assert_refused(&s, "spec.filter.paramsContains", "at most 16 items");

        let mut s = spec();
        s.filter.user_names = vec!["ok".into(), String::new()];
        s.filter.params_contains = vec![format!("{longest}x")];
        assert_refused(
            &s,
            "spec.filter.userNames[1]",
            "1 to 256 characters (got 0)",
        );
        assert_refused(&s, "spec.filter.paramsContains[0]", "(got 257)");

        // A huge list is refused without one message per item.
        let mut s = spec();
        s.filter.user_names = vec![String::new(); 100_000];
        assert!(errors(&s).len() <= 1 + MAX_FILTER_USER_NAMES as usize);
    }

    #[test]
    fn created_after_is_settable_and_bounded() {
        use crate::api::time::Time;
        use crate::api::time::Timestamp;
        let with = |time: Time| {
            let mut s = spec();
            let mut w = wait(None, Some("masterStandbySwapJob"));
            w.created_after = Some(time);
            s.wait_for = Some(w);
            s
        };
        let explicit: DcsTaskQuerySpec = serde_json::from_value(serde_json::json!({
            "region": "cn-north-4",
            "waitFor": {"name": "masterStandbySwapJob", "createdAfter": "2026-11-27T12:00:00Z"}
        }))
        .unwrap();
        assert!(validate(&explicit).is_ok());
        for (seconds, ok) in [
            (limits::MIN_CREATED_AFTER_UNIX_SECONDS, true),
            (limits::MAX_CREATED_AFTER_UNIX_SECONDS, true),
            (limits::MIN_CREATED_AFTER_UNIX_SECONDS - 1, false),
            (limits::MAX_CREATED_AFTER_UNIX_SECONDS + 1, false),
        ] {
            let s = with(Time(Timestamp::new(seconds, 0).unwrap()));
            assert_eq!(validate(&s).is_ok(), ok, "{seconds}");
        }
        for extreme in [Timestamp::MIN, Timestamp::MAX] {
            let s = with(Time(extreme));
            assert_refused(
                &s,
                "spec.waitFor.createdAfter",
                "between 1970-01-01T00:00:00Z and 9999-01-01T00:00:00Z",
            );
        }
    }
}
