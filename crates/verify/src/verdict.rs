//! The verdicts: a pure function from what was observed to the report. No I/O here, so
//! every failure class is unit-tested on plain data.
//!
//! Layers run in order; the first failed layer marks every layer above it "not run", so a
//! closed port is reported as a closed port, not as five HTTP and provenance failures.

use stackpilot_core::http::{HttpOutcome, HttpProbe, TcpOutcome, TcpProbe};

use crate::inspection::{ContainerFact, Fact, Hidden, Inspection, Wiring};
use crate::report::{Check, Report, ServiceState, Verdict};
use stackpilot_core::time::parse_rfc3339;

/// The compose service that serves HTTP on the environment's port.
pub const API_SERVICE: &str = "api";

/// What the verified node and environment must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// Node name.
    pub node: String,
    /// Lab name (`[lab] name`).
    pub lab: String,
    /// Environment name.
    pub env: String,
    /// Compose project name of the environment.
    pub project: String,
    /// The service address probed, `ip:port`, for messages.
    pub target: String,
    /// The compose wiring the stack must have been started with.
    pub wiring: Wiring,
}

/// How running `verify inspect` on the node went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeOutcome {
    /// The transport could not run anything on the node.
    Unreachable(String),
    /// The command ran but produced no inspection document.
    Failed {
        /// Its exit code (`None` when killed by a signal or timed out).
        code: Option<i32>,
        /// What it said on stderr.
        stderr: String,
    },
    /// The inspection document.
    Inspected(Box<Inspection>),
}

/// The node-side observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeObservation {
    /// The transport used, for messages (e.g. `docker exec 1a2b3c`).
    pub via: String,
    /// Round trip time, in milliseconds.
    pub elapsed_ms: u64,
    /// What came back.
    pub outcome: NodeOutcome,
}

/// Everything the host observed; `None` for what was not observed because a lower layer
/// had already failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observations {
    /// Layer 1 and the facts of layers 4 and 5.
    pub node: Option<NodeObservation>,
    /// Layer 2.
    pub tcp: Option<TcpProbe>,
    /// `GET /health`.
    pub health: Option<HttpProbe>,
    /// `GET /ready`.
    pub ready: Option<HttpProbe>,
    /// `GET /version`.
    pub version: Option<HttpProbe>,
}

/// A layer: its number, name and the ids of its checks, fixed so that a layer that is not
/// run still lists what it would have checked.
pub struct Layer {
    /// 1 to 5.
    pub number: u8,
    /// Short name.
    pub name: &'static str,
    /// Check ids, in report order.
    pub checks: &'static [&'static str],
}

/// The five layers of ARCHITECTURE.md, in order.
pub const LAYERS: [Layer; 5] = [
    Layer {
        number: 1,
        name: "node",
        checks: &["node.reachable", "node.identity"],
    },
    Layer {
        number: 2,
        name: "tcp",
        checks: &["tcp.connect"],
    },
    Layer {
        number: 3,
        name: "http",
        checks: &["http.health", "http.ready", "http.version"],
    },
    Layer {
        number: 4,
        name: "inspect",
        checks: &[
            "inspect.engine",
            "inspect.services-running",
            "inspect.services-healthy",
            "inspect.wiring-project",
            "inspect.wiring-config-file",
            "inspect.wiring-working-dir",
            "inspect.wiring-env-file",
            "inspect.no-hidden",
        ],
    },
    Layer {
        number: 5,
        name: "provenance",
        checks: &[
            "provenance.image-id",
            "provenance.after-clean",
            "provenance.build-id",
        ],
    },
];

/// One evaluated check before it is placed in its layer.
struct Eval {
    verdict: Verdict,
    reason: String,
    ms: Option<u64>,
}

fn pass(reason: impl Into<String>) -> Eval {
    Eval {
        verdict: Verdict::Pass,
        reason: reason.into(),
        ms: None,
    }
}

fn fail(reason: impl Into<String>) -> Eval {
    Eval {
        verdict: Verdict::Fail,
        reason: reason.into(),
        ms: None,
    }
}

fn not_run(reason: impl Into<String>) -> Eval {
    Eval {
        verdict: Verdict::NotRun,
        reason: format!("not run: {}", reason.into()),
        ms: None,
    }
}

fn unverified(reason: impl Into<String>) -> Eval {
    Eval {
        verdict: Verdict::Unverified,
        reason: reason.into(),
        ms: None,
    }
}

impl Eval {
    fn timed(mut self, ms: u64) -> Eval {
        self.ms = Some(ms);
        self
    }
}

/// Whether a layer has failed (any check failed or could not be run).
pub fn layer_failed(layer: u8, expect: &Expect, obs: &Observations) -> bool {
    evaluate(expect, obs, 0)
        .checks
        .iter()
        .filter(|c| c.layer == layer)
        .any(|c| matches!(c.verdict, Verdict::Fail | Verdict::NotRun))
}

/// Turns observations into the report. Pure.
pub fn evaluate(expect: &Expect, obs: &Observations, elapsed_ms: u64) -> Report {
    let inspection = match obs.node.as_ref().map(|n| &n.outcome) {
        Some(NodeOutcome::Inspected(i)) => Some(i.as_ref()),
        _ => None,
    };
    let mut checks = Vec::new();
    let mut blocked: Option<String> = None;
    for layer in &LAYERS {
        let evals: Vec<Eval> = match &blocked {
            Some(why) => layer.checks.iter().map(|_| not_run(why.clone())).collect(),
            None => match layer.number {
                1 => node_layer(expect, obs.node.as_ref()),
                2 => vec![tcp_layer(obs.tcp.as_ref(), inspection)],
                3 => http_layer(obs, inspection),
                4 => inspect_layer(expect, inspection),
                _ => provenance_layer(inspection),
            },
        };
        for (id, e) in layer.checks.iter().zip(evals) {
            if blocked.is_none() && matches!(e.verdict, Verdict::Fail | Verdict::NotRun) {
                // The cause, up to its first clause, so each skipped row says why.
                let cause = e.reason.split(';').next().unwrap_or_default();
                blocked = Some(format!(
                    "layer {} ({}) failed at {id}: {cause}",
                    layer.number, layer.name
                ));
            }
            checks.push(Check {
                id: id.to_string(),
                layer: layer.number,
                layer_name: layer.name.to_string(),
                verdict: e.verdict,
                reason: e.reason,
                ms: e.ms,
            });
        }
    }
    let passed_check = |id: &str| {
        checks
            .iter()
            .any(|c| c.id == id && c.verdict == Verdict::Pass)
    };
    let passed = checks
        .iter()
        .all(|c| matches!(c.verdict, Verdict::Pass | Verdict::Unverified));
    let summary = ServiceState {
        reachable: passed_check("node.reachable") && passed_check("node.identity"),
        tcp_reachable: passed_check("tcp.connect"),
        alive: passed_check("http.health"),
        ready: passed_check("http.ready"),
        healthy: passed_check("inspect.services-healthy"),
        usable: passed,
    };
    Report {
        node: expect.node.clone(),
        env: expect.env.clone(),
        target: expect.target.clone(),
        passed,
        summary,
        checks,
        elapsed_ms,
    }
}

fn node_layer(expect: &Expect, node: Option<&NodeObservation>) -> Vec<Eval> {
    let Some(node) = node else {
        return vec![
            not_run("the node was not contacted"),
            not_run("the node was not contacted"),
        ];
    };
    let ms = node.elapsed_ms;
    match &node.outcome {
        NodeOutcome::Unreachable(why) => vec![
            fail(format!(
                "node '{}' not reachable via {}: {}",
                expect.node,
                node.via,
                one_line(why)
            ))
            .timed(ms),
            not_run("the node is not reachable"),
        ],
        NodeOutcome::Failed { code, stderr } => {
            let not_runnable = matches!(code, Some(126 | 127));
            let code = code.map_or("no exit code (killed)".into(), |c| format!("exit {c}"));
            let mut hint = match stderr.lines().find(|l| !l.trim().is_empty()) {
                Some(line) => format!(": {}", line.trim()),
                None => String::new(),
            };
            if not_runnable {
                hint.push_str(" (no runnable verify binary at that path on the node; the golden path builds it)");
            }
            vec![
                pass(format!("node-side command ran via {}", node.via)).timed(ms),
                fail(format!(
                    "`verify inspect` on node '{}' produced no inspection ({code}){hint}",
                    expect.node
                )),
            ]
        }
        NodeOutcome::Inspected(i) => {
            let identity = if i.node != expect.node || i.lab != expect.lab {
                fail(format!(
                    "expected node '{}' of lab '{}', found node '{}' of lab '{}': the address or transport reaches another node",
                    expect.node, expect.lab, i.node, i.lab
                ))
            } else if i.env != expect.env || i.project != expect.project {
                fail(format!(
                    "expected env '{}' (project {}), the node inspected env '{}' (project {}): configuration differs between host and node",
                    expect.env, expect.project, i.env, i.project
                ))
            } else {
                pass(format!("node '{}' of lab '{}'", i.node, i.lab))
            };
            vec![
                pass(format!("node-side command ran via {}", node.via)).timed(ms),
                identity,
            ]
        }
    }
}

fn tcp_layer(tcp: Option<&TcpProbe>, inspection: Option<&Inspection>) -> Eval {
    let Some(tcp) = tcp else {
        return not_run("no TCP probe was made");
    };
    // The inspection is already at hand: say what the node shows behind the closed port,
    // even though its own checks are not run.
    let on_node = inspection.map_or(String::new(), |i| match api_container(i) {
        Some(c) => format!("; on the node the api container {} is running", c.name),
        None => {
            let states: Vec<String> = i
                .containers
                .iter()
                .filter(|c| c.service.as_deref() == Some(API_SERVICE))
                .map(|c| format!("{} {}", c.name, c.state))
                .collect();
            if states.is_empty() {
                format!("; on the node project {} has no api container", i.project)
            } else {
                format!("; on the node: {}", states.join(", "))
            }
        }
    });
    let e = match &tcp.outcome {
        TcpOutcome::Connected => pass(format!("TCP connection to {} accepted", tcp.addr)),
        TcpOutcome::Refused => fail(format!(
            "port closed: TCP connection to {} refused{on_node}",
            tcp.addr
        )),
        TcpOutcome::Timeout => fail(format!(
            "no TCP answer from {} within {} ms (port filtered or node down){on_node}",
            tcp.addr, tcp.elapsed_ms
        )),
        TcpOutcome::Failed { detail } => fail(format!(
            "TCP connection to {} failed: {detail}{on_node}",
            tcp.addr
        )),
    };
    e.timed(tcp.elapsed_ms)
}

/// Why an HTTP probe got no answer, in an operator's words; `None` when it answered.
pub(crate) fn no_answer(probe: &HttpProbe) -> Option<String> {
    match &probe.outcome {
        HttpOutcome::Answered { .. } => None,
        HttpOutcome::Refused => Some(format!("{}: connection refused", probe.url)),
        HttpOutcome::Timeout { phase } => Some(format!(
            "{}: no answer within {} ms ({phase})",
            probe.url, probe.elapsed_ms
        )),
        HttpOutcome::ResetWithoutAnswer { detail } => Some(format!(
            "TCP-reachable but not answering HTTP: {} accepted the connection, then reset or closed it without a response ({detail})",
            probe.url
        )),
        HttpOutcome::Failed { detail } => Some(format!("{}: {detail}", probe.url)),
    }
}

pub(crate) fn json_field(body: &str, field: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    match v.get(field)? {
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

pub(crate) fn short(body: &str) -> String {
    let body = body.trim();
    if body.chars().count() > 120 {
        format!("{}…", body.chars().take(120).collect::<String>())
    } else {
        body.to_string()
    }
}

fn http_layer(obs: &Observations, inspection: Option<&Inspection>) -> Vec<Eval> {
    let health = match &obs.health {
        None => not_run("/health was not requested"),
        Some(p) => match (no_answer(p), p.answer()) {
            (Some(why), _) => fail(why).timed(p.elapsed_ms),
            (None, Some((200, body))) if json_field(body, "status").as_deref() == Some("alive") => {
                pass("alive: /health answered 200 {\"status\":\"alive\"}").timed(p.elapsed_ms)
            }
            (None, answer) => {
                let (status, body) = answer.unwrap_or((0, ""));
                fail(format!(
                    "not alive: expected /health 200 {{\"status\":\"alive\"}}, found {status} {}",
                    short(body)
                ))
                .timed(p.elapsed_ms)
            }
        },
    };
    let alive = health.verdict == Verdict::Pass;
    let ready = match &obs.ready {
        None => not_run("/ready was not requested"),
        Some(p) => match (no_answer(p), p.answer()) {
            (Some(why), _) => fail(why).timed(p.elapsed_ms),
            (None, Some((200, _))) => pass("ready: /ready answered 200").timed(p.elapsed_ms),
            (None, answer) => {
                let (status, body) = answer.unwrap_or((0, ""));
                let why = json_field(body, "reason").unwrap_or_else(|| short(body));
                let prefix = if alive {
                    "alive but not ready"
                } else {
                    "not ready"
                };
                fail(format!("{prefix}: /ready answered {status}: {why}")).timed(p.elapsed_ms)
            }
        },
    };
    let version = match &obs.version {
        None => not_run("/version was not requested"),
        Some(p) => match (no_answer(p), p.answer()) {
            (Some(why), _) => fail(why).timed(p.elapsed_ms),
            (None, Some((200, body))) => {
                let receipt = inspection.map(|i| &i.build_receipt);
                match (json_field(body, "build_id"), receipt) {
                    (None, _) => fail(format!(
                        "/version answered without a build_id: {}",
                        short(body)
                    )),
                    (Some(_), None) => not_run("no node inspection to compare with"),
                    (Some(_), Some(Fact::Absent(why) | Fact::Error(why))) => {
                        fail(format!("no build receipt to compare with: {why}"))
                    }
                    (Some(found), Some(Fact::Found(r))) if found == r.build_id => pass(format!(
                        "/version build_id {found} equals the build receipt's"
                    )),
                    (Some(found), Some(Fact::Found(r))) => fail(format!(
                        "expected build_id {} (build receipt, built {}), /version reports {found}: the service runs another build",
                        r.build_id, r.built_at
                    )),
                }
                .timed(p.elapsed_ms)
            }
            (None, answer) => {
                let (status, body) = answer.unwrap_or((0, ""));
                fail(format!(
                    "expected /version 200, found {status} {}",
                    short(body)
                ))
                .timed(p.elapsed_ms)
            }
        },
    };
    vec![health, ready, version]
}

/// Containers the compose file does not account for: running containers of the project
/// that are one-off, unlabelled, of an undeclared service or a second one of a service;
/// and any running container publishing the environment's port that is not the project's
/// api. `declared` is `None` when the compose file could not be read.
pub fn hidden_containers(
    project: &str,
    containers: &[ContainerFact],
    port_publishers: &[ContainerFact],
    declared: Option<&[String]>,
) -> Vec<Hidden> {
    let mut hidden = Vec::new();
    let mut seen_services: Vec<&str> = Vec::new();
    for c in containers.iter().filter(|c| c.running()) {
        let why = match c.service.as_deref() {
            _ if c.oneoff => Some("a one-off `compose run` container of the project".to_string()),
            None => Some("carries the project label but no service label".to_string()),
            Some(s) if declared.is_some_and(|d| !d.iter().any(|x| x == s)) => {
                Some(format!("service '{s}' is not declared by the compose file"))
            }
            Some(s) if seen_services.contains(&s) => {
                Some(format!("a second running container of service '{s}'"))
            }
            Some(s) => {
                seen_services.push(s);
                None
            }
        };
        if let Some(why) = why {
            hidden.push(Hidden {
                id: c.id.clone(),
                name: c.name.clone(),
                why,
            });
        }
    }
    for c in port_publishers.iter().filter(|c| c.running()) {
        let is_project_api = c.project.as_deref() == Some(project)
            && c.service.as_deref() == Some(API_SERVICE)
            && !c.oneoff;
        let already = hidden.iter().any(|h| h.id == c.id);
        if !is_project_api && !already {
            hidden.push(Hidden {
                id: c.id.clone(),
                name: c.name.clone(),
                why: format!(
                    "publishes the environment's port but is not the api of project {project} (project {}, service {})",
                    c.project.as_deref().unwrap_or("none"),
                    c.service.as_deref().unwrap_or("none")
                ),
            });
        }
    }
    hidden
}

/// The project's running api container (not one-off), if exactly one can be told.
fn api_container(i: &Inspection) -> Option<&ContainerFact> {
    i.containers
        .iter()
        .find(|c| c.running() && !c.oneoff && c.service.as_deref() == Some(API_SERVICE))
}

fn inspect_layer(expect: &Expect, inspection: Option<&Inspection>) -> Vec<Eval> {
    let Some(i) = inspection else {
        return LAYERS[3]
            .checks
            .iter()
            .map(|_| not_run("no node inspection"))
            .collect();
    };
    let engine = match &i.engine {
        Fact::Found(e) => pass(format!("engine {} (API {})", e.version, e.api_version)),
        Fact::Absent(why) | Fact::Error(why) => fail(format!("docker engine on the node: {why}")),
    };
    let compose_services: Result<&[String], String> = match &i.declared {
        Fact::Found(d) if d.services.is_empty() => Err(format!(
            "`{} config --services` lists no services",
            d.command
        )),
        Fact::Found(d) => Ok(&d.services),
        Fact::Absent(why) | Fact::Error(why) => {
            Err(format!("cannot read the compose file's services: {why}"))
        }
    };
    let services_of = |s: &str| -> Vec<&ContainerFact> {
        i.containers
            .iter()
            .filter(|c| !c.oneoff && c.service.as_deref() == Some(s))
            .collect()
    };
    let (running, healthy) = match &compose_services {
        Err(why) => (fail(why.clone()), fail(why.clone())),
        Ok(services) => {
            let mut run_ok = Vec::new();
            let mut run_bad = Vec::new();
            let mut health_ok = Vec::new();
            let mut health_bad = Vec::new();
            for s in services.iter() {
                let all = services_of(s);
                match all.iter().find(|c| c.running()) {
                    Some(c) => {
                        run_ok.push(format!("{s} running (restarts {})", c.restart_count));
                        match c.health.as_deref() {
                            Some("healthy") => health_ok.push(format!("{s} healthy")),
                            Some(h) => health_bad.push(format!("{s} is {h}")),
                            None => health_bad.push(format!(
                                "{s} has no healthcheck, so its health cannot be told"
                            )),
                        }
                    }
                    None => {
                        let states: Vec<&str> = all.iter().map(|c| c.state.as_str()).collect();
                        let found = if states.is_empty() {
                            "no container".to_string()
                        } else {
                            format!("container {}", states.join(", "))
                        };
                        run_bad.push(format!("{s}: not running ({found})"));
                        health_bad.push(format!("{s}: not running"));
                    }
                }
            }
            let running = if run_bad.is_empty() {
                pass(run_ok.join(", "))
            } else {
                fail(format!(
                    "{}; the compose file declares {}",
                    run_bad.join(", "),
                    services.join(", ")
                ))
            };
            let healthy = if health_bad.is_empty() {
                pass(health_ok.join(", "))
            } else {
                fail(health_bad.join(", "))
            };
            (running, healthy)
        }
    };
    let publishers: Vec<&ContainerFact> =
        i.port_publishers.iter().filter(|c| c.running()).collect();
    let project_check = match publishers.as_slice() {
        [] => fail(format!("no running container publishes port {}", i.port)),
        [c] if c.project.as_deref() == Some(expect.project.as_str())
            && c.service.as_deref() == Some(API_SERVICE) =>
        {
            pass(format!(
                "port {} is published by {} (service {API_SERVICE} of project {})",
                i.port, c.name, expect.project
            ))
        }
        many => fail(format!(
            "port {} is published by {}; expected only service {API_SERVICE} of project {}",
            i.port,
            many.iter()
                .map(|c| format!(
                    "{} (project {}, service {})",
                    c.name,
                    c.project.as_deref().unwrap_or("none"),
                    c.service.as_deref().unwrap_or("none")
                ))
                .collect::<Vec<_>>()
                .join(", "),
            expect.project
        )),
    };
    // Wiring is judged on the stack compose declares; other containers are hidden ones
    // and reported as such, not as wiring faults.
    let stack: Vec<&ContainerFact> = i
        .containers
        .iter()
        .filter(|c| !c.oneoff)
        .filter(|c| match (&compose_services, c.service.as_deref()) {
            (Ok(declared), Some(s)) => declared.iter().any(|d| d == s),
            (Err(_), service) => service.is_some(),
            (Ok(_), None) => false,
        })
        .collect();
    let label_check = |what: &str,
                       expected: &str,
                       get: &dyn Fn(&ContainerFact) -> Option<String>| {
        if stack.is_empty() {
            return fail(format!("no containers of project {}", expect.project));
        }
        let wrong: Vec<String> = stack
            .iter()
            .filter(|c| get(c).as_deref() != Some(expected))
            .map(|c| match get(c) {
                Some(found) => format!("{} was started with {what} {found}", c.name),
                None => format!("{} has no {what} label", c.name),
            })
            .collect();
        if wrong.is_empty() {
            pass(format!("{} containers: {what} {expected}", stack.len()))
        } else {
            fail(format!(
                "expected {what} {expected}; {}: the stack was started by compose from another directory or file",
                wrong.join(", ")
            ))
        }
    };
    let config_file = label_check("compose file", &expect.wiring.compose_file, &|c| {
        c.config_files.clone()
    });
    let working_dir = label_check("working directory", &expect.wiring.working_dir, &|c| {
        c.working_dir.clone()
    });
    let env_file = if stack.iter().any(|c| c.environment_file.is_some()) {
        label_check("env file", &expect.wiring.env_file, &|c| {
            c.environment_file.clone()
        })
    } else if stack.is_empty() {
        fail(format!("no containers of project {}", expect.project))
    } else {
        unverified(format!(
            "the containers carry no env-file label (compose older than 1.29 writes none); expected {}, not verifiable from the engine",
            expect.wiring.env_file
        ))
    };
    let declared = compose_services.as_ref().ok().copied();
    let hidden = hidden_containers(&expect.project, &i.containers, &i.port_publishers, declared);
    let no_hidden = if hidden.is_empty() {
        pass("no container runs that the compose file does not declare")
    } else {
        fail(format!(
            "hidden containers: {}",
            hidden
                .iter()
                .map(|h| format!("{} ({})", h.name, h.why))
                .collect::<Vec<_>>()
                .join("; ")
        ))
    };
    vec![
        engine,
        running,
        healthy,
        project_check,
        config_file,
        working_dir,
        env_file,
        no_hidden,
    ]
}

fn provenance_layer(inspection: Option<&Inspection>) -> Vec<Eval> {
    let Some(i) = inspection else {
        return LAYERS[4]
            .checks
            .iter()
            .map(|_| not_run("no node inspection"))
            .collect();
    };
    let receipt = match &i.build_receipt {
        Fact::Found(r) => r,
        Fact::Absent(why) | Fact::Error(why) => {
            let why = format!("no build receipt: {why}");
            return vec![fail(why.clone()), fail(why.clone()), fail(why)];
        }
    };
    let Some(api) = api_container(i) else {
        let why = "no running api container".to_string();
        return vec![fail(why.clone()), fail(why.clone()), fail(why)];
    };
    let image_id = if api.image_id == receipt.image_id {
        pass(format!(
            "api runs image {} = build receipt ({})",
            short_id(&api.image_id),
            receipt.tag
        ))
    } else {
        fail(format!(
            "api runs image {} ({}), the build receipt names {} ({}, built {}): the container runs an older or other image",
            short_id(&api.image_id),
            api.image_ref,
            short_id(&receipt.image_id),
            receipt.tag,
            receipt.built_at
        ))
    };
    let image = match &i.api_image {
        Some(Fact::Found(img)) => Ok(img),
        Some(Fact::Absent(why) | Fact::Error(why)) => Err(format!("api image: {why}")),
        None => Err("the api image was not inspected".to_string()),
    };
    let after_clean = match (&image, &i.clean_receipt) {
        (Err(why), _) => fail(why.clone()),
        (Ok(_), Fact::Absent(why)) => unverified(format!(
            "no clean-room has run for env {} on this node ({why})",
            i.env
        )),
        (Ok(_), Fact::Error(why)) => fail(format!("clean receipt unreadable: {why}")),
        (Ok(img), Fact::Found(clean)) => {
            match (
                parse_rfc3339(&img.created),
                parse_rfc3339(&clean.cleaned_at),
            ) {
                (Ok(created), Ok(cleaned)) if created > cleaned => pass(format!(
                    "image created {}, after the last clean-room at {}",
                    img.created, clean.cleaned_at
                )),
                (Ok(_), Ok(_)) => fail(format!(
                    "image created {}, before the last clean-room at {}: it survived the clean room",
                    img.created, clean.cleaned_at
                )),
                _ => fail(format!(
                    "cannot compare times: image created '{}', cleaned at '{}'",
                    img.created, clean.cleaned_at
                )),
            }
        }
    };
    let build_id = match &image {
        Err(why) => fail(why.clone()),
        Ok(img) => match img.build_id.as_deref() {
            Some(b) if b == receipt.build_id => pass(format!(
                "image label stackpilot.build-id {b} = build receipt"
            )),
            Some(b) => fail(format!(
                "expected image label stackpilot.build-id {} (build receipt), found {b}",
                receipt.build_id
            )),
            None => fail(format!(
                "image {} has no stackpilot.build-id label; expected {}",
                short_id(&img.id),
                receipt.build_id
            )),
        },
    };
    vec![image_id, after_clean, build_id]
}

/// Multi-line messages from other tools as one line, for table cells and summaries.
pub(crate) fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

pub(crate) fn short_id(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.chars().take(12).collect()
}

#[cfg(test)]
mod tests;
