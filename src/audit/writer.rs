//! The single writer task: group commit of queued events.
//!
//! Callers never touch the store to append. They queue an event with a oneshot for the
//! answer; the writer takes everything waiting (up to `max_batch`), commits it in one
//! transaction and answers each caller. One fsync then covers a whole batch, which is where
//! the throughput comes from, and no caller holds a lock across its request.
//!
//! A batch that misses [`COMMIT_DEADLINE`] is reported as failed even though its COMMIT
//! may still land: then events exist for requests that were refused, the safe direction
//! (the chain stays whole, since every batch reads the head from the table).
//!
//! When a batch fails, the store is presumed down: every caller in the batch gets
//! `Unavailable`, new appends are refused at once (instead of each waiting out a timeout),
//! and the writer probes the store until it answers again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot};
use uuid::Uuid;

use super::event::NewEvent;
use super::{Appended, AuditError, AuditEvent, Unavailable, store};
use crate::store::ControlStore;

/// Longest a batch may take from BEGIN to COMMIT before its callers are told the audit
/// trail is unavailable. Past this the request they serve would time out anyway.
pub(crate) const COMMIT_DEADLINE: Duration = Duration::from_secs(5);

/// How often the writer asks a failed store whether it is back.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// An event waiting for the writer, with the caller's answer channel.
pub(crate) struct Pending {
    pub event: NewEvent,
    pub reply: oneshot::Sender<Result<Appended, AuditError>>,
}

/// What the writer reports, read by [`super::AuditLog::stats`] and the metrics module.
/// Plain atomics: readers want a recent value, not a consistent snapshot.
#[derive(Default)]
pub(crate) struct WriterStats {
    /// Cleared when a batch fails, set again when a probe succeeds.
    pub store_down: AtomicBool,
    pub committed_events: AtomicU64,
    pub committed_batches: AtomicU64,
    pub failed_batches: AtomicU64,
    pub last_batch_size: AtomicUsize,
    pub last_commit_micros: AtomicU64,
    /// Highest seq this process has committed (or found at start): the chain can only grow
    /// past it, so the verifier flags a head below it.
    pub highest_seq: AtomicI64,
}

pub(crate) struct Writer {
    pub store: ControlStore,
    pub queue: mpsc::Receiver<Pending>,
    pub live: broadcast::Sender<Arc<AuditEvent>>,
    pub stats: Arc<WriterStats>,
    pub max_batch: usize,
}

impl Writer {
    /// Runs until every [`super::AuditLog`] handle is gone and the queue is drained.
    pub(crate) async fn run(mut self) {
        let mut batch = Vec::with_capacity(self.max_batch);
        loop {
            if self.stats.store_down.load(Ordering::Acquire) {
                if !self.wait_for_store().await {
                    return;
                }
                continue;
            }
            if self.queue.recv_many(&mut batch, self.max_batch).await == 0 {
                return;
            }
            // The callers just answered are about to append their next events; one yield
            // lets them, so the batch takes them instead of leaving with the first alone
            // (which would halve the batch size under steady load).
            if batch.len() < self.max_batch {
                tokio::task::yield_now().await;
                while batch.len() < self.max_batch {
                    match self.queue.try_recv() {
                        Ok(pending) => batch.push(pending),
                        Err(_) => break,
                    }
                }
            }
            crate::telemetry::metrics().audit_queue_depth(self.queue.len());
            self.commit(&mut batch).await;
        }
    }

    async fn commit(&self, batch: &mut Vec<Pending>) {
        let started = Instant::now();
        let staged: Vec<(Uuid, &NewEvent)> =
            batch.iter().map(|p| (Uuid::now_v7(), &p.event)).collect();
        let result = tokio::time::timeout(COMMIT_DEADLINE, store::commit(&self.store, &staged))
            .await
            .map_err(|_| format!("no commit within {COMMIT_DEADLINE:?}"))
            .and_then(|r| r.map_err(|e| e.to_string()));
        let ids: Vec<Uuid> = staged.into_iter().map(|(id, _)| id).collect();
        let sealed = match result {
            Ok(sealed) => sealed,
            Err(error) => {
                tracing::error!(
                    audit.batch_size = batch.len(),
                    error = %error,
                    "audit batch not committed; refusing audited requests until the store answers"
                );
                self.stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                self.stats.store_down.store(true, Ordering::Release);
                for pending in batch.drain(..) {
                    let _ = pending
                        .reply
                        .send(Err(AuditError::Unavailable(Unavailable::CommitFailed)));
                }
                return;
            }
        };
        let elapsed = started.elapsed();
        let size = batch.len();
        crate::telemetry::metrics().audit_commit(elapsed, size);
        self.stats.last_commit_micros.store(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.stats.last_batch_size.store(size, Ordering::Relaxed);
        self.stats
            .committed_events
            .fetch_add(size as u64, Ordering::Relaxed);
        self.stats.committed_batches.fetch_add(1, Ordering::Relaxed);
        if let Some(last) = sealed.last() {
            self.stats.highest_seq.fetch_max(last.seq, Ordering::AcqRel);
        }
        let followed = self.live.receiver_count() > 0;
        for ((pending, row), id) in batch.drain(..).zip(sealed).zip(ids) {
            let _ = pending.reply.send(Ok(Appended {
                id,
                seq: row.seq,
                time: row.time,
                hash: row.hash.clone(),
            }));
            if followed {
                let _ = self.live.send(Arc::new(AuditEvent {
                    seq: row.seq,
                    id,
                    time: row.time,
                    prev_hash: row.prev_hash,
                    hash: row.hash,
                    event: pending.event,
                }));
            }
        }
    }

    /// While the store is down: refuse whatever still reaches the queue, probe the store
    /// every [`PROBE_INTERVAL`]. Returns false when the queue has closed.
    async fn wait_for_store(&mut self) -> bool {
        let probe = tokio::time::sleep(PROBE_INTERVAL);
        tokio::pin!(probe);
        loop {
            tokio::select! {
                pending = self.queue.recv() => match pending {
                    Some(pending) => {
                        let _ = pending
                            .reply
                            .send(Err(AuditError::Unavailable(Unavailable::StoreDown)));
                    }
                    None => return false,
                },
                () = &mut probe => {
                    let answered =
                        tokio::time::timeout(COMMIT_DEADLINE, store::head(&self.store)).await;
                    if let Ok(Ok(head)) = answered {
                        if let Some((seq, _)) = head {
                            self.stats.highest_seq.fetch_max(seq, Ordering::AcqRel);
                        }
                        tracing::info!("audit store answers again; accepting audited requests");
                        self.stats.store_down.store(false, Ordering::Release);
                        return true;
                    }
                    probe.as_mut().reset(tokio::time::Instant::now() + PROBE_INTERVAL);
                }
            }
        }
    }
}
