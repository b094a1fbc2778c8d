//! Node side: `verify inspect` gathers the facts of one environment from the node's engine
//! (through the read-only facade only), from compose's reading of the compose file, and
//! from the receipts. It judges nothing: the host evaluates the document.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use stackpilot_core::compose::{self, APP_IMAGE_VAR, DB_IMAGE_VAR, PORT_VAR, Project};
use stackpilot_core::facade::{ReadOnlyDocker, models};
use stackpilot_core::receipts::{self, BUILD_RECEIPT, CLEAN_RECEIPT, ReceiptError};

use crate::inspection::{ContainerFact, Declared, Engine, Fact, ImageFact, Inspection, Wiring};
use crate::verdict::{API_SERVICE, hidden_containers};

/// Image label carrying the unique build id.
pub const BUILD_ID_LABEL: &str = "stackpilot.build-id";
/// Label compose 1.29+ and v2 write with the env file used; older versions write none.
pub const ENV_FILE_LABEL: &str = "com.docker.compose.project.environment_file";

/// What to inspect: one environment on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// This node's name (from its identity).
    pub node: String,
    /// The lab's name.
    pub lab: String,
    /// Environment name.
    pub env: String,
    /// Compose wiring of the environment.
    pub project: Project,
    /// The environment's receipt directory (`<state.node_dir>/<env>`).
    pub state_dir: PathBuf,
}

impl Scope {
    /// The wiring as plain strings, for the document.
    pub fn wiring(&self) -> Wiring {
        Wiring {
            compose_file: self.project.file.display().to_string(),
            working_dir: self.project.directory.display().to_string(),
            env_file: self.project.env_file.display().to_string(),
        }
    }
}

/// Gathers the inspection document. `engine` is the facade, or why it could not connect
/// (the document is still produced so the host can tell an engine fault from the rest).
pub fn gather(
    scope: &Scope,
    engine: Result<&ReadOnlyDocker, String>,
    declared: Fact<Declared>,
) -> Inspection {
    let build_receipt = receipt(&scope.state_dir.join(BUILD_RECEIPT));
    let clean_receipt = receipt(&scope.state_dir.join(CLEAN_RECEIPT));
    let mut doc = Inspection {
        node: scope.node.clone(),
        lab: scope.lab.clone(),
        env: scope.env.clone(),
        project: scope.project.name.clone(),
        port: scope.project.port,
        expected: scope.wiring(),
        engine: Fact::Absent("not contacted".into()),
        declared,
        containers: Vec::new(),
        port_publishers: Vec::new(),
        hidden: Vec::new(),
        api_image: None,
        build_receipt,
        clean_receipt,
    };
    let docker = match engine {
        Ok(d) => d,
        Err(why) => {
            doc.engine = Fact::Error(why);
            return doc;
        }
    };
    if let Err(why) = engine_facts(scope, docker, &mut doc) {
        doc.engine = Fact::Error(why);
    }
    doc
}

/// Fills in what the engine knows; an engine error ends the gathering.
fn engine_facts(
    scope: &Scope,
    docker: &ReadOnlyDocker,
    doc: &mut Inspection,
) -> Result<(), String> {
    let version = docker.version().map_err(|e| e.to_string())?;
    doc.engine = Fact::Found(Engine {
        version: version.version.unwrap_or_default(),
        api_version: docker.api_version(),
    });
    // One listing of every container: the project's are picked by label, the port's
    // publishers by their published ports; a second filtered call would race the first.
    let all = docker.list_containers(&[]).map_err(|e| e.to_string())?;
    for summary in &all {
        let Some(id) = summary.id.as_deref() else {
            continue;
        };
        let labels = summary.labels.clone().unwrap_or_default();
        let in_project = labels.get(compose::PROJECT_LABEL).map(String::as_str)
            == Some(scope.project.name.as_str());
        let running = summary
            .state
            .as_ref()
            .is_some_and(|s| s.to_string() == "running");
        let publishes = running
            && summary
                .ports
                .iter()
                .flatten()
                .any(|p| p.public_port == Some(scope.project.port));
        if !in_project && !publishes {
            continue;
        }
        let fact = match docker.inspect_container(id) {
            Ok(Some(c)) => container_fact(&c),
            // Removed between the listing and the inspection: it no longer exists.
            Ok(None) => continue,
            Err(e) => return Err(e.to_string()),
        };
        if publishes {
            doc.port_publishers.push(fact.clone());
        }
        if in_project {
            doc.containers.push(fact);
        }
    }
    let declared = doc.declared.found().map(|d| d.services.clone());
    doc.hidden = hidden_containers(
        &scope.project.name,
        &doc.containers,
        &doc.port_publishers,
        declared.as_deref(),
    );
    let api = doc
        .containers
        .iter()
        .find(|c| c.running() && !c.oneoff && c.service.as_deref() == Some(API_SERVICE));
    if let Some(api) = api {
        doc.api_image = Some(match docker.inspect_image(&api.image_id) {
            Ok(Some(img)) => Fact::Found(image_fact(&img)),
            Ok(None) => Fact::Absent(format!("image {} is not on the engine", api.image_id)),
            Err(e) => Fact::Error(e.to_string()),
        });
    }
    Ok(())
}

/// The plain facts of an inspected container.
pub fn container_fact(c: &models::ContainerInspectResponse) -> ContainerFact {
    let config = c.config.clone().unwrap_or_default();
    let labels = config.labels.unwrap_or_default();
    let label = |k: &str| labels.get(k).cloned();
    let state = c.state.clone().unwrap_or_default();
    let health = state
        .health
        .and_then(|h| h.status)
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty() && s != "none");
    let mut published_ports: Vec<u16> = c
        .network_settings
        .as_ref()
        .and_then(|n| n.ports.as_ref())
        .into_iter()
        .flat_map(|ports| ports.values())
        .flatten()
        .flatten()
        .filter_map(|b| b.host_port.as_deref().and_then(|p| p.parse().ok()))
        .collect();
    published_ports.sort_unstable();
    published_ports.dedup();
    ContainerFact {
        id: c.id.clone().unwrap_or_default(),
        name: c
            .name
            .clone()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        project: label(compose::PROJECT_LABEL),
        service: label(compose::SERVICE_LABEL),
        state: state.status.map(|s| s.to_string()).unwrap_or_default(),
        health,
        restart_count: c.restart_count.unwrap_or(0),
        image_id: c.image.clone().unwrap_or_default(),
        image_ref: config.image.unwrap_or_default(),
        working_dir: label(compose::WORKING_DIR_LABEL),
        config_files: label(compose::CONFIG_FILES_LABEL),
        environment_file: label(ENV_FILE_LABEL),
        oneoff: label(compose::ONEOFF_LABEL).is_some_and(|v| v.eq_ignore_ascii_case("true")),
        published_ports,
    }
}

/// The plain facts of an inspected image.
pub fn image_fact(img: &models::ImageInspect) -> ImageFact {
    ImageFact {
        id: img.id.clone().unwrap_or_default(),
        created: img.created.clone().unwrap_or_default(),
        repo_tags: img.repo_tags.clone().unwrap_or_default(),
        build_id: img
            .config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(BUILD_ID_LABEL).cloned()),
    }
}

fn receipt<T: serde::de::DeserializeOwned>(path: &Path) -> Fact<T> {
    match receipts::read::<T>(path) {
        Ok(r) => Fact::Found(r),
        Err(e @ ReceiptError::Missing { .. }) => Fact::Absent(e.to_string()),
        Err(e) => Fact::Error(e.to_string()),
    }
}

/// The services the compose file declares, read by compose itself (`config --services`,
/// read-only) with the environment's own file, directory, project and env file.
pub fn declared_services(project: &Project, app_image: &str) -> Fact<Declared> {
    let compose = match compose::detect() {
        Ok(c) => c,
        Err(e) => return Fact::Error(e.to_string()),
    };
    // The compose file takes these from the caller; listing services needs only that they
    // are set, so stand-ins do when the real value is not known here.
    let vars = [
        (APP_IMAGE_VAR.to_string(), app_image.to_string()),
        (
            DB_IMAGE_VAR.to_string(),
            "verify-inspect/unused".to_string(),
        ),
        (PORT_VAR.to_string(), project.port.to_string()),
    ];
    let env: Vec<(OsString, OsString)> = compose::process_env(std::env::vars_os(), &vars, &[]);
    match compose::output(&compose, project, &compose::services_args(), &env) {
        Ok(out) => Fact::Found(Declared {
            command: compose.display_name(),
            services: parse_services(&out),
        }),
        Err(e) => Fact::Error(e.to_string()),
    }
}

/// Service names from `config --services` output, sorted.
pub fn parse_services(out: &str) -> Vec<String> {
    let mut services: Vec<String> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    services.sort();
    services.dedup();
    services
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_trimmed_sorted_and_unique() {
        assert_eq!(parse_services("db\napi\n\n api \n"), vec!["api", "db"]);
    }

    #[test]
    fn a_missing_receipt_is_absent_not_an_error() {
        let r: Fact<receipts::BuildReceipt> = receipt(Path::new("/nonexistent/build-receipt.json"));
        assert!(matches!(r, Fact::Absent(_)), "{r:?}");
    }

    #[test]
    fn container_fact_reads_compose_labels_health_and_ports() {
        let json = r#"{
            "Id": "abc", "Name": "/stackpilot-dev_api_1", "Image": "sha256:img",
            "RestartCount": 3,
            "State": {"Status": "running", "Running": true, "Health": {"Status": "healthy"}},
            "Config": {"Image": "stackpilot/mock-exchange:s-b", "Labels": {
                "com.docker.compose.project": "stackpilot-dev",
                "com.docker.compose.service": "api",
                "com.docker.compose.oneoff": "False",
                "com.docker.compose.project.working_dir": "/vagrant/infra",
                "com.docker.compose.project.config_files": "/vagrant/infra/docker-compose.yml"}},
            "NetworkSettings": {"Ports": {"8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8000"}, {"HostIp": "::", "HostPort": "8000"}], "9000/tcp": null}}
        }"#;
        let c: models::ContainerInspectResponse = serde_json::from_str(json).expect("fixture");
        let f = container_fact(&c);
        assert_eq!(f.name, "stackpilot-dev_api_1");
        assert_eq!(f.service.as_deref(), Some("api"));
        assert_eq!(f.health.as_deref(), Some("healthy"));
        assert_eq!(f.restart_count, 3);
        assert_eq!(f.published_ports, vec![8000]);
        assert!(f.running() && !f.oneoff);
        assert_eq!(f.working_dir.as_deref(), Some("/vagrant/infra"));
    }
}
