//! The libvirt box: a Vagrant box built locally from Debian packages (recipe in
//! `infra/images/box`), and the probe that picks the libvirt driver.
//!
//! Like the images it pulls nothing and is named by its recipe hash: `cargo xtask images`
//! reuses a registered box whose name carries the current hash and builds it otherwise.
//! What a host built is recorded by Vagrant's own box list and the boot files under
//! [`BOOT_DIR`], never in a tracked file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use sha2::{Digest, Sha256};
use stackpilot_core::Config;

use crate::error::{Error, failed};
use crate::images::{HOST_SOURCES, collect_files, hex, is_executable, mirror_args};
use crate::process::step;

/// The box recipe: a package list and the mmdebstrap customize hook.
pub const RECIPE_DIR: &str = "infra/images/box";

/// Where the box's kernel and initrd go: libvirt's QEMU runs as `libvirt-qemu`, which
/// cannot reach Vagrant's box directory under a user's home.
pub const BOOT_DIR: &str = "/var/lib/libvirt/boot";

/// Kernel command line: the disk is one ext4 filesystem; `net.ifnames=0` makes the
/// management NIC `eth0`, which the box's networkd file matches.
pub const CMD_LINE: &str = "root=/dev/vda rw console=ttyS0 net.ifnames=0";

/// Size of the box's disk in GB (sparse; the lab's images and builds need room).
const DISK_GB: u32 = 8;

/// Where Debian's vagrant package keeps Vagrant's insecure key pair.
const VAGRANT_GEMS: &str = "/usr/share/rubygems-integration/all/gems";

/// A box as the lab uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmBox {
    /// The name it is registered under in Vagrant (carries the recipe hash).
    pub name: String,
    /// sha256 of suite, sources and recipe files.
    pub recipe: String,
    /// The kernel for direct kernel boot.
    pub kernel: PathBuf,
    /// Its initrd.
    pub initrd: PathBuf,
}

/// The box for this recipe and config (whether or not it is built).
pub fn planned(repo: &Path, cfg: &Config) -> Result<VmBox, Error> {
    let recipe = recipe_digest(&repo.join(RECIPE_DIR), &cfg.images.suite, &sources(cfg))?;
    let short = recipe
        .strip_prefix("sha256:")
        .and_then(|h| h.get(..12))
        .unwrap_or("unknown")
        .to_string();
    let boot = |what: &str| PathBuf::from(BOOT_DIR).join(format!("stackpilot-{short}-{what}"));
    Ok(VmBox {
        name: format!("stackpilot/{}-{short}", cfg.images.suite),
        recipe,
        kernel: boot("vmlinuz"),
        initrd: boot("initrd.img"),
    })
}

fn sources(cfg: &Config) -> String {
    if cfg.images.mirror.is_empty() {
        HOST_SOURCES.to_string()
    } else {
        cfg.images.mirror.clone()
    }
}

/// sha256 over the suite, the sources and every recipe file (path, mode, content).
pub fn recipe_digest(dir: &Path, suite: &str, sources: &str) -> Result<String, Error> {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    files.sort();
    let mut h = Sha256::new();
    for part in [suite, sources] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for (rel, path) in &files {
        let data = std::fs::read(path)
            .map_err(|e| failed("box", &format!("read {}", path.display()), &e.to_string()))?;
        h.update(rel.as_bytes());
        h.update([0, u8::from(is_executable(path))]);
        h.update((data.len() as u64).to_le_bytes());
        h.update(&data);
    }
    Ok(format!("sha256:{}", hex(&h.finalize())))
}

/// Makes sure the box is registered with Vagrant and its boot files are in place,
/// building it when not. Returns the box and the build's seconds (`None`: reused).
pub fn ensure(repo: &Path, cfg: &Config) -> Result<(VmBox, Option<f64>), Error> {
    let b = planned(repo, cfg)?;
    // One box build on the host at a time; a waiter then finds the box the holder made.
    let _building = crate::host_lock::acquire("libvirt-box", "images: box")?;
    if registered(&b.name)? && b.kernel.is_file() && b.initrd.is_file() {
        eprintln!("==> images: box {} present, recipe matches", b.name);
        return Ok((b, None));
    }
    let started = Instant::now();
    build(repo, cfg, &b)?;
    Ok((b, Some(started.elapsed().as_secs_f64())))
}

/// Whether Vagrant has a libvirt box of this name.
fn registered(name: &str) -> Result<bool, Error> {
    let out = Command::new("vagrant")
        .args(["box", "list"])
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .output()
        .map_err(|e| failed("box", "vagrant box list", &e.to_string()))?;
    Ok(box_listed(&String::from_utf8_lossy(&out.stdout), name))
}

/// Whether `vagrant box list` output names this box for libvirt.
pub fn box_listed(list: &str, name: &str) -> bool {
    list.lines().any(|l| {
        l.split_once(' ')
            .is_some_and(|(n, rest)| n == name && rest.contains("(libvirt,"))
    })
}

fn require(program: &str, package: &str, what: &str) -> Result<(), Error> {
    if which::which(program).is_ok() {
        return Ok(());
    }
    Err(Error::from(stackpilot_core::step::HostError::Prereq {
        what: format!("{program} ({what})"),
        install: format!("apt-get install -y {package}"),
    }))
}

/// Vagrant's insecure public key as Debian's vagrant package ships it.
fn vagrant_pubkey() -> Result<PathBuf, Error> {
    let found = std::fs::read_dir(VAGRANT_GEMS).ok().and_then(|d| {
        d.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("vagrant-"))
            .map(|e| e.path().join("keys/vagrant.pub"))
            .find(|p| p.is_file())
    });
    found.ok_or_else(|| {
        Error::from(stackpilot_core::step::HostError::Prereq {
            what: format!(
                "Vagrant's insecure public key ({VAGRANT_GEMS}/vagrant-*/keys/vagrant.pub)"
            ),
            install: "apt-get install -y vagrant".into(),
        })
    })
}

/// The recipe's package list: one a line, `#` comments.
pub fn packages(text: &str) -> Vec<&str> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect()
}

fn build(repo: &Path, cfg: &Config, b: &VmBox) -> Result<(), Error> {
    crate::images::require_mmdebstrap()?;
    require("qemu-img", "qemu-utils", "converts the box disk to qcow2")?;
    require("mkfs.ext4", "e2fsprogs", "makes the box's filesystem")?;
    let pubkey = vagrant_pubkey()?;
    let recipe = repo.join(RECIPE_DIR);
    let list_path = recipe.join("packages");
    let list = std::fs::read_to_string(&list_path).map_err(|e| {
        failed(
            "box",
            &format!("read {}", list_path.display()),
            &e.to_string(),
        )
    })?;
    let mirrors = mirror_args(&cfg.images.suite, &cfg.images.mirror)?;
    let work = PathBuf::from("/var/tmp").join(format!("stackpilot-box-{}", std::process::id()));
    let mkdir = |d: &Path| {
        std::fs::create_dir_all(d)
            .map_err(|e| failed("box", &format!("mkdir {}", d.display()), &e.to_string()))
    };
    mkdir(&work)?;
    eprintln!(
        "==> images: building box {} with mmdebstrap (suite {}, {} packages)",
        b.name,
        cfg.images.suite,
        packages(&list).len()
    );
    let result = (|| {
        let rootfs = work.join("rootfs");
        step(
            "box: mmdebstrap",
            Command::new("mmdebstrap")
                .args(["--variant=minbase", "--format=directory"])
                .arg(format!("--include={}", packages(&list).join(",")))
                .arg(format!(
                    "--customize-hook={}",
                    recipe.join("customize.sh").display()
                ))
                .arg(&cfg.images.suite)
                .arg(&rootfs)
                .args(&mirrors)
                .env("VAGRANT_PUBKEY", &pubkey),
        )?;
        let boot = |prefix: &str| -> Result<PathBuf, Error> {
            let dir = rootfs.join("boot");
            std::fs::read_dir(&dir)
                .ok()
                .and_then(|d| {
                    d.filter_map(Result::ok).map(|e| e.path()).find(|p| {
                        p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
                    })
                })
                .ok_or_else(|| {
                    failed(
                        "box",
                        &format!("find {}/{prefix}*", dir.display()),
                        "not in the rootfs",
                    )
                })
        };
        let (kernel, initrd) = (boot("vmlinuz-")?, boot("initrd.img-")?);
        mkdir(Path::new(BOOT_DIR))?;
        for (from, to) in [(&kernel, &b.kernel), (&initrd, &b.initrd)] {
            std::fs::copy(from, to).map_err(|e| {
                failed(
                    "box",
                    &format!("cp {} {}", from.display(), to.display()),
                    &e.to_string(),
                )
            })?;
        }
        let raw = work.join("disk.raw");
        step(
            "box: mkfs.ext4",
            Command::new("mkfs.ext4")
                .args(["-q", "-L", "root", "-d"])
                .arg(&rootfs)
                .arg(&raw)
                .arg(format!("{DISK_GB}G")),
        )?;
        let _ = std::fs::remove_dir_all(&rootfs);
        step(
            "box: qemu-img convert",
            Command::new("qemu-img")
                .args(["convert", "-O", "qcow2"])
                .arg(&raw)
                .arg(work.join("box.img")),
        )?;
        let _ = std::fs::remove_file(&raw);
        let write = |name: &str, text: String| {
            std::fs::write(work.join(name), text).map_err(|e| {
                failed(
                    "box",
                    &format!("write {}", work.join(name).display()),
                    &e.to_string(),
                )
            })
        };
        write(
            "metadata.json",
            format!(r#"{{"provider":"libvirt","format":"qcow2","virtual_size":{DISK_GB}}}"#),
        )?;
        write("Vagrantfile", box_vagrantfile(b))?;
        step(
            "box: tar",
            Command::new("tar").current_dir(&work).args([
                "cf",
                "box.box",
                "metadata.json",
                "Vagrantfile",
                "box.img",
            ]),
        )?;
        step(
            "box: vagrant box add",
            Command::new("vagrant")
                .args(["box", "add", "--force", "--name", &b.name])
                .arg(work.join("box.box"))
                .env("VAGRANT_CHECKPOINT_DISABLE", "1"),
        )
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// The box's own Vagrantfile: direct kernel boot from the boot files of this recipe.
pub fn box_vagrantfile(b: &VmBox) -> String {
    format!(
        "# Box {name} ({recipe}), built by `cargo xtask images` from infra/images/box.\n\
         Vagrant.configure(\"2\") do |config|\n  \
         config.vm.provider :libvirt do |l|\n    \
         l.kernel = {kernel:?}\n    \
         l.initrd = {initrd:?}\n    \
         l.cmd_line = {CMD_LINE:?}\n  \
         end\n\
         end\n",
        name = b.name,
        recipe = b.recipe,
        kernel = b.kernel.display().to_string(),
        initrd = b.initrd.display().to_string(),
    )
}

/// The libvirt driver for this host, from a real boot: `kvm` only when a KVM guest prints
/// its kernel banner, else `qemu` (TCG). `/dev/kvm` existing proves nothing on hosts whose
/// KVM guests hang before printing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverProbe {
    /// `kvm` or `qemu`.
    pub driver: &'static str,
    /// What the probe saw, for the record.
    pub reason: String,
}

/// How long a KVM guest may take to print its first kernel line.
const PROBE_SECONDS: u32 = 30;

/// Boots `kernel` under KVM (no disk; it panics and exits) and decides the driver.
pub fn probe_driver(kernel: &Path) -> DriverProbe {
    if !Path::new("/dev/kvm").exists() {
        return DriverProbe {
            driver: "qemu",
            reason: "/dev/kvm is absent".into(),
        };
    }
    let out = Command::new("timeout")
        .arg(PROBE_SECONDS.to_string())
        .args([
            "qemu-system-x86_64",
            "-accel",
            "kvm",
            "-cpu",
            "host",
            "-m",
            "256",
        ])
        .args(["-nographic", "-no-reboot", "-kernel"])
        .arg(kernel)
        .args(["-append", "console=ttyS0 panic=-1"])
        .output();
    judge_probe(out.as_ref().map(|o| {
        (
            o.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    }))
}

/// The decision of [`probe_driver`] from the probe's exit code and output. Pure.
pub fn judge_probe(out: Result<(Option<i32>, String), &std::io::Error>) -> DriverProbe {
    match out {
        Err(e) => DriverProbe {
            driver: "qemu",
            reason: format!("qemu-system-x86_64 could not run: {e}"),
        },
        Ok((_, text)) if text.contains("Linux version") => DriverProbe {
            driver: "kvm",
            reason: "a KVM guest printed its kernel banner".into(),
        },
        Ok((Some(124), _)) => DriverProbe {
            driver: "qemu",
            reason: format!(
                "a KVM guest printed nothing in {PROBE_SECONDS} s (hung before the kernel banner)"
            ),
        },
        Ok((code, text)) => DriverProbe {
            driver: "qemu",
            reason: format!(
                "a KVM guest ended (exit {}) without a kernel banner: {}",
                code.map_or("by signal".to_string(), |c| c.to_string()),
                text.lines().last().unwrap_or("no output").trim()
            ),
        },
    }
}

/// The recorded probe for this kernel (host state), probing when there is none.
pub fn driver(host_dir: &Path, b: &VmBox) -> Result<DriverProbe, Error> {
    let record = host_dir.join("libvirt-driver.txt");
    let header = format!("kernel = {}\n", b.kernel.display());
    if let Ok(text) = std::fs::read_to_string(&record)
        && let Some(rest) = text.strip_prefix(&header)
    {
        let field = |k: &str| {
            rest.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(str::to_string)
        };
        if let (Some(d), Some(reason)) = (field("driver = "), field("reason = ")) {
            let driver = if d == "kvm" { "kvm" } else { "qemu" };
            eprintln!(
                "==> lab: libvirt driver {driver} (recorded in {}: {reason})",
                record.display()
            );
            return Ok(DriverProbe { driver, reason });
        }
    }
    eprintln!(
        "==> lab: probing whether KVM guests run here (a kernel boot, up to {PROBE_SECONDS} s)"
    );
    let p = probe_driver(&b.kernel);
    eprintln!("==> lab: libvirt driver {}: {}", p.driver, p.reason);
    std::fs::create_dir_all(host_dir)
        .and_then(|()| {
            std::fs::write(
                &record,
                format!("{header}driver = {}\nreason = {}\n", p.driver, p.reason),
            )
        })
        .map_err(|e| {
            failed(
                "libvirt probe",
                &format!("write {}", record.display()),
                &e.to_string(),
            )
        })?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_banner_means_kvm_runs_guests() {
        let p = judge_probe(Ok((Some(0), "[    0.000000] Linux version 6.1.0".into())));
        assert_eq!(p.driver, "kvm");
    }

    #[test]
    fn a_silent_guest_until_the_timeout_means_qemu() {
        let p = judge_probe(Ok((Some(124), String::new())));
        assert_eq!(p.driver, "qemu");
        assert!(p.reason.contains("printed nothing"), "{}", p.reason);
    }

    #[test]
    fn an_aborting_guest_means_qemu_and_says_why() {
        let p = judge_probe(Ok((
            Some(1),
            "error: failed to set MSR 0x10a to 0x0\nAborted".into(),
        )));
        assert_eq!(p.driver, "qemu");
        assert!(p.reason.contains("Aborted"), "{}", p.reason);
    }

    #[test]
    fn box_list_lines_are_matched_by_name_and_libvirt_provider() {
        let list = "stackpilot/bookworm-0123456789ab (libvirt, 0)\ngeneric/ubuntu2204 (virtualbox, 4.3.12)\n";
        assert!(box_listed(list, "stackpilot/bookworm-0123456789ab"));
        assert!(!box_listed(list, "stackpilot/bookworm-000000000000"));
        assert!(!box_listed(list, "generic/ubuntu2204"));
    }

    #[test]
    fn package_list_skips_comments_and_blank_lines() {
        assert_eq!(
            packages("# boot\nlinux-image-amd64\n\nsudo # root ops\n"),
            vec!["linux-image-amd64", "sudo"]
        );
    }

    #[test]
    fn the_recipe_hash_follows_the_recipe_and_the_suite() {
        let dir = crate::process::repo_root().join(RECIPE_DIR);
        let a = recipe_digest(&dir, "bookworm", HOST_SOURCES).expect("digest");
        let b = recipe_digest(&dir, "trixie", HOST_SOURCES).expect("digest");
        assert_ne!(a, b);
        assert_eq!(
            a,
            recipe_digest(&dir, "bookworm", HOST_SOURCES).expect("digest")
        );
    }

    #[test]
    fn the_box_boots_its_own_kernel_with_the_networkd_nic_names() {
        let b = VmBox {
            name: "stackpilot/bookworm-0123456789ab".into(),
            recipe: "sha256:0123".into(),
            kernel: PathBuf::from("/var/lib/libvirt/boot/stackpilot-0123456789ab-vmlinuz"),
            initrd: PathBuf::from("/var/lib/libvirt/boot/stackpilot-0123456789ab-initrd.img"),
        };
        let v = box_vagrantfile(&b);
        assert!(
            v.contains(r#"l.kernel = "/var/lib/libvirt/boot/stackpilot-0123456789ab-vmlinuz""#),
            "{v}"
        );
        assert!(v.contains("net.ifnames=0"), "{v}");
    }
}
