//! The lab images, built locally from Debian packages, pulling nothing (`cargo xtask images`).
//!
//! The root image is a Debian rootfs made by `mmdebstrap` and `docker import`ed; the
//! derived images (`infra/images/<name>/Dockerfile`) are built FROM it. What was built is
//! recorded in `infra/images/images.lock`; on reuse a present image that differs from the
//! lock is an error (never a silent rebuild), an absent one is built and the lock rewritten.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use sha2::{Digest, Sha256};
use stackpilot_core::Config;
use stackpilot_core::images::{
    self as lock, DERIVED, DerivedImage, ImageLock, LOCK_FILE, RECIPES_DIR, ROOT_IMAGE_ARG,
    RootImage,
};
use stackpilot_core::output::Table;
use stackpilot_core::time;

use crate::error::{Error, failed};
use crate::process::step;

/// What the lock records as `sources` when the host's apt sources were used.
const HOST_SOURCES: &str = "host apt sources";

/// Debian packages whose versions are recorded per derived image (dpkg-query patterns).
fn recorded_packages(name: &str) -> &'static [&'static str] {
    match name {
        lock::NODE => &[
            "docker.io",
            "docker-compose",
            "containerd",
            "runc",
            "iptables",
            "tini",
        ],
        lock::POSTGRES => &["postgresql", "postgresql-[0-9]*"],
        _ => &[],
    }
}

/// One image's line in the summary.
#[derive(Debug, Clone)]
pub struct Built {
    /// Image name (`root`, `runtime`, …).
    pub name: String,
    /// Its tag.
    pub tag: String,
    /// Its id.
    pub id: String,
    /// Its size in bytes.
    pub size: u64,
    /// Seconds it took to build, `None` when it was present and matched the lock.
    pub seconds: Option<f64>,
}

/// `cargo xtask images`: ensure every image and print the summary.
pub fn run(repo: &Path, cfg: &Config) -> Result<(), Error> {
    let started = Instant::now();
    let (_, built) = ensure(repo, cfg)?;
    let mut table = Table::new(&["image", "tag", "id", "size", "seconds"]);
    for b in &built {
        table.row([
            b.name.clone(),
            b.tag.clone(),
            short_id(&b.id).to_string(),
            format!("{:.1} MB", b.size as f64 / 1e6),
            b.seconds
                .map_or("present".to_string(), |s| format!("{s:.1}")),
        ]);
    }
    print!("{}", table.render());
    if built.iter().all(|b| b.seconds.is_none()) {
        println!(
            "images: nothing to do: all {} images present and matching {LOCK_FILE}",
            built.len()
        );
    } else {
        println!(
            "images: done in {:.1}s; {LOCK_FILE} updated",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Makes sure every lab image exists and matches the lock, building what is absent.
/// Returns the (possibly rewritten) lock and one line per image.
pub fn ensure(repo: &Path, cfg: &Config) -> Result<(ImageLock, Vec<Built>), Error> {
    require_docker()?;
    let lock_path = ImageLock::path(repo);
    let old = ImageLock::read(&lock_path).map_err(lock_error)?;
    let sources = if cfg.images.mirror.is_empty() {
        HOST_SOURCES.to_string()
    } else {
        cfg.images.mirror.clone()
    };
    let mut out = Vec::new();

    // The root image: the lock's entry while suite and sources are unchanged, else a new one.
    let recorded = old
        .as_ref()
        .map(|l| &l.root)
        .filter(|r| r.suite == cfg.images.suite && r.sources == sources);
    let root = match recorded {
        Some(r) => match inspect(&r.tag)? {
            Some(found) => {
                check_root(r, &found)?;
                eprintln!("==> images: {} present, layer matches the lock", r.tag);
                out.push(built_line("root", r.tag.clone(), &found, None));
                r.clone()
            }
            None => build_root(cfg, &sources, &mut out)?,
        },
        None => build_root(cfg, &sources, &mut out)?,
    };
    let mut new = ImageLock {
        root: root.clone(),
        images: BTreeMap::new(),
    };
    // Record a new root at once, so a failed derived build does not lose it. The old
    // derived entries are stale with it: their tags carry the root's version.
    if old.as_ref().map(|l| &l.root) != Some(&root) {
        new.write(&lock_path).map_err(lock_error)?;
    }

    // Derived images: present ones must match the lock; absent ones are built together.
    let mut to_build = Vec::new();
    for name in DERIVED {
        let dir = repo.join(RECIPES_DIR).join(name);
        let recipe = recipe_digest(&dir, &root.layer)?;
        let tag = lock::derived_tag(name, &root.tag, &recipe);
        match inspect(&tag)? {
            Some(found) => {
                let entry = old
                    .as_ref()
                    .and_then(|l| l.derived(name))
                    .filter(|e| e.tag == tag);
                let Some(entry) = entry else {
                    return Err(mismatch(
                        &tag,
                        "it is not recorded in the lock",
                        &format!(
                            "an image built by `cargo xtask images` and recorded in {LOCK_FILE}"
                        ),
                    ));
                };
                if entry.id != found.id {
                    return Err(mismatch(
                        &tag,
                        &format!("its id is {}", found.id),
                        &format!("id {} (from {LOCK_FILE})", entry.id),
                    ));
                }
                eprintln!("==> images: {tag} present, id matches the lock");
                out.push(built_line(name, tag, &found, None));
                new.images.insert(name.to_string(), entry.clone());
            }
            None => to_build.push((name.to_string(), dir, tag, recipe)),
        }
    }
    let (results, failure) = build_derived(&root.tag, &to_build);
    for (name, tag, entry, secs, found) in results {
        out.push(built_line(&name, tag, &found, Some(secs)));
        new.images.insert(name, entry);
    }
    // What was built is recorded even when another build failed.
    if old.as_ref() != Some(&new) {
        new.write(&lock_path).map_err(lock_error)?;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok((new, out))
}

/// What `docker image inspect` tells about an image.
#[derive(Debug, Clone)]
pub struct Inspected {
    /// Image id.
    pub id: String,
    /// Size in bytes.
    pub size: u64,
    /// Layer digests (diff ids).
    pub layers: Vec<String>,
}

/// Inspects an image in the host engine; `None` when it is absent.
pub fn inspect(tag: &str) -> Result<Option<Inspected>, Error> {
    let out = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{.Id}}|{{.Size}}|{{range .RootFS.Layers}}{{.}} {{end}}",
            tag,
        ])
        .output()
        .map_err(|e| {
            failed(
                "images",
                &format!("docker image inspect {tag}"),
                &e.to_string(),
            )
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("No such image") || err.contains("no such image") {
            return Ok(None);
        }
        return Err(failed(
            "images",
            &format!("docker image inspect {tag}"),
            err.trim(),
        ));
    }
    Ok(Some(parse_inspect(&String::from_utf8_lossy(&out.stdout))))
}

fn parse_inspect(text: &str) -> Inspected {
    let mut parts = text.trim().splitn(3, '|');
    let id = parts.next().unwrap_or_default().to_string();
    let size = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let layers = parts
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    Inspected { id, size, layers }
}

fn check_root(recorded: &RootImage, found: &Inspected) -> Result<(), Error> {
    let layer = found.layers.first().map(String::as_str).unwrap_or("none");
    if found.layers.len() != 1 || layer != recorded.layer {
        return Err(mismatch(
            &recorded.tag,
            &format!("its layer is {layer} ({} layers)", found.layers.len()),
            &format!("the single layer {} (from {LOCK_FILE})", recorded.layer),
        ));
    }
    Ok(())
}

fn mismatch(tag: &str, found: &str, expected: &str) -> Error {
    failed(
        "images",
        &format!("docker image inspect {tag}"),
        &format!(
            "image {tag} differs from {LOCK_FILE}\n  expected: {expected}\n  found:    {found}\n  \
             images are never rebuilt silently; if the lock was changed, restore the one that\n  \
             recorded it (git checkout -- {LOCK_FILE}); else remove the image and run again:\n    \
             docker rmi {tag} && cargo xtask images"
        ),
    )
}

fn built_line(name: &str, tag: String, found: &Inspected, seconds: Option<f64>) -> Built {
    Built {
        name: name.to_string(),
        tag,
        id: found.id.clone(),
        size: found.size,
        seconds,
    }
}

fn build_root(cfg: &Config, sources: &str, out: &mut Vec<Built>) -> Result<RootImage, Error> {
    let started = Instant::now();
    let date = time::utc_day(time::now_utc());
    let tag = lock::root_tag(&cfg.images.suite, &date.0);
    if let Some(found) = inspect(&tag)? {
        // Built today but not recorded (or recorded differently): never adopt it silently.
        return Err(mismatch(
            &tag,
            &format!("present with layer {}", found.layers.join(" ")),
            &format!("a root image recorded in {LOCK_FILE}"),
        ));
    }
    require_mmdebstrap()?;
    let mirrors = mirror_args(&cfg.images.suite, &cfg.images.mirror)?;
    let work = std::env::temp_dir().join(format!("stackpilot-root-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| {
        failed(
            "root image",
            &format!("mkdir {}", work.display()),
            &e.to_string(),
        )
    })?;
    let tar = work.join("rootfs.tar");
    eprintln!(
        "==> images: building {tag} with mmdebstrap from {sources} (suite {})",
        cfg.images.suite
    );
    let result = (|| {
        step(
            "mmdebstrap",
            Command::new("mmdebstrap")
                .args(["--variant=minbase", "--format=tar", &cfg.images.suite])
                .arg(&tar)
                .args(&mirrors)
                // Same packages on the same day give the same tar, hence the same layer.
                .env("SOURCE_DATE_EPOCH", date.1.to_string()),
        )?;
        step(
            "docker import",
            Command::new("docker")
                .args(["import", "--change", "LABEL io.stackpilot.image=root"])
                .args(["--change", r#"CMD ["/bin/bash"]"#])
                .arg(&tar)
                .arg(&tag),
        )
    })();
    let _ = std::fs::remove_dir_all(&work);
    result?;
    let found = inspect(&tag)?.ok_or_else(|| {
        failed(
            "docker import",
            &format!("docker image inspect {tag}"),
            "the imported image is not there",
        )
    })?;
    let layer = found.layers.first().cloned().unwrap_or_default();
    out.push(built_line(
        "root",
        tag.clone(),
        &found,
        Some(started.elapsed().as_secs_f64()),
    ));
    Ok(RootImage {
        tag,
        suite: cfg.images.suite.clone(),
        sources: sources.to_string(),
        layer,
        id: found.id,
    })
}

type BuildResult = (String, String, DerivedImage, f64, Inspected);

/// Builds the absent derived images concurrently, each line of output prefixed with its
/// name. Returns what was built and the first failure.
fn build_derived(
    root_tag: &str,
    jobs: &[(String, PathBuf, String, String)],
) -> (Vec<BuildResult>, Option<Error>) {
    let handles: Vec<_> = jobs
        .iter()
        .map(|(name, dir, tag, recipe)| {
            let (name, dir, tag, recipe) = (name.clone(), dir.clone(), tag.clone(), recipe.clone());
            let root_tag = root_tag.to_string();
            std::thread::spawn(move || build_one(&root_tag, &name, &dir, &tag, &recipe))
        })
        .collect();
    let mut results = Vec::new();
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(r)) => results.push(r),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(failed(
                    "images",
                    "docker build",
                    "a build thread panicked",
                ));
            }
        }
    }
    (results, first_err)
}

fn build_one(
    root_tag: &str,
    name: &str,
    dir: &Path,
    tag: &str,
    recipe: &str,
) -> Result<BuildResult, Error> {
    let started = Instant::now();
    let mut cmd = Command::new("docker");
    cmd.arg("build")
        .args(["--build-arg", &format!("{ROOT_IMAGE_ARG}={root_tag}")])
        .args(["--label", &format!("io.stackpilot.image={name}")])
        .args(["--label", &format!("io.stackpilot.recipe={recipe}")])
        .args(["-t", tag])
        .arg(dir)
        // The engines here have no buildx; the recipes use legacy builder syntax only.
        .env("DOCKER_BUILDKIT", "0");
    prefixed(name, &mut cmd)?;
    let found = inspect(tag)?.ok_or_else(|| {
        failed(
            name,
            &format!("docker image inspect {tag}"),
            "the built image is not there",
        )
    })?;
    let packages = package_versions(tag, recorded_packages(name))?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!("<== {name}: built {tag} in {secs:.1}s");
    let entry = DerivedImage {
        tag: tag.to_string(),
        id: found.id.clone(),
        recipe: recipe.to_string(),
        packages,
    };
    Ok((name.to_string(), tag.to_string(), entry, secs, found))
}

/// Runs a command with each output line prefixed by `[name]`; a non-zero exit is an error.
fn prefixed(name: &str, cmd: &mut Command) -> Result<(), Error> {
    let line = format!("{cmd:?}").replace('"', "");
    eprintln!("==> {name}: {line}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(name, &line, &format!("could not start: {e}")))?;
    let pumps: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|s| {
        let name = name.to_string();
        std::thread::spawn(move || {
            for l in BufReader::new(s).lines().map_while(Result::ok) {
                eprintln!("[{name}] {l}");
            }
        })
    })
    .collect();
    let status = child
        .wait()
        .map_err(|e| failed(name, &line, &e.to_string()))?;
    for p in pumps {
        let _ = p.join();
    }
    if status.success() {
        Ok(())
    } else {
        Err(failed(name, &line, &status.to_string()))
    }
}

/// Versions of Debian packages installed in an image (`name = version`).
fn package_versions(tag: &str, patterns: &[&str]) -> Result<BTreeMap<String, String>, Error> {
    if patterns.is_empty() {
        return Ok(BTreeMap::new());
    }
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "dpkg-query",
            tag,
        ])
        .args(["-W", "-f", "${db:Status-Abbrev}${Package}=${Version}\n"])
        .args(patterns)
        .output()
        .map_err(|e| {
            failed(
                "images",
                &format!("docker run {tag} dpkg-query"),
                &e.to_string(),
            )
        })?;
    if !out.status.success() {
        return Err(failed(
            "images",
            &format!("docker run {tag} dpkg-query"),
            String::from_utf8_lossy(&out.stderr).trim(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        // Only installed packages ("ii "), not ones the pattern merely knows of.
        .filter_map(|l| l.strip_prefix("ii "))
        .filter_map(|l| l.split_once('='))
        .map(|(p, v)| (p.to_string(), v.to_string()))
        .collect())
}

/// sha256 over the root layer and every file of a recipe directory (path, mode, content).
pub fn recipe_digest(dir: &Path, root_layer: &str) -> Result<String, Error> {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    if !files.iter().any(|(rel, _)| rel == "Dockerfile") {
        return Err(failed(
            "images",
            &format!("read {}", dir.join("Dockerfile").display()),
            "recipe has no Dockerfile",
        ));
    }
    files.sort();
    let mut h = Sha256::new();
    h.update(root_layer.as_bytes());
    h.update([0]);
    for (rel, path) in &files {
        let data = std::fs::read(path).map_err(|e| {
            failed(
                "images",
                &format!("read {}", path.display()),
                &e.to_string(),
            )
        })?;
        let exec = is_executable(path);
        h.update(rel.as_bytes());
        h.update([0, u8::from(exec)]);
        h.update((data.len() as u64).to_le_bytes());
        h.update(&data);
    }
    Ok(format!("sha256:{}", hex(&h.finalize())))
}

fn collect_files(base: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<(), Error> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| failed("images", &format!("read {}", dir.display()), &e.to_string()))?;
    for entry in entries {
        let entry = entry
            .map_err(|e| failed("images", &format!("read {}", dir.display()), &e.to_string()))?;
        let path = entry.path();
        if path.is_dir() {
            collect_files(base, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(base) {
            out.push((rel.to_string_lossy().into_owned(), path.clone()));
        }
    }
    Ok(())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first 12 hex digits of an image id.
pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

/// mmdebstrap's mirror arguments: the host's apt source files, or the configured mirror.
fn mirror_args(suite: &str, mirror: &str) -> Result<Vec<String>, Error> {
    if !mirror.is_empty() {
        return Ok(vec![format!("deb {mirror} {suite} main")]);
    }
    let host = host_codename();
    if host.as_deref() != Some(suite) {
        return Err(Error::Core(stackpilot_core::Error::ConfigInvalid {
            path: PathBuf::from(stackpilot_core::config::CONFIG_FILE),
            message: format!(
                "field `images.suite`: the host's apt sources serve '{}', not '{suite}'\n  \
                 expected: a mirror for another suite, e.g. [images] mirror = \"http://deb.debian.org/debian\"",
                host.unwrap_or_else(|| "an unknown suite".into())
            ),
        }));
    }
    let mut files = Vec::new();
    let list = Path::new("/etc/apt/sources.list");
    if std::fs::read_to_string(list).is_ok_and(|t| {
        t.lines()
            .any(|l| l.trim_start().starts_with("deb ") || l.trim_start().starts_with("deb\t"))
    }) {
        files.push(list.to_path_buf());
    }
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "list" || x == "sources"))
            .collect();
        more.sort();
        files.extend(more);
    }
    if files.is_empty() {
        return Err(Error::Core(stackpilot_core::Error::ConfigInvalid {
            path: PathBuf::from(stackpilot_core::config::CONFIG_FILE),
            message: "field `images.mirror`: empty means the host's apt sources, but /etc/apt has none\n  \
                      expected: [images] mirror = \"http://deb.debian.org/debian\""
                .into(),
        }));
    }
    Ok(files.iter().map(|p| p.display().to_string()).collect())
}

fn host_codename() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
}

fn require_docker() -> Result<(), Error> {
    if which::which("docker").is_err() {
        return Err(Error::Prereq {
            what: "docker (the Docker engine and its CLI)".into(),
            install: "apt-get install -y docker.io".into(),
        });
    }
    let ok = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        return Err(Error::Prereq {
            what: "a running Docker engine (`docker version` cannot reach the server)".into(),
            install: "apt-get install -y docker.io && systemctl start docker".into(),
        });
    }
    Ok(())
}

fn require_mmdebstrap() -> Result<(), Error> {
    if which::which("mmdebstrap").is_ok() {
        return Ok(());
    }
    if crate::prereq::is_root() && which::which("apt-get").is_ok() {
        eprintln!(
            "==> images: mmdebstrap is missing; installing it with apt-get (running as root)"
        );
        step(
            "apt-get update",
            Command::new("apt-get").args(["update", "-q"]),
        )?;
        return step(
            "apt-get install mmdebstrap",
            Command::new("apt-get")
                .args([
                    "install",
                    "-y",
                    "-q",
                    "--no-install-recommends",
                    "mmdebstrap",
                ])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        );
    }
    Err(Error::Prereq {
        what: "mmdebstrap (builds the root image from Debian packages)".into(),
        install: "apt-get install -y mmdebstrap".into(),
    })
}

fn lock_error(e: stackpilot_core::images::LockError) -> Error {
    use stackpilot_core::images::LockError;
    match e {
        LockError::Malformed { path, message } => {
            Error::Core(stackpilot_core::Error::ConfigInvalid { path, message })
        }
        other => failed("images", "image lock", &other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_output_is_parsed() {
        let i = parse_inspect("sha256:ab|1234|sha256:l1 sha256:l2 \n");
        assert_eq!(i.id, "sha256:ab");
        assert_eq!(i.size, 1234);
        assert_eq!(i.layers, ["sha256:l1", "sha256:l2"]);
    }

    #[test]
    fn recipe_digest_changes_with_content_and_root() {
        let dir = std::env::temp_dir().join(format!("sp-recipe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("Dockerfile"), "FROM x\n").expect("write");
        let a = recipe_digest(&dir, "sha256:1").expect("digest");
        assert_eq!(
            a,
            recipe_digest(&dir, "sha256:1").expect("digest"),
            "stable"
        );
        assert_ne!(a, recipe_digest(&dir, "sha256:2").expect("digest"), "root");
        std::fs::write(dir.join("entrypoint.sh"), "#!/bin/sh\n").expect("write");
        assert_ne!(a, recipe_digest(&dir, "sha256:1").expect("digest"), "file");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn recipe_without_dockerfile_is_refused() {
        let dir = std::env::temp_dir().join(format!("sp-recipe-none-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let err = recipe_digest(&dir, "sha256:1").expect_err("no Dockerfile");
        assert!(err.to_string().contains("no Dockerfile"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_root_layer_other_than_the_lock_is_an_error() {
        let recorded = RootImage {
            tag: "stackpilot/root:bookworm-20261125".into(),
            suite: "bookworm".into(),
            sources: HOST_SOURCES.into(),
            layer: "sha256:aaa".into(),
            id: "sha256:111".into(),
        };
        let same = parse_inspect("sha256:222|1|sha256:aaa");
        assert!(
            check_root(&recorded, &same).is_ok(),
            "the id may differ, the layer not"
        );
        let other = parse_inspect("sha256:111|1|sha256:bbb");
        let err = check_root(&recorded, &other).expect_err("layer differs");
        assert_eq!(err.exit(), stackpilot_core::Exit::Failed);
        assert!(
            err.to_string()
                .contains("docker rmi stackpilot/root:bookworm-20261125")
        );
    }

    #[test]
    fn short_ids_drop_the_algorithm() {
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
    }
}
