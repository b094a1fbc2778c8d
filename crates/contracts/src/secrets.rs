//! Contract `no-secrets`, with Yelp's detect-secrets (an established scanner, pinned,
//! installed with pip under target/) over the tracked files. Lab credentials are allowed only in env files that declare themselves
//! lab-only; anything else needs an inline `pragma: allowlist secret` with a reason.

use std::path::Path;
use std::process::Command;

use stackpilot_core::step;

use crate::{Error, Violation};

/// Pinned scanner version (installed with pip into target/tools/).
const SCANNER: &str = "detect-secrets==1.5.0";
/// Values that are documentation placeholders, not secrets (`postgres://user:password@…`).
const PLACEHOLDERS: &str = "^(password|pw|secret)$";
/// The marker an env file carries to say its credentials exist only for the lab.
pub const LAB_ONLY: &str = "# lab-only credentials, not a secret";

/// The scanner's install dir (a pip `--target` dir under target/, rebuilt when absent).
fn scanner(root: &Path) -> Result<std::path::PathBuf, Error> {
    let dir = root.join("target/tools/detect-secrets");
    if dir.join("detect_secrets").is_dir() {
        return Ok(dir);
    }
    which::which("python3").map_err(|_| Error::Prereq {
        what: "python3 with pip (to run detect-secrets)".into(),
        install: "apt-get install -y python3 python3-pip".into(),
    })?;
    step::run(
        "install secret scanner",
        root,
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(&dir)
            .arg(SCANNER),
    )?;
    Ok(dir)
}

/// Scans the tracked files; every finding outside a lab-only env file is a violation.
pub fn scan(root: &Path) -> Result<Vec<Violation>, Error> {
    let dir = scanner(root)?;
    let cmd = "python3 -m detect_secrets scan";
    let out = Command::new("python3")
        .args(["-m", "detect_secrets", "scan"])
        // Placeholders in documented URL forms, and values that say they are lab-only.
        .args([
            "--exclude-secrets",
            PLACEHOLDERS,
            "--exclude-secrets",
            "^lab-only-",
        ])
        .env("PYTHONPATH", &dir)
        .current_dir(root)
        .output()
        .map_err(|e| step::StepError::new("secret scan", cmd, e))?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        step::StepError::new(
            "secret scan",
            cmd,
            format!(
                "unreadable report ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    })?;
    Ok(violations(root, &report))
}

/// The findings of a detect-secrets report that are not allowed.
pub fn violations(root: &Path, report: &serde_json::Value) -> Vec<Violation> {
    let mut out = Vec::new();
    let Some(results) = report["results"].as_object() else {
        return out;
    };
    for (file, findings) in results {
        let lab_only = file.starts_with("infra/env/")
            && std::fs::read_to_string(root.join(file)).is_ok_and(|t| t.contains(LAB_ONLY));
        if lab_only {
            continue;
        }
        for f in findings.as_array().into_iter().flatten() {
            out.push(Violation {
                at: format!("{file}:{}", f["line_number"]),
                what: format!(
                    "possible secret ({}): remove it, or mark a lab-only value with `pragma: allowlist secret`",
                    f["type"].as_str().unwrap_or("unknown")
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_outside_lab_only_env_files_are_violations() {
        let report = serde_json::json!({"results": {
            "src/config.rs": [{"type": "Secret Keyword", "line_number": 3}],
            "infra/env/dev.env": [{"type": "Secret Keyword", "line_number": 5}],
        }});
        // infra/env/dev.env in the repo carries the lab-only marker; src/config.rs does not exist.
        let root = crate::repo_root();
        let v = violations(&root, &report);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].at, "src/config.rs:3");
    }
}
