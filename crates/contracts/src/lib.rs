//! StackPilot's repo contracts (`make check`): rules about the tree itself, checked
//! without Docker, each reporting every violation with its file and line.
//!
//! Owns the contracts and their names (the names docs/guarantees-map.txt cites as
//! `check:<name>`): pinned images, a Makefile of one-`cargo xtask`-call targets, a
//! workflow of Makefile targets, ctx-guard first on every node-side binary, verify
//! read-only, xtask small enough to only compose, the inventory matching stackpilot.toml,
//! no secrets, and a guarantees map whose proofs exist. It only reads the tree (and runs the pinned secret scanner); it
//! never changes a file, and it does not run format, lint or tests: xtask composes those.

mod guarantees;
mod guard;
mod images;
mod make;
mod output;
mod secrets;
mod size;

use std::path::{Path, PathBuf};

use stackpilot_core::output::Table;

pub use guarantees::{GUARANTEES_MAP, guarantees};
pub use guard::{guard_and_readonly, node_main_first};
pub use images::floating_images;
pub use make::{makefile_targets, target_docs, workflow_calls_make_only};
pub use output::prints_survive_closed_stdout;
pub use secrets::LAB_ONLY;
pub use size::xtask_composes_only;

/// Why the contracts could not be checked (a violation is not an error: see [`Checked`]):
/// the secret scanner could not be installed or run.
pub use stackpilot_core::step::HostError as Error;

/// One violation of a contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// File, relative to the repo root, with the line when known (`Makefile:12`).
    pub at: String,
    /// What is wrong and what is expected.
    pub what: String,
}

pub(crate) fn v(at: impl Into<String>, what: impl Into<String>) -> Violation {
    Violation {
        at: at.into(),
        what: what.into(),
    }
}

/// Files under `dir` (recursively) whose name satisfies `want`, skipping build output.
pub(crate) fn files(root: &Path, dir: &str, want: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
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

pub(crate) fn read_all(root: &Path, paths: &[PathBuf]) -> Vec<(String, String)> {
    paths
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok().map(|t| (rel(root, p), t)))
        .collect()
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

/// The outcome of every contract, in order.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Each contract's name with its violations (none: it passed).
    pub results: Vec<(&'static str, Vec<Violation>)>,
    /// Guarantees of the map without an executable proof yet (listed, not failed).
    pub unproven: Vec<String>,
}

impl Checked {
    /// How many contracts were violated.
    pub fn failed(&self) -> usize {
        self.results.iter().filter(|(_, v)| !v.is_empty()).count()
    }

    /// The verdict table: contract, pass/FAIL, number of violations.
    pub fn table(&self) -> String {
        let mut table = Table::new(&["contract", "verdict", "violations"]);
        for (name, violations) in &self.results {
            table.row([
                name.to_string(),
                if violations.is_empty() {
                    "pass"
                } else {
                    "FAIL"
                }
                .to_string(),
                violations.len().to_string(),
            ]);
        }
        table.render()
    }

    /// Every violation, one line each: `contract: file:line: what`.
    pub fn violations(&self) -> Vec<String> {
        self.results
            .iter()
            .flat_map(|(name, vs)| {
                vs.iter()
                    .map(move |x| format!("{name}: {}: {}", x.at, x.what))
            })
            .collect()
    }
}

/// Checks every repo contract on the tree at `root`.
pub fn check(root: &Path) -> Result<Checked, Error> {
    let mut results: Vec<(&'static str, Vec<Violation>)> = Vec::new();

    let mut image_files = files(root, "infra", &|n| {
        n == "Dockerfile" || n.ends_with(".yml") || n.ends_with(".sh")
    });
    image_files.extend(files(root, "apps", &|n| n == "Dockerfile"));
    image_files.extend(files(root, "vagrant", &|n| {
        n == "Vagrantfile" || n.ends_with(".sh")
    }));
    results.push((
        "no-floating-images",
        floating_images(&read_all(root, &image_files)),
    ));

    let makefile = std::fs::read_to_string(root.join("Makefile")).unwrap_or_default();
    results.push(("makefile-one-xtask-call", makefile_targets(&makefile)));

    let mut wf = Vec::new();
    for p in files(root, ".github/workflows", &|n| n.ends_with(".yml")) {
        if let Ok(t) = std::fs::read_to_string(&p) {
            wf.extend(workflow_calls_make_only(&rel(root, &p), &t));
        }
    }
    results.push(("workflow-make-only", wf));

    let rust = files(root, "crates", &|n| n.ends_with(".rs"));
    results.push((
        "ctx-guard-first-and-verify-read-only",
        guard_and_readonly(&read_all(root, &rust)),
    ));
    let mut printing = rust.clone();
    printing.extend(files(root, "xtask/src", &|n| n.ends_with(".rs")));
    results.push((
        "closed-stdout-is-not-a-crash",
        prints_survive_closed_stdout(&read_all(root, &printing)),
    ));

    let xtask = files(root, "xtask/src", &|n| n.ends_with(".rs"));
    results.push((
        "xtask-composes-only",
        xtask_composes_only(&read_all(root, &xtask)),
    ));

    results.push(("inventory-consistent", inventory(root)));

    results.push(("no-secrets", secrets::scan(root)?));

    let map = std::fs::read_to_string(root.join(GUARANTEES_MAP)).unwrap_or_default();
    let (bad, unproven) = guarantees(root, &map);
    if map.is_empty() {
        results.push((
            "guarantees-map",
            vec![v(GUARANTEES_MAP, "missing or empty")],
        ));
    } else {
        results.push(("guarantees-map", bad));
    }
    Ok(Checked { results, unproven })
}

/// The workspace root, for tests that read the repo as it is.
#[cfg(test)]
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
