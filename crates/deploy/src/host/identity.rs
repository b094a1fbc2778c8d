//! A release's identity on the build machine: the digest of what it is made from (the
//! app's files, its locked dependency closure, the runtime image) and of what it runs
//! with (env file, compose file, migrations, db image, overrides). Same digests, running
//! healthy: the deploy has nothing to do.

use std::path::Path;
use std::process::Command;

use super::HostError;
use crate::evidence::{self, Artifact};

fn failed(what: &str, e: impl std::fmt::Display) -> HostError {
    HostError::failed("deploy", format!("{what}: {e}"))
}

/// Files the release image is made from (the app's sources, the lock file, the
/// workspace manifest): their content decides whether a release is new.
fn source_files(root: &Path) -> Result<Vec<String>, HostError> {
    let out = Command::new("git")
        .args([
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "apps/mock-exchange",
        ])
        .current_dir(root)
        .output()
        .map_err(|e| failed("git ls-files", e))?;
    let mut files: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        // Tests, the test harness and docs do not go into the image.
        .filter(|f| {
            !f.starts_with("apps/mock-exchange/tests/")
                && !f.starts_with("apps/mock-exchange/pg-harness/")
                && !f.ends_with(".md")
                && root.join(f).is_file()
        })
        .map(str::to_string)
        .collect();
    files.sort();
    Ok(files)
}

/// The locked dependency closure of the app (`cargo tree`): a dependency bump is a new
/// release, a change elsewhere in the workspace's lock file is not.
fn dependency_closure(root: &Path, target: &str) -> Result<String, HostError> {
    let out = Command::new("cargo")
        .args([
            "tree",
            "--locked",
            "-p",
            "mock-exchange",
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--target",
            target,
        ])
        .current_dir(root)
        .output()
        .map_err(|e| failed("cargo tree", e))?;
    if !out.status.success() {
        return Err(failed(
            "cargo tree -p mock-exchange",
            String::from_utf8_lossy(&out.stderr),
        ));
    }
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_end_matches(" (*)").to_string())
        .collect();
    lines.sort();
    lines.dedup();
    Ok(lines.join("\n"))
}

/// The digest of what the release is made from, for the compile `target`.
pub fn source_digest(root: &Path, target: &str, runtime_id: &str) -> Result<String, HostError> {
    let mut parts = vec![
        format!("runtime {runtime_id}"),
        format!(
            "dependencies {}",
            evidence::sha256_hex(dependency_closure(root, target)?.as_bytes())
        ),
    ];
    for f in source_files(root)? {
        let a = evidence::artifact(root, "source", &f)?;
        parts.push(format!("{} {}", a.sha256, a.path));
    }
    Ok(evidence::combined_digest(parts.iter().map(String::as_str)))
}

/// The configuration a release runs with: env file, compose file, migrations.
pub fn config_artifacts(root: &Path, env_file: &str) -> Result<Vec<Artifact>, HostError> {
    let mut out = vec![
        evidence::artifact(root, "env file", env_file)?,
        evidence::artifact(root, "compose file", stackpilot_core::compose::COMPOSE_FILE)?,
    ];
    for m in evidence::files_with_ext(root, "apps/mock-exchange/migrations", "sql")? {
        out.push(evidence::artifact(root, "migration", &m)?);
    }
    Ok(out)
}

/// The digest of the configuration: artifacts, the db image, the overrides.
pub fn config_digest(arts: &[Artifact], db_id: &str, overrides: &[(String, String)]) -> String {
    let mut parts: Vec<String> = arts
        .iter()
        .map(|a| format!("{} {}", a.sha256, a.path))
        .collect();
    parts.push(format!("db {db_id}"));
    parts.extend(overrides.iter().map(|(k, v)| format!("set {k}={v}")));
    evidence::combined_digest(parts.iter().map(String::as_str))
}
