//! Named labs on this host: the facts (Docker networks, host records) behind
//! `stackpilot_core::labs`' pure naming and subnet choice, and the host-wide lab list.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use stackpilot_core::labs::{CHECKOUT_LABEL, LAB_LABEL, LabRecord, host_state_dir};
use stackpilot_core::output::Table;

use crate::error::{Error, failed};

fn docker_lines(args: &[&str]) -> Result<Vec<String>, Error> {
    lines_of("lab", "docker", args)
}

/// The non-empty, trimmed lines `program args` prints, or the step error `step` with its
/// stderr.
fn lines_of(step: &str, program: &str, args: &[&str]) -> Result<Vec<String>, Error> {
    let cmd = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| failed(step, &cmd, &e.to_string()))?;
    if !out.status.success() {
        return Err(failed(
            step,
            &cmd,
            String::from_utf8_lossy(&out.stderr).trim(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// The host's lab records for creating a VM lab in `checkout`, less other checkouts' VM
/// labs whose checkout is gone (`labs::vm_lab_vanished`). Such a record is removed, and
/// said so, unless libvirt still has one of `domains` (the lab's `{lab}-{node}` names),
/// which the error names with the commands that remove them: the VMs would still hold
/// 192.168.56.x and the names.
pub fn vm_lab_records(checkout: &str, domains: &[String]) -> Result<Vec<LabRecord>, Error> {
    let state = host_state_dir();
    let records = LabRecord::list(&state).map_err(|e| {
        failed(
            "lab record",
            &state.join("labs").display().to_string(),
            &e.to_string(),
        )
    })?;
    let mut kept = Vec::new();
    for r in records {
        if !stackpilot_core::labs::vm_lab_vanished(&r, checkout) {
            kept.push(r);
            continue;
        }
        let left: Vec<&String> = if r.provider == "libvirt" {
            let listed = virsh_domains()?;
            domains.iter().filter(|d| listed.contains(d)).collect()
        } else {
            Vec::new()
        };
        if !left.is_empty() {
            let names: Vec<&str> = left.iter().map(|d| d.as_str()).collect();
            return Err(failed(
                "lab up",
                "virsh -c qemu:///system list --all --name",
                &format!(
                    "the VM lab '{}' of checkout {} (gone: no {} there) left libvirt domain(s) {}\n  expected: remove them, then run `cargo xtask lab up` again: {}",
                    r.name,
                    r.checkout,
                    stackpilot_core::node::LAB_MARKER,
                    names.join(", "),
                    names
                        .iter()
                        .map(|d| format!("virsh -c qemu:///system destroy {d}; virsh -c qemu:///system undefine {d} --remove-all-storage"))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            ));
        }
        LabRecord::remove(&state, &r.name).map_err(|e| {
            failed(
                "lab record",
                &state.join("labs").display().to_string(),
                &e.to_string(),
            )
        })?;
        eprintln!(
            "==> lab: the VM lab '{}' ({}) of checkout {} is gone with its checkout (no {} there) and left no VM: its record is removed",
            r.name,
            r.provider,
            r.checkout,
            stackpilot_core::node::LAB_MARKER
        );
    }
    Ok(kept)
}

/// Every libvirt domain on the host (`qemu:///system`), running or not.
fn virsh_domains() -> Result<Vec<String>, Error> {
    lines_of(
        "lab up",
        "virsh",
        &["-c", "qemu:///system", "list", "--all", "--name"],
    )
}

/// The lab resources of the checkout at `root` on this host: containers, networks and
/// volumes labelled with it (`io.stackpilot.checkout`), one `kind name` line each; none
/// when Docker does not answer.
pub fn checkout_resources(root: &Path) -> Vec<String> {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let filter = format!("label={CHECKOUT_LABEL}={}", root.display());
    [
        ("container", &["ps", "-a", "--format", "{{.Names}}"][..]),
        ("network", &["network", "ls", "--format", "{{.Name}}"][..]),
        ("volume", &["volume", "ls", "--format", "{{.Name}}"][..]),
    ]
    .iter()
    .flat_map(|(kind, args)| {
        let args: Vec<&str> = args.iter().copied().chain(["--filter", &filter]).collect();
        let lines = docker_lines(&args).unwrap_or_default();
        lines.into_iter().map(move |l| format!("{kind} {l}"))
    })
    .collect()
}

/// Every subnet (CIDR) of every Docker network on this host.
pub fn used_subnets() -> Result<Vec<String>, Error> {
    let ids = docker_lines(&["network", "ls", "-q"])?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = vec![
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
    ];
    args.extend(ids.iter().map(String::as_str));
    Ok(docker_lines(&args)?
        .iter()
        .flat_map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        .collect())
}

/// One lab found on this host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostLab {
    /// The lab's name.
    pub name: String,
    /// Its provider (`docker`, `libvirt`, `virtualbox`), `-` when only its containers tell.
    pub provider: String,
    /// The checkout that owns it.
    pub checkout: String,
    /// Its docker subnet, `-` for VM labs.
    pub subnet: String,
    /// Node containers that exist (docker provider), running or not.
    pub containers: usize,
}

/// Every lab on this host: the host records, plus labs whose containers carry the lab label
/// without a record (made before named labs existed).
pub fn host_labs() -> Result<Vec<HostLab>, Error> {
    let records = LabRecord::list(&host_state_dir())
        .map_err(|e| failed("lab status", "read lab records", &e.to_string()))?;
    let mut labs: BTreeMap<String, HostLab> = records
        .into_iter()
        .map(|r| {
            (
                r.name.clone(),
                HostLab {
                    name: r.name,
                    provider: r.provider,
                    checkout: r.checkout,
                    subnet: r.subnet.unwrap_or_else(|| "-".into()),
                    containers: 0,
                },
            )
        })
        .collect();
    let format = format!(
        "{{{{.Label \"{LAB_LABEL}\"}}}}|{{{{.Label \"{CHECKOUT_LABEL}\"}}}}|{{{{.Label \"com.docker.compose.project.working_dir\"}}}}"
    );
    let lines = docker_lines(&[
        "ps",
        "-a",
        "--filter",
        &format!("label={LAB_LABEL}"),
        "--format",
        &format,
    ])
    .unwrap_or_default();
    for line in lines {
        let mut f = line.split('|');
        let name = f.next().unwrap_or_default().to_string();
        let checkout = f.next().unwrap_or_default().to_string();
        if name.is_empty() {
            continue;
        }
        let lab = labs.entry(name.clone()).or_insert_with(|| HostLab {
            name,
            provider: "docker".into(),
            checkout: if checkout.is_empty() {
                "unknown (made before named labs)".into()
            } else {
                checkout
            },
            subnet: "-".into(),
            containers: 0,
        });
        lab.containers += 1;
    }
    Ok(labs.into_values().collect())
}

/// The host's labs as a table, this checkout's marked with `*`.
pub fn render(labs: &[HostLab], this_checkout: &Path) -> String {
    let here = this_checkout.display().to_string();
    let mut table = Table::new(&["lab", "provider", "subnet", "containers", "checkout"]);
    for l in labs {
        let mark = if l.checkout == here { " *" } else { "" };
        table.row([
            format!("{}{mark}", l.name),
            l.provider.clone(),
            l.subnet.clone(),
            l.containers.to_string(),
            l.checkout.clone(),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_checkouts_lab_is_marked() {
        let labs = [
            HostLab {
                name: "stackpilot-aa".into(),
                provider: "docker".into(),
                checkout: "/src/a".into(),
                subnet: "172.30.56.0/24".into(),
                containers: 3,
            },
            HostLab {
                name: "stackpilot-bb".into(),
                provider: "docker".into(),
                checkout: "/src/b".into(),
                subnet: "172.30.57.0/24".into(),
                containers: 1,
            },
        ];
        let text = render(&labs, Path::new("/src/b"));
        assert!(text.contains("stackpilot-bb *"), "{text}");
        assert!(!text.contains("stackpilot-aa *"), "{text}");
        assert!(text.contains("/src/a"), "{text}");
    }
}
