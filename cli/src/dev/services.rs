//! The command line of every service of a dev run, from one [`Layout`]:
//! ports, URLs and files. Pure, so the wiring between the services (which
//! URL the verifiers fetch keys from, which origin the webhook accepts) can
//! be read and tested in one place.
//!
//! ```text
//!  redis      redis-server --port P --bind 127.0.0.1 (no persistence) --dir run/redis
//!  operator   agentauth operator  --public-url http://127.0.0.1:P --root-key-file <state>/root-key.pem
//!                                 --approval-origin http://localhost:P --rp-id localhost [--redis-url]
//!                                 [--ui-dir approval-ui/dist]   (the UI at http://localhost:P/approvals/)
//!  webhook    agentauth webhook   --self-signed --ca-bundle-out run/webhook-ca.pem
//!                                 --operator-username <the operator's identity>
//!  verifier-* agentauth verifier  --issuer/--jwks-url of the operator --root-jwk-file run/root.jwk
//!                                 --audience <the example providers> [--redis-url]
//!                                 --ext-authz-audience <the shop>
//!  provider   agentauth dev provider --verifier-url <verifier-a> --audience <the shop>
//!  archiver   agentauth archiver  --redis-url --archive-dir <state>/run/audit-archive --root-key-file <state>/root-key.pem
//!                                 --trim-after 1h (with Redis only: it reads the shared audit stream)
//! ```

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::cluster::{OPERATOR_USERNAME, SYSTEM_NAMESPACE};
use super::ports::Ports;

/// The audiences the verifiers answer for: the example providers'.
pub const AUDIENCES: &[&str] = &[
    "https://calendar.example.com",
    "https://shop.example.com",
    // The MCP example (examples/mcp-payments) behind `agentauth mcp-gateway`.
    "https://payments.example.com",
];

/// The example provider's audience: the shop of the shopping-agent example.
pub const PROVIDER_AUDIENCE: &str = "https://shop.example.com";

/// Where everything of one run is.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The ports.
    pub ports: Ports,
    /// The root key (kept between runs).
    pub root_key: PathBuf,
    /// The root's public JWK, for the verifiers.
    pub root_jwk_file: PathBuf,
    /// Where the webhook writes its CA certificate.
    pub ca_file: PathBuf,
    /// Redis's folder.
    pub redis_dir: PathBuf,
    /// The Redis URL, `None` for in-process state.
    pub redis_url: Option<String>,
    /// The built approval UI the operator serves, if there is one.
    pub ui_dir: Option<PathBuf>,
    /// Where the archiver seals the audit stream: in the run folder, fresh
    /// each run like Redis (a new Redis restarts every producer's chain,
    /// which an archive of the last run would rightly report as a break).
    pub archive_dir: PathBuf,
}

impl Layout {
    /// The layout for `ports` in `state_dir` / `run_dir`, with Redis or without.
    pub fn new(ports: Ports, state_dir: &Path, run_dir: &Path, redis: bool) -> Self {
        Layout {
            ports,
            root_key: state_dir.join("root-key.pem"),
            root_jwk_file: run_dir.join("root.jwk"),
            ca_file: run_dir.join("webhook-ca.pem"),
            redis_dir: run_dir.join("redis"),
            redis_url: redis.then(|| format!("redis://127.0.0.1:{}/", ports.redis)),
            ui_dir: None,
            archive_dir: run_dir.join("audit-archive"),
        }
    }

    /// The operator's base URL (also the tokens' issuer).
    pub fn operator_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.operator)
    }

    /// The WebAuthn origin of approvals: `localhost`, the relying party id.
    pub fn origin(&self) -> String {
        format!("http://localhost:{}", self.ports.operator)
    }

    /// The approval UI's address: on the WebAuthn origin, where the
    /// passkey ceremonies work.
    pub fn ui_url(&self) -> String {
        format!("{}/approvals/", self.origin())
    }

    /// The webhook's address.
    pub fn webhook_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.webhook))
    }

    /// The example provider's base URL.
    pub fn provider_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.provider)
    }

    /// The verifiers to run: two with Redis, one without (separate
    /// processes cannot share in-process state).
    pub fn verifiers(&self) -> Vec<(&'static str, u16)> {
        let mut verifiers = vec![("verifier-a", self.ports.verifier_a)];
        if self.redis_url.is_some() {
            verifiers.push(("verifier-b", self.ports.verifier_b));
        }
        verifiers
    }

    /// `redis-server` arguments: loopback, no persistence.
    pub fn redis_args(&self) -> Vec<OsString> {
        let port = self.ports.redis.to_string();
        let mut args = os(&[
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
        ]);
        args.push(self.redis_dir.clone().into_os_string());
        args
    }

    /// `agentauth operator` arguments.
    pub fn operator_args(&self) -> Vec<OsString> {
        let mut args = vec![
            "operator".to_owned(),
            format!("--listen=127.0.0.1:{}", self.ports.operator),
            format!("--public-url={}", self.operator_url()),
            format!("--root-key-file={}", self.root_key.display()),
            "--generate-root-key".to_owned(),
            "--identity=agentauth-dev".to_owned(),
            format!("--lease-namespace={SYSTEM_NAMESPACE}"),
            "--rp-id=localhost".to_owned(),
            format!("--approval-origin={}", self.origin()),
        ];
        if let Some(url) = &self.redis_url {
            args.push(format!("--redis-url={url}"));
        }
        if let Some(dir) = &self.ui_dir {
            args.push(format!("--ui-dir={}", dir.display()));
        }
        owned(args)
    }

    /// `agentauth webhook` arguments.
    pub fn webhook_args(&self) -> Vec<OsString> {
        owned(vec![
            "webhook".to_owned(),
            format!("--listen={}", self.webhook_addr()),
            "--self-signed".to_owned(),
            format!("--ca-bundle-out={}", self.ca_file.display()),
            format!("--operator-username={OPERATOR_USERNAME}"),
            "--rp-id=localhost".to_owned(),
            format!("--approval-origin={}", self.origin()),
        ])
    }

    /// `agentauth verifier` arguments for verifier `name` on `port`.
    pub fn verifier_args(&self, name: &str, port: u16) -> Vec<OsString> {
        let operator = self.operator_url();
        let mut args = vec![
            "verifier".to_owned(),
            format!("--listen=127.0.0.1:{port}"),
            format!("--issuer={operator}"),
            format!("--audience={}", AUDIENCES.join(",")),
            // Several audiences: ext_authz checks must be told theirs.
            format!("--ext-authz-audience={PROVIDER_AUDIENCE}"),
            format!("--jwks-url={operator}/.well-known/jwks.json"),
            format!("--root-jwk-file={}", self.root_jwk_file.display()),
            format!("--identity={name}"),
        ];
        if let Some(url) = &self.redis_url {
            args.push(format!("--redis-url={url}"));
        }
        owned(args)
    }

    /// `agentauth archiver` arguments, when Redis runs (the archiver reads
    /// the shared audit stream). Sealed entries stay in the stream for an
    /// hour, for whoever looks at it with redis-cli; segments are sealed
    /// every 2 s so `agentauth audit show` sees a walk-through at once.
    pub fn archiver_args(&self) -> Option<Vec<OsString>> {
        let url = self.redis_url.as_ref()?;
        Some(owned(vec![
            "archiver".to_owned(),
            format!("--listen=127.0.0.1:{}", self.ports.archiver),
            format!("--redis-url={url}"),
            format!("--archive-dir={}", self.archive_dir.display()),
            format!("--root-key-file={}", self.root_key.display()),
            "--segment-max-age=2s".to_owned(),
            "--trim-after=1h".to_owned(),
        ]))
    }

    /// The archiver's base URL (/metrics, /healthz), when it runs.
    pub fn archiver_url(&self) -> Option<String> {
        self.redis_url
            .as_ref()
            .map(|_| format!("http://127.0.0.1:{}", self.ports.archiver))
    }

    /// `agentauth dev provider` arguments: it asks verifier-a.
    pub fn provider_args(&self) -> Vec<OsString> {
        owned(vec![
            "dev".to_owned(),
            "provider".to_owned(),
            format!("--listen=127.0.0.1:{}", self.ports.provider),
            format!("--verifier-url=http://127.0.0.1:{}", self.ports.verifier_a),
            format!("--public-url={}", self.provider_url()),
            format!("--audience={PROVIDER_AUDIENCE}"),
        ])
    }
}

/// The built approval UI to serve: `configured` (`--ui-dir`), else
/// `approval-ui/dist` of this checkout (the working directory's, then the
/// one this binary was built from) when it holds an `index.html`.
pub fn ui_dir(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = configured {
        return Some(dir.to_path_buf());
    }
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    [PathBuf::from("."), built_from]
        .into_iter()
        .map(|root| root.join("approval-ui").join("dist"))
        .find(|dist| dist.join("index.html").is_file())
        .and_then(|dist| dist.canonicalize().ok())
}

/// `redis-server` on `PATH` (or `AGENTAUTH_REDIS_SERVER`), if there is one.
pub fn redis_binary() -> Option<PathBuf> {
    if let Some(path) =
        std::env::var_os(agentauth_testenv::REDIS_SERVER_ENV).filter(|p| !p.is_empty())
    {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

fn owned(args: Vec<String>) -> Vec<OsString> {
    args.into_iter().map(OsString::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(redis: bool) -> Layout {
        let ports = Ports {
            operator: 8080,
            verifier_a: 8081,
            verifier_b: 8082,
            webhook: 8083,
            provider: 8084,
            redis: 8085,
            archiver: 8086,
        };
        Layout::new(ports, Path::new("/s"), Path::new("/s/run"), redis)
    }

    fn joined(args: Vec<OsString>) -> String {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn the_verifiers_trust_the_operator_and_share_its_redis() {
        let l = layout(true);
        let verifier = joined(l.verifier_args("verifier-b", 8082));
        for part in [
            "--issuer=http://127.0.0.1:8080",
            "--jwks-url=http://127.0.0.1:8080/.well-known/jwks.json",
            "--root-jwk-file=/s/run/root.jwk",
            "--redis-url=redis://127.0.0.1:8085/",
            "https://shop.example.com",
            "--ext-authz-audience=https://shop.example.com",
        ] {
            assert!(verifier.contains(part), "{part} missing in {verifier}");
        }
        let operator = joined(l.operator_args());
        assert!(
            operator.contains("--redis-url=redis://127.0.0.1:8085/"),
            "{operator}"
        );
        assert!(
            operator.contains("--approval-origin=http://localhost:8080"),
            "{operator}"
        );
        let webhook = joined(l.webhook_args());
        assert!(
            webhook.contains("--approval-origin=http://localhost:8080"),
            "{webhook}"
        );
        assert!(webhook.contains(&format!("--operator-username={OPERATOR_USERNAME}")));
        let provider = joined(l.provider_args());
        assert!(
            provider.contains("--verifier-url=http://127.0.0.1:8081"),
            "{provider}"
        );
        assert_eq!(l.verifiers().len(), 2);
        assert!(!operator.contains("--ui-dir"), "{operator}");
        let mut with_ui = layout(true);
        with_ui.ui_dir = Some(PathBuf::from("/repo/approval-ui/dist"));
        assert!(joined(with_ui.operator_args()).contains("--ui-dir=/repo/approval-ui/dist"));
        assert_eq!(with_ui.ui_url(), "http://localhost:8080/approvals/");
    }

    #[test]
    fn the_archiver_seals_the_shared_stream_with_the_root_key() {
        let l = layout(true);
        let archiver = joined(l.archiver_args().unwrap());
        for expected in [
            "--redis-url=redis://127.0.0.1:8085/",
            "--root-key-file=/s/root-key.pem",
            "--archive-dir=/s/run/audit-archive",
            "--listen=127.0.0.1:8086",
        ] {
            assert!(archiver.contains(expected), "{expected} in {archiver}");
        }
        assert!(layout(false).archiver_args().is_none());
    }

    #[test]
    fn without_redis_one_verifier_runs_on_in_process_state() {
        let l = layout(false);
        assert_eq!(l.verifiers(), [("verifier-a", 8081)]);
        assert!(!joined(l.operator_args()).contains("--redis-url"));
        assert!(!joined(l.verifier_args("verifier-a", 8081)).contains("--redis-url"));
    }
}
