//! The binary explains itself: `--help` exits 0 and says what the tool is for.

use std::process::Command;

#[test]
fn help_exits_zero_and_describes_the_tool() {
    let out = Command::new(env!("CARGO_BIN_EXE_drills"))
        .arg("--help")
        .output()
        .expect("binary runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {:?}: {text}", out.status.code());
    assert!(text.contains("Usage:"), "{text}");
    assert!(
        text.lines().next().is_some_and(|l| l.len() > 20),
        "no description: {text}"
    );
}
