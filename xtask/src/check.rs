//! `cargo xtask check` (`make check`): the repo-level contracts, fast and without Docker.
//!
//! Each contract reads files of the repo and reports every violation it finds, naming the
//! file and line; format, lint and the unit tests run after them.

use std::path::{Path, PathBuf};
use std::process::Command;

use stackpilot_core::output::Table;

use crate::run::{Error, repo_root, step};

/// One violation of a contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// File, relative to the repo root, with the line when known (`Makefile:12`).
    pub at: String,
    /// What is wrong and what is expected.
    pub what: String,
}

fn v(at: impl Into<String>, what: impl Into<String>) -> Violation {
    Violation {
        at: at.into(),
        what: what.into(),
    }
}

/// Files under `dir` (recursively) whose name satisfies `want`, skipping build output.
fn files(root: &Path, dir: &str, want: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.join(dir)];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                if !matches!(name.as_str(), "target" | ".git" | ".vagrant") {
                    stack.push(p);
                }
            } else if want(&name) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

/// An image reference is pinned when it is a variable filled from a pinned source, or
/// carries an explicit tag other than `latest`.
fn image_ref_problem(reference: &str) -> Option<String> {
    let r = reference.trim().trim_matches('"').trim_matches('\'');
    if r.starts_with('$') || r == "scratch" {
        return None;
    }
    let last = r.rsplit('/').next().unwrap_or(r);
    match last.split_once(':') {
        None if !r.contains('@') => Some(format!("untagged image `{r}`: pin a tag")),
        Some((_, "latest")) => Some(format!("floating tag `{r}`: pin a version, never latest")),
        _ => None,
    }
}

/// Contract: no floating image references in compose files, Dockerfiles, Vagrantfile and
/// provisioning; box versions and provisioned packages pinned.
pub fn floating_images(texts: &[(String, String)]) -> Vec<Violation> {
    let mut out = Vec::new();
    for (file, text) in texts {
        let is_dockerfile = file.ends_with("Dockerfile");
        let mut stages: Vec<String> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let at = format!("{file}:{}", n + 1);
            let t = line.trim();
            if t.starts_with('#') {
                continue;
            }
            if t.contains(":latest") {
                out.push(v(&at, "floating `:latest` reference: pin a version"));
            }
            if (file.ends_with(".yml") || file.ends_with(".yaml"))
                && let Some(img) = t.strip_prefix("image:")
            {
                out.extend(image_ref_problem(img).map(|w| v(&at, w)));
            }
            if is_dockerfile && t.to_ascii_uppercase().starts_with("FROM ") {
                let words: Vec<&str> = t.split_whitespace().collect();
                let image = words
                    .iter()
                    .skip(1)
                    .find(|w| !w.starts_with("--"))
                    .copied()
                    .unwrap_or("");
                if !stages.iter().any(|s| s == image) {
                    out.extend(image_ref_problem(image).map(|w| v(&at, w)));
                }
                if let Some(pos) = words.iter().position(|w| w.eq_ignore_ascii_case("AS"))
                    && let Some(name) = words.get(pos + 1)
                {
                    stages.push((*name).to_string());
                }
            }
            if file.ends_with(".sh") && t.contains("apt-get install") {
                let after = t.split("apt-get install").nth(1).unwrap_or("");
                for word in after.split_whitespace() {
                    if word.starts_with('-')
                        || word.starts_with('"')
                        || word == "\\"
                        || word.contains('$')
                    {
                        continue;
                    }
                    if matches!(word, "&&" | "||" | ";" | "|") {
                        break;
                    }
                    if !word.contains('=') {
                        out.push(v(
                            &at,
                            format!("unpinned package `{word}`: install `{word}=<version>`"),
                        ));
                    }
                }
            }
        }
        if file.ends_with("Vagrantfile")
            && text.contains(".vm.box =")
            && !text.contains(".vm.box_version")
        {
            out.push(v(
                file.as_str(),
                "box without `vm.box_version`: pin the box version",
            ));
        }
    }
    out
}

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

/// The binaries with node-side subcommands.
const NODE_SIDE_MAINS: &[&str] = &[
    "crates/lifecycle/src/main.rs",
    "crates/clean-room/src/main.rs",
    "crates/verify/src/main.rs",
    "crates/drills/src/main.rs",
    "crates/deploy/src/main.rs",
];

/// Calls of `ctx_guard::node_main` (or `node_main` imported from ctx_guard) in a syntax
/// tree: calls, not mentions in comments or strings.
#[derive(Default)]
struct NodeMainCalls(usize);

impl<'ast> syn::visit::Visit<'ast> for NodeMainCalls {
    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        if let syn::Expr::Path(p) = &*call.func {
            let segs: Vec<String> = p
                .path
                .segments
                .iter()
                .map(|s| s.ident.to_string())
                .collect();
            let named = matches!(
                segs.iter().map(String::as_str).collect::<Vec<_>>()[..],
                ["ctx_guard", "node_main"] | ["node_main"]
            );
            if named {
                self.0 += 1;
            }
        }
        syn::visit::visit_expr_call(self, call);
    }
}

/// Contract "ctx-guard first", on the syntax tree of a node-side binary: its `fn main`
/// hands the node-side work to `ctx_guard::node_main`, the only code that can make the
/// `Allowed` token the node-side library steps require (its field is private, the guard
/// behind it is private), so a step cannot run before the guard decided.
pub fn node_main_first(file: &str, text: &str) -> Vec<Violation> {
    let tree = match syn::parse_file(text) {
        Ok(t) => t,
        Err(e) => return vec![v(file, format!("not parseable Rust: {e}"))],
    };
    let main = tree.items.iter().find_map(|item| match item {
        syn::Item::Fn(f) if f.sig.ident == "main" => Some(f),
        _ => None,
    });
    let Some(main) = main else {
        return vec![v(file, "node-side binary without `fn main`")];
    };
    let mut calls = NodeMainCalls::default();
    syn::visit::Visit::visit_item_fn(&mut calls, main);
    if calls.0 == 0 {
        return vec![v(
            file,
            "node-side binary: `fn main` does not hand its node-side work to `ctx_guard::node_main(…)`",
        )];
    }
    Vec::new()
}

/// Contract: node-side entry points go through ctx-guard first, and verify reaches Docker
/// only through the read-only facade.
pub fn guard_and_readonly(texts: &[(String, String)]) -> Vec<Violation> {
    let mut out = Vec::new();
    for (file, text) in texts {
        if NODE_SIDE_MAINS.contains(&file.as_str()) {
            out.extend(node_main_first(file, text));
        }
        if file.starts_with("crates/verify/") {
            for (n, line) in text.lines().enumerate() {
                for banned in [
                    "DockerAdmin",
                    "admin::",
                    "bollard::",
                    "Command::new(\"docker\")",
                ] {
                    if line.contains(banned) && !line.trim_start().starts_with("//") {
                        out.push(v(
                            format!("{file}:{}", n + 1),
                            format!("verify uses `{banned}`: it may reach Docker only through the read-only facade"),
                        ));
                    }
                }
            }
        }
    }
    out
}

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
                Some(("check", name)) => grep("xtask/src", &format!("\"{name}\"")),
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

/// Contract: the Vagrantfile's inventory (vagrant/inventory.json) is what stackpilot.toml
/// generates.
fn inventory(root: &Path) -> Vec<Violation> {
    let file = ::lab::inventory::INVENTORY_FILE;
    match stackpilot_core::Config::load(&root.join(stackpilot_core::config::CONFIG_FILE)) {
        Err(e) => vec![v("stackpilot.toml", e.to_string())],
        Ok(cfg) => {
            let have = std::fs::read_to_string(root.join(file)).unwrap_or_default();
            if have == ::lab::inventory::inventory_text(&cfg) {
                vec![]
            } else {
                vec![v(
                    file,
                    "drifted from stackpilot.toml: regenerate it with `cargo xtask lab inventory`",
                )]
            }
        }
    }
}

fn read_all(root: &Path, paths: &[PathBuf]) -> Vec<(String, String)> {
    paths
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok().map(|t| (rel(root, p), t)))
        .collect()
}

/// `make check`: the contracts, then format, lint and unit tests.
pub fn run() -> Result<(), Error> {
    contracts()?;
    format_and_lint()?;
    step(
        "unit tests",
        Command::new("cargo").args(["test", "--workspace", "--locked", "--lib", "--bins"]),
    )
}

/// `cargo fmt --check` and clippy with warnings denied, shared by `make check` and `make test`.
pub fn format_and_lint() -> Result<(), Error> {
    step(
        "format",
        Command::new("cargo").args(["fmt", "--all", "--check"]),
    )?;
    step(
        "lint",
        Command::new("cargo").args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )
}

/// Runs every repo contract and prints the table; an error when any is violated.
pub fn contracts() -> Result<(), Error> {
    let root = repo_root();
    let mut results: Vec<(&str, Vec<Violation>)> = Vec::new();

    let mut image_files = files(&root, "infra", &|n| {
        n == "Dockerfile" || n.ends_with(".yml") || n.ends_with(".sh")
    });
    image_files.extend(files(&root, "apps", &|n| n == "Dockerfile"));
    image_files.extend(files(&root, "vagrant", &|n| {
        n == "Vagrantfile" || n.ends_with(".sh")
    }));
    results.push((
        "no-floating-images",
        floating_images(&read_all(&root, &image_files)),
    ));

    let makefile = std::fs::read_to_string(root.join("Makefile")).unwrap_or_default();
    results.push(("makefile-one-xtask-call", makefile_targets(&makefile)));

    let mut wf = Vec::new();
    for p in files(&root, ".github/workflows", &|n| n.ends_with(".yml")) {
        if let Ok(t) = std::fs::read_to_string(&p) {
            wf.extend(workflow_calls_make_only(&rel(&root, &p), &t));
        }
    }
    results.push(("workflow-make-only", wf));

    let rust = files(&root, "crates", &|n| n.ends_with(".rs"));
    results.push((
        "ctx-guard-first-and-verify-read-only",
        guard_and_readonly(&read_all(&root, &rust)),
    ));

    results.push(("inventory-consistent", inventory(&root)));

    results.push(("no-secrets", crate::secrets::scan(&root)?));

    let map = std::fs::read_to_string(root.join(GUARANTEES_MAP)).unwrap_or_default();
    let (bad, unproven) = guarantees(&root, &map);
    if map.is_empty() {
        results.push((
            "guarantees-map",
            vec![v(GUARANTEES_MAP, "missing or empty")],
        ));
    } else {
        results.push(("guarantees-map", bad));
    }
    if !unproven.is_empty() {
        eprintln!(
            "guarantees without an executable proof yet ({}): {}",
            unproven.len(),
            unproven.join(", ")
        );
    }

    let mut table = Table::new(&["contract", "verdict", "violations"]);
    let mut failed = 0;
    for (name, violations) in &results {
        table.row([
            name.to_string(),
            if violations.is_empty() {
                "pass".into()
            } else {
                "FAIL".to_string()
            },
            violations.len().to_string(),
        ]);
        for x in violations {
            eprintln!("{name}: {}: {}", x.at, x.what);
        }
        failed += usize::from(!violations.is_empty());
    }
    print!("{}", table.render());
    if failed > 0 {
        return Err(Error::StepFailed {
            step: "repo contracts".into(),
            cmd: "cargo xtask check".into(),
            status: format!("{failed} contract(s) violated (listed above)"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(file: &str, text: &str) -> Vec<Violation> {
        floating_images(&[(file.to_string(), text.to_string())])
    }

    #[test]
    fn latest_and_untagged_images_are_floating() {
        assert_eq!(
            // Split so repo-wide greps for floating tags do not flag this fixture.
            one(
                "infra/docker-compose.yml",
                concat!("  image: postgres:", "latest\n")
            )
            .len(),
            2
        );
        assert_eq!(
            one("infra/docker-compose.yml", "  image: postgres\n").len(),
            1
        );
        assert!(
            one(
                "infra/docker-compose.yml",
                "  image: \"${STACKPILOT_DB_IMAGE:?x}\"\n"
            )
            .is_empty()
        );
        assert!(
            one(
                "infra/docker-compose.yml",
                "  image: stackpilot/postgres:bookworm-1\n"
            )
            .is_empty()
        );
    }

    #[test]
    fn dockerfile_from_must_be_pinned_or_a_stage_or_an_arg() {
        let ok = "ARG ROOT_IMAGE\nFROM ${ROOT_IMAGE} AS build\nFROM scratch\nCOPY --from=build / /\nFROM build\n";
        assert!(one("infra/images/runtime/Dockerfile", ok).is_empty());
        assert_eq!(one("apps/x/Dockerfile", "FROM debian\n").len(), 1);
    }

    #[test]
    fn provisioning_packages_must_carry_versions() {
        let v = one(
            "vagrant/provision/docker.sh",
            "apt-get install -y docker-ce=5:24.0.7-1 containerd.io\n",
        );
        assert_eq!(v.len(), 1);
        assert!(v[0].what.contains("containerd.io"));
    }

    #[test]
    fn vagrant_box_needs_a_version() {
        assert_eq!(
            one(
                "vagrant/Vagrantfile",
                "config.vm.box = \"ubuntu/jammy64\"\n"
            )
            .len(),
            1
        );
        assert!(
            one(
                "vagrant/Vagrantfile",
                "config.vm.box = \"ubuntu/jammy64\"\nconfig.vm.box_version = \"20240301.0.0\"\n"
            )
            .is_empty()
        );
    }

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
    fn node_main_mentioned_only_in_a_comment_or_string_is_a_violation() {
        let text = "// ctx_guard::node_main(\"x\")\nfn main() { let _ = \"ctx_guard::node_main(\"; run(); }";
        assert_eq!(node_main_first("crates/deploy/src/main.rs", text).len(), 1);
        let text = "fn main() -> ExitCode { match c { A => list(), B => ctx_guard::node_main(\"d\", \"make d\", |a| run(a)) } }";
        assert_eq!(node_main_first("crates/deploy/src/main.rs", text), vec![]);
    }

    #[test]
    fn node_side_mains_as_they_are_go_through_node_main() {
        let root = repo_root();
        for file in NODE_SIDE_MAINS {
            let text = std::fs::read_to_string(root.join(file)).expect("main.rs");
            assert_eq!(node_main_first(file, &text), vec![], "{file}");
        }
    }

    #[test]
    fn node_side_entry_without_guard_and_verify_with_admin_are_violations() {
        let v = guard_and_readonly(&[
            ("crates/lifecycle/src/main.rs".into(), "fn main() {}".into()),
            (
                "crates/verify/src/lib.rs".into(),
                "use stackpilot_core::admin::DockerAdmin;".into(),
            ),
        ]);
        assert_eq!(v.len(), 3, "{v:?}");
    }

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

    #[test]
    fn repo_as_it_is_keeps_its_makefile_contract() {
        let mk = std::fs::read_to_string(repo_root().join("Makefile")).expect("Makefile");
        assert_eq!(makefile_targets(&mk), vec![]);
    }
}
