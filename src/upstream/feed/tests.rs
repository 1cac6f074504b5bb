//! Feeds against the simulator on loopback: fan-out, the subscription lifecycle, waking only
//! the subscribers a change concerns, and the interval following the subscribers' needs.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::dcs::{HttpClient, HttpSettings};
use crate::query::{PlanContext, QueryPlan, plan};
use crate::sim;
use crate::upstream::fetcher::FetchLimits;

/// A simulator, feeds over it, and a record of who was woken how often, and how last.
struct Bench {
    sim: sim::RunningSimulator,
    fetcher: Arc<SharedFetcher>,
    feeds: Arc<Feeds<String>>,
    woken: Arc<Mutex<HashMap<String, (usize, Wake)>>>,
}

impl Bench {
    async fn start() -> Bench {
        let sim = sim::serve_on_loopback(sim::Scenario::default_demo())
            .await
            .unwrap();
        let fetcher = Arc::new(SharedFetcher::with_limits(FetchLimits {
            requests_per_second: NonZeroU32::new(1000).unwrap(),
            account_requests_per_second: NonZeroU32::new(1000).unwrap(),
            ..FetchLimits::default()
        }));
        let woken = Arc::new(Mutex::new(HashMap::new()));
        let record = woken.clone();
        let feeds = Feeds::new(
            fetcher.clone(),
            move |subscriber: String, wake: Wake| {
                let mut woken = record.lock().unwrap();
                let entry = woken.entry(subscriber).or_insert((0, wake));
                *entry = (entry.0 + 1, wake);
            },
            None,
        );
        Bench {
            sim,
            fetcher,
            feeds,
            woken,
        }
    }

    /// A target for `limit` (distinct limits are distinct feeds).
    fn target(&self, limit: u32) -> FeedTarget {
        let set = sim::demo_credentials();
        let plan = fast_plan(json!({}), limit);
        FeedTarget {
            key: FeedKey {
                endpoint: self.sim.endpoint().to_string(),
                project_id: sim::DEMO_PROJECT_ID.to_string(),
                credential: set.credentials.fingerprint(),
                request: plan.list_request(),
                owner: None,
            },
            client: DcsClient::new(
                HttpClient::new(HttpSettings::default()).unwrap(),
                self.sim.endpoint(),
                sim::DEMO_PROJECT_ID,
                set.credentials,
            ),
        }
    }

    fn interest(&self, extra: Value, active: bool) -> Interest {
        Interest {
            concern: Arc::new(fast_plan(extra, 1000).concern),
            active,
        }
    }

    /// An interest the feed judges settled: its filter passes none of the simulator's tasks
    /// (the demo's switchover runs for its first 8 s), so nothing it sees runs.
    fn settled(&self, extra: Value) -> Interest {
        let mut extra = extra;
        extra["filter"] = json!({"names": ["noSuchTask"]});
        self.interest(extra, false)
    }

    fn wakes(&self, subscriber: &str) -> usize {
        self.woken
            .lock()
            .unwrap()
            .get(subscriber)
            .map_or(0, |(count, _)| *count)
    }

    /// How `subscriber` was last woken.
    fn last_wake(&self, subscriber: &str) -> Option<Wake> {
        self.woken
            .lock()
            .unwrap()
            .get(subscriber)
            .map(|(_, wake)| *wake)
    }

    fn clear_wakes(&self) {
        self.woken.lock().unwrap().clear();
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
            .request(method, format!("{}{path}", self.sim.base_url()))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn add_task(&self, name: &str, status: &str) -> String {
        let created = self
            .admin(
                reqwest::Method::POST,
                "/_sim/tasks",
                json!({"name": name, "status": status}),
            )
            .await;
        created["id"].as_str().unwrap().to_string()
    }

    async fn set_status(&self, id: &str, status: &str) {
        self.admin(
            reqwest::Method::PUT,
            &format!("/_sim/tasks/{id}/status"),
            json!({"status": status}),
        )
        .await;
    }
}

/// A plan with `extra` spec fields, polling every 300 ms when active and 600 ms when settled
/// (below what a spec may ask, so the test runs fast).
fn fast_plan(extra: Value, limit: u32) -> QueryPlan {
    let mut spec = json!({"region": "cn-north-4", "query": {"limit": limit}});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    let spec = serde_json::from_value(spec).unwrap();
    let mut plan = plan(&spec, &PlanContext::starting_at(Utc::now())).unwrap();
    plan.concern.active_interval = Duration::from_millis(300);
    plan.concern.interval = Duration::from_millis(600);
    plan
}

/// Waits (up to 10 s) until `receiver` holds an answer with at least `sequence`.
async fn answer_at_least(receiver: &mut AnswerReceiver, sequence: u64) -> Arc<Answer> {
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        receiver.wait_for(|a| a.as_ref().is_some_and(|a| a.sequence >= sequence)),
    )
    .await
    .expect("an answer within 10 s")
    .unwrap();
    answer.clone().unwrap()
}

#[tokio::test]
async fn a_hundred_subscribers_share_one_call_and_all_are_woken() {
    let bench = Bench::start().await;
    let mut receivers = Vec::new();
    for n in 0..100 {
        // Settled, so one answer is all this test waits for.
        let interest = bench.settled(json!({"interval": "1h"}));
        let mut interest = interest;
        Arc::make_mut(&mut interest.concern).interval = Duration::from_secs(3600);
        receivers.push(
            bench
                .feeds
                .subscribe(format!("object-{n}"), bench.target(1000), interest),
        );
    }
    assert_eq!(
        bench.feeds.counts(),
        FeedCounts {
            feeds: 1,
            subscribers: 100
        }
    );
    for receiver in &mut receivers {
        let answer = answer_at_least(receiver, 1).await;
        assert!(answer.result.is_ok(), "{:?}", answer.result);
    }
    assert_eq!(
        bench.fetcher.upstream_calls(),
        1,
        "one call for 100 objects"
    );
    // The first answer wakes everyone.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for n in 0..100 {
        assert_eq!(bench.wakes(&format!("object-{n}")), 1, "object-{n}");
    }
}

#[tokio::test]
async fn moving_and_leaving_subscribers_leave_no_feed_behind() {
    let bench = Bench::start().await;
    let a = bench.feeds.subscribe(
        "a".into(),
        bench.target(100),
        bench.interest(json!({}), true),
    );
    let _b = bench.feeds.subscribe(
        "b".into(),
        bench.target(100),
        bench.interest(json!({}), true),
    );
    assert_eq!(bench.feeds.counts().feeds, 1);
    // A spec change moves `a` to another question: two feeds, one subscriber each.
    let mut moved = bench.feeds.subscribe(
        "a".into(),
        bench.target(200),
        bench.interest(json!({}), true),
    );
    drop(a);
    assert_eq!(
        bench.feeds.counts(),
        FeedCounts {
            feeds: 2,
            subscribers: 2
        }
    );
    answer_at_least(&mut moved, 1).await;
    // `b` is deleted: its feed stops; `a` resolves and leaves: nothing polls any more.
    bench.feeds.unsubscribe(&"b".to_string());
    assert_eq!(bench.feeds.counts().feeds, 1);
    bench.feeds.unsubscribe(&"a".to_string());
    assert_eq!(bench.feeds.counts(), FeedCounts::default());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let calls = bench.fetcher.upstream_calls();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(bench.fetcher.upstream_calls(), calls, "no feed polls after");
    // Unsubscribing twice, or someone never subscribed, is harmless.
    bench.feeds.unsubscribe(&"a".to_string());
    bench.feeds.retain(|_| false);
}

#[tokio::test]
async fn stopping_all_feeds_stops_every_poll() {
    let bench = Bench::start().await;
    for (name, limit) in [("a", 100), ("b", 200)] {
        let mut answers = bench.feeds.subscribe(
            name.into(),
            bench.target(limit),
            bench.interest(json!({}), true),
        );
        answer_at_least(&mut answers, 1).await;
    }
    bench.feeds.stop_all();
    assert_eq!(bench.feeds.counts(), FeedCounts::default());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let calls = bench.fetcher.upstream_calls();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(bench.fetcher.upstream_calls(), calls);
}

#[tokio::test]
async fn a_change_wakes_only_the_subscribers_it_concerns() {
    let bench = Bench::start().await;
    let watched = bench.add_task("restartInstance", "RUNNING").await;
    bench.add_task("flushInstance", "RUNNING").await;
    let restarts = bench.interest(json!({"filter": {"names": ["restartInstance"]}}), true);
    let flushes = bench.interest(json!({"filter": {"names": ["flushInstance"]}}), true);
    let waiter = bench.interest(
        json!({"waitFor": {"name": "restartInstance", "createdAfter": "2000-01-01T00:00:00Z"}}),
        true,
    );
    let mut answers = bench
        .feeds
        .subscribe("restarts".into(), bench.target(1000), restarts);
    bench
        .feeds
        .subscribe("flushes".into(), bench.target(1000), flushes);
    bench
        .feeds
        .subscribe("waiter".into(), bench.target(1000), waiter);
    let first = answer_at_least(&mut answers, 1).await;
    for subscriber in ["restarts", "flushes", "waiter"] {
        bench.feeds.saw(&subscriber.to_string(), first.sequence);
    }
    // The first answer woke everyone; answers that change nothing wake nobody, however many.
    answer_at_least(&mut answers, first.sequence + 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    bench.clear_wakes();
    answer_at_least(&mut answers, first.sequence + 4).await;
    for subscriber in ["restarts", "flushes", "waiter"] {
        assert_eq!(
            bench.wakes(subscriber),
            0,
            "{subscriber} woken by a quiet answer"
        );
    }

    bench.set_status(&watched, "SUCCESS").await;
    let changed = tokio::time::timeout(
        Duration::from_secs(10),
        answers.wait_for(|a| {
            a.as_ref()
                .and_then(|a| a.result.as_ref().ok())
                .is_some_and(|listing| {
                    listing.tasks.iter().any(|t| {
                        t.id.as_deref() == Some(watched.as_str())
                            && t.status.as_deref() == Some("SUCCESS")
                    })
                })
        }),
    )
    .await
    .unwrap()
    .unwrap()
    .clone()
    .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(bench.wakes("restarts"), 1, "its filter passes the task");
    assert_eq!(bench.wakes("waiter"), 1, "it awaits the task");
    // Someone waits on the waiter's verdict; the other's view merely changed, though it is
    // active too.
    assert_eq!(bench.last_wake("waiter"), Some(Wake::Awaiting));
    assert_eq!(bench.last_wake("restarts"), Some(Wake::Refresh));
    assert_eq!(
        bench.wakes("flushes"),
        0,
        "the task is none of its business"
    );
    assert!(changed.last_good.is_some());
}

#[tokio::test]
async fn the_feed_polls_at_the_shortest_interval_its_subscribers_need() {
    let bench = Bench::start().await;
    let mut settled = bench.settled(json!({}));
    Arc::make_mut(&mut settled.concern).interval = Duration::from_secs(3600);
    let mut answers = bench
        .feeds
        .subscribe("settled".into(), bench.target(1000), settled);
    answer_at_least(&mut answers, 1).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(bench.fetcher.upstream_calls(), 1, "settled: hourly");
    // An awaiting subscriber joins (its job is not listed yet): the feed replans at once and
    // polls every 300 ms.
    bench.feeds.subscribe(
        "waiter".into(),
        bench.target(1000),
        bench.interest(
            json!({"waitFor": {"source": "TaskList", "jobId": "job-never"}}),
            false,
        ),
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let calls = bench.fetcher.upstream_calls();
    assert!((3..=8).contains(&calls), "{calls} calls in 1.6 s at 300 ms");
    // It resolves and leaves: back to hourly.
    bench.feeds.unsubscribe(&"waiter".to_string());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after = bench.fetcher.upstream_calls();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        bench.fetcher.upstream_calls() <= after + 1,
        "at most the poll already planned"
    );
}

#[tokio::test]
async fn the_feed_judges_who_needs_its_active_interval_from_its_own_answers() {
    let bench = Bench::start().await;
    // Guessed active, but nothing it sees runs and nothing is awaited: settled after the first
    // answer.
    let mut idle = bench.settled(json!({}));
    idle.active = true;
    Arc::make_mut(&mut idle.concern).interval = Duration::from_secs(3600);
    let mut answers = bench
        .feeds
        .subscribe("idle".into(), bench.target(1000), idle);
    answer_at_least(&mut answers, 1).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        bench.fetcher.upstream_calls(),
        1,
        "hourly, whatever it guessed"
    );
    // A task its filter passes starts running: the feed sees it and polls fast by itself.
    let task = bench.add_task("restartInstance", "RUNNING").await;
    let mut watching = bench.interest(json!({"filter": {"names": ["restartInstance"]}}), false);
    Arc::make_mut(&mut watching.concern).interval = Duration::from_secs(3600);
    bench
        .feeds
        .subscribe("watching".into(), bench.target(1000), watching);
    // Its guess is settled, but the feed's listing predates the task; after a refresh, the
    // feed's own answer shows the task running.
    bench.feeds.refresh(&"watching".to_string());
    answer_at_least(&mut answers, 2).await;
    let before = bench.fetcher.upstream_calls();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let fast = bench.fetcher.upstream_calls() - before;
    assert!((3..=8).contains(&fast), "{fast} calls in 1.6 s at 300 ms");
    // The task ends: settled again, without anyone telling the feed.
    bench.set_status(&task, "SUCCESS").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = bench.fetcher.upstream_calls();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        bench.fetcher.upstream_calls() <= after + 1,
        "at most the poll already planned"
    );
}

#[tokio::test]
async fn an_error_keeps_the_last_good_listing_and_wakes_everyone() {
    let bench = Bench::start().await;
    let mut answers = bench.feeds.subscribe(
        "a".into(),
        bench.target(1000),
        bench.interest(json!({}), true),
    );
    let first = answer_at_least(&mut answers, 1).await;
    bench.feeds.saw(&"a".to_string(), first.sequence);
    bench
        .admin(
            reqwest::Method::POST,
            "/_sim/faults",
            json!({"count": 100, "status": 500}),
        )
        .await;
    let failed = tokio::time::timeout(
        Duration::from_secs(20),
        answers.wait_for(|a| a.as_ref().is_some_and(|a| a.result.is_err())),
    )
    .await
    .expect("an error answer")
    .unwrap()
    .clone()
    .unwrap();
    assert!(failed.last_good.is_some(), "what was known stays known");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(bench.wakes("a") >= 1);
}

/// A settled (hourly) interest awaiting a job that never appears, whose wait started at
/// `started_at` and ends at `deadline`. The job is read through the job API, so the task feed
/// judges the subscriber settled: only the wait's moments can bring its polls sooner.
fn settled_wait(
    bench: &Bench,
    started_at: DateTime<Utc>,
    deadline: Option<DateTime<Utc>>,
) -> Interest {
    let mut interest = bench.settled(json!({"waitFor": {"source": "Job", "jobId": "job-never"}}));
    let concern = Arc::make_mut(&mut interest.concern);
    concern.interval = Duration::from_secs(3600);
    let wait = concern.wait.as_mut().unwrap();
    wait.started_at = started_at;
    wait.deadline = deadline;
    interest
}

#[tokio::test]
async fn a_settled_feed_polls_just_after_a_wait_deadline_and_wakes_its_waiter() {
    let bench = Bench::start().await;
    let deadline = Utc::now() + chrono::TimeDelta::milliseconds(1500);
    let interest = settled_wait(&bench, Utc::now(), Some(deadline));
    let mut answers = bench
        .feeds
        .subscribe("waiter".into(), bench.target(1000), interest);
    let first = answer_at_least(&mut answers, 1).await;
    assert!(first.fetched_at < deadline);
    bench.feeds.saw(&"waiter".to_string(), first.sequence);
    tokio::time::sleep(Duration::from_millis(50)).await;
    bench.clear_wakes();
    // Hourly otherwise: the deadline alone brings the next poll, just after it.
    let second = answer_at_least(&mut answers, 2).await;
    assert!(
        second.fetched_at >= deadline,
        "fetched at {} for a deadline at {deadline}",
        second.fetched_at
    );
    assert!(second.fetched_at < deadline + chrono::TimeDelta::seconds(2));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        bench.wakes("waiter"),
        1,
        "nothing changed, but this answer can time the wait out"
    );
    // One poll for the deadline, not one per plan.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(bench.fetcher.upstream_calls(), 2);
}

#[tokio::test]
async fn a_wait_joining_a_settled_feed_gets_an_answer_fetched_after_it_started() {
    let bench = Bench::start().await;
    let mut answers = bench.feeds.subscribe(
        "old".into(),
        bench.target(1000),
        settled_wait(&bench, Utc::now(), None),
    );
    let first = answer_at_least(&mut answers, 1).await;
    let polled_first = tokio::time::Instant::now();
    bench.feeds.saw(&"old".to_string(), first.sequence);
    // Ten waits start after that answer, at once; each evaluated the stale answer.
    let started = Utc::now();
    for n in 0..10 {
        let name = format!("new-{n}");
        bench.feeds.subscribe(
            name.clone(),
            bench.target(1000),
            settled_wait(&bench, started, None),
        );
        bench.feeds.saw(&name, first.sequence);
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    bench.clear_wakes();
    let second = answer_at_least(&mut answers, 2).await;
    assert!(second.fetched_at >= started);
    assert!(
        polled_first.elapsed() >= MIN_FRESH_POLL_SPACING - Duration::from_millis(50),
        "not sooner than the spacing after the last poll"
    );
    // Each is woken as a waiter, the moment the answer is in.
    tokio::time::sleep(Duration::from_millis(20)).await;
    for n in 0..10 {
        assert_eq!(bench.wakes(&format!("new-{n}")), 1, "new-{n}");
        assert_eq!(bench.last_wake(&format!("new-{n}")), Some(Wake::Awaiting));
    }
    assert_eq!(bench.wakes("old"), 0, "its view did not change");
    // One call for the ten, and none after: each has its fresh answer now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(bench.fetcher.upstream_calls(), 2);
}

/// An answer holding `tasks`, fetched now.
fn answer(sequence: u64, tasks: Vec<CenterTask>) -> Answer {
    let count = tasks.len() as u64;
    answer_counting(sequence, tasks, count)
}

/// An answer holding `tasks` whose `task_count` says `task_count`, fetched now.
fn answer_counting(sequence: u64, tasks: Vec<CenterTask>, task_count: u64) -> Answer {
    let listing = TaskListing {
        task_count: Some(task_count),
        tasks,
        pages: 1,
        complete: true,
        fetched_at: Some(Utc::now()),
    };
    Answer {
        failures: 0,
        sequence,
        result: Ok(Arc::new(listing)),
        fetched_at: Utc::now(),
        last_good: None,
    }
}

fn center_task(id: &str, status: &str) -> CenterTask {
    CenterTask {
        id: Some(id.into()),
        name: Some("restartInstance".into()),
        status: Some(status.into()),
        ..CenterTask::default()
    }
}

#[test]
fn a_task_leaving_a_filter_concerns_the_subscribers_it_left() {
    let watching = fast_plan(
        json!({"filter": {"statuses": ["EXECUTING", "SUCCESS", "FAILED"]}}),
        1000,
    )
    .concern;
    let before = answer(1, vec![center_task("t1", "EXECUTING")]);
    let after = answer(2, vec![center_task("t1", "CANCELLED")]);
    // The status showed t1 running; now it is gone from the object's view.
    assert!(Change::between::<ListRequest>(Some(&before), &after).concerns(&watching));
    // And entering the filter concerns it just the same.
    assert!(Change::between::<ListRequest>(Some(&after), &before).concerns(&watching));
    let others = fast_plan(json!({"filter": {"names": ["flushInstance"]}}), 1000).concern;
    assert!(!Change::between::<ListRequest>(Some(&before), &after).concerns(&others));
}

/// A failed answer: HTTP `status` with `request_id` (which differs per request).
fn failed(sequence: u64, status: u16, request_id: &str) -> Answer {
    let error = crate::dcs::DcsError::Api {
        endpoint: "https://dcs.example".into(),
        error: crate::dcs::ApiError {
            http_status: status,
            error_code: Some("DCS.5000".into()),
            error_msg: Some("Internal service error.".into()),
            request_id: Some(request_id.into()),
            retry_after: None,
            iam_action: crate::dcs::IamAction::ListTasks,
        },
    };
    Answer {
        failures: 0,
        sequence,
        result: Err(Arc::new(error)),
        fetched_at: Utc::now(),
        last_good: None,
    }
}

/// A failed job answer: the API does not know the job (`failures` in a row).
fn job_not_found(sequence: u64, failures: u32) -> Answer<JobInfo> {
    let error = crate::dcs::DcsError::Api {
        endpoint: "https://dcs.example".into(),
        error: crate::dcs::ApiError {
            http_status: 404,
            error_code: Some("111404000".into()),
            error_msg: Some("job not found".into()),
            request_id: None,
            retry_after: None,
            iam_action: crate::dcs::IamAction::ListTasks,
        },
    };
    Answer {
        failures,
        sequence,
        result: Err(Arc::new(error)),
        fetched_at: Utc::now(),
        last_good: None,
    }
}

#[test]
fn a_job_still_unknown_at_the_second_asking_changes_every_view() {
    let waiter = fast_plan(json!({"waitFor": {"jobId": "job-1"}}), 1000);
    let (first, second, third) = (
        job_not_found(1, 1),
        job_not_found(2, 2),
        job_not_found(3, 3),
    );
    // The first not-found is asked again soon; the second stalls the wait: a new view.
    assert!(Change::between::<JobId>(Some(&first), &second).concerns(&waiter.concern));
    assert!(!Change::between::<JobId>(Some(&second), &third).concerns(&waiter.concern));
    assert_eq!(
        JobId::retry_class(&first.result.clone().unwrap_err(), 1),
        FailureClass::Transient
    );
    assert_eq!(
        JobId::retry_class(&second.result.clone().unwrap_err(), 2),
        FailureClass::NeedsPerson
    );
    // The task list has no such rule: the same 404 twice is the same view.
    let listing_error = |failures| Answer::<TaskListing> {
        failures,
        sequence: u64::from(failures),
        result: Err(first.result.clone().unwrap_err()),
        fetched_at: Utc::now(),
        last_good: None,
    };
    assert!(
        !Change::between::<ListRequest>(Some(&listing_error(1)), &listing_error(2))
            .concerns(&waiter.concern)
    );
}

#[test]
fn the_same_error_again_changes_nobodys_view() {
    let everything = fast_plan(json!({}), 1000);
    let first = failed(2, 503, "req-1");
    let again = failed(3, 503, "req-2");
    assert!(
        !Change::between::<ListRequest>(Some(&first), &again).concerns(&everything.concern),
        "only the request id differs"
    );
    let other = failed(4, 502, "req-3");
    assert!(Change::between::<ListRequest>(Some(&again), &other).concerns(&everything.concern));
    let good = answer(5, vec![]);
    assert!(Change::between::<ListRequest>(Some(&other), &good).concerns(&everything.concern));
    assert!(Change::between::<ListRequest>(Some(&good), &first).concerns(&everything.concern));
}

#[tokio::test]
async fn a_settled_feed_backs_off_from_its_own_interval() {
    let bench = Bench::start().await;
    // A garbled body: transient, and not retried inside the listing, so each poll is one call.
    bench
        .admin(
            reqwest::Method::POST,
            "/_sim/faults",
            json!({"count": 100, "status": 200, "body": "not the task list"}),
        )
        .await;
    let mut settled = bench.settled(json!({}));
    Arc::make_mut(&mut settled.concern).interval = Duration::from_secs(3);
    let mut answers = bench
        .feeds
        .subscribe("settled".into(), bench.target(1000), settled);
    let first = answer_at_least(&mut answers, 1).await;
    assert!(first.result.is_err(), "{:?}", first.result);
    // Its subscriber's activeInterval is 300 ms, but nobody needs it: no retry before 2.7 s.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(bench.fetcher.upstream_calls(), 1);
}

#[test]
fn evaluation_and_change_detection_keep_the_same_copy_of_a_repeated_task() {
    let waiter = fast_plan(
        json!({"waitFor": {"source": "TaskList", "jobId": "job-1"}}),
        1000,
    );
    let copy = |status: &str, updated: &str| CenterTask {
        job_id: Some("job-1".into()),
        updated_at: Some(crate::dcs::TaskTime::new(updated.to_string())),
        ..center_task("t1", status)
    };
    let running = copy("EXECUTING", "2026-11-27T12:01:00.000Z");
    let done = copy("SUCCESS", "2026-11-27T12:05:00.000Z");
    let settled = answer(1, vec![done.clone()]);
    // Pages shifted while paging: the task is listed twice, before and after it succeeded.
    for tasks in [
        vec![running.clone(), done.clone()],
        vec![done.clone(), running.clone()],
    ] {
        let shifted = answer_counting(2, tasks, 1);
        let Ok(listing) = &shifted.result else {
            unreachable!()
        };
        let seen = crate::query::evaluate(&waiter, listing, Utc::now());
        assert_eq!(
            seen.wait.unwrap().phase,
            crate::api::WaitPhase::Succeeded,
            "evaluation keeps the newest copy"
        );
        // So the settled listing after it changes nothing the waiter saw, and the shifted one
        // changes what a waiter of the settled one saw not at all either.
        assert!(
            !Change::between::<ListRequest>(Some(&shifted), &settled).concerns(&waiter.concern)
        );
        assert!(
            !Change::between::<ListRequest>(Some(&settled), &shifted).concerns(&waiter.concern)
        );
    }
}

#[test]
fn a_task_count_change_alone_concerns_only_whom_the_changed_task_concerns() {
    let restarts = fast_plan(json!({"filter": {"names": ["restartInstance"]}}), 1000);
    let flushes = fast_plan(json!({"filter": {"names": ["flushInstance"]}}), 1000);
    let before = answer(1, vec![center_task("t1", "SUCCESS")]);
    // A new restart task: the count grows with it.
    let grown = answer(
        2,
        vec![center_task("t1", "SUCCESS"), center_task("t2", "EXECUTING")],
    );
    let change = Change::between::<ListRequest>(Some(&before), &grown);
    assert!(change.concerns(&restarts.concern));
    assert!(!change.concerns(&flushes.concern), "no flush task changed");
    // The count moves with no listed task changing (a task beyond the page limit).
    let recounted = answer_counting(3, vec![center_task("t1", "SUCCESS")], 7);
    let change = Change::between::<ListRequest>(Some(&before), &recounted);
    assert!(!change.concerns(&restarts.concern) && !change.concerns(&flushes.concern));
}

#[test]
fn a_wait_asks_for_an_answer_only_until_one_is_fetched_at_or_after_its_moments() {
    let start = Utc::now();
    let second = chrono::TimeDelta::seconds(1);
    let mut waiter = fast_plan(
        json!({"waitFor": {"source": "TaskList", "jobId": "job-1"}}),
        1000,
    )
    .concern;
    waiter.wait.as_mut().unwrap().started_at = start;
    // Fetched before the wait started: at once; at or after its start: nothing more.
    assert_eq!(
        wait_needs_within(&waiter, start - second, start),
        Some(Duration::ZERO)
    );
    assert_eq!(wait_needs_within(&waiter, start, start), None);
    assert_eq!(wait_needs_within(&waiter, start + second, start), None);
    // The first answer fetched at or after a moment is the one that wakes for it.
    assert!(first_fetched_since(Some(start - second), start, start));
    assert!(first_fetched_since(
        Some(start - second),
        start + second,
        start
    ));
    assert!(
        !first_fetched_since(Some(start), start + second, start),
        "seen already"
    );
    assert!(!first_fetched_since(
        Some(start - second * 2),
        start - second,
        start
    ));
    assert!(!first_fetched_since(None, start, start));
}

#[test]
fn equal_concerns_share_one_copy_until_the_last_holder_leaves() {
    let mut shared = SharedConcerns::default();
    let first = Arc::new(fast_plan(json!({}), 1000).concern);
    let kept = shared.share(first.clone());
    assert!(
        Arc::ptr_eq(&kept, &first),
        "the first copy becomes the feed's"
    );
    let equal = Arc::new(fast_plan(json!({}), 1000).concern);
    assert!(
        Arc::ptr_eq(&shared.share(equal), &first),
        "an equal one is swapped for it"
    );
    let other = shared.share(Arc::new(
        fast_plan(json!({"filter": {"names": ["flushInstance"]}}), 1000).concern,
    ));
    assert_eq!(shared.len(), 2);
    shared.release(&first);
    assert_eq!(shared.len(), 2, "one holder of the first is left");
    shared.release(&first);
    shared.release(&other);
    assert_eq!(shared.len(), 0, "the last holder dropped each");
    // Releasing what the feed no longer holds changes nothing.
    shared.release(&other);
    assert_eq!(shared.len(), 0);
}

#[tokio::test]
async fn subscribers_asking_the_same_share_their_feeds_copy_and_leaving_drops_it() {
    let bench = Bench::start().await;
    let target = bench.target(1000);
    for n in 0..50 {
        let mut interest = bench.settled(json!({}));
        Arc::make_mut(&mut interest.concern).interval = Duration::from_secs(3600);
        bench
            .feeds
            .subscribe(format!("object-{n}"), target.clone(), interest);
    }
    let mut other = bench.settled(json!({"maxTasks": 5}));
    Arc::make_mut(&mut other.concern).interval = Duration::from_secs(7200);
    bench.feeds.subscribe("other".into(), target.clone(), other);
    let distinct = |feeds: &Feeds<String>| {
        let state = lock(&feeds.state);
        let entry = state.feeds.get(&target.key).expect("the feed");
        let concerns: Vec<&Arc<Concern>> = entry
            .subscribers
            .values()
            .map(|subscription| &subscription.interest.concern)
            .collect();
        let first = concerns
            .iter()
            .find(|c| c.interval.as_secs() == 3600)
            .copied();
        let shared = concerns
            .iter()
            .filter(|c| first.is_some_and(|first| Arc::ptr_eq(c, first)))
            .count();
        (entry.concerns.len(), shared)
    };
    assert_eq!(
        distinct(&bench.feeds),
        (2, 50),
        "50 subscribers hold one copy"
    );
    // A subscriber changing its concern moves to another copy; the old one keeps its holders.
    let mut changed = bench.settled(json!({}));
    Arc::make_mut(&mut changed.concern).interval = Duration::from_secs(7200);
    bench
        .feeds
        .subscribe("object-0".into(), target.clone(), changed);
    assert_eq!(distinct(&bench.feeds), (2, 49));
    for n in 1..50 {
        bench.feeds.unsubscribe(&format!("object-{n}"));
    }
    assert_eq!(
        distinct(&bench.feeds),
        (1, 0),
        "the last holder's leaving dropped it"
    );
}

#[tokio::test]
async fn a_refresh_says_whether_it_asked_for_the_poll() {
    let bench = Bench::start().await;
    assert!(!bench.feeds.refresh(&"nobody".to_string()), "on no feed");
    let mut answers =
        bench
            .feeds
            .subscribe("first".into(), bench.target(1000), bench.settled(json!({})));
    bench.feeds.subscribe(
        "second".into(),
        bench.target(1000),
        bench.settled(json!({})),
    );
    answer_at_least(&mut answers, 1).await;
    // The test's runtime runs one task at a time: the poll loop has not started the poll yet.
    assert!(
        bench.feeds.refresh(&"first".to_string()),
        "asked for the poll"
    );
    assert!(!bench.feeds.refresh(&"second".to_string()), "already asked");
    answer_at_least(&mut answers, 2).await;
    assert!(
        bench.feeds.refresh(&"second".to_string()),
        "that poll started: a new one"
    );
}
