//! The lab images, built locally from Debian packages, pulling nothing (`cargo xtask images`).
//!
//! The root image is a Debian rootfs made by `mmdebstrap` and `docker import`ed; the
//! derived images (`infra/images/<name>/Dockerfile`) are built FROM it. The tracked
//! `infra/images/images.lock` pins their recipes and tags; what this host built is recorded
//! on this host (labels, host state), never in the repo. A present image must carry its
//! pinned recipe (never a silent rebuild); an absent one is built.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use sha2::{Digest, Sha256};
use stackpilot_core::Config;
use stackpilot_core::images::{
    self as lock, BUILT_LABEL, BuiltImage, DERIVED, DerivedImage, IMAGE_LABEL, ImageLock,
    LOCK_FILE, RECIPE_LABEL, RECIPES_DIR, ROOT_IMAGE_ARG, RootImage,
};
use stackpilot_core::output::Table;
use stackpilot_core::time;

use crate::error::{Error, failed};
use crate::process::step;

/// What the lock records as `sources` when the host's apt sources were used.
pub(crate) const HOST_SOURCES: &str = "host apt sources";

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
        lock::REGISTRY => &["docker-registry"],
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

/// `cargo xtask images [--update-lock]`: ensure every image and print the summary.
pub fn run(repo: &Path, cfg: &Config, update_lock: bool) -> Result<(), Error> {
    let started = Instant::now();
    crate::prereq::ensure(crate::prereq::EntryPoint::Lab)?;
    if update_lock {
        pin(repo, cfg)?;
    }
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
    // A provider's boot image (libvirt's local box) is a lab image too.
    let mut built = built;
    if let Some(b) = crate::provider::get(crate::provider::from_env()?).ensure_box(repo, cfg)? {
        table.row([
            b.name.clone(),
            b.tag.clone(),
            short_id(&b.id).to_string(),
            "-".to_string(),
            b.seconds
                .map_or("present".to_string(), |s| format!("{s:.1}")),
        ]);
        built.push(b);
    }
    stackpilot_core::out!("{}", table.render());
    if built.iter().all(|b| b.seconds.is_none()) {
        stackpilot_core::outln!(
            "images: nothing to do: all {} images present and built from the recipes {LOCK_FILE} pins",
            built.len()
        );
    } else {
        stackpilot_core::outln!(
            "images: done in {:.1}s; what was built is recorded under {}",
            started.elapsed().as_secs_f64(),
            state_dir().join("images").display()
        );
    }
    Ok(())
}

/// This host's state directory for image build records.
fn state_dir() -> PathBuf {
    stackpilot_core::labs::host_state_dir()
}

/// The lock the recipes on disk call for: root recipe from suite and sources, each derived
/// recipe from the root recipe and its directory's files, every tag from its recipe.
pub fn pinned(repo: &Path, cfg: &Config) -> Result<ImageLock, Error> {
    let suite = &cfg.images.suite;
    let sources = if cfg.images.mirror.is_empty() {
        HOST_SOURCES.to_string()
    } else {
        cfg.images.mirror.clone()
    };
    let root_recipe = root_recipe(suite, &sources);
    let root = RootImage {
        tag: lock::recipe_tag("root", suite, &root_recipe),
        suite: suite.clone(),
        sources,
        recipe: root_recipe,
    };
    let mut images = BTreeMap::new();
    for name in DERIVED {
        let recipe = recipe_digest(&repo.join(RECIPES_DIR).join(name), &root.recipe)?;
        images.insert(
            name.to_string(),
            DerivedImage {
                tag: lock::recipe_tag(name, suite, &recipe),
                recipe,
            },
        );
    }
    Ok(ImageLock { root, images })
}

/// sha256 over what makes the root image: suite, sources and the mmdebstrap arguments.
fn root_recipe(suite: &str, sources: &str) -> String {
    let mut h = Sha256::new();
    for part in ["mmdebstrap --variant=minbase", suite, sources] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    format!("sha256:{}", hex(&h.finalize()))
}

/// `--update-lock`: writes the lock from the recipes on disk (the one command that writes
/// the tracked file; commit the result with the recipe change).
fn pin(repo: &Path, cfg: &Config) -> Result<(), Error> {
    let path = ImageLock::path(repo);
    let want = pinned(repo, cfg)?;
    // An old or malformed lock is simply replaced: pinning is what repairs it.
    if ImageLock::read(&path).ok().flatten().as_ref() == Some(&want) {
        eprintln!("==> images: {LOCK_FILE} already pins the recipes on disk");
        return Ok(());
    }
    want.write(&path).map_err(lock_error)?;
    eprintln!(
        "==> images: {LOCK_FILE} now pins the recipes on disk; commit it with the recipe change"
    );
    Ok(())
}

/// Differences between the tracked lock and the recipes on disk, one line each.
pub fn lock_drift(have: &ImageLock, want: &ImageLock) -> Vec<String> {
    let mut out = Vec::new();
    if have.root != want.root {
        out.push(format!(
            "root: the lock pins {} ({} from {}), the recipe is {} ({} from {})",
            have.root.tag,
            have.root.suite,
            have.root.sources,
            want.root.tag,
            want.root.suite,
            want.root.sources
        ));
    }
    for (name, w) in &want.images {
        match have.images.get(name) {
            Some(h) if h == w => {}
            Some(h) => out.push(format!(
                "{name}: the lock pins {}, the recipe on disk is {}",
                h.tag, w.tag
            )),
            None => out.push(format!("{name}: not pinned in the lock")),
        }
    }
    out
}

/// Makes sure every lab image exists, built from the recipes the tracked lock pins,
/// building what is absent. Never writes the lock: what was built is recorded on this host
/// (image labels and a record under the host state directory). Returns the lock and one
/// line per image.
pub fn ensure(repo: &Path, cfg: &Config) -> Result<(ImageLock, Vec<Built>), Error> {
    require_docker()?;
    let lock_path = ImageLock::path(repo);
    let want = pinned(repo, cfg)?;
    let Some(have) = ImageLock::read(&lock_path).map_err(lock_error)? else {
        return Err(failed(
            "images",
            &format!("read {LOCK_FILE}"),
            &format!(
                "{LOCK_FILE} is missing\n  restore it (git checkout -- {LOCK_FILE}) or pin the recipes: cargo xtask images --update-lock"
            ),
        ));
    };
    let drift = lock_drift(&have, &want);
    if !drift.is_empty() {
        return Err(failed(
            "images",
            &format!("compare {LOCK_FILE} with {RECIPES_DIR} and stackpilot.toml [images]"),
            &format!(
                "the image recipes differ from {LOCK_FILE}:\n    {}\n  if you changed a recipe on purpose, pin it and commit the lock: cargo xtask images --update-lock\n  else restore the recipes: git checkout -- {RECIPES_DIR} stackpilot.toml",
                drift.join("\n    ")
            ),
        ));
    }
    // One build of the host's images at a time (they are the host's, not this checkout's).
    let _building = crate::host_lock::acquire("images", "images")?;
    let state = state_dir();
    let mut out = Vec::new();
    let root = &have.root;
    match inspect(&root.tag)? {
        Some(found) => {
            check_recipe(&root.tag, &root.recipe, &found)?;
            eprintln!(
                "==> images: {} present, built from the pinned recipe",
                root.tag
            );
            out.push(built_line("root", root.tag.clone(), &found, None));
        }
        None => out.push(build_root(cfg, root, &state)?),
    }

    // Derived images: present ones must carry their recipe; absent ones are built together.
    let mut to_build = Vec::new();
    for name in DERIVED {
        let entry = lock_entry(&have, name, &lock_path)?;
        match inspect(&entry.tag)? {
            Some(found) => {
                check_recipe(&entry.tag, &entry.recipe, &found)?;
                eprintln!(
                    "==> images: {} present, built from the pinned recipe",
                    entry.tag
                );
                out.push(built_line(name, entry.tag.clone(), &found, None));
            }
            None => to_build.push((
                name.to_string(),
                repo.join(RECIPES_DIR).join(name),
                entry.clone(),
            )),
        }
    }
    let (results, failure) = build_derived(&root.tag, &to_build, &state);
    out.extend(results);
    if let Some(e) = failure {
        return Err(e);
    }
    Ok((have, out))
}

fn lock_entry<'a>(lock: &'a ImageLock, name: &str, path: &Path) -> Result<&'a DerivedImage, Error> {
    lock.derived(name).ok_or_else(|| {
        Error::Images(stackpilot_core::images::LockError::NoEntry {
            path: path.to_path_buf(),
            name: name.to_string(),
        })
    })
}

/// The id of a lab image in the host engine; an error naming the fix when it is absent.
pub fn host_id(tag: &str) -> Result<String, Error> {
    inspect(tag)?.map(|i| i.id).ok_or_else(|| {
        failed(
            "images",
            &format!("docker image inspect {tag}"),
            "the image is not in the host engine; build it with `cargo xtask images` (make up does it)",
        )
    })
}

/// What `docker image inspect` tells about an image.
#[derive(Debug, Clone)]
pub struct Inspected {
    /// Image id.
    pub id: String,
    /// Size in bytes.
    pub size: u64,
    /// The recipe label (`io.stackpilot.recipe`), empty when absent.
    pub recipe: String,
    /// Layer digests (diff ids).
    pub layers: Vec<String>,
}

/// Inspects an image in the host engine; `None` when it is absent.
pub fn inspect(tag: &str) -> Result<Option<Inspected>, Error> {
    let format = format!(
        "{{{{.Id}}}}|{{{{.Size}}}}|{{{{index .Config.Labels \"{RECIPE_LABEL}\"}}}}|{{{{range .RootFS.Layers}}}}{{{{.}}}} {{{{end}}}}"
    );
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", &format, tag])
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
    let mut parts = text.trim().splitn(4, '|');
    let id = parts.next().unwrap_or_default().to_string();
    let size = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let recipe = parts
        .next()
        .unwrap_or_default()
        .replace("<no value>", "")
        .to_string();
    let layers = parts
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    Inspected {
        id,
        size,
        recipe,
        layers,
    }
}

/// A present image under a pinned tag must have been built from that recipe (its label).
fn check_recipe(tag: &str, recipe: &str, found: &Inspected) -> Result<(), Error> {
    if found.recipe == recipe {
        return Ok(());
    }
    let label = if found.recipe.is_empty() {
        "no recipe label".to_string()
    } else {
        format!("recipe {}", found.recipe)
    };
    Err(failed(
        "images",
        &format!("docker image inspect {tag}"),
        &format!(
            "image {tag} was not built from the recipe {LOCK_FILE} pins\n  expected: {RECIPE_LABEL}={recipe}\n  found:    {label}\n  \
             images are never rebuilt silently; the tag was made by hand or by another tool: remove it and run again:\n    \
             docker rmi {tag} && cargo xtask images"
        ),
    ))
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

fn now_unix() -> u64 {
    u64::try_from(time::now_utc().unix_timestamp()).unwrap_or(0)
}

/// Records what this host built for a tag (outside the repo) and returns its summary line.
fn record(
    state: &Path,
    name: &str,
    tag: &str,
    recipe: &str,
    packages: BTreeMap<String, String>,
    seconds: f64,
) -> Result<Built, Error> {
    let found = inspect(tag)?.ok_or_else(|| {
        failed(
            name,
            &format!("docker image inspect {tag}"),
            "the built image is not there",
        )
    })?;
    check_recipe(tag, recipe, &found)?;
    BuiltImage {
        tag: tag.to_string(),
        recipe: recipe.to_string(),
        id: found.id.clone(),
        layers: found.layers.clone(),
        built_unix: now_unix(),
        packages,
    }
    .write(state)
    .map_err(lock_error)?;
    Ok(built_line(name, tag.to_string(), &found, Some(seconds)))
}

fn build_root(cfg: &Config, root: &RootImage, state: &Path) -> Result<Built, Error> {
    let started = Instant::now();
    let tag = &root.tag;
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
        "==> images: building {tag} with mmdebstrap from {} (suite {})",
        root.sources, root.suite
    );
    let (_, midnight) = time::utc_day(time::now_utc());
    let result = (|| {
        step(
            "mmdebstrap",
            Command::new("mmdebstrap")
                .args(["--variant=minbase", "--format=tar", &root.suite])
                .arg(&tar)
                .args(&mirrors)
                // Same packages on the same day give the same tar, hence the same layer.
                .env("SOURCE_DATE_EPOCH", midnight.to_string()),
        )?;
        step(
            "docker import",
            Command::new("docker")
                .args(["import", "--change", &format!("LABEL {IMAGE_LABEL}=root")])
                .args(["--change", &format!("LABEL {RECIPE_LABEL}={}", root.recipe)])
                .args(["--change", &format!("LABEL {BUILT_LABEL}={}", now_unix())])
                .args(["--change", r#"CMD ["/bin/bash"]"#])
                .arg(&tar)
                .arg(tag),
        )
    })();
    let _ = std::fs::remove_dir_all(&work);
    result?;
    record(
        state,
        "root",
        tag,
        &root.recipe,
        BTreeMap::new(),
        started.elapsed().as_secs_f64(),
    )
}

/// Builds the absent derived images concurrently, each line of output prefixed with its
/// name. Returns what was built and the first failure.
fn build_derived(
    root_tag: &str,
    jobs: &[(String, PathBuf, DerivedImage)],
    state: &Path,
) -> (Vec<Built>, Option<Error>) {
    let handles: Vec<_> = jobs
        .iter()
        .map(|(name, dir, entry)| {
            let (name, dir, entry) = (name.clone(), dir.clone(), entry.clone());
            let (root_tag, state) = (root_tag.to_string(), state.to_path_buf());
            std::thread::spawn(move || build_one(&root_tag, &name, &dir, &entry, &state))
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
    entry: &DerivedImage,
    state: &Path,
) -> Result<Built, Error> {
    let started = Instant::now();
    let tag = &entry.tag;
    let mut cmd = Command::new("docker");
    cmd.arg("build")
        .args(["--build-arg", &format!("{ROOT_IMAGE_ARG}={root_tag}")])
        .args(["--label", &format!("{IMAGE_LABEL}={name}")])
        .args(["--label", &format!("{RECIPE_LABEL}={}", entry.recipe)])
        .args(["--label", &format!("{BUILT_LABEL}={}", now_unix())])
        .args(["-t", tag])
        .arg(dir)
        // The engines here have no buildx; the recipes use legacy builder syntax only.
        .env("DOCKER_BUILDKIT", "0");
    prefixed(name, &mut cmd)?;
    let packages = package_versions(tag, recorded_packages(name))?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!("<== {name}: built {tag} in {secs:.1}s");
    record(state, name, tag, &entry.recipe, packages, secs)
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

/// sha256 over the root recipe and every file of a recipe directory (path, mode, content).
pub fn recipe_digest(dir: &Path, root_recipe: &str) -> Result<String, Error> {
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
    h.update(root_recipe.as_bytes());
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

pub(crate) fn collect_files(
    base: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), Error> {
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

pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first 12 hex digits of an image id.
pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

/// mmdebstrap's mirror arguments: the host's apt source files, or the configured mirror.
pub(crate) fn mirror_args(suite: &str, mirror: &str) -> Result<Vec<String>, Error> {
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
        return Err(Error::from(stackpilot_core::step::HostError::Prereq {
            what: "docker (the Docker engine and its CLI)".into(),
            install: "apt-get install -y docker.io".into(),
        }));
    }
    let ok = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        return Err(Error::from(stackpilot_core::step::HostError::Prereq {
            what: "a running Docker engine (`docker version` cannot reach the server)".into(),
            install: "apt-get install -y docker.io && systemctl start docker".into(),
        }));
    }
    Ok(())
}

pub(crate) fn require_mmdebstrap() -> Result<(), Error> {
    // The shared prerequisites step installs it where it can; here it is only checked.
    if which::which("mmdebstrap").is_ok() {
        return Ok(());
    }
    Err(Error::from(stackpilot_core::step::HostError::Prereq {
        what: "mmdebstrap (builds the root image from Debian packages)".into(),
        install: "apt-get install -y --no-install-recommends mmdebstrap".into(),
    }))
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
        let i = parse_inspect("sha256:ab|1234|sha256:r|sha256:l1 sha256:l2 \n");
        assert_eq!(i.id, "sha256:ab");
        assert_eq!(i.recipe, "sha256:r");
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
    fn an_image_not_built_from_the_pinned_recipe_is_an_error() {
        let tag = "stackpilot/node:bookworm-0123456789ab";
        let same = parse_inspect("sha256:222|1|sha256:0123|sha256:l1");
        assert!(check_recipe(tag, "sha256:0123", &same).is_ok());
        let unlabelled = parse_inspect("sha256:222|1|<no value>|sha256:l1");
        let err = check_recipe(tag, "sha256:0123", &unlabelled).expect_err("no label");
        assert_eq!(err.exit(), stackpilot_core::Exit::Failed);
        assert!(err.to_string().contains("no recipe label"), "{err}");
        assert!(
            err.to_string().contains(&format!("docker rmi {tag}")),
            "{err}"
        );
    }

    #[test]
    fn the_repos_lock_pins_the_recipes_on_disk() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let cfg = Config::load_file(&repo.join("stackpilot.toml")).expect("config");
        let want = pinned(&repo, &cfg).expect("recipes hash");
        let have = ImageLock::read(&ImageLock::path(&repo))
            .expect("lock readable")
            .expect("lock tracked");
        assert!(
            lock_drift(&have, &want).is_empty(),
            "{LOCK_FILE} drifted from the recipes: {:?}; run `cargo xtask images --update-lock` and commit it",
            lock_drift(&have, &want)
        );
    }

    #[test]
    fn a_changed_recipe_is_reported_by_name_and_tag() {
        let root = RootImage {
            tag: "stackpilot/root:bookworm-aaaaaaaaaaaa".into(),
            suite: "bookworm".into(),
            sources: HOST_SOURCES.into(),
            recipe: "sha256:aaaaaaaaaaaa".into(),
        };
        let entry = |r: &str| DerivedImage {
            tag: lock::recipe_tag("node", "bookworm", r),
            recipe: r.into(),
        };
        let have = ImageLock {
            root: root.clone(),
            images: BTreeMap::from([("node".to_string(), entry("sha256:111111111111"))]),
        };
        let want = ImageLock {
            root,
            images: BTreeMap::from([("node".to_string(), entry("sha256:222222222222"))]),
        };
        assert_eq!(
            lock_drift(&have, &want),
            [
                "node: the lock pins stackpilot/node:bookworm-111111111111, the recipe on disk is stackpilot/node:bookworm-222222222222"
            ]
        );
        assert!(lock_drift(&have, &have).is_empty());
    }

    #[test]
    fn root_recipes_differ_by_suite_and_sources() {
        let a = root_recipe("bookworm", HOST_SOURCES);
        assert_eq!(a, root_recipe("bookworm", HOST_SOURCES), "stable");
        assert_ne!(a, root_recipe("trixie", HOST_SOURCES));
        assert_ne!(a, root_recipe("bookworm", "http://deb.debian.org/debian"));
    }

    #[test]
    fn short_ids_drop_the_algorithm() {
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
    }
}
