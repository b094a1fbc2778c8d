//! The `verify` binary: parses arguments, calls the library, prints, maps to exit codes.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use stackpilot_core::compose::Project;
use stackpilot_core::exit::{ExitStatus, Failure};
use stackpilot_core::facade::ReadOnlyDocker;
use stackpilot_core::node::NODE_REPO;
use stackpilot_core::output::{self, Format};
use stackpilot_core::receipts::{self, BUILD_RECEIPT, BuildReceipt};
use stackpilot_core::{Config, Exit};
use verify::cli::{Cli, Command};
use verify::inspect::{self, Scope};
use verify::report::{JunitFile, Unverified};
use verify::setup::{self, Options};
use verify::swarm::{self, inspection::SwarmScope};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Inspect { env, json: _ }) => {
            ctx_guard::node_main("verify", "make verify", |allowed| {
                node_inspect(allowed, &env)
            })
        }
        Some(Command::InspectSwarm { env, json: _ }) => {
            ctx_guard::node_main("verify", "make verify MODE=swarm", |allowed| {
                node_inspect_swarm(allowed, &env)
            })
        }
        None => host_verify(&cli).into(),
    }
}

fn fail(e: &dyn std::fmt::Display, exit: Exit) -> Exit {
    eprintln!("verify: {e}");
    exit
}

fn host_verify(cli: &Cli) -> Exit {
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => {
            return fail(
                &format!("cannot read the working directory: {e}"),
                Exit::Usage,
            );
        }
    };
    let (root, cfg) = match Config::discover(&cwd) {
        Ok(found) => found,
        Err(e) => return fail(&e, e.exit()),
    };
    let name = cli
        .node
        .clone()
        .unwrap_or_else(|| cfg.control().name().to_string());
    // The node is resolved once, here at the edge (provider, address, transport).
    let node = match lab::resolve(&root, &cfg, &name) {
        Ok(n) => n,
        Err(e) => return fail(&e, e.exit()),
    };
    // An unwritable report path is refused before anything is verified.
    let junit = match cli.junit.as_deref().map(JunitFile::create).transpose() {
        Ok(j) => j,
        Err(e) => return fail(&e, Exit::Usage),
    };
    let opts = Options {
        address: cli.address,
        node_verify: cli.node_verify.clone(),
        wait: cli.wait.map(std::time::Duration::from_secs),
    };
    let report = match setup::verify(&cfg, &node, &cli.env, &opts) {
        Ok(r) => r,
        Err(e) => return fail(&e, e.exit()),
    };
    output::print(&report, Format::from_json_flag(cli.json));
    match verify::report::conclude(&report, junit) {
        Ok(()) => Exit::Ok,
        Err(Unverified::Failed { junit: None }) => Exit::Failed,
        Err(Unverified::Failed { junit: Some(e) } | Unverified::NotWritten(e)) => {
            fail(&e, Exit::Failed)
        }
    }
}

/// Node side, after ctx-guard allowed it (the execution context is decided before anything
/// else is looked at).
fn node_inspect(allowed: &ctx_guard::Allowed, env: &str) -> Result<(), Failure> {
    let repo = Path::new(NODE_REPO);
    let (_, cfg) = Config::discover(repo).map_err(|e| Failure::of(&e))?;
    let project = Project::for_env(&cfg, repo, env).map_err(|e| Failure::of(&e))?;
    let scope = Scope {
        node: allowed.identity().node.clone(),
        lab: allowed.identity().lab.clone(),
        env: env.to_string(),
        project,
        state_dir: receipts::env_dir(&cfg.state.node_dir, env),
    };
    // The app image variable only has to be set for compose to list services; the
    // receipt's tag is the value lifecycle used.
    let app_image = receipts::read::<BuildReceipt>(&scope.state_dir.join(BUILD_RECEIPT))
        .map(|r| r.tag)
        .unwrap_or_else(|_| "verify-inspect/no-build-receipt".into());
    let declared = inspect::declared_services(&scope.project, &app_image);
    let docker = ReadOnlyDocker::connect();
    let doc = inspect::gather(&scope, docker.as_ref().map_err(|e| e.to_string()), declared);
    let text = serde_json::to_string_pretty(&doc).map_err(|e| {
        Failure::new(
            format!("cannot serialise the inspection: {e}"),
            Exit::Failed,
        )
    })?;
    stackpilot_core::outln!("{text}");
    // The document is printed either way; the exit code still says Docker is missing.
    docker.map(|_| ()).map_err(|e| Failure::of(&e))
}

/// Node side on the manager, after ctx-guard allowed it: the stack's services, tasks and
/// nodes through the read-only facade.
fn node_inspect_swarm(allowed: &ctx_guard::Allowed, env: &str) -> Result<(), Failure> {
    let repo = Path::new(NODE_REPO);
    let (_, cfg) = Config::discover(repo).map_err(|e| Failure::of(&e))?;
    let project = Project::for_env(&cfg, repo, env).map_err(|e| Failure::of(&e))?;
    let scope = SwarmScope {
        node: allowed.identity().node.clone(),
        lab: allowed.identity().lab.clone(),
        env: env.to_string(),
        stack: project.name.clone(),
    };
    // Compose only needs the variable set to list the services; the value is not used.
    let declared = inspect::declared_services(&project, "verify-inspect/swarm");
    let docker = ReadOnlyDocker::connect();
    let doc =
        swarm::inspection::gather(&scope, docker.as_ref().map_err(|e| e.to_string()), declared);
    let text = serde_json::to_string_pretty(&doc).map_err(|e| {
        Failure::new(
            format!("cannot serialise the swarm inspection: {e}"),
            Exit::Failed,
        )
    })?;
    stackpilot_core::outln!("{text}");
    docker.map(|_| ()).map_err(|e| Failure::of(&e))
}
