//! Shared fixtures of verify's engine tests: a tiny image built `FROM scratch` around a
//! static binary compiled here (nothing can be pulled), containers labelled with a run id,
//! and removal of all of it by a drop guard, pass or fail.
//!
//! The *test harness* creates and removes fixtures with the docker CLI (found with
//! `which`); verify's code under test only ever holds the read-only facade.

#![allow(dead_code)] // each test file uses a different part of the fixture

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use stackpilot_core::facade::ReadOnlyDocker;

/// The fixture program: exits 0 with `--check` (its healthcheck), answers /health,
/// /ready and /version on port 8000 with `--serve`, else sleeps.
const PROGRAM: &str = r##"use std::io::{Read, Write};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--check") { return; }
    if args.iter().any(|a| a == "--serve") {
        let build = std::env::var("BUILD_ID").unwrap_or_default();
        let listener = std::net::TcpListener::bind("0.0.0.0:8000").expect("bind 8000");
        for stream in listener.incoming().flatten() {
            let mut s = stream;
            let mut buf = [0u8; 2048];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
            let (status, body) = match path.as_str() {
                "/health" => ("200 OK", r#"{"status":"alive"}"#.to_string()),
                "/ready" => ("200 OK", r#"{"status":"ready"}"#.to_string()),
                "/version" => ("200 OK", format!(r#"{{"build_id":"{build}","git_sha":"0000000","version":"0.0.0"}}"#)),
                _ => ("404 Not Found", "{}".to_string()),
            };
            let _ = write!(s, "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
        }
    }
    loop { std::thread::sleep(std::time::Duration::from_secs(3600)); }
}
"##;

pub fn docker() -> PathBuf {
    which::which("docker")
        .expect("this test needs the docker CLI and a running engine (apt-get install docker.io)")
}

pub fn sh(args: &[&str]) -> String {
    let out = Command::new(docker())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker {args:?}: {e}"));
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Removes the run's containers and image when dropped, pass or fail.
pub struct Fixture {
    /// Unique id of this run, in every fixture's labels and names.
    pub run: String,
    /// The image reference.
    pub image: String,
    /// The run's temp dir.
    pub dir: PathBuf,
    /// Containers to remove.
    pub containers: Vec<String>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for id in &self.containers {
            let _ = Command::new(docker()).args(["rm", "-f", id]).output();
        }
        let _ = Command::new(docker())
            .args(["rmi", "-f", &self.image])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Fixture {
    /// A temp dir, a static binary that sleeps (or exits 0 with `--check`), and an image
    /// `FROM scratch` around it, labelled with the run and a build id.
    pub fn new(name: &str) -> Fixture {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let run = format!("{name}-{}-{stamp}", std::process::id());
        let dir = std::env::temp_dir().join(format!("verify-engine-{run}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let fixture = Fixture {
            image: format!("verify-engine-test:{run}"),
            run,
            dir,
            containers: Vec::new(),
        };
        std::fs::write(fixture.dir.join("sleeper.rs"), PROGRAM).expect("write source");
        let rustc = which::which("rustc").expect("rustc on PATH");
        let out = Command::new(rustc)
            .args(["-C", "target-feature=+crt-static", "-O", "-o"])
            .arg(fixture.dir.join("sleeper"))
            .arg(fixture.dir.join("sleeper.rs"))
            .output()
            .expect("run rustc");
        assert!(
            out.status.success(),
            "static build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A healthcheck whose first probe is an hour away: health reads "starting", and
        // no probe exec pollutes the event window.
        std::fs::write(
            fixture.dir.join("Dockerfile"),
            format!("FROM scratch\nCOPY sleeper /sleeper\nENV BUILD_ID={}\nHEALTHCHECK --interval=1h CMD [\"/sleeper\", \"--check\"]\nENTRYPOINT [\"/sleeper\"]\n", fixture.build_id()),
        )
        .expect("write Dockerfile");
        let dir = fixture.dir.display().to_string();
        sh(&[
            "build",
            "-q",
            "--label",
            &format!("verify.test-run={}", fixture.run),
            "--label",
            &format!("stackpilot.build-id={}", fixture.build_id()),
            "-t",
            &fixture.image,
            &dir,
        ]);
        fixture
    }

    /// The build id baked into the image (label and `BUILD_ID`).
    pub fn build_id(&self) -> String {
        format!("b-{}", self.run)
    }

    pub fn run_label(&self) -> String {
        format!("verify.test-run={}", self.run)
    }

    /// Starts (or only creates) a container with these labels and extra args.
    pub fn container(
        &mut self,
        start: bool,
        labels: &[(String, String)],
        extra: &[&str],
    ) -> String {
        self.container_cmd(start, labels, extra, &[])
    }

    /// Like [`Fixture::container`], with arguments for the fixture program.
    pub fn container_cmd(
        &mut self,
        start: bool,
        labels: &[(String, String)],
        extra: &[&str],
        cmd: &[&str],
    ) -> String {
        let mut args: Vec<String> = vec![if start { "run" } else { "create" }.into()];
        if start {
            args.push("-d".into());
        }
        args.extend(["--label".into(), self.run_label()]);
        for (k, v) in labels {
            args.extend(["--label".into(), format!("{k}={v}")]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(self.image.clone());
        args.extend(cmd.iter().map(|s| s.to_string()));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let id = sh(&argv);
        self.containers.push(id.clone());
        id
    }

    /// The engine's events for this run's objects between two host times.
    /// The engine's full event messages for this run's objects between two host times.
    pub fn event_messages(
        &self,
        docker: &ReadOnlyDocker,
        since: f64,
        until: f64,
    ) -> Vec<stackpilot_core::facade::models::EventMessage> {
        let filters = HashMap::from([("label".to_string(), vec![self.run_label()])]);
        docker
            .events(&format!("{since:.9}"), &format!("{until:.9}"), &filters)
            .expect("events")
    }

    pub fn events(&self, docker: &ReadOnlyDocker, since: f64, until: f64) -> Vec<String> {
        let filters = HashMap::from([("label".to_string(), vec![self.run_label()])]);
        docker
            .events(&format!("{since:.9}"), &format!("{until:.9}"), &filters)
            .expect("events")
            .into_iter()
            .filter_map(|e| e.action)
            .collect()
    }
}

pub fn free_loopback_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().expect("addr").port()
}

/// The labels compose writes on a service container of `project` started the golden way.
pub fn compose_labels(project: &str, service: &str) -> Vec<(String, String)> {
    [
        ("com.docker.compose.project", project),
        ("com.docker.compose.service", service),
        ("com.docker.compose.oneoff", "False"),
        ("com.docker.compose.project.working_dir", "/vagrant/infra"),
        (
            "com.docker.compose.project.config_files",
            "/vagrant/infra/docker-compose.yml",
        ),
        (
            "com.docker.compose.project.environment_file",
            "/vagrant/infra/env/dev.env",
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}
