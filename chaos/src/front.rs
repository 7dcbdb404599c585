//! [`Front`]: what a Kubernetes Service is to the operator's replicas. One
//! loopback address, the operators' common public URL (the tokens' issuer,
//! the JWKS, the agent and approval APIs), forwarding each connection to the
//! first replica that accepts it.
//!
//! ```text
//!  SDK, approver, verifiers ──▶ Front ──connect──▶ operator-a (refused? ──▶ operator-b)
//! ```
//!
//! Every replica serves the APIs (only the leader reconciles), so any one
//! that answers will do; a killed replica refuses connections at once and
//! the next takes the connection, as endpoints do after a pod dies.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::Error;

/// A failover TCP front; stops (cutting every connection) when dropped.
#[derive(Debug)]
pub struct Front {
    addr: SocketAddr,
    upstreams: Arc<Mutex<Vec<SocketAddr>>>,
    accept: JoinHandle<()>,
}

impl Front {
    /// Listens on a free loopback port; no upstream yet.
    pub async fn start() -> Result<Self, Error> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::io("bind the front", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("bind the front", e))?;
        let upstreams = Arc::new(Mutex::new(Vec::new()));
        let accept = tokio::spawn(accept_loop(listener, upstreams.clone()));
        Ok(Front {
            addr,
            upstreams,
            accept,
        })
    }

    /// Sets the replicas, in order of preference.
    pub fn set_upstreams(&self, upstreams: Vec<SocketAddr>) {
        if let Ok(mut current) = self.upstreams.lock() {
            *current = upstreams;
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, upstreams: Arc<Mutex<Vec<SocketAddr>>>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                let targets = upstreams.lock().map(|u| u.clone()).unwrap_or_default();
                connections.spawn(forward(client, targets));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn forward(mut client: TcpStream, targets: Vec<SocketAddr>) {
    for target in targets {
        if let Ok(mut server) = TcpStream::connect(target).await {
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            return;
        }
    }
}
