//! Host prerequisites, installed on a fresh machine (CI runs on a clean clone).

use std::process::Command;

use crate::error::Error;
use crate::process::step;

/// Debian packages the tests need, with the program that proves each is installed.
const PACKAGES: &[(&str, &str)] = &[
    ("util-linux", "unshare"),
    // mock-exchange's tests start a private server from /usr/lib/postgresql/<ver>/bin,
    // which is not on PATH; pg_ctlcluster comes with the server package and is.
    ("postgresql", "pg_ctlcluster"),
    ("mmdebstrap", "mmdebstrap"),
    ("vagrant", "vagrant"),
    ("shellcheck", "shellcheck"),
];

/// Installs missing Debian packages when running as root on a Debian/Ubuntu host;
/// otherwise names what is missing.
pub fn ensure_test_packages() -> Result<(), Error> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, prog)| which::which(prog).is_err())
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        eprintln!("==> prerequisites: all present ({})", names(PACKAGES));
        return Ok(());
    }
    // As root, apt-get directly; otherwise through passwordless sudo (hosted CI runners).
    let sudo = !is_root();
    let can_sudo = || {
        Command::new("sudo")
            .args(["-n", "true"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if which::which("apt-get").is_err() || (sudo && !can_sudo()) {
        return Err(Error::Prereq {
            what: missing.join(", "),
            install: format!("apt-get install -y {}", missing.join(" ")),
        });
    }
    eprintln!(
        "==> prerequisites: installing {} with apt-get{}",
        missing.join(", "),
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
    let mut install = apt(&["install", "-y", "-q", "--no-install-recommends"]);
    install.args(&missing);
    step("apt-get install", &mut install)
}

fn names(p: &[(&str, &str)]) -> String {
    p.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // Reading our own uid from procfs avoids a dependency for one call.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
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
        return Err(Error::Prereq {
            what: format!("for the libvirt provider: {}", missing.join(", ")),
            install,
        });
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
    .map_err(|e| Error::Prereq {
        what: format!("the {suite} apt source ({e})"),
        install: format!("add {suite} to /etc/apt/sources.list.d, then apt-get install -t {suite} qemu-system-x86"),
    })
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
}
