//! Properties of the whole pure pipeline, spec -> validate -> plan -> evaluate -> status, over
//! arbitrary input: nothing a tenant writes or the upstream sends may panic the operator, and
//! whatever passes validation is within the documented bounds.

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;

use super::plan::{PlanContext, plan};
use super::report::{MAX_MESSAGE_BYTES, PollOutcome, StatusContext, build_status};
use super::{evaluate, validate};
use crate::api::DcsTaskQuerySpec;
use crate::api::limits;
use crate::dcs::{CenterTask, TaskListing, TaskTime};

/// Durations as tenants might write them, valid or not: plain units, compound, huge, garbage.
fn duration_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            0u64..100_000,
            prop::sample::select(vec!["ms", "s", "m", "h"])
        )
            .prop_map(|(n, unit)| format!("{n}{unit}")),
        (
            any::<u64>(),
            prop::sample::select(vec!["ms", "s", "m", "h"])
        )
            .prop_map(|(n, unit)| format!("{n}{unit}")),
        (0u32..10_000, 0u32..60).prop_map(|(h, m)| format!("{h}h{m}m")),
        "[0-9hms]{0,40}",
        any::<String>(),
    ]
}

/// Any instant chrono can hold (the year -262143 to 262142), weighted towards the present.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        (1_600_000_000i64..2_000_000_000).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap()),
        any::<i64>().prop_map(|ms| {
            Utc.timestamp_millis_opt(ms)
                .single()
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        }),
        Just(DateTime::<Utc>::MIN_UTC),
        Just(DateTime::<Utc>::MAX_UTC),
    ]
}

fn query_time_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{14}",
        "2026[01][0-9][0-3][0-9][0-2][0-9][0-5][0-9][0-5][0-9]",
        any::<String>()
    ]
}

fn spec_json() -> impl Strategy<Value = serde_json::Value> {
    (
        (
            prop::option::of(duration_text()),
            prop::option::of(duration_text()),
            prop::option::of(duration_text()),
            prop::option::of(duration_text()),
            prop::option::of(duration_text()),
        ),
        (
            prop::option::of(query_time_text()),
            prop::option::of(query_time_text()),
            any::<i32>(),
            prop::option::of(any::<i32>()),
            any::<i32>(),
            any::<i32>(),
            any::<bool>(),
        ),
        prop::option::of("[a-zA-Z]{1,8}"),
        prop::option::of(instant()),
    )
        .prop_map(
            |(
                (interval, active, since, lookback, timeout),
                (start, end, offset, limit, max_pages, max_tasks, all_pages),
                wait_name,
                created_after,
            )| {
                let mut spec = serde_json::json!({
                    "region": "cn-north-4",
                    "maxTasks": max_tasks,
                    "query": {"offset": offset, "maxPages": max_pages, "allPages": all_pages},
                });
                let set = |value: &mut serde_json::Value, key: &str, text: Option<String>| {
                    if let Some(text) = text {
                        value[key] = text.into();
                    }
                };
                set(&mut spec, "interval", interval);
                set(&mut spec, "activeInterval", active);
                set(&mut spec["query"], "since", since);
                set(&mut spec["query"], "startTime", start);
                set(&mut spec["query"], "endTime", end);
                if let Some(limit) = limit {
                    spec["query"]["limit"] = limit.into();
                }
                if let Some(name) = wait_name {
                    let mut wait = serde_json::json!({"name": name});
                    set(&mut wait, "lookback", lookback);
                    set(&mut wait, "timeout", timeout);
                    if let Some(at) = created_after {
                        wait["createdAfter"] = at.to_rfc3339().into();
                    }
                    spec["waitFor"] = wait;
                }
                spec
            },
        )
}

fn task() -> impl Strategy<Value = CenterTask> {
    (
        prop::option::of(any::<String>()),
        prop::option::of("[a-zA-Z]{1,6}"),
        prop::option::of(prop::sample::select(vec![
            "SUCCESS",
            "FAILED",
            "EXECUTING",
            "DELETED",
            "",
        ])),
        prop::option::of(prop_oneof![
            instant().prop_map(|t| t.to_rfc3339()),
            any::<String>()
        ]),
        prop::option::of(any::<String>()),
    )
        .prop_map(|(id, name, status, created, params)| CenterTask {
            id,
            name,
            status: status.map(str::to_string),
            created_at: created.map(TaskTime::new),
            params,
            ..CenterTask::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_spec_panics_and_every_accepted_duration_is_bounded(
        spec in spec_json(),
        now in instant(),
        created in instant(),
        tasks in prop::collection::vec(task(), 0..20),
        task_count in prop::option::of(any::<u64>()),
        complete in any::<bool>(),
    ) {
        let Ok(spec) = serde_json::from_value::<DcsTaskQuerySpec>(spec) else {
            return Ok(());
        };
        if let Ok(valid) = validate(&spec) {
            prop_assert!(valid.interval <= limits::MAX_INTERVAL);
            prop_assert!(valid.active_interval <= limits::MAX_INTERVAL);
            prop_assert!(valid.since.is_none_or(|d| d <= limits::MAX_LOOKBACK));
            prop_assert!(valid.lookback.is_none_or(|d| d <= limits::MAX_LOOKBACK));
            prop_assert!(valid.timeout.is_none_or(|d| d <= limits::MAX_WAIT_TIMEOUT));
        }
        let context = PlanContext { now, wait_started_at: created };
        let status_context = StatusContext {
            previous: None,
            generation: Some(1),
            has_wait: spec.wait_for.is_some(),
            wait_started_at: created,
            wait_deadline: None,
            credentials_revision: None,
            last_good_at: None,
            answered_at: None,
            now,
        };
        match plan(&spec, &context) {
            Err(errors) => {
                let status = build_status(&status_context, PollOutcome::InvalidSpec(&errors));
                for condition in &status.conditions {
                    prop_assert!(condition.message.len() <= MAX_MESSAGE_BYTES);
                }
            }
            Ok(plan) => {
                let listing = TaskListing { task_count, tasks, pages: 1, complete, fetched_at: Some(now) };
                let evaluation = evaluate(&plan, &listing, now);
                prop_assert!(evaluation.tasks.len() <= plan.max_tasks);
                let status = build_status(&status_context, PollOutcome::Fetched(&evaluation));
                for condition in &status.conditions {
                    prop_assert!(condition.message.len() <= MAX_MESSAGE_BYTES);
                }
            }
        }
    }

    #[test]
    fn duration_parsing_never_panics(text in any::<String>(), digits in "[0-9]{1,30}(ms|s|m|h)") {
        let _ = crate::duration::parse(&text);
        if let Ok(parsed) = crate::duration::parse(&digits) {
            prop_assert_eq!(crate::duration::parse(&crate::duration::format(parsed)), Ok(parsed));
        }
    }
}
