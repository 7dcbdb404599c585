//! The approval UI's built files (`approval-ui/dist`), served under
//! `/approvals/` on the same origin as the approval API, so the session
//! cookie, the CSRF token and the WebAuthn relying party work unchanged.
//!
//! ```text
//!  GET /approvals              ─▶ 308 /approvals/
//!  GET /approvals/             ─▶ index.html                      Cache-Control: no-store
//!  GET /approvals/assets/x-HASH.js ─▶ the file                   Cache-Control: public, max-age=31536000, immutable
//!  GET /approvals/favicon.svg  ─▶ the file                        Cache-Control: no-cache
//!  GET /approvals/grants/a/b   ─▶ index.html (a client route: no dot in the last segment)
//!  GET /approvals/missing.js   ─▶ 404
//!  GET /approvals/../x, %2e%2e, \, NUL, dot-files, symlinks out of the folder ─▶ 404
//! ```
//!
//! Every answer carries a strict Content-Security-Policy (scripts, styles,
//! images and API calls from this origin only; no inline script, no
//! `'unsafe-inline'`; no framing), `X-Frame-Options: DENY`,
//! `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer` (the
//! enrollment link's token rides in the fragment, which is never sent, and
//! no other URL of this UI should leak either). `/approvals/api/…` is the
//! approval API's own nest and never reaches this router.
//!
//! Files are read from the folder on each request (they are small, and a
//! rebuilt UI shows without a restart); a path is accepted only as plain
//! segments under the folder, and the file found must still lie inside the
//! folder once symlinks are resolved.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::api::problem::ApiError;

#[cfg(test)]
mod tests;

/// The Content-Security-Policy of every UI answer.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; \
                       form-action 'self'; frame-ancestors 'none'";

/// Cache policy of content-hashed files (under `assets/`).
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The largest file served (the whole built UI is a few hundred KiB).
const MAX_FILE: u64 = 8 * 1024 * 1024;

/// Where the built UI is.
#[derive(Debug)]
struct Ui {
    /// The folder, as configured.
    root: PathBuf,
}

/// The UI's routes, serving the built files in `dir` (`--ui-dir`).
pub fn router<S: Clone + Send + Sync + 'static>(dir: PathBuf) -> Router<S> {
    let ui = Arc::new(Ui { root: dir });
    Router::new()
        .route(
            "/approvals",
            get(|| async { Redirect::permanent("/approvals/") }),
        )
        .route("/approvals/", get(index))
        .route("/approvals/{*path}", get(file))
        .with_state(ui)
}

async fn index(State(ui): State<Arc<Ui>>) -> Response {
    serve_index(&ui).await
}

async fn file(State(ui): State<Arc<Ui>>, UrlPath(path): UrlPath<String>) -> Response {
    if path == "api" || path.starts_with("api/") {
        // An approval API path no API route matched: the API's own 404, not
        // the UI's index.html.
        return ApiError::invalid("no such route")
            .with_status(StatusCode::NOT_FOUND)
            .into_response();
    }
    let Some(relative) = safe_relative(&path) else {
        return not_found();
    };
    match read_inside(&ui.root, &relative).await {
        Ok(Some(bytes)) => {
            let cache = if relative.starts_with("assets") {
                IMMUTABLE
            } else if relative == Path::new("index.html") {
                "no-store"
            } else {
                "no-cache"
            };
            with_headers(StatusCode::OK, content_type(&relative), cache, bytes)
        }
        Ok(None) if is_client_route(&path) => serve_index(&ui).await,
        Ok(None) => not_found(),
        Err(()) => unavailable(),
    }
}

/// A client route (`grants/ns/name`, `enroll`): its last segment has no
/// dot, so it cannot be a missing file such as `app-1234.js`.
fn is_client_route(path: &str) -> bool {
    !path.rsplit('/').next().unwrap_or_default().contains('.')
}

/// `path` (already percent-decoded by the router) as plain relative
/// segments; `None` for anything that could leave the folder or name a
/// hidden file: `..`, `.`, empty segments, backslashes, NUL, a drive or root.
pub fn safe_relative(path: &str) -> Option<PathBuf> {
    if path.contains('\\') || path.contains('\0') {
        return None;
    }
    let mut out = PathBuf::new();
    for segment in path.split('/') {
        if segment.is_empty() || segment.starts_with('.') {
            return None;
        }
        let mut parts = Path::new(segment).components();
        match (parts.next(), parts.next()) {
            (Some(Component::Normal(part)), None) => out.push(part),
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// The file `relative` under `root`: `Ok(None)` when there is no such
/// regular file inside `root` (also when a symlink points out of it),
/// `Err` when the folder itself cannot be read.
async fn read_inside(root: &Path, relative: &Path) -> Result<Option<Vec<u8>>, ()> {
    let root = tokio::fs::canonicalize(root).await.map_err(|_| ())?;
    let Ok(found) = tokio::fs::canonicalize(root.join(relative)).await else {
        return Ok(None);
    };
    if !found.starts_with(&root) {
        return Ok(None);
    }
    match tokio::fs::metadata(&found).await {
        Ok(meta) if meta.is_file() && meta.len() <= MAX_FILE => {}
        _ => return Ok(None),
    }
    Ok(tokio::fs::read(&found).await.ok())
}

async fn serve_index(ui: &Ui) -> Response {
    match read_inside(&ui.root, Path::new("index.html")).await {
        Ok(Some(bytes)) => with_headers(
            StatusCode::OK,
            "text/html; charset=utf-8",
            "no-store",
            bytes,
        ),
        _ => unavailable(),
    }
}

fn not_found() -> Response {
    with_headers(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "no-store",
        b"not found\n".to_vec(),
    )
}

fn unavailable() -> Response {
    with_headers(
        StatusCode::SERVICE_UNAVAILABLE,
        "text/plain; charset=utf-8",
        "no-store",
        b"the approval UI is not built: run `npm ci && npm run build` in approval-ui/ \
          (or point --ui-dir / AGENTAUTH_UI_DIR at a built copy)\n"
            .to_vec(),
    )
}

/// The security headers every UI answer carries.
pub fn security_headers(headers: &mut HeaderMap) {
    let fixed: [(HeaderName, &'static str); 5] = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

fn with_headers(
    status: StatusCode,
    content_type: &'static str,
    cache: &'static str,
    bytes: Vec<u8>,
) -> Response {
    let mut response = (status, Body::from(bytes)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    security_headers(headers);
    response
}

/// The media type of a built file, by extension (unknown: bytes).
fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
