//! Waiting for a human's decision over the operator's status stream
//! (Server-Sent Events, `GET /v1/grants/{ns}/{name}/events`).
//!
//! ```text
//!  connect (fresh proof) ─▶ event: status {phase: Pending}  ─▶ keep reading
//!                        ─▶ event: status {phase: Approved} ─▶ Ok(grant)
//!                        ─▶ event: status {phase: Denied|Revoked|Expired} ─▶ Err(Denied)
//!                        ─▶ event: deleted                  ─▶ Err(Denied { phase: Deleted })
//!                        ─▶ stream ends (5 min cap, proxy)  ─▶ reconnect after 1 s
//! ```
//!
//! The caller bounds the whole wait with a timeout. Only `event`/`data`
//! lines are read; comments (keep-alives) and other fields are skipped.

use std::time::Duration;

use crate::client::AgentAuthClient;
use crate::error::{Error, Result};
use crate::grant::Grant;

/// Longest event accepted; a status view is well under 4 KiB.
const MAX_EVENT: usize = 64 * 1024;

/// Reads streams of `path` until a decision, reconnecting when one ends.
pub(crate) async fn wait(client: &AgentAuthClient, grant: &str, path: &str) -> Result<Grant> {
    loop {
        let response = client
            .operator_request(reqwest::Method::GET, path)?
            .header("Accept", "text/event-stream")
            // The caller's timeout bounds the wait; a stream lasts up to 5 min.
            .timeout(Duration::from_secs(24 * 3600))
            .send()
            .await?;
        let mut response = crate::error::check_response(response).await?;
        let mut buffer = String::new();
        while let Some(chunk) = response.chunk().await? {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = event_end(&buffer) {
                let event: String = buffer.drain(..end).collect();
                if let Some(decision) = decide(grant, &event)? {
                    return decision;
                }
            }
            if buffer.len() > MAX_EVENT {
                return Err(Error::Protocol(
                    "an event of the status stream is too long".into(),
                ));
            }
        }
        tracing::debug!(grant, "status stream ended; reconnecting");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The end (after the blank line) of the first complete event in `buffer`.
fn event_end(buffer: &str) -> Option<usize> {
    let lf = buffer.find("\n\n").map(|i| i + 2);
    let crlf = buffer.find("\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What one event means: `None` to keep waiting, else the outcome.
fn decide(grant: &str, event: &str) -> Result<Option<Result<Grant>>> {
    let mut name = "message";
    let mut data = String::new();
    for line in event.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            name = value.trim();
        } else if let Some(value) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    match name {
        "deleted" => Ok(Some(Err(Error::Denied {
            grant: grant.to_owned(),
            phase: "Deleted".into(),
            message: "the grant was deleted".into(),
        }))),
        "status" => {
            let view: Grant = serde_json::from_str(&data)
                .map_err(|e| Error::Protocol(format!("cannot read a status event: {e}")))?;
            if view.is_pending() {
                return Ok(None);
            }
            if view.is_approved() {
                return Ok(Some(Ok(view)));
            }
            Ok(Some(Err(Error::Denied {
                grant: grant.to_owned(),
                phase: if view.revoked {
                    "Revoked".into()
                } else {
                    view.phase.clone()
                },
                message: view.message(),
            })))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(phase: &str) -> String {
        format!(
            "event: status\ndata: {{\"namespace\":\"ns\",\"name\":\"g\",\"uid\":\"u\",\"agent\":\"ns/a\",\
             \"serviceProvider\":\"p\",\"phase\":\"{phase}\",\"revoked\":false,\"conditions\":[]}}\n\n"
        )
    }

    #[test]
    fn events_decide_or_keep_waiting() {
        assert!(decide("ns/g", &status("Pending")).unwrap().is_none());
        assert!(decide("ns/g", ": keep-alive\n\n").unwrap().is_none());
        let approved = decide("ns/g", &status("Approved"))
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(approved.reference(), "ns/g");
        let denied = decide("ns/g", &status("Denied"))
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert_eq!(denied.code_str(), "grant_not_approved");
        let deleted = decide("ns/g", "event: deleted\ndata: {}\n\n")
            .unwrap()
            .unwrap();
        assert!(matches!(deleted, Err(Error::Denied { ref phase, .. }) if phase == "Deleted"));
        assert!(decide("ns/g", "event: status\ndata: nonsense\n\n").is_err());
    }

    #[test]
    fn events_are_split_on_blank_lines() {
        assert_eq!(event_end("a\n\nb"), Some(3));
        assert_eq!(event_end("a\r\n\r\nb"), Some(5));
        assert_eq!(event_end("a\nb"), None);
    }
}
