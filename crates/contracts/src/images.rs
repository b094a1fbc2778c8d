//! Contract `no-floating-images`: every image reference, box and provisioned package is
//! pinned.

use crate::{Violation, v};

/// An image reference is pinned when it is a variable filled from a pinned source, or
/// carries an explicit tag other than `latest`.
fn image_ref_problem(reference: &str) -> Option<String> {
    let r = reference.trim().trim_matches('"').trim_matches('\'');
    if r.starts_with('$') || r == "scratch" {
        return None;
    }
    let last = r.rsplit('/').next().unwrap_or(r);
    match last.split_once(':') {
        None if !r.contains('@') => Some(format!("untagged image `{r}`: pin a tag")),
        Some((_, "latest")) => Some(format!("floating tag `{r}`: pin a version, never latest")),
        _ => None,
    }
}

/// Contract: no floating image references in compose files, Dockerfiles, Vagrantfile and
/// provisioning; box versions and provisioned packages pinned.
pub fn floating_images(texts: &[(String, String)]) -> Vec<Violation> {
    let mut out = Vec::new();
    for (file, text) in texts {
        let is_dockerfile = file.ends_with("Dockerfile");
        let mut stages: Vec<String> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let at = format!("{file}:{}", n + 1);
            let t = line.trim();
            if t.starts_with('#') {
                continue;
            }
            if t.contains(":latest") {
                out.push(v(&at, "floating `:latest` reference: pin a version"));
            }
            if (file.ends_with(".yml") || file.ends_with(".yaml"))
                && let Some(img) = t.strip_prefix("image:")
            {
                out.extend(image_ref_problem(img).map(|w| v(&at, w)));
            }
            if is_dockerfile && t.to_ascii_uppercase().starts_with("FROM ") {
                let words: Vec<&str> = t.split_whitespace().collect();
                let image = words
                    .iter()
                    .skip(1)
                    .find(|w| !w.starts_with("--"))
                    .copied()
                    .unwrap_or("");
                if !stages.iter().any(|s| s == image) {
                    out.extend(image_ref_problem(image).map(|w| v(&at, w)));
                }
                if let Some(pos) = words.iter().position(|w| w.eq_ignore_ascii_case("AS"))
                    && let Some(name) = words.get(pos + 1)
                {
                    stages.push((*name).to_string());
                }
            }
            if file.ends_with(".sh") && t.contains("apt-get install") {
                let after = t.split("apt-get install").nth(1).unwrap_or("");
                for word in after.split_whitespace() {
                    if word.starts_with('-')
                        || word.starts_with('"')
                        || word == "\\"
                        || word.contains('$')
                    {
                        continue;
                    }
                    if matches!(word, "&&" | "||" | ";" | "|") {
                        break;
                    }
                    if !word.contains('=') {
                        out.push(v(
                            &at,
                            format!("unpinned package `{word}`: install `{word}=<version>`"),
                        ));
                    }
                }
            }
        }
        if file.ends_with("Vagrantfile")
            && text.contains(".vm.box =")
            && !text.contains(".vm.box_version")
        {
            out.push(v(
                file.as_str(),
                "box without `vm.box_version`: pin the box version",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(file: &str, text: &str) -> Vec<Violation> {
        floating_images(&[(file.to_string(), text.to_string())])
    }

    #[test]
    fn latest_and_untagged_images_are_floating() {
        assert_eq!(
            // Split so repo-wide greps for floating tags do not flag this fixture.
            one(
                "infra/docker-compose.yml",
                concat!("  image: postgres:", "latest\n")
            )
            .len(),
            2
        );
        assert_eq!(
            one("infra/docker-compose.yml", "  image: postgres\n").len(),
            1
        );
        assert!(
            one(
                "infra/docker-compose.yml",
                "  image: \"${STACKPILOT_DB_IMAGE:?x}\"\n"
            )
            .is_empty()
        );
        assert!(
            one(
                "infra/docker-compose.yml",
                "  image: stackpilot/postgres:bookworm-1\n"
            )
            .is_empty()
        );
    }

    #[test]
    fn dockerfile_from_must_be_pinned_or_a_stage_or_an_arg() {
        let ok = "ARG ROOT_IMAGE\nFROM ${ROOT_IMAGE} AS build\nFROM scratch\nCOPY --from=build / /\nFROM build\n";
        assert!(one("infra/images/runtime/Dockerfile", ok).is_empty());
        assert_eq!(one("apps/x/Dockerfile", "FROM debian\n").len(), 1);
    }

    #[test]
    fn provisioning_packages_must_carry_versions() {
        let v = one(
            "vagrant/provision/docker.sh",
            "apt-get install -y docker-ce=5:24.0.7-1 containerd.io\n",
        );
        assert_eq!(v.len(), 1);
        assert!(v[0].what.contains("containerd.io"));
    }

    #[test]
    fn vagrant_box_needs_a_version() {
        assert_eq!(
            one(
                "vagrant/Vagrantfile",
                "config.vm.box = \"ubuntu/jammy64\"\n"
            )
            .len(),
            1
        );
        assert!(
            one(
                "vagrant/Vagrantfile",
                "config.vm.box = \"ubuntu/jammy64\"\nconfig.vm.box_version = \"20240301.0.0\"\n"
            )
            .is_empty()
        );
    }
}
