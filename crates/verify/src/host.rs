//! Host side: observes a node layer by layer, stopping at the first failed layer, then
//! hands the observations to the pure verdicts.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stackpilot_core::argv::ToArgv;
use stackpilot_core::http::{self, Timeouts};
use stackpilot_core::time::millis;
use stackpilot_core::transport::{Transport, display};

use crate::cli;
use crate::inspection::Inspection;
use crate::report::Report;
use crate::verdict::{self, Expect, NodeObservation, NodeOutcome, Observations};

/// What came back from running a command on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeRun {
    /// Nothing could be run on the node (transport down, node not created, not running).
    Unreachable(String),
    /// The command ran on the node and ended (or was stopped after the timeout).
    Ran {
        /// Exit code; `None` when killed.
        code: Option<i32>,
        /// Its standard output.
        stdout: String,
        /// Its standard error.
        stderr: String,
    },
}

/// Runs a node-side command from the host: the transport, seen by verify. Lets tests (and
/// providers without a [`Transport`]) plug in their own.
pub trait NodeRunner {
    /// How the node is reached, for messages (e.g. `docker exec 1a2b3c`).
    fn describe(&self) -> String;
    /// Runs `argv` on the node, stopping it after `timeout`.
    fn run(&self, argv: &[&str], timeout: Duration) -> NodeRun;
}

impl NodeRunner for Transport {
    fn describe(&self) -> String {
        match self {
            Transport::DockerExec { container, .. } => {
                format!(
                    "docker exec {}",
                    container.chars().take(12).collect::<String>()
                )
            }
            Transport::VagrantSsh { node, .. } => format!("vagrant ssh {node}"),
        }
    }

    fn run(&self, argv: &[&str], timeout: Duration) -> NodeRun {
        let ran = run_with_timeout(self.command(argv, false), timeout);
        match ran {
            NodeRun::Ran { code, stderr, .. } if transport_failed(self, code, &stderr) => {
                NodeRun::Unreachable(first_line(&stderr).unwrap_or_else(|| {
                    format!(
                        "`{}` ended with {code:?}",
                        display(&self.command(argv, false))
                    )
                }))
            }
            other => other,
        }
    }
}

/// Whether a failure came from the transport itself rather than from the node command:
/// ssh exits 255 when it cannot connect; `docker exec` prints the daemon's refusal.
fn transport_failed(t: &Transport, code: Option<i32>, stderr: &str) -> bool {
    match t {
        Transport::VagrantSsh { .. } => code == Some(255),
        Transport::DockerExec { .. } => {
            code != Some(0)
                && (stderr.contains("Error response from daemon")
                    || stderr.contains("No such container")
                    || stderr.contains("Cannot connect to the Docker daemon"))
        }
    }
}

fn first_line(s: &str) -> Option<String> {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

/// Runs a host command with captured output, killing it after `timeout`: a verifier that
/// can hang is not a verifier.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> NodeRun {
    let line = display(&cmd);
    let mut child = match cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return NodeRun::Unreachable(format!("cannot start `{line}`: {e}")),
    };
    // Drain both pipes on threads so a chatty command cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let code = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code(),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                timed_out = true;
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return NodeRun::Unreachable(format!("waiting for `{line}`: {e}")),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let mut stderr = err.join().unwrap_or_default();
    if timed_out {
        stderr = format!(
            "`{line}` did not finish within {} s and was stopped\n{stderr}",
            timeout.as_secs()
        );
    }
    NodeRun::Ran {
        code,
        stdout,
        stderr,
    }
}

/// Where and how to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeUnderTest {
    /// What the node and environment must be.
    pub expect: Expect,
    /// The service address on the node (node address, environment port).
    pub addr: SocketAddr,
}

/// Knobs of a verification run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    /// Path of the `verify` binary inside the node.
    pub node_verify: String,
    /// Time allowed for the node-side inspection.
    pub node_timeout: Duration,
    /// Timeouts of each TCP and HTTP probe.
    pub probe: Timeouts,
}

/// Observes the node layer by layer; a layer is observed only when the ones below passed.
pub fn observe(target: &NodeUnderTest, node: &dyn NodeRunner, cfg: &RunConfig) -> Observations {
    let mut obs = Observations::default();
    let call = cli::Command::inspect(&target.expect.env).call();
    let argv = call.argv(&cfg.node_verify);
    let start = Instant::now();
    let outcome = match node.run(&argv, cfg.node_timeout) {
        NodeRun::Unreachable(why) => NodeOutcome::Unreachable(why),
        // The document counts whatever the exit code: inspect prints it even when, say,
        // the node's engine is down (exit 4), so the host can say which fact is missing.
        NodeRun::Ran {
            code,
            stdout,
            stderr,
        } => match serde_json::from_str::<Inspection>(&stdout) {
            Ok(doc) => NodeOutcome::Inspected(Box::new(doc)),
            // `docker exec` prints its own OCI errors on stdout: keep whichever has words.
            Err(_) if stderr.trim().is_empty() => NodeOutcome::Failed {
                code,
                stderr: stdout,
            },
            Err(_) => NodeOutcome::Failed { code, stderr },
        },
    };
    obs.node = Some(NodeObservation {
        via: node.describe(),
        elapsed_ms: millis(start.elapsed()),
        outcome,
    });
    if verdict::layer_failed(1, &target.expect, &obs) {
        return obs;
    }
    obs.tcp = Some(http::tcp_connect(target.addr, cfg.probe.connect));
    if verdict::layer_failed(2, &target.expect, &obs) {
        return obs;
    }
    let url = |path: &str| format!("http://{}{path}", target.addr);
    obs.health = Some(http::get(&url("/health"), cfg.probe));
    obs.ready = Some(http::get(&url("/ready"), cfg.probe));
    obs.version = Some(http::get(&url("/version"), cfg.probe));
    obs
}

/// Verifies one environment on one node: observe, then judge. Never mutates anything.
pub fn run(target: &NodeUnderTest, node: &dyn NodeRunner, cfg: &RunConfig) -> Report {
    let start = Instant::now();
    let obs = observe(target, node, cfg);
    verdict::evaluate(&target.expect, &obs, millis(start.elapsed()))
}

/// Pause between attempts of a waiting verification.
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// Verifies again until every check passes or `wait` has passed, and returns only the last
/// report: a waiting verify prints one document, not one per attempt.
pub fn run_waiting(
    target: &NodeUnderTest,
    node: &dyn NodeRunner,
    cfg: &RunConfig,
    wait: Duration,
) -> Report {
    until_passed(Some(wait), || run(target, node, cfg))
}

/// Makes `attempt` until its report passes or `wait` has passed (once without `wait`), and
/// returns only the last report, timed from the first attempt: one node or a swarm alike.
pub fn until_passed(wait: Option<Duration>, mut attempt: impl FnMut() -> Report) -> Report {
    let Some(wait) = wait else {
        return attempt();
    };
    let start = Instant::now();
    loop {
        let mut report = attempt();
        let left = wait.saturating_sub(start.elapsed());
        if report.passed || left.is_zero() {
            report.elapsed_ms = millis(start.elapsed());
            return report;
        }
        std::thread::sleep(RETRY_EVERY.min(left));
    }
}

#[cfg(test)]
mod tests;
