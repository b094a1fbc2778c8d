//! The lab end to end on the docker provider with real Vagrant and a real Docker engine,
//! driving the real `xtask` binary.
//!
//! Lab tests run in a copy of the checkout whose stackpilot.toml names a lab and a docker
//! subnet of their own, so they never touch the developer's lab (its nodes, network,
//! volumes or marker). Test names start with `e2e_`: nextest runs them one at a time.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use stackpilot_core::capability::{self, Capability};
use support::{capable, echoed, ok, root, stdout};

/// Runs the real xtask binary in `dir`; output is kept and echoed. A temporary lab's copy
/// is named after its directory (`LAB=`), the real checkout by its own marker.
fn xtask(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("STACKPILOT_PROVIDER")
        .env_remove("LAB");
    if dir != root()
        && let Some(name) = dir.file_name()
    {
        cmd.env("LAB", name);
    }
    echoed(
        &format!("xtask {} (in {})", args.join(" "), dir.display()),
        &mut cmd,
    )
}

/// `cargo test` runs this file's tests in parallel; image builds of the same tags must not
/// race (nextest runs `e2e_` tests one at a time anyway).
fn images_guard() -> std::sync::MutexGuard<'static, ()> {
    static IMAGES: std::sync::Mutex<()> = std::sync::Mutex::new(());
    IMAGES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Builds or checks the images in the real checkout, so its lock records them.
fn images_in_checkout() {
    let _one_at_a_time = images_guard();
    ok(&xtask(&root(), &["images"]), "xtask images");
}

fn docker(args: &[&str]) -> String {
    stdout(&support::docker(args))
}

/// A copy of the checkout with its own lab name and docker subnet; destroys its lab and
/// removes everything it created when dropped, also when the test failed.
struct TempLab {
    dir: PathBuf,
    lab: String,
    subnet_prefix: String,
}

impl TempLab {
    fn new(tag: &str) -> TempLab {
        let pid = std::process::id();
        let lab = format!("sp-{tag}-{pid}");
        let dir = std::env::temp_dir().join(&lab);
        let _ = std::fs::remove_dir_all(&dir);
        copy_checkout(&root(), &dir);
        let used = docker(&[
            "network",
            "inspect",
            "--format",
            "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
            "bridge",
        ]) + " "
            + &all_subnets();
        let third = (0..100)
            .map(|i| 100 + (pid as usize + i) % 100)
            .find(|n| !used.contains(&format!("172.30.{n}.")))
            .expect("a free 172.30.x.0/24 subnet");
        let subnet_prefix = format!("172.30.{third}.");
        let cfg_path = dir.join("stackpilot.toml");
        let cfg = std::fs::read_to_string(&cfg_path).expect("copied stackpilot.toml");
        let cfg = cfg
            .replace("name = \"stackpilot\"", &format!("name = \"{lab}\""))
            .replace("172.30.56.", &subnet_prefix);
        std::fs::write(&cfg_path, cfg).expect("write stackpilot.toml");
        TempLab {
            dir,
            lab,
            subnet_prefix,
        }
    }

    fn containers(&self) -> String {
        docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=io.stackpilot.lab={}", self.lab),
        ])
    }

    fn networks(&self) -> String {
        docker(&[
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("name=^{}-lab$", self.lab),
        ])
    }

    /// The lab's volumes, found by name and by the lab's label (one line per match).
    fn volumes(&self) -> String {
        let by_name = docker(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("name=^{}-", self.lab),
        ]);
        let by_label = docker(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("label=io.stackpilot.lab={}", self.lab),
        ]);
        format!("{by_name}\n{by_label}").trim().to_string()
    }

    fn identity(&self, node: &str) -> String {
        let id_file = self
            .dir
            .join("vagrant/.vagrant/machines")
            .join(node)
            .join("docker/id");
        let id = std::fs::read_to_string(&id_file).expect("node created");
        docker(&[
            "exec",
            id.trim(),
            "cat",
            "/etc/stackpilot/node-identity.toml",
        ])
    }
}

impl Drop for TempLab {
    fn drop(&mut self) {
        if self.dir.join("vagrant/.vagrant/machines").exists() {
            let _ = xtask(&self.dir, &["lab", "destroy"]);
        }
        // Whatever a failed run left: the lab's containers, network and volumes.
        for c in self.containers().lines() {
            docker(&["rm", "-f", "-v", c]);
        }
        for n in self.networks().lines() {
            docker(&["network", "rm", n]);
        }
        for v in self.volumes().lines() {
            docker(&["volume", "rm", "-f", v]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn all_subnets() -> String {
    let ids = docker(&["network", "ls", "-q"]);
    let mut args = vec![
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
    ];
    args.extend(ids.lines());
    docker(&args)
}

/// Copies the checkout's tracked and untracked-but-not-ignored files (no target, no
/// Vagrant machine state, no lab marker).
fn copy_checkout(from: &Path, to: &Path) {
    let out = Command::new("git")
        .args(["ls-files", "-co", "--exclude-standard", "-z"])
        .current_dir(from)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git ls-files in {}", from.display());
    for rel in out.stdout.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let rel = Path::new(std::str::from_utf8(rel).expect("utf-8 path"));
        let src = from.join(rel);
        if !src.is_file() {
            continue;
        }
        let dst = to.join(rel);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).expect("mkdir in copy");
        }
        std::fs::copy(&src, &dst).expect("copy file");
    }
}

#[test]
fn e2e_lab_up_verify_halt_up_destroy_leaves_nothing() {
    if !capable() {
        return;
    }
    // Images are built (or checked) in the real checkout first, so its lock records them;
    // the copy then finds them present and matching.
    images_in_checkout();
    let lab = TempLab::new("e2e");
    let nodes = ["control", "worker1"];
    let started = Instant::now();

    let up = ok(
        &xtask(&lab.dir, &["lab", "up", nodes[0], nodes[1]]),
        "lab up",
    );
    assert_eq!(
        lab.volumes().lines().count(),
        4,
        "two engine volumes, each found by name and by the lab's label"
    );
    for n in nodes {
        assert!(
            up.contains(&format!("==> {n}: identity: written")),
            "first up writes {n}'s identity"
        );
        assert!(
            up.contains(&format!("==> {n}: images: loaded")),
            "{n} images"
        );
    }
    assert!(
        up.contains(&format!("{}10", lab.subnet_prefix)),
        "status shows the lab's own addresses"
    );
    let verified = ok(
        &xtask(&lab.dir, &["lab", "verify", nodes[0], nodes[1]]),
        "lab verify",
    );
    assert!(verified.contains("lab verify: all 12 checks passed"));

    // Provisioning is idempotent: a second run changes nothing and says so.
    let again = ok(
        &xtask(&lab.dir, &["lab", "provision", nodes[0], nodes[1]]),
        "lab provision",
    );
    for n in nodes {
        assert!(again.contains(&format!("==> {n}: identity: no change")));
        assert!(again.contains(&format!("==> {n}: images: no change")));
    }

    let before: Vec<String> = nodes.iter().map(|n| lab.identity(n)).collect();
    assert!(before[0].contains("node = \"control\""), "{}", before[0]);
    ok(
        &xtask(&lab.dir, &["lab", "halt", nodes[0], nodes[1]]),
        "lab halt",
    );
    let status = ok(&xtask(&lab.dir, &["lab", "status"]), "lab status");
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("control") && l.contains("stopped")),
        "control is stopped after halt"
    );
    let up_again = ok(
        &xtask(&lab.dir, &["lab", "up", nodes[0], nodes[1]]),
        "lab up",
    );
    assert!(up_again.contains("==> control: identity: no change"));
    let after: Vec<String> = nodes.iter().map(|n| lab.identity(n)).collect();
    assert_eq!(before, after, "identity unchanged across halt and up");
    ok(
        &xtask(&lab.dir, &["lab", "verify", nodes[0], nodes[1]]),
        "lab verify after halt/up",
    );

    ok(&xtask(&lab.dir, &["lab", "destroy"]), "lab destroy");
    assert_eq!(lab.containers(), "", "no lab container left");
    assert_eq!(lab.networks(), "", "no lab network left");
    assert_eq!(
        lab.volumes(),
        "",
        "no engine volume left (the inventory says they do not persist)"
    );
    eprintln!("e2e lab cycle took {:.1}s", started.elapsed().as_secs_f64());
}

#[test]
fn e2e_images_are_reused_only_when_they_match_the_lock() {
    if !capable() {
        return;
    }
    let second = {
        let _one_at_a_time = images_guard();
        ok(&xtask(&root(), &["images"]), "xtask images");
        ok(&xtask(&root(), &["images"]), "xtask images again")
    };
    assert!(second.contains("images: nothing to do"), "idempotent");
    assert!(!second.contains("latest"), "no floating tags");

    // A recipe that differs from what the lock pins is an error naming the fix; nothing is
    // built and the lock is not written.
    let lab = TempLab::new("lock");
    let lock_path = lab.dir.join("infra/images/images.lock");
    let lock = std::fs::read(&lock_path).expect("copied lock");
    let dockerfile = lab.dir.join("infra/images/runtime/Dockerfile");
    let mut recipe = std::fs::read_to_string(&dockerfile).expect("copied recipe");
    recipe.push_str("# changed\n");
    std::fs::write(&dockerfile, recipe).expect("write recipe");
    let out = xtask(&lab.dir, &["images"]);
    assert_eq!(out.status.code(), Some(1), "drift exits 1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the image recipes differ from"), "{err}");
    assert!(err.contains("runtime: the lock pins"), "{err}");
    assert!(err.contains("cargo xtask images --update-lock"), "{err}");
    assert_eq!(
        std::fs::read(&lock_path).expect("lock"),
        lock,
        "a normal run never writes the lock"
    );
}

#[test]
fn lab_up_refuses_an_unknown_node_with_exit_2() {
    let out = xtask(&root(), &["lab", "up", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown node 'nosuch'"), "{err}");
}

#[test]
fn lab_up_refuses_an_unknown_provider_with_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["lab", "up", "control"])
        .current_dir(root())
        .env("STACKPILOT_PROVIDER", "hyperv")
        .output()
        .expect("xtask runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("expected one of virtualbox, libvirt, docker, found 'hyperv'"),
        "{err}"
    );
}

#[test]
fn lab_verify_of_a_node_not_created_fails_with_exit_1_and_the_fix() {
    let lab = TempLab::new("verify");
    let out = xtask(&lab.dir, &["lab", "verify", "control"]);
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("not created; run `cargo xtask lab up control`"),
        "{report}"
    );
}

#[test]
fn lab_inventory_check_fails_when_stackpilot_toml_changed() {
    let lab = TempLab::new("inventory");
    // TempLab renamed the lab in stackpilot.toml; the copied inventory.json still has the old one.
    let out = xtask(&lab.dir, &["lab", "inventory", "--check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has drifted"));
    ok(&xtask(&lab.dir, &["lab", "inventory"]), "lab inventory");
    ok(
        &xtask(&lab.dir, &["lab", "inventory", "--check"]),
        "lab inventory --check",
    );
}

#[test]
fn images_without_docker_exit_4_naming_the_package() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("images")
        .current_dir(root())
        .env("PATH", "/nonexistent")
        .output()
        .expect("xtask runs");
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    let install = err
        .lines()
        .find(|l| l.contains("install it with:"))
        .unwrap_or_default();
    assert!(
        install.contains("apt-get install") && install.contains("docker.io"),
        "{err}"
    );
}

#[test]
fn lab_up_without_vagrant_exits_4_naming_the_package() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["lab", "up", "control"])
        .current_dir(root())
        .env("PATH", "/nonexistent")
        .env_remove("STACKPILOT_PROVIDER")
        .output()
        .expect("xtask runs");
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apt-get install -y vagrant"), "{err}");
}

#[test]
fn e2e_vm_node_provisioning_is_idempotent() {
    if !capable() {
        return;
    }
    // The VMs' node provisioning (identity file, peer hostnames) run twice in a container
    // of the root image, the way Vagrant's shell provisioner runs it as root in a VM.
    images_in_checkout();
    let lock = std::fs::read_to_string(root().join("infra/images/images.lock")).expect("lock");
    let root_image = lock
        .lines()
        .find_map(|l| l.strip_prefix("tag = \"stackpilot/root:"))
        .map(|t| format!("stackpilot/root:{}", t.trim_end_matches('"')))
        .expect("root tag in the lock");
    let provision = root().join("vagrant/provision");
    let identity = "node = \"worker1\"\nlab = \"stackpilot\"\nlab_id = \"0123abcd\"\nprovider = \"virtualbox\"\n";
    let hosts = "192.168.56.10 control\n192.168.56.11 worker1\n192.168.56.12 worker2";
    let run = |script: &str, identity: &str| {
        Command::new("docker")
            .args(["run", "--rm", "--network", "none", "-v"])
            .arg(format!("{}:/provision:ro", provision.display()))
            .args([
                "-e",
                &format!("IDENTITY={identity}"),
                "-e",
                &format!("HOSTS={hosts}"),
            ])
            .args([root_image.as_str(), "bash", "-c", script])
            .output()
            .expect("docker runs")
    };
    let out = run(
        "/provision/node.sh && echo '--- second run' && /provision/node.sh && \
         echo '--- identity' && cat /etc/stackpilot/node-identity.toml && getent hosts worker2",
        identity,
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (first, second) = text.split_once("--- second run").expect("two runs");
    assert!(first.contains("node: identity written"), "{first}");
    assert!(first.contains("node: peer hostnames written"), "{first}");
    let (second, rest) = second.split_once("--- identity").expect("identity shown");
    assert_eq!(
        second.trim(),
        "node: no change",
        "second run changes nothing"
    );
    assert!(rest.contains("lab_id = \"0123abcd\""), "{rest}");
    assert!(
        rest.contains("192.168.56.12   worker2") || rest.contains("192.168.56.12 worker2"),
        "{rest}"
    );

    // Without a lab id (no marker in the repo) provisioning refuses and says what to run.
    let refused = run(
        "/provision/node.sh",
        "node = \"worker1\"\nlab = \"stackpilot\"\nlab_id = \"\"\n",
    );
    assert!(!refused.status.success(), "no lab id: refused");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cargo xtask lab up"));
}

#[test]
fn e2e_two_labs_share_a_host_and_destroy_only_their_own() {
    if !capable() {
        return;
    }
    images_in_checkout();
    // Both copies configure the same subnet: the second lab must find it taken and choose
    // the next free /24, with its own node container, network and volume names.
    let a = TempLab::new("two-a");
    let b = TempLab::new("two-b");
    ok(&xtask(&a.dir, &["lab", "up", "control"]), "lab up in a");
    ok(
        &xtask(&a.dir, &["lab", "verify", "control"]),
        "a verify (before)",
    );
    let up_b = ok(&xtask(&b.dir, &["lab", "up", "control"]), "lab up in b");
    assert!(
        !up_b.contains(&format!("{}10 ", a.subnet_prefix)),
        "b's control is not on a's subnet: {up_b}"
    );
    ok(
        &xtask(&a.dir, &["lab", "verify", "control"]),
        "a verify (during)",
    );
    ok(&xtask(&b.dir, &["lab", "verify", "control"]), "b verify");
    let status = ok(&xtask(&a.dir, &["lab", "status"]), "lab status");
    for lab in [&a, &b] {
        let checkout = lab.dir.canonicalize().expect("checkout");
        assert!(
            status
                .lines()
                .any(|l| l.contains(&lab.lab) && l.contains(&checkout.display().to_string())),
            "lab status lists {} with its checkout: {status}",
            lab.lab
        );
    }
    ok(&xtask(&b.dir, &["lab", "destroy"]), "b destroy");
    assert_eq!(b.containers(), "", "no container of b left");
    assert_eq!(b.networks(), "", "no network of b left");
    assert_eq!(b.volumes(), "", "no volume of b left");
    assert_ne!(a.containers(), "", "a's node is untouched");
    ok(
        &xtask(&a.dir, &["lab", "verify", "control"]),
        "a verify (after)",
    );
}

#[test]
fn lab_status_json_is_one_document_naming_every_node() {
    if !capability::require(&[Capability::Vagrant]) {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["lab", "status", "--json"])
        .current_dir(root())
        .env_remove("STACKPILOT_PROVIDER")
        .output()
        .expect("xtask runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let nodes: Vec<&str> = doc["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            assert!(n["state"].is_string(), "{n}");
            n["node"].as_str().expect("node name")
        })
        .collect();
    assert_eq!(nodes, ["control", "worker1", "worker2"]);
    assert!(doc["this_lab"].is_string(), "{doc}");
}
