//! dcs-task-operator: Huawei Cloud DCS task-center tasks as Kubernetes objects you can wait on.
//!
//! Layers (see `docs/ARCHITECTURE.md`): [`api`] is the `DcsTaskQuery` resource, [`dcs`] talks to
//! Huawei Cloud and knows nothing of Kubernetes, [`query`] is the pure meaning of a query shared
//! by the CLI and the controller, and [`sim`] is a stand-alone simulator of the task-center API.
//!
//! The layers below the operator are crates of their own under `crates/`, so the compiler keeps
//! them from importing anything above: [`api`] is `dcs-api`, [`query`] is `dcs-query`, [`dcs`]
//! is `dcs-cloud`, [`sim`] is `dcs-sim`, and [`text`] and [`duration`] are from `dcs-common`. They are re-exported here under the names they had as
//! modules.

pub mod cli;
pub mod controller;
pub mod upstream;

pub use dcs_api as api;
pub use dcs_cloud as dcs;
pub use dcs_common::{duration, text};
pub use dcs_query as query;
pub use dcs_sim as sim;
