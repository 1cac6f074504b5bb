//! Shared helpers for the integration tests; include with `mod support;` from a test file.

pub mod control_plane;
pub mod sim_process;
pub mod tools;
