//! The `verify` binary: parses arguments, calls the library, prints, maps to exit codes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stackpilot_core::compose::Project;
use stackpilot_core::exit::{ExitStatus, Failure};
use stackpilot_core::facade::ReadOnlyDocker;
use stackpilot_core::node::NODE_REPO;
use stackpilot_core::output::{self, Format};
use stackpilot_core::receipts::{self, BUILD_RECEIPT, BuildReceipt};
use stackpilot_core::{Config, Exit};
use verify::inspect::{self, Scope};
use verify::report::JunitFile;
use verify::setup::{self, Options};

/// Host-driven, read-only verification of one environment on a lab node: the definition
/// of "working".
///
/// Layers, in order, each failure marking the layers above it "not run": 1 node reachable
/// and itself; 2 TCP connect to the service port; 3 /health alive, /ready ready, /version
/// equal to the build receipt; 4 node-side inspection (containers running and healthy,
/// compose wiring, no hidden containers); 5 provenance (running image = receipt, created
/// after the last clean room, build-id label). Exit 0 only when every check passed, 1 when
/// one failed, 2 on usage or configuration errors, 3 when `inspect` runs outside a node's
/// /vagrant, 4 when a prerequisite (Docker) is missing.
#[derive(Parser)]
#[command(name = "verify", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Node to verify (default: the control node).
    #[arg(long, value_name = "NODE", env = "NODE")]
    node: Option<String>,
    /// Environment to verify.
    #[arg(long, value_name = "ENV", default_value = "dev")]
    env: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also write the report as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Probe this address instead of the node's inventory address for the provider in use
    /// (the provider comes from STACKPILOT_PROVIDER, else how the node was created).
    #[arg(long, value_name = "IP")]
    address: Option<std::net::IpAddr>,
    /// Verify again until every check passes or SECS seconds have passed; prints only the
    /// final report.
    #[arg(long, value_name = "SECS")]
    wait: Option<u64>,
    /// Path of the verify binary inside the node.
    #[arg(long, value_name = "PATH", env = "STACKPILOT_NODE_VERIFY")]
    node_verify: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Node side: print the environment's facts from the node's engine, compose and
    /// receipts as one JSON document (read-only; refused outside a node's /vagrant).
    Inspect {
        /// Environment to inspect.
        #[arg(long, value_name = "ENV", default_value = "dev")]
        env: String,
        /// Print JSON (the only format; accepted for symmetry with the host side).
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Inspect { env, json: _ }) => {
            ctx_guard::node_main("verify", "make verify", |allowed| {
                node_inspect(allowed, &env)
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
    let verdict = if report.passed {
        Exit::Ok
    } else {
        Exit::Failed
    };
    match junit.map(|j| j.write(&report)) {
        // A report that could not be written is an error, but never hides a failed check.
        Some(Err(e)) if verdict == Exit::Ok => fail(&e, Exit::Failed),
        Some(Err(e)) => fail(&e, verdict),
        _ => verdict,
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
