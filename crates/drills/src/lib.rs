//! `drills`: breaks the lab on purpose and measures what happens; always recovers.
//!
//! Owns the failure drills: each checks the steady state (`verify` passes, else refuses),
//! injects one fault through the tools (node-side steps through the transport), observes
//! the degraded behaviour with probes every ≤ 100 ms, always recovers (like `finally`) and
//! proves the recovery with `verify`; the run journal records the figures and the verdict.
//! It must never leave a fault behind silently: a failed recovery fails the drill.
//!
//! Layout: [`sequence`] is the sequence every drill shares, run over a [`lab::LabOps`] (the
//! host side implements it with the golden path); each drill is one module under `drills/`
//! listed once in its registry; [`samples`] and [`journal`] hold the pure judgements and
//! the journal; [`node`] is the node-side injection behind `drills node …` (ctx-guard first).

pub mod cli;
mod drills;
pub mod journal;
pub mod lab;
pub mod node;
mod probe;
pub mod samples;
pub mod sequence;
pub mod swarm;

pub use drills::{ALL, SWARM};
pub use journal::{DrillResults, Journal, Verdict};
pub use lab::{Golden, LabError, LabOps};
pub use sequence::{Drill, Options, recover_only, run};
pub use swarm::SwarmOps;
