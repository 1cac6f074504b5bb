//! DCS task-center simulator.
