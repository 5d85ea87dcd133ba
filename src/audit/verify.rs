//! Walks the chain and names the first place where it was tampered with.
//!
//! Every row is checked on its own first (its hash against its body, its indexed columns
//! against its body), then against its predecessor (seq continues by one, `prev_hash`
//! equals the predecessor's hash). When the link is broken, where the row's `prev_hash`
//! *does* point tells what happened:
//!
//! | what the walk sees at seq `s`                                   | problem    |
//! |-----------------------------------------------------------------|------------|
//! | hash ≠ SHA-256(body), body unreadable, column ≠ body            | `edited`   |
//! | seq `s` is missing (gap), or `prev_hash` points to no event     | `deleted`  |
//! | seq repeats, or `prev_hash` points to an *earlier* event        | `inserted` |
//! | `prev_hash` points to a *later* event                           | `reordered`|
//!
//! A chain that is entirely rewritten from some event on, hashes recomputed, verifies: an
//! unkeyed hash chain cannot tell. Anchor `head_seq`/`head_hash` outside the store (a
//! ticket, a SIEM) to close that gap; [`super::AuditLog::verify`] also reports a head
//! below what this process itself committed.

use serde::Serialize;

use super::AuditError;
use super::event::{GENESIS_HASH, StoredBody, hash_body};
use super::store::{self, RawRow};
use crate::store::ControlStore;

/// Rows read per round trip while walking the chain.
const PAGE: i64 = 1_000;

/// What kind of tampering a broken link shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// The event's content no longer matches its hash, or its columns disagree with it.
    Edited,
    /// An event is missing: a seq gap, or a link to an event that is not there.
    Deleted,
    /// An event that does not belong: a repeated seq, or a chain continuing from an
    /// earlier event than its predecessor.
    Inserted,
    /// Events out of order: a link to an event that comes later.
    Reordered,
}

impl Problem {
    pub fn as_str(self) -> &'static str {
        match self {
            Problem::Edited => "edited",
            Problem::Deleted => "deleted",
            Problem::Inserted => "inserted",
            Problem::Reordered => "reordered",
        }
    }
}

/// The first place the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    /// Seq of the event at fault (for a deletion, the first seq after the missing ones).
    pub seq: i64,
    /// The stored id of that event, as text (it may be tampered with too); `None` when the
    /// fault is events missing at the end of the chain.
    pub id: Option<String>,
    pub problem: Problem,
    /// A sentence for the operator.
    pub detail: String,
}

/// The outcome of walking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub ok: bool,
    /// Events that passed every check before the walk ended or stopped.
    pub events_checked: u64,
    /// Seq and hash of the last event that passed: the head when `ok`, to be compared
    /// with a copy kept elsewhere.
    pub head_seq: i64,
    pub head_hash: String,
    pub first_broken: Option<BrokenLink>,
}

/// The previous event that passed.
struct Accepted {
    seq: i64,
    id: String,
    hash: String,
}

/// Walks the chain in `store` from its first event to its head. `committed_at_least` is a
/// seq known to have been committed before the walk started (by this process); a head
/// below it means events were removed from the end.
pub(crate) async fn verify_chain(
    store: &ControlStore,
    committed_at_least: i64,
) -> Result<Verification, AuditError> {
    let mut previous: Option<Accepted> = None;
    let mut checked = 0u64;
    let mut from = i64::MIN;
    loop {
        let rows = store::raw_rows(store, from, PAGE)
            .await
            .map_err(|e| AuditError::Store(e.to_string()))?;
        let fetched = rows.len();
        let mut progressed = false;
        for row in rows {
            // A page starts at the last seq already seen (`>=`): skip what was checked.
            if let Some(prev) = &previous
                && (row.seq, row.id.as_str()) <= (prev.seq, prev.id.as_str())
            {
                continue;
            }
            progressed = true;
            if let Some(broken) = check(store, &row, previous.as_ref()).await? {
                return Ok(finish(previous, checked, Some(broken)));
            }
            checked += 1;
            from = row.seq;
            previous = Some(Accepted {
                seq: row.seq,
                id: row.id,
                hash: row.hash,
            });
        }
        if !progressed || fetched < usize::try_from(PAGE).unwrap_or(usize::MAX) {
            break;
        }
    }
    let head = previous.as_ref().map_or(0, |p| p.seq);
    if head < committed_at_least {
        let broken = BrokenLink {
            seq: head + 1,
            id: None,
            problem: Problem::Deleted,
            detail: format!(
                "the chain ends at seq {head}, but this process committed up to seq \
                 {committed_at_least}: events were removed from the end"
            ),
        };
        return Ok(finish(previous, checked, Some(broken)));
    }
    Ok(finish(previous, checked, None))
}

fn finish(previous: Option<Accepted>, checked: u64, broken: Option<BrokenLink>) -> Verification {
    let (head_seq, head_hash) = previous.map_or((0, GENESIS_HASH.to_owned()), |p| (p.seq, p.hash));
    Verification {
        ok: broken.is_none(),
        events_checked: checked,
        head_seq,
        head_hash,
        first_broken: broken,
    }
}

/// Checks one row against itself and its predecessor; `None` when it passes.
async fn check(
    store: &ControlStore,
    row: &RawRow,
    previous: Option<&Accepted>,
) -> Result<Option<BrokenLink>, AuditError> {
    let s = row.seq;
    let broken = |seq: i64, id: Option<String>, problem: Problem, detail: String| {
        Ok(Some(BrokenLink {
            seq,
            id,
            problem,
            detail,
        }))
    };
    let here = Some(row.id.clone());

    // The row on its own.
    let body = match StoredBody::parse(&row.body) {
        Ok(body) => body,
        Err(e) => {
            return broken(
                s,
                here,
                Problem::Edited,
                format!("body is not an event: {e}"),
            );
        }
    };
    if hash_body(&row.body) != row.hash {
        return broken(
            s,
            here,
            Problem::Edited,
            "hash does not match the hash of the stored body".to_owned(),
        );
    }
    if let Some(column) = disagreeing_column(row, &body) {
        return broken(
            s,
            here,
            Problem::Edited,
            format!("column `{column}` disagrees with the hashed body"),
        );
    }

    // The row in the chain.
    let (expected, prev_hash) =
        previous.map_or((1, GENESIS_HASH), |p| (p.seq + 1, p.hash.as_str()));
    if s < expected {
        let detail = match previous {
            Some(p) if p.seq == s => format!("seq {s} appears twice"),
            _ => format!("seq {s} comes before the first event (seq 1)"),
        };
        return broken(s, here, Problem::Inserted, detail);
    }
    if s > expected {
        let missing = if s - 1 == expected {
            format!("seq {expected} is missing")
        } else {
            format!("seqs {expected} to {} are missing", s - 1)
        };
        return broken(s, here, Problem::Deleted, missing);
    }
    let claimed = body.seq;
    if body.prev_hash == prev_hash {
        if claimed == s {
            return Ok(None);
        }
        return broken(
            s,
            here,
            Problem::Edited,
            format!("column `seq` is {s} but the hashed body says {claimed}"),
        );
    }

    // Broken link: where does this row's prev_hash point?
    let owner = if body.prev_hash == GENESIS_HASH {
        Some(0)
    } else {
        store::seq_of_hash(store, &body.prev_hash)
            .await
            .map_err(|e| AuditError::Store(e.to_string()))?
    };
    match owner {
        Some(j) if j < s - 1 && claimed == j + 1 => {
            // This event was pushed down: the events between its true predecessor and it
            // were slipped in.
            let first_extra = j + 1;
            let id = match previous {
                Some(p) if p.seq == first_extra => Some(p.id.clone()),
                _ => store::id_at(store, first_extra)
                    .await
                    .map_err(|e| AuditError::Store(e.to_string()))?,
            };
            broken(
                first_extra,
                id,
                Problem::Inserted,
                format!(
                    "seq {first_extra} is not part of the chain: the event now at seq {s} \
                     was written as seq {claimed} and follows seq {j}"
                ),
            )
        }
        Some(j) if j < s - 1 => broken(
            s,
            here,
            Problem::Inserted,
            format!(
                "this event continues the chain from seq {j}, not from seq {}",
                s - 1
            ),
        ),
        Some(j) if j >= s => broken(
            s,
            here,
            Problem::Reordered,
            format!("this event (written as seq {claimed}) follows seq {j}, which comes after it"),
        ),
        _ => broken(
            s,
            here,
            Problem::Deleted,
            format!(
                "prev_hash does not match the hash of seq {}: the event it follows was \
                 removed or rewritten",
                s - 1
            ),
        ),
    }
}

/// The first indexed column (other than `seq`, which the chain checks place) that says
/// something other than the hashed body.
fn disagreeing_column(row: &RawRow, body: &StoredBody) -> Option<&'static str> {
    let event = &body.event;
    if row.id != body.id.to_string() {
        return Some("id");
    }
    if row.time != body.time {
        return Some("time");
    }
    if row.kind != event.kind.as_str() {
        return Some("kind");
    }
    if row.request_id != event.request_id.to_string() {
        return Some("request_id");
    }
    if row.principal_sub.as_deref() != event.principal_sub() {
        return Some("principal_sub");
    }
    if row.datasource != event.datasource {
        return Some("datasource");
    }
    if row.environment != event.environment {
        return Some("environment");
    }
    if row.effect.as_deref() != event.effect() {
        return Some("effect");
    }
    if row.prev_hash != body.prev_hash {
        return Some("prev_hash");
    }
    None
}
