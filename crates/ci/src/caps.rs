//! What this machine can do: a Docker engine, Vagrant, and node containers that start
//! with the lab's capability flags. Probed, printed and recorded; never assumed.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::CAPS_VAR;

/// What the machine can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// Docker engine reachable, or why not.
    pub docker: Result<String, String>,
    /// Vagrant installed, or why not.
    pub vagrant: Result<String, String>,
    /// Node containers start with the lab's flags, or why not.
    pub node_containers: Result<String, String>,
}

impl Capabilities {
    /// Why the lab e2e cannot run here, if it cannot.
    pub fn lab_missing(&self) -> Option<String> {
        [
            ("docker engine", &self.docker),
            ("vagrant", &self.vagrant),
            ("node containers", &self.node_containers),
        ]
        .iter()
        .find_map(|(name, r)| r.as_ref().err().map(|why| format!("{name}: {why}")))
    }
}

fn probe(cmd: &mut Command) -> Result<String, String> {
    match cmd.stdin(Stdio::null()).output() {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).trim().to_string()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr)
            .lines()
            .next()
            .unwrap_or("failed")
            .to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Looks at the machine: engine, vagrant, and a node container started with the lab's
/// capability flags (from the locked node image, built first by `xtask images` when
/// absent). `lab_disabled` is a hosted runner's view: no lab, Vagrant still as found.
pub fn detect(root: &Path, xtask: &Path, lab_disabled: bool) -> Capabilities {
    let vagrant = which::which("vagrant")
        .map_err(|_| "not installed (apt-get install vagrant)".to_string())
        .and_then(|_| {
            probe(
                Command::new("vagrant")
                    .arg("--version")
                    .env("VAGRANT_CHECKPOINT_DISABLE", "1"),
            )
        });
    if lab_disabled {
        // A hosted runner's view: no lab. Vagrant stays as found, so teardown still runs.
        let off = format!("disabled by {CAPS_VAR}=none");
        return Capabilities {
            docker: Err(off.clone()),
            vagrant,
            node_containers: Err(off),
        };
    }
    let docker =
        probe(Command::new("docker").args(["info", "--format", "engine {{.ServerVersion}}"]));
    let node_containers = match &docker {
        Err(_) => Err("no docker engine".into()),
        Ok(_) => node_probe(root, xtask),
    };
    Capabilities {
        docker,
        vagrant,
        node_containers,
    }
}

fn node_probe(root: &Path, xtask: &Path) -> Result<String, String> {
    probe(Command::new(xtask).arg("images").current_dir(root))
        .map_err(|e| format!("images could not be built: {e}"))?;
    let lock =
        stackpilot_core::images::ImageLock::read(&stackpilot_core::images::ImageLock::path(root))
            .map_err(|e| e.to_string())?
            .ok_or("no image lock")?;
    let tag = lock
        .tag(
            stackpilot_core::images::NODE,
            Path::new(stackpilot_core::images::LOCK_FILE),
        )
        .map_err(|e| e.to_string())?
        .to_string();
    // The flags the Vagrantfile's docker provider uses (NOTES-machine.md): not --privileged.
    probe(Command::new("docker").args([
        "run",
        "--rm",
        "--cap-add",
        "SYS_ADMIN",
        "--cap-add",
        "NET_ADMIN",
        "--cap-add",
        "SYS_PTRACE",
        "--cap-add",
        "MKNOD",
        "--cap-add",
        "SYS_CHROOT",
        "--cap-add",
        "NET_RAW",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "apparmor=unconfined",
        "--security-opt",
        "systempaths=unconfined",
        "--cgroupns=host",
        "-v",
        "/sys/fs/cgroup:/sys/fs/cgroup:rw",
        "--tmpfs",
        "/run",
        "--entrypoint",
        "true",
        &tag,
    ]))
    .map(|_| format!("{tag} starts with the lab's flags"))
}
