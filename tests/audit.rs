//! The audit trail through the real server: write-ahead (no audit, no execution), what
//! events hold, tamper evidence, concurrency, cursor paging, NDJSON, the gRPC stream, and
//! auditor-only access. The control store is the embedded default, `DATA_DIR/control.db`,
//! which the tests open directly to break or tamper with it.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::db::TestDb;
use common::{TestServer, authed, datasource_toml};
use gatehouse::identity::PrincipalKind;
use gatehouse::proto;
use gatehouse::proto::audit_client::AuditClient;
use serde_json::{Value, json};
use sqlx::Connection as _;

/// A server over one dev SQLite datasource `dev_db` holding `t(id, note)` with three rows.
async fn server_with_table() -> (TestServer, TestDb) {
    let db = TestDb::sqlite();
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT)")
        .await;
    db.exec("INSERT INTO t (id, note) VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        .await;
    let server = TestServer::start(&datasource_toml("dev_db", "dev", &db, "")).await;
    (server, db)
}

fn auditor(server: &TestServer) -> String {
    server.token("ines", PrincipalKind::Human, &["auditor"])
}

async fn control_store(server: &TestServer) -> sqlx::SqliteConnection {
    let path = server.data_dir.path().join("control.db");
    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open control store")
}

/// What someone with write access to the file does first: remove the append-only
/// triggers. The hash chain is what must still catch them.
async fn drop_guards(store: &mut sqlx::SqliteConnection) {
    for trigger in ["audit_events_no_update", "audit_events_no_delete"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP TRIGGER {trigger}")))
            .execute(&mut *store)
            .await
            .expect("drop trigger");
    }
}

async fn row_count(db: &TestDb) -> i64 {
    let mut conn = sqlx::SqliteConnection::connect(&db.url)
        .await
        .expect("open");
    sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(&mut conn)
        .await
        .expect("count")
}

/// Every event, following `next_cursor` until the trail is drained.
async fn all_events(server: &TestServer, token: &str, filter: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = String::new();
    loop {
        let path = format!("/v1/audit/events?limit=50{filter}{after}");
        let reply = server.get(&path, Some(token)).await;
        let page = reply.ok().clone();
        events.extend(page["events"].as_array().cloned().unwrap_or_default());
        after = format!("&after={}", page["next_cursor"].as_str().expect("cursor"));
        if page["has_more"] != json!(true) {
            return events;
        }
    }
}

#[tokio::test]
async fn nothing_runs_when_the_audit_trail_cannot_record_it() {
    let (server, db) = server_with_table().await;
    let agent = server.agent_token();
    let insert = json!({"datasource": "dev_db", "sql": "INSERT INTO t (id, note) VALUES (4, 'd')"});
    // The store works: the insert runs.
    server.post("/v1/query", Some(&agent), &insert).await.ok();
    assert_eq!(row_count(&db).await, 4);

    // Take the events table away behind the service's back.
    let mut store = control_store(&server).await;
    sqlx::query("ALTER TABLE audit_events RENAME TO audit_events_away")
        .execute(&mut store)
        .await
        .expect("rename");
    let insert = json!({"datasource": "dev_db", "sql": "INSERT INTO t (id, note) VALUES (5, 'e')"});
    let reply = server.post("/v1/query", Some(&agent), &insert).await;
    reply.problem(503, "audit_unavailable");
    let read = server
        .post(
            "/v1/query",
            Some(&agent),
            &json!({"datasource": "dev_db", "sql": "SELECT id FROM t"}),
        )
        .await;
    read.problem(503, "audit_unavailable");
    assert_eq!(
        row_count(&db).await,
        4,
        "the insert ran without an audit record"
    );

    // Back again: requests run and the chain is still whole.
    sqlx::query("ALTER TABLE audit_events_away RENAME TO audit_events")
        .execute(&mut store)
        .await
        .expect("rename back");
    let mut recovered = false;
    for _ in 0..50 {
        let reply = server.post("/v1/query", Some(&agent), &insert).await;
        if reply.status == 200 {
            recovered = true;
            break;
        }
        reply.problem(503, "audit_unavailable");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "the service did not recover once the store came back"
    );
    assert_eq!(row_count(&db).await, 5);
    let verify = server
        .get("/v1/audit/verify", Some(&auditor(&server)))
        .await;
    assert_eq!(verify.ok()["ok"], true, "{}", verify.body);
}

#[tokio::test]
async fn query_events_hold_the_decision_before_and_the_outcome_after() {
    let (server, _db) = server_with_table().await;
    let agent = server.agent_token();
    let reply = server
        .request(reqwest::Method::POST, "/v1/query")
        .bearer_auth(&agent)
        .header("user-agent", "audit-test/1.0")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .json(&json!({
            "datasource": "dev_db",
            "sql": "SELECT id, note FROM t WHERE note <> 'grace.hopper@example.com' ORDER BY id"
        }))
        .send()
        .await
        .expect("sent");
    let reply = common::reply(reply).await;
    let request_id = reply.ok()["request_id"].as_str().expect("id").to_owned();

    let token = auditor(&server);
    let events = all_events(&server, &token, &format!("&request_id={request_id}")).await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["query", "query_completed"], "{events:#?}");
    let (query, completed) = (&events[0], &events[1]);
    assert!(query["seq"].as_i64() < completed["seq"].as_i64());
    assert_eq!(query["principal"]["sub"], "agent-7");
    assert_eq!(query["principal"]["kind"], "agent");
    assert_eq!(query["client"]["user_agent"], "audit-test/1.0");
    assert_eq!(query["client"]["address"], "127.0.0.1");
    assert_eq!(
        query["client"]["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(query["datasource"], "dev_db");
    assert_eq!(query["environment"], "dev");
    assert_eq!(query["decision"]["effect"], "allow");
    assert_eq!(query["intent"]["actions"], json!(["select"]));
    assert_eq!(query["intent"]["tables"], json!(["t:read"]));
    assert_eq!(query["fingerprint"].as_str().map(str::len), Some(32));
    let statement = query["statement"].as_str().expect("statement");
    assert!(
        !statement.contains("grace.hopper"),
        "PII literal stored in the audit trail: {statement}"
    );
    assert!(statement.contains("SELECT id, note FROM t"), "{statement}");
    assert_eq!(completed["completion"]["rows_returned"], 3);
    assert_eq!(completed["completion"]["error_code"], Value::Null);
    assert_eq!(query["completion"], Value::Null);
}

#[tokio::test]
async fn refusals_and_refused_tokens_are_audited_without_the_token() {
    let (server, _db) = server_with_table().await;
    let agent = server.agent_token();
    let denied = server
        .post(
            "/v1/query",
            Some(&agent),
            &json!({"datasource": "dev_db", "sql": "SELECT 1; SELECT 2"}),
        )
        .await;
    denied.problem(403, "denied");
    let forged = format!("{}x", agent);
    server
        .post(
            "/v1/query",
            Some(&forged),
            &json!({"datasource": "dev_db", "sql": "SELECT 1"}),
        )
        .await
        .problem(401, "unauthenticated");

    let token = auditor(&server);
    let events = all_events(&server, &token, "").await;
    let denial = events
        .iter()
        .find(|e| e["kind"] == "query" && e["decision"]["effect"] == "deny")
        .expect("denied query audited");
    assert_eq!(denial["completion"]["error_code"], "denied");
    let refused = events
        .iter()
        .find(|e| e["kind"] == "auth_failed")
        .expect("refused token audited");
    assert_eq!(refused["principal"], Value::Null);
    assert!(
        refused["auth_error"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    let text = serde_json::to_string(&events).expect("json");
    assert!(!text.contains(&agent), "a token reached the audit trail");
}

#[tokio::test]
async fn only_auditors_read_the_trail_and_every_read_is_recorded() {
    let (server, _db) = server_with_table().await;
    let agent = server.agent_token();
    server
        .get("/v1/audit/events", Some(&agent))
        .await
        .problem(403, "forbidden");
    server
        .get("/v1/audit/verify", Some(&agent))
        .await
        .problem(403, "forbidden");
    server
        .get("/v1/audit/events", None)
        .await
        .problem(401, "unauthenticated");
    let mut client = AuditClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .expect("connect");
    let status = client
        .list_events(authed(proto::ListEventsRequest::default(), &agent))
        .await
        .expect_err("agents may not list");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);

    let token = auditor(&server);
    let reads = all_events(&server, &token, "&kind=audit_read").await;
    let refused = reads
        .iter()
        .filter(|e| e["completion"]["error_code"] == "forbidden")
        .count();
    assert_eq!(refused, 3, "{reads:#?}");
    assert!(reads.iter().any(|e| e["principal"]["sub"] == "ines"));
}

#[tokio::test]
async fn tampering_in_the_database_is_found_at_the_broken_link() {
    let (server, _db) = server_with_table().await;
    let agent = server.agent_token();
    for _ in 0..5 {
        server
            .post(
                "/v1/query",
                Some(&agent),
                &json!({"datasource": "dev_db", "sql": "SELECT id FROM t"}),
            )
            .await
            .ok();
    }
    let token = auditor(&server);
    let clean = server.get("/v1/audit/verify", Some(&token)).await;
    assert_eq!(clean.ok()["ok"], true, "{}", clean.body);

    let mut store = control_store(&server).await;
    let refused = sqlx::query("DELETE FROM audit_events WHERE seq = 1")
        .execute(&mut store)
        .await;
    assert!(refused.is_err(), "the store let an event be deleted");
    drop_guards(&mut store).await;
    // Rewrite who made event 3, in the indexed column and in the body alike.
    sqlx::query(
        "UPDATE audit_events SET principal_sub = 'someone-else', \
         body = replace(body, 'agent-7', 'someone-else') WHERE seq = 3",
    )
    .execute(&mut store)
    .await
    .expect("edit");
    let edited = server.get("/v1/audit/verify", Some(&token)).await;
    let edited = edited.ok();
    assert_eq!(edited["ok"], false);
    assert_eq!(edited["first_broken"]["seq"], 3, "{edited}");
    assert_eq!(edited["first_broken"]["problem"], "edited", "{edited}");
}

#[tokio::test]
async fn deleting_an_event_is_found() {
    let (server, _db) = server_with_table().await;
    let agent = server.agent_token();
    for _ in 0..4 {
        server
            .post(
                "/v1/query",
                Some(&agent),
                &json!({"datasource": "dev_db", "sql": "SELECT id FROM t"}),
            )
            .await
            .ok();
    }
    let mut store = control_store(&server).await;
    drop_guards(&mut store).await;
    sqlx::query("DELETE FROM audit_events WHERE seq = 2")
        .execute(&mut store)
        .await
        .expect("delete");
    let token = auditor(&server);
    let verify = server.get("/v1/audit/verify", Some(&token)).await;
    let verify = verify.ok();
    assert_eq!(verify["ok"], false);
    assert_eq!(verify["first_broken"]["problem"], "deleted", "{verify}");
    assert_eq!(verify["head_seq"], 1, "{verify}");

    // The operator's view, straight from the control store, without the server.
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["audit", "verify", "--data-dir"])
        .arg(server.data_dir.path())
        .env_remove("GATEHOUSE_CONFIG")
        .output()
        .expect("run gatehouse audit verify");
    assert!(
        !cli.status.success(),
        "a broken chain must fail the command"
    );
    let printed: Value = serde_json::from_slice(&cli.stdout).expect("JSON on stdout");
    assert_eq!(printed["ok"], false);
    assert_eq!(printed["first_broken"]["problem"], "deleted", "{printed}");
    assert!(String::from_utf8_lossy(&cli.stderr).contains("broken"));
}

#[tokio::test]
async fn the_cli_verifies_an_intact_chain() {
    let (server, _db) = server_with_table().await;
    server.query("dev_db", "SELECT 1", json!([])).await.ok();
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["audit", "verify", "--data-dir"])
        .arg(server.data_dir.path())
        .env_remove("GATEHOUSE_CONFIG")
        .output()
        .expect("run gatehouse audit verify");
    let printed: Value = serde_json::from_slice(&cli.stdout).expect("JSON on stdout");
    assert!(cli.status.success(), "{printed}");
    assert_eq!(printed["ok"], true);
    assert!(printed["events_checked"].as_u64() >= Some(2), "{printed}");
}

#[tokio::test]
async fn parallel_requests_make_one_gap_free_valid_chain_and_pages_see_each_event_once() {
    let (server, _db) = server_with_table().await;
    let agent = server.agent_token();
    let token = auditor(&server);
    let server = std::sync::Arc::new(server);

    // Writers and a pager at the same time.
    let writers: Vec<_> = (0..40)
        .map(|i| {
            let (server, agent) = (server.clone(), agent.clone());
            tokio::spawn(async move {
                server
                    .post(
                        "/v1/query",
                        Some(&agent),
                        &json!({"datasource": "dev_db", "sql": format!("SELECT id FROM t WHERE id > {i}")}),
                    )
                    .await
                    .ok();
            })
        })
        .collect();
    let mut seen: Vec<i64> = Vec::new();
    let mut after = String::new();
    let mut writers_done = false;
    loop {
        let reply = server
            .get(&format!("/v1/audit/events?limit=7{after}"), Some(&token))
            .await;
        let page = reply.ok().clone();
        for event in page["events"].as_array().expect("events") {
            seen.push(event["seq"].as_i64().expect("seq"));
        }
        after = format!("&after={}", page["next_cursor"].as_str().expect("cursor"));
        if writers_done && page["has_more"] == json!(false) {
            break;
        }
        if !writers_done && writers.iter().all(|w| w.is_finished()) {
            writers_done = true;
        }
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    // The pager's own reads are events too; the last ones may postdate its last page.
    let unique: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "an event was returned twice");
    let max = *unique.last().expect("events");
    assert_eq!(unique, (1..=max).collect(), "a page skipped an event");
    assert!(max >= 80, "40 queries make at least 80 events, saw {max}");

    let verify = server.get("/v1/audit/verify", Some(&token)).await;
    assert_eq!(verify.ok()["ok"], true, "{}", verify.body);
}

#[tokio::test]
async fn ndjson_has_one_event_per_line_and_the_cursor_in_a_header() {
    let (server, _db) = server_with_table().await;
    for _ in 0..3 {
        server.query("dev_db", "SELECT 1", json!([])).await.ok();
    }
    let token = auditor(&server);
    let response = server
        .request(reqwest::Method::GET, "/v1/audit/events?limit=4")
        .bearer_auth(&token)
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    let cursor = response.headers()["x-gatehouse-next-cursor"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.text().await.expect("body");
    let lines: Vec<Value> = body
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON event"))
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(cursor, format!("e{}", lines[3]["seq"]));

    server
        .get("/v1/audit/events?after=bogus", Some(&token))
        .await
        .problem(400, "invalid_request");
    server
        .get("/v1/audit/events?limit=0", Some(&token))
        .await
        .problem(400, "invalid_request");
}

#[tokio::test]
async fn follow_resumes_from_a_cursor_without_loss_or_duplicates() {
    let (server, _db) = server_with_table().await;
    let token = auditor(&server);
    for _ in 0..3 {
        server.query("dev_db", "SELECT 1", json!([])).await.ok();
    }
    let mut client = AuditClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .expect("connect");
    let mut seen = Vec::new();
    let mut stream = client
        .follow(authed(proto::FollowRequest::default(), &token))
        .await
        .expect("follow")
        .into_inner();
    for _ in 0..4 {
        let event = stream.message().await.expect("stream").expect("event");
        seen.push(event.seq);
    }
    let resume = format!("e{}", seen.last().expect("events"));
    drop(stream);

    // Events committed while nobody follows, then live ones after reconnecting.
    for _ in 0..3 {
        server.query("dev_db", "SELECT 1", json!([])).await.ok();
    }
    let mut stream = client
        .follow(authed(proto::FollowRequest { after: resume }, &token))
        .await
        .expect("follow again")
        .into_inner();
    let live = {
        let server_base = server.base.clone();
        let agent = server.agent_token();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            reqwest::Client::new()
                .post(format!("{server_base}/v1/query"))
                .bearer_auth(agent)
                .json(&json!({"datasource": "dev_db", "sql": "SELECT 2"}))
                .send()
                .await
                .expect("live query");
        })
    };
    // Read until the live `SELECT 2` arrives: everything before it must come in order.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let event = tokio::time::timeout_at(deadline, stream.message())
            .await
            .expect("live event within 10 s")
            .expect("stream")
            .expect("event");
        seen.push(event.seq);
        if event.kind == "query" && event.statement.contains("SELECT 2") {
            break;
        }
    }
    live.await.expect("live query");
    let expected: Vec<i64> = (1..=*seen.last().expect("seen")).collect();
    assert_eq!(seen, expected, "the stream lost or repeated events");
}
