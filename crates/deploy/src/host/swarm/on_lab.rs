//! The lab's swarm as the swarm deploy flows drive it: [`SwarmOps`] over `lab::swarm` (the
//! lab registry, the environment's stack on the manager, the host's deployment record).
//! Swarm verify is the caller's (the `verify` crate sits above this one), passed in.

use std::path::PathBuf;
use std::time::Duration;

use lab::swarm::stack::Deployed;
use lab::swarm::{Stack, Swarm, registry};
use stackpilot_core::Config;
use stackpilot_core::receipts::BuildReceipt;

use super::{Pinned, ServiceView, SwarmOps};
use crate::host::ops::{HostError, NodeOps, Verified};
use crate::plan::Release;

/// Swarm verify of the environment, waiting up to the given time when there is one.
pub type VerifyFn<'a> = dyn Fn(Option<Duration>) -> Result<Verified, HostError> + 'a;

/// The lab's swarm and one environment's stack on it.
pub struct LabSwarm<'a> {
    root: PathBuf,
    cfg: Config,
    env: String,
    swarm: &'a Swarm,
    manager: &'a dyn NodeOps,
    stack: Stack,
    verify: &'a VerifyFn<'a>,
}

fn failed(action: &str, e: impl std::fmt::Display) -> HostError {
    HostError::failed(action, e.to_string())
}

/// A deployment record as the flows pin it.
fn pinned(d: &Deployed) -> Pinned {
    let b = &d.build;
    Pinned {
        reference: d.app_image.clone(),
        release: Release {
            tag: b.tag.clone(),
            image_id: b.image_id.clone(),
            build_id: b.build_id.clone(),
            git_sha: b.git_sha.clone(),
            dirty: b.dirty,
            built_at: b.built_at.clone(),
            // The swarm record keeps the build, not what it was made from.
            source_digest: String::new(),
            config_digest: String::new(),
            overrides: vec![],
        },
    }
}

impl<'a> LabSwarm<'a> {
    /// ENV's stack on `swarm` of the checkout at `root`; `manager` runs the manager's
    /// commands (its engine receives the image before the push).
    pub fn new(
        root: PathBuf,
        cfg: Config,
        env: &str,
        swarm: &'a Swarm,
        manager: &'a dyn NodeOps,
        verify: &'a VerifyFn<'a>,
    ) -> Result<LabSwarm<'a>, HostError> {
        let stack = Stack::for_env(&cfg, env).map_err(|e| HostError::Usage(e.to_string()))?;
        Ok(LabSwarm {
            root,
            cfg,
            env: env.to_string(),
            swarm,
            manager,
            stack,
            verify,
        })
    }

    /// The configuration as it is now (`lab up` records the lab's subnet in it).
    fn lab_cfg(&self) -> Result<Config, HostError> {
        Config::load(&self.root.join(stackpilot_core::config::CONFIG_FILE))
            .map_err(|e| failed("deploy", e))
    }

    fn receipt(&self, r: &Release) -> BuildReceipt {
        crate::node::receipt_for(&self.env, r)
    }

    fn deployed_record(&self, p: &Pinned, previous: Option<Deployed>) -> Deployed {
        Deployed {
            stack: self.stack.name.clone(),
            app_image: p.reference.clone(),
            build: self.receipt(&p.release),
            deployed_at: stackpilot_core::time::now_rfc3339(),
            previous: previous.map(Box::new),
        }
    }
}

impl SwarmOps for LabSwarm<'_> {
    fn push(&self, release: &Release) -> Result<(String, String), HostError> {
        let mut log = match self.manager.image_id(&release.tag)? {
            Some(id) if id == release.image_id => format!(
                "{} already in the manager's engine as {id}: not loaded again\n",
                release.tag
            ),
            _ => self.manager.load_image(&release.tag, &release.image_id)?,
        };
        let reference = self
            .swarm
            .registry()
            .push(&release.tag, &self.stack.name)
            .map_err(|e| failed("deploy", e))?;
        log.push_str(&format!("pushed {} as {reference}\n", release.tag));
        Ok((log, reference))
    }

    fn registry_digest(&self, release: &Release) -> Result<String, HostError> {
        self.swarm
            .registry()
            .digest(&self.stack.name, registry::version_of(&release.tag))
            .map_err(|e| failed("deploy", e))
    }

    fn deployed(&self) -> (Option<Pinned>, Option<Pinned>) {
        match self.stack.deployed(&self.root, &self.cfg) {
            None => (None, None),
            Some(d) => (Some(pinned(&d)), d.previous.as_deref().map(pinned)),
        }
    }

    fn update(&self, to: &Pinned) -> Result<String, HostError> {
        let cfg = self.lab_cfg()?;
        let receipt = self.receipt(&to.release);
        self.stack
            .update(&self.root, &cfg, self.swarm, to.reference.clone(), receipt)
            .map_err(|e| failed("deploy", e))?;
        Ok(format!(
            "docker stack deploy {} on {} with the api pinned to {}; recorded as deployed\n",
            self.stack.name, self.swarm.manager.name, to.reference
        ))
    }

    fn record(&self, current: &Pinned, previous: Option<&Pinned>) -> Result<(), HostError> {
        let before = previous.map(|p| self.deployed_record(p, None));
        let d = self.deployed_record(current, before);
        self.stack
            .record(&self.root, &self.cfg, &d)
            .map_err(|e| failed("deploy", e))
    }

    fn rollback(&self) -> Result<String, HostError> {
        self.stack
            .rollback_api(self.swarm)
            .map_err(|e| failed("rollback", e))
    }

    fn view(&self) -> Result<ServiceView, HostError> {
        self.stack
            .api_view(self.swarm)
            .map_err(|e| failed("deploy", e))
    }

    fn remove(&self) -> Result<String, HostError> {
        self.stack
            .remove(self.swarm)
            .map_err(|e| failed("deploy", e))?;
        Ok(format!(
            "stack {} removed (volumes kept)\n",
            self.stack.name
        ))
    }

    fn verify(&self, wait: Option<Duration>) -> Result<Verified, HostError> {
        (self.verify)(wait)
    }
}
