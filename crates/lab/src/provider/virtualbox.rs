//! VirtualBox provider: VMs on the host-only network, /vagrant as a vboxsf shared folder.

use std::process::Command;

use stackpilot_core::Provider;

use super::NodeProvider;

/// VirtualBox VMs (the laptop default).
pub struct Virtualbox;

impl NodeProvider for Virtualbox {
    fn kind(&self) -> Provider {
        Provider::Virtualbox
    }

    fn can_run(&self) -> bool {
        Command::new("VBoxManage")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }
}
