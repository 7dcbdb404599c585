//! `GET /v1/grants/{namespace}/{name}/events`: a Server-Sent Events stream
//! for an agent waiting on a human decision (DESIGN §4.1).
//!
//! ```text
//!  event: status          the GrantView now, then again at every change
//!  data: {"phase": "Pending", ...}
//!
//!  : keep-alive           every 15 s, so proxies keep the connection
//!
//!  event: status          the decision (Approved, Denied) or a revocation or
//!  data: {"phase": "Approved", ...}    expiry: the stream ends after it
//!
//!  event: deleted         the grant was deleted; the stream ends
//!  data: {}
//! ```
//!
//! The proof is checked once, when the stream opens. The stream reads the
//! informer cache every 200 ms (no apiserver calls, however many agents
//! wait) and ends after [`MAX_STREAM`]; a client still waiting reconnects
//! with a fresh proof.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use agentauth_crds::{CapabilityGrant, GrantPhase};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream};
use tokio::time::Instant;

use super::ApiState;
use super::grants::authorized_grant;
use super::problem::ApiError;
use super::view::{GrantView, phase};

/// How often the stream reads the cache.
pub const POLL: Duration = Duration::from_millis(200);
/// How long one stream lasts at most.
pub const MAX_STREAM: Duration = Duration::from_secs(300);
/// How often an idle stream sends a comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Handles `GET /v1/grants/{namespace}/{name}/events`.
pub async fn stream(
    State(state): State<ApiState>,
    path: Result<Path<(String, String)>, PathRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let grant = authorized_grant(&state, path, &method, &uri, &headers).await?;
    let events = changes(state, grant);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// Where the stream stands between two reads of the cache.
struct Watch {
    state: ApiState,
    namespace: String,
    name: String,
    uid: Option<String>,
    /// The last view sent, as sent.
    last: Option<String>,
    deadline: Instant,
    done: bool,
}

/// The stream of status changes of `grant`.
fn changes(
    state: ApiState,
    grant: Arc<CapabilityGrant>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let watch = Watch {
        state,
        namespace: grant.metadata.namespace.clone().unwrap_or_default(),
        name: grant.metadata.name.clone().unwrap_or_default(),
        uid: grant.metadata.uid.clone(),
        last: None,
        deadline: Instant::now() + MAX_STREAM,
        done: false,
    };
    stream::unfold(watch, |mut watch| async move {
        if watch.done {
            return None;
        }
        loop {
            let current = watch.state.ctx.caches.grant(&watch.namespace, &watch.name);
            // A grant deleted and created again under the same name is
            // another grant.
            let current = current.filter(|g| g.metadata.uid == watch.uid);
            let Some(grant) = current else {
                watch.done = true;
                return Some((Ok(Event::default().event("deleted").data("{}")), watch));
            };
            let view = serde_json::to_string(&GrantView::of(&grant)).unwrap_or_default();
            if watch.last.as_deref() != Some(view.as_str()) {
                watch.done = phase(&grant) != GrantPhase::Pending;
                watch.last = Some(view.clone());
                return Some((Ok(Event::default().event("status").data(view)), watch));
            }
            if Instant::now() + POLL >= watch.deadline {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    })
}
