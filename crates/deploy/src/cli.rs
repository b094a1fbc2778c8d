//! `deploy`'s node-side command line, shared by its binary (which parses it) and the host
//! flows (which render a value of it to the argv they run on a node). Only clap and std
//! here.

use clap::{Parser, Subcommand};
use stackpilot_core::argv::{Args, ToArgv};

/// Node-side steps of StackPilot's staged deploys: switch an environment to a release,
/// record it, run its self-check, show its state and logs.
///
/// Runs inside a lab node from /vagrant (ctx-guard decides first; exit 3 when refused).
/// On the host use `make deploy|status|restart|logs|stop|rollback ENV=…`.
/// Exit codes: 0 ok, 1 step failed, 2 usage/configuration, 3 context refused,
/// 4 prerequisite missing.
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(name = "deploy", version, arg_required_else_help = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// The subcommands; the host renders them with [`ToArgv`].
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    /// Point ENV's build receipt at a loaded release image and start it through lifecycle.
    Switch {
        /// Environment.
        #[arg(long)]
        env: String,
        /// The release, as JSON (what the host's deploy built and loaded).
        #[arg(long, value_name = "JSON")]
        release: String,
        /// Health gate: seconds to wait until every container is healthy.
        #[arg(long, value_name = "SECS", default_value_t = 120)]
        timeout: u64,
    },
    /// Record a release as ENV's deployed one; prune this env's releases beyond --keep.
    Record {
        /// Environment.
        #[arg(long)]
        env: String,
        /// The deployed record, as JSON.
        #[arg(long, value_name = "JSON")]
        deployed: String,
        /// Releases kept for this environment.
        #[arg(long, default_value_t = crate::plan::KEEP_RELEASES)]
        keep: usize,
    },
    /// Run `/app/mock-exchange self-check` inside ENV's running api container.
    SelfCheck {
        /// Environment.
        #[arg(long)]
        env: String,
    },
    /// Remove a release image that failed its deploy, unless an environment keeps it.
    Discard {
        /// The release image tag.
        #[arg(long)]
        tag: String,
    },
    /// Take ENV's deploy lock on this node for a host-side action (kept until `unlock`);
    /// refused while someone else holds it, naming the owner and expiry. Prints the lock.
    Lock {
        /// Environment.
        #[arg(long)]
        env: String,
        /// Who acts: `user@host (checkout)`.
        #[arg(long)]
        owner: String,
        /// What they do (`deploy dev on worker1`).
        #[arg(long)]
        purpose: String,
        /// The host-side process.
        #[arg(long)]
        pid: u32,
    },
    /// Release ENV's deploy lock if it is still the one `lock` printed.
    Unlock {
        /// Environment.
        #[arg(long)]
        env: String,
        /// The lock, as JSON.
        #[arg(long, value_name = "JSON")]
        lock: String,
    },
    /// Make ENV start on boot and stop with the node: the systemd unit installed and
    /// enabled, or, without systemd, the containers' restart policy checked.
    InstallService {
        /// Environment.
        #[arg(long)]
        env: String,
    },
    /// ENV's deploy state and what runs now, as JSON.
    State {
        /// Environment.
        #[arg(long)]
        env: String,
    },
    /// ENV's service logs (api by default) from the engine's log store.
    Logs(Logs),
}

/// `deploy logs`: which lines of which service's log.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct Logs {
    /// Environment.
    #[arg(long)]
    pub env: String,
    /// Service (`api`, `db`).
    #[arg(long, default_value = "api")]
    pub service: String,
    /// Lines from the end (`all` for every line).
    #[arg(long, default_value = "100")]
    pub lines: String,
    /// Only lines since this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Keep following.
    #[arg(long)]
    pub follow: bool,
}

/// `make logs TAIL=`: a positive number of lines or `all`, checked while parsing so a
/// typo is refused before anything is compiled or run.
pub fn tail_lines(s: &str) -> Result<String, String> {
    match s.parse::<u64>() {
        Ok(n) if n > 0 => Ok(s.to_string()),
        _ if s == "all" => Ok(s.to_string()),
        _ => Err(format!(
            "expected a positive number of lines or `all`, found '{s}' (make logs TAIL=20)"
        )),
    }
}

/// `make logs FOLLOW=`: `yes` or `no` (and `1`/`0`, `true`/`false`).
pub fn yes_no(s: &str) -> Result<bool, String> {
    match s {
        "yes" | "1" | "true" => Ok(true),
        "no" | "0" | "false" => Ok(false),
        _ => Err(format!("expected yes or no, found '{s}'")),
    }
}

impl ToArgv for Cmd {
    const TOOL: &'static str = "deploy";

    fn render(&self, out: &mut Args) {
        match self {
            Cmd::Switch {
                env,
                release,
                timeout,
            } => out
                .word("switch")
                .opt("env", env)
                .opt("release", release)
                .opt("timeout", timeout),
            Cmd::Record {
                env,
                deployed,
                keep,
            } => out
                .word("record")
                .opt("env", env)
                .opt("deployed", deployed)
                .opt("keep", keep),
            Cmd::SelfCheck { env } => out.word("self-check").opt("env", env),
            Cmd::Discard { tag } => out.word("discard").opt("tag", tag),
            Cmd::Lock {
                env,
                owner,
                purpose,
                pid,
            } => out
                .word("lock")
                .opt("env", env)
                .opt("owner", owner)
                .opt("purpose", purpose)
                .opt("pid", pid),
            Cmd::Unlock { env, lock } => out.word("unlock").opt("env", env).opt("lock", lock),
            Cmd::InstallService { env } => out.word("install-service").opt("env", env),
            Cmd::State { env } => out.word("state").opt("env", env),
            Cmd::Logs(l) => out
                .word("logs")
                .opt("env", &l.env)
                .opt("service", &l.service)
                .opt("lines", &l.lines)
                .opt_some("since", l.since.as_ref())
                .flag("follow", l.follow),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stackpilot_core::argv::round_trip;

    #[test]
    fn follow_accepts_no_as_the_help_says() {
        assert_eq!(yes_no("no"), Ok(false));
        assert_eq!(yes_no("yes"), Ok(true));
        assert!(yes_no("maybe").is_err());
    }

    #[test]
    fn a_bad_line_count_is_refused_while_parsing() {
        assert_eq!(tail_lines("5"), Ok("5".into()));
        assert_eq!(tail_lines("all"), Ok("all".into()));
        let e = tail_lines("abc").err();
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("positive number of lines")),
            "{e:?}"
        );
        assert!(tail_lines("0").is_err());
    }

    #[test]
    fn every_subcommand_round_trips_through_its_argv() {
        let env = || "prod".to_string();
        let values = [
            Cmd::Switch {
                env: env(),
                release: r#"{"tag":"app:1"}"#.into(),
                timeout: 7,
            },
            Cmd::Record {
                env: env(),
                deployed: r#"{"release":{}}"#.into(),
                keep: 9,
            },
            Cmd::SelfCheck { env: env() },
            Cmd::Discard {
                tag: "app:1".into(),
            },
            Cmd::Lock {
                env: env(),
                owner: "me@host (/src)".into(),
                purpose: "deploy prod on worker1".into(),
                pid: 42,
            },
            Cmd::Unlock {
                env: env(),
                lock: r#"{"owner":"me"}"#.into(),
            },
            Cmd::InstallService { env: env() },
            Cmd::State { env: env() },
            Cmd::Logs(Logs {
                env: env(),
                service: "db".into(),
                lines: "all".into(),
                since: Some("2026-11-30T20:00:00Z".into()),
                follow: true,
            }),
        ];
        assert_eq!(round_trip::<Cli, _>(&values, |c| Some(c.command)), Ok(()));
    }
}
