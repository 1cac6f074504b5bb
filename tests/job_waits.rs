//! `waitFor.jobId` through the DCS job API (`ShowJobInfo`, `waitFor.source: Job`, the default)
//! against a real kube-apiserver + etcd, the simulator and the controller binary, each a real
//! process: one job feed per awaited job whatever the number of waiters, the job API's verdict
//! and reason, a job no list window holds, and the refusals only a person can fix.
//!
//! Jobs here are declared in the simulator without a task (`POST /_sim/jobs`) unless a test says
//! otherwise, so the task list has nothing running and is polled at `spec.interval`.

mod support;

use std::time::{Duration, Instant};

use dcs_task_operator::api::DcsTaskQuery;
use dcs_task_operator::sim::DEMO_PROJECT_ID;
use futures::{StreamExt, TryStreamExt};
use kube::api::{ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};
use support::operator::wait_until;
use support::world::{World, condition, is, query, reasons};

/// How long any one step may take on a slow, shared machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// A world whose simulator's clock is past the demo's own timelines (nothing in the task list
/// is running) and which holds `jobs` (id, status) without tasks.
async fn world_with_jobs(prefix: &str, jobs: &[(&str, &str)]) -> World {
    let world = World::demo(prefix).await;
    world.sim.advance_clock("1h");
    for (id, status) in jobs {
        world
            .sim
            .add_job(json!({"id": id, "jobType": "masterStandbySwapJob", "status": status}));
    }
    world
}

/// `ShowJobInfo` requests the simulator answered for `job`, and all of them together.
fn job_calls(world: &World, job: &str) -> u64 {
    world.sim.stats()["jobs"]["projects"][DEMO_PROJECT_ID]["byJob"][job]
        .as_u64()
        .unwrap_or(0)
}

fn wait_status(object: &DcsTaskQuery) -> Value {
    serde_json::to_value(object.status.as_ref().and_then(|s| s.wait_for.as_ref()))
        .unwrap_or_default()
}

async fn all_objects(world: &World) -> Vec<DcsTaskQuery> {
    world.api.list(&ListParams::default()).await.unwrap().items
}

/// Waits until `count` objects pass `check`; fails saying how many did (`what`) otherwise.
async fn until_all(world: &World, count: usize, what: &str, check: impl Fn(&DcsTaskQuery) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let passed = all_objects(world).await.iter().filter(|o| check(o)).count();
        if passed == count {
            return;
        }
        assert!(Instant::now() < deadline, "{passed} of {count} {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until `name` is `Stalled=True`; the object, and the condition's reason and message.
async fn stalled(world: &World, name: &str) -> (DcsTaskQuery, String, String) {
    let object = wait_until(&world.api, name, PATIENCE, "Stalled", |o| {
        is(o, "Stalled", "True")
    })
    .await;
    let (_, reason, message, _) = condition(&object, "Stalled").unwrap();
    (object, reason, message)
}

#[tokio::test]
async fn a_hundred_objects_awaiting_three_jobs_make_three_job_calls_per_active_interval() {
    let jobs = ["job-scale-a", "job-scale-b", "job-scale-c"];
    let world = world_with_jobs("job-scale", &jobs.map(|id| (id, "RUNNING"))).await;
    let controller = world.controller(&["--rate-limit", "50"]);
    let objects: Vec<DcsTaskQuery> = (0..100)
        .map(|i| {
            query(
                &format!("w{i:03}"),
                &world.sim,
                json!({"waitFor": {"jobId": jobs[i % 3]}}),
            )
        })
        .collect();
    let params = PostParams::default();
    for created in futures::future::join_all(
        objects
            .iter()
            .map(|object| world.api.create(&params, object)),
    )
    .await
    {
        created.unwrap();
    }
    until_all(&world, 100, "saw their job RUNNING", |o| {
        wait_status(o)["status"] == "RUNNING"
    })
    .await;
    // One task feed and one feed per job (the gauge is refreshed every 15 s).
    let deadline = Instant::now() + PATIENCE;
    while controller.metric("dcs_task_operator_upstream_feeds").await != 4.0 {
        assert!(
            Instant::now() < deadline,
            "feeds: {}",
            controller.metric("dcs_task_operator_upstream_feeds").await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Five active intervals (2 s, ±10% jitter): about five calls per job, whatever the number
    // of waiters; the task list (nothing running in it) at spec.interval (10 s), about once.
    let before: Vec<u64> = jobs.iter().map(|job| job_calls(&world, job)).collect();
    let lists_before = world.sim.total_requests();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let per_job: Vec<u64> = jobs
        .iter()
        .zip(&before)
        .map(|(job, before)| job_calls(&world, job) - before)
        .collect();
    let lists = world.sim.total_requests() - lists_before;
    for calls in &per_job {
        assert!(
            (3..=7).contains(calls),
            "job calls in 5 active intervals: {per_job:?}"
        );
    }
    assert!(lists <= 2, "task-list calls in 10 s: {lists}");
    let writes_before = controller
        .metric("dcs_task_operator_status_writes_total")
        .await;

    for job in jobs {
        world.sim.set_job_status(job, "SUCCESS");
    }
    until_all(&world, 100, "completed", |o| is(o, "Complete", "True")).await;
    let writes = controller
        .metric("dcs_task_operator_status_writes_total")
        .await
        - writes_before;
    assert!(writes <= 110.0, "{writes} status writes for 100 verdicts");
    let done = all_objects(&world).await;
    let wait = wait_status(&done[0]);
    assert_eq!(wait["status"], "SUCCESS", "{wait}");
    assert_eq!(wait["jobType"], "masterStandbySwapJob", "{wait}");
    assert!(wait["endedAt"].is_string(), "{wait}");

    // The jobs ended: their feeds stop, and nothing asks the job API again.
    let after: Vec<u64> = jobs.iter().map(|job| job_calls(&world, job)).collect();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let later: Vec<u64> = jobs.iter().map(|job| job_calls(&world, job)).collect();
    assert_eq!(after, later, "job feeds outlived their verdicts");
    eprintln!(
        "figures: 100 waiters on 3 jobs -> {per_job:?} job calls and {lists} task-list call(s) in 5 active intervals; {writes} status writes for 100 verdicts"
    );
}

#[tokio::test]
async fn a_failed_job_fails_the_wait_with_its_reason_and_one_event() {
    let world = world_with_jobs("job-fail", &[("job-fail-1", "RUNNING")]).await;
    let _controller = world.controller(&[]);
    world
        .create("swap", json!({"waitFor": {"jobId": "job-fail-1"}}))
        .await;
    wait_until(&world.api, "swap", PATIENCE, "RUNNING", |o| {
        wait_status(o)["status"] == "RUNNING"
    })
    .await;
    world.sim.change_job(
        "job-fail-1",
        json!({"status": "FAIL", "failReason": "the standby node is not ready"}),
    );
    let failed = wait_until(&world.api, "swap", PATIENCE, "Failed", |o| {
        is(o, "Failed", "True")
    })
    .await;
    let (_, reason, message, _) = condition(&failed, "Failed").unwrap();
    assert_eq!(reason, "TaskFailed");
    assert!(
        message.contains("FAIL") && message.contains("the standby node is not ready"),
        "{message}"
    );
    let wait = wait_status(&failed);
    assert_eq!(
        (&wait["phase"], &wait["status"], &wait["failReason"]),
        (
            &json!("Failed"),
            &json!("FAIL"),
            &json!("the standby node is not ready")
        ),
        "{wait}"
    );
    assert!(is(&failed, "Complete", "False") && is(&failed, "Stalled", "True"));
    let deadline = Instant::now() + PATIENCE;
    loop {
        let events = reasons(&world.events("swap", "TaskFailed").await);
        if events.get("TaskFailed") == Some(&1) {
            break;
        }
        assert!(Instant::now() < deadline, "{events:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_job_outside_every_list_window_completes_and_kubectl_wait_returns() {
    let world = world_with_jobs("job-window", &[("job-window-1", "RUNNING")]).await;
    let _controller = world.controller(&[]);
    // A window years ago: the task list never holds this job, the job API does.
    world
        .create(
            "swap",
            json!({"query": {"startTime": "20200101000000", "endTime": "20200102000000"},
                   "waitFor": {"jobId": "job-window-1", "timeout": "10m"}}),
        )
        .await;
    let pending = wait_until(&world.api, "swap", PATIENCE, "RUNNING", |o| {
        wait_status(o)["status"] == "RUNNING"
    })
    .await;
    assert!(is(&pending, "Reconciling", "True") && is(&pending, "Complete", "False"));
    assert_eq!(pending.status.as_ref().unwrap().matched_count, Some(0));
    world.sim.set_job_status("job-window-1", "SUCCESS");
    world.kubectl_wait("swap", "Complete", "60s");
    let done = world.api.get("swap").await.unwrap();
    let wait = wait_status(&done);
    assert_eq!(
        (&wait["phase"], &wait["jobId"]),
        (&json!("Succeeded"), &json!("job-window-1")),
        "{wait}"
    );
    assert!(wait["beganAt"].is_string(), "{wait}");
    assert!(is(&done, "Ready", "True"));
}

#[tokio::test]
async fn a_403_on_the_job_api_stalls_naming_dcs_job_get_and_source_task_list_works() {
    let world = World::demo("job-forbidden").await;
    world.sim.advance_clock("1h");
    world.job("job-403", "SUCCESS");
    world
        .sim
        .inject_fault(json!({"count": 1000, "status": 403, "api": "jobs",
        "body": {"error_code": "DCS.4003", "error_msg": "no permission dcs:job:get"}}));
    let _controller = world.controller(&[]);
    world
        .create("q", json!({"waitFor": {"jobId": "job-403"}}))
        .await;
    let (stalled, reason, message) = stalled(&world, "q").await;
    assert_eq!(reason, "JobAccessDenied");
    assert!(
        message.contains("dcs:job:get")
            && message.contains("spec.waitFor.source: TaskList")
            && message.contains("job-403"),
        "{message}"
    );
    assert!(is(&stalled, "Reconciling", "False"));
    let last_error = &stalled.status.as_ref().unwrap().last_error;
    assert_eq!(last_error.as_ref().and_then(|e| e.http_status), Some(403));
    // A refusal only a person can fix is not hammered.
    let calls = job_calls(&world, "job-403");
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        job_calls(&world, "job-403") <= calls + 1,
        "polled every activeInterval"
    );

    // The way out the message names: the task list, which this policy may read.
    world
        .api
        .patch(
            "q",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"waitFor": {"source": "TaskList"}}})),
        )
        .await
        .unwrap();
    let done = wait_until(&world.api, "q", PATIENCE, "Complete", |o| {
        is(o, "Complete", "True") && o.status.as_ref().unwrap().observed_generation == Some(2)
    })
    .await;
    assert_eq!(wait_status(&done)["taskId"], "task-job-403");
}

#[tokio::test]
async fn a_job_the_api_does_not_know_stalls_as_job_not_found_after_one_retry() {
    let world = world_with_jobs("job-unknown", &[]).await;
    let _controller = world.controller(&[]);
    world
        .create("q", json!({"waitFor": {"jobId": "job-nobody-started"}}))
        .await;
    let (stalled, reason, message) = stalled(&world, "q").await;
    assert_eq!(reason, "JobNotFound");
    assert!(message.contains("job-nobody-started"), "{message}");
    assert_eq!(
        job_calls(&world, "job-nobody-started"),
        2,
        "asked once, then once more"
    );
    assert!(is(&stalled, "Complete", "Unknown"));
}

/// Issue 18's window of the job source: the task list shows the awaited job's task ended before
/// the job feed has seen the job end. The waiter woken by that listing asks the job API again
/// within its own reconcile (here the answer takes 1 s), so its verdict is written before the
/// refresh of a settled object woken by the same listing; without that, the waiter's reconcile
/// would end with no write, and the refresh would take the apiserver while the verdict waits.
#[tokio::test]
async fn a_waiter_seeing_its_job_end_in_the_list_first_writes_its_verdict_before_refreshes() {
    let world = World::demo("job-behind").await;
    world.sim.advance_clock("1h");
    world
        .sim
        .add_task(json!({"id": "swap-behind", "name": "masterStandbySwapJob",
                              "jobId": "job-behind-1", "status": "EXECUTING"}));
    let _controller = world.controller(&[]);
    // Nothing polls by itself during the test: every poll below is one the test causes.
    let slow = |extra: Value| {
        let mut spec = json!({"interval": "1h", "activeInterval": "10m"});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        spec
    };
    world
        .create("swap", slow(json!({"waitFor": {"jobId": "job-behind-1"}})))
        .await;
    world.create("watch", slow(json!({}))).await;
    wait_until(&world.api, "swap", PATIENCE, "RUNNING", |o| {
        wait_status(o)["status"] == "RUNNING"
    })
    .await;
    wait_until(&world.api, "watch", PATIENCE, "Ready", |o| {
        is(o, "Ready", "True")
    })
    .await;
    let since = world
        .api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut changes = world
        .api
        .watch(&WatchParams::default().timeout(290), &since)
        .await
        .unwrap()
        .boxed();

    // The task (and so the job the job API derives from it) ends; the job API's next answer
    // takes a second.
    world.sim.set_status("swap-behind", "SUCCESS");
    world
        .sim
        .inject_fault(json!({"count": 1, "latency": "1s", "api": "jobs"}));
    // A new waiter on the same listing makes the task feed poll, its wait having started after
    // the feed's last answer (which came before `watch` was Ready). Its start is its creation
    // time, in whole seconds: created a second later, it is surely after that answer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    world
        .create(
            "trigger",
            slow(json!({"waitFor": {"source": "TaskList", "jobId": "job-behind-1"}})),
        )
        .await;

    let mut order = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while order.len() < 2 {
        let event = tokio::time::timeout_at(deadline.into(), changes.try_next())
            .await
            .unwrap_or_else(|_| panic!("only {order:?} written within the patience"))
            .unwrap()
            .unwrap_or_else(|| panic!("the watch ended with only {order:?} written"));
        let WatchEvent::Modified(object) = event else {
            continue;
        };
        let name = object.metadata.name.clone().unwrap_or_default();
        let seen = match name.as_str() {
            "swap" => is(&object, "Complete", "True"),
            "watch" => object.status.as_ref().is_some_and(|status| {
                status
                    .tasks
                    .iter()
                    .any(|task| task.status.as_deref() == Some("SUCCESS"))
            }),
            _ => false,
        };
        if seen && !order.contains(&name) {
            order.push(name);
        }
    }
    assert_eq!(order, ["swap", "watch"], "the verdict goes first");
    let swap = world.api.get("swap").await.unwrap();
    assert_eq!(wait_status(&swap)["status"], "SUCCESS");
}
