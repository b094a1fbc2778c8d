//! Docker facades: typed views of the engine that hand a tool only the calls its role
//! allows.
//!
//! [`ReadOnlyDocker`] is verify's only way to the engine. Its bollard client is private and
//! it has no method that creates, starts, stops, kills, removes, execs, tags, pulls,
//! builds or prunes anything, so code holding it cannot mutate the engine: the guarantee
//! is in the type, and an e2e test records the engine's events to prove it.

use std::collections::HashMap;

use bollard::Docker;
use bollard::query_parameters::{
    EventsOptionsBuilder, InspectContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListImagesOptionsBuilder, ListNodesOptions, ListServicesOptionsBuilder,
    ListTasksOptionsBuilder,
};
use futures_util::StreamExt;

use crate::exit::{Exit, ExitStatus};

/// The engine's data types as bollard models them (container summaries, inspections, …).
pub use bollard::models;

/// Default engine socket when `DOCKER_HOST` names none.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Seconds any one engine call may take; a read-only call that takes longer is a fault.
const CALL_TIMEOUT_SECS: u64 = 20;

/// Why a facade call failed.
#[derive(Debug, thiserror::Error)]
pub enum FacadeError {
    /// The engine could not be reached at all.
    #[error(
        "docker engine not reachable at {socket}: {detail}\n  expected: a running Docker engine (install docker.io or docker-ce, start it with `systemctl start docker`, and run as a user that may use {socket})"
    )]
    Unreachable {
        /// The socket tried.
        socket: String,
        /// What the client reported.
        detail: String,
    },
    /// The tokio runtime the sync wrapper needs could not be built.
    #[error("cannot start the runtime for docker calls: {0}")]
    Runtime(std::io::Error),
    /// The engine answered a call with an error.
    #[error("docker {call} failed: {detail}")]
    Call {
        /// The call, e.g. `inspect container 1a2b`.
        call: String,
        /// The engine's or client's message.
        detail: String,
    },
}

impl ExitStatus for FacadeError {
    fn exit(&self) -> Exit {
        match self {
            FacadeError::Unreachable { .. } | FacadeError::Runtime(_) => Exit::PrereqMissing,
            FacadeError::Call { .. } => Exit::Failed,
        }
    }
}

/// A read-only view of one Docker engine: list, inspect, version and events, nothing else
/// (in swarm mode also the manager's service, task and node lists).
///
/// No method of this type can create, start, stop, kill, remove, exec, tag, pull, build,
/// prune, update a service or drain a node: verify holds this type, so verify cannot mutate
/// the engine. Do not add a method here that changes engine state, and do not expose the
/// inner client.
pub struct ReadOnlyDocker {
    runtime: tokio::runtime::Runtime,
    client: Docker,
    socket: String,
}

impl std::fmt::Debug for ReadOnlyDocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnlyDocker")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl ReadOnlyDocker {
    /// Connects to the local engine (`DOCKER_HOST` if it names a unix socket, else
    /// `/var/run/docker.sock`) and negotiates the API version down to the engine's.
    pub fn connect() -> Result<ReadOnlyDocker, FacadeError> {
        match std::env::var("DOCKER_HOST") {
            Ok(host) if !host.is_empty() => match host.strip_prefix("unix://") {
                Some(socket) => ReadOnlyDocker::connect_at(socket),
                // Quietly using the default socket instead would inspect another engine.
                None => Err(FacadeError::Unreachable {
                    socket: host.clone(),
                    detail: "DOCKER_HOST names a remote engine; the facade reads a local socket only (unset DOCKER_HOST or use unix://PATH)".into(),
                }),
            },
            _ => ReadOnlyDocker::connect_at(DEFAULT_SOCKET),
        }
    }

    /// Connects to the engine listening on the unix socket at `socket`.
    pub fn connect_at(socket: &str) -> Result<ReadOnlyDocker, FacadeError> {
        let unreachable = |detail: String| FacadeError::Unreachable {
            socket: socket.to_string(),
            detail,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(FacadeError::Runtime)?;
        let client =
            Docker::connect_with_socket(socket, CALL_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
                .map_err(|e| unreachable(e.to_string()))?;
        // bollard speaks a newer API than Debian's engine (1.41); negotiating also proves
        // the engine answers before any real call is made.
        let client = runtime
            .block_on(client.negotiate_version())
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(ReadOnlyDocker {
            runtime,
            client,
            socket: socket.to_string(),
        })
    }

    /// The socket this facade talks to.
    pub fn socket(&self) -> &str {
        &self.socket
    }

    /// The API version in use after negotiation, e.g. `1.41`.
    pub fn api_version(&self) -> String {
        self.client.client_version().to_string()
    }

    /// The engine's version report.
    pub fn version(&self) -> Result<models::SystemVersion, FacadeError> {
        self.runtime
            .block_on(self.client.version())
            .map_err(|e| call_error("version", e))
    }

    /// Every container, running or not, carrying all of `labels` (`key` or `key=value`).
    pub fn list_containers(
        &self,
        labels: &[&str],
    ) -> Result<Vec<models::ContainerSummary>, FacadeError> {
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&label_filter(labels))
            .build();
        self.runtime
            .block_on(self.client.list_containers(Some(options)))
            .map_err(|e| call_error("list containers", e))
    }

    /// A container's full inspection, by id or name; `None` when no such container exists
    /// (e.g. removed between a listing and this call).
    pub fn inspect_container(
        &self,
        id: &str,
    ) -> Result<Option<models::ContainerInspectResponse>, FacadeError> {
        let options = InspectContainerOptionsBuilder::new().size(false).build();
        match self
            .runtime
            .block_on(self.client.inspect_container(id, Some(options)))
        {
            Ok(c) => Ok(Some(c)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(call_error(&format!("inspect container {id}"), e)),
        }
    }

    /// Every image carrying all of `labels` (`key` or `key=value`).
    pub fn list_images(&self, labels: &[&str]) -> Result<Vec<models::ImageSummary>, FacadeError> {
        let options = ListImagesOptionsBuilder::new()
            .all(false)
            .filters(&label_filter(labels))
            .build();
        self.runtime
            .block_on(self.client.list_images(Some(options)))
            .map_err(|e| call_error("list images", e))
    }

    /// An image's inspection by id or reference; `None` when the engine has no such image.
    pub fn inspect_image(&self, id: &str) -> Result<Option<models::ImageInspect>, FacadeError> {
        match self.runtime.block_on(self.client.inspect_image(id)) {
            Ok(image) => Ok(Some(image)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(call_error(&format!("inspect image {id}"), e)),
        }
    }

    /// The engine's events between `since` and `until` (unix seconds, fractions allowed),
    /// restricted by `filters` (e.g. `label` → `["k=v"]`). Returns once `until` has passed.
    pub fn events(
        &self,
        since: &str,
        until: &str,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<models::EventMessage>, FacadeError> {
        let options = EventsOptionsBuilder::new()
            .since(since)
            .until(until)
            .filters(filters)
            .build();
        self.runtime.block_on(async {
            let mut stream = self.client.events(Some(options));
            let mut events = Vec::new();
            while let Some(event) = stream.next().await {
                events.push(event.map_err(|e| call_error("events", e))?);
            }
            Ok(events)
        })
    }
}

impl ReadOnlyDocker {
    /// The swarm's services carrying all of `labels` (e.g. a stack's
    /// `com.docker.stack.namespace=NAME`). Only a manager answers.
    pub fn list_services(&self, labels: &[&str]) -> Result<Vec<models::Service>, FacadeError> {
        let options = ListServicesOptionsBuilder::new()
            .filters(&label_filter(labels))
            .build();
        self.runtime
            .block_on(self.client.list_services(Some(options)))
            .map_err(|e| call_error("list services", e))
    }

    /// The swarm's tasks carrying all of `labels`, whatever their state (the engine keeps a
    /// few finished tasks per slot as history). Only a manager answers.
    pub fn list_tasks(&self, labels: &[&str]) -> Result<Vec<models::Task>, FacadeError> {
        let options = ListTasksOptionsBuilder::new()
            .filters(&label_filter(labels))
            .build();
        self.runtime
            .block_on(self.client.list_tasks(Some(options)))
            .map_err(|e| call_error("list tasks", e))
    }

    /// The swarm's nodes, with their state, availability, labels and manager status. Only a
    /// manager answers.
    pub fn list_nodes(&self) -> Result<Vec<models::Node>, FacadeError> {
        self.runtime
            .block_on(self.client.list_nodes(None::<ListNodesOptions>))
            .map_err(|e| call_error("list nodes", e))
    }
}

fn label_filter(labels: &[&str]) -> HashMap<String, Vec<String>> {
    let mut filters = HashMap::new();
    if !labels.is_empty() {
        filters.insert(
            "label".to_string(),
            labels.iter().map(|l| l.to_string()).collect(),
        );
    }
    filters
}

fn call_error(call: &str, e: bollard::errors::Error) -> FacadeError {
    FacadeError::Call {
        call: call.to_string(),
        detail: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_socket_is_a_missing_prerequisite_naming_docker() {
        let err = ReadOnlyDocker::connect_at("/nonexistent/docker.sock").expect_err("no engine");
        assert_eq!(err.exit(), Exit::PrereqMissing);
        let text = err.to_string();
        assert!(
            text.contains("docker engine not reachable at /nonexistent/docker.sock"),
            "{text}"
        );
    }

    #[test]
    fn label_filter_asks_for_every_label() {
        let f = label_filter(&["a=1", "b"]);
        assert_eq!(
            f.get("label"),
            Some(&vec!["a=1".to_string(), "b".to_string()])
        );
        assert!(label_filter(&[]).is_empty());
    }
}
