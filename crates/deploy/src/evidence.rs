//! Host-side records of deploys: checksums and the artifact manifest, the evidence
//! bundle (one folder per deploy, files created once, never rewritten), the append-only
//! audit log, and the deploy lock (owner + expiry) that the node side keeps in the node's
//! state dir.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use stackpilot_core::time;

use crate::DeployError;
use crate::plan::{self, AuditEntry, LockDecision, LockInfo};

/// Folder of the deploy records under the host state dir (`state.host_dir`).
pub const DEPLOYS_DIR: &str = "deploys";
/// The append-only audit log, under [`DEPLOYS_DIR`].
pub const AUDIT_LOG: &str = "audit.log";
/// The lock file of one node + environment.
pub const LOCK_FILE: &str = "deploy.lock";
/// How long a deploy lock is valid: longer than any deploy, short enough that a crashed
/// deploy does not block the next one for long.
pub const LOCK_TTL_SECS: u64 = 30 * 60;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DeployError + '_ {
    move |e| DeployError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Unix seconds now.
pub use stackpilot_core::time::unix_now_f64 as unix_now;

/// Who acts: `$USER@<hostname>`.
pub fn who() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            std::process::Command::new("id")
                .arg("-un")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into());
    format!("{user}@{host}")
}

/// sha256 of bytes, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// One checksummed artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Artifact {
    /// What it is (`binary`, `env file`, `migration`, `compose file`, …).
    pub kind: String,
    /// Path relative to the repo root.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// sha256, hex.
    pub sha256: String,
}

/// Reads and checksums `rel` under `root`; a missing or unreadable file is an error
/// (no silent fallback).
pub fn artifact(root: &Path, kind: &str, rel: &str) -> Result<Artifact, DeployError> {
    let path = root.join(rel);
    let data = std::fs::read(&path).map_err(io(&path))?;
    Ok(Artifact {
        kind: kind.to_string(),
        path: rel.to_string(),
        bytes: data.len() as u64,
        sha256: sha256_hex(&data),
    })
}

/// Files under `dir` (relative to `root`) with extension `ext`, sorted; an empty or
/// missing folder is an error.
pub fn files_with_ext(root: &Path, dir: &str, ext: &str) -> Result<Vec<String>, DeployError> {
    let path = root.join(dir);
    let mut out: Vec<String> = std::fs::read_dir(&path)
        .map_err(io(&path))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(&format!(".{ext}")))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    out.sort();
    if out.is_empty() {
        return Err(DeployError::Io {
            path,
            reason: format!("expected at least one .{ext} file, found none"),
        });
    }
    Ok(out)
}

/// One digest over several artifacts (order-sensitive): a release's identity.
pub fn combined_digest<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(b"\n");
    }
    format!("{:x}", h.finalize())
}

/// The evidence folder of one deploy. Files are created once; writing one twice fails.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The folder.
    pub dir: PathBuf,
}

impl Bundle {
    /// Creates `<env_dir>/<name>` (it must not exist: bundles are never rewritten).
    pub fn create(env_dir: &Path, name: &str) -> Result<Bundle, DeployError> {
        std::fs::create_dir_all(env_dir).map_err(io(env_dir))?;
        let dir = env_dir.join(name);
        std::fs::create_dir(&dir).map_err(io(&dir))?;
        Ok(Bundle { dir })
    }

    /// Writes `file` in the bundle; an existing file is an error.
    pub fn write(&self, file: &str, content: &str) -> Result<PathBuf, DeployError> {
        let path = self.dir.join(file);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io(&path))?;
        f.write_all(content.as_bytes()).map_err(io(&path))?;
        Ok(path)
    }

    /// Writes `value` as pretty JSON.
    pub fn write_json<T: Serialize>(&self, file: &str, value: &T) -> Result<PathBuf, DeployError> {
        let text = serde_json::to_string_pretty(value).map_err(|e| DeployError::Io {
            path: self.dir.join(file),
            reason: e.to_string(),
        })?;
        self.write(file, &text)
    }
}

/// Appends one line to the audit log at `path` (opened append-only).
pub fn audit(path: &Path, entry: &AuditEntry) -> Result<(), DeployError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let line = serde_json::to_string(entry).map_err(|e| DeployError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(io(path))?;
    writeln!(f, "{line}").map_err(io(path))
}

/// A held deploy lock; released (the file removed) on drop.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    /// Who holds it.
    pub info: LockInfo,
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Only our own lock is removed: a taken-over lock belongs to someone else now.
        let ours = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| serde_json::from_str::<LockInfo>(&t).ok())
            .is_some_and(|l| l == self.info);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A lock for `owner` (pid `pid`) doing `purpose`, from now for [`LOCK_TTL_SECS`].
pub fn lock_info(owner: &str, pid: u32, purpose: &str) -> LockInfo {
    let now = unix_now() as u64;
    LockInfo {
        owner: owner.to_string(),
        pid,
        purpose: purpose.to_string(),
        acquired_at: now,
        expires_at: now + LOCK_TTL_SECS,
    }
}

impl Lock {
    /// Keeps the lock file after this process ends (the node side takes the lock for a
    /// host-side action, which releases it with [`unlock`]).
    pub fn keep(self) -> LockInfo {
        let info = self.info.clone();
        std::mem::forget(self);
        info
    }
}

/// Removes the lock at `path` if it is still `info` (a lock taken over after its expiry
/// belongs to someone else and stays). Returns whether it was removed.
pub fn unlock(path: &Path, info: &LockInfo) -> Result<bool, DeployError> {
    let current = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<LockInfo>(&t).ok());
    if current.as_ref() != Some(info) {
        return Ok(false);
    }
    std::fs::remove_file(path).map_err(io(path))?;
    Ok(true)
}

/// Takes the lock at `path` as `info`. An expired lock is taken over (and said so on
/// stderr); a live one is refused naming its owner and expiry.
pub fn lock(path: &Path, info: LockInfo) -> Result<Lock, DeployError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let now = unix_now() as u64;
    let text = serde_json::to_string(&info).map_err(|e| DeployError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    for _ in 0..2 {
        match OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(mut f) => {
                f.write_all(text.as_bytes()).map_err(io(path))?;
                return Ok(Lock {
                    path: path.to_path_buf(),
                    info,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let existing = std::fs::read_to_string(path)
                    .ok()
                    .and_then(|t| serde_json::from_str::<LockInfo>(&t).ok());
                match existing {
                    // Unreadable: treat as expired (a crash mid-write).
                    None => {
                        eprintln!("deploy: lock {} unreadable: taking it over", path.display());
                        std::fs::remove_file(path).map_err(io(path))?;
                    }
                    Some(l) => match plan::lock_decision(Some(l), now) {
                        LockDecision::Held(l) => {
                            return Err(DeployError::Locked {
                                path: path.to_path_buf(),
                                expires: time::unix_rfc3339(l.expires_at),
                                owner: l.owner,
                                pid: l.pid,
                                purpose: l.purpose,
                                expires_at: l.expires_at,
                            });
                        }
                        LockDecision::Expired(l) => {
                            eprintln!(
                                "deploy: lock {} held by {} (pid {}, {}) expired at unix {}: taking it over",
                                path.display(),
                                l.owner,
                                l.pid,
                                l.purpose,
                                l.expires_at
                            );
                            std::fs::remove_file(path).map_err(io(path))?;
                        }
                        LockDecision::Free => {}
                    },
                }
            }
            Err(e) => return Err(io(path)(e)),
        }
    }
    Err(DeployError::Io {
        path: path.to_path_buf(),
        reason: "could not take the lock (another deploy raced for it)".into(),
    })
}

/// Now as RFC 3339 (seconds) and as a compact sortable stamp (`20261125T190000`).
pub fn stamps() -> (String, String) {
    let now = time::now_utc();
    (time::rfc3339(now), time::compact(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_files_are_never_rewritten() -> Result<(), DeployError> {
        let tmp = tempfile::tempdir().map_err(|e| DeployError::Usage(e.to_string()))?;
        let b = Bundle::create(tmp.path(), "20261125T190000-x")?;
        b.write("summary.json", "{}")?;
        assert!(b.write("summary.json", "{}").is_err());
        assert!(Bundle::create(tmp.path(), "20261125T190000-x").is_err());
        Ok(())
    }

    #[test]
    fn audit_appends_one_line_per_entry() -> Result<(), DeployError> {
        let tmp = tempfile::tempdir().map_err(|e| DeployError::Usage(e.to_string()))?;
        let path = tmp.path().join("audit.log");
        let e = AuditEntry {
            at: "t".into(),
            by: "op@h".into(),
            action: "deploy".into(),
            node: "worker1".into(),
            env: "dev".into(),
            release: None,
            outcome: "deployed".into(),
            evidence: None,
            reason: None,
        };
        audit(&path, &e)?;
        audit(&path, &e)?;
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        assert_eq!(text.lines().count(), 2);
        Ok(())
    }

    #[test]
    fn a_held_lock_is_refused_and_released_on_drop() -> Result<(), DeployError> {
        let tmp = tempfile::tempdir().map_err(|e| DeployError::Usage(e.to_string()))?;
        let path = tmp.path().join("deploy.lock");
        let held = lock(&path, lock_info("a@h (/a)", 1, "deploy dev on worker1"))?;
        let err = lock(&path, lock_info("b@h (/b)", 2, "deploy dev on worker1")).err();
        assert!(
            matches!(&err, Some(DeployError::Locked { owner, .. }) if *owner == held.info.owner),
            "{err:?}"
        );
        drop(held);
        assert!(!path.exists());
        let again = lock(&path, lock_info("b@h (/b)", 2, "x"))?;
        drop(again);
        Ok(())
    }

    #[test]
    fn a_kept_lock_stays_until_its_owner_unlocks_it() -> Result<(), DeployError> {
        let tmp = tempfile::tempdir().map_err(|e| DeployError::Usage(e.to_string()))?;
        let path = tmp.path().join("deploy.lock");
        let mine = lock(&path, lock_info("a@h (/a)", 1, "deploy"))?.keep();
        assert!(path.exists());
        let other = lock_info("b@h (/b)", 2, "deploy");
        assert!(!unlock(&path, &other)?, "only the owner's lock is removed");
        assert!(unlock(&path, &mine)?);
        assert!(!path.exists());
        Ok(())
    }

    #[test]
    fn an_expired_lock_is_taken_over() -> Result<(), DeployError> {
        let tmp = tempfile::tempdir().map_err(|e| DeployError::Usage(e.to_string()))?;
        let path = tmp.path().join("deploy.lock");
        let stale = LockInfo {
            owner: "gone@host".into(),
            pid: 1,
            purpose: "deploy dev".into(),
            acquired_at: 1,
            expires_at: 2,
        };
        std::fs::write(&path, serde_json::to_string(&stale).unwrap_or_default())
            .map_err(io(&path))?;
        let l = lock(&path, lock_info("me@h (/me)", 9, "deploy dev"))?;
        assert_eq!(l.info.pid, 9);
        Ok(())
    }

    #[test]
    fn combined_digest_depends_on_every_part() {
        assert_ne!(combined_digest(["a", "b"]), combined_digest(["a", "c"]));
        assert_eq!(combined_digest(["a", "b"]), combined_digest(["a", "b"]));
    }
}
