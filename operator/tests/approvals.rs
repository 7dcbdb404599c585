//! The approval API end to end against a real kube-apiserver with the real
//! admission webhook registered: software passkeys enroll with one-time
//! tokens, log in, read pending grants and approve or deny them, and the
//! controllers move the grants on ([`ceremony`]); every attack on the way is
//! performed and refused with its stable code ([`attacks`]). An approver
//! reads what they decided ([`history`]) and revokes an approved grant
//! ([`revoke`]). A grant that needs several approvers is approved only at
//! its quorum of distinct approvers ([`quorum`]).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "approvals/attacks.rs"]
mod attacks;
#[path = "approvals/binding.rs"]
mod binding;
#[path = "approvals/ceremony.rs"]
mod ceremony;
#[path = "approvals/history.rs"]
mod history;
#[path = "approvals/quorum.rs"]
mod quorum;
#[path = "approvals/revoke.rs"]
mod revoke;
#[path = "approvals/separation.rs"]
mod separation;
#[path = "approvals/support.rs"]
mod support;
#[path = "approvals/webhook.rs"]
mod webhook;
