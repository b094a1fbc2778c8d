//! `make status`: what an environment runs on a node, and whether it is up. Pure: the
//! facts come from the node's `deploy state` and two HTTP probes.

use serde::{Deserialize, Serialize};
use stackpilot_core::output::{Render, Table};

use crate::plan::{Deployed, EnvState};

/// One container of the stack, as the node's `deploy state` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackContainer {
    /// Compose service.
    #[serde(default)]
    pub service: String,
    /// Container name.
    #[serde(default)]
    pub name: String,
    /// Engine state (`running`, `exited`, …).
    #[serde(default)]
    pub state: String,
    /// Health (`healthy`, `none`, …).
    #[serde(default)]
    pub health: String,
    /// Restart count.
    #[serde(default)]
    pub restarts: i64,
    /// Image reference.
    #[serde(default)]
    pub image: String,
}

impl StackContainer {
    /// Running, and healthy when it has a healthcheck.
    pub fn serving(&self) -> bool {
        self.state == "running" && matches!(self.health.as_str(), "healthy" | "none" | "")
    }
}

/// One HTTP probe of the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    /// `/health` or `/ready`.
    pub path: String,
    /// The status code, when it answered.
    pub code: Option<u16>,
    /// The body, or why there was no answer.
    pub detail: String,
}

/// The status of one environment on one node.
#[derive(Debug, Clone, Serialize)]
pub struct EnvStatus {
    /// The node.
    pub node: String,
    /// The environment.
    pub env: String,
    /// The deployed release, when and by whom.
    pub deployed: Option<Deployed>,
    /// The release a rollback would switch to.
    pub rollback_to: Option<String>,
    /// The releases kept on the node for this environment (short tags).
    pub kept: Vec<String>,
    /// The stack's containers.
    pub containers: Vec<StackContainer>,
    /// `/health` and `/ready`.
    pub probes: Vec<Probe>,
    /// Every container serves and `/ready` answered 200.
    pub up: bool,
}

impl EnvStatus {
    /// Builds the status from the node's facts and the probes; decides `up`.
    pub fn new(
        node: &str,
        env: &str,
        state: &EnvState,
        containers: Vec<StackContainer>,
        probes: Vec<Probe>,
    ) -> EnvStatus {
        let ready = probes
            .iter()
            .any(|p| p.path == "/ready" && p.code == Some(200));
        let up = ready && !containers.is_empty() && containers.iter().all(StackContainer::serving);
        EnvStatus {
            node: node.to_string(),
            env: env.to_string(),
            deployed: state.current.clone(),
            rollback_to: state.previous().map(|r| r.tag.clone()),
            kept: state
                .history
                .iter()
                .map(|r| r.short().to_string())
                .collect(),
            containers,
            probes,
            up,
        }
    }

    /// Why the environment is not up (None when it is).
    pub fn down_reason(&self) -> Option<String> {
        if self.up {
            return None;
        }
        if self.containers.is_empty() {
            return Some("no container of the stack exists".into());
        }
        let not_serving: Vec<String> = self
            .containers
            .iter()
            .filter(|c| !c.serving())
            .map(|c| format!("{} {}", c.service, c.state))
            .collect();
        if !not_serving.is_empty() {
            return Some(format!("not serving: {}", not_serving.join(", ")));
        }
        Some("/ready did not answer 200".into())
    }
}

impl Render for EnvStatus {
    fn human(&self) -> String {
        let mut out = format!("env {} on {}\n", self.env, self.node);
        match &self.deployed {
            Some(d) => {
                out.push_str(&format!("deployed release: {}\n", d.release.tag));
                out.push_str(&format!("  image id:       {}\n", d.release.image_id));
                out.push_str(&format!(
                    "  deployed at:    {} by {} ({})\n",
                    d.at, d.by, d.how
                ));
                if !d.release.overrides.is_empty() {
                    out.push_str(&format!("  overrides:      {:?}\n", d.release.overrides));
                }
            }
            None => out.push_str(&format!(
                "deployed release: none (never deployed here: make deploy ENV={})\n",
                self.env
            )),
        }
        out.push_str(&format!(
            "  rollback to:    {}\n",
            self.rollback_to.as_deref().unwrap_or("-")
        ));
        out.push_str(&format!("  kept releases:  {}\n", self.kept.join(", ")));
        if self.containers.is_empty() {
            out.push_str("containers: none\n");
        } else {
            let mut table = Table::new(&[
                "service",
                "container",
                "state",
                "health",
                "restarts",
                "image",
            ]);
            for c in &self.containers {
                table.row([
                    c.service.clone(),
                    c.name.clone(),
                    c.state.clone(),
                    // The engine keeps the last health of a stopped container; it means nothing.
                    if c.state == "running" {
                        c.health.clone()
                    } else {
                        "-".into()
                    },
                    c.restarts.to_string(),
                    c.image.clone(),
                ]);
            }
            out.push_str(&format!("{}\n", table.render()));
        }
        for p in &self.probes {
            match p.code {
                Some(code) => out.push_str(&format!("{:<8} {code} {}\n", p.path, p.detail.trim())),
                None => out.push_str(&format!("{:<8} no answer: {}\n", p.path, p.detail)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(service: &str, state: &str, health: &str) -> StackContainer {
        StackContainer {
            service: service.into(),
            name: format!("stackpilot-dev_{service}_1"),
            state: state.into(),
            health: health.into(),
            restarts: 0,
            image: "img".into(),
        }
    }

    fn probes(ready: Option<u16>) -> Vec<Probe> {
        vec![
            Probe {
                path: "/health".into(),
                code: ready,
                detail: String::new(),
            },
            Probe {
                path: "/ready".into(),
                code: ready,
                detail: "connection refused".into(),
            },
        ]
    }

    #[test]
    fn a_running_healthy_ready_stack_is_up() {
        let s = EnvStatus::new(
            "worker1",
            "dev",
            &EnvState::default(),
            vec![
                container("api", "running", "healthy"),
                container("db", "running", "healthy"),
            ],
            probes(Some(200)),
        );
        assert!(s.up);
        assert_eq!(s.down_reason(), None);
    }

    #[test]
    fn a_stopped_stack_is_down_and_says_which_container() {
        let s = EnvStatus::new(
            "worker1",
            "dev",
            &EnvState::default(),
            vec![
                container("api", "exited", "unhealthy"),
                container("db", "running", "healthy"),
            ],
            probes(None),
        );
        assert!(!s.up);
        assert_eq!(s.down_reason().as_deref(), Some("not serving: api exited"));
        assert!(s.human().contains("/ready   no answer"), "{}", s.human());
    }

    #[test]
    fn no_containers_is_down() {
        let s = EnvStatus::new("worker1", "dev", &EnvState::default(), vec![], probes(None));
        assert!(!s.up);
        assert!(s.human().contains("containers: none"));
    }
}
