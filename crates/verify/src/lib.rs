//! `verify`: asserts correctness, host-driven and layered; never mutates.
//!
//! Owns the definition of "working": node reachable and itself, service port open, HTTP
//! alive/ready/version, the node's containers and compose wiring as the engine reports
//! them, and the running image's provenance against the receipts. It reaches the engine
//! only through [`stackpilot_core::facade::ReadOnlyDocker`], which has no mutating call,
//! and it runs nothing on a node but `verify inspect`.
//!
//! Layout: [`setup`] resolves node, environment, address and transport; [`host`] observes
//! from the host; [`inspect`] gathers node facts into an [`inspection`] document;
//! [`verdict`] judges (pure); [`report`] renders; [`events`] is the yardstick of the
//! no-mutation proof.

pub mod cli;
pub mod events;
pub mod host;
pub mod inspect;
pub mod inspection;
pub mod lab;
pub mod report;
pub mod setup;
pub mod swarm;
pub mod verdict;

pub use host::{NodeRun, NodeRunner, NodeUnderTest, RunConfig, run, run_waiting};
pub use inspection::Inspection;
pub use report::{Check, Report, ServiceState, Verdict};
pub use setup::{Options, verify};
