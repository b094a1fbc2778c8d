//! Which engine events change state: the yardstick of the proof that verify mutates
//! nothing. Tests record the engine's events around a verification and pass the actions
//! here; reads (list, inspect, version, events) emit no event at all.

/// Event verbs that mean something changed (containers, images, networks, volumes, execs).
pub const MUTATING: &[&str] = &[
    "attach",
    "commit",
    "connect",
    "copy",
    "create",
    "delete",
    "destroy",
    "detach",
    "die",
    "disconnect",
    "exec_create",
    "exec_detach",
    "exec_die",
    "exec_start",
    "export",
    "import",
    "kill",
    "load",
    "mount",
    "oom",
    "pause",
    "prune",
    "pull",
    "push",
    "remove",
    "rename",
    "resize",
    "restart",
    "save",
    "start",
    "stop",
    "tag",
    "top",
    "unmount",
    "unpause",
    "untag",
    "update",
];

/// The verb of an event action: `exec_start: /bin/true` → `exec_start`.
pub fn verb(action: &str) -> &str {
    action.split(':').next().unwrap_or(action).trim()
}

/// The actions among `actions` that mutate, in order.
pub fn mutating<S: AsRef<str>>(actions: &[S]) -> Vec<&str> {
    actions
        .iter()
        .map(AsRef::as_ref)
        .filter(|a| MUTATING.contains(&verb(a)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_mutating_and_health_reports_are_not() {
        let actions = [
            "create",
            "exec_start: /sleeper --check",
            "health_status: healthy",
            "untag",
        ];
        assert_eq!(
            mutating(&actions),
            vec!["create", "exec_start: /sleeper --check", "untag"]
        );
    }
}
