//! Probes against loopback servers that each misbehave in one way.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread;
use std::time::Duration;

use super::*;

fn short() -> Timeouts {
    Timeouts {
        connect: Duration::from_millis(500),
        total: Duration::from_millis(800),
    }
}

/// A loopback server that runs `serve` on its first connection.
fn server(serve: impl FnOnce(std::net::TcpStream) + Send + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    thread::spawn(move || {
        if let Ok((stream, _)) = listener.accept() {
            serve(stream);
        }
    });
    addr
}

/// An address nothing listens on: bound once, then released.
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("local addr")
}

fn read_request(stream: &mut std::net::TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = stream.read(&mut buf);
}

#[test]
fn tcp_connect_to_a_listening_port_connects() {
    let addr = server(|_| {});
    assert_eq!(
        tcp_connect(addr, short().connect).outcome,
        TcpOutcome::Connected
    );
}

#[test]
fn tcp_connect_to_a_closed_port_is_refused() {
    let addr = closed_port();
    assert_eq!(
        tcp_connect(addr, short().connect).outcome,
        TcpOutcome::Refused
    );
}

#[test]
fn get_returns_status_and_body_of_a_503() {
    let addr = server(|mut s| {
        read_request(&mut s);
        let body = r#"{"status":"not ready","reason":"db down"}"#;
        let _ = write!(
            s,
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
    });
    let probe = get(&format!("http://{addr}/ready"), short());
    assert_eq!(
        probe.outcome,
        HttpOutcome::Answered {
            status: 503,
            body: r#"{"status":"not ready","reason":"db down"}"#.into()
        }
    );
}

#[test]
fn post_json_sends_the_body() {
    let (tx, rx) = std::sync::mpsc::channel();
    let addr = server(move |mut s| {
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        let _ = tx.send(String::from_utf8_lossy(&buf[..n]).to_string());
        let _ =
            s.write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    });
    let probe = post_json(&format!("http://{addr}/orders"), r#"{"qty":1}"#, short());
    assert_eq!(probe.answer().map(|a| a.0), Some(201));
    let request = rx.recv().expect("request seen");
    assert!(request.starts_with("POST /orders"), "{request}");
}

#[test]
fn get_on_a_closed_port_is_refused() {
    let probe = get(&format!("http://{}/health", closed_port()), short());
    assert_eq!(probe.outcome, HttpOutcome::Refused);
}

#[test]
fn get_accepted_then_reset_or_closed_without_answer_is_not_an_answer() {
    // Closing with the request unread makes the kernel send a RST, like a port proxy
    // whose backend is gone; closing after reading it is a clean close without an answer.
    let reset = server(|s| {
        thread::sleep(Duration::from_millis(100));
        drop(s);
    });
    let closed = server(|mut s| {
        read_request(&mut s);
        drop(s);
    });
    for addr in [reset, closed] {
        let probe = get(&format!("http://{addr}/health"), short());
        assert!(
            matches!(probe.outcome, HttpOutcome::ResetWithoutAnswer { .. }),
            "{addr}: {probe:?}"
        );
    }
}

#[test]
fn get_on_a_silent_server_times_out_within_the_global_timeout() {
    let addr = server(|mut s| {
        read_request(&mut s);
        thread::sleep(Duration::from_secs(3));
    });
    let probe = get(&format!("http://{addr}/health"), short());
    assert!(
        matches!(probe.outcome, HttpOutcome::Timeout { .. }),
        "{probe:?}"
    );
    assert!(probe.elapsed_ms < 2000, "took {} ms", probe.elapsed_ms);
}
