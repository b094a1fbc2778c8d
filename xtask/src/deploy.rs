//! `make deploy|status|restart|logs|stop|rollback`: adapters of this lab's node and this
//! machine for the `deploy::host` flows, which hold the decisions; argument mapping only.

use std::time::Duration;

use deploy::host::flow::{LabImage, ReleaseBuild};
use deploy::host::swarm::{Pinned, ServiceView, SwarmOps};
use deploy::host::{self, BuildOps, Capture, DeployRequest, HostError, NodeOps, Records, Verified};
use deploy::local::{self, LocalReport, LocalSpec};
use deploy::plan::ObservePolicy;
use deploy::plan::Release;
use stackpilot_core::argv::{ToArgv, ToolCall};
use stackpilot_core::http::{self, Timeouts};
use stackpilot_core::images;
use stackpilot_core::output::{Format, print};

use crate::golden;
use crate::run::Error;
use crate::run::Phases;
use crate::swarm;
use crate::target::Target;
use ::lab::build::{self, BuildInfo};
use ::lab::swarm::stack::Deployed as SwarmDeployed;
use ::lab::swarm::{Stack, Swarm, registry};
use stackpilot_core::receipts::BuildReceipt;

/// Choices of one deploy: compose overrides (tests, drills), the health gate (seconds),
/// stage 4's policy, the live confirmation's value.
#[derive(Debug, Clone)]
pub struct DeployOpts {
    pub overrides: Vec<(String, String)>,
    pub health_timeout: u64,
    pub observe: ObservePolicy,
    pub confirm: Option<String>,
}

/// The lab node of a target, as the deploy flows drive it.
struct Node<'a>(&'a Target);

impl NodeOps for Node<'_> {
    fn node(&self) -> &str {
        &self.0.node
    }

    fn run_tool(&self, call: &ToolCall) -> Result<Capture, HostError> {
        let (tool, bin) = (call.tool, build::node_binary(call.tool));
        let argv = call.argv(&bin);
        let line = format!("[{}] {}", self.0.node, argv.join(" "));
        eprintln!("==> {line}");
        let tr = self.0.transport().map_err(|e| host_err(tool, e))?;
        let out = tr
            .command(&argv, false)
            .output()
            .map_err(|e| HostError::failed(tool, format!("could not start `{line}`: {e}")))?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        eprint!("{text}");
        Ok(Capture {
            line,
            ok: out.status.success(),
            out: text,
        })
    }

    fn image_id(&self, tag: &str) -> Result<Option<String>, HostError> {
        let tr = self.0.transport().map_err(|e| host_err("deploy", e))?;
        let argv = ["docker", "image", "inspect", "--format", "{{.Id}}", tag];
        Ok(tr
            .output(&argv, Duration::from_secs(30))
            .ok()
            .map(|s| s.trim().to_string()))
    }

    fn load_image(&self, tag: &str, id: &str) -> Result<String, HostError> {
        let tr = self.0.transport().map_err(|e| host_err("deploy", e))?;
        let mut save = std::process::Command::new("docker");
        save.args(["save", tag]);
        let call = lifecycle::cli::Cmd::LoadImage {
            tag: tag.into(),
            file: None,
            expect_id: Some(id.into()),
            json: false,
        }
        .call();
        let bin = build::node_binary(call.tool);
        let argv = call.argv(&bin);
        let line = format!("docker save {tag} | [{}] {}", self.0.node, argv.join(" "));
        eprintln!("==> {line}");
        let out = tr
            .pipe_from(&mut save, &argv)
            .map_err(|e| host_err("deploy", e))?;
        Ok(format!("$ {line}\n{out}"))
    }

    fn verify(&self, env: &str, wait: Option<Duration>) -> Result<Verified, HostError> {
        let t = self.0;
        let opts = verify::setup::Options {
            wait,
            ..Default::default()
        };
        // The node handle the target resolved once (address, transport, provider facts).
        let r = verify::setup::verify(
            &t.lab_cfg().map_err(|e| host_err("deploy", e))?,
            &handle(t)?,
            env,
            &opts,
        )
        .map_err(|e| HostError::Usage(e.to_string()))?;
        Ok(Verified {
            passed: r.passed,
            report: stackpilot_core::output::Render::human(&r),
        })
    }

    fn http_get(&self, env: &str, path: &str) -> Result<(u16, String), String> {
        let port = self
            .0
            .cfg
            .environment(env)
            .map_err(|e| e.to_string())?
            .port();
        let address = handle(self.0).map_err(|e| e.to_string())?.address;
        let base = format!("http://{address}:{port}");
        let p = http::get(&format!("{base}{path}"), Timeouts::default());
        match p.answer() {
            Some((code, body)) => Ok((code, body.to_string())),
            None => Err(format!("{:?}", p.outcome)),
        }
    }
}

/// This machine, where releases are compiled, built and proven first.
struct Workshop<'a> {
    t: &'a Target,
    info: BuildInfo,
}

impl BuildOps for Workshop<'_> {
    fn root(&self) -> &std::path::Path {
        &self.t.root
    }

    fn compile(&self) -> Result<(), String> {
        build::compile_for_nodes(&self.t.root, &self.info).map_err(|e| e.to_string())
    }

    fn run_locally(&self, spec: &LocalSpec, tag: &str) -> LocalReport {
        local::verify(spec, tag)
    }

    fn image_id(&self, reference: &str) -> Result<String, String> {
        let out = std::process::Command::new("docker")
            .args(["image", "inspect", "--format", "{{.Id}}", reference])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    fn compose_config(&self, vars: &local::ComposeVars<'_>) -> Result<(String, String), String> {
        local::compose_config(&self.t.cfg, &self.t.root, vars)
    }
}

fn handle(t: &Target) -> Result<stackpilot_core::node::NodeHandle, HostError> {
    t.handle().map_err(|e| host_err("deploy", e))
}

fn host_err(action: &str, e: impl std::fmt::Display) -> HostError {
    HostError::failed(action, e.to_string())
}

/// A flow's failure as xtask reports it (exit codes of ARCHITECTURE.md).
fn to_error(e: HostError) -> Error {
    use stackpilot_core::exit::ExitStatus;
    match (e.exit(), e) {
        (_, HostError::Usage(m)) => Error::Usage(m),
        (_, HostError::Failed { action, reason }) => {
            Error::from(stackpilot_core::step::StepError {
                cmd: format!("cargo xtask {action}"),
                step: action,
                status: reason,
            })
        }
        (stackpilot_core::Exit::Usage, e) => Error::Usage(e.to_string()),
        (stackpilot_core::Exit::PrereqMissing, e) => {
            Error::from(stackpilot_core::step::HostError::Prereq {
                what: e.to_string(),
                install: "see docs/DEPLOYMENT.md, prerequisites".into(),
            })
        }
        (_, e) => Error::from(stackpilot_core::step::StepError {
            step: "deploy".into(),
            cmd: "cargo xtask deploy".into(),
            status: e.to_string(),
        }),
    }
}

/// Prints the flow's report (stdout) and the phase timings (stderr); maps its failure.
fn done(report: &str, phases: &Phases, r: Result<(), HostError>) -> Result<(), Error> {
    stackpilot_core::out!("{report}");
    eprint!("{}", phases.summary());
    r.map_err(to_error)
}

/// The request of one deploy of ENV from this checkout, gathered at the edge: the env
/// file checked, the locked images, the build's identity.
fn request(t: &Target, opts: &DeployOpts) -> Result<(DeployRequest, BuildInfo), Error> {
    let env = t.cfg.environment(&t.env)?;
    let env_file = env.env_file.display().to_string();
    let vars = host::preflight(&t.root, &env.env_file, &t.env, opts.confirm.as_deref())
        .map_err(to_error)?;
    let (lock, lock_path) = t.lock()?;
    let locked = |name: &str| -> Result<LabImage, Error> {
        let Some(entry) = lock.derived(name) else {
            return Err(Error::from(stackpilot_core::step::StepError {
                step: "deploy".into(),
                cmd: "cargo xtask deploy".into(),
                status: format!(
                    "{} lacks the {name} entry: run `cargo xtask images`",
                    lock_path.display()
                ),
            }));
        };
        // The lock pins recipes and tags; the ids are what this host built for them.
        Ok(LabImage {
            id: ::lab::images::host_id(&entry.tag)?,
            tag: entry.tag.clone(),
        })
    };
    let (runtime, postgres) = (locked(images::RUNTIME)?, locked(images::POSTGRES)?);
    let info = BuildInfo::collect(&t.root)?;
    let tag = lifecycle::image_tag(&info.git_sha, &info.build_id)
        .map_err(|e| Error::Usage(e.to_string()))?;
    let req = DeployRequest {
        env: t.env.clone(),
        source_digest: host::identity::source_digest(&t.root, build::TARGET, &runtime.id)
            .map_err(to_error)?,
        config_artifacts: host::identity::config_artifacts(&t.root, &env_file).map_err(to_error)?,
        env_file,
        vars,
        overrides: opts.overrides.clone(),
        health_timeout: opts.health_timeout,
        observe: opts.observe,
        release: ReleaseBuild {
            tag,
            build_id: info.build_id.clone(),
            git_sha: info.git_sha.clone(),
            dirty: info.dirty,
            built_at: info.build_time.clone(),
        },
        binary: format!("target/{}/release/mock-exchange", build::TARGET),
        runtime,
        postgres,
    };
    Ok((req, info))
}

/// Bad input (env file, live confirmation) is refused before the lab is touched.
fn refuse_early(t: &Target, opts: &DeployOpts) -> Result<(), Error> {
    let env = t.cfg.environment(&t.env)?;
    host::preflight(&t.root, &env.env_file, &t.env, opts.confirm.as_deref())
        .map(drop)
        .map_err(to_error)
}

/// `make deploy ENV=…`.
pub fn deploy(t: &Target, opts: &DeployOpts) -> Result<(), Error> {
    let mut phases = Phases::default();
    refuse_early(t, opts)?;
    golden::prepare(t, &mut phases)?;
    let (req, info) = request(t, opts)?;
    let mut report = String::new();
    let by = deploy::evidence::who();
    let r = host::deploy(
        &Node(t),
        &Workshop { t, info },
        &Records::new(&t.root, &t.cfg.state.host_dir, &t.node, &t.env),
        &by,
        &req,
        &mut report,
    );
    done(&report, &phases, r)
}

/// The swarm of the lab as the swarm deploy flows drive it: the lab registry, the env's
/// stack on the manager, the host's record of what is deployed, swarm verify.
struct SwarmSide<'a> {
    t: &'a Target,
    swarm: &'a Swarm,
    manager: Node<'a>,
    stack: Stack,
}

/// The host's records of swarm deploys: `deploys/swarm/<env>` (the lock is the manager's).
fn swarm_records(t: &Target) -> Records {
    Records::new(&t.root, &t.cfg.state.host_dir, "swarm", &t.env)
}

fn pinned(d: &SwarmDeployed) -> Pinned {
    let b = &d.build;
    Pinned {
        reference: d.app_image.clone(),
        release: Release {
            tag: b.tag.clone(),
            image_id: b.image_id.clone(),
            build_id: b.build_id.clone(),
            git_sha: b.git_sha.clone(),
            dirty: b.dirty,
            built_at: b.built_at.clone(),
            // The swarm record keeps the build, not what it was made from.
            source_digest: String::new(),
            config_digest: String::new(),
            overrides: vec![],
        },
    }
}

impl SwarmSide<'_> {
    fn receipt(&self, r: &Release) -> BuildReceipt {
        deploy::node::receipt_for(&self.t.env, r)
    }

    fn deployed_record(&self, p: &Pinned, previous: Option<SwarmDeployed>) -> SwarmDeployed {
        SwarmDeployed {
            stack: self.stack.name.clone(),
            app_image: p.reference.clone(),
            build: self.receipt(&p.release),
            deployed_at: stackpilot_core::time::now_rfc3339(),
            previous: previous.map(Box::new),
        }
    }
}

impl SwarmOps for SwarmSide<'_> {
    fn push(&self, release: &Release) -> Result<(String, String), HostError> {
        let mut log = match self.manager.image_id(&release.tag)? {
            Some(id) if id == release.image_id => format!(
                "{} already in the manager's engine as {id}: not loaded again\n",
                release.tag
            ),
            _ => self.manager.load_image(&release.tag, &release.image_id)?,
        };
        let reference = self
            .swarm
            .registry()
            .push(&release.tag, &self.stack.name)
            .map_err(|e| host_err("deploy", e))?;
        log.push_str(&format!("pushed {} as {reference}\n", release.tag));
        Ok((log, reference))
    }

    fn registry_digest(&self, release: &Release) -> Result<String, HostError> {
        self.swarm
            .registry()
            .digest(&self.stack.name, registry::version_of(&release.tag))
            .map_err(|e| host_err("deploy", e))
    }

    fn deployed(&self) -> (Option<Pinned>, Option<Pinned>) {
        let cfg = &self.t.cfg;
        match self.stack.deployed(&self.t.root, cfg) {
            None => (None, None),
            Some(d) => (Some(pinned(&d)), d.previous.as_deref().map(pinned)),
        }
    }

    fn update(&self, to: &Pinned) -> Result<String, HostError> {
        let cfg = self.t.lab_cfg().map_err(|e| host_err("deploy", e))?;
        self.stack
            .update(
                &self.t.root,
                &cfg,
                self.swarm,
                to.reference.clone(),
                self.receipt(&to.release),
            )
            .map_err(|e| host_err("deploy", e))?;
        Ok(format!(
            "docker stack deploy {} on {} with the api pinned to {}; recorded as deployed\n",
            self.stack.name, self.swarm.manager.name, to.reference
        ))
    }

    fn record(&self, current: &Pinned, previous: Option<&Pinned>) -> Result<(), HostError> {
        let before = previous.map(|p| self.deployed_record(p, None));
        let d = self.deployed_record(current, before);
        self.stack
            .record(&self.t.root, &self.t.cfg, &d)
            .map_err(|e| host_err("deploy", e))
    }

    fn rollback(&self) -> Result<String, HostError> {
        self.stack
            .rollback_api(self.swarm)
            .map_err(|e| host_err("rollback", e))
    }

    fn view(&self) -> Result<ServiceView, HostError> {
        self.stack
            .api_view(self.swarm)
            .map_err(|e| host_err("deploy", e))
    }

    fn remove(&self) -> Result<String, HostError> {
        self.stack
            .remove(self.swarm)
            .map_err(|e| host_err("deploy", e))?;
        Ok(format!(
            "stack {} removed (volumes kept)\n",
            self.stack.name
        ))
    }

    fn verify(&self, wait: Option<Duration>) -> Result<Verified, HostError> {
        let (t, cfg) = (self.t, &self.t.cfg);
        let opts = verify::setup::Options {
            wait,
            ..Default::default()
        };
        let deployed = verify::swarm::setup::deployed(&t.root, cfg, &t.env);
        let r = verify::swarm::setup::verify(cfg, &self.swarm.nodes, &t.env, deployed, &opts)
            .map_err(|e| HostError::Usage(e.to_string()))?;
        Ok(Verified {
            passed: r.passed,
            report: stackpilot_core::output::Render::human(&r),
        })
    }
}

/// The lab up with its swarm and registry, then `flow` on the env's stack; its report on
/// stdout.
fn on_swarm(
    t: &Target,
    flow: impl FnOnce(&SwarmSide<'_>, &mut String) -> Result<(), Error>,
) -> Result<(), Error> {
    swarm::timed(t, |s, _| {
        let manager = t.on(s.manager.name.clone());
        let side = SwarmSide {
            t,
            swarm: s,
            manager: Node(&manager),
            stack: Stack::for_env(&t.cfg, &t.env)?,
        };
        let mut report = String::new();
        let r = flow(&side, &mut report);
        stackpilot_core::out!("{report}");
        r
    })
}

/// `make deploy ENV=… MODE=swarm`: the four stages of `deploy::host::swarm`, with the
/// manager's deploy lock.
pub fn deploy_swarm(t: &Target, opts: &DeployOpts) -> Result<(), Error> {
    refuse_early(t, opts)?;
    on_swarm(t, |side, report| {
        let (req, info) = request(t, opts)?;
        let by = deploy::evidence::who();
        let build = Workshop { t, info };
        host::swarm::deploy(
            &side.manager,
            &build,
            side,
            &swarm_records(t),
            &by,
            &req,
            report,
        )
        .map_err(to_error)
    })
}

/// `make rollback ENV=… MODE=swarm`: the service's own rollback to the deployment the
/// current one replaced, proven and recorded.
pub fn rollback_swarm(t: &Target) -> Result<(), Error> {
    on_swarm(t, |side, report| {
        let by = deploy::evidence::who();
        host::swarm::rollback(&side.manager, side, &swarm_records(t), &by, report).map_err(to_error)
    })
}

/// `make rollback|restart|stop ENV=…`: one of the guarded node actions.
pub fn act(t: &Target, action: host::Action) -> Result<(), Error> {
    let mut phases = Phases::default();
    golden::tools(&mut phases)?;
    let (node, recs, by) = (
        Node(t),
        Records::new(&t.root, &t.cfg.state.host_dir, &t.node, &t.env),
        deploy::evidence::who(),
    );
    let mut report = String::new();
    let r = host::act(&node, &recs, &by, action, &mut report);
    done(&report, &phases, r)
}

/// `make status ENV=…`: what runs, and exit 1 when the stack is down.
pub fn status(t: &Target, json: bool) -> Result<(), Error> {
    let mut phases = Phases::default();
    golden::tools(&mut phases)?;
    let report = host::status(&Node(t), &t.env).map_err(to_error)?;
    print(&report, Format::from_json_flag(json));
    match report.down_reason() {
        None => Ok(()),
        Some(why) => Err(Error::from(stackpilot_core::step::StepError {
            step: "status".into(),
            cmd: "cargo xtask status".into(),
            status: format!("{} on {} is down: {why}", t.env, t.node),
        })),
    }
}
