//! A stream of committed events: the backlog from the store, then live ones.
//!
//! Live events come from this process's writer over a broadcast channel, subscribed
//! *before* the backlog is read, so an event committed while the backlog is read is in one
//! or the other (and deduplicated by seq). The store stays the source of truth: whenever
//! the broadcast skips a seq (another replica committed it), lags behind, or stays quiet for
//! [`POLL_INTERVAL`], the stream reads the store again from its last seq.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::broadcast::{self, error::RecvError};

use super::{AuditError, AuditEvent, EventQuery, store};
use crate::store::ControlStore;

/// How long a follower waits on the broadcast before asking the store, so that events
/// committed by other replicas arrive within about this delay.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Events read from the store per round trip while catching up.
const CATCH_UP_PAGE: usize = 500;

struct Follower {
    store: ControlStore,
    /// `None` once this process's writer has stopped: the store alone is then polled.
    live: Option<broadcast::Receiver<Arc<AuditEvent>>>,
    /// Seq of the last event handed out.
    last: i64,
    /// Events to hand out, with their stored seq (what the follower pages by).
    ready: VecDeque<(i64, AuditEvent)>,
    catch_up: bool,
    failed: bool,
}

pub(crate) fn follow(
    store: ControlStore,
    live: broadcast::Receiver<Arc<AuditEvent>>,
    after: i64,
) -> impl Stream<Item = Result<AuditEvent, AuditError>> + Send + 'static {
    let follower = Follower {
        store,
        live: Some(live),
        last: after,
        ready: VecDeque::new(),
        catch_up: true,
        failed: false,
    };
    futures::stream::unfold(follower, |mut f| async move {
        let item = f.next().await?;
        Some((item, f))
    })
}

impl Follower {
    /// The next event, an error (after which the stream ends), or `None` at the end.
    async fn next(&mut self) -> Option<Result<AuditEvent, AuditError>> {
        if self.failed {
            return None;
        }
        loop {
            if let Some((seq, event)) = self.ready.pop_front() {
                self.last = seq;
                return Some(Ok(event));
            }
            if self.catch_up {
                if let Err(error) = self.read_store().await {
                    self.failed = true;
                    return Some(Err(error));
                }
                continue;
            }
            self.wait_live().await;
        }
    }

    /// Queues the next page of committed events after `last`; leaves catch-up mode once a
    /// page comes back short (the follower has reached the head).
    async fn read_store(&mut self) -> Result<(), AuditError> {
        let rows = store::select_events(
            &self.store,
            self.last,
            &EventQuery::default(),
            CATCH_UP_PAGE,
        )
        .await
        .map_err(|e| AuditError::Store(e.to_string()))?;
        self.catch_up = rows.len() == CATCH_UP_PAGE;
        for row in rows {
            let event = row.event.map_err(|detail| AuditError::Corrupt {
                seq: row.seq,
                detail,
            })?;
            self.ready.push_back((row.seq, event));
        }
        Ok(())
    }

    /// Waits for the next live event; switches to catch-up on a gap, a lag, or silence.
    async fn wait_live(&mut self) {
        let Some(live) = &mut self.live else {
            tokio::time::sleep(POLL_INTERVAL).await;
            self.catch_up = true;
            return;
        };
        match tokio::time::timeout(POLL_INTERVAL, live.recv()).await {
            Err(_elapsed) => self.catch_up = true,
            Ok(Ok(event)) if event.seq <= self.last => {}
            Ok(Ok(event)) if event.seq == self.last + 1 => {
                self.ready
                    .push_back((event.seq, Arc::unwrap_or_clone(event)));
            }
            // A gap (another replica's events) or missed messages: the store has them.
            Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) => self.catch_up = true,
            Ok(Err(RecvError::Closed)) => {
                self.live = None;
                self.catch_up = true;
            }
        }
    }
}
