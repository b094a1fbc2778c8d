//! StackPilot's benchmarks: the figures docs/benchmarks.md publishes, with their commands.
//!
//! Owns the API benchmark (mock-exchange on loopback under wrk, against a private
//! PostgreSQL, with pgbench running the service's own statements as the ceiling), the
//! rendering of the golden path's figures, `POST /order` through the swarm's replicas
//! against one node, an e2e test's wall time, and replacing one section of
//! docs/benchmarks.md. It reports goals as met or missed and never asserts them: a
//! benchmark is not a test. It never runs anything on a lab node itself: the golden path's
//! timings are measured by xtask's flows and handed in as plain data, the swarm benchmark
//! only sends HTTP to the addresses xtask hands in, and the e2e benchmark times nextest.

pub mod api;
pub mod e2e;
pub mod golden;
mod host;
pub mod section;
pub mod swarm_orders;

use stackpilot_core::step::StepError;

pub use host::load_average;

/// Why a benchmark could not produce its figures: a step failed or a program is missing.
pub use stackpilot_core::step::HostError as Error;

/// A failed step of a benchmark, from what was attempted and the error.
fn failed(step: &str, cmd: &str, e: impl std::fmt::Display) -> Error {
    Error::Step(StepError::new(step, cmd, e))
}

/// A failed step of a benchmark that has no underlying error, only what went wrong.
fn step_failed(step: &str, what: &str) -> Error {
    Error::Step(StepError::new(step, what, "failed"))
}
