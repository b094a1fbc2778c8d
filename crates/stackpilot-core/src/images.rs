//! The image lock, `infra/images/images.lock`: which locally built images the lab uses.
//!
//! `cargo xtask images` writes it; everything that needs an image tag (the Vagrantfile's
//! node image, the app build's runtime base, compose's Postgres) reads it from here. A
//! present image whose layer or id differs from the lock is an error, never a silent rebuild.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The lock file, relative to the repo root.
pub const LOCK_FILE: &str = "infra/images/images.lock";

/// Where the derived images' recipes live (`<dir>/<name>/Dockerfile`), relative to the repo root.
pub const RECIPES_DIR: &str = "infra/images";

/// Repository prefix of every image the lab builds (`stackpilot/<name>:<tag>`).
pub const REPOSITORY: &str = "stackpilot";

/// The node image of the docker provider.
pub const NODE: &str = "node";
/// The Postgres image.
pub const POSTGRES: &str = "postgres";
/// The app runtime base (`FROM scratch`, user `app` 10001).
pub const RUNTIME: &str = "runtime";

/// Images built FROM the root image, in build order.
pub const DERIVED: &[&str] = &[RUNTIME, POSTGRES, NODE];

/// Images every docker-provider node needs in its own engine (it has no registry).
pub const NODE_LOADS: &[&str] = &[RUNTIME, POSTGRES];

/// Build argument through which each recipe receives the root image's tag.
pub const ROOT_IMAGE_ARG: &str = "ROOT_IMAGE";

/// The whole lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageLock {
    /// The root image (Debian rootfs from mmdebstrap, imported).
    pub root: RootImage,
    /// Derived images by name (`runtime`, `postgres`, `node`).
    #[serde(default)]
    pub images: BTreeMap<String, DerivedImage>,
}

/// The root image's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootImage {
    /// Tag, `stackpilot/root:<suite>-<YYYYMMDD>`.
    pub tag: String,
    /// Debian suite it was bootstrapped from.
    pub suite: String,
    /// The mirror it was bootstrapped from, or `host apt sources`.
    pub sources: String,
    /// Digest of its single layer (the imported tar's sha256), checked on every reuse.
    pub layer: String,
    /// Image id.
    pub id: String,
}

/// A derived image's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DerivedImage {
    /// Tag, `stackpilot/<name>:<suite>-<YYYYMMDD>-<recipe digest prefix>`.
    pub tag: String,
    /// Image id, checked on every reuse.
    pub id: String,
    /// sha256 over the root layer and the recipe directory's files.
    pub recipe: String,
    /// Debian packages the recipe installed, `name = version`, as the built image reports them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub packages: BTreeMap<String, String>,
}

/// Why the lock could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The lock is not valid.
    #[error(
        "{path} is malformed: {message}\n  expected: the TOML `cargo xtask images` writes; restore it with `git checkout {LOCK_FILE}` or delete it and run `cargo xtask images`"
    )]
    Malformed {
        /// The lock file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The lock cannot be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The lock has no entry for an image someone needs.
    #[error(
        "{path} has no entry for image '{name}'\n  expected: every lab image built and recorded; run `cargo xtask images`"
    )]
    NoEntry {
        /// The lock file.
        path: PathBuf,
        /// The image's name.
        name: String,
    },
}

impl crate::exit::ExitStatus for LockError {
    fn exit(&self) -> crate::Exit {
        match self {
            LockError::Malformed { .. } => crate::Exit::Usage,
            _ => crate::Exit::Failed,
        }
    }
}

const HEADER: &str = "\
# Written by `cargo xtask images`; read by the lab and the app build. Do not edit.
# On every reuse a present image whose layer or id differs from this file is an error
# (remove the image to rebuild it); an absent image is built and this file rewritten.
";

impl ImageLock {
    /// The lock file under a repo root.
    pub fn path(repo_root: &Path) -> PathBuf {
        repo_root.join(LOCK_FILE)
    }

    /// Reads the lock; `Ok(None)` when it does not exist yet.
    pub fn read(path: &Path) -> Result<Option<ImageLock>, LockError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LockError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        ImageLock::parse(&text, path).map(Some)
    }

    /// Parses lock text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<ImageLock, LockError> {
        toml::from_str(text).map_err(|e| LockError::Malformed {
            path: path.to_path_buf(),
            message: e.to_string().replace('\n', " "),
        })
    }

    /// The lock as the text written to disk (a header comment, then TOML).
    pub fn to_text(&self) -> String {
        // Maps and structs of strings always serialise.
        format!("{HEADER}{}", toml::to_string(self).unwrap_or_default())
    }

    /// Writes the lock atomically (temporary file, then rename).
    pub fn write(&self, path: &Path) -> Result<(), LockError> {
        let err = |source| LockError::Write {
            path: path.to_path_buf(),
            source,
        };
        let tmp = path.with_extension("lock.tmp");
        std::fs::write(&tmp, self.to_text()).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }

    /// A derived image's entry by name.
    pub fn derived(&self, name: &str) -> Option<&DerivedImage> {
        self.images.get(name)
    }

    /// The tag of a derived image, or an error naming the lock and the fix.
    pub fn tag(&self, name: &str, path: &Path) -> Result<&str, LockError> {
        self.derived(name)
            .map(|d| d.tag.as_str())
            .ok_or_else(|| LockError::NoEntry {
                path: path.to_path_buf(),
                name: name.to_string(),
            })
    }
}

/// The image name `stackpilot/<name>`.
pub fn repository(name: &str) -> String {
    format!("{REPOSITORY}/{name}")
}

/// The root image's tag for a suite and a build date (`YYYYMMDD`).
pub fn root_tag(suite: &str, date: &str) -> String {
    format!("{}:{suite}-{date}", repository("root"))
}

/// A derived image's tag: the root tag's version plus the first 12 hex digits of its recipe
/// digest, so a changed recipe or root gets a new tag and never reuses a stale image.
pub fn derived_tag(name: &str, root_tag: &str, recipe: &str) -> String {
    let version = root_tag.rsplit_once(':').map_or(root_tag, |(_, v)| v);
    let digest = recipe.strip_prefix("sha256:").unwrap_or(recipe);
    let short = digest.get(..12).unwrap_or(digest);
    format!("{}:{version}-{short}", repository(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
[root]
tag = "stackpilot/root:bookworm-20261125"
suite = "bookworm"
sources = "host apt sources"
layer = "sha256:8151"
id = "sha256:9f82"

[images.node]
tag = "stackpilot/node:bookworm-20261125-0123456789ab"
id = "sha256:f568"
recipe = "sha256:0123456789abcdef"

[images.node.packages]
"docker.io" = "20.10.24+dfsg1-1+deb12u1+b6"
"#;

    #[test]
    fn parses_and_round_trips() {
        let lock = ImageLock::parse(LOCK, Path::new("images.lock")).expect("valid lock");
        assert_eq!(lock.root.suite, "bookworm");
        assert_eq!(
            lock.derived(NODE).map(|d| d.packages.len()),
            Some(1),
            "packages table parsed"
        );
        let again = ImageLock::parse(&lock.to_text(), Path::new("x")).expect("own output");
        assert_eq!(again, lock);
        assert!(
            lock.to_text()
                .starts_with("# Written by `cargo xtask images`")
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let text = LOCK.replace("suite = ", "sweet = 1\nsuite = ");
        let err = ImageLock::parse(&text, Path::new("images.lock")).expect_err("unknown field");
        assert!(err.to_string().contains("sweet"), "{err}");
    }

    #[test]
    fn missing_entry_names_the_fix() {
        let lock = ImageLock::parse(LOCK, Path::new("images.lock")).expect("valid lock");
        let err = lock
            .tag(POSTGRES, Path::new("images.lock"))
            .expect_err("no postgres entry");
        assert!(err.to_string().contains("cargo xtask images"), "{err}");
    }

    #[test]
    fn derived_tags_carry_root_version_and_recipe() {
        assert_eq!(
            derived_tag(
                "node",
                "stackpilot/root:bookworm-20261125",
                "sha256:0123456789abcdef"
            ),
            "stackpilot/node:bookworm-20261125-0123456789ab"
        );
        assert_eq!(
            root_tag("trixie", "20260101"),
            "stackpilot/root:trixie-20260101"
        );
    }
}
