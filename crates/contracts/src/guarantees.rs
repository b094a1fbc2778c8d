//! Contract `guarantees-map`: every proof docs/guarantees-map.txt names exists.

use std::path::Path;

use crate::{Violation, files, v};

/// The guarantees map: `id | statement | proofs | last status` per line, proofs separated
/// by commas: `test:<file>::<fn>`, `verify:<check id>`, `drill:<name>`, `check:<contract>`,
/// or `-` for none yet.
pub const GUARANTEES_MAP: &str = "docs/guarantees-map.txt";

/// Contract: every proof the guarantees map names exists. Returns the violations and the
/// ids of guarantees that have no proof yet (listed, not failed).
pub fn guarantees(root: &Path, map: &str) -> (Vec<Violation>, Vec<String>) {
    let mut bad = Vec::new();
    let mut unproven = Vec::new();
    let grep = |dir: &str, needle: &str| {
        files(root, dir, &|n| n.ends_with(".rs"))
            .iter()
            .any(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains(needle)))
    };
    for (n, line) in map.lines().enumerate() {
        let at = format!("{GUARANTEES_MAP}:{}", n + 1);
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = t.split('|').map(str::trim).collect();
        if cols.len() != 4 || cols[0].is_empty() || cols[1].is_empty() {
            bad.push(v(&at, "expected `id | statement | proofs | last status`"));
            continue;
        }
        if cols[2] == "-" {
            unproven.push(cols[0].to_string());
            continue;
        }
        for proof in cols[2].split(',').map(str::trim) {
            let exists = match proof.split_once(':') {
                Some(("test", spec)) => match spec.rsplit_once("::") {
                    Some((file, func)) => std::fs::read_to_string(root.join(file))
                        .is_ok_and(|t| t.contains(&format!("fn {func}("))),
                    None => false,
                },
                Some(("verify", id)) => grep("crates/verify/src", &format!("\"{id}\"")),
                Some(("drill", name)) => grep("crates/drills/src", &format!("\"{name}\"")),
                Some(("check", name)) => grep("crates/contracts/src", &format!("\"{name}\"")),
                _ => false,
            };
            if !exists {
                bad.push(v(
                    &at,
                    format!("{}: proof `{proof}` does not exist", cols[0]),
                ));
            }
        }
    }
    (bad, unproven)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo_root;

    #[test]
    fn guarantees_map_proofs_must_exist() {
        let root = repo_root();
        let map = "# comment\n\
G1 | ctx-guard refuses /home/vagrant | test:crates/ctx-guard/tests/namespace.rs::home_directory_is_refused | pass\n\
G2 | something | test:crates/ctx-guard/tests/namespace.rs::no_such_test | fail\n\
G3 | not yet | - | -\n\
G4 | bad line\n";
        let (bad, unproven) = guarantees(&root, map);
        assert_eq!(unproven, vec!["G3"]);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[0].what.contains("no_such_test"));
    }
}
