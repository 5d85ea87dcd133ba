//! The audit trail on real control stores: a SQLite file in a temporary directory and a
//! throwaway PostgreSQL database. Tampering is done the way an attacker with database
//! access would, with SQL behind the service's back.

#[path = "common/db.rs"]
mod db;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::SecondsFormat;
use db::{Engine, TestDb};
use futures::StreamExt as _;
use gatehouse::audit::{
    AuditError, AuditEvent, AuditLog, Cursor, EventDecision, EventKind, EventPrincipal, EventQuery,
    NewEvent, Problem, Unavailable,
};
use gatehouse::config::AuditConfig;
use gatehouse::store::ControlStore;
use sha2::{Digest as _, Sha256};
use sqlx::Connection as _;
use uuid::Uuid;

/// The writer's PostgreSQL advisory lock key ("gateaudt").
const CHAIN_LOCK_KEY: i64 = 0x6761_7465_6175_6474;

/// Fields drop in order: the log and store before the database they live in.
struct Env {
    log: AuditLog,
    store: ControlStore,
    db: TestDb,
}

async fn env(engine: Engine) -> Env {
    env_with(engine, &AuditConfig::default()).await
}

async fn env_with(engine: Engine, config: &AuditConfig) -> Env {
    let db = match engine {
        Engine::Postgres => TestDb::postgres().await,
        Engine::Sqlite => TestDb::sqlite(),
        Engine::MariaDb => unreachable!("MariaDB is not a control store"),
    };
    let store = ControlStore::open(Some(&db.url), Path::new("unused"))
        .await
        .expect("control store opens");
    let log = AuditLog::start(store.clone(), config)
        .await
        .expect("audit log starts");
    Env { log, store, db }
}

impl Env {
    async fn append_n(&self, n: usize) -> Vec<i64> {
        let mut seqs = Vec::new();
        for i in 0..n {
            seqs.push(self.log.append(event(i)).await.expect("append").seq);
        }
        seqs
    }

    /// Drops the append-only triggers, as someone with owner rights would before editing.
    async fn unguard(&self) {
        match self.db.engine {
            Engine::Postgres => {
                self.db
                    .exec("ALTER TABLE audit_events DISABLE TRIGGER USER")
                    .await
            }
            _ => {
                self.db
                    .exec(
                        "DROP TRIGGER audit_events_no_update; \
                         DROP TRIGGER audit_events_no_delete;",
                    )
                    .await
            }
        }
    }

    async fn all_events(&self) -> Vec<AuditEvent> {
        let mut events = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .log
                .list(&EventQuery {
                    after,
                    limit: Some(1_000),
                    ..EventQuery::default()
                })
                .await
                .expect("list");
            events.extend(page.events);
            match page.next_cursor {
                Some(cursor) => after = Some(cursor),
                None => return events,
            }
        }
    }

    async fn row_count(&self) -> i64 {
        let sql = "SELECT COUNT(*) FROM audit_events";
        match &self.store {
            ControlStore::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            ControlStore::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .expect("count")
    }

    /// Inserts an event row directly, with the column formats of this engine.
    async fn insert_row(&self, event: &AuditEvent) {
        let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let opt = |s: Option<&str>| s.map_or_else(|| "NULL".to_owned(), q);
        let sql = format!(
            "INSERT INTO audit_events (seq, id, time, kind, request_id, principal_sub, \
             datasource, environment, effect, prev_hash, hash, body) VALUES \
             ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
            event.seq,
            q(&event.id.to_string()),
            q(&event.time.to_rfc3339_opts(SecondsFormat::Micros, true)),
            q(event.event.kind.as_str()),
            q(&event.event.request_id.to_string()),
            opt(event.event.principal.as_ref().map(|p| p.sub.as_str())),
            opt(event.event.datasource.as_deref()),
            opt(event.event.environment.as_deref()),
            opt(event.event.decision.as_ref().map(|d| d.effect.as_str())),
            q(&event.prev_hash),
            q(&event.hash),
            q(&event.canonical_body()),
        );
        self.db.exec(&sql).await;
    }
}

fn event(n: usize) -> NewEvent {
    let mut event = NewEvent::new(EventKind::Query, Uuid::new_v4());
    event.principal = Some(EventPrincipal {
        sub: format!("user-{}", n % 3),
        kind: "human".into(),
        groups: vec!["analysts".into()],
        on_behalf_of: None,
    });
    event.datasource = Some(if n.is_multiple_of(2) { "shop" } else { "crm" }.into());
    event.environment = Some(if n.is_multiple_of(2) { "dev" } else { "prod" }.into());
    event.statement = Some(format!("SELECT {n} FROM orders"));
    event.fingerprint = Some(format!("fp-{n}"));
    event.decision = Some(EventDecision {
        effect: if n.is_multiple_of(4) { "deny" } else { "allow" }.into(),
        policies: vec!["default".into()],
        reasons: vec!["because".into()],
    });
    event
}

/// A forged event with a correct hash over the canonical encoding: the strongest forgery
/// someone without a way to rewrite the whole rest of the chain can make.
fn forge(seq: i64, prev_hash: &str, n: usize) -> AuditEvent {
    let mut forged = AuditEvent {
        seq,
        id: Uuid::now_v7(),
        time: chrono::Utc::now(),
        prev_hash: prev_hash.to_owned(),
        hash: String::new(),
        event: event(n),
    };
    forged.time = chrono::DateTime::from_timestamp_micros(forged.time.timestamp_micros()).unwrap();
    forged.hash = hex::encode(Sha256::digest(forged.canonical_body().as_bytes()));
    forged
}

async fn expect_broken(env: &Env, seq: i64, problem: Problem) -> gatehouse::audit::BrokenLink {
    let report = env.log.verify().await.expect("verify runs");
    assert!(!report.ok, "tampering not detected: {report:?}");
    let broken = report.first_broken.clone().expect("a broken link");
    assert_eq!(
        (broken.seq, broken.problem),
        (seq, problem),
        "wrong diagnosis: {broken:?}"
    );
    // The free function (the CLI's) agrees.
    let offline = gatehouse::audit::verify(&env.store)
        .await
        .expect("verify runs");
    assert_eq!(offline.first_broken, report.first_broken);
    broken
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Engine::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Engine::Postgres).await
            }
        }
    )*};
}

on_both!(
    append_then_verify,
    edited_body_is_detected,
    edited_column_is_detected,
    rehashed_edit_breaks_the_next_link,
    deleted_event_is_detected,
    deleted_tail_is_detected_by_the_writer,
    forged_insertion_is_detected,
    swapped_events_are_detected,
    concurrent_appends_form_one_chain,
    paging_sees_every_event_once_while_writes_continue,
    filters_select_matching_events,
    follow_delivers_backlog_then_live_events,
    follow_recovers_from_lag_through_the_store,
    broken_store_fails_fast_and_recovers,
    failed_batch_leaves_nothing_behind,
    full_queue_is_refused_at_once,
);

async fn append_then_verify(engine: Engine) {
    let env = env(engine).await;
    let empty = env.log.verify().await.unwrap();
    assert!(empty.ok && empty.events_checked == 0 && empty.head_seq == 0);

    let mut appended = Vec::new();
    for i in 0..10 {
        appended.push(env.log.append(event(i)).await.unwrap());
    }
    assert_eq!(
        appended.iter().map(|a| a.seq).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    assert!(appended.iter().all(|a| a.id.get_version_num() == 7));

    let report = env.log.verify().await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.events_checked, 10);
    assert_eq!(report.head_seq, 10);
    assert_eq!(report.head_hash, appended[9].hash);

    // What is read back is what was appended, and its hash can be recomputed.
    let events = env.all_events().await;
    assert_eq!(events.len(), 10);
    assert_eq!(events[0].prev_hash, gatehouse::audit::GENESIS_HASH);
    for (i, (stored, acked)) in events.iter().zip(&appended).enumerate() {
        assert_eq!(
            (stored.seq, stored.id, &stored.hash),
            (acked.seq, acked.id, &acked.hash)
        );
        assert_eq!(stored.time, acked.time);
        assert_eq!(stored.event, event_like(&stored.event, i));
        let recomputed = hex::encode(Sha256::digest(stored.canonical_body().as_bytes()));
        assert_eq!(recomputed, stored.hash);
        if i > 0 {
            assert_eq!(stored.prev_hash, events[i - 1].hash);
        }
    }

    // A NUL in a caller-controlled claim (PostgreSQL TEXT cannot hold one) and an event
    // larger than one INSERT chunk are stored like any other.
    let mut odd = event(10);
    odd.principal.as_mut().unwrap().sub = "nul\0sub".into();
    odd.statement = Some(format!("SELECT '{}'", "x".repeat(50_000)));
    let stored = env.log.append(odd).await.unwrap();
    assert_eq!(stored.seq, 11);
    let page = env
        .log
        .list(&EventQuery {
            principal: Some("nul\u{FFFD}sub".into()),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(
        page.events[0].event.statement.as_ref().unwrap().len(),
        50_009
    );
    let report = env.log.verify().await.unwrap();
    assert!(report.ok && report.events_checked == 11, "{report:?}");

    // The service itself cannot change history: the triggers refuse it.
    let refused = match &env.store {
        ControlStore::Postgres(pool) => sqlx::query("DELETE FROM audit_events WHERE seq = 1")
            .execute(pool)
            .await
            .is_err(),
        ControlStore::Sqlite(pool) => sqlx::query("UPDATE audit_events SET kind = 'x'")
            .execute(pool)
            .await
            .is_err(),
    };
    assert!(refused, "append-only trigger missing");
}

/// `event(i)` with the request id of `stored` (the only random part).
fn event_like(stored: &NewEvent, i: usize) -> NewEvent {
    let mut expected = event(i);
    expected.request_id = stored.request_id;
    expected
}

async fn edited_body_is_detected(engine: Engine) {
    let env = env(engine).await;
    env.append_n(10).await;
    env.unguard().await;
    env.db
        .exec(
            "UPDATE audit_events SET body = replace(body, 'SELECT 4 FROM', 'SELECT 1 FROM') \
             WHERE seq = 5",
        )
        .await;
    let broken = expect_broken(&env, 5, Problem::Edited).await;
    assert!(broken.detail.contains("hash"), "{broken:?}");
    let events = env.all_events().await;
    assert_eq!(broken.id, Some(events[4].id.to_string()));
}

async fn edited_column_is_detected(engine: Engine) {
    let env = env(engine).await;
    env.append_n(10).await;
    env.unguard().await;
    env.db
        .exec("UPDATE audit_events SET principal_sub = 'someone-else' WHERE seq = 6")
        .await;
    let broken = expect_broken(&env, 6, Problem::Edited).await;
    assert!(broken.detail.contains("principal_sub"), "{broken:?}");
}

async fn rehashed_edit_breaks_the_next_link(engine: Engine) {
    let env = env(engine).await;
    env.append_n(10).await;
    let mut target = env.all_events().await.remove(4);
    target.event.statement = Some("SELECT harmless".into());
    let body = target.canonical_body();
    let hash = hex::encode(Sha256::digest(body.as_bytes()));
    env.unguard().await;
    env.db
        .exec(&format!(
            "UPDATE audit_events SET body = '{body}', hash = '{hash}' WHERE seq = 5"
        ))
        .await;
    // Seq 5 is consistent in itself now; seq 6 still points at the original.
    let broken = expect_broken(&env, 6, Problem::Deleted).await;
    assert!(broken.detail.contains("seq 5"), "{broken:?}");
}

async fn deleted_event_is_detected(engine: Engine) {
    let env = env(engine).await;
    env.append_n(10).await;
    env.unguard().await;
    env.db.exec("DELETE FROM audit_events WHERE seq = 4").await;
    let broken = expect_broken(&env, 5, Problem::Deleted).await;
    assert!(broken.detail.contains("seq 4 is missing"), "{broken:?}");

    env.db.exec("DELETE FROM audit_events WHERE seq = 1").await;
    expect_broken(&env, 2, Problem::Deleted).await;
}

async fn deleted_tail_is_detected_by_the_writer(engine: Engine) {
    let env = env(engine).await;
    env.append_n(10).await;
    env.unguard().await;
    env.db.exec("DELETE FROM audit_events WHERE seq >= 9").await;
    // The chain alone cannot tell a shorter chain from a cut one...
    let offline = gatehouse::audit::verify(&env.store).await.unwrap();
    assert!(offline.ok && offline.head_seq == 8, "{offline:?}");
    // ...but the process that committed seq 10 can.
    let report = env.log.verify().await.unwrap();
    let broken = report.first_broken.expect("cut tail detected");
    assert_eq!(
        (broken.seq, broken.problem, broken.id),
        (9, Problem::Deleted, None)
    );
    assert_eq!(report.head_seq, 8);
}

async fn forged_insertion_is_detected(engine: Engine) {
    let env = env(engine).await;
    env.append_n(10).await;
    let events = env.all_events().await;
    env.unguard().await;
    // Make room at seq 6 (in two steps, so the primary key never collides), then slip in
    // an event that links correctly to seq 5.
    env.db
        .exec("UPDATE audit_events SET seq = -seq WHERE seq >= 6")
        .await;
    env.db
        .exec("UPDATE audit_events SET seq = 1 - seq WHERE seq < 0")
        .await;
    let forged = forge(6, &events[4].hash, 99);
    env.insert_row(&forged).await;
    let broken = expect_broken(&env, 6, Problem::Inserted).await;
    assert_eq!(broken.id, Some(forged.id.to_string()));
}

async fn swapped_events_are_detected(engine: Engine) {
    let env = env(engine).await;
    env.append_n(10).await;
    env.unguard().await;
    env.db
        .exec("UPDATE audit_events SET seq = -1 WHERE seq = 3")
        .await;
    env.db
        .exec("UPDATE audit_events SET seq = 3 WHERE seq = 5")
        .await;
    env.db
        .exec("UPDATE audit_events SET seq = 5 WHERE seq = -1")
        .await;
    let broken = expect_broken(&env, 3, Problem::Reordered).await;
    assert!(broken.detail.contains("written as seq 5"), "{broken:?}");
}

async fn concurrent_appends_form_one_chain(engine: Engine) {
    let env = env(engine).await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let log = env.log.clone();
            tokio::spawn(async move { log.append(event(i)).await })
        })
        .collect();
    let mut seqs = Vec::new();
    let mut ids = HashSet::new();
    for task in tasks {
        let appended = task.await.unwrap().unwrap();
        seqs.push(appended.seq);
        ids.insert(appended.id);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
    assert_eq!(ids.len(), 200);
    let report = env.log.verify().await.unwrap();
    assert!(report.ok && report.events_checked == 200, "{report:?}");
    let stats = env.log.stats();
    assert_eq!(stats.committed_events, 200);
    assert!(stats.last_batch_size >= 1 && stats.store_available);
    assert_eq!(env.log.queue_depth(), 0);
}

async fn paging_sees_every_event_once_while_writes_continue(engine: Engine) {
    let env = env(engine).await;
    env.append_n(5).await;
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let log = env.log.clone();
            tokio::spawn(async move {
                for i in 0..40 {
                    log.append(event(w * 40 + i)).await.unwrap();
                }
            })
        })
        .collect();
    let total = 5 + 8 * 40;
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let writers_done = writers.iter().all(|w| w.is_finished());
        let page = env
            .log
            .list(&EventQuery {
                after,
                limit: Some(7),
                ..EventQuery::default()
            })
            .await
            .unwrap();
        assert!(page.events.len() <= 7);
        if let Some(last) = page.events.last() {
            after = Some(last.cursor());
        }
        let drained = page.events.is_empty();
        seen.extend(page.events.iter().map(|e| e.seq));
        if writers_done && drained {
            break;
        }
        if drained {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    assert_eq!(seen, (1..=total).collect::<Vec<i64>>());
}

async fn filters_select_matching_events(engine: Engine) {
    let env = env(engine).await;
    env.append_n(12).await;
    let all = env.all_events().await;
    let list = |query: EventQuery| {
        let log = env.log.clone();
        async move { log.list(&query).await.unwrap().events }
    };
    let seqs = |events: Vec<AuditEvent>| events.iter().map(|e| e.seq).collect::<Vec<_>>();

    // event(i) is seq i + 1: user-(i % 3), shop/dev when i is even, deny when i % 4 == 0.
    let by_principal = list(EventQuery {
        principal: Some("user-1".into()),
        ..EventQuery::default()
    })
    .await;
    assert_eq!(seqs(by_principal), vec![2, 5, 8, 11]);
    let denied_in_shop = list(EventQuery {
        datasource: Some("shop".into()),
        effect: Some("deny".into()),
        ..EventQuery::default()
    })
    .await;
    assert_eq!(seqs(denied_in_shop), vec![1, 5, 9]);
    let prod = list(EventQuery {
        environment: Some("prod".into()),
        limit: Some(2),
        ..EventQuery::default()
    })
    .await;
    assert_eq!(seqs(prod), vec![2, 4]);
    let by_request = list(EventQuery {
        request_id: Some(all[6].event.request_id),
        ..EventQuery::default()
    })
    .await;
    assert_eq!(seqs(by_request), vec![7]);
    let completions = list(EventQuery {
        kind: Some(EventKind::QueryCompleted),
        ..EventQuery::default()
    })
    .await;
    assert!(completions.is_empty());

    // Time range: `from` inclusive, `to` exclusive.
    let later = env.log.append(event(12)).await.unwrap();
    assert!(later.time > all[11].time);
    let window = list(EventQuery {
        from: Some(later.time),
        ..EventQuery::default()
    })
    .await;
    assert_eq!(seqs(window), vec![13]);
    let before = list(EventQuery {
        to: Some(later.time),
        limit: Some(1_000),
        ..EventQuery::default()
    })
    .await;
    assert_eq!(seqs(before), (1..=12).collect::<Vec<_>>());

    // Pages: next_cursor only while more events match.
    let first = env
        .log
        .list(&EventQuery {
            limit: Some(5),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(first.next_cursor, Some(first.events[4].cursor()));
    let last = env
        .log
        .list(&EventQuery {
            after: Some(Cursor::parse("e10").unwrap()),
            limit: Some(3),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(seqs(last.events), vec![11, 12, 13]);
    assert_eq!(last.next_cursor, None);
    assert!(matches!(
        Cursor::parse("bogus"),
        Err(AuditError::InvalidCursor(_))
    ));
}

async fn follow_delivers_backlog_then_live_events(engine: Engine) {
    let env = env(engine).await;
    env.append_n(10).await;
    let cursor = env.all_events().await[3].cursor();
    let stream = env.log.follow(Some(cursor));
    let writer = {
        let log = env.log.clone();
        tokio::spawn(async move {
            for i in 0..50 {
                log.append(event(i)).await.unwrap();
                if i % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    };
    let mut stream = Box::pin(stream);
    let mut seqs = Vec::new();
    while seqs.len() < 56 {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("follower stalled")
            .expect("stream ended")
            .expect("event");
        seqs.push(next.seq);
    }
    writer.await.unwrap();
    assert_eq!(seqs, (5..=60).collect::<Vec<_>>());
    // Nothing more: no duplicates arrive later.
    let extra = tokio::time::timeout(Duration::from_millis(700), stream.next()).await;
    assert!(extra.is_err(), "unexpected extra event: {extra:?}");

    // From the start.
    let from_start: Vec<i64> = env
        .log
        .follow(None)
        .take(3)
        .map(|e| e.unwrap().seq)
        .collect()
        .await;
    assert_eq!(from_start, vec![1, 2, 3]);
}

async fn follow_recovers_from_lag_through_the_store(engine: Engine) {
    let env = env(engine).await;
    // Subscribed now, read only after far more events than the live buffer holds.
    let stream = env.log.follow(None);
    let total = 5_000;
    let writers: Vec<_> = (0..50)
        .map(|w| {
            let log = env.log.clone();
            tokio::spawn(async move {
                for i in 0..total / 50 {
                    log.append(event(w * 100 + i)).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let seqs: Vec<i64> = tokio::time::timeout(
        Duration::from_secs(60),
        stream
            .take(total)
            .map(|e| e.unwrap().seq)
            .collect::<Vec<_>>(),
    )
    .await
    .expect("follower stalled");
    assert_eq!(
        seqs,
        (1..=i64::try_from(total).unwrap()).collect::<Vec<_>>()
    );
}

async fn broken_store_fails_fast_and_recovers(engine: Engine) {
    let env = env(engine).await;
    env.append_n(3).await;
    env.db
        .exec("ALTER TABLE audit_events RENAME TO audit_events_away")
        .await;
    let started = Instant::now();
    let failed = env.log.append(event(3)).await;
    assert_eq!(
        failed,
        Err(AuditError::Unavailable(Unavailable::CommitFailed))
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Known down: refused without waiting for the store.
    let started = Instant::now();
    assert_eq!(
        env.log.append(event(4)).await,
        Err(AuditError::Unavailable(Unavailable::StoreDown))
    );
    assert!(started.elapsed() < Duration::from_millis(50));
    assert!(!env.log.stats().store_available);
    assert_eq!(env.log.stats().failed_batches, 1);

    env.db
        .exec("ALTER TABLE audit_events_away RENAME TO audit_events")
        .await;
    let recovered = retry_append(&env.log, event(5)).await;
    assert_eq!(recovered.seq, 4, "a refused event left a trace");
    let report = env.log.verify().await.unwrap();
    assert!(report.ok && report.events_checked == 4, "{report:?}");
}

/// Appends until the writer has noticed the store is back (it probes twice a second).
async fn retry_append(log: &AuditLog, event: NewEvent) -> gatehouse::audit::Appended {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match log.append(event.clone()).await {
            Ok(appended) => return appended,
            Err(AuditError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("store did not come back: {e}"),
        }
    }
}

/// Holds the writer's lock from outside, as another replica's commit would.
enum Blocker {
    Postgres(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

impl Blocker {
    async fn hold(db: &TestDb) -> Blocker {
        match db.engine {
            Engine::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(CHAIN_LOCK_KEY)
                    .execute(&mut conn)
                    .await
                    .unwrap();
                Blocker::Postgres(conn)
            }
            _ => {
                let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
                sqlx::raw_sql("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                Blocker::Sqlite(conn)
            }
        }
    }

    async fn release(self) {
        match self {
            Blocker::Postgres(mut conn) => {
                sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(CHAIN_LOCK_KEY)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            Blocker::Sqlite(mut conn) => {
                sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
            }
        }
    }
}

async fn wait_for_depth(log: &AuditLog, depth: usize) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while log.queue_depth() != depth {
        assert!(
            Instant::now() < deadline,
            "queue depth {}",
            log.queue_depth()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn failed_batch_leaves_nothing_behind(engine: Engine) {
    let env = env(engine).await;
    env.append_n(3).await;
    // A row the store refuses, standing in for any failure halfway through a batch.
    match engine {
        Engine::Postgres => {
            env.db
                .exec(
                    "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN IF NEW.datasource = 'poison' THEN RAISE EXCEPTION 'poison'; END IF; \
                     RETURN NEW; END $$; \
                     CREATE TRIGGER poison BEFORE INSERT ON audit_events FOR EACH ROW \
                     EXECUTE FUNCTION refuse_poison();",
                )
                .await
        }
        _ => {
            env.db
                .exec(
                    "CREATE TRIGGER poison BEFORE INSERT ON audit_events \
                     WHEN NEW.datasource = 'poison' BEGIN SELECT RAISE(ABORT, 'poison'); END;",
                )
                .await
        }
    }
    // Stall the writer on one event so the next ten queue up and form one batch.
    let blocker = Blocker::hold(&env.db).await;
    let first = {
        let log = env.log.clone();
        tokio::spawn(async move { log.append(event(100)).await })
    };
    wait_for_depth(&env.log, 0).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let batch: Vec<_> = (0..10)
        .map(|i| {
            let log = env.log.clone();
            let mut event = event(i);
            if i == 7 {
                event.datasource = Some("poison".into());
            }
            tokio::spawn(async move { log.append(event).await })
        })
        .collect();
    wait_for_depth(&env.log, 10).await;
    blocker.release().await;

    assert_eq!(first.await.unwrap().unwrap().seq, 4);
    for task in batch {
        assert_eq!(
            task.await.unwrap(),
            Err(AuditError::Unavailable(Unavailable::CommitFailed))
        );
    }
    assert_eq!(env.row_count().await, 4);
    let report = env.log.verify().await.unwrap();
    assert!(report.ok && report.head_seq == 4, "{report:?}");
    // The chain continues where it stood once the store answers again.
    assert_eq!(retry_append(&env.log, event(11)).await.seq, 5);
}

async fn full_queue_is_refused_at_once(engine: Engine) {
    let config = AuditConfig {
        max_batch: 512,
        queue_capacity: 4,
    };
    let env = env_with(engine, &config).await;
    let blocker = Blocker::hold(&env.db).await;
    let log = env.log.clone();
    let first = tokio::spawn(async move { log.append(event(0)).await });
    wait_for_depth(&env.log, 0).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let queued: Vec<_> = (1..=4)
        .map(|i| {
            let log = env.log.clone();
            tokio::spawn(async move { log.append(event(i)).await })
        })
        .collect();
    wait_for_depth(&env.log, 4).await;
    let started = Instant::now();
    assert_eq!(
        env.log.append(event(5)).await,
        Err(AuditError::Unavailable(Unavailable::QueueFull))
    );
    assert!(started.elapsed() < Duration::from_millis(50));
    blocker.release().await;
    assert_eq!(first.await.unwrap().unwrap().seq, 1);
    let mut seqs: Vec<i64> = Vec::new();
    for task in queued {
        seqs.push(task.await.unwrap().unwrap().seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, vec![2, 3, 4, 5]);
}

// PostgreSQL only: several replicas, and a duplicate seq (which needs the primary key
// dropped, something SQLite cannot do to a rowid table).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_postgres_keep_one_chain() {
    let env = env(Engine::Postgres).await;
    let other_store = ControlStore::open(Some(&env.db.url), Path::new("unused"))
        .await
        .unwrap();
    let other = AuditLog::start(other_store, &AuditConfig::default())
        .await
        .unwrap();
    let follower = env.log.follow(None);

    let mut tasks = Vec::new();
    for (r, log) in [env.log.clone(), other.clone()].into_iter().enumerate() {
        for w in 0..10 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..15 {
                    seqs.push(log.append(event(r * 1000 + w * 15 + i)).await.unwrap().seq);
                }
                seqs
            }));
        }
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.extend(task.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=300).collect::<Vec<_>>());
    for log in [&env.log, &other] {
        let report = log.verify().await.unwrap();
        assert!(report.ok && report.events_checked == 300, "{report:?}");
    }
    // A follower on one replica sees the other's events too (through the store).
    let followed: Vec<i64> = tokio::time::timeout(
        Duration::from_secs(20),
        follower
            .take(300)
            .map(|e| e.unwrap().seq)
            .collect::<Vec<_>>(),
    )
    .await
    .expect("follower stalled");
    assert_eq!(followed, (1..=300).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_seq_is_detected_on_postgres() {
    let env = env(Engine::Postgres).await;
    env.append_n(10).await;
    let events = env.all_events().await;
    env.unguard().await;
    env.db
        .exec("ALTER TABLE audit_events DROP CONSTRAINT audit_events_pkey")
        .await;
    // A second, well-formed seq 7 that links to seq 6.
    env.insert_row(&forge(7, &events[5].hash, 7)).await;
    let broken = expect_broken(&env, 7, Problem::Inserted).await;
    assert!(broken.detail.contains("twice"), "{broken:?}");
}
