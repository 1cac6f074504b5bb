//! The controller against a real kube-apiserver + etcd and the simulator, each a real process.
//!
//! Every test gets its own namespace, simulator and controller process (`--watch-namespace`),
//! so tests run in parallel on the shared control plane without seeing each other.
//!
//! One test binary, one module per behaviour:
//! - [`waits`]: `spec.waitFor` from creation to its verdict, and the conditions;
//! - [`credentials`]: Secrets, `--sim`, refused access keys, project discovery through IAM;
//! - [`upstream_calls`]: shared upstream calls, and 403s and 5xx bursts upstream;
//! - [`restarts`]: a restart and a `kill -9` lose nothing and repeat nothing;
//! - [`replicas`]: leader election and sharding by `--selector`;
//! - [`limits`]: hostile input and the status size limit;
//! - [`flux`]: Flux's `requestedAt` refresh;
//! - [`rbac`]: a Role without Secrets or without the status subresource;
//! - [`events`]: the event writer folds repeats into a series.
//!
//! The shared fixture is `tests/support/world.rs`.

#[path = "../support/mod.rs"]
mod support;

mod credentials;
mod events;
mod flux;
mod limits;
mod rbac;
mod replicas;
mod restarts;
mod upstream_calls;
mod waits;

/// The simulator's world of most tests: two settled tasks, so nothing changes unless a test
/// adds or flips a task.
pub const SETTLED_SCENARIO: &str = r#"
tasks:
  - name: EXTEND
    createdAt: "-2h"
    status: SUCCESS
    details: {old_capacity: 0.125, new_capacity: "0.25"}
  - name: BindEip
    createdAt: "-1h"
    status: SUCCESS
"#;
