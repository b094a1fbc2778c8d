//! Test harness: runs the real `mock-exchange` binary against a private PostgreSQL
//! (pg-harness) and talks to it over loopback HTTP. Everything is stopped on drop.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

pub use pg_harness::{Options, PgServer};
use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_mock-exchange");

/// A Postgres server for one test.
pub fn postgres() -> PgServer {
    match PgServer::start(&Options::default()) {
        Ok(pg) => pg,
        Err(e) => panic!("cannot start the test PostgreSQL: {e}"),
    }
}

/// A command for the binary with a clean environment (no inherited DATABASE_URL etc.).
pub fn command(env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A running service process.
pub struct Service {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    agent: ureq::Agent,
}

/// An HTTP answer: status, body text, and the body as JSON when it is JSON.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub text: String,
    pub json: Value,
    pub elapsed: Duration,
}

impl Service {
    /// Starts the service with `env` plus `BIND_ADDR=127.0.0.1:0`, and waits for its
    /// "listening" log line to learn the port.
    pub fn start(env: &[(&str, &str)]) -> Service {
        let mut cmd = command(env);
        cmd.env("BIND_ADDR", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn mock-exchange");
        let stdout = child.stdout.take().expect("stdout is piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&lines);
        // Keep draining stdout so the service never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["message"] == "listening"
                    && let Some(addr) = v["addr"].as_str()
                    && let Ok(addr) = addr.parse::<SocketAddr>()
                {
                    let _ = tx.send(addr);
                }
                sink.lock().expect("log lock").push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "mock-exchange did not log 'listening' within 10 s; stdout:\n{}",
                    lines.lock().expect("log lock").join("\n")
                );
            }
        };
        Service {
            child,
            addr,
            lines,
            agent: agent(Duration::from_secs(5)),
        }
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GET `path`.
    pub fn get(&self, path: &str) -> Answer {
        let started = Instant::now();
        let r = self.agent.get(self.url(path)).call();
        answer(r, started)
    }

    /// POST `path` with an optional content type and body.
    pub fn post(&self, path: &str, content_type: Option<&str>, body: &[u8]) -> Answer {
        let started = Instant::now();
        let mut req = self.agent.post(self.url(path));
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        let r = if body.is_empty() {
            req.send_empty()
        } else {
            req.send(body)
        };
        answer(r, started)
    }

    /// Every stdout line so far.
    pub fn logs(&self) -> Vec<String> {
        self.lines.lock().expect("log lock").clone()
    }

    /// The OS process id.
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"))
    }

    /// Sends a signal.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), sig).expect("send signal");
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits until the service logged a line whose `message` starts with `prefix`.
    pub fn wait_logged(&self, prefix: &str, limit: Duration) {
        let logged = || {
            self.logs().iter().any(|l| {
                serde_json::from_str::<Value>(l)
                    .ok()
                    .and_then(|v| v["message"].as_str().map(|m| m.starts_with(prefix)))
                    .unwrap_or(false)
            })
        };
        assert!(
            wait_until(limit, logged).is_some(),
            "no log line starting with {prefix:?} within {limit:?}:\n{}",
            self.logs().join("\n")
        );
    }

    /// Waits until the service has accepted `client`'s connection and read all that was
    /// sent on it, so the request is in flight. The kernel's view (/proc/net/tcp): the
    /// server side of the connection has an inode (an accepted socket; one still in the
    /// listen backlog has none) and an empty receive queue.
    pub fn wait_in_flight(&self, client: &TcpStream) {
        let peer = client.local_addr().expect("client address");
        let (local, remote) = (proc_net_addr(self.addr), proc_net_addr(peer));
        let read_by_server = || {
            std::fs::read_to_string("/proc/net/tcp")
                .unwrap_or_default()
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .any(|f| {
                    f.len() > 9
                        && f[1] == local
                        && f[2] == remote
                        && f[4].ends_with(":00000000")
                        && f[9] != "0"
                })
        };
        assert!(
            wait_until(Duration::from_secs(5), read_by_server).is_some(),
            "the service did not accept and read the request from {peer} within 5 s"
        );
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP agent with bounded timeouts that hands back 4xx/5xx answers with their body.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>, started: Instant) -> Answer {
    match r {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let text = resp.body_mut().read_to_string().unwrap_or_default();
            let json = serde_json::from_str(&text).unwrap_or(Value::Null);
            Answer {
                status,
                text,
                json,
                elapsed: started.elapsed(),
            }
        }
        Err(e) => Answer {
            status: 0,
            text: e.to_string(),
            json: Value::Null,
            elapsed: started.elapsed(),
        },
    }
}

/// An IPv4 socket address the way /proc/net/tcp writes it (`0100007F:1F90`).
fn proc_net_addr(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(a.ip().octets()),
            a.port()
        ),
        SocketAddr::V6(a) => panic!("the service listens on IPv4 loopback, not {a}"),
    }
}

/// Polls `probe` every 20 ms until it returns true or `limit` passes; returns the time
/// it took, or None.
pub fn wait_until(limit: Duration, mut probe: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if probe() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Service against `pg` as the superuser, with migrations applied and /ready 200.
pub fn ready_service(pg: &PgServer, extra: &[(&str, &str)]) -> Service {
    let url = pg.admin_url("postgres");
    let mut env = vec![("DATABASE_URL", url.as_str())];
    env.extend_from_slice(extra);
    let svc = Service::start(&env);
    let ready = wait_until(Duration::from_secs(10), || svc.get("/ready").status == 200);
    assert!(
        ready.is_some(),
        "not ready within 10 s: {:?}\nlogs:\n{}",
        svc.get("/ready"),
        svc.logs().join("\n")
    );
    svc
}
