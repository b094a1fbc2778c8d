//! What a test needs from the machine (root, a Docker engine, Vagrant, ...) and the one way
//! a test that lacks it behaves: locally it prints `SKIP(<capability>): <reason>` and
//! returns, so `make test` can count it; under `CI=true` it fails, naming what is missing,
//! because CI must run every test.
//!
//! Test-only helper, kept in the core so every crate's tests share it without a new crate.

use std::process::Command;

/// The marker a skipping test prints on stderr; `make test` counts the tests that print it.
pub const SKIP_MARKER: &str = "SKIP(";

/// Something a test needs from the machine it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Running as root (mount namespaces, chroot, the postgres system user).
    Root,
    /// `unshare` on PATH and the right to use it (root): private mount namespaces.
    Unshare,
    /// A reachable Docker engine through the `docker` CLI.
    Docker,
    /// Vagrant installed (lab nodes, teardown).
    Vagrant,
    /// PostgreSQL server binaries (`initdb`, `pg_ctl`) under /usr/lib/postgresql.
    Postgres,
    /// libvirt VMs: installed (`virsh`, `libvirtd`), or installable by the lab's own
    /// prerequisite step (root and apt-get). QEMU's TCG emulation needs no KVM.
    Libvirt,
    /// The vagrant-libvirt plugin, which Debian's `vagrant` brings as a recommended package
    /// (and with it libvirt as Vagrant's default provider).
    VagrantLibvirt,
    /// A libvirt daemon that answers on `qemu:///system` (`make test` starts one; a plain
    /// `vagrant validate` with vagrant-libvirt installed connects to it).
    LibvirtDaemon,
}

impl Capability {
    /// The name shown in `SKIP(<name>)`.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Root => "root",
            Capability::Unshare => "unshare",
            Capability::Docker => "docker",
            Capability::Vagrant => "vagrant",
            Capability::Postgres => "postgres",
            Capability::Libvirt => "libvirt",
            Capability::VagrantLibvirt => "vagrant-libvirt",
            Capability::LibvirtDaemon => "libvirtd",
        }
    }

    /// Looks at the machine: `Err` says what is missing and how to get it.
    pub fn probe(self) -> Result<(), String> {
        match self {
            Capability::Root => match uid() {
                Some(0) => Ok(()),
                Some(u) => Err(format!(
                    "running as uid {u}, not root (run `make test` as root, as CI does)"
                )),
                None => Err("cannot read the uid from /proc/self/status".into()),
            },
            Capability::Unshare => {
                which::which("unshare").map_err(|_| {
                    "`unshare` not on PATH (apt-get install util-linux)".to_string()
                })?;
                Capability::Root
                    .probe()
                    .map_err(|why| format!("mount namespaces need root: {why}"))
            }
            Capability::Docker => {
                let out = Command::new("docker")
                    .args(["info", "--format", "{{.ServerVersion}}"])
                    .output()
                    .map_err(|e| {
                        format!("cannot run the docker CLI: {e} (apt-get install docker.io)")
                    })?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(format!(
                        "no Docker engine answers `docker info`: {}",
                        first_line(&out.stderr)
                    ))
                }
            }
            Capability::Vagrant => which::which("vagrant")
                .map(|_| ())
                .map_err(|_| "vagrant not installed (`make test` installs it as root)".into()),
            Capability::Postgres => {
                let found = std::fs::read_dir("/usr/lib/postgresql")
                    .map(|dir| dir.flatten().any(|e| e.path().join("bin/initdb").is_file()))
                    .unwrap_or(false);
                if found {
                    Ok(())
                } else {
                    Err("no PostgreSQL server under /usr/lib/postgresql (apt-get install postgresql)".into())
                }
            }
            Capability::VagrantLibvirt => {
                let out = Command::new("vagrant")
                    .args(["plugin", "list"])
                    .env("VAGRANT_CHECKPOINT_DISABLE", "1")
                    .output()
                    .map_err(|e| format!("cannot run vagrant: {e} (apt-get install vagrant)"))?;
                if String::from_utf8_lossy(&out.stdout).contains("vagrant-libvirt") {
                    Ok(())
                } else {
                    Err("the vagrant-libvirt plugin is not installed (`apt-get install vagrant` installs it as a recommended package, as the lab's prerequisite step does)".into())
                }
            }
            Capability::LibvirtDaemon => {
                let out = Command::new("virsh")
                    .args(["-c", "qemu:///system", "uri"])
                    .output()
                    .map_err(|e| format!("cannot run virsh: {e} (apt-get install libvirt-clients; `make test` installs libvirt)"))?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(format!(
                        "no libvirt daemon answers on qemu:///system: {} (`make test` starts it; by hand: sudo virtlogd -d && sudo libvirtd -d)",
                        first_line(&out.stderr)
                    ))
                }
            }
            Capability::Libvirt => {
                let installed = ["virsh", "libvirtd", "qemu-system-x86_64"]
                    .iter()
                    .all(|p| which::which(p).is_ok());
                if installed {
                    return Ok(());
                }
                which::which("apt-get").map_err(|_| {
                    "libvirt is not installed and there is no apt-get to install it (install libvirt-daemon-system, libvirt-clients, qemu-system-x86)".to_string()
                })?;
                Capability::Root.probe().map_err(|why| {
                    format!("libvirt is not installed and the lab installs it only as root: {why}")
                })
            }
        }
    }
}

/// Whether this run is CI's: `CI` set to anything but empty, `0` or `false`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// In a test: `true` when every capability is here. Otherwise prints one
/// `SKIP(<capability>): <reason>` line per missing one and returns `false` (the test then
/// returns), or, under CI, panics naming them all.
pub fn require(caps: &[Capability]) -> bool {
    let missing: Vec<(Capability, String)> = caps
        .iter()
        .filter_map(|&c| c.probe().err().map(|why| (c, why)))
        .collect();
    match decide(&missing, in_ci()) {
        Decision::Run => true,
        Decision::Skip(lines) => {
            for l in &lines {
                eprintln!("{l}");
            }
            false
        }
        Decision::Fail(message) => panic!("{message}"),
    }
}

/// What a test does about the capabilities it lacks.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// Nothing is missing: it runs.
    Run,
    /// It returns after printing these skip lines.
    Skip(Vec<String>),
    /// Under CI: it fails with this message.
    Fail(String),
}

/// The decision, apart from probing the machine, reading the environment and printing (so
/// its own tests print no skip marker that `make test` would count).
fn decide(missing: &[(Capability, String)], ci: bool) -> Decision {
    if missing.is_empty() {
        return Decision::Run;
    }
    let lines: Vec<String> = missing.iter().map(|(c, why)| skip_line(*c, why)).collect();
    if ci {
        Decision::Fail(format!(
            "CI must run every test, but this one lacks a capability:\n{}",
            lines.join("\n")
        ))
    } else {
        Decision::Skip(lines)
    }
}

/// The line a skipping test prints: `SKIP(<capability>): <reason>`.
pub fn skip_line(cap: Capability, why: &str) -> String {
    format!("{SKIP_MARKER}{}): {why}", cap.name())
}

/// A command's first non-empty line of stderr, for a probe's reason.
fn first_line(stderr: &[u8]) -> String {
    let err = String::from_utf8_lossy(stderr);
    let line = err.lines().find(|l| !l.trim().is_empty());
    line.unwrap_or("no message").trim().to_string()
}

fn uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_missing_runs_the_test() {
        assert_eq!(decide(&[], true), Decision::Run);
        assert_eq!(decide(&[], false), Decision::Run);
    }

    #[test]
    fn a_missing_capability_skips_outside_ci() {
        assert_eq!(
            decide(&[(Capability::Docker, "no engine".into())], false),
            Decision::Skip(vec![skip_line(Capability::Docker, "no engine")])
        );
        assert_eq!(decide(&[], false), Decision::Run);
    }

    #[test]
    fn a_missing_capability_fails_under_ci_naming_it() {
        let Decision::Fail(message) =
            decide(&[(Capability::Vagrant, "not installed".into())], true)
        else {
            panic!("under CI a missing capability fails the test");
        };
        assert!(
            message.contains(&skip_line(Capability::Vagrant, "not installed")),
            "{message}"
        );
    }

    #[test]
    fn the_skip_line_names_capability_and_reason() {
        assert_eq!(
            skip_line(Capability::Root, "running as uid 1000"),
            "SKIP(root): running as uid 1000"
        );
    }
}
