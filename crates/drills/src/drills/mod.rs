//! The registry: every drill, in the order `run all` runs them (cheap and local first, the
//! node reboot last), then the drills of swarm mode. Adding a drill = one module here
//! (`<name>.rs` exporting `DRILL`, declared below) plus its name in the list below; a
//! compose drill that also runs against the swarm's stack is listed under `swarm too`.

use crate::sequence::Drill;

// Declared here, not inside `registry!`, so that `cargo fmt` and other tools follow them.
pub mod db_bad_credentials;
pub mod db_down;
pub mod db_midflight_loss;
pub mod manager_restart;
pub mod node_loss;
pub mod node_reboot;
pub mod port_unreachable;
pub mod process_crash;
pub mod restart_persistence;
pub mod rolling_update;

/// Lists each drill's `DRILL` in [`ALL`], in this order.
macro_rules! registry {
    (
        $($drill:ident),* $(,)?;
        swarm too: $($both:ident),* $(,)?;
        swarm: $($swarm:ident),* $(,)?
    ) => {
        /// Every drill, in run order; what `drills list` shows.
        pub const ALL: &[Drill] = &[$($drill::DRILL,)* $($swarm::DRILL),*];

        /// The drills that only a stack on the lab's swarm can run (`MODE=swarm`).
        pub const SWARM: &[Drill] = &[$($swarm::DRILL),*];

        /// The compose drills that also run against the stack on the swarm.
        pub const SWARM_TOO: &[Drill] = &[$($both::DRILL),*];
    };
}

registry![
    db_down,
    db_bad_credentials,
    db_midflight_loss,
    port_unreachable,
    process_crash,
    restart_persistence,
    node_reboot;
    swarm too: db_down, db_bad_credentials, db_midflight_loss;
    swarm: node_loss, rolling_update, manager_restart,
];
