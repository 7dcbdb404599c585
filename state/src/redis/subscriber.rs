//! The invalidation subscription: one task per [`RedisState`](crate::RedisState),
//! started by the first `subscribe`, forwarding `agentauth:invalidations`
//! into the process's broadcast channel.
//!
//! ```text
//!  connect + SUBSCRIBE ──▶ connected ──▶ messages ──▶ broadcast::Sender<Invalidation>
//!        ▲                    │ stream ends, PING fails or times out
//!        │ backoff 50 ms → 1 s ▼
//!        └──────────── disconnected: send flush_all (and again once back)
//! ```
//!
//! Pub/sub delivers at most once: what is published while the connection is
//! down is gone. So when the connection drops, subscribers are told to drop
//! their caches, and told again right after the subscription is back (they
//! may have cached a grant read in between, before an invalidation that was
//! then lost). A message that cannot be decoded is treated the same way.
//!
//! On a Redis Cluster every node forwards every `PUBLISH` to every other
//! node, so one subscription to any node hears them all. The task
//! subscribes to the configured nodes (the seeds) in turn: after a failed
//! attempt or a lost subscription it tries the next one, so a dead node is
//! left for a live one after one backoff step.

use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{PubSubSink, PubSubStream};
use ::redis::{Client, Msg, RedisResult, Value};
use futures::StreamExt as _;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::{Clock, Invalidation, keys};

const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The running subscription task; aborted on drop.
pub(super) struct Subscriber {
    task: JoinHandle<()>,
    connected: watch::Receiver<bool>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the task needs, owned.
struct Task {
    /// The nodes to subscribe to, tried in turn; never empty.
    nodes: Vec<Client>,
    /// The index (modulo `nodes.len()`) of the node to try next.
    next: usize,
    sender: broadcast::Sender<Invalidation>,
    connected: watch::Sender<bool>,
    clock: Arc<dyn Clock>,
    heartbeat: Duration,
    timeout: Duration,
}

impl Subscriber {
    /// Starts the task (inside the current tokio runtime).
    pub(super) fn spawn(
        nodes: Vec<Client>,
        sender: broadcast::Sender<Invalidation>,
        clock: Arc<dyn Clock>,
        heartbeat: Duration,
        timeout: Duration,
    ) -> Self {
        let (connected_tx, connected) = watch::channel(false);
        let task = Task {
            nodes,
            next: 0,
            sender,
            connected: connected_tx,
            clock,
            heartbeat,
            timeout,
        };
        Self {
            task: tokio::spawn(task.run()),
            connected,
        }
    }

    /// Whether the subscription is live, as it changes.
    pub(super) fn connected(&self) -> watch::Receiver<bool> {
        self.connected.clone()
    }
}

impl Task {
    async fn run(mut self) {
        let mut backoff = MIN_BACKOFF;
        let mut was_connected = false;
        let mut failures = 0_u32;
        loop {
            match self.connect().await {
                Ok((sink, stream)) => {
                    if was_connected {
                        self.flush();
                    }
                    was_connected = true;
                    failures = 0;
                    backoff = MIN_BACKOFF;
                    self.connected.send_replace(true);
                    let why = self.listen(sink, stream).await;
                    self.connected.send_replace(false);
                    tracing::warn!(
                        reason = %why,
                        "lost the invalidation subscription; subscribers drop their caches"
                    );
                    self.flush();
                    self.next = self.next.wrapping_add(1);
                }
                Err(error) => {
                    self.next = self.next.wrapping_add(1);
                    failures += 1;
                    // The first failure of a streak, then now and then.
                    if failures == 1 || failures.is_multiple_of(60) {
                        tracing::warn!(%error, failures, "cannot subscribe to invalidations; retrying");
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn connect(&self) -> Result<(PubSubSink, PubSubStream), String> {
        let Some(client) = self.nodes.get(self.next % self.nodes.len().max(1)) else {
            return Err("no Redis node to subscribe to".to_owned());
        };
        let attempt = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(keys::INVALIDATIONS).await?;
            RedisResult::Ok(pubsub.split())
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }

    /// Forwards messages until the connection is lost; returns why.
    async fn listen(&self, mut sink: PubSubSink, mut stream: PubSubStream) -> String {
        let mut heartbeat = tokio::time::interval(self.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await; // the first tick is immediate
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => self.forward(&message),
                    None => return "the connection closed".to_owned(),
                },
                _ = heartbeat.tick() => {
                    match tokio::time::timeout(self.timeout, sink.ping::<Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return format!("PING failed: {e}"),
                        Err(_) => return format!("PING not answered within {:?}", self.timeout),
                    }
                }
            }
        }
    }

    fn forward(&self, message: &Msg) {
        match serde_json::from_slice::<Invalidation>(message.get_payload_bytes()) {
            Ok(invalidation) => {
                // Err only means nobody is subscribed right now.
                let _ = self.sender.send(invalidation);
            }
            Err(error) => {
                tracing::warn!(%error, "undecodable invalidation; subscribers drop their caches");
                self.flush();
            }
        }
    }

    fn flush(&self) {
        let _ = self
            .sender
            .send(Invalidation::flush_all(self.clock.now_ms()));
    }
}
