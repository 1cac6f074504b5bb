//! Hostile input and limits: the status stays under 256 KiB whatever upstream lists, and one
//! hostile object or upstream (durations no calendar holds, a bad `projectId`, 9,000 task names
//! on one page, a 1.5 MiB error message) stalls on its own, naming its field, without taking the
//! operator down for the others.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::SETTLED_SCENARIO;
use crate::support::operator::wait_until;
use crate::support::sim_process::SimProcess;
use crate::support::world::{World as Fixture, condition, credentials_secret, events_for, is};

#[tokio::test]
async fn status_stays_under_256_kib_with_200_large_tasks() {
    let big = "x".repeat(20_000);
    let mut yaml = String::from("tasks:\n");
    for i in 0..300 {
        yaml.push_str(&format!(
            "  - name: EXTEND\n    createdAt: \"-{}m\"\n    status: SUCCESS\n    params: \"{big}\"\n    details: {{node_name: \"{big}\", rename_commands: [\"{big}\", \"{big}\"]}}\n",
            i + 1
        ));
    }
    let f = Fixture::new("big-status", &yaml, true).await;
    let _controller = f.controller(&[]);
    f.create("big", json!({"maxTasks": 200})).await;
    let ready = wait_until(&f.api, "big", Duration::from_secs(60), "Ready", |o| {
        is(o, "Ready", "True")
    })
    .await;
    let status = ready.status.unwrap();
    let bytes = serde_json::to_vec(&status).unwrap().len();
    assert!(bytes < 256 * 1024, "status is {bytes} bytes");
    assert_eq!(status.matched_count, Some(300));
    assert!(!status.tasks.is_empty());
}

/// A 200 answer from a hostile upstream: `names` distinct task names of CJK text (three bytes a
/// character) with long fields, as one page.
fn hostile_page(names: usize) -> Value {
    let long = "任务".repeat(1_000);
    let tasks: Vec<Value> = (0..names)
        .map(|i| {
            json!({
                "id": format!("h{i}"), "name": format!("任务{i}"), "status": "EXECUTING",
                "created_at": "2026-11-27T08:00:00.000Z",
                "params": if i < 2 { long.clone() } else { String::new() },
            })
        })
        .collect();
    json!({"task_count": names, "tasks": tasks})
}

#[tokio::test]
async fn one_hostile_object_cannot_take_the_operator_down_for_the_others() {
    let f = Fixture::new("hostile", SETTLED_SCENARIO, true).await;
    let (client, ns, sim, api) = (&f.client, &f.ns, &f.sim, &f.api);
    sim.add_task(json!({"id": "swap-h", "name": "masterStandbySwapJob", "jobId": "job-h", "status": "EXECUTING"}));
    // Two hostile upstreams: one answers with 9,000 distinct task names on one page (the client refuses pages of over 10,000), one refuses every call
    // with a 1.5 MiB CJK error message.
    let flood = SimProcess::start(None, &[]);
    flood.inject_fault(json!({"count": 1000, "status": 200, "body": hostile_page(9_000)}));
    let refusing = SimProcess::start(None, &[]);
    let huge_message = "错误".repeat(256 * 1024);
    refusing.inject_fault(json!({"count": 1000, "status": 401,
        "body": {"error_code": "APIG.0301", "error_msg": huge_message}}));
    credentials_secret(client, ns, "bad-project", "../x", true).await;
    let mut controller = f.controller(&[]);

    // Durations the 1.20 apiserver accepts (it drops CEL) but no calendar can hold.
    let huge = "3000000000h";
    let hostile = [
        (
            "since",
            json!({"query": {"since": huge}}),
            "spec.query.since",
        ),
        ("interval", json!({"interval": huge}), "spec.interval"),
        (
            "active",
            json!({"activeInterval": huge}),
            "spec.activeInterval",
        ),
        (
            "timeout",
            json!({"waitFor": {"jobId": "j", "timeout": huge}}),
            "spec.waitFor.timeout",
        ),
        (
            "lookback",
            json!({"waitFor": {"name": "n", "lookback": huge}}),
            "spec.waitFor.lookback",
        ),
        (
            "project",
            json!({"credentialsSecretRef": {"name": "bad-project"}}),
            "Secret {ns}/bad-project key `projectId`",
        ),
    ];
    for (name, spec, _) in &hostile {
        f.create(&format!("hostile-{name}"), spec.clone()).await;
    }
    f.create(
        "flood",
        json!({"endpoint": flood.base_url(), "maxTasks": 200}),
    )
    .await;
    f.create("refused", json!({"endpoint": refusing.base_url()}))
        .await;
    f.create(
        "healthy",
        json!({"waitFor": {"source": "TaskList", "jobId": "job-h"}}),
    )
    .await;

    wait_until(api, "healthy", Duration::from_secs(30), "Pending", |o| {
        o.status
            .as_ref()
            .and_then(|s| s.wait_for.as_ref())
            .is_some_and(|w| w.status.as_deref() == Some("EXECUTING"))
    })
    .await;
    sim.set_status("swap-h", "SUCCESS");
    wait_until(api, "healthy", Duration::from_secs(30), "Complete", |o| {
        is(o, "Complete", "True")
    })
    .await;

    for (name, _, field) in &hostile {
        let field = field.replace("{ns}", ns);
        let object = wait_until(
            api,
            &format!("hostile-{name}"),
            Duration::from_secs(30),
            "Stalled naming the field",
            |o| condition(o, "Stalled").is_some_and(|c| c.0 == "True" && c.2.contains(&field)),
        )
        .await;
        assert!(is(&object, "Ready", "False"), "{name}");
    }

    let flooded = wait_until(api, "flood", Duration::from_secs(90), "synced", |o| {
        o.status
            .as_ref()
            .is_some_and(|s| s.last_sync_time.is_some())
    })
    .await;
    let bytes = serde_json::to_vec(flooded.status.as_ref().unwrap())
        .unwrap()
        .len();
    assert!(bytes < 256 * 1024, "status of {bytes} bytes");
    let status = flooded.status.as_ref().unwrap();
    assert_eq!(status.matched_count, Some(9_000));
    assert_eq!(status.latest.len(), 64);

    let refused = wait_until(api, "refused", Duration::from_secs(90), "Stalled", |o| {
        is(o, "Stalled", "True")
    })
    .await;
    let last_error = refused.status.as_ref().unwrap().last_error.clone().unwrap();
    assert!(last_error.error_msg.unwrap().len() <= 1024);
    assert!(last_error.message.len() <= 1024);
    let deadline = Instant::now() + Duration::from_secs(20);
    let stalled_event = loop {
        let events = events_for(client, ns, "refused").await;
        if let Some(event) = events
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Stalled"))
        {
            break event;
        }
        assert!(
            Instant::now() < deadline,
            "the Stalled event was not accepted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(stalled_event.note.unwrap().len() <= 1024);

    assert!(controller.is_running(), "the operator exited");
    let logs = controller.stop();
    assert!(!logs.contains("panicked"), "{logs}");
}
