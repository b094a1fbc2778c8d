//! Host prerequisites: one data-driven step every entry point runs first.
//!
//! Each entry point needs a set of Debian packages ([`needs`]). Missing ones are installed
//! with apt-get as root or through passwordless sudo; anywhere else the step fails with
//! exit 4 and the exact command to run. `vagrant` is installed WITH its recommended
//! packages (vagrant-libvirt, nfs-kernel-server), as `apt-get install vagrant` does for a
//! user, so the lab is tested the way users meet it.

use std::process::Command;

use stackpilot_core::root::is_root;

use crate::error::Error;
use crate::process::step;

/// What an entry point needs from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryPoint {
    /// Anything that brings lab nodes up or builds their images (`demo-reviewer`, `up`,
    /// `demo`, `deploy`, `drills`, `lab up`, `images`, …).
    Lab,
    /// `make test`: the lab plus what the test suites run.
    Test,
}

/// One Debian package and how to tell it is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Package {
    /// The Debian package.
    pub name: &'static str,
    /// A program on PATH that proves it is installed; `None`: ask dpkg.
    pub program: Option<&'static str>,
    /// Install its recommended packages too (as a user's plain `apt-get install` does).
    pub recommends: bool,
}

const fn pkg(name: &'static str, program: Option<&'static str>) -> Package {
    Package {
        name,
        program,
        recommends: false,
    }
}

/// What every lab entry point needs.
const LAB: &[Package] = &[
    Package {
        name: "vagrant",
        program: Some("vagrant"),
        recommends: true,
    },
    // The root image is built from Debian packages.
    pkg("mmdebstrap", Some("mmdebstrap")),
    // Every lab image is built by the host's engine, also for VM nodes.
    pkg("docker.io", Some("docker")),
];

/// What the test suites need beyond the lab.
const TEST: &[Package] = &[
    pkg("util-linux", Some("unshare")),
    // mock-exchange's tests start a private server from /usr/lib/postgresql/<ver>/bin,
    // which is not on PATH; pg_ctlcluster comes with the server package and is.
    pkg("postgresql", Some("pg_ctlcluster")),
    pkg("shellcheck", Some("shellcheck")),
    // The API contract test installs schemathesis into a venv (no program proves these).
    pkg("python3-venv", None),
    pkg("python3-pip", None),
];

/// The packages `entry` needs, in install order.
pub fn needs(entry: EntryPoint) -> Vec<Package> {
    match entry {
        EntryPoint::Lab => LAB.to_vec(),
        EntryPoint::Test => LAB.iter().chain(TEST).copied().collect(),
    }
}

/// Whether `p` is installed on this host.
fn installed(p: &Package) -> bool {
    match p.program {
        Some(prog) => which::which(prog).is_ok(),
        None => Command::new("dpkg-query")
            .args(["-W", "-f", "${db:Status-Abbrev}", p.name])
            .output()
            .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"ii")),
    }
}

/// The apt-get command lines that install `missing` (recommends only where asked), as a
/// user would type them.
pub fn install_commands(missing: &[Package], sudo: bool) -> Vec<String> {
    let prefix = if sudo { "sudo " } else { "" };
    let (with, without): (Vec<&Package>, Vec<&Package>) =
        missing.iter().partition(|p| p.recommends);
    let names = |ps: &[&Package]| ps.iter().map(|p| p.name).collect::<Vec<_>>().join(" ");
    let mut cmds = Vec::new();
    if !without.is_empty() {
        cmds.push(format!(
            "{prefix}apt-get install -y --no-install-recommends {}",
            names(&without)
        ));
    }
    if !with.is_empty() {
        cmds.push(format!("{prefix}apt-get install -y {}", names(&with)));
    }
    cmds
}

/// Installs what `entry` needs and is missing: as root, or through passwordless sudo, on a
/// host with apt-get; otherwise fails (exit 4) naming the exact commands.
pub fn ensure(entry: EntryPoint) -> Result<(), Error> {
    let wanted = needs(entry);
    let missing: Vec<Package> = wanted.iter().filter(|p| !installed(p)).copied().collect();
    if missing.is_empty() {
        let names: Vec<&str> = wanted.iter().map(|p| p.name).collect();
        eprintln!("==> prerequisites: all present ({})", names.join(", "));
        return Ok(());
    }
    let sudo = !is_root();
    let can_sudo = || {
        Command::new("sudo")
            .args(["-n", "true"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let names: Vec<&str> = missing.iter().map(|p| p.name).collect();
    if which::which("apt-get").is_err() || (sudo && !can_sudo()) {
        let mut cmds = vec![format!("{}apt-get update", if sudo { "sudo " } else { "" })];
        cmds.extend(install_commands(&missing, sudo));
        return Err(Error::from(stackpilot_core::step::HostError::Prereq {
            what: names.join(", "),
            install: cmds.join(" && "),
        }));
    }
    eprintln!(
        "==> prerequisites: installing {} with apt-get{}",
        names.join(", "),
        if sudo { " (through sudo)" } else { "" }
    );
    let apt = |args: &[&str]| {
        let mut c = if sudo {
            let mut c = Command::new("sudo");
            c.args(["-n", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
            c
        } else {
            let mut c = Command::new("apt-get");
            c.env("DEBIAN_FRONTEND", "noninteractive");
            c
        };
        c.args(args);
        c
    };
    step("apt-get update", &mut apt(&["update", "-q"]))?;
    for recommends in [false, true] {
        let group: Vec<&str> = missing
            .iter()
            .filter(|p| p.recommends == recommends)
            .map(|p| p.name)
            .collect();
        if group.is_empty() {
            continue;
        }
        let mut install = apt(&["install", "-y", "-q"]);
        if !recommends {
            install.arg("--no-install-recommends");
        }
        install.args(&group);
        step("apt-get install", &mut install)?;
    }
    Ok(())
}

fn names(p: &[(&str, &str)]) -> String {
    p.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// What the libvirt provider needs on a Debian host, with the program that proves each.
/// `qemu-system-x86` comes from the suite of the host's `qemu-utils` (a backport on some
/// hosts: bookworm's own qemu-system conflicts with the 10.0 backport of qemu-utils).
const LIBVIRT_PACKAGES: &[(&str, &str)] = &[
    ("qemu-system-x86", "qemu-system-x86_64"),
    ("qemu-utils", "qemu-img"),
    ("libvirt-daemon-system", "libvirtd"),
    (
        "libvirt-daemon-driver-qemu",
        "/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so",
    ),
    ("libvirt-clients", "virsh"),
    ("dnsmasq-base", "dnsmasq"),
    ("e2fsprogs", "mkfs.ext4"),
];

/// The daemons libvirt needs, started here when not running (no systemd as PID 1 on some
/// hosts, so nothing else starts them).
const LIBVIRT_DAEMONS: &[&str] = &["virtlogd", "libvirtd"];

/// Installs what the libvirt provider needs and starts its daemons, saying what it did.
pub fn ensure_libvirt_host() -> Result<(), Error> {
    let present = |prog: &str| {
        if prog.starts_with('/') {
            std::path::Path::new(prog).exists()
        } else {
            which::which(prog).is_ok()
        }
    };
    let missing: Vec<&str> = LIBVIRT_PACKAGES
        .iter()
        .filter(|(_, prog)| !present(prog))
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        eprintln!(
            "==> prerequisites (libvirt): all present ({})",
            names(LIBVIRT_PACKAGES)
        );
    } else {
        install_libvirt_packages(&missing)?;
    }
    for daemon in LIBVIRT_DAEMONS {
        let running = Command::new("pgrep")
            .args(["-x", daemon])
            .output()
            .is_ok_and(|o| o.status.success());
        if running {
            continue;
        }
        eprintln!("==> prerequisites (libvirt): {daemon} is not running; starting it");
        let mut cmd = if std::path::Path::new("/run/systemd/system").is_dir() {
            let mut c = Command::new("systemctl");
            c.args(["start", daemon]);
            c
        } else {
            let mut c = Command::new(daemon);
            c.arg("-d");
            c
        };
        if !is_root() {
            let prog = cmd.get_program().to_owned();
            let args: Vec<_> = cmd.get_args().map(ToOwned::to_owned).collect();
            cmd = Command::new("sudo");
            cmd.arg("-n").arg(prog).args(args);
        }
        step(&format!("start {daemon}"), &mut cmd)?;
    }
    Ok(())
}

/// The apt suite to take `qemu-system-x86` from: the backports suite when the host's
/// `qemu-utils` is a backport (versions `~bpo`), else the default.
pub fn qemu_suite(qemu_utils_version: &str, codename: &str) -> Option<String> {
    qemu_utils_version
        .contains("~bpo")
        .then(|| format!("{codename}-backports"))
}

fn install_libvirt_packages(missing: &[&str]) -> Result<(), Error> {
    let install = format!("apt-get install -y {}", missing.join(" "));
    if !is_root() || which::which("apt-get").is_err() {
        return Err(Error::from(stackpilot_core::step::HostError::Prereq {
            what: format!("for the libvirt provider: {}", missing.join(", ")),
            install,
        }));
    }
    let version = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "qemu-utils"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let codename = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_default();
    let backports = qemu_suite(&version, &codename);
    if let Some(suite) = &backports {
        add_backports_source(suite)?;
    }
    eprintln!(
        "==> prerequisites (libvirt): installing {} with apt-get{}",
        missing.join(", "),
        backports.as_ref().map_or(String::new(), |s| format!(
            " (qemu-system-x86 from {s}, like qemu-utils)"
        ))
    );
    let apt = |args: &[&str]| {
        let mut c = Command::new("apt-get");
        c.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        c
    };
    step("apt-get update", &mut apt(&["update", "-q"]))?;
    let (qemu, rest): (Vec<&str>, Vec<&str>) =
        missing.iter().partition(|p| **p == "qemu-system-x86");
    if !qemu.is_empty() {
        let mut c = apt(&["install", "-y", "-q", "--no-install-recommends"]);
        if let Some(suite) = &backports {
            c.args(["-t", suite]);
        }
        step("apt-get install qemu-system-x86", c.args(&qemu))?;
    }
    if !rest.is_empty() {
        let mut c = apt(&["install", "-y", "-q", "--no-install-recommends"]);
        step("apt-get install (libvirt)", c.args(&rest))?;
    }
    Ok(())
}

/// Adds `suite` next to the host's Debian source (same mirror and keyring) when no apt
/// source names it yet.
fn add_backports_source(suite: &str) -> Result<(), Error> {
    let dir = std::path::Path::new("/etc/apt/sources.list.d");
    let texts: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    let list = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    if texts.iter().chain([&list]).any(|t| t.contains(suite)) {
        return Ok(());
    }
    let debian = std::fs::read_to_string(dir.join("debian.sources")).unwrap_or_default();
    let field = |k: &str| {
        debian
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
    };
    let uri = field("URIs:").unwrap_or_else(|| "http://deb.debian.org/debian".into());
    let key = field("Signed-By:")
        .unwrap_or_else(|| "/usr/share/keyrings/debian-archive-keyring.gpg".into());
    let path = dir.join(format!("{suite}.sources"));
    eprintln!(
        "==> prerequisites (libvirt): adding {suite} to apt ({})",
        path.display()
    );
    std::fs::write(
        &path,
        format!("Types: deb\nURIs: {uri}\nSuites: {suite}\nComponents: main\nSigned-By: {key}\n"),
    )
    .map_err(|e| Error::from(stackpilot_core::step::HostError::Prereq {
        what: format!("the {suite} apt source ({e})"),
        install: format!("add {suite} to /etc/apt/sources.list.d, then apt-get install -t {suite} qemu-system-x86"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_system_follows_a_backported_qemu_utils() {
        assert_eq!(
            qemu_suite("1:10.0.2+ds-2+deb13u1~bpo12+1", "bookworm").as_deref(),
            Some("bookworm-backports")
        );
        assert_eq!(qemu_suite("1:7.2+dfsg-7+deb12u13", "bookworm"), None);
    }

    #[test]
    fn tests_need_the_lab_and_the_contract_tests_python() {
        let lab: Vec<&str> = needs(EntryPoint::Lab).iter().map(|p| p.name).collect();
        assert_eq!(lab, ["vagrant", "mmdebstrap", "docker.io"]);
        let test: Vec<&str> = needs(EntryPoint::Test).iter().map(|p| p.name).collect();
        for p in lab
            .iter()
            .chain(&["python3-venv", "python3-pip", "postgresql"])
        {
            assert!(test.contains(p), "{p} missing from {test:?}");
        }
    }

    #[test]
    fn vagrant_is_installed_with_its_recommends_the_rest_without() {
        let cmds = install_commands(&needs(EntryPoint::Lab), true);
        assert_eq!(
            cmds,
            [
                "sudo apt-get install -y --no-install-recommends mmdebstrap docker.io",
                "sudo apt-get install -y vagrant"
            ]
        );
        assert_eq!(
            install_commands(&[pkg("shellcheck", Some("shellcheck"))], false),
            ["apt-get install -y --no-install-recommends shellcheck"]
        );
    }

    #[test]
    fn an_installed_package_is_seen_by_program_and_by_dpkg() {
        assert!(installed(&pkg("coreutils", Some("ls"))));
        assert!(!installed(&pkg(
            "no-such-package",
            Some("no-such-program-sp")
        )));
        // dpkg knows its own package on any Debian host this runs on.
        assert!(installed(&pkg("dpkg", None)));
        assert!(!installed(&pkg("no-such-package-sp", None)));
    }
}
