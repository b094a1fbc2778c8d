//! The `deploy` binary: the node-side steps of a deploy. Parses arguments, runs ctx-guard
//! first, hands over to the `deploy` library, prints, and maps errors to exit codes.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use deploy::DeployError;
use deploy::plan::{Deployed, Release};
use stackpilot_core::Config;
use stackpilot_core::output::{Format, print};

/// Node-side steps of StackPilot's staged deploys: switch an environment to a release,
/// record it, run its self-check, show its state and logs.
///
/// Runs inside a lab node from /vagrant (ctx-guard decides first; exit 3 when refused).
/// On the host use `make deploy|status|restart|logs|stop|rollback ENV=…`.
/// Exit codes: 0 ok, 1 step failed, 2 usage/configuration, 3 context refused,
/// 4 prerequisite missing.
#[derive(Parser)]
#[command(name = "deploy", version, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Point ENV's build receipt at a loaded release image and start it through lifecycle.
    Switch {
        /// Environment.
        #[arg(long)]
        env: String,
        /// The release, as JSON (what the host's deploy built and loaded).
        #[arg(long, value_name = "JSON")]
        release: String,
        /// Health gate: seconds to wait until every container is healthy.
        #[arg(long, value_name = "SECS", default_value_t = 120)]
        timeout: u64,
    },
    /// Record a release as ENV's deployed one; prune this env's releases beyond --keep.
    Record {
        /// Environment.
        #[arg(long)]
        env: String,
        /// The deployed record, as JSON.
        #[arg(long, value_name = "JSON")]
        deployed: String,
        /// Releases kept for this environment.
        #[arg(long, default_value_t = deploy::plan::KEEP_RELEASES)]
        keep: usize,
    },
    /// Run `/app/mock-exchange self-check` inside ENV's running api container.
    SelfCheck {
        /// Environment.
        #[arg(long)]
        env: String,
    },
    /// Remove a release image that failed its deploy, unless an environment keeps it.
    Discard {
        /// The release image tag.
        #[arg(long)]
        tag: String,
    },
    /// Take ENV's deploy lock on this node for a host-side action (kept until `unlock`);
    /// refused while someone else holds it, naming the owner and expiry. Prints the lock.
    Lock {
        /// Environment.
        #[arg(long)]
        env: String,
        /// Who acts: `user@host (checkout)`.
        #[arg(long)]
        owner: String,
        /// What they do (`deploy dev on worker1`).
        #[arg(long)]
        purpose: String,
        /// The host-side process.
        #[arg(long)]
        pid: u32,
    },
    /// Release ENV's deploy lock if it is still the one `lock` printed.
    Unlock {
        /// Environment.
        #[arg(long)]
        env: String,
        /// The lock, as JSON.
        #[arg(long, value_name = "JSON")]
        lock: String,
    },
    /// Make ENV start on boot and stop with the node: the systemd unit installed and
    /// enabled, or, without systemd, the containers' restart policy checked.
    InstallService {
        /// Environment.
        #[arg(long)]
        env: String,
    },
    /// ENV's deploy state and what runs now, as JSON.
    State {
        /// Environment.
        #[arg(long)]
        env: String,
    },
    /// ENV's service logs (api by default) from the engine's log store.
    Logs {
        /// Environment.
        #[arg(long)]
        env: String,
        /// Service (`api`, `db`).
        #[arg(long, default_value = "api")]
        service: String,
        /// Lines from the end (`all` for every line).
        #[arg(long, default_value = "100")]
        lines: String,
        /// Only lines since this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Keep following.
        #[arg(long)]
        follow: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    ctx_guard::node_main("deploy", "make deploy", |allowed| run(allowed, cli.command))
}

fn json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, DeployError> {
    serde_json::from_str(text)
        .map_err(|e| DeployError::Usage(format!("--{what}: not valid JSON: {e}")))
}

fn run(allowed: &ctx_guard::Allowed, command: Cmd) -> Result<(), DeployError> {
    let repo = deploy::node::node_repo();
    let cfg = Config::load(&repo.join(stackpilot_core::config::CONFIG_FILE))?;
    let site = deploy::node::site(&cfg);
    match command {
        Cmd::Switch {
            env,
            release,
            timeout,
        } => {
            let release: Release = json("release", &release)?;
            let report = deploy::node::switch(
                allowed,
                &cfg,
                &site,
                &env,
                &release,
                Duration::from_secs(timeout),
            )?;
            print(&report, Format::Human);
        }
        Cmd::Record {
            env,
            deployed,
            keep,
        } => {
            let deployed: Deployed = json("deployed", &deployed)?;
            let report = deploy::node::record(allowed, &cfg, &site, &env, deployed, keep)?;
            stackpilot_core::outln!("{}", serde_json::to_string(&report).unwrap_or_default());
        }
        Cmd::SelfCheck { env } => {
            let (line, output) = deploy::node::self_check(allowed, &cfg, &site, &env)?;
            stackpilot_core::outln!("$ {line}\n{output}");
        }
        Cmd::Discard { tag } => {
            stackpilot_core::outln!("{}", deploy::node::discard(allowed, &cfg, &site, &tag)?);
        }
        Cmd::Lock {
            env,
            owner,
            purpose,
            pid,
        } => {
            cfg.environment(&env)?;
            let info = deploy::evidence::lock_info(&owner, pid, &purpose);
            let held = deploy::node::lock(allowed, &site, &env, info)?;
            stackpilot_core::outln!("{}", serde_json::to_string(&held).unwrap_or_default());
        }
        Cmd::Unlock { env, lock } => {
            let info: deploy::plan::LockInfo = json("lock", &lock)?;
            stackpilot_core::outln!("{}", deploy::node::unlock(allowed, &site, &env, &info)?);
        }
        Cmd::InstallService { env } => {
            stackpilot_core::outln!("{}", deploy::systemd::install(allowed, &cfg, repo, &env)?);
        }
        Cmd::State { env } => {
            cfg.environment(&env)?;
            let state = deploy::node::read_state(&site, &env)?;
            let running = deploy::node::running(&cfg, &site, &env)?;
            let containers = lifecycle::status(&cfg, &site, &env)?;
            let v = serde_json::json!({
                "state": state,
                "api_image_id": running.api_image_id,
                "all_healthy": running.all_healthy,
                "containers": containers.containers,
            });
            stackpilot_core::outln!("{v}");
        }
        Cmd::Logs {
            env,
            service,
            lines,
            since,
            follow,
        } => {
            let mut cmd = deploy::node::logs_command(
                &cfg,
                &site,
                &env,
                &service,
                &lines,
                since.as_deref(),
                follow,
            )?;
            let line = deploy::local::render(&cmd);
            let status = cmd.status().map_err(|e| DeployError::Command {
                command: line.clone(),
                status: e.to_string(),
                output: String::new(),
            })?;
            if !status.success() {
                return Err(DeployError::Command {
                    command: line,
                    status: status.to_string(),
                    output: String::new(),
                });
            }
        }
    }
    Ok(())
}
