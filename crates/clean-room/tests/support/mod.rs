//! Fixtures for tests against the host's Docker engine: a static "sleeper" binary compiled
//! here, tiny images built FROM scratch around it (nothing is pulled), a ctx-guard token
//! from a good node's facts, and a cleanup that runs even when a test fails.
//!
//! Everything created carries a name unique to the test run, so parallel runs and other
//! users of the engine are never touched.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use stackpilot_core::node::{Identity, LabMarker};

/// The sleeper: sleeps until SIGTERM/SIGINT; exits at once when called as `pg_isready`
/// or with `healthcheck` (so it stands in for both the api and Postgres's probe): 0, or 1
/// when `LOG_LEVEL=sick`.
const SLEEPER: &str = r#"
extern "C" { fn signal(sig: i32, handler: usize) -> usize; }
extern "C" fn bye(_: i32) { std::process::exit(0) }
fn main() {
    let argv0 = std::env::args().next().unwrap_or_default();
    if argv0.ends_with("pg_isready") || std::env::args().nth(1).as_deref() == Some("healthcheck") {
        // A drill can make the probe fail: `lifecycle up --set LOG_LEVEL=sick`.
        if std::env::var("LOG_LEVEL").as_deref() == Ok("sick") { std::process::exit(1) }
        return;
    }
    unsafe { signal(15, bye as *const () as usize); signal(2, bye as *const () as usize); }
    loop { std::thread::sleep(std::time::Duration::from_secs(3600)); }
}
"#;

/// A name unique to this test run: `<prefix>-<pid>-<nanos>`.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Runs a command; panics with its output when it fails. Returns stdout, trimmed.
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `docker <args>`, checked.
pub fn docker(args: &[&str]) -> String {
    sh(Command::new("docker").args(args))
}

/// Whether `docker <args>` succeeds (e.g. `volume inspect X`).
pub fn docker_ok(args: &[&str]) -> bool {
    Command::new("docker")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Compiles the sleeper statically into `dir` and returns its path.
pub fn sleeper(dir: &Path) -> PathBuf {
    let src = dir.join("sleeper.rs");
    let bin = dir.join("sleeper");
    std::fs::write(&src, SLEEPER).expect("write sleeper.rs");
    sh(Command::new("rustc")
        .args([
            "--edition",
            "2021",
            "-O",
            "-C",
            "target-feature=+crt-static",
            "-o",
        ])
        .arg(&bin)
        .arg(&src));
    bin
}

/// Builds an image FROM scratch holding the sleeper as `/sleeper` (entrypoint),
/// `/app/mock-exchange` and `/usr/bin/pg_isready`, a `postgres` user, and `labels`.
pub fn sleeper_image(dir: &Path, sleeper: &Path, tag: &str, labels: &[(&str, &str)]) {
    let ctx = dir.join(tag.replace(['/', ':'], "_"));
    std::fs::create_dir_all(&ctx).expect("context dir");
    std::fs::copy(sleeper, ctx.join("sleeper")).expect("copy sleeper");
    std::fs::write(
        ctx.join("passwd"),
        "root:x:0:0::/:/sleeper\npostgres:x:101:101::/:/sleeper\n",
    )
    .expect("passwd");
    std::fs::write(ctx.join("group"), "root:x:0:\npostgres:x:101:\n").expect("group");
    let mut dockerfile = String::from(
        "FROM scratch\nCOPY sleeper /sleeper\nCOPY sleeper /app/mock-exchange\n\
         COPY sleeper /usr/bin/pg_isready\nCOPY passwd group /etc/\n\
         ENTRYPOINT [\"/sleeper\"]\n",
    );
    for (k, v) in labels {
        dockerfile.push_str(&format!("LABEL {k}={v}\n"));
    }
    std::fs::write(ctx.join("Dockerfile"), dockerfile).expect("Dockerfile");
    sh(Command::new("docker")
        .args(["build", "-q", "--no-cache", "-t", tag])
        .arg(&ctx));
}

/// The ctx-guard token, from the facts of a good node (a VirtualBox shared folder at
/// /vagrant, matching identity and marker): what `ctx_guard::guard` returns on a node.
pub fn allowed() -> ctx_guard::Allowed {
    let facts = ctx_guard::Facts {
        cwd: Ok(PathBuf::from("/vagrant")),
        vagrant_is_symlink: Some(false),
        mountinfo: "25 1 252:0 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                    1144 25 0:57 / /vagrant rw,nodev,relatime shared:601 - vboxsf vagrant rw\n"
            .into(),
        identity: Ok(Identity {
            node: "control".into(),
            lab: "stackpilot".into(),
            lab_id: "lab-test".into(),
            provider: "virtualbox".into(),
            repo_source: None,
        }),
        marker: Ok(LabMarker {
            lab: "stackpilot".into(),
            lab_id: "lab-test".into(),
            ..Default::default()
        }),
        missing_entries: vec![],
    };
    let decision = ctx_guard::decide(&facts);
    let identity =
        ctx_guard::judge(&decision, &facts, "make test").expect("a good node's facts are allowed");
    ctx_guard::Allowed::for_tests(identity)
}

/// Removes, on drop, every container carrying one of `labels`, the `images`, the
/// `volumes` and the `networks` — also when the test panicked.
#[derive(Default)]
pub struct Cleanup {
    pub labels: Vec<String>,
    pub images: Vec<String>,
    pub volumes: Vec<String>,
    pub networks: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for label in &self.labels {
            let ids = Command::new("docker")
                .args(["ps", "-aq", "--filter", &format!("label={label}")])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for id in ids.split_whitespace() {
                let _ = Command::new("docker").args(["rm", "-f", id]).output();
            }
        }
        for image in &self.images {
            let _ = Command::new("docker").args(["rmi", "-f", image]).output();
        }
        for volume in &self.volumes {
            let _ = Command::new("docker")
                .args(["volume", "rm", "-f", volume])
                .output();
        }
        for network in &self.networks {
            let _ = Command::new("docker")
                .args(["network", "rm", network])
                .output();
        }
    }
}
