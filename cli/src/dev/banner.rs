//! The "ready" block `agentauth dev` prints once everything answers: what
//! runs where, the URLs, the kubeconfig to export, and the exact commands a
//! newcomer types next. `docs/dev.md` walks through the same commands; a
//! test keeps the two in step.

use std::fmt::Write as _;
use std::time::Duration;

/// The line that marks a finished start (tests and scripts wait for it).
pub const READY_LINE: &str = "agentauth dev: ready";

/// What the banner describes.
#[derive(Clone, Debug)]
pub struct Summary {
    /// How long the start took.
    pub started_in: Duration,
    /// `local` or `existing`, with the apiserver URL.
    pub cluster: ClusterKind,
    /// The apiserver URL.
    pub server: String,
    /// The admin kubeconfig to export.
    pub kubeconfig: String,
    /// The operator's base URL.
    pub operator: String,
    /// The identity the operator runs as.
    pub operator_username: String,
    /// The webhook's review URL, and whether the apiserver calls it.
    pub webhook: String,
    /// Whether the webhook is registered with the apiserver.
    pub webhook_registered: bool,
    /// Each verifier: name and base URL.
    pub verifiers: Vec<(String, String)>,
    /// The Redis URL, or `None` for in-process state.
    pub redis: Option<String>,
    /// The example provider's base URL and its audience, if it runs.
    pub provider: Option<(String, String)>,
    /// The applied examples, `Kind name`.
    pub examples: Vec<String>,
    /// The state folder.
    pub state_dir: String,
    /// Whether the walk-through subcommands are available.
    pub walkthrough: bool,
    /// The folder holding the `agentauth` binary, for `PATH`.
    pub bin_dir: String,
    /// The approval UI, when the operator serves it.
    pub ui: Option<UiLinks>,
    /// The audit archiver (with Redis): its base URL and archive folder.
    pub archiver: Option<(String, String)>,
}

/// Where a person approves: the UI and a first enrollment link.
#[derive(Clone, Debug)]
pub struct UiLinks {
    /// The UI's URL (on the WebAuthn origin).
    pub url: String,
    /// The example approver.
    pub approver: String,
    /// Their one-time enrollment link, as `agentauth approver enroll-token` prints it.
    pub enroll: Option<String>,
}

/// Which cluster the run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterKind {
    /// The local etcd + kube-apiserver this run started.
    Local,
    /// The current kubeconfig's cluster.
    Existing,
}

/// The whole banner, ending in [`READY_LINE`].
pub fn render(s: &Summary) -> String {
    let mut out = String::new();
    let rule = "─".repeat(72);
    let _ = writeln!(out, "{rule}");
    let _ = writeln!(out, "AgentAuth is running on this machine.");
    let _ = writeln!(out);
    control_rows(&mut out, s);
    for (name, url) in &s.verifiers {
        row(&mut out, name, &format!("{url}/v1/verify"));
    }
    state_rows(&mut out, s);
    if let Some((url, audience)) = &s.provider {
        row(
            &mut out,
            "provider",
            &format!("{url}  (example service {audience}; checks each call with verifier-a)"),
        );
    }
    ui_rows(&mut out, s);
    if let Some((url, dir)) = &s.archiver {
        row(
            &mut out,
            "archiver",
            &format!("{url}  (/metrics; seals the audit stream into {dir})"),
        );
    }
    row(&mut out, "examples", &s.examples.join(", "));
    row(
        &mut out,
        "state",
        &format!(
            "{}  (root key, agent keys and passkeys kept between runs)",
            s.state_dir
        ),
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Next, in another terminal (docs/dev.md explains each step):"
    );
    let _ = writeln!(out);
    for command in next_commands(s) {
        let _ = writeln!(out, "  {command}");
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Logs follow, one prefix per service. Ctrl-C stops everything."
    );
    let _ = writeln!(out, "{rule}");
    let _ = write!(
        out,
        "{READY_LINE} (started in {:.1}s)",
        s.started_in.as_secs_f64()
    );
    out
}

/// The apiserver's, operator's and webhook's rows.
fn control_rows(out: &mut String, s: &Summary) {
    let cluster = match s.cluster {
        ClusterKind::Local => format!(
            "{}  (local etcd + kube-apiserver, thrown away on exit)",
            s.server
        ),
        ClusterKind::Existing => format!("{}  (your current kubeconfig)", s.server),
    };
    row(out, "apiserver", &cluster);
    row(
        out,
        "operator",
        &format!(
            "{}  (agent API; runs as {})",
            s.operator, s.operator_username
        ),
    );
    row(
        out,
        "",
        &format!("JWKS {}/.well-known/jwks.json", s.operator),
    );
    let webhook = if s.webhook_registered {
        format!(
            "{}  (ValidatingWebhookConfiguration agentauth-dev)",
            s.webhook
        )
    } else {
        format!(
            "{}  NOT registered: the cluster's apiserver cannot reach this machine's loopback",
            s.webhook
        )
    };
    row(out, "webhook", &webhook);
}

/// Where the shared state lives, and what its absence means.
fn state_rows(out: &mut String, s: &Summary) {
    match &s.redis {
        Some(url) => row(
            out,
            "redis",
            &format!("{url}  (state shared by the operator and every verifier)"),
        ),
        None => {
            row(out, "state", "in process (no redis-server found)");
            row(
                out,
                "",
                "one verifier only: without Redis the operator and a verifier share no",
            );
            row(
                out,
                "",
                "grant state, so verifications are denied (grant_not_approved);",
            );
            row(
                out,
                "",
                "install redis-server (./dev.sh does) for the full walk-through",
            );
        }
    }
}

/// The approval UI's rows: its URL and an enrollment link, or why it is
/// not served.
fn ui_rows(out: &mut String, s: &Summary) {
    match &s.ui {
        Some(ui) => {
            row(
                out,
                "approvals",
                &format!("{}  (the approval UI: sign in with a passkey)", ui.url),
            );
            if let Some(link) = &ui.enroll {
                row(
                    out,
                    "enroll",
                    &format!("{link}  ({}'s passkey; single use, 1 h)", ui.approver),
                );
            }
            let origin = ui.url.trim_end_matches("/approvals/");
            row(
                out,
                "",
                &format!(
                    "a new link: agentauth approver enroll-token {} --public-url {origin}",
                    ui.approver
                ),
            );
        }
        None => row(
            out,
            "approvals",
            "UI not served: approval-ui/dist is not built (./dev.sh builds it when npm is \
             installed; or pass --ui-dir)",
        ),
    }
}

/// The commands of the walk-through, in order, exactly as a newcomer types them.
pub fn next_commands(s: &Summary) -> Vec<String> {
    let mut commands = vec![
        format!("export KUBECONFIG={}", s.kubeconfig),
        format!("export PATH=\"{}:$PATH\"", s.bin_dir),
        format!("export AGENTAUTH_DEV_STATE_DIR={}", s.state_dir),
        "kubectl get agentauth -A".to_owned(),
    ];
    if s.walkthrough {
        let agent = "agents/shopping-agent";
        let audience = s
            .provider
            .as_ref()
            .map_or("https://shop.example.com", |(_, a)| a.as_str());
        let provider = s
            .provider
            .as_ref()
            .map_or_else(|| "http://127.0.0.1:8084".to_owned(), |(u, _)| u.clone());
        let call = format!("agentauth dev call {agent} GET {provider}/catalog/paper");
        commands.extend([
            format!("agentauth dev agent-key {agent}"),
            format!(
                "GRANT=$(agentauth dev request {agent} --provider {audience} --capability 'read:catalog/**')"
            ),
            "agentauth dev approve \"$GRANT\"".to_owned(),
            call.clone(),
            "agentauth dev revoke \"$GRANT\"".to_owned(),
            call,
        ]);
        if s.archiver.is_some() {
            commands.extend(ARCHIVE_COMMANDS.map(str::to_owned));
        }
    } else {
        commands.extend([
            format!("curl -s {}/.well-known/jwks.json", s.operator),
            format!(
                "curl -s {}/readyz",
                s.verifiers.first().map_or("", |(_, u)| u)
            ),
        ]);
    }
    commands
}

/// Reading what the walk-through left in the sealed audit archive.
const ARCHIVE_COMMANDS: [&str; 2] = [
    "agentauth audit show --archive-dir \"$AGENTAUTH_DEV_STATE_DIR/run/audit-archive\" --agent agents/shopping-agent",
    "agentauth audit verify --archive-dir \"$AGENTAUTH_DEV_STATE_DIR/run/audit-archive\" --public-key \"$AGENTAUTH_DEV_STATE_DIR/run/root.jwk\"",
];

fn row(out: &mut String, label: &str, value: &str) {
    let _ = writeln!(out, "  {label:<11}{value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Summary {
        Summary {
            started_in: Duration::from_millis(6_240),
            cluster: ClusterKind::Local,
            server: "https://127.0.0.1:40000".into(),
            kubeconfig: "/repo/.agentauth-dev/kubeconfig".into(),
            operator: "http://127.0.0.1:8080".into(),
            operator_username: "system:serviceaccount:agentauth-system:agentauth-operator".into(),
            webhook: "https://127.0.0.1:8083/validate".into(),
            webhook_registered: true,
            verifiers: vec![
                ("verifier-a".into(), "http://127.0.0.1:8081".into()),
                ("verifier-b".into(), "http://127.0.0.1:8082".into()),
            ],
            redis: Some("redis://127.0.0.1:8085/".into()),
            provider: None,
            examples: vec!["Approver dana-fischer".into()],
            state_dir: ".agentauth-dev".into(),
            walkthrough: false,
            bin_dir: "/cache/target/debug".into(),
            ui: None,
            archiver: None,
        }
    }

    #[test]
    fn the_banner_says_what_runs_where_and_ends_with_the_ready_line() {
        let text = render(&summary());
        for expected in [
            "https://127.0.0.1:40000  (local etcd + kube-apiserver",
            "http://127.0.0.1:8080  (agent API; runs as system:serviceaccount:",
            "JWKS http://127.0.0.1:8080/.well-known/jwks.json",
            "https://127.0.0.1:8083/validate  (ValidatingWebhookConfiguration agentauth-dev)",
            "verifier-a http://127.0.0.1:8081/v1/verify",
            "verifier-b http://127.0.0.1:8082/v1/verify",
            "redis://127.0.0.1:8085/",
            "export KUBECONFIG=/repo/.agentauth-dev/kubeconfig",
            "export PATH=\"/cache/target/debug:$PATH\"",
            "export AGENTAUTH_DEV_STATE_DIR=.agentauth-dev",
            "Ctrl-C stops everything",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert!(
            text.lines()
                .last()
                .is_some_and(|l| l == "agentauth dev: ready (started in 6.2s)"),
            "{text}"
        );
    }

    #[test]
    fn the_banner_prints_the_ui_and_an_enrollment_link_or_says_it_is_not_built() {
        let mut s = summary();
        assert!(render(&s).contains("UI not served"), "{}", render(&s));
        s.ui = Some(UiLinks {
            url: "http://localhost:8080/approvals/".into(),
            approver: "dana-fischer".into(),
            enroll: Some(crate::approver::enroll_url(
                "http://localhost:8080",
                "dana-fischer",
                "tok",
            )),
        });
        let text = render(&s);
        for expected in [
            "  approvals  http://localhost:8080/approvals/  (the approval UI",
            "  enroll     http://localhost:8080/approvals/enroll?approver=dana-fischer#token=tok  (",
            "agentauth approver enroll-token dana-fischer --public-url http://localhost:8080",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn without_redis_the_banner_says_why_there_is_one_verifier() {
        let mut s = summary();
        s.redis = None;
        s.verifiers.truncate(1);
        let text = render(&s);
        assert!(text.contains("one verifier only"), "{text}");
        assert!(!text.contains("verifier-b"), "{text}");
    }

    #[test]
    fn an_unreachable_webhook_is_said_loudly() {
        let mut s = summary();
        s.cluster = ClusterKind::Existing;
        s.webhook_registered = false;
        let text = render(&s);
        assert!(text.contains("NOT registered"), "{text}");
        assert!(text.contains("(your current kubeconfig)"), "{text}");
    }

    #[test]
    fn docs_dev_md_walks_through_the_commands_the_banner_prints() {
        let docs = include_str!("../../../docs/dev.md");
        let mut s = summary();
        s.walkthrough = true;
        s.archiver = Some((
            "http://127.0.0.1:8086".into(),
            ".agentauth-dev/run/audit-archive".into(),
        ));
        s.provider = Some((
            "http://127.0.0.1:8084".into(),
            "https://shop.example.com".into(),
        ));
        for command in next_commands(&s) {
            // The exports name this machine's folders; the rest is verbatim.
            if !command.starts_with("export ") {
                assert!(docs.contains(&command), "docs/dev.md lacks {command:?}");
            }
        }
    }

    #[test]
    fn the_walkthrough_commands_are_listed_in_order() {
        let mut s = summary();
        s.walkthrough = true;
        s.provider = Some((
            "http://127.0.0.1:8084".into(),
            "https://shop.example.com".into(),
        ));
        let commands = next_commands(&s);
        let verbs: Vec<&str> = commands
            .iter()
            .filter_map(|c| c.split("agentauth dev ").nth(1))
            .filter_map(|c| c.split(' ').next())
            .collect();
        assert_eq!(
            verbs,
            ["agent-key", "request", "approve", "call", "revoke", "call"]
        );
    }
}
