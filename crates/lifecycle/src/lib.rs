//! `lifecycle`: mutates the service stack of one environment on a lab node — builds the
//! application image (`docker build --no-cache`, build receipt), loads image archives
//! into the node's engine, starts the stack with compose and waits until every container
//! is healthy, stops it, reports it.
//!
//! It never asserts correctness (that is verify's job) and never runs outside a node:
//! every mutating function takes the [`ctx_guard::Allowed`] token.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use stackpilot_core::admin::{
    APP_LABEL, APP_NAME, APP_REPO, AdminError, BUILD_ID_LABEL, ContainerInfo, DockerAdmin,
};
use stackpilot_core::compose::{
    self, APP_IMAGE_VAR, Compose, ComposeError, DB_IMAGE_VAR, HealthCadence, ONEOFF_LABEL,
    PORT_VAR, Project, SERVICE_LABEL,
};
use stackpilot_core::images::{self as image_lock, ImageLock, LockError};
use stackpilot_core::output::{Render, Table};
use stackpilot_core::receipts::{self, BUILD_RECEIPT, BuildReceipt, ReceiptError};
use stackpilot_core::time::now_rfc3339;
use stackpilot_core::{Config, Exit, exit::ExitStatus};

pub mod cli;
mod load;
mod wait;
pub use load::{Archive, LoadReport, check_loaded, load_args, load_image};
pub use wait::{Readiness, readiness, unhealthy_services};

/// Where the Dockerfile of the application lives, relative to the repo root.
pub const DOCKERFILE: &str = "apps/mock-exchange/Dockerfile";
/// The binary's file name inside the build context (the Dockerfile copies it).
pub const CONTEXT_BINARY: &str = "mock-exchange";
/// The build log, next to the build receipt.
pub const BUILD_LOG: &str = "build.log";
/// Stand-in for image variables that `stop` must interpolate but never uses.
pub const NOT_NEEDED_TO_STOP: &str = "stackpilot/not-needed-to-stop:none";

/// Where the node-side steps read and write: the repo mount and the node state dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The repo checkout (on a node: `/vagrant`).
    pub repo: PathBuf,
    /// The node state dir (`state.node_dir`, outside the repo).
    pub node_dir: PathBuf,
}

impl Site {
    /// The real node: the repo at `/vagrant`, state under `state.node_dir`.
    pub fn on_node(cfg: &Config) -> Site {
        Site {
            repo: PathBuf::from(stackpilot_core::node::NODE_REPO),
            node_dir: cfg.state.node_dir.clone(),
        }
    }

    /// The state directory of environment `env`.
    pub fn env_dir(&self, env: &str) -> PathBuf {
        receipts::env_dir(&self.node_dir, env)
    }
}

/// Why a lifecycle step failed.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// Configuration or an unknown environment.
    #[error(transparent)]
    Config(#[from] stackpilot_core::Error),
    /// An argument has the wrong shape.
    #[error("{0}")]
    Usage(String),
    /// Something the step needs is not there.
    #[error("{what}\n  {fix}")]
    Prerequisite {
        /// What is missing.
        what: String,
        /// What installs or produces it.
        fix: String,
    },
    /// Compose could not be found or failed.
    #[error(transparent)]
    Compose(#[from] ComposeError),
    /// The Docker engine could not be reached or a call failed.
    #[error(transparent)]
    Docker(#[from] AdminError),
    /// A receipt could not be read or written.
    #[error(transparent)]
    Receipt(#[from] ReceiptError),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `docker build` failed.
    #[error("`{command}` failed ({status}); its output is in {log}")]
    Build {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The log file.
        log: PathBuf,
    },
    /// `docker load` failed (its output went to stderr).
    #[error("`{command}` failed ({status}); its output is above")]
    Load {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// An image reference no longer names the image its pinned source recorded.
    #[error(
        "{reference} is image {found}, but the {pinned_by} recorded {expected}\n  the image was changed outside the golden path; {fix}"
    )]
    Mismatch {
        /// The image reference.
        reference: String,
        /// What pinned it (`build receipt`, `image lock`).
        pinned_by: &'static str,
        /// The id recorded there.
        expected: String,
        /// The id the engine has for the reference.
        found: String,
        /// What restores it.
        fix: &'static str,
    },
    /// The image lock could not be read or lacks an entry.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The containers did not all become healthy in time.
    #[error(
        "not healthy after {timeout_secs} s (the timeout; raise it with --timeout): {reason}\n  see `lifecycle status --env {env}` and `docker logs <container>` on the node"
    )]
    Timeout {
        /// The environment.
        env: String,
        /// The timeout that fired, in seconds.
        timeout_secs: u64,
        /// The last thing waited for.
        reason: String,
    },
    /// A container reached a state it does not come back from.
    #[error("{reason}\n  see `docker logs <container>` on the node")]
    Unrecoverable {
        /// What happened.
        reason: String,
    },
}

impl ExitStatus for LifecycleError {
    fn exit(&self) -> Exit {
        match self {
            LifecycleError::Config(e) => e.exit(),
            LifecycleError::Usage(_) => Exit::Usage,
            LifecycleError::Prerequisite { .. } => Exit::PrereqMissing,
            LifecycleError::Compose(e) => e.exit(),
            LifecycleError::Docker(e) => e.exit(),
            LifecycleError::Lock(e) => e.exit(),
            LifecycleError::Receipt(ReceiptError::Missing { .. }) => Exit::PrereqMissing,
            LifecycleError::Receipt(_)
            | LifecycleError::Io { .. }
            | LifecycleError::Build { .. }
            | LifecycleError::Load { .. }
            | LifecycleError::Mismatch { .. }
            | LifecycleError::Timeout { .. }
            | LifecycleError::Unrecoverable { .. } => Exit::Failed,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LifecycleError + '_ {
    move |source| LifecycleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------- validation (pure)

/// Checks a git commit id: 7 to 40 lowercase hex digits.
pub fn validate_git_sha(sha: &str) -> Result<(), LifecycleError> {
    let ok = (7..=40).contains(&sha.len())
        && sha
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if ok {
        Ok(())
    } else {
        Err(LifecycleError::Usage(format!(
            "--git-sha: expected 7-40 lowercase hex digits (`git rev-parse HEAD`), found '{sha}'"
        )))
    }
}

/// Checks a build id: 1 to 64 of `A-Z a-z 0-9 _ . -`, not starting with `.` or `-`.
pub fn validate_build_id(id: &str) -> Result<(), LifecycleError> {
    let ok = (1..=64).contains(&id.len())
        && !id.starts_with(['.', '-'])
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(LifecycleError::Usage(format!(
            "--build-id: expected 1-64 letters, digits, '_', '.', '-' (not first), found '{id}'"
        )))
    }
}

/// The application image tag of a build: `stackpilot/mock-exchange:<git sha>-<build id>`.
pub fn image_tag(git_sha: &str, build_id: &str) -> Result<String, LifecycleError> {
    validate_git_sha(git_sha)?;
    validate_build_id(build_id)?;
    Ok(format!("{APP_REPO}:{git_sha}-{build_id}"))
}

/// Checks that an image reference is pinned: `name:tag` with a tag other than `latest`
/// (or an image id `sha256:…`). `what` names the flag in the message.
pub fn pinned_reference(reference: &str, what: &str) -> Result<(), LifecycleError> {
    if reference.starts_with("sha256:") {
        return Ok(());
    }
    let name_end = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[name_end..].split_once(':') {
        Some((name, tag))
            if !name.is_empty() && !tag.is_empty() && tag != "latest" && !tag.contains('@') =>
        {
            Ok(())
        }
        _ => Err(LifecycleError::Usage(format!(
            "{what}: expected a pinned local image reference `name:tag` (never `latest`), found '{reference}'"
        ))),
    }
}

/// Parses a `--set KEY=VALUE` drill override. Keys are environment variable names; the
/// `STACKPILOT_` ones are lifecycle's own (images, port) and cannot be overridden.
pub fn parse_override(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, found '{s}'"))?;
    let valid = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "expected a variable name (letters, digits, '_') before '=', found '{key}'"
        ));
    }
    if key.starts_with("STACKPILOT_") {
        return Err(format!(
            "{key} is set by lifecycle from pinned sources (build receipt, image lock, config) and cannot be overridden"
        ));
    }
    Ok((key.to_string(), value.to_string()))
}

/// Checks that `elf` is a 64-bit little-endian ELF executable without a program
/// interpreter, i.e. statically linked: the app image is `FROM scratch`, with no libc
/// and no loader. Returns what was found otherwise.
pub fn check_static_elf(elf: &[u8]) -> Result<(), String> {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        })
    };
    if elf.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err("not an ELF executable".into());
    }
    if elf.get(4..6) != Some([2u8, 1].as_slice()) {
        return Err("not a 64-bit little-endian ELF executable".into());
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return Err("a truncated ELF header".into());
    };
    for i in 0..usize::from(phnum) {
        let at = usize::try_from(phoff)
            .ok()
            .and_then(|o| o.checked_add(i * usize::from(phentsize)));
        match at.and_then(u32_at) {
            Some(PT_INTERP) => return Err("a dynamically linked executable".into()),
            Some(_) => {}
            None => return Err("a truncated ELF program header table".into()),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- pinned images

/// An image reference from a pinned source, with the id that source recorded (the image
/// lock records ids; a command-line flag does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedImage {
    /// The reference, `name:tag`.
    pub reference: String,
    /// The image id the source recorded, checked against the engine.
    pub id: Option<String>,
}

impl PinnedImage {
    /// An image named on the command line.
    pub fn flag(reference: &str) -> PinnedImage {
        PinnedImage {
            reference: reference.to_string(),
            id: None,
        }
    }

    /// Image `name` (`runtime`, `postgres`) from the image lock of the repo at `repo`.
    pub fn from_lock(repo: &Path, name: &str) -> Result<PinnedImage, LifecycleError> {
        let path = ImageLock::path(repo);
        let lock = ImageLock::read(&path)?.ok_or_else(|| LifecycleError::Prerequisite {
            what: format!("no image lock at {}", path.display()),
            fix: "build the lab images on the host: `make up` (or `cargo xtask images`)".into(),
        })?;
        let entry = lock.derived(name).ok_or_else(|| LockError::NoEntry {
            path: path.clone(),
            name: name.to_string(),
        })?;
        // The lock pins the recipe, and the tag derives from it; the id is per host (the
        // host loads the image it built into this node), so only the tag is pinned here.
        Ok(PinnedImage {
            reference: entry.tag.clone(),
            id: None,
        })
    }

    /// The flag's image when given, else image `name` from the lock.
    pub fn flag_or_lock(
        flag: Option<&str>,
        repo: &Path,
        name: &str,
    ) -> Result<PinnedImage, LifecycleError> {
        match flag {
            Some(r) => Ok(PinnedImage::flag(r)),
            None => PinnedImage::from_lock(repo, name),
        }
    }
}

/// The lock's name of the Postgres image.
pub const LOCK_POSTGRES: &str = image_lock::POSTGRES;
/// The lock's name of the app runtime base image.
pub const LOCK_RUNTIME: &str = image_lock::RUNTIME;

/// Checks that a pinned image is in this node's engine (nothing can be pulled) and, when
/// its source recorded an id, that the engine's image is that one.
fn ensure_image(
    admin: &DockerAdmin,
    image: &PinnedImage,
    what: &str,
) -> Result<(), LifecycleError> {
    pinned_reference(&image.reference, what)?;
    match (admin.image_id(&image.reference)?, &image.id) {
        (None, _) => Err(LifecycleError::Prerequisite {
            what: format!(
                "{what}: {} is not in this node's engine (nothing can be pulled)",
                image.reference
            ),
            fix: "build and load the lab images from the host: `make up`".into(),
        }),
        (Some(found), Some(expected)) if &found != expected => Err(LifecycleError::Mismatch {
            reference: image.reference.clone(),
            pinned_by: "image lock",
            expected: expected.clone(),
            found,
            fix: "remove the image and rebuild the lab images with `make up`",
        }),
        (Some(_), _) => Ok(()),
    }
}

// ---------------------------------------------------------------- build

/// What `lifecycle build` builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest {
    /// Environment whose build receipt is written.
    pub env: String,
    /// The compiled (static) binary of the service.
    pub binary: PathBuf,
    /// Unique build id (label and tag).
    pub build_id: String,
    /// Git commit the binary was compiled from.
    pub git_sha: String,
    /// Whether the work tree had uncommitted changes.
    pub dirty: bool,
    /// The pinned runtime base image (`stackpilot/runtime:<tag>`).
    pub runtime_image: PinnedImage,
}

impl BuildRequest {
    /// The request `lifecycle build` was given; without `--runtime-image` the image lock
    /// of `repo` pins the runtime image.
    pub fn from_args(args: &cli::BuildArgs, repo: &Path) -> Result<Self, LifecycleError> {
        Ok(BuildRequest {
            env: args.env.clone(),
            binary: args.binary.clone(),
            build_id: args.build_id.clone(),
            git_sha: args.git_sha.clone(),
            dirty: args.dirty,
            runtime_image: PinnedImage::flag_or_lock(
                args.runtime_image.as_deref(),
                repo,
                LOCK_RUNTIME,
            )?,
        })
    }
}

/// The `docker build` arguments (after the program) for a prepared context. The build
/// args are the ones `apps/mock-exchange/Dockerfile` declares; the provenance labels are
/// also set on the command line so they hold whatever the Dockerfile does.
pub fn build_args(
    req: &BuildRequest,
    tag: &str,
    context: &Path,
    source: &Path,
    created: &str,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["build".into(), "--no-cache".into()];
    let mut pair = |flag: &str, value: String| {
        args.push(flag.into());
        args.push(value.into());
    };
    pair(
        "--build-arg",
        format!("RUNTIME_IMAGE={}", req.runtime_image.reference),
    );
    pair("--build-arg", format!("REVISION={}", req.git_sha));
    pair("--build-arg", format!("CREATED={created}"));
    pair("--build-arg", format!("BUILD_ID={}", req.build_id));
    pair("--build-arg", format!("SOURCE={}", source.display()));
    // The app shares the workspace version with this crate (`version.workspace = true`).
    pair(
        "--build-arg",
        format!("VERSION={}", env!("CARGO_PKG_VERSION")),
    );
    pair("--label", format!("{APP_LABEL}={APP_NAME}"));
    pair("--label", format!("{BUILD_ID_LABEL}={}", req.build_id));
    pair("--label", format!("stackpilot.dirty={}", req.dirty));
    pair(
        "--label",
        format!("org.opencontainers.image.revision={}", req.git_sha),
    );
    pair(
        "--label",
        format!("org.opencontainers.image.created={created}"),
    );
    pair("--tag", tag.to_string());
    pair("--file", context.join("Dockerfile").display().to_string());
    args.push(context.as_os_str().to_owned());
    args
}

/// The receipt of a finished build.
pub fn build_receipt(
    req: &BuildRequest,
    tag: &str,
    image_id: &str,
    built_at: &str,
) -> BuildReceipt {
    BuildReceipt {
        env: req.env.clone(),
        image_id: image_id.to_string(),
        tag: tag.to_string(),
        build_id: req.build_id.clone(),
        built_at: built_at.to_string(),
        git_sha: req.git_sha.clone(),
        dirty: req.dirty,
    }
}

/// Builds the application image on this node with `docker build --no-cache` (output
/// streamed live and kept in `<env dir>/build.log`) and writes the build receipt.
pub fn build(
    _allowed: &ctx_guard::Allowed,
    cfg: &Config,
    site: &Site,
    req: &BuildRequest,
) -> Result<BuildReceipt, LifecycleError> {
    cfg.environment(&req.env)?;
    let tag = image_tag(&req.git_sha, &req.build_id)?;
    pinned_reference(&req.runtime_image.reference, "--runtime-image")?;
    if !req.binary.is_file() {
        return Err(LifecycleError::Usage(format!(
            "--binary: expected the compiled service binary, found no file at {}",
            req.binary.display()
        )));
    }
    let elf = std::fs::read(&req.binary).map_err(io(&req.binary))?;
    if let Err(found) = check_static_elf(&elf) {
        return Err(LifecycleError::Usage(format!(
            "--binary: expected a statically linked x86-64 executable (the app image has no libc), found {found} at {}\n  build it with RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release --target x86_64-unknown-linux-gnu -p mock-exchange",
            req.binary.display()
        )));
    }
    let dockerfile = site.repo.join(DOCKERFILE);
    if !dockerfile.is_file() {
        return Err(LifecycleError::Prerequisite {
            what: format!("no Dockerfile at {}", dockerfile.display()),
            fix: "the application's Dockerfile belongs to the repo (apps/mock-exchange)".into(),
        });
    }
    let docker = which::which("docker").map_err(|_| LifecycleError::Prerequisite {
        what: "the docker CLI is not on PATH".into(),
        fix: "install docker.io (Debian) or docker-ce-cli".into(),
    })?;
    let admin = DockerAdmin::connect()?;
    ensure_image(&admin, &req.runtime_image, "--runtime-image")?;

    let env_dir = site.env_dir(&req.env);
    std::fs::create_dir_all(&env_dir).map_err(io(&env_dir))?;
    let context = tempfile::Builder::new()
        .prefix("build-ctx-")
        .tempdir_in(&env_dir)
        .map_err(io(&env_dir))?;
    let ctx = context.path();
    std::fs::copy(&dockerfile, ctx.join("Dockerfile")).map_err(io(&dockerfile))?;
    let bin = ctx.join(CONTEXT_BINARY);
    std::fs::copy(&req.binary, &bin).map_err(io(&req.binary))?;
    set_executable(&bin)?;

    let args = build_args(req, &tag, ctx, &site.repo, &now_rfc3339());
    let log = env_dir.join(BUILD_LOG);
    let rendered = compose::render(&docker, &args);
    eprintln!("lifecycle: {rendered}");
    let mut cmd = Command::new(&docker);
    cmd.args(&args);
    let status = run_logged(&mut cmd, &rendered, &log)?;
    if !status.success() {
        return Err(LifecycleError::Build {
            command: rendered,
            status,
            log,
        });
    }
    let image_id = admin
        .image_id(&tag)?
        .ok_or_else(|| LifecycleError::Unrecoverable {
            reason: format!("docker build succeeded but the engine has no image {tag}"),
        })?;
    let receipt = build_receipt(req, &tag, &image_id, &now_rfc3339());
    receipts::write(&env_dir.join(BUILD_RECEIPT), &receipt)?;
    Ok(receipt)
}

fn set_executable(path: &Path) -> Result<(), LifecycleError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(io(path))
}

/// Runs `cmd`, copying its stdout and stderr line by line to the terminal and to `log`.
fn run_logged(
    cmd: &mut Command,
    rendered: &str,
    log: &Path,
) -> Result<std::process::ExitStatus, LifecycleError> {
    let mut file = std::fs::File::create(log).map_err(io(log))?;
    writeln!(file, "# {} {rendered}", now_rfc3339()).map_err(io(log))?;
    let file = Arc::new(Mutex::new(file));
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| LifecycleError::Io {
            path: PathBuf::from(rendered),
            source,
        })?;
    let mut copiers = Vec::new();
    if let Some(out) = child.stdout.take() {
        copiers.push(tee(out, Box::new(std::io::stdout()), Arc::clone(&file)));
    }
    if let Some(err) = child.stderr.take() {
        copiers.push(tee(err, Box::new(std::io::stderr()), Arc::clone(&file)));
    }
    let status = child.wait().map_err(|source| LifecycleError::Io {
        path: PathBuf::from(rendered),
        source,
    })?;
    for c in copiers {
        // A copier only ends early when the terminal went away; the status still counts.
        let _ = c.join();
    }
    Ok(status)
}

fn tee(
    from: impl Read + Send + 'static,
    mut to: Box<dyn Write + Send>,
    log: Arc<Mutex<std::fs::File>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut line = Vec::new();
        while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let _ = to.write_all(&line);
            let _ = to.flush();
            if let Ok(mut f) = log.lock() {
                let _ = f.write_all(&line);
            }
            line.clear();
        }
    })
}

// ---------------------------------------------------------------- up / down / status

/// What `lifecycle up` starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpRequest {
    /// Environment to start.
    pub env: String,
    /// Recreate containers even when their configuration did not change.
    pub recreate: bool,
    /// The pinned database image (`stackpilot/postgres:<tag>`).
    pub db_image: PinnedImage,
    /// Drill overrides for the compose process's environment (`--set KEY=VALUE`).
    pub overrides: Vec<(String, String)>,
    /// How long to wait for every container to be healthy.
    pub timeout: Duration,
}

impl UpRequest {
    /// The request `lifecycle up` was given; without `--db-image` the image lock of `repo`
    /// pins the database image.
    pub fn from_args(args: &cli::UpArgs, repo: &Path) -> Result<Self, LifecycleError> {
        Ok(UpRequest {
            env: args.env.clone(),
            recreate: args.recreate,
            db_image: PinnedImage::flag_or_lock(args.db_image.as_deref(), repo, LOCK_POSTGRES)?,
            overrides: args.overrides.clone(),
            timeout: Duration::from_secs(args.timeout),
        })
    }
}

/// One container of the stack, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerRow {
    /// Compose service (`api`, `db`), or `-` without the label.
    pub service: String,
    /// Container name.
    pub name: String,
    /// Short container id.
    pub id: String,
    /// Engine state.
    pub state: String,
    /// Health status (`none` without a healthcheck).
    pub health: String,
    /// Restart count.
    pub restarts: i64,
    /// Image reference.
    pub image: String,
    /// Image id.
    pub image_id: String,
}

impl ContainerRow {
    /// The row of an inspected container.
    pub fn of(c: &ContainerInfo) -> ContainerRow {
        ContainerRow {
            service: c
                .labels
                .get(SERVICE_LABEL)
                .cloned()
                .unwrap_or_else(|| "-".into()),
            name: c.name.clone(),
            id: c.id.chars().take(12).collect(),
            state: c.state.clone(),
            health: c.health.clone(),
            restarts: c.restarts,
            image: c.image.clone(),
            image_id: c.image_id.clone(),
        }
    }
}

/// The stack of one environment as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    /// Environment.
    pub env: String,
    /// Compose project.
    pub project: String,
    /// Its containers (by compose label), sorted by name.
    pub containers: Vec<ContainerRow>,
}

impl Render for StatusReport {
    fn human(&self) -> String {
        let mut t = Table::new(&[
            "service",
            "container",
            "id",
            "state",
            "health",
            "restarts",
            "image",
        ]);
        for c in &self.containers {
            // The engine keeps the last health of a stopped container; it means nothing.
            let health = if c.state == "running" {
                c.health.clone()
            } else {
                "-".to_string()
            };
            t.row([
                c.service.clone(),
                c.name.clone(),
                c.id.clone(),
                c.state.clone(),
                health,
                c.restarts.to_string(),
                c.image.clone(),
            ]);
        }
        let mut out = format!("env {} (compose project {})\n", self.env, self.project);
        if self.containers.is_empty() {
            out.push_str("no containers\n");
        } else {
            out.push_str(&t.render());
        }
        out
    }
}

/// The result of `lifecycle up`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpReport {
    /// Which compose ran (`docker-compose 1.29.2`).
    pub compose: String,
    /// The application image started (from the build receipt).
    pub app_image: String,
    /// The database image started.
    pub db_image: String,
    /// Seconds from `compose up` until every container was healthy.
    pub healthy_after_secs: u64,
    /// The stack once healthy.
    pub status: StatusReport,
}

impl Render for UpReport {
    fn human(&self) -> String {
        format!(
            "{}healthy after {} s ({}; app {}, db {})\n",
            self.status.human(),
            self.healthy_after_secs,
            self.compose,
            self.app_image,
            self.db_image
        )
    }
}

/// The variables lifecycle sets for compose: images and port.
pub fn compose_vars(app_image: &str, db_image: &str, port: u16) -> Vec<(String, String)> {
    vec![
        (APP_IMAGE_VAR.to_string(), app_image.to_string()),
        (DB_IMAGE_VAR.to_string(), db_image.to_string()),
        (PORT_VAR.to_string(), port.to_string()),
    ]
}

/// The health probes' cadence on this node, from `systemd-detect-virt --vm` (which prints
/// `none` and exits 1 on bare metal; absent in a docker-provider node's container).
fn health_cadence() -> HealthCadence {
    let virt = Command::new("systemd-detect-virt")
        .arg("--vm")
        .stderr(Stdio::null())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    HealthCadence::for_virtualization(virt.as_deref())
}

fn find_compose() -> Result<Compose, LifecycleError> {
    let c = compose::detect()?;
    eprintln!(
        "lifecycle: using {} {} ({:?})",
        c.display_name(),
        c.version,
        c.flavor
    );
    Ok(c)
}

/// The project's containers, one-off (`compose run`) ones left out.
fn stack_containers(
    admin: &DockerAdmin,
    project: &Project,
) -> Result<Vec<ContainerInfo>, LifecycleError> {
    Ok(admin
        .containers(&project.label_filter())?
        .into_iter()
        .filter(|c| c.labels.get(ONEOFF_LABEL).map(String::as_str) != Some("True"))
        .collect())
}

/// Reads the stack of `env` from the engine (by compose project label). Read-only.
pub fn status(cfg: &Config, site: &Site, env: &str) -> Result<StatusReport, LifecycleError> {
    let project = Project::for_env(cfg, &site.repo, env)?;
    let admin = DockerAdmin::connect()?;
    Ok(StatusReport {
        env: env.to_string(),
        project: project.name.clone(),
        containers: stack_containers(&admin, &project)?
            .iter()
            .map(ContainerRow::of)
            .collect(),
    })
}

/// Starts the stack of `req.env` with compose (application image from the build receipt)
/// and waits until every declared service's container is running and healthy.
pub fn up(
    _allowed: &ctx_guard::Allowed,
    cfg: &Config,
    site: &Site,
    req: &UpRequest,
) -> Result<UpReport, LifecycleError> {
    let project = Project::for_env(cfg, &site.repo, &req.env)?;
    pinned_reference(&req.db_image.reference, "--db-image")?;
    let receipt: BuildReceipt = receipts::read(&site.env_dir(&req.env).join(BUILD_RECEIPT))?;
    let admin = DockerAdmin::connect()?;
    match admin.image_id(&receipt.tag)? {
        Some(id) if id == receipt.image_id => {}
        Some(found) => {
            return Err(LifecycleError::Mismatch {
                reference: receipt.tag,
                pinned_by: "build receipt",
                expected: receipt.image_id,
                found,
                fix: "rebuild with `make demo`",
            });
        }
        None => {
            return Err(LifecycleError::Prerequisite {
                what: format!(
                    "the build receipt names {} but this node's engine has no such image",
                    receipt.tag
                ),
                fix: "rebuild it: `make demo`".into(),
            });
        }
    }
    ensure_image(&admin, &req.db_image, "--db-image")?;
    let compose = find_compose()?;
    let mut vars = compose_vars(&receipt.tag, &req.db_image.reference, project.port);
    let cadence = health_cadence();
    if cadence.is_emulated() {
        eprintln!(
            "lifecycle: this node's CPU is emulated (systemd-detect-virt: qemu): health probes every {} ({} each) instead of every {}",
            cadence.interval,
            cadence.timeout,
            HealthCadence::NATIVE.interval
        );
    }
    vars.extend(cadence.vars());
    let env = compose::process_env(std::env::vars_os(), &vars, &req.overrides);
    for (k, v) in &req.overrides {
        eprintln!("lifecycle: override {k}={v}");
    }
    let services: Vec<String> =
        compose::output(&compose, &project, &compose::services_args(), &env)?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
    let start = Instant::now();
    if let Err(e) = compose::run(&compose, &project, &compose::up_args(req.recreate), &env) {
        // Compose does not start a service while a container it depends on is unhealthy
        // (v1 "Container … is unhealthy", v2 "dependency failed to start"), and a db whose
        // checks timed out on a starved node (a TCG guest on a loaded host) is so for a few
        // checks, then healthy again: within the health gate, wait for it, start once more.
        let unhealthy = unhealthy_services(&stack_containers(&admin, &project)?);
        if unhealthy.is_empty() {
            return Err(e.into());
        }
        eprintln!(
            "lifecycle: compose up failed while {} unhealthy: waiting for it, then once more",
            unhealthy.join(", ")
        );
        wait_healthy(&admin, &project, &req.env, &unhealthy, req.timeout, start)?;
        compose::run(&compose, &project, &compose::up_args(req.recreate), &env)?;
    }
    let containers = wait_healthy(&admin, &project, &req.env, &services, req.timeout, start)?;
    Ok(UpReport {
        compose: format!("{} {}", compose.display_name(), compose.version),
        app_image: receipt.tag,
        db_image: req.db_image.reference.clone(),
        healthy_after_secs: start.elapsed().as_secs(),
        status: StatusReport {
            env: req.env.clone(),
            project: project.name.clone(),
            containers: containers.iter().map(ContainerRow::of).collect(),
        },
    })
}

/// Polls the engine until [`readiness`] says ready, printing progress with the elapsed
/// seconds whenever what is waited for changes (and every 5 s).
fn wait_healthy(
    admin: &DockerAdmin,
    project: &Project,
    env: &str,
    services: &[String],
    timeout: Duration,
    start: Instant,
) -> Result<Vec<ContainerInfo>, LifecycleError> {
    let mut last = String::new();
    let mut last_print = Instant::now();
    eprintln!(
        "lifecycle: waiting until {} {} healthy (timeout {} s)",
        services.join(", "),
        if services.len() == 1 { "is" } else { "are" },
        timeout.as_secs()
    );
    loop {
        let containers = stack_containers(admin, project)?;
        match readiness(services, &containers) {
            Readiness::Ready => {
                eprintln!("lifecycle: healthy after {} s", start.elapsed().as_secs());
                return Ok(containers);
            }
            Readiness::Failed(reason) => return Err(LifecycleError::Unrecoverable { reason }),
            Readiness::Waiting(reason) => {
                if start.elapsed() >= timeout {
                    return Err(LifecycleError::Timeout {
                        env: env.to_string(),
                        timeout_secs: timeout.as_secs(),
                        reason,
                    });
                }
                if reason != last || last_print.elapsed() >= Duration::from_secs(5) {
                    eprintln!(
                        "lifecycle: {:>3} s  waiting: {reason}",
                        start.elapsed().as_secs()
                    );
                    last = reason;
                    last_print = Instant::now();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Stops the stack of `env` (`compose stop`): containers stop and stay, with images,
/// networks and volumes. Compose interpolates the whole file even to stop, so the image
/// variables are set from the receipt, `db_image` or the lock when known, else to a
/// stand-in: stopping never uses images.
pub fn down(
    _allowed: &ctx_guard::Allowed,
    cfg: &Config,
    site: &Site,
    env: &str,
    db_image: Option<&str>,
) -> Result<(), LifecycleError> {
    let project = Project::for_env(cfg, &site.repo, env)?;
    let app_image = match receipts::read::<BuildReceipt>(&site.env_dir(env).join(BUILD_RECEIPT)) {
        Ok(r) => r.tag,
        Err(ReceiptError::Missing { .. }) => NOT_NEEDED_TO_STOP.to_string(),
        Err(e) => return Err(e.into()),
    };
    let db_image = match db_image {
        Some(r) => r.to_string(),
        None => PinnedImage::from_lock(&site.repo, LOCK_POSTGRES)
            .map(|p| p.reference)
            .unwrap_or_else(|_| NOT_NEEDED_TO_STOP.to_string()),
    };
    let compose = find_compose()?;
    let vars = compose_vars(&app_image, &db_image, project.port);
    let env_vars = compose::process_env(std::env::vars_os(), &vars, &[]);
    compose::run(&compose, &project, &compose::stop_args(), &env_vars)?;
    Ok(())
}

#[cfg(test)]
mod tests;
