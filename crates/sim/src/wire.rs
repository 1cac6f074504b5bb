//! JSON rendering of list answers, job answers and error bodies, built from the simulator's own
//! task and job representation with the field names of the documentation pages, and the HTTP
//! answer that carries a JSON body ([`json`]), for every handler.
//!
//! Deliberately independent of `dcs_cloud::model`: if the client's decoding had a bug, a
//! server that serialised the same types would share it and the tests would pass anyway.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::limits::add_saturating;
use super::scenario::TaskCountEncoding;
use super::store::{StoredJob, StoredTask};

/// An answer with `status` and `body` as JSON.
pub(super) fn json(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// A DCS error body: `{"error_code", "error_msg", "error_ext_msg": null}`.
pub(super) fn error_body(code: &str, message: &str) -> Value {
    json!({
        "error_code": code,
        "error_msg": message,
        "error_ext_msg": null,
    })
}

/// `2020-06-17T07:38:42.503Z`: UTC, milliseconds, `Z`.
pub(super) fn timestamp(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// One task as the API shows it at sim time `now`. Optional fields the scenario left unset are
/// omitted; `updated_at` is the time of the last status change.
pub(super) fn task(task: &StoredTask, now: DateTime<Utc>) -> Value {
    let status = task.timeline.at(task.elapsed(now));
    let mut object = Map::new();
    object.insert("id".into(), Value::String(task.id.clone()));
    object.insert("name".into(), Value::String(task.name.clone()));
    if let Some(details) = &task.details {
        object.insert("details".into(), details.clone());
    }
    let mut optional = |key: &str, value: &Option<String>| {
        if let Some(value) = value {
            object.insert(key.into(), Value::String(value.clone()));
        }
    };
    optional("user_name", &task.user_name);
    optional("user_id", &task.user_id);
    optional("params", &task.params);
    optional("error_code", &task.error_code);
    optional("job_id", &task.job_id);
    object.insert("status".into(), Value::String(status.status.to_string()));
    object.insert("created_at".into(), timestamp(task.created_at).into());
    object.insert(
        "updated_at".into(),
        timestamp(add_saturating(task.created_at, status.since)).into(),
    );
    if let Some(enable_show) = task.enable_show {
        object.insert("enable_show".into(), Value::Bool(enable_show));
    }
    Value::Object(object)
}

/// The job statuses that end a job, as `ShowJobInfo` spells them.
pub(super) fn is_terminal_job_status(status: &str) -> bool {
    matches!(status, "SUCCESS" | "FAIL")
}

/// The 200 body of `GET /v2/{project_id}/jobs/{job_id}` at sim time `now`, as the SDK's
/// `ShowJobInfoResponse` models it: times are ms-epoch strings; `end_time` is the time of the
/// last status change once the job has ended and `null` before; `fail_reason` is `null` unless
/// the job is `FAIL`; an unset `job_type` is omitted.
pub(super) fn job(job: &StoredJob, now: DateTime<Utc>) -> Value {
    let status = job.timeline.at(job.elapsed(now));
    let terminal = is_terminal_job_status(status.status);
    let millis = |time: DateTime<Utc>| Value::String(time.timestamp_millis().to_string());
    let mut object = Map::new();
    object.insert("job_id".into(), Value::String(job.id.clone()));
    if let Some(job_type) = &job.job_type {
        object.insert("job_type".into(), Value::String(job_type.clone()));
    }
    object.insert("status".into(), Value::String(status.status.to_string()));
    object.insert("begin_time".into(), millis(job.began_at));
    object.insert(
        "end_time".into(),
        if terminal {
            millis(add_saturating(job.began_at, status.since))
        } else {
            Value::Null
        },
    );
    let fail_reason = job
        .fail_reason
        .clone()
        .filter(|_| status.status == "FAIL")
        .map_or(Value::Null, Value::String);
    object.insert("fail_reason".into(), fail_reason);
    Value::Object(object)
}

/// The 200 body of `GET /v2/{project_id}/tasks`.
pub(super) fn task_list(total: usize, tasks: Vec<Value>, encoding: TaskCountEncoding) -> Value {
    let task_count = match encoding {
        TaskCountEncoding::String => Value::String(total.to_string()),
        TaskCountEncoding::Number => Value::from(total),
    };
    json!({ "task_count": task_count, "tasks": tasks })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;
    use chrono::TimeDelta;

    fn stored(yaml: &str, base: DateTime<Utc>) -> StoredTask {
        let spec = Scenario::from_yaml(yaml).unwrap().tasks.remove(0);
        StoredTask::from_spec(spec, base)
    }

    #[test]
    fn renders_every_documented_field_verbatim() {
        let base: DateTime<Utc> = "2020-06-17T07:38:42.503Z".parse().unwrap();
        let task = stored(
            r#"
tasks:
  - id: 8abf6e1e72c12e7c0172c15b508500aa
    name: EXTEND
    jobId: 8abf6e1e87bce0740187bd32748b0530
    userName: paas_dcs
    userId: d53977d1adfb49c5b025ba7d33a13fd7
    params: '{"capacity":0.25}'
    errorCode: "111400063"
    enableShow: true
    details: {old_capacity: 0.125, new_capacity: "0.25", old_replica_num: 2}
    timeline: [{status: EXECUTING, for: 3s500ms}, {status: SUCCESS}]
"#,
            base,
        );
        assert_eq!(
            super::task(&task, base + TimeDelta::seconds(10)),
            json!({
                "id": "8abf6e1e72c12e7c0172c15b508500aa",
                "name": "EXTEND",
                "job_id": "8abf6e1e87bce0740187bd32748b0530",
                "user_name": "paas_dcs",
                "user_id": "d53977d1adfb49c5b025ba7d33a13fd7",
                "params": "{\"capacity\":0.25}",
                "error_code": "111400063",
                "enable_show": true,
                "details": {"old_capacity": 0.125, "new_capacity": "0.25", "old_replica_num": 2},
                "status": "SUCCESS",
                "created_at": "2020-06-17T07:38:42.503Z",
                "updated_at": "2020-06-17T07:38:46.003Z"
            })
        );
        assert_eq!(super::task(&task, base)["status"], "EXECUTING");
        assert_eq!(
            super::task(&task, base)["updated_at"],
            "2020-06-17T07:38:42.503Z"
        );
    }

    #[test]
    fn unset_fields_are_omitted_and_null_details_stay_null() {
        let base: DateTime<Utc> = "2024-01-01T00:00:00Z".parse().unwrap();
        let bare = super::task(
            &stored("tasks: [{id: x, name: modify, status: SUCCESS}]", base),
            base,
        );
        let keys: Vec<_> = bare.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["created_at", "id", "name", "status", "updated_at"]);
        assert_eq!(bare["created_at"], "2024-01-01T00:00:00.000Z");
        let null = super::task(
            &stored(
                "tasks: [{id: x, name: modify, status: SUCCESS, details: null}]",
                base,
            ),
            base,
        );
        assert_eq!(null["details"], Value::Null);
        assert!(null.as_object().unwrap().contains_key("details"));
    }

    #[test]
    fn the_ends_of_the_calendar_render() {
        let yaml = "tasks: [{id: x, name: n, timeline: [{status: A, for: 876600h}, {status: B}]}]";
        let (first, last) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        let oldest = stored(yaml, first);
        let rendered = super::task(&oldest, last);
        assert_eq!(rendered["status"], "B");
        assert_eq!(
            rendered["updated_at"],
            timestamp(first + TimeDelta::days(36_525)).as_str()
        );
        let newest = stored(yaml, last);
        let rendered = super::task(&newest, first);
        assert_eq!(rendered["status"], "A");
        assert_eq!(rendered["updated_at"], rendered["created_at"]);
    }

    #[test]
    fn jobs_render_as_the_sdk_models_them() {
        let base: DateTime<Utc> = "2023-05-15T22:59:05.379Z".parse().unwrap();
        let spec = Scenario::from_yaml(
            "jobs: [{id: ff8080818822bbf70188235afc24141a, jobType: masterStandbySwapJob, \
             timeline: [{status: RUNNING, for: 2s869ms}, {status: SUCCESS}]}]",
        )
        .unwrap()
        .jobs
        .remove(0);
        let job = StoredJob::from_spec(spec, base);
        assert_eq!(
            super::job(&job, base + TimeDelta::seconds(10)),
            json!({
                "job_id": "ff8080818822bbf70188235afc24141a",
                "job_type": "masterStandbySwapJob",
                "status": "SUCCESS",
                "begin_time": "1684191545379",
                "end_time": "1684191548248",
                "fail_reason": null
            })
        );
        let running = super::job(&job, base);
        assert_eq!(
            (&running["status"], &running["end_time"]),
            (&json!("RUNNING"), &Value::Null)
        );

        let spec = Scenario::from_yaml(
            "jobs: [{id: j, timeline: [{status: INIT, for: 1s}, {status: FAIL}], failReason: boom}]",
        )
        .unwrap()
        .jobs
        .remove(0);
        let failing = StoredJob::from_spec(spec, base);
        let init = super::job(&failing, base);
        assert_eq!(init["fail_reason"], Value::Null);
        assert!(init.get("job_type").is_none());
        let failed = super::job(&failing, base + TimeDelta::seconds(1));
        assert_eq!(
            (&failed["status"], &failed["fail_reason"]),
            (&json!("FAIL"), &json!("boom"))
        );
        assert_eq!(failed["end_time"], "1684191546379");
    }

    #[test]
    fn task_count_follows_the_encoding() {
        assert_eq!(
            task_list(2500, vec![], TaskCountEncoding::String),
            json!({"task_count": "2500", "tasks": []})
        );
        assert_eq!(
            task_list(2500, vec![], TaskCountEncoding::Number),
            json!({"task_count": 2500, "tasks": []})
        );
    }

    #[test]
    fn error_bodies_have_the_dcs_shape() {
        assert_eq!(
            error_body("111400063", "Invalid limit parameter in the request."),
            json!({
                "error_code": "111400063",
                "error_msg": "Invalid limit parameter in the request.",
                "error_ext_msg": null
            })
        );
    }
}
