use std::collections::BTreeMap;

use super::*;

/// A well-formed git sha for fixtures.
const FAKE_SHA: &str = "0123456789abcdef0123456789abcdef01234567"; // pragma: allowlist secret

fn container(service: &str, state: &str, health: &str) -> ContainerInfo {
    ContainerInfo {
        id: format!("{service}0123456789abcdef"),
        name: format!("stackpilot-dev_{service}_1"),
        labels: BTreeMap::from([(SERVICE_LABEL.to_string(), service.to_string())]),
        image: "img:1".into(),
        image_id: "sha256:1".into(),
        state: state.into(),
        health: health.into(),
        restarts: 0,
    }
}

fn services() -> Vec<String> {
    vec!["api".into(), "db".into()]
}

fn request() -> BuildRequest {
    BuildRequest {
        env: "dev".into(),
        binary: "/tmp/mock-exchange".into(),
        build_id: "b42".into(),
        git_sha: FAKE_SHA.into(),
        dirty: true,
        runtime_image: PinnedImage::flag("stackpilot/runtime:bookworm-20261125"),
    }
}

#[test]
fn ready_when_every_service_runs_healthy() {
    let cs = [
        container("api", "running", "healthy"),
        container("db", "running", "healthy"),
    ];
    assert_eq!(readiness(&services(), &cs), Readiness::Ready);
}

#[test]
fn waits_for_starting_healthchecks_and_missing_services() {
    let cs = [container("db", "running", "starting")];
    assert_eq!(
        readiness(&services(), &cs),
        Readiness::Waiting("api: no container yet, db: starting".into())
    );
}

#[test]
fn unhealthy_and_restarting_are_still_awaited() {
    let cs = [
        container("api", "restarting", "unhealthy"),
        container("db", "running", "unhealthy"),
    ];
    assert_eq!(
        readiness(&services(), &cs),
        Readiness::Waiting("api: restarting, db: unhealthy".into())
    );
}

#[test]
fn a_dead_container_fails_the_wait() {
    let cs = [
        container("api", "dead", "none"),
        container("db", "running", "healthy"),
    ];
    assert!(matches!(readiness(&services(), &cs), Readiness::Failed(r) if r.contains("dead")));
}

#[test]
fn containers_of_undeclared_services_do_not_block() {
    let cs = [
        container("api", "running", "healthy"),
        container("db", "running", "none"),
        container("extra", "exited", "none"),
    ];
    assert_eq!(readiness(&services(), &cs), Readiness::Ready);
}

#[test]
fn tag_is_sha_dash_build_id() {
    assert_eq!(
        image_tag("0123abc", "b42").expect("tag"),
        "stackpilot/mock-exchange:0123abc-b42"
    );
}

#[test]
fn malformed_sha_and_build_id_are_usage_errors() {
    for (sha, id) in [
        ("XYZ1234", "b1"),
        ("0123abc", "-b1"),
        ("0123abc", "a b"),
        ("abc", "b1"),
    ] {
        let e = image_tag(sha, id).expect_err("refused");
        assert_eq!(e.exit(), Exit::Usage, "{sha} {id}: {e}");
    }
}

#[test]
fn floating_or_untagged_images_are_refused() {
    assert!(pinned_reference("stackpilot/postgres:bookworm-20261125", "--db-image").is_ok());
    assert!(pinned_reference("localhost:5000/pg:15", "--db-image").is_ok());
    assert!(pinned_reference("sha256:abcd", "--db-image").is_ok());
    for r in [
        "stackpilot/postgres",
        "stackpilot/postgres:latest",
        "localhost:5000/pg",
        ":x",
    ] {
        assert!(pinned_reference(r, "--db-image").is_err(), "{r}");
    }
}

#[test]
fn overrides_are_variables_and_never_lifecycles_own() {
    assert_eq!(
        parse_override("LOG_LEVEL=debug=x"),
        Ok(("LOG_LEVEL".into(), "debug=x".into()))
    );
    assert!(parse_override("NOEQUALS").is_err());
    assert!(parse_override("1BAD=x").is_err());
    assert!(
        parse_override("STACKPILOT_APP_IMAGE=evil:1")
            .expect_err("refused")
            .contains("pinned")
    );
}

#[test]
fn build_args_force_no_cache_and_carry_labels_and_tag() {
    let args = build_args(
        &request(),
        "stackpilot/mock-exchange:0123-b42",
        Path::new("/var/lib/stackpilot/dev/build-ctx-x"),
        Path::new("/vagrant"),
        "2026-11-25T18:00:00Z",
    );
    let line = compose::render(Path::new("docker"), &args);
    let sha = FAKE_SHA;
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        line,
        format!(
            "docker build --no-cache \
--build-arg RUNTIME_IMAGE=stackpilot/runtime:bookworm-20261125 \
--build-arg REVISION={sha} --build-arg CREATED=2026-11-25T18:00:00Z \
--build-arg BUILD_ID=b42 --build-arg SOURCE=/vagrant --build-arg VERSION={version} \
--label stackpilot.app=mock-exchange --label stackpilot.build-id=b42 \
--label stackpilot.dirty=true --label org.opencontainers.image.revision={sha} \
--label org.opencontainers.image.created=2026-11-25T18:00:00Z \
--tag stackpilot/mock-exchange:0123-b42 \
--file /var/lib/stackpilot/dev/build-ctx-x/Dockerfile /var/lib/stackpilot/dev/build-ctx-x"
        )
    );
}

#[test]
fn receipt_records_the_engines_image_id_and_the_request() {
    let r = build_receipt(&request(), "t:1", "sha256:feed", "2026-11-25T18:00:01Z");
    assert_eq!(
        r,
        BuildReceipt {
            env: "dev".into(),
            image_id: "sha256:feed".into(),
            tag: "t:1".into(),
            build_id: "b42".into(),
            built_at: "2026-11-25T18:00:01Z".into(),
            git_sha: FAKE_SHA.into(),
            dirty: true,
        }
    );
}

#[test]
fn compose_gets_images_and_port_from_lifecycle() {
    assert_eq!(
        compose_vars("app:1", "db:1", 8001),
        vec![
            ("STACKPILOT_APP_IMAGE".to_string(), "app:1".to_string()),
            ("STACKPILOT_DB_IMAGE".to_string(), "db:1".to_string()),
            ("STACKPILOT_PORT".to_string(), "8001".to_string()),
        ]
    );
}

#[test]
fn status_table_lists_service_state_health_restarts_image() {
    let report = StatusReport {
        env: "dev".into(),
        project: "stackpilot-dev".into(),
        containers: vec![ContainerRow::of(&container("api", "running", "healthy"))],
    };
    assert_eq!(
        report.human(),
        "env dev (compose project stackpilot-dev)
service  container             id            state    health   restarts  image
-------  --------------------  ------------  -------  -------  --------  -----
api      stackpilot-dev_api_1  api012345678  running  healthy  0         img:1
"
    );
}

#[test]
fn images_come_from_the_lock_by_tag_unless_a_flag_names_one() {
    let repo = tempfile::tempdir().expect("tempdir");
    let lock = repo.path().join("infra/images/images.lock");
    std::fs::create_dir_all(lock.parent().expect("dir")).expect("mkdir");
    std::fs::write(
        &lock,
        r#"[root]
tag = "stackpilot/root:bookworm-112233445566"
suite = "bookworm"
sources = "host apt sources"
recipe = "sha256:112233445566"

[images.postgres]
tag = "stackpilot/postgres:bookworm-abcdef012345"
recipe = "sha256:abcdef012345"
"#,
    )
    .expect("lock");
    assert_eq!(
        PinnedImage::flag_or_lock(None, repo.path(), LOCK_POSTGRES).expect("from lock"),
        PinnedImage {
            reference: "stackpilot/postgres:bookworm-abcdef012345".into(),
            // The lock pins recipes; ids are per host, so only the tag is pinned.
            id: None,
        }
    );
    assert_eq!(
        PinnedImage::flag_or_lock(Some("x/pg:1"), repo.path(), LOCK_POSTGRES).expect("flag"),
        PinnedImage::flag("x/pg:1")
    );
    let missing = PinnedImage::from_lock(repo.path(), LOCK_RUNTIME).expect_err("no entry");
    assert!(missing.to_string().contains("'runtime'"), "{missing}");
}

#[test]
fn a_missing_lock_says_how_to_build_the_images() {
    let repo = tempfile::tempdir().expect("tempdir");
    let e = PinnedImage::from_lock(repo.path(), LOCK_POSTGRES).expect_err("no lock");
    assert_eq!(e.exit(), Exit::PrereqMissing);
    assert!(e.to_string().contains("make up"), "{e}");
}

#[test]
fn only_static_executables_go_into_the_scratch_image() {
    let this_test = std::fs::read(std::env::current_exe().expect("exe")).expect("read");
    // The test harness itself is linked dynamically (unless built with crt-static).
    let dynamic = !cfg!(target_feature = "crt-static");
    assert_eq!(check_static_elf(&this_test).is_err(), dynamic);
    assert_eq!(
        check_static_elf(b"#!/bin/sh\n"),
        Err("not an ELF executable".into())
    );
    // A minimal 64-bit LE header with no program headers is static.
    let mut header = vec![0u8; 64];
    header[..6].copy_from_slice(b"\x7fELF\x02\x01");
    assert_eq!(check_static_elf(&header), Ok(()));
    // One PT_INTERP program header right after the header makes it dynamic.
    header[0x20] = 64; // e_phoff
    header[0x36] = 56; // e_phentsize
    header[0x38] = 1; // e_phnum
    let mut interp = vec![0u8; 56];
    interp[0] = 3;
    header.extend(interp);
    assert_eq!(
        check_static_elf(&header),
        Err("a dynamically linked executable".into())
    );
    assert_eq!(
        check_static_elf(&header[..66]),
        Err("a truncated ELF program header table".into())
    );
}

#[test]
fn status_table_shows_no_health_for_stopped_containers() {
    let report = StatusReport {
        env: "dev".into(),
        project: "p".into(),
        containers: vec![ContainerRow::of(&container("db", "exited", "unhealthy"))],
    };
    let human = report.human();
    assert!(human.contains("exited  -  "), "{human}");
    assert!(!human.contains("unhealthy"), "{human}");
}

#[test]
fn only_running_containers_called_unhealthy_hold_compose_up() {
    let cs = [
        container("api", "exited", "unhealthy"),
        container("db", "running", "unhealthy"),
        container("db", "running", "unhealthy"),
        container("cache", "running", "starting"),
    ];
    assert_eq!(unhealthy_services(&cs), vec!["db".to_string()]);
    let fine = [
        container("api", "running", "healthy"),
        container("db", "running", "none"),
    ];
    assert!(unhealthy_services(&fine).is_empty());
}
