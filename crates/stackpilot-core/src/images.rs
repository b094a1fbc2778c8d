//! The image lock, `infra/images/images.lock`: which image RECIPES the lab uses.
//!
//! The tracked lock pins recipes (suite and sources of the root image, each derived image's
//! Dockerfile directory), by hash; every tag is a function of its recipe, so any checkout
//! whose recipes match reuses the same images, and a changed recipe gets new tags while the
//! old ones stay for whoever uses them. What a host built (id, layers, build time, package
//! versions) is recorded on that host only: in image labels and in a [`BuiltImage`] record
//! under the host state directory. A normal run never writes the lock; only
//! `cargo xtask images --update-lock` does, when a recipe changed on purpose.

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

/// The lab registry of swarm mode (Debian's `docker-registry`), run on the control node.
pub const REGISTRY: &str = "registry";

/// Images built FROM the root image, in build order.
pub const DERIVED: &[&str] = &[RUNTIME, POSTGRES, NODE, REGISTRY];

/// Images every docker-provider node needs in its own engine (it has no registry).
pub const NODE_LOADS: &[&str] = &[RUNTIME, POSTGRES];

/// Build argument through which each recipe receives the root image's tag.
pub const ROOT_IMAGE_ARG: &str = "ROOT_IMAGE";

/// Image label naming the lab image (`root`, `node`, …).
pub const IMAGE_LABEL: &str = "io.stackpilot.image";
/// Image label holding the full recipe digest the image was built from.
pub const RECIPE_LABEL: &str = "io.stackpilot.recipe";
/// Image label holding the build time (Unix seconds) on the host that built it.
pub const BUILT_LABEL: &str = "io.stackpilot.built";

/// The whole lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageLock {
    /// The root image's recipe (Debian rootfs from mmdebstrap, imported).
    pub root: RootImage,
    /// Derived images' recipes by name (`runtime`, `postgres`, `node`).
    #[serde(default)]
    pub images: BTreeMap<String, DerivedImage>,
}

/// The root image's recipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootImage {
    /// Tag, `stackpilot/root:<suite>-<recipe digest prefix>`.
    pub tag: String,
    /// Debian suite it is bootstrapped from.
    pub suite: String,
    /// The mirror it is bootstrapped from, or `host apt sources`.
    pub sources: String,
    /// sha256 over suite, sources and the mmdebstrap arguments.
    pub recipe: String,
}

/// A derived image's recipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DerivedImage {
    /// Tag, `stackpilot/<name>:<suite>-<recipe digest prefix>`.
    pub tag: String,
    /// sha256 over the root recipe and the recipe directory's files.
    pub recipe: String,
}

/// What one host built for a tag: never tracked, kept in the host state directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuiltImage {
    /// The tag.
    pub tag: String,
    /// The recipe digest it was built from.
    pub recipe: String,
    /// Image id in this host's engine.
    pub id: String,
    /// Layer digests (diff ids).
    #[serde(default)]
    pub layers: Vec<String>,
    /// Build time, Unix seconds.
    pub built_unix: u64,
    /// Debian packages the recipe installed, `name = version`, as the built image reports them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub packages: BTreeMap<String, String>,
}

impl BuiltImage {
    /// The record's file for `tag` under a host state directory.
    pub fn path(state_dir: &Path, tag: &str) -> PathBuf {
        let file: String = tag
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        state_dir.join("images").join(format!("{file}.toml"))
    }

    /// Reads this host's record of `tag`; `None` when the host has none (or it is unreadable:
    /// the engine's labels remain the authority, the record is evidence).
    pub fn read(state_dir: &Path, tag: &str) -> Option<BuiltImage> {
        let text = std::fs::read_to_string(BuiltImage::path(state_dir, tag)).ok()?;
        toml::from_str(&text).ok()
    }

    /// Writes the record (temporary file, then rename).
    pub fn write(&self, state_dir: &Path) -> Result<(), LockError> {
        let path = BuiltImage::path(state_dir, &self.tag);
        // Strings, numbers and maps of strings always serialise.
        let text = toml::to_string(self).unwrap_or_default();
        crate::files::write_atomically(&path, &text).map_err(|source| LockError::Write {
            path: path.clone(),
            source,
        })
    }
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
        "{path} has no entry for image '{name}'\n  expected: a recipe pinned for every lab image; pin them with `cargo xtask images --update-lock`"
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
# Pins the lab images' RECIPES (hashes of suite, sources and infra/images/<name>/); every
# tag derives from its recipe, so checkouts with the same recipes share the same images.
# What a host built (ids, layers, time) stays on that host. Written only by
# `cargo xtask images --update-lock` after a recipe changed; do not edit.
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
        crate::files::write_atomically(path, &self.to_text()).map_err(|source| LockError::Write {
            path: path.to_path_buf(),
            source,
        })
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

/// An image's tag from its recipe: `stackpilot/<name>:<suite>-<first 12 hex digits of the
/// recipe digest>`, so equal recipes share a tag and a changed recipe never reuses one.
pub fn recipe_tag(name: &str, suite: &str, recipe: &str) -> String {
    let digest = recipe.strip_prefix("sha256:").unwrap_or(recipe);
    let short = digest.get(..12).unwrap_or(digest);
    format!("{}:{suite}-{short}", repository(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
[root]
tag = "stackpilot/root:bookworm-8151aa00bb11"
suite = "bookworm"
sources = "host apt sources"
recipe = "sha256:8151aa00bb11cc"

[images.node]
tag = "stackpilot/node:bookworm-0123456789ab"
recipe = "sha256:0123456789abcdef"
"#;

    #[test]
    fn parses_and_round_trips() {
        let lock = ImageLock::parse(LOCK, Path::new("images.lock")).expect("valid lock");
        assert_eq!(lock.root.suite, "bookworm");
        assert_eq!(
            lock.derived(NODE).map(|d| d.recipe.as_str()),
            Some("sha256:0123456789abcdef")
        );
        let again = ImageLock::parse(&lock.to_text(), Path::new("x")).expect("own output");
        assert_eq!(again, lock);
        assert!(lock.to_text().starts_with("# Pins the lab images' RECIPES"));
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
    fn tags_derive_from_suite_and_recipe() {
        assert_eq!(
            recipe_tag("node", "bookworm", "sha256:0123456789abcdef"),
            "stackpilot/node:bookworm-0123456789ab"
        );
    }

    #[test]
    fn a_hosts_build_record_round_trips_outside_the_repo() {
        let dir = std::env::temp_dir().join(format!("sp-built-{}", std::process::id()));
        let rec = BuiltImage {
            tag: "stackpilot/node:bookworm-0123456789ab".into(),
            recipe: "sha256:0123456789abcdef".into(),
            id: "sha256:f568".into(),
            layers: vec!["sha256:l1".into()],
            built_unix: 1_795_600_000,
            packages: BTreeMap::from([("docker.io".into(), "20.10.24".into())]),
        };
        rec.write(&dir).expect("write");
        assert!(
            BuiltImage::path(&dir, &rec.tag)
                .ends_with("images/stackpilot_node_bookworm-0123456789ab.toml")
        );
        assert_eq!(BuiltImage::read(&dir, &rec.tag), Some(rec));
        assert_eq!(BuiltImage::read(&dir, "stackpilot/none:x"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
