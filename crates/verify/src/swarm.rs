//! Swarm mode: the same definition of "working" for a stack that `docker stack deploy`
//! spread over the lab's swarm, still read-only.
//!
//! [`inspection`] is the document `verify inspect-swarm` prints on the manager (services,
//! tasks and nodes as the manager reports them, read through the read-only facade), with
//! the pure conversions from the engine's models; [`verdict`] judges it, with what the host
//! probed on each node's published port, layer by layer; [`host`] gathers both; [`setup`]
//! makes the expectation from the lab's nodes.

pub mod host;
pub mod inspection;
pub mod setup;
pub mod verdict;

pub use host::{SwarmTarget, run, run_waiting};
pub use inspection::SwarmInspection;
pub use verdict::{DeployedApp, ExpectedNode, SwarmExpect, evaluate};
