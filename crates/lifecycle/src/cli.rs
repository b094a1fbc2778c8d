//! `lifecycle`'s command line, shared by its binary (which parses it) and the host (which
//! renders a value of it to the argv it runs on a node). Only clap and std here: the host
//! side reads this without caring about the rest of the crate.

use std::path::PathBuf;

use clap::{Args as ClapArgs, Parser, Subcommand};
use stackpilot_core::argv::{Args, ToArgv};

/// `up`'s health timeout unless told otherwise, seconds.
pub const UP_TIMEOUT_SECS: u64 = 180;

/// Build, start, stop and report the service stack of one environment on a lab node.
///
/// Node side only: runs inside a lab node from /vagrant (ctx-guard decides first; exit 3
/// when refused). On the host, use the make targets (`make demo`, `make up`, `make down`).
/// Exit codes: 0 ok, 1 step failed, 2 usage/configuration, 3 context refused,
/// 4 prerequisite missing.
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(name = "lifecycle", version, arg_required_else_help = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// The subcommands; the host renders them with [`ToArgv`].
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    /// Build the application image with `docker build --no-cache` and write the build receipt.
    Build(BuildArgs),
    /// Start the stack with compose (image from the build receipt) and wait until healthy.
    Up(UpArgs),
    /// Stop the stack's containers; images and volumes stay.
    Down {
        /// Environment.
        #[arg(long, default_value = "dev")]
        env: String,
        /// Pinned database image [default: from the image lock; stopping does not use it].
        #[arg(long, value_name = "IMAGE")]
        db_image: Option<String>,
    },
    /// Load an image archive (`docker save` output) into this node's engine, from a tar
    /// file on the node or from stdin, and check the tag names the loaded image.
    LoadImage {
        /// The image reference the archive carries (`name:tag`, never `latest`).
        #[arg(long, value_name = "IMAGE")]
        tag: String,
        /// The archive on the node [default: read it from stdin].
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// The image id the host saved; the load fails when the engine ends with another.
        #[arg(long, value_name = "ID")]
        expect_id: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the stack's containers: state, health, restarts, image.
    Status {
        /// Environment.
        #[arg(long, default_value = "dev")]
        env: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `lifecycle build`'s arguments.
#[derive(ClapArgs, Debug, Clone, PartialEq, Eq)]
pub struct BuildArgs {
    /// Environment (a table of `[environments]` in stackpilot.toml).
    #[arg(long, default_value = "dev")]
    pub env: String,
    /// The compiled, statically linked service binary.
    #[arg(long, value_name = "PATH")]
    pub binary: PathBuf,
    /// Unique build id (image label and tag suffix).
    #[arg(long, value_name = "ID")]
    pub build_id: String,
    /// Git commit the binary was compiled from.
    #[arg(long, value_name = "SHA")]
    pub git_sha: String,
    /// The work tree had uncommitted changes.
    #[arg(long)]
    pub dirty: bool,
    /// Pinned runtime base image, `stackpilot/runtime:<tag>` [default: from
    /// infra/images/images.lock, id checked].
    #[arg(long, value_name = "IMAGE")]
    pub runtime_image: Option<String>,
    /// Print the build receipt as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `lifecycle up`'s arguments.
#[derive(ClapArgs, Debug, Clone, PartialEq, Eq)]
pub struct UpArgs {
    /// Environment.
    #[arg(long, default_value = "dev")]
    pub env: String,
    /// Recreate the containers even if nothing changed.
    #[arg(long)]
    pub recreate: bool,
    /// Pinned database image, `stackpilot/postgres:<tag>` [default: from
    /// infra/images/images.lock, id checked].
    #[arg(long, value_name = "IMAGE")]
    pub db_image: Option<String>,
    /// Override a compose variable for this run (drills), e.g. `--set LOG_LEVEL=debug`.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = crate::parse_override)]
    pub overrides: Vec<(String, String)>,
    /// Seconds to wait for every container to be healthy.
    #[arg(long, value_name = "SECS", default_value_t = UP_TIMEOUT_SECS)]
    pub timeout: u64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

impl ToArgv for Cmd {
    const TOOL: &'static str = "lifecycle";

    fn render(&self, out: &mut Args) {
        match self {
            Cmd::Build(b) => out
                .word("build")
                .opt("env", &b.env)
                .opt("binary", b.binary.display())
                .opt("build-id", &b.build_id)
                .opt("git-sha", &b.git_sha)
                .flag("dirty", b.dirty)
                .opt_some("runtime-image", b.runtime_image.as_ref())
                .flag("json", b.json),
            Cmd::Up(u) => out
                .word("up")
                .opt("env", &u.env)
                .flag("recreate", u.recreate)
                .opt_some("db-image", u.db_image.as_ref())
                .opt_each("set", u.overrides.iter().map(|(k, v)| format!("{k}={v}")))
                .opt("timeout", u.timeout)
                .flag("json", u.json),
            Cmd::Down { env, db_image } => out
                .word("down")
                .opt("env", env)
                .opt_some("db-image", db_image.as_ref()),
            Cmd::LoadImage {
                tag,
                file,
                expect_id,
                json,
            } => out
                .word("load-image")
                .opt("tag", tag)
                .opt_some("file", file.as_ref().map(|f| f.display()))
                .opt_some("expect-id", expect_id.as_ref())
                .flag("json", *json),
            Cmd::Status { env, json } => out.word("status").opt("env", env).flag("json", *json),
        };
    }
}

impl Cmd {
    /// `down --env ENV`: stop the stack, the image lock decides the db image.
    pub fn down(env: &str) -> Cmd {
        Cmd::Down {
            env: env.to_string(),
            db_image: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stackpilot_core::argv::round_trip;

    #[test]
    fn every_subcommand_round_trips_through_its_argv() {
        let values = [
            Cmd::Build(BuildArgs {
                env: "prod".into(),
                binary: "target/x/mock-exchange".into(),
                build_id: "b1".into(),
                git_sha: "abc".into(),
                dirty: true,
                runtime_image: Some("stackpilot/runtime:1".into()),
                json: true,
            }),
            Cmd::Up(UpArgs {
                env: "prod".into(),
                recreate: true,
                db_image: Some("stackpilot/postgres:1".into()),
                overrides: vec![
                    ("LOG_LEVEL".into(), "debug".into()),
                    ("A".into(), "x=y".into()),
                ],
                timeout: 7,
                json: true,
            }),
            Cmd::Down {
                env: "prod".into(),
                db_image: Some("stackpilot/postgres:1".into()),
            },
            Cmd::LoadImage {
                tag: "app:1".into(),
                file: Some("/tmp/app.tar".into()),
                expect_id: Some("sha256:1".into()),
                json: true,
            },
            Cmd::LoadImage {
                tag: "app:1".into(),
                file: None,
                expect_id: None,
                json: false,
            },
            Cmd::Status {
                env: "prod".into(),
                json: true,
            },
            Cmd::down("dev"),
        ];
        assert_eq!(round_trip::<Cli, _>(&values, |c| Some(c.command)), Ok(()));
    }
}
