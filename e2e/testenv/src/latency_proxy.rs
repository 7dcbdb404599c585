//! [`LatencyProxy`]: a **fault injector** for tests, not a mock. A TCP proxy
//! on loopback that forwards every byte between a client and a real server
//! (Redis) unchanged, and can hold the server's answers back.
//!
//! ```text
//!  client ──requests, at once──▶ LatencyProxy ──▶ real server (applies them)
//!  client ◀──answers, held `reply_delay`── LatencyProxy ◀── real server
//! ```
//!
//! With a reply delay longer than the client's timeout, the client gives up
//! on a write the server has already applied — the exact case a retry must
//! survive without writing twice. Requests are never delayed, so what the
//! server sees is what the client sent, when it sent it; answers keep their
//! order (each is held until its own arrival time plus the delay in force
//! when it arrived).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::Error;

/// A delaying TCP proxy to `upstream`; stops (and cuts every connection)
/// when dropped.
#[derive(Debug)]
pub struct LatencyProxy {
    addr: SocketAddr,
    delay_ms: Arc<AtomicU64>,
    held: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl LatencyProxy {
    /// Listens on a free loopback port and forwards each connection to
    /// `upstream` (e.g. `127.0.0.1:<redis port>`), with no delay yet.
    pub async fn start(upstream: SocketAddr) -> Result<Self, Error> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(Error::NoFreePort)?;
        let addr = listener.local_addr().map_err(Error::NoFreePort)?;
        let delay_ms = Arc::new(AtomicU64::new(0));
        let held = Arc::new(AtomicU64::new(0));
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            delay_ms.clone(),
            held.clone(),
        ));
        Ok(Self {
            addr,
            delay_ms,
            held,
            accept,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://<addr>/`, for a Redis upstream.
    pub fn redis_url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Holds every answer that arrives from now on for `delay`
    /// (`Duration::ZERO`: forward at once).
    pub fn set_reply_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// How many answer chunks were held back so far.
    pub fn held_replies(&self) -> u64 {
        self.held.load(Ordering::SeqCst)
    }
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        // The accept task owns the connection tasks: aborting it drops them.
        self.accept.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    delay_ms: Arc<AtomicU64>,
    held: Arc<AtomicU64>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                connections.spawn(proxy(client, upstream, delay_ms.clone(), held.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn proxy(
    client: TcpStream,
    upstream: SocketAddr,
    delay_ms: Arc<AtomicU64>,
    held: Arc<AtomicU64>,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    };
    // The reader stamps each answer on arrival; the writer holds it until
    // its own deadline, so delays do not add up behind each other.
    let (held_tx, mut held_rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let read_answers = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let delay = Duration::from_millis(delay_ms.load(Ordering::SeqCst));
            if !delay.is_zero() {
                held.fetch_add(1, Ordering::SeqCst);
            }
            if held_tx
                .send((Instant::now() + delay, buffer[..n].to_vec()))
                .is_err()
            {
                break;
            }
        }
    };
    let write_answers = async move {
        while let Some((deadline, bytes)) = held_rx.recv().await {
            tokio::time::sleep_until(deadline).await;
            if client_write.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    let answers = async move {
        tokio::join!(read_answers, write_answers);
    };
    tokio::join!(requests, answers);
}
