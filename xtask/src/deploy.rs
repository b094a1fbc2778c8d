//! `make deploy|status|restart|logs|stop|rollback`: adapters of this lab's node and this
//! machine for the `deploy::host` flows, which hold the decisions; argument mapping only.

use std::time::Duration;

use deploy::host::flow::{LabImage, ReleaseBuild};
use deploy::host::workshop::Workshop;
use deploy::host::{self, Capture, DeployRequest, HostError, NodeOps, Records, Verified};
use deploy::plan::ObservePolicy;
use stackpilot_core::argv::{ToArgv, ToolCall};
use stackpilot_core::http::{self, Timeouts};
use stackpilot_core::images;
use stackpilot_core::output::{Format, print};

use crate::golden;
use crate::run::{Error, Phases};
use crate::target::Target;
use ::lab::build::{self, BuildInfo};

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
pub(crate) struct Node<'a>(pub(crate) &'a Target);

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

fn handle(t: &Target) -> Result<stackpilot_core::node::NodeHandle, HostError> {
    t.handle().map_err(|e| host_err("deploy", e))
}

fn host_err(action: &str, e: impl std::fmt::Display) -> HostError {
    HostError::failed(action, e.to_string())
}

/// A flow's failure as xtask reports it (exit codes of ARCHITECTURE.md).
pub(crate) fn to_error(e: HostError) -> Error {
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
pub(crate) fn request(t: &Target, opts: &DeployOpts) -> Result<(DeployRequest, BuildInfo), Error> {
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
pub(crate) fn refuse_early(t: &Target, opts: &DeployOpts) -> Result<(), Error> {
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
        &workshop(t, info),
        &Records::new(&t.root, &t.cfg.state.host_dir, &t.node, &t.env),
        &by,
        &req,
        &mut report,
    );
    done(&report, &phases, r)
}

/// This checkout as the workshop the release is built and proven in.
pub(crate) fn workshop(t: &Target, info: BuildInfo) -> Workshop {
    let (root, cfg) = (t.root.clone(), t.cfg.clone());
    Workshop { root, cfg, info }
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
