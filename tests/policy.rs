//! Policy through the real server on the embedded default (`shop` is dev, `shop_prod` is
//! prod): the built-in decision table, decisions in every response, explain without
//! execution over REST, gRPC and the CLI, and policy reloads.

mod common;

use common::{TestServer, authed};
use gatehouse::identity::PrincipalKind;
use gatehouse::proto;
use serde_json::{Value, json};

async fn run(server: &TestServer, token: &str, datasource: &str, sql: &str) -> common::Reply {
    server
        .post(
            "/v1/query",
            Some(token),
            &json!({"datasource": datasource, "sql": sql}),
        )
        .await
}

async fn count(server: &TestServer, datasource: &str, sql: &str) -> i64 {
    server.query(datasource, sql, json!([])).await.ok()["rows"][0][0]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn dev_allows_bounded_writes_and_ddl_and_asks_approval_for_the_dangerous_ones() {
    let server = TestServer::demo().await;
    let agent = server.agent_token();

    let read = run(&server, &agent, "shop", "SELECT count(*) FROM orders").await;
    assert_eq!(read.ok()["decision"]["effect"], "allow");
    assert!(
        !read.body["decision"]["policies"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let update = run(
        &server,
        &agent,
        "shop",
        "UPDATE orders SET status = 'paid' WHERE id = 1",
    )
    .await;
    assert_eq!(update.ok()["rows_affected"], 1);
    assert_eq!(update.body["decision"]["effect"], "allow");
    assert_eq!(
        server
            .query("shop", "SELECT status FROM orders WHERE id = 1", json!([]))
            .await
            .ok()["rows"][0][0],
        "paid"
    );
    run(
        &server,
        &agent,
        "shop",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)",
    )
    .await
    .ok();
    let insert = run(
        &server,
        &agent,
        "shop",
        "INSERT INTO notes (body) VALUES ('hello')",
    )
    .await;
    assert_eq!(insert.ok()["rows_affected"], 1);

    let orders = count(&server, "shop", "SELECT count(*) FROM orders").await;
    for sql in [
        "DELETE FROM orders",
        "UPDATE orders SET status = 'x' WHERE 1 = 1",
        "DROP TABLE notes",
    ] {
        let reply = run(&server, &agent, "shop", sql).await;
        assert_awaits_approval(&reply);
        assert_eq!(
            reply.body["decision"]["effect"], "approval_required",
            "{sql}"
        );
        assert_eq!(
            reply.body["decision"]["approver_groups"],
            json!(["dba"]),
            "{sql}"
        );
        assert!(
            !reply.body["decision"]["reasons"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!(
        count(&server, "shop", "SELECT count(*) FROM orders").await,
        orders
    );
    assert_eq!(
        count(&server, "shop", "SELECT count(*) FROM notes").await,
        1
    );
}

#[tokio::test]
async fn prod_lets_dba_humans_write_and_nobody_run_the_dangerous_ones() {
    let server = TestServer::demo().await;
    let agent = server.agent_token();
    let dba = server.token("grace", PrincipalKind::Human, &["dba"]);
    let dba_agent = server.token("agent-dba", PrincipalKind::Agent, &["dba"]);
    let sql = "UPDATE customers SET notes = 'checked' WHERE id = 3";

    run(&server, &dba, "shop_prod", sql).await.ok();
    for token in [&agent, &dba_agent] {
        let reply = run(&server, token, "shop_prod", sql).await;
        assert_awaits_approval(&reply);
        assert_eq!(reply.body["decision"]["approver_groups"], json!(["dba"]));
    }
    assert_awaits_approval(&run(&server, &agent, "shop_prod", "CREATE TABLE t (x INTEGER)").await);

    let customers = count(&server, "shop_prod", "SELECT count(*) FROM customers").await;
    for sql in [
        "DELETE FROM customers",
        "UPDATE customers SET email = 'x' WHERE true",
        "DROP TABLE orders",
        "PRAGMA query_only = 0",
        "ATTACH DATABASE '/tmp/evil.db' AS evil",
        "SELECT load_extension('/tmp/evil')",
        "SELECT 1; DELETE FROM customers WHERE id = 1",
        "VACUUM",
    ] {
        for token in [&agent, &dba] {
            let reply = run(&server, token, "shop_prod", sql).await;
            let detail = reply.problem(403, "denied");
            assert_eq!(reply.body["decision"]["effect"], "deny", "{sql}");
            assert!(!detail.is_empty());
        }
    }
    assert_eq!(
        count(&server, "shop_prod", "SELECT count(*) FROM customers").await,
        customers
    );
}

#[tokio::test]
async fn explain_answers_without_running_over_rest_grpc_and_cli() {
    let server = TestServer::demo().await;
    let agent = server.agent_token();
    let orders = count(&server, "shop", "SELECT count(*) FROM orders").await;

    let explained = server
        .post(
            "/v1/explain",
            Some(&agent),
            &json!({"datasource": "shop_prod", "sql": "DELETE FROM orders"}),
        )
        .await;
    let body = explained.ok();
    assert_eq!(body["environment"], "prod");
    assert_eq!(body["intent"]["actions"], json!(["delete"]));
    assert_eq!(
        body["intent"]["tables"],
        json!([{"table": "orders", "access": "write"}])
    );
    assert_eq!(body["intent"]["flags"], json!(["unbounded"]));
    assert_eq!(body["decision"]["effect"], "deny");

    let join = server
        .post(
            "/v1/explain",
            Some(&agent),
            &json!({"datasource": "shop", "sql": "SELECT c.full_name, o.amount_cents FROM customers c JOIN orders o ON o.customer_id = c.id"}),
        )
        .await;
    let body = join.ok();
    assert_eq!(body["decision"]["effect"], "allow");
    let tables: Vec<&str> = body["intent"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert_eq!(tables, ["customers", "orders"]);

    server
        .post(
            "/v1/explain",
            Some(&agent),
            &json!({"datasource": "shop", "sql": "DELEET FROM orders"}),
        )
        .await
        .problem(400, "unparseable_sql");

    let grpc = server
        .grpc()
        .await
        .explain(authed(
            proto::QueryRequest {
                datasource: "shop".into(),
                sql: "DELETE FROM orders".into(),
                params: vec![],
                max_rows: None,
                approval_id: String::new(),
            },
            &agent,
        ))
        .await
        .unwrap()
        .into_inner();
    let decision = grpc.decision.unwrap();
    assert_eq!(decision.effect, "approval_required");
    assert_eq!(decision.approver_groups, ["dba"]);
    assert_eq!(grpc.intent.unwrap().flags, ["unbounded"]);

    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args([
            "explain",
            "--datasource",
            "shop_prod",
            "--sql",
            "UPDATE orders SET status = 'x' WHERE id = 2",
        ])
        .args([
            "--sub",
            "grace",
            "--kind",
            "human",
            "--groups",
            "dba",
            "--data-dir",
        ])
        .arg(server.data_dir.path())
        .env_remove("GATEHOUSE_CONFIG")
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let printed: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(printed["decision"]["effect"], "allow");
    assert_eq!(printed["intent"]["actions"], json!(["update"]));

    assert_eq!(
        count(&server, "shop", "SELECT count(*) FROM orders").await,
        orders,
        "nothing ran"
    );
}

#[tokio::test]
async fn grpc_refusals_carry_the_policy_code() {
    let server = TestServer::demo().await;
    let agent = server.agent_token();
    let mut grpc = server.grpc().await;
    let pending = grpc
        .query(authed(
            proto::QueryRequest {
                datasource: "shop_prod".into(),
                sql: "UPDATE orders SET status = 'x' WHERE id = 1".into(),
                params: vec![],
                max_rows: None,
                approval_id: String::new(),
            },
            &agent,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pending.decision.unwrap().effect, "approval_required");
    let approval = pending.approval.expect("an approval request, nothing run");
    assert_eq!(approval.status, "pending");
    assert_eq!(approval.approver_groups, ["dba"]);
    assert!(pending.rows.is_empty());
    for (sql, code) in [("DROP TABLE orders", "denied")] {
        let status = grpc
            .query(authed(
                proto::QueryRequest {
                    datasource: "shop_prod".into(),
                    sql: sql.into(),
                    params: vec![],
                    max_rows: None,
                    approval_id: String::new(),
                },
                &agent,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert_eq!(status.metadata().get("gatehouse-code").unwrap(), code);
    }
    let ok = grpc
        .query(authed(
            proto::QueryRequest {
                datasource: "shop_prod".into(),
                sql: "SELECT 1".into(),
                params: vec![],
                max_rows: None,
                approval_id: String::new(),
            },
            &agent,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.decision.unwrap().effect, "allow");
}

const STRICT_POLICY: &str = r#"
@id("reads-only")
@reason("this deployment only allows reads")
permit(principal, action == Action::"select", resource);
"#;

const OPEN_POLICY: &str = r#"
@id("reads-only")
@reason("this deployment only allows reads")
permit(principal, action == Action::"select", resource);

@id("inserts-too")
@reason("inserts are fine here")
permit(principal, action == Action::"insert", resource);
"#;

#[tokio::test]
async fn policy_files_replace_the_built_in_set_and_reload_keeps_the_old_set_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.cedar");
    std::fs::write(&file, STRICT_POLICY).unwrap();
    let server = TestServer::start(&format!("[policy]\nfiles = [\"{}\"]\n", file.display())).await;
    let agent = server.agent_token();
    let admin = server.token("ops", PrincipalKind::Human, &["admin"]);
    let insert = "INSERT INTO orders (customer_id, amount_cents, status, created_at) VALUES (1, 100, 'paid', '2025-01-01T00:00:00Z')";

    let refused = run(&server, &agent, "shop", insert).await;
    refused.problem(403, "denied");

    server
        .post("/v1/admin/reload", Some(&agent), &json!({}))
        .await
        .problem(403, "forbidden");

    std::fs::write(
        &file,
        "permit(principal, action == Action::\"nope\", resource);",
    )
    .unwrap();
    let detail = server
        .post("/v1/admin/reload", Some(&admin), &json!({}))
        .await
        .problem(422, "invalid_policy");
    assert!(detail.contains("policy.cedar"), "{detail}");
    run(&server, &agent, "shop", insert)
        .await
        .problem(403, "denied");
    run(&server, &agent, "shop", "SELECT 1").await.ok();

    std::fs::write(&file, OPEN_POLICY).unwrap();
    let reloaded = server
        .post("/v1/admin/reload", Some(&admin), &json!({}))
        .await;
    assert_eq!(reloaded.ok()["policies"], 2);
    let inserted = run(&server, &agent, "shop", insert).await;
    assert_eq!(
        inserted.ok()["decision"]["policies"],
        json!(["inserts-too"])
    );

    let grpc_reload = server
        .grpc()
        .await
        .reload_policies(authed(proto::ReloadPoliciesRequest {}, &admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(grpc_reload.policies, 2);
}

/// Policy asked for approval: 202, a pending approval request, and the decision.
#[track_caller]
fn assert_awaits_approval(reply: &common::Reply) {
    assert_eq!(reply.status, 202, "unexpected reply: {}", reply.body);
    assert_eq!(reply.body["decision"]["effect"], "approval_required");
    assert_eq!(
        reply.body["approval"]["status"], "pending",
        "{}",
        reply.body
    );
    assert!(reply.body["approval"]["id"].is_string());
}
