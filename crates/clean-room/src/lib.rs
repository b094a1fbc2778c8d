//! `clean-room`: removes the implicit state of an environment's stack on a node — every
//! container of its compose project (running, stopped, orphans, one-off), every locally
//! built application image (all tags), the engine's build cache — and writes a clean
//! receipt.
//!
//! It keeps volumes (no data loss) and never starts anything: it only gets list, inspect
//! and remove calls ([`DockerAdmin`]). Every run needs the [`ctx_guard::Allowed`] token.

pub mod cli;
pub mod firewall;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;
use stackpilot_core::admin::{
    APP_LABEL, APP_NAME, AdminError, ContainerInfo, DockerAdmin, ImageInfo, Removal,
};
use stackpilot_core::compose::PROJECT_LABEL;
use stackpilot_core::output::{Render, Table};
use stackpilot_core::receipts::{self, CLEAN_RECEIPT, CleanReceipt, ReceiptError};
use stackpilot_core::time::now_rfc3339;
use stackpilot_core::{Config, Exit, exit::ExitStatus};

/// What a clean-room run removes: one compose project's containers and the images that
/// carry one label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanScope {
    /// Environment (names the receipt's directory).
    pub env: String,
    /// Compose project whose containers are removed.
    pub project: String,
    /// Label selector (`key=value`) of the application images to remove.
    pub app_images: String,
}

impl CleanScope {
    /// The real target of environment `env`: its compose project and every image labelled
    /// `stackpilot.app=mock-exchange`.
    pub fn for_env(cfg: &Config, env: &str) -> Result<CleanScope, stackpilot_core::Error> {
        let e = cfg.environment(env)?;
        Ok(CleanScope {
            env: env.to_string(),
            project: e.project().to_string(),
            app_images: format!("{APP_LABEL}={APP_NAME}"),
        })
    }

    /// The container selector: the compose project label.
    pub fn containers(&self) -> String {
        format!("{PROJECT_LABEL}={}", self.project)
    }
}

/// An image clean-room leaves in place, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    /// Image id.
    pub image: String,
    /// Why it was kept.
    pub reason: String,
}

/// Which images to remove, decided before removing any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImagePlan {
    /// Images to remove.
    pub remove: Vec<ImageInfo>,
    /// Images kept, each with the reason.
    pub keep: Vec<Kept>,
}

/// Decides which application images to remove once the project's containers are gone:
/// all of them, except those a container of another project still uses (another
/// environment's running stack or its rollback target is not this run's to destroy).
/// Newest first, so an image built on another goes before its parent.
pub fn plan_images(images: &[ImageInfo], remaining: &[ContainerInfo]) -> ImagePlan {
    let mut plan = ImagePlan {
        remove: Vec::new(),
        keep: Vec::new(),
    };
    for image in images {
        let users: Vec<String> = remaining
            .iter()
            .filter(|c| c.image_id == image.id)
            .map(|c| {
                let project = c
                    .labels
                    .get(PROJECT_LABEL)
                    .map_or("no compose project".to_string(), |p| format!("project {p}"));
                format!("{} ({project})", c.name)
            })
            .collect();
        if users.is_empty() {
            plan.remove.push(image.clone());
        } else {
            plan.keep.push(Kept {
                image: image.id.clone(),
                reason: format!("in use by {}", users.join(", ")),
            });
        }
    }
    plan.remove
        .sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
    plan
}

/// What a clean-room run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CleanReport {
    /// The receipt written.
    pub receipt: CleanReceipt,
    /// Where it was written.
    pub receipt_path: PathBuf,
    /// Names of the containers removed.
    pub container_names: Vec<String>,
    /// Tags of the images removed.
    pub image_tags: Vec<String>,
    /// Bytes the removed images took (as the engine reported them).
    pub image_bytes: u64,
    /// Images left in place, with why.
    pub kept_images: Vec<Kept>,
    /// Firewall rules left by drills that were removed.
    pub firewall_rules: Vec<String>,
    /// Networks of the compose project that were removed.
    pub networks: Vec<String>,
}

impl Render for CleanReport {
    fn human(&self) -> String {
        let r = &self.receipt;
        let mut t = Table::new(&["removed", "count", "detail"]);
        t.row([
            "containers".to_string(),
            r.removed_containers.len().to_string(),
            self.container_names.join(", "),
        ]);
        t.row([
            "app images".to_string(),
            r.removed_images.len().to_string(),
            format!(
                "{} ({} bytes)",
                self.image_tags.join(", "),
                self.image_bytes
            ),
        ]);
        t.row([
            "networks".to_string(),
            self.networks.len().to_string(),
            self.networks.join(", "),
        ]);
        t.row([
            "build cache".to_string(),
            "-".to_string(),
            format!("{} bytes reclaimed", r.build_cache_reclaimed_bytes),
        ]);
        t.row([
            "drill firewall rules".to_string(),
            self.firewall_rules.len().to_string(),
            self.firewall_rules.join("; "),
        ]);
        let mut out = format!(
            "clean-room: env {} at {}\n{}",
            r.env,
            r.cleaned_at,
            t.render()
        );
        for k in &self.kept_images {
            out.push_str(&format!("kept image {}: {}\n", k.image, k.reason));
        }
        out.push_str(&format!(
            "volumes kept; receipt {}\n",
            self.receipt_path.display()
        ));
        out
    }
}

/// Why clean-room failed.
#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    /// Configuration or an unknown environment.
    #[error(transparent)]
    Config(#[from] stackpilot_core::Error),
    /// The Docker engine could not be reached or a call failed.
    #[error(transparent)]
    Docker(#[from] AdminError),
    /// The receipt could not be written.
    #[error(transparent)]
    Receipt(#[from] ReceiptError),
    /// Containers of the project survived their removal.
    #[error(
        "containers of project {project} still exist after removal: {}\n  see `docker ps -a --filter label={PROJECT_LABEL}={project}` on the node",
        .left.join(", ")
    )]
    Leftovers {
        /// The project.
        project: String,
        /// What is left.
        left: Vec<String>,
    },
    /// Drill firewall rules could not be listed or removed.
    #[error(
        "firewall: {0}\n  drill rules may be left on the node; as root there: iptables -t raw -S PREROUTING"
    )]
    Firewall(String),
    /// A network of the project could not be removed.
    #[error(
        "network {network} of project {project} could not be removed: {reason}\n  see `docker network inspect {network}` on the node for what is still attached"
    )]
    NetworkInUse {
        /// The project.
        project: String,
        /// The network.
        network: String,
        /// What the engine said.
        reason: String,
    },
}

impl ExitStatus for CleanError {
    fn exit(&self) -> Exit {
        match self {
            CleanError::Config(e) => e.exit(),
            CleanError::Docker(e) => e.exit(),
            CleanError::Receipt(_)
            | CleanError::Leftovers { .. }
            | CleanError::NetworkInUse { .. }
            | CleanError::Firewall(_) => Exit::Failed,
        }
    }
}

/// Runs the clean room for `target` on this node's engine and writes the clean receipt
/// under `<node_dir>/<env>/`.
pub fn run(
    _allowed: &ctx_guard::Allowed,
    admin: &DockerAdmin,
    target: &CleanScope,
    node_dir: &Path,
) -> Result<CleanReport, CleanError> {
    let containers = admin.containers(&target.containers())?;
    let mut removed_containers = Vec::new();
    let mut container_names = Vec::new();
    for c in &containers {
        eprintln!("clean-room: removing container {} ({})", c.name, c.state);
        admin.remove_container(&c.id)?;
        removed_containers.push(c.id.clone());
        container_names.push(c.name.clone());
    }
    let left: Vec<String> = admin
        .containers(&target.containers())?
        .into_iter()
        .map(|c| c.name)
        .collect();
    if !left.is_empty() {
        return Err(CleanError::Leftovers {
            project: target.project.clone(),
            left,
        });
    }

    // The project's networks go with its containers (compose would create them again on
    // the next `up`); the engine refuses one that still has an endpoint, which is a leftover.
    let mut networks = Vec::new();
    for name in admin.networks(&target.containers())? {
        eprintln!("clean-room: removing network {name}");
        match admin.remove_network(&name)? {
            Removal::Removed => networks.push(name),
            Removal::Absent => {}
            Removal::Refused(reason) => {
                return Err(CleanError::NetworkInUse {
                    project: target.project.clone(),
                    network: name,
                    reason,
                });
            }
        }
    }

    let images = admin.images(&target.app_images)?;
    // Containers inherit their image's labels, so this finds every remaining user.
    let remaining = admin.containers(&target.app_images)?;
    let mut plan = plan_images(&images, &remaining);
    let mut removed_images = Vec::new();
    let mut image_tags = BTreeSet::new();
    let mut image_bytes = 0u64;
    for image in plan.remove.clone() {
        eprintln!(
            "clean-room: removing image {} {}",
            image.id,
            image.tags.join(" ")
        );
        match admin.remove_image(&image.id)? {
            Removal::Removed => {
                removed_images.push(image.id.clone());
                image_tags.extend(image.tags.iter().cloned());
                image_bytes += image.size.max(0) as u64;
            }
            Removal::Absent => {}
            Removal::Refused(reason) => plan.keep.push(Kept {
                image: image.id.clone(),
                reason: format!("the engine refused: {reason}"),
            }),
        }
    }
    for k in &plan.keep {
        eprintln!("clean-room: keeping image {}: {}", k.image, k.reason);
    }

    eprintln!("clean-room: pruning the build cache");
    let reclaimed = admin.prune_build_cache()?;

    let firewall_rules = match firewall::remove_drill_rules().map_err(CleanError::Firewall)? {
        firewall::Sweep::Removed(rules) => rules,
        firewall::Sweep::NoIptables => {
            eprintln!("clean-room: firewall: iptables not installed; no drill rule can exist");
            Vec::new()
        }
    };
    for r in &firewall_rules {
        eprintln!("clean-room: removed drill firewall rule: {r}");
    }

    let receipt = CleanReceipt {
        env: target.env.clone(),
        cleaned_at: now_rfc3339(),
        removed_containers,
        removed_images,
        build_cache_reclaimed_bytes: reclaimed,
    };
    let receipt_path = receipts::env_dir(node_dir, &target.env).join(CLEAN_RECEIPT);
    receipts::write(&receipt_path, &receipt)?;
    Ok(CleanReport {
        receipt,
        receipt_path,
        container_names,
        image_tags: image_tags.into_iter().collect(),
        image_bytes,
        kept_images: plan.keep,
        firewall_rules,
        networks,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn image(id: &str) -> ImageInfo {
        ImageInfo {
            id: id.into(),
            tags: vec![format!("stackpilot/mock-exchange:{id}")],
            labels: BTreeMap::new(),
            size: 10,
            created: 0,
        }
    }

    fn container(name: &str, project: &str, image_id: &str) -> ContainerInfo {
        ContainerInfo {
            id: format!("id-{name}"),
            name: name.into(),
            labels: BTreeMap::from([(PROJECT_LABEL.to_string(), project.to_string())]),
            image: "x".into(),
            image_id: image_id.into(),
            state: "running".into(),
            health: "healthy".into(),
            restarts: 0,
        }
    }

    #[test]
    fn every_unused_app_image_is_removed() {
        let plan = plan_images(&[image("a"), image("b")], &[]);
        assert_eq!(plan.remove, vec![image("a"), image("b")]);
        assert!(plan.keep.is_empty());
    }

    #[test]
    fn newer_images_go_before_the_images_they_may_be_built_on() {
        let mut old = image("old");
        old.created = 1;
        let mut new = image("new");
        new.created = 2;
        let plan = plan_images(&[old.clone(), new.clone()], &[]);
        assert_eq!(plan.remove, vec![new, old]);
    }

    #[test]
    fn an_image_another_project_runs_is_kept_with_the_user_named() {
        let plan = plan_images(
            &[image("a"), image("b")],
            &[container("stackpilot-live-api-1", "stackpilot-live", "b")],
        );
        assert_eq!(plan.remove, vec![image("a")]);
        assert_eq!(
            plan.keep,
            vec![Kept {
                image: "b".into(),
                reason: "in use by stackpilot-live-api-1 (project stackpilot-live)".into(),
            }]
        );
    }

    #[test]
    fn target_of_an_env_is_its_project_and_the_app_label() {
        let text = include_str!("../../../stackpilot.toml");
        let cfg = Config::parse(text, Path::new("stackpilot.toml")).expect("config");
        let t = CleanScope::for_env(&cfg, "dev").expect("dev");
        assert_eq!(t.containers(), "com.docker.compose.project=stackpilot-dev");
        assert_eq!(t.app_images, "stackpilot.app=mock-exchange");
        assert_eq!(
            CleanScope::for_env(&cfg, "nope")
                .expect_err("unknown")
                .exit(),
            Exit::Usage
        );
    }

    #[test]
    fn summary_names_counts_and_bytes() {
        let s = CleanReport {
            receipt: CleanReceipt {
                env: "dev".into(),
                cleaned_at: "2026-11-25T18:00:00Z".into(),
                removed_containers: vec!["c1".into(), "c2".into()],
                removed_images: vec!["sha256:a".into()],
                build_cache_reclaimed_bytes: 512,
            },
            receipt_path: "/var/lib/stackpilot/dev/clean-receipt.json".into(),
            container_names: vec!["api".into(), "db".into()],
            image_tags: vec!["stackpilot/mock-exchange:abc-1".into()],
            image_bytes: 2048,
            kept_images: vec![],
            firewall_rules: vec!["raw PREROUTING -p tcp --dport 8000 (drill)".into()],
            networks: vec!["stackpilot-dev_default".into()],
        };
        assert_eq!(
            s.human(),
            "clean-room: env dev at 2026-11-25T18:00:00Z
removed               count  detail
--------------------  -----  -------------------------------------------
containers            2      api, db
app images            1      stackpilot/mock-exchange:abc-1 (2048 bytes)
networks              1      stackpilot-dev_default
build cache           -      512 bytes reclaimed
drill firewall rules  1      raw PREROUTING -p tcp --dport 8000 (drill)
volumes kept; receipt /var/lib/stackpilot/dev/clean-receipt.json
"
        );
    }
}
