//! Slow and stalled clients against the operator's HTTP server, served as
//! the operator serves it ([`agentauth_operator::http::serve`]) with short
//! deadlines so that the attacks finish quickly.
//!
//! ```text
//!  trickler ──1 header byte / 300 ms──▶ ┐
//!  trickler ──headers, 1 body byte / 300 ms──▶ ├─ operator (deadlines 2 s, cap)
//!  idle connections ──nothing──▶         ┘
//!  agent ──POST /v1/token──▶ still answered
//! ```
//!
//! Each client trickles more often than the deadline, so only a deadline on
//! the whole header section or body (not on the gap between two reads) can
//! cut it off. With `axum::serve` (no deadline, no cap) every one of these
//! connections stays open for as long as its client likes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_support;

use std::time::{Duration, Instant};

use agentauth_operator::http::HttpLimits;
use api_support::{Harness, Options, within};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The deadlines of the server under test.
const DEADLINE: Duration = Duration::from_secs(2);
/// How often a trickling client sends its next byte: well within the
/// deadline, so the connection is never idle for long.
const TRICKLE: Duration = Duration::from_millis(300);
/// Slack for a loaded machine beyond a deadline.
const MARGIN: Duration = Duration::from_secs(4);

async fn start(prefix: &str, header: Duration, body: Duration, cap: usize) -> Harness {
    let http = HttpLimits {
        header_read_timeout: header,
        body_read_timeout: body,
        max_connections: cap,
    };
    let options = Options {
        http: Some(http),
        ..Options::default()
    };
    Harness::start(prefix, options).await
}

async fn connect(h: &Harness) -> TcpStream {
    TcpStream::connect(h.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// How a trickled connection ended, and after how long.
struct Ended {
    after: Duration,
    /// What the server sent before closing (empty when it just closed).
    answer: String,
}

/// Sends `head` at once, then the bytes of `trickle` (cycled) one every
/// [`TRICKLE`], never completing the request, until the server answers and
/// closes; fails when the connection is still open after `limit`.
async fn trickle(mut stream: TcpStream, head: &[u8], trickle: &[u8], limit: Duration) -> Ended {
    let started = Instant::now();
    stream.write_all(head).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let mut bytes = trickle.iter().cycle();
    let mut answering = false;
    while started.elapsed() < limit {
        match tokio::time::timeout(TRICKLE, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                answering = true;
            }
            // Silence: send the next byte (after an answer, only read).
            Err(_) if answering => {}
            Err(_) => {
                if stream.write_all(&[*bytes.next().unwrap()]).await.is_err() {
                    break;
                }
            }
        }
    }
    let after = started.elapsed();
    assert!(
        after < limit,
        "the connection was still open after {limit:?}: {}",
        String::from_utf8_lossy(&answer)
    );
    Ended {
        after,
        answer: String::from_utf8_lossy(&answer).into_owned(),
    }
}

/// Threat: slowloris / resource exhaustion on the operator's API (issue 12
/// item 6). Clients trickle the header section of `POST /v1/token` a byte at
/// a time and never finish it: each connection is closed within the header
/// deadline, and meanwhile an agent still gets its token promptly.
#[tokio::test]
async fn trickled_headers_are_cut_off_while_agents_are_served() {
    within(async {
        let h = start("slow-headers", DEADLINE, DEADLINE, 1024).await;
        let key = h.agent("bot").await;
        h.grant("g", "bot", json!({})).await;
        h.approve("g", h.now() + 3600).await;

        // A header line that never ends: `X-Slow: aaaa…`.
        let head = b"POST /v1/token HTTP/1.1\r\nHost: operator\r\nX-Slow: ";
        let mut attackers = Vec::new();
        for _ in 0..8 {
            let stream = connect(&h).await;
            attackers.push(tokio::spawn(async move {
                trickle(stream, head, b"a", DEADLINE + MARGIN).await
            }));
        }

        // During the attack (the trickles run for the whole deadline).
        let asked = Instant::now();
        let (token, _) = h.token(&key, "g", json!({})).await;
        let took = asked.elapsed();
        assert!(!token.is_empty());
        assert!(took < Duration::from_secs(2), "the token took {took:?}");

        for attacker in attackers {
            let ended = attacker.await.unwrap();
            assert!(
                ended.after >= DEADLINE / 2,
                "closed early: {:?}",
                ended.after
            );
            println!("trickled headers cut off after {:?}", ended.after);
        }
        println!("token answered in {took:?} during the attack");
    })
    .await;
}

/// Threat: slowloris / resource exhaustion on the operator's API (issue 12
/// item 6). A client sends complete headers with a `Content-Length`, then
/// trickles the body: it is answered 408 `request_timeout` (problem+json)
/// within the body deadline and the connection is closed.
#[tokio::test]
async fn a_trickled_body_is_answered_request_timeout() {
    within(async {
        let h = start("slow-body", DEADLINE, DEADLINE, 1024).await;
        let body =
            br#"{"grant": "ns/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#;
        let head = format!(
            "POST /v1/token HTTP/1.1\r\nHost: operator\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        let ended = trickle(connect(&h).await, head.as_bytes(), body, DEADLINE + MARGIN).await;
        println!("trickled body answered after {:?}", ended.after);
        assert!(
            ended.after >= DEADLINE / 2,
            "answered early: {:?}",
            ended.after
        );
        let answer = &ended.answer;
        assert!(
            answer.starts_with("HTTP/1.1 408 "),
            "expected a 408, got {answer:?}"
        );
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("content-type: application/problem+json"),
            "{answer}"
        );
        let (_, json) = answer.split_once("\r\n\r\n").unwrap();
        let problem: Value = serde_json::from_str(json).unwrap();
        assert_eq!(problem["code"], "request_timeout", "{problem}");
        assert_eq!(problem["status"], 408);
        assert!(
            problem["detail"].as_str().unwrap().contains("retry"),
            "{problem}"
        );
    })
    .await;
}

/// `GET /healthz` on a new connection: the status line, and how long the
/// answer took. `None` when nothing came back within `limit`.
async fn health(h: &Harness, limit: Duration) -> tokio::task::JoinHandle<Option<Duration>> {
    let mut stream = connect(h).await;
    let asked = Instant::now();
    tokio::spawn(async move {
        let request = b"GET /healthz HTTP/1.1\r\nHost: operator\r\nConnection: close\r\n\r\n";
        stream.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(limit, stream.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        match read {
            Ok(Ok(_)) if answer.starts_with("HTTP/1.1 200 ") => Some(asked.elapsed()),
            Ok(_) => panic!("unexpected answer {answer:?}"),
            Err(_) => None,
        }
    })
}

/// Threat: slowloris / resource exhaustion on the operator's API (issue 12
/// item 6). With a cap of 4 connections, 4 idle connections make the next
/// one wait (the server holds no more than the cap); it is answered as soon
/// as one of them closes, and, when they never close, once the header
/// deadline has closed them. The server stays up throughout.
#[tokio::test]
async fn the_connection_cap_bounds_and_frees_connections() {
    within(async {
        let header = Duration::from_secs(5);
        let h = start("slow-cap", header, DEADLINE, 4).await;

        // 1. Held by idle clients: waits; answered promptly once they close.
        let mut idle = Vec::new();
        for _ in 0..4 {
            idle.push(connect(&h).await);
        }
        let waiting = health(&h, Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!waiting.is_finished(), "answered beyond the cap");
        let closed = Instant::now();
        drop(idle);
        let took = waiting
            .await
            .unwrap()
            .expect("not answered once the idle closed");
        let after_close = closed.elapsed();
        println!("answered {after_close:?} after the idle connections closed ({took:?} in all)");
        assert!(after_close < Duration::from_secs(3), "{after_close:?}");

        // 2. Held by clients that never close: freed by the header deadline.
        let mut idle = Vec::new();
        for _ in 0..4 {
            idle.push(connect(&h).await);
        }
        let opened = Instant::now();
        let took = health(&h, header + MARGIN + MARGIN)
            .await
            .await
            .unwrap()
            .expect("not answered after the header deadline");
        println!("answered after {took:?} behind idle connections");
        assert!(opened.elapsed() >= header / 2, "{took:?}");

        // 3. Still serving as usual.
        let r = h.http.get(h.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        drop(idle);
    })
    .await;
}

/// Threat: resource exhaustion on the operator's API (issue 12 item 6): a
/// header section larger than the connection's read buffer
/// limit ([`agentauth_operator::http::MAX_HEADER_BYTES`]) is refused with
/// 431 rather than buffered.
#[tokio::test]
async fn an_oversized_header_section_is_refused() {
    within(async {
        let h = start("slow-431", DEADLINE, DEADLINE, 1024).await;
        let filler = "a".repeat(agentauth_operator::http::MAX_HEADER_BYTES + 1024);
        let request = format!("GET /healthz HTTP/1.1\r\nHost: operator\r\nX-Big: {filler}\r\n\r\n");
        let mut stream = connect(&h).await;
        // The server may stop reading (and close) before all is written.
        let _ = stream.write_all(request.as_bytes()).await;
        let mut answer = Vec::new();
        let read = tokio::time::timeout(MARGIN, stream.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer:?}");
        assert!(read.is_ok(), "the connection stayed open after the 431");
    })
    .await;
}
