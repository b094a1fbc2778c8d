//! `clean-room`: removes implicit state (containers, app images, build cache) and keeps volumes; never starts anything.
//!
//! This crate is a skeleton until its issue lands: it only compiles and prints `--help`.
