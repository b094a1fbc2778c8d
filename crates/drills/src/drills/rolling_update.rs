//! Swarm mode: a new build rolled through the api's replicas under a steady order load,
//! with the service's own update policy. Every request is counted: non-2xx answers and
//! requests without any answer, goal 0, at the stated request rate.
//!
//! Without IPVS each node publishes its port for its own replica only (host mode), and the
//! update must stop a node's old replica before its new one can take the port: for those
//! seconds that node refuses connections (or, while the old container goes away, does not
//! accept them). The load therefore sends a request whose connection was never made to the
//! next node, as the balancer in front of a host-mode swarm does; nothing was sent on it,
//! so nothing can be placed twice. Those failovers are counted and
//! journalled; a request that every node refused still counts as unanswered. Like such a
//! balancer's health check, the load sends that node orders again once its `/ready`
//! answers 200: the new replica listens before its request pool is warm (`warming`).
//!
//! Non-2xx answers must be 0. Requests without an answer are counted, each journalled with
//! what happened, and may be at most one per thousand (`swarm::UNANSWERED_PER`): a
//! connection taken by the old replica's kernel as its server stops is reset, and the
//! client cannot know whether the order was placed, so it is not sent again.

use std::time::Duration;

use crate::lab::LabError;
use crate::probe::{check_none_lost, spread_load};
use crate::sequence::{Drill, Run, nothing_to_undo};
use crate::swarm::{self, API, Failover};

/// The drill.
pub const DRILL: Drill = Drill {
    name: "rolling-update",
    describe: "swarm: roll a new build through the api replicas under order load (a connection a node does not take goes to the next node, counted; that node gets orders again once its /ready says 200) → 0 non-2xx, unanswered requests counted (at most 1 per 1000), every replica on the new image, no acknowledged order lost",
    experiment,
    // The new build is what the stack runs afterwards; the recovery's verify checks it
    // against the deployment record the roll wrote.
    undo: nothing_to_undo,
};

const CLIENTS: usize = 4;
const PAUSE: Duration = Duration::from_millis(50);

fn experiment(r: &mut Run) -> Result<(), LabError> {
    let ops = swarm::require(r.lab)?;
    let nodes = ops.api_nodes();
    let expected: Vec<String> = nodes.iter().map(|(n, _)| n.clone()).collect();
    let before = ops.inspect()?;
    let image_before = api_image(&before);
    let load = spread_load(r, &nodes, CLIENTS, PAUSE, Failover::NeverSent);
    let rolled = r.inject("roll a new build through the api replicas", || {
        ops.roll_new_build()
    });
    std::thread::sleep(Duration::from_secs(2));
    let attempts = load.finish();
    let t_done = rolled?;
    let after = ops.inspect()?;
    let image_after = api_image(&after);
    let rate = swarm::rate_per_s(&attempts);
    let non_2xx = swarm::non_2xx(&attempts);
    let unanswered = swarm::unanswered(&attempts);
    r.figures.requests_sent = Some(attempts.len() as u64);
    r.figures.requests_non_2xx = Some(non_2xx);
    r.figures.requests_unanswered = Some(unanswered);
    r.figures.request_rate_per_s = rate.map(|x| x.round() as u64);
    r.figures.recovery_ms = Some(t_done);
    r.observe(
        "failover",
        format!(
            "{} requests whose connection a node did not take (its replica being replaced), then answered by the next node",
            swarm::failed_over(&attempts)
        ),
    );
    for (node, s) in swarm::by_node(&attempts) {
        r.observe("load summary", format!("{node}: {s:?}"));
    }
    r.observe(
        "rate",
        format!(
            "{} requests at {} per second",
            attempts.len(),
            rate.map_or("-".into(), |x| format!("{x:.1}"))
        ),
    );
    r.check(
        "the api runs the new image on every replica",
        image_after != image_before && swarm::whole(&after, API, &expected),
        format!(
            "an image other than {image_before}, one replica on each of {}",
            expected.join(", ")
        ),
        format!(
            "{image_after} on {}",
            swarm::running_on(&after, API).join(", ")
        ),
    );
    for line in swarm::failed_lines(&attempts) {
        r.observe("failed request", line);
    }
    let sent = attempts.len() as u64;
    r.check(
        "no request failed during the roll",
        non_2xx == 0 && swarm::unanswered_within_budget(unanswered, sent),
        format!(
            "0 non-2xx answers; requests without an answer at most 1 per {}",
            swarm::UNANSWERED_PER
        ),
        format!(
            "{non_2xx} non-2xx, {unanswered} without an answer, of {} at {} per second",
            attempts.len(),
            rate.map_or("-".into(), |x| format!("{x:.1}"))
        ),
    );
    let ids = swarm::acknowledged(&attempts);
    check_none_lost(r, &ids);
    Ok(())
}

/// The api service's image as the manager reports it.
fn api_image(doc: &verify::swarm::SwarmInspection) -> String {
    match &doc.services {
        verify::inspection::Fact::Found(s) => s
            .iter()
            .find(|s| s.service == API)
            .map_or_else(|| "no api service".into(), |s| s.image.clone()),
        _ => "unknown".into(),
    }
}
