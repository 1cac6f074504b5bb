//! The few small things every layer of dcs-task-operator shares, kept at the bottom so that
//! sharing them never makes a lower layer import a higher one: bounding and cleaning outside text
//! ([`text`]), the one duration syntax ([`duration`]) and the one project-id pattern
//! ([`project_id`]).
//!
//! It must not know anything of the layers above it: no Huawei Cloud client, no simulator, no
//! Kubernetes, no `DcsTaskQuery` spec. It depends on no other crate of the workspace.

pub mod duration;
pub mod project_id;
pub mod text;
