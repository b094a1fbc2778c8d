//! The lab on a real libvirt VM (`STACKPILOT_PROVIDER=libvirt`, one node, `control`), under
//! QEMU's TCG emulation where KVM guests cannot run: one VM boot, then every phase in order
//! (lab up and verification, demo-reviewer, ctx-guard on the 9p /vagrant, the
//! port-unreachable drill (root), deploy, the node-reboot drill as a real VM reboot that
//! also proves the deployed systemd unit starts at boot, its stop step, destroy).
//!
//! It runs in a copy of this checkout of its own (`target/vm-e2e/checkout`, a `git clone`
//! of HEAD, reset at every run; its `target/` is kept so a second run compiles only what
//! changed): its own lab marker and name, Vagrant machine directory, `.stackpilot/` and
//! `target/`, so nextest runs it in a test group of its own (`vm`, .config/nextest.toml)
//! beside the docker-provider lab tests (group `lab`), sharing nothing with them. The VM's
//! libvirt domain, volume and networks are libvirt's, which docker-provider labs never use.
//!
//! Without libvirt (and no way for the lab to install it) it prints `SKIP(libvirt)` and
//! returns, and fails under `CI=true`.
//!
//! Also here: with the vagrant-libvirt plugin installed (libvirt then is Vagrant's default
//! provider) the docker provider's destroy of a never-created lab and a plain
//! `vagrant validate` pass; `lab::nodes::tests::vagrantfile_validates` (`make check`) and
//! the docker lab e2e (`e2e_lab_up_verify_halt_up_destroy_leaves_nothing`) cover the pinned
//! validate and the destroy of created nodes on the same hosts.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use stackpilot_core::capability::{self, Capability};
use stackpilot_core::http::{self, Timeouts};

/// The lab name of the test's checkout (`LAB=`).
const LAB: &str = "sp-vm-e2e";
const NODE: &str = "control";
const CTX_GUARD: &str = "/vagrant/target/x86_64-unknown-linux-gnu/release/ctx-guard";

/// The test's own checkout (`target/vm-e2e/checkout`, [`support::OwnCheckout`]), held for
/// the whole test: a host holds one VM lab (192.168.56.x), so a second checkout's VM e2e
/// (two clones running make test at once) waits for this one.
struct VmCheckout {
    dir: PathBuf,
    _own: support::OwnCheckout,
}

impl VmCheckout {
    fn prepare() -> VmCheckout {
        let own =
            support::OwnCheckout::prepare("vm-e2e", Some("vm e2e (one VM lab per host)"), |dir| {
                let _ = xtask_in(dir, &["lab", "destroy"], &[]);
            });
        VmCheckout {
            dir: own.dir.clone(),
            _own: own,
        }
    }

    /// Runs the real xtask binary in the test's checkout for the libvirt lab; output kept
    /// and echoed.
    fn xtask(&self, args: &[&str]) -> Output {
        self.xtask_env(args, &[])
    }

    fn xtask_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        xtask_in(&self.dir, args, env)
    }

    /// A shell script in the VM as the `vagrant` user, from /vagrant.
    fn in_vm(&self, script: &str) -> Output {
        let out = Command::new("vagrant")
            .args(["ssh", NODE, "--no-tty", "-c", script])
            .current_dir(self.dir.join("vagrant"))
            .env("VAGRANT_DEFAULT_PROVIDER", "libvirt")
            .env("VAGRANT_CHECKPOINT_DISABLE", "1")
            .output()
            .expect("vagrant runs");
        eprintln!(
            "--- [{NODE}] {script} exit {:?}\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for VmCheckout {
    fn drop(&mut self) {
        // A failed phase must not leave a VM running on the host.
        if std::thread::panicking() && self.dir.join("vagrant/.vagrant/machines").exists() {
            let _ = self.xtask(&["lab", "destroy"]);
        }
    }
}

/// Runs the real xtask binary in the checkout `dir` for the libvirt lab; output kept and
/// echoed.
fn xtask_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let started = Instant::now();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .env("STACKPILOT_PROVIDER", "libvirt")
        .env("LAB", LAB)
        .env("NODE", NODE)
        .env("ENV", "dev")
        .envs(env.iter().copied());
    eprintln!(
        "--- xtask {} (libvirt, in {})",
        args.join(" "),
        dir.display()
    );
    let out = echoed(&mut cmd);
    eprintln!(
        "--- xtask {} exit {:?} after {:.1}s\n{}",
        args.join(" "),
        out.status.code(),
        started.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stdout),
    );
    out
}

/// Runs `cmd` with its stderr echoed line by line as it comes (a VM step runs for minutes:
/// its progress shows in the test's output while it runs) and kept, like `output()`.
fn echoed(cmd: &mut Command) -> Output {
    use std::io::{BufRead, Read};
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let echo = std::thread::spawn(move || {
        let mut kept = Vec::new();
        for line in std::io::BufReader::new(stderr)
            .split(b'\n')
            .map_while(Result::ok)
        {
            eprintln!("    {}", String::from_utf8_lossy(&line));
            kept.extend_from_slice(&line);
            kept.push(b'\n');
        }
        kept
    });
    let mut stdout = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_end(&mut stdout);
    }
    let status = child.wait().expect("the command ends");
    let stderr = echo.join().unwrap_or_default();
    Output {
        status,
        stdout,
        stderr,
    }
}

fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed: exit {:?} (output above)",
        o.status.code()
    );
}

fn json(o: &Output) -> Value {
    let out = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {out}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `virsh -c qemu:///system <args>`, the first word of each line; `None` when virsh fails
/// (the default pool does not exist before the first `vagrant up`, say).
fn virsh(args: &[&str]) -> Option<Vec<String>> {
    let out = Command::new("virsh")
        .args(["-c", "qemu:///system"])
        .args(args)
        .output()
        .expect("virsh runs (the lab installed libvirt-clients)");
    if !out.status.success() {
        eprintln!(
            "virsh {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let words = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .filter(|l| !l.is_empty())
        .collect();
    Some(words)
}

/// The libvirt domains, volumes of the default pool (boxes excepted: they are images that
/// stay, like the docker lab's) and networks on the host.
fn libvirt_objects() -> Vec<String> {
    let mut all: Vec<String> = virsh(&["list", "--all", "--name"])
        .expect("virsh lists domains")
        .into_iter()
        .map(|d| format!("domain {d}"))
        .collect();
    all.extend(
        virsh(&["vol-list", "default"])
            .unwrap_or_default()
            .into_iter()
            .skip(1)
            .filter(|v| !v.starts_with('-') && !v.contains("_vagrant_box_image_"))
            .map(|v| format!("volume {v}")),
    );
    all.extend(
        virsh(&["net-list", "--all", "--name"])
            .expect("virsh lists networks")
            .into_iter()
            .map(|n| format!("network {n}")),
    );
    all.sort();
    all
}

/// Phase timings, printed at the end (the figures docs/benchmarks.md quotes).
#[derive(Default)]
struct Phases(Vec<(String, f64)>);

impl Phases {
    fn run<T>(&mut self, name: &str, f: impl FnOnce() -> T) -> T {
        eprintln!(
            "\n=== vm e2e phase: {name} (load {})",
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim()
        );
        let started = Instant::now();
        let r = f();
        let took = started.elapsed().as_secs_f64();
        eprintln!("=== vm e2e phase: {name} done in {took:.1}s");
        self.0.push((name.to_string(), took));
        r
    }

    fn summary(&self) -> String {
        let mut s = String::from("vm e2e phases:\n");
        for (name, took) in &self.0 {
            s.push_str(&format!("  {name:<44} {took:>7.1}s\n"));
        }
        let total: f64 = self.0.iter().map(|(_, t)| t).sum();
        s.push_str(&format!("  {:<44} {total:>7.1}s\n", "total"));
        s
    }
}

fn get(url: &str) -> Option<u16> {
    http::get(url, Timeouts::default()).answer().map(|(c, _)| c)
}

fn drill(vm: &VmCheckout, name: &str) -> Value {
    let out = vm.xtask(&["drills", "run", name, "--json"]);
    let summary = json(&out);
    ok(&out, &format!("drill {name}"));
    let j = summary["journals"]
        .as_array()
        .and_then(|js| js.iter().find(|j| j["drill"] == name))
        .unwrap_or_else(|| panic!("no journal for {name}: {summary}"))
        .clone();
    assert_eq!(j["verdict"], "passed", "{name}: {}", j["reason"]);
    assert_eq!(j["recovery"]["verified"], true, "{name}");
    eprintln!("drill {name} figures: {}", j["figures"]);
    j
}

fn figure(j: &Value, name: &str) -> i64 {
    j["figures"][name]
        .as_i64()
        .unwrap_or_else(|| panic!("{} has no figure {name}: {}", j["drill"], j["figures"]))
}

/// Polls `f` every few seconds until it is true or `within` has passed.
fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if f() {
            return true;
        }
        if started.elapsed() > within {
            return false;
        }
        std::thread::sleep(Duration::from_secs(5));
    }
}

#[test]
fn e2e_vm_libvirt_one_node_golden_path_drills_deploy_reboot_destroy() {
    if !capability::require(&[Capability::Docker, Capability::Vagrant, Capability::Libvirt]) {
        return;
    }
    let started = Instant::now();
    let mut phases = Phases::default();
    let vm = phases.run("own checkout (clone of HEAD)", VmCheckout::prepare);
    let cfg = stackpilot_core::Config::load(&vm.dir.join("stackpilot.toml")).expect("config");
    let port = cfg.environment("dev").expect("env dev").port();
    let before = phases.run("lab up (prerequisites, box, boot, images)", || {
        // Host prerequisites and the box come from the product's own steps; libvirt's
        // objects are listed once it is there.
        ok(&vm.xtask(&["images"]), "images (the box)");
        let before = libvirt_objects();
        // The record of a VM lab whose checkout was deleted without a destroy (and which
        // left no domain) must not hold the host: lab up removes it and says so.
        let state = stackpilot_core::labs::host_state_dir();
        let vanished = stackpilot_core::labs::LabRecord {
            name: "sp-vm-e2e-vanished".into(),
            checkout: vm.dir.join("deleted-clone").display().to_string(),
            provider: "libvirt".into(),
            subnet: None,
        };
        vanished
            .write(&state)
            .expect("write a vanished lab's record");
        let up = vm.xtask(&["lab", "up", NODE]);
        ok(&up, "lab up control");
        assert!(
            text(&up).contains("'sp-vm-e2e-vanished' (libvirt) of checkout")
                && text(&up).contains("is gone with its checkout"),
            "lab up names the vanished lab whose record it removed"
        );
        assert!(
            !stackpilot_core::labs::LabRecord::path(&state, &vanished.name).exists(),
            "the vanished lab's record is removed"
        );
        before
    });
    phases.run("lab verify", || {
        let out = vm.xtask(&["lab", "verify", NODE, "--json"]);
        ok(&out, "lab verify control");
        let report = json(&out);
        let checks = report["checks"].as_array().expect("checks");
        assert!(
            !checks.is_empty() && checks.iter().all(|c| c["pass"] == true),
            "every lab check passed: {report}"
        );
    });
    let status = json(&vm.xtask(&["lab", "status", NODE, "--json"]));
    let node = &status["nodes"][0];
    assert_eq!(node["provider"], "libvirt", "{status}");
    let address = node["address"].as_str().expect("address").to_string();
    let url = |path: &str| format!("http://{address}:{port}{path}");

    phases.run("demo-reviewer", || {
        let out = vm.xtask(&["demo-reviewer"]);
        ok(&out, "make demo-reviewer");
        assert!(
            text(&out).contains("running with /vagrant mounted: no `vagrant up` needed"),
            "the running VM is not booted again"
        );
        assert_eq!(get(&url("/ready")), Some(200), "/ready after demo-reviewer");
        // On the emulated CPU the engine probes every 10 s, not every 2 s (HealthCadence):
        // at 2 s the probes alone kept a host core busy.
        let intervals = vm.in_vm(
            "sudo -n docker ps -q --filter label=com.docker.compose.project | \
             xargs sudo -n docker inspect -f '{{.Config.Healthcheck.Interval}}'",
        );
        ok(&intervals, "docker inspect the stack's health intervals");
        let intervals = String::from_utf8_lossy(&intervals.stdout).into_owned();
        let found: Vec<&str> = intervals.lines().map(str::trim).collect();
        assert!(
            found.len() >= 2 && found.iter().all(|l| *l == "10s"),
            "the stack's containers probe every 10 s under TCG: {intervals}"
        );
    });

    phases.run("ctx-guard on the 9p /vagrant", || {
        let here = vm.in_vm(&format!("cd /vagrant && {CTX_GUARD} --explain"));
        ok(&here, "ctx-guard from /vagrant");
        assert!(text(&here).contains("9p"), "the mount rule names 9p");
        let home = vm.in_vm(&format!("cd /home/vagrant && {CTX_GUARD}"));
        assert_eq!(home.status.code(), Some(3), "ctx-guard from /home/vagrant");
        // A copy of the checkout bind-mounted over /vagrant, in a private mount namespace.
        let copy = vm.in_vm(&format!(
            "set -e; rm -rf /tmp/sp-copy; mkdir -p /tmp/sp-copy; \
             cp -a /vagrant/stackpilot.toml /vagrant/.stackpilot-lab /tmp/sp-copy/; \
             cp {CTX_GUARD} /tmp/sp-ctx-guard; \
             sudo -n unshare -m sh -c 'mount --bind /tmp/sp-copy /vagrant && cd /vagrant && exec /tmp/sp-ctx-guard --explain'"
        ));
        assert_eq!(copy.status.code(), Some(3), "ctx-guard in a copy");
        assert!(
            text(&copy).contains("mount-source"),
            "refused by the mount rule"
        );
    });

    phases.run("drill port-unreachable", || {
        let j = drill(&vm, "port-unreachable");
        assert!(figure(&j, "detection_latency_ms") > 0);
        assert!(figure(&j, "recovery_ms") >= 0);
    });
    phases.run("deploy ENV=dev", || {
        ok(&vm.xtask(&["deploy"]), "make deploy ENV=dev");
        assert_eq!(get(&url("/ready")), Some(200), "/ready after deploy");
    });
    // One real VM reboot proves both the drill and the unit at boot: emulated boots are the
    // VM e2e's dearest steps (about 200 s each under TCG beside make test's other labs).
    phases.run("drill node-reboot (a VM reboot) after the deploy", || {
        let boot_id = || {
            String::from_utf8_lossy(&vm.in_vm("cat /proc/sys/kernel/random/boot_id").stdout)
                .trim()
                .to_string()
        };
        let first = boot_id();
        assert!(!first.is_empty(), "the VM answers before the reboot");
        let j = drill(&vm, "node-reboot");
        assert!(figure(&j, "detection_latency_ms") > 0);
        assert!(figure(&j, "recovery_ms") > 0);
        assert_eq!(figure(&j, "orders_lost"), 0);
        let now = boot_id();
        assert!(
            !now.is_empty() && now != first,
            "the drill rebooted the VM (boot id {first:?}, now {now:?})"
        );
    });
    phases.run("after the reboot: stackpilot@dev started at boot", || {
        let active = wait_until(Duration::from_secs(600), || {
            vm.in_vm("systemctl is-active stackpilot@dev")
                .status
                .success()
        });
        // systemd keeps no unit state across a boot: active now means started at boot.
        assert!(active, "stackpilot@dev is active after the reboot");
        let ready = wait_until(Duration::from_secs(300), || {
            get(&url("/ready")) == Some(200)
        });
        assert!(ready, "/ready answers 200 after the reboot");
    });
    phases.run("systemctl stop runs lifecycle down", || {
        ok(
            &vm.in_vm("sudo -n systemctl stop stackpilot@dev"),
            "systemctl stop stackpilot@dev",
        );
        let journal = vm.in_vm("sudo -n journalctl -b -u stackpilot@dev --no-pager");
        assert!(
            text(&journal).contains("stopped the containers of env dev"),
            "the unit's stop step ran lifecycle down"
        );
        assert_ne!(get(&url("/ready")), Some(200), "the stack is down");
    });

    phases.run("destroy", || {
        ok(&vm.xtask(&["destroy"]), "make destroy");
        let after = libvirt_objects();
        let left: Vec<&String> = after.iter().filter(|o| !before.contains(o)).collect();
        assert!(
            left.is_empty(),
            "destroy left libvirt objects behind: {left:?}"
        );
        assert!(
            !after.iter().any(|o| o.contains(&format!("-{NODE}"))),
            "no domain or volume of the node is left: {after:?}"
        );
    });
    eprintln!(
        "{}vm e2e wall time {:.1}s",
        phases.summary(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn with_vagrant_libvirt_installed_a_docker_lab_never_created_is_destroyed_and_validates() {
    if !capability::require(&[
        Capability::Docker,
        Capability::Vagrant,
        Capability::VagrantLibvirt,
        Capability::LibvirtDaemon,
    ]) {
        return;
    }
    // A copy of HEAD's tree of its own: nothing of it was ever created.
    let dir = std::env::temp_dir().join(format!("sp-vagrant-libvirt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let archive = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "git -C {} archive HEAD | tar -x -C {}",
            support::root().display(),
            dir.display()
        ))
        .status()
        .expect("git archive runs");
    assert!(archive.success(), "git archive HEAD into {}", dir.display());
    let destroy = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["lab", "destroy"])
        .current_dir(&dir)
        .env_remove("STACKPILOT_PROVIDER")
        .env("LAB", "sp-never-created")
        .output()
        .expect("xtask runs");
    let said = text(&destroy);
    eprintln!("{said}");
    assert!(
        destroy.status.success(),
        "lab destroy of a never-created lab"
    );
    assert!(
        !said.contains("NFS"),
        "nothing resolved a machine under libvirt's NFS synced folder"
    );
    // What a user types, no provider pinned: the libvirt side syncs by 9p, not NFS.
    let validate = Command::new("vagrant")
        .arg("validate")
        .current_dir(dir.join("vagrant"))
        .env_remove("VAGRANT_DEFAULT_PROVIDER")
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .output()
        .expect("vagrant runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        validate.status.success(),
        "plain vagrant validate: {}",
        text(&validate)
    );
}
