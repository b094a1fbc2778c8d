//! `verify`: asserts correctness through a read-only Docker facade; never mutates.
//!
//! This crate is a skeleton until its issue lands: it only compiles and prints `--help`.
