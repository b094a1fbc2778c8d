//! Observations as plain data and the pure judgements over them: when a probe first showed
//! the degraded (or recovered) behaviour, whether it held throughout a window, what an
//! order load acknowledged and lost.

use serde::{Deserialize, Serialize};
use stackpilot_core::http::{HttpOutcome, HttpProbe};

/// The fastest a drill polls; the issue asks for ≤ 100 ms.
pub const POLL_MS: u64 = 50;

/// One HTTP probe result, reduced to what the judgements need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Milliseconds since the drill started, when the probe was sent.
    pub t_ms: u64,
    /// The HTTP status, when the server answered.
    pub status: Option<u16>,
    /// Why there was no answer (refused, timeout, reset), or the body's first bytes.
    pub detail: String,
    /// How long the probe took.
    pub elapsed_ms: u64,
}

/// A sample's detail when the connection was refused.
const REFUSED: &str = "refused";
/// A sample's detail when no connection was made within the connect timeout.
const CONNECT_TIMEOUT: &str = "timeout (connect)";

impl Sample {
    /// A sample from a probe sent at `t_ms`.
    pub fn of(t_ms: u64, probe: &HttpProbe) -> Sample {
        let (status, detail) = match &probe.outcome {
            HttpOutcome::Answered { status, body } => {
                (Some(*status), body.chars().take(200).collect())
            }
            HttpOutcome::Refused => (None, REFUSED.into()),
            HttpOutcome::Timeout { phase } => (None, format!("timeout ({phase})")),
            HttpOutcome::ResetWithoutAnswer { detail } => (None, format!("reset: {detail}")),
            HttpOutcome::Failed { detail } => (None, format!("failed: {detail}")),
        };
        Sample {
            t_ms,
            status,
            detail,
            elapsed_ms: probe.elapsed_ms,
        }
    }

    /// The connection was refused: nothing was sent.
    pub fn refused(&self) -> bool {
        self.status.is_none() && self.detail == REFUSED
    }

    /// No connection was made (refused, or not accepted within the connect timeout: a
    /// published port whose container is going away): nothing was sent, so the request may
    /// go elsewhere without being placed twice.
    pub fn never_sent(&self) -> bool {
        self.refused() || (self.status.is_none() && self.detail == CONNECT_TIMEOUT)
    }

    /// The server answered with `code`.
    pub fn is(&self, code: u16) -> bool {
        self.status == Some(code)
    }

    /// A probe that got no answer in time: the client gave up.
    pub fn timed_out(&self) -> bool {
        self.status.is_none() && self.detail.starts_with("timeout")
    }
}

/// The first sample at or after `from_ms` for which `pred` holds.
pub fn first_after(
    samples: &[Sample],
    from_ms: u64,
    pred: impl Fn(&Sample) -> bool,
) -> Option<&Sample> {
    samples.iter().find(|s| s.t_ms >= from_ms && pred(s))
}

/// Milliseconds from `from_ms` until the first sample (sent at or after it) for which `pred`
/// holds, counting until that probe's answer arrived.
pub fn latency(samples: &[Sample], from_ms: u64, pred: impl Fn(&Sample) -> bool) -> Option<u64> {
    first_after(samples, from_ms, pred).map(|s| s.t_ms + s.elapsed_ms - from_ms)
}

/// The samples sent in `[from_ms, to_ms)` for which `pred` does not hold.
pub fn violations(
    samples: &[Sample],
    from_ms: u64,
    to_ms: u64,
    pred: impl Fn(&Sample) -> bool,
) -> Vec<&Sample> {
    samples
        .iter()
        .filter(|s| s.t_ms >= from_ms && s.t_ms < to_ms && !pred(s))
        .collect()
}

/// Number of samples in `[from_ms, to_ms)`.
pub fn count_between(samples: &[Sample], from_ms: u64, to_ms: u64) -> usize {
    samples
        .iter()
        .filter(|s| s.t_ms >= from_ms && s.t_ms < to_ms)
        .count()
}

/// How a sample reads in a timeline: the status code, or why there was no answer.
pub fn label(s: &Sample) -> String {
    match s.status {
        Some(code) => code.to_string(),
        None => s.detail.split(':').next().unwrap_or_default().to_string(),
    }
}

/// The samples whose outcome differs from the one before (the first included): the
/// timeline of a probe, compact enough for the journal.
pub fn transitions(samples: &[Sample]) -> Vec<&Sample> {
    let mut out: Vec<&Sample> = Vec::new();
    for s in samples {
        if out.last().is_none_or(|prev| label(prev) != label(s)) {
            out.push(s);
        }
    }
    out
}

/// One request of the order load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderAttempt {
    /// The probe.
    pub sample: Sample,
    /// The order id when the answer was 201 with one.
    pub order_id: Option<String>,
}

/// What an order load amounted to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadSummary {
    /// Requests sent.
    pub sent: u64,
    /// 201 answers carrying an order id.
    pub acknowledged: u64,
    /// 503 answers.
    pub unavailable: u64,
    /// Other answers (neither 201 nor 503).
    pub other_status: u64,
    /// No answer at all (refused, reset, timeout).
    pub no_answer: u64,
    /// Requests the client gave up on (timeout): a hang.
    pub hung: u64,
    /// Slowest request that did not get a 201, in milliseconds.
    pub slowest_failure_ms: u64,
}

/// Sums up an order load. Pure.
pub fn summarize(attempts: &[OrderAttempt]) -> LoadSummary {
    let mut s = LoadSummary::default();
    for a in attempts {
        s.sent += 1;
        match (a.sample.status, &a.order_id) {
            (Some(201), Some(_)) => s.acknowledged += 1,
            (Some(503), _) => s.unavailable += 1,
            (Some(_), _) => s.other_status += 1,
            (None, _) => s.no_answer += 1,
        }
        if a.sample.timed_out() {
            s.hung += 1;
        }
        if !(a.sample.is(201) && a.order_id.is_some()) {
            s.slowest_failure_ms = s.slowest_failure_ms.max(a.sample.elapsed_ms);
        }
    }
    s
}

/// The ids of acknowledged orders, in the order they were acknowledged.
pub fn acknowledged_ids(attempts: &[OrderAttempt]) -> Vec<String> {
    attempts
        .iter()
        .filter(|a| a.sample.is(201))
        .filter_map(|a| a.order_id.clone())
        .collect()
}

/// The order id of a 201 body (`{"order_id": …}`), string or number.
pub fn order_id(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    match &v["order_id"] {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The order `make demo` places, as a path and query of the service.
pub const DEMO_ORDER: &str = "/order?symbol=BTC&side=buy&qty=1";

/// The demo order of `make demo`, as the runbook does it with curl: what the service
/// answered to the create and to the read-back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOrder {
    /// The 201 body of `POST /order`.
    pub created: String,
    /// The 200 body of `GET /orders/<id>`.
    pub read_back: String,
}

/// How long [`demo_order`] keeps asking while the service answers 503: a stack that just
/// became healthy can still time out on its first database connections on a loaded host.
pub const DEMO_ORDER_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// Places [`DEMO_ORDER`] on the service at `base` and reads it back; why not, otherwise.
/// A 503 (the service says it cannot take orders now, and took none) is asked again, said
/// on stderr, for up to [`DEMO_ORDER_PATIENCE`]; any other answer counts at once.
pub fn demo_order(base: &str) -> Result<DemoOrder, String> {
    let timeouts = stackpilot_core::http::Timeouts {
        connect: std::time::Duration::from_secs(2),
        total: std::time::Duration::from_secs(5),
    };
    let started = std::time::Instant::now();
    let created = loop {
        let created =
            stackpilot_core::http::post_json(&format!("{base}{DEMO_ORDER}"), "", timeouts);
        match created.answer() {
            Some((503, body)) if started.elapsed() < DEMO_ORDER_PATIENCE => {
                eprintln!(
                    "demo order: 503 after {:.1}s ({}); asking again",
                    started.elapsed().as_secs_f64(),
                    body.trim()
                );
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            _ => break created,
        }
    };
    let answer = created
        .answer()
        .ok_or_else(|| format!("{:?}", created.outcome))?;
    let id = created_id(answer)?;
    let read = stackpilot_core::http::get(&format!("{base}/orders/{id}"), timeouts);
    match read.answer() {
        Some((200, body)) => Ok(DemoOrder {
            created: answer.1.to_string(),
            read_back: body.to_string(),
        }),
        other => Err(format!("reading order {id} back: {other:?}")),
    }
}

/// The id of an order the service acknowledged: a 201 whose body names it.
fn created_id((status, body): (u16, &str)) -> Result<String, String> {
    match status {
        201 => order_id(body).ok_or_else(|| format!("201 without an order_id: {body}")),
        _ => Err(format!("HTTP {status}: {body}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t_ms: u64, status: Option<u16>, elapsed_ms: u64) -> Sample {
        Sample {
            t_ms,
            status,
            detail: if status.is_none() {
                "timeout (global)".into()
            } else {
                String::new()
            },
            elapsed_ms,
        }
    }

    #[test]
    fn latency_counts_from_the_injection_until_the_answer_arrived() {
        let samples = [
            s(0, Some(200), 3),
            s(100, Some(200), 3),
            s(150, Some(503), 20),
        ];
        assert_eq!(latency(&samples, 120, |x| x.is(503)), Some(50));
        assert_eq!(latency(&samples, 160, |x| x.is(503)), None);
    }

    #[test]
    fn violations_only_look_inside_the_window() {
        let samples = [
            s(0, Some(503), 1),
            s(10, Some(200), 1),
            s(20, None, 1),
            s(30, Some(503), 1),
        ];
        let bad = violations(&samples, 5, 30, |x| x.is(200));
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].t_ms, 20);
        assert_eq!(count_between(&samples, 5, 30), 2);
    }

    #[test]
    fn transitions_keep_only_changes_of_outcome() {
        let samples = [
            s(0, Some(200), 1),
            s(50, Some(200), 1),
            s(100, Some(503), 1),
            s(150, None, 1),
            s(200, None, 1),
            s(250, Some(200), 1),
        ];
        let t: Vec<(u64, String)> = transitions(&samples)
            .into_iter()
            .map(|x| (x.t_ms, label(x)))
            .collect();
        assert_eq!(
            t,
            [
                (0, "200".to_string()),
                (100, "503".to_string()),
                (150, "timeout (global)".to_string()),
                (250, "200".to_string())
            ]
        );
    }

    #[test]
    fn a_load_counts_acks_fast_503s_and_hangs() {
        let a = |status, elapsed, id: Option<&str>| OrderAttempt {
            sample: s(0, status, elapsed),
            order_id: id.map(str::to_string),
        };
        let attempts = [
            a(Some(201), 5, Some("o1")),
            a(Some(503), 40, None),
            a(Some(500), 7, None),
            a(None, 2000, None),
            a(Some(201), 900, Some("o2")),
        ];
        let sum = summarize(&attempts);
        assert_eq!(sum.sent, 5);
        assert_eq!(sum.acknowledged, 2);
        assert_eq!(sum.unavailable, 1);
        assert_eq!(sum.other_status, 1);
        assert_eq!(sum.no_answer, 1);
        assert_eq!(sum.hung, 1);
        assert_eq!(sum.slowest_failure_ms, 2000);
        assert_eq!(acknowledged_ids(&attempts), ["o1", "o2"]);
    }

    #[test]
    fn a_demo_order_counts_only_when_acknowledged_with_an_id() {
        assert_eq!(created_id((201, r#"{"order_id":"7"}"#)), Ok("7".into()));
        assert_eq!(
            created_id((503, "db down")),
            Err("HTTP 503: db down".into())
        );
        assert!(created_id((201, "{}")).is_err());
    }

    /// A loopback service that answers each connection with the next of `answers`
    /// (status, body) and records the request lines it got.
    fn service(
        answers: Vec<(u16, &'static str)>,
    ) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        use std::io::{BufRead, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for (status, body) in answers {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let mut reader = std::io::BufReader::new(stream);
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                log.lock().expect("log").push(line.trim().to_string());
                // The rest of the head (and an empty POST body) is ignored.
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).map_or(true, |n| n == 0) || h == "\r\n" {
                        break;
                    }
                }
                let _ = write!(
                    reader.get_mut(),
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (base, seen)
    }

    #[test]
    fn a_demo_order_asks_again_after_503_and_counts_the_first_acknowledgement() {
        let (base, seen) = service(vec![
            (503, r#"{"error":"database_unavailable"}"#),
            (503, r#"{"error":"database_unavailable"}"#),
            (201, r#"{"order_id":"o-7"}"#),
            (200, r#"{"order_id":"o-7","symbol":"BTC"}"#),
        ]);
        let order = demo_order(&base).expect("acknowledged on the third try");
        assert_eq!(order.created, r#"{"order_id":"o-7"}"#);
        assert!(order.read_back.contains("BTC"), "{order:?}");
        let seen = seen.lock().expect("log").clone();
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert!(
            seen[..3].iter().all(|l| l.starts_with("POST /order?")),
            "{seen:?}"
        );
        assert!(seen[3].starts_with("GET /orders/o-7 "), "{seen:?}");
    }

    #[test]
    fn a_demo_order_fails_at_once_on_an_answer_other_than_503() {
        let (base, seen) = service(vec![(500, r#"{"error":"boom"}"#), (201, "{}")]);
        let err = demo_order(&base).expect_err("a 500 is not asked again");
        assert!(err.contains("HTTP 500"), "{err}");
        assert_eq!(seen.lock().expect("log").len(), 1);
    }

    #[test]
    fn only_a_request_without_a_connection_counts_as_never_sent() {
        let at = |status: Option<u16>, detail: &str| Sample {
            t_ms: 0,
            status,
            detail: detail.into(),
            elapsed_ms: 1,
        };
        assert!(at(None, "refused").never_sent());
        assert!(at(None, "timeout (connect)").never_sent());
        // Sent, then no answer: the order may have been placed.
        assert!(!at(None, "timeout (global)").never_sent());
        assert!(!at(None, "reset: connection reset by peer").never_sent());
        assert!(!at(Some(503), "refused").never_sent());
    }

    #[test]
    fn order_ids_are_read_as_strings_or_numbers() {
        assert_eq!(order_id(r#"{"order_id":"ab-1"}"#).as_deref(), Some("ab-1"));
        assert_eq!(order_id(r#"{"order_id":42}"#).as_deref(), Some("42"));
        assert_eq!(order_id(r#"{"status":"x"}"#), None);
        assert_eq!(order_id("not json"), None);
    }
}
