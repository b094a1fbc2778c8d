//! Node-side fault injection: the steps `drills node …` runs inside a lab node, from
//! /vagrant, after ctx-guard allowed it. Each takes the [`ctx_guard::Allowed`] token.
//!
//! Containers are found by compose labels (project of the environment, service), never by
//! name. Stopping and starting go through the node's engine; the crash is a real SIGKILL
//! to the container's main process (an engine `kill` would count as a manual stop and
//! switch the restart policy off); the port block is a firewall rule in the node's network
//! layer, dropping packets before the engine's port forwarding sees them.

use std::path::Path;
use std::process::{Command, Stdio};

use stackpilot_core::admin::DockerAdmin;
use stackpilot_core::compose::{ONEOFF_LABEL, Project, SERVICE_LABEL};
use stackpilot_core::exit::{Exit, ExitStatus};
use stackpilot_core::{Config, node::NODE_REPO};

/// Comment carried by every firewall rule a drill adds, so they can be found and removed.
pub const RULE_COMMENT: &str = "stackpilot-drill-port-unreachable";

/// Why a node-side step failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration or environment is wrong.
    #[error(transparent)]
    Config(#[from] stackpilot_core::Error),
    /// The engine could not be asked.
    #[error(transparent)]
    Engine(#[from] stackpilot_core::admin::AdminError),
    /// The service has no container in the environment's project.
    #[error("no {service} container in compose project {project}: start the stack first (make up)")]
    NoContainer {
        /// The service.
        service: String,
        /// The project.
        project: String,
    },
    /// A node command failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and stderr, or the spawn error.
        detail: String,
    },
    /// A program the step needs is missing on the node.
    #[error(
        "`{program}` is not installed on this node ({detail}); the node image provides it: cargo xtask images"
    )]
    Missing {
        /// The program.
        program: String,
        /// The spawn error.
        detail: String,
    },
}

impl ExitStatus for NodeError {
    fn exit(&self) -> Exit {
        match self {
            NodeError::Config(_) => Exit::Usage,
            NodeError::Engine(e) => e.exit(),
            NodeError::Missing { .. } => Exit::PrereqMissing,
            NodeError::NoContainer { .. } | NodeError::Command { .. } => Exit::Failed,
        }
    }
}

/// Runs a node command, returning its stdout.
fn run(program: &str, args: &[&str]) -> Result<String, NodeError> {
    let line = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                NodeError::Missing {
                    program: program.into(),
                    detail: e.to_string(),
                }
            } else {
                NodeError::Command {
                    command: line.clone(),
                    detail: e.to_string(),
                }
            }
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NodeError::Command {
            command: line,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

/// The id of `service`'s container in `env`'s compose project (one-off containers left out).
pub fn container_id(cfg: &Config, env: &str, service: &str) -> Result<String, NodeError> {
    let project = Project::for_env(cfg, Path::new(NODE_REPO), env)?;
    let admin = DockerAdmin::connect()?;
    admin
        .containers(&project.label_filter())?
        .into_iter()
        .filter(|c| c.labels.get(ONEOFF_LABEL).map(String::as_str) != Some("True"))
        .find(|c| c.labels.get(SERVICE_LABEL).map(String::as_str) == Some(service))
        .map(|c| c.id)
        .ok_or_else(|| NodeError::NoContainer {
            service: service.into(),
            project: project.name.clone(),
        })
}

/// What a drill does to one service's container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerFault {
    /// Stop it (its stop signal and grace period apply). A stopped container stays
    /// stopped: the restart policy does not undo an operator's stop.
    Stop,
    /// Start the existing container again.
    Start,
    /// SIGKILL its main process, as a crash or the OOM killer would.
    Kill,
}

/// Applies `fault` to `service`'s container in `env`'s compose project.
pub fn container(
    _allowed: &ctx_guard::Allowed,
    cfg: &Config,
    env: &str,
    service: &str,
    fault: ContainerFault,
) -> Result<String, NodeError> {
    let id = container_id(cfg, env, service)?;
    match fault {
        ContainerFault::Stop => {
            run("docker", &["stop", &id])?;
            Ok(format!("stopped {service} container {}", short(&id)))
        }
        ContainerFault::Start => {
            run("docker", &["start", &id])?;
            Ok(format!("started {service} container {}", short(&id)))
        }
        ContainerFault::Kill => kill(&id, service),
    }
}

/// Sends SIGKILL to the main process of container `id`, as a crash or the OOM killer
/// would: the engine sees an unexpected exit and applies the restart policy.
fn kill(id: &str, service: &str) -> Result<String, NodeError> {
    let pid_text = run("docker", &["inspect", "--format", "{{.State.Pid}}", id])?;
    let pid: i32 = match pid_text.trim().parse() {
        Ok(p) if p > 1 => p,
        _ => {
            return Err(NodeError::Command {
                command: format!("docker inspect {id}"),
                detail: format!(
                    "expected the pid of a running container, found '{}'",
                    pid_text.trim()
                ),
            });
        }
    };
    if stackpilot_core::root::is_root() {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .map_err(|e| NodeError::Command {
            command: format!("kill -KILL {pid}"),
            detail: e.to_string(),
        })?;
    } else {
        // The container's process belongs to root: a VM's vagrant user signals it through sudo.
        run("sudo", &["-n", "kill", "-KILL", &pid.to_string()])?;
    }
    Ok(format!(
        "sent SIGKILL to pid {pid}, main process of {service} container {}",
        short(id)
    ))
}

/// The iptables arguments of the drill's rule for `port` (after `-I`/`-C`/`-D` and the chain).
pub fn rule_args(port: u16) -> Vec<String> {
    [
        "-p",
        "tcp",
        "--dport",
        &port.to_string(),
        "-m",
        "comment",
        "--comment",
        RULE_COMMENT,
        "-j",
        "DROP",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `iptables -w -t raw <op> PREROUTING <rule>`: the raw table's PREROUTING chain sees
/// packets before the engine's DNAT, with the published port still as destination.
fn iptables(op: &str, port: u16) -> Vec<String> {
    let mut v: Vec<String> = ["-w", "-t", "raw", op, "PREROUTING"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.extend(rule_args(port));
    v
}

/// iptables as root: directly, or through `sudo -n` as a VM's `vagrant` user.
fn iptables_run(op: &str, port: u16) -> Result<String, NodeError> {
    let mut argv: Vec<String> = stackpilot_core::root::prefix(stackpilot_core::root::is_root())
        .iter()
        .map(|s| s.to_string())
        .collect();
    argv.push("iptables".into());
    argv.extend(iptables(op, port));
    let refs: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    run(&argv[0], &refs)
}

/// Drops every TCP packet to `port` arriving at the node. A dead-man switch removes the rule
/// after `expire_secs` even if the drill that set it dies, so the fault cannot outlive it.
pub fn block_port(
    _allowed: &ctx_guard::Allowed,
    port: u16,
    expire_secs: u64,
) -> Result<String, NodeError> {
    iptables_run("-I", port)?;
    let delete = iptables("-D", port).join(" ");
    let sudo = stackpilot_core::root::prefix(stackpilot_core::root::is_root()).join(" ");
    let sentinel =
        format!("sleep {expire_secs}; while {sudo} iptables {delete} 2>/dev/null; do :; done");
    use std::os::unix::process::CommandExt;
    let spawned = Command::new("sh")
        .args(["-c", &sentinel])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn();
    let note = match spawned {
        Ok(_) => format!("removed automatically after {expire_secs} s"),
        Err(e) => format!(
            "no automatic removal ({e}): unblock it with `drills node unblock-port --port {port}`"
        ),
    };
    Ok(format!(
        "dropping TCP to port {port} in the node's raw PREROUTING chain; {note}"
    ))
}

/// Removes every drill rule for `port`; reports how many there were.
pub fn unblock_port(_allowed: &ctx_guard::Allowed, port: u16) -> Result<String, NodeError> {
    let mut removed = 0;
    while iptables_run("-C", port).is_ok() {
        iptables_run("-D", port)?;
        removed += 1;
    }
    Ok(format!("removed {removed} drill rule(s) for port {port}"))
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_comment_is_one_clean_room_removes() {
        assert!(RULE_COMMENT.starts_with(stackpilot_core::node::DRILL_RULE_PREFIX));
    }

    #[test]
    fn the_rule_matches_the_port_and_carries_the_drill_comment() {
        let args = iptables("-I", 8001).join(" ");
        assert_eq!(
            args,
            "-w -t raw -I PREROUTING -p tcp --dport 8001 -m comment --comment stackpilot-drill-port-unreachable -j DROP"
        );
    }
}
