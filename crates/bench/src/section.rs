//! One section of a markdown file (docs/benchmarks.md), replaced in place.

use std::path::Path;

use crate::{Error, failed};

/// Replaces (or appends) the section headed `heading` of a markdown file, leaving the
/// rest intact. A missing file starts as `# Benchmarks`.
pub fn write_named_section(path: &Path, heading: &str, section: &str) -> Result<(), Error> {
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let new = replace_section(&old, heading, section);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| failed("docs", "create docs/", e))?;
    }
    std::fs::write(path, new).map_err(|e| failed("docs", &path.display().to_string(), e))
}

/// `old` with the section headed `heading` (up to the next `## `) replaced by `section`,
/// or `section` appended when there is no such heading.
fn replace_section(old: &str, heading: &str, section: &str) -> String {
    match old.find(heading) {
        Some(start) => {
            let rest = &old[start + heading.len()..];
            let end = rest
                .find("\n## ")
                .map_or(old.len(), |i| start + heading.len() + i + 1);
            format!("{}{}{}", &old[..start], section, &old[end..])
        }
        None => format!(
            "{}\n{section}",
            old.trim_end_matches('\n').to_string() + "\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_section_is_replaced_and_others_are_kept() {
        let dir = std::env::temp_dir().join(format!("bench-doc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("benchmarks.md");
        let old =
            "# Benchmarks\n\n## other\nkeep\n\n## mock-exchange API\nold\n\n## tail\nkeep too\n";
        std::fs::write(&path, old).expect("write");
        write_named_section(
            &path,
            "## mock-exchange API",
            "## mock-exchange API\n\nnew\n\n",
        )
        .expect("section");
        let text = std::fs::read_to_string(&path).expect("read");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            text,
            "# Benchmarks\n\n## other\nkeep\n\n## mock-exchange API\n\nnew\n\n## tail\nkeep too\n"
        );
    }

    #[test]
    fn a_missing_section_is_appended() {
        let text = replace_section(
            "# Benchmarks\n\n## other\nkeep\n",
            "## new",
            "## new\n\nx\n",
        );
        assert_eq!(text, "# Benchmarks\n\n## other\nkeep\n\n## new\n\nx\n");
    }
}
