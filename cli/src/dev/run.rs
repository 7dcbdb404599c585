//! One dev run, start to stop:
//!
//! ```text
//!  state folder ─▶ ports ─▶ cluster (+ CRDs, namespaces) ─▶ redis ─▶ root key
//!   ─▶ operator + webhook (ready) ─▶ webhook registered, in force ─▶ examples
//!   ─▶ verifier-a, verifier-b (ready) ─▶ banner ─▶ wait: Ctrl-C / SIGTERM / a death
//!   ─▶ unregister ─▶ stop services ─▶ stop redis ─▶ stop the control plane
//! ```
//!
//! Startup runs inside a `select!` with the shutdown signal, so Ctrl-C
//! during a slow start stops what has started so far, just as after it.

use std::ffi::OsString;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use agentauth_operator::clock::{Clock as _, SystemClock};
use agentauth_signer::{LocalSigner, Signer as _};
use agentauth_testenv::ControlPlane;

use super::banner::{self, ClusterKind, Summary};
use super::cluster::{self, Cluster, OPERATOR_USERNAME};
use super::endpoints::Endpoints;
use super::logs::Style;
use super::ports::Ports;
use super::services::{self, Layout, PROVIDER_AUDIENCE};
use super::supervisor::Supervisor;
use super::{DevArgs, DevError, apiserver_log, examples, ready, registration};

/// Everything started so far, for an orderly stop.
struct Session {
    style: Style,
    supervisor: Supervisor,
    cluster: Option<Cluster>,
    follower: Option<tokio::task::JoinHandle<()>>,
    registered: bool,
}

/// Runs until a signal (exit 0) or a failure (exit 1).
pub async fn run(args: DevArgs) -> ExitCode {
    let style = Style::detect();
    let started = Instant::now();
    let (state_dir, run_dir) = match prepare_state(&args.state_dir) {
        Ok(dirs) => dirs,
        Err(error) => return fail(&style, &error),
    };
    let mut session = Session {
        style: style.clone(),
        supervisor: Supervisor::new(style.clone(), run_dir.clone()),
        cluster: None,
        follower: None,
        registered: false,
    };
    let stdin_closed = args.stop_on_stdin_eof.then(watch_stdin);
    let stop_requested = || stop_signal(stdin_closed.clone());
    let start_outcome = tokio::select! {
        result = start(&args, &state_dir, &run_dir, &mut session, started) => Some(result),
        () = stop_requested() => None,
    };
    let outcome = match start_outcome {
        Some(Ok(())) => tokio::select! {
            () = stop_requested() => Ok(()),
            exit = session.supervisor.next_exit() => Err(exit),
        },
        Some(Err(error)) => {
            fail(&style, &error);
            Err(None)
        }
        None => Ok(()),
    };
    let code = match outcome {
        Ok(()) => {
            session.say("stopping");
            ExitCode::SUCCESS
        }
        Err(Some(exit)) => {
            let status = exit
                .status
                .map_or_else(|| "unknown status".to_owned(), |s| s.to_string());
            complain(&style.alarm(&format!(
                "agentauth dev: the {} died unexpectedly ({status}); stopping everything. \
                 Its last lines:\n{}",
                exit.name,
                session.supervisor.recent_lines(exit.name).join("\n")
            )));
            ExitCode::FAILURE
        }
        Err(None) => ExitCode::FAILURE,
    };
    // A second Ctrl-C while stopping exits at once; the lifelines then
    // still stop every service. (An ended stdin stays ended: it is not a
    // second request.)
    tokio::select! {
        () = session.shutdown() => {},
        () = stop_signal(None) => {
            complain("agentauth dev: stopping at once");
            return ExitCode::from(130);
        }
    }
    session.say("stopped");
    code
}

/// Ctrl-C, SIGTERM, or SIGHUP (the terminal closed), or with
/// `--stop-on-stdin-eof` the end of stdin: every one stops the run in
/// order, so an existing cluster is not left with the registration of a
/// webhook that is gone.
async fn stop_signal(stdin_closed: Option<tokio::sync::watch::Receiver<bool>>) {
    let stdin_closed = async {
        match stdin_closed {
            Some(mut closed) => {
                let _ = closed.wait_for(|closed| *closed).await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let hangup = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = crate::runtime::shutdown_signal() => {},
        () = hangup => {},
        () = stdin_closed => {},
    }
}

/// Becomes true when stdin reaches its end: a parent holding the other end
/// of a pipe (a test) exited, however it ended, so this run must not
/// outlive it.
fn watch_stdin() -> tokio::sync::watch::Receiver<bool> {
    let (closed, watch) = tokio::sync::watch::channel(false);
    std::thread::spawn(move || {
        let mut sink = [0u8; 256];
        while matches!(std::io::Read::read(&mut std::io::stdin(), &mut sink), Ok(n) if n > 0) {}
        let _ = closed.send(true);
    });
    watch
}

/// Writes to stderr, ignoring a closed terminal (`eprintln!` would panic
/// in the middle of stopping).
fn complain(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

fn fail(style: &Style, error: &DevError) -> ExitCode {
    complain(&style.alarm(&format!("agentauth dev: {error}")));
    ExitCode::FAILURE
}

impl Session {
    fn say(&self, message: &str) {
        self.style.print("dev", message);
    }

    /// Services first (they may still talk to Redis and the apiserver),
    /// then Redis, then the control plane.
    async fn shutdown(&mut self) {
        if self.registered
            && let Some(cluster) = &self.cluster
            && let Ok(client) = cluster.client()
            && let Err(e) = registration::unregister(&client).await
        {
            self.say(&format!("could not remove the webhook registration: {e}"));
        }
        self.supervisor
            .stop(&[
                "provider",
                "verifier-a",
                "verifier-b",
                "operator",
                "webhook",
            ])
            .await;
        self.supervisor.stop(&[]).await;
        if let Some(follower) = self.follower.take() {
            follower.abort();
        }
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.stop().await;
        }
    }
}

/// Creates the state folder and a fresh run folder inside it.
fn prepare_state(state_dir: &Path) -> Result<(PathBuf, PathBuf), DevError> {
    std::fs::create_dir_all(state_dir).map_err(|e| DevError::io("create", state_dir, e))?;
    // Keys and kubeconfigs must never be committed; the folder says so itself.
    let ignore = state_dir.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(&ignore, "*\n").map_err(|e| DevError::io("write", &ignore, e))?;
    }
    let state_dir = state_dir
        .canonicalize()
        .map_err(|e| DevError::io("resolve", state_dir, e))?;
    let run_dir = state_dir.join("run");
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir).map_err(|e| DevError::io("clear", &run_dir, e))?;
    }
    std::fs::create_dir(&run_dir).map_err(|e| DevError::io("create", &run_dir, e))?;
    Ok((state_dir, run_dir))
}

/// What the rest of the start needs of the cluster, once the session
/// holds it.
struct Connected {
    client: kube::Client,
    kind: ClusterKind,
    server: String,
    admin_kubeconfig: PathBuf,
    operator_kubeconfig: PathBuf,
    reaches_loopback: bool,
}

/// The operator's URL, the webhook's address, and the plain HTTP client
/// that probes the services.
struct ControlServices {
    operator_url: String,
    webhook_addr: SocketAddr,
    http: reqwest::Client,
}

/// Starts every service in order (cluster, Redis, operator and webhook,
/// examples, verifiers, provider and archiver), records their endpoints
/// and prints the banner.
async fn start(
    args: &DevArgs,
    state_dir: &Path,
    run_dir: &Path,
    session: &mut Session,
    started: Instant,
) -> Result<(), DevError> {
    let ports = Ports::plan(args.base_port)?;
    let exe = std::env::current_exe().map_err(|e| DevError::Spawn {
        service: "agentauth binary",
        source: e,
    })?;
    let cluster = connect_cluster(args, state_dir, session).await?;
    let layout = start_redis(args, session, ports, state_dir, run_dir).await?;
    write_root_jwk(&layout)?;
    let control = start_control(session, &exe, &layout, &cluster).await?;

    let mut applied = examples::apply(&cluster.client, examples::FILES).await?;
    applied.push(examples::allow_example_approver(&cluster.client).await?);
    session.say(&format!("applied {} example objects", applied.len()));
    let ui = match &layout.ui_dir {
        Some(_) => Some(ui_links(&cluster.client, &layout).await),
        None => None,
    };

    let verifier_urls = start_verifiers(session, &exe, &layout, &control.http).await?;
    let provider_url = start_edge(session, &exe, &layout, &control.http).await?;
    Endpoints {
        operator: control.operator_url.clone(),
        approval_origin: layout.origin(),
        verifier: format!("http://127.0.0.1:{}", ports.verifier_a),
        verifiers: verifier_urls.clone(),
        redis: layout.redis_url.clone(),
        provider: provider_url.clone(),
        provider_audience: PROVIDER_AUDIENCE.to_owned(),
        kubeconfig: cluster.admin_kubeconfig.clone(),
        system_namespace: cluster::SYSTEM_NAMESPACE.to_owned(),
        archiver: layout.archiver_url(),
        archive_dir: layout.archiver_url().map(|_| layout.archive_dir.clone()),
    }
    .save(run_dir)?;

    let summary = Summary {
        started_in: started.elapsed(),
        cluster: cluster.kind,
        server: cluster.server,
        kubeconfig: cluster.admin_kubeconfig.display().to_string(),
        operator: control.operator_url,
        operator_username: OPERATOR_USERNAME.to_owned(),
        webhook: registration_url(control.webhook_addr),
        webhook_registered: session.registered,
        verifiers: verifier_urls,
        redis: layout.redis_url.clone(),
        provider: Some((provider_url, PROVIDER_AUDIENCE.to_owned())),
        examples: applied
            .iter()
            .map(|a| format!("{} {}", a.kind, a.name))
            .collect(),
        state_dir: state_dir.display().to_string(),
        walkthrough: true,
        bin_dir: exe
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        ui,
        archiver: layout
            .archiver_url()
            .map(|url| (url, layout.archive_dir.display().to_string())),
    };
    print_banner(session, &summary);
    Ok(())
}

/// Connects to the cluster (or starts the local control plane), hands it
/// to the session, and installs the CRDs and namespaces.
async fn connect_cluster(
    args: &DevArgs,
    state_dir: &Path,
    session: &mut Session,
) -> Result<Connected, DevError> {
    session.say(if args.local {
        "starting the local control plane (etcd + kube-apiserver)"
    } else {
        "looking for a cluster: the current kubeconfig, else a local control plane"
    });
    let cluster = cluster::connect(state_dir, args.local).await?;
    let kind = if cluster.local.as_ref().is_some_and(ControlPlane::is_local) {
        ClusterKind::Local
    } else {
        ClusterKind::Existing
    };
    session.say(&format!("apiserver {} ({kind:?})", cluster.server));
    if let Some(log) = &cluster.apiserver_log {
        session.follower = Some(apiserver_log::follow(
            log.clone(),
            session.style.clone(),
            args.verbose,
        ));
    }
    let connected = Connected {
        client: cluster.client()?,
        kind,
        server: cluster.server.clone(),
        admin_kubeconfig: cluster.kubeconfig.clone(),
        operator_kubeconfig: cluster.operator_kubeconfig.clone(),
        reaches_loopback: cluster.reaches_loopback(),
    };
    session.cluster = Some(cluster);
    let crds = cluster::install_crds(&connected.client).await?;
    cluster::ensure_namespaces(&connected.client).await?;
    session.say(&format!("{crds} CRDs established; namespaces ready"));
    Ok(connected)
}

/// Lays out the run and starts Redis when there is one (`--no-redis`, or
/// none on PATH: state stays in process).
async fn start_redis(
    args: &DevArgs,
    session: &mut Session,
    ports: Ports,
    state_dir: &Path,
    run_dir: &Path,
) -> Result<Layout, DevError> {
    let redis_binary = if args.no_redis {
        None
    } else {
        services::redis_binary()
    };
    if !args.no_redis && redis_binary.is_none() {
        session.say("no redis-server on PATH: state stays in process, one verifier only");
    }
    let mut layout = Layout::new(ports, state_dir, run_dir, redis_binary.is_some());
    layout.ui_dir = services::ui_dir(args.ui_dir.as_deref());
    if let Some(binary) = &redis_binary {
        let dir = &layout.redis_dir;
        std::fs::create_dir(dir).map_err(|e| DevError::io("create", dir, e))?;
        let redis = spawn(session, "redis", binary, &layout.redis_args(), &[])?;
        ready::redis(&redis, SocketAddr::from(([127, 0, 0, 1], ports.redis))).await?;
    }
    Ok(layout)
}

/// Loads (or makes) the root key and writes its public JWK for the
/// verifiers to pin.
fn write_root_jwk(layout: &Layout) -> Result<(), DevError> {
    let root = LocalSigner::load_or_generate(&layout.root_key)
        .map_err(|e| DevError::RootKey(e.to_string()))?;
    let root_jwk =
        serde_json::to_vec(root.public_jwk()).map_err(|e| DevError::RootKey(e.to_string()))?;
    let jwk_file = &layout.root_jwk_file;
    std::fs::write(jwk_file, root_jwk).map_err(|e| DevError::io("write", jwk_file, e))
}

/// Starts the operator and the webhook, waits until both are ready, and
/// registers the webhook when the cluster can reach it.
async fn start_control(
    session: &mut Session,
    exe: &Path,
    layout: &Layout,
    cluster: &Connected,
) -> Result<ControlServices, DevError> {
    let operator_url = layout.operator_url();
    let operator = spawn(
        session,
        "operator",
        exe,
        &layout.operator_args(),
        &[(
            "KUBECONFIG",
            cluster.operator_kubeconfig.clone().into_os_string(),
        )],
    )?;
    let webhook = spawn(
        session,
        "webhook",
        exe,
        &layout.webhook_args(),
        &[(
            "KUBECONFIG",
            cluster.admin_kubeconfig.clone().into_os_string(),
        )],
    )?;
    let http = http_client(None)?;
    ready::http(&operator, &http, &format!("{operator_url}/readyz")).await?;
    let ca_pem = ready::file(&webhook, &layout.ca_file).await?;
    let https = http_client(Some(&ca_pem))?;
    let webhook_addr = layout.webhook_addr();
    ready::http(&webhook, &https, &format!("https://{webhook_addr}/readyz")).await?;
    if cluster.reaches_loopback {
        registration::register(&cluster.client, webhook_addr, &ca_pem).await?;
        session.registered = true;
        session.say("webhook registered; the apiserver calls it");
    } else {
        session.say("the cluster cannot reach this machine's loopback: webhook NOT registered");
    }
    Ok(ControlServices {
        operator_url,
        webhook_addr,
        http,
    })
}

/// Starts every verifier, then waits until each is ready; returns their
/// names and URLs.
async fn start_verifiers(
    session: &mut Session,
    exe: &Path,
    layout: &Layout,
    http: &reqwest::Client,
) -> Result<Vec<(String, String)>, DevError> {
    let mut verifier_urls = Vec::new();
    let mut handles = Vec::new();
    for (name, port) in layout.verifiers() {
        let args = layout.verifier_args(name, port);
        handles.push(spawn(session, name, exe, &args, &[])?);
        verifier_urls.push((name.to_owned(), format!("http://127.0.0.1:{port}")));
    }
    for (handle, (_, url)) in handles.iter().zip(&verifier_urls) {
        ready::http(handle, http, &format!("{url}/readyz")).await?;
    }
    Ok(verifier_urls)
}

/// Starts the example provider and, with Redis, the audit archiver;
/// returns the provider's URL.
async fn start_edge(
    session: &mut Session,
    exe: &Path,
    layout: &Layout,
    http: &reqwest::Client,
) -> Result<String, DevError> {
    let provider_url = layout.provider_url();
    let provider = spawn(session, "provider", exe, &layout.provider_args(), &[])?;
    ready::http(&provider, http, &format!("{provider_url}/readyz")).await?;
    if let (Some(args), Some(url)) = (layout.archiver_args(), layout.archiver_url()) {
        let archiver = spawn(session, "archiver", exe, &args, &[])?;
        ready::http(&archiver, http, &format!("{url}/healthz")).await?;
    }
    Ok(provider_url)
}

/// Prints the banner, its last line (ready) in bold.
fn print_banner(session: &Session, summary: &Summary) {
    let text = banner::render(summary);
    let (body, ready_line) = text.rsplit_once('\n').unwrap_or(("", &text));
    let mut out = std::io::stdout().lock();
    // A closed terminal must not stop the run (println! would panic).
    let _ = writeln!(out, "{body}\n{}", session.style.bold(ready_line));
    let _ = out.flush();
}

/// The UI's URL and a first enrollment link for the example approver (a
/// failure to make the token only leaves the link out: the banner then
/// shows the command that makes one).
async fn ui_links(client: &kube::Client, layout: &Layout) -> banner::UiLinks {
    let approver = examples::EXAMPLE_APPROVER;
    let token = agentauth_operator::approvals::tokens::create(
        client.clone(),
        cluster::SYSTEM_NAMESPACE,
        approver,
        Duration::from_secs(3600),
        SystemClock.now_ms(),
    )
    .await;
    banner::UiLinks {
        url: layout.ui_url(),
        approver: approver.to_owned(),
        enroll: token
            .ok()
            .map(|t| crate::approver::enroll_url(&layout.origin(), approver, &t)),
    }
}

fn registration_url(addr: SocketAddr) -> String {
    agentauth_webhook::registration::url_for(addr)
}

fn spawn(
    session: &mut Session,
    name: &'static str,
    program: &Path,
    args: &[OsString],
    env: &[(&str, OsString)],
) -> Result<super::supervisor::Handle, DevError> {
    session
        .supervisor
        .spawn(name, program, args, env)
        .map_err(|source| DevError::Spawn {
            service: name,
            source,
        })
}

/// A client for the readiness probes; for HTTPS it trusts only `ca_pem`.
fn http_client(ca_pem: Option<&str>) -> Result<reqwest::Client, DevError> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy();
    if let Some(pem) = ca_pem {
        let certificate = reqwest::Certificate::from_pem(pem.as_bytes())
            .map_err(|e| DevError::HttpClient(e.to_string()))?;
        builder = builder.tls_certs_only([certificate]);
    }
    builder
        .build()
        .map_err(|e| DevError::HttpClient(e.to_string()))
}
