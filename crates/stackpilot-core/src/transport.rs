//! Transports: how the host runs a command inside a lab node.
//!
//! VM providers go through plain `ssh` with the configuration `vagrant ssh-config` gave
//! (cached per machine, see [`ssh_route`]), or `vagrant ssh NODE -c` when there is none; the
//! docker provider through
//! `docker exec <container id>`, the id read from Vagrant's machine directory (Debian's
//! Vagrant 2.3.4 `vagrant docker-exec` is broken). Every command runs from [`NODE_REPO`].
//! Errors name the node and the command.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod ssh_route;

use crate::config::{Provider, Reach};
use crate::exit::{Exit, ExitStatus};
use crate::node::NODE_REPO;

/// The Vagrant project directory, relative to the repo root.
pub const VAGRANT_DIR: &str = "vagrant";

/// The least time one command over `ssh` to a VM node is given ([`Transport::command_limit`]):
/// a deploy's verify saw 30 s run out on the `ssh` handshake alone to a TCG-emulated guest on
/// a 2-core host at load 7.
pub const VM_COMMAND_LIMIT: Duration = Duration::from_secs(90);

/// How the host reaches one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `vagrant ssh NODE -c …` (virtualbox, libvirt).
    VagrantSsh {
        /// The Vagrant project directory (holds the Vagrantfile).
        vagrant_dir: PathBuf,
        /// The node's name.
        node: String,
        /// The provider the node was created with (pinned on the Vagrant call).
        provider: Provider,
    },
    /// `docker exec [-i] <id> …` (docker provider).
    DockerExec {
        /// The node's name.
        node: String,
        /// The node container's id.
        container: String,
    },
}

/// How a node command's standard streams are connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Io {
    /// Output captured, no input.
    Piped,
    /// Output captured, input connected.
    Stdin,
    /// A terminal for a person.
    Terminal,
}

/// Why a command could not be run in a node, or failed there.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Vagrant has no machine for the node.
    #[error(
        "node '{node}' is not created: no machine id under {dir}\n  create it with: cargo xtask lab up {node}"
    )]
    NotCreated {
        /// The node.
        node: String,
        /// Where Vagrant keeps the node's machine ids.
        dir: PathBuf,
    },
    /// The host-side program could not be started.
    #[error("node '{node}': cannot start `{command}`: {source}")]
    Spawn {
        /// The node.
        node: String,
        /// The host command line.
        command: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The command ran and failed.
    #[error("node '{node}': `{command}` failed ({status}){}", tail(stderr))]
    Failed {
        /// The node.
        node: String,
        /// The host command line.
        command: String,
        /// How it ended.
        status: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// The command did not finish in time and was killed.
    #[error("node '{node}': `{command}` did not finish within {secs} s; it was stopped")]
    Timeout {
        /// The node.
        node: String,
        /// The host command line.
        command: String,
        /// The limit.
        secs: u64,
    },
}

fn tail(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

impl ExitStatus for TransportError {
    fn exit(&self) -> Exit {
        match self {
            TransportError::Spawn { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Exit::PrereqMissing
            }
            _ => Exit::Failed,
        }
    }
}

/// A `vagrant` command for the project in `vagrant_dir`, pinned to `provider`: with a
/// plugin such as vagrant-libvirt installed, Vagrant's own default would be that plugin's
/// provider, and resolving a machine under it (even one never created) can fail, e.g. on
/// its NFS synced folder. Checkpoint (the call home) is off.
pub fn vagrant_command(vagrant_dir: &Path, provider: Provider) -> Command {
    let mut c = Command::new("vagrant");
    c.env("VAGRANT_CWD", vagrant_dir)
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .env("VAGRANT_DEFAULT_PROVIDER", provider.as_str());
    c
}

/// The directory where Vagrant keeps a node's per-provider machine data.
pub fn machine_dir(vagrant_dir: &Path, node: &str) -> PathBuf {
    vagrant_dir.join(".vagrant").join("machines").join(node)
}

/// The provider a node was created with, from Vagrant's machine directory (a non-empty
/// `id` file under the provider's name); `None` when the node is not created.
pub fn created_provider(vagrant_dir: &Path, node: &str) -> Option<Provider> {
    let dir = machine_dir(vagrant_dir, node);
    Provider::ALL
        .into_iter()
        .find(|p| machine_id(&dir.join(p.as_str())).is_some())
}

/// The docker-provider container id of a node, if it is created.
pub fn docker_container_id(vagrant_dir: &Path, node: &str) -> Option<String> {
    provider_machine_id(vagrant_dir, node, Provider::Docker)
}

/// The id Vagrant recorded for a node created under `provider` (docker: the container id,
/// libvirt: the domain's UUID), if it is created under it.
pub fn provider_machine_id(vagrant_dir: &Path, node: &str, provider: Provider) -> Option<String> {
    machine_id(&machine_dir(vagrant_dir, node).join(provider.as_str()))
}

fn machine_id(provider_dir: &Path) -> Option<String> {
    std::fs::read_to_string(provider_dir.join("id"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Quotes one argument for a POSIX shell (what `vagrant ssh -c` runs).
pub fn shell_quote(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if safe {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

impl Transport {
    /// The transport of a created node, chosen by the provider Vagrant created it with.
    pub fn for_node(vagrant_dir: &Path, node: &str) -> Result<Transport, TransportError> {
        let Some(provider) = created_provider(vagrant_dir, node) else {
            return Err(TransportError::NotCreated {
                node: node.to_string(),
                dir: machine_dir(vagrant_dir, node),
            });
        };
        Ok(match provider.desc().reach {
            Reach::DockerExec => Transport::DockerExec {
                node: node.to_string(),
                container: machine_id(&machine_dir(vagrant_dir, node).join(provider.as_str()))
                    .unwrap_or_default(),
            },
            Reach::VagrantSsh => Transport::VagrantSsh {
                vagrant_dir: vagrant_dir.to_path_buf(),
                node: node.to_string(),
                provider,
            },
        })
    }

    /// How long one command through this transport may take when the same command in a
    /// container node is given `local`: never less than [`VM_COMMAND_LIMIT`] over `ssh` to
    /// a VM, whose handshake alone takes 15–30 s on a TCG-emulated guest on a loaded host.
    pub fn command_limit(&self, local: Duration) -> Duration {
        match self {
            Transport::DockerExec { .. } => local,
            Transport::VagrantSsh { .. } => local.max(VM_COMMAND_LIMIT),
        }
    }

    /// The node this transport reaches.
    pub fn node(&self) -> &str {
        match self {
            Transport::VagrantSsh { node, .. } | Transport::DockerExec { node, .. } => node,
        }
    }

    /// The host command that runs `argv` in the node from `/vagrant`; `stdin` keeps the
    /// node command's standard input connected.
    pub fn command(&self, argv: &[&str], stdin: bool) -> Command {
        self.build(argv, if stdin { Io::Stdin } else { Io::Piped })
    }

    /// The host command that runs `argv` in the node from `/vagrant` on a terminal (for a
    /// person at it: `make shell`): `docker exec -it`, or `vagrant ssh` with a tty.
    pub fn interactive_command(&self, argv: &[&str]) -> Command {
        self.build(argv, Io::Terminal)
    }

    fn build(&self, argv: &[&str], io: Io) -> Command {
        match self {
            Transport::DockerExec { container, .. } => {
                let streams = match io {
                    Io::Piped => None,
                    Io::Stdin => Some("-i"),
                    Io::Terminal => Some("-it"),
                };
                let mut c = Command::new("docker");
                c.arg("exec")
                    .args(streams)
                    .args(["-w", NODE_REPO, container.as_str()])
                    .args(argv);
                c
            }
            Transport::VagrantSsh {
                vagrant_dir,
                node,
                provider,
            } => {
                let quoted: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
                let script = format!("cd {NODE_REPO} && exec {}", quoted.join(" "));
                if let Some(config) = ssh_route::config_file(vagrant_dir, node, *provider) {
                    let mut c = Command::new("ssh");
                    c.arg("-F")
                        .arg(config)
                        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=20"])
                        .arg(if io == Io::Terminal { "-t" } else { "-T" })
                        .args([node.as_str(), "--", &script]);
                    return c;
                }
                let mut c = vagrant_command(vagrant_dir, *provider);
                c.args(["ssh", node.as_str()]);
                if io == Io::Terminal {
                    // `-- -t`: ssh allocates a terminal even though a command is given.
                    c.args(["-c", &script, "--", "-t"]);
                } else {
                    c.args(["--no-tty", "-c", &script]);
                }
                c
            }
        }
    }

    /// Runs `argv` in the node and returns its stdout; a non-zero exit is an error carrying
    /// its stderr; after `timeout` the command is killed.
    pub fn output(&self, argv: &[&str], timeout: Duration) -> Result<String, TransportError> {
        self.run_captured(argv, None, timeout)
    }

    /// Like [`Transport::output`], with `input` piped to the command's stdin.
    pub fn output_with_input(
        &self,
        argv: &[&str],
        input: &[u8],
        timeout: Duration,
    ) -> Result<String, TransportError> {
        self.run_captured(argv, Some(input), timeout)
    }

    /// Runs `argv` in the node with its output shown live on this process's stdout/stderr.
    pub fn stream(&self, argv: &[&str]) -> Result<(), TransportError> {
        self.stream_to(argv, Stdio::inherit())
    }

    /// Runs `argv` in the node with all its output shown live on this process's stderr:
    /// progress of a step, kept off stdout, where a `--json` document goes alone.
    pub fn stream_progress(&self, argv: &[&str]) -> Result<(), TransportError> {
        self.stream_to(argv, Stdio::from(std::io::stderr()))
    }

    fn stream_to(&self, argv: &[&str], stdout: Stdio) -> Result<(), TransportError> {
        let mut cmd = self.command(argv, false);
        let line = display(&cmd);
        let status = cmd
            .stdin(Stdio::null())
            .stdout(stdout)
            .status()
            .map_err(|source| self.spawn_error(&line, source))?;
        if status.success() {
            Ok(())
        } else {
            Err(self.failed(&line, status.to_string(), String::new()))
        }
    }

    /// Runs `source` on the host with its stdout piped into `argv` in the node
    /// (e.g. `docker save IMG` into `docker load`); returns the node command's stdout.
    pub fn pipe_from(&self, source: &mut Command, argv: &[&str]) -> Result<String, TransportError> {
        let source_line = display(source);
        let mut producer = source
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(&source_line, e))?;
        let Some(pipe) = producer.stdout.take() else {
            let _ = producer.kill();
            return Err(self.failed(&source_line, "no stdout".into(), String::new()));
        };
        let mut cmd = self.command(argv, true);
        let line = format!("{source_line} | {}", display(&cmd));
        let consumer = cmd
            .stdin(Stdio::from(pipe))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let consumer = match consumer {
            Ok(c) => c,
            Err(e) => {
                let _ = producer.kill();
                let _ = producer.wait();
                return Err(self.spawn_error(&line, e));
            }
        };
        let out = consumer
            .wait_with_output()
            .map_err(|e| self.spawn_error(&line, e))?;
        let producer_err = read_all(producer.stderr.take());
        let producer_status = producer.wait().map_err(|e| self.spawn_error(&line, e))?;
        if !producer_status.success() {
            return Err(self.failed(&line, producer_status.to_string(), producer_err));
        }
        if !out.status.success() {
            return Err(self.failed(
                &line,
                out.status.to_string(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn run_captured(
        &self,
        argv: &[&str],
        input: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<String, TransportError> {
        let mut cmd = self.command(argv, input.is_some());
        let line = display(&cmd);
        let mut child = cmd
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(&line, e))?;
        if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
            // A command that exits without reading its input is judged by its status.
            let _ = stdin.write_all(data);
        }
        let out = std::thread::spawn({
            let stdout = child.stdout.take();
            move || read_all(stdout)
        });
        let err = std::thread::spawn({
            let stderr = child.stderr.take();
            move || read_all(stderr)
        });
        let status = wait_until(&mut child, timeout).map_err(|e| self.spawn_error(&line, e))?;
        let Some(status) = status else {
            return Err(TransportError::Timeout {
                node: self.node().to_string(),
                command: line,
                secs: timeout.as_secs(),
            });
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        if status.success() {
            Ok(stdout)
        } else {
            Err(self.failed(&line, status.to_string(), stderr))
        }
    }

    /// ssh exits 255 for its own failures (no route, refused, host gone): the cached route
    /// may be stale (a new address after the VM's restart), so the next command asks Vagrant.
    fn forget_route_after(&self, status: &str) {
        if let Transport::VagrantSsh {
            vagrant_dir,
            node,
            provider,
        } = self
            && status.contains("255")
        {
            ssh_route::forget(vagrant_dir, node, *provider);
        }
    }

    fn spawn_error(&self, command: &str, source: std::io::Error) -> TransportError {
        TransportError::Spawn {
            node: self.node().to_string(),
            command: command.to_string(),
            source,
        }
    }

    fn failed(&self, command: &str, status: String, stderr: String) -> TransportError {
        self.forget_route_after(&status);
        TransportError::Failed {
            node: self.node().to_string(),
            command: command.to_string(),
            status,
            stderr,
        }
    }
}

/// Waits for `child` up to `timeout`; kills it and returns `None` when the time is up.
fn wait_until(
    child: &mut Child,
    timeout: Duration,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_all(stream: Option<impl Read>) -> String {
    let mut buf = Vec::new();
    if let Some(mut s) = stream {
        let _ = s.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A command line as a user would type it.
pub fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker() -> Transport {
        Transport::DockerExec {
            node: "control".into(),
            container: "abc123".into(),
        }
    }

    /// A libvirt VM node reached with `vagrant ssh`.
    fn vagrant(node: &str) -> Transport {
        Transport::VagrantSsh {
            vagrant_dir: PathBuf::from("/repo/vagrant"),
            node: node.into(),
            provider: Provider::Libvirt,
        }
    }

    #[test]
    fn a_vm_command_gets_at_least_the_vm_limit_and_a_container_command_its_own() {
        let short = Duration::from_secs(30);
        assert_eq!(docker().command_limit(short), short);
        assert_eq!(vagrant("control").command_limit(short), VM_COMMAND_LIMIT);
        let long = Duration::from_secs(300);
        assert_eq!(vagrant("control").command_limit(long), long);
    }

    /// The arguments of a host command, as text.
    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_vm_with_a_cached_route_is_reached_by_plain_ssh_and_a_failed_route_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let machine = machine_dir(dir.path(), "control").join("libvirt");
        std::fs::create_dir_all(&machine).expect("machine dir");
        std::fs::write(machine.join("id"), "m-1").expect("id");
        let text =
            ssh_route::cached_text("m-1", "control", "Host control\n  Port 22\n").expect("route");
        let route = machine.join("stackpilot-ssh-config");
        std::fs::write(&route, text).expect("route file");
        let t = Transport::VagrantSsh {
            vagrant_dir: dir.path().to_path_buf(),
            node: "control".into(),
            provider: Provider::Libvirt,
        };
        let cmd = t.command(&["docker", "info"], false);
        assert_eq!(cmd.get_program(), "ssh");
        let a = args(&cmd);
        assert_eq!(a[..2], ["-F".to_string(), route.display().to_string()]);
        assert!(a.contains(&"-T".to_string()), "{a:?}");
        assert_eq!(
            a[a.len() - 3..],
            ["control", "--", "cd /vagrant && exec docker info"]
        );
        let shell = args(&t.interactive_command(&["bash", "-l"]));
        assert!(shell.contains(&"-t".to_string()), "{shell:?}");
        // ssh's own failure (255) drops the route; a command's failure does not.
        let _ = t.failed("x", "exit status: 1".into(), String::new());
        assert!(route.exists());
        let _ = t.failed("x", "exit status: 255".into(), String::new());
        assert!(!route.exists());
    }

    #[test]
    fn docker_exec_runs_from_the_repo_mount() {
        assert_eq!(
            display(&docker().command(&["docker", "info"], false)),
            "docker exec -w /vagrant abc123 docker info"
        );
        assert_eq!(
            display(&docker().command(&["docker", "load"], true)),
            "docker exec -i -w /vagrant abc123 docker load"
        );
    }

    #[test]
    fn make_shell_on_a_vm_gets_a_terminal() {
        assert_eq!(
            args(&vagrant("control").interactive_command(&["bash", "-l"])),
            [
                "ssh",
                "control",
                "-c",
                "cd /vagrant && exec bash -l",
                "--",
                "-t"
            ]
        );
    }

    #[test]
    fn vagrant_ssh_quotes_arguments_into_one_script() {
        let cmd = vagrant("worker1").command(&["sh", "-c", "echo it's"], false);
        assert_eq!(
            args(&cmd),
            [
                "ssh",
                "worker1",
                "--no-tty",
                "-c",
                r"cd /vagrant && exec sh -c 'echo it'\''s'"
            ]
        );
        let pinned = cmd
            .get_envs()
            .find(|(k, _)| *k == "VAGRANT_DEFAULT_PROVIDER")
            .and_then(|(_, v)| v);
        assert_eq!(pinned, Some(std::ffi::OsStr::new("libvirt")));
    }

    #[test]
    fn created_provider_comes_from_the_machine_id() {
        let dir = std::env::temp_dir().join(format!("sp-transport-{}", std::process::id()));
        let machine = machine_dir(&dir, "worker1").join("docker");
        std::fs::create_dir_all(&machine).expect("temp dir");
        assert_eq!(created_provider(&dir, "worker1"), None, "no id file yet");
        std::fs::write(machine.join("id"), "f00d\n").expect("write id");
        assert_eq!(created_provider(&dir, "worker1"), Some(Provider::Docker));
        assert_eq!(
            Transport::for_node(&dir, "worker1").expect("created"),
            Transport::DockerExec {
                node: "worker1".into(),
                container: "f00d".into()
            }
        );
        let err = Transport::for_node(&dir, "control").expect_err("not created");
        assert!(
            err.to_string().contains("cargo xtask lab up control"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn failures_name_node_command_and_stderr() {
        let t = Transport::DockerExec {
            node: "control".into(),
            container: "does-not-matter".into(),
        };
        let err = t.failed(
            "docker exec x false",
            "exit status: 1".into(),
            "boom\n".into(),
        );
        assert_eq!(
            err.to_string(),
            "node 'control': `docker exec x false` failed (exit status: 1): boom"
        );
    }
}
