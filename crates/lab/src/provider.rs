//! Which provider the lab's nodes run under.

use std::path::PathBuf;
use std::process::Command;

use stackpilot_core::Provider;

use crate::error::Error;

/// Environment variable that overrides the provider choice.
pub const PROVIDER_ENV: &str = "STACKPILOT_PROVIDER";

/// The provider to use: `STACKPILOT_PROVIDER` when set, else a usable VM provider, else docker.
pub fn choose_provider(env: Option<&str>) -> Result<Provider, Error> {
    match env.map(str::trim) {
        Some("docker") => Ok(Provider::Docker),
        Some("virtualbox") => Ok(Provider::Virtualbox),
        Some("libvirt") => Ok(Provider::Libvirt),
        Some(other) if !other.is_empty() => {
            Err(Error::Core(stackpilot_core::Error::ConfigInvalid {
                path: PathBuf::from(format!("${PROVIDER_ENV}")),
                message: format!(
                    "expected one of docker, virtualbox, libvirt, found '{other}'\n  e.g. {PROVIDER_ENV}=docker cargo xtask lab up"
                ),
            }))
        }
        _ => {
            let vbox = Command::new("VBoxManage")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success());
            Ok(if vbox {
                Provider::Virtualbox
            } else {
                Provider::Docker
            })
        }
    }
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
    }
}
