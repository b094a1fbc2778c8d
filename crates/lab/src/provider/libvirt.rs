//! libvirt provider: VMs under QEMU/KVM, /vagrant as a 9p or virtiofs share.

use stackpilot_core::Provider;

use super::NodeProvider;

/// libvirt VMs.
pub struct Libvirt;

impl NodeProvider for Libvirt {
    fn kind(&self) -> Provider {
        Provider::Libvirt
    }

    fn can_run(&self) -> bool {
        // Chosen only explicitly (STACKPILOT_PROVIDER=libvirt) until the automatic choice
        // probes that its guests actually boot here (/dev/kvm alone does not say so).
        false
    }
}
