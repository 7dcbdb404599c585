//! The identity of one process: a Lease holder, an audit chain's producer.

/// `<pod or host name>-<random>`: unique per process, so two replicas on
/// one host (or a restarted one) never share a Lease identity or an audit
/// chain. A process id would not do (every container's main process is
/// pid 1). The first non-empty of `vars` names the host, else `fallback`.
pub fn default_identity(vars: &[&str], fallback: &str) -> String {
    let host = vars
        .iter()
        .filter_map(|var| std::env::var(var).ok())
        .find(|h| !h.is_empty())
        .unwrap_or_else(|| fallback.to_owned());
    format!("{host}-{}", &agentauth_core::dpop::new_jti()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_back_and_is_unique() {
        let a = default_identity(&["AGENTAUTH_TEST_UNSET_VARIABLE"], "svc");
        let b = default_identity(&["AGENTAUTH_TEST_UNSET_VARIABLE"], "svc");
        assert!(a.starts_with("svc-"), "{a}");
        assert_eq!(a.len(), "svc-".len() + 8);
        assert_ne!(a, b);
    }
}
