//! Contract `closed-stdout-is-not-a-crash`: tool and xtask code print through
//! `stackpilot_core::out!`/`outln!`, never `print!`/`println!`, which panic when the reader
//! went away (`verify --json | true`, `drills list | head -0`).

use crate::{Violation, v};

/// Where `print!`/`println!` sits in a line, outside `eprint!`/`eprintln!` and other
/// macros ending in the same letters.
fn std_print_at(line: &str) -> Option<usize> {
    // Spelt in parts so that this line is not a finding itself.
    ["println", "print"].iter().find_map(|name| {
        let m = format!("{name}!(");
        line.match_indices(&m).map(|(i, _)| i).find(|&i| {
            !line[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
        })
    })
}

/// Every `print!`/`println!` in the sources of `crates/*/src` and `xtask/src`; test
/// modules at the end of a file and test directories are not looked at.
pub fn prints_survive_closed_stdout(texts: &[(String, String)]) -> Vec<Violation> {
    let mut out = Vec::new();
    for (file, text) in texts {
        let in_src = file.starts_with("xtask/src/")
            || (file.starts_with("crates/") && file.contains("/src/"));
        if !in_src || file.contains("/tests/") || file.ends_with("/tests.rs") {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            if line.trim_start() == "#[cfg(test)]" {
                break;
            }
            if line.trim_start().starts_with("//") {
                continue;
            }
            if std_print_at(line).is_some() {
                out.push(v(
                    format!("{file}:{}", n + 1),
                    "prints with print!/println!, which panic on a closed stdout: use stackpilot_core::out!/outln!",
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{files, read_all, repo_root};

    #[test]
    fn println_in_tool_code_is_a_violation_but_eprintln_and_outln_are_not() {
        let text = "fn a() {\n    println!(\"x\");\n    eprintln!(\"y\");\n    stackpilot_core::outln!(\"z\");\n    // println!(\"c\")\n}\n#[cfg(test)]\nmod tests { fn t() { println!(\"t\"); } }\n";
        let v = prints_survive_closed_stdout(&[("crates/x/src/main.rs".into(), text.into())]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].at, "crates/x/src/main.rs:2");
        let v = prints_survive_closed_stdout(&[("crates/x/tests/cli.rs".into(), text.into())]);
        assert_eq!(v, vec![]);
    }

    #[test]
    fn the_repo_prints_only_through_outln() {
        let root = repo_root();
        let mut paths = files(&root, "crates", &|n| n.ends_with(".rs"));
        paths.extend(files(&root, "xtask/src", &|n| n.ends_with(".rs")));
        assert_eq!(
            prints_survive_closed_stdout(&read_all(&root, &paths)),
            vec![]
        );
    }
}
