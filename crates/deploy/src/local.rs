//! Stage 1, local verification: the release image is built on the build machine's engine
//! from the locked runtime image (the same `docker build` lifecycle runs on nodes), then
//! run with its own entrypoint against a throwaway Postgres (locked postgres image) on a
//! throwaway network; `/health`, `/ready` and a smoke order must pass. Every command and
//! its full output go into the transcript; the throwaways are removed whatever happened.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lifecycle::{BuildRequest, PinnedImage};
use stackpilot_core::http::{self, Timeouts};

use crate::DeployError;

/// What stage 1 builds and runs.
#[derive(Debug, Clone)]
pub struct LocalSpec {
    /// The repo root (Dockerfile, image source label).
    pub root: PathBuf,
    /// The compiled static service binary.
    pub binary: PathBuf,
    /// Build id, git sha and dirty flag of the release.
    pub build_id: String,
    /// Git commit.
    pub git_sha: String,
    /// Uncommitted changes.
    pub dirty: bool,
    /// The locked runtime base image.
    pub runtime_image: String,
    /// The locked postgres image.
    pub postgres_image: String,
    /// POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB for the throwaway database.
    pub db_user: String,
    /// Password.
    pub db_password: String,
    /// Database.
    pub db_name: String,
    /// Longest wait for the database and for /ready.
    pub timeout: Duration,
}

/// A record of commands run and their full output.
#[derive(Debug, Default, Clone)]
pub struct Transcript {
    text: String,
}

impl Transcript {
    /// Appends a free-form line.
    pub fn note(&mut self, line: &str) {
        eprintln!("deploy: {line}");
        self.text.push_str(line);
        self.text.push('\n');
    }

    /// Runs `cmd`, recording `$ command`, its full output and its exit status.
    pub fn run(&mut self, cmd: &mut Command) -> Result<String, DeployError> {
        let line = render(cmd);
        eprintln!("$ {line}");
        self.text.push_str(&format!("$ {line}\n"));
        let out = cmd.output().map_err(|e| DeployError::Command {
            command: line.clone(),
            status: format!("could not start: {e}"),
            output: String::new(),
        })?;
        let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
        output.push_str(&String::from_utf8_lossy(&out.stderr));
        self.text.push_str(&output);
        if !output.ends_with('\n') && !output.is_empty() {
            self.text.push('\n');
        }
        self.text.push_str(&format!("# exit: {}\n", out.status));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(DeployError::Command {
                command: line,
                status: out.status.to_string(),
                output,
            })
        }
    }

    /// The transcript so far.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// A command line as typed.
pub fn render(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(
        cmd.get_args()
            .map(|a| stackpilot_core::transport::shell_quote(&a.to_string_lossy())),
    );
    parts.join(" ")
}

fn docker<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let mut c = Command::new("docker");
    c.args(args.into_iter().map(Into::into));
    c
}

/// The outcome of stage 1.
#[derive(Debug, Clone)]
pub struct LocalReport {
    /// The release image tag.
    pub tag: String,
    /// Its image id (set once built).
    pub image_id: Option<String>,
    /// Every command with its full output.
    pub transcript: Transcript,
    /// Why it failed (None: passed).
    pub failure: Option<String>,
}

/// Runs stage 1 for the release `tag`.
pub fn verify(spec: &LocalSpec, tag: &str) -> LocalReport {
    let mut t = Transcript::default();
    let name = format!("sp-deploy-{}", spec.build_id.to_ascii_lowercase());
    let mut image_id = None;
    let result = run(spec, tag, &name, &mut t, &mut image_id);
    // Throwaways go whatever happened; the release image stays (stage 2 checks it).
    t.note("cleanup of the throwaway containers and network:");
    for c in [format!("{name}-api"), format!("{name}-db")] {
        let _ = t.run(&mut docker(["rm", "-f", "-v", c.as_str()]));
    }
    let _ = t.run(&mut docker(["network", "rm", name.as_str()]));
    LocalReport {
        tag: tag.to_string(),
        image_id,
        transcript: t,
        failure: result.err().map(|e| e.to_string()),
    }
}

fn run(
    spec: &LocalSpec,
    tag: &str,
    name: &str,
    t: &mut Transcript,
    image_id: &mut Option<String>,
) -> Result<(), DeployError> {
    let ctx = tempfile::Builder::new()
        .prefix("deploy-ctx-")
        .tempdir()
        .map_err(|e| DeployError::Io {
            path: std::env::temp_dir(),
            reason: e.to_string(),
        })?;
    let dockerfile = spec.root.join(lifecycle::DOCKERFILE);
    copy(&dockerfile, &ctx.path().join("Dockerfile"))?;
    let bin = ctx.path().join(lifecycle::CONTEXT_BINARY);
    copy(&spec.binary, &bin)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).map_err(|e| {
            DeployError::Io {
                path: bin.clone(),
                reason: e.to_string(),
            }
        })?;
    }
    let req = BuildRequest {
        env: "deploy".into(),
        binary: spec.binary.clone(),
        build_id: spec.build_id.clone(),
        git_sha: spec.git_sha.clone(),
        dirty: spec.dirty,
        runtime_image: PinnedImage::flag(&spec.runtime_image),
    };
    let created = stackpilot_core::time::now_rfc3339();
    t.note(&format!(
        "build the release image {tag} FROM the locked runtime image {} on this machine's engine",
        spec.runtime_image
    ));
    t.run(&mut docker(lifecycle::build_args(
        &req,
        tag,
        ctx.path(),
        &spec.root,
        &created,
    )))?;
    let id = t.run(&mut docker([
        "image", "inspect", "--format", "{{.Id}}", tag,
    ]))?;
    *image_id = Some(id);

    t.note("throwaway network and Postgres (locked image):");
    t.run(&mut docker(["network", "create", name]))?;
    let db = format!("{name}-db");
    t.run(&mut docker([
        "run",
        "-d",
        "--name",
        &db,
        "--network",
        name,
        "--network-alias",
        "db",
        "--user",
        "postgres",
        "-e",
        &format!("POSTGRES_USER={}", spec.db_user),
        "-e",
        &format!("POSTGRES_PASSWORD={}", spec.db_password),
        "-e",
        &format!("POSTGRES_DB={}", spec.db_name),
        &spec.postgres_image,
    ]))?;
    wait_healthy(t, &db, spec.timeout)?;

    let api = format!("{name}-api");
    t.note(
        "the release with its own entrypoint (no --entrypoint, no command), as compose runs it:",
    );
    t.run(&mut docker([
        "run",
        "-d",
        "--name",
        &api,
        "--network",
        name,
        "--user",
        "10001:10001",
        "--read-only",
        "-e",
        &format!(
            "DATABASE_URL=postgres://{}:{}@db:5432/{}",
            spec.db_user, spec.db_password, spec.db_name
        ),
        "-e",
        "BIND_ADDR=0.0.0.0:8000",
        "-p",
        "127.0.0.1::8000",
        tag,
    ]))?;
    let port = t.run(&mut docker(["port", &api, "8000/tcp"]))?;
    let addr = port
        .lines()
        .find(|l| l.starts_with("127.0.0.1:"))
        .ok_or_else(|| DeployError::Command {
            command: format!("docker port {api} 8000/tcp"),
            status: "no loopback publish".into(),
            output: port.clone(),
        })?
        .to_string();
    let base = format!("http://{addr}");
    let result = probes(t, &base, spec.timeout);
    t.note(&format!("full output of {api}:"));
    let _ = t.run(&mut docker(["logs", &api]));
    t.note(&format!("state of {api} (expected running, not exited):"));
    let state = t.run(&mut docker([
        "inspect",
        "--format",
        "{{.State.Status}} exit={{.State.ExitCode}} restarts={{.RestartCount}}",
        &api,
    ]))?;
    result?;
    if !state.starts_with("running") {
        return Err(DeployError::Command {
            command: format!("docker inspect {api}"),
            status: "not running after the smoke test".into(),
            output: state,
        });
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<(), DeployError> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| DeployError::Io {
            path: from.to_path_buf(),
            reason: e.to_string(),
        })
}

fn wait_healthy(t: &mut Transcript, container: &str, timeout: Duration) -> Result<(), DeployError> {
    let start = Instant::now();
    let mut cmd = docker([
        "inspect",
        "--format",
        "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}",
        container,
    ]);
    let line = render(&cmd);
    loop {
        let out = cmd.output().map_err(|e| DeployError::Command {
            command: line.clone(),
            status: e.to_string(),
            output: String::new(),
        })?;
        let status = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if status == "healthy" {
            t.note(&format!(
                "$ {line}  (polled every 500 ms)\nhealthy after {} s",
                stackpilot_core::time::secs(start.elapsed())
            ));
            return Ok(());
        }
        if start.elapsed() >= timeout || status == "exited" {
            let _ = t.run(&mut docker(["logs", container]));
            return Err(DeployError::Command {
                command: line,
                status: format!(
                    "{container} not healthy after {} s (the timeout): {status}",
                    timeout.as_secs()
                ),
                output: String::new(),
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn probes(t: &mut Transcript, base: &str, timeout: Duration) -> Result<(), DeployError> {
    let timeouts = Timeouts::default();
    let fail = |what: String, detail: String| DeployError::Command {
        command: what,
        status: "failed".into(),
        output: detail,
    };
    let start = Instant::now();
    for path in ["/health", "/ready"] {
        let url = format!("{base}{path}");
        loop {
            let p = http::get(&url, timeouts);
            match p.answer() {
                Some((200, body)) => {
                    t.note(&format!("GET {url} -> 200 {body}"));
                    break;
                }
                other if start.elapsed() >= timeout => {
                    let detail = format!("{other:?} / {:?}", p.outcome);
                    t.note(&format!(
                        "GET {url} -> not 200 after {} s (the timeout): {detail}",
                        timeout.as_secs()
                    ));
                    return Err(fail(format!("GET {url}"), detail));
                }
                _ => std::thread::sleep(Duration::from_millis(300)),
            }
        }
    }
    let url = format!("{base}/order?symbol=BTC&side=buy&qty=1");
    let p = http::post_json(&url, "", timeouts);
    let Some((201, body)) = p.answer() else {
        let detail = format!("{:?}", p.outcome);
        t.note(&format!("POST {url} -> {detail}"));
        return Err(fail(format!("POST {url}"), detail));
    };
    t.note(&format!("POST {url} -> 201 {body}"));
    let order: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| fail(format!("POST {url}"), format!("not JSON ({e}): {body}")))?;
    let id = order["order_id"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| order["order_id"].to_string());
    let url = format!("{base}/orders/{id}");
    let p = http::get(&url, timeouts);
    match p.answer() {
        Some((200, body)) => {
            t.note(&format!("GET {url} -> 200 {body}"));
            Ok(())
        }
        _ => {
            let detail = format!("{:?}", p.outcome);
            t.note(&format!("GET {url} -> {detail}"));
            Err(fail(format!("GET {url}"), detail))
        }
    }
}

/// The compose variables of one environment's stack as lifecycle sets them.
#[derive(Debug, Clone, Copy)]
pub struct ComposeVars<'a> {
    /// The environment.
    pub env: &'a str,
    /// The app image.
    pub app: &'a str,
    /// The database image.
    pub db: &'a str,
    /// Variable overrides of the release.
    pub overrides: &'a [(String, String)],
}

/// `compose config` on this machine with `vars`: the command line and its output, or why
/// it failed.
pub fn compose_config(
    cfg: &stackpilot_core::Config,
    root: &Path,
    vars: &ComposeVars<'_>,
) -> Result<(String, String), String> {
    use stackpilot_core::compose;
    let project = compose::Project::for_env(cfg, root, vars.env).map_err(|e| e.to_string())?;
    let engine = compose::detect().map_err(|e| e.to_string())?;
    let set = lifecycle::compose_vars(vars.app, vars.db, project.port);
    let env = compose::process_env(std::env::vars_os(), &set, vars.overrides);
    let sub = vec![OsString::from("config")];
    let mut cmd = compose::command(&engine, &project, &sub, &env);
    let line = render(&cmd);
    let out = cmd.output().map_err(|e| format!("`{line}`: {e}"))?;
    if out.status.success() {
        Ok((line, String::from_utf8_lossy(&out.stdout).into_owned()))
    } else {
        Err(format!(
            "`{line}` {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
