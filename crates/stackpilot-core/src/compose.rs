//! The compose CLI wrapper: finds compose (v2+ `docker compose` or v1 `docker-compose`) and
//! builds every invocation with an explicit file, project directory, project name and env
//! file, all derived from the repo path on the node and the lab configuration — never from
//! the working directory.
//!
//! Argument building is pure; only [`detect`] and [`run`] touch the system.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus as ProcessStatus};

use crate::config::Config;
use crate::error::Error as CoreError;
use crate::exit::{Exit, ExitStatus};

/// The compose file, relative to the repo root.
pub const COMPOSE_FILE: &str = "infra/docker-compose.yml";
/// The compose project directory, relative to the repo root.
pub const PROJECT_DIR: &str = "infra";

/// Label compose (v1 and v2) puts on every container: the project name.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
/// Label compose puts on every container: the service name.
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
/// Label compose puts on every container: `True` for `run` containers.
pub const ONEOFF_LABEL: &str = "com.docker.compose.oneoff";
/// Label compose puts on every container: the project's working directory.
pub const WORKING_DIR_LABEL: &str = "com.docker.compose.project.working_dir";
/// Label compose puts on every container: the compose file(s) used.
pub const CONFIG_FILES_LABEL: &str = "com.docker.compose.project.config_files";

/// Variable the compose file takes the application image from (set from the build receipt).
pub const APP_IMAGE_VAR: &str = "STACKPILOT_APP_IMAGE";
/// Variable the compose file takes the database image from (set from the image lock).
pub const DB_IMAGE_VAR: &str = "STACKPILOT_DB_IMAGE";
/// Variable the compose file takes the published service port from (set from the config).
pub const PORT_VAR: &str = "STACKPILOT_PORT";

/// Variable the compose file takes its healthchecks' interval from ([`HealthCadence`]).
pub const HEALTH_INTERVAL_VAR: &str = "STACKPILOT_HEALTH_INTERVAL";
/// Variable the compose file takes its healthchecks' timeout from ([`HealthCadence`]).
pub const HEALTH_TIMEOUT_VAR: &str = "STACKPILOT_HEALTH_TIMEOUT";

/// How often the engine probes the stack's containers, and how long one probe may take.
///
/// Every probe is an exec through the engine (dockerd, containerd, a shim, runc). On a
/// native or KVM CPU that is cheap (a running stack on a docker-provider node costs the
/// host about 0.08 of a core at 2 s), but on an emulated CPU (QEMU's TCG) the same probes
/// every 2 s kept a core of the host busy with an idle stack (docs/benchmarks.md), starving
/// the node's own work and tripping 3 s timeouts. Such nodes probe every 10 s, 8 s each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCadence {
    /// Between two probes (compose duration syntax).
    pub interval: &'static str,
    /// How long a probe may take before it counts as failed.
    pub timeout: &'static str,
}

impl HealthCadence {
    /// The compose file's defaults: a probe every 2 s, 3 s each.
    pub const NATIVE: HealthCadence = HealthCadence {
        interval: "2s",
        timeout: "3s",
    };
    /// On an emulated CPU: a probe every 10 s, 8 s each.
    pub const EMULATED: HealthCadence = HealthCadence {
        interval: "10s",
        timeout: "8s",
    };

    /// The cadence for a node whose `systemd-detect-virt --vm` printed `virt` (`None` when
    /// it could not run, as in a docker-provider node's container): `qemu` is QEMU without
    /// hardware acceleration (TCG; under KVM it prints `kvm`).
    pub fn for_virtualization(virt: Option<&str>) -> HealthCadence {
        match virt.map(str::trim) {
            Some("qemu") => HealthCadence::EMULATED,
            _ => HealthCadence::NATIVE,
        }
    }

    /// Whether this is the emulated cadence.
    pub fn is_emulated(&self) -> bool {
        *self == HealthCadence::EMULATED
    }

    /// The compose variables that carry it.
    pub fn vars(&self) -> Vec<(String, String)> {
        vec![
            (HEALTH_INTERVAL_VAR.to_string(), self.interval.to_string()),
            (HEALTH_TIMEOUT_VAR.to_string(), self.timeout.to_string()),
        ]
    }
}

/// Variables of the caller's environment passed through to compose; everything else is
/// dropped so a stray `POSTGRES_PASSWORD` in a shell cannot override the env file.
pub const PASSED_THROUGH: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "XDG_RUNTIME_DIR",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "DOCKER_CONTEXT",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
];

/// Which compose generation runs: they differ in container names and features (`--wait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// Compose v1 (`docker-compose` 1.x, Python): `proj_svc_1`, no `up --wait`.
    V1,
    /// Compose v2 and later (Go; the plugin or a standalone 2.x+ binary): `proj-svc-1`.
    V2,
}

/// A compose found on this machine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Compose {
    /// The program to run (`/usr/bin/docker` or `/usr/bin/docker-compose`).
    pub program: PathBuf,
    /// Arguments before the global options (`["compose"]` for the docker plugin).
    pub prefix: Vec<String>,
    /// The generation, from the reported version.
    pub flavor: Flavor,
    /// The version compose reports, without a leading `v` (e.g. `1.29.2`, `2.24.5`, `5.0.1`).
    pub version: String,
}

impl Compose {
    /// How a user would type it: `docker compose` or `docker-compose`.
    pub fn display_name(&self) -> String {
        let program = self
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.program.display().to_string());
        std::iter::once(program)
            .chain(self.prefix.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One environment's compose wiring: every path absolute, the project fixed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Project {
    /// Compose project name (`-p`).
    pub name: String,
    /// Compose file (`-f`).
    pub file: PathBuf,
    /// Project directory (`--project-directory`).
    pub directory: PathBuf,
    /// Env file (`--env-file`).
    pub env_file: PathBuf,
    /// Port the api is published on, on the node.
    pub port: u16,
}

impl Project {
    /// The wiring of environment `env` for a repo at `repo` (on a node: `/vagrant`).
    pub fn for_env(cfg: &Config, repo: &Path, env: &str) -> Result<Project, CoreError> {
        let e = cfg.environment(env)?;
        Ok(Project {
            name: e.project().to_string(),
            file: repo.join(COMPOSE_FILE),
            directory: repo.join(PROJECT_DIR),
            env_file: repo.join(&e.env_file),
            port: e.port(),
        })
    }

    /// The engine filter that selects this project's containers by compose label.
    pub fn label_filter(&self) -> String {
        format!("{PROJECT_LABEL}={}", self.name)
    }
}

/// Why compose could not be found or run.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// Neither compose v2 nor v1 is installed.
    #[error(
        "no Docker Compose found: `docker compose version` failed and `docker-compose` is not on PATH\n  install the compose plugin (`apt-get install docker-compose-plugin`) or compose v1 (`apt-get install docker-compose`)"
    )]
    Missing,
    /// Compose is installed but its version could not be read.
    #[error("`{command}` did not report a version (output: {output:?})")]
    UnknownVersion {
        /// The command run.
        command: String,
        /// What it printed.
        output: String,
    },
    /// Compose could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command.
        command: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Compose ran and failed.
    #[error("`{command}` failed ({status})")]
    Failed {
        /// The command.
        command: String,
        /// Its exit status.
        status: ProcessStatus,
    },
}

impl ExitStatus for ComposeError {
    fn exit(&self) -> Exit {
        match self {
            ComposeError::Missing | ComposeError::UnknownVersion { .. } => Exit::PrereqMissing,
            ComposeError::Spawn { .. } | ComposeError::Failed { .. } => Exit::Failed,
        }
    }
}

/// The version in `docker compose version` / `docker-compose version --short` output:
/// the first token that starts with a digit (after an optional `v`), trailing `,` removed.
pub fn parse_version(output: &str) -> Option<String> {
    output
        .split_whitespace()
        .map(|t| t.trim_end_matches(','))
        .map(|t| t.strip_prefix('v').unwrap_or(t))
        .find(|t| t.starts_with(|c: char| c.is_ascii_digit()) && t.contains('.'))
        .map(str::to_string)
}

/// The generation a version stands for: 1.x is v1, anything later (2.x, 5.x, …) is v2.
pub fn flavor_of(version: &str) -> Flavor {
    match version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
    {
        Some(1) | Some(0) => Flavor::V1,
        _ => Flavor::V2,
    }
}

/// Finds compose with `which`: the docker plugin when `docker compose version` works, else
/// a `docker-compose` binary (v1, or a standalone v2+).
pub fn detect() -> Result<Compose, ComposeError> {
    if let Ok(docker) = which::which("docker") {
        let out = Command::new(&docker)
            .args(["compose", "version"])
            .env_clear()
            .envs(passed_through(std::env::vars_os()))
            .output();
        if let Ok(out) = out
            && out.status.success()
        {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let version = parse_version(&text).ok_or(ComposeError::UnknownVersion {
                command: "docker compose version".into(),
                output: text.trim().to_string(),
            })?;
            return Ok(Compose {
                program: docker,
                prefix: vec!["compose".into()],
                flavor: flavor_of(&version),
                version,
            });
        }
    }
    let standalone = which::which("docker-compose").map_err(|_| ComposeError::Missing)?;
    let command = "docker-compose version --short";
    let out = Command::new(&standalone)
        .args(["version", "--short"])
        .env_clear()
        .envs(passed_through(std::env::vars_os()))
        .output()
        .map_err(|source| ComposeError::Spawn {
            command: command.into(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = parse_version(&text).ok_or(ComposeError::UnknownVersion {
        command: command.into(),
        output: text.trim().to_string(),
    })?;
    Ok(Compose {
        program: standalone,
        prefix: Vec::new(),
        flavor: flavor_of(&version),
        version,
    })
}

/// The global options every invocation carries: `-f`, `--project-directory`, `-p`,
/// `--env-file`. Both generations accept the same spelling.
pub fn global_args(project: &Project) -> Vec<OsString> {
    vec![
        "-f".into(),
        project.file.clone().into(),
        "--project-directory".into(),
        project.directory.clone().into(),
        "-p".into(),
        project.name.clone().into(),
        "--env-file".into(),
        project.env_file.clone().into(),
    ]
}

/// Arguments of `up`: detached, never building (images come from pinned tags), removing
/// containers of services the file no longer declares; `--force-recreate` when asked.
/// Health is waited on by the caller through the engine (v1 has no `--wait`).
pub fn up_args(recreate: bool) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["up".into(), "-d".into(), "--no-build".into()];
    args.push("--remove-orphans".into());
    if recreate {
        args.push("--force-recreate".into());
    }
    args
}

/// Arguments of `stop`: containers stop, and stay (with images, networks and volumes).
pub fn stop_args() -> Vec<OsString> {
    vec!["stop".into()]
}

/// Arguments of `config --services`: the services the compose file declares.
pub fn services_args() -> Vec<OsString> {
    vec!["config".into(), "--services".into()]
}

/// The whole argument vector after the program: prefix, global options, subcommand.
pub fn full_args(compose: &Compose, project: &Project, sub: &[OsString]) -> Vec<OsString> {
    compose
        .prefix
        .iter()
        .map(OsString::from)
        .chain(global_args(project))
        .chain(sub.iter().cloned())
        .collect()
}

/// The caller's variables that compose may see ([`PASSED_THROUGH`]).
pub fn passed_through<I>(inherited: I) -> Vec<(OsString, OsString)>
where
    I: IntoIterator<Item = (OsString, OsString)>,
{
    inherited
        .into_iter()
        .filter(|(k, _)| PASSED_THROUGH.iter().any(|p| k == p))
        .collect()
}

/// The full environment of a compose process: the passed-through part of `inherited`,
/// then `vars` (set by the tool), then `overrides` (drills' `--set`); later entries win.
pub fn process_env<I>(
    inherited: I,
    vars: &[(String, String)],
    overrides: &[(String, String)],
) -> Vec<(OsString, OsString)>
where
    I: IntoIterator<Item = (OsString, OsString)>,
{
    let mut env = passed_through(inherited);
    for (k, v) in vars.iter().chain(overrides) {
        env.retain(|(ek, _)| ek != k.as_str());
        env.push((k.into(), v.into()));
    }
    env
}

/// A shell-like rendering of a command line, for messages and logs.
pub fn render(program: &Path, args: &[OsString]) -> String {
    std::iter::once(program.as_os_str())
        .chain(args.iter().map(OsString::as_os_str))
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A ready-to-run compose command with a cleared environment (see [`process_env`]).
pub fn command(
    compose: &Compose,
    project: &Project,
    sub: &[OsString],
    env: &[(OsString, OsString)],
) -> Command {
    let mut cmd = Command::new(&compose.program);
    cmd.args(full_args(compose, project, sub))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// Runs compose with output going straight to the terminal; fails on a non-zero exit.
pub fn run(
    compose: &Compose,
    project: &Project,
    sub: &[OsString],
    env: &[(OsString, OsString)],
) -> Result<(), ComposeError> {
    let rendered = render(&compose.program, &full_args(compose, project, sub));
    let status = command(compose, project, sub, env)
        .status()
        .map_err(|source| ComposeError::Spawn {
            command: rendered.clone(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(ComposeError::Failed {
            command: rendered,
            status,
        })
    }
}

/// Runs compose and returns its stdout (stderr goes to the terminal).
pub fn output(
    compose: &Compose,
    project: &Project,
    sub: &[OsString],
    env: &[(OsString, OsString)],
) -> Result<String, ComposeError> {
    let rendered = render(&compose.program, &full_args(compose, project, sub));
    let out = command(compose, project, sub, env)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|source| ComposeError::Spawn {
            command: rendered.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(ComposeError::Failed {
            command: rendered,
            status: out.status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> Project {
        Project {
            name: "stackpilot-dev".into(),
            file: "/vagrant/infra/docker-compose.yml".into(),
            directory: "/vagrant/infra".into(),
            env_file: "/vagrant/infra/env/dev.env".into(),
            port: 8000,
        }
    }

    fn v1() -> Compose {
        Compose {
            program: "/usr/bin/docker-compose".into(),
            prefix: vec![],
            flavor: Flavor::V1,
            version: "1.29.2".into(),
        }
    }

    fn v2() -> Compose {
        Compose {
            program: "/usr/bin/docker".into(),
            prefix: vec!["compose".into()],
            flavor: Flavor::V2,
            version: "2.24.5".into(),
        }
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn v1_up_names_file_directory_project_and_env_file() {
        let args = full_args(&v1(), &project(), &up_args(false));
        assert_eq!(
            render(&v1().program, &args),
            "/usr/bin/docker-compose -f /vagrant/infra/docker-compose.yml --project-directory /vagrant/infra -p stackpilot-dev --env-file /vagrant/infra/env/dev.env up -d --no-build --remove-orphans"
        );
    }

    #[test]
    fn v2_runs_as_docker_plugin_with_the_same_options() {
        let args = full_args(&v2(), &project(), &up_args(true));
        assert_eq!(
            render(&v2().program, &args),
            "/usr/bin/docker compose -f /vagrant/infra/docker-compose.yml --project-directory /vagrant/infra -p stackpilot-dev --env-file /vagrant/infra/env/dev.env up -d --no-build --remove-orphans --force-recreate"
        );
    }

    #[test]
    fn stop_and_services_are_plain_subcommands() {
        assert_eq!(
            strings(&full_args(&v1(), &project(), &stop_args()))[8..],
            ["stop"]
        );
        assert_eq!(
            strings(&full_args(&v2(), &project(), &services_args()))[9..],
            ["config", "--services"]
        );
    }

    #[test]
    fn project_paths_come_from_repo_and_config_not_cwd() {
        let text = include_str!("../../../stackpilot.toml");
        let cfg = Config::parse(text, Path::new("stackpilot.toml")).expect("config");
        let p = Project::for_env(&cfg, Path::new("/vagrant"), "staging").expect("staging");
        assert_eq!(
            p,
            Project {
                name: "stackpilot-staging".into(),
                file: "/vagrant/infra/docker-compose.yml".into(),
                directory: "/vagrant/infra".into(),
                env_file: "/vagrant/infra/env/staging.env".into(),
                port: 8001,
            }
        );
        assert_eq!(
            p.label_filter(),
            "com.docker.compose.project=stackpilot-staging"
        );
    }

    #[test]
    fn versions_parse_from_both_generations_output() {
        assert_eq!(
            parse_version("Docker Compose version v2.24.5\n").as_deref(),
            Some("2.24.5")
        );
        assert_eq!(parse_version("1.29.2\n").as_deref(), Some("1.29.2"));
        assert_eq!(
            parse_version("docker-compose version 1.29.2, build unknown").as_deref(),
            Some("1.29.2")
        );
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn versions_after_two_are_still_v2_semantics() {
        assert_eq!(flavor_of("1.29.2"), Flavor::V1);
        assert_eq!(flavor_of("2.24.5"), Flavor::V2);
        assert_eq!(flavor_of("5.0.1"), Flavor::V2);
    }

    #[test]
    fn process_env_drops_stray_variables_and_lets_overrides_win() {
        let inherited = vec![
            (OsString::from("PATH"), OsString::from("/usr/bin")),
            (
                OsString::from("POSTGRES_PASSWORD"),
                OsString::from("from-shell"),
            ),
        ];
        let env = process_env(
            inherited,
            &[("STACKPILOT_PORT".into(), "8000".into())],
            &[("STACKPILOT_PORT".into(), "9000".into())],
        );
        assert_eq!(
            env,
            vec![
                (OsString::from("PATH"), OsString::from("/usr/bin")),
                (OsString::from("STACKPILOT_PORT"), OsString::from("9000")),
            ]
        );
    }

    #[test]
    fn only_an_emulated_cpu_slows_the_health_probes() {
        assert_eq!(
            HealthCadence::for_virtualization(Some("qemu\n")),
            HealthCadence::EMULATED
        );
        for virt in [Some("kvm"), Some("none"), Some("oracle"), Some(""), None] {
            assert_eq!(
                HealthCadence::for_virtualization(virt),
                HealthCadence::NATIVE,
                "{virt:?}"
            );
        }
        let vars = HealthCadence::EMULATED.vars();
        assert!(vars.contains(&(HEALTH_INTERVAL_VAR.to_string(), "10s".to_string())));
        assert!(vars.contains(&(HEALTH_TIMEOUT_VAR.to_string(), "8s".to_string())));
    }

    #[test]
    fn the_compose_file_defaults_to_the_native_cadence() {
        let file = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(COMPOSE_FILE),
        )
        .expect("compose file");
        let interval = format!(
            "interval: ${{{HEALTH_INTERVAL_VAR}:-{}}}",
            HealthCadence::NATIVE.interval
        );
        let timeout = format!(
            "timeout: ${{{HEALTH_TIMEOUT_VAR}:-{}}}",
            HealthCadence::NATIVE.timeout
        );
        assert_eq!(file.matches(&interval).count(), 2, "{interval}");
        assert_eq!(file.matches(&timeout).count(), 2, "{timeout}");
    }

    #[test]
    fn display_name_is_how_a_user_types_it() {
        assert_eq!(v1().display_name(), "docker-compose");
        assert_eq!(v2().display_name(), "docker compose");
    }
}
