//! Contract `ctx-guard-first-and-verify-read-only`: node-side binaries hand their work to
//! `ctx_guard::node_main` (read from their syntax trees), and verify reaches Docker only
//! through the read-only facade.

use crate::{Violation, v};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo_root;

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
}
