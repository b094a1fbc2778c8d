//! Network probes shared by verify and drills: a TCP connect and an HTTP request, each
//! bounded by timeouts and classified into what an operator needs to tell apart.
//!
//! A published port can accept a TCP connection while nothing behind it answers (the
//! engine's port proxy accepts, then resets), so "connected" and "answered" are different
//! outcomes here, and a refused port is different from one that never answers.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Largest response body a probe reads; our endpoints answer a few hundred bytes.
const BODY_LIMIT: u64 = 1024 * 1024;

/// Timeouts of one probe. A probe without timeouts could hang a verifier forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Time allowed to establish the TCP connection.
    pub connect: Duration,
    /// Time allowed for the whole exchange, body included.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(2),
            total: Duration::from_secs(5),
        }
    }
}

/// What a TCP connect attempt found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TcpOutcome {
    /// The connection was established.
    Connected,
    /// The peer answered with a reset: the host is up, nothing listens on the port.
    Refused,
    /// No answer within the connect timeout: host down, or packets dropped on the way.
    Timeout,
    /// Any other failure (no route, network unreachable, …), with the OS message.
    Failed {
        /// The OS error message.
        detail: String,
    },
}

/// A TCP connect probe's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpProbe {
    /// The address probed.
    pub addr: SocketAddr,
    /// What happened.
    #[serde(flatten)]
    pub outcome: TcpOutcome,
    /// Time until the outcome was known, in milliseconds.
    pub elapsed_ms: u64,
}

/// Tries one TCP connection to `addr`, closing it at once.
pub fn tcp_connect(addr: SocketAddr, timeout: Duration) -> TcpProbe {
    let start = Instant::now();
    let outcome = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(_) => TcpOutcome::Connected,
        Err(e) => match e.kind() {
            ErrorKind::ConnectionRefused => TcpOutcome::Refused,
            ErrorKind::TimedOut | ErrorKind::WouldBlock => TcpOutcome::Timeout,
            _ => TcpOutcome::Failed {
                detail: e.to_string(),
            },
        },
    };
    TcpProbe {
        addr,
        outcome,
        elapsed_ms: crate::time::millis(start.elapsed()),
    }
}

/// What an HTTP request found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum HttpOutcome {
    /// The server sent a response (any status, 4xx and 5xx included).
    Answered {
        /// HTTP status code.
        status: u16,
        /// Response body as text (lossy UTF-8), at most 1 MiB.
        body: String,
    },
    /// Connection refused: nothing listens on the port.
    Refused,
    /// No connection or no complete answer within the timeouts.
    Timeout {
        /// Which timeout fired (connect, global, …).
        phase: String,
    },
    /// The connection was accepted, then reset or closed before any response: typical of
    /// a port proxy with no application behind it.
    ResetWithoutAnswer {
        /// The error seen.
        detail: String,
    },
    /// Anything else (bad URL, protocol error, unreachable network, …).
    Failed {
        /// The error seen.
        detail: String,
    },
}

/// An HTTP probe's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpProbe {
    /// The URL requested.
    pub url: String,
    /// What happened.
    #[serde(flatten)]
    pub outcome: HttpOutcome,
    /// Time until the outcome was known (body read included), in milliseconds.
    pub elapsed_ms: u64,
}

impl HttpProbe {
    /// The status and body when the server answered.
    pub fn answer(&self) -> Option<(u16, &str)> {
        match &self.outcome {
            HttpOutcome::Answered { status, body } => Some((*status, body.as_str())),
            _ => None,
        }
    }
}

/// `GET url` with the given timeouts.
pub fn get(url: &str, timeouts: Timeouts) -> HttpProbe {
    let start = Instant::now();
    let outcome = classify(agent(timeouts).get(url).call());
    HttpProbe {
        url: url.to_string(),
        outcome,
        elapsed_ms: crate::time::millis(start.elapsed()),
    }
}

/// `POST url` with a JSON body and the given timeouts.
pub fn post_json(url: &str, body: &str, timeouts: Timeouts) -> HttpProbe {
    let start = Instant::now();
    let outcome = classify(
        agent(timeouts)
            .post(url)
            .header("content-type", "application/json")
            .send(body),
    );
    HttpProbe {
        url: url.to_string(),
        outcome,
        elapsed_ms: crate::time::millis(start.elapsed()),
    }
}

/// `HEAD url` with an `Accept` header: the value of the answer's header `name`, or why
/// there is none (no answer, a status other than 200, no such header).
pub fn head_header(
    url: &str,
    accept: &str,
    name: &str,
    timeouts: Timeouts,
) -> Result<String, String> {
    let response = agent(timeouts)
        .head(url)
        .header("accept", accept)
        .call()
        .map_err(|e| format!("HEAD {url}: {e}"))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(format!("HEAD {url}: status {status}"));
    }
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| format!("HEAD {url}: no {name} header"))
}

fn agent(t: Timeouts) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(t.connect))
        .timeout_global(Some(t.total))
        // verify needs the status and the body of a 503, not an error without either.
        .http_status_as_error(false)
        // A probe reports what this URL answers; a redirect is an answer in itself.
        .max_redirects(0)
        .build()
        .new_agent()
}

fn classify(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> HttpOutcome {
    let mut response = match result {
        Ok(r) => r,
        Err(e) => return classify_error(e),
    };
    let status = response.status().as_u16();
    match response
        .body_mut()
        .with_config()
        .limit(BODY_LIMIT)
        .lossy_utf8(true)
        .read_to_string()
    {
        Ok(body) => HttpOutcome::Answered { status, body },
        // The headers arrived but the body did not: still an answer, flagged in the body.
        Err(e) => HttpOutcome::Answered {
            status,
            body: format!("<body unreadable: {e}>"),
        },
    }
}

fn classify_error(e: ureq::Error) -> HttpOutcome {
    match e {
        ureq::Error::Timeout(t) => HttpOutcome::Timeout {
            phase: t.to_string(),
        },
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => HttpOutcome::Refused,
            ErrorKind::TimedOut | ErrorKind::WouldBlock => {
                HttpOutcome::Timeout { phase: "io".into() }
            }
            ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof => HttpOutcome::ResetWithoutAnswer {
                detail: io.to_string(),
            },
            _ => HttpOutcome::Failed {
                detail: io.to_string(),
            },
        },
        // ureq reports a peer that closed before sending a status line as a protocol error.
        ureq::Error::Protocol(p) => HttpOutcome::ResetWithoutAnswer {
            detail: p.to_string(),
        },
        other => HttpOutcome::Failed {
            detail: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests;
