use super::*;

const GOOD: &str = r#"
[lab]
name = "stackpilot"
[images]
suite = "bookworm"
[state]
host_dir = ".stackpilot"
node_dir = "/var/lib/stackpilot"
[network]
vm_subnet = "192.168.56.0/24"
docker_subnet = "172.30.56.0/24"
[[nodes]]
name = "control"
role = "control"
address = { virtualbox = "192.168.56.10", libvirt = "192.168.56.10", docker = "172.30.56.10" }
[[nodes]]
name = "worker1"
role = "worker"
address = { virtualbox = "192.168.56.11", libvirt = "192.168.56.11", docker = "172.30.56.11" }
[environments.dev]
project = "stackpilot-dev"
port = 8000
env_file = "infra/env/dev.env"
[environments.staging]
project = "stackpilot-staging"
port = 8001
env_file = "infra/env/staging.env"
"#;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, Path::new("stackpilot.toml")).map_err(|e| e.to_string())
}

#[test]
fn good_config_parses_nodes_and_environments() {
    let cfg = parse(GOOD).expect("valid");
    assert_eq!(cfg.node_names(), ["control", "worker1"]);
    assert_eq!(cfg.control().name(), "control");
    assert_eq!(
        cfg.node("worker1")
            .expect("known")
            .address(Provider::Docker),
        Ipv4Addr::new(172, 30, 56, 11)
    );
    assert_eq!(cfg.environment("staging").expect("known").port(), 8001);
}

#[test]
fn repo_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stackpilot.toml");
    let cfg = Config::load(&path).expect("the repo's stackpilot.toml is valid");
    assert_eq!(cfg.node_names(), ["control", "worker1", "worker2"]);
    assert!(cfg.environment("live").is_ok());
}

#[test]
fn unknown_field_names_file_line_column_and_field() {
    let text = GOOD.replace(
        "suite = \"bookworm\"",
        "suite = \"bookworm\"\nmirorr = \"x\"",
    );
    let err = parse(&text).expect_err("unknown field");
    assert!(err.contains("stackpilot.toml"), "{err}");
    assert!(err.contains("line 6, column 1"), "{err}");
    assert!(err.contains("unknown field `mirorr`"), "{err}");
    assert!(err.contains("field `images.mirorr`"), "{err}");
    assert!(err.contains("expected"), "{err}");
}

#[test]
fn wrong_type_names_position_and_expectation() {
    let text = GOOD.replace("port = 8001", "port = \"eight\"");
    let err = parse(&text).expect_err("bad port");
    assert!(err.contains("line 26"), "{err}");
    assert!(err.contains("field `environments.staging.port`"), "{err}");
    assert!(err.contains("expected u16"), "{err}");
}

#[test]
fn bad_address_is_refused() {
    let text = GOOD.replace("docker = \"172.30.56.11\"", "docker = \"172.30.56.300\"");
    let err = parse(&text).expect_err("bad address");
    assert!(err.contains("line 19"), "{err}");
    assert!(err.contains("field `nodes[1].address.docker`"), "{err}");
}

#[test]
fn addresses_are_a_map_by_provider_name() {
    let cfg = Config::parse(GOOD, Path::new("stackpilot.toml")).expect("parses");
    let n = cfg.node("worker1").expect("worker1");
    assert_eq!(n.address(Provider::Docker).to_string(), "172.30.56.11");
    assert_eq!(n.address.get("libvirt"), Some(n.address(Provider::Libvirt)));
    let names: Vec<&str> = n.address.iter().map(|(p, _)| p).collect();
    assert_eq!(names, ["docker", "libvirt", "virtualbox"]);
}

#[test]
fn a_node_without_an_address_for_a_provider_is_refused() {
    let text = GOOD.replace(", docker = \"172.30.56.11\"", "");
    let err = parse(&text).expect_err("no docker address");
    assert!(
        err.contains("field `nodes[1].address`: expected an address for provider docker"),
        "{err}"
    );
}

#[test]
fn duplicate_node_names_are_refused_with_position() {
    let text = GOOD.replace("name = \"worker1\"", "name = \"control\"");
    let err = parse(&text).expect_err("duplicate");
    assert!(err.contains("line 17, column 8"), "{err}");
    assert!(err.contains("nodes[1].name"), "{err}");
}

#[test]
fn shared_port_between_environments_is_refused() {
    let text = GOOD.replace("port = 8001", "port = 8000");
    let err = parse(&text).expect_err("duplicate port");
    assert!(err.contains("environments.staging.port"), "{err}");
}

#[test]
fn node_state_inside_vagrant_is_refused() {
    let text = GOOD.replace("/var/lib/stackpilot", "/vagrant/state");
    let err = parse(&text).expect_err("state in /vagrant");
    assert!(err.contains("state.node_dir"), "{err}");
}

#[test]
fn unknown_node_lists_known_ones() {
    let cfg = parse(GOOD).expect("valid");
    let err = cfg.node("worker9").expect_err("unknown").to_string();
    assert!(err.contains("unknown node 'worker9'"), "{err}");
    assert!(err.contains("control, worker1"), "{err}");
}

#[test]
fn unknown_env_lists_known_ones() {
    let cfg = parse(GOOD).expect("valid");
    let err = cfg.environment("prod").expect_err("unknown").to_string();
    assert!(err.contains("unknown environment 'prod'"), "{err}");
    assert!(err.contains("dev, staging"), "{err}");
}

#[test]
fn a_named_labs_subnet_moves_docker_addresses_only() {
    let dir = std::env::temp_dir().join(format!("sp-cfg-lab-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join(CONFIG_FILE), GOOD).expect("config");
    let marker = crate::node::LabMarker {
        lab: "stackpilot".into(),
        lab_id: "abc".into(),
        name: Some("stackpilot-abc".into()),
        docker_subnet: Some("172.30.60.0/24".into()),
    };
    std::fs::write(dir.join(crate::node::LAB_MARKER), marker.to_toml()).expect("marker");
    let cfg = Config::load(&dir.join(CONFIG_FILE)).expect("loads");
    let w1 = cfg.node("worker1").expect("known");
    assert_eq!(w1.address(Provider::Docker), Ipv4Addr::new(172, 30, 60, 11));
    assert_eq!(
        w1.address(Provider::Libvirt),
        Ipv4Addr::new(192, 168, 56, 11)
    );
    assert_eq!(cfg.network.docker_subnet, "172.30.60.0/24");
    let tracked = Config::load_file(&dir.join(CONFIG_FILE)).expect("loads");
    assert_eq!(tracked.network.docker_subnet, "172.30.56.0/24");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_environment_runs_in_compose_mode_unless_it_says_swarm() {
    let cfg = parse(GOOD).expect("valid");
    assert_eq!(cfg.environment("dev").expect("dev").mode, Mode::Compose);
    let swarm = GOOD.replace(
        "env_file = \"infra/env/staging.env\"",
        "env_file = \"infra/env/staging.env\"\nmode = \"swarm\"",
    );
    let cfg = parse(&swarm).expect("valid");
    assert_eq!(
        cfg.environment("staging").expect("staging").mode,
        Mode::Swarm
    );
    let bad = GOOD.replace(
        "env_file = \"infra/env/staging.env\"",
        "env_file = \"infra/env/staging.env\"\nmode = \"k8s\"",
    );
    let err = parse(&bad).expect_err("unknown mode");
    assert!(err.contains("mode") && err.contains("k8s"), "{err}");
}

#[test]
fn mode_from_the_command_line_names_the_choices() {
    assert_eq!("swarm".parse::<Mode>(), Ok(Mode::Swarm));
    let err = "Swarm!".parse::<Mode>().expect_err("unknown");
    assert!(
        err.contains("compose") && err.contains("swarm") && err.contains("Swarm!"),
        "{err}"
    );
}
