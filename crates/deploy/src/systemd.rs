//! Service management on VM nodes: one systemd template unit, one instance per
//! environment (`stackpilot@dev.service`), enabled so the stack starts on boot and stops
//! cleanly with the node; its start/stop output goes to the journal.

use std::path::Path;

/// The unit template in the repo.
pub const TEMPLATE: &str = "infra/systemd/stackpilot@.service";
/// Where it is installed on a VM node.
pub const INSTALL_PATH: &str = "/etc/systemd/system/stackpilot@.service";

/// The instance unit of an environment.
pub fn unit_name(env: &str) -> String {
    format!("stackpilot@{env}.service")
}

/// The template with the node's repo mount (`/vagrant`) replaced by `repo`: what a test
/// verifies on a machine without `/vagrant`.
pub fn render(template: &str, repo: &Path) -> String {
    template.replace(
        stackpilot_core::node::NODE_REPO,
        &repo.display().to_string(),
    )
}
