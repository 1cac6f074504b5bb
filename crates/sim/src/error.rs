//! The simulator's error type: everything that can stop a scenario from loading or the server
//! from starting. Problems with individual HTTP requests are answered on the wire instead.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the simulator could not load a scenario or start serving.
///
/// Each variant names the input that failed (file, field, address) so that a user running
/// `dcs-task-operator sim` can fix it without reading the source.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The scenario file could not be read from disk.
    #[error("cannot read scenario file {path}")]
    ReadScenario {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The scenario text is not YAML of the expected shape (unknown key, wrong type, ...).
    #[error("scenario {origin} does not have the simulator's format (see examples/sim/*.yaml)")]
    ParseScenario {
        /// The file path, or `<inline>` for [`super::Scenario::from_yaml`].
        origin: String,
        #[source]
        source: serde_yaml_ng::Error,
    },

    /// The scenario parsed but a value in it is not acceptable.
    #[error("scenario {origin}: `{field}`: {problem}")]
    InvalidScenario {
        origin: String,
        /// Path of the offending value, e.g. `tasks[2].timeline[0].for`.
        field: String,
        problem: String,
    },

    /// The listen address could not be bound.
    #[error(
        "cannot listen on {addr}: is another process using the port, or is the address not local?"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}
