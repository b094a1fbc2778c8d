//! Facts about the host this runs on.

/// The host's memory in bytes (`MemTotal` of /proc/meminfo), when it can be read.
pub fn mem_total_bytes() -> Option<u64> {
    mem_total_of(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

/// `MemTotal` of a /proc/meminfo text, in bytes. Pure.
pub fn mem_total_of(meminfo: &str) -> Option<u64> {
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_is_read_in_bytes_and_a_missing_or_garbled_line_is_none() {
        let text = "MemFree:  1000 kB\nMemTotal:       24683664 kB\nBuffers: 1 kB\n";
        assert_eq!(mem_total_of(text), Some(24_683_664 * 1024));
        assert_eq!(mem_total_of("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total_of("MemTotal: lots kB\n"), None);
    }
}
