//! `lifecycle load-image`: loads an image archive (`docker save` output) into this node's
//! engine, so the host never runs `docker load` on a node itself.

use std::path::Path;
use std::process::{Command, Stdio};

use serde::Serialize;
use stackpilot_core::admin::DockerAdmin;
use stackpilot_core::output::{Render, Table};

use crate::LifecycleError;

/// Where the archive comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archive<'a> {
    /// A tar file on the node (e.g. under /vagrant).
    File(&'a Path),
    /// This process's stdin (`docker save IMG | <transport> lifecycle load-image …`).
    Stdin,
}

/// What `load-image` loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadReport {
    /// The image reference the archive carried.
    pub tag: String,
    /// The engine's id for it after the load.
    pub image_id: String,
}

impl Render for LoadReport {
    fn human(&self) -> String {
        let mut t = Table::new(&["loaded", "image id"]);
        t.row([self.tag.clone(), self.image_id.clone()]);
        t.render()
    }
}

/// The `docker load` arguments for an archive.
pub fn load_args(archive: Archive<'_>) -> Vec<String> {
    let mut args = vec!["load".to_string()];
    if let Archive::File(path) = archive {
        args.push("--input".into());
        args.push(path.display().to_string());
    }
    args
}

/// Whether the loaded image is the one asked for: the engine must name `tag`, and with the
/// same id as `expect_id` when one is given.
pub fn check_loaded(
    tag: &str,
    found: Option<&str>,
    expect_id: Option<&str>,
) -> Result<String, LifecycleError> {
    let Some(found) = found else {
        return Err(LifecycleError::Unrecoverable {
            reason: format!(
                "docker load succeeded but the engine has no image {tag}: the archive carries another image"
            ),
        });
    };
    match expect_id {
        Some(want) if want != found => Err(LifecycleError::Mismatch {
            reference: tag.to_string(),
            pinned_by: "host",
            expected: want.to_string(),
            found: found.to_string(),
            fix: "load the archive the host saved from this image id again",
        }),
        _ => Ok(found.to_string()),
    }
}

/// Loads the archive into the node's engine (`docker load`, its output on stderr so a
/// `--json` report stays alone on stdout), then checks that `tag` names the loaded image,
/// with id `expect_id` when given.
pub fn load_image(
    _allowed: &ctx_guard::Allowed,
    archive: Archive<'_>,
    tag: &str,
    expect_id: Option<&str>,
) -> Result<LoadReport, LifecycleError> {
    crate::pinned_reference(tag, "--tag")?;
    if let Archive::File(path) = archive
        && !path.is_file()
    {
        return Err(LifecycleError::Usage(format!(
            "--file: expected an image archive (`docker save` output), found no file at {}",
            path.display()
        )));
    }
    let docker = which::which("docker").map_err(|_| LifecycleError::Prerequisite {
        what: "the docker CLI is not on PATH".into(),
        fix: "install docker.io (Debian) or docker-ce-cli".into(),
    })?;
    let admin = DockerAdmin::connect()?;
    let args = load_args(archive);
    let os_args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    let rendered = stackpilot_core::compose::render(&docker, &os_args);
    eprintln!("lifecycle: {rendered}");
    let out = Command::new(&docker)
        .args(&args)
        .stdin(match archive {
            Archive::Stdin => Stdio::inherit(),
            Archive::File(_) => Stdio::null(),
        })
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| LifecycleError::Io {
            path: docker.clone(),
            source,
        })?;
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        return Err(LifecycleError::Load {
            command: rendered,
            status: out.status,
        });
    }
    let found = admin.image_id(tag)?;
    let image_id = check_loaded(tag, found.as_deref(), expect_id)?;
    Ok(LoadReport {
        tag: tag.to_string(),
        image_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_archive_is_loaded_with_input_and_stdin_without() {
        assert_eq!(
            load_args(Archive::File(Path::new("/vagrant/target/app.tar"))),
            ["load", "--input", "/vagrant/target/app.tar"]
        );
        assert_eq!(load_args(Archive::Stdin), ["load"]);
    }

    #[test]
    fn a_load_that_left_no_image_under_the_tag_fails() {
        let e = check_loaded("stackpilot/app:abc-1", None, None).expect_err("no image");
        assert!(e.to_string().contains("has no image stackpilot/app:abc-1"));
    }

    #[test]
    fn a_loaded_image_with_another_id_than_expected_is_a_mismatch() {
        let e = check_loaded("stackpilot/app:abc-1", Some("sha256:b"), Some("sha256:a"))
            .expect_err("mismatch");
        assert!(matches!(e, LifecycleError::Mismatch { .. }));
        assert_eq!(
            check_loaded("stackpilot/app:abc-1", Some("sha256:a"), Some("sha256:a")).ok(),
            Some("sha256:a".to_string())
        );
    }
}
