//! Node providers behind one trait, and the registry that chooses among them.
//!
//! What a provider is (its name, how the host reaches its nodes, what `/vagrant` is on
//! them) is its [`stackpilot_core::config::ProviderDesc`], written once in the shared
//! core; a [`NodeProvider`] adds what only the lab needs: whether it can run here. Code
//! outside this crate gets [`ProviderFacts`] through a `NodeHandle` and never matches on a
//! provider. Adding a provider: its description in the core, one module here and one line
//! in [`REGISTRY`] (docs/architecture.md lists every file).

mod docker;
mod libvirt;
mod virtualbox;

use std::path::{Path, PathBuf};

use stackpilot_core::node::ProviderFacts;
use stackpilot_core::{Config, Provider};

use crate::error::Error;
use crate::images::Built;

/// Environment variable that overrides the provider choice.
pub const PROVIDER_ENV: &str = "STACKPILOT_PROVIDER";

/// One kind of lab node.
pub trait NodeProvider: Sync {
    /// Which provider this is (its description: `kind().desc()`).
    fn kind(&self) -> Provider;
    /// Whether its nodes can run on this host (for the automatic choice).
    fn can_run(&self) -> bool;
    /// Its facts, as handed to code outside the lab.
    fn facts(&self) -> ProviderFacts {
        let desc = self.kind().desc();
        ProviderFacts {
            name: desc.name.to_string(),
            is_vm: desc.is_vm,
            shared_folder_types: desc
                .shared_folder_types
                .iter()
                .map(|t| (*t).to_string())
                .collect(),
        }
    }
    /// Environment for `vagrant up` that only this provider needs (libvirt: the box and
    /// the QEMU driver its probe chose). Checks the host's setup for it first.
    fn up_env(&self, _repo: &Path, _cfg: &Config) -> Result<Vec<(&'static str, String)>, Error> {
        Ok(vec![])
    }
    /// Whether `node`'s machine in the Vagrant project at `vagrant_dir` runs now, known
    /// without Vagrant; `false` when this provider cannot tell.
    fn running(&self, _vagrant_dir: &Path, _node: &str) -> bool {
        false
    }
    /// The image its nodes boot from, when the lab builds it (`cargo xtask images`); `None`
    /// when the provider needs none or uses a published box.
    fn ensure_box(&self, _repo: &Path, _cfg: &Config) -> Result<Option<Built>, Error> {
        Ok(None)
    }
}

/// Every provider, in the order the automatic choice prefers them (VMs first, docker last:
/// it needs only a Docker engine).
pub static REGISTRY: &[&dyn NodeProvider] =
    &[&virtualbox::Virtualbox, &libvirt::Libvirt, &docker::Docker];

/// The registry's entry for `kind`.
pub fn get(kind: Provider) -> &'static dyn NodeProvider {
    REGISTRY
        .iter()
        .copied()
        .find(|p| p.kind() == kind)
        .unwrap_or(&docker::Docker)
}

/// The registry's entry named `name`.
pub fn by_name(name: &str) -> Option<&'static dyn NodeProvider> {
    REGISTRY.iter().copied().find(|p| p.kind().as_str() == name)
}

/// The provider to use: `STACKPILOT_PROVIDER` when set, else the first provider of the
/// registry that can run here.
pub fn choose_provider(env: Option<&str>) -> Result<Provider, Error> {
    match env.map(str::trim).filter(|s| !s.is_empty()) {
        Some(name) => by_name(name).map(|p| p.kind()).ok_or_else(|| {
            let names: Vec<&str> = REGISTRY.iter().map(|p| p.kind().as_str()).collect();
            Error::Core(stackpilot_core::Error::ConfigInvalid {
                path: PathBuf::from(format!("{PROVIDER_ENV}={name}")),
                message: format!(
                    "expected one of {}, found '{name}'\n  e.g. {PROVIDER_ENV}=docker cargo xtask lab up",
                    names.join(", ")
                ),
            })
        }),
        None => Ok(REGISTRY
            .iter()
            .find(|p| p.can_run())
            .map_or(Provider::Docker, |p| p.kind())),
    }
}

/// The provider named by `STACKPILOT_PROVIDER` (read here, once per resolution), else the
/// automatic choice.
pub fn from_env() -> Result<Provider, Error> {
    choose_provider(std::env::var(PROVIDER_ENV).ok().as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_override_is_validated() {
        assert_eq!(
            choose_provider(Some("docker")).expect("docker"),
            Provider::Docker
        );
        let err = choose_provider(Some("hyperv")).expect_err("unknown provider");
        assert!(err.to_string().contains("hyperv"), "{err}");
        assert_eq!(err.exit(), stackpilot_core::Exit::Usage);
        assert!(
            err.to_string().contains("virtualbox, libvirt, docker"),
            "{err}"
        );
    }

    #[test]
    fn every_provider_is_registered_once_with_its_facts() {
        for kind in Provider::ALL {
            assert_eq!(get(kind).kind(), kind);
            assert_eq!(
                REGISTRY.iter().filter(|p| p.kind() == kind).count(),
                1,
                "{kind}"
            );
        }
        let docker = get(Provider::Docker).facts();
        assert!(!docker.is_vm && docker.shared_folder_types.is_empty());
        let libvirt = get(Provider::Libvirt).facts();
        assert!(libvirt.is_vm);
        assert_eq!(libvirt.shared_folder_types, ["9p", "virtiofs"]);
        assert_eq!(
            get(Provider::Virtualbox).facts().shared_folder_types,
            ["vboxsf"]
        );
    }

    #[test]
    fn a_machine_vagrant_never_created_is_not_running() {
        let dir = std::env::temp_dir().join(format!("sp-running-{}", std::process::id()));
        for p in REGISTRY {
            assert!(!p.running(&dir, "control"), "{}", p.kind());
        }
    }

    #[test]
    fn the_automatic_choice_falls_back_to_docker() {
        assert_eq!(
            REGISTRY.last().map(|p| p.kind()),
            Some(Provider::Docker),
            "docker is the last resort"
        );
        assert!(
            get(Provider::Docker).can_run(),
            "docker is always a candidate"
        );
    }
}
