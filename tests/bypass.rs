//! Bypass suite: every way we could think of to get a write, DDL, session change or
//! deny-listed call past policy, against production datasources on real PostgreSQL,
//! MariaDB and SQLite. Each attempt must be refused before or by the database, and the
//! data must be unchanged afterwards.

mod common;

use common::db::{Engine, TestDb};
use common::{TestServer, datasource_toml};
use gatehouse::identity::PrincipalKind;
use serde_json::json;

/// Sends every statement as an agent, and every one that is not a bounded row insert as a
/// human DBA (who may run those in production), to a `prod` datasource; asserts each is
/// refused (403 or 400: never run) and that `t` still holds exactly (1), (2), (3).
async fn assert_all_refused(db: &TestDb, statements: &[&str]) {
    let server = TestServer::start(&datasource_toml(
        "prod_db",
        "prod",
        db,
        "statement_timeout_ms = 2000",
    ))
    .await;
    let agent = server.agent_token();
    let dba = server.token("grace", PrincipalKind::Human, &["dba"]);
    let mut leaks = Vec::new();
    for sql in statements {
        let upper = sql.trim_start().to_ascii_uppercase();
        let dba_may_run = ["INSERT", "REPLACE", "MERGE"]
            .iter()
            .any(|keyword| upper.starts_with(keyword));
        let tokens = if dba_may_run {
            vec![&agent]
        } else {
            vec![&agent, &dba]
        };
        for token in tokens {
            let reply = server
                .post(
                    "/v1/query",
                    Some(token),
                    &json!({"datasource": "prod_db", "sql": sql}),
                )
                .await;
            let code = reply.body["code"].as_str().unwrap_or_default();
            // 202 is an approval request: stored, not run.
            let refused = matches!(
                (reply.status, code),
                (403, "denied" | "forbidden") | (400, "unparseable_sql") | (202, _)
            );
            if !refused {
                leaks.push(format!(
                    "{:?} {sql}: {} {}",
                    db.engine, reply.status, reply.body
                ));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "statements that were not refused:\n{}",
        leaks.join("\n")
    );
    let rows = server
        .query("prod_db", "SELECT x FROM t ORDER BY x", json!([]))
        .await;
    assert_eq!(
        rows.ok()["rows"],
        json!([[1], [2], [3]]),
        "{:?}: data changed",
        db.engine
    );
}

const COMMON: &[&str] = &[
    "DELETE FROM t",
    "delete from T",
    "DeLeTe /* hidden */ FrOm t",
    "/* leading comment */ DELETE FROM t WHERE 1 = 1",
    "DELETE FROM t WHERE 'a' = 'a'",
    "DELETE FROM t WHERE NOT false",
    "DELETE FROM t WHERE 1 = 1 OR x = 2",
    "UPDATE t SET x = 9",
    "UPDATE t SET x = 9 WHERE true",
    "DROP TABLE t",
    "SELECT 1; DELETE FROM t",
    "SELECT 1 -- comment\n; DELETE FROM t",
    "SELECT x FROM t; DROP TABLE t",
    "CREATE TABLE t2 AS SELECT * FROM t",
    "ALTER TABLE t ADD COLUMN y INTEGER",
    "INSERT INTO t VALUES (4)",
];

#[tokio::test]
async fn postgres_bypass_attempts_are_refused() {
    let db = TestDb::postgres().await;
    db.exec(
        "CREATE TABLE t (x int PRIMARY KEY); INSERT INTO t VALUES (1), (2), (3);
         CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS 'DELETE FROM t RETURNING 1';
         CREATE PROCEDURE wipe() LANGUAGE sql AS 'DELETE FROM t';",
    )
    .await;
    let mut statements = COMMON.to_vec();
    statements.extend([
        r#"DELETE FROM "t""#,
        "DELETE FROM public.t",
        "TRUNCATE t",
        "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
        "WITH u AS (UPDATE t SET x = x + 10 RETURNING x) SELECT count(*) FROM u",
        "SELECT * INTO t3 FROM t",
        "EXPLAIN ANALYZE DELETE FROM t",
        "EXPLAIN (ANALYZE) DELETE FROM t WHERE x = 1",
        "SELECT sneaky()",
        "SELECT * FROM t WHERE x = sneaky()",
        "CALL wipe()",
        "DO $$ BEGIN DELETE FROM t; END $$",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "SELECT pg_catalog.set_config('transaction_read_only', 'off', true)",
        "SET default_transaction_read_only = off",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        "SET ROLE postgres",
        "RESET ALL",
        "BEGIN",
        "START TRANSACTION READ WRITE",
        "PREPARE p AS DELETE FROM t",
        "COPY t TO PROGRAM 'id'",
        "COPY t FROM '/etc/passwd'",
        "SELECT pg_read_file('/etc/passwd')",
        r#"SELECT "pg_read_file"('/etc/passwd')"#,
        "SELECT * FROM pg_ls_dir('.')",
        "SELECT pg_sleep(5)",
        "SELECT pg_advisory_lock(1)",
        "SELECT lo_import('/etc/passwd')",
        "SELECT pg_terminate_backend(pg_backend_pid())",
        // SQL text as an argument: the tables it reads are not in the statement.
        "SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, ''b''::tsquery')",
        "SELECT * FROM t FOR UPDATE",
        "LOCK TABLE t",
        "GRANT ALL ON t TO PUBLIC",
        "CREATE ROLE intruder",
        "VACUUM t",
        "LISTEN channel",
        "NOTIFY channel",
        "CREATE EXTENSION dblink",
        "INSERT INTO t VALUES (4) ON CONFLICT (x) DO UPDATE SET x = 5",
        "MERGE INTO t USING (SELECT 1 AS x) s ON t.x = s.x WHEN MATCHED THEN DELETE",
    ]);
    assert_all_refused(&db, &statements).await;
}

#[tokio::test]
async fn mariadb_bypass_attempts_are_refused() {
    let db = TestDb::mariadb().await;
    db.exec(
        "CREATE TABLE t (x INT PRIMARY KEY); INSERT INTO t VALUES (1), (2), (3);
         CREATE FUNCTION sneaky() RETURNS INT MODIFIES SQL DATA BEGIN DELETE FROM t; RETURN 1; END;
         CREATE PROCEDURE wipe() DELETE FROM t;",
    )
    .await;
    let mut statements = COMMON.to_vec();
    statements.extend([
        "DELETE FROM `t`",
        "DELETE LOW_PRIORITY FROM t",
        "DELETE FROM t LIMIT 10",
        "UPDATE t SET x = x + 10 LIMIT 1",
        "DELETE t FROM t JOIN t AS u ON t.x = u.x",
        "REPLACE INTO t VALUES (1)",
        "INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE x = 7",
        "TRUNCATE TABLE t",
        "SELECT sneaky()",
        "CALL wipe()",
        "SELECT 1 /*!, sleep(3) */",
        "SELECT 1 /*M!, sleep(3) */",
        "SELECT 1 /*!50000 INTO OUTFILE '/tmp/gatehouse_bypass' */",
        "SELECT * FROM t INTO OUTFILE '/tmp/gatehouse_bypass'",
        "SELECT x INTO @v FROM t LIMIT 1",
        "SELECT LOAD_FILE('/etc/passwd')",
        "SELECT SLEEP(5)",
        "SELECT BENCHMARK(100000000, MD5('x'))",
        "SELECT GET_LOCK('x', 1)",
        "SET SESSION TRANSACTION READ WRITE",
        "SET @@session.sql_mode = ''",
        "SET autocommit = 0",
        "START TRANSACTION",
        "USE mysql",
        "SELECT * FROM t FOR UPDATE",
        "SELECT * FROM t LOCK IN SHARE MODE",
        "LOCK TABLES t WRITE",
        "GRANT ALL ON *.* TO 'gatehouse_test'@'%'",
        "CREATE USER intruder",
        "FLUSH TABLES",
        "OPTIMIZE TABLE t",
        "LOAD DATA INFILE '/etc/passwd' INTO TABLE t",
        "CREATE TEMPORARY TABLE tmp (y INT)",
        "HANDLER t OPEN",
        "DO SLEEP(1)",
        "KILL CONNECTION_ID()",
    ]);
    assert_all_refused(&db, &statements).await;
    assert!(!std::path::Path::new("/tmp/gatehouse_bypass").exists());
}

#[tokio::test]
async fn sqlite_bypass_attempts_are_refused() {
    let db = TestDb::sqlite();
    db.exec("CREATE TABLE t (x INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (2), (3);")
        .await;
    assert_eq!(db.engine, Engine::Sqlite);
    let escape = format!("{}.escape", db.name);
    let attach = format!("ATTACH DATABASE '{escape}' AS escape");
    let vacuum = format!("VACUUM INTO '{escape}'");
    let mut statements = COMMON.to_vec();
    statements.extend([
        "DELETE FROM [t]",
        "REPLACE INTO t VALUES (1)",
        "INSERT OR REPLACE INTO t VALUES (1)",
        "INSERT INTO t VALUES (1) ON CONFLICT (x) DO UPDATE SET x = 8",
        "PRAGMA query_only = 0",
        "PRAGMA writable_schema = ON",
        "PRAGMA journal_mode = DELETE",
        attach.as_str(),
        "DETACH DATABASE main",
        vacuum.as_str(),
        "VACUUM",
        "SELECT load_extension('/tmp/evil')",
        "SELECT writefile('/tmp/gatehouse_bypass', 'x')",
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM t; END",
        "CREATE VIEW v AS SELECT * FROM t",
        "BEGIN",
        "WITH d AS (SELECT 1) DELETE FROM t",
    ]);
    assert_all_refused(&db, &statements).await;
    assert!(!std::path::Path::new(&escape).exists());
    assert!(!std::path::Path::new("/tmp/gatehouse_bypass").exists());
}
