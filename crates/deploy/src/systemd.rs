//! Service management on VM nodes: one systemd template unit, one instance per
//! environment (`stackpilot@dev.service`), enabled so the stack starts on boot and stops
//! cleanly with the node; its start/stop output goes to the journal. Installed by the
//! node-side `deploy install-service` (ctx-guard first), never from the host.
//!
//! Nodes without systemd (the docker provider's node containers run dockerd as their
//! command) rely on the compose restart policy instead; `install-service` checks it there.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use stackpilot_core::Config;

use crate::DeployError;

/// The unit template in the repo.
pub const TEMPLATE: &str = "infra/systemd/stackpilot@.service";
/// Where it is installed on a VM node.
pub const INSTALL_PATH: &str = "/etc/systemd/system/stackpilot@.service";

/// The instance unit of an environment.
pub fn unit_name(env: &str) -> String {
    format!("stackpilot@{env}.service")
}

/// The template with the node's repo mount (`/vagrant`) replaced by `repo`: what a test
/// verifies on a machine without `/vagrant`.
pub fn render(template: &str, repo: &Path) -> String {
    template.replace(
        stackpilot_core::node::NODE_REPO,
        &repo.display().to_string(),
    )
}

/// Runs `argv` (through `sudo -n` when not root and `privileged`); its stdout, or the
/// failure with its output.
fn run(argv: &[&str], privileged: bool) -> Result<String, DeployError> {
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let mut cmd = if privileged && !root {
        let mut c = Command::new("sudo");
        c.arg("-n").args(argv);
        c
    } else {
        let mut c = Command::new(argv[0]);
        c.args(&argv[1..]);
        c
    };
    let line = crate::local::render(&cmd);
    let out = cmd.output().map_err(|e| DeployError::Command {
        command: line.clone(),
        status: e.to_string(),
        output: String::new(),
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(DeployError::Command {
            command: line,
            status: out.status.to_string(),
            output: format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
        })
    }
}

/// Makes `env` start on boot and stop cleanly with this node. With systemd: the template
/// unit from the repo installed and `stackpilot@ENV` enabled. Without (docker-provider
/// nodes): every container of the env's stack must have a restart policy that brings it
/// back when the node's engine starts. Returns what was done, for the evidence.
pub fn install(
    _allowed: &ctx_guard::Allowed,
    cfg: &Config,
    repo: &Path,
    env: &str,
) -> Result<String, DeployError> {
    let project = cfg.environment(env)?.project.as_ref().to_string();
    if !Path::new("/run/systemd/system").is_dir() {
        return restart_policies(&project);
    }
    let template = repo.join(TEMPLATE).display().to_string();
    let unit = unit_name(env);
    run(&["install", "-m", "0644", &template, INSTALL_PATH], true)?;
    run(&["systemctl", "daemon-reload"], true)?;
    run(&["systemctl", "enable", &unit], true)?;
    let state = run(&["systemctl", "is-enabled", &unit], false)?;
    Ok(format!(
        "installed {INSTALL_PATH} and enabled {unit}: {state}"
    ))
}

fn restart_policies(project: &str) -> Result<String, DeployError> {
    let filter = format!("label=com.docker.compose.project={project}");
    let names = run(
        &[
            "docker",
            "ps",
            "-a",
            "--filter",
            &filter,
            "--format",
            "{{.Names}}",
        ],
        false,
    )?;
    let mut log = String::new();
    for name in names.lines().filter(|l| !l.is_empty()) {
        let policy = run(
            &[
                "docker",
                "inspect",
                "--format",
                "{{.HostConfig.RestartPolicy.Name}}",
                name,
            ],
            false,
        )?;
        log.push_str(&format!("{name}: restart policy {policy}\n"));
        if policy != "unless-stopped" && policy != "always" {
            return Err(DeployError::Usage(format!(
                "{name} has restart policy '{policy}': it would not come back after a node restart"
            )));
        }
    }
    log.push_str("no systemd in this node: the node runs dockerd as its command, which restarts these containers on node start");
    Ok(log)
}
