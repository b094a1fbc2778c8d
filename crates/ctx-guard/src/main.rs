//! The `ctx-guard` binary: exit 0 when this is a good node-side context, 3 with the reason
//! otherwise.

use std::process::ExitCode;

use clap::Parser;
use ctx_guard::cli::Cli;
use stackpilot_core::Exit;
use stackpilot_core::exit::ExitStatus;
use stackpilot_core::output::Table;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let facts = ctx_guard::probe();
    let decision = ctx_guard::decide(&facts);
    if cli.json {
        let doc = serde_json::json!({
            "allowed": decision.allowed(),
            "facts": &facts,
            "rules": &decision.rules,
        });
        stackpilot_core::outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else if cli.explain {
        stackpilot_core::outln!("facts:");
        stackpilot_core::outln!(
            "  cwd (resolved):      {}",
            show(&facts.cwd.as_ref().map(|p| p.display().to_string()))
        );
        stackpilot_core::outln!("  /vagrant symlink:    {:?}", facts.vagrant_is_symlink);
        stackpilot_core::outln!(
            "  node identity:       {}",
            show(&facts.identity.as_ref().map(|i| format!("{i:?}")))
        );
        stackpilot_core::outln!(
            "  repo marker:         {}",
            show(&facts.marker.as_ref().map(|m| format!("{m:?}")))
        );
        stackpilot_core::outln!("  missing entries:     {:?}", facts.missing_entries);
        let vagrant_mounts: Vec<&str> = facts
            .mountinfo
            .lines()
            .filter(|l| l.contains(" /vagrant "))
            .collect();
        stackpilot_core::outln!("  mountinfo /vagrant:  {vagrant_mounts:?}");
        let mut t = Table::new(&["rule", "verdict", "expected", "found"]);
        for r in &decision.rules {
            t.row([
                r.id.to_string(),
                if r.pass {
                    "pass".into()
                } else {
                    "REFUSE".into()
                },
                r.expected.clone(),
                r.found.clone(),
            ]);
        }
        stackpilot_core::out!("{}", t.render());
    }
    match ctx_guard::judge(&decision, &facts, &cli.instead) {
        Ok(identity) => {
            if !cli.json && !cli.explain {
                stackpilot_core::outln!(
                    "ctx-guard: allowed on node '{}' of lab '{}'",
                    identity.node,
                    identity.lab
                );
            }
            Exit::Ok.into()
        }
        Err(refused) => {
            eprintln!("ctx-guard: {refused}");
            refused.exit().into()
        }
    }
}

fn show(r: &Result<String, &String>) -> String {
    match r {
        Ok(s) => s.clone(),
        Err(e) => format!("(none: {e})"),
    }
}
