//! `agentauth audit show`: sealed records filtered for a person
//! investigating an incident.

use agentauth_core::audit::AuditEvent;

use crate::archive;
use crate::store::{SegmentStore, StoreError};

/// Which records to show; every given field must match.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// The agent, `namespace/name`.
    pub agent: Option<String>,
    /// The grant, `namespace/name`.
    pub grant: Option<String>,
    /// The event kind (`verification`, `token_issued`, …).
    pub kind: Option<String>,
    /// `allow` or `deny`.
    pub decision: Option<String>,
    /// The producer.
    pub producer: Option<String>,
    /// Records at or after this time (RFC 3339).
    pub since: Option<jiff::Timestamp>,
    /// Records before this time (RFC 3339).
    pub until: Option<jiff::Timestamp>,
}

impl Filter {
    /// Whether `event` passes.
    pub fn matches(&self, event: &AuditEvent) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have == Some(w))
        };
        let time = event.time.parse::<jiff::Timestamp>().ok();
        eq(&self.agent, event.agent.as_deref())
            && eq(&self.grant, event.grant.as_deref())
            && eq(&self.kind, Some(&event.kind))
            && eq(&self.decision, event.decision.as_deref())
            && eq(&self.producer, Some(&event.producer))
            && self.since.is_none_or(|s| time.is_some_and(|t| t >= s))
            && self.until.is_none_or(|u| time.is_some_and(|t| t < u))
    }
}

/// Every sealed record that passes `filter`, in archive order, with its
/// segment number. Unreadable lines are skipped (`verify` names them).
pub async fn show(
    store: &dyn SegmentStore,
    filter: &Filter,
) -> Result<Vec<(u64, AuditEvent)>, StoreError> {
    let mut out = Vec::new();
    for number in archive::segment_numbers(store).await? {
        let decoded = archive::read_segment(store, number).await?;
        for line in &decoded.lines {
            if let Ok(event) = AuditEvent::from_json(line)
                && filter.matches(&event)
            {
                out.push((number, event));
            }
        }
    }
    Ok(out)
}

/// One line for a person: time, producer#seq, kind, decision/reason, agent, grant.
pub fn one_line(event: &AuditEvent) -> String {
    let mut line = format!(
        "{}  {}#{}  {}",
        event.time, event.producer, event.seq, event.kind
    );
    if let Some(decision) = &event.decision {
        line.push_str(&format!("  {decision}"));
        if let Some(reason) = &event.reason {
            line.push_str(&format!(" ({reason})"));
        }
    }
    if let Some(agent) = &event.agent {
        line.push_str(&format!("  agent={agent}"));
    }
    if let Some(grant) = &event.grant {
        line.push_str(&format!("  grant={grant}"));
    }
    line
}
