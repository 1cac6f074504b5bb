//! dcs-task-operator: Huawei Cloud DCS task-center tasks as Kubernetes objects you can wait on.
//!
//! Layers (see `docs/ARCHITECTURE.md`): [`api`] is the `DcsTaskQuery` resource, [`dcs`] talks to
//! Huawei Cloud and knows nothing of Kubernetes, [`query`] is the pure meaning of a query shared
//! by the CLI and the controller, and [`sim`] is a stand-alone simulator of the task-center API.

pub mod api;
pub mod cli;
pub mod controller;
pub mod query;
pub mod sim;
pub mod upstream;

pub use dcs_cloud as dcs;
pub use dcs_common::{duration, text};
