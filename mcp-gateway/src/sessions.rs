//! MCP sessions bound to the agent that opened them.
//!
//! The MCP server knows a session only by its `Mcp-Session-Id`; behind the
//! gateway every agent holds a valid token, so without a binding one agent
//! that learnt another's session id could read its stream or speak in its
//! session (MCP security best practices: session hijacking). The gateway
//! records which agent (the verifier's `agent`) received each new session
//! id, and answers a request that carries a session id of another agent,
//! or one it never handed out, with 404: the MCP spec's "session not
//! found", after which a client starts a new session.
//!
//! ```text
//!  initialize (no session id) ─▶ allowed ─▶ server answers Mcp-Session-Id: s ─▶ s → agent
//!  request with s             ─▶ allowed ─▶ owner(s) == agent ? forward : 404
//!  DELETE with s              ─▶ forwarded, s forgotten
//! ```
//!
//! The table lives in this process (like the sessions of an MCP server
//! with in-memory sessions): run one gateway per server, or route a
//! session's requests to one gateway. It holds at most [`MAX_SESSIONS`];
//! the oldest are forgotten first (their agents re-initialize).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// The most sessions remembered.
pub const MAX_SESSIONS: usize = 100_000;

/// Session id → the agent it belongs to.
#[derive(Debug, Default)]
pub struct Sessions {
    inner: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    owners: HashMap<String, String>,
    order: VecDeque<String>,
}

impl Sessions {
    /// Records that `session` was handed to `agent`.
    pub fn open(&self, session: &str, agent: &str) {
        let Ok(mut table) = self.inner.lock() else {
            return;
        };
        if table
            .owners
            .insert(session.to_owned(), agent.to_owned())
            .is_none()
        {
            table.order.push_back(session.to_owned());
        }
        while table.owners.len() > MAX_SESSIONS {
            let Some(oldest) = table.order.pop_front() else {
                break;
            };
            table.owners.remove(&oldest);
        }
    }

    /// Whether `agent` may use `session`.
    pub fn owned_by(&self, session: &str, agent: &str) -> bool {
        self.inner.lock().is_ok_and(|table| {
            table
                .owners
                .get(session)
                .is_some_and(|owner| owner == agent)
        })
    }

    /// Forgets `session` (ended with DELETE).
    pub fn close(&self, session: &str) {
        if let Ok(mut table) = self.inner.lock() {
            table.owners.remove(session);
            table.order.retain(|s| s != session);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_belongs_to_the_agent_it_was_handed_to() {
        let sessions = Sessions::default();
        sessions.open("s-1", "agents/a");
        assert!(sessions.owned_by("s-1", "agents/a"));
        assert!(!sessions.owned_by("s-1", "agents/b"));
        assert!(!sessions.owned_by("s-2", "agents/a"));
        sessions.close("s-1");
        assert!(!sessions.owned_by("s-1", "agents/a"));
    }

    #[test]
    fn the_oldest_sessions_are_forgotten_first() {
        let sessions = Sessions::default();
        for i in 0..=MAX_SESSIONS {
            sessions.open(&format!("s-{i}"), "agents/a");
        }
        assert!(!sessions.owned_by("s-0", "agents/a"));
        assert!(sessions.owned_by(&format!("s-{MAX_SESSIONS}"), "agents/a"));
    }
}
