//! Waiting for a service to become ready: its `/readyz` answers 200 (or, for
//! Redis, `PING` answers `PONG`) before a deadline. A service that exits
//! first, or misses the deadline, is named in the error together with the
//! last lines it printed, so the reason is on screen without digging.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use super::DevError;
use super::supervisor::Handle;

/// How long a service may take to become ready.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Lines of a service's output carried by a readiness error.
const TAIL: usize = 15;

/// Waits until `GET url` answers 200, using `client` (which trusts the
/// service's certificate for HTTPS).
pub async fn http(service: &Handle, client: &reqwest::Client, url: &str) -> Result<(), DevError> {
    wait(service, || async {
        match client.get(url).send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("{url} answered {}", response.status())),
            Err(e) => Err(format!("{url}: {}", agentauth_core::error::chain(&e))),
        }
    })
    .await
}

/// Waits until `path` exists and is not empty (a service writes it at
/// start, e.g. the webhook's CA bundle), and returns its text.
pub async fn file(service: &Handle, path: &Path) -> Result<String, DevError> {
    wait(service, || async move {
        match std::fs::read_to_string(path) {
            Ok(text) if text.contains("-----END") => Ok(()),
            Ok(_) => Err(format!("{} is not complete yet", path.display())),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    })
    .await?;
    std::fs::read_to_string(path).map_err(|e| DevError::io("read", path, e))
}

/// Waits until Redis at `addr` answers `PING` with `PONG`.
pub async fn redis(service: &Handle, addr: SocketAddr) -> Result<(), DevError> {
    wait(service, || async move {
        tokio::task::spawn_blocking(move || ping(addr))
            .await
            .map_err(|e| e.to_string())?
    })
    .await
}

/// Polls `probe` every 100 ms until it succeeds, the service exits, or the
/// [`DEADLINE`] passes.
async fn wait<F, Fut>(service: &Handle, probe: F) -> Result<(), DevError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    loop {
        if let Some(status) = service.exited() {
            return Err(DevError::ServiceExited {
                service: service.name,
                status: status.map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
                tail: tail(service),
            });
        }
        let last = match probe().await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if started.elapsed() > DEADLINE {
            return Err(DevError::NotReady {
                service: service.name,
                waited: started.elapsed(),
                last,
                tail: tail(service),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tail(service: &Handle) -> String {
    let lines = service.recent_lines();
    lines[lines.len().saturating_sub(TAIL)..].join("\n")
}

/// One `PING` over a fresh connection.
fn ping(addr: SocketAddr) -> Result<(), String> {
    let timeout = Duration::from_secs(1);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream.write_all(b"PING\r\n").map_err(|e| e.to_string())?;
    let mut reply = [0_u8; 64];
    let n = stream.read(&mut reply).map_err(|e| e.to_string())?;
    let reply = String::from_utf8_lossy(&reply[..n]);
    if reply.starts_with("+PONG") {
        Ok(())
    } else {
        Err(format!("PING answered {:?}", reply.trim_end()))
    }
}
