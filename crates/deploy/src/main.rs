//! The `deploy` binary: the node-side steps of a deploy. Parses arguments, runs ctx-guard
//! first, hands over to the `deploy` library, prints, and maps errors to exit codes.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use deploy::DeployError;
use deploy::cli::{Cli, Cmd};
use deploy::plan::{Deployed, Release};
use stackpilot_core::Config;
use stackpilot_core::output::{Format, print};

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
        Cmd::Logs(logs) => {
            let mut cmd = deploy::node::logs_command(&cfg, &site, &logs)?;
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
