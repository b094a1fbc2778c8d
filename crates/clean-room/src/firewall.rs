//! Firewall rules left by drills: implicit state like any other, so the clean room removes
//! them. Only rules whose comment carries [`DRILL_RULE_PREFIX`] are touched.

use std::process::Command;

use stackpilot_core::node::DRILL_RULE_PREFIX;
use stackpilot_core::root;

/// Tables and chains drills add rules to.
const CHAINS: &[(&str, &str)] = &[
    ("raw", "PREROUTING"),
    ("filter", "INPUT"),
    ("filter", "FORWARD"),
];

/// The delete arguments (`-D CHAIN …`) of every drill rule in an `iptables -S CHAIN` listing.
pub fn drill_rules(listing: &str) -> Vec<Vec<String>> {
    listing
        .lines()
        .filter(|l| l.starts_with("-A ") && l.contains(&format!("--comment {DRILL_RULE_PREFIX}")))
        .map(|l| {
            let mut args: Vec<String> = l.split_whitespace().map(str::to_string).collect();
            args[0] = "-D".into();
            args
        })
        .collect()
}

/// What the firewall sweep found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sweep {
    /// The drill rules removed (as listed; none when there were none).
    Removed(Vec<String>),
    /// iptables is not installed, so no drill could have added a rule.
    NoIptables,
}

/// Removes every drill rule on this node (as root, through `sudo -n` when not root). A
/// listing or removal that fails is an error naming the command: "no rules found" must
/// mean none are there, not that they could not be listed.
pub fn remove_drill_rules() -> Result<Sweep, String> {
    // Looked up in the sbin directories too: a VM's vagrant user has no /usr/sbin on PATH,
    // and sudo finds it there (secure_path).
    let installed = Command::new("iptables").arg("--version").output().is_ok()
        || ["/usr/sbin/iptables", "/sbin/iptables"]
            .iter()
            .any(|p| std::path::Path::new(p).exists());
    if !installed {
        return Ok(Sweep::NoIptables);
    }
    let mut removed = Vec::new();
    for (table, chain) in CHAINS {
        let listing = root::command("iptables")
            .args(["-w", "-t", table, "-S", chain])
            .output()
            .map_err(|e| format!("iptables -t {table} -S {chain}: {e}"))?;
        if !listing.status.success() {
            return Err(format!(
                "cannot list drill rules: iptables -t {table} -S {chain} (as root{}): {}",
                if root::is_root() {
                    ""
                } else {
                    " through sudo -n"
                },
                String::from_utf8_lossy(&listing.stderr).trim()
            ));
        }
        for rule in drill_rules(&String::from_utf8_lossy(&listing.stdout)) {
            let out = root::command("iptables")
                .args(["-w", "-t", table])
                .args(&rule)
                .output()
                .map_err(|e| format!("iptables -t {table} {}: {e}", rule.join(" ")))?;
            if !out.status.success() {
                return Err(format!(
                    "iptables -t {table} {}: {}",
                    rule.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            removed.push(format!("{table} {}", rule[1..].join(" ")));
        }
    }
    Ok(Sweep::Removed(removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rules_with_the_drill_comment_are_deleted() {
        let listing = "\
-P PREROUTING ACCEPT
-A PREROUTING -p tcp -m tcp --dport 8000 -m comment --comment stackpilot-drill-port-unreachable -j DROP
-A PREROUTING -p tcp -m tcp --dport 22 -j DROP
";
        let rules = drill_rules(listing);
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0][0], "-D");
        assert!(rules[0].contains(&"8000".to_string()));
    }
}
