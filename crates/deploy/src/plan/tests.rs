use super::*;

fn release(tag: &str) -> Release {
    Release {
        tag: format!("stackpilot/mock-exchange:{tag}"),
        image_id: format!("sha256:{tag}"),
        build_id: tag.into(),
        git_sha: "abcdef1".into(),
        dirty: false,
        built_at: "2026-11-25T19:00:00Z".into(),
        source_digest: format!("src-{tag}"),
        config_digest: "cfg".into(),
        overrides: vec![],
    }
}

fn deployed(tag: &str) -> Deployed {
    Deployed {
        release: release(tag),
        at: "2026-11-25T19:00:00Z".into(),
        by: "op@host".into(),
        how: "deploy".into(),
    }
}

fn passed(stage: Stage) -> StageResult {
    StageResult {
        stage,
        passed: true,
        detail: String::new(),
    }
}

fn failed(stage: Stage) -> StageResult {
    StageResult {
        stage,
        passed: false,
        detail: "why".into(),
    }
}

#[test]
fn env_file_missing_and_empty_keys_are_named() {
    let vars = parse_env_file("# c\nPOSTGRES_USER=u\nPOSTGRES_PASSWORD=\n");
    assert_eq!(missing_keys(&vars), ["POSTGRES_PASSWORD", "POSTGRES_DB"]);
    let full = parse_env_file("POSTGRES_USER=u\nPOSTGRES_PASSWORD=p\nPOSTGRES_DB=d\n");
    assert!(missing_keys(&full).is_empty());
}

#[test]
fn live_needs_the_confirmation_and_other_envs_do_not() {
    assert!(!confirmed("live", None));
    assert!(!confirmed("live", Some("y")));
    assert!(confirmed("live", Some("yes")));
    assert!(confirmed("dev", None));
}

#[test]
fn gate_runs_stages_in_order_and_records_after_all_four() {
    assert_eq!(gate(&[], None), Gate::Run(Stage::LocalVerification));
    let two = [
        passed(Stage::LocalVerification),
        passed(Stage::ArtifactIntegrity),
    ];
    assert_eq!(gate(&two, None), Gate::Run(Stage::RemoteExecution));
    let all: Vec<_> = Stage::ALL.iter().map(|s| passed(*s)).collect();
    assert_eq!(gate(&all, None), Gate::Record);
}

#[test]
fn gate_refuses_results_out_of_order() {
    let skipped = [passed(Stage::ArtifactIntegrity)];
    assert_eq!(
        gate(&skipped, None),
        Gate::Stop {
            failed: Stage::LocalVerification
        }
    );
}

#[test]
fn failure_before_the_node_stops_without_rollback() {
    let prev = release("a");
    let r = [
        passed(Stage::LocalVerification),
        failed(Stage::ArtifactIntegrity),
    ];
    assert_eq!(
        gate(&r, Some(&prev)),
        Gate::Stop {
            failed: Stage::ArtifactIntegrity
        }
    );
}

#[test]
fn failure_on_the_node_rolls_back_to_the_previous_release() {
    let prev = release("a");
    let mut r: Vec<_> = Stage::ALL[..3].iter().map(|s| passed(*s)).collect();
    r.push(failed(Stage::Observability));
    assert_eq!(
        gate(&r, Some(&prev)),
        Gate::RollBack {
            failed: Stage::Observability,
            to: prev.clone()
        }
    );
    let r3 = [
        passed(Stage::LocalVerification),
        passed(Stage::ArtifactIntegrity),
        failed(Stage::RemoteExecution),
    ];
    assert_eq!(
        gate(&r3, None),
        Gate::StopWithoutPrevious {
            failed: Stage::RemoteExecution
        }
    );
}

#[test]
fn previous_is_the_most_recent_other_release() {
    let mut s = EnvState::default();
    assert_eq!(s.previous(), None);
    s.record(deployed("a"));
    assert_eq!(s.previous(), None);
    s.record(deployed("b"));
    assert_eq!(s.previous().map(|r| r.build_id.as_str()), Some("a"));
    // A rollback to a moves it to the front; b becomes the previous one.
    s.record(deployed("a"));
    assert_eq!(s.previous().map(|r| r.build_id.as_str()), Some("b"));
    assert_eq!(s.history.len(), 2);
}

#[test]
fn same_sources_config_and_healthy_image_is_already_deployed() {
    let mut s = EnvState::default();
    s.record(deployed("a"));
    let running = Running {
        api_image_id: Some("sha256:a".into()),
        all_healthy: true,
    };
    assert!(already_deployed(&s, "src-a", "cfg", &running).is_some());
    assert!(already_deployed(&s, "src-b", "cfg", &running).is_none());
    assert!(already_deployed(&s, "src-a", "other", &running).is_none());
    let stopped = Running {
        api_image_id: Some("sha256:a".into()),
        all_healthy: false,
    };
    assert!(already_deployed(&s, "src-a", "cfg", &stopped).is_none());
    let other = Running {
        api_image_id: Some("sha256:x".into()),
        all_healthy: true,
    };
    assert!(already_deployed(&s, "src-a", "cfg", &other).is_none());
    assert!(already_deployed(&EnvState::default(), "src-a", "cfg", &running).is_none());
}

#[test]
fn prune_keeps_n_per_env_and_never_what_another_env_keeps() {
    let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut histories = BTreeMap::new();
    histories.insert("dev".to_string(), h(&["d4", "d3", "s1", "d1"]));
    histories.insert("staging".to_string(), h(&["s2", "s1"]));
    assert_eq!(prune(&histories, "dev", 2), ["d1"]);
    assert_eq!(prune(&histories, "staging", 2), Vec::<String>::new());
    assert_eq!(prune(&histories, "live", 2), Vec::<String>::new());
}

#[test]
fn lock_is_free_held_or_expired() {
    let l = LockInfo {
        owner: "op@host".into(),
        pid: 1,
        purpose: "deploy dev on worker1".into(),
        acquired_at: 100,
        expires_at: 200,
    };
    assert_eq!(lock_decision(None, 150), LockDecision::Free);
    assert_eq!(
        lock_decision(Some(l.clone()), 150),
        LockDecision::Held(l.clone())
    );
    assert_eq!(
        lock_decision(Some(l.clone()), 200),
        LockDecision::Expired(l)
    );
}

#[test]
fn log_counts_find_error_level_json_lines() {
    let text = r#"2026-11-25T19:00:00.1Z {"level":"INFO","fields":{"message":"listening"}}
2026-11-25T19:00:01.1Z {"level":"ERROR","fields":{"message":"db down"}}
thread 'main' panicked at src/main.rs
"#;
    assert_eq!(
        count_log_lines(text),
        LogCounts {
            lines: 3,
            errors: 2
        }
    );
}

#[test]
fn heartbeat_is_read_from_the_exposition() {
    let text = "# HELP x\nmock_exchange_heartbeat_last_success_timestamp_seconds 1764097200.5\n";
    assert_eq!(heartbeat(text), Some(1_764_097_200.5));
    assert_eq!(heartbeat("other 1\n"), None);
}

#[test]
fn observation_names_each_failed_condition() {
    let policy = ObservePolicy {
        window_secs: 10,
        max_errors: 0,
    };
    let good = Observation {
        switched_at: 100.0,
        heartbeat_before: Some(101.0),
        heartbeat_after: Some(106.0),
        logs: LogCounts {
            lines: 4,
            errors: 0,
        },
        verify_passed: true,
    };
    assert!(observation_failures(&good, &policy).is_empty());
    let bad = Observation {
        heartbeat_before: Some(99.0),
        heartbeat_after: Some(99.0),
        logs: LogCounts {
            lines: 0,
            errors: 1,
        },
        verify_passed: false,
        ..good
    };
    let fails = observation_failures(&bad, &policy);
    assert_eq!(fails.len(), 4, "{fails:?}");
    assert!(
        fails[1].contains("did not run after the switch"),
        "{fails:?}"
    );
}

#[test]
fn evidence_names_are_filesystem_safe() {
    assert_eq!(
        evidence_name("20261125T190000", "abc:d/e"),
        "20261125T190000-abc_d_e"
    );
    assert_eq!(release("x").short(), "x");
}
