//! `lifecycle`: mutates the service stack on a node (build / up / down / status); never asserts correctness.
//!
//! This crate is a skeleton until its issue lands: it only compiles and prints `--help`.
