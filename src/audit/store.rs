//! The `audit_events` table on either control store. Only this file writes SQL for it.
//!
//! Rows are append-only: the writer inserts, nothing here updates or deletes, and the
//! migrations add triggers that refuse UPDATE and DELETE (a guard against accidents, not
//! against the table's owner, which is what the hash chain is for).

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Postgres, QueryBuilder, Row as _, Sqlite};
use uuid::Uuid;

use super::event::{GENESIS_HASH, NewEvent, StoredBody, canonical_body, format_time, hash_body};
use super::{AuditEvent, EventQuery};
use crate::store::ControlStore;

/// Key of the PostgreSQL advisory lock that serialises appends across replicas ("gateaudt"
/// in ASCII). Transaction-scoped, so a crashed replica cannot leave it held.
const CHAIN_LOCK_KEY: i64 = 0x6761_7465_6175_6474;

/// Rows per INSERT on SQLite: 12 parameters each stays well under SQLite's limit of bound
/// parameters per statement.
const SQLITE_ROWS_PER_INSERT: usize = 500;

/// Bytes of row data per INSERT on PostgreSQL. sqlx 0.9.0 leaves Nagle's algorithm on
/// (no TCP_NODELAY, sqlx issue #4335), so a message that leaves the client in more than
/// one write (over TLS: anything above one 16 KiB record) waits for the server's delayed
/// ACK. Measured here with 64 appenders: 3,840 events took 0.4–0.7 s with 12–15.5 KB
/// per INSERT and 5.5–8.5 s with 20–40 KB. An extra round trip per chunk is far cheaper.
const PG_BYTES_PER_INSERT: usize = 14 * 1024;

/// Rough wire size of one row besides its body (UUIDs, hashes, short text columns).
const PG_ROW_OVERHEAD: usize = 320;

const COLUMNS: &str = "seq, id, time, kind, request_id, principal_sub, datasource, \
                       environment, effect, prev_hash, hash, body";

/// One event with its place in the chain, ready to insert.
pub(crate) struct Sealed {
    pub seq: i64,
    pub time: DateTime<Utc>,
    pub prev_hash: String,
    pub hash: String,
    pub body: String,
}

/// One row exactly as stored, with typed columns turned into the text forms the canonical
/// body uses, so the verifier can compare columns with the body field by field.
pub(crate) struct RawRow {
    pub seq: i64,
    pub id: String,
    pub time: String,
    pub kind: String,
    pub request_id: String,
    pub principal_sub: Option<String>,
    pub datasource: Option<String>,
    pub environment: Option<String>,
    pub effect: Option<String>,
    pub prev_hash: String,
    pub hash: String,
    pub body: String,
}

/// The last event of the chain: its seq and hash.
pub(crate) async fn head(store: &ControlStore) -> Result<Option<(i64, String)>, sqlx::Error> {
    let sql = "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1";
    match store {
        ControlStore::Postgres(pool) => sqlx::query_as(sql).fetch_optional(pool).await,
        ControlStore::Sqlite(pool) => sqlx::query_as(sql).fetch_optional(pool).await,
    }
}

/// Gives each event its seq, prev_hash, time and hash, continuing from `head`.
fn seal(head: Option<(i64, String)>, events: &[(Uuid, &NewEvent)]) -> Vec<Sealed> {
    let (mut seq, mut prev_hash) = head.unwrap_or_else(|| (0, GENESIS_HASH.to_owned()));
    // One time for the batch: its events were committed together, and taking the time
    // under the chain lock keeps times in seq order as far as the clocks agree.
    let time = super::event::now_micros();
    let mut sealed = Vec::with_capacity(events.len());
    for (id, event) in events {
        seq += 1;
        let body = canonical_body(seq, *id, time, &prev_hash, event);
        let hash = hash_body(&body);
        sealed.push(Sealed {
            seq,
            time,
            prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
            hash,
            body,
        });
    }
    sealed
}

/// Appends `events` in one transaction, under the chain lock, after the head read *inside*
/// that transaction: other replicas append to the same chain, so memory is never trusted
/// for the head. Either every event is committed or none is.
pub(crate) async fn commit(
    store: &ControlStore,
    events: &[(Uuid, &NewEvent)],
) -> Result<Vec<Sealed>, sqlx::Error> {
    match store {
        ControlStore::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(CHAIN_LOCK_KEY)
                .execute(&mut *tx)
                .await?;
            let head: Option<(i64, String)> =
                sqlx::query_as("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await?;
            let sealed = seal(head, events);
            let mut start = 0;
            while start < sealed.len() {
                let (mut end, mut bytes) = (start, 0);
                // At least one row per INSERT, however large.
                while let Some(row) = sealed.get(end) {
                    let size = row.body.len() + PG_ROW_OVERHEAD;
                    if end > start && bytes + size > PG_BYTES_PER_INSERT {
                        break;
                    }
                    bytes += size;
                    end += 1;
                }
                insert_postgres(&mut tx, &sealed[start..end], &events[start..end]).await?;
                start = end;
            }
            tx.commit().await?;
            Ok(sealed)
        }
        ControlStore::Sqlite(pool) => {
            // IMMEDIATE takes the write lock at BEGIN, so the head read below cannot be
            // overtaken by another writer before the insert.
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let head: Option<(i64, String)> =
                sqlx::query_as("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await?;
            let sealed = seal(head, events);
            for (rows, originals) in sealed
                .chunks(SQLITE_ROWS_PER_INSERT)
                .zip(events.chunks(SQLITE_ROWS_PER_INSERT))
            {
                let mut insert =
                    QueryBuilder::<Sqlite>::new(format!("INSERT INTO audit_events ({COLUMNS}) "));
                insert.push_values(rows.iter().zip(originals), |mut b, (row, (id, event))| {
                    b.push_bind(row.seq)
                        .push_bind(id.to_string())
                        .push_bind(format_time(row.time))
                        .push_bind(event.kind.as_str())
                        .push_bind(event.request_id.to_string())
                        .push_bind(event.principal_sub().map(str::to_owned))
                        .push_bind(event.datasource.clone())
                        .push_bind(event.environment.clone())
                        .push_bind(event.effect().map(str::to_owned))
                        .push_bind(row.prev_hash.clone())
                        .push_bind(row.hash.clone())
                        .push_bind(row.body.clone());
                });
                insert.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(sealed)
        }
    }
}

/// One statement for any number of rows: arrays through UNNEST, so PostgreSQL prepares it
/// once per connection and there is no limit on bound parameters to chunk around.
async fn insert_postgres(
    tx: &mut sqlx::Transaction<'static, Postgres>,
    sealed: &[Sealed],
    events: &[(Uuid, &NewEvent)],
) -> Result<(), sqlx::Error> {
    let mut seqs = Vec::with_capacity(sealed.len());
    let mut ids = Vec::with_capacity(sealed.len());
    let mut times = Vec::with_capacity(sealed.len());
    let mut kinds = Vec::with_capacity(sealed.len());
    let mut request_ids = Vec::with_capacity(sealed.len());
    let mut subs = Vec::with_capacity(sealed.len());
    let mut datasources = Vec::with_capacity(sealed.len());
    let mut environments = Vec::with_capacity(sealed.len());
    let mut effects = Vec::with_capacity(sealed.len());
    let mut prev_hashes = Vec::with_capacity(sealed.len());
    let mut hashes = Vec::with_capacity(sealed.len());
    let mut bodies = Vec::with_capacity(sealed.len());
    for (row, (id, event)) in sealed.iter().zip(events) {
        seqs.push(row.seq);
        ids.push(*id);
        times.push(row.time);
        kinds.push(event.kind.as_str());
        request_ids.push(event.request_id);
        subs.push(event.principal_sub());
        datasources.push(event.datasource.as_deref());
        environments.push(event.environment.as_deref());
        effects.push(event.effect());
        prev_hashes.push(row.prev_hash.as_str());
        hashes.push(row.hash.as_str());
        bodies.push(row.body.as_str());
    }
    sqlx::query(
        "INSERT INTO audit_events (seq, id, time, kind, request_id, principal_sub, datasource, \
         environment, effect, prev_hash, hash, body) \
         SELECT * FROM UNNEST($1::int8[], $2::uuid[], $3::timestamptz[], $4::text[], \
         $5::uuid[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
         $12::text[])",
    )
    .bind(seqs)
    .bind(ids)
    .bind(times)
    .bind(kinds)
    .bind(request_ids)
    .bind(subs)
    .bind(datasources)
    .bind(environments)
    .bind(effects)
    .bind(prev_hashes)
    .bind(hashes)
    .bind(bodies)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A listed row: its stored seq (what cursors page by) and the event its body describes.
pub(crate) struct Listed {
    pub seq: i64,
    pub event: Result<AuditEvent, String>,
}

fn listed_pg(row: &PgRow) -> Result<Listed, sqlx::Error> {
    let seq: i64 = row.try_get("seq")?;
    let hash: String = row.try_get("hash")?;
    let body: String = row.try_get("body")?;
    Ok(Listed {
        seq,
        event: StoredBody::parse(&body).and_then(|b| b.into_event(hash)),
    })
}

fn listed_sqlite(row: &SqliteRow) -> Result<Listed, sqlx::Error> {
    let seq: i64 = row.try_get("seq")?;
    let hash: String = row.try_get("hash")?;
    let body: String = row.try_get("body")?;
    Ok(Listed {
        seq,
        event: StoredBody::parse(&body).and_then(|b| b.into_event(hash)),
    })
}

/// Appends the filters of `query` (each one optional) after a `WHERE seq > …` clause.
macro_rules! push_filters {
    ($builder:expr, $query:expr, $time:expr) => {{
        let q: &EventQuery = $query;
        if let Some(principal) = &q.principal {
            $builder
                .push(" AND principal_sub = ")
                .push_bind(principal.clone());
        }
        if let Some(datasource) = &q.datasource {
            $builder
                .push(" AND datasource = ")
                .push_bind(datasource.clone());
        }
        if let Some(environment) = &q.environment {
            $builder
                .push(" AND environment = ")
                .push_bind(environment.clone());
        }
        if let Some(effect) = &q.effect {
            $builder.push(" AND effect = ").push_bind(effect.clone());
        }
        if let Some(kind) = q.kind {
            $builder.push(" AND kind = ").push_bind(kind.as_str());
        }
        if let Some(from) = q.from {
            $builder.push(" AND time >= ").push_bind($time(from));
        }
        if let Some(to) = q.to {
            $builder.push(" AND time < ").push_bind($time(to));
        }
    }};
}

/// Rows after `after_seq` in seq order matching `query`'s filters (its cursor and limit
/// are the caller's business), at most `limit`.
pub(crate) async fn select_events(
    store: &ControlStore,
    after_seq: i64,
    query: &EventQuery,
    limit: usize,
) -> Result<Vec<Listed>, sqlx::Error> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    match store {
        ControlStore::Postgres(pool) => {
            let mut select = QueryBuilder::<Postgres>::new(
                "SELECT seq, hash, body FROM audit_events WHERE seq > ",
            );
            select.push_bind(after_seq);
            if let Some(request_id) = query.request_id {
                select.push(" AND request_id = ").push_bind(request_id);
            }
            push_filters!(select, query, |t: DateTime<Utc>| t);
            select.push(" ORDER BY seq LIMIT ").push_bind(limit);
            let rows = select.build().fetch_all(pool).await?;
            rows.iter().map(listed_pg).collect()
        }
        ControlStore::Sqlite(pool) => {
            let mut select = QueryBuilder::<Sqlite>::new(
                "SELECT seq, hash, body FROM audit_events WHERE seq > ",
            );
            select.push_bind(after_seq);
            if let Some(request_id) = query.request_id {
                select
                    .push(" AND request_id = ")
                    .push_bind(request_id.to_string());
            }
            push_filters!(select, query, format_time);
            select.push(" ORDER BY seq LIMIT ").push_bind(limit);
            let rows = select.build().fetch_all(pool).await?;
            rows.iter().map(listed_sqlite).collect()
        }
    }
}

/// Every column of up to `limit` rows with `seq >= from_seq`, in (seq, id) order: `>=`
/// and the tie-break on id so that rows sharing a seq (possible only if someone dropped the
/// primary key) are all seen by the verifier.
pub(crate) async fn raw_rows(
    store: &ControlStore,
    from_seq: i64,
    limit: i64,
) -> Result<Vec<RawRow>, sqlx::Error> {
    match store {
        ControlStore::Postgres(pool) => {
            let rows = sqlx::query(
                "SELECT seq, id, time, kind, request_id, principal_sub, datasource, environment, \
                 effect, prev_hash, hash, body FROM audit_events WHERE seq >= $1 \
                 ORDER BY seq, id LIMIT $2",
            )
            .bind(from_seq)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(RawRow {
                        seq: row.try_get("seq")?,
                        id: row.try_get::<Uuid, _>("id")?.to_string(),
                        time: format_time(row.try_get::<DateTime<Utc>, _>("time")?),
                        kind: row.try_get("kind")?,
                        request_id: row.try_get::<Uuid, _>("request_id")?.to_string(),
                        principal_sub: row.try_get("principal_sub")?,
                        datasource: row.try_get("datasource")?,
                        environment: row.try_get("environment")?,
                        effect: row.try_get("effect")?,
                        prev_hash: row.try_get("prev_hash")?,
                        hash: row.try_get("hash")?,
                        body: row.try_get("body")?,
                    })
                })
                .collect()
        }
        ControlStore::Sqlite(pool) => {
            let rows = sqlx::query(
                "SELECT seq, id, time, kind, request_id, principal_sub, datasource, environment, \
                 effect, prev_hash, hash, body FROM audit_events WHERE seq >= $1 \
                 ORDER BY seq, id LIMIT $2",
            )
            .bind(from_seq)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(RawRow {
                        seq: row.try_get("seq")?,
                        id: row.try_get("id")?,
                        time: row.try_get("time")?,
                        kind: row.try_get("kind")?,
                        request_id: row.try_get("request_id")?,
                        principal_sub: row.try_get("principal_sub")?,
                        datasource: row.try_get("datasource")?,
                        environment: row.try_get("environment")?,
                        effect: row.try_get("effect")?,
                        prev_hash: row.try_get("prev_hash")?,
                        hash: row.try_get("hash")?,
                        body: row.try_get("body")?,
                    })
                })
                .collect()
        }
    }
}

/// The lowest seq of a row whose hash is `hash`. Only the verifier asks, and only after it
/// found a broken link, so a scan (there is no index on `hash`) is acceptable.
pub(crate) async fn seq_of_hash(
    store: &ControlStore,
    hash: &str,
) -> Result<Option<i64>, sqlx::Error> {
    let sql = "SELECT MIN(seq) FROM audit_events WHERE hash = $1";
    match store {
        ControlStore::Postgres(pool) => sqlx::query_scalar(sql).bind(hash).fetch_one(pool).await,
        ControlStore::Sqlite(pool) => sqlx::query_scalar(sql).bind(hash).fetch_one(pool).await,
    }
}

/// The id column of the row at `seq`, as text.
pub(crate) async fn id_at(store: &ControlStore, seq: i64) -> Result<Option<String>, sqlx::Error> {
    match store {
        ControlStore::Postgres(pool) => {
            let id: Option<Uuid> = sqlx::query_scalar(
                "SELECT id FROM audit_events WHERE seq = $1 ORDER BY id LIMIT 1",
            )
            .bind(seq)
            .fetch_optional(pool)
            .await?;
            Ok(id.map(|id| id.to_string()))
        }
        ControlStore::Sqlite(pool) => {
            sqlx::query_scalar("SELECT id FROM audit_events WHERE seq = $1 ORDER BY id LIMIT 1")
                .bind(seq)
                .fetch_optional(pool)
                .await
        }
    }
}
