//! Swarm mode's golden paths (`MODE=swarm`, or `mode = "swarm"` in stackpilot.toml),
//! composed from `lab::swarm`: the same phases as compose mode, across every node.

use std::time::Duration;

use ::lab::swarm::{self, Stack, Swarm};
use deploy::host::swarm::on_lab::LabSwarm;
use deploy::host::{self, HostError, Records, Verified};
use stackpilot_core::{argv::ToArgv, config::Mode};

use crate::deploy::{DeployOpts, Node, refuse_early, request, to_error, workshop};
use crate::golden;
use crate::lab::LabCmd;
use crate::run::{Error, Phases};
use crate::target::Target;

type R = Result<(), Error>;

impl crate::Where {
    /// The compose-mode or the swarm-mode flow: `MODE=` first, else the env's `mode`.
    pub fn run(&self, compose: impl FnOnce(&Target) -> R, swarm: impl FnOnce(&Target) -> R) -> R {
        let t = self.target()?;
        match t.mode(self.mode)? {
            Mode::Swarm => swarm(&t),
            Mode::Compose => compose(&t),
        }
    }
}

/// A command with no swarm mode: refused, rather than running compose mode on NODE
/// while the operator asked for the swarm.
pub fn not_in_swarm(what: &'static str) -> impl FnOnce(&Target) -> R {
    move |t| {
        Err(Error::Usage(format!(
            "make {what} has no swarm mode ({} of {} runs as a swarm stack): use make verify MODE=swarm, make deploy MODE=swarm or make rollback MODE=swarm; nothing was touched",
            t.env,
            t.root.display()
        )))
    }
}

/// Every node up, tools compiled, swarm and registry up, then `flow`; always the summary.
pub(crate) fn timed(t: &Target, flow: impl FnOnce(&Swarm, &mut Phases) -> R) -> R {
    let mut phases = Phases::default();
    let result = phases
        .run("lab up", || crate::lab::run(LabCmd::Up { nodes: vec![] }))
        .and_then(|()| golden::tools(&mut phases))
        .and_then(|()| Ok(Swarm::of_lab(&t.root, &t.lab_cfg()?)?))
        .and_then(|s| {
            phases.run("swarm form", || Ok(swarm::form_with_registry(&s, &t.root)?))?;
            flow(&s, &mut phases)
        });
    eprint!("\n{}", phases.summary());
    result
}

/// Builds on the manager (always when `rebuild`, else when it has no build), then pushes,
/// deploys by digest and waits until every replica runs.
fn release(t: &Target, s: &Swarm, phases: &mut Phases, rebuild: bool) -> R {
    let manager = t.on(s.manager.name.clone());
    if rebuild || !manager.has_build_receipt()? {
        golden::build_image(&manager, phases)?;
    }
    let stack = Stack::for_env(&t.cfg, &t.env)?;
    phases.run("deploy", || {
        stack.release(&t.root, &t.lab_cfg()?, s)?;
        Ok(stack.wait_ready(s, &t.cfg)?)
    })
}

/// The stack and the env's registry images removed, then each node's own clean room.
fn clean_room(t: &Target, s: &Swarm, phases: &mut Phases) -> R {
    phases.run("clean room", || {
        Stack::for_env(&t.cfg, &t.env)?.clear(s)?;
        let room = |n: &String| {
            t.on(n.clone())
                .node_step(&clean_room::cli::Cli::env(&t.env).call())
        };
        s.nodes.iter().try_for_each(|n| room(&n.name))
    })
}

/// `make up MODE=swarm`.
pub fn up(t: &Target) -> R {
    timed(t, |s, p| release(t, s, p, false))
}

/// `make clean MODE=swarm`.
pub fn clean(t: &Target) -> R {
    timed(t, |s, p| clean_room(t, s, p))
}

/// `make demo-reviewer MODE=swarm`: clean room everywhere, forced rebuild, deploy, verify.
pub fn demo_reviewer(t: &Target) -> R {
    timed(t, |s, p| {
        clean_room(t, s, p)?;
        release(t, s, p, true)?;
        p.run("verify", || verify(t, false, None))
    })
}

/// `make demo MODE=swarm`: forced rebuild, deployed by digest, the demo order on each worker.
pub fn demo(t: &Target) -> R {
    let port = t.cfg.environment(&t.env)?.port();
    let order = |w: &stackpilot_core::node::NodeHandle| {
        golden::demo_order(&format!("http://{}:{port}", w.address))
    };
    timed(t, |s, p| {
        release(t, s, p, true)?;
        p.run("demo order", || s.workers().try_for_each(order))
    })
}

/// `make verify MODE=swarm`: the stack across the swarm against what was deployed,
/// read-only, in the five layers of `verify::swarm`; one report.
pub fn verify(t: &Target, json: bool, junit: Option<&std::path::Path>) -> R {
    golden::reported(t, json, junit, |cfg| {
        let s = Swarm::of_lab(&t.root, cfg)?;
        let deployed = ::verify::swarm::setup::deployed(&t.root, cfg, &t.env);
        ::verify::swarm::setup::verify(cfg, &s.nodes, &t.env, deployed, &Default::default())
            .map_err(|e| Error::Usage(e.to_string()))
    })
}

/// `make down MODE=swarm`: the stack removed; images, volumes and the swarm stay.
pub fn down(t: &Target) -> R {
    let s = Swarm::of_lab(&t.root, &t.lab_cfg()?)?;
    Ok(Stack::for_env(&t.cfg, &t.env)?.remove(&s)?)
}

/// The host's records of swarm deploys: `deploys/swarm/<env>` (the lock is the manager's).
fn swarm_records(t: &Target) -> Records {
    Records::new(&t.root, &t.cfg.state.host_dir, "swarm", &t.env)
}

/// The lab up with its swarm and registry, then `flow` with the manager and the env's
/// stack on the lab's swarm (`deploy::host::swarm::on_lab`); its report on stdout.
fn on_swarm(
    t: &Target,
    flow: impl FnOnce(&Node<'_>, &LabSwarm<'_>, &mut String) -> Result<(), Error>,
) -> Result<(), Error> {
    timed(t, |s, _| {
        let manager = t.on(s.manager.name.clone());
        let verify = |wait: Option<Duration>| {
            let (cfg, opts) = (
                &t.cfg,
                verify::setup::Options {
                    wait,
                    ..Default::default()
                },
            );
            let deployed = verify::swarm::setup::deployed(&t.root, cfg, &t.env);
            let r = verify::swarm::setup::verify(cfg, &s.nodes, &t.env, deployed, &opts)
                .map_err(|e| HostError::Usage(e.to_string()))?;
            let report = stackpilot_core::output::Render::human(&r);
            Ok(Verified {
                passed: r.passed,
                report,
            })
        };
        let node = Node(&manager);
        let side = LabSwarm::new(t.root.clone(), t.cfg.clone(), &t.env, s, &node, &verify)
            .map_err(to_error)?;
        let mut report = String::new();
        let r = flow(&node, &side, &mut report);
        stackpilot_core::out!("{report}");
        r
    })
}

/// `make deploy ENV=… MODE=swarm`: the four stages of `deploy::host::swarm`, with the
/// manager's deploy lock.
pub fn deploy_swarm(t: &Target, opts: &DeployOpts) -> Result<(), Error> {
    refuse_early(t, opts)?;
    on_swarm(t, |manager, side, report| {
        let (req, info) = request(t, opts)?;
        let by = deploy::evidence::who();
        let build = workshop(t, info);
        host::swarm::deploy(manager, &build, side, &swarm_records(t), &by, &req, report)
            .map_err(to_error)
    })
}

/// `make rollback ENV=… MODE=swarm`: the service's own rollback to the deployment the
/// current one replaced, proven and recorded.
pub fn rollback_swarm(t: &Target) -> Result<(), Error> {
    on_swarm(t, |manager, side, report| {
        let by = deploy::evidence::who();
        host::swarm::rollback(manager, side, &swarm_records(t), &by, report).map_err(to_error)
    })
}
