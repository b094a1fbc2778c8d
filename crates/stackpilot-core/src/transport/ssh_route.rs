//! A VM node's ssh route, cached: `vagrant ssh` starts Vagrant (Ruby, its plugins, the
//! provider's state queries) for every command, 3 s on a quiet host and 15–30 s on a loaded
//! one, while plain `ssh` with the configuration `vagrant ssh-config` prints takes a fraction
//! of that. The configuration is asked once per machine and kept in Vagrant's machine
//! directory beside the machine id it belongs to; a recreated machine (a new id) or a route
//! that stopped working (ssh's own failure, exit 255) asks again.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::config::Provider;

/// The cache file in the node's per-provider machine directory (Vagrant's own files sit
/// beside it and `vagrant destroy` removes the directory's contents with the machine).
const ROUTE_FILE: &str = "stackpilot-ssh-config";

/// The first line of the cache: the machine id it was asked for.
const ID_PREFIX: &str = "# stackpilot: vagrant ssh-config of machine ";

fn route_file(vagrant_dir: &Path, node: &str, provider: Provider) -> PathBuf {
    super::machine_dir(vagrant_dir, node)
        .join(provider.as_str())
        .join(ROUTE_FILE)
}

/// The cache's text for machine `id` with Vagrant's `config` (None when `config` has no
/// `Host` entry for `node`: an answer ssh could not use).
pub(crate) fn cached_text(id: &str, node: &str, config: &str) -> Option<String> {
    let names_node = config.lines().any(|l| {
        let mut w = l.split_whitespace();
        w.next() == Some("Host") && w.any(|h| h == node)
    });
    names_node.then(|| format!("{ID_PREFIX}{id}\n{config}"))
}

/// Whether the cache's `text` belongs to machine `id`.
pub(crate) fn is_for(text: &str, id: &str) -> bool {
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix(ID_PREFIX))
        .is_some_and(|cached| cached == id)
}

/// The ssh configuration file for `node`, asked from Vagrant when there is none for its
/// current machine; `None` when the node is not created or Vagrant gave none (the caller
/// then uses `vagrant ssh`, whose error names the problem).
pub(crate) fn config_file(vagrant_dir: &Path, node: &str, provider: Provider) -> Option<PathBuf> {
    let id = super::machine_id(&super::machine_dir(vagrant_dir, node).join(provider.as_str()))?;
    let path = route_file(vagrant_dir, node, provider);
    if std::fs::read_to_string(&path).is_ok_and(|t| is_for(&t, &id)) {
        return Some(path);
    }
    let out = super::vagrant_command(vagrant_dir, provider)
        .args(["ssh-config", node])
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = cached_text(&id, node, &String::from_utf8_lossy(&out.stdout))?;
    crate::files::write_atomically(&path, &text).ok()?;
    Some(path)
}

/// Drops the cached route of `node` (its next command asks Vagrant again).
pub(crate) fn forget(vagrant_dir: &Path, node: &str, provider: Provider) {
    let _ = std::fs::remove_file(route_file(vagrant_dir, node, provider));
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "Host control\n  HostName 192.168.121.7\n  User vagrant\n  Port 22\n";

    #[test]
    fn the_cache_names_its_machine_and_is_used_only_for_it() {
        let text = cached_text("abc-1", "control", CONFIG).expect("a Host entry");
        assert!(text.ends_with(CONFIG), "{text}");
        assert!(is_for(&text, "abc-1"));
        assert!(!is_for(&text, "abc-2"), "a recreated machine asks again");
        assert!(
            !is_for(CONFIG, "abc-1"),
            "a file without the id line is not a cache"
        );
    }

    #[test]
    fn an_answer_without_the_nodes_host_entry_is_not_kept() {
        assert_eq!(cached_text("abc-1", "worker1", CONFIG), None);
        assert_eq!(cached_text("abc-1", "control", ""), None);
    }

    #[test]
    fn a_node_that_is_not_created_has_no_route_and_runs_no_vagrant() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(config_file(dir.path(), "control", Provider::Libvirt), None);
    }

    #[test]
    fn a_cached_route_of_the_current_machine_is_used_and_can_be_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let machine = super::super::machine_dir(dir.path(), "control").join("libvirt");
        std::fs::create_dir_all(&machine).expect("machine dir");
        std::fs::write(machine.join("id"), "abc-1\n").expect("id");
        let cached = cached_text("abc-1", "control", CONFIG).expect("text");
        std::fs::write(machine.join(ROUTE_FILE), cached).expect("cache");
        assert_eq!(
            config_file(dir.path(), "control", Provider::Libvirt),
            Some(machine.join(ROUTE_FILE))
        );
        forget(dir.path(), "control", Provider::Libvirt);
        assert!(!machine.join(ROUTE_FILE).exists());
    }
}
