//! The help texts a tool binary shows, gathered into one document for a snapshot test:
//! `--help` of the binary and of every subcommand, recursively. Test-only, kept in the
//! core so every tool's help test is one line instead of a copied skeleton.

use std::path::Path;
use std::process::Command;

/// `<bin> --help` and `<bin> <sub…> --help` for every subcommand clap lists, each under a
/// `$ <name> <sub…> --help` heading. Panics (it runs in tests) when one does not exit 0.
///
/// Runs with a cleared environment (only `PATH` kept), so `[env: NODE=…]` defaults show
/// the same under `make test` (which exports NODE and ENV) as anywhere else.
pub fn transcript(bin: &Path) -> String {
    let name = bin
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = String::new();
    walk(bin, &name, &mut Vec::new(), &mut out);
    out
}

fn walk(bin: &Path, name: &str, path: &mut Vec<String>, out: &mut String) {
    let mut cmd = Command::new(bin);
    cmd.env_clear().args(path.iter()).arg("--help");
    if let Some(p) = std::env::var_os("PATH") {
        cmd.env("PATH", p);
    }
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    let shown = std::iter::once(name.to_string())
        .chain(path.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "`{shown} --help` exited {:?}: {}{}",
        o.status.code(),
        text,
        String::from_utf8_lossy(&o.stderr)
    );
    out.push_str(&format!("$ {shown} --help\n{}\n", text.trim_end()));
    for sub in subcommands(&text) {
        path.push(sub);
        out.push('\n');
        walk(bin, name, path, out);
        path.pop();
    }
}

/// The names clap lists under `Commands:` (without its own `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim_end() != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subcommands_are_read_from_the_commands_section() {
        let help = "\
A tool that does things well

Usage: tool <COMMAND>

Commands:
  up      Start
          the stack
  status  Show it
  help    Print this message or the help of the given subcommand(s)

Options:
  -h, --help  Print help
";
        assert_eq!(subcommands(help), vec!["up", "status"]);
    }

    #[test]
    fn a_help_without_commands_has_no_subcommands() {
        assert!(subcommands("Usage: tool [OPTIONS]\n\nOptions:\n  -h, --help\n").is_empty());
    }
}
