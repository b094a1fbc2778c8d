//! Firewall rule on the node drops the service port: verify fails at TCP.

use std::net::SocketAddr;
use std::time::Duration;

use stackpilot_core::http::{self, TcpOutcome};
use verify::report::Verdict as CheckVerdict;

use crate::cli::NodeCmd;
use crate::lab::{LabError, LabOps};
use crate::probe::poll;
use crate::sequence::{Drill, Run, Undone, first_failure};

/// The drill.
pub const DRILL: Drill = Drill {
    name: "port-unreachable",
    describe: "firewall rule on the node drops the service port → verify fails at TCP, HTTP checks not run → unblock → verify passes",
    experiment,
    undo,
};

fn experiment(r: &mut Run) -> Result<(), LabError> {
    let lab = r.lab;
    let addr: SocketAddr = lab.service_addr();
    let port = addr.port();
    let t_inj = r.inject("drills node block-port", || {
        lab.node_step(&NodeCmd::BlockPort {
            port,
            expire_after: 300,
        })
    })?;
    let detected = poll(Duration::from_secs(5), || {
        let p = http::tcp_connect(addr, Duration::from_millis(300));
        (p.outcome != TcpOutcome::Connected).then_some(p)
    });
    let detection = detected.as_ref().map(|_| r.now_ms() - t_inj);
    r.figures.detection_latency_ms = detection;
    r.check(
        "TCP connect to the service port fails",
        detected.is_some(),
        "no TCP connection within 5 s of the block",
        detected.map_or("still connecting".into(), |p| {
            format!("{:?} after {} ms", p.outcome, detection.unwrap_or(0))
        }),
    );
    match lab.verify(None) {
        Ok(rep) => {
            let first = rep
                .first_failure()
                .map(|c| c.id.clone())
                .unwrap_or_default();
            r.check(
                "verify fails at the TCP layer",
                !rep.passed && first == "tcp.connect",
                "first failure tcp.connect",
                format!(
                    "passed={}, first failure: {}",
                    rep.passed,
                    first_failure(&rep)
                ),
            );
            let http: Vec<_> = rep.checks.iter().filter(|c| c.layer == 3).collect();
            let all_not_run = !http.is_empty()
                && http.iter().all(|c| {
                    c.verdict == CheckVerdict::NotRun
                        && c.reason.contains("not run")
                        && c.reason.contains("tcp")
                });
            r.check(
                "HTTP checks not run because TCP is unreachable",
                all_not_run,
                "every layer-3 check 'not run: … tcp …'",
                http.iter()
                    .map(|c| format!("{} {}: {}", c.id, c.verdict.as_str(), c.reason))
                    .collect::<Vec<_>>()
                    .join("; "),
            );
        }
        Err(e) => r.check(
            "verify fails at the TCP layer",
            false,
            "a verify report",
            e.to_string(),
        ),
    }
    let t_restore = r.restore("drills node unblock-port", || {
        lab.node_step(&NodeCmd::UnblockPort { port })
    })?;
    if let Some(t) = t_restore {
        let back = poll(Duration::from_secs(10), || {
            (http::tcp_connect(addr, Duration::from_millis(300)).outcome == TcpOutcome::Connected)
                .then_some(())
        });
        let rec = back.map(|()| r.now_ms() - t);
        r.figures.recovery_ms = rec;
        r.check(
            "TCP reachable again after the unblock",
            rec.is_some(),
            "TCP connection within 10 s",
            rec.map_or("not reachable".into(), |d| format!("after {d} ms")),
        );
    }
    Ok(())
}

/// Removes the firewall rule (idempotent).
fn undo(lab: &dyn LabOps) -> Undone {
    let port = lab.service_addr().port();
    Some((
        "drills node unblock-port".into(),
        lab.node_step(&NodeCmd::UnblockPort { port }),
    ))
}
