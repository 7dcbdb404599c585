//! The approval API (DESIGN §4.2): how a human enrolls a passkey, logs in,
//! reads pending grants and approves or denies them. The approval UI uses
//! only this API; every replica serves it under `/approvals/api/`.
//!
//! | route | what | module |
//! |---|---|---|
//! | `GET /approvals/api/session` | the session's CSRF token (starts an anonymous session) | [`login`] |
//! | `POST /approvals/api/enroll/begin` | passkey registration options, for an enrollment token | [`enroll`] |
//! | `POST /approvals/api/enroll/finish` | registers the passkey in `Approver.status.passkeys` | [`enroll`] |
//! | `POST /approvals/api/login/begin` | passkey authentication options | [`login`] |
//! | `POST /approvals/api/login/finish` | logs the session in (new session id) | [`login`] |
//! | `POST /approvals/api/logout` | ends the session | [`login`] |
//! | `GET /approvals/api/grants` | pending grants within the approver's scope | [`pending`] |
//! | `GET /approvals/api/grants/{namespace}/{name}` | a grant as a person must read it | [`pending`] |
//! | `POST /approvals/api/grants/{namespace}/{name}/{approve,deny}/begin` | WebAuthn request options over the approval challenge | [`decide`] |
//! | `POST /approvals/api/grants/{namespace}/{name}/{approve,deny}/finish` | verifies every recorded decision with the new one and records it: `status.approval` when it decides the grant, else appended to `status.approvals` (N-of-M) | [`decide`] |
//! | `POST /approvals/api/grants/{namespace}/{name}/revoke` | sets `spec.revoked` on an approved grant | [`revoke`] |
//! | `GET /approvals/api/history` | the grants this approver decided, newest first | [`history`] |
//! | `GET /approvals/…` (everything else) | the approval UI's built files, with a strict CSP (`--ui-dir`) | [`assets`] |
//!
//! ```text
//!  request ─▶ guard ([`guard`]): Sec-Fetch-Site ≠ cross-site, Origin ∈ approval origins   (403 cross_site_request)
//!          ─▶ session cookie ─▶ session (expiry, idle timeout)               (401 session_invalid)
//!          ─▶ POST: X-CSRF-Token = the session's token                       (403 csrf_invalid)
//!          ─▶ handler ─▶ scope, owner, RBAC `approve` (SubjectAccessReview)  (403 approver_*)
//!          ─▶ answer | problem+json; counted in agentauth_approval_api_outcomes_total{route, outcome}
//! ```
//!
//! **Identity for RBAC.** An Approver is a person, not a Kubernetes user;
//! the API asks the apiserver whether the user named by the Approver's
//! `spec.email` may `approve` the grant (group `agentauth.dev`, resource
//! `capabilitygrants`, the grant's namespace and name), as cert-manager asks
//! for signers. Bind the verb to that user name ([`rbac`]).
//!
//! **Replicas.** Sessions and ceremonies live in this replica's memory: put
//! the approval UI behind a sticky session or a single replica.
//!
//! **Modules.** Each layer imports only the ones before it, so no module of
//! the API depends on itself through another:
//!
//! ```text
//!  leaves      reply (answers, refusals) · config · words · cose · assets
//!  state       session (store, cookies) · rbac · tokens
//!  rules       ceremony (begin/finish) · approvers (passkeys, sign counter) · scope (who may act)
//!  wiring      setup (Approvals) ─▶ guard (site, session, CSRF extractors)
//!  handlers    login · enroll · pending · decide · revoke · history
//!  routes      this module
//! ```

pub mod approvers;
pub mod assets;
pub mod ceremony;
pub mod config;
pub mod cose;
pub mod decide;
pub mod enroll;
pub mod guard;
pub mod history;
pub mod login;
pub mod pending;
pub mod placement;
pub mod rbac;
pub mod record;
pub mod reply;
pub mod revoke;
pub mod scope;
pub mod session;
pub mod setup;
pub mod tokens;
pub mod words;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

pub use config::ApprovalsConfig;
use reply::Outcome;
pub use reply::{Body, MAX_BODY, Refusal, status_for};
pub use setup::{Approvals, SetupError};

/// The approval API's routes, to be nested under `/approvals/api`.
pub fn router<S: Clone + Send + Sync + 'static>(approvals: Arc<Approvals>) -> Router<S> {
    Router::new()
        .route("/session", get(login::show))
        .route("/enroll/begin", post(enroll::begin))
        .route("/enroll/finish", post(enroll::finish))
        .route("/login/begin", post(login::begin))
        .route("/login/finish", post(login::finish))
        .route("/logout", post(login::logout))
        .route("/grants", get(pending::list))
        .route("/grants/{namespace}/{name}", get(pending::detail))
        .route(
            "/grants/{namespace}/{name}/approve/begin",
            post(decide::begin_approve),
        )
        .route(
            "/grants/{namespace}/{name}/deny/begin",
            post(decide::begin_deny),
        )
        .route(
            "/grants/{namespace}/{name}/approve/finish",
            post(decide::finish_approve),
        )
        .route(
            "/grants/{namespace}/{name}/deny/finish",
            post(decide::finish_deny),
        )
        .route("/grants/{namespace}/{name}/revoke", post(revoke::revoke))
        .route("/history", get(history::list))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(approvals.clone(), count))
        .with_state(approvals)
}

/// Counts every answer by outcome: `ok`, or the refusal's stable code.
async fn count(State(approvals): State<Arc<Approvals>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let outcome = match response.extensions().get::<Outcome>() {
        Some(Outcome(code)) => code.as_str(),
        None if response.status().is_success() => "ok",
        None => "other",
    };
    approvals
        .ctx
        .metrics
        .approval_api
        .with_label_values(&[&route, outcome])
        .inc();
    response
}
