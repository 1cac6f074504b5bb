//! The meaning of a `DcsTaskQuery`, as pure functions over plain data: validate the spec, plan
//! the request, judge the answer, and shape the status. The CLI and the controller both call
//! these, so a query means the same thing everywhere. No I/O, no clock reads: "now" is passed in.
//!
//! A crate of its own (`dcs-query`): it reads the resource's types (`dcs-api`) and the Huawei
//! Cloud answers (`dcs-cloud`) as plain data, and it cannot import Kubernetes (`kube`,
//! `k8s-openapi`), the feeds or the controller: its manifest does not list them
//! (`tests/layers.rs` checks it), so such an import fails to build.

// The layers below, under the names the modules of this crate use for them.
use dcs_api as api;
use dcs_cloud as dcs;
use dcs_common::{duration, text};

pub mod decide;
pub mod evaluate;
pub mod job;
pub mod plan;
pub mod project;
pub mod report;
pub mod round;
pub mod schedule;
pub mod validate;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod properties;

pub use decide::{
    Decision, DecisionInput, EventReason, Notice, ProjectShown, content_digest, decide,
};
pub use evaluate::{Evaluation, WaitVerdict, evaluate};
pub use plan::{Concern, ListRequest, PlanContext, QueryPlan, WaitPlan, WaitTarget, plan};
pub use project::{CredentialSource, ProjectError, choose_project};
pub use report::{
    PollOutcome, StatusContext, build_status, initial_status, remembered_refusal, wait_started_at,
};
pub use round::{
    FeedStep, Listed, NeedsStoredTasks, Outcome, Previous, Round, Step, Unserved, round,
};
pub use validate::{FieldError, SpecErrors, validate};
