//! `drills`: injects faults through the golden path, measures detection and recovery, and always recovers.
//!
//! This crate is a skeleton until its issue lands: it only compiles and prints `--help`.
