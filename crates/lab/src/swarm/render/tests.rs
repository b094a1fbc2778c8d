use super::*;

const COMPOSE: &str = r#"
version: "2.4"
services:
  db:
    image: "${DB:?set}"
    expose: ["5432"]
    volumes: ["data:/var/lib/data"]
    restart: unless-stopped
  api:
    image: "${APP:?set}"
    environment:
      URL: "postgres://${USER}@db/x"
      LEVEL: "${LEVEL:-info}"
    ports: ["${PORT:?set}:8000"]
    mem_limit: 128m
    cpus: 0.5
    read_only: true
    tmpfs: ["/tmp:size=16m,mode=1777"]
volumes:
  data: {}
"#;

const OVERRIDE: &str = r#"
services:
  db:
    deploy:
      replicas: 1
      endpoint_mode: dnsrr
      placement: {constraints: ["node.labels.role == control"]}
      update_config: {order: stop-first}
      restart_policy: {condition: any}
  api:
    deploy:
      replicas: "${WORKERS}"
      endpoint_mode: dnsrr
      placement: {constraints: ["node.labels.role == worker"], max_replicas_per_node: 1}
      update_config: {order: stop-first, parallelism: 1}
      restart_policy: {condition: any}
"#;

fn vars() -> Vars {
    [
        ("DB", "pg:1"),
        ("APP", "10.0.0.10:5000/app@sha256:ab"),
        ("USER", "u"),
        ("PORT", "8000"),
        ("WORKERS", "2"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[test]
fn interpolation_follows_compose() {
    let v = vars();
    assert_eq!(
        interpolate("a${USER}b$USER.$$x", &v),
        Ok("aub u.$x".replace(' ', ""))
    );
    assert_eq!(interpolate("${NOPE:-d}", &v), Ok("d".into()));
    assert_eq!(interpolate("${NOPE-d}", &v), Ok("d".into()));
    let (name, why) = interpolate("${NOPE:?give it}", &v).expect_err("required");
    assert_eq!((name.as_str(), why.as_str()), ("NOPE", "not set: give it"));
    assert!(interpolate("${NOPE}", &v).is_err(), "unset without default");
    let mut empty = v.clone();
    empty.insert("E".into(), String::new());
    assert_eq!(interpolate("${E:-d}|${E-d}", &empty), Ok("d|".into()));
}

#[test]
fn env_files_are_key_value_lines() {
    let v = parse_env_file("# c\n\nA=1\nB=x=y\n");
    assert_eq!(v.get("A").map(String::as_str), Some("1"));
    assert_eq!(v.get("B").map(String::as_str), Some("x=y"));
    assert_eq!(v.len(), 2);
}

#[test]
fn services_come_through_with_their_deploy_and_host_mode_ports() {
    let r = render(COMPOSE, OVERRIDE, &vars()).expect("renders");
    let api = &r.file.services["api"];
    assert_eq!(api.image, "10.0.0.10:5000/app@sha256:ab");
    assert_eq!(api.environment["URL"], "postgres://u@db/x");
    assert_eq!(api.environment["LEVEL"], "info");
    assert_eq!(api.deploy.replicas, 2, "a count from a variable");
    assert_eq!(api.deploy.placement.max_replicas_per_node, Some(1));
    assert_eq!(api.deploy.update_config.order, Order::StopFirst);
    assert_eq!(
        api.ports,
        [Port {
            target: 8000,
            published: 8000,
            protocol: "tcp".into(),
            mode: "host".into()
        }]
    );
    assert_eq!(
        api.volumes,
        [Mount::Tmpfs {
            kind: "tmpfs".into(),
            target: "/tmp".into(),
            tmpfs: TmpfsSize { size: 16 << 20 }
        }]
    );
    let limits = &api.deploy.resources.as_ref().expect("limits").limits;
    assert_eq!(limits.memory.as_deref(), Some("128m"));
    assert_eq!(limits.cpus.as_deref(), Some("0.5"));
    let db = &r.file.services["db"];
    assert_eq!(db.deploy.update_config.order, Order::StopFirst);
    assert_eq!(db.volumes, [Mount::Short("data:/var/lib/data".into())]);
    assert!(r.file.volumes.contains_key("data"));
    assert_eq!(r.file.version, STACK_VERSION);
}

#[test]
fn what_swarm_ignores_is_dropped_with_a_reason() {
    let r = render(COMPOSE, OVERRIDE, &vars()).expect("renders");
    let dropped: Vec<_> = r
        .dropped
        .iter()
        .map(|d| (d.service.as_str(), d.key))
        .collect();
    assert_eq!(dropped, [("db", "expose"), ("db", "restart")]);
    assert!(r.dropped.iter().all(|d| !d.why.is_empty()));
    let yaml = r.yaml();
    assert!(
        !yaml.contains("expose") && !yaml.contains("unless-stopped"),
        "{yaml}"
    );
    assert!(
        yaml.contains("mode: host") && yaml.contains("endpoint_mode: dnsrr"),
        "{yaml}"
    );
}

#[test]
fn the_rendered_yaml_reads_back_as_the_same_stack() {
    let r = render(COMPOSE, OVERRIDE, &vars()).expect("renders");
    let back: serde_yaml_ng::Value = serde_yaml_ng::from_str(&r.yaml()).expect("yaml");
    assert_eq!(back["version"].as_str(), Some("3.8"));
    assert_eq!(
        back["services"]["api"]["deploy"]["replicas"].as_u64(),
        Some(2)
    );
    assert_eq!(
        back["services"]["api"]["deploy"]["update_config"]["order"].as_str(),
        Some("stop-first")
    );
    assert_eq!(
        back["services"]["api"]["ports"][0]["published"].as_u64(),
        Some(8000)
    );
}

#[test]
fn a_service_without_an_override_is_refused_by_name() {
    let only_db = OVERRIDE.split("  api:").next().expect("db part");
    let err = render(COMPOSE, only_db, &vars()).expect_err("api has no deploy");
    assert!(
        matches!(&err, RenderError::Service { service, .. } if service == "api"),
        "{err}"
    );
    assert!(err.to_string().contains(OVERRIDE_FILE), "{err}");
}

#[test]
fn an_override_for_no_service_is_refused() {
    let extra = format!(
        "{OVERRIDE}  cache:\n    deploy: {{replicas: 1, endpoint_mode: dnsrr, placement: {{}}, update_config: {{order: stop-first}}, restart_policy: {{condition: any}}}}\n"
    );
    let err = render(COMPOSE, &extra, &vars()).expect_err("no cache service");
    assert!(err.to_string().contains("cache"), "{err}");
}

#[test]
fn virtual_ips_are_refused_because_the_kernel_has_no_ipvs() {
    let vip = OVERRIDE.replacen("endpoint_mode: dnsrr", "endpoint_mode: vip", 1);
    let err = render(COMPOSE, &vip, &vars()).expect_err("vip");
    assert!(err.to_string().contains("IPVS"), "{err}");
}

#[test]
fn an_unknown_compose_key_must_be_decided_on() {
    let more = COMPOSE.replace(
        "    read_only: true",
        "    read_only: true\n    privileged: true",
    );
    let err = render(&more, OVERRIDE, &vars()).expect_err("unknown key");
    assert!(err.to_string().contains("privileged"), "{err}");
}

#[test]
fn a_missing_variable_names_the_file_and_the_variable() {
    let mut v = vars();
    v.remove("APP");
    let err = render(COMPOSE, OVERRIDE, &v).expect_err("APP unset");
    assert_eq!(
        err,
        RenderError::Variable {
            file: stackpilot_core::compose::COMPOSE_FILE.into(),
            name: "APP".into(),
            message: "not set: set".into()
        }
    );
}

#[test]
fn a_tmpfs_mode_other_than_the_default_is_refused() {
    assert!(tmpfs_mount("/tmp:size=1m,mode=0700").is_err());
    assert!(tmpfs_mount("/tmp").is_err(), "size required");
    assert_eq!(bytes("16m"), Some(16 << 20));
    assert_eq!(bytes("2G"), Some(2 << 30));
}

#[test]
fn the_repos_compose_file_renders_with_its_override() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let read = |p: &str| std::fs::read_to_string(repo.join(p)).expect("tracked file");
    let mut v = parse_env_file(&read("infra/env/dev.env"));
    for (k, val) in [
        (
            "STACKPILOT_APP_IMAGE",
            "10.0.0.10:5000/stackpilot/mock-exchange@sha256:ab",
        ),
        ("STACKPILOT_DB_IMAGE", "stackpilot/postgres:x"),
        ("STACKPILOT_PORT", "8000"),
        ("STACKPILOT_WORKERS", "2"),
    ] {
        v.insert(k.into(), val.into());
    }
    let r = render(
        &read(stackpilot_core::compose::COMPOSE_FILE),
        &read(OVERRIDE_FILE),
        &v,
    )
    .expect("the repo's files render");
    assert_eq!(r.file.services.len(), 2);
    let db = &r.file.services["db"];
    assert_eq!(db.deploy.replicas, 1);
    assert!(db.deploy.placement.constraints[0].ends_with("== control"));
    assert!(db.ports.is_empty(), "the db is not published");
    let api = &r.file.services["api"];
    assert_eq!(api.deploy.replicas, 2);
    assert_eq!(api.ports[0].mode, "host");
    assert!(
        r.file
            .services
            .values()
            .all(|s| s.deploy.endpoint_mode == EndpointMode::Dnsrr)
    );
}

#[test]
fn start_first_with_a_host_mode_port_is_refused() {
    let start = OVERRIDE.replace(
        "update_config: {order: stop-first, parallelism: 1}",
        "update_config: {order: start-first, parallelism: 1}",
    );
    let err = render(COMPOSE, &start, &vars()).expect_err("cannot place");
    assert!(
        matches!(&err, RenderError::Service { service, .. } if service == "api"),
        "{err}"
    );
    assert!(err.to_string().contains("host-mode port"), "{err}");
}
