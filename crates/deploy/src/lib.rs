//! `deploy`: proves a release in four stages (local verification, artifact integrity,
//! remote execution, observability) before recording it as deployed; rolls back to the
//! previous release when a stage on the node fails; writes one evidence bundle per
//! deploy and one audit line per action, never rewriting either.
//!
//! It owns the deploy's decisions ([`plan`], pure), the host-side proof ([`local`],
//! [`evidence`]), the host-side actions ([`host`]: deploy, rollback, restart, stop, status,
//! the lock wrapper, written against the `NodeOps`/`BuildOps` traits) and the node-side
//! switch ([`node`], [`systemd`], behind ctx-guard). It never touches an environment's
//! database volume and never deploys what it has not run.

pub mod cli;
pub mod evidence;
pub mod host;
pub mod local;
pub mod node;
pub mod plan;
pub mod systemd;

use std::path::PathBuf;

use stackpilot_core::Exit;
use stackpilot_core::exit::ExitStatus;

/// Why a deploy step failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// Configuration or an unknown environment.
    #[error(transparent)]
    Config(#[from] stackpilot_core::Error),
    /// Bad usage, with the message to show.
    #[error("{0}")]
    Usage(String),
    /// The environment's env file is missing or incomplete.
    #[error(
        "env file {path}: {reason}\n  expected POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB set (see docs/DEPLOYMENT.md)"
    )]
    EnvFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A lifecycle step failed.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleErrorBox),
    /// The deploy state file could not be read or written.
    #[error("deploy state {path}: {reason}")]
    State {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The release image is not the one the release names.
    #[error(
        "release image {tag}: expected id {expected}, found {found}\n  releases are immutable: deploy again to build and load a new one"
    )]
    ImageMismatch {
        /// The tag.
        tag: String,
        /// The id the release recorded.
        expected: String,
        /// What the engine has.
        found: String,
    },
    /// The environment's stack has no container of a service.
    #[error("env {env} has no {service} container: is it deployed? (`make deploy ENV={env}`)")]
    NoContainer {
        /// The environment.
        env: String,
        /// The service.
        service: String,
    },
    /// A command failed; its full output is kept.
    #[error("`{command}` failed ({status})\n{output}")]
    Command {
        /// The command line.
        command: String,
        /// How it ended.
        status: String,
        /// Its full output.
        output: String,
    },
    /// A file of the evidence, audit log or lock could not be written or read.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Another deploy holds the lock.
    #[error(
        "deploy lock {path} is held by {owner} (pid {pid}, {purpose}) until {expires} (unix {expires_at}); wait, or, if that deploy is gone, remove the file on the node (`make shell`); it expires by itself"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// Its owner.
        owner: String,
        /// The owner's pid.
        pid: u32,
        /// What the owner is doing.
        purpose: String,
        /// When it expires, human.
        expires: String,
        /// When it expires, unix seconds.
        expires_at: u64,
    },
    /// A required program is missing.
    #[error("{what} is missing\n  install it: {install}")]
    Prerequisite {
        /// What.
        what: String,
        /// How to install it.
        install: String,
    },
}

/// Lifecycle's error, boxed (it is large).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct LifecycleErrorBox(pub Box<lifecycle::LifecycleError>);

impl From<lifecycle::LifecycleError> for DeployError {
    fn from(e: lifecycle::LifecycleError) -> Self {
        DeployError::Lifecycle(LifecycleErrorBox(Box::new(e)))
    }
}

impl ExitStatus for DeployError {
    fn exit(&self) -> Exit {
        match self {
            DeployError::Config(e) => e.exit(),
            DeployError::Usage(_) | DeployError::EnvFile { .. } => Exit::Usage,
            DeployError::Lifecycle(e) => e.0.exit(),
            DeployError::Prerequisite { .. } => Exit::PrereqMissing,
            DeployError::State { .. }
            | DeployError::ImageMismatch { .. }
            | DeployError::NoContainer { .. }
            | DeployError::Command { .. }
            | DeployError::Io { .. }
            | DeployError::Locked { .. } => Exit::Failed,
        }
    }
}

/// Reads an environment's env file and checks it sets every required key
/// ([`plan::REQUIRED_KEYS`]); a missing file or key is a configuration error (exit 2).
pub fn read_env_file(
    path: &std::path::Path,
) -> Result<std::collections::BTreeMap<String, String>, DeployError> {
    let text = std::fs::read_to_string(path).map_err(|e| DeployError::EnvFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let vars = plan::parse_env_file(&text);
    let missing = plan::missing_keys(&vars);
    if missing.is_empty() {
        Ok(vars)
    } else {
        Err(DeployError::EnvFile {
            path: path.to_path_buf(),
            reason: format!("missing or empty {}", missing.join(", ")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_env_file_is_a_configuration_error() {
        let e = read_env_file(std::path::Path::new("/nonexistent/dev.env")).err();
        assert!(matches!(&e, Some(DeployError::EnvFile { .. })), "{e:?}");
        assert_eq!(e.map(|e| e.exit()), Some(Exit::Usage));
    }

    #[test]
    fn an_env_file_without_a_required_key_names_it() -> Result<(), std::io::Error> {
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().join("dev.env");
        std::fs::write(&path, "POSTGRES_USER=u\nPOSTGRES_DB=d\n")?;
        let e = read_env_file(&path).err();
        assert!(
            e.as_ref()
                .is_some_and(|e| e.to_string().contains("missing or empty POSTGRES_PASSWORD")),
            "{e:?}"
        );
        std::fs::write(
            &path,
            "POSTGRES_USER=u\nPOSTGRES_PASSWORD=p\nPOSTGRES_DB=d\n",
        )?;
        assert!(read_env_file(&path).is_ok());
        Ok(())
    }
}
