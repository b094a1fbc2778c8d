//! The mutating Docker facade of lifecycle and clean-room: list and inspect what they act
//! on, remove containers, images and networks, prune the build cache.
//!
//! Verify never gets this type (it has the read-only facade). There is deliberately no
//! create/start call here: starting the stack is compose's job, through `lifecycle up`.
//! The API is blocking; each call runs on a private single-threaded runtime.

use std::collections::{BTreeMap, HashMap};

use bollard::Docker;
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptions, ListImagesOptions, ListNetworksOptions,
    PruneBuildOptions, RemoveContainerOptions, RemoveImageOptions,
};
use serde::Serialize;

use crate::exit::{Exit, ExitStatus};

/// Label every application image carries: which app it is (`stackpilot.app=mock-exchange`).
pub const APP_LABEL: &str = "stackpilot.app";
/// The application's name, the value of [`APP_LABEL`].
pub const APP_NAME: &str = "mock-exchange";
/// Label with the unique build id of an application image.
pub const BUILD_ID_LABEL: &str = "stackpilot.build-id";
/// Repository of application image tags (`stackpilot/mock-exchange:<git sha>-<build id>`).
pub const APP_REPO: &str = "stackpilot/mock-exchange";

/// A container as lifecycle and clean-room see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerInfo {
    /// Full container id.
    pub id: String,
    /// Container name without the leading `/`.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The image reference it was created from.
    pub image: String,
    /// The image id it runs.
    pub image_id: String,
    /// `created`, `running`, `exited`, `restarting`, …
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`, or `none` without a healthcheck.
    pub health: String,
    /// How often the engine restarted it.
    pub restarts: i64,
}

/// An image as clean-room sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageInfo {
    /// Image id (`sha256:…`).
    pub id: String,
    /// Its `repo:tag` names.
    pub tags: Vec<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Size in bytes.
    pub size: i64,
    /// Creation time, seconds since the epoch.
    pub created: i64,
}

/// What happened to an image [`DockerAdmin::remove_image`] was asked to remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Removal {
    /// Removed (with all its tags and untagged parents).
    Removed,
    /// It was not there (any more).
    Absent,
    /// The engine refused (409 conflict), e.g. another image is built on it; its message.
    Refused(String),
}

/// Why a Docker call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No async runtime could be made for the client.
    #[error("cannot start the Docker client's runtime: {0}")]
    Runtime(std::io::Error),
    /// The engine cannot be reached.
    #[error(
        "cannot reach the Docker engine: {source}\n  expected: a running engine on /var/run/docker.sock (install docker.io or docker-ce and start it)"
    )]
    Connect {
        /// bollard's error.
        source: bollard::errors::Error,
    },
    /// A call to the engine failed.
    #[error("docker {call} failed: {source}")]
    Call {
        /// What was called, with its argument (`remove image sha256:…`).
        call: String,
        /// bollard's error.
        source: bollard::errors::Error,
    },
}

impl ExitStatus for AdminError {
    fn exit(&self) -> Exit {
        match self {
            AdminError::Runtime(_) | AdminError::Connect { .. } => Exit::PrereqMissing,
            AdminError::Call { .. } => Exit::Failed,
        }
    }
}

/// A connected engine client for the node-side tools that mutate.
pub struct DockerAdmin {
    docker: Docker,
    rt: tokio::runtime::Runtime,
}

/// The engine filter `label=<selector>`.
pub fn label_filter(selector: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![selector.to_string()])])
}

fn call(what: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> AdminError {
    let call = what.into();
    move |source| AdminError::Call { call, source }
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl DockerAdmin {
    /// Connects to the local engine (socket or `DOCKER_HOST`) and negotiates the API version.
    pub fn connect() -> Result<DockerAdmin, AdminError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(AdminError::Runtime)?;
        let docker = Docker::connect_with_local_defaults()
            .map_err(|source| AdminError::Connect { source })?;
        let docker = rt
            .block_on(docker.negotiate_version())
            .map_err(|source| AdminError::Connect { source })?;
        rt.block_on(docker.ping())
            .map_err(|source| AdminError::Connect { source })?;
        Ok(DockerAdmin { docker, rt })
    }

    /// Every container (running or not) carrying the label `selector` (`key=value`),
    /// inspected for state, health and restarts, sorted by name.
    pub fn containers(&self, selector: &str) -> Result<Vec<ContainerInfo>, AdminError> {
        let opts = ListContainersOptions {
            all: true,
            filters: Some(label_filter(selector)),
            ..Default::default()
        };
        let list = self
            .rt
            .block_on(self.docker.list_containers(Some(opts)))
            .map_err(call(format!("list containers with label {selector}")))?;
        let mut out = Vec::new();
        for summary in list {
            let Some(id) = summary.id else { continue };
            match self.inspect_container(&id)? {
                Some(c) => out.push(c),
                // Removed between list and inspect: nothing left to report or act on.
                None => continue,
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// One container by id or name; `None` when it does not exist.
    pub fn inspect_container(&self, id: &str) -> Result<Option<ContainerInfo>, AdminError> {
        let r = match self.rt.block_on(
            self.docker
                .inspect_container(id, None::<InspectContainerOptions>),
        ) {
            Ok(r) => r,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(call(format!("inspect container {id}"))(e)),
        };
        let state = r.state.as_ref();
        let config = r.config.as_ref();
        Ok(Some(ContainerInfo {
            id: r.id.clone().unwrap_or_else(|| id.to_string()),
            name: r
                .name
                .as_deref()
                .unwrap_or(id)
                .trim_start_matches('/')
                .to_string(),
            labels: config
                .and_then(|c| c.labels.clone())
                .unwrap_or_default()
                .into_iter()
                .collect(),
            image: config.and_then(|c| c.image.clone()).unwrap_or_default(),
            image_id: r.image.clone().unwrap_or_default(),
            state: state
                .and_then(|s| s.status)
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into()),
            health: state
                .and_then(|s| s.health.as_ref())
                .and_then(|h| h.status)
                .map(|h| h.to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "none".into()),
            restarts: r.restart_count.unwrap_or(0),
        }))
    }

    /// Every top-level image (tagged, or dangling) carrying the label `selector`
    /// (`key=value`). Intermediate build layers are not listed: removing the image built
    /// on them removes them too.
    pub fn images(&self, selector: &str) -> Result<Vec<ImageInfo>, AdminError> {
        let opts = ListImagesOptions {
            all: false,
            filters: Some(label_filter(selector)),
            ..Default::default()
        };
        let list = self
            .rt
            .block_on(self.docker.list_images(Some(opts)))
            .map_err(call(format!("list images with label {selector}")))?;
        Ok(list
            .into_iter()
            .map(|i| ImageInfo {
                id: i.id,
                tags: i
                    .repo_tags
                    .into_iter()
                    .filter(|t| t != "<none>:<none>")
                    .collect(),
                labels: i.labels.into_iter().collect(),
                size: i.size,
                created: i.created,
            })
            .collect())
    }

    /// The id of an image by reference; `None` when the engine has no such image.
    pub fn image_id(&self, reference: &str) -> Result<Option<String>, AdminError> {
        match self.rt.block_on(self.docker.inspect_image(reference)) {
            Ok(i) => Ok(i.id),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(call(format!("inspect image {reference}"))(e)),
        }
    }

    /// Removes a container (stopping it first); its volumes are kept.
    pub fn remove_container(&self, id: &str) -> Result<(), AdminError> {
        let opts = RemoveContainerOptions {
            force: true,
            v: false,
            link: false,
        };
        match self
            .rt
            .block_on(self.docker.remove_container(id, Some(opts)))
        {
            Ok(()) => Ok(()),
            // Already gone (e.g. compose removed it meanwhile): the goal is reached.
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(call(format!("remove container {id}"))(e)),
        }
    }

    /// Removes an image with all its tags and its untagged parents. An image a running
    /// container uses, or that another image is built on, is refused by the engine.
    pub fn remove_image(&self, id: &str) -> Result<Removal, AdminError> {
        let opts = RemoveImageOptions {
            force: true,
            noprune: false,
            ..Default::default()
        };
        match self
            .rt
            .block_on(self.docker.remove_image(id, Some(opts), None))
        {
            Ok(_) => Ok(Removal::Removed),
            Err(e) if is_not_found(&e) => Ok(Removal::Absent),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409,
                message,
            }) => Ok(Removal::Refused(message)),
            Err(e) => Err(call(format!("remove image {id}"))(e)),
        }
    }

    /// Names of the networks carrying the label `selector` (`key=value`), sorted.
    pub fn networks(&self, selector: &str) -> Result<Vec<String>, AdminError> {
        let opts = ListNetworksOptions {
            filters: Some(label_filter(selector)),
        };
        let list = self
            .rt
            .block_on(self.docker.list_networks(Some(opts)))
            .map_err(call(format!("list networks {selector}")))?;
        let mut names: Vec<String> = list.into_iter().filter_map(|n| n.name).collect();
        names.sort();
        Ok(names)
    }

    /// Removes a network. One that still has containers attached is refused by the engine.
    pub fn remove_network(&self, name: &str) -> Result<Removal, AdminError> {
        match self.rt.block_on(self.docker.remove_network(name)) {
            Ok(()) => Ok(Removal::Removed),
            Err(e) if is_not_found(&e) => Ok(Removal::Absent),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 403 | 409,
                message,
            }) => Ok(Removal::Refused(message)),
            Err(e) => Err(call(format!("remove network {name}"))(e)),
        }
    }

    /// Prunes the engine's whole build cache (`/build/prune`, all entries); returns the
    /// bytes reclaimed.
    pub fn prune_build_cache(&self) -> Result<u64, AdminError> {
        let opts = PruneBuildOptions {
            all: Some(true),
            ..Default::default()
        };
        let r = self
            .rt
            .block_on(self.docker.prune_build(Some(opts)))
            .map_err(call("prune build cache"))?;
        Ok(r.space_reclaimed.unwrap_or(0).max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_filter_is_one_label_selector() {
        let f = label_filter("com.docker.compose.project=stackpilot-dev");
        assert_eq!(
            f.get("label"),
            Some(&vec![
                "com.docker.compose.project=stackpilot-dev".to_string()
            ])
        );
        assert_eq!(f.len(), 1);
    }
}
