//! What the binary says about itself: `--help` of it and of every subcommand, pinned
//! (each exits 0; a changed text shows up as a snapshot diff to review).

#[test]
fn help_texts_are_pinned() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_drills"));
    insta::assert_snapshot!("help", stackpilot_core::cli_help::transcript(bin));
}
