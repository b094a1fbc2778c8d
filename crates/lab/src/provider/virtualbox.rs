//! VirtualBox provider: VMs on the host-only network, /vagrant as a vboxsf shared folder.

use std::process::Command;

use stackpilot_core::Provider;
use stackpilot_core::node::vm_shared_folder_types;

use super::NodeProvider;

/// VirtualBox VMs (the laptop default).
pub struct Virtualbox;

impl NodeProvider for Virtualbox {
    fn kind(&self) -> Provider {
        Provider::Virtualbox
    }

    fn is_vm(&self) -> bool {
        true
    }

    fn shared_folder_types(&self) -> &'static [&'static str] {
        vm_shared_folder_types(self.kind().as_str()).unwrap_or(&[])
    }

    fn can_run(&self) -> bool {
        Command::new("VBoxManage")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }
}
