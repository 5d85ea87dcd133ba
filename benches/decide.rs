//! The hot path before any database work: parse + classify a statement and decide on it
//! with the built-in Cedar policies; then, per classified column of its result, whether
//! the caller may see raw values (`may_unmask`).
//!
//! `cargo bench --bench decide`; compare the medians within one run (machines are noisy).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use gatehouse::config::PolicyConfig;
use gatehouse::datasource::Driver;
use gatehouse::identity::{Principal, PrincipalKind};
use gatehouse::intent;
use gatehouse::policy::{ColumnResource, PolicyEngine, Resource};

const THREE_TABLE_JOIN: &str = "SELECT c.full_name, o.id, o.amount_cents, i.quantity \
     FROM customers c \
     JOIN orders o ON o.customer_id = c.id \
     JOIN order_items i ON i.order_id = o.id \
     WHERE c.id = $1 AND o.status = 'paid' \
     ORDER BY o.id DESC LIMIT 50";

fn hot_path(c: &mut Criterion) {
    let policy = PolicyEngine::load(&PolicyConfig::default()).expect("built-in policies load");
    let principal = Principal::assumed("agent-7", PrincipalKind::Agent, &["analysts".to_owned()]);
    let resource = Resource {
        datasource: "shop_prod",
        environment: "prod",
    };
    let intent = intent::analyze(Driver::Postgres, THREE_TABLE_JOIN).expect("parses");

    // sqlparser alone: the floor under parse+classify.
    c.bench_function("sqlparser parse only (3-table join)", |b| {
        b.iter(|| {
            sqlparser::parser::Parser::parse_sql(
                &sqlparser::dialect::PostgreSqlDialect {},
                black_box(THREE_TABLE_JOIN),
            )
        })
    });
    c.bench_function("parse+classify (3-table join)", |b| {
        b.iter(|| intent::analyze(Driver::Postgres, black_box(THREE_TABLE_JOIN)))
    });
    c.bench_function("decide (3-table join)", |b| {
        b.iter(|| policy.decide(&principal, black_box(&intent), &resource, false))
    });
    c.bench_function("parse+classify+decide (3-table join)", |b| {
        b.iter(|| {
            let intent =
                intent::analyze(Driver::Postgres, black_box(THREE_TABLE_JOIN)).expect("parses");
            policy.decide(&principal, &intent, &resource, false)
        })
    });
}

/// One `may_unmask` call against the built-in set, asked again for the same column (the
/// answer remembered, as for every later result of the same query): a pii-reader who is
/// allowed (one permit matches) and an agent who is denied (its forbid matches); and asked
/// for a column never asked about before (entity store built, request evaluated).
fn unmask(c: &mut Criterion) {
    let policy = PolicyEngine::load(&PolicyConfig::default()).expect("built-in policies load");
    let intent = intent::analyze(Driver::Postgres, THREE_TABLE_JOIN).expect("parses");
    let email = ColumnResource {
        datasource: "shop_prod",
        environment: "prod",
        table: "customers",
        column: "email",
        classification: "pii.email",
    };
    let reader = Principal::assumed("alice", PrincipalKind::Human, &["pii-readers".to_owned()]);
    assert!(policy.may_unmask(&reader, &intent, &email).allowed);
    c.bench_function("may_unmask (pii-reader, allowed)", |b| {
        b.iter(|| policy.may_unmask(&reader, black_box(&intent), black_box(&email)))
    });
    let agent = Principal::assumed("agent-7", PrincipalKind::Agent, &["pii-readers".to_owned()]);
    assert!(!policy.may_unmask(&agent, &intent, &email).allowed);
    c.bench_function("may_unmask (agent, denied)", |b| {
        b.iter(|| policy.may_unmask(&agent, black_box(&intent), black_box(&email)))
    });
    let mut asked = 0u64;
    c.bench_function("may_unmask (pii-reader, new column)", |b| {
        b.iter_batched(
            || {
                asked += 1;
                format!("column_{asked}")
            },
            |name| {
                let column = ColumnResource {
                    column: &name,
                    ..email
                };
                policy.may_unmask(&reader, black_box(&intent), &column)
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, hot_path, unmask);
criterion_main!(benches);
