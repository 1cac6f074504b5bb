//! Tasks -> the status view: filter, newest-first order, bounds, latest per name, and the
//! waitFor verdict.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::job::JobView;
use super::plan::{Concern, QueryPlan, WaitPlan, WaitTarget};
use crate::api::{LatestTask, TaskDetailsStatus, TaskFilter, TaskStatus, WaitPhase};
use crate::dcs::{CenterTask, PageRequest, QueryTime, TaskDetails, TaskListing, TaskTime};

/// Statuses after which a task will not change, used to decide whether to poll fast when no
/// `waitFor` says otherwise. Anything else (EXECUTING, CREATED, an unknown value) is running.
pub const TERMINAL_STATUSES: [&str; 5] = ["SUCCESS", "FAILED", "FAIL", "CANCELLED", "DELETED"];

/// Longest `params` string kept per task, in bytes; the rest is cut and marked.
pub const MAX_PARAMS_BYTES: usize = 1024;

/// Longest other free-text field kept per task, in bytes (ids, names, statuses, times).
pub const MAX_FIELD_BYTES: usize = 256;

/// Most task names `status.latest` keeps (the names of the newest matched tasks win): a
/// project with thousands of distinct task names must not grow the object without bound.
pub const MAX_LATEST_NAMES: usize = 64;

/// Most `renameCommands` kept per task.
pub const MAX_RENAME_COMMANDS: usize = 64;

/// Serialized bytes `status.tasks` may take. Kubernetes objects are limited to ~1.5 MiB in
/// etcd and status writes should stay small; 200 tasks with large details fit in this.
pub const TASKS_BYTE_BUDGET: usize = 192 * 1024;

/// Statuses of a task that is still going (the DCS and sibling DMS task centers, and the jobs
/// API). An awaited task in any other non-terminal status is polled at the settled interval:
/// an unknown status is not a reason to poll fast forever.
pub const RUNNING_STATUSES: [&str; 5] = ["CREATED", "EXECUTING", "INIT", "RUNNING", "WAITING"];

/// What a poll found, ready to be written as status.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub task_count: Option<u64>,
    pub matched_count: usize,
    pub tasks: Vec<TaskStatus>,
    pub latest: Vec<LatestTask>,
    pub wait: Option<WaitVerdict>,
    /// Something awaited or running: poll at `activeInterval`.
    pub active: bool,
    /// Tasks dropped from `tasks` to respect `maxTasks` or the byte budget.
    pub omitted_tasks: usize,
    /// Task names left out of `latest` beyond [`MAX_LATEST_NAMES`].
    pub omitted_names: usize,
    /// Paging stopped at `maxPages` before the window was covered.
    pub incomplete: bool,
    /// When the listing was fetched upstream (`status.lastSyncTime`).
    pub fetched_at: Option<DateTime<Utc>>,
}

/// The verdict on `waitFor`.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitVerdict {
    pub phase: WaitPhase,
    pub task: Option<LatestTask>,
    /// The awaited job, for a wait that reads the job API (`task` is then `None`).
    pub job: Option<JobView>,
    /// How many listed tasks matched the wait (the newest of them is `task`); more than one
    /// for a `name` wait makes the wait ambiguous.
    pub matched: usize,
    pub message: String,
}

impl WaitVerdict {
    /// Several tasks matched a `name` wait: the newest was chosen, but maybe not the one meant.
    pub fn is_ambiguous(&self, target: &WaitTarget) -> bool {
        matches!(target, WaitTarget::Name { .. }) && self.matched > 1
    }
}

/// Judges `listing` against `plan` at `now`.
pub fn evaluate(plan: &QueryPlan, listing: &TaskListing, now: DateTime<Utc>) -> Evaluation {
    let ordered = newest_first(listing);
    let concern = &plan.concern;
    let matched = passing_filter(concern, &ordered);

    // Newest first, so the first task seen per name is that name's latest, and the names kept
    // when there are too many are those with the newest tasks.
    let mut latest: BTreeMap<&str, &CenterTask> = BTreeMap::new();
    let mut omitted_names = std::collections::HashSet::new();
    for task in &matched {
        if let Some(name) = task.name.as_deref() {
            if latest.contains_key(name) {
                continue;
            }
            if latest.len() < MAX_LATEST_NAMES {
                latest.insert(name, task);
            } else {
                omitted_names.insert(name);
            }
        }
    }

    // A wait that reads the job API is judged on the job feed's answer (see
    // `Evaluation::judge_job`); until then it is pending, and it is the job feed, not the task
    // list's, that polls at `activeInterval` for it.
    let wait = concern
        .wait
        .as_ref()
        .map(|wait| match wait.reads_job_api() {
            false => judge_wait(wait, concern, Some(&plan.page), &ordered, listing, now),
            true => super::job::judge(wait, super::job::JobReading::NotYet, now),
        });
    let active = activity(concern, &matched, wait.as_ref(), listing, now);

    let (tasks, omitted_tasks) = bounded_tasks(&matched, plan.max_tasks);
    Evaluation {
        task_count: listing.task_count,
        matched_count: matched.len(),
        tasks,
        latest: latest.values().map(|task| latest_task(task)).collect(),
        wait,
        active,
        omitted_tasks,
        omitted_names: omitted_names.len(),
        incomplete: !listing.complete,
        fetched_at: listing.fetched_at,
    }
}

/// Whether a subscriber of `concern` needs `activeInterval` on `listing` (its tasks in
/// [`newest_first`] order): exactly the `active` of [`evaluate`] for a plan of that concern,
/// without building the status. The task feed judges every subscriber with it after each
/// answer, so objects need not tell it.
pub fn needs_active(
    concern: &Concern,
    newest_first: &[&CenterTask],
    listing: &TaskListing,
    now: DateTime<Utc>,
) -> bool {
    let matched = passing_filter(concern, newest_first);
    let verdict = concern
        .list_wait()
        .map(|wait| judge_wait(wait, concern, None, newest_first, listing, now));
    activity(concern, &matched, verdict.as_ref(), listing, now)
}

/// The tasks `concern`'s filter passes, in their order.
fn passing_filter<'t>(concern: &Concern, tasks: &[&'t CenterTask]) -> Vec<&'t CenterTask> {
    tasks
        .iter()
        .copied()
        .filter(|task| passes_filter(&concern.filter, task))
        .collect()
}

/// A listing's distinct tasks (see [`distinct_tasks`]), newest first: the order waits are
/// judged in.
pub fn newest_first(listing: &TaskListing) -> Vec<&CenterTask> {
    let mut ordered = distinct_tasks(&listing.tasks);
    ordered.sort_by(|a, b| newest_first_order(a, b));
    ordered
}

/// Something awaited or running: a matched task runs, or a wait judged on the list is still
/// open on a task that runs, is not listed, or on an answer older than the wait.
fn activity(
    concern: &Concern,
    matched: &[&CenterTask],
    wait: Option<&WaitVerdict>,
    listing: &TaskListing,
    now: DateTime<Utc>,
) -> bool {
    let running = matched.iter().any(|task| is_running(concern, task));
    let Some(list_wait) = concern.list_wait() else {
        return running;
    };
    // A verdict held back for a fresher answer (see `judge_wait`) needs that answer soon.
    let unconfirmed = answered_at(listing, now) < list_wait.started_at;
    let awaiting = wait.is_some_and(|w| {
        !w.phase.is_resolved()
            && (unconfirmed
                || w.task.as_ref().is_none_or(|task| {
                    task.status
                        .as_deref()
                        .is_none_or(|status| RUNNING_STATUSES.contains(&status))
                }))
    });
    running || awaiting
}

/// One copy of each task id, in the order ids first appear; tasks without an id are all kept.
///
/// A task created while paging shifts the pages, so a later page repeats a task of an earlier
/// one, possibly changed in between. The copy with the newest `updated_at` wins (an unreadable
/// one counts as oldest); on a tie, the later copy in listing order, which came from the later
/// page. Evaluation and the feeds' change detection both use this, so the copy that decides a
/// verdict is the copy whose change wakes the object.
pub fn distinct_tasks(tasks: &[CenterTask]) -> Vec<&CenterTask> {
    let updated = |task: &CenterTask| task.updated_at.as_ref().and_then(|t| t.parsed);
    let mut kept: Vec<&CenterTask> = Vec::with_capacity(tasks.len());
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for task in tasks {
        let Some(id) = task.id.as_deref() else {
            kept.push(task);
            continue;
        };
        match index.get(id) {
            Some(&at) => {
                if updated(task) >= updated(kept[at]) {
                    kept[at] = task;
                }
            }
            None => {
                index.insert(id, kept.len());
                kept.push(task);
            }
        }
    }
    kept
}

/// Newest `created_at` first; tasks without a readable `created_at` last; equal times ordered
/// by id (descending) so the order never depends on the API's page order.
fn newest_first_order(a: &CenterTask, b: &CenterTask) -> Ordering {
    let time = |task: &CenterTask| task.created_at.as_ref().and_then(|t| t.parsed);
    match (time(a), time(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
    .then_with(|| b.id.cmp(&a.id))
}

/// Whether a change to `task` (appearing, changing, vanishing) can change what [`evaluate`]
/// makes of a listing for a plan of `concern`: the task passes the filter (it counts, lists or
/// is someone's latest) or is a candidate of the wait. An upstream feed wakes only the objects
/// a change concerns; everything else in a listing leaves their status as it was.
pub fn concerns(concern: &Concern, task: &CenterTask) -> bool {
    passes_filter(&concern.filter, task)
        || concern.list_wait().is_some_and(|wait| match &wait.target {
            WaitTarget::JobId(job) => task.job_id.as_deref() == Some(job),
            WaitTarget::Name { name, .. } => task.name.as_deref() == Some(name),
        })
}

fn passes_filter(filter: &TaskFilter, task: &CenterTask) -> bool {
    let allowed = |list: &[String], value: &Option<String>| {
        list.is_empty() || value.as_ref().is_some_and(|v| list.contains(v))
    };
    allowed(&filter.names, &task.name)
        && allowed(&filter.statuses, &task.status)
        && allowed(&filter.job_ids, &task.job_id)
        && passes_wait_filter(filter, task)
}

/// The part of the filter a wait honours: `userNames` (exact) and `paramsContains` (every
/// substring in the untruncated `params`; a task without `params` fails a non-empty list).
fn passes_wait_filter(filter: &TaskFilter, task: &CenterTask) -> bool {
    let user = filter.user_names.is_empty()
        || task
            .user_name
            .as_ref()
            .is_some_and(|user| filter.user_names.contains(user));
    let params = filter.params_contains.is_empty()
        || task.params.as_deref().is_some_and(|params| {
            filter
                .params_contains
                .iter()
                .all(|needle| params.contains(needle.as_str()))
        });
    user && params
}

/// How the wait filter reads in a message: ` by user a or b whose params contain "x"`.
fn describe_wait_filter(filter: &TaskFilter) -> String {
    let mut text = String::new();
    if !filter.user_names.is_empty() {
        text.push_str(&format!(" by user {}", filter.user_names.join(" or ")));
    }
    if !filter.params_contains.is_empty() {
        let quoted: Vec<String> = filter
            .params_contains
            .iter()
            .map(|needle| format!("{needle:?}"))
            .collect();
        text.push_str(&format!(" whose params contain {}", quoted.join(" and ")));
    }
    text
}

/// Known to be still going: poll at `activeInterval`.
fn is_running(concern: &Concern, task: &CenterTask) -> bool {
    !is_terminal(concern, task)
        && task
            .status
            .as_deref()
            .is_some_and(|status| RUNNING_STATUSES.contains(&status))
}

fn is_terminal(concern: &Concern, task: &CenterTask) -> bool {
    let Some(status) = task.status.as_deref() else {
        return false;
    };
    match &concern.wait {
        Some(wait) => {
            wait.success_statuses.iter().any(|s| s == status)
                || wait.failure_statuses.iter().any(|s| s == status)
                || TERMINAL_STATUSES.contains(&status)
        }
        None => TERMINAL_STATUSES.contains(&status),
    }
}

/// The verdict of `wait` on a listing. `window` is the page the plan asked for, which a
/// not-found message names; `None` where only the phase is read (a feed judging activity).
fn judge_wait(
    wait: &WaitPlan,
    concern: &Concern,
    window: Option<&PageRequest>,
    newest_first: &[&CenterTask],
    listing: &TaskListing,
    now: DateTime<Utc>,
) -> WaitVerdict {
    let candidates: Vec<&CenterTask> = newest_first
        .iter()
        .copied()
        .filter(|task| {
            let target = match &wait.target {
                WaitTarget::JobId(job) => task.job_id.as_deref() == Some(job),
                WaitTarget::Name {
                    name,
                    created_after,
                } => {
                    task.name.as_deref() == Some(name)
                        && task
                            .created_at
                            .as_ref()
                            .and_then(|t| t.parsed)
                            .is_some_and(|created| created >= *created_after)
                }
            };
            target && passes_wait_filter(&concern.filter, task)
        })
        .collect();
    let filtered = describe_wait_filter(&concern.filter);
    // Judged by when the answer was fetched, not by when it is read: an answer fetched before
    // the deadline may miss a task that finished just before it, so only the poll at or after
    // the deadline (which the feed makes) can time the wait out.
    let fetched_at = answered_at(listing, now);
    let timed_out = wait.deadline.is_some_and(|deadline| fetched_at >= deadline);
    let verdict = judge_found(wait, window, &candidates, listing, &filtered, timed_out);
    hold_back_unconfirmed(verdict, wait, fetched_at, now)
}

/// When `listing` was fetched upstream; a listing that does not say counts as fetched `now`.
fn answered_at(listing: &TaskListing, now: DateTime<Utc>) -> DateTime<Utc> {
    listing.fetched_at.unwrap_or(now)
}

/// Keeps a wait `Pending`, saying why, where the answer cannot be trusted for a verdict yet:
/// it was fetched before the wait started (a feed's last answer can be up to one interval old
/// when an object joins it), or the deadline passed after it was fetched (the poll after the
/// deadline decides between the task's last chance and `TimedOut`).
fn hold_back_unconfirmed(
    mut verdict: WaitVerdict,
    wait: &WaitPlan,
    fetched_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> WaitVerdict {
    let time = |at: DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if fetched_at < wait.started_at {
        verdict.phase = WaitPhase::Pending;
        verdict.message = format!(
            "{}; that answer was fetched at {}, before this wait started at {}: confirming with a fresh answer",
            verdict.message,
            time(fetched_at),
            time(wait.started_at)
        );
    } else if verdict.phase == WaitPhase::Pending
        && let Some(deadline) = wait.deadline.filter(|deadline| now >= *deadline)
    {
        verdict.message = format!(
            "{}; spec.waitFor.timeout ran out at {} after this answer was fetched at {}: confirming with the poll after the deadline",
            verdict.message,
            time(deadline),
            time(fetched_at)
        );
    }
    verdict
}

/// The verdict on the newest of `candidates` (none: not found), timed out or not.
fn judge_found(
    wait: &WaitPlan,
    window: Option<&PageRequest>,
    candidates: &[&CenterTask],
    listing: &TaskListing,
    filtered: &str,
    timed_out: bool,
) -> WaitVerdict {
    let matched = candidates.len();
    let found = candidates.first().copied();
    let Some(task) = found else {
        let mut message = format!("{}{filtered} not found in the task list yet", wait.target);
        if !listing.complete {
            message.push_str(&format!(
                " ({} before the end of the window)",
                super::report::paging_stopped()
            ));
        }
        let bounds = |time: Option<&QueryTime>| time.map(QueryTime::to_param);
        let window = window.map_or((None, None), |page| {
            (
                bounds(page.start_time.as_ref()),
                bounds(page.end_time.as_ref()),
            )
        });
        match window {
            (None, None) => {}
            (start, end) => message.push_str(&format!(
                " (the query window is {} to {}: a task outside it is never listed)",
                start.as_deref().unwrap_or("the beginning"),
                end.as_deref().unwrap_or("now")
            )),
        }
        return if timed_out {
            WaitVerdict {
                phase: WaitPhase::TimedOut,
                task: None,
                job: None,
                matched,
                message: format!("timed out: {message}"),
            }
        } else {
            WaitVerdict {
                phase: WaitPhase::Pending,
                task: None,
                job: None,
                matched,
                message,
            }
        };
    };
    let status = task.status.as_deref().unwrap_or("");
    let shown = if status.is_empty() { "(none)" } else { status };
    let id = truncate(task.id.as_deref().unwrap_or("?"), MAX_FIELD_BYTES);
    let (phase, message) = if wait.success_statuses.iter().any(|s| s == status) {
        (
            WaitPhase::Succeeded,
            format!("task {id} ({}) reached {shown}", wait.target),
        )
    } else if wait.failure_statuses.iter().any(|s| s == status) {
        let code = task
            .error_code
            .as_deref()
            .map(|code| format!(", error_code {code}"))
            .unwrap_or_default();
        (
            WaitPhase::Failed,
            format!("task {id} ({}) ended {shown}{code}", wait.target),
        )
    } else if timed_out {
        (
            WaitPhase::TimedOut,
            format!("timed out: task {id} ({}) is still {shown}", wait.target),
        )
    } else if RUNNING_STATUSES.contains(&status) {
        (
            WaitPhase::Pending,
            format!("task {id} ({}) is {shown}", wait.target),
        )
    } else {
        (
            WaitPhase::Pending,
            format!(
                "task {id} ({}) is {shown}, a status that is neither running nor listed in spec.waitFor.successStatuses/failureStatuses; polling at spec.interval",
                wait.target
            ),
        )
    };
    let mut verdict = WaitVerdict {
        phase,
        task: Some(latest_task(task)),
        job: None,
        matched,
        message,
    };
    if verdict.is_ambiguous(&wait.target) {
        verdict.message.push_str(&format!(
            "; ambiguous: {matched} tasks matched and the newest was chosen: set spec.waitFor.jobId (or spec.filter.userNames/paramsContains) to pick one"
        ));
    }
    verdict
}

fn latest_task(task: &CenterTask) -> LatestTask {
    LatestTask {
        name: short(&task.name).unwrap_or_default(),
        id: short(&task.id),
        job_id: short(&task.job_id),
        status: short(&task.status),
        created_at: short_time(&task.created_at),
        updated_at: short_time(&task.updated_at),
    }
}

/// At most `max_tasks` tasks within [`TASKS_BYTE_BUDGET`]; returns them and how many were left out.
fn bounded_tasks(matched: &[&CenterTask], max_tasks: usize) -> (Vec<TaskStatus>, usize) {
    let mut kept = Vec::new();
    let mut bytes = 0;
    for task in matched.iter().take(max_tasks) {
        let status = task_status(task);
        let size = serde_json::to_vec(&status).map_or(0, |v| v.len());
        if bytes + size > TASKS_BYTE_BUDGET {
            break;
        }
        bytes += size;
        kept.push(status);
    }
    let omitted = matched.len() - kept.len();
    (kept, omitted)
}

/// A free-text field, bounded to [`MAX_FIELD_BYTES`].
fn short(value: &Option<String>) -> Option<String> {
    value.as_deref().map(|v| truncate(v, MAX_FIELD_BYTES))
}

/// A timestamp as received (bounded: the upstream decides its length).
fn short_time(value: &Option<TaskTime>) -> Option<String> {
    value.as_ref().map(|t| truncate(&t.raw, MAX_FIELD_BYTES))
}

fn task_status(task: &CenterTask) -> TaskStatus {
    TaskStatus {
        id: short(&task.id),
        name: short(&task.name),
        job_id: short(&task.job_id),
        status: short(&task.status),
        created_at: short_time(&task.created_at),
        updated_at: short_time(&task.updated_at),
        user_name: short(&task.user_name),
        user_id: short(&task.user_id),
        params: task
            .params
            .as_deref()
            .map(|v| truncate(v, MAX_PARAMS_BYTES)),
        error_code: short(&task.error_code),
        enable_show: task.enable_show,
        details: task.details.as_ref().map(details_status),
    }
}

fn details_status(details: &TaskDetails) -> TaskDetailsStatus {
    TaskDetailsStatus {
        old_capacity: short(&details.old_capacity),
        new_capacity: short(&details.new_capacity),
        enable_public_ip: details.enable_public_ip,
        public_ip_id: short(&details.public_ip_id),
        public_ip_address: short(&details.public_ip_address),
        enable_ssl: details.enable_ssl,
        old_cache_mode: short(&details.old_cache_mode),
        new_cache_mode: short(&details.new_cache_mode),
        old_resource_spec_code: short(&details.old_resource_spec_code),
        new_resource_spec_code: short(&details.new_resource_spec_code),
        old_replica_num: details.old_replica_num,
        new_replica_num: details.new_replica_num,
        old_cache_type: short(&details.old_cache_type),
        new_cache_type: short(&details.new_cache_type),
        replica_ip: short(&details.replica_ip),
        replica_az: short(&details.replica_az),
        group_name: short(&details.group_name),
        old_port: details.old_port,
        new_port: details.new_port,
        is_only_adjust_charging: details.is_only_adjust_charging,
        account_name: short(&details.account_name),
        source_ip: short(&details.source_ip),
        target_ip: short(&details.target_ip),
        node_name: short(&details.node_name),
        rename_commands: details
            .rename_commands
            .iter()
            .take(MAX_RENAME_COMMANDS)
            .map(|c| truncate(c, MAX_FIELD_BYTES))
            .collect(),
        updated_config_length: details.updated_config_length,
    }
}

/// Cuts `text` to `max_bytes`, marking the cut.
fn truncate(text: &str, max_bytes: usize) -> String {
    crate::text::truncate_bytes(text, max_bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dcs::TaskTime;
    use crate::plan::{PlanContext, plan};
    use chrono::TimeZone;
    use serde_json::json;

    fn at(m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 12, m, s).unwrap()
    }

    fn task(id: &str, name: &str, status: &str, created: Option<DateTime<Utc>>) -> CenterTask {
        CenterTask {
            id: Some(id.into()),
            name: Some(name.into()),
            status: Some(status.into()),
            job_id: Some(format!("job-{id}")),
            created_at: created
                .map(|t| TaskTime::new(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))),
            ..CenterTask::default()
        }
    }

    fn listing(tasks: Vec<CenterTask>) -> TaskListing {
        TaskListing {
            task_count: Some(tasks.len() as u64),
            tasks,
            pages: 1,
            complete: true,
            fetched_at: None,
        }
    }

    fn planned(extra: serde_json::Value, context: PlanContext) -> QueryPlan {
        let mut spec = serde_json::json!({"region": "cn-north-4"});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        plan(&serde_json::from_value(spec).unwrap(), &context).unwrap()
    }

    fn ids(evaluation: &Evaluation) -> Vec<&str> {
        evaluation
            .tasks
            .iter()
            .map(|t| t.id.as_deref().unwrap())
            .collect()
    }

    #[test]
    fn a_task_concerns_a_query_it_passes_or_awaits_and_no_other() {
        let context = PlanContext::starting_at(at(0, 0));
        let swap = task("t1", "masterStandbySwapJob", "RUNNING", Some(at(0, 0)));
        let restart = task("t2", "restartInstance", "RUNNING", Some(at(0, 0)));
        let everything = planned(json!({}), context);
        assert!(concerns(&everything.concern, &swap) && concerns(&everything.concern, &restart));
        let restarts = planned(json!({"filter": {"names": ["restartInstance"]}}), context);
        assert!(concerns(&restarts.concern, &restart));
        assert!(!concerns(&restarts.concern, &swap));
        // A wait's candidate concerns the waiter even when its filter lists other names.
        let by_name = planned(
            json!({"filter": {"names": ["restartInstance"]}, "waitFor": {"name": "masterStandbySwapJob"}}),
            context,
        );
        assert!(concerns(&by_name.concern, &swap));
        let mut with_job = swap.clone();
        with_job.job_id = Some("job-1".into());
        let by_job = planned(
            json!({"filter": {"names": ["restartInstance"]}, "waitFor": {"source": "TaskList", "jobId": "job-1"}}),
            context,
        );
        assert!(concerns(&by_job.concern, &with_job));
        assert!(!concerns(&by_job.concern, &swap), "another job");
        let by_other_name = planned(
            json!({"filter": {"names": ["restartInstance"]}, "waitFor": {"name": "flush"}}),
            context,
        );
        assert!(!concerns(&by_other_name.concern, &swap));
    }

    /// `evaluate`'s `active` and the feed's `needs_active` for `extra` on `tasks` fetched at
    /// `fetched`, read at 12:30, with the wait started at 12:10: the two must agree.
    fn activity_of(
        extra: serde_json::Value,
        tasks: Vec<CenterTask>,
        fetched: DateTime<Utc>,
    ) -> bool {
        let plan = planned(
            extra,
            PlanContext {
                now: at(30, 0),
                wait_started_at: at(10, 0),
            },
        );
        let listed = TaskListing {
            fetched_at: Some(fetched),
            ..listing(tasks)
        };
        let active = evaluate(&plan, &listed, at(30, 0)).active;
        let ordered = newest_first(&listed);
        assert_eq!(
            needs_active(&plan.concern, &ordered, &listed, at(30, 0)),
            active,
            "the feed's judgement is the evaluation's"
        );
        active
    }

    #[test]
    fn a_task_in_a_status_the_wait_ends_on_is_not_running_whatever_its_name() {
        let waiting = vec![task("t1", "EXTEND", "WAITING", Some(at(11, 0)))];
        let init = vec![task("t1", "EXTEND", "INIT", Some(at(11, 0)))];
        let plain = json!({});
        assert!(
            activity_of(plain.clone(), waiting.clone(), at(30, 0)),
            "WAITING runs"
        );
        assert!(activity_of(plain, init.clone(), at(30, 0)), "INIT runs");
        // A wait that ends on WAITING (success) or INIT (failure): that task has ended for it.
        let ends_on = |success: &str, failure: &str| {
            json!({"waitFor": {"name": "EXTEND", "successStatuses": [success],
                               "failureStatuses": [failure]}})
        };
        assert!(!activity_of(
            ends_on("WAITING", "FAILED"),
            waiting,
            at(30, 0)
        ));
        assert!(!activity_of(ends_on("SUCCESS", "INIT"), init, at(30, 0)));
    }

    #[test]
    fn a_list_wait_is_confirmed_by_an_answer_fetched_at_its_start_not_before() {
        // Neither running nor an end the wait knows: open, but polled at the settled interval
        // once an answer fetched since the wait started confirms it.
        let paused = vec![task("t1", "EXTEND", "PAUSED", Some(at(11, 0)))];
        let wait = json!({"waitFor": {"name": "EXTEND", "lookback": "1h"}});
        assert!(
            activity_of(wait.clone(), paused.clone(), at(9, 59)),
            "fetched before"
        );
        assert!(
            !activity_of(wait.clone(), paused.clone(), at(10, 0)),
            "fetched at the start"
        );
        assert!(!activity_of(wait, paused, at(20, 0)));
        // Nothing awaited or running: the feed and the evaluation agree on settled too.
        let done = vec![task("t1", "EXTEND", "SUCCESS", Some(at(11, 0)))];
        assert!(!activity_of(json!({}), done, at(20, 0)));
    }

    #[test]
    fn newest_first_with_ties_by_id_and_timeless_tasks_last() {
        let p = planned(serde_json::json!({}), PlanContext::starting_at(at(30, 0)));
        let e = evaluate(
            &p,
            &listing(vec![
                task("a", "EXTEND", "SUCCESS", Some(at(1, 0))),
                task("x", "EXTEND", "SUCCESS", None),
                task("b", "EXTEND", "SUCCESS", Some(at(5, 0))),
                task("c", "EXTEND", "SUCCESS", Some(at(5, 0))),
            ]),
            at(30, 0),
        );
        assert_eq!(ids(&e), vec!["c", "b", "a", "x"]);
        assert_eq!(e.latest.len(), 1);
        assert_eq!(e.latest[0].id.as_deref(), Some("c"));
        assert!(!e.active);
    }

    #[test]
    fn a_task_repeated_across_pages_counts_once() {
        let p = planned(serde_json::json!({}), PlanContext::starting_at(at(30, 0)));
        let e = evaluate(
            &p,
            &listing(vec![
                task("a", "EXTEND", "SUCCESS", Some(at(1, 0))),
                task("b", "EXTEND", "SUCCESS", Some(at(2, 0))),
                task("a", "EXTEND", "SUCCESS", Some(at(1, 0))),
                task("", "EXTEND", "SUCCESS", None),
            ]),
            at(30, 0),
        );
        assert_eq!(e.matched_count, 3);
        assert_eq!(ids(&e), vec!["b", "a", ""]);
    }

    #[test]
    fn a_task_repeated_across_pages_keeps_its_newest_copy_in_either_order() {
        let p = planned(
            serde_json::json!({"waitFor": {"source": "TaskList", "jobId": "job-a"}}),
            PlanContext::starting_at(at(0, 0)),
        );
        let copy = |status: &str, updated: Option<DateTime<Utc>>| {
            let mut t = task("a", "EXTEND", status, Some(at(1, 0)));
            t.updated_at = updated
                .map(|u| TaskTime::new(u.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
            t
        };
        let running = copy("EXECUTING", Some(at(1, 0)));
        let done = copy("SUCCESS", Some(at(1, 5)));
        for tasks in [
            vec![running.clone(), done.clone()],
            vec![done.clone(), running.clone()],
        ] {
            let e = evaluate(&p, &listing(tasks), at(2, 0));
            assert_eq!(e.matched_count, 1);
            assert_eq!(e.wait.unwrap().phase, WaitPhase::Succeeded);
        }
        // Equal or unreadable times: the later copy, from the later page.
        let untimed = [copy("EXECUTING", None), copy("SUCCESS", None)];
        let kept = distinct_tasks(&untimed);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].status.as_deref(), Some("SUCCESS"));
        let unreadable_later = [done.clone(), copy("EXECUTING", None)];
        assert_eq!(
            distinct_tasks(&unreadable_later)[0].status.as_deref(),
            Some("SUCCESS"),
            "an unreadable time is the oldest"
        );
    }

    #[test]
    fn filter_and_bound() {
        let p = planned(
            serde_json::json!({"filter": {"names": ["EXTEND", "BindEip"], "statuses": ["SUCCESS"]}, "maxTasks": 1}),
            PlanContext::starting_at(at(30, 0)),
        );
        let e = evaluate(
            &p,
            &listing(vec![
                task("a", "EXTEND", "SUCCESS", Some(at(1, 0))),
                task("b", "BindEip", "SUCCESS", Some(at(2, 0))),
                task("c", "EXTEND", "FAILED", Some(at(3, 0))),
                task("d", "modify", "SUCCESS", Some(at(4, 0))),
            ]),
            at(30, 0),
        );
        assert_eq!(e.matched_count, 2);
        assert_eq!(ids(&e), vec!["b"]);
        assert_eq!(e.omitted_tasks, 1);
        let names: Vec<&str> = e.latest.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, vec!["BindEip", "EXTEND"]);
    }

    #[test]
    fn unknown_statuses_are_never_terminal() {
        let p = planned(
            serde_json::json!({"waitFor": {"source": "TaskList", "jobId": "job-a"}}),
            PlanContext::starting_at(at(0, 0)),
        );
        let e = evaluate(
            &p,
            &listing(vec![task("a", "EXTEND", "PAUSED_BY_OPS", Some(at(1, 0)))]),
            at(2, 0),
        );
        let wait = e.wait.unwrap();
        assert_eq!(wait.phase, WaitPhase::Pending);
        assert!(wait.message.contains("PAUSED_BY_OPS"), "{}", wait.message);
        assert!(
            wait.message.contains("polling at spec.interval"),
            "{}",
            wait.message
        );
        // Never terminal, but not a reason to poll fast forever either.
        assert!(!e.active);

        let running = evaluate(
            &p,
            &listing(vec![task("a", "EXTEND", "EXECUTING", Some(at(1, 0)))]),
            at(2, 0),
        );
        assert!(running.active);
        let not_listed = evaluate(&p, &listing(vec![]), at(2, 0));
        assert!(
            not_listed.active,
            "an awaited task not listed yet is polled fast"
        );
    }

    #[test]
    fn a_task_that_vanishes_leaves_the_wait_pending_until_its_timeout() {
        let p = planned(
            serde_json::json!({"waitFor": {"source": "TaskList", "jobId": "job-a", "timeout": "10m"}}),
            PlanContext::starting_at(at(0, 0)),
        );
        let seen = evaluate(
            &p,
            &listing(vec![task("a", "EXTEND", "EXECUTING", Some(at(1, 0)))]),
            at(2, 0),
        );
        assert_eq!(seen.wait.unwrap().phase, WaitPhase::Pending);
        let gone = evaluate(&p, &listing(vec![]), at(3, 0));
        let verdict = gone.wait.unwrap();
        assert_eq!(
            verdict.phase,
            WaitPhase::Pending,
            "neither success nor failure"
        );
        assert!(verdict.message.contains("not found"), "{}", verdict.message);
        let late = evaluate(&p, &listing(vec![]), at(10, 0));
        assert_eq!(late.wait.unwrap().phase, WaitPhase::TimedOut);
    }

    #[test]
    fn a_deleted_task_fails_the_wait_by_default() {
        let p = planned(
            serde_json::json!({"waitFor": {"source": "TaskList", "jobId": "job-a"}}),
            PlanContext::starting_at(at(0, 0)),
        );
        let e = evaluate(
            &p,
            &listing(vec![task("a", "EXTEND", "DELETED", Some(at(1, 0)))]),
            at(2, 0),
        );
        assert_eq!(e.wait.unwrap().phase, WaitPhase::Failed);
    }

    #[test]
    fn a_task_not_found_names_the_window_it_was_looked_for_in() {
        let p = planned(
            serde_json::json!({"waitFor": {"source": "TaskList", "jobId": "job-x"},
                "query": {"startTime": "20261127000000", "endTime": "20261127120000"}}),
            PlanContext::starting_at(at(0, 0)),
        );
        let e = evaluate(&p, &listing(vec![]), at(2, 0));
        let message = e.wait.unwrap().message;
        assert!(
            message.contains("the query window is 20261127000000 to 20261127120000"),
            "{message}"
        );
    }

    #[test]
    fn job_id_wait_follows_the_newest_task_with_that_id() {
        let p = planned(
            serde_json::json!({"waitFor": {"source": "TaskList", "jobId": "J"}}),
            PlanContext::starting_at(at(0, 0)),
        );
        let mut old = task("old", "masterStandbySwapJob", "FAILED", Some(at(1, 0)));
        let mut new = task("new", "masterStandbySwapJob", "SUCCESS", Some(at(2, 0)));
        old.job_id = Some("J".into());
        new.job_id = Some("J".into());
        let e = evaluate(&p, &listing(vec![old, new]), at(3, 0));
        let wait = e.wait.unwrap();
        assert_eq!(wait.phase, WaitPhase::Succeeded);
        assert_eq!(wait.task.unwrap().id.as_deref(), Some("new"));
    }

    #[test]
    fn name_wait_ignores_old_tasks_and_tasks_without_created_at() {
        let context = PlanContext::starting_at(at(10, 0));
        let p = planned(
            serde_json::json!({"waitFor": {"name": "masterStandbySwapJob", "lookback": "2m"}}),
            context,
        );
        // An old success (before createdAfter = 12:08) and one with no created_at do not count.
        let tasks = vec![
            task("old", "masterStandbySwapJob", "SUCCESS", Some(at(7, 59))),
            task("none", "masterStandbySwapJob", "SUCCESS", None),
        ];
        let e = evaluate(&p, &listing(tasks.clone()), at(10, 5));
        assert_eq!(e.wait.as_ref().unwrap().phase, WaitPhase::Pending);
        assert!(e.active, "a pending wait polls fast");

        let mut with_new = tasks;
        with_new.push(task(
            "new",
            "masterStandbySwapJob",
            "EXECUTING",
            Some(at(9, 0)),
        ));
        let e = evaluate(&p, &listing(with_new.clone()), at(10, 5));
        assert_eq!(e.wait.as_ref().unwrap().phase, WaitPhase::Pending);

        with_new.last_mut().unwrap().status = Some("FAILED".into());
        with_new.last_mut().unwrap().error_code = Some("DCS.5094".into());
        let e = evaluate(&p, &listing(with_new), at(10, 10));
        let wait = e.wait.unwrap();
        assert_eq!(wait.phase, WaitPhase::Failed);
        assert!(wait.message.contains("DCS.5094"), "{}", wait.message);
    }

    #[test]
    fn timeout_applies_to_missing_and_running_tasks_but_not_finished_ones() {
        let p = planned(
            serde_json::json!({"waitFor": {"source": "TaskList", "jobId": "job-a", "timeout": "5m"}}),
            PlanContext::starting_at(at(0, 0)),
        );
        let before = evaluate(&p, &listing(vec![]), at(4, 59));
        assert_eq!(before.wait.unwrap().phase, WaitPhase::Pending);
        let missing = evaluate(&p, &listing(vec![]), at(5, 0));
        assert_eq!(missing.wait.unwrap().phase, WaitPhase::TimedOut);
        let running = evaluate(
            &p,
            &listing(vec![task("a", "EXTEND", "EXECUTING", Some(at(1, 0)))]),
            at(6, 0),
        );
        assert_eq!(running.wait.unwrap().phase, WaitPhase::TimedOut);
        let done = evaluate(
            &p,
            &listing(vec![task("a", "EXTEND", "SUCCESS", Some(at(1, 0)))]),
            at(6, 0),
        );
        assert_eq!(done.wait.unwrap().phase, WaitPhase::Succeeded);
    }

    fn fetched(tasks: Vec<CenterTask>, at: DateTime<Utc>) -> TaskListing {
        TaskListing {
            fetched_at: Some(at),
            ..listing(tasks)
        }
    }

    #[test]
    fn a_wait_times_out_only_on_an_answer_fetched_at_or_after_its_deadline() {
        let p = planned(
            serde_json::json!({"waitFor": {"source": "TaskList", "jobId": "job-a", "timeout": "5m"}}),
            PlanContext::starting_at(at(0, 0)),
        );
        let running = vec![task("a", "EXTEND", "EXECUTING", Some(at(1, 0)))];
        // Read a minute after the deadline, but fetched a second before it: the task may have
        // finished since, so the poll after the deadline decides.
        for tasks in [vec![], running.clone()] {
            let e = evaluate(&p, &fetched(tasks, at(4, 59)), at(6, 0));
            let wait = e.wait.unwrap();
            assert_eq!(wait.phase, WaitPhase::Pending);
            assert!(
                wait.message
                    .contains("confirming with the poll after the deadline"),
                "{}",
                wait.message
            );
            assert!(e.active, "the last chance is polled for");
        }
        let late = evaluate(&p, &fetched(running, at(5, 0)), at(5, 1));
        assert_eq!(late.wait.unwrap().phase, WaitPhase::TimedOut);
        // The task's success in the answer after the deadline is its last chance, taken.
        let done = vec![task("a", "EXTEND", "SUCCESS", Some(at(1, 0)))];
        let e = evaluate(&p, &fetched(done, at(5, 0)), at(5, 1));
        assert_eq!(e.wait.unwrap().phase, WaitPhase::Succeeded);
    }

    #[test]
    fn a_first_verdict_needs_an_answer_fetched_after_the_wait_started() {
        let p = planned(
            serde_json::json!({"waitFor": {"source": "TaskList", "jobId": "job-a"}}),
            PlanContext::starting_at(at(10, 0)),
        );
        // The feed's answer from before the object existed shows the previous run's result.
        for status in ["SUCCESS", "FAILED"] {
            let tasks = vec![task("a", "EXTEND", status, Some(at(1, 0)))];
            let stale = evaluate(&p, &fetched(tasks.clone(), at(9, 59)), at(10, 0));
            let wait = stale.wait.unwrap();
            assert_eq!(wait.phase, WaitPhase::Pending, "{status}");
            assert!(
                wait.message.contains("confirming with a fresh answer"),
                "{}",
                wait.message
            );
            assert_eq!(wait.task.unwrap().status.as_deref(), Some(status));
            assert!(stale.active, "a fresh answer is wanted soon");
            let fresh = evaluate(&p, &fetched(tasks, at(10, 0)), at(10, 1));
            assert!(fresh.wait.unwrap().phase.is_resolved(), "{status}");
        }
    }

    #[test]
    fn incomplete_listing_is_reported() {
        let p = planned(
            serde_json::json!({"waitFor": {"source": "TaskList", "jobId": "nope"}}),
            PlanContext::starting_at(at(0, 0)),
        );
        let mut l = listing(vec![]);
        l.complete = false;
        let e = evaluate(&p, &l, at(1, 0));
        assert!(e.incomplete);
        assert!(e.wait.unwrap().message.contains("maxPages"));
    }

    #[test]
    fn status_stays_small_with_200_large_tasks() {
        let p = planned(
            serde_json::json!({"maxTasks": 200}),
            PlanContext::starting_at(at(0, 0)),
        );
        let big = "x".repeat(50_000);
        let tasks: Vec<CenterTask> = (0..300)
            .map(|i| {
                let mut t = task(&format!("{i:04}"), "EXTEND", "SUCCESS", Some(at(0, 0)));
                t.params = Some(big.clone());
                t.details = Some(TaskDetails {
                    rename_commands: vec![big.clone(); 500],
                    node_name: Some(big.clone()),
                    ..TaskDetails::default()
                });
                t
            })
            .collect();
        let e = evaluate(&p, &listing(tasks), at(1, 0));
        let bytes = serde_json::to_vec(&e.tasks).unwrap().len();
        assert!(bytes <= TASKS_BYTE_BUDGET, "{bytes}");
        assert!(!e.tasks.is_empty());
        assert_eq!(e.matched_count, 300);
        assert_eq!(e.omitted_tasks, 300 - e.tasks.len());
        assert!(
            e.tasks[0]
                .params
                .as_deref()
                .unwrap()
                .ends_with("…[truncated]")
        );
    }

    #[test]
    fn upstream_strings_are_bounded_in_bytes() {
        let cjk = "任务".repeat(10_000);
        let mut t = task(&cjk, &cjk, &cjk, Some(at(1, 0)));
        // The longest job id a spec may name (128 characters, 384 bytes of CJK).
        let job = "任务".repeat(64);
        t.job_id = Some(job.clone());
        t.error_code = Some(cjk.clone());
        let p = planned(
            serde_json::json!({"waitFor": {"source": "TaskList", "jobId": job}}),
            PlanContext::starting_at(at(0, 0)),
        );
        let e = evaluate(&p, &listing(vec![t]), at(2, 0));
        let latest = &e.latest[0];
        for field in [
            Some(&latest.name),
            latest.id.as_ref(),
            latest.job_id.as_ref(),
        ] {
            assert!(field.unwrap().len() <= MAX_FIELD_BYTES);
        }
        let task = &e.tasks[0];
        assert!(task.id.as_ref().unwrap().len() <= MAX_FIELD_BYTES);
        assert!(task.error_code.as_ref().unwrap().len() <= MAX_FIELD_BYTES);
        let verdict = e.wait.unwrap();
        assert!(verdict.task.unwrap().id.unwrap().len() <= MAX_FIELD_BYTES);
    }

    #[test]
    fn latest_keeps_the_names_of_the_newest_tasks_only() {
        let p = planned(serde_json::json!({}), PlanContext::starting_at(at(0, 0)));
        let base = at(0, 0);
        let tasks: Vec<CenterTask> = (0..50_000)
            .map(|i| {
                let created = base + chrono::TimeDelta::seconds(i);
                task(
                    &format!("id-{i}"),
                    &format!("name-{i}"),
                    "SUCCESS",
                    Some(created),
                )
            })
            .collect();
        let e = evaluate(&p, &listing(tasks), at(59, 0));
        assert_eq!(e.latest.len(), MAX_LATEST_NAMES);
        assert_eq!(e.omitted_names, 50_000 - MAX_LATEST_NAMES);
        assert!(e.latest.iter().any(|l| l.name == "name-49999"));
        assert!(!e.latest.iter().any(|l| l.name == "name-0"));
    }

    fn by(mut t: CenterTask, user: &str, params: Option<&str>) -> CenterTask {
        t.user_name = Some(user.into());
        t.params = params.map(String::from);
        t
    }

    /// Two swaps of the same name on different instances, by different users.
    fn two_swaps() -> Vec<CenterTask> {
        vec![
            by(
                task("older", "masterStandbySwapJob", "EXECUTING", Some(at(1, 0))),
                "pipeline",
                Some(r#"{"instance_id":"inst-a"}"#),
            ),
            by(
                task("newer", "masterStandbySwapJob", "SUCCESS", Some(at(2, 0))),
                "ops",
                Some(r#"{"instance_id":"inst-b"}"#),
            ),
        ]
    }

    #[test]
    fn user_names_and_params_contains_filter_the_task_list() {
        let context = PlanContext::starting_at(at(30, 0));
        let mut tasks = two_swaps();
        tasks.push(task(
            "bare",
            "masterStandbySwapJob",
            "SUCCESS",
            Some(at(3, 0)),
        ));
        let p = planned(
            serde_json::json!({"filter": {"userNames": ["ops"]}}),
            context,
        );
        assert_eq!(
            ids(&evaluate(&p, &listing(tasks.clone()), at(30, 0))),
            vec!["newer"]
        );
        let p = planned(
            serde_json::json!({"filter": {"paramsContains": ["instance_id", "inst-a"]}}),
            context,
        );
        let e = evaluate(&p, &listing(tasks.clone()), at(30, 0));
        assert_eq!(
            ids(&e),
            vec!["older"],
            "all substrings must appear; no params never matches"
        );
        let p = planned(
            serde_json::json!({"filter": {"userNames": ["ops"], "paramsContains": ["inst-a"]}}),
            context,
        );
        assert_eq!(evaluate(&p, &listing(tasks), at(30, 0)).matched_count, 0);
    }

    #[test]
    fn a_name_wait_matching_several_tasks_says_so_and_follows_the_newest() {
        let context = PlanContext::starting_at(at(0, 30));
        let p = planned(
            serde_json::json!({"waitFor": {"name": "masterStandbySwapJob"}}),
            context,
        );
        let wait = evaluate(&p, &listing(two_swaps()), at(3, 0)).wait.unwrap();
        assert_eq!(wait.matched, 2);
        assert!(wait.is_ambiguous(&p.concern.wait.as_ref().unwrap().target));
        assert_eq!(wait.task.unwrap().id.as_deref(), Some("newer"));
        assert_eq!(wait.phase, WaitPhase::Succeeded);
        assert!(
            wait.message.contains("ambiguous: 2 tasks matched"),
            "{}",
            wait.message
        );
        assert!(
            wait.message.contains("spec.waitFor.jobId"),
            "{}",
            wait.message
        );

        // The filter's userNames/paramsContains pick the intended task, even an older one.
        for filter in [
            serde_json::json!({"paramsContains": ["inst-a"]}),
            serde_json::json!({"userNames": ["pipeline"]}),
        ] {
            let p = planned(
                serde_json::json!({"filter": filter, "waitFor": {"name": "masterStandbySwapJob"}}),
                context,
            );
            let e = evaluate(&p, &listing(two_swaps()), at(3, 0));
            let wait = e.wait.unwrap();
            assert_eq!(wait.matched, 1, "{filter}");
            assert!(!wait.message.contains("ambiguous"), "{}", wait.message);
            assert_eq!(wait.task.unwrap().id.as_deref(), Some("older"));
            assert_eq!(wait.phase, WaitPhase::Pending);
            assert!(e.active);
        }
    }

    #[test]
    fn a_wait_the_filter_rejects_is_not_found_and_says_which_filter() {
        let p = planned(
            serde_json::json!({"filter": {"userNames": ["robot"], "paramsContains": ["inst-c"]},
                "waitFor": {"name": "masterStandbySwapJob"}}),
            PlanContext::starting_at(at(0, 30)),
        );
        let wait = evaluate(&p, &listing(two_swaps()), at(3, 0)).wait.unwrap();
        assert_eq!(wait.phase, WaitPhase::Pending);
        assert_eq!(wait.matched, 0);
        assert!(
            wait.message
                .contains(r#"by user robot whose params contain "inst-c" not found"#),
            "{}",
            wait.message
        );
    }

    #[test]
    fn names_statuses_and_job_ids_filters_never_hide_the_awaited_task() {
        let p = planned(
            serde_json::json!({"filter": {"statuses": ["SUCCESS"], "names": ["EXTEND"], "jobIds": ["x"]},
                "waitFor": {"source": "TaskList", "jobId": "job-older"}}),
            PlanContext::starting_at(at(0, 30)),
        );
        let e = evaluate(&p, &listing(two_swaps()), at(3, 0));
        assert_eq!(e.matched_count, 0);
        let wait = e.wait.unwrap();
        assert_eq!(wait.task.unwrap().id.as_deref(), Some("older"));
        assert_eq!(wait.phase, WaitPhase::Pending);
    }

    #[test]
    fn a_job_id_seen_twice_is_counted_but_not_ambiguous() {
        let p = planned(
            serde_json::json!({"waitFor": {"source": "TaskList", "jobId": "J"}}),
            PlanContext::starting_at(at(0, 0)),
        );
        let mut tasks = two_swaps();
        for t in &mut tasks {
            t.job_id = Some("J".into());
        }
        let wait = evaluate(&p, &listing(tasks), at(3, 0)).wait.unwrap();
        assert_eq!(wait.matched, 2);
        assert!(!wait.is_ambiguous(&p.concern.wait.as_ref().unwrap().target));
        assert!(!wait.message.contains("ambiguous"), "{}", wait.message);
    }

    #[test]
    fn an_explicit_created_after_replaces_the_lookback() {
        // The object is created at 12:30; the pipeline says it triggered the job at 12:01:30.
        let p = planned(
            serde_json::json!({"waitFor": {"name": "masterStandbySwapJob",
                "createdAfter": "2026-11-27T12:01:30Z", "lookback": "1m"}}),
            PlanContext::starting_at(at(30, 0)),
        );
        let wait = evaluate(&p, &listing(two_swaps()), at(30, 5)).wait.unwrap();
        assert_eq!(wait.matched, 1, "{}", wait.message);
        assert_eq!(wait.task.unwrap().id.as_deref(), Some("newer"));

        // Extreme times plan and judge without panicking: nothing or everything counts.
        for (created_after, matched) in [("9999-01-01T00:00:00Z", 0), ("1970-01-01T00:00:00Z", 2)] {
            let p = planned(
                serde_json::json!({"waitFor": {"name": "masterStandbySwapJob", "createdAfter": created_after}}),
                PlanContext::starting_at(at(30, 0)),
            );
            let wait = evaluate(&p, &listing(two_swaps()), at(30, 5)).wait.unwrap();
            assert_eq!(wait.matched, matched, "{created_after}");
            assert!(
                wait.message.contains(&created_after[..10]),
                "{}",
                wait.message
            );
        }
    }

    #[test]
    fn hostile_params_and_filters_stay_fast_and_bounded() {
        let needle = "n".repeat(crate::api::limits::MAX_FILTER_VALUE_CHARS as usize);
        let filter: Vec<String> =
            vec![needle; crate::api::limits::MAX_FILTER_PARAMS_CONTAINS as usize];
        let p = planned(
            serde_json::json!({"filter": {"paramsContains": filter}, "waitFor": {"name": "X"}}),
            PlanContext::starting_at(at(0, 0)),
        );
        let params = "n".repeat(100_000);
        let tasks: Vec<CenterTask> = (0..200)
            .map(|i| {
                by(
                    task(&format!("{i:03}"), "X", "SUCCESS", Some(at(1, 0))),
                    "u",
                    Some(&params),
                )
            })
            .collect();
        let e = evaluate(&p, &listing(tasks), at(2, 0));
        assert_eq!(e.matched_count, 200);
        let wait = e.wait.unwrap();
        assert_eq!(wait.matched, 200);
        assert!(wait.task.unwrap().id.unwrap().len() <= MAX_FIELD_BYTES);
    }
}
