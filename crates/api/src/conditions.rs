//! Condition types and the one rule for updating them: `lastTransitionTime` moves only when
//! the status flips, so `kubectl wait` and kstatus see real transitions, not poll noise.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

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

/// Looks a condition up by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
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
