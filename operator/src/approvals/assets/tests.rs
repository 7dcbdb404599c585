//! The UI router over real HTTP/1.1 on loopback, with raw request lines so
//! that nothing (no client library) normalises the attack paths first.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;

const SECRET: &str = "top-secret-outside-the-ui-folder";

/// A built UI in a fresh folder, with a secret file beside it (outside it);
/// the folder goes when the returned guard drops.
fn fixture() -> (tempfile::TempDir, PathBuf) {
    let guard = tempfile::tempdir().unwrap();
    let base = guard.path().to_path_buf();
    let dist = base.join("dist");
    std::fs::create_dir_all(dist.join("assets")).unwrap();
    std::fs::write(dist.join("index.html"), "<!doctype html><title>ui</title>").unwrap();
    std::fs::write(dist.join("assets/index-AbC123.js"), "console.log(1)").unwrap();
    std::fs::write(dist.join("assets/index-AbC123.css"), "body{}").unwrap();
    std::fs::write(dist.join("favicon.svg"), "<svg/>").unwrap();
    std::fs::write(dist.join(".env"), SECRET).unwrap();
    std::fs::write(base.join("secret.txt"), SECRET).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(base.join("secret.txt"), dist.join("link.txt")).unwrap();
    (guard, dist)
}

/// Serves the UI beside a stand-in for the approval API nest, as the
/// operator does; returns the address.
async fn serve(dist: PathBuf) -> std::net::SocketAddr {
    let api = Router::new().route("/session", get(|| async { "the approval api" }));
    let app: Router = Router::new()
        .nest("/approvals/api", api)
        .merge(router(dist));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// One raw `GET target` (the request target is sent exactly as given).
async fn get_raw(addr: std::net::SocketAddr, target: &str) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

fn assert_security_headers(a: &Answer, target: &str) {
    let csp = a.header("content-security-policy").unwrap_or_default();
    assert_eq!(csp, CSP, "{target}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(
        a.header("x-frame-options").as_deref(),
        Some("DENY"),
        "{target}"
    );
    assert_eq!(
        a.header("x-content-type-options").as_deref(),
        Some("nosniff"),
        "{target}"
    );
    assert_eq!(a.header("referrer-policy").as_deref(), Some("no-referrer"));
}

/// Threat: clickjacking and script injection on the approval page — a page
/// that frames the UI, or script injected into it, could press "Approve" for
/// the person; every answer forbids framing and any script not from the UI's
/// own files.
#[tokio::test]
async fn every_answer_has_a_strict_csp_and_the_right_cache_policy() {
    let (_base, dist) = fixture();
    let addr = serve(dist).await;
    let rows = [
        ("/approvals/", 200, "no-store", "text/html"),
        ("/approvals/index.html", 200, "no-store", "text/html"),
        (
            "/approvals/assets/index-AbC123.js",
            200,
            IMMUTABLE,
            "text/javascript",
        ),
        (
            "/approvals/assets/index-AbC123.css",
            200,
            IMMUTABLE,
            "text/css",
        ),
        ("/approvals/favicon.svg", 200, "no-cache", "image/svg+xml"),
        // Client routes fall back to index.html, never cached.
        ("/approvals/grants/agents/g-1", 200, "no-store", "text/html"),
        (
            "/approvals/enroll?approver=dana",
            200,
            "no-store",
            "text/html",
        ),
        ("/approvals/history", 200, "no-store", "text/html"),
        // A missing file is not a client route.
        (
            "/approvals/assets/index-Missing.js",
            404,
            "no-store",
            "text/plain",
        ),
    ];
    for (target, status, cache, kind) in rows {
        let a = get_raw(addr, target).await;
        assert_eq!(a.status, status, "{target}: {}", a.head);
        assert_eq!(
            a.header("cache-control").as_deref(),
            Some(cache),
            "{target}"
        );
        assert!(
            a.header("content-type")
                .unwrap_or_default()
                .starts_with(kind),
            "{target}: {}",
            a.head
        );
        assert_security_headers(&a, target);
    }
    let redirect = get_raw(addr, "/approvals").await;
    assert_eq!(redirect.status, 308);
    assert_eq!(redirect.header("location").as_deref(), Some("/approvals/"));
    // The approval API's nest still answers its own paths.
    let api = get_raw(addr, "/approvals/api/session").await;
    assert_eq!(api.body, "the approval api");
    let unknown = get_raw(addr, "/approvals/api/nothing-here").await;
    assert_eq!(unknown.status, 404, "an unknown API path is not the UI");
    assert!(!unknown.body.contains("<title>ui</title>"));
    assert!(unknown.body.contains("request_invalid"), "{}", unknown.body);
}

/// Threat: path traversal out of the UI folder — a crafted path under
/// /approvals/ (dot segments, encoded slashes or backslashes, NUL, hidden
/// files, a symlink) reads a file the operator can read but must not serve.
#[tokio::test]
async fn no_path_leaves_the_ui_folder() {
    let (_base, dist) = fixture();
    let addr = serve(dist).await;
    for target in [
        "/approvals/../secret.txt",
        "/approvals/assets/../../secret.txt",
        "/approvals/%2e%2e/secret.txt",
        "/approvals/%2E%2E%2Fsecret.txt",
        "/approvals/assets/..%2f..%2fsecret.txt",
        "/approvals/..%5csecret.txt",
        "/approvals/assets%5c..%5c..%5csecret.txt",
        "/approvals//secret.txt",
        "/approvals/%2fetc%2fpasswd",
        "/approvals/.env",
        "/approvals/assets/%00.js",
        "/approvals/link.txt",
        "/approvals/./index.html",
    ] {
        let a = get_raw(addr, target).await;
        assert!(!a.body.contains(SECRET), "{target} leaked the secret");
        assert!(
            a.status == 404 || a.status == 400,
            "{target}: {} {}",
            a.status,
            a.body
        );
        if a.status == 404 {
            assert_security_headers(&a, target);
        }
    }
}

#[tokio::test]
async fn a_missing_build_says_how_to_build_it() {
    let missing = std::env::temp_dir().join("agentauth-ui-none-here");
    let addr = serve(missing).await;
    let a = get_raw(addr, "/approvals/").await;
    assert_eq!(a.status, 503);
    assert!(a.body.contains("npm ci && npm run build"), "{}", a.body);
}

#[test]
fn relative_paths_are_plain_segments_only() {
    assert_eq!(
        safe_relative("assets/a-1.js"),
        Some(PathBuf::from("assets/a-1.js"))
    );
    for bad in [
        "",
        "..",
        "a/../b",
        "./a",
        "a//b",
        "/etc",
        "a\\b",
        ".git/config",
        "a\0",
    ] {
        assert_eq!(safe_relative(bad), None, "{bad:?}");
    }
}
