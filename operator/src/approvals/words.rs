//! Capabilities and envelope limits in plain words, as the approval UI shows
//! them to the person deciding: "Read calendars/primary and everything under
//! it (only: get, list)". The structured form is shown beside it, so the
//! words never have to carry every detail alone.

use agentauth_core::capability::{Capability, CapabilityType};
use agentauth_crds::{ApprovalPolicy, BehavioralEnvelopeSpec, DenialRule};

/// One capability as a sentence.
pub fn capability(c: &Capability) -> String {
    let what = resources(c.resource.as_str());
    let mut sentence = match c.kind {
        CapabilityType::Read => format!("Read {what}"),
        CapabilityType::Write => format!("Create and change {what}"),
        CapabilityType::Delete => format!("Delete {what}"),
        CapabilityType::Transact => format!("Make transactions (move money) on {what}"),
        CapabilityType::Custom => format!(
            "Perform \"{}\" on {what}",
            c.name.as_deref().unwrap_or("an unnamed operation")
        ),
    };
    if let Some(actions) = &c.actions {
        sentence.push_str(&format!(" (only: {})", actions.join(", ")));
    }
    if c.kind == CapabilityType::Transact {
        match (&c.max_amount, &c.currency) {
            (Some(amount), Some(currency)) => {
                sentence.push_str(&format!(", at most {amount} {currency} per transaction"));
            }
            (None, Some(currency)) => sentence.push_str(&format!(", in {currency} only")),
            _ => sentence.push_str(", with no per-transaction limit of its own"),
        }
    }
    if let Some(filter) = &c.filter {
        sentence.push_str(&format!(
            "; only where the provider's filter \"{filter}\" holds"
        ));
    }
    if let Some(constraints) = &c.constraints {
        let json = serde_json::to_string(constraints).unwrap_or_default();
        sentence.push_str(&format!("; with the provider's constraints {json}"));
    }
    sentence
}

/// A resource pattern as a phrase.
fn resources(pattern: &str) -> String {
    if pattern == "**" {
        return "every resource".to_owned();
    }
    if let Some(prefix) = pattern.strip_suffix("/**")
        && !prefix.contains('*')
    {
        return format!("{prefix} and everything under it");
    }
    if pattern.contains('*') {
        return format!(
            "{pattern} (each * stands for any one path segment, ** for any number of segments)"
        );
    }
    format!("{pattern} only")
}

/// The agent's key as the approver reads it: its RFC 7638 thumbprint. An
/// approval covers this key only; a grant whose agent gets another key is
/// suspended until it is approved again.
pub fn agent_key(thumbprint: &str) -> String {
    format!("agent key fingerprint: {thumbprint}")
}

/// An envelope's limits, one sentence each.
pub fn envelope(spec: &BehavioralEnvelopeSpec) -> Vec<String> {
    let mut lines = Vec::new();
    for limit in &spec.rate_limits {
        let counted = limit
            .applies_to
            .as_ref()
            .map_or_else(String::new, |a| format!(", counting only {}", a.describe()));
        lines.push(format!(
            "At most {} requests per {}, in bursts of up to {}{counted}",
            limit.requests, limit.period, limit.burst
        ));
    }
    for window in &spec.time_windows {
        let days: Vec<String> = window
            .days
            .iter()
            .map(|d| {
                serde_json::to_value(d)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            })
            .collect();
        lines.push(format!(
            "Only on {} from {} to {} ({} time)",
            days.join(", "),
            window.start,
            window.end,
            window.time_zone
        ));
    }
    if !spec.time_windows.is_empty() {
        lines.push("Outside these times every request is refused".to_owned());
    }
    if let Some(t) = &spec.transactions {
        if let Some(max) = &t.max_per_transaction {
            lines.push(format!("At most {max} {} per transaction", t.currency));
        }
        if let Some(max) = &t.max_per_day {
            lines.push(format!("At most {max} {} per UTC day in total", t.currency));
        }
    }
    if let Some(ttl) = &spec.max_token_ttl {
        lines.push(format!("Each access token lives at most {ttl}"));
    }
    if let Some(policy) = &spec.approvals {
        lines.push(approvals(policy));
    }
    lines
}

/// An approval policy (N-of-M) as a sentence, e.g. "Every grant needs 2
/// distinct approvers; one denial ends it".
pub fn approvals(policy: &ApprovalPolicy) -> String {
    let who = if policy.from.is_some() {
        " selected by its approval policy"
    } else {
        ""
    };
    let denial = match policy.denial {
        DenialRule::Veto => "one denial ends it",
        DenialRule::Quorum => "it is denied only when as many deny it",
    };
    format!(
        "Every grant needs {} distinct approver{}{who}; {denial}",
        policy.required,
        if policy.required == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn cap(v: serde_json::Value) -> Capability {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn capabilities_read_as_sentences() {
        let rows = [
            (
                json!({"type": "read", "resource": "calendars/primary/**", "actions": ["get", "list"]}),
                "Read calendars/primary and everything under it (only: get, list)",
            ),
            (
                json!({"type": "write", "resource": "calendars/primary/events"}),
                "Create and change calendars/primary/events only",
            ),
            (
                json!({"type": "delete", "resource": "**"}),
                "Delete every resource",
            ),
            (
                json!({"type": "transact", "resource": "orders/*", "maxAmount": "50.00", "currency": "EUR"}),
                "Make transactions (move money) on orders/* (each * stands for any one path \
                 segment, ** for any number of segments), at most 50.00 EUR per transaction",
            ),
            (
                json!({"type": "custom", "name": "send-email", "resource": "mail/outbox",
                       "filter": "to endsWith @example.com"}),
                "Perform \"send-email\" on mail/outbox only; only where the provider's filter \
                 \"to endsWith @example.com\" holds",
            ),
        ];
        for (c, words) in rows {
            assert_eq!(capability(&cap(c)), words);
        }
    }

    #[test]
    fn the_agent_key_reads_as_its_fingerprint() {
        assert_eq!(
            agent_key("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"),
            "agent key fingerprint: NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn envelope_limits_read_as_sentences() {
        let spec: BehavioralEnvelopeSpec = serde_json::from_value(json!({
            "rateLimits": [{"requests": 10, "period": "1m", "burst": 5},
                           {"requests": 3, "period": "1h", "burst": 3,
                            "appliesTo": {"type": "transact", "resource": "payments/**"}}],
            "timeWindows": [{"days": ["mon", "tue"], "start": "09:00", "end": "17:00",
                             "timeZone": "Europe/Berlin"}],
            "transactions": {"currency": "EUR", "maxPerTransaction": "50.00", "maxPerDay": "200.00"},
            "maxTokenTtl": "5m",
        }))
        .unwrap();
        assert_eq!(
            envelope(&spec),
            [
                "At most 10 requests per 1m, in bursts of up to 5",
                "At most 3 requests per 1h, in bursts of up to 3, counting only transact on payments/**",
                "Only on mon, tue from 09:00 to 17:00 (Europe/Berlin time)",
                "Outside these times every request is refused",
                "At most 50.00 EUR per transaction",
                "At most 200.00 EUR per UTC day in total",
                "Each access token lives at most 5m",
            ]
        );
        let two: BehavioralEnvelopeSpec =
            serde_json::from_value(json!({"approvals": {"required": 2}})).unwrap();
        assert_eq!(
            envelope(&two),
            ["Every grant needs 2 distinct approvers; one denial ends it"]
        );
    }
}
