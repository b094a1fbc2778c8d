//! StackPilot's shared core: what several tools need, written once.
//!
//! Owns the lab configuration (`stackpilot.toml`) and its inventory, the exit codes every
//! tool uses, the shared error type, the one output layer (human table or `--json`) and the one time
//! module (timestamps, RFC 3339, durations as printed).
//! It never decides policy for a tool: each tool crate owns its own rules.

pub mod admin;
pub mod capability;
pub mod cli_help;
pub mod compose;
pub mod config;
pub mod error;
pub mod exit;
pub mod facade;
pub mod http;
pub mod images;
pub mod junit;
pub mod labs;
pub mod mountinfo;
pub mod node;
pub mod output;
pub mod receipts;
pub mod root;
pub mod step;
pub mod time;
pub mod transport;

pub use config::{Config, Environment, Node, Provider};
pub use error::Error;
pub use exit::Exit;
