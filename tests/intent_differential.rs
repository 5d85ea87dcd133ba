//! Differential test of the classifier against PostgreSQL itself: every corpus statement
//! the classifier calls read-only runs inside `BEGIN READ ONLY`, and PostgreSQL must not
//! refuse it for being a write (SQLSTATE 25006). A statement the classifier misjudged as a
//! read would fail here.

mod common;

use common::db::TestDb;
use gatehouse::datasource::Driver;
use gatehouse::intent;
use sqlx::{Connection, Executor};

const READ_ONLY_VIOLATION: &str = "25006";

#[derive(serde::Deserialize)]
struct Corpus {
    case: Vec<toml::Value>,
}

#[tokio::test]
async fn every_statement_classified_read_only_is_read_only_for_postgres() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/intent");
    let corpus: Corpus =
        toml::from_str(&std::fs::read_to_string(root.join("corpus.toml")).unwrap()).unwrap();
    let db = TestDb::postgres().await;
    db.exec(&std::fs::read_to_string(root.join("schema_postgres.sql")).unwrap())
        .await;

    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    conn.execute("SET statement_timeout = '2s'").await.unwrap();
    let (mut checked, mut other_errors, mut violations) = (0, Vec::new(), Vec::new());
    for case in &corpus.case {
        if case.get("dialect").and_then(|d| d.as_str()) != Some("postgres") {
            continue;
        }
        let sql = case["sql"].as_str().unwrap();
        let Ok(intent) = intent::analyze(Driver::Postgres, sql) else {
            continue;
        };
        if !intent.is_read_only() {
            continue;
        }
        checked += 1;
        conn.execute("BEGIN READ ONLY").await.unwrap();
        let result = conn
            .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())))
            .await;
        conn.execute("ROLLBACK").await.unwrap();
        if let Err(sqlx::Error::Database(error)) = result {
            if error.code().as_deref() == Some(READ_ONLY_VIOLATION) {
                violations.push(format!("{sql}\n    {}", error.message()));
            } else {
                other_errors.push(format!("{sql}\n    {}", error.message()));
            }
        }
    }
    assert!(
        checked >= 50,
        "only {checked} read-only PostgreSQL statements in the corpus"
    );
    assert!(
        violations.is_empty(),
        "classified read-only, but PostgreSQL refused them as writes:\n{}",
        violations.join("\n")
    );
    // Statements that fail for other reasons did not prove anything: keep the fixture
    // schema complete enough that every read actually runs.
    assert!(
        other_errors.is_empty(),
        "read-only corpus statements that did not run against schema_postgres.sql:\n{}",
        other_errors.join("\n")
    );
}
