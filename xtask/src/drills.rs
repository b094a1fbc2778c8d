//! `cargo xtask drills`: the failure drills, host-driven, composed from the golden path.
//! The drill logic lives in the `drills` library; this module gives it the lab: golden
//! steps, `lifecycle up --set`, `lifecycle status`, `drills node …` through the transport,
//! and `verify`. Journals go to `<state.host_dir>/runs/`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use drills::cli::NodeCmd;
use drills::swarm::host::SwarmLab;
use drills::{Drill, Golden, LabError, LabOps};
use lifecycle::cli::Cmd as LifecycleCmd;
use stackpilot_core::argv::{ToArgv, ToolCall};
use stackpilot_core::images;
use stackpilot_core::output::{Format, print};

use crate::golden;
use crate::lab::{self, LabCmd};
use crate::run::{Error, Phases};
use crate::target::Target;
use ::lab::build;

/// `cargo xtask drills …`.
#[derive(clap::Subcommand)]
pub enum DrillsCmd {
    /// List the drills: the fault each injects and the expected outcome.
    List,
    /// Run one drill, or `all`, against ENV on NODE; writes a JSON journal per drill under
    /// `<state.host_dir>/runs/` (`make drill NAME=… NODE=…`, `make drills`).
    Run {
        /// A drill name (see `list`) or `all` (`make drill NAME=…`).
        name: Option<String>,
        /// The lab node.
        #[arg(long, env = "NODE", default_value = "control")]
        node: String,
        /// The environment of stackpilot.toml.
        #[arg(long, env = "ENV", default_value = "dev")]
        env: String,
        /// Print the results (every journal) as one JSON document, last on stdout (the golden
        /// steps print their progress before it).
        #[arg(long)]
        json: bool,
        /// Also write the results as JUnit XML to FILE.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Leave the fault in place for investigation: no restoring step, no recovery. The
        /// drill then fails as not recovered; repair the node with `make demo-reviewer`.
        #[arg(long)]
        keep_fault: bool,
        /// Seconds the final verify may wait for the stack to pass again.
        #[arg(long, value_name = "SECS", default_value_t = 90)]
        recovery_wait: u64,
        /// `compose` or `swarm` (whose `all` is the swarm drills, db-down and
        /// db-midflight-loss); default: the env's `mode`.
        #[arg(long, env = "MODE")]
        mode: Option<stackpilot_core::config::Mode>,
    },
    /// Run only a drill's recovery (idempotent) and verify: for a node a drill left broken
    /// (`--keep-fault`, an interrupted run). Injects nothing. A swarm drill recovers
    /// through the lab's swarm (MODE=swarm).
    Recover {
        /// A drill name (see `list`).
        name: String,
        /// NODE, ENV and MODE (a swarm drill recovers through the lab's swarm).
        #[command(flatten)]
        at: crate::Where,
    },
}

/// Runs a `drills` subcommand.
pub fn run(cmd: DrillsCmd) -> Result<(), Error> {
    match cmd {
        DrillsCmd::Recover { name, at } => {
            let t = at.target()?;
            let swarm = t.mode(at.mode)? == stackpilot_core::config::Mode::Swarm;
            let node = &at.node;
            let drill = Drill::select_one(&name, swarm).map_err(Error::Usage)?;
            let mut phases = Phases::default();
            golden::prepare(&t, &mut phases)?;
            let lab = HostLab::new(t)?;
            let on_swarm = lab.on_swarm(swarm)?;
            let ops: &dyn LabOps = on_swarm.as_ref().map_or(&lab, |s| s);
            let rec = drills::recover_only(drill, ops, &drills::Options::default());
            for a in &rec.actions {
                stackpilot_core::outln!("{:<28} {}", a.what, a.detail);
            }
            if rec.verified {
                stackpilot_core::outln!("recovered: {}", rec.reason);
                Ok(())
            } else {
                Err(Error::from(stackpilot_core::step::StepError {
                    step: "drills recover".into(),
                    cmd: format!("drills recover {name} --node {node}"),
                    status: format!(
                        "not recovered: {}; repair the node with make demo-reviewer",
                        rec.reason
                    ),
                }))
            }
        }
        DrillsCmd::List => {
            for d in drills::ALL {
                stackpilot_core::outln!("{:<20} {}", d.name(), d.describe());
            }
            Ok(())
        }
        DrillsCmd::Run {
            name,
            node,
            env,
            json,
            junit,
            keep_fault,
            recovery_wait,
            mode,
        } => {
            let name = name.ok_or_else(|| {
                let names: Vec<&str> = drills::ALL.iter().map(|d| d.name()).collect();
                Error::Usage(format!(
                    "which drill? name it with NAME=<drill> (`make drill NAME=db-down NODE=worker2`) or `cargo xtask drills run <drill>|all`; drills: {}",
                    names.join(", ")
                ))
            })?;
            let t = Target::new(&node, &env)?;
            let swarm = t.mode(mode)? == stackpilot_core::config::Mode::Swarm;
            let selected = Drill::select(&name, swarm).map_err(Error::Usage)?;
            let mut phases = Phases::default();
            golden::prepare(&t, &mut phases)?;
            let lab = HostLab::new(t)?;
            let on_swarm = lab.on_swarm(swarm)?;
            let ops: &dyn LabOps = on_swarm.as_ref().map_or(&lab, |s| s);
            let opts = drills::Options {
                recovery_wait: Duration::from_secs(recovery_wait),
                keep_fault,
            };
            let runs_dir = lab.t.root.join(&lab.t.cfg.state.host_dir).join("runs");
            let mut summary = drills::DrillResults {
                journals: vec![],
                files: vec![],
            };
            for d in selected {
                let j = drills::run(d, ops, &opts);
                summary.files.push(match j.write(&runs_dir) {
                    Ok(p) => p.display().to_string(),
                    Err(e) => {
                        eprintln!("xtask: {e}");
                        format!("not written: {e}")
                    }
                });
                summary.journals.push(j);
            }
            eprint!("\n{}", phases.summary());
            if json {
                match serde_json::to_string_pretty(&summary) {
                    Ok(text) => stackpilot_core::outln!("{text}"),
                    Err(e) => eprintln!("xtask: cannot print the results as JSON: {e}"),
                }
            } else {
                print(&summary, Format::Human);
            }
            if let Some(path) = junit {
                std::fs::write(&path, summary.junit()).map_err(|e| {
                    Error::from(stackpilot_core::step::StepError {
                        step: "drills".into(),
                        cmd: format!("write {}", path.display()),
                        status: e.to_string(),
                    })
                })?;
            }
            if summary.passed() {
                Ok(())
            } else {
                Err(Error::from(stackpilot_core::step::StepError {
                    step: "drills".into(),
                    cmd: format!("drills run {name} --node {}", lab.t.node),
                    status: "a drill did not pass (see the table and journals above)".into(),
                }))
            }
        }
    }
}

/// The lab of one node and environment, through the golden path.
struct HostLab {
    t: Target,
    addr: SocketAddr,
}

impl HostLab {
    fn new(t: Target) -> Result<HostLab, Error> {
        let port = t.cfg.environment(&t.env)?.port();
        let addr = SocketAddr::new(IpAddr::V4(t.handle()?.address), port);
        Ok(HostLab { t, addr })
    }

    /// The lab's swarm over this node's lab, when the drills run in swarm mode.
    fn on_swarm(&self, swarm: bool) -> Result<Option<SwarmLab<'_>>, Error> {
        if !swarm {
            return Ok(None);
        }
        let (root, cfg) = (self.t.root.clone(), self.t.lab_cfg()?);
        SwarmLab::new(self, root, cfg)
            .map(Some)
            .map_err(|e| Error::Usage(e.to_string()))
    }

    fn output(&self, step: &str, call: &ToolCall, timeout: Duration) -> Result<String, LabError> {
        let bin = build::node_binary(call.tool);
        let argv = call.argv(&bin);
        eprintln!("==> [{}] {}", self.t.node, argv.join(" "));
        self.t
            .transport()
            .map_err(|e| LabError::new(step, e))?
            .output(&argv, timeout)
            .map_err(|e| LabError::new(step, e))
    }
}

impl LabOps for HostLab {
    fn node(&self) -> &str {
        &self.t.node
    }

    fn env(&self) -> &str {
        &self.t.env
    }

    fn service_addr(&self) -> SocketAddr {
        self.addr
    }

    fn verify(&self, wait: Option<Duration>) -> Result<verify::Report, LabError> {
        let opts = verify::setup::Options {
            wait,
            ..Default::default()
        };
        let cfg = self.t.lab_cfg().map_err(|e| LabError::new("verify", e))?;
        let node = self.t.handle().map_err(|e| LabError::new("verify", e))?;
        verify::setup::verify(&cfg, &node, &self.t.env, &opts)
            .map_err(|e| LabError::new("verify", e))
    }

    fn status(&self) -> Result<drills::lab::Status, LabError> {
        let status = LifecycleCmd::Status {
            env: self.t.env.clone(),
            json: true,
        };
        let out = self.output("lifecycle status", &status.call(), Duration::from_secs(30))?;
        serde_json::from_str(&out)
            .map_err(|e| LabError::new("lifecycle status", format!("{e}: {out}")))
    }

    fn node_step(&self, step: &NodeCmd) -> Result<String, LabError> {
        self.output(&step.step(), &step.call(), Duration::from_secs(60))
    }

    fn start(&self, overrides: &[(&str, &str)]) -> Result<(), LabError> {
        let step = "lifecycle up";
        let (lock, path) = self.t.lock().map_err(|e| LabError::new(step, e))?;
        let db = lock
            .tag(images::POSTGRES, &path)
            .map_err(|e| LabError::new(step, e))?
            .to_string();
        let sets = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.t
            .node_step(&golden::lifecycle_up(&self.t.env, false, db, sets, 120).call())
            .map_err(|e| LabError::new(step, e))
    }

    fn golden(&self, step: Golden) -> Result<(), LabError> {
        let nodes = vec![self.t.node.clone()];
        // `drills run` brought the node up and compiled the tools once (golden::prepare);
        // these are the phases `make up|down|clean|demo` run after that preparation.
        let t = &self.t;
        let r = match step {
            Golden::Up => golden::start(t, false),
            Golden::Down => t.node_step(&LifecycleCmd::down(&t.env).call()),
            Golden::Clean => t.node_step(&clean_room::cli::Cli::env(&t.env).call()),
            Golden::Demo => {
                let mut phases = Phases::default();
                golden::build_image(t, &mut phases)
                    .and_then(|_| phases.run("start + healthy", || golden::start(t, true)))
                    .and_then(|()| phases.run("demo order", || golden::demo_order(&t.base_url()?)))
            }
            Golden::Build => golden::build_image(t, &mut Phases::default()).map(drop),
            Golden::HaltNode => lab::run(LabCmd::Halt { nodes }),
            Golden::StartNode => lab::run(LabCmd::Up { nodes }),
        };
        r.map_err(|e| LabError::new(step.command(), e))
    }
}
