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
    Evaluated(Evaluation),
    /// A failed poll, of the task list or of the job, and when it ended.
    Failed {
        error: Arc<DcsError>,
        answered_at: DateTime<Utc>,
    },
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
    let wait = plan.wait.as_ref().filter(|wait| wait.reads_job_api());
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
    Combined::Evaluated(evaluation)
}
