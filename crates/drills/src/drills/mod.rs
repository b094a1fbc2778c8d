//! The registry: every drill, in the order `run all` runs them (cheap and local first, the
//! node reboot last). Adding a drill = one module here (`<name>.rs` exporting `DRILL`)
//! plus its name in the list below.

use crate::sequence::Drill;

/// Declares each drill's module and lists its `DRILL` in [`ALL`], in this order.
macro_rules! registry {
    ($($drill:ident),* $(,)?) => {
        $(pub mod $drill;)*

        /// Every drill, in run order; what `drills list` shows.
        pub const ALL: &[Drill] = &[$($drill::DRILL),*];
    };
}

registry![
    db_down,
    db_bad_credentials,
    db_midflight_loss,
    port_unreachable,
    process_crash,
    restart_persistence,
    node_reboot,
];
