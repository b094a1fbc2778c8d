//! The host side of a deploy: what the operator's `make deploy|status|…` runs on the
//! build machine, driving the node through node-side steps only.

pub mod status;
