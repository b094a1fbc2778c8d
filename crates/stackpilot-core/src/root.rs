//! Node-side operations that need root (firewall rules, signals to other users' processes).
//!
//! On docker-provider nodes the tools run as root; on VM nodes the transport's user is
//! `vagrant`, which gets root through passwordless sudo. `sudo -n` never prompts: without a
//! sudo rule the command fails, and callers check every exit status.

use std::process::Command;

/// Whether this process's effective user is root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The argv prefix that runs a program as root here: nothing as root, else `sudo -n`.
pub fn prefix(as_root: bool) -> &'static [&'static str] {
    if as_root { &[] } else { &["sudo", "-n"] }
}

/// A command running `program` as root (directly, or through `sudo -n`).
pub fn command(program: &str) -> Command {
    match prefix(is_root()) {
        [] => Command::new(program),
        [sudo, rest @ ..] => {
            let mut c = Command::new(sudo);
            c.args(rest).arg(program);
            c
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_root_user_goes_through_sudo_without_a_prompt() {
        assert_eq!(prefix(false), ["sudo", "-n"]);
        assert!(prefix(true).is_empty());
    }
}
