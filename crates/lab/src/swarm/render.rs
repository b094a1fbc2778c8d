//! The stack file of swarm mode, rendered from the one compose file plus the swarm
//! override: typed, pure, and tested here.
//!
//! `infra/docker-compose.yml` is format 2.4 (compose v1 reads nothing newer) and `docker
//! stack deploy` reads only 3.x, so the stack file is derived, never kept as a second copy:
//! every service of the compose file comes through with what swarm honours, the override
//! (`infra/docker-compose.swarm.yml`) adds each service's `deploy:`, and what swarm would
//! silently ignore is dropped here, each with its reason, so the operator sees it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The swarm override, relative to the repo root.
pub const OVERRIDE_FILE: &str = "infra/docker-compose.swarm.yml";

/// The stack file format written (the newest the engines' CLI here, 20.10, reads).
pub const STACK_VERSION: &str = "3.8";

/// Why the stack file could not be rendered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    /// A file is not YAML of the expected shape.
    #[error("{file}: {message}")]
    Shape {
        /// The file (compose file or override).
        file: String,
        /// What was wrong, from the parser.
        message: String,
    },
    /// A `${VAR}` reference could not be resolved.
    #[error("{file}: variable {name}: {message}")]
    Variable {
        /// The file.
        file: String,
        /// The variable.
        name: String,
        /// What is missing.
        message: String,
    },
    /// A service cannot run in swarm mode as written.
    #[error("service '{service}': {message}")]
    Service {
        /// The service.
        service: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// Values the compose file and the override interpolate (`${NAME}`): the env file's, plus
/// those StackPilot sets (images, port, worker count).
pub type Vars = BTreeMap<String, String>;

/// Parses an env file (`KEY=VALUE` lines; blank lines and `#` comments skipped).
pub fn parse_env_file(text: &str) -> Vars {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .collect()
}

/// Compose's interpolation of one string: `$$`, `$NAME`, `${NAME}`, `${NAME:-default}`,
/// `${NAME-default}`, `${NAME:?message}`, `${NAME?message}`. Unlike compose v1, an unset
/// variable without a default is an error, not an empty string.
pub fn interpolate(text: &str, vars: &Vars) -> Result<String, (String, String)> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| (body.to_string(), "unclosed `${`".to_string()))?;
            out.push_str(&expand(&body[..end], vars)?);
            rest = &body[end + 1..];
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if len == 0 {
                out.push('$');
            } else {
                out.push_str(&expand(&after[..len], vars)?);
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// One `${…}` body: a name, optionally followed by an operator and its word.
fn expand(body: &str, vars: &Vars) -> Result<String, (String, String)> {
    let split = body
        .find([':', '-', '?'])
        .map_or((body, ""), |i| body.split_at(i));
    let (name, op) = split;
    let value = vars.get(name).map(String::as_str);
    let (empty_is_unset, op) = match op.strip_prefix(':') {
        Some(o) => (true, o),
        None => (false, op),
    };
    let set = value.filter(|v| !(empty_is_unset && v.is_empty()));
    match (set, op.chars().next()) {
        (Some(v), _) => Ok(v.to_string()),
        (None, Some('-')) => Ok(op[1..].to_string()),
        (None, Some('?')) => Err((name.to_string(), format!("not set: {}", &op[1..]))),
        (None, _) => Err((
            name.to_string(),
            "not set and no default (write ${NAME:-default} for an optional one)".to_string(),
        )),
    }
}

/// Interpolates every string of a YAML document (keys stay as written, as in compose).
fn interpolate_value(
    v: serde_yaml_ng::Value,
    vars: &Vars,
    file: &str,
) -> Result<serde_yaml_ng::Value, RenderError> {
    use serde_yaml_ng::Value;
    Ok(match v {
        Value::String(s) => Value::String(interpolate(&s, vars).map_err(|(name, message)| {
            RenderError::Variable {
                file: file.to_string(),
                name,
                message,
            }
        })?),
        Value::Sequence(items) => Value::Sequence(
            items
                .into_iter()
                .map(|i| interpolate_value(i, vars, file))
                .collect::<Result<_, _>>()?,
        ),
        Value::Mapping(map) => Value::Mapping(
            map.into_iter()
                .map(|(k, v)| Ok((k, interpolate_value(v, vars, file)?)))
                .collect::<Result<_, RenderError>>()?,
        ),
        other => other,
    })
}

/// Parses `text` as YAML, interpolates it with `vars`, then reads it as `T`.
fn load<T: serde::de::DeserializeOwned>(
    text: &str,
    vars: &Vars,
    file: &str,
) -> Result<T, RenderError> {
    let shape = |e: serde_yaml_ng::Error| RenderError::Shape {
        file: file.to_string(),
        message: e.to_string(),
    };
    let raw: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(shape)?;
    serde_yaml_ng::from_value(interpolate_value(raw, vars, file)?).map_err(shape)
}

/// The compose file, as far as StackPilot writes it (format 2.4). Unknown keys are errors:
/// a key added there must be decided on here (kept, converted or dropped for swarm).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComposeFile {
    #[allow(dead_code)]
    version: String,
    services: BTreeMap<String, ComposeService>,
    #[serde(default)]
    volumes: BTreeMap<String, VolumeSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComposeService {
    image: String,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    expose: Vec<String>,
    #[serde(default)]
    volumes: Vec<String>,
    healthcheck: Option<Healthcheck>,
    restart: Option<String>,
    stop_signal: Option<String>,
    stop_grace_period: Option<String>,
    user: Option<String>,
    #[serde(default)]
    cap_drop: Vec<String>,
    #[serde(default)]
    security_opt: Vec<String>,
    mem_limit: Option<String>,
    cpus: Option<f64>,
    pids_limit: Option<u32>,
    #[serde(default)]
    ports: Vec<String>,
    depends_on: Option<serde_yaml_ng::Value>,
    read_only: Option<bool>,
    #[serde(default)]
    tmpfs: Vec<String>,
}

/// A named volume's options (none are used: the local driver's defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {}

/// A container health check, the same in both formats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    /// The check command (exec form).
    pub test: Vec<String>,
    /// Time between checks.
    pub interval: String,
    /// Time one check may take.
    pub timeout: String,
    /// Failures before unhealthy.
    pub retries: u32,
    /// Grace period after start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<String>,
}

/// The swarm override: each service's `deploy:` and nothing else.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Override {
    services: BTreeMap<String, ServiceOverride>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceOverride {
    deploy: Deploy,
}

/// How swarm runs a service's replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// Replicas wanted.
    #[serde(deserialize_with = "count")]
    pub replicas: u32,
    /// `dnsrr`: the kernel here has no IPVS, so no virtual IPs.
    pub endpoint_mode: EndpointMode,
    /// Where replicas may run.
    pub placement: Placement,
    /// How an update rolls through the replicas.
    pub update_config: UpdateConfig,
    /// How a failed update is undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<UpdateConfig>,
    /// When swarm restarts a task (replaces compose's `restart:`).
    pub restart_policy: RestartPolicy,
    /// Limits, from the compose file's `mem_limit` and `cpus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

/// A whole number given as a number or as a string (an interpolated `${VAR}`).
fn count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Count {
        N(u32),
        S(String),
    }
    match Count::deserialize(d)? {
        Count::N(n) => Ok(n),
        Count::S(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("expected a count, found '{s}'"))),
    }
}

/// How clients find a service's replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointMode {
    /// DNS round robin over the tasks' addresses (works without IPVS).
    Dnsrr,
    /// A virtual IP balanced by IPVS (absent from the lab's kernel).
    Vip,
}

/// Placement rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// Node constraints (`node.labels.io.stackpilot.role == worker`).
    #[serde(default)]
    pub constraints: Vec<String>,
    /// At most this many replicas on one node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas_per_node: Option<u32>,
}

/// `update_config` / `rollback_config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    /// Tasks changed at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// `start-first` or `stop-first`.
    pub order: Order,
    /// What a failed update does (`rollback`, `pause`, `continue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_action: Option<String>,
    /// How long a new task is watched before the next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<String>,
    /// Pause between batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
}

/// Update order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// The new task starts before the old one stops.
    StartFirst,
    /// The old task stops first (one Postgres per volume).
    StopFirst,
}

/// `restart_policy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    /// `any`, `on-failure` or `none`.
    pub condition: String,
    /// Pause before a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
}

/// `resources`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Upper limits.
    pub limits: Limits,
}

/// `resources.limits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// CPUs (`"0.5"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
    /// Memory (`"128m"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// A published port, long syntax: always `mode: host` (no routing mesh without IPVS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    /// The container's port.
    pub target: u16,
    /// The node's port.
    pub published: u16,
    /// `tcp`.
    pub protocol: String,
    /// `host`: published on the node that runs the task.
    pub mode: String,
}

/// A mount of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Mount {
    /// Short syntax, `volume:/path`.
    Short(String),
    /// A tmpfs (long syntax; `tmpfs:` of the service is ignored by swarm).
    Tmpfs {
        /// `tmpfs`.
        #[serde(rename = "type")]
        kind: String,
        /// Mount point.
        target: String,
        /// Its size.
        tmpfs: TmpfsSize,
    },
}

/// A tmpfs's options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TmpfsSize {
    /// Bytes.
    pub size: u64,
}

/// One service of the stack file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StackService {
    /// Image reference (the app's by registry digest).
    pub image: String,
    /// Environment.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// Published ports (host mode).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Volumes and tmpfs mounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Mount>,
    /// Health check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// Stop signal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Grace period before the kill.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<String>,
    /// User.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Read-only root filesystem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Capabilities dropped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// How swarm runs it.
    pub deploy: Deploy,
}

/// The stack file `docker stack deploy` reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StackFile {
    /// Format version.
    pub version: String,
    /// Services.
    pub services: BTreeMap<String, StackService>,
    /// Named volumes.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, VolumeSpec>,
}

/// A compose key that does not carry over to swarm, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The service.
    pub service: String,
    /// The key.
    pub key: &'static str,
    /// Why swarm mode does without it.
    pub why: &'static str,
}

/// The rendered stack file and what it left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The stack file.
    pub file: StackFile,
    /// Keys of the compose file swarm mode does not carry, with reasons.
    pub dropped: Vec<Dropped>,
}

impl Rendered {
    /// The stack file as YAML, for `docker stack deploy -c -`.
    pub fn yaml(&self) -> String {
        // Plain strings, numbers and maps always serialise.
        serde_yaml_ng::to_string(&self.file).unwrap_or_default()
    }
}

/// Renders the stack file from the compose file and the override, both interpolated with
/// `vars`. Every compose service needs an override entry and every override entry a
/// service; every service must use `endpoint_mode: dnsrr`.
pub fn render(compose: &str, overlay: &str, vars: &Vars) -> Result<Rendered, RenderError> {
    let compose: ComposeFile = load(compose, vars, stackpilot_core::compose::COMPOSE_FILE)?;
    let mut overlay: Override = load(overlay, vars, OVERRIDE_FILE)?;
    if let Some(extra) = overlay
        .services
        .keys()
        .find(|s| !compose.services.contains_key(*s))
    {
        return Err(RenderError::Service {
            service: extra.clone(),
            message: format!(
                "{OVERRIDE_FILE} configures it but {} has no such service; remove it from the override",
                stackpilot_core::compose::COMPOSE_FILE
            ),
        });
    }
    let mut services = BTreeMap::new();
    let mut dropped = Vec::new();
    for (name, svc) in compose.services {
        let deploy = overlay
            .services
            .remove(&name)
            .map(|o| o.deploy)
            .ok_or_else(|| RenderError::Service {
                service: name.clone(),
                message: format!(
                    "no `deploy:` for it in {OVERRIDE_FILE}: say how many replicas run where"
                ),
            })?;
        let (service, gone) = convert(&name, svc, deploy)?;
        dropped.extend(gone);
        services.insert(name, service);
    }
    Ok(Rendered {
        file: StackFile {
            version: STACK_VERSION.to_string(),
            services,
            volumes: compose.volumes,
        },
        dropped,
    })
}

fn convert(
    name: &str,
    svc: ComposeService,
    mut deploy: Deploy,
) -> Result<(StackService, Vec<Dropped>), RenderError> {
    let refuse = |message: String| RenderError::Service {
        service: name.to_string(),
        message,
    };
    if deploy.endpoint_mode != EndpointMode::Dnsrr {
        return Err(refuse(format!(
            "endpoint_mode must be dnsrr in {OVERRIDE_FILE}: the lab's kernel has no IPVS, so virtual IPs and the routing mesh do not work"
        )));
    }
    let start_first = |u: &UpdateConfig| u.order == Order::StartFirst;
    if !svc.ports.is_empty()
        && (start_first(&deploy.update_config)
            || deploy.rollback_config.as_ref().is_some_and(start_first))
    {
        return Err(refuse(format!(
            "update order start-first with a host-mode port cannot place: the new task needs the port its predecessor holds on its node; use stop-first in {OVERRIDE_FILE}"
        )));
    }
    let mut dropped = Vec::new();
    let mut drop = |present: bool, key: &'static str, why: &'static str| {
        if present {
            dropped.push(Dropped {
                service: name.to_string(),
                key,
                why,
            });
        }
    };
    drop(
        !svc.expose.is_empty(),
        "expose",
        "the stack's overlay network reaches every port of a task",
    );
    drop(
        svc.restart.is_some(),
        "restart",
        "swarm restarts tasks by deploy.restart_policy",
    );
    drop(
        svc.depends_on.is_some(),
        "depends_on",
        "swarm has no start order; the api's /ready reports the database",
    );
    drop(
        !svc.security_opt.is_empty(),
        "security_opt",
        "swarm services take no security options",
    );
    drop(
        svc.pids_limit.is_some(),
        "pids_limit",
        "the 3.x stack format of the engines' CLI (20.10) has no pids limit",
    );
    let ports = svc
        .ports
        .iter()
        .map(|p| {
            host_port(p)
                .ok_or_else(|| refuse(format!("port '{p}': expected PUBLISHED:TARGET or TARGET")))
        })
        .collect::<Result<_, _>>()?;
    let mut volumes: Vec<Mount> = svc.volumes.into_iter().map(Mount::Short).collect();
    for t in &svc.tmpfs {
        volumes.push(tmpfs_mount(t).map_err(|m| refuse(format!("tmpfs '{t}': {m}")))?);
    }
    if svc.mem_limit.is_some() || svc.cpus.is_some() {
        deploy.resources = Some(Resources {
            limits: Limits {
                cpus: svc.cpus.map(|c| c.to_string()),
                memory: svc.mem_limit,
            },
        });
    }
    Ok((
        StackService {
            image: svc.image,
            environment: svc.environment,
            ports,
            volumes,
            healthcheck: svc.healthcheck,
            stop_signal: svc.stop_signal,
            stop_grace_period: svc.stop_grace_period,
            user: svc.user,
            read_only: svc.read_only,
            cap_drop: svc.cap_drop,
            deploy,
        },
        dropped,
    ))
}

/// `PUBLISHED:TARGET` or `TARGET` as a host-mode port.
fn host_port(spec: &str) -> Option<Port> {
    let (published, target) = match spec.split_once(':') {
        Some((p, t)) => (p.parse().ok()?, t.parse().ok()?),
        None => {
            let t = spec.parse().ok()?;
            (t, t)
        }
    };
    Some(Port {
        target,
        published,
        protocol: "tcp".into(),
        mode: "host".into(),
    })
}

/// `/path:size=16m,mode=1777` as a tmpfs mount. Swarm's tmpfs mode is the kernel's 1777;
/// another mode is refused rather than silently lost.
fn tmpfs_mount(spec: &str) -> Result<Mount, String> {
    let (target, opts) = spec.split_once(':').unwrap_or((spec, ""));
    let mut size = None;
    for opt in opts.split(',').filter(|o| !o.is_empty()) {
        match opt.split_once('=') {
            Some(("size", v)) => size = Some(bytes(v).ok_or(format!("size '{v}'"))?),
            Some(("mode", "1777")) => {}
            _ => return Err(format!("option '{opt}' has no swarm equivalent")),
        }
    }
    Ok(Mount::Tmpfs {
        kind: "tmpfs".into(),
        target: target.to_string(),
        tmpfs: TmpfsSize {
            size: size.ok_or("a size is required (size=16m)")?,
        },
    })
}

/// `16m`, `1g`, `512k`, `100` as bytes.
fn bytes(v: &str) -> Option<u64> {
    let v = v.trim().to_ascii_lowercase();
    let (num, mult) = match v.chars().last()? {
        'k' => (&v[..v.len() - 1], 1 << 10),
        'm' => (&v[..v.len() - 1], 1 << 20),
        'g' => (&v[..v.len() - 1], 1 << 30),
        _ => (v.as_str(), 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

#[cfg(test)]
mod tests;
