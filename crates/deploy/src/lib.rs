//! `deploy`: proves a release in four stages before recording it as deployed, and rolls back on failure.
//!
//! This crate is a skeleton until its issue lands: it only compiles and prints `--help`.
