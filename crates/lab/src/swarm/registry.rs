//! The lab registry: Debian's `docker-registry` as a lab image (`stackpilot/registry`),
//! one container on the manager, holding each environment's app image so every node pulls
//! the same build by digest. Plain HTTP on the lab network: every node's engine lists it
//! as an insecure registry ([`Registry::trust`]).

use std::time::Duration;

use stackpilot_core::http::{self, Timeouts};
use stackpilot_core::images::{self, ImageLock};
use stackpilot_core::node::NodeHandle;
use stackpilot_core::transport::Transport;

use super::{CALL, wait_until};
use crate::error::{Error, failed};

/// The registry's port on the manager.
pub const PORT: u16 = 5000;
/// The registry container's name in the manager's engine.
pub const CONTAINER: &str = "stackpilot-registry";
/// Its data volume in the manager's engine (removed by `destroy`, kept otherwise).
pub const VOLUME: &str = "stackpilot-registry";
/// Where the registry stores repositories inside its container.
const STORAGE: &str = "/var/lib/docker-registry";
/// The media type of the manifests `docker push` writes (schema 2).
const MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The engines' configuration file, where `insecure-registries` goes.
const DAEMON_JSON: &str = "/etc/docker/daemon.json";

/// The lab registry on one node (the manager).
#[derive(Debug, Clone)]
pub struct Registry {
    node: NodeHandle,
}

impl Registry {
    /// The registry on `manager`.
    pub fn on(manager: &NodeHandle) -> Registry {
        Registry {
            node: manager.clone(),
        }
    }

    /// `address:port`, the registry part of image references.
    pub fn addr(&self) -> String {
        format!("{}:{PORT}", self.node.address)
    }

    /// The repository of an environment's app image (`<addr>/<project>/mock-exchange`):
    /// one per environment, so cleaning one leaves the others' rollback targets.
    pub fn repository(&self, project: &str) -> String {
        format!("{}/{project}/mock-exchange", self.addr())
    }

    fn transport(&self) -> Result<&Transport, Error> {
        Ok(self.node.transport()?)
    }

    /// Makes `node`'s engine trust this registry over plain HTTP: `insecure-registries` in
    /// its daemon.json (other settings kept), applied by SIGHUP (a reloadable option: no
    /// restart, running containers untouched). No change when it already trusts it.
    pub fn trust(&self, node: &NodeHandle) -> Result<(), Error> {
        let t = node.transport()?;
        let addr = self.addr();
        // One read of the engine's registry settings, before the change and while waiting.
        let trusts = || -> Result<bool, Error> {
            let info = t.output(
                &[
                    "docker",
                    "info",
                    "--format",
                    "{{json .RegistryConfig.IndexConfigs}}",
                ],
                CALL,
            )?;
            Ok(insecure(&info, &addr))
        };
        if trusts()? {
            return Ok(());
        }
        let current = t.output(&["cat", DAEMON_JSON], CALL).unwrap_or_default();
        let merged = with_insecure(&current, &addr).map_err(|e| {
            failed(
                "swarm",
                &format!("{}: read {DAEMON_JSON}", node.name),
                &format!("not a JSON object ({e}); fix or remove it, then run again"),
            )
        })?;
        let script = format!(
            "if [ \"$(id -u)\" = 0 ]; then s=; else s='sudo -n'; fi; \
             $s sh -c 'cat > {DAEMON_JSON}.tmp && mv {DAEMON_JSON}.tmp {DAEMON_JSON}' && $s pkill -HUP -x dockerd"
        );
        t.output_with_input(&["sh", "-c", &script], merged.as_bytes(), CALL)?;
        wait_until(
            &format!("{}: the engine trusts {addr}", node.name),
            Duration::from_secs(30),
            trusts,
        )?;
        eprintln!("==> swarm: {} trusts the lab registry {addr}", node.name);
        Ok(())
    }

    /// Runs the registry container on the manager from the locked `stackpilot/registry`
    /// image (loaded into the manager first), unless it already runs that image; then
    /// waits until `/v2/` answers from the host.
    pub fn ensure(&self, lock: &ImageLock, lock_path: &std::path::Path) -> Result<(), Error> {
        let t = self.transport()?;
        let tag = lock.tag(images::REGISTRY, lock_path)?.to_string();
        let id = crate::images::host_id(&tag)?;
        // The checkout holding the lock: VM nodes load images from archives under it.
        let root = stackpilot_core::config::find_repo_root(lock_path)?;
        crate::nodes::load_images(t, &root, &[(tag.clone(), id.clone())])?;
        let running = t
            .output(
                &[
                    "docker",
                    "inspect",
                    "--format",
                    "{{.Image}}|{{.State.Running}}",
                    CONTAINER,
                ],
                CALL,
            )
            .unwrap_or_default();
        if running.trim() == format!("{id}|true") {
            eprintln!("==> swarm: registry {} runs {tag}: no change", self.addr());
        } else {
            if !running.is_empty() {
                t.output(&["docker", "rm", "-f", CONTAINER], CALL)?;
            }
            t.output(
                &[
                    "docker",
                    "run",
                    "-d",
                    "--name",
                    CONTAINER,
                    "--restart",
                    "always",
                    "--label",
                    "io.stackpilot.registry=lab",
                    "-p",
                    &format!("{PORT}:{PORT}"),
                    "-v",
                    &format!("{VOLUME}:{STORAGE}"),
                    &tag,
                ],
                CALL,
            )?;
            eprintln!(
                "==> swarm: registry started on {} from {tag}",
                self.node.name
            );
        }
        let url = format!("http://{}/v2/", self.addr());
        wait_until(&format!("GET {url}"), Duration::from_secs(30), || {
            let probe = http::get(
                &url,
                Timeouts {
                    connect: Duration::from_secs(1),
                    total: Duration::from_secs(3),
                },
            );
            Ok(probe.answer().is_some_and(|(status, _)| status == 200))
        })
    }

    /// Pushes a local image of the manager to the environment's repository and returns the
    /// digest reference (`<repository>@sha256:…`) services pin.
    pub fn push(&self, local: &str, project: &str) -> Result<String, Error> {
        let t = self.transport()?;
        let version = version_of(local);
        let repo = self.repository(project);
        let tagged = format!("{repo}:{version}");
        t.output(&["docker", "tag", local, &tagged], CALL)?;
        let out = t.output(&["docker", "push", &tagged], Duration::from_secs(300))?;
        let digest = pushed_digest(&out).ok_or_else(|| {
            failed(
                "swarm",
                &format!("docker push {tagged}"),
                &format!("no digest in the push output:\n{out}"),
            )
        })?;
        eprintln!("==> swarm: pushed {local} as {repo}@{digest}");
        Ok(format!("{repo}@{digest}"))
    }

    /// The digest the registry itself serves for `<project>/mock-exchange:<version>` (its
    /// `Docker-Content-Digest` for the schema-2 manifest), read over HTTP from the host:
    /// a second reading, independent of what `docker push` printed.
    pub fn digest(&self, project: &str, version: &str) -> Result<String, Error> {
        let url = format!(
            "http://{}/v2/{project}/mock-exchange/manifests/{version}",
            self.addr()
        );
        http::head_header(
            &url,
            MANIFEST_V2,
            "docker-content-digest",
            Timeouts {
                connect: Duration::from_secs(2),
                total: Duration::from_secs(10),
            },
        )
        .map_err(|e| failed("swarm", &format!("HEAD {url}"), &e))
    }

    /// Removes an environment's repository from the registry (every tag and manifest), then
    /// garbage-collects its blobs and restarts the registry. No change when it is not
    /// running or holds nothing of `project`.
    pub fn remove_repository(&self, project: &str) -> Result<(), Error> {
        let t = self.transport()?;
        let state = t
            .output(
                &[
                    "docker",
                    "inspect",
                    "--format",
                    "{{.State.Running}}",
                    CONTAINER,
                ],
                CALL,
            )
            .unwrap_or_default();
        if state.trim() != "true" {
            return Ok(());
        }
        let dir = format!("{STORAGE}/docker/registry/v2/repositories/{project}");
        // Nothing pushed yet: no repository to remove, and the garbage collector of a
        // registry that never stored a repository fails ("Path not found").
        if t.output(&["docker", "exec", CONTAINER, "test", "-d", &dir], CALL)
            .is_err()
        {
            return Ok(());
        }
        t.output(&["docker", "exec", CONTAINER, "rm", "-rf", &dir], CALL)?;
        t.output(
            &[
                "docker",
                "exec",
                CONTAINER,
                "/usr/bin/docker-registry",
                "garbage-collect",
                "/etc/docker/registry/config.yml",
            ],
            Duration::from_secs(120),
        )?;
        t.output(&["docker", "restart", CONTAINER], CALL)?;
        eprintln!("==> swarm: registry holds nothing of {project} any more");
        Ok(())
    }

    /// The tags the registry holds for an environment (empty when none or not running).
    pub fn tags(&self, project: &str) -> Vec<String> {
        let url = format!(
            "http://{}/v2/{project}/mock-exchange/tags/list",
            self.addr()
        );
        let probe = http::get(
            &url,
            Timeouts {
                connect: Duration::from_secs(1),
                total: Duration::from_secs(3),
            },
        );
        match probe.answer() {
            Some((200, body)) => serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["tags"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Removes the registry container and its volume (`destroy`); no change when absent.
    pub fn remove(&self) -> Result<(), Error> {
        let t = self.transport()?;
        let mut removed = false;
        for (kind, name, rm) in [
            ("container", CONTAINER, ["docker", "rm", "-f", CONTAINER]),
            ("volume", VOLUME, ["docker", "volume", "rm", VOLUME]),
        ] {
            if t.output(&["docker", kind, "inspect", name], CALL).is_ok() {
                t.output(&rm, CALL)?;
                removed = true;
            }
        }
        if removed {
            eprintln!(
                "==> swarm: registry and its volume removed from {}",
                self.node.name
            );
        }
        Ok(())
    }
}

/// Whether `docker info`'s `RegistryConfig.IndexConfigs` (JSON) lists `addr` as insecure.
fn insecure(index_configs: &str, addr: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(index_configs.trim())
        .ok()
        .and_then(|v| v.get(addr).and_then(|c| c.get("Secure")).cloned())
        == Some(serde_json::Value::Bool(false))
}

/// daemon.json's text with `addr` added to `insecure-registries` (empty text: a new file).
fn with_insecure(current: &str, addr: &str) -> Result<String, serde_json::Error> {
    let mut v: serde_json::Value = if current.trim().is_empty() {
        serde_json::json!({})
    } else {
        serde_json::from_str(current)?
    };
    let Some(obj) = v.as_object_mut() else {
        return Err(serde::de::Error::custom("expected a JSON object"));
    };
    let list = obj
        .entry("insecure-registries")
        .or_insert_with(|| serde_json::json!([]));
    if let Some(items) = list.as_array_mut()
        && !items.iter().any(|i| i.as_str() == Some(addr))
    {
        items.push(serde_json::Value::String(addr.to_string()));
    }
    Ok(format!("{}\n", serde_json::to_string_pretty(&v)?))
}

/// The tag a local image is pushed under: its own tag's version (`<git sha>-<build id>`).
pub fn version_of(local: &str) -> &str {
    local.rsplit_once(':').map_or("build", |(_, v)| v)
}

/// The digest `docker push` reports (`<tag>: digest: sha256:… size: N`).
fn pushed_digest(out: &str) -> Option<String> {
    out.lines().rev().find_map(|l| {
        let rest = l.split_once("digest: ")?.1;
        let digest = rest.split_whitespace().next()?;
        digest.starts_with("sha256:").then(|| digest.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_insecure_registry_is_added_and_other_settings_kept() {
        let out =
            with_insecure(r#"{"metrics-addr": "0.0.0.0:9323"}"#, "10.0.0.10:5000").expect("json");
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["metrics-addr"], "0.0.0.0:9323");
        assert_eq!(
            v["insecure-registries"],
            serde_json::json!(["10.0.0.10:5000"])
        );
        let again = with_insecure(&out, "10.0.0.10:5000").expect("json");
        assert_eq!(again, out, "idempotent");
        let fresh = with_insecure("", "a:1").expect("json");
        assert!(fresh.contains("\"a:1\""), "{fresh}");
        assert!(with_insecure("not json", "a:1").is_err());
        assert!(with_insecure("[1]", "a:1").is_err());
    }

    #[test]
    fn trust_is_read_from_the_engines_index_configs() {
        let info = r#"{"10.0.0.10:5000":{"Name":"10.0.0.10:5000","Secure":false},"docker.io":{"Secure":true}}"#;
        assert!(insecure(info, "10.0.0.10:5000"));
        assert!(!insecure(info, "docker.io"));
        assert!(!insecure(info, "10.0.0.11:5000"));
    }

    #[test]
    fn the_pushed_digest_is_read_from_the_push_output() {
        let out = "The push refers to repository [10.0.0.10:5000/p/mock-exchange]\n\
                   5f70bf18a086: Pushed\n\
                   abc-1: digest: sha256:0123abcd size: 739\n";
        assert_eq!(pushed_digest(out).as_deref(), Some("sha256:0123abcd"));
        assert_eq!(pushed_digest("denied"), None);
    }

    #[test]
    fn each_environment_has_its_own_repository() {
        let node = NodeHandle {
            name: "control".into(),
            role: stackpilot_core::config::Role::Control,
            provider: crate::provider::get(stackpilot_core::Provider::Docker).facts(),
            address: std::net::Ipv4Addr::new(10, 0, 0, 10),
            transport: None,
            repo_source: None,
            machine_dir: std::path::PathBuf::from("/x"),
        };
        let r = Registry::on(&node);
        assert_eq!(r.addr(), "10.0.0.10:5000");
        assert_eq!(
            r.repository("stackpilot-dev"),
            "10.0.0.10:5000/stackpilot-dev/mock-exchange"
        );
    }
}
