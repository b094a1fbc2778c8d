//! The Dockerfile's contract with the golden path: a caller-pinned local base (no default,
//! nothing pulled), the prebuilt static binary at /app/mock-exchange, a non-root user,
//! OCI labels plus `stackpilot.build-id` from build args, no shell needed, no secrets.

const DOCKERFILE: &str = include_str!("../Dockerfile");

fn instructions() -> Vec<String> {
    DOCKERFILE
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn base_image_is_a_required_build_arg() {
    let lines = instructions();
    assert_eq!(
        lines[0], "ARG RUNTIME_IMAGE",
        "no default base: the caller pins it"
    );
    assert_eq!(lines[1], "FROM ${RUNTIME_IMAGE}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("FROM ")).count(), 1);
}

#[test]
fn binary_user_port_and_entrypoint_match_the_compose_healthcheck() {
    let lines = instructions();
    assert!(lines.contains(&"COPY mock-exchange /app/mock-exchange".to_string()));
    assert!(lines.contains(&"USER 10001".to_string()));
    assert!(lines.contains(&"EXPOSE 8000".to_string()));
    assert_eq!(
        lines.last().map(String::as_str),
        Some(r#"ENTRYPOINT ["/app/mock-exchange"]"#)
    );
}

#[test]
fn labels_come_from_build_args() {
    for (label, arg) in [
        ("org.opencontainers.image.revision", "REVISION"),
        ("org.opencontainers.image.created", "CREATED"),
        ("org.opencontainers.image.source", "SOURCE"),
        ("org.opencontainers.image.version", "VERSION"),
        ("stackpilot.build-id", "BUILD_ID"),
    ] {
        assert!(
            DOCKERFILE.contains(&format!("{label}=\"${{{arg}}}\"")),
            "label {label} must come from ARG {arg}"
        );
        assert!(
            DOCKERFILE.contains(&format!("ARG {arg}=")),
            "ARG {arg} missing"
        );
    }
}

#[test]
fn nothing_runs_a_shell_and_no_configuration_is_baked_in() {
    for line in instructions() {
        let word = line.split_whitespace().next().unwrap_or_default();
        assert!(
            !["RUN", "ENV", "ADD"].contains(&word),
            "{line}: the base has no shell and configuration comes at run time"
        );
        assert!(
            !line.contains("--mount") && !line.starts_with("# syntax"),
            "BuildKit-only: {line}"
        );
    }
    assert!(!DOCKERFILE.to_ascii_uppercase().contains("PASSWORD="));
    // The healthcheck must be exec form: CMD-SHELL needs /bin/sh, which the base lacks.
    assert!(DOCKERFILE.contains(r#"CMD ["/app/mock-exchange", "healthcheck"]"#));
}
