//! Swarm mode: the manager's (control's) engine restarts. The swarm's control plane comes
//! back by itself, the services are whole again, orders acknowledged before are intact.

use std::time::Duration;

use crate::lab::LabError;
use crate::probe::{answers_200, create_orders, read_back};
use crate::sequence::{Drill, Run, nothing_to_undo};
use crate::swarm::{self, API};

/// The drill.
pub const DRILL: Drill = Drill {
    name: "manager-restart",
    describe: "swarm: restart the manager's engine → the manager leads again, every service whole, /ready 200 on every api node, orders intact",
    experiment,
    // The engine comes back by itself or not at all: the recovery's verify says which.
    undo: nothing_to_undo,
};

const BACK_LIMIT: Duration = Duration::from_secs(120);
const EVERY: Duration = Duration::from_millis(250);

fn experiment(r: &mut Run) -> Result<(), LabError> {
    let ops = swarm::require(r.lab)?;
    let manager = ops.manager().to_string();
    let nodes = ops.api_nodes();
    let expected: Vec<String> = nodes.iter().map(|(n, _)| n.clone()).collect();
    let ids = create_orders(r, 3)?;
    r.figures.orders_acknowledged = Some(ids.len() as u64);
    let t_restart = r.inject(&format!("restart the engine of {manager}"), || {
        ops.restart_engine(&manager).map(|()| String::new())
    })?;
    let leads = swarm::wait_inspect(ops, r.start, BACK_LIMIT, EVERY, |d| {
        manager_leads(d, &manager)
    });
    r.figures.detection_latency_ms = leads.map(|t| t.saturating_sub(t_restart));
    r.check(
        "the manager leads the swarm again",
        leads.is_some(),
        format!(
            "{manager} ready and leader within {} s",
            BACK_LIMIT.as_secs()
        ),
        leads.map_or("not back".into(), |t| {
            format!("after {} ms", t.saturating_sub(t_restart))
        }),
    );
    let whole = swarm::wait_inspect(ops, r.start, BACK_LIMIT, EVERY, |d| {
        swarm::whole(d, API, &expected) && swarm::whole(d, "db", &[])
    });
    let ready: Vec<(String, bool)> = nodes
        .iter()
        .map(|(n, a)| {
            (
                n.clone(),
                answers_200(&format!("http://{a}/ready"), BACK_LIMIT).is_some(),
            )
        })
        .collect();
    let all_ready_at = r.now_ms();
    r.figures.recovery_ms = whole.map(|t| t.max(all_ready_at).saturating_sub(t_restart));
    r.check(
        "the services came back",
        whole.is_some() && ready.iter().all(|(_, ok)| *ok),
        format!(
            "db and one api replica on each of {} running, /ready 200 on each",
            expected.join(", ")
        ),
        format!(
            "{}; /ready: {}",
            whole.map_or("not whole".into(), |t| format!(
                "whole {} ms after the restart",
                t.saturating_sub(t_restart)
            )),
            ready
                .iter()
                .map(|(n, ok)| format!("{n} {}", if *ok { "200" } else { "not 200" }))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let lost = read_back(r, &ids);
    r.figures.orders_lost = Some(lost.len() as u64);
    r.check(
        "orders intact after the manager restart",
        lost.is_empty(),
        format!("all {} orders readable", ids.len()),
        if lost.is_empty() {
            "all readable".into()
        } else {
            format!("not readable: {}", lost.join(", "))
        },
    );
    Ok(())
}

/// Whether `manager` is ready and leads, by the manager's own account. Pure.
fn manager_leads(doc: &verify::swarm::SwarmInspection, manager: &str) -> bool {
    match &doc.nodes {
        verify::inspection::Fact::Found(nodes) => nodes
            .iter()
            .any(|n| n.name() == manager && n.state == "ready" && n.leader),
        _ => false,
    }
}
