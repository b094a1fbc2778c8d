//! `cargo xtask`: the golden paths of StackPilot, composed from the tool libraries.
//!
//! Every Makefile target is one `cargo xtask …` call; this binary is where the flows live.

mod bench;
mod check;
mod ci;
mod deploy;
mod drills;
mod golden;
mod lab;
mod run;
mod swarm;
mod target;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stackpilot_core::Exit;

/// StackPilot's golden paths. Use the Makefile targets; they call these.
#[derive(Parser)]
#[command(name = "cargo xtask", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what the test suite needs, then format check, clippy (warnings denied) and
    /// every test of the workspace, the libvirt VM e2e included; the lab images build in the
    /// background meanwhile (`make test`).
    Test,
    /// The libvirt VM e2e alone (make test runs it too): one VM under TCG through the golden
    /// path, drills, deploy, a reboot and destroy (`make test-vm`; about 17 minutes on a
    /// 2-core host).
    TestVm,
    /// Repo-level contracts without Docker: pinned images, no secrets, Makefile and
    /// workflow shape, ctx-guard first, verify read-only; then format, lint, unit tests
    /// (`make check`).
    Check,
    /// Runtime verification with CI authority: capabilities, repo checks, the lab e2e when
    /// the lab can run here (else recorded as skipped), teardown always; logs in ci/logs/
    /// (`make ci`).
    Ci,
    /// List the Makefile targets with their one-line descriptions (`make help`).
    HelpTargets,
    /// Benchmarks, written to docs/benchmarks.md: `api` (mock-exchange on loopback against
    /// a private PostgreSQL, with Postgres's own rate as the ceiling), `golden` (a warm
    /// demo-reviewer and the median of 10 verifications on NODE) or `swarm-orders`
    /// (`POST /order` through one worker's replica and through both, in swarm mode).
    Bench(bench::BenchArgs),
    /// Build every lab image locally (root image with mmdebstrap, then postgres, runtime,
    /// node) from the recipes infra/images/images.lock pins; nothing is pulled and the
    /// lock is not written (what was built is recorded on this host).
    Images {
        /// Pin the recipes on disk in infra/images/images.lock (after changing a recipe on
        /// purpose; commit the lock with it).
        #[arg(long)]
        update_lock: bool,
    },
    /// Lab nodes up, then the stack of ENV started on NODE (`make up`).
    Up(Where),
    /// Forced rebuild from source through the golden path: compile, `docker build
    /// --no-cache` on NODE, recreate, wait healthy, demo order (`make demo`).
    Demo(Where),
    /// Host-driven, read-only verification of ENV on NODE, or with MODE=swarm of ENV's
    /// stack across the swarm (`make verify`).
    Verify {
        #[command(flatten)]
        at: Where,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Also write the report as JUnit XML to FILE.
        #[arg(long, value_name = "FILE")]
        junit: Option<std::path::PathBuf>,
    },
    /// Stop the stack's containers on NODE; images and volumes stay (`make down`).
    Down(Where),
    /// Clean room on NODE: containers, app images and build cache removed, volumes kept
    /// (`make clean`).
    Clean(Where),
    /// Always clean room, then forced rebuild, then full verification (`make demo-reviewer`).
    DemoReviewer(Where),
    /// Stop the stack on every running node, then halt the nodes (`make halt`).
    Halt(Where),
    /// Clean room on every node, then destroy the nodes (`make destroy`).
    Destroy(Where),
    /// A shell on NODE, for debugging only; never part of normal operation (`make shell`).
    Shell(Where),
    /// Staged deploy of ENV to NODE: local verification, artifact integrity, remote
    /// execution, observability; automatic rollback when a stage on the node fails
    /// (`make deploy`). `live` needs CONFIRM_LIVE=yes.
    Deploy(DeployArgs),
    /// Deployed release of ENV on NODE (when, by whom), containers, health and readiness;
    /// exit 1 when the stack is down (`make status`).
    Status {
        #[command(flatten)]
        at: Where,
        /// Print the status as JSON (only JSON on stdout).
        #[arg(long)]
        json: bool,
    },
    /// Stop ENV's stack cleanly and start the deployed release again (`make restart`).
    Restart(Where),
    /// Tail ENV's service logs on NODE; TAIL= lines, FOLLOW=no to print and exit
    /// (`make logs`).
    Logs {
        #[command(flatten)]
        at: Where,
        /// Lines from the end: a positive number or `all` (not `LINES`: the shell sets that
        /// to the terminal's height).
        #[arg(long, env = "TAIL", default_value = "100", value_parser = ::deploy::cli::tail_lines)]
        lines: String,
        /// Keep following (`yes` or `no`; `no` prints and exits).
        #[arg(long, env = "FOLLOW", default_value = "yes", value_parser = ::deploy::cli::yes_no, action = clap::ArgAction::Set)]
        follow: bool,
    },
    /// Stop ENV's stack on NODE; images, volumes and the deploy record stay (`make stop`).
    Stop(Where),
    /// Switch ENV back to its previous release, prove it, record it (`make rollback`).
    Rollback(Where),
    /// The three-node lab through Vagrant: up, status, halt, destroy, verify, inventory.
    #[command(subcommand)]
    Lab(lab::LabCmd),
    /// Failure drills with measured recovery: `list`, `run <name>|all` (`make drill`,
    /// `make drills`).
    #[command(subcommand)]
    Drills(drills::DrillsCmd),
}

/// Which node and environment a golden command operates on.
#[derive(clap::Args)]
struct Where {
    /// The lab node.
    #[arg(long, env = "NODE", default_value = "control")]
    node: String,
    /// The environment of stackpilot.toml.
    #[arg(long, env = "ENV", default_value = "dev")]
    env: String,
    /// `compose` or `swarm`; default: the environment's `mode` in stackpilot.toml.
    #[arg(long, env = "MODE")]
    mode: Option<stackpilot_core::config::Mode>,
}

/// Arguments of `cargo xtask deploy`.
#[derive(clap::Args)]
struct DeployArgs {
    #[command(flatten)]
    at: Where,
    /// Override a compose variable for this release (tests and drills), KEY=VALUE.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = lifecycle::parse_override)]
    overrides: Vec<(String, String)>,
    /// Health gate of the switch: seconds until every container must be healthy.
    #[arg(
        long,
        value_name = "SECS",
        env = "HEALTH_TIMEOUT",
        default_value_t = 90
    )]
    health_timeout: u64,
    /// Stage 4's observation window, seconds.
    #[arg(
        long,
        value_name = "SECS",
        env = "OBSERVE_WINDOW",
        default_value_t = 12
    )]
    window: u64,
    /// Stage 4's most error lines allowed in the window.
    #[arg(long, value_name = "N", env = "MAX_ERRORS", default_value_t = 0)]
    max_errors: usize,
    /// The live confirmation (`yes`).
    #[arg(long, env = "CONFIRM_LIVE", hide_env_values = true)]
    confirm_live: Option<String>,
}

impl Where {
    fn target(&self) -> Result<target::Target, run::Error> {
        target::Target::new(&self.node, &self.env)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Test => test::run(),
        Cmd::TestVm => test::vm(),
        Cmd::Check => check::run(),
        Cmd::Ci => ci::run(),
        Cmd::HelpTargets => help_targets(),
        Cmd::Bench(args) => bench::run(&args),
        Cmd::Images { update_lock } => lab::discover().and_then(|(root, cfg)| {
            ::lab::images::run(&root, &cfg, update_lock).map_err(run::Error::from)
        }),
        Cmd::Lab(cmd) => lab::run(cmd),
        Cmd::Drills(cmd) => drills::run(cmd),
        Cmd::Deploy(a) => {
            let opts = deploy::DeployOpts {
                overrides: a.overrides,
                health_timeout: a.health_timeout,
                observe: ::deploy::plan::ObservePolicy {
                    window_secs: a.window,
                    max_errors: a.max_errors,
                },
                confirm: a.confirm_live,
            };
            a.at.run(
                |t| deploy::deploy(t, &opts),
                |t| swarm::deploy_swarm(t, &opts),
            )
        }
        Cmd::Status { at, json } => {
            at.run(|t| deploy::status(t, json), swarm::not_in_swarm("status"))
        }
        Cmd::Restart(w) => w.run(
            |t| deploy::act(t, ::deploy::host::Action::Restart),
            swarm::not_in_swarm("restart"),
        ),
        Cmd::Logs { at, lines, follow } => at.run(
            |t| golden::logs(t, &lines, follow),
            swarm::not_in_swarm("logs"),
        ),
        Cmd::Stop(w) => w.run(
            |t| deploy::act(t, ::deploy::host::Action::Stop),
            swarm::not_in_swarm("stop"),
        ),
        Cmd::Rollback(w) => w.run(
            |t| deploy::act(t, ::deploy::host::Action::Rollback),
            swarm::rollback_swarm,
        ),
        Cmd::Up(w) => w.run(golden::up, swarm::up),
        Cmd::Demo(w) => w.run(golden::demo, swarm::demo),
        Cmd::Verify { at, json, junit } => at.run(
            |t| golden::verify(t, json, junit.as_deref()),
            |t| swarm::verify(t, json, junit.as_deref()),
        ),
        Cmd::Down(w) => w.run(golden::down, swarm::down),
        Cmd::Clean(w) => w.run(golden::clean, swarm::clean),
        Cmd::DemoReviewer(w) => w.run(golden::demo_reviewer, swarm::demo_reviewer),
        Cmd::Halt(w) => w.target().and_then(|t| golden::halt(&t)),
        Cmd::Destroy(w) => w.target().and_then(|t| golden::destroy(&t)),
        Cmd::Shell(w) => w.target().and_then(|t| golden::shell(&t)),
    };
    match result {
        Ok(()) => Exit::Ok.into(),
        Err(e) => {
            eprintln!("xtask: {e}");
            e.exit().into()
        }
    }
}

/// Prints the `## ` descriptions of the Makefile's targets.
fn help_targets() -> Result<(), run::Error> {
    let path = run::repo_root().join("Makefile");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        run::Error::from(stackpilot_core::step::StepError {
            step: "help".into(),
            cmd: format!("read {}", path.display()),
            status: e.to_string(),
        })
    })?;
    for (target, doc) in contracts::target_docs(&text) {
        stackpilot_core::outln!("  make {target:<16} {doc}");
    }
    Ok(())
}
