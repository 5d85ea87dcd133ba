//! Sustained audit throughput with durable commits: many tasks append at once, as request
//! handlers do, and each waits for its event to be committed (group commit by the single
//! writer). Runs on a throwaway PostgreSQL database and on a SQLite file.
//!
//! `cargo bench --bench audit`. Each configuration runs a warm-up and then several timed
//! rounds; the median events/s is what to compare. PostgreSQL comes from
//! `GATEHOUSE_TEST_POSTGRES_URL` (an account that may create databases), default as in
//! `scripts/test.sh`; it is skipped with a note when unreachable.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gatehouse::audit::{AuditLog, EventDecision, EventKind, EventPrincipal, NewEvent};
use gatehouse::config::AuditConfig;
use gatehouse::store::ControlStore;
use sqlx::{Connection as _, Executor as _};
use uuid::Uuid;

const APPENDERS: [usize; 2] = [64, 256];
const ROUNDS: usize = 5;
const ROUND: Duration = Duration::from_secs(3);
const WARM_UP: Duration = Duration::from_secs(1);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temporary directory");
        let sqlite = ControlStore::open(None, dir.path())
            .await
            .expect("SQLite control store");
        run("sqlite (WAL, synchronous=FULL)", sqlite).await;

        let admin = std::env::var("GATEHOUSE_TEST_POSTGRES_URL")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| {
                "postgres://gatehouse_test:gatehouse_test@127.0.0.1:5432/postgres".to_owned()
            });
        match ThrowawayPg::create(&admin).await {
            Ok(pg) => {
                let store = ControlStore::open(Some(&pg.url), Path::new("unused"))
                    .await
                    .expect("PostgreSQL control store");
                run("postgresql (synchronous_commit=on)", store.clone()).await;
                if let ControlStore::Postgres(pool) = store {
                    pool.close().await;
                }
                pg.drop_database().await;
            }
            Err(e) => eprintln!("postgresql skipped: {e}"),
        }
    });
}

async fn run(label: &str, store: ControlStore) {
    let log = AuditLog::start(store, &AuditConfig::default())
        .await
        .expect("audit log starts");
    for appenders in APPENDERS {
        round(&log, appenders, WARM_UP).await;
        let mut rates = Vec::new();
        let mut batches = Vec::new();
        for _ in 0..ROUNDS {
            let (rate, batch) = round(&log, appenders, ROUND).await;
            rates.push(rate);
            batches.push(batch);
        }
        rates.sort_by(f64::total_cmp);
        batches.sort_by(f64::total_cmp);
        println!(
            "audit append {label}, {appenders} appenders: median {:.0} events/s \
             (min {:.0}, max {:.0}; {ROUNDS} rounds of {ROUND:?}; median mean batch {:.1})",
            rates[ROUNDS / 2],
            rates[0],
            rates[ROUNDS - 1],
            batches[ROUNDS / 2],
        );
    }
    let started = Instant::now();
    let report = log.verify().await.expect("verify");
    let elapsed = started.elapsed();
    assert!(report.ok, "chain broken after the runs: {report:?}");
    println!(
        "audit verify {label}: {} events in {elapsed:.2?} ({:.0} events/s)",
        report.events_checked,
        report.events_checked as f64 / elapsed.as_secs_f64()
    );
}

/// `appenders` tasks append back to back for `length`; returns committed events per second
/// and the mean batch size.
async fn round(log: &AuditLog, appenders: usize, length: Duration) -> (f64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let before = log.stats();
    let started = Instant::now();
    let tasks: Vec<_> = (0..appenders)
        .map(|task| {
            let (log, stop, committed) = (log.clone(), Arc::clone(&stop), Arc::clone(&committed));
            tokio::spawn(async move {
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    log.append(event(task, n)).await.expect("append");
                    committed.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("appender");
    }
    let elapsed = started.elapsed();
    let after = log.stats();
    let events = committed.load(Ordering::Relaxed);
    let batches = after.committed_batches - before.committed_batches;
    let mean_batch =
        (after.committed_events - before.committed_events) as f64 / batches.max(1) as f64;
    (events as f64 / elapsed.as_secs_f64(), mean_batch)
}

fn event(task: usize, n: usize) -> NewEvent {
    let mut event = NewEvent::new(EventKind::Query, Uuid::new_v4());
    event.principal = Some(EventPrincipal {
        sub: format!("agent-{task}"),
        kind: "agent".into(),
        groups: vec!["analysts".into()],
        on_behalf_of: Some("ada@example.com".into()),
    });
    event.client.address = Some("10.1.2.3".into());
    event.client.user_agent = Some("gatehouse-bench/1".into());
    event.datasource = Some("shop_prod".into());
    event.environment = Some("prod".into());
    event.statement = Some(format!(
        "SELECT c.full_name, o.id, o.amount_cents FROM customers c JOIN orders o \
         ON o.customer_id = c.id WHERE c.id = {n} ORDER BY o.id DESC LIMIT 50"
    ));
    event.fingerprint = Some("9f2c0e6a1b".into());
    event.decision = Some(EventDecision {
        effect: "allow".into(),
        policies: vec!["analysts-read-prod".into()],
        reasons: vec!["analysts may read orders".into()],
    });
    event
}

struct ThrowawayPg {
    admin: String,
    name: String,
    url: String,
}

impl ThrowawayPg {
    async fn create(admin: &str) -> Result<ThrowawayPg, sqlx::Error> {
        let name = format!("gh_bench_{}", &Uuid::new_v4().simple().to_string()[..12]);
        let mut conn = sqlx::PgConnection::connect(admin).await?;
        conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{name}\""
        ))))
        .await?;
        let _ = conn.close().await;
        let base = admin.rsplit_once('/').map_or(admin, |(base, _)| base);
        Ok(ThrowawayPg {
            admin: admin.to_owned(),
            url: format!("{base}/{name}"),
            name,
        })
    }

    async fn drop_database(self) {
        let dropped = async {
            let mut conn = sqlx::PgConnection::connect(&self.admin).await?;
            conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))))
            .await?;
            conn.close().await
        };
        if let Err(e) = dropped.await {
            eprintln!("warning: cannot drop {}: {e}", self.name);
        }
    }
}
