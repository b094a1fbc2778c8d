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
