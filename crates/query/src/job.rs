//! A `jobId` wait read from the DCS job API (`spec.waitFor.source: Job`, the default for
//! `jobId`): the job feed's latest answer -> the wait's verdict.
//!
//! Asking for the one job is exact where the task list is not (no window, paging or
//! `maxPages` can hide it), and its vocabulary is the job API's, as Terraform reads it:
//! `SUCCESS` completes the wait, `FAIL` fails it, `INIT` and `RUNNING` are pending, anything
//! else is pending too and never ends the wait. A job that ended stays ended, so its answer
//! decides whenever it was fetched; an answer that leaves the wait pending times it out only
//! when fetched at or after the deadline, as for the task list.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::evaluate::{Evaluation, WaitVerdict};
use super::plan::{WaitPlan, WaitTarget};
use crate::api::WaitPhase;
use crate::dcs::{DcsError, JobInfo, JobLookupFailure, JobStatus, TaskListing};
use crate::text::truncate_bytes;

/// Longest `failReason` kept in status, in bytes (the decoder already cut it to 1 KiB).
pub const MAX_FAIL_REASON_BYTES: usize = 512;

/// Not-found answers in a row after which an unknown job stalls the wait: the first may be
/// the API catching up with a job that was just started, so it is asked once more.
pub const NOT_FOUND_ANSWERS_TO_STALL: u32 = 2;

/// What the job feed's latest answer says, for the verdict.
#[derive(Debug, Clone, Copy)]
pub enum JobReading<'a> {
    /// The job feed has not answered yet.
    NotYet,
    /// The API did not know the job at the first asking: asked again at the next poll.
    NotFoundOnce { fetched_at: DateTime<Utc> },
    /// The API answered with the job.
    Answered {
        info: &'a JobInfo,
        fetched_at: DateTime<Utc>,
    },
}

/// What to tell the user about a refused lookup of `job`, naming the way out.
pub fn advice(failure: JobLookupFailure, job: &str) -> String {
    match failure {
        JobLookupFailure::NotFound => format!(
            "the DCS job API does not know job {job} in this project (asked twice): check \
             spec.waitFor.jobId and that the endpoint, region and projectId are those of the \
             call that started the job"
        ),
        JobLookupFailure::Forbidden => format!(
            "the credentials may not read job {job}: grant the IAM action dcs:job:get \
             (ShowJobInfo) in this project, or set spec.waitFor.source: TaskList to wait through \
             the task-center list (dcs:task:list) instead"
        ),
    }
}

/// The awaited job as `status.waitFor` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobView {
    pub job_id: String,
    pub job_type: Option<String>,
    pub status: Option<String>,
    pub began_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub fail_reason: Option<String>,
}

impl Evaluation {
    /// Replaces the wait's verdict by the job API's (a wait that reads it: see
    /// [`WaitPlan::reads_job_api`]); the task list's part of the evaluation stays.
    pub fn judge_job(&mut self, wait: &WaitPlan, reading: JobReading<'_>, now: DateTime<Utc>) {
        if wait.reads_job_api() {
            self.wait = Some(judge(wait, reading, now));
        }
    }
}

/// The verdict of a job-API wait on `reading`.
pub fn judge(wait: &WaitPlan, reading: JobReading<'_>, now: DateTime<Utc>) -> WaitVerdict {
    let job = match &wait.target {
        WaitTarget::JobId(job) => job.as_str(),
        WaitTarget::Name { name, .. } => name.as_str(),
    };
    let timed_out = |fetched_at: DateTime<Utc>| wait.deadline.is_some_and(|d| fetched_at >= d);
    let pending = |message: String| WaitVerdict {
        phase: WaitPhase::Pending,
        task: None,
        job: None,
        matched: 0,
        message,
    };
    let (info, fetched_at) = match reading {
        JobReading::NotYet => {
            return pending(format!(
                "waiting for the DCS job API's first answer about job {job}"
            ));
        }
        JobReading::NotFoundOnce { fetched_at } => {
            let message = format!("the DCS job API does not know job {job} yet: asking once more");
            return if timed_out(fetched_at) {
                WaitVerdict {
                    phase: WaitPhase::TimedOut,
                    message: format!("timed out: {message}"),
                    ..pending(String::new())
                }
            } else {
                pending(message)
            };
        }
        JobReading::Answered { info, fetched_at } => (info, fetched_at),
    };
    if let Some(other) = info.job_id.as_deref().filter(|other| *other != job) {
        // Never judged on an answer about another job.
        return pending(format!(
            "the DCS job API answered about job {}, not {job}: asking again",
            truncate_bytes(other, MAX_FAIL_REASON_BYTES)
        ));
    }
    let kind = info
        .job_type
        .as_deref()
        .map(|kind| format!(" ({kind})"))
        .unwrap_or_default();
    let shown = match info.status.as_str() {
        "" => "(none)",
        status => status,
    };
    let (phase, message) = match &info.status {
        JobStatus::Success => (
            WaitPhase::Succeeded,
            format!("job {job}{kind} reached SUCCESS"),
        ),
        JobStatus::Fail => {
            let reason = info
                .fail_reason
                .as_deref()
                .filter(|reason| !reason.trim().is_empty())
                .map(|reason| format!(": {}", truncate_bytes(reason, MAX_FAIL_REASON_BYTES)))
                .unwrap_or_default();
            (
                WaitPhase::Failed,
                format!("job {job}{kind} ended FAIL{reason}"),
            )
        }
        _ if timed_out(fetched_at) => (
            WaitPhase::TimedOut,
            format!("timed out: job {job}{kind} is still {shown}"),
        ),
        JobStatus::Init | JobStatus::Running => {
            (WaitPhase::Pending, format!("job {job}{kind} is {shown}"))
        }
        JobStatus::Other(_) => (
            WaitPhase::Pending,
            format!(
                "job {job}{kind} is {shown}, a status the DCS job API does not document \
                 (INIT, RUNNING, SUCCESS, FAIL): waiting for SUCCESS or FAIL"
            ),
        ),
    };
    let mut verdict = WaitVerdict {
        phase,
        task: None,
        job: Some(JobView {
            job_id: info.job_id.clone().unwrap_or_else(|| job.to_string()),
            job_type: info.job_type.clone(),
            status: Some(info.status.as_str().to_string()).filter(|s| !s.is_empty()),
            began_at: info.begin_time.as_ref().and_then(|t| t.parsed),
            ended_at: info.end_time.as_ref().and_then(|t| t.parsed),
            fail_reason: info
                .fail_reason
                .as_deref()
                .map(|reason| truncate_bytes(reason, MAX_FAIL_REASON_BYTES).into_owned()),
        }),
        matched: 1,
        message,
    };
    if verdict.phase == WaitPhase::Pending
        && let Some(deadline) = wait.deadline.filter(|deadline| now >= *deadline)
    {
        verdict.message = format!(
            "{}; spec.waitFor.timeout ran out at {} after this answer was fetched at {}: \
             confirming with the poll after the deadline",
            verdict.message,
            deadline.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            fetched_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    }
    verdict
}

/// Whether `listing` holds a task of the awaited job in a status after which it will not
/// change.
fn lists_its_task_ended(wait: &WaitPlan, listing: &TaskListing) -> bool {
    let WaitTarget::JobId(job) = &wait.target else {
        return false;
    };
    listing.tasks.iter().any(|task| {
        task.job_id.as_deref() == Some(job.as_str())
            && task
                .status
                .as_deref()
                .is_some_and(|status| super::evaluate::TERMINAL_STATUSES.contains(&status))
    })
}

/// The task list (`listing`, fetched at `listing_at` if it does not say) already shows the
/// awaited job's task ended while the job API's answer `job`, fetched before that listing,
/// still has it running: the job API is asked again rather than the listing written now and the
/// verdict a moment later. The controller asks within the reconcile that sees it, so that the
/// waiter's turn lasts until its verdict is written ([`Combined::JobBehindList`]).
pub fn job_behind_list(
    wait: &WaitPlan,
    listing: &TaskListing,
    listing_at: DateTime<Utc>,
    job: &JobInfo,
    job_fetched_at: DateTime<Utc>,
) -> bool {
    wait.reads_job_api()
        && !job.status.is_terminal()
        && job_fetched_at < listing.fetched_at.unwrap_or(listing_at)
        && lists_its_task_ended(wait, listing)
}

/// The job feed's latest answer, as [`combine`] reads it.
#[derive(Debug, Clone, Copy)]
pub struct JobAnswer<'a> {
    pub result: Result<&'a JobInfo, &'a Arc<DcsError>>,
    /// Failed polls in a row, this one included.
    pub failures: u32,
    pub fetched_at: DateTime<Utc>,
}

/// What one object makes of its feeds' latest answers.
#[derive(Debug)]
pub enum Combined {
    /// A listing to show, with the wait's verdict (the job API's, for a wait that reads it).
    Evaluated(Box<Evaluation>),
    /// A failed poll, of the task list or of the job, and when it ended.
    Failed {
        error: Arc<DcsError>,
        answered_at: DateTime<Utc>,
    },
    /// The task list already shows the awaited job's task ended while the job feed's answer,
    /// fetched before that listing, still has it running: ask the job API again and decide on
    /// its fresh answer, rather than write the listing now and the verdict a moment later.
    JobBehindList,
    /// The job API refused the awaited job in a way only a person can fix.
    JobRefused {
        failure: JobLookupFailure,
        /// The awaited job id.
        job: String,
        error: Arc<DcsError>,
        answered_at: DateTime<Utc>,
    },
}

/// What the task feed's answer (`listing`, fetched at `listing_at`, with the last good listing
/// kept through failures) and, for a wait that reads the job API, the job feed's answer mean
/// together; the controller and `query --watch` both decide on this.
///
/// The task list fills the tasks and the job API gives the wait's verdict. A job that ended
/// gives its verdict even while the task list fails (shown with the last good listing); a job
/// lookup that fails stands for the whole poll, since the wait cannot move on without it.
pub fn combine(
    plan: &super::QueryPlan,
    listing: Result<&Arc<TaskListing>, &Arc<DcsError>>,
    listing_at: DateTime<Utc>,
    last_good: Option<&TaskListing>,
    job: Option<JobAnswer<'_>>,
    now: DateTime<Utc>,
) -> Combined {
    let wait = plan
        .concern
        .wait
        .as_ref()
        .filter(|wait| wait.reads_job_api());
    let reading = match wait.and(job) {
        None => JobReading::NotYet,
        Some(job) => match job.result {
            Ok(info) => JobReading::Answered {
                info,
                fetched_at: job.fetched_at,
            },
            Err(error) => match JobLookupFailure::of(error) {
                Some(JobLookupFailure::NotFound) if job.failures < NOT_FOUND_ANSWERS_TO_STALL => {
                    JobReading::NotFoundOnce {
                        fetched_at: job.fetched_at,
                    }
                }
                Some(failure) => {
                    return Combined::JobRefused {
                        failure,
                        job: plan
                            .awaited_job()
                            .map(|job| job.to_string())
                            .unwrap_or_default(),
                        error: error.clone(),
                        answered_at: job.fetched_at,
                    };
                }
                // Throttling, 5xx, refused credentials, transport: as for a failed listing.
                None => {
                    return Combined::Failed {
                        error: error.clone(),
                        answered_at: job.fetched_at,
                    };
                }
            },
        },
    };
    let job_ended =
        matches!(reading, JobReading::Answered { info, .. } if info.status.is_terminal());
    if let (Some(wait), Ok(listing), JobReading::Answered { info, fetched_at }) =
        (wait, listing, reading)
        && job_behind_list(wait, listing, listing_at, info, fetched_at)
    {
        return Combined::JobBehindList;
    }
    let empty = TaskListing::default();
    let shown = match (listing, last_good) {
        (Ok(listing), _) => &**listing,
        (Err(_), Some(last_good)) if job_ended => last_good,
        (Err(_), None) if job_ended => &empty,
        (Err(error), _) => {
            return Combined::Failed {
                error: error.clone(),
                answered_at: listing_at,
            };
        }
    };
    let mut evaluation = super::evaluate(plan, shown, now);
    if let Some(wait) = wait {
        evaluation.judge_job(wait, reading, now);
    }
    Combined::Evaluated(Box::new(evaluation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dcs::{ApiError, TaskTime};
    use crate::plan::{PlanContext, QueryPlan, plan};
    use chrono::TimeZone;
    use serde_json::json;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, second).unwrap()
    }

    /// A plan waiting for `job-1` (started at second 10, timing out at second 40), with `extra`
    /// merged into `waitFor`.
    fn planned(extra: serde_json::Value) -> QueryPlan {
        let mut wait = json!({"jobId": "job-1", "timeout": "30s"});
        wait.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let spec = json!({"region": "cn-north-4", "waitFor": wait});
        plan(
            &serde_json::from_value(spec).unwrap(),
            &PlanContext::starting_at(at(10)),
        )
        .unwrap()
    }

    fn job(status: &str) -> JobInfo {
        JobInfo {
            job_id: Some("job-1".into()),
            job_type: Some("masterStandbySwapJob".into()),
            status: JobStatus::from_wire(status),
            begin_time: Some(TaskTime::from_epoch_millis("1764676800000")),
            end_time: None,
            fail_reason: None,
        }
    }

    fn error(status: u16, code: &str) -> Arc<DcsError> {
        Arc::new(DcsError::Api {
            endpoint: "https://dcs.example".into(),
            error: ApiError {
                http_status: status,
                error_code: Some(code.into()),
                error_msg: None,
                request_id: None,
                retry_after: None,
                iam_action: crate::dcs::IamAction::ShowJob,
            },
        })
    }

    fn listing(job_status: &str) -> Arc<TaskListing> {
        crate::fixtures::switchover_listing(job_status, at(12))
    }

    fn verdict(reading: JobReading<'_>, now: u32) -> WaitVerdict {
        let plan = planned(json!({}));
        judge(plan.concern.wait.as_ref().unwrap(), reading, at(now))
    }

    /// The verdict on `info` fetched at second `fetched`, read at second `now`.
    fn verdict_on(info: &JobInfo, fetched: u32, now: u32) -> WaitVerdict {
        let fetched_at = at(fetched);
        verdict(JobReading::Answered { info, fetched_at }, now)
    }

    #[test]
    fn the_job_vocabulary_decides_and_only_success_and_fail_end_the_wait() {
        use WaitPhase::*;
        for (status, fetched, now, expected, says) in [
            ("SUCCESS", 20, 20, Succeeded, "reached SUCCESS"),
            ("FAIL", 20, 20, Failed, "ended FAIL"),
            ("RUNNING", 20, 20, Pending, "is RUNNING"),
            ("INIT", 20, 20, Pending, "is INIT"),
            // The task vocabulary is not the job's: never terminal.
            ("FAILED", 20, 20, Pending, "does not document"),
            ("", 20, 20, Pending, "is (none)"),
            // Timed out only on an answer fetched at or after the deadline (second 40).
            (
                "RUNNING",
                39,
                45,
                Pending,
                "confirming with the poll after the deadline",
            ),
            ("RUNNING", 40, 45, TimedOut, "timed out: job job-1"),
            ("INIT", 41, 45, TimedOut, "still INIT"),
            // A job that ended decides whenever it was fetched: it stays ended.
            ("SUCCESS", 45, 45, Succeeded, "reached SUCCESS"),
            ("FAIL", 5, 20, Failed, "ended FAIL"),
        ] {
            let info = job(status);
            let fetched_at = at(fetched);
            let v = verdict(
                JobReading::Answered {
                    info: &info,
                    fetched_at,
                },
                now,
            );
            assert_eq!(v.phase, expected, "{status} fetched {fetched} read {now}");
            assert!(v.message.contains(says), "{status}: {}", v.message);
            let view = v.job.unwrap();
            assert_eq!(view.job_type.as_deref(), Some("masterStandbySwapJob"));
            assert_eq!(
                view.began_at,
                Some(Utc.timestamp_millis_opt(1764676800000).unwrap())
            );
            assert_eq!(v.task, None);
            // A blank status is shown as none, not as an empty text.
            assert_eq!(
                view.status.as_deref(),
                Some(status).filter(|s| !s.is_empty())
            );
        }
    }

    #[test]
    fn a_failed_job_carries_its_reason_bounded() {
        let mut info = job("FAIL");
        info.fail_reason = Some("standby not ready".into());
        let v = verdict_on(&info, 20, 20);
        assert!(
            v.message.ends_with("ended FAIL: standby not ready"),
            "{}",
            v.message
        );
        assert_eq!(
            v.job.unwrap().fail_reason.as_deref(),
            Some("standby not ready")
        );
        info.fail_reason = Some("x".repeat(5000));
        let v = verdict_on(&info, 20, 20);
        assert!(
            v.message.len() < MAX_FAIL_REASON_BYTES + 200,
            "{}",
            v.message.len()
        );
        assert!(v.job.unwrap().fail_reason.unwrap().len() <= MAX_FAIL_REASON_BYTES + 3);
        // A blank reason adds nothing.
        info.fail_reason = Some("  ".into());
        let v = verdict_on(&info, 20, 20);
        assert!(v.message.ends_with("ended FAIL"), "{}", v.message);
    }

    #[test]
    fn an_answer_about_another_job_never_decides() {
        let mut info = job("SUCCESS");
        info.job_id = Some("job-2".into());
        let v = verdict_on(&info, 20, 20);
        assert_eq!(v.phase, WaitPhase::Pending);
        assert!(v.message.contains("job-2, not job-1"), "{}", v.message);
        // An answer without an id is taken as the job asked about.
        info.job_id = None;
        let v = verdict_on(&info, 20, 20);
        assert_eq!(v.phase, WaitPhase::Succeeded);
        assert_eq!(v.job.unwrap().job_id, "job-1");
    }

    #[test]
    fn before_an_answer_and_at_the_first_not_found_the_wait_is_pending() {
        let v = verdict(JobReading::NotYet, 50);
        assert_eq!(v.phase, WaitPhase::Pending);
        assert!(
            v.message.contains("first answer about job job-1"),
            "{}",
            v.message
        );
        let v = verdict(JobReading::NotFoundOnce { fetched_at: at(20) }, 20);
        assert_eq!(v.phase, WaitPhase::Pending);
        assert!(v.message.contains("asking once more"), "{}", v.message);
        let v = verdict(JobReading::NotFoundOnce { fetched_at: at(40) }, 40);
        assert_eq!(v.phase, WaitPhase::TimedOut);
        assert!(
            v.message.starts_with("timed out: ") && v.message.contains("does not know job job-1"),
            "{}",
            v.message
        );
    }

    fn combined(
        plan: &QueryPlan,
        listing: Result<&Arc<TaskListing>, &Arc<DcsError>>,
        last_good: Option<&TaskListing>,
        job: Option<(Result<&JobInfo, &Arc<DcsError>>, u32)>,
    ) -> Combined {
        let job = job.map(|(result, failures)| JobAnswer {
            result,
            failures,
            fetched_at: at(20),
        });
        combine(plan, listing, at(12), last_good, job, at(20))
    }

    fn phase_of(combined: &Combined) -> Option<WaitPhase> {
        match combined {
            Combined::Evaluated(evaluation) => evaluation.wait.as_ref().map(|w| w.phase),
            _ => None,
        }
    }

    #[test]
    fn the_job_api_decides_a_job_wait_and_the_task_list_a_task_list_wait() {
        let list = listing("EXECUTING");
        let done = job("SUCCESS");
        let by_job = planned(json!({}));
        let by_list = planned(json!({"source": "TaskList"}));
        let both = combined(&by_job, Ok(&list), None, Some((Ok(&done), 0)));
        assert_eq!(phase_of(&both), Some(WaitPhase::Succeeded));
        let Combined::Evaluated(evaluation) = &both else {
            panic!("{both:?}")
        };
        // The task list still fills the tasks; the running task keeps it active.
        assert_eq!(evaluation.matched_count, 1);
        assert!(evaluation.active);
        // The list's EXECUTING task decides a TaskList wait, whatever the job API says.
        let listed = combined(&by_list, Ok(&list), None, Some((Ok(&done), 0)));
        assert_eq!(phase_of(&listed), Some(WaitPhase::Pending));
        // No job answer yet: pending, and not active on the task list's account.
        let quiet = listing("SUCCESS");
        let waiting = combined(&by_job, Ok(&quiet), None, None);
        assert_eq!(phase_of(&waiting), Some(WaitPhase::Pending));
        let Combined::Evaluated(evaluation) = &waiting else {
            panic!("{waiting:?}")
        };
        assert!(
            !evaluation.active,
            "the job feed, not the task list, polls fast for a job"
        );
    }

    #[test]
    fn a_job_that_ended_decides_even_while_the_task_list_fails() {
        let plan = planned(json!({}));
        let failing = error(503, "DCS.5000");
        let done = job("SUCCESS");
        let running = job("RUNNING");
        let good = listing("SUCCESS");
        let shown = combined(&plan, Err(&failing), Some(&good), Some((Ok(&done), 0)));
        let Combined::Evaluated(evaluation) = &shown else {
            panic!("{shown:?}")
        };
        assert_eq!(
            evaluation.wait.as_ref().unwrap().phase,
            WaitPhase::Succeeded
        );
        assert_eq!(
            evaluation.matched_count, 1,
            "the last good listing is shown"
        );
        let bare = combined(&plan, Err(&failing), None, Some((Ok(&done), 0)));
        assert_eq!(phase_of(&bare), Some(WaitPhase::Succeeded));
        // A job still running cannot hide the listing's failure, with or without a last good
        // listing.
        let nothing = combined(&plan, Err(&failing), None, Some((Ok(&running), 0)));
        assert!(matches!(&nothing, Combined::Failed { .. }), "{nothing:?}");
        let failed = combined(&plan, Err(&failing), Some(&good), Some((Ok(&running), 0)));
        assert!(
            matches!(&failed, Combined::Failed { answered_at, .. } if *answered_at == at(12)),
            "{failed:?}"
        );
    }

    #[test]
    fn a_job_answer_older_than_a_listing_that_shows_its_task_ended_is_asked_again() {
        let plan = planned(json!({}));
        let ended = listing("SUCCESS");
        let running = job("RUNNING");
        let older = |fetched_at| JobAnswer {
            result: Ok(&running),
            failures: 0,
            fetched_at,
        };
        let behind = combine(&plan, Ok(&ended), at(12), None, Some(older(at(11))), at(20));
        assert!(matches!(behind, Combined::JobBehindList), "{behind:?}");
        // Fetched after the listing: the job API's word stands, even against the list.
        let fresh = combine(&plan, Ok(&ended), at(12), None, Some(older(at(12))), at(20));
        assert_eq!(phase_of(&fresh), Some(WaitPhase::Pending));
        // A task still running in the list, or a wait that reads the list: nothing to ask.
        let executing = listing("EXECUTING");
        let going = combine(
            &plan,
            Ok(&executing),
            at(12),
            None,
            Some(older(at(11))),
            at(20),
        );
        assert_eq!(phase_of(&going), Some(WaitPhase::Pending));
        let by_list = planned(json!({"source": "TaskList"}));
        let listed = combine(
            &by_list,
            Ok(&ended),
            at(12),
            None,
            Some(older(at(11))),
            at(20),
        );
        assert_eq!(phase_of(&listed), Some(WaitPhase::Succeeded));
        // No job answer yet: the first one is on its way anyway.
        let first = combine(&plan, Ok(&ended), at(12), None, None, at(20));
        assert_eq!(phase_of(&first), Some(WaitPhase::Pending));
    }

    #[test]
    fn the_job_is_behind_the_list_only_for_a_job_api_wait_on_an_older_answer_of_a_running_job() {
        let plan = planned(json!({}));
        let wait = plan.concern.wait.as_ref().unwrap();
        let ended = listing("SUCCESS");
        let running = job("RUNNING");
        assert!(job_behind_list(wait, &ended, at(12), &running, at(11)));
        // The listing's own fetch time counts, not the reading's.
        let mut fetched_later = (*ended).clone();
        fetched_later.fetched_at = Some(at(14));
        assert!(job_behind_list(
            wait,
            &fetched_later,
            at(12),
            &running,
            at(13)
        ));
        // A listing that does not say counts as fetched when it was read.
        let mut undated = (*ended).clone();
        undated.fetched_at = None;
        assert!(job_behind_list(wait, &undated, at(12), &running, at(11)));
        assert!(!job_behind_list(wait, &undated, at(12), &running, at(12)));
        assert!(
            !job_behind_list(wait, &ended, at(12), &running, at(12)),
            "same moment"
        );
        assert!(!job_behind_list(
            wait,
            &ended,
            at(12),
            &job("SUCCESS"),
            at(11)
        ));
        assert!(!job_behind_list(
            wait,
            &listing("EXECUTING"),
            at(12),
            &running,
            at(11)
        ));
        let by_list = planned(json!({"source": "TaskList"}));
        let list_wait = by_list.concern.wait.as_ref().unwrap();
        assert!(!job_behind_list(
            list_wait,
            &ended,
            at(12),
            &running,
            at(11)
        ));
    }

    #[test]
    fn job_lookup_failures_stall_or_retry_by_what_they_mean() {
        let plan = planned(json!({}));
        let list = listing("SUCCESS");
        let missing = error(404, "111404000");
        let forbidden = error(403, "DCS.4003");
        let throttled = error(429, "APIG.0308");
        let once = combined(&plan, Ok(&list), None, Some((Err(&missing), 1)));
        assert_eq!(
            phase_of(&once),
            Some(WaitPhase::Pending),
            "asked once more first"
        );
        let twice = combined(&plan, Ok(&list), None, Some((Err(&missing), 2)));
        assert!(
            matches!(&twice, Combined::JobRefused { failure: JobLookupFailure::NotFound, job, answered_at, .. }
                if job == "job-1" && *answered_at == at(20)),
            "{twice:?}"
        );
        let denied = combined(&plan, Ok(&list), None, Some((Err(&forbidden), 1)));
        assert!(
            matches!(
                &denied,
                Combined::JobRefused {
                    failure: JobLookupFailure::Forbidden,
                    ..
                }
            ),
            "{denied:?}"
        );
        let busy = combined(&plan, Ok(&list), None, Some((Err(&throttled), 1)));
        assert!(
            matches!(&busy, Combined::Failed { answered_at, .. } if *answered_at == at(20)),
            "{busy:?}"
        );
        // A TaskList wait never reads the job answer.
        let by_list = planned(json!({"source": "TaskList"}));
        let ignored = combined(&by_list, Ok(&list), None, Some((Err(&forbidden), 1)));
        assert_eq!(phase_of(&ignored), Some(WaitPhase::Succeeded));
    }

    #[test]
    fn advice_names_the_job_and_the_way_out() {
        let forbidden = advice(JobLookupFailure::Forbidden, "ff80");
        assert!(forbidden.contains("dcs:job:get") && forbidden.contains("ff80"));
        assert!(
            forbidden.contains("spec.waitFor.source: TaskList"),
            "{forbidden}"
        );
        let missing = advice(JobLookupFailure::NotFound, "ff80");
        assert!(missing.contains("ff80") && missing.contains("spec.waitFor.jobId"));
    }
}
