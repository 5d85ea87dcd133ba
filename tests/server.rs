//! The real server on the embedded default (seeded SQLite demo datasources), over REST and
//! gRPC: discovery, queries, caps, refusals and every problem response a caller can get.

mod common;

use common::{TestServer, authed};
use gatehouse::identity::PrincipalKind;
use gatehouse::proto;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn health_readiness_and_discovery() {
    let server = TestServer::demo().await;
    assert_eq!(server.get("/healthz", None).await.ok()["status"], "ok");
    let ready = server.get("/readyz", None).await;
    assert_eq!(ready.ok()["status"], "ready");
    let checks: Vec<&str> = ready.body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        ["control_store", "datasource:shop", "datasource:shop_prod"]
    );

    let token = server.agent_token();
    let list = server.get("/v1/datasources", Some(&token)).await;
    assert_eq!(
        list.ok()["datasources"],
        json!([
            {"name": "shop", "environment": "dev", "driver": "sqlite"},
            {"name": "shop_prod", "environment": "prod", "driver": "sqlite"}
        ])
    );

    let schema = server
        .get("/v1/datasources/shop/schema", Some(&token))
        .await;
    let tables = schema.ok()["tables"].as_array().unwrap();
    let customers = tables.iter().find(|t| t["name"] == "customers").unwrap();
    let columns: Vec<&str> = customers["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "id",
            "full_name",
            "email",
            "phone",
            "ssn",
            "card_number",
            "iban",
            "notes",
            "created_at"
        ]
    );
    assert!(tables.iter().any(|t| t["name"] == "orders"));

    server
        .get("/v1/datasources/nope/schema", Some(&token))
        .await
        .problem(404, "unknown_datasource");
}

#[tokio::test]
async fn demo_data_is_seeded_as_promised() {
    let server = TestServer::demo().await;
    for datasource in ["shop", "shop_prod"] {
        let reply = server
            .query(
                datasource,
                "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM orders), \
                 (SELECT count(*) FROM customers WHERE notes LIKE '%@%')",
                json!([]),
            )
            .await;
        let row = &reply.ok()["rows"][0];
        assert!(row[0].as_i64().unwrap() >= 200, "{row}");
        assert!(row[1].as_i64().unwrap() >= 1000, "{row}");
        assert!(
            row[2].as_i64().unwrap() > 0,
            "some notes mention an email: {row}"
        );
    }
}

#[tokio::test]
async fn query_returns_typed_rows_with_params() {
    let server = TestServer::demo().await;
    let reply = server
        .query(
            "shop",
            "SELECT id, customer_id, amount_cents, status FROM orders WHERE id <= ? AND status <> ? ORDER BY id",
            json!([50, "no-such-status"]),
        )
        .await;
    let body = reply.ok();
    assert_eq!(body["columns"][0]["name"], "id");
    assert_eq!(body["columns"][0]["type"], "integer");
    assert_eq!(body["row_count"], 50);
    assert_eq!(body["truncated"], false);
    assert!(body["rows"][0][0].is_i64());
    assert!(body["rows"][0][3].is_string());
    assert!(body["elapsed_ms"].is_u64());
    assert!(body["request_id"].as_str().unwrap().len() == 36);

    // A parameter is a value, never SQL: an injection attempt just matches nothing.
    let injected = server
        .query(
            "shop",
            "SELECT id FROM orders WHERE status = ?",
            json!(["x' OR '1'='1"]),
        )
        .await;
    assert_eq!(injected.ok()["row_count"], 0);
}

#[tokio::test]
async fn row_cap_truncates_and_datasource_cap_wins() {
    let server = TestServer::demo().await;
    let token = server.agent_token();
    let capped = server
        .post(
            "/v1/query",
            Some(&token),
            &json!({"datasource": "shop", "sql": "SELECT id FROM orders ORDER BY id", "max_rows": 10}),
        )
        .await;
    assert_eq!(capped.ok()["row_count"], 10);
    assert_eq!(capped.body["truncated"], true);

    let exact = server
        .post(
            "/v1/query",
            Some(&token),
            &json!({"datasource": "shop", "sql": "SELECT id FROM orders ORDER BY id LIMIT 10", "max_rows": 10}),
        )
        .await;
    assert_eq!(exact.ok()["row_count"], 10);
    assert_eq!(exact.body["truncated"], false);

    // The demo datasources cap at 1,000 rows; asking for more gets 1,000.
    let big = server
        .post(
            "/v1/query",
            Some(&token),
            &json!({"datasource": "shop", "sql": "SELECT id FROM orders", "max_rows": 1000000}),
        )
        .await;
    assert_eq!(big.ok()["row_count"], 1000);
    assert_eq!(big.body["truncated"], true);
}

#[tokio::test]
async fn dangerous_statements_in_production_are_denied_and_change_nothing() {
    let server = TestServer::demo().await;
    let count = || async {
        server
            .query("shop_prod", "SELECT count(*) FROM customers", json!([]))
            .await
            .ok()["rows"][0][0]
            .as_i64()
            .unwrap()
    };
    let before = count().await;
    for sql in [
        "DELETE FROM customers",
        "UPDATE customers SET email = 'x'",
        "DROP TABLE customers",
        "WITH gone AS (DELETE FROM customers RETURNING id) SELECT count(*) FROM gone",
        "PRAGMA query_only = 0",
        "ATTACH DATABASE '/tmp/x.db' AS x",
        "SELECT load_extension('/tmp/evil')",
    ] {
        let reply = server.query("shop_prod", sql, json!([])).await;
        let code = reply.body["code"].as_str().unwrap_or_default().to_owned();
        assert!(
            reply.status == 403 && (code == "denied" || code == "approval_required"),
            "{sql}: {}",
            reply.body
        );
    }
    assert_eq!(count().await, before);
}

#[tokio::test]
async fn unparseable_and_multiple_statements_are_refused() {
    let server = TestServer::demo().await;
    let detail = server
        .query("shop", "SELEC id FROM orders", json!([]))
        .await
        .problem(400, "unparseable_sql");
    assert!(detail.contains("SQLite"), "{detail}");
    let reply = server
        .query("shop", "SELECT 1; DELETE FROM orders", json!([]))
        .await;
    reply.problem(403, "denied");
    let reasons = reply.body["decision"]["reasons"].to_string();
    assert!(reasons.contains("one statement"), "{reasons}");
}

#[tokio::test]
async fn database_errors_are_actionable() {
    let server = TestServer::demo().await;
    let detail = server
        .query("shop", "SELECT no_such_column FROM orders", json!([]))
        .await
        .problem(502, "database_error");
    assert!(detail.contains("no_such_column"), "{detail}");
    assert!(
        !detail.contains(server.data_dir.path().to_str().unwrap()),
        "{detail}"
    );
}

#[tokio::test]
async fn bad_requests_get_problems() {
    let server = TestServer::demo().await;
    let token = server.agent_token();
    server
        .query("nope", "SELECT 1", json!([]))
        .await
        .problem(404, "unknown_datasource");
    let cases = [
        json!({"sql": "SELECT 1"}),
        json!({"datasource": "shop"}),
        json!({"datasource": "shop", "sql": "SELECT 1", "query": "typo"}),
        json!({"datasource": "shop", "sql": 42}),
        json!({"datasource": "shop", "sql": "SELECT 1", "max_rows": 0}),
        json!({"datasource": "shop", "sql": "SELECT 1", "max_rows": -1}),
        json!({"datasource": "shop", "sql": "   "}),
        json!({"datasource": "shop", "sql": "SELECT ?", "params": [18446744073709551615u64]}),
    ];
    for body in cases {
        let detail = server
            .post("/v1/query", Some(&token), &body)
            .await
            .problem(400, "invalid_request");
        assert!(!detail.is_empty(), "{body}");
    }
    let not_json = server
        .request(Method::POST, "/v1/query")
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    common::reply(not_json)
        .await
        .problem(400, "invalid_request");
    let no_content_type = server
        .request(Method::POST, "/v1/query")
        .bearer_auth(&token)
        .body(r#"{"datasource":"shop","sql":"SELECT 1"}"#)
        .send()
        .await
        .unwrap();
    common::reply(no_content_type)
        .await
        .problem(400, "invalid_request");
    let huge = server
        .post(
            "/v1/query",
            Some(&token),
            &json!({"datasource": "shop", "sql": format!("SELECT '{}'", "x".repeat(2 * 1024 * 1024))}),
        )
        .await;
    huge.problem(413, "payload_too_large");
    server
        .get("/v1/nothing", Some(&token))
        .await
        .problem(404, "not_found");
    let wrong_method = server
        .request(Method::GET, "/v1/query")
        .send()
        .await
        .unwrap();
    common::reply(wrong_method)
        .await
        .problem(405, "method_not_allowed");
}

#[tokio::test]
async fn every_api_route_needs_a_token() {
    let server = TestServer::demo().await;
    let reply = server
        .post(
            "/v1/query",
            None,
            &json!({"datasource": "shop", "sql": "SELECT 1"}),
        )
        .await;
    reply.problem(401, "unauthenticated");
    assert_eq!(reply.headers["www-authenticate"], "Bearer");
    server
        .get("/v1/datasources", None)
        .await
        .problem(401, "unauthenticated");
    server
        .get("/v1/datasources/shop/schema", None)
        .await
        .problem(401, "unauthenticated");
    let basic = server
        .request(Method::GET, "/v1/datasources")
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    common::reply(basic).await.problem(401, "unauthenticated");
}

#[tokio::test]
async fn openapi_and_docs_are_served() {
    let server = TestServer::demo().await;
    let spec = server.get("/openapi.json", None).await;
    assert!(spec.ok()["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(spec.body["paths"]["/v1/query"]["post"]["operationId"] == "query");
    let docs = server.request(Method::GET, "/docs").send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap();
    assert!(
        html.contains("<html") && html.contains("Gatehouse"),
        "{html}"
    );
}

#[tokio::test]
async fn grpc_matches_rest() {
    let server = TestServer::demo().await;
    let token = server.token("svc-reports", PrincipalKind::Service, &[]);
    let mut grpc = server.grpc().await;

    let sql = "SELECT id, customer_id, amount_cents, status, created_at FROM orders WHERE id <= ? ORDER BY id";
    let rest = server.query("shop", sql, json!([25])).await;
    let rest = rest.ok();
    let reply = grpc
        .query(authed(
            proto::QueryRequest {
                datasource: "shop".into(),
                sql: sql.into(),
                params: vec![proto::Value {
                    kind: Some(proto::value::Kind::IntValue(25)),
                }],
                max_rows: Some(10),
                approval_id: String::new(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.row_count, 10);
    assert!(reply.truncated);
    let names: Vec<&str> = reply.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["id", "customer_id", "amount_cents", "status", "created_at"]
    );
    for (i, row) in reply.rows.iter().enumerate() {
        let rest_row = &rest["rows"][i];
        assert_eq!(
            row.values[0].kind,
            Some(proto::value::Kind::IntValue(rest_row[0].as_i64().unwrap()))
        );
        assert_eq!(
            row.values[3].kind,
            Some(proto::value::Kind::TextValue(
                rest_row[3].as_str().unwrap().to_owned()
            ))
        );
    }

    let list = grpc
        .list_datasources(authed(proto::ListDatasourcesRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.datasources.len(), 2);
    assert_eq!(list.datasources[1].environment, "prod");

    let schema = grpc
        .get_schema(authed(
            proto::GetSchemaRequest {
                datasource: "shop".into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(schema.tables.iter().any(|t| t.name == "customers"));
}

#[tokio::test]
async fn grpc_errors_carry_matching_codes() {
    let server = TestServer::demo().await;
    let token = server.agent_token();
    let mut grpc = server.grpc().await;
    let request = |datasource: &str, sql: &str| proto::QueryRequest {
        datasource: datasource.into(),
        sql: sql.into(),
        params: vec![],
        max_rows: None,
        approval_id: String::new(),
    };
    let cases = [
        (
            request("shop", "SELECT 1"),
            None,
            tonic::Code::Unauthenticated,
            "unauthenticated",
        ),
        (
            request("nope", "SELECT 1"),
            Some(&token),
            tonic::Code::NotFound,
            "unknown_datasource",
        ),
        (
            request("shop_prod", "DROP TABLE orders"),
            Some(&token),
            tonic::Code::PermissionDenied,
            "denied",
        ),
        (
            request("shop", "SELEC 1"),
            Some(&token),
            tonic::Code::InvalidArgument,
            "unparseable_sql",
        ),
        (
            request("shop", "SELECT nope FROM orders"),
            Some(&token),
            tonic::Code::FailedPrecondition,
            "database_error",
        ),
    ];
    for (message, token, code, gatehouse_code) in cases {
        let request = match token {
            Some(token) => authed(message, token),
            None => tonic::Request::new(message),
        };
        let status = grpc.query(request).await.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
        assert_eq!(
            status.metadata().get("gatehouse-code").unwrap(),
            gatehouse_code
        );
    }
    let bad = grpc
        .list_datasources(authed(proto::ListDatasourcesRequest {}, "not-a-jwt"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn grpc_health_and_reflection_are_on() {
    let server = TestServer::demo().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "gatehouse.v1.Gatehouse".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "gatehouse.v1.Gatehouse")
    );
}
