//! Contract: xtask only maps arguments and composes the libraries, and stays that small:
//! `xtask/src` under [`XTASK_LINES`] lines in all, no module over [`MODULE_LINES`]. Logic
//! that grows there belongs in a crate, where its tests can reach it.

use crate::{Violation, v};

/// The most lines `xtask/src` may hold, all modules together (exclusive).
pub const XTASK_LINES: usize = 2000;
/// The most lines one module of `xtask/src` may hold.
pub const MODULE_LINES: usize = 300;

/// The violations among `(file, text)` pairs of `xtask/src`.
pub fn xtask_composes_only(files: &[(String, String)]) -> Vec<Violation> {
    let mut out: Vec<Violation> = files
        .iter()
        .filter(|(_, text)| text.lines().count() > MODULE_LINES)
        .map(|(file, text)| {
            let n = text.lines().count();
            v(
                file.as_str(),
                format!(
                    "{n} lines, over {MODULE_LINES}: move its logic into the crate it belongs to"
                ),
            )
        })
        .collect();
    let total: usize = files.iter().map(|(_, t)| t.lines().count()).sum();
    if total >= XTASK_LINES {
        out.push(v(
            "xtask/src",
            format!(
                "{total} lines, {XTASK_LINES} or more: xtask composes; logic goes into the crates"
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, lines: usize) -> (String, String) {
        (name.to_string(), "x\n".repeat(lines))
    }

    #[test]
    fn a_module_over_the_limit_and_a_total_at_it_are_named() {
        assert!(xtask_composes_only(&[file("xtask/src/a.rs", MODULE_LINES)]).is_empty());
        let big = xtask_composes_only(&[file("xtask/src/a.rs", MODULE_LINES + 1)]);
        assert_eq!(big.len(), 1);
        assert_eq!(big[0].at, "xtask/src/a.rs");
        let many: Vec<_> = (0..XTASK_LINES / 250)
            .map(|i| file(&format!("xtask/src/m{i}.rs"), 250))
            .collect();
        let total = xtask_composes_only(&many);
        assert_eq!(total.len(), 1, "{total:?}");
        assert_eq!(total[0].at, "xtask/src");
    }

    #[test]
    fn this_repos_xtask_keeps_to_it() {
        let root = crate::repo_root();
        let files = crate::files(&root, "xtask/src", &|n| n.ends_with(".rs"));
        assert!(!files.is_empty());
        let found = xtask_composes_only(&crate::read_all(&root, &files));
        assert!(found.is_empty(), "{found:?}");
    }
}
