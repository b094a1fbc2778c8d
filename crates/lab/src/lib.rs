//! The lab: what a StackPilot lab is made of on the host, and how it comes and goes.
//!
//! Owns the inventory the Vagrantfile reads, the choice of node provider, the nodes'
//! lifecycle through Vagrant (up, provision, status, halt, destroy), the images built
//! locally for the nodes and their lock, the static build of what nodes run, the host
//! prerequisites (and the host's writeback thresholds while the suite runs), named labs, and [`resolve`]: a node name to a `NodeHandle`, once. It never asserts that a lab is correct (verify does) and never runs
//! the stack on a node (lifecycle does); xtask composes it into the golden paths.

pub mod build;
pub mod error;
pub mod host_lock;
pub mod images;
pub mod inventory;
pub mod named;
pub mod nodes;
pub mod prereq;
pub mod process;
pub mod provider;
pub mod resolve;
pub mod swarm;
pub mod vmbox;
pub mod writeback;

pub use error::Error;
pub use process::step;
pub use resolve::{resolve, resolve_all};
