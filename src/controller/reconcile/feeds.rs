//! The feed phase: subscribe the object to its upstream feeds (the task list, and the job for
//! a wait that reads the job API), read their latest answers, and after the round do what it
//! says of them ([`FeedStep`]).

use std::sync::Arc;
use std::time::Duration;

use super::super::metrics::SharedOutcome;
use super::super::{Context, ObjectKey};
use super::target::Target;
use crate::dcs::{JobId, JobInfo};
use crate::query::{self, Concern, FeedStep, Outcome, QueryPlan};
use crate::upstream::feed::{Answer, AnswerReceiver, FeedTarget, Interest, round_outcome};

/// How long a reconcile waits for its feed's first answer before writing a "first poll in
/// progress" status: an answer within this time is the object's first write.
pub const FIRST_ANSWER_WAIT: Duration = Duration::from_secs(2);

/// What the object read from its feeds.
pub struct Answers {
    pub tasks: Option<Arc<Answer>>,
    /// The job feed's answer, for a wait that reads the job API.
    pub job: Option<Arc<Answer<JobInfo>>>,
    /// The requested refresh (if any) is answered: `tasks` was polled after it was asked.
    pub refreshed: bool,
}

impl Answers {
    /// The answers as the round reads them.
    pub fn outcome(&self) -> Outcome<'_> {
        round_outcome(self.tasks.as_deref(), self.job.as_deref())
    }
}

/// Subscribes the object to its feeds and reads both concurrently (see [`read_tasks`] and
/// [`read_job`]); `refresh` is the Flux request to answer, if a new one was made.
pub async fn read(
    ctx: &Context,
    object: &ObjectKey,
    target: &Target,
    plan: &QueryPlan,
    refresh: Option<&str>,
) -> Answers {
    // One copy for both feeds, each of which keeps it or swaps it for its own equal one.
    let concern = Arc::new(plan.concern.clone());
    let ((tasks, refreshed), (job, job_answers)) = tokio::join!(
        read_tasks(ctx, object, &target.feed, &concern, refresh),
        read_job(ctx, object, target.job.as_ref(), &concern),
    );
    let job = match (job, job_answers) {
        (Some(job), Some(answers)) if job_behind_list(&concern, tasks.as_deref(), &job) => {
            Some(ask_job_again(ctx, object, answers, job).await)
        }
        (job, _) => job,
    };
    if tasks.is_some() {
        ctx.metrics.count_shared(SharedOutcome::Fed);
    }
    Answers {
        tasks,
        job,
        refreshed,
    }
}

/// Does what the round said of the object's feeds.
pub fn follow(ctx: &Context, object: &ObjectKey, step: FeedStep) {
    match step {
        FeedStep::Stay => {}
        // The job feed's fresh answer wakes the object.
        FeedStep::AskJobAgain => {
            ctx.feeds.jobs.refresh(object);
        }
        FeedStep::Leave => ctx.feeds.unsubscribe(object),
    }
}

/// Subscribes the object to its task feed and returns the answer to decide on: the feed's
/// latest, or, for a new feed, its first answer if it comes within [`FIRST_ANSWER_WAIT`]. A
/// requested refresh (`refresh`: the annotation's value) asks the feed to poll now and waits
/// for that answer no longer than [`FIRST_ANSWER_WAIT`] either: a slower answer wakes the
/// object itself. Also says whether the refresh was answered.
async fn read_tasks(
    ctx: &Context,
    object: &ObjectKey,
    target: &FeedTarget,
    concern: &Arc<Concern>,
    refresh: Option<&str>,
) -> (Option<Arc<Answer>>, bool) {
    // Until the feed has a listing to judge it on, a subscriber awaiting a task in the list
    // starts active (a job wait's fast polls are the job feed's).
    let feeds = &ctx.feeds.tasks;
    let interest = Interest {
        concern: concern.clone(),
        active: concern.list_wait().is_some(),
    };
    let mut answers: AnswerReceiver = feeds.subscribe(object.clone(), target.clone(), interest);
    let current = answers.borrow_and_update().clone();
    let latest = current.as_ref().map_or(0, |answer| answer.sequence);
    let Some(requested) = refresh else {
        let answer = match current {
            None => newer_answer(&mut answers, 0, FIRST_ANSWER_WAIT).await,
            current => current,
        };
        if let Some(answer) = &answer {
            feeds.saw(object, answer.sequence);
        }
        return (answer, false);
    };
    let after = match ctx.memory.pending_refresh(object, requested) {
        Some(after) => after,
        None => {
            feeds.refresh(object);
            ctx.memory
                .refresh_asked(object, Some((requested.to_string(), latest)));
            latest
        }
    };
    let refreshed = match current.filter(|answer| answer.sequence > after) {
        Some(answer) => Some(answer),
        None => newer_answer(&mut answers, after, FIRST_ANSWER_WAIT).await,
    };
    match refreshed {
        Some(answer) => {
            ctx.memory.refresh_asked(object, None);
            feeds.saw(object, answer.sequence);
            (Some(answer), true)
        }
        // Not marked seen: the refreshed answer wakes the object.
        None => (answers.borrow().clone(), false),
    }
}

/// Subscribes the object to the job feed of its wait (leaving any job feed when its wait
/// reads no job) and returns the feed's latest answer, or its first if it comes within
/// [`FIRST_ANSWER_WAIT`], with the view of the feed's answers. The job feed polls at
/// `activeInterval` until the job ends.
async fn read_job(
    ctx: &Context,
    object: &ObjectKey,
    target: Option<&FeedTarget<JobId>>,
    concern: &Arc<Concern>,
) -> (
    Option<Arc<Answer<JobInfo>>>,
    Option<AnswerReceiver<JobInfo>>,
) {
    let feeds = &ctx.feeds.jobs;
    let Some(target) = target else {
        feeds.unsubscribe(object);
        return (None, None);
    };
    let interest = Interest {
        concern: concern.clone(),
        active: true,
    };
    let mut answers = feeds.subscribe(object.clone(), target.clone(), interest);
    let current = answers.borrow_and_update().clone();
    let answer = match current {
        None => newer_answer(&mut answers, 0, FIRST_ANSWER_WAIT).await,
        current => current,
    };
    if let Some(answer) = &answer {
        feeds.saw(object, answer.sequence);
    }
    (answer, Some(answers))
}

/// Whether the task feed's answer shows the awaited job's task ended while the job feed's
/// answer, fetched before it, still has the job running: see [`query::job::job_behind_list`].
fn job_behind_list(concern: &Concern, tasks: Option<&Answer>, job: &Answer<JobInfo>) -> bool {
    let (Some(wait), Some(tasks)) = (concern.wait.as_ref(), tasks) else {
        return false;
    };
    match (tasks.result.as_deref(), job.result.as_deref()) {
        (Ok(listing), Ok(info)) => {
            query::job::job_behind_list(wait, listing, tasks.fetched_at, info, job.fetched_at)
        }
        _ => false,
    }
}

/// Asks the job feed again, its answer `behind` the task list, and returns its next answer if
/// it comes within [`FIRST_ANSWER_WAIT`]. Waited for here rather than on the answer's wake, so
/// that the verdict is written by this very reconcile: the waiter's turn in the lanes lasts
/// until then, and no settled refresh woken by the same listing goes before it. Only the
/// waiter whose call asked for the poll waits: its turn holds the refreshes back for every
/// waiter of the job, whom the answer wakes, and a slow job API then holds one reconcile slot,
/// not one per waiter. Without an answer in time, `behind` goes to the round, which asks again
/// ([`FeedStep::AskJobAgain`]) and is woken by the answer.
async fn ask_job_again(
    ctx: &Context,
    object: &ObjectKey,
    mut answers: AnswerReceiver<JobInfo>,
    behind: Arc<Answer<JobInfo>>,
) -> Arc<Answer<JobInfo>> {
    let feeds = &ctx.feeds.jobs;
    if !feeds.refresh(object) {
        return behind;
    }
    match newer_answer(&mut answers, behind.sequence, FIRST_ANSWER_WAIT).await {
        Some(newer) => {
            feeds.saw(object, newer.sequence);
            newer
        }
        None => behind,
    }
}

/// The first answer after `after`, if it comes within `wait`.
async fn newer_answer<R>(
    answers: &mut AnswerReceiver<R>,
    after: u64,
    wait: Duration,
) -> Option<Arc<Answer<R>>> {
    let newer = answers.wait_for(|answer| answer.as_ref().is_some_and(|a| a.sequence > after));
    match tokio::time::timeout(wait, newer).await {
        Ok(Ok(answer)) => answer.clone(),
        _ => None,
    }
}
