//! The golden paths: the only supported way to start, stop, clean, rebuild and verify the
//! service, from the host. Node-side steps run the statically built tools inside the node
//! from /vagrant through the node's transport; every one of them calls ctx-guard first.

use std::path::Path;

use lifecycle::cli::{BuildArgs, Cmd as LifecycleCmd, UP_TIMEOUT_SECS, UpArgs};
use stackpilot_core::argv::ToArgv;
use stackpilot_core::images;

use crate::lab::{self, LabCmd};
use crate::run::{Error, Phases, repo_root};
use crate::target::Target;
use ::lab::build::{self, BuildInfo};

/// Brings NODE up (created, provisioned, images loaded); a no-op when it already is.
fn lab_up(t: &Target) -> Result<(), Error> {
    lab::run(LabCmd::Up {
        nodes: vec![t.node.clone()],
    })
}

/// `make verify`: host-driven, read-only verification of ENV on NODE. Prints one report
/// (human table or JSON), optionally JUnit XML; fails unless every check passed.
pub fn verify(t: &Target, json: bool, junit: Option<&Path>) -> Result<(), Error> {
    reported(t, json, junit, |cfg| {
        let opts = verify::setup::Options::default();
        verify::setup::verify(cfg, &t.handle()?, &t.env, &opts)
            .map_err(|e| Error::Usage(e.to_string()))
    })
}

/// Verifies with `verify` (compose or swarm mode), prints its one report (table or JSON),
/// optionally JUnit XML; fails unless every check passed.
pub fn reported(
    t: &Target,
    json: bool,
    junit: Option<&Path>,
    verify: impl FnOnce(&stackpilot_core::Config) -> Result<verify::Report, Error>,
) -> Result<(), Error> {
    // An unwritable report path is refused before anything is verified.
    let junit = junit
        .map(verify::report::JunitFile::create)
        .transpose()
        .map_err(Error::Usage)?;
    let report = verify(&t.lab_cfg()?)?;
    stackpilot_core::output::print(
        &report,
        stackpilot_core::output::Format::from_json_flag(json),
    );
    verify::report::conclude(&report, junit).map_err(|e| {
        Error::from(stackpilot_core::step::StepError {
            step: "verify".into(),
            cmd: match e {
                verify::report::Unverified::NotWritten(_) => "write the JUnit report".into(),
                _ => format!("verify --node {} --env {}", t.node, t.env),
            },
            status: e.to_string(),
        })
    })
}

/// `make halt`: stop the stack on every running node, then halt the nodes.
pub fn halt(t: &Target) -> Result<(), Error> {
    let mut phases = Phases::default();
    tools(&mut phases)?;
    for node in ::lab::resolve::running(&t.root, &t.lab_cfg()?) {
        let on = t.on(node.name);
        phases.run(&format!("down on {}", on.node), || {
            on.node_step(&LifecycleCmd::down(&on.env).call())
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
    for node in ::lab::resolve::running(&t.root, &t.lab_cfg()?) {
        let on = t.on(node.name);
        for env in &envs {
            phases.run(&format!("clean room {env} on {}", on.node), || {
                on.node_step(&clean_room::cli::Cli::env(env).call())
            })?;
        }
    }
    phases.run("destroy nodes", || {
        lab::run(LabCmd::Destroy { nodes: vec![] })
    })?;
    eprint!("{}", phases.summary());
    Ok(())
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
        let build = LifecycleCmd::Build(BuildArgs {
            env: t.env.clone(),
            binary: format!("target/{}/release/mock-exchange", build::TARGET).into(),
            build_id: info.build_id.clone(),
            git_sha: info.git_sha.clone(),
            dirty: info.dirty,
            runtime_image: Some(runtime.clone()),
            json: false,
        });
        t.node_step(&build.call())
    })?;
    Ok(info)
}

/// Starts ENV's stack on NODE through `lifecycle up` (`recreate`: new containers).
pub fn start(t: &Target, recreate: bool) -> Result<(), Error> {
    let (lock, path) = t.lock()?;
    let db = lock.tag(images::POSTGRES, &path)?.to_string();
    t.node_step(&lifecycle_up(&t.env, recreate, db, vec![], UP_TIMEOUT_SECS).call())
}

/// `lifecycle up` of `env` with the pinned `db` image, compose `overrides` and a health
/// `timeout` in seconds; `recreate`: new containers.
pub fn lifecycle_up(
    env: &str,
    recreate: bool,
    db: String,
    overrides: Vec<(String, String)>,
    timeout: u64,
) -> LifecycleCmd {
    LifecycleCmd::Up(UpArgs {
        env: env.to_string(),
        recreate,
        db_image: Some(db),
        overrides,
        timeout,
        json: false,
    })
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
    phases.run("demo order", || demo_order(&t.base_url()?))
}

/// Creates an order at `base` and reads it back from the host, as the runbook does with curl.
pub fn demo_order(base: &str) -> Result<(), Error> {
    let order = drills::samples::demo_order(base).map_err(|status| {
        Error::from(stackpilot_core::step::StepError {
            step: "demo order".into(),
            cmd: format!("POST {base}{}", drills::samples::DEMO_ORDER),
            status,
        })
    })?;
    eprintln!("demo order created: {}", order.created);
    eprintln!("demo order read back: {}", order.read_back);
    Ok(())
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
        t.node_step(&clean_room::cli::Cli::env(&t.env).call())
    })
}

/// `make down`: stop the stack's containers; images and volumes stay.
pub fn down(t: &Target) -> Result<(), Error> {
    let mut phases = Phases::default();
    tools(&mut phases)?;
    phases.run("down", || t.node_step(&LifecycleCmd::down(&t.env).call()))
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
    let logs = ::deploy::cli::Cmd::Logs(::deploy::cli::Logs {
        env: t.env.clone(),
        service: "api".into(),
        lines: lines.to_string(),
        since: None,
        follow,
    });
    t.node_output(&logs.call())
}
