//! The golden paths: the only supported way to start, stop, clean, rebuild and verify the
//! service, from the host. Node-side steps run the statically built tools inside the node
//! from /vagrant through the node's transport; every one of them calls ctx-guard first.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use stackpilot_core::Config;
use stackpilot_core::http::{self, Timeouts};
use stackpilot_core::images::{self, ImageLock};
use stackpilot_core::node::NodeHandle;
use stackpilot_core::time;
use stackpilot_core::transport::Transport;

use crate::lab::{self, LabCmd};
use crate::run::{Error, repo_root};
use ::lab::build::{self, BuildInfo};

/// What a golden command operates on: one node, one environment.
#[derive(Debug, Clone)]
pub struct Target {
    /// The repo root on the host.
    pub root: PathBuf,
    /// The lab configuration.
    pub cfg: Config,
    /// The node (`NODE=`).
    pub node: String,
    /// The environment (`ENV=`).
    pub env: String,
    /// The node, resolved once Vagrant has created it (see [`Target::handle`]).
    handle: std::sync::OnceLock<NodeHandle>,
}

impl Target {
    /// Reads stackpilot.toml and checks that NODE and ENV are known.
    pub fn new(node: &str, env: &str) -> Result<Target, Error> {
        let root = repo_root();
        let cfg = Config::load(&root.join(stackpilot_core::config::CONFIG_FILE))?;
        cfg.node(node)?;
        cfg.environment(env)?;
        Ok(Target {
            root,
            cfg,
            node: node.to_string(),
            env: env.to_string(),
            handle: std::sync::OnceLock::new(),
        })
    }

    /// The same checkout and environment on another node (resolved afresh).
    pub fn on(&self, node: String) -> Target {
        Target {
            node,
            handle: std::sync::OnceLock::new(),
            ..self.clone()
        }
    }

    /// The node, resolved by `lab::resolve`. Once the node is created the handle is kept:
    /// golden commands bring their node up first, so an earlier resolution would lack it.
    pub fn handle(&self) -> Result<NodeHandle, Error> {
        if let Some(h) = self.handle.get() {
            return Ok(h.clone());
        }
        // The configuration as it is now: `lab up` records the lab's subnet.
        let h = ::lab::resolve(&self.root, &self.lab_cfg()?, &self.node)?;
        if h.transport.is_some() {
            let _ = self.handle.set(h.clone());
        }
        Ok(h)
    }

    /// The configuration as it is now: `lab up` may have chosen the lab's subnet after this
    /// target was made, and node addresses come from it.
    pub fn lab_cfg(&self) -> Result<Config, Error> {
        Ok(Config::load(
            &self.root.join(stackpilot_core::config::CONFIG_FILE),
        )?)
    }

    /// How the host runs a command in the node.
    pub fn transport(&self) -> Result<Transport, Error> {
        Ok(self.handle()?.transport()?.clone())
    }

    /// `http://<node address>:<env port>`.
    pub fn base_url(&self) -> Result<String, Error> {
        let env = self.cfg.environment(&self.env)?;
        Ok(format!("http://{}:{}", self.handle()?.address, env.port()))
    }

    pub fn lock(&self) -> Result<(ImageLock, PathBuf), Error> {
        let path = ImageLock::path(&self.root);
        match ImageLock::read(&path)? {
            Some(lock) => Ok((lock, path)),
            None => Err(Error::StepFailed {
                step: "images".into(),
                cmd: format!("read {}", path.display()),
                status: "no image lock: run `cargo xtask images` (make up does it)".into(),
            }),
        }
    }

    /// Runs a node-side tool inside the node from /vagrant, its output streamed to stderr
    /// as progress (stdout stays for the command's own result).
    pub fn node_step(&self, tool: &str, args: &[&str]) -> Result<(), Error> {
        let bin = build::node_binary(tool);
        let mut argv = vec![bin.as_str()];
        argv.extend_from_slice(args);
        eprintln!("==> [{}] {}", self.node, argv.join(" "));
        self.transport()?
            .stream_progress(&argv)
            .map_err(Error::from)
    }

    /// Runs a node-side tool whose output is the command's result (logs), on stdout.
    pub fn node_output(&self, tool: &str, args: &[&str]) -> Result<(), Error> {
        let bin = build::node_binary(tool);
        let mut argv = vec![bin.as_str()];
        argv.extend_from_slice(args);
        eprintln!("==> [{}] {}", self.node, argv.join(" "));
        self.transport()?.stream(&argv).map_err(Error::from)
    }

    /// Whether the env has a build receipt on the node (an app image was built there).
    pub fn has_build_receipt(&self) -> Result<bool, Error> {
        let path = stackpilot_core::receipts::env_dir(&self.cfg.state.node_dir, &self.env)
            .join(stackpilot_core::receipts::BUILD_RECEIPT);
        let path = path.display().to_string();
        Ok(self
            .transport()?
            .output(&["test", "-f", &path], Duration::from_secs(30))
            .is_ok())
    }
}

/// Brings NODE up (created, provisioned, images loaded); a no-op when it already is.
fn lab_up(t: &Target) -> Result<(), Error> {
    lab::run(LabCmd::Up {
        nodes: vec![t.node.clone()],
    })
}

/// `make verify`: host-driven, read-only verification of ENV on NODE. Prints one report
/// (human table or JSON), optionally JUnit XML; fails unless every check passed.
pub fn verify(t: &Target, json: bool, junit: Option<&Path>) -> Result<(), Error> {
    // An unwritable report path is refused before anything is verified.
    let junit = junit
        .map(verify::report::JunitFile::create)
        .transpose()
        .map_err(Error::Usage)?;
    let opts = verify::setup::Options::default();
    let report = verify::setup::verify(&t.lab_cfg()?, &t.handle()?, &t.env, &opts)
        .map_err(|e| Error::Usage(e.to_string()))?;
    stackpilot_core::output::print(
        &report,
        stackpilot_core::output::Format::from_json_flag(json),
    );
    let written = junit.map(|j| j.write(&report)).transpose();
    if report.passed {
        written.map_err(|e| Error::StepFailed {
            step: "verify".into(),
            cmd: "write the JUnit report".into(),
            status: e,
        })?;
        Ok(())
    } else {
        Err(Error::StepFailed {
            step: "verify".into(),
            cmd: format!("verify --node {} --env {}", t.node, t.env),
            status: match written {
                Err(e) => format!("verification failed (see the report above); also {e}"),
                Ok(_) => "verification failed (see the report above)".into(),
            },
        })
    }
}

/// `make halt`: stop the stack on every running node, then halt the nodes.
pub fn halt(t: &Target) -> Result<(), Error> {
    let mut phases = Phases::default();
    tools(&mut phases)?;
    for node in running_nodes(t) {
        let on = t.on(node);
        phases.run(&format!("down on {}", on.node), || {
            on.node_step("lifecycle", &["down", "--env", &on.env])
        })?;
    }
    phases.run("halt nodes", || lab::run(LabCmd::Halt { nodes: vec![] }))?;
    eprint!("{}", phases.summary());
    Ok(())
}

/// `make destroy`: clean room on every created node (every environment), then destroy
/// the nodes; nothing of the lab is left running.
pub fn destroy(t: &Target) -> Result<(), Error> {
    let mut phases = Phases::default();
    tools(&mut phases)?;
    let envs: Vec<String> = t.cfg.environments.keys().cloned().collect();
    for node in running_nodes(t) {
        let on = t.on(node);
        for env in &envs {
            phases.run(&format!("clean room {env} on {}", on.node), || {
                on.node_step("clean-room", &["--env", env])
            })?;
        }
    }
    phases.run("destroy nodes", || {
        lab::run(LabCmd::Destroy { nodes: vec![] })
    })?;
    eprint!("{}", phases.summary());
    Ok(())
}

/// Nodes whose engine answers now (created and running).
pub fn running_nodes(t: &Target) -> Vec<String> {
    t.lab_cfg()
        .and_then(|cfg| Ok(::lab::resolve_all(&t.root, &cfg)?))
        .unwrap_or_default()
        .into_iter()
        .filter(|n| {
            n.transport().is_ok_and(|tr| {
                tr.output(
                    &["docker", "info", "--format", "{{.ID}}"],
                    Duration::from_secs(20),
                )
                .is_ok()
            })
        })
        .map(|n| n.name)
        .collect()
}

/// `make shell`: an interactive shell on NODE, for debugging only.
pub fn shell(t: &Target) -> Result<(), Error> {
    eprintln!(
        "==> shell on {} (debugging only: the golden path never needs it; changes made here are not supported)",
        t.node
    );
    let tr = t.transport()?;
    let mut cmd = tr.interactive_command(&["bash", "-l"]);
    Ok(stackpilot_core::step::run_attached(
        "shell",
        &repo_root(),
        &mut cmd,
    )?)
}

/// Phase timings, printed as a summary at the end of a golden command.
#[derive(Debug, Default)]
pub struct Phases {
    done: Vec<(String, Duration)>,
}

impl Phases {
    /// Runs one phase, timing it.
    pub fn run<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
        eprintln!("\n=== phase: {name}");
        let start = Instant::now();
        let r = f();
        let took = start.elapsed();
        self.done.push((name.to_string(), took));
        eprintln!(
            "=== phase: {name} {} in {}s",
            if r.is_ok() { "done" } else { "FAILED" },
            time::secs(took)
        );
        r
    }

    /// Each phase's name and duration, in order.
    pub fn rows(&self) -> &[(String, Duration)] {
        &self.done
    }

    /// The per-phase timing table.
    pub fn summary(&self) -> String {
        let mut t = stackpilot_core::output::Table::new(&["phase", "seconds"]);
        let mut total = Duration::ZERO;
        for (name, d) in &self.done {
            t.row([name.clone(), time::secs(*d)]);
            total += *d;
        }
        t.row(["total".to_string(), time::secs(total)]);
        t.render()
    }
}

/// Compiles the node-side tools (not the app) so node steps can run.
pub fn tools(phases: &mut Phases) -> Result<(), Error> {
    phases.run("compile tools", || Ok(build::compile_tools(&repo_root())?))
}

/// `make up`: nodes up, then the stack started on NODE (building the app first when the
/// node has never built it).
pub fn up(t: &Target) -> Result<(), Error> {
    let mut phases = Phases::default();
    prepare(t, &mut phases)?;
    if !t.has_build_receipt()? {
        eprintln!(
            "==> no app image was built on {} for {} yet: building it first (as make demo does)",
            t.node, t.env
        );
        build_image(t, &mut phases)?;
    }
    phases.run("start", || start(t, false))?;
    eprint!("{}", phases.summary());
    Ok(())
}

/// Compiles the app from source and builds its image on NODE (`docker build --no-cache`).
pub fn build_image(t: &Target, phases: &mut Phases) -> Result<BuildInfo, Error> {
    let info = BuildInfo::collect(&t.root)?;
    phases.run("compile app", || {
        Ok(build::compile_for_nodes(&t.root, &info)?)
    })?;
    let (lock, path) = t.lock()?;
    let runtime = lock.tag(images::RUNTIME, &path)?.to_string();
    phases.run("image build", || {
        let binary = format!("target/{}/release/mock-exchange", build::TARGET);
        let mut args = vec![
            "build",
            "--env",
            &t.env,
            "--binary",
            &binary,
            "--build-id",
            &info.build_id,
            "--git-sha",
            &info.git_sha,
            "--runtime-image",
            &runtime,
        ];
        if info.dirty {
            args.push("--dirty");
        }
        t.node_step("lifecycle", &args)
    })?;
    Ok(info)
}

/// Starts ENV's stack on NODE through `lifecycle up` (`recreate`: new containers).
pub fn start(t: &Target, recreate: bool) -> Result<(), Error> {
    let (lock, path) = t.lock()?;
    let db = lock.tag(images::POSTGRES, &path)?.to_string();
    let mut args = vec!["up", "--env", &t.env, "--db-image", &db];
    if recreate {
        args.push("--recreate");
    }
    t.node_step("lifecycle", &args)
}

/// `make demo`: forced rebuild from source, recreate, wait healthy, demo order.
pub fn demo(t: &Target) -> Result<(), Error> {
    let mut phases = Phases::default();
    prepare(t, &mut phases)?;
    demo_phases(t, &mut phases)?;
    eprint!("{}", phases.summary());
    Ok(())
}

/// Node up and the node-side tools compiled: what every node step needs first.
pub fn prepare(t: &Target, phases: &mut Phases) -> Result<(), Error> {
    phases.run("lab up", || lab_up(t))?;
    tools(phases)
}

fn demo_phases(t: &Target, phases: &mut Phases) -> Result<(), Error> {
    build_image(t, phases)?;
    phases.run("start + healthy", || start(t, true))?;
    phases.run("demo order", || demo_order(t))
}

/// Creates an order and reads it back from the host, as the runbook does with curl.
pub fn demo_order(t: &Target) -> Result<(), Error> {
    let base = t.base_url()?;
    let timeouts = Timeouts {
        connect: Duration::from_secs(2),
        total: Duration::from_secs(5),
    };
    let url = format!("{base}/order?symbol=BTC&side=buy&qty=1");
    let created = http::post_json(&url, "", timeouts);
    let fail = |status: String| Error::StepFailed {
        step: "demo order".into(),
        cmd: format!("POST {url}"),
        status,
    };
    let (status, body) = created
        .answer()
        .ok_or_else(|| fail(format!("{:?}", created.outcome)))?;
    if status != 201 {
        return Err(fail(format!("HTTP {status}: {body}")));
    }
    let order: serde_json::Value =
        serde_json::from_str(body).map_err(|e| fail(format!("not JSON ({e}): {body}")))?;
    let id = order["order_id"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| order["order_id"].to_string());
    eprintln!("demo order created: {body}");
    let read = http::get(&format!("{base}/orders/{id}"), timeouts);
    match read.answer() {
        Some((200, body)) => {
            eprintln!("demo order read back: {body}");
            Ok(())
        }
        other => Err(fail(format!("reading order {id} back: {other:?}"))),
    }
}

/// `make clean`: clean room on NODE (containers, app images, build cache; volumes kept).
pub fn clean(t: &Target) -> Result<(), Error> {
    let mut phases = Phases::default();
    prepare(t, &mut phases)?;
    clean_phases(t, &mut phases)?;
    eprint!("{}", phases.summary());
    Ok(())
}

fn clean_phases(t: &Target, phases: &mut Phases) -> Result<(), Error> {
    phases.run("clean room", || {
        t.node_step("clean-room", &["--env", &t.env])
    })
}

/// `make down`: stop the stack's containers; images and volumes stay.
pub fn down(t: &Target) -> Result<(), Error> {
    let mut phases = Phases::default();
    tools(&mut phases)?;
    phases.run("down", || {
        t.node_step("lifecycle", &["down", "--env", &t.env])
    })
}

/// `make demo-reviewer`: always clean room, then forced rebuild, then full verification.
pub fn demo_reviewer(t: &Target) -> Result<(), Error> {
    let (phases, result) = demo_reviewer_timed(t);
    eprint!("\n{}", phases.summary());
    result
}

/// `demo-reviewer`'s steps with their timings, for the summary and the benchmark.
pub fn demo_reviewer_timed(t: &Target) -> (Phases, Result<(), Error>) {
    let mut phases = Phases::default();
    let result = prepare(t, &mut phases)
        .and_then(|()| clean_phases(t, &mut phases))
        .and_then(|()| demo_phases(t, &mut phases))
        .and_then(|()| phases.run("verify", || verify(t, false, None)));
    (phases, result)
}

/// `make logs ENV=… [TAIL=n]`: the api's logs from the node engine's log store.
pub fn logs(t: &Target, lines: &str, follow: bool) -> Result<(), Error> {
    let mut phases = Phases::default();
    tools(&mut phases)?;
    let mut args = vec!["logs", "--env", &t.env, "--lines", lines];
    if follow {
        args.push("--follow");
    }
    t.node_output("deploy", &args)
}
