//! `/proc/self/mountinfo` parsing (proc(5)), shared by ctx-guard (is `/vagrant` the repo?)
//! and the lab (which path does the host's mount table give the repo?).

use std::path::{Path, PathBuf};

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount's id (unique in this namespace).
    pub id: u32,
    /// The id of the mount it sits on: a mount stacked over another at the same point has
    /// that one as parent.
    pub parent: u32,
    /// `major:minor` of the filesystem: a bind mount shows its filesystem's device.
    pub device: String,
    /// Path of the mount's root inside its filesystem (not `/` for bind mounts of a subdirectory).
    pub root: PathBuf,
    /// Where it is mounted, relative to the process's root.
    pub mount_point: PathBuf,
    /// Filesystem type, e.g. `ext4`, `vboxsf`, `fuse.sshfs`.
    pub fstype: String,
    /// Mount source, e.g. `/dev/vda1` or `vagrant`.
    pub source: String,
}

/// Undoes the kernel's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = (bytes[i] == b'\\')
            .then(|| field.get(i + 1..i + 4))
            .flatten()
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        if let Some(v) = octal {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text; malformed lines are skipped (the kernel does not write them).
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if pre.len() < 6 || post.len() < 2 {
                return None;
            }
            Some(Mount {
                id: pre[0].parse().ok()?,
                parent: pre[1].parse().ok()?,
                device: pre[2].to_string(),
                root: PathBuf::from(unescape(pre[3])),
                mount_point: PathBuf::from(unescape(pre[4])),
                fstype: post[0].to_string(),
                source: unescape(post[1]),
            })
        })
        .collect()
}

/// The mount whose mount point is exactly `path`; when several are stacked there, the
/// topmost: the one no other mount at `path` sits on (mountinfo's order is not a promise).
pub fn mount_at<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    let at: Vec<&Mount> = mounts.iter().filter(|m| m.mount_point == path).collect();
    at.iter()
        .rev()
        .find(|m| !at.iter().any(|o| o.parent == m.id))
        .or(at.last())
        .copied()
}

/// The mount that holds `path` (longest mount point prefix, topmost when stacked).
pub fn mount_containing<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    mounts
        .iter()
        .rev()
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.components().count())
}

/// `path` as its filesystem names it: the containing mount's root joined with the rest.
/// This is what a bind mount of `path` shows as its root in another mount namespace.
pub fn filesystem_path(mounts: &[Mount], path: &Path) -> Option<PathBuf> {
    let m = mount_containing(mounts, path)?;
    let rest = path.strip_prefix(&m.mount_point).ok()?;
    Some(if rest.as_os_str().is_empty() {
        m.root.clone()
    } else {
        m.root.join(rest)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
35 22 0:40 /srv/my\\040repo /vagrant rw,relatime shared:20 - ext4 /dev/vda1 rw
40 22 0:41 / /data rw - xfs /dev/vdb rw
";

    #[test]
    fn parses_fields_and_unescapes_spaces() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].root, PathBuf::from("/srv/my repo"));
        assert_eq!(m[1].mount_point, PathBuf::from("/vagrant"));
        assert_eq!(m[1].fstype, "ext4");
    }

    #[test]
    fn filesystem_path_follows_the_containing_mount() {
        let m = parse(SAMPLE);
        assert_eq!(
            filesystem_path(&m, Path::new("/data/lab/repo")),
            Some(PathBuf::from("/lab/repo"))
        );
        assert_eq!(
            filesystem_path(&m, Path::new("/work/main")),
            Some(PathBuf::from("/work/main"))
        );
    }

    #[test]
    fn mount_at_is_the_topmost_by_parent_not_by_line_order() {
        let m = parse(
            "22 1 253:1 / / rw - ext4 /dev/vda1 rw
50 22 0:49 / /vagrant rw - 9p vagrant rw
40 50 253:1 /home/vagrant/copy /vagrant rw - ext4 /dev/vda1 rw
",
        );
        let top = mount_at(&m, Path::new("/vagrant")).expect("mounted");
        assert_eq!(top.id, 40);
        assert_eq!(top.device, "253:1");
    }

    #[test]
    fn optional_fields_do_not_shift_parsing() {
        let m = parse(
            "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue\n",
        );
        assert_eq!(m[0].fstype, "ext3");
        assert_eq!(m[0].source, "/dev/root");
    }
}
