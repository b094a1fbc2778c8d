//! Writing the small state files the tools keep (receipts, records, the image lock, deploy
//! state) so that a crash never leaves one half-written.

use std::path::Path;

/// Writes `text` to `path` through a temporary file beside it and a rename, creating the
/// directory first.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_through_a_renamed_temporary_file_in_a_new_directory() {
        let dir = std::env::temp_dir().join(format!("sp-files-{}", std::process::id()));
        let path = dir.join("labs/one.toml");
        write_atomically(&path, "a = 1\n").expect("write");
        write_atomically(&path, "a = 2\n").expect("rewrite");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "a = 2\n");
        let left: Vec<_> = std::fs::read_dir(dir.join("labs"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(left, ["one.toml"], "no temporary file is left");
    }
}
