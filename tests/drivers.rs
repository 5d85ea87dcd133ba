//! The real server in front of real PostgreSQL, MariaDB and SQLite: every common column
//! type over REST and gRPC, typed parameters, row caps on huge results, statement
//! timeouts, the read-only backstop, and unreachable databases.

mod common;

use common::db::TestDb;
use common::{TestServer, authed, datasource_toml};
use gatehouse::identity::PrincipalKind;
use gatehouse::proto;
use gatehouse::proto::value::Kind;
use serde_json::{Value, json};

async fn server_for(db: &TestDb, extra: &str) -> TestServer {
    TestServer::start(&datasource_toml("db", "dev", db, extra)).await
}

/// A person allowed to see personal data raw: type mapping is checked on values masking
/// leaves alone (an `inet` column is an IP address, which agents see masked).
fn pii_reader(server: &TestServer) -> String {
    server.token("ada", PrincipalKind::Human, &["pii-readers"])
}

/// Column name → (type, first-row value) of a `SELECT *` over REST.
async fn typed_row(server: &TestServer, sql: &str) -> Vec<(String, String, Value)> {
    let token = pii_reader(server);
    let reply = server
        .post(
            "/v1/query",
            Some(&token),
            &json!({"datasource": "db", "sql": sql}),
        )
        .await;
    let body = reply.ok();
    body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .zip(body["rows"][0].as_array().unwrap())
        .map(|(c, v)| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["type"].as_str().unwrap().to_owned(),
                v.clone(),
            )
        })
        .collect()
}

#[track_caller]
fn expect(row: &[(String, String, Value)], column: &str, type_name: &str, value: Value) {
    let (_, actual_type, actual) = row
        .iter()
        .find(|(name, _, _)| name == column)
        .unwrap_or_else(|| panic!("no column {column}"));
    assert_eq!(
        (actual_type.as_str(), actual),
        (type_name, &value),
        "column {column}"
    );
}

/// Every value of the first row over gRPC, by column name.
async fn grpc_row(server: &TestServer, sql: &str) -> Vec<(String, Option<Kind>)> {
    let token = pii_reader(server);
    let reply = server
        .grpc()
        .await
        .query(authed(
            proto::QueryRequest {
                datasource: "db".into(),
                sql: sql.into(),
                params: vec![],
                max_rows: None,
                approval_id: String::new(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    reply
        .columns
        .iter()
        .zip(reply.rows[0].values.iter())
        .map(|(c, v)| (c.name.clone(), v.kind.clone()))
        .collect()
}

fn kind<'a>(row: &'a [(String, Option<Kind>)], column: &str) -> &'a Kind {
    row.iter()
        .find(|(name, _)| name == column)
        .and_then(|(_, kind)| kind.as_ref())
        .unwrap_or_else(|| panic!("no value for {column}"))
}

#[tokio::test]
async fn postgres_types_over_rest_and_grpc() {
    let db = TestDb::postgres().await;
    db.exec(
        r#"CREATE TABLE typed (
            b bool, i2 int2, i4 int4, i8 int8, big int8, f4 float4, f8 float8, fnan float8,
            n numeric, nnan numeric, t text, vc varchar(20), c char(3), by bytea, d date,
            tm time, ts timestamp, tz timestamptz, iv interval, u uuid, j json, jb jsonb,
            ip inet, ai int4[], at text[], nul text
        );
        INSERT INTO typed VALUES (
            true, -32768, 2147483647, 9007199254740993, 9223372036854775807, 1.5, 2.25, 'NaN',
            '-123456789012345678901234567890.0123456789', 'NaN', 'héllo ✓', 'var', 'ab', '\xdeadbeef',
            '2024-02-29', '13:45:30.123456', '2024-02-29 13:45:30.5', '2024-02-29 13:45:30+02',
            '1 day 02:03:04', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"k": [1, 2]}', '{"z": null}',
            '192.168.0.1/24', '{1,2,3}', '{"a","b"}', NULL
        );"#,
    )
    .await;
    let server = server_for(&db, "").await;
    let row = typed_row(&server, "SELECT * FROM typed").await;
    expect(&row, "b", "bool", json!(true));
    expect(&row, "i2", "int2", json!(-32768));
    expect(&row, "i4", "int4", json!(2147483647));
    expect(&row, "i8", "int8", json!("9007199254740993"));
    expect(&row, "big", "int8", json!("9223372036854775807"));
    expect(&row, "f4", "float4", json!(1.5));
    expect(&row, "f8", "float8", json!(2.25));
    expect(&row, "fnan", "float8", json!("NaN"));
    expect(
        &row,
        "n",
        "numeric",
        json!("-123456789012345678901234567890.0123456789"),
    );
    expect(&row, "nnan", "numeric", json!("NaN"));
    expect(&row, "t", "text", json!("héllo ✓"));
    expect(&row, "vc", "varchar", json!("var"));
    expect(&row, "c", "bpchar", json!("ab "));
    expect(&row, "by", "bytea", json!("3q2+7w=="));
    expect(&row, "d", "date", json!("2024-02-29"));
    expect(&row, "tm", "time", json!("13:45:30.123456"));
    expect(&row, "ts", "timestamp", json!("2024-02-29T13:45:30.500000"));
    expect(&row, "tz", "timestamptz", json!("2024-02-29T11:45:30Z"));
    expect(
        &row,
        "u",
        "uuid",
        json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    );
    expect(&row, "j", "json", json!({"k": [1, 2]}));
    expect(&row, "jb", "jsonb", json!({"z": null}));
    expect(&row, "ip", "inet", json!("192.168.0.1/24"));
    // The same column as an agent sees it.
    let masked = server.query("db", "SELECT ip FROM typed", json!([])).await;
    let masked = masked.ok();
    assert_eq!(masked["columns"][0]["masked"], true, "{masked}");
    assert_eq!(
        masked["rows"][0][0], "[redacted:pii.ip_address]",
        "{masked}"
    );
    expect(&row, "ai", "int4[]", json!([1, 2, 3]));
    expect(&row, "at", "text[]", json!(["a", "b"]));
    expect(&row, "nul", "text", Value::Null);
    let (_, _, interval) = row.iter().find(|(n, _, _)| n == "iv").unwrap();
    assert!(interval.is_string(), "{interval}");

    let grpc = grpc_row(&server, "SELECT * FROM typed").await;
    assert_eq!(kind(&grpc, "big"), &Kind::IntValue(i64::MAX));
    assert_eq!(
        kind(&grpc, "by"),
        &Kind::BytesValue(vec![0xde, 0xad, 0xbe, 0xef])
    );
    assert_eq!(
        kind(&grpc, "n"),
        &Kind::DecimalValue("-123456789012345678901234567890.0123456789".into())
    );
    assert_eq!(
        kind(&grpc, "tz"),
        &Kind::TimestamptzValue("2024-02-29T11:45:30Z".into())
    );
    assert_eq!(
        kind(&grpc, "ts"),
        &Kind::TimestampValue("2024-02-29T13:45:30.500000".into())
    );
    assert_eq!(kind(&grpc, "d"), &Kind::DateValue("2024-02-29".into()));
    assert_eq!(kind(&grpc, "nul"), &Kind::NullValue(0));
    let Kind::JsonValue(json_text) = kind(&grpc, "j") else {
        panic!("json column is not json_value");
    };
    assert_eq!(
        serde_json::from_str::<Value>(json_text).unwrap(),
        json!({"k": [1, 2]})
    );
    let Kind::ArrayValue(list) = kind(&grpc, "ai") else {
        panic!("int4[] is not array_value");
    };
    assert_eq!(list.values.len(), 3);
}

#[tokio::test]
async fn mariadb_types_over_rest_and_grpc() {
    let db = TestDb::mariadb().await;
    db.exec(
        "CREATE TABLE typed (
            ti TINYINT, si SMALLINT, mi MEDIUMINT, i INT, bi BIGINT, ubi BIGINT UNSIGNED,
            bo BOOLEAN, f FLOAT, d DOUBLE, de DECIMAL(30,10), c CHAR(3), vc VARCHAR(20),
            tx TEXT, bin VARBINARY(8), bl BLOB, dt DATE, tm TIME, dtm DATETIME(6), ts TIMESTAMP NULL,
            y YEAR, j JSON, e ENUM('red','green'), nul VARCHAR(5)
        );
        INSERT INTO typed VALUES (
            -128, -32768, 8388607, 2147483647, 9007199254740993, 18446744073709551615,
            TRUE, 1.5, 2.25, -12345678901234567890.0123456789, 'ab', 'var',
            'héllo ✓', X'DEADBEEF', X'00FF', '2024-02-29', '-838:59:59', '2024-02-29 13:45:30.500000', '2024-02-29 13:45:30',
            2024, '{\"k\": [1, 2]}', 'green', NULL
        );",
    )
    .await;
    let server = server_for(&db, "").await;
    let row = typed_row(&server, "SELECT * FROM typed").await;
    expect(&row, "ti", "tinyint", json!(-128));
    expect(&row, "si", "smallint", json!(-32768));
    expect(&row, "mi", "mediumint", json!(8388607));
    expect(&row, "i", "int", json!(2147483647));
    expect(&row, "bi", "bigint", json!("9007199254740993"));
    expect(
        &row,
        "ubi",
        "bigint unsigned",
        json!("18446744073709551615"),
    );
    // MariaDB has no boolean type: BOOLEAN is TINYINT(1).
    expect(&row, "bo", "tinyint", json!(1));
    expect(&row, "f", "float", json!(1.5));
    expect(&row, "d", "double", json!(2.25));
    expect(
        &row,
        "de",
        "decimal",
        json!("-12345678901234567890.0123456789"),
    );
    expect(&row, "c", "char", json!("ab"));
    expect(&row, "vc", "varchar", json!("var"));
    expect(&row, "tx", "text", json!("héllo ✓"));
    expect(&row, "bin", "varbinary", json!("3q2+7w=="));
    expect(&row, "bl", "blob", json!("AP8="));
    expect(&row, "dt", "date", json!("2024-02-29"));
    expect(&row, "dtm", "datetime", json!("2024-02-29T13:45:30.500000"));
    expect(&row, "y", "year", json!(2024));
    expect(&row, "e", "enum", json!("green"));
    expect(&row, "nul", "varchar", Value::Null);
    let (_, _, time) = row.iter().find(|(n, _, _)| n == "tm").unwrap();
    assert_eq!(time, &json!("-838:59:59"));
    let (_, _, json_col) = row.iter().find(|(n, _, _)| n == "j").unwrap();
    assert!(json_col.as_str().unwrap().contains("\"k\""), "{json_col}");
    let (_, ts_type, ts) = row.iter().find(|(n, _, _)| n == "ts").unwrap();
    assert_eq!(ts_type, "timestamp");
    assert!(ts.as_str().unwrap().starts_with("2024-02-29T"), "{ts}");

    let grpc = grpc_row(&server, "SELECT * FROM typed").await;
    assert_eq!(kind(&grpc, "ubi"), &Kind::UintValue(u64::MAX));
    assert_eq!(kind(&grpc, "bi"), &Kind::IntValue(9_007_199_254_740_993));
    assert_eq!(
        kind(&grpc, "de"),
        &Kind::DecimalValue("-12345678901234567890.0123456789".into())
    );
    assert_eq!(
        kind(&grpc, "bin"),
        &Kind::BytesValue(vec![0xde, 0xad, 0xbe, 0xef])
    );
}

#[tokio::test]
async fn sqlite_types_over_rest_and_grpc() {
    let db = TestDb::sqlite();
    db.exec(
        "CREATE TABLE typed (i INTEGER, big INTEGER, r REAL, t TEXT, b BLOB, n NUMERIC, d DATETIME, nul TEXT, untyped);
         INSERT INTO typed VALUES (42, 9223372036854775807, 2.5, 'héllo ✓', X'DEADBEEF', 10, '2024-02-29 13:45:30', NULL, 'x');",
    )
    .await;
    let server = server_for(&db, "").await;
    let row = typed_row(&server, "SELECT * FROM typed").await;
    expect(&row, "i", "integer", json!(42));
    expect(&row, "big", "integer", json!("9223372036854775807"));
    expect(&row, "r", "real", json!(2.5));
    expect(&row, "t", "text", json!("héllo ✓"));
    expect(&row, "b", "blob", json!("3q2+7w=="));
    expect(&row, "d", "datetime", json!("2024-02-29 13:45:30"));
    expect(&row, "nul", "text", Value::Null);
    let grpc = grpc_row(&server, "SELECT * FROM typed").await;
    assert_eq!(kind(&grpc, "big"), &Kind::IntValue(i64::MAX));
    assert_eq!(kind(&grpc, "r"), &Kind::FloatValue(2.5));
}

#[tokio::test]
async fn params_bind_as_typed_values_on_every_driver() {
    let pg = TestDb::postgres().await;
    let server = server_for(&pg, "").await;
    let row = server
        .query(
            "db",
            "SELECT $1::int8 + 1 AS n, $2::text AS t, $3::bool AS b, $4::float8 AS f, $5::jsonb AS j, $6::text IS NULL AS is_null",
            json!([41, "it's", true, 0.5, {"a": [1]}, null]),
        )
        .await;
    assert_eq!(
        row.ok()["rows"][0],
        json!([42, "it's", true, 0.5, {"a": [1]}, true])
    );

    let maria = TestDb::mariadb().await;
    let server = server_for(&maria, "").await;
    let row = server
        .query(
            "db",
            "SELECT ? + 1 AS n, ? AS t, ? IS NULL AS is_null, ? * 2 AS f",
            json!([41, "it's", null, 0.25]),
        )
        .await;
    let values = &row.ok()["rows"][0];
    assert_eq!(values[0], json!(42));
    assert_eq!(values[1], json!("it's"));
    assert_eq!(values[2], json!(1));
    assert_eq!(values[3], json!(0.5));

    let sqlite = TestDb::sqlite();
    let server = server_for(&sqlite, "").await;
    let row = server
        .query(
            "db",
            "SELECT ? + 1, ?, ? IS NULL, ? * 2",
            json!([41, "it's", null, 0.25]),
        )
        .await;
    assert_eq!(row.ok()["rows"][0], json!([42, "it's", 1, 0.5]));
}

#[tokio::test]
async fn huge_results_stop_at_the_cap_and_the_connection_stays_usable() {
    for db in [
        TestDb::postgres().await,
        TestDb::mariadb().await,
        TestDb::sqlite(),
    ] {
        let server = server_for(&db, "max_rows = 100").await;
        let sql = match db.engine {
            common::db::Engine::Postgres => "SELECT g FROM generate_series(1, 5000000) g",
            // MariaDB caps recursive CTEs at 1,000 iterations; its sequence engine does not.
            common::db::Engine::MariaDb => "SELECT seq FROM seq_1_to_5000000",
            common::db::Engine::Sqlite => {
                "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 5000000) SELECT n FROM c"
            }
        };
        let reply = server.query("db", sql, json!([])).await;
        assert_eq!(reply.ok()["row_count"], 100, "{:?}", db.engine);
        assert_eq!(reply.body["truncated"], true);
        // The pool has two connections; a few more queries prove none is stuck draining.
        for _ in 0..4 {
            let again = server.query("db", "SELECT 1", json!([])).await;
            assert_eq!(again.ok()["rows"][0][0], json!(1), "{:?}", db.engine);
        }
    }
}

#[tokio::test]
async fn statement_timeout_answers_504_on_every_driver() {
    for db in [
        TestDb::postgres().await,
        TestDb::mariadb().await,
        TestDb::sqlite(),
    ] {
        let server = server_for(&db, "statement_timeout_ms = 300").await;
        let sql = match db.engine {
            common::db::Engine::Postgres => "SELECT count(*) FROM generate_series(1, 1000000000)",
            common::db::Engine::MariaDb => {
                "SELECT count(*) FROM seq_1_to_100000 a, seq_1_to_100000 b"
            }
            common::db::Engine::Sqlite => {
                "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000000000) SELECT count(*) FROM c"
            }
        };
        let started = std::time::Instant::now();
        let reply = server.query("db", sql, json!([])).await;
        reply.problem(504, "timeout");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "{:?} took {:?}",
            db.engine,
            started.elapsed()
        );
        let again = server.query("db", "SELECT 1", json!([])).await;
        assert_eq!(again.ok()["rows"][0][0], json!(1), "{:?}", db.engine);
    }
}

/// A function whose body writes, called from a SELECT the parser rightly sees as a read:
/// the database's read-only connection is what stops it.
#[tokio::test]
async fn hidden_writes_fail_on_the_read_only_connection() {
    let pg = TestDb::postgres().await;
    pg.exec(
        "CREATE TABLE t (x int); INSERT INTO t VALUES (0);
         CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS 'UPDATE t SET x = 1 RETURNING 1';",
    )
    .await;
    let server = server_for(&pg, "").await;
    let detail = server
        .query("db", "SELECT sneaky()", json!([]))
        .await
        .problem(403, "forbidden");
    assert!(detail.contains("read-only"), "{detail}");
    assert_eq!(
        server.query("db", "SELECT x FROM t", json!([])).await.ok()["rows"][0][0],
        0
    );

    let maria = TestDb::mariadb().await;
    maria
        .exec(
            "CREATE TABLE t (x INT); INSERT INTO t VALUES (0);
             CREATE FUNCTION sneaky() RETURNS INT MODIFIES SQL DATA BEGIN UPDATE t SET x = 1; RETURN 1; END",
        )
        .await;
    let server = server_for(&maria, "").await;
    server
        .query("db", "SELECT sneaky()", json!([]))
        .await
        .problem(403, "forbidden");
    assert_eq!(
        server.query("db", "SELECT x FROM t", json!([])).await.ok()["rows"][0][0],
        0
    );
}

#[tokio::test]
async fn unreachable_database_is_503_and_not_ready() {
    let toml = "[[datasources]]\nname = \"down\"\nenvironment = \"prod\"\nurl = \"postgres://nobody@127.0.0.1:1/none\"\nstatement_timeout_ms = 1000\n";
    let server = TestServer::start(toml).await;
    let started = std::time::Instant::now();
    let detail = server
        .query("down", "SELECT 1", json!([]))
        .await
        .problem(503, "datasource_unavailable");
    assert!(
        !detail.contains("nobody"),
        "no connection details leak: {detail}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let ready = server.get("/readyz", None).await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.body["status"], "not_ready");
    let check = ready.body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "datasource:down")
        .unwrap()
        .clone();
    assert_eq!(check["ok"], false);
    assert!(!check["error"].as_str().unwrap().contains("nobody"));
}

#[tokio::test]
async fn schema_lists_tables_on_every_driver() {
    for db in [
        TestDb::postgres().await,
        TestDb::mariadb().await,
        TestDb::sqlite(),
    ] {
        db.exec(
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner VARCHAR(50) NOT NULL, note TEXT)",
        )
        .await;
        let server = server_for(&db, "").await;
        let token = server.agent_token();
        let schema = server.get("/v1/datasources/db/schema", Some(&token)).await;
        let tables = schema.ok()["tables"].as_array().unwrap();
        let accounts = tables
            .iter()
            .find(|t| t["name"] == "accounts")
            .unwrap_or_else(|| panic!("{:?}: {tables:?}", db.engine));
        let columns: Vec<(&str, bool)> = accounts["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap(),
                    c["nullable"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            columns,
            [("id", false), ("owner", false), ("note", true)],
            "{:?}",
            db.engine
        );
    }
}
