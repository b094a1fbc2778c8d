//! `drills`: breaks the lab on purpose and measures what happens; always recovers.
//!
//! Owns the failure drills: each checks the steady state (`verify` passes, else refuses),
//! injects one fault through the tools (node-side steps through the transport), observes
//! the degraded behaviour with probes every ≤ 100 ms, always recovers (like `finally`) and
//! proves the recovery with `verify`; the run journal records the figures and the verdict.
//! It must never leave a fault behind silently: a failed recovery fails the drill.
//!
//! Layout: [`drill`] runs the drills over a [`lab::Lab`] (the host side implements it with
//! the golden path); [`samples`] and [`journal`] hold the pure judgements and the journal;
//! [`node`] is the node-side injection behind `drills node …` (ctx-guard first).

pub mod drill;
pub mod journal;
pub mod lab;
pub mod node;
pub mod samples;

pub use drill::{ALL, Drill, Options, recover_only, run};
pub use journal::{DrillResults, Journal, Verdict};
pub use lab::{Golden, LabError, LabOps};
