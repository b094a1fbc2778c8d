//! Contracts `makefile-one-xtask-call` and `workflow-make-only`: the Makefile is thin
//! wrappers over `cargo xtask`, and CI calls only Makefile targets.

use crate::{Violation, v};

/// Contract: every Makefile target's recipe is exactly one `cargo xtask …` call.
pub fn makefile_targets(makefile: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut current: Option<(String, usize, Vec<String>)> = None;
    let finish = |cur: Option<(String, usize, Vec<String>)>, out: &mut Vec<Violation>| {
        if let Some((target, line, recipe)) = cur {
            let ok = recipe.len() == 1
                && recipe[0]
                    .trim_start_matches('@')
                    .trim_start()
                    .starts_with("cargo xtask ");
            if !ok {
                out.push(v(
                    format!("Makefile:{line}"),
                    format!("target `{target}` must be exactly one `cargo xtask …` call, found {recipe:?}"),
                ));
            }
        }
    };
    for (n, line) in makefile.lines().enumerate() {
        if let Some(cmd) = line.strip_prefix('\t') {
            if let Some((_, _, recipe)) = current.as_mut() {
                recipe.push(cmd.trim().to_string());
            }
            continue;
        }
        let is_rule = !line.starts_with('#')
            && !line.starts_with('.')
            && line.contains(':')
            && !line.contains(":=")
            && !line.contains("?=")
            && !line.starts_with(' ');
        if is_rule {
            finish(current.take(), &mut out);
            let target = line.split(':').next().unwrap_or("").trim().to_string();
            current = Some((target, n + 1, Vec::new()));
        } else if !line.trim().is_empty() && !line.starts_with('#') {
            finish(current.take(), &mut out);
        }
    }
    finish(current.take(), &mut out);
    out
}

/// The Makefile's documented targets: `(target, description)` for every rule whose line
/// carries a `## description` (what `make help` lists).
pub fn target_docs(makefile: &str) -> Vec<(&str, &str)> {
    makefile
        .lines()
        .filter_map(|line| {
            let (target, rest) = line.split_once(':')?;
            let (_, doc) = rest.split_once("## ")?;
            (!target.starts_with('.')).then_some((target, doc))
        })
        .collect()
}

/// Contract: the workflow's `run:` steps call Makefile targets only.
pub fn workflow_calls_make_only(file: &str, text: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some(cmd) = line
            .trim()
            .strip_prefix("- run:")
            .or_else(|| line.trim().strip_prefix("run:"))
        else {
            continue;
        };
        let words: Vec<&str> = cmd.split_whitespace().collect();
        // `sudo` with environment-preserving options may precede make on hosted runners.
        let rest: Vec<&&str> = words
            .iter()
            .skip_while(|w| **w == "sudo" || w.starts_with('-'))
            .collect();
        let ok = rest.first().is_some_and(|w| **w == "make")
            && rest.len() >= 2
            && rest[2..].iter().all(|w| w.contains('='));
        if !ok {
            out.push(v(
                format!("{file}:{}", n + 1),
                format!(
                    "workflow step runs `{}`: call a Makefile target (`make <target>`) instead",
                    cmd.trim()
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_targets_are_listed_with_their_description() {
        let mk = ".PHONY: a b\na: ## start it\n\tcargo xtask a\nb:\n\tcargo xtask b\n";
        assert_eq!(target_docs(mk), vec![("a", "start it")]);
    }
    use crate::repo_root;

    #[test]
    fn makefile_targets_must_be_one_xtask_call() {
        let mk = "NODE ?= control\n.PHONY: a b\n\na: ## x\n\tcargo xtask a\n\nb:\n\tcargo xtask b\n\techo extra\n\nc:\n\tdocker ps\n";
        let v = makefile_targets(mk);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].at == "Makefile:7" && v[1].at == "Makefile:11", "{v:?}");
    }

    #[test]
    fn workflow_steps_must_be_make_targets() {
        let wf = "    steps:\n      - run: make test\n      - run: sudo -E make ci NODE=control\n      - run: cargo test\n";
        let v = workflow_calls_make_only("ci.yml", wf);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].at, "ci.yml:4");
    }

    #[test]
    fn repo_as_it_is_keeps_its_makefile_contract() {
        let mk = std::fs::read_to_string(repo_root().join("Makefile")).expect("Makefile");
        assert_eq!(makefile_targets(&mk), vec![]);
    }
}
