//! The locally built images keep their contracts, proven against the real Docker engine:
//! Postgres (the official image's env contract, a volume, the postgres user, a health
//! check), the runtime base (FROM scratch, user 10001, CA certificates, /tmp) and the node
//! image (engine, compose and network tools).
//!
//! Names start with `e2e_` so nextest runs them one at a time with the lab tests: every one
//! may build the images first (never writing the tracked lock).

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use stackpilot_core::capability::{self, Capability};
use stackpilot_core::images::{self, ImageLock};
use support::{docker, root, stdout};

/// Builds (or checks) every image with the real xtask, then returns the lock.
fn lock() -> ImageLock {
    // `cargo test` runs these tests in parallel; builds of the same tags must not race.
    static IMAGES: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = IMAGES.lock().unwrap_or_else(|e| e.into_inner());
    let before = std::fs::read(ImageLock::path(&root())).expect("the lock is tracked");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("images")
        .current_dir(root())
        .output()
        .expect("xtask runs");
    assert!(
        out.status.success(),
        "cargo xtask images failed (a running Docker engine is required):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(ImageLock::path(&root())).expect("lock readable"),
        before,
        "`cargo xtask images` must never write the tracked lock"
    );
    ImageLock::read(&ImageLock::path(&root()))
        .expect("lock readable")
        .expect("lock tracked")
}

fn tag(lock: &ImageLock, name: &str) -> String {
    lock.tag(name, Path::new(images::LOCK_FILE))
        .expect("image recorded")
        .to_string()
}

/// `docker inspect --format TEMPLATE OBJECT` (a container or an image), trimmed.
fn inspect(object: &str, template: &str) -> String {
    stdout(&docker(&["inspect", "--format", template, object]))
}

/// Runs `psql ARGS` against the `db` alias on `net` from a throwaway container of `image`,
/// with `password`.
fn psql(net: &str, image: &str, password: &str, args: &[&str]) -> Output {
    let password = format!("PGPASSWORD={password}");
    let mut argv = vec![
        "run",
        "--rm",
        "--network",
        net,
        "-e",
        &password,
        "--entrypoint",
        "psql",
        image,
        "-h",
        "db",
        "-U",
        "exchange",
        "-d",
        "orders",
    ];
    argv.extend(args);
    docker(&argv)
}

/// Containers, a network and volumes a test created; removed on drop, also on failure.
struct Cleanup {
    containers: Vec<String>,
    network: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            docker(&["rm", "-f", "-v", c]);
        }
        if let Some(n) = &self.network {
            docker(&["network", "rm", n]);
        }
    }
}

#[test]
fn e2e_postgres_image_keeps_the_official_env_contract() {
    if !capability::require(&[Capability::Docker]) {
        return;
    }
    let lock = lock();
    let image = tag(&lock, images::POSTGRES);
    let id = std::process::id();
    let net = format!("sp-pg-test-{id}");
    let db = format!("sp-pg-db-{id}");
    let _cleanup = Cleanup {
        containers: vec![db.clone(), format!("{db}-nopw")],
        network: Some(net.clone()),
    };

    // Without a password it refuses to start and says why.
    let refused = docker(&["run", "--name", &format!("{db}-nopw"), &image]);
    assert_eq!(refused.status.code(), Some(1), "no password: exit 1");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("POSTGRES_PASSWORD is not set"));

    assert!(docker(&["network", "create", &net]).status.success());
    let started = docker(&[
        "run",
        "-d",
        "--name",
        &db,
        "--network",
        &net,
        "--network-alias",
        "db",
        "-e",
        "POSTGRES_PASSWORD=s3cret",
        "-e",
        "POSTGRES_USER=exchange",
        "-e",
        "POSTGRES_DB=orders",
        &image,
    ]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    let health = loop {
        let h = inspect(&db, "{{.State.Health.Status}}");
        if h == "healthy" || Instant::now() > deadline {
            break h;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(health, "healthy", "pg_isready health check");

    let user = stdout(&docker(&["exec", &db, "id", "-un"]));
    assert_eq!(user, "postgres", "the server runs as postgres");
    let volumes = inspect(&db, "{{json .Config.Volumes}}");
    assert!(
        volumes.contains("/var/lib/postgresql/data"),
        "data on a volume: {volumes}"
    );

    // Another container on the network reaches it by name, with the password, over TCP.
    let query = psql(
        &net,
        &image,
        "s3cret",
        &["-tAc", "select current_user || '@' || current_database()"],
    );
    assert_eq!(
        stdout(&query),
        "exchange@orders",
        "{}",
        String::from_utf8_lossy(&query.stderr)
    );
    let wrong = psql(&net, &image, "wrong", &["-c", "select 1"]);
    assert!(
        !wrong.status.success(),
        "a wrong password is refused over TCP"
    );
}

#[test]
fn e2e_runtime_image_is_scratch_with_user_10001_certificates_and_tmp() {
    if !capability::require(&[Capability::Docker]) {
        return;
    }
    let lock = lock();
    let image = tag(&lock, images::RUNTIME);
    let facts = inspect(&image, "{{.Config.User}}|{{.Size}}|{{len .RootFS.Layers}}");
    let parts: Vec<&str> = facts.split('|').collect();
    assert_eq!(parts[0], "10001:10001", "runs as app");
    let size: u64 = parts[1].parse().expect("size");
    assert!(size < 5_000_000, "a few MB at most, found {size} bytes");
    assert_eq!(parts[2], "1", "one layer on scratch");

    // List its filesystem: nothing but the few files a static binary needs.
    let name = format!("sp-runtime-test-{}", std::process::id());
    let _cleanup = Cleanup {
        containers: vec![name.clone()],
        network: None,
    };
    assert!(
        docker(&["create", "--name", &name, &image, "/none"])
            .status
            .success()
    );
    let export = Command::new("sh")
        .args(["-c", &format!("docker export {name} | tar -tv")])
        .output()
        .expect("docker export | tar");
    let listing = String::from_utf8_lossy(&export.stdout);
    for want in [
        "etc/passwd",
        "etc/group",
        "etc/ssl/certs/ca-certificates.crt",
        "tmp/",
    ] {
        assert!(listing.contains(want), "{want} in the image:\n{listing}");
    }
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("drwxrwxrwt") && l.ends_with(" tmp/")),
        "/tmp is world-writable and sticky:\n{listing}"
    );
    assert!(!listing.contains("bin/sh"), "no shell in the runtime base");
    let passwd = Command::new("sh")
        .args(["-c", &format!("docker export {name} | tar -xO etc/passwd")])
        .output()
        .expect("read passwd");
    assert!(String::from_utf8_lossy(&passwd.stdout).contains("app:x:10001:10001:"));
}

#[test]
fn e2e_node_image_has_engine_compose_and_network_tools() {
    if !capability::require(&[Capability::Docker]) {
        return;
    }
    let lock = lock();
    let image = tag(&lock, images::NODE);
    let out = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "sh",
        &image,
        "-c",
        "dockerd --version && docker-compose version --short && iptables --version && ip -V && ps --version && cat /etc/docker/daemon.json",
    ]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Docker version 20.10"), "{text}");
    assert!(text.contains("1.29"), "compose v1 from Debian: {text}");
    assert!(
        text.contains("0.0.0.0:9323"),
        "metrics endpoint for lab verification: {text}"
    );
    let cmd = inspect(&image, "{{json .Config.Entrypoint}} {{json .Config.Cmd}}");
    assert_eq!(cmd, r#"["/usr/bin/tini","--"] ["/usr/sbin/dockerd"]"#);
    // What this host built is recorded on this host, not in the tracked lock. A host whose
    // images were built before host records existed has none: then the label is the record.
    let state = stackpilot_core::labs::host_state_dir();
    if let Some(built) = images::BuiltImage::read(&state, &image) {
        assert!(
            built.packages.contains_key("docker.io"),
            "the host record names the engine's package version: {built:?}"
        );
    }
    let recipe = inspect(
        &image,
        &format!("{{{{index .Config.Labels \"{}\"}}}}", images::RECIPE_LABEL),
    );
    assert_eq!(
        recipe,
        lock.derived(images::NODE).expect("node pinned").recipe,
        "the image carries the recipe the lock pins"
    );
}
