//! Fresh clones on one host, as a new user and a user with two checkouts see them: each
//! clone's `make demo-reviewer` passes and leaves `git status` clean, a second clone's lab
//! runs next to the first's without touching it, and each destroy removes only its own lab.
//!
//! The clones are real `git clone`s of this checkout's HEAD with their own `target/` (the
//! golden path compiles from the checkout it runs in). Each clone's `target/` is seeded
//! with copies of this checkout's compiled registry dependencies (xtask's debug build) and
//! of its whole static build when this checkout is HEAD's tree (`support::seed_static_build`),
//! so a clone compiles xtask's own crates and the app's build id: the point here is the
//! clean tree and the separate labs, not a cold build (about 5 GB and several minutes per
//! clone otherwise; CI's own fresh clone is the cold build).
//! The clones' labs are their own, so nextest runs this test in its own group, beside the
//! lab e2e tests of this checkout (.config/nextest.toml); its builds and make runs go at a
//! lower CPU priority (`nice`) so the timed tests running beside it keep their figures.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// A clone of this checkout in a temporary directory; its lab is destroyed and the
/// directory removed on drop, also when the test failed.
struct Clone {
    dir: PathBuf,
}

impl Clone {
    fn new(tag: &str) -> Clone {
        let dir = std::env::temp_dir().join(format!("sp-clone-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new("git")
            .args(["clone", "--quiet", "--no-hardlinks"])
            .arg(support::root())
            .arg(&dir)
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git clone: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // xtask's own debug build: its registry dependencies; the static build nodes run:
        // whole when this checkout is HEAD's tree (see `seed_static_build`).
        support::seed_dependencies(
            &support::root().join("target"),
            &dir.join("target"),
            &["debug"],
        );
        support::seed_static_build(&dir.join("target"));
        Clone { dir }
    }

    /// `make TARGET` in the clone, with the clone's own toolchain state; output echoed.
    fn make(&self, args: &[&str]) -> Output {
        make_in(&self.dir, args)
    }

    fn git_status(&self) -> String {
        let out = Command::new("git")
            .args(["status", "--porcelain"])
            .current_dir(&self.dir)
            .output()
            .expect("git runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The lab name the clone recorded in its marker.
    fn lab(&self) -> String {
        let marker = std::fs::read_to_string(self.dir.join(".stackpilot-lab")).expect("marker");
        marker
            .lines()
            .find_map(|l| l.strip_prefix("name = "))
            .map(|v| v.trim_matches('"').to_string())
            .expect("the marker names the lab")
    }

    /// Containers, networks and volumes labelled with the clone's lab.
    fn resources(&self, lab: &str) -> String {
        let filter = format!("label=io.stackpilot.lab={lab}");
        ["ps -aq", "network ls -q", "volume ls -q"]
            .iter()
            .map(|cmd| {
                let mut args: Vec<&str> = cmd.split(' ').collect();
                args.extend(["--filter", &filter]);
                let out = Command::new("docker")
                    .args(&args)
                    .output()
                    .expect("docker runs");
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            })
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Clone {
    fn drop(&mut self) {
        if self.dir.join("vagrant/.vagrant/machines").exists() {
            let _ = self.make(&["destroy"]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn workspace_outputs_are_told_from_registry_ones() {
    for ours in [
        "libstackpilot_core-00000000deadbeef.rlib",
        "stackpilot-core-00000000deadbeef",
        "xtask-00000000deadbeef",
        "lab-00000000deadbeef.d",
        "ctx_guard-00000000deadbeef",
    ] {
        assert!(support::is_workspace_output(ours), "{ours}");
    }
    for theirs in [
        "liblabels-00000000deadbeef.rlib",
        "libclap-00000000deadbeef.rlib",
        "ci_info-00000000deadbeef",
        "serde-00000000deadbeef",
    ] {
        assert!(!support::is_workspace_output(theirs), "{theirs}");
    }
}

/// `make ARGS` in a clone, with the clone's own toolchain state, at a lower CPU priority
/// than the tests beside it; output echoed.
fn make_in(dir: &Path, args: &[&str]) -> Output {
    support::echoed(
        &format!("make {} (in {})", args.join(" "), dir.display()),
        Command::new("nice")
            .args(["-n", "10", "make"])
            .args(args)
            .current_dir(dir)
            .env_remove("LAB")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("STACKPILOT_PROVIDER")
            .env("NODE", "control")
            .env("ENV", "dev"),
    )
}

fn passed(out: &Output, what: &str, dir: &Path) {
    assert!(
        out.status.success(),
        "{what} in {} failed with {:?} (output above)",
        dir.display(),
        out.status.code()
    );
}

#[test]
fn e2e_two_fresh_clones_share_a_host_and_stay_clean() {
    if !support::capable() {
        return;
    }
    let started = Instant::now();
    let first = Clone::new("a");
    passed(
        &first.make(&["demo-reviewer"]),
        "make demo-reviewer",
        &first.dir,
    );
    assert_eq!(
        first.git_status(),
        "",
        "a normal run never modifies a tracked file"
    );
    passed(
        &first.make(&["verify"]),
        "first verify (before)",
        &first.dir,
    );
    let lab_a = first.lab();
    eprintln!(
        "first clone ready after {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // The second clone's whole golden path runs while the first's lab keeps serving.
    let second = Clone::new("b");
    let second_dir = second.dir.clone();
    let run = std::thread::spawn(move || make_in(&second_dir, &["demo-reviewer"]));
    let mut during = 0;
    while !run.is_finished() {
        passed(
            &first.make(&["verify"]),
            "first verify (during)",
            &first.dir,
        );
        during += 1;
        std::thread::sleep(std::time::Duration::from_secs(20));
    }
    let second_out = run.join().expect("second clone's run");
    passed(&second_out, "second make demo-reviewer", &second.dir);
    assert!(
        during > 0,
        "the first lab was verified while the second ran"
    );
    assert_eq!(second.git_status(), "", "the second clone stays clean too");
    let lab_b = second.lab();
    assert_ne!(lab_a, lab_b, "each checkout has a lab of its own");
    passed(&second.make(&["verify"]), "second verify", &second.dir);
    passed(&first.make(&["verify"]), "first verify (after)", &first.dir);

    let status = first.make(&["lab-status"]);
    let listed = String::from_utf8_lossy(&status.stdout).to_string();
    for (lab, clone) in [(&lab_a, &first), (&lab_b, &second)] {
        assert!(
            listed.contains(lab.as_str()) && listed.contains(&clone.dir.display().to_string()),
            "lab status lists {lab} with its checkout: {listed}"
        );
    }

    // Destroying the second lab removes only its own; the first stays green.
    passed(&second.make(&["destroy"]), "second destroy", &second.dir);
    assert_eq!(
        second.resources(&lab_b),
        "",
        "nothing of the second lab is left"
    );
    assert_ne!(first.resources(&lab_a), "", "the first lab is untouched");
    passed(
        &first.make(&["verify"]),
        "first verify (after destroy)",
        &first.dir,
    );
    passed(&first.make(&["destroy"]), "first destroy", &first.dir);
    assert_eq!(
        first.resources(&lab_a),
        "",
        "nothing of the first lab is left"
    );
    assert_eq!(first.git_status(), "", "still clean after destroy");
    eprintln!(
        "two clones: demo-reviewer, parallel run and destroys took {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
