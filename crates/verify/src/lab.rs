//! Lab verification (Milestone 01), read-only: every node reachable from the host at its
//! inventory address over TCP, its identity stable (hostname, address, identity file), its
//! peers reachable by hostname, its engine up.
//!
//! Facts are gathered with read-only commands (`hostname`, `ip addr`, `cat`, `getent`, a
//! TCP connect, `docker version`) through the node's transport; [`judge`] turns them into
//! verdicts without I/O. Nothing here changes a node.
//!
//! The TCP port is [`PROBE_PORT`], the node engine's metrics endpoint: docker-provider
//! nodes run no sshd, the engine's API must not be exposed over TCP (it is root on the node),
//! and the metrics endpoint is read-only and served by the same daemon the lab depends on,
//! on every provider (the node image's daemon.json and the VMs' provisioning enable it).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use stackpilot_core::http::{TcpOutcome, tcp_connect};
use stackpilot_core::mountinfo;
use stackpilot_core::node::{IDENTITY_FILE, Identity, LabMarker};
use stackpilot_core::output::{Render, Table};
use stackpilot_core::transport::{self, Transport};
use stackpilot_core::{Config, Provider};

/// The TCP port every node listens on: the engine's read-only metrics endpoint.
pub use stackpilot_core::node::PROBE_PORT;

/// Limit of every command run in a container node and of every connect (a VM node's
/// commands get [`Transport::command_limit`]).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one command in the node may take over this transport.
fn call_timeout(t: &Transport) -> Duration {
    t.command_limit(CALL_TIMEOUT)
}
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What verification needs to know about the lab.
#[derive(Debug, Clone, Copy)]
pub struct LabContext<'a> {
    /// The lab configuration (the inventory).
    pub cfg: &'a Config,
    /// The Vagrant project directory (`<repo>/vagrant`).
    pub vagrant_dir: &'a Path,
    /// Nodes to verify.
    pub nodes: &'a [String],
    /// The repo's lab marker, when present.
    pub marker: Option<&'a LabMarker>,
}

/// One verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The node checked.
    pub node: String,
    /// Check id (`reachable`, `hostname`, `address`, `identity`, `peer:<name>`, `engine`).
    pub check: String,
    /// Whether it passed.
    pub pass: bool,
    /// What was expected.
    pub expected: String,
    /// What was found.
    pub found: String,
}

/// All verdicts of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LabReport {
    /// Every check, in node order.
    pub checks: Vec<Check>,
}

impl LabReport {
    /// True when every check passed (and there was at least one).
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.pass)
    }

    /// How many checks failed.
    pub fn failures(&self) -> usize {
        self.checks.iter().filter(|c| !c.pass).count()
    }
}

impl Render for LabReport {
    fn human(&self) -> String {
        let mut t = Table::new(&["node", "check", "verdict", "expected", "found"]);
        for c in &self.checks {
            t.row([
                c.node.clone(),
                c.check.clone(),
                if c.pass { "pass" } else { "FAIL" }.to_string(),
                c.expected.clone(),
                c.found.clone(),
            ]);
        }
        let verdict = if self.passed() {
            format!("lab verify: all {} checks passed\n", self.checks.len())
        } else {
            format!(
                "lab verify: {} of {} checks failed\n",
                self.failures(),
                self.checks.len()
            )
        };
        format!("{}{verdict}", t.render())
    }
}

/// What the host observed about one node.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    /// The node's name.
    pub node: String,
    /// The provider Vagrant created it with; `None` when not created.
    pub provider: Option<Provider>,
    /// The inventory address under that provider.
    pub address: Option<Ipv4Addr>,
    /// TCP connect from the host to `address:PROBE_PORT`.
    pub tcp: Option<TcpOutcome>,
    /// `hostname` in the node.
    pub hostname: Result<String, String>,
    /// `ip -4 -o addr show` in the node.
    pub addresses: Result<String, String>,
    /// The identity file's text.
    pub identity: Result<String, String>,
    /// Per peer: its inventory address, `getent hosts <peer>`, and a TCP connect by name.
    pub peers: Vec<PeerFacts>,
    /// `docker version` server version in the node.
    pub engine: Result<String, String>,
}

/// What a node observed about one peer.
#[derive(Debug, Clone)]
pub struct PeerFacts {
    /// The peer's name.
    pub name: String,
    /// The peer's inventory address.
    pub address: Ipv4Addr,
    /// `getent hosts <peer>` output.
    pub resolved: Result<String, String>,
    /// Whether a TCP connect to `<peer>:PROBE_PORT` by name succeeded.
    pub connect: Result<(), String>,
}

/// Verifies the lab's nodes; never changes anything.
pub fn run(ctx: &LabContext<'_>) -> LabReport {
    let expected_source = repo_source(ctx.vagrant_dir);
    let mut report = LabReport::default();
    for node in ctx.nodes {
        let facts = gather(ctx, node);
        let expected = ctx.marker.zip(facts.provider).map(|(m, p)| Identity {
            node: node.clone(),
            lab: ctx.cfg.lab.name.clone(),
            lab_id: m.lab_id.clone(),
            provider: p.as_str().to_string(),
            repo_source: (!p.desc().is_vm).then(|| expected_source.clone()).flatten(),
        });
        report.checks.extend(judge(&facts, expected.as_ref()));
    }
    report
}

/// The repo path as the host's mount table names it (what a docker node's identity records).
fn repo_source(vagrant_dir: &Path) -> Option<String> {
    let root = vagrant_dir.parent()?;
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let mounts =
        mountinfo::parse(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default());
    mountinfo::filesystem_path(&mounts, &root).map(|p| p.display().to_string())
}

fn gather(ctx: &LabContext<'_>, node: &str) -> NodeFacts {
    let provider = transport::created_provider(ctx.vagrant_dir, node);
    let address = provider.and_then(|p| ctx.cfg.node(node).ok().map(|n| n.address(p)));
    let not_created = || Err("node not created".to_string());
    let mut facts = NodeFacts {
        node: node.to_string(),
        provider,
        address,
        tcp: None,
        hostname: not_created(),
        addresses: not_created(),
        identity: not_created(),
        peers: Vec::new(),
        engine: not_created(),
    };
    let (Some(p), Some(addr)) = (provider, address) else {
        return facts;
    };
    facts.tcp = Some(tcp_connect(SocketAddr::from((addr, PROBE_PORT)), CONNECT_TIMEOUT).outcome);
    let t = match Transport::for_node(ctx.vagrant_dir, node) {
        Ok(t) => t,
        Err(e) => {
            let e = Err(e.to_string());
            facts.hostname = e.clone();
            facts.addresses = e.clone();
            facts.identity = e.clone();
            facts.engine = e;
            return facts;
        }
    };
    let limit = call_timeout(&t);
    let run = |argv: &[&str]| {
        t.output(argv, limit)
            .map(|s| s.trim().to_string())
            .map_err(|e| e.to_string())
    };
    facts.hostname = run(&["hostname"]);
    facts.addresses = run(&["ip", "-4", "-o", "addr", "show"]);
    facts.identity = t
        .output(&["cat", IDENTITY_FILE], limit)
        .map_err(|e| e.to_string());
    facts.engine = run(&["docker", "version", "--format", "{{.Server.Version}}"]);
    // Peers are the other nodes being verified: a node left down on purpose is no fault.
    let peers = ctx
        .cfg
        .nodes
        .iter()
        .filter(|n| n.name() != node && ctx.nodes.iter().any(|v| v == n.name()));
    for peer in peers {
        let name = peer.name();
        let probe = format!("exec 3<>/dev/tcp/{name}/{PROBE_PORT}");
        facts.peers.push(PeerFacts {
            name: name.to_string(),
            address: peer.address(p),
            resolved: run(&["getent", "hosts", name]),
            connect: run(&["timeout", "3", "bash", "-c", &probe]).map(|_| ()),
        });
    }
    facts
}

fn check(node: &str, id: &str, pass: bool, expected: String, found: String) -> Check {
    Check {
        node: node.to_string(),
        check: id.to_string(),
        pass,
        expected,
        found,
    }
}

/// Turns one node's facts into verdicts. Pure. `expected` is the identity the node must
/// carry (`None` when the repo has no lab marker or the node is not created).
pub fn judge(f: &NodeFacts, expected: Option<&Identity>) -> Vec<Check> {
    let n = f.node.as_str();
    let (Some(provider), Some(addr)) = (f.provider, f.address) else {
        return vec![check(
            n,
            "created",
            false,
            "a node created by `cargo xtask lab up`".into(),
            format!("not created; run `cargo xtask lab up {n}`"),
        )];
    };
    let mut out = Vec::new();
    let tcp = f.tcp.clone().unwrap_or(TcpOutcome::Failed {
        detail: "not probed".into(),
    });
    out.push(check(
        n,
        "reachable",
        tcp == TcpOutcome::Connected,
        format!("TCP connect from the host to {addr}:{PROBE_PORT} ({provider})"),
        match tcp {
            TcpOutcome::Connected => "connected".into(),
            TcpOutcome::Refused => {
                "refused: the node is up, its engine's metrics port is not listening".into()
            }
            TcpOutcome::Timeout => "no answer within the connect timeout".into(),
            TcpOutcome::Failed { detail } => detail,
        },
    ));
    out.push(match &f.hostname {
        Ok(h) => check(n, "hostname", h == n, format!("hostname {n}"), h.clone()),
        Err(e) => check(n, "hostname", false, format!("hostname {n}"), e.clone()),
    });
    let want = format!("inet {addr}/");
    out.push(match &f.addresses {
        Ok(a) => check(
            n,
            "address",
            a.contains(&want),
            format!("{addr} on an interface of the node"),
            if a.contains(&want) {
                format!("{addr} present")
            } else {
                format!("absent; the node has {}", inet_list(a))
            },
        ),
        Err(e) => check(
            n,
            "address",
            false,
            format!("{addr} on an interface"),
            e.clone(),
        ),
    });
    out.push(identity_check(n, &f.identity, expected));
    for p in &f.peers {
        let resolved = match &p.resolved {
            Ok(r) => r.split_whitespace().next().unwrap_or("").to_string(),
            Err(e) => e.clone(),
        };
        let ok = resolved == p.address.to_string() && p.connect.is_ok();
        out.push(check(
            n,
            &format!("peer:{}", p.name),
            ok,
            format!(
                "{} resolves to {} and accepts TCP on {PROBE_PORT}",
                p.name, p.address
            ),
            match &p.connect {
                Ok(()) => format!("resolves to {resolved}, connected"),
                Err(e) => format!("resolves to {resolved}, connect failed: {e}"),
            },
        ));
    }
    out.push(match &f.engine {
        Ok(v) if !v.is_empty() => check(
            n,
            "engine",
            true,
            "the node's Docker engine answers".into(),
            format!("up, {v}"),
        ),
        Ok(_) => check(
            n,
            "engine",
            false,
            "the node's Docker engine answers".into(),
            "empty version".into(),
        ),
        Err(e) => check(
            n,
            "engine",
            false,
            "the node's Docker engine answers".into(),
            e.clone(),
        ),
    });
    out
}

fn identity_check(n: &str, found: &Result<String, String>, expected: Option<&Identity>) -> Check {
    let Some(expected) = expected else {
        return check(
            n,
            "identity",
            false,
            "the repo's lab marker to compare with".into(),
            "no .stackpilot-lab in the repo; run `cargo xtask lab up`".into(),
        );
    };
    let want = format!(
        "{IDENTITY_FILE}: node {}, lab {} id {}, {}",
        expected.node, expected.lab, expected.lab_id, expected.provider
    );
    let text = match found {
        Ok(t) => t,
        Err(e) => return check(n, "identity", false, want, e.clone()),
    };
    match toml::from_str::<Identity>(text) {
        Ok(id) if &id == expected => check(n, "identity", true, want, "matches".into()),
        Ok(id) => check(
            n,
            "identity",
            false,
            want,
            format!(
                "node {}, lab {} id {}, {}, repo source {}",
                id.node,
                id.lab,
                id.lab_id,
                id.provider,
                id.repo_source.as_deref().unwrap_or("none")
            ),
        ),
        Err(e) => check(
            n,
            "identity",
            false,
            want,
            format!("malformed: {}", e.message()),
        ),
    }
}

fn inet_list(ip_output: &str) -> String {
    let list: Vec<&str> = ip_output
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "inet")
        .map(|w| w[1])
        .collect();
    if list.is_empty() {
        "no IPv4 address".into()
    } else {
        list.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            node: "control".into(),
            lab: "stackpilot".into(),
            lab_id: "abc".into(),
            provider: "docker".into(),
            repo_source: Some("/work/main".into()),
        }
    }

    fn healthy() -> NodeFacts {
        NodeFacts {
            node: "control".into(),
            provider: Some(Provider::Docker),
            address: Some(Ipv4Addr::new(172, 30, 56, 10)),
            tcp: Some(TcpOutcome::Connected),
            hostname: Ok("control".into()),
            addresses: Ok("1: lo    inet 127.0.0.1/8 scope host lo\n3: eth1    inet 172.30.56.10/24 brd 172.30.56.255 scope global eth1".into()),
            identity: Ok(identity().to_toml()),
            peers: vec![PeerFacts {
                name: "worker1".into(),
                address: Ipv4Addr::new(172, 30, 56, 11),
                resolved: Ok("172.30.56.11    worker1".into()),
                connect: Ok(()),
            }],
            engine: Ok("20.10.24+dfsg1".into()),
        }
    }

    fn failed(checks: &[Check]) -> Vec<&str> {
        checks
            .iter()
            .filter(|c| !c.pass)
            .map(|c| c.check.as_str())
            .collect()
    }

    #[test]
    fn a_healthy_node_passes_every_check() {
        let checks = judge(&healthy(), Some(&identity()));
        assert_eq!(failed(&checks), Vec::<&str>::new());
        assert_eq!(checks.len(), 6);
    }

    #[test]
    fn a_node_not_created_fails_once_with_the_fix() {
        let mut f = healthy();
        f.provider = None;
        let checks = judge(&f, None);
        assert_eq!(failed(&checks), ["created"]);
        assert!(checks[0].found.contains("cargo xtask lab up control"));
    }

    #[test]
    fn an_identity_from_another_checkout_fails() {
        let mut other = identity();
        other.lab_id = "other".into();
        let mut f = healthy();
        f.identity = Ok(other.to_toml());
        let checks = judge(&f, Some(&identity()));
        assert_eq!(failed(&checks), ["identity"]);
    }

    #[test]
    fn a_wrong_address_or_hostname_fails() {
        let mut f = healthy();
        f.addresses = Ok("3: eth0    inet 172.17.0.2/16 scope global eth0".into());
        f.hostname = Ok("3f2a9c".into());
        let checks = judge(&f, Some(&identity()));
        assert_eq!(failed(&checks), ["hostname", "address"]);
        let addr = checks
            .iter()
            .find(|c| c.check == "address")
            .expect("address check");
        assert_eq!(addr.found, "absent; the node has 172.17.0.2/16");
    }

    #[test]
    fn a_peer_resolving_elsewhere_or_refusing_fails() {
        let mut f = healthy();
        f.peers[0].resolved = Ok("10.0.0.5 worker1".into());
        assert_eq!(failed(&judge(&f, Some(&identity()))), ["peer:worker1"]);
        let mut f = healthy();
        f.peers[0].connect = Err("exit status: 1".into());
        assert_eq!(failed(&judge(&f, Some(&identity()))), ["peer:worker1"]);
    }

    #[test]
    fn a_refused_probe_port_and_a_down_engine_fail() {
        let mut f = healthy();
        f.tcp = Some(TcpOutcome::Refused);
        f.engine = Err("Cannot connect to the Docker daemon".into());
        assert_eq!(
            failed(&judge(&f, Some(&identity()))),
            ["reachable", "engine"]
        );
    }

    #[test]
    fn no_marker_means_identity_cannot_pass() {
        assert_eq!(failed(&judge(&healthy(), None)), ["identity"]);
    }

    #[test]
    fn report_passes_only_with_checks_and_no_failure() {
        assert!(
            !LabReport::default().passed(),
            "an empty report proves nothing"
        );
        let r = LabReport {
            checks: judge(&healthy(), Some(&identity())),
        };
        assert!(r.passed());
        assert!(r.human().contains("lab verify: all 6 checks passed"));
    }
}
