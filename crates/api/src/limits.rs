//! The bounds on every duration a spec may hold, defined once and read by both the CRD schema
//! (`maxLength` and CEL rules, so the apiserver refuses at `kubectl apply`) and
//! `query::validate` (crate `dcs-query`) (so a server that drops CEL, or the CLI, refuses the same values).
//!
//! Why bounds at all: the operator is shared by every tenant, and an unbounded duration is a
//! crash waiting to happen (`now - 3000000000h` overflows any calendar, a requeue years away
//! overflows the timer wheel). Each bound is far beyond what a real query needs.

use std::time::Duration;

use kube::core::{Message, Rule};

use crate::duration;

/// Longest duration string accepted anywhere (`"999h59m59s999ms"` is 15 characters).
pub const MAX_DURATION_CHARS: u32 = 32;

/// Poll intervals: at least this often while something is awaited or running...
pub const MIN_ACTIVE_INTERVAL: Duration = Duration::from_secs(2);
/// ...and at least this far apart once settled (the API gateway throttles)...
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);
/// ...and never further apart than a day: a status older than that is not "live".
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// `query.since` and `waitFor.lookback`: how far back a window may reach (one year; the task
/// center keeps far less).
pub const MAX_LOOKBACK: Duration = Duration::from_secs(365 * 24 * 3600);

/// `waitFor.timeout`: the longest a wait may last (thirty days; DCS jobs take minutes to hours).
pub const MAX_WAIT_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 3600);

/// `ttlAfterResolved`: the longest a resolved waiter may be kept before it deletes itself
/// (thirty days; a pipeline reads the verdict within minutes).
pub const MAX_TTL_AFTER_RESOLVED: Duration = Duration::from_secs(30 * 24 * 3600);

/// `filter.userNames`: most IAM user names one filter may list.
pub const MAX_FILTER_USER_NAMES: u32 = 64;

/// `filter.paramsContains`: most substrings one filter may list (each must appear in `params`).
pub const MAX_FILTER_PARAMS_CONTAINS: u32 = 16;

/// Shortest single `filter.userNames` / `filter.paramsContains` item, in characters: an empty
/// item narrows nothing (an empty substring is in every `params`).
pub const MIN_FILTER_VALUE_CHARS: u32 = 1;

/// Longest single `filter.userNames` / `filter.paramsContains` item, in characters (the
/// schema's `maxLength` counts characters too). IAM user names are at most 64 characters;
/// ids inside `params` are far shorter than this.
pub const MAX_FILTER_VALUE_CHARS: u32 = 256;

/// `maxTasks`: fewest tasks `.status.tasks` keeps (none: the status then only says how many
/// it left out).
pub const MIN_TASKS: i32 = 0;

/// `maxTasks`: most tasks `.status.tasks` keeps, so a status stays far below the apiserver's
/// object size limit whatever the tasks hold.
pub const MAX_TASKS: i32 = 200;

/// `query.maxPages`: fewest pages one listing reads (a listing is at least one request).
pub const MIN_PAGES: i32 = 1;

/// `query.maxPages`: most pages one listing reads (each a request against the account's budget).
pub const MAX_PAGES: i32 = 100;

/// `query.offset`: the position of the first record is 0-based.
pub const MIN_OFFSET: i32 = 0;

/// `query.limit`: the smallest page the API returns.
pub const MIN_QUERY_LIMIT: i32 = 1;

/// `query.limit`: the API's own page size limit (`dcs::MAX_LIMIT`).
pub const MAX_QUERY_LIMIT: i32 = 1000;

/// `projectId`: longest project id accepted (Huawei Cloud's are 32 hex digits). The bound is
/// written inside [`super::patterns::PROJECT_ID`] too, since a regex cannot read a constant; a
/// test in `query::validate` (crate `dcs-query`) keeps the two equal.
pub const MAX_PROJECT_ID_CHARS: u32 = 64;

/// `credentialsSecretRef.name`: a Kubernetes object name (DNS subdomain) is at most this long.
pub const MAX_SECRET_NAME_CHARS: u32 = 253;

/// `filter.names` and `filter.statuses`: more entries than DCS has task names or statuses.
pub const MAX_FILTER_NAMES: u32 = 64;
pub const MAX_FILTER_STATUSES: u32 = 64;

/// `filter.jobIds`: job ids one filter may list (a pipeline's batch of jobs).
pub const MAX_FILTER_JOB_IDS: u32 = 256;

/// `waitFor.jobId` and `waitFor.name`: DCS job ids are 32 characters, task names shorter still.
pub const MAX_WAIT_TARGET_CHARS: u32 = 128;

/// `waitFor.successStatuses` and `waitFor.failureStatuses`: more than DCS has statuses.
pub const MAX_WAIT_STATUSES: u32 = 16;

/// Earliest `waitFor.createdAfter` accepted: the Unix epoch (the task center holds nothing
/// older, and an earlier time would only make every task of the name count).
pub const MIN_CREATED_AFTER_UNIX_SECONDS: i64 = 0;

/// Latest `waitFor.createdAfter` accepted: `9999-01-01T00:00:00Z`, safely inside what both
/// RFC 3339 (four-digit years) and Kubernetes' time type (which stops in late 9999) can hold.
pub const MAX_CREATED_AFTER_UNIX_SECONDS: i64 = 253_370_764_800;

/// One duration field and its bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationBounds {
    /// The field's name inside its object, as CEL sees it (`interval`, `since`).
    pub field: &'static str,
    pub min: Option<Duration>,
    pub max: Duration,
}

pub const INTERVAL: DurationBounds = DurationBounds {
    field: "interval",
    min: Some(MIN_INTERVAL),
    max: MAX_INTERVAL,
};
pub const ACTIVE_INTERVAL: DurationBounds = DurationBounds {
    field: "activeInterval",
    min: Some(MIN_ACTIVE_INTERVAL),
    max: MAX_INTERVAL,
};
pub const SINCE: DurationBounds = DurationBounds {
    field: "since",
    min: None,
    max: MAX_LOOKBACK,
};
pub const LOOKBACK: DurationBounds = DurationBounds {
    field: "lookback",
    min: None,
    max: MAX_LOOKBACK,
};
pub const TIMEOUT: DurationBounds = DurationBounds {
    field: "timeout",
    min: None,
    max: MAX_WAIT_TIMEOUT,
};

pub const TTL_AFTER_RESOLVED: DurationBounds = DurationBounds {
    field: "ttlAfterResolved",
    min: None,
    max: MAX_TTL_AFTER_RESOLVED,
};

impl DurationBounds {
    /// What the bounds require, in words (`between 10s and 24h`, `at most 8760h`): the same
    /// text in the CEL message and in the operator's own message.
    pub fn describe(&self) -> String {
        match self.min {
            Some(min) => format!(
                "between {} and {}",
                duration::format(min),
                duration::format(self.max)
            ),
            None => format!("at most {}", duration::format(self.max)),
        }
    }

    /// The CEL rule for the field, placed on the object that holds it. An optional field is
    /// only checked when set.
    pub fn rule(&self, optional: bool) -> Rule {
        let field = self.field;
        let value = format!("duration(self.{field})");
        let mut checks = Vec::new();
        if let Some(min) = self.min {
            checks.push(format!("{value} >= duration('{}')", duration::format(min)));
        }
        checks.push(format!(
            "{value} <= duration('{}')",
            duration::format(self.max)
        ));
        let mut expression = checks.join(" && ");
        if optional {
            expression = format!("!has(self.{field}) || ({expression})");
        }
        Rule::new(expression)
            .message(Message::Message(format!(
                "{field} must be {}",
                self.describe()
            )))
            .field_path(format!(".{field}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_read_the_same_in_cel_and_in_words() {
        assert_eq!(INTERVAL.describe(), "between 10s and 24h");
        assert_eq!(TIMEOUT.describe(), "at most 720h");
        assert_eq!(TTL_AFTER_RESOLVED.describe(), "at most 720h");
        let rule = serde_json::to_value(SINCE.rule(true)).unwrap();
        assert_eq!(
            rule["rule"],
            "!has(self.since) || (duration(self.since) <= duration('8760h'))"
        );
        assert_eq!(rule["message"], "since must be at most 8760h");
        assert_eq!(rule["fieldPath"], ".since");
    }

    #[test]
    fn every_bound_fits_the_duration_syntax_and_length() {
        for bounds in [
            INTERVAL,
            ACTIVE_INTERVAL,
            SINCE,
            LOOKBACK,
            TIMEOUT,
            TTL_AFTER_RESOLVED,
        ] {
            let text = duration::format(bounds.max);
            assert!(text.len() <= MAX_DURATION_CHARS as usize);
            assert_eq!(duration::parse(&text), Ok(bounds.max));
        }
    }
}
