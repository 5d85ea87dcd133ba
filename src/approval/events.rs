//! Telling others that an approval changed: this process's subscribers (SSE, gRPC Watch,
//! long-polls), other replicas through Redis pub/sub, and webhook receivers.
//!
//! Nothing here blocks the request that made the change: the in-process broadcast never
//! waits, and Redis publishing and webhook delivery run in background tasks fed through
//! bounded queues; when a queue is full the notification is dropped and logged rather
//! than slowing requests down. The store stays the truth: a replica that misses a message
//! still sees the change on its next read, and its long-polls re-read the store on a timer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::store::ControlStore;

use super::error::ApprovalError;
use super::model::{Approval, ApprovalEvent, EventKind};
use super::store;

/// The Redis channel replicas share: this prefix and the control store's id, so replicas
/// of one deployment hear each other and deployments sharing a Redis do not.
pub const REDIS_CHANNEL_PREFIX: &str = "gatehouse:approvals:";

/// The channel for the replicas sharing `store_id`.
pub fn redis_channel(store_id: &str) -> String {
    format!("{REDIS_CHANNEL_PREFIX}{store_id}")
}

/// Events buffered per local subscriber before a slow one starts missing some (it then
/// sees `RecvError::Lagged` and should re-read what it shows).
const LOCAL_CAPACITY: usize = 1024;
/// Notifications waiting for Redis or webhook delivery before new ones are dropped.
const OUTBOUND_CAPACITY: usize = 1024;
/// How long connecting to Redis may take before it counts as down.
const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before re-subscribing after the Redis connection dropped, doubled per failure.
const RESUBSCRIBE_BASE: Duration = Duration::from_millis(200);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(10);

/// What replicas tell each other: only which approval changed and how. Receivers read the
/// approval from the shared store, so statements and parameters never pass through Redis
/// and a receiver never trusts a message for more than "look again".
#[derive(serde::Serialize, serde::Deserialize)]
struct Message {
    /// The sending `Approvals` instance, so it can ignore its own messages.
    origin: Uuid,
    id: Uuid,
    kind: String,
}

/// Hands each change to every audience. Cheap to clone: background tasks hold one.
#[derive(Clone)]
pub(super) struct Emitter {
    origin: Uuid,
    local: broadcast::Sender<ApprovalEvent>,
    redis: Option<mpsc::Sender<String>>,
    webhooks: Option<mpsc::Sender<ApprovalEvent>>,
}

impl Emitter {
    pub(super) fn new(origin: Uuid) -> Emitter {
        Emitter {
            origin,
            local: broadcast::channel(LOCAL_CAPACITY).0,
            redis: None,
            webhooks: None,
        }
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<ApprovalEvent> {
        self.local.subscribe()
    }

    pub(super) fn with_webhooks(&mut self, queue: mpsc::Sender<ApprovalEvent>) {
        self.webhooks = Some(queue);
    }

    /// Announces a change this process made.
    pub(super) fn emit(&self, kind: EventKind, approval: Approval) -> Arc<Approval> {
        let approval = Arc::new(approval);
        let event = ApprovalEvent {
            kind,
            approval: Arc::clone(&approval),
            local: true,
        };
        if let Some(redis) = &self.redis {
            let message = Message {
                origin: self.origin,
                id: approval.id,
                kind: kind.as_str().to_owned(),
            };
            match serde_json::to_string(&message) {
                Ok(text) => {
                    if redis.try_send(text).is_err() {
                        tracing::warn!(approval.id = %approval.id, event = kind.as_str(),
                            "approval event not published to Redis: the queue is full");
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot encode an approval event"),
            }
        }
        if let Some(webhooks) = &self.webhooks
            && kind.notifies_webhooks()
            && webhooks.try_send(event.clone()).is_err()
        {
            tracing::warn!(approval.id = %approval.id, event = kind.as_str(),
                "approval webhook dropped: the delivery queue is full");
        }
        // No receivers is normal: nobody is watching.
        let _ = self.local.send(event);
        approval
    }
}

/// The Redis side of [`Emitter`]: a publisher task and a subscriber task that relays other
/// replicas' changes to local subscribers.
pub(super) struct RedisLink {
    /// Whether the subscription is up. While it is not, long-polls re-read the store often
    /// instead of trusting Redis to wake them.
    pub(super) live: Arc<AtomicBool>,
    pub(super) tasks: Vec<JoinHandle<()>>,
}

/// Connects to Redis, subscribes to this store's channel ([`redis_channel`]) and starts
/// both tasks. Fails when
/// Redis cannot be reached now (a configured but absent Redis is an operator error worth
/// refusing to start over); later outages are retried in the background.
pub(super) async fn connect_redis(
    url: &str,
    store: ControlStore,
    emitter: &mut Emitter,
) -> Result<RedisLink, ApprovalError> {
    let client = redis::Client::open(url)
        .map_err(|e| ApprovalError::Events(format!("invalid [redis] url: {e}")))?;
    let store_id = store
        .store_id()
        .await
        .map_err(|e| ApprovalError::Events(format!("cannot read the control store's id: {e}")))?;
    let channel: Arc<str> = redis_channel(&store_id).into();
    let publisher = timed(client.get_multiplexed_async_connection()).await?;
    let subscriber = subscribe(&client, &channel).await?;

    let (queue, outgoing) = mpsc::channel(OUTBOUND_CAPACITY);
    emitter.redis = Some(queue);
    let live = Arc::new(AtomicBool::new(true));
    let relay = Relay {
        origin: emitter.origin,
        store,
        local: emitter.local.clone(),
        live: Arc::clone(&live),
        channel: Arc::clone(&channel),
    };
    let tasks = vec![
        tokio::spawn(publish(client.clone(), channel, publisher, outgoing)),
        tokio::spawn(relay.run(client, subscriber)),
    ];
    Ok(RedisLink { live, tasks })
}

async fn timed<T>(
    connect: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, ApprovalError> {
    match tokio::time::timeout(REDIS_CONNECT_TIMEOUT, connect).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(ApprovalError::Events(format!("cannot reach Redis: {e}"))),
        Err(_) => Err(ApprovalError::Events(format!(
            "cannot reach Redis within {} s",
            REDIS_CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> Result<redis::aio::PubSub, ApprovalError> {
    let mut pubsub = timed(client.get_async_pubsub()).await?;
    timed(pubsub.subscribe(channel)).await?;
    Ok(pubsub)
}

/// Publishes queued messages in order. A failed publish reconnects once and retries;
/// if that fails too the message is dropped (logged): other replicas still find the
/// change on their next read of the store.
async fn publish(
    client: redis::Client,
    channel: Arc<str>,
    connection: redis::aio::MultiplexedConnection,
    mut outgoing: mpsc::Receiver<String>,
) {
    let mut connection = Some(connection);
    while let Some(message) = outgoing.recv().await {
        for attempt in 0..2 {
            if connection.is_none() {
                connection = timed(client.get_multiplexed_async_connection()).await.ok();
            }
            let Some(conn) = connection.as_mut() else {
                continue;
            };
            let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                .arg(&*channel)
                .arg(&message)
                .query_async(conn)
                .await;
            match sent {
                Ok(_) => break,
                Err(e) => {
                    connection = None;
                    if attempt == 1 {
                        tracing::warn!(error = %e, "approval event not published to Redis");
                    }
                }
            }
        }
    }
}

/// Relays other replicas' messages to this process's subscribers.
struct Relay {
    origin: Uuid,
    store: ControlStore,
    local: broadcast::Sender<ApprovalEvent>,
    live: Arc<AtomicBool>,
    channel: Arc<str>,
}

impl Relay {
    async fn run(self, client: redis::Client, first: redis::aio::PubSub) {
        let mut pubsub = Some(first);
        let mut pause = RESUBSCRIBE_BASE;
        loop {
            let Some(mut current) = pubsub.take() else {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RESUBSCRIBE_MAX);
                match subscribe(&client, &self.channel).await {
                    Ok(resubscribed) => {
                        tracing::info!("approval events: Redis subscription restored");
                        pubsub = Some(resubscribed);
                    }
                    Err(e) => tracing::warn!(error = %e, "approval events: cannot resubscribe"),
                }
                continue;
            };
            self.live.store(true, Ordering::Release);
            pause = RESUBSCRIBE_BASE;
            let mut messages = current.on_message();
            while let Some(message) = messages.next().await {
                self.relay(message.get_payload_bytes()).await;
            }
            self.live.store(false, Ordering::Release);
            tracing::warn!(
                "approval events: Redis subscription lost; re-reading the store until it is back"
            );
        }
    }

    async fn relay(&self, payload: &[u8]) {
        let message: Message = match serde_json::from_slice(payload) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(error = %e, "approval events: ignoring a malformed Redis message");
                return;
            }
        };
        if message.origin == self.origin {
            return;
        }
        let Some(kind) = EventKind::parse(&message.kind) else {
            tracing::warn!(kind = %message.kind, "approval events: ignoring an unknown event kind");
            return;
        };
        match store::load(&self.store, message.id).await {
            Ok(Some(approval)) => {
                let _ = self.local.send(ApprovalEvent {
                    kind,
                    approval: Arc::new(approval),
                    local: false,
                });
            }
            // Another deployment sharing the Redis but not the store.
            Ok(None) => {
                tracing::debug!(approval.id = %message.id, "approval events: unknown approval")
            }
            Err(e) => {
                tracing::warn!(approval.id = %message.id, error = %e, "approval events: cannot read a relayed approval")
            }
        }
    }
}
