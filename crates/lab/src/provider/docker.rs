//! Docker provider: nodes are containers running their own engine, the checkout
//! bind-mounted at /vagrant.

use stackpilot_core::Provider;

use super::NodeProvider;

/// Containers on the lab's own Docker network (the embedded default).
pub struct Docker;

impl NodeProvider for Docker {
    fn kind(&self) -> Provider {
        Provider::Docker
    }

    fn can_run(&self) -> bool {
        // The last resort of the automatic choice: a missing engine is reported by the
        // step that needs it, with the command to install it.
        true
    }
}
