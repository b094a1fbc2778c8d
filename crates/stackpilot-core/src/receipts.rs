//! Receipts: what lifecycle and clean-room write on a node (outside `/vagrant`), and what
//! verify reads back to prove provenance.
//!
//! Files live under `<state.node_dir>/<env>/` as JSON.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the build receipt in an environment's state directory.
pub const BUILD_RECEIPT: &str = "build-receipt.json";
/// File name of the clean receipt in an environment's state directory.
pub const CLEAN_RECEIPT: &str = "clean-receipt.json";

/// Written by `lifecycle build` after `docker build --no-cache` succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildReceipt {
    /// Environment the image was built for (`dev`, …).
    pub env: String,
    /// Image id (`sha256:…`) as the node's engine reports it.
    pub image_id: String,
    /// Full image reference, `stackpilot/mock-exchange:<git sha>-<build id>`.
    pub tag: String,
    /// Unique build id; also the image's `stackpilot.build-id` label and the binary's.
    pub build_id: String,
    /// When the build finished (RFC 3339, UTC).
    pub built_at: String,
    /// Git commit the binary was compiled from.
    pub git_sha: String,
    /// Whether the work tree had uncommitted changes.
    pub dirty: bool,
}

/// Written by `clean-room` after it removed the stack's containers, images and build cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanReceipt {
    /// Environment that was cleaned.
    pub env: String,
    /// When the clean finished (RFC 3339, UTC).
    pub cleaned_at: String,
    /// Container ids removed.
    pub removed_containers: Vec<String>,
    /// Image ids removed.
    pub removed_images: Vec<String>,
    /// Bytes the build-cache prune reclaimed.
    pub build_cache_reclaimed_bytes: u64,
}

/// Why a receipt could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// No receipt at that path.
    #[error(
        "no receipt at {path} (`make demo` writes the build receipt, `make clean` the clean receipt)"
    )]
    Missing {
        /// The receipt's path.
        path: PathBuf,
    },
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The receipt's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The receipt is not valid JSON of the expected shape.
    #[error("{path} is malformed: {source}")]
    Malformed {
        /// The receipt's path.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// The state directory of an environment on a node.
pub fn env_dir(node_dir: &Path, env: &str) -> PathBuf {
    node_dir.join(env)
}

/// Reads a receipt (build or clean) from `path`.
pub fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ReceiptError> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ReceiptError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            ReceiptError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    serde_json::from_str(&text).map_err(|source| ReceiptError::Malformed {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a receipt atomically (temp file + rename), creating the directory.
pub fn write<T: Serialize>(path: &Path, receipt: &T) -> Result<(), ReceiptError> {
    let text = serde_json::to_string_pretty(receipt).map_err(|source| ReceiptError::Malformed {
        path: path.to_path_buf(),
        source,
    })?;
    crate::files::write_atomically(path, &(text + "\n")).map_err(|source| ReceiptError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_receipt_round_trips_through_a_file() {
        let dir = std::env::temp_dir().join(format!("sp-receipt-{}", std::process::id()));
        let path = env_dir(&dir, "dev").join(BUILD_RECEIPT);
        let r = BuildReceipt {
            env: "dev".into(),
            image_id: "sha256:abc".into(),
            tag: "stackpilot/mock-exchange:0123456-b1".into(),
            build_id: "b1".into(),
            built_at: "2026-11-25T18:00:00Z".into(),
            git_sha: "0123456".into(),
            dirty: false,
        };
        write(&path, &r).expect("write");
        assert_eq!(read::<BuildReceipt>(&path).expect("read"), r);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_receipt_says_which_step_writes_it() {
        let err = read::<CleanReceipt>(Path::new("/nonexistent/clean-receipt.json"))
            .expect_err("missing");
        assert!(err.to_string().contains("make clean"), "{err}");
    }
}
