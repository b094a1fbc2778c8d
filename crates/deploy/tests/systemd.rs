//! The systemd unit of VM nodes passes `systemd-analyze verify` for every environment,
//! and a broken one does not (the check can fail).

use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Renders the unit for `env` into a scratch repo whose node binaries exist (copies of
/// `true`), then runs `systemd-analyze verify` on it. Returns (success, output).
fn analyze(unit_text: &str, env: &str) -> (bool, String) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bin = tmp
        .path()
        .join("repo/target/x86_64-unknown-linux-gnu/release");
    std::fs::create_dir_all(&bin).expect("bin dir");
    std::fs::copy("/bin/true", bin.join("lifecycle")).expect("copy /bin/true");
    let unit = tmp.path().join(deploy::systemd::unit_name(env));
    std::fs::write(
        &unit,
        deploy::systemd::render(unit_text, &tmp.path().join("repo")),
    )
    .expect("write unit");
    let analyze = which_systemd_analyze();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze runs");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn which_systemd_analyze() -> &'static str {
    for p in ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"] {
        if Path::new(p).exists() {
            return p;
        }
    }
    panic!("systemd-analyze is missing: apt-get install systemd (it checks the VM nodes' unit)");
}

fn template() -> String {
    std::fs::read_to_string(repo().join(deploy::systemd::TEMPLATE)).expect("unit template")
}

#[test]
fn unit_verifies_for_every_environment() {
    for env in ["dev", "staging", "live"] {
        let (ok, out) = analyze(&template(), env);
        assert!(ok, "{env}: systemd-analyze verify failed:\n{out}");
    }
}

#[test]
fn unit_starts_and_stops_through_lifecycle_and_is_enabled_for_boot() {
    let t = template();
    assert!(t.contains(
        "ExecStart=/vagrant/target/x86_64-unknown-linux-gnu/release/lifecycle up --env %i"
    ));
    assert!(t.contains(
        "ExecStop=/vagrant/target/x86_64-unknown-linux-gnu/release/lifecycle down --env %i"
    ));
    assert!(t.contains("WantedBy=multi-user.target"));
    assert!(t.contains("Requires=docker.service"));
    assert!(t.contains("StandardOutput=journal"));
}

#[test]
fn a_unit_with_a_missing_program_fails_verification() {
    let broken = template().replace("ExecStart=/vagrant", "ExecStart=/nonexistent");
    let (ok, out) = analyze(&broken, "dev");
    assert!(!ok, "expected a failure:\n{out}");
    assert!(out.contains("not executable"), "{out}");
}
