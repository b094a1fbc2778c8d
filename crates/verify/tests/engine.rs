//! verify's read-only facade and `inspect` fact-gathering against the host's real Docker
//! engine, and the proof that they mutate nothing: the engine's own event log, recorded
//! while they run, holds no mutating event.
//!
//! Nothing can be pulled here, so the test builds its own image `FROM scratch` around a
//! static binary it compiles. The *test harness* creates and removes those fixtures with
//! the docker CLI (found with `which`); verify's code under test only ever holds the
//! read-only facade. Every fixture carries a label unique to the run and is removed by a
//! drop guard, also when an assertion fails. Traffic goes only to loopback.

mod support;

use std::path::Path;

use stackpilot_core::capability::{self, Capability};
use stackpilot_core::compose::Project;
use stackpilot_core::facade::ReadOnlyDocker;
use stackpilot_core::receipts::{self, BUILD_RECEIPT, BuildReceipt};
use verify::events;
use verify::inspect::{self, Scope};
use verify::inspection::{Declared, Fact};

use support::{Fixture, free_loopback_port, now, sh};

#[test]
fn engine_facade_reads_a_labelled_container_and_its_image() {
    if !capability::require(&[Capability::Docker]) {
        return;
    }
    let mut fx = Fixture::new("facade");
    let project = format!("verify-test-{}", fx.run.replace('.', "-"));
    let id = fx.container(
        true,
        &[
            ("com.docker.compose.project".to_string(), project.clone()),
            ("com.docker.compose.service".to_string(), "api".to_string()),
        ],
        &[],
    );
    let docker = ReadOnlyDocker::connect().expect("engine reachable");
    let api: f64 = docker.api_version().parse().expect("numeric API version");
    assert!(api >= 1.41, "negotiated API {api}");
    assert!(docker.version().expect("version").version.is_some());

    let listed = docker
        .list_containers(&[&format!("com.docker.compose.project={project}")])
        .expect("list");
    assert_eq!(
        listed
            .iter()
            .filter_map(|c| c.id.clone())
            .collect::<Vec<_>>(),
        vec![id.clone()]
    );
    let inspected = docker
        .inspect_container(&id)
        .expect("inspect")
        .expect("exists");
    let image = docker
        .inspect_image(inspected.image.as_deref().unwrap_or_default())
        .expect("inspect image")
        .expect("image exists");
    let labels = image.config.and_then(|c| c.labels).unwrap_or_default();
    assert_eq!(labels.get("stackpilot.build-id"), Some(&fx.build_id()));
    assert!(
        docker
            .list_images(&[&fx.run_label()])
            .expect("list images")
            .iter()
            .any(|i| i.id == image.id.clone().unwrap_or_default())
    );
    assert!(
        docker
            .inspect_image(
                "sha256:0000000000000000000000000000000000000000000000000000000000000000"
            )
            .expect("a missing image is not an error")
            .is_none()
    );
    assert!(
        docker
            .inspect_container("verify-no-such-container")
            .expect("a missing container is not an error")
            .is_none()
    );
}

#[test]
fn engine_inspect_gathers_facts_and_mutates_nothing() {
    if !capability::require(&[Capability::Docker]) {
        return;
    }
    let mut fx = Fixture::new("inspect");
    let project = format!("verify-test-{}", fx.run.replace('.', "-"));
    let port = free_loopback_port();
    let compose_labels = |service: &str| -> Vec<(String, String)> {
        [
            ("com.docker.compose.project", project.as_str()),
            ("com.docker.compose.service", service),
            ("com.docker.compose.oneoff", "False"),
            ("com.docker.compose.project.working_dir", "/vagrant/infra"),
            (
                "com.docker.compose.project.config_files",
                "/vagrant/infra/docker-compose.yml",
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let created_at = now();
    let publish = format!("127.0.0.1:{port}:8000");
    let api = fx.container(true, &compose_labels("api"), &["-p", &publish]);
    let db = fx.container(false, &compose_labels("db"), &[]);
    let intruder = fx.container(
        true,
        &[("com.docker.compose.project".to_string(), project.clone())],
        &[],
    );

    let docker = ReadOnlyDocker::connect().expect("engine reachable");
    // The recorder works: the harness's own creates and starts are in the engine's log.
    let setup = fx.events(&docker, created_at - 1.0, now());
    let verbs: Vec<&str> = setup.iter().map(|a| events::verb(a)).collect();
    assert!(
        verbs.contains(&"create") && verbs.contains(&"start"),
        "the event recorder saw {setup:?}"
    );

    let state_dir = fx.dir.join("state");
    let image_id = sh(&["inspect", "-f", "{{.Image}}", &api]);
    let receipt = BuildReceipt {
        env: "dev".into(),
        image_id: image_id.clone(),
        tag: fx.image.clone(),
        build_id: fx.build_id(),
        built_at: "2026-11-25T18:00:00Z".into(),
        git_sha: "0000000".into(),
        dirty: false,
    };
    receipts::write(&state_dir.join(BUILD_RECEIPT), &receipt).expect("write receipt");
    let scope = Scope {
        node: "control".into(),
        lab: "stackpilot".into(),
        env: "dev".into(),
        project: Project {
            name: project.clone(),
            file: "/vagrant/infra/docker-compose.yml".into(),
            directory: "/vagrant/infra".into(),
            env_file: "/vagrant/infra/env/dev.env".into(),
            port,
        },
        state_dir: state_dir.clone(),
    };
    let declared = Fact::Found(Declared {
        command: "docker-compose".into(),
        services: vec!["api".into(), "db".into()],
    });

    let start = now();
    let doc = inspect::gather(&scope, Ok(&docker), declared);
    let end = now();
    // The engine's `since` filter may round to whole seconds, so setup events can come
    // back: the window is cut by each event's own nanosecond time instead of a pause
    // before it. Asking up to `end + 1` returns once the engine's clock has passed it.
    let window = (start * 1e9) as i64..=(end * 1e9) as i64;
    let during: Vec<String> = fx
        .event_messages(&docker, start - 1.0, end + 1.0)
        .into_iter()
        .filter(|e| e.time_nano.is_some_and(|t| window.contains(&t)))
        .filter_map(|e| e.action)
        .collect();
    let mutating = events::mutating(&during);
    assert!(
        mutating.is_empty(),
        "inspect caused mutating engine events: {mutating:?} (window {start}..{end})"
    );

    assert!(matches!(doc.engine, Fact::Found(_)), "{:?}", doc.engine);
    let ids: Vec<&str> = doc.containers.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    for id in [&api, &db, &intruder] {
        assert!(ids.contains(&id.as_str()), "{id} missing from {ids:?}");
    }
    let api_fact = doc
        .containers
        .iter()
        .find(|c| c.id == api)
        .expect("api fact");
    assert!(api_fact.running());
    assert_eq!(api_fact.health.as_deref(), Some("starting"));
    assert_eq!(api_fact.image_id, image_id);
    assert_eq!(api_fact.published_ports, vec![port]);
    assert_eq!(api_fact.working_dir.as_deref(), Some("/vagrant/infra"));
    assert_eq!(
        api_fact.config_files.as_deref(),
        Some("/vagrant/infra/docker-compose.yml")
    );
    assert!(!api_fact.oneoff);
    let db_fact = doc.containers.iter().find(|c| c.id == db).expect("db fact");
    assert_eq!(db_fact.state, "created");
    assert_eq!(
        doc.port_publishers
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        vec![api.as_str()]
    );
    assert_eq!(
        doc.hidden.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
        vec![intruder.as_str()]
    );
    let image = doc
        .api_image
        .as_ref()
        .and_then(|f| f.found())
        .expect("api image inspected");
    assert_eq!(image.id, image_id);
    assert_eq!(image.build_id.as_deref(), Some(receipt.build_id.as_str()));
    assert_eq!(doc.build_receipt, Fact::Found(receipt));
    assert!(matches!(doc.clean_receipt, Fact::Absent(_)));
    // The document round-trips through JSON, as it travels from node to host.
    let text = serde_json::to_string(&doc).expect("serialise");
    let back: verify::Inspection = serde_json::from_str(&text).expect("parse");
    assert_eq!(back, doc);
    assert!(Path::new(&state_dir).exists());
}
