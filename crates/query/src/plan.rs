//! Spec + now -> what to ask the API and what to look for in the answer.

use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use super::validate::{FieldError, SpecErrors, validate};
use crate::api::{DcsTaskQuerySpec, TaskFilter, WaitSource};
use crate::dcs::{JobId, MAX_LIMIT, PageRequest, Paging, QueryTime};

/// `since` windows start on a whole minute, so objects with equal queries polled a few seconds
/// apart still ask the same question and can share one upstream call.
pub const SINCE_ALIGNMENT: TimeDelta = TimeDelta::minutes(1);

/// The times planning depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanContext {
    pub now: DateTime<Utc>,
    /// When this generation's wait started (for generation 1, the object's creation; see
    /// `report::wait_started_at`): `waitFor.timeout` counts from here, and
    /// `waitFor.createdAfter` defaults to this minus `lookback`.
    pub wait_started_at: DateTime<Utc>,
}

impl PlanContext {
    /// Both times equal: a fresh start (the CLI, a new object).
    pub fn starting_at(now: DateTime<Utc>) -> Self {
        Self {
            now,
            wait_started_at: now,
        }
    }
}

/// What to ask the task center, independent of the moment it is asked: a `since` window stays
/// relative, so one upstream feed can serve a query for as long as its spec stands.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListRequest {
    /// The page parameters; `start_time` is left out while `since` is set.
    pub page: PageRequest,
    /// `spec.query.since`: the window starts this long before each poll.
    pub since: Option<Duration>,
    pub paging: Paging,
}

impl ListRequest {
    /// The page to ask for at `now`: a `since` window starts `since` before `now`, on a whole
    /// minute ([`SINCE_ALIGNMENT`]). A window start outside the calendar (impossible for the
    /// bounded `since`) leaves the window open at the start rather than failing the poll.
    pub fn page_at(&self, now: DateTime<Utc>) -> PageRequest {
        match self.since {
            Some(since) => PageRequest {
                start_time: since_start(now, since),
                ..self.page.clone()
            },
            None => self.page.clone(),
        }
    }
}

/// Where a `since` window starting at `now` begins, aligned down to the minute.
fn since_start(now: DateTime<Utc>, since: Duration) -> Option<QueryTime> {
    let start = TimeDelta::from_std(since)
        .ok()
        .and_then(|delta| now.checked_sub_signed(delta))?;
    let aligned = start.duration_trunc(SINCE_ALIGNMENT).unwrap_or(start);
    Some(QueryTime::from_datetime(aligned))
}

/// A query ready to run and to judge.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPlan {
    /// The page asked at the planning moment (`since` resolved against `now`).
    pub page: PageRequest,
    /// `spec.query.since`, kept relative for [`QueryPlan::list_request`].
    pub since: Option<Duration>,
    pub paging: Paging,
    pub max_tasks: usize,
    pub concern: Concern,
}

/// The part of a plan that an upstream feed keeps for each subscriber: which tasks concern
/// it (its filter and its wait) and how often it needs an answer. Not the page it asked for,
/// which the feed's key holds once for all; objects asking the same query the same way share
/// one copy (see `upstream::feed`), so a feed of 10,000 subscribers does not keep 10,000.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Concern {
    pub filter: TaskFilter,
    pub wait: Option<WaitPlan>,
    pub interval: Duration,
    pub active_interval: Duration,
}

impl Concern {
    /// The wait, if its verdict comes from the task list (not from the job API).
    pub fn list_wait(&self) -> Option<&WaitPlan> {
        self.wait.as_ref().filter(|wait| !wait.reads_job_api())
    }
}

/// How to find the awaited task and judge it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WaitPlan {
    pub target: WaitTarget,
    /// Where the verdict comes from: the job API (a `jobId` wait by default) or the task list.
    pub source: WaitSource,
    pub success_statuses: Vec<String>,
    pub failure_statuses: Vec<String>,
    pub started_at: DateTime<Utc>,
    pub deadline: Option<DateTime<Utc>>,
}

impl WaitPlan {
    /// See [`QueryPlan::awaited_job`]. Validation has checked the id, so `None` means "not a
    /// job-API wait".
    pub fn awaited_job(&self) -> Option<JobId> {
        match (&self.target, self.source) {
            (WaitTarget::JobId(job), WaitSource::Job) => JobId::parse(job).ok(),
            _ => None,
        }
    }

    /// The verdict comes from the job API, not from the task list.
    pub fn reads_job_api(&self) -> bool {
        self.source == WaitSource::Job && matches!(self.target, WaitTarget::JobId(_))
    }
}

/// The awaited task.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WaitTarget {
    /// Exact job id; when it appears more than once the newest task wins.
    JobId(String),
    /// The newest task of this name created at or after `created_after`.
    Name {
        name: String,
        created_after: DateTime<Utc>,
    },
}

impl std::fmt::Display for WaitTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitTarget::JobId(job) => write!(f, "job {job}"),
            WaitTarget::Name {
                name,
                created_after,
            } => write!(
                f,
                "the newest {name} task created after {}",
                created_after.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        }
    }
}

/// Validates `spec` and plans the request for the moment in `context`.
pub fn plan(spec: &DcsTaskQuerySpec, context: &PlanContext) -> Result<QueryPlan, SpecErrors> {
    let valid = validate(spec)?;
    let query = &spec.query;
    let paging = if query.all_pages {
        Paging::All {
            max_pages: u32::try_from(query.max_pages).unwrap_or(1),
        }
    } else {
        Paging::Single
    };
    let limit = match (query.limit, paging) {
        (Some(limit), _) => u32::try_from(limit).ok(),
        (None, Paging::All { .. }) => Some(MAX_LIMIT),
        (None, Paging::Single) => None,
    };
    let mut errors = Vec::new();
    let start_time = match valid.since {
        Some(since) => {
            // Checked first, so that a window outside the calendar is a field error.
            shifted(
                context.now,
                since,
                Shift::Back,
                "spec.query.since",
                &mut errors,
            )
            .and_then(|_| since_start(context.now, since))
        }
        None => valid.start_time,
    };
    let wait = match &spec.wait_for {
        None => None,
        Some(wait) => {
            let target = match (&wait.job_id, &wait.name) {
                (Some(job), _) => WaitTarget::JobId(job.clone()),
                (None, name) => {
                    let created_after = match &wait.created_after {
                        Some(explicit) => crate::api::time::to_chrono(explicit),
                        // From this generation's wait: a re-armed wait looks for the run
                        // it was re-armed for, not the previous run's result.
                        None => shifted(
                            context.wait_started_at,
                            valid.lookback.unwrap_or_default(),
                            Shift::Back,
                            "spec.waitFor.lookback",
                            &mut errors,
                        )
                        .unwrap_or(context.wait_started_at),
                    };
                    WaitTarget::Name {
                        name: name.clone().unwrap_or_default(),
                        created_after,
                    }
                }
            };
            let deadline = valid.timeout.and_then(|timeout| {
                shifted(
                    context.wait_started_at,
                    timeout,
                    Shift::Forward,
                    "spec.waitFor.timeout",
                    &mut errors,
                )
            });
            Some(WaitPlan {
                target,
                source: wait.effective_source(),
                success_statuses: wait.success_statuses.clone(),
                failure_statuses: wait.failure_statuses.clone(),
                started_at: context.wait_started_at,
                deadline,
            })
        }
    };
    if !errors.is_empty() {
        return Err(SpecErrors(errors));
    }
    Ok(QueryPlan {
        page: PageRequest {
            offset: u32::try_from(query.offset).unwrap_or(0),
            limit,
            start_time,
            end_time: valid.end_time,
        },
        since: valid.since,
        paging,
        max_tasks: usize::try_from(spec.max_tasks).unwrap_or(0),
        concern: Concern {
            filter: spec.filter.clone(),
            wait,
            interval: valid.interval,
            active_interval: valid.active_interval,
        },
    })
}

impl QueryPlan {
    /// The request without the planning moment, for an upstream feed to repeat.
    pub fn list_request(&self) -> ListRequest {
        ListRequest {
            page: PageRequest {
                start_time: if self.since.is_some() {
                    None
                } else {
                    self.page.start_time
                },
                ..self.page.clone()
            },
            since: self.since,
            paging: self.paging,
        }
    }

    /// The job to ask the job API about: the awaited job of a `jobId` wait read from the job
    /// API (`waitFor.source: Job`, its default).
    pub fn awaited_job(&self) -> Option<JobId> {
        self.concern.wait.as_ref().and_then(WaitPlan::awaited_job)
    }

    /// The polling intervals the spec asks for.
    pub fn intervals(&self) -> super::schedule::Intervals {
        super::schedule::Intervals {
            active: self.concern.active_interval,
            settled: self.concern.interval,
        }
    }
}

#[derive(Clone, Copy)]
enum Shift {
    Back,
    Forward,
}

/// `at` moved by `by`, or a field error when the result leaves the calendar. Validation bounds
/// every duration far below that, so this only guards against a clock or timestamp that is
/// itself absurd (an object created in the year 262000): no input may panic the process.
fn shifted(
    at: DateTime<Utc>,
    by: Duration,
    shift: Shift,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<DateTime<Utc>> {
    let moved = TimeDelta::from_std(by).ok().and_then(|delta| match shift {
        Shift::Back => at.checked_sub_signed(delta),
        Shift::Forward => at.checked_add_signed(delta),
    });
    if moved.is_none() {
        errors.push(FieldError {
            field: field.to_string(),
            rule: format!(
                "{} from {} is outside the supported calendar",
                crate::duration::format(by),
                at.to_rfc3339()
            ),
        });
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn spec(value: serde_json::Value) -> DcsTaskQuerySpec {
        let mut base = serde_json::json!({"region": "cn-north-4"});
        base.as_object_mut()
            .unwrap()
            .extend(value.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, h, m, s).unwrap()
    }

    #[test]
    fn all_pages_by_default_with_the_largest_page() {
        let plan = plan(
            &spec(serde_json::json!({})),
            &PlanContext::starting_at(at(12, 0, 0)),
        )
        .unwrap();
        assert_eq!(plan.paging, Paging::All { max_pages: 10 });
        assert_eq!(plan.page.limit, Some(1000));
        assert_eq!(plan.page.offset, 0);
        assert_eq!(plan.page.start_time, None);
        assert_eq!(plan.max_tasks, 20);
        assert_eq!(plan.concern.wait, None);
    }

    #[test]
    fn single_page_keeps_the_api_semantics() {
        let single = plan(
            &spec(serde_json::json!({"query": {"allPages": false, "offset": 3}})),
            &PlanContext::starting_at(at(12, 0, 0)),
        )
        .unwrap();
        assert_eq!(single.paging, Paging::Single);
        assert_eq!(single.page.limit, None);
        assert_eq!(single.page.offset, 3);
    }

    #[test]
    fn since_is_evaluated_at_each_poll_and_aligned_to_the_minute() {
        let s = spec(serde_json::json!({"query": {"since": "24h", "endTime": "20261231000000"}}));
        let first = plan(&s, &PlanContext::starting_at(at(12, 0, 5))).unwrap();
        let second = plan(&s, &PlanContext::starting_at(at(12, 0, 50))).unwrap();
        let later = plan(&s, &PlanContext::starting_at(at(12, 5, 0))).unwrap();
        assert_eq!(first.page.start_time.unwrap().to_param(), "20261126120000");
        assert_eq!(first.page, second.page);
        assert_eq!(later.page.start_time.unwrap().to_param(), "20261126120500");
        assert_eq!(first.page.end_time.unwrap().to_param(), "20261231000000");
    }

    #[test]
    fn a_feed_request_keeps_since_relative_and_fixed_windows_fixed() {
        let relative =
            spec(serde_json::json!({"query": {"since": "24h", "endTime": "20261231000000"}}));
        let first = plan(&relative, &PlanContext::starting_at(at(12, 0, 5))).unwrap();
        let later = plan(&relative, &PlanContext::starting_at(at(12, 5, 0))).unwrap();
        // Planned minutes apart, the request (a feed's key) is the same...
        let request = first.list_request();
        assert_eq!(request, later.list_request());
        assert_eq!(request.since, Some(Duration::from_secs(86_400)));
        assert_eq!(request.page.start_time, None);
        assert_eq!(request.page.limit, first.page.limit);
        // ... and each poll asks for the window at its own moment.
        assert_eq!(request.page_at(at(12, 0, 5)), first.page);
        assert_eq!(request.page_at(at(12, 5, 0)), later.page);

        let fixed = spec(serde_json::json!({"query": {"startTime": "20261101000000"}}));
        let planned = plan(&fixed, &PlanContext::starting_at(at(12, 0, 5))).unwrap();
        let request = planned.list_request();
        assert_eq!(request.since, None);
        assert_eq!(request.page_at(at(23, 0, 0)), planned.page);
        assert_eq!(
            request.page.start_time.unwrap().to_param(),
            "20261101000000"
        );
        let intervals = planned.intervals();
        assert_eq!(intervals.active, Duration::from_secs(10));
        assert_eq!(intervals.settled, Duration::from_secs(60));
    }

    #[test]
    fn wait_by_name_defaults_to_the_wait_start_minus_lookback() {
        let s = spec(
            serde_json::json!({"waitFor": {"name": "masterStandbySwapJob", "timeout": "10m"}}),
        );
        let context = PlanContext {
            now: at(12, 30, 0),
            wait_started_at: at(12, 10, 0),
        };
        // A re-armed wait (its generation's wait started at 12:10, after the object's creation
        // at 12:00): the previous run's tasks, created before 12:05, do not count.
        let wait = plan(&s, &context).unwrap().concern.wait.unwrap();
        assert_eq!(
            wait.target,
            WaitTarget::Name {
                name: "masterStandbySwapJob".into(),
                created_after: at(12, 5, 0)
            }
        );
        assert_eq!(wait.deadline, Some(at(12, 20, 0)));
        assert_eq!(wait.success_statuses, vec!["SUCCESS"]);
        assert_eq!(
            wait.failure_statuses,
            vec!["FAILED", "FAIL", "CANCELLED", "DELETED"]
        );
    }

    #[test]
    fn explicit_created_after_and_job_id() {
        let s = spec(
            serde_json::json!({"waitFor": {"name": "EXTEND", "createdAfter": "2026-11-27T08:00:00Z"}}),
        );
        let wait = plan(&s, &PlanContext::starting_at(at(12, 0, 0)))
            .unwrap()
            .concern
            .wait
            .unwrap();
        assert_eq!(
            wait.target,
            WaitTarget::Name {
                name: "EXTEND".into(),
                created_after: at(8, 0, 0)
            }
        );
        assert_eq!(wait.deadline, None);
        let s = spec(serde_json::json!({"waitFor": {"jobId": "ff80"}}));
        let wait = plan(&s, &PlanContext::starting_at(at(12, 0, 0)))
            .unwrap()
            .concern
            .wait
            .unwrap();
        assert_eq!(wait.target, WaitTarget::JobId("ff80".into()));
    }

    #[test]
    fn times_outside_the_calendar_are_field_errors_not_panics() {
        let s = spec(serde_json::json!({
            "query": {"since": "8760h"},
            "waitFor": {"name": "n", "lookback": "8760h", "timeout": "720h"}
        }));
        let fields = |wait_started_at: DateTime<Utc>| {
            let errors = plan(
                &s,
                &PlanContext {
                    now: DateTime::<Utc>::MIN_UTC,
                    wait_started_at,
                },
            )
            .unwrap_err();
            assert!(errors.0[0].rule.contains("outside the supported calendar"));
            errors
                .0
                .into_iter()
                .map(|e| e.field)
                .collect::<Vec<String>>()
        };
        // The lookback counts back from the wait's start, the timeout forward from it.
        assert_eq!(
            fields(DateTime::<Utc>::MIN_UTC),
            vec!["spec.query.since", "spec.waitFor.lookback"]
        );
        assert_eq!(
            fields(DateTime::<Utc>::MAX_UTC),
            vec!["spec.query.since", "spec.waitFor.timeout"]
        );
    }

    #[test]
    fn wait_targets_read_as_users_wrote_them() {
        assert_eq!(WaitTarget::JobId("ff80".into()).to_string(), "job ff80");
        let by_name = WaitTarget::Name {
            name: "EXTEND".into(),
            created_after: at(8, 0, 0),
        };
        assert_eq!(
            by_name.to_string(),
            "the newest EXTEND task created after 2026-11-27T08:00:00Z"
        );
    }

    #[test]
    fn invalid_specs_do_not_plan() {
        let s = spec(serde_json::json!({"query": {"limit": 0}}));
        assert!(plan(&s, &PlanContext::starting_at(at(12, 0, 0))).is_err());
    }
}
