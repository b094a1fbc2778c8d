use super::*;

const GIB: u64 = 1 << 30;

/// A directory standing in for /proc/sys/vm with the four knobs.
fn knobs(name: &str, values: [u64; 4]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sp-writeback-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("temp dir");
    let files = [
        "dirty_background_bytes",
        "dirty_background_ratio",
        "dirty_bytes",
        "dirty_ratio",
    ];
    for (f, v) in files.iter().zip(values) {
        fs::write(dir.join(f), format!("{v}\n")).expect("knob");
    }
    dir
}

fn value(dir: &Path, file: &str) -> u64 {
    read_u64(&dir.join(file)).expect("knob")
}

#[test]
fn the_kernels_defaults_on_a_large_host_are_lowered_and_small_thresholds_are_left() {
    let defaults = (Threshold::Ratio(10), Threshold::Ratio(20));
    assert!(needs_lowering(defaults, 24 * GIB));
    // 10 % and 20 % of 512 MiB: 51 and 102 MiB, below the suite's.
    assert!(!needs_lowering(defaults, 512 << 20));
    let suite = (
        Threshold::Bytes(BACKGROUND_BYTES),
        Threshold::Bytes(THROTTLE_BYTES),
    );
    assert!(!needs_lowering(suite, 24 * GIB));
    let lower_still = (Threshold::Bytes(16 << 20), Threshold::Bytes(64 << 20));
    assert!(!needs_lowering(lower_still, 24 * GIB));
    // Either one above is enough.
    let throttle_high = (Threshold::Bytes(16 << 20), Threshold::Ratio(20));
    assert!(needs_lowering(throttle_high, 24 * GIB));
}

#[test]
fn lowering_writes_the_byte_knobs_and_the_guard_puts_the_ratios_back() {
    let dir = knobs("ratios", [0, 10, 0, 20]);
    let guard = lower(&dir, 24 * GIB).expect("lowered").expect("a guard");
    assert_eq!(value(&dir, "dirty_background_bytes"), BACKGROUND_BYTES);
    assert_eq!(value(&dir, "dirty_bytes"), THROTTLE_BYTES);
    // What the kernel does when a byte knob is set.
    fs::write(dir.join("dirty_background_ratio"), "0").expect("knob");
    fs::write(dir.join("dirty_ratio"), "0").expect("knob");
    drop(guard);
    assert_eq!(value(&dir, "dirty_background_ratio"), 10);
    assert_eq!(value(&dir, "dirty_ratio"), 20);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn byte_thresholds_the_host_had_are_put_back_as_bytes() {
    let dir = knobs("bytes", [512 << 20, 0, 2 * GIB, 0]);
    let guard = lower(&dir, 24 * GIB).expect("lowered").expect("a guard");
    assert_eq!(value(&dir, "dirty_background_bytes"), BACKGROUND_BYTES);
    drop(guard);
    assert_eq!(value(&dir, "dirty_background_bytes"), 512 << 20);
    assert_eq!(value(&dir, "dirty_bytes"), 2 * GIB);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn thresholds_already_low_are_left_untouched_and_unreadable_knobs_are_named() {
    let dir = knobs("low", [32 << 20, 0, 128 << 20, 0]);
    assert!(lower(&dir, 24 * GIB).expect("read").is_none());
    assert_eq!(value(&dir, "dirty_background_bytes"), 32 << 20);
    let _ = fs::remove_dir_all(&dir);

    let missing = std::env::temp_dir().join(format!("sp-writeback-none-{}", std::process::id()));
    let e = lower(&missing, 24 * GIB).expect_err("no knobs");
    assert!(
        e.contains("cannot read") && e.contains("dirty_background_bytes"),
        "{e}"
    );
}

#[test]
fn a_knob_that_cannot_be_written_is_named_with_nothing_written_before_it() {
    let dir = knobs("unwritable", [0, 10, 0, 20]);
    let (written, e) = write_pair(
        &dir.join("nowhere"),
        (Threshold::Ratio(1), Threshold::Ratio(2)),
    )
    .expect_err("no such directory");
    assert_eq!(written, 0);
    assert!(
        e.contains("cannot write") && e.contains("dirty_background_ratio"),
        "{e}"
    );
    assert_eq!(value(&dir, "dirty_background_ratio"), 10);
    let _ = fs::remove_dir_all(&dir);
}
