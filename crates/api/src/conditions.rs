//! Condition types and the one rule for updating them: `lastTransitionTime` moves only when
//! the status flips, so `kubectl wait` and kstatus see real transitions, not poll noise.
//!
//! A condition without anything to say has no `message` at all on the wire, rather than an
//! empty one: every status write is that much smaller, and server-side apply on Kubernetes
//! before 1.36 turns a field changed to `""` into `null`, which the schema would refuse. Readers
//! (kstatus, Flux, Argo CD, `kubectl`, Go's `metav1.Condition`) take a missing message as empty.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde::ser::SerializeSeq;

/// kstatus: the object is up to date and usable.
pub const READY: &str = "Ready";
/// kstatus: the controller is working towards the desired state (a wait is pending).
pub const RECONCILING: &str = "Reconciling";
/// kstatus: progress stopped and needs a human (bad spec, missing Secret, failed task).
pub const STALLED: &str = "Stalled";
/// With `waitFor`: the awaited task succeeded. `kubectl wait --for=condition=Complete`.
pub const COMPLETE: &str = "Complete";
/// With `waitFor`: the awaited task failed or the wait timed out.
pub const FAILED: &str = "Failed";

/// `True`/`False`/`Unknown`, as Kubernetes spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(value: bool) -> Self {
        if value {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}

/// A condition as the operator decides it, before times are attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredCondition {
    pub type_: &'static str,
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
}

impl DesiredCondition {
    pub fn new(
        type_: &'static str,
        status: impl Into<ConditionStatus>,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status: status.into(),
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// Builds the condition list from `desired`, carrying over `lastTransitionTime` from
/// `previous` for every condition whose status did not change.
///
/// Conditions not in `desired` are dropped: the set of types is decided whole each time, so a
/// `Complete` left over from an older `waitFor` cannot survive a spec change.
pub fn merge(
    previous: &[Condition],
    desired: &[DesiredCondition],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    desired
        .iter()
        .map(|want| {
            let status = want.status.as_str().to_string();
            let last_transition_time = previous
                .iter()
                .find(|old| old.type_ == want.type_ && old.status == status)
                .map(|old| old.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: want.type_.to_string(),
                status,
                reason: want.reason.clone(),
                message: want.message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// Serializes `conditions` leaving out each empty `message` (see the module's doc).
pub fn serialize_without_empty_messages<S: serde::Serializer>(
    conditions: &[Condition],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut list = serializer.serialize_seq(Some(conditions.len()))?;
    for condition in conditions {
        let mut value = serde_json::to_value(condition).map_err(serde::ser::Error::custom)?;
        if let Some(fields) = value.as_object_mut()
            && fields.get("message").and_then(serde_json::Value::as_str) == Some("")
        {
            fields.remove("message");
        }
        list.serialize_element(&value)?;
    }
    list.end()
}

/// The conditions' schema with `message` optional, so that a condition can leave it out.
pub fn message_optional(schema: &mut schemars::Schema) {
    let required = schema
        .get_mut("items")
        .and_then(|items| items.get_mut("required"))
        .and_then(serde_json::Value::as_array_mut);
    if let Some(required) = required {
        required.retain(|field| field != "message");
    }
}

/// Looks a condition up by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[test]
    fn an_empty_message_is_left_out_and_read_back_as_empty() {
        let conditions = merge(
            &[],
            &[
                DesiredCondition::new(READY, false, "Pending", "waiting for the switchover"),
                DesiredCondition::new(STALLED, false, "Pending", ""),
            ],
            Some(1),
            &at(1),
        );
        #[derive(Serialize)]
        struct Wire<'a>(
            #[serde(serialize_with = "serialize_without_empty_messages")] &'a [Condition],
        );
        let wire = serde_json::to_value(Wire(&conditions)).unwrap();
        assert_eq!(wire[0]["message"], "waiting for the switchover");
        assert!(wire[1].get("message").is_none(), "{wire}");
        assert_eq!(wire[1]["reason"], "Pending");
        let read: Vec<Condition> = serde_json::from_value(wire).unwrap();
        assert_eq!(read, conditions);
    }

    #[test]
    fn the_schema_lets_a_condition_leave_its_message_out() {
        let mut schema = schemars::json_schema!({
            "type": "array",
            "items": {"type": "object", "required": ["lastTransitionTime", "message", "reason"]}
        });
        message_optional(&mut schema);
        assert_eq!(
            schema.get("items").unwrap()["required"],
            serde_json::json!(["lastTransitionTime", "reason"])
        );
    }
    use k8s_openapi::jiff::Timestamp;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let first = merge(
            &[],
            &[DesiredCondition::new(READY, false, "Pending", "waiting")],
            Some(1),
            &at(100),
        );
        assert_eq!(first[0].last_transition_time, at(100));

        let same_status = merge(
            &first,
            &[DesiredCondition::new(
                READY,
                false,
                "StillPending",
                "still waiting",
            )],
            Some(2),
            &at(200),
        );
        assert_eq!(same_status[0].last_transition_time, at(100));
        assert_eq!(same_status[0].observed_generation, Some(2));
        assert_eq!(same_status[0].reason, "StillPending");

        let flipped = merge(
            &same_status,
            &[DesiredCondition::new(READY, true, "Succeeded", "done")],
            Some(2),
            &at(300),
        );
        assert_eq!(flipped[0].last_transition_time, at(300));
        assert_eq!(flipped[0].status, "True");
    }

    #[test]
    fn conditions_not_desired_are_dropped() {
        let old = merge(
            &[],
            &[
                DesiredCondition::new(READY, true, "Succeeded", ""),
                DesiredCondition::new(COMPLETE, true, "Succeeded", ""),
            ],
            Some(1),
            &at(1),
        );
        let new = merge(
            &old,
            &[DesiredCondition::new(READY, true, "Synced", "")],
            Some(2),
            &at(2),
        );
        assert_eq!(new.len(), 1);
        assert!(find(&new, COMPLETE).is_none());
    }
}
