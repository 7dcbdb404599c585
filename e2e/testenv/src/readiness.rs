//! Waiting for the servers: etcd's client port, then the apiserver's `/readyz`
//! (which passes only once every post-start hook, RBAC bootstrap included, is done).

use std::time::{Duration, Instant};

use kube::{Client, Config};

use crate::Error;
use crate::error::chain;
use crate::process::Supervised;

/// How long the apiserver may take from spawn to a passing `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits until `port` accepts connections, failing early if `process` exits.
pub(crate) async fn wait_for_port(
    process: &mut Supervised,
    port: u16,
    timeout: Duration,
) -> Result<(), Error> {
    let started = Instant::now();
    loop {
        process.check_running()?;
        let last_error = match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(_) => return Ok(()),
            Err(e) => e.to_string(),
        };
        if started.elapsed() > timeout {
            return Err(process.not_ready(started.elapsed(), last_error));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the apiserver's `/readyz` says `ok`, failing early if it exits.
pub(crate) async fn wait_for_readyz(
    apiserver: &mut Supervised,
    config: &Config,
) -> Result<(), Error> {
    let mut probe_config = config.clone();
    // Probe failures are expected while starting; retry here, not inside kube.
    probe_config.default_retry = false;
    probe_config.connect_timeout = Some(Duration::from_secs(1));
    let probe = Client::try_from(probe_config).map_err(Error::Client)?;
    let started = Instant::now();
    loop {
        apiserver.check_running()?;
        // A bare request is a GET; building it this way cannot fail.
        let mut request = http::Request::new(Vec::new());
        *request.uri_mut() = http::Uri::from_static("/readyz");
        let last_error =
            match tokio::time::timeout(Duration::from_secs(5), probe.request_text(request)).await {
                Ok(Ok(body)) if body.trim() == "ok" => return Ok(()),
                Ok(Ok(body)) => format!("/readyz said {body:?}"),
                Ok(Err(e)) => chain(&e),
                Err(_) => "/readyz did not answer within 5s".to_owned(),
            };
        if started.elapsed() > READY_TIMEOUT {
            return Err(apiserver.not_ready(started.elapsed(), last_error));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
