//! StackPilot's shared core: what several tools need, written once.
//!
//! Owns the lab configuration (`stackpilot.toml`) and its inventory, the exit codes every
//! tool uses, the shared error type, the one output layer (human table or `--json`), the
//! one time module, node identity and the resolved [`node::NodeHandle`], the host→node
//! [`transport`] and the typed host→node calls ([`argv`]: a tool's clap value rendered back
//! to its command line), the Docker facades (read-only for verify, [`admin`] for the tools
//! that remove), the compose wrapper, receipts, the image lock's format, HTTP probes, host
//! commands as named steps ([`step`]), the one JUnit writer, test capabilities and named
//! labs.
//! It never decides policy for a tool (each tool crate owns its own rules) and never
//! changes a node by itself: the tools call it.

pub mod admin;
pub mod argv;
pub mod capability;
pub mod cli_help;
pub mod compose;
pub mod config;
pub mod error;
pub mod exit;
pub mod facade;
pub mod files;
pub mod host;
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
