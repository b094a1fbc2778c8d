//! libvirt provider: VMs under QEMU/KVM, /vagrant as a 9p or virtiofs share.

use std::path::{Path, PathBuf};

use stackpilot_core::config::{CONFIG_FILE, LOCAL_BOX, UBUNTU_BOX};
use stackpilot_core::{Config, Provider};

use super::NodeProvider;
use crate::error::Error;
use crate::images::Built;

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

    fn up_env(&self, repo: &Path, cfg: &Config) -> Result<Vec<(&'static str, String)>, Error> {
        let chosen = cfg.images.libvirt_box.as_str();
        if ![LOCAL_BOX, UBUNTU_BOX].contains(&chosen) {
            return Err(Error::Core(stackpilot_core::Error::ConfigInvalid {
                path: PathBuf::from(CONFIG_FILE),
                message: format!(
                    "field `images.libvirt_box`: expected \"{LOCAL_BOX}\" or \"{UBUNTU_BOX}\", found \"{chosen}\""
                ),
            }));
        }
        crate::prereq::ensure_libvirt_host()?;
        if chosen == UBUNTU_BOX {
            return Ok(vec![("STACKPILOT_LIBVIRT_BOX", chosen.to_string())]);
        }
        let (b, _) = crate::vmbox::ensure(repo, cfg)?;
        let probe = crate::vmbox::driver(&repo.join(&cfg.state.host_dir), &b)?;
        Ok(vec![
            ("STACKPILOT_LIBVIRT_BOX", b.name),
            ("STACKPILOT_LIBVIRT_DRIVER", probe.driver.to_string()),
        ])
    }

    fn running(&self, vagrant_dir: &Path, node: &str) -> bool {
        // vagrant-libvirt records the domain's UUID as the machine id.
        let id = stackpilot_core::transport::provider_machine_id(vagrant_dir, node, self.kind());
        let Some(id) = id else {
            return false;
        };
        std::process::Command::new("virsh")
            .args(["-c", "qemu:///system", "domstate", &id])
            .output()
            .is_ok_and(|o| {
                o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "running"
            })
    }

    fn ensure_box(&self, repo: &Path, cfg: &Config) -> Result<Option<Built>, Error> {
        if cfg.images.libvirt_box != LOCAL_BOX {
            return Ok(None);
        }
        crate::prereq::ensure_libvirt_host()?;
        let (b, seconds) = crate::vmbox::ensure(repo, cfg)?;
        // Vagrant keeps no id of a local box: its id is the recipe hash.
        Ok(Some(Built {
            name: "box".into(),
            tag: b.name,
            id: b.recipe,
            size: 0,
            seconds,
        }))
    }
}
