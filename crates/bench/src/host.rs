//! Facts about the host the figures were measured on.

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// The machine's memory, in whole GiB.
pub(crate) fn mem_total() -> String {
    stackpilot_core::host::mem_total_bytes()
        .map_or_else(|| "unknown".into(), |b| format!("{} GiB", b >> 30))
}

/// A field of /proc/PID/status in KiB (VmRSS: now, VmHWM: peak).
pub(crate) fn rss_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
