//! A stand-in lab node for tests that run node-side binaries for real (ctx-guard's own
//! namespace tests, verify's node test): a directory that becomes `/` of a command run in
//! a private mount namespace (`unshare --mount`, then `chroot`), with the host's programs
//! mounted in. It only builds that directory and the command; the mounts are made by the
//! command, inside its namespace, and die with it.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use stackpilot_core::mountinfo;
use stackpilot_core::node::{IDENTITY_FILE, Identity, NODE_REPO};
use stackpilot_core::transport::shell_quote;

/// A root filesystem and the mounts (shell lines, `$R` the root) that complete it.
#[derive(Debug, Clone)]
pub struct StandIn {
    /// The directory that becomes `/`.
    pub root: PathBuf,
    /// Shell lines run in the namespace before `chroot`, with `$R` the new root.
    pub mounts: Vec<String>,
}

impl StandIn {
    /// A root at `root` with `dirs` created, the host's `/usr`, `/bin`, `/sbin`, `/lib`,
    /// `/lib64` (mirrored as symlinks on a merged-/usr host, else bind-mounted) and `/proc`.
    pub fn new(root: PathBuf, dirs: &[&str]) -> std::io::Result<StandIn> {
        for d in ["usr", "proc", "etc"].iter().chain(dirs) {
            fs::create_dir_all(root.join(d))?;
        }
        let mut mounts = vec!["mount --bind /usr \"$R/usr\"".to_string()];
        for d in ["bin", "sbin", "lib", "lib64"] {
            let host = Path::new("/").join(d);
            match fs::read_link(&host) {
                Ok(target) => symlink(target, root.join(d))?,
                Err(_) if host.is_dir() => {
                    fs::create_dir_all(root.join(d))?;
                    mounts.push(format!("mount --bind /{d} \"$R/{d}\""));
                }
                Err(_) => {}
            }
        }
        mounts.push("mount -t proc proc \"$R/proc\"".into());
        Ok(StandIn { root, mounts })
    }

    /// Mounts `src` at `/vagrant`, as the docker provider binds the checkout there.
    pub fn bind_at_vagrant(&mut self, src: &Path) -> std::io::Result<()> {
        fs::create_dir_all(self.root.join(NODE_REPO.trim_start_matches('/')))?;
        self.mounts.push(format!(
            "mount --bind \"{}\" \"$R{NODE_REPO}\"",
            src.display()
        ));
        Ok(())
    }

    /// Writes the identity file a docker-provider node `node` of lab `lab` (`lab_id`) gets
    /// when its `/vagrant` binds `repo`: the repo's source as the host's mount table names it.
    pub fn write_docker_identity(
        &self,
        node: &str,
        (lab, lab_id): (&str, &str),
        repo: &Path,
    ) -> std::io::Result<()> {
        let mounts = mountinfo::parse(&fs::read_to_string("/proc/self/mountinfo")?);
        let source = mountinfo::filesystem_path(&mounts, repo).unwrap_or(repo.to_path_buf());
        self.write_identity(&Identity {
            node: node.into(),
            lab: lab.into(),
            lab_id: lab_id.into(),
            provider: stackpilot_core::Provider::Docker.as_str().into(),
            repo_source: Some(source.display().to_string()),
        })
    }

    /// Writes `id` as the node's identity file.
    pub fn write_identity(&self, id: &Identity) -> std::io::Result<()> {
        let path = self.root.join(IDENTITY_FILE.trim_start_matches('/'));
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::write(path, id.to_toml())
    }

    /// The host command that makes the mounts in a private mount namespace and runs the
    /// shell command line `inner` chrooted into the root.
    pub fn command(&self, inner: &str) -> Command {
        let script = format!(
            "set -e\nR=\"{}\"\n{}\nexec chroot \"$R\" /bin/sh -c {}",
            self.root.display(),
            self.mounts.join("\n"),
            shell_quote(inner)
        );
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            &script,
        ]);
        cmd
    }
}
