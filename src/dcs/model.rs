//! The `ListCenterTask` wire model, decoded leniently.
//!
//! The SDKs type `task_count`, `old_capacity` and `new_capacity` as strings while the published
//! examples send numbers, and DCS tells clients to tolerate extra fields. So every field here
//! is optional, accepts either JSON type where the documents disagree, ignores unknown fields,
//! and a field with an unexpected shape becomes "absent" instead of failing the whole page.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::time::TaskTime;

/// One page of `GET /v2/{project_id}/tasks`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ListCenterTaskResponse {
    /// Total tasks in the window (not the page size). String or number on the wire.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub task_count: Option<u64>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub tasks: Vec<CenterTask>,
}

/// A task-center task (`ListCenterTasksResp`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct CenterTask {
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient_details")]
    pub details: Option<TaskDetails>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub user_name: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub user_id: Option<String>,
    /// JSON in a string.
    #[serde(default, deserialize_with = "lenient_string")]
    pub params: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub created_at: Option<TaskTime>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub updated_at: Option<TaskTime>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub error_code: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub enable_show: Option<bool>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub job_id: Option<String>,
}

/// `DetailsBody`: what changed, for the task kinds that report it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct TaskDetails {
    #[serde(default, deserialize_with = "lenient_string")]
    pub old_capacity: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub new_capacity: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub enable_public_ip: Option<bool>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub public_ip_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub public_ip_address: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub enable_ssl: Option<bool>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub old_cache_mode: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub new_cache_mode: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub old_resource_spec_code: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub new_resource_spec_code: Option<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub old_replica_num: Option<i64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub new_replica_num: Option<i64>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub old_cache_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub new_cache_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub replica_ip: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub replica_az: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub group_name: Option<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub old_port: Option<i64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub new_port: Option<i64>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_only_adjust_charging: Option<bool>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub account_name: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub source_ip: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub target_ip: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub node_name: Option<String>,
    #[serde(default, deserialize_with = "lenient_string_list")]
    pub rename_commands: Vec<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub updated_config_length: Option<i64>,
}

/// A DCS or APIG error body: `{error_code, error_msg}` or the older `{code, message}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ErrorBody {
    #[serde(default, alias = "code", deserialize_with = "lenient_string")]
    pub error_code: Option<String>,
    #[serde(default, alias = "message", deserialize_with = "lenient_string")]
    pub error_msg: Option<String>,
}

impl ErrorBody {
    /// Finds the error fields at the top level or one object down (some gateways nest them).
    pub fn from_json(body: &[u8]) -> Option<Self> {
        let value: Value = serde_json::from_slice(body).ok()?;
        let found = |value: &Value| {
            ErrorBody::deserialize(value)
                .ok()
                .filter(|e| e.error_code.is_some() || e.error_msg.is_some())
        };
        found(&value).or_else(|| value.as_object()?.values().find_map(found))
    }
}

fn scalar_to_string(value: Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.and_then(scalar_to_string))
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(lenient_i64(d)?.and_then(|n| u64::try_from(n).ok()))
}

fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(number)) => number.as_i64(),
        Some(Value::String(text)) => text.trim().parse().ok(),
        _ => None,
    })
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Bool(flag)) => Some(flag),
        Some(Value::String(text)) => text.trim().parse().ok(),
        _ => None,
    })
}

fn lenient_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TaskTime>, D::Error> {
    Ok(lenient_string(d)?.map(TaskTime::new))
}

fn lenient_string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Array(items)) => items.into_iter().filter_map(scalar_to_string).collect(),
        _ => Vec::new(),
    })
}

fn lenient_details<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TaskDetails>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(value @ Value::Object(_)) => TaskDetails::deserialize(value).ok(),
        _ => None,
    })
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<CenterTask>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| CenterTask::deserialize(item).unwrap_or_default())
            .collect(),
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documentation's own example: `task_count` and capacities as numbers, `details: null`,
    /// a name (`dcsExportJob`) the docs do not list.
    #[test]
    fn decodes_the_documented_example() {
        let body = r#"{ "task_count" : 2, "tasks" : [ { "id" : "8abf6e1e72c12e7c0172c15b508500aa", "name" : "ChangeInstanceSpec", "job_id" : "8abf6e1e87bce0740187bd32748b0530", "user_name" : "paas_dcs_a00421997_02", "user_id" : "d53977d1adfb49c5b025ba7d33a13fd7", "details" : { "old_cache_mode" : "single", "new_cache_mode" : "single", "old_capacity" : 0.125, "new_capacity" : 0.25 }, "status" : "SUCCESS", "created_at" : "2023-06-17T08:18:06.597Z", "updated_at" : "2023-06-17T08:18:10.106Z", "error_code" : "111400063", "enable_show" : true }, { "id" : "ff80808188bfde180188c36bb9ca4a30", "name" : "dcsExportJob", "job_id" : "ff80808188bfde180188c36bb9c44a2f", "user_name" : "paas_dcs_004_01", "user_id" : "bb259bd2b8b644a1b4a573a20318af51", "details" : null, "status" : "SUCCESS", "created_at" : "2023-06-17T08:18:06.597Z", "updated_at" : "2023-06-17T08:18:10.106Z", "error_code" : "111400063", "enable_show" : true } ] }"#;
        let page: ListCenterTaskResponse = serde_json::from_str(body).unwrap();
        assert_eq!(page.task_count, Some(2));
        assert_eq!(page.tasks.len(), 2);
        let details = page.tasks[0].details.as_ref().unwrap();
        assert_eq!(details.old_capacity.as_deref(), Some("0.125"));
        assert_eq!(details.new_capacity.as_deref(), Some("0.25"));
        assert_eq!(page.tasks[1].details, None);
        assert_eq!(page.tasks[1].name.as_deref(), Some("dcsExportJob"));
        assert!(page.tasks[0].created_at.as_ref().unwrap().parsed.is_some());
    }

    #[test]
    fn accepts_strings_where_the_sdks_say_string() {
        let body = r#"{"task_count":"2500","tasks":[{"id":"a","details":{"old_capacity":"0.125","old_port":"6379","enable_ssl":"true"}}]}"#;
        let page: ListCenterTaskResponse = serde_json::from_str(body).unwrap();
        assert_eq!(page.task_count, Some(2500));
        let details = page.tasks[0].details.as_ref().unwrap();
        assert_eq!(details.old_capacity.as_deref(), Some("0.125"));
        assert_eq!(details.old_port, Some(6379));
        assert_eq!(details.enable_ssl, Some(true));
    }

    #[test]
    fn tolerates_missing_unknown_and_misshapen_fields() {
        let body = r#"{"extra":{"x":1},"tasks":[{"id":"a","status":["odd"],"created_at":"not a time","new_field":true,"details":"text"},{}]}"#;
        let page: ListCenterTaskResponse = serde_json::from_str(body).unwrap();
        assert_eq!(page.task_count, None);
        assert_eq!(page.tasks.len(), 2);
        assert_eq!(page.tasks[0].status, None);
        let created = page.tasks[0].created_at.as_ref().unwrap();
        assert_eq!((created.raw.as_str(), created.parsed), ("not a time", None));
        assert_eq!(page.tasks[0].details, None);
        assert_eq!(page.tasks[1], CenterTask::default());

        let empty: ListCenterTaskResponse =
            serde_json::from_str(r#"{"task_count":null,"tasks":null}"#).unwrap();
        assert_eq!(empty, ListCenterTaskResponse::default());
    }

    #[test]
    fn error_bodies_in_both_shapes() {
        let current =
            ErrorBody::from_json(br#"{"error_code":"APIG.0308","error_msg":"throttled"}"#).unwrap();
        assert_eq!(current.error_code.as_deref(), Some("APIG.0308"));
        let older = ErrorBody::from_json(
            br#"{"code":"111400086","message":"only master standby","ext_message":null}"#,
        )
        .unwrap();
        assert_eq!(older.error_code.as_deref(), Some("111400086"));
        assert_eq!(older.error_msg.as_deref(), Some("only master standby"));
        let nested =
            ErrorBody::from_json(br#"{"error":{"code":"APIG.0301","message":"bad"}}"#).unwrap();
        assert_eq!(nested.error_code.as_deref(), Some("APIG.0301"));
        assert_eq!(ErrorBody::from_json(b"<html>502</html>"), None);
    }
}
