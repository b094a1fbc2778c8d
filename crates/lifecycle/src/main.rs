//! The `lifecycle` binary: parses arguments, runs ctx-guard first, hands over to the
//! `lifecycle` library, prints, and maps errors to exit codes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use lifecycle::{BuildRequest, LifecycleError, Site, UpRequest};
use stackpilot_core::Config;
use stackpilot_core::output::{Format, print};

/// Build, start, stop and report the service stack of one environment on a lab node.
///
/// Node side only: runs inside a lab node from /vagrant (ctx-guard decides first; exit 3
/// when refused). On the host, use the make targets (`make demo`, `make up`, `make down`).
/// Exit codes: 0 ok, 1 step failed, 2 usage/configuration, 3 context refused,
/// 4 prerequisite missing.
#[derive(Parser)]
#[command(name = "lifecycle", version, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the application image with `docker build --no-cache` and write the build receipt.
    Build {
        /// Environment (a table of `[environments]` in stackpilot.toml).
        #[arg(long, default_value = "dev")]
        env: String,
        /// The compiled, statically linked service binary.
        #[arg(long, value_name = "PATH")]
        binary: PathBuf,
        /// Unique build id (image label and tag suffix).
        #[arg(long, value_name = "ID")]
        build_id: String,
        /// Git commit the binary was compiled from.
        #[arg(long, value_name = "SHA")]
        git_sha: String,
        /// The work tree had uncommitted changes.
        #[arg(long)]
        dirty: bool,
        /// Pinned runtime base image, `stackpilot/runtime:<tag>` [default: from
        /// infra/images/images.lock, id checked].
        #[arg(long, value_name = "IMAGE")]
        runtime_image: Option<String>,
        /// Print the build receipt as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start the stack with compose (image from the build receipt) and wait until healthy.
    Up {
        /// Environment.
        #[arg(long, default_value = "dev")]
        env: String,
        /// Recreate the containers even if nothing changed.
        #[arg(long)]
        recreate: bool,
        /// Pinned database image, `stackpilot/postgres:<tag>` [default: from
        /// infra/images/images.lock, id checked].
        #[arg(long, value_name = "IMAGE")]
        db_image: Option<String>,
        /// Override a compose variable for this run (drills), e.g. `--set LOG_LEVEL=debug`.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = lifecycle::parse_override)]
        overrides: Vec<(String, String)>,
        /// Seconds to wait for every container to be healthy.
        #[arg(long, value_name = "SECS", default_value_t = 180)]
        timeout: u64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let instead = match &cli.command {
        Cmd::Build { .. } => "make demo",
        Cmd::Up { .. } => "make up",
        Cmd::Down { .. } => "make down",
        Cmd::LoadImage { .. } => "make deploy",
        Cmd::Status { .. } => "make verify",
    };
    ctx_guard::node_main("lifecycle", instead, |allowed| run(allowed, cli.command))
}

fn run(allowed: &ctx_guard::Allowed, command: Cmd) -> Result<(), LifecycleError> {
    let repo = Path::new(stackpilot_core::node::NODE_REPO);
    let cfg = Config::load(&repo.join(stackpilot_core::config::CONFIG_FILE))?;
    let site = Site::on_node(&cfg);
    match command {
        Cmd::Build {
            env,
            binary,
            build_id,
            git_sha,
            dirty,
            runtime_image,
            json,
        } => {
            let runtime_image = lifecycle::PinnedImage::flag_or_lock(
                runtime_image.as_deref(),
                &site.repo,
                lifecycle::LOCK_RUNTIME,
            )?;
            let req = BuildRequest {
                env,
                binary,
                build_id,
                git_sha,
                dirty,
                runtime_image,
            };
            let r = lifecycle::build(allowed, &cfg, &site, &req)?;
            if json {
                match serde_json::to_string_pretty(&r) {
                    Ok(text) => stackpilot_core::outln!("{text}"),
                    Err(e) => eprintln!("lifecycle: cannot print the receipt as JSON: {e}"),
                }
                return Ok(());
            }
            stackpilot_core::outln!(
                "built {} ({}), build id {}, receipt {}",
                r.tag,
                r.image_id,
                r.build_id,
                site.env_dir(&r.env)
                    .join(stackpilot_core::receipts::BUILD_RECEIPT)
                    .display()
            );
        }
        Cmd::Up {
            env,
            recreate,
            db_image,
            overrides,
            timeout,
            json,
        } => {
            let db_image = lifecycle::PinnedImage::flag_or_lock(
                db_image.as_deref(),
                &site.repo,
                lifecycle::LOCK_POSTGRES,
            )?;
            let req = UpRequest {
                env,
                recreate,
                db_image,
                overrides,
                timeout: Duration::from_secs(timeout),
            };
            let report = lifecycle::up(allowed, &cfg, &site, &req)?;
            print(&report, Format::from_json_flag(json));
        }
        Cmd::Down { env, db_image } => {
            lifecycle::down(allowed, &cfg, &site, &env, db_image.as_deref())?;
            stackpilot_core::outln!("stopped the containers of env {env}; images and volumes kept");
        }
        Cmd::LoadImage {
            tag,
            file,
            expect_id,
            json,
        } => {
            let archive = match &file {
                Some(path) => lifecycle::Archive::File(path),
                None => lifecycle::Archive::Stdin,
            };
            let report = lifecycle::load_image(allowed, archive, &tag, expect_id.as_deref())?;
            print(&report, Format::from_json_flag(json));
        }
        Cmd::Status { env, json } => {
            let report = lifecycle::status(&cfg, &site, &env)?;
            print(&report, Format::from_json_flag(json));
        }
    }
    Ok(())
}
