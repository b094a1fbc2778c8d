//! The host's page-cache writeback thresholds, lowered while the test suite runs.
//!
//! With the kernel's defaults (writeback starts at 10 % of memory dirty, writers are
//! throttled at 20 %) a 24 GiB host gathers gigabytes of the suite's writes (builds, image
//! loads) and flushes them at once; meanwhile every fsync waits behind that flood. The lab
//! database commits each order with an fsync, so its commits then took over the api's
//! 800 ms bound and the load drills saw 503 `timeout` on nodes the fault never touched
//! (measured: docs/benchmarks.md, "Host writeback and the database's commits"). Small
//! thresholds keep the flushing steady. The previous values are put back afterwards (not
//! when the suite is killed, e.g. by Ctrl-C: then the low thresholds stay until a reboot,
//! which costs some throughput of large writes and nothing else).

use std::fs;
use std::path::{Path, PathBuf};

/// Dirty page cache at which background writeback starts, while the suite runs.
pub const BACKGROUND_BYTES: u64 = 64 << 20;
/// Dirty page cache at which writers are throttled, while the suite runs.
pub const THROTTLE_BYTES: u64 = 256 << 20;

/// Where the kernel's knobs are.
pub const PROC_VM: &str = "/proc/sys/vm";

/// One threshold as the kernel holds it: in bytes, or, when that is 0, as a percentage of
/// memory (setting one of the pair zeroes the other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    /// `vm.dirty_*bytes`.
    Bytes(u64),
    /// `vm.dirty_*ratio`, percent.
    Ratio(u64),
}

impl Threshold {
    /// The threshold in bytes on a host with `mem_total` bytes of memory (an upper bound
    /// for a ratio: the kernel applies it to the memory it can use for dirty pages). Pure.
    pub fn bytes(self, mem_total: u64) -> u64 {
        match self {
            Threshold::Bytes(b) => b,
            Threshold::Ratio(r) => mem_total / 100 * r,
        }
    }

    fn describe(self) -> String {
        match self {
            Threshold::Bytes(b) => format!("{} MiB", b >> 20),
            Threshold::Ratio(r) => format!("{r} % of memory"),
        }
    }
}

/// The two thresholds: (background writeback, throttling).
type Pair = (Threshold, Threshold);

/// The knobs of a pair member: (bytes file, ratio file).
const KNOBS: [(&str, &str); 2] = [
    ("dirty_background_bytes", "dirty_background_ratio"),
    ("dirty_bytes", "dirty_ratio"),
];

/// Whether the host's thresholds are above the suite's (so lowering them does something). Pure.
pub fn needs_lowering(current: Pair, mem_total: u64) -> bool {
    current.0.bytes(mem_total) > BACKGROUND_BYTES || current.1.bytes(mem_total) > THROTTLE_BYTES
}

/// The previous thresholds, put back when dropped.
#[derive(Debug)]
pub struct Lowered {
    dir: PathBuf,
    previous: Pair,
}

impl Drop for Lowered {
    fn drop(&mut self) {
        let (bg, throttle) = self.previous;
        match write_pair(&self.dir, self.previous).map_err(|(_, e)| e) {
            Ok(()) => eprintln!(
                "==> host writeback: put back ({} / {})",
                bg.describe(),
                throttle.describe()
            ),
            Err(e) => eprintln!(
                "==> host writeback: could not put back {} / {} ({e}); a reboot restores the kernel's defaults",
                bg.describe(),
                throttle.describe()
            ),
        }
    }
}

/// Lowers the host's thresholds to [`BACKGROUND_BYTES`] / [`THROTTLE_BYTES`] for as long as
/// the returned guard lives, saying what it did. Where they are already that low, or the
/// knobs cannot be written (not root, a read-only /proc), nothing changes and it says why:
/// the suite still runs, and a drill that then meets a stalled commit names it.
pub fn lower_for_suite() -> Option<Lowered> {
    let mem_total = stackpilot_core::host::mem_total_bytes().unwrap_or(u64::MAX);
    match lower(Path::new(PROC_VM), mem_total) {
        Ok(Some(l)) => {
            eprintln!(
                "==> host writeback: {} / {} dirty → {} / {} MiB while the suite runs, so that the lab database's fsyncs do not wait behind gigabytes of flushing (put back at the end)",
                l.previous.0.describe(),
                l.previous.1.describe(),
                BACKGROUND_BYTES >> 20,
                THROTTLE_BYTES >> 20
            );
            Some(l)
        }
        Ok(None) => {
            eprintln!(
                "==> host writeback: already at most {} / {} MiB dirty; left as is",
                BACKGROUND_BYTES >> 20,
                THROTTLE_BYTES >> 20
            );
            None
        }
        Err(e) => {
            eprintln!(
                "==> host writeback: left as is ({e}); under heavy writes the lab database's commits can stall past the api's 800 ms bound, and a load drill then fails with 503 'timeout after 800ms' (run as root to lower it)"
            );
            None
        }
    }
}

/// [`lower_for_suite`] on the knobs under `dir`: `None` when nothing needed lowering.
pub fn lower(dir: &Path, mem_total: u64) -> Result<Option<Lowered>, String> {
    let previous = read_pair(dir)?;
    if !needs_lowering(previous, mem_total) {
        return Ok(None);
    }
    let suite = (
        Threshold::Bytes(BACKGROUND_BYTES),
        Threshold::Bytes(THROTTLE_BYTES),
    );
    if let Err((written, e)) = write_pair(dir, suite) {
        if written > 0 {
            // Half of the pair changed: put it back rather than leave a mix.
            let _ = write_pair(dir, previous);
        }
        return Err(e);
    }
    Ok(Some(Lowered {
        dir: dir.to_path_buf(),
        previous,
    }))
}

fn read_pair(dir: &Path) -> Result<Pair, String> {
    let one = |(bytes, ratio): (&str, &str)| -> Result<Threshold, String> {
        let b = read_u64(&dir.join(bytes))?;
        Ok(if b > 0 {
            Threshold::Bytes(b)
        } else {
            Threshold::Ratio(read_u64(&dir.join(ratio))?)
        })
    };
    Ok((one(KNOBS[0])?, one(KNOBS[1])?))
}

/// Writes both thresholds; on an error, how many were written before it.
fn write_pair(dir: &Path, (bg, throttle): Pair) -> Result<(), (usize, String)> {
    for (i, ((bytes, ratio), t)) in KNOBS.into_iter().zip([bg, throttle]).enumerate() {
        let (file, value) = match t {
            Threshold::Bytes(b) => (bytes, b),
            Threshold::Ratio(r) => (ratio, r),
        };
        let path = dir.join(file);
        fs::write(&path, value.to_string())
            .map_err(|e| (i, format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

fn read_u64(path: &Path) -> Result<u64, String> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|e| format!("{}: {e}: {text:?}", path.display()))
}

#[cfg(test)]
mod tests;
