//! Helpers shared by xtask's end-to-end tests (lab, images, golden path, drills, deploy,
//! clones): where the repo is, whether the lab can run, running the real binaries with
//! their output echoed, and reaching into a docker-provider node.

// Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use stackpilot_core::capability::{self, Capability};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// The repo root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// Whether the lab can run here (a Docker engine and Vagrant); otherwise prints
/// `SKIP(<capability>): <why>`, and fails under `CI=true`.
#[allow(dead_code)] // the VM suite requires libvirt too, in one call
pub fn capable() -> bool {
    capability::require(&[Capability::Docker, Capability::Vagrant])
}

/// A command's stdout then its stderr, as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A command's stdout, trimmed.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Asserts that `o` succeeded (its output was echoed when it ran); returns its text.
pub fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed with exit {:?} (output above)",
        o.status.code()
    );
    text(o)
}

/// Runs `cmd` and keeps its output; echoes it under `what` with the exit code and the
/// time taken (the test runner shows it when a test fails, and with --nocapture).
pub fn echoed(what: &str, cmd: &mut Command) -> Output {
    let started = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what} could not start: {e}"));
    eprintln!(
        "--- {what} exit {:?} after {:.1}s\n{}",
        out.status.code(),
        started.elapsed().as_secs_f64(),
        text(&out)
    );
    out
}

/// Runs the real `cargo xtask` binary from the repo root for `node` (`NODE=`), with
/// extra variables; output echoed.
pub fn xtask(node: &str, args: &[&str], vars: &[(&str, &str)]) -> Output {
    echoed(
        &format!("xtask {} (NODE={node})", args.join(" ")),
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .env("NODE", node)
            .envs(vars.iter().copied())
            .current_dir(root()),
    )
}

/// Runs `make <args>` from the repo root for `node` (`NODE=`), with extra variables;
/// output echoed.
pub fn make(node: &str, args: &[&str], vars: &[(&str, &str)]) -> Output {
    echoed(
        &format!("make {} (NODE={node})", args.join(" ")),
        Command::new("make")
            .args(args)
            .env("NODE", node)
            .envs(vars.iter().copied())
            .current_dir(root()),
    )
}

/// Runs `docker <args>` on the host engine (output not echoed).
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs")
}

/// `docker exec` into a docker-provider node of this checkout's lab, from `/vagrant`:
/// add the command to run inside.
pub fn in_node(node: &str) -> Command {
    let vagrant = root().join("vagrant");
    let id = stackpilot_core::transport::docker_container_id(&vagrant, node)
        .unwrap_or_else(|| panic!("{node} is not created in {}", vagrant.display()));
    let mut cmd = Command::new("docker");
    cmd.args(["exec", "-w", "/vagrant", &id]);
    cmd
}

/// Undoes a fault a test injected on a node (stopped container, extra container, a stack
/// started the wrong way) when dropped, so a failed assertion on the way does not leave a
/// broken node for the next test. On the normal path `now` undoes it, and a failed undo
/// fails the test there.
pub struct Undo<F: FnMut() -> Result<(), String>> {
    what: String,
    undo: F,
    done: bool,
}

impl<F: FnMut() -> Result<(), String>> Undo<F> {
    /// A guard that runs `undo` when dropped, unless `now` or `dismiss` came first.
    pub fn new(what: &str, undo: F) -> Self {
        remember_panics();
        Undo {
            what: what.to_string(),
            undo,
            done: false,
        }
    }

    /// The test ended where the undo is not needed (it already cleaned up itself).
    pub fn dismiss(mut self) {
        self.done = true;
    }

    /// Undoes the fault now; panics when that fails.
    pub fn now(mut self) {
        self.done = true;
        if let Err(e) = (self.undo)() {
            panic!("undoing {}: {e}", self.what);
        }
    }
}

impl<F: FnMut() -> Result<(), String>> Drop for Undo<F> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Reached only when the test stopped early: say so, never panic again here.
        eprintln!("undoing {} (the test stopped before it did)", self.what);
        if let Err(e) = (self.undo)() {
            eprintln!("could not undo {}: {e}", self.what);
        }
        // The panic message was printed before this cleanup's output, which can bury it
        // where a report keeps only a stream's head and tail: say it once more, last.
        if std::thread::panicking()
            && let Some(p) = last_panic()
        {
            eprintln!("the test failed (repeated after the cleanup above): {p}");
        }
    }
}

/// The newest panic of this test process, as the panic hook printed it.
static LAST_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// The newest panic an [`Undo`]'s test process printed (the hook is installed by the
/// first `Undo::new`).
pub fn last_panic() -> Option<String> {
    LAST_PANIC.lock().ok().and_then(|p| p.clone())
}

/// Installs (once) a panic hook that keeps the message for [`Undo`], then prints as before.
fn remember_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Ok(mut last) = LAST_PANIC.lock() {
                *last = Some(info.to_string());
            }
            default(info);
        }));
    });
}

/// A command's outcome as the undo of a guard: `Err` with its output when it failed.
pub fn succeeded(o: Output) -> Result<(), String> {
    if o.status.success() {
        Ok(())
    } else {
        Err(format!("exit {:?}: {}", o.status.code(), text(&o)))
    }
}

/// The workspace's own packages: their build outputs are not copied into a clone.
const WORKSPACE: &[&str] = &[
    "bench",
    "ci",
    "clean-room",
    "contracts",
    "ctx-guard",
    "deploy",
    "drills",
    "lab",
    "lifecycle",
    "stackpilot-core",
    "verify",
    "mock-exchange",
    "pg-harness",
    "xtask",
];

/// Whether a build-output entry (`<crate>-<16 hex>` plus an optional extension, also with
/// the `lib` prefix) belongs to a workspace package.
#[allow(dead_code)] // used by the suites that make copies of the checkout
pub fn is_workspace_output(name: &str) -> bool {
    let name = name.strip_prefix("lib").unwrap_or(name).replace('-', "_");
    WORKSPACE.iter().any(|p| {
        name.strip_prefix(&format!("{}_", p.replace('-', "_")))
            .is_some_and(|rest| {
                rest.len() >= 16 && rest[..16].bytes().all(|b| b.is_ascii_hexdigit())
            })
    })
}

/// Copies the compiled registry dependencies of `profiles` (target/ subdirectories) from
/// `from` into `to`. Copies, never hard links: cargo must not share a file between two
/// target directories.
#[allow(dead_code)]
pub fn seed_dependencies(from: &Path, to: &Path, profiles: &[&str]) {
    for profile in profiles {
        for dir in ["deps", "build", ".fingerprint"] {
            let src = from.join(profile).join(dir);
            let Ok(entries) = std::fs::read_dir(&src) else {
                continue;
            };
            let dst = to.join(profile).join(dir);
            std::fs::create_dir_all(&dst).expect("create the clone's target dir");
            let picked: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .filter(|e| !is_workspace_output(&e.file_name().to_string_lossy()))
                .map(|e| e.path())
                .collect();
            let cp = |paths: &[PathBuf]| {
                Command::new("cp")
                    .arg("-a")
                    .args(paths)
                    .arg(&dst)
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            for chunk in picked.chunks(500) {
                if cp(chunk) {
                    continue;
                }
                // Another build in `from` (a lab test compiling the node tools) may have
                // removed its temporaries (codegen units) since the listing: what is gone
                // was not an output; everything still there must copy.
                for path in chunk.iter().filter(|p| p.exists()) {
                    assert!(
                        cp(std::slice::from_ref(path)) || !path.exists(),
                        "seeding {} from {}: cp -a {} failed",
                        dst.display(),
                        src.display(),
                        path.display()
                    );
                }
            }
        }
    }
}

/// The profiles (target/ subdirectories) of the static release build nodes run: with
/// `--target`, build scripts and proc macros are compiled for the host into `release/`, the
/// rest into `<triple>/release/`.
#[allow(dead_code)]
pub const STATIC_PROFILES: &[&str] = &["release", "x86_64-unknown-linux-gnu/release"];

/// Seeds the target/ dir `to` of a checkout of this checkout's HEAD with this checkout's
/// static release build (node-side tools and app), which the lab tests here need too: it
/// is built here first (cargo's lock makes a lab test building it at the same time wait,
/// or this wait), with both package sets the lab builds (the tools alone at lab up, tools
/// and app at demo-reviewer), then copied.
///
/// When this checkout has no change against HEAD, the copy is whole: registry
/// dependencies, the workspace's own crates and binaries, modification times kept, and
/// then every dep-info file touched, so it is newer than the other checkout's freshly
/// checked-out sources. cargo then takes every copied unit as fresh (paths in its
/// fingerprints are relative to the workspace) and compiles only what changes per build,
/// the app's build id. With local changes here only the registry dependencies are copied
/// and the other checkout compiles HEAD's own crates itself.
#[allow(dead_code)]
pub fn seed_static_build(to: &Path) {
    let root = root();
    lab::build::compile_tools(&root)
        .unwrap_or_else(|e| panic!("the static build of this checkout (node tools): {e}"));
    let info = lab::build::BuildInfo::collect(&root).expect("git state of this checkout");
    lab::build::compile_for_nodes(&root, &info)
        .unwrap_or_else(|e| panic!("the static build of this checkout (tools and app): {e}"));
    let from = root.join("target");
    if !tree_is_clean(&root) {
        eprintln!("this checkout has changes against HEAD: seeding only the registry dependencies");
        seed_dependencies(&from, to, STATIC_PROFILES);
        return;
    }
    eprintln!(
        "seeding {} with this checkout's whole static build",
        to.display()
    );
    for profile in STATIC_PROFILES {
        let (src, dst) = (from.join(profile), to.join(profile));
        std::fs::create_dir_all(&dst).expect("create the checkout's target dir");
        let entries: Vec<PathBuf> = std::fs::read_dir(&src)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    // cargo's own lock of that directory stays with its directory.
                    .filter(|p| p.file_name().is_some_and(|n| n != ".cargo-lock"))
                    .collect()
            })
            .unwrap_or_default();
        if entries.is_empty() {
            continue;
        }
        let copied = Command::new("cp")
            .arg("-a")
            .args(&entries)
            .arg(&dst)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            copied,
            "seeding {} from {}: cp -a failed",
            dst.display(),
            src.display()
        );
        let touched = Command::new("find")
            .arg(dst.join(".fingerprint"))
            .args(["-name", "dep-*", "-exec", "touch", "{}", "+"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            touched,
            "touching the dep-info files under {}",
            dst.display()
        );
    }
}

/// Whether the git checkout at `dir` has no change at all (tracked or untracked) against
/// its HEAD.
#[allow(dead_code)]
pub fn tree_is_clean(dir: &Path) -> bool {
    Command::new("git")
        .args(["status", "--porcelain"])
        .current_dir(dir)
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.is_empty())
}

/// The mutating actions in `docker events --format '{{.Type}} {{.Action}}'` output, for the
/// proof that verify changes nothing. The engine's own healthchecks are not verify's doing:
/// their exec_create/exec_start name the healthcheck command, and exec_die names no command
/// (an exec that changed something would show in its exec_create).
pub fn mutating_events(events: &str) -> Vec<String> {
    let actions: Vec<&str> = events
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, a)| a))
        .filter(|a| {
            !(a.contains("/app/mock-exchange healthcheck")
                || a.contains("pg_isready")
                || *a == "exec_die")
        })
        .collect();
    verify::events::mutating(&actions)
        .into_iter()
        .map(String::from)
        .collect()
}

/// A checkout of this checkout's HEAD of its own, at `target/<tag>/checkout`, for an e2e
/// that drives a lab of its own beside this checkout's (its own lab marker and name,
/// Vagrant machines, `.stackpilot/` and `target/`): nextest runs such a test in a group of
/// its own, in parallel with the `lab` group (.config/nextest.toml).
pub struct OwnCheckout {
    pub dir: PathBuf,
    /// Held while the checkout is in use when the host holds one such lab at a time.
    _host: Option<lab::host_lock::HostLock>,
}

impl OwnCheckout {
    /// The checkout reset to HEAD: `destroy` first takes down a lab a previous run left
    /// (it may have stopped half-way), then everything but its `target/` is reset; its
    /// `target/` is seeded with this checkout's static build ([`seed_static_build`]), so
    /// only what changed since is compiled. With `host_lock`, a second run on the host
    /// (another clone's make test) waits for this one.
    pub fn prepare(tag: &str, host_lock: Option<&str>, destroy: impl Fn(&Path)) -> OwnCheckout {
        let host = host_lock.map(|what| {
            lab::host_lock::acquire(tag, what)
                .unwrap_or_else(|e| panic!("the host-wide {tag} lock: {e}"))
        });
        let dir = root().join("target").join(tag).join("checkout");
        if dir.join("vagrant/.vagrant/machines").exists() {
            eprintln!(
                "a previous run left a lab in {}: destroying it",
                dir.display()
            );
            destroy(&dir);
        }
        let head = git(&root(), &["rev-parse", "HEAD"]);
        if !dir.join(".git").is_dir() {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
            git(&dir, &["init", "--quiet"]);
        }
        let src = root().display().to_string();
        git(&dir, &["fetch", "--quiet", "--no-tags", &src, head.trim()]);
        git(
            &dir,
            &["checkout", "--quiet", "--force", "--detach", head.trim()],
        );
        // Lab state of earlier runs (marker, Vagrant's machines, .stackpilot/) goes; the
        // compiled target/ stays.
        git(&dir, &["clean", "-fdxq", "-e", "/target"]);
        // What the lab compiles for the nodes is this checkout's static build (630 s cold
        // at load 8 in a checkout of its own, docs/benchmarks.md).
        seed_static_build(&dir.join("target"));
        OwnCheckout { dir, _host: host }
    }
}

/// `git <args>` in `dir`; its stdout, or a panic with its stderr.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {} in {}: {}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
