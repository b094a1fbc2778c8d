//! Orders: stored only when committed, readable back, durable across SIGKILL; every class
//! of bad input is a 4xx naming the field; metrics, heartbeat, logs and OpenAPI agree with
//! what the service does.

mod common;

use std::time::Duration;

use common::{Service, postgres, ready_service, wait_until};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

fn count_orders(pg: &pg_harness::PgServer) -> String {
    pg.psql("postgres", "SELECT count(*) FROM orders")
        .expect("count orders")
}

#[test]
fn query_form_order_is_committed_and_readable() {
    let pg = postgres();
    let svc = ready_service(&pg, &[]);
    let created = svc.post("/order?symbol=BTC&side=buy&qty=1", None, b"");
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.json["order_id"].as_i64().expect("order_id");
    assert_eq!(created.json["symbol"], "BTC");
    assert_eq!(created.json["side"], "buy");
    assert_eq!(created.json["qty"], 1.0);
    // 201 means committed: a separate session sees the row.
    let row = pg
        .psql(
            "postgres",
            &format!("SELECT symbol, side, qty FROM orders WHERE id = {id}"),
        )
        .expect("select");
    assert_eq!(row, "BTC|buy|1");
    let read = svc.get(&format!("/orders/{id}"));
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.json, created.json);
}

#[test]
fn json_body_order_is_accepted() {
    let pg = postgres();
    let svc = ready_service(&pg, &[]);
    let body = json!({"symbol": "ETH-USD", "side": "sell", "qty": 0.25}).to_string();
    let created = svc.post("/order", Some("application/json"), body.as_bytes());
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.json["symbol"], "ETH-USD");
    assert_eq!(created.json["side"], "sell");
    assert_eq!(created.json["qty"], 0.25);
    assert_eq!(count_orders(&pg), "1");
}

#[test]
fn every_bad_input_class_is_a_4xx_naming_the_field() {
    let pg = postgres();
    let svc = ready_service(&pg, &[]);
    let long = "A".repeat(17);
    let huge = format!(
        r#"{{"symbol":"BTC","side":"buy","qty":1,"pad":"{}"}}"#,
        "x".repeat(20_000)
    );
    let query_cases: Vec<(String, u16, &str)> = vec![
        ("side=buy&qty=1".into(), 400, "symbol"),
        ("symbol=&side=buy&qty=1".into(), 400, "symbol"),
        (format!("symbol={long}&side=buy&qty=1"), 400, "symbol"),
        ("symbol=%C3%87BTC&side=buy&qty=1".into(), 400, "symbol"),
        ("symbol=BTC&side=hold&qty=1".into(), 400, "side"),
        ("symbol=BTC&qty=1".into(), 400, "side"),
        ("symbol=BTC&side=buy".into(), 400, "qty"),
        ("symbol=BTC&side=buy&qty=0".into(), 400, "qty"),
        ("symbol=BTC&side=buy&qty=-5".into(), 400, "qty"),
        ("symbol=BTC&side=buy&qty=NaN".into(), 400, "qty"),
        ("symbol=BTC&side=buy&qty=inf".into(), 400, "qty"),
        ("symbol=BTC&side=buy&qty=1e400".into(), 400, "qty"),
        ("symbol=BTC&side=buy&qty=99999999999".into(), 400, "qty"),
        ("symbol=BTC&side=buy&qty=lots".into(), 400, "qty"),
        ("symbol=BTC&side=buy&qty=1&price=2".into(), 400, "price"),
        ("".into(), 400, "symbol"),
    ];
    for (query, status, field) in &query_cases {
        let a = svc.post(&format!("/order?{query}"), None, b"");
        assert_eq!(a.status, *status, "?{query}: {a:?}");
        assert_eq!(a.json["field"], *field, "?{query}: {a:?}");
    }
    let body_cases: Vec<(Option<&str>, Vec<u8>, u16, &str)> = vec![
        (
            Some("text/plain"),
            b"symbol=BTC&side=buy&qty=1".to_vec(),
            415,
            "content-type",
        ),
        (
            None,
            br#"{"symbol":"BTC","side":"buy","qty":1}"#.to_vec(),
            415,
            "content-type",
        ),
        (Some("application/json"), huge.into_bytes(), 413, "body"),
        (Some("application/json"), b"{not json".to_vec(), 400, "body"),
        (Some("application/json"), b"[]".to_vec(), 400, "body"),
        (
            Some("application/json"),
            br#"{"symbol":"BTC","side":"buy","qty":"NaN"}"#.to_vec(),
            400,
            "qty",
        ),
        (
            Some("application/json"),
            br#"{"symbol":"BTC","side":"buy","qty":1e308}"#.to_vec(),
            400,
            "qty",
        ),
        (
            Some("application/json"),
            br#"{"symbol":"BTC","side":"buy","qty":null}"#.to_vec(),
            400,
            "qty",
        ),
        (
            Some("application/json"),
            br#"{"symbol":"\u00e9","side":"buy","qty":1}"#.to_vec(),
            400,
            "symbol",
        ),
        (
            Some("application/json"),
            br#"{"symbol":7,"side":"buy","qty":1}"#.to_vec(),
            400,
            "symbol",
        ),
        (
            Some("application/json"),
            br#"{"symbol":"BTC","side":"short","qty":1}"#.to_vec(),
            400,
            "side",
        ),
    ];
    for (ct, body, status, field) in &body_cases {
        let a = svc.post("/order", *ct, body);
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        assert_eq!(a.status, *status, "{ct:?} {shown}: {a:?}");
        assert_eq!(a.json["field"], *field, "{ct:?} {shown}: {a:?}");
    }
    // Query and body together are ambiguous.
    let both = svc.post(
        "/order?symbol=BTC",
        Some("application/json"),
        br#"{"symbol":"BTC","side":"buy","qty":1}"#,
    );
    assert_eq!(
        (both.status, both.json["field"].clone()),
        (400, json!("query"))
    );
    for (path, field) in [
        ("/orders/abc", "order_id"),
        ("/orders/0", "order_id"),
        ("/orders/-1", "order_id"),
    ] {
        let a = svc.get(path);
        assert_eq!(
            (a.status, a.json["field"].clone()),
            (400, json!(field)),
            "{path}: {a:?}"
        );
    }
    assert_eq!(count_orders(&pg), "0", "no rejected input may be stored");
}

#[test]
fn unknown_order_is_404() {
    let pg = postgres();
    let svc = ready_service(&pg, &[]);
    let a = svc.get("/orders/424242");
    assert_eq!(a.status, 404, "{a:?}");
    assert_eq!(a.json["error"], "not_found");
}

#[test]
fn orders_survive_sigkill_and_restart() {
    let pg = postgres();
    let svc = ready_service(&pg, &[]);
    let mut created = Vec::new();
    for i in 1..=20 {
        let a = svc.post(&format!("/order?symbol=S{i}&side=buy&qty={i}"), None, b"");
        assert_eq!(a.status, 201, "{a:?}");
        created.push(a.json);
    }
    let mut svc = svc;
    svc.signal(Signal::SIGKILL);
    assert!(
        svc.wait_exit(Duration::from_secs(5)).is_some(),
        "SIGKILL did not end it"
    );
    drop(svc);

    let svc = ready_service(&pg, &[]);
    for order in &created {
        let id = order["order_id"].as_i64().expect("order_id");
        let read = svc.get(&format!("/orders/{id}"));
        assert_eq!(read.status, 200, "{read:?}");
        assert_eq!(&read.json, order);
    }
}

#[test]
fn heartbeat_is_recorded_in_the_database_and_in_metrics() {
    let pg = postgres();
    let svc = ready_service(&pg, &[("HEARTBEAT_INTERVAL_SECS", "1")]);
    let beats = wait_until(Duration::from_secs(6), || {
        pg.psql("postgres", "SELECT coalesce(max(beats), 0) FROM heartbeat")
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .is_some_and(|n| n >= 2)
    });
    assert!(beats.is_some(), "fewer than 2 heartbeats in 6 s");
    let metrics = svc.get("/metrics").text;
    let ok_runs = metric_value(
        &metrics,
        "mock_exchange_heartbeat_runs_total{result=\"ok\"}",
    );
    assert!(ok_runs >= 2.0, "{metrics}");
    let last = metric_value(
        &metrics,
        "mock_exchange_heartbeat_last_success_timestamp_seconds",
    );
    assert!(last > 1.6e9, "{metrics}");
}

#[test]
fn metrics_count_requests_by_route_and_status_and_show_the_database() {
    let pg = postgres();
    let svc = ready_service(&pg, &[]);
    svc.get("/health");
    svc.get("/orders/abc");
    let text = svc.get("/metrics").text;
    for needle in [
        "mock_exchange_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1",
        "mock_exchange_http_requests_total{method=\"GET\",route=\"/orders/{order_id}\",status=\"400\"} 1",
        "mock_exchange_http_request_duration_seconds_count{route=\"/health\",status=\"200\"} 1",
        "mock_exchange_db_up 1",
        "mock_exchange_db_pool_max_size 16",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[test]
fn every_documented_route_answers_with_a_documented_status_and_shape() {
    let pg = postgres();
    let svc = ready_service(&pg, &[]);
    let doc = svc.get("/openapi.json").json;
    let paths = doc["paths"].as_object().expect("paths");
    for (template, ops) in paths {
        for (method, op) in ops.as_object().expect("operations") {
            let a = match method.as_str() {
                "get" => svc.get(&template.replace("{order_id}", "1")),
                "post" => svc.post(&format!("{template}?symbol=BTC&side=buy&qty=1"), None, b""),
                other => panic!("undocumented method {other}"),
            };
            let status = a.status.to_string();
            let response = &op["responses"][&status];
            assert!(
                response.is_object(),
                "{method} {template} answered {status}, not documented"
            );
            let Some(schema) = response["content"]["application/json"]["schema"]["$ref"].as_str()
            else {
                continue;
            };
            let name = schema.trim_start_matches("#/components/schemas/");
            let schema = &doc["components"]["schemas"][name];
            check_shape(&a.json, schema, &format!("{method} {template} {status}"));
        }
    }
    let wrong_method = svc.get("/order");
    assert_eq!(
        (wrong_method.status, wrong_method.json["error"].clone()),
        (405, json!("method_not_allowed"))
    );
    let missing = svc.get("/no/such/route");
    assert_eq!(
        (missing.status, missing.json["error"].clone()),
        (404, json!("not_found"))
    );
}

fn check_shape(value: &Value, schema: &Value, what: &str) {
    let obj = value
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not an object: {value}"));
    let props = schema["properties"].as_object().expect("properties");
    for key in obj.keys() {
        assert!(
            props.contains_key(key),
            "{what}: field {key} is not documented"
        );
    }
    for req in schema["required"].as_array().into_iter().flatten() {
        let req = req.as_str().expect("required name");
        assert!(
            obj.contains_key(req),
            "{what}: documented field {req} is missing"
        );
    }
}

#[test]
fn logs_are_one_json_line_per_request() {
    let pg = postgres();
    let svc = ready_service(&pg, &[]);
    // Only this test's requests count: the /ready probes before them log too, and their
    // lines may still be on the way when the test starts.
    let access = |svc: &Service| {
        svc.logs()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "access" && v["route"] != "/ready")
            .count()
    };
    svc.get("/health");
    svc.post("/order?symbol=BTC&side=buy&qty=1", None, b"");
    svc.get("/orders/1");
    let settled = wait_until(Duration::from_secs(2), || access(&svc) == 3);
    assert!(
        settled.is_some(),
        "expected 3 access lines besides /ready:\n{}",
        svc.logs().join("\n")
    );
    for line in svc.logs() {
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
    let last = svc
        .logs()
        .iter()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["target"] == "access")
        .expect("an access line");
    assert_eq!(last["route"], "/orders/{order_id}");
    assert_eq!(last["status"], 200);
    assert_eq!(last["level"], "INFO");
    // A fourth request's line comes fourth: no request before it logged twice.
    svc.get("/health");
    let fourth = wait_until(Duration::from_secs(2), || access(&svc) >= 4);
    assert!(fourth.is_some(), "no access line for the fourth request");
    assert_eq!(access(&svc), 4, "one line per request, not more");
}

fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} not in:\n{text}"))
}
