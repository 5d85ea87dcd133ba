//! The audit trail: every request as a tamper-evident event.
//!
//! - `event`: what an event says ([`NewEvent`], [`AuditEvent`]) and the canonical encoding
//!   its hash covers (documented there, pinned by a test).
//! - `writer`: the one task per process that appends, by group commit.
//! - `store`: the `audit_events` table on PostgreSQL or SQLite.
//! - [`verify`]: walks the hash chain and names the first tampered link.
//! - `follow`: a stream of committed events for SIEMs.
//!
//! Events form one SHA-256 chain (`prev_hash` → `hash`) with gap-free `seq` numbers, even
//! when several replicas share one PostgreSQL store: each batch is appended under a
//! store-side lock after reading the head from the table. The gateway writes a query's
//! decision *before* running it and refuses the request when [`AuditLog::append`] fails,
//! so nothing runs unaudited.

mod event;
mod follow;
mod store;
mod verify;
mod writer;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};
use uuid::Uuid;

pub use event::{
    AuditEvent, ClientInfo, EventCompletion, EventDecision, EventIntent, EventKind, EventPrincipal,
    GENESIS_HASH, NewEvent, UnknownKind,
};
pub use verify::{BrokenLink, Problem, Verification};

use crate::config::AuditConfig;
use crate::store::ControlStore;
use writer::{Pending, Writer, WriterStats};

/// Most events one [`AuditLog::list`] page returns.
pub const MAX_PAGE: usize = 1_000;
/// Page size when a query names none.
pub const DEFAULT_PAGE: usize = 100;

/// Live events buffered per follower before it lags and falls back to the store.
const LIVE_BUFFER: usize = 4_096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// The event was not recorded. The caller must refuse the request it belongs to
    /// (503 `audit_unavailable`): nothing runs unaudited.
    #[error("audit trail unavailable: {0}")]
    Unavailable(Unavailable),
    #[error("invalid audit cursor `{0}`")]
    InvalidCursor(String),
    #[error("audit store query failed: {0}")]
    Store(String),
    /// A stored event cannot be read back; `verify` will say more.
    #[error("stored audit event at seq {seq} cannot be read: {detail}")]
    Corrupt { seq: i64, detail: String },
}

/// Why an append was refused. The store's own error is logged by the writer, once per
/// failed batch, not carried to callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// More events are waiting than `audit.queue_capacity`.
    QueueFull,
    /// The batch holding this event failed to commit; none of it was stored.
    CommitFailed,
    /// A recent batch failed and the store has not answered since.
    StoreDown,
    /// The writer task is gone (shutting down).
    Stopped,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unavailable::QueueFull => "too many events waiting for the writer",
            Unavailable::CommitFailed => "the event's batch could not be committed",
            Unavailable::StoreDown => "the audit store is not answering",
            Unavailable::Stopped => "the audit writer has stopped",
        })
    }
}

/// A position in the chain: listings and streams resume *after* it. Its text form is
/// opaque to clients (today `e` and a seq number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor(i64);

impl Cursor {
    /// Before the first event.
    pub const START: Cursor = Cursor(0);

    pub(crate) fn after_seq(seq: i64) -> Cursor {
        Cursor(seq.max(0))
    }

    /// Parses the text form of a cursor.
    pub fn parse(text: &str) -> Result<Cursor, AuditError> {
        let invalid = || AuditError::InvalidCursor(text.chars().take(64).collect());
        let digits = text.strip_prefix('e').ok_or_else(invalid)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        digits.parse::<i64>().map(Cursor).map_err(|_| invalid())
    }

    fn seq(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "e{}", self.0)
    }
}

impl FromStr for Cursor {
    type Err = AuditError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Cursor::parse(text)
    }
}

impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Cursor::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Which events to list. Every filter is optional and they combine with AND.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Start after this position; `None` starts at the first event.
    pub after: Option<Cursor>,
    /// Events per page, default [`DEFAULT_PAGE`], at most [`MAX_PAGE`].
    pub limit: Option<usize>,
    /// Principal `sub`.
    pub principal: Option<String>,
    pub datasource: Option<String>,
    pub environment: Option<String>,
    /// Decision effect: `allow`, `deny` or `approval_required`.
    pub effect: Option<String>,
    pub kind: Option<EventKind>,
    /// A query and its completion share one.
    pub request_id: Option<Uuid>,
    /// Events at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Events before this time.
    pub to: Option<DateTime<Utc>>,
}

/// One page of a listing.
#[derive(Debug, Clone, Serialize)]
pub struct EventPage {
    pub events: Vec<AuditEvent>,
    /// Where the next page starts, when more events matched than this page holds. Once it
    /// is `None`, resume later from the last event's [`AuditEvent::cursor`].
    pub next_cursor: Option<Cursor>,
}

impl EventPage {
    /// Where a poller continues after this page, always: the next page when there is one,
    /// else right after the last event, else where this page started (`after`, or the
    /// beginning). APIs hand it out so a client never loses its place.
    pub fn resume_cursor(&self, after: Option<Cursor>) -> Cursor {
        self.next_cursor
            .or_else(|| self.events.last().map(AuditEvent::cursor))
            .or(after)
            .unwrap_or(Cursor::START)
    }
}

/// An event durably committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Appended {
    pub id: Uuid,
    pub seq: i64,
    pub time: DateTime<Utc>,
    pub hash: String,
}

/// The writer's recent figures, for metrics and health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditStats {
    pub queue_depth: usize,
    pub committed_events: u64,
    pub committed_batches: u64,
    pub failed_batches: u64,
    pub last_batch_size: usize,
    pub last_commit_latency: Duration,
    /// False between a failed batch and the store answering again.
    pub store_available: bool,
}

/// Handle to the audit trail; cheap to clone. The writer task stops once every handle is
/// dropped and the queue is drained.
#[derive(Clone)]
pub struct AuditLog {
    shared: Arc<Shared>,
}

struct Shared {
    store: ControlStore,
    queue: mpsc::Sender<Pending>,
    live: broadcast::Sender<Arc<AuditEvent>>,
    stats: Arc<WriterStats>,
}

impl AuditLog {
    /// Reads the chain head (which also proves the table is there) and spawns the writer.
    /// Start one per process: a second would still keep the chain linear, through the
    /// store lock, but would split the batches.
    pub async fn start(store: ControlStore, config: &AuditConfig) -> Result<AuditLog, AuditError> {
        let head = tokio::time::timeout(writer::COMMIT_DEADLINE, store::head(&store))
            .await
            .map_err(|_| AuditError::Store("the control store did not answer".to_owned()))?
            .map_err(|e| AuditError::Store(e.to_string()))?;
        let stats = Arc::new(WriterStats::default());
        if let Some((seq, _)) = head {
            stats.highest_seq.store(seq, Ordering::Release);
        }
        let (queue, receiver) = mpsc::channel(config.queue_capacity.max(1));
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        let writer = Writer {
            store: store.clone(),
            queue: receiver,
            live: live.clone(),
            stats: Arc::clone(&stats),
            max_batch: config.max_batch.max(1),
        };
        tokio::spawn(writer.run());
        Ok(AuditLog {
            shared: Arc::new(Shared {
                store,
                queue,
                live,
                stats,
            }),
        })
    }

    /// Queues one event and resolves once it is durably committed with its batch. Fails at
    /// once, without queueing, when the queue is full or the store is known to be down.
    pub async fn append(&self, mut event: NewEvent) -> Result<Appended, AuditError> {
        let shared = &self.shared;
        if shared.stats.store_down.load(Ordering::Acquire) {
            return Err(AuditError::Unavailable(Unavailable::StoreDown));
        }
        event.scrub_nul();
        let (reply, answer) = oneshot::channel();
        shared
            .queue
            .try_send(Pending { event, reply })
            .map_err(|e| {
                AuditError::Unavailable(match e {
                    mpsc::error::TrySendError::Full(_) => Unavailable::QueueFull,
                    mpsc::error::TrySendError::Closed(_) => Unavailable::Stopped,
                })
            })?;
        answer
            .await
            .map_err(|_| AuditError::Unavailable(Unavailable::Stopped))?
    }

    /// Walks the whole chain (see [`verify()`]); also flags a chain whose head is below
    /// what this process has committed (events cut from the end).
    pub async fn verify(&self) -> Result<Verification, AuditError> {
        let committed = self.shared.stats.highest_seq.load(Ordering::Acquire);
        verify::verify_chain(&self.shared.store, committed).await
    }

    /// One page of events in seq order. Paging by cursor returns every matching event
    /// exactly once, also while events are being appended: seqs become visible in order.
    pub async fn list(&self, query: &EventQuery) -> Result<EventPage, AuditError> {
        list(&self.shared.store, query).await
    }

    /// Committed events after `after` (`None`: from the first), then live ones as they
    /// commit, in seq order without loss or duplicates, including events other replicas
    /// commit to the same store. A store error ends the stream after one `Err`; resume
    /// from the last event's cursor.
    pub fn follow(
        &self,
        after: Option<Cursor>,
    ) -> impl Stream<Item = Result<AuditEvent, AuditError>> + Send + 'static {
        let live = self.shared.live.subscribe();
        follow::follow(
            self.shared.store.clone(),
            live,
            after.unwrap_or(Cursor::START).seq(),
        )
    }

    /// Events waiting for the writer.
    pub fn queue_depth(&self) -> usize {
        let queue = &self.shared.queue;
        queue.max_capacity() - queue.capacity()
    }

    pub fn stats(&self) -> AuditStats {
        let stats = &self.shared.stats;
        AuditStats {
            queue_depth: self.queue_depth(),
            committed_events: stats.committed_events.load(Ordering::Relaxed),
            committed_batches: stats.committed_batches.load(Ordering::Relaxed),
            failed_batches: stats.failed_batches.load(Ordering::Relaxed),
            last_batch_size: stats.last_batch_size.load(Ordering::Relaxed),
            last_commit_latency: Duration::from_micros(
                stats.last_commit_micros.load(Ordering::Relaxed),
            ),
            store_available: !stats.store_down.load(Ordering::Acquire),
        }
    }
}

/// Walks the chain in `store` from the first event to the head and reports the first
/// broken link, for `gatehouse audit verify` (no writer needed).
pub async fn verify(store: &ControlStore) -> Result<Verification, AuditError> {
    verify::verify_chain(store, 0).await
}

/// One page of events from `store`; see [`AuditLog::list`].
pub async fn list(store: &ControlStore, query: &EventQuery) -> Result<EventPage, AuditError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let after = query.after.unwrap_or(Cursor::START).seq();
    // One more than asked says whether another page exists.
    let mut rows = store::select_events(store, after, query, limit + 1)
        .await
        .map_err(|e| AuditError::Store(e.to_string()))?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more {
        rows.last().map(|row| Cursor::after_seq(row.seq))
    } else {
        None
    };
    let events = rows
        .into_iter()
        .map(|row| {
            row.event.map_err(|detail| AuditError::Corrupt {
                seq: row.seq,
                detail,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EventPage {
        events,
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_junk() {
        let cursor = Cursor::after_seq(42);
        assert_eq!(cursor.to_string(), "e42");
        assert_eq!(Cursor::parse("e42"), Ok(cursor));
        assert_eq!(Cursor::parse("e0"), Ok(Cursor::START));
        for junk in [
            "",
            "e",
            "42",
            "e-1",
            "e+1",
            "e4 2",
            "x42",
            "e99999999999999999999",
        ] {
            assert!(
                matches!(Cursor::parse(junk), Err(AuditError::InvalidCursor(_))),
                "{junk:?} should be refused"
            );
        }
        let json = serde_json::to_string(&cursor).unwrap();
        assert_eq!(json, "\"e42\"");
        assert_eq!(serde_json::from_str::<Cursor>(&json).unwrap(), cursor);
    }
}
