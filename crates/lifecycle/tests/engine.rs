//! The node-side lifecycle against the host's real Docker engine and compose: build with
//! `docker build --no-cache`, up until healthy, status, down, up --recreate, then
//! clean-room — on a compose project, port and images of this test's own.
//!
//! The compose file is the repo's; the app and database images are tiny stand-ins built
//! FROM scratch (nothing can be pulled), whose binary answers the healthchecks.

#[path = "../../clean-room/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use lifecycle::{BuildRequest, PinnedImage, Site, UpRequest};
use stackpilot_core::admin::DockerAdmin;
use stackpilot_core::capability::{self, Capability};
use stackpilot_core::exit::ExitStatus;
use stackpilot_core::output::Render;
use stackpilot_core::receipts::{self, BUILD_RECEIPT, BuildReceipt};
use stackpilot_core::{Config, Exit};
use support::{Cleanup, allowed, docker, docker_ok, sleeper, sleeper_image, unique};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A repo with the real compose file, dev env file and app Dockerfile: the build runs the
/// recipe `make demo` runs, on a stand-in runtime image and binary.
fn test_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    for f in [
        "infra/docker-compose.yml",
        "infra/env/dev.env",
        lifecycle::DOCKERFILE,
    ] {
        let to = repo.join(f);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(repo_root().join(f), &to).expect("copy");
    }
    repo
}

/// The repo's configuration with the dev environment on this test's project and port.
fn test_config(project: &str, port: u16) -> Config {
    let text = std::fs::read_to_string(repo_root().join("stackpilot.toml")).expect("config");
    let text = text
        .replace(
            "project = \"stackpilot-dev\"",
            &format!("project = \"{project}\""),
        )
        .replace("port = 8000", &format!("port = {port}"));
    Config::parse(&text, Path::new("stackpilot.toml")).expect("test config")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn service<'a>(report: &'a lifecycle::StatusReport, name: &str) -> &'a lifecycle::ContainerRow {
    report
        .containers
        .iter()
        .find(|c| c.service == name)
        .unwrap_or_else(|| panic!("no {name} container in {report:?}"))
}

/// The status table users read (`lifecycle status`), with this run's names and ids redacted
/// before rendering, so the columns keep one width.
fn shown(status: &lifecycle::StatusReport, project: &str, build_id: &str) -> String {
    let redact = |v: &str| v.replace(project, "[project]").replace(build_id, "[build]");
    let mut s = status.clone();
    s.project = redact(&s.project);
    for c in &mut s.containers {
        // Compose v1 names containers `p_api_1`, v2 `p-api-1`.
        c.name = redact(&c.name).replace('_', "-");
        c.id = "[id]".into();
        c.image = redact(&c.image);
        c.image_id = "[image-id]".into();
    }
    s.human()
}

#[test]
fn engine_build_up_status_down_recreate_timeout_then_clean_room_keeps_the_volume() {
    if !capability::require(&[Capability::Docker]) {
        return;
    }
    let project = unique("lc-test");
    let build_id = project.replace("lc-test-", "b");
    let tag = format!("stackpilot/mock-exchange:0123abc-{build_id}");
    let runtime = format!("{project}/runtime:1");
    let db = format!("{project}/postgres:1");
    let volume = format!("{project}_db-data");
    let _cleanup = Cleanup {
        labels: vec![format!("com.docker.compose.project={project}")],
        images: vec![tag.clone(), runtime.clone(), db.clone()],
        volumes: vec![volume.clone()],
        networks: vec![format!("{project}_default")],
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let bin = sleeper(tmp.path());
    sleeper_image(tmp.path(), &bin, &runtime, &[]);
    sleeper_image(tmp.path(), &bin, &db, &[]);
    let site = Site {
        repo: test_repo(tmp.path()),
        node_dir: tmp.path().join("state"),
    };
    let cfg = test_config(&project, free_port());
    let allowed = allowed();

    // build
    let req = BuildRequest {
        env: "dev".into(),
        binary: bin.clone(),
        build_id: build_id.clone(),
        git_sha: "0123abc".into(),
        dirty: true,
        runtime_image: PinnedImage::flag(&runtime),
    };
    let receipt = lifecycle::build(&allowed, &cfg, &site, &req).expect("build");
    assert_eq!(receipt.tag, tag);
    assert_eq!(
        receipt.image_id,
        docker(&["image", "inspect", "-f", "{{.Id}}", &tag])
    );
    assert_eq!(
        docker(&[
            "image",
            "inspect",
            "-f",
            "{{index .Config.Labels \"stackpilot.build-id\"}} {{index .Config.Labels \"stackpilot.app\"}} {{index .Config.Labels \"org.opencontainers.image.revision\"}}",
            &tag,
        ]),
        format!("{build_id} mock-exchange 0123abc")
    );
    let on_disk: BuildReceipt =
        receipts::read(&site.env_dir("dev").join(BUILD_RECEIPT)).expect("receipt");
    assert_eq!(on_disk, receipt);
    assert!(on_disk.dirty);
    let log =
        std::fs::read_to_string(site.env_dir("dev").join(lifecycle::BUILD_LOG)).expect("build log");
    assert!(
        log.contains("COPY mock-exchange /app/mock-exchange"),
        "{log}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(site.env_dir("dev"))
        .expect("env dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("build-ctx-"))
        .collect();
    assert!(leftovers.is_empty(), "build context removed: {leftovers:?}");

    // up, with a drill override
    let up = UpRequest {
        env: "dev".into(),
        recreate: false,
        db_image: PinnedImage::flag(&db),
        overrides: vec![("LOG_LEVEL".into(), "debug".into())],
        timeout: Duration::from_secs(90),
    };
    let report = lifecycle::up(&allowed, &cfg, &site, &up).expect("up");
    for name in ["api", "db"] {
        let c = service(&report.status, name);
        assert_eq!(
            (c.state.as_str(), c.health.as_str()),
            ("running", "healthy")
        );
    }
    let api = service(&report.status, "api").clone();
    assert_eq!(api.image_id, receipt.image_id);
    let env = docker(&["inspect", "-f", "{{json .Config.Env}}", &api.name]);
    assert!(env.contains("LOG_LEVEL=debug"), "{env}");
    assert!(
        env.contains("DATABASE_URL=postgres://exchange:lab-only-dev-password@db:5432/exchange_dev"),
        "{env}"
    );

    // status reads the same stack
    let status = lifecycle::status(&cfg, &site, "dev").expect("status");
    assert_eq!(status.containers.len(), 2, "{status:?}");
    insta::assert_snapshot!("status_running", shown(&status, &project, &build_id));

    // down: stopped, not removed
    lifecycle::down(&allowed, &cfg, &site, "dev", Some(&db)).expect("down");
    let status = lifecycle::status(&cfg, &site, "dev").expect("status");
    assert_eq!(status.containers.len(), 2, "{status:?}");
    assert!(
        status.containers.iter().all(|c| c.state == "exited"),
        "{status:?}"
    );
    insta::assert_snapshot!("status_stopped", shown(&status, &project, &build_id));

    // up --recreate: new containers, healthy again
    let again_request = UpRequest {
        recreate: true,
        ..up
    };
    let again = lifecycle::up(&allowed, &cfg, &site, &again_request).expect("up --recreate");
    assert_ne!(service(&again.status, "api").id, api.id, "api recreated");

    // a failing healthcheck: the wait ends at the timeout, which the error names
    let sick = UpRequest {
        overrides: vec![("LOG_LEVEL".into(), "sick".into())],
        timeout: Duration::from_secs(6),
        ..again_request
    };
    let err = lifecycle::up(&allowed, &cfg, &site, &sick).expect_err("never healthy");
    assert_eq!(err.exit(), Exit::Failed, "{err}");
    let text = err.to_string();
    assert!(text.contains("not healthy after 6 s"), "{text}");
    assert!(text.contains("--timeout"), "{text}");
    assert!(text.contains("api: "), "{text}");

    // clean-room: containers and the app image go, the volume stays
    let admin = DockerAdmin::connect().expect("engine");
    let target = clean_room::CleanScope {
        env: "dev".into(),
        project: project.clone(),
        // Only this test's image: the engine is shared with whoever else builds the app.
        app_images: format!("stackpilot.build-id={build_id}"),
    };
    let summary = clean_room::run(&allowed, &admin, &target, &site.node_dir).expect("clean");
    assert_eq!(summary.receipt.removed_containers.len(), 2);
    assert_eq!(
        summary.receipt.removed_images,
        vec![receipt.image_id.clone()]
    );
    assert!(!docker_ok(&["image", "inspect", &tag]), "app image removed");
    assert!(docker_ok(&["image", "inspect", &db]), "db image kept");
    assert!(docker_ok(&["volume", "inspect", &volume]), "volume kept");
    assert!(
        lifecycle::status(&cfg, &site, "dev")
            .expect("status")
            .containers
            .is_empty()
    );
}

#[test]
fn engine_up_without_a_build_receipt_names_the_step_that_writes_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let site = Site {
        repo: test_repo(tmp.path()),
        node_dir: tmp.path().join("state"),
    };
    let cfg = test_config(&unique("lc-none"), free_port());
    let err = lifecycle::up(
        &allowed(),
        &cfg,
        &site,
        &UpRequest {
            env: "dev".into(),
            recreate: false,
            db_image: PinnedImage::flag("stackpilot/postgres:x1"),
            overrides: vec![],
            timeout: Duration::from_secs(1),
        },
    )
    .expect_err("no receipt");
    assert_eq!(err.exit(), Exit::PrereqMissing);
    assert!(err.to_string().contains("make demo"), "{err}");
}

#[test]
fn engine_compose_is_found_with_its_version_and_generation() {
    let c = stackpilot_core::compose::detect().expect("compose v2 or v1 on this host");
    assert!(c.program.is_absolute(), "{c:?}");
    assert_eq!(
        c.flavor,
        stackpilot_core::compose::flavor_of(&c.version),
        "{c:?}"
    );
    assert!(
        c.version.starts_with(|ch: char| ch.is_ascii_digit()),
        "{c:?}"
    );
    let out = std::process::Command::new(&c.program)
        .args(&c.prefix)
        .arg("version")
        .output()
        .expect("compose runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&c.version), "{text}");
}
