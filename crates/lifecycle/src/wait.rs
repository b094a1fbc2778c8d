//! The health-wait decision: pure, over the containers the engine reported.

use stackpilot_core::admin::ContainerInfo;
use stackpilot_core::compose::SERVICE_LABEL;

/// Where the stack stands while `lifecycle up` waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Every declared service has a running container, healthy (or without healthcheck).
    Ready,
    /// Not yet; what is still awaited, per service.
    Waiting(String),
    /// A container reached a state it does not come back from.
    Failed(String),
}

/// Decides from the declared services and the project's (non one-off) containers.
/// An unhealthy or exited container is still awaited: the restart policy and the
/// healthcheck's retries may bring it back, and the caller's timeout bounds the wait.
pub fn readiness(services: &[String], containers: &[ContainerInfo]) -> Readiness {
    if services.is_empty() {
        return Readiness::Failed("the compose file declares no services".into());
    }
    let mut waiting = Vec::new();
    for service in services {
        let mine: Vec<&ContainerInfo> = containers
            .iter()
            .filter(|c| c.labels.get(SERVICE_LABEL) == Some(service))
            .collect();
        if mine.is_empty() {
            waiting.push(format!("{service}: no container yet"));
            continue;
        }
        for c in mine {
            if c.state == "dead" {
                return Readiness::Failed(format!("{service}: container {} is dead", c.name));
            }
            let healthy = c.health == "healthy" || c.health == "none";
            if c.state != "running" {
                waiting.push(format!("{service}: {}", c.state));
            } else if !healthy {
                waiting.push(format!("{service}: {}", c.health));
            }
        }
    }
    if waiting.is_empty() {
        Readiness::Ready
    } else {
        Readiness::Waiting(waiting.join(", "))
    }
}

/// The services with a running container that its healthcheck calls unhealthy: compose
/// refuses to start what depends on them until they are healthy again.
pub fn unhealthy_services(containers: &[ContainerInfo]) -> Vec<String> {
    let mut found: Vec<String> = containers
        .iter()
        .filter(|c| c.state == "running" && c.health == "unhealthy")
        .filter_map(|c| c.labels.get(SERVICE_LABEL).cloned())
        .collect();
    found.sort();
    found.dedup();
    found
}
