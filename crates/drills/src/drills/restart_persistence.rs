//! Orders survive `make down` + `make up` and `make clean` + `make demo`.

use crate::lab::{Golden, LabError};
use crate::probe::{check_orders, create_orders};
use crate::sequence::{Drill, Run, nothing_to_undo};

/// The drill.
pub const DRILL: Drill = Drill {
    name: "restart-persistence",
    describe: "orders survive make down + make up, and make clean + make demo",
    experiment,
    undo: nothing_to_undo,
};

fn experiment(r: &mut Run) -> Result<(), LabError> {
    let ids = create_orders(r, 5)?;
    r.figures.orders_acknowledged = Some(ids.len() as u64);
    r.figures.orders_lost = Some(0);
    r.golden(Golden::Down)?;
    let t = r.golden(Golden::Up)?;
    let up_started = r.injection.last().map_or(t, |e| e.t_ms);
    check_orders(r, "make down + make up", &ids);
    r.figures.recovery_ms = Some(r.now_ms() - up_started);
    r.golden(Golden::Clean)?;
    r.golden(Golden::Demo)?;
    check_orders(r, "make clean + make demo", &ids);
    Ok(())
}
