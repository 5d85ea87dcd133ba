//! Approvals end to end, through the real server: an agent's production write waits for a
//! dba, runs exactly once with the approval's id, and nothing else runs on it. Every rule
//! is checked through the REST API (the gRPC API where noted) and against the database
//! itself: a counter column that each run of the approved `UPDATE` increments.
//!
//! Control stores: SQLite in the data directory, and a throwaway PostgreSQL database with
//! Redis (127.0.0.1:6379, or `GATEHOUSE_TEST_REDIS_URL`) where sharing matters:
//! concurrency, replicas.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use common::db::{Engine, TestDb};
use common::{Reply, TestServer, authed, datasource_toml};
use gatehouse::identity::{self, PrincipalKind, TokenRequest};
use gatehouse::proto;
use gatehouse::proto::approvals_client::ApprovalsClient;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::Connection as _;

/// Each run of the approved statement adds one to `n`: the database counts executions.
const LEDGER_FIXTURE: &str = "CREATE TABLE counters (id BIGINT PRIMARY KEY, n BIGINT NOT NULL);
     INSERT INTO counters (id, n) VALUES (1, 0), (2, 0);";

const AGENT: &str = "agent-7";

fn redis_url() -> String {
    std::env::var("GATEHOUSE_TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

/// A datasource database holding `counters`.
struct Ledger {
    db: TestDb,
}

impl Ledger {
    async fn new(engine: Engine) -> Ledger {
        let db = match engine {
            Engine::Postgres => TestDb::postgres().await,
            Engine::Sqlite => TestDb::sqlite(),
            Engine::MariaDb => TestDb::mariadb().await,
        };
        db.exec(LEDGER_FIXTURE).await;
        Ledger { db }
    }

    /// The statement that needs approval in production: bounded, so policy asks a dba.
    fn increment(&self) -> &'static str {
        match self.db.engine {
            Engine::Postgres => "UPDATE counters SET n = n + 1 WHERE id = $1",
            _ => "UPDATE counters SET n = n + 1 WHERE id = ?",
        }
    }

    /// `n` of row `id`, read from the database directly, past Gatehouse.
    async fn n(&self, id: i64) -> i64 {
        let sql = format!("SELECT n FROM counters WHERE id = {id}");
        let sql = sqlx::AssertSqlSafe(sql);
        match self.db.engine {
            Engine::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.db.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
            }
            Engine::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.db.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
            }
            Engine::MariaDb => {
                let mut conn = sqlx::MySqlConnection::connect(&self.db.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Store {
    /// SQLite in each server's data directory, no Redis.
    Sqlite,
    /// One throwaway PostgreSQL database, and Redis.
    PostgresRedis,
}

/// The control store's configuration, and the database behind it.
struct Control {
    toml: String,
    _db: Option<TestDb>,
}

async fn control(store: Store) -> Control {
    match store {
        Store::Sqlite => Control {
            toml: String::new(),
            _db: None,
        },
        Store::PostgresRedis => {
            let db = TestDb::postgres().await;
            Control {
                toml: format!(
                    "[store]\nurl = \"{}\"\n[redis]\nurl = \"{}\"\n",
                    db.url,
                    redis_url()
                ),
                _db: Some(db),
            }
        }
    }
}

/// A server with three datasources: `ledger` (prod, the one approvals are about),
/// `ledger_copy` (prod, same schema, for the wrong-datasource case) and `ledger_dev` (dev).
struct Fixture {
    server: TestServer,
    ledger: Ledger,
    copy: Ledger,
    dev: Ledger,
    _control: Control,
}

impl Fixture {
    async fn new(store: Store, engine: Engine, extra: &str) -> Fixture {
        Fixture::new_in(store, engine, extra, tempfile::tempdir().unwrap()).await
    }

    async fn new_in(
        store: Store,
        engine: Engine,
        extra: &str,
        data_dir: tempfile::TempDir,
    ) -> Fixture {
        let control = control(store).await;
        let (ledger, copy, dev) = (
            Ledger::new(engine).await,
            Ledger::new(Engine::Sqlite).await,
            Ledger::new(Engine::Sqlite).await,
        );
        let config = format!(
            "{}{}{}{}{extra}\n",
            control.toml,
            datasource_toml("ledger", "prod", &ledger.db, ""),
            datasource_toml("ledger_copy", "prod", &copy.db, ""),
            datasource_toml("ledger_dev", "dev", &dev.db, ""),
        );
        let server = TestServer::start_in(&config, data_dir).await;
        Fixture {
            server,
            ledger,
            copy,
            dev,
            _control: control,
        }
    }

    fn agent(&self) -> String {
        self.server.agent_token()
    }

    fn dba(&self, sub: &str) -> String {
        self.server.token(sub, PrincipalKind::Human, &["dba"])
    }

    /// `POST /v1/query` of the increment statement for row `id` on `ledger`.
    async fn increment(&self, token: &str, id: i64, approval: Option<&str>) -> Reply {
        send(
            &self.server,
            token,
            "ledger",
            self.ledger.increment(),
            json!([id]),
            approval,
        )
        .await
    }

    /// Asks for the increment of row 1 as `token`: 202 with a pending approval; its id.
    async fn request(&self, token: &str) -> String {
        let reply = self.increment(token, 1, None).await;
        pending_id(&reply)
    }
}

/// A token with an RFC 8693 `act` claim: `sub` acting for `act`.
fn token_acting(
    server: &TestServer,
    sub: &str,
    kind: PrincipalKind,
    groups: &[&str],
    act: &str,
) -> String {
    let secret = identity::signing_secret(&server.auth, server.data_dir.path()).unwrap();
    identity::mint_hs256(
        &secret,
        &server.auth,
        &TokenRequest {
            sub: sub.to_owned(),
            kind,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            act: Some(act.to_owned()),
            ttl: Duration::from_secs(600),
        },
    )
    .unwrap()
}

async fn send(
    server: &TestServer,
    token: &str,
    datasource: &str,
    sql: &str,
    params: Value,
    approval: Option<&str>,
) -> Reply {
    let mut body = json!({"datasource": datasource, "sql": sql, "params": params});
    if let Some(id) = approval {
        body["approval_id"] = json!(id);
    }
    server.post("/v1/query", Some(token), &body).await
}

/// The approval id of a 202, after checking the 202 is what the API promises.
#[track_caller]
fn pending_id(reply: &Reply) -> String {
    assert_eq!(reply.status, 202, "expected 202: {}", reply.body);
    let body = &reply.body;
    assert!(body["request_id"].is_string(), "{body}");
    assert_eq!(body["decision"]["effect"], "approval_required", "{body}");
    assert_eq!(body["approval"]["status"], "pending", "{body}");
    assert!(body["approval"]["expires_at"].is_string(), "{body}");
    assert!(
        body.get("rows").is_none(),
        "nothing ran, so no rows: {body}"
    );
    body["approval"]["id"].as_str().unwrap().to_owned()
}

async fn vote(
    server: &TestServer,
    token: &str,
    id: &str,
    verb: &str,
    comment: Option<&str>,
) -> Reply {
    let body = match comment {
        Some(comment) => json!({"comment": comment}),
        None => json!({}),
    };
    server
        .post(&format!("/v1/approvals/{id}/{verb}"), Some(token), &body)
        .await
}

async fn approval(server: &TestServer, token: &str, id: &str) -> Value {
    server
        .get(&format!("/v1/approvals/{id}"), Some(token))
        .await
        .ok()
        .clone()
}

/// Audit events of `kind` about approval `id`, read as an auditor.
async fn audit(server: &TestServer, kind: &str, id: &str) -> Vec<Value> {
    let auditor = server.token("audrey", PrincipalKind::Human, &["auditor"]);
    let reply = server
        .get(
            &format!("/v1/audit/events?kind={kind}&limit=1000"),
            Some(&auditor),
        )
        .await;
    let events = reply.ok()["events"].as_array().unwrap().clone();
    assert!(events.iter().all(|e| e["kind"] == kind), "{events:?}");
    events
        .into_iter()
        .filter(|e| e["approval_id"] == id)
        .collect()
}

// ---------------------------------------------------------------------------------------
// The whole path
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_on_sqlite() {
    happy_path(Store::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_on_postgres_with_redis() {
    happy_path(Store::PostgresRedis).await;
}

/// Agent asks, a dba approves while the agent long-polls, the agent runs it once.
async fn happy_path(store: Store) {
    let f = Fixture::new(store, Engine::Sqlite, "").await;
    let (agent, grace) = (f.agent(), f.dba("grace"));

    let reply = f.increment(&agent, 1, None).await;
    let id = pending_id(&reply);
    let asked = &reply.body["approval"];
    assert_eq!(asked["approver_groups"], json!(["dba"]));
    assert_eq!(asked["min_approvals"], 1);
    assert_eq!(asked["statement"], f.ledger.increment());
    assert_eq!(asked["params"], json!([{"type": "int", "value": 1}]));
    assert_eq!(asked["requester"]["sub"], AGENT);
    assert_eq!(asked["datasource"], "ledger");
    assert_eq!(asked["environment"], "prod");
    assert_eq!(f.ledger.n(1).await, 0, "nothing ran while pending");

    // The approver's queue shows it.
    let queue = f
        .server
        .get("/v1/approvals?status=pending", Some(&grace))
        .await;
    let listed = queue.ok()["approvals"].as_array().unwrap();
    assert!(listed.iter().any(|a| a["id"] == id.as_str()), "{listed:?}");

    // Running it before anyone decided is refused.
    f.increment(&agent, 1, Some(&id))
        .await
        .problem(409, "approval_not_pending");

    // The agent long-polls; the dba approves meanwhile.
    let poll = spawn_long_poll(&f.server, &agent, &id, 10);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!poll.is_finished(), "the long-poll waits while pending");
    let approved = vote(
        &f.server,
        &grace,
        &id,
        "approve",
        Some("checked the ticket"),
    )
    .await;
    let decided_at = Instant::now();
    assert_eq!(approved.ok()["status"], "approved");
    let (woke, woke_at) = poll.await.unwrap();
    assert_eq!(woke.ok()["status"], "approved");
    let latency = woke_at.saturating_duration_since(decided_at);
    assert!(latency < Duration::from_secs(2), "woke after {latency:?}");
    eprintln!("{store:?}: long-poll woke {latency:?} after the approval");

    let ran = f.increment(&agent, 1, Some(&id)).await;
    assert_eq!(ran.ok()["rows_affected"], 1, "{}", ran.body);
    assert_eq!(ran.body["decision"]["effect"], "allow");
    assert_eq!(f.ledger.n(1).await, 1, "the row changed once");

    f.increment(&agent, 1, Some(&id))
        .await
        .problem(409, "approval_used");
    assert_eq!(f.ledger.n(1).await, 1, "a second send does not run");

    let done = approval(&f.server, &agent, &id).await;
    assert_eq!(done["status"], "executed");
    assert_eq!(done["approvals"], 1);
    assert_eq!(done["votes"][0]["approver_sub"], "grace");
    assert_eq!(done["votes"][0]["verdict"], "approve");
    assert_eq!(done["votes"][0]["comment"], "checked the ticket");
    assert!(done["decided_at"].is_string());
    let execution = &done["execution"];
    assert_eq!(execution["ok"], true, "{done}");
    assert_eq!(execution["rows_affected"], 1);
    assert_eq!(execution["rows_returned"], 0);
    assert!(execution["error_code"].is_null());
    assert!(execution["finished_at"].is_string());

    let created = audit(&f.server, "approval_created", &id).await;
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0]["principal"]["sub"], AGENT);
    assert_eq!(created[0]["datasource"], "ledger");
    assert_eq!(created[0]["decision"]["effect"], "approval_required");
    let decided = audit(&f.server, "approval_decided", &id).await;
    assert_eq!(decided.len(), 1, "{decided:?}");
    assert_eq!(decided[0]["principal"]["sub"], "grace");
    assert_eq!(decided[0]["decision"]["effect"], "approve");
    let reasons = decided[0]["decision"]["reasons"].to_string();
    assert!(reasons.contains("status: approved"), "{reasons}");
    let executed = audit(&f.server, "approval_executed", &id).await;
    assert_eq!(executed.len(), 1, "{executed:?}");
    assert_eq!(executed[0]["principal"]["sub"], AGENT);
    assert_eq!(executed[0]["completion"]["rows_affected"], 1);
    // The run and the refused second run are both in the trail, tied to the approval.
    let queries = audit(&f.server, "query", &id).await;
    assert!(
        queries
            .iter()
            .any(|e| e["decision"]["effect"] == "allow" && e["completion"].is_null()),
        "{queries:?}"
    );
    assert!(
        queries
            .iter()
            .any(|e| e["completion"]["error_code"] == "approval_used"),
        "{queries:?}"
    );
}

/// `GET /v1/approvals/{id}?wait_s=N` in a task of its own; the reply and when it came.
fn spawn_long_poll(
    server: &TestServer,
    token: &str,
    id: &str,
    wait_s: u64,
) -> tokio::task::JoinHandle<(Reply, Instant)> {
    let request = server
        .request(
            reqwest::Method::GET,
            &format!("/v1/approvals/{id}?wait_s={wait_s}"),
        )
        .bearer_auth(token);
    tokio::spawn(async move {
        let response = request.send().await.unwrap();
        let reply = common::reply(response).await;
        (reply, Instant::now())
    })
}

// ---------------------------------------------------------------------------------------
// Who may decide
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn nobody_approves_their_own_request() {
    let f = Fixture::new(Store::Sqlite, Engine::Sqlite, "").await;
    let server = &f.server;

    // A human dba's unbounded UPDATE in dev needs a (second) dba's approval.
    let grace = f.dba("grace");
    let reply = send(
        server,
        &grace,
        "ledger_dev",
        "UPDATE counters SET n = n + 1",
        json!([]),
        None,
    )
    .await;
    let own = pending_id(&reply);
    vote(server, &grace, &own, "approve", None)
        .await
        .problem(403, "self_approval");
    vote(server, &grace, &own, "reject", None)
        .await
        .problem(403, "self_approval");
    // An agent in group dba asking in prod: the same.
    let dba_agent = server.token("agent-dba", PrincipalKind::Agent, &["dba"]);
    let agents_own = f.request(&dba_agent).await;
    vote(server, &dba_agent, &agents_own, "approve", None)
        .await
        .problem(403, "self_approval");

    // An agent acting for ada: ada may not approve it, nor may another agent acting for her.
    let for_ada = token_acting(server, AGENT, PrincipalKind::Agent, &[], "ada");
    let id = f.request(&for_ada).await;
    let ada = server.token("ada", PrincipalKind::Human, &["dba"]);
    vote(server, &ada, &id, "approve", None)
        .await
        .problem(403, "self_approval");
    let helper_for_ada = token_acting(server, "agent-9", PrincipalKind::Agent, &["dba"], "ada");
    vote(server, &helper_for_ada, &id, "approve", None)
        .await
        .problem(403, "self_approval");
    // An approver acting on behalf of the requester: the requester approving by proxy.
    let proxy = token_acting(server, "linus", PrincipalKind::Human, &["dba"], AGENT);
    vote(server, &proxy, &id, "approve", None)
        .await
        .problem(403, "self_approval");

    // ada without group dba sees the request made for her, but may not decide it.
    let ada_plain = server.token("ada", PrincipalKind::Human, &[]);
    assert_eq!(approval(server, &ada_plain, &id).await["status"], "pending");
    vote(server, &ada_plain, &id, "approve", None)
        .await
        .problem(403, "not_an_approver");
    // Neither may the requesting agent, which is in no approver group.
    vote(server, &for_ada, &id, "approve", None)
        .await
        .problem(403, "not_an_approver");
    // Someone outside the request and the approver groups is told it does not exist.
    let outsider = server.token("bob", PrincipalKind::Human, &["eng"]);
    vote(server, &outsider, &id, "approve", None)
        .await
        .problem(404, "approval_not_found");
    server
        .get(&format!("/v1/approvals/{id}"), Some(&outsider))
        .await
        .problem(404, "approval_not_found");

    // Every refused vote left it pending, with no votes.
    for (token, id) in [(&grace, &own), (&dba_agent, &agents_own), (&ada_plain, &id)] {
        let now = approval(server, token, id).await;
        assert_eq!(now["status"], "pending", "{now}");
        assert_eq!(now["votes"], json!([]), "{now}");
    }
    // A refused vote is audited as such.
    let refused = audit(server, "approval_decided", &own).await;
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|e| e["completion"]["error_code"] == "self_approval"),
        "{refused:?}"
    );

    // A different dba may approve ada's agent's request, and the agent runs it.
    let linus = f.dba("linus");
    assert_eq!(
        vote(server, &linus, &id, "approve", None).await.ok()["status"],
        "approved"
    );
    assert_eq!(
        f.increment(&for_ada, 1, Some(&id)).await.ok()["rows_affected"],
        1
    );
    assert_eq!(f.ledger.n(1).await, 1);
    assert_eq!(f.dev.n(1).await, 0, "the dev request has not run yet");
    // grace's own dev request, approved by linus, runs for her: every row.
    vote(server, &linus, &own, "approve", None).await.ok();
    let ran = send(
        server,
        &grace,
        "ledger_dev",
        "UPDATE counters SET n = n + 1",
        json!([]),
        Some(&own),
    )
    .await;
    assert_eq!(ran.ok()["rows_affected"], 2);
    assert_eq!((f.dev.n(1).await, f.dev.n(2).await), (1, 1));
}

/// The built-in policy set with `@min_approvals("2")` on the production write rule, in
/// `dir`; the `[policy]` configuration that loads it.
fn quorum_of_two(dir: &std::path::Path) -> String {
    let policy = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/default.cedar"
    ))
    .unwrap();
    let anchor = "@id(\"prod-write-needs-approval\")\n@approval(\"dba\")\n";
    assert_eq!(
        policy.matches(anchor).count(),
        1,
        "the built-in policy changed"
    );
    let policy = policy.replace(anchor, &format!("{anchor}@min_approvals(\"2\")\n"));
    let path = dir.join("quorum.cedar");
    std::fs::write(&path, policy).unwrap();
    format!("[policy]\nfiles = [\"{}\"]\n", path.display())
}

#[tokio::test]
async fn a_quorum_of_two_needs_two_distinct_dbas() {
    let dir = tempfile::tempdir().unwrap();
    let extra = quorum_of_two(dir.path());
    let f = Fixture::new_in(Store::Sqlite, Engine::Sqlite, &extra, dir).await;
    let (agent, grace, linus) = (f.agent(), f.dba("grace"), f.dba("linus"));

    let reply = f.increment(&agent, 1, None).await;
    let id = pending_id(&reply);
    assert_eq!(reply.body["approval"]["min_approvals"], 2);
    assert_eq!(reply.body["decision"]["min_approvals"], 2);

    let first = vote(&f.server, &grace, &id, "approve", None).await;
    assert_eq!(first.ok()["status"], "pending", "one of two approvals");
    assert_eq!(first.body["approvals"], 1);
    vote(&f.server, &grace, &id, "approve", None)
        .await
        .problem(409, "already_voted");
    vote(&f.server, &grace, &id, "reject", None)
        .await
        .problem(409, "already_voted");
    f.increment(&agent, 1, Some(&id))
        .await
        .problem(409, "approval_not_pending");
    assert_eq!(f.ledger.n(1).await, 0);

    let second = vote(
        &f.server,
        &linus,
        &id,
        "approve",
        Some("second pair of eyes"),
    )
    .await;
    assert_eq!(second.ok()["status"], "approved");
    assert_eq!(second.body["approvals"], 2);
    let voters: Vec<&str> = second.body["votes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["approver_sub"].as_str().unwrap())
        .collect();
    assert_eq!(voters, ["grace", "linus"]);

    assert_eq!(
        f.increment(&agent, 1, Some(&id)).await.ok()["rows_affected"],
        1
    );
    assert_eq!(f.ledger.n(1).await, 1);
}

#[tokio::test]
async fn a_rejection_is_final() {
    let f = Fixture::new(Store::Sqlite, Engine::Sqlite, "").await;
    let (agent, grace, linus) = (f.agent(), f.dba("grace"), f.dba("linus"));
    let id = f.request(&agent).await;

    let rejected = vote(
        &f.server,
        &grace,
        &id,
        "reject",
        Some("not during the freeze"),
    )
    .await;
    assert_eq!(rejected.ok()["status"], "rejected");
    assert_eq!(rejected.body["votes"][0]["verdict"], "reject");
    assert_eq!(
        rejected.body["votes"][0]["comment"],
        "not during the freeze"
    );

    vote(&f.server, &linus, &id, "approve", None)
        .await
        .problem(409, "approval_not_pending");
    vote(&f.server, &grace, &id, "approve", None)
        .await
        .problem(409, "approval_not_pending");
    f.increment(&agent, 1, Some(&id))
        .await
        .problem(409, "approval_not_pending");
    assert_eq!(approval(&f.server, &agent, &id).await["status"], "rejected");
    assert_eq!(f.ledger.n(1).await, 0, "nothing ran");

    // A rejected request is not approved by asking again either: a new request is new.
    let again = f.request(&agent).await;
    assert_ne!(again, id);
}

#[tokio::test]
async fn pending_and_approved_requests_expire() {
    let f = Fixture::new(Store::Sqlite, Engine::Sqlite, "[approvals]\nexpiry_s = 1\n").await;
    let (agent, grace) = (f.agent(), f.dba("grace"));
    let pending = f.request(&agent).await;
    let approved = f.request(&agent).await;
    assert_eq!(
        vote(&f.server, &grace, &approved, "approve", None)
            .await
            .ok()["status"],
        "approved"
    );
    // A long-poll on the pending one returns when it expires, not at the end of its wait.
    let polled = Instant::now();
    let poll = spawn_long_poll(&f.server, &agent, &pending, 10);
    let expires_at = approval(&f.server, &agent, &pending).await["expires_at"]
        .as_str()
        .unwrap()
        .parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap();
    // The server's own clock decides; wait until its deadline has surely passed.
    let left = (expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO);
    tokio::time::sleep(left + Duration::from_millis(300)).await;

    let (woke, woke_at) = poll.await.unwrap();
    assert_eq!(woke.ok()["status"], "expired");
    let waited = woke_at.duration_since(polled);
    assert!(
        waited < Duration::from_secs(5),
        "woke {waited:?} after asking"
    );
    vote(&f.server, &grace, &pending, "approve", None)
        .await
        .problem(410, "approval_expired");
    f.increment(&agent, 1, Some(&pending))
        .await
        .problem(410, "approval_expired");
    f.increment(&agent, 1, Some(&approved))
        .await
        .problem(410, "approval_expired");
    for id in [&pending, &approved] {
        assert_eq!(approval(&f.server, &agent, id).await["status"], "expired");
    }
    assert_eq!(f.ledger.n(1).await, 0, "nothing ran");
    let expired = f
        .server
        .get("/v1/approvals?status=expired", Some(&grace))
        .await;
    assert_eq!(expired.ok()["approvals"].as_array().unwrap().len(), 2);
    // The clock's decision is audited too, once per approval.
    for id in [&pending, &approved] {
        let mut recorded = Vec::new();
        for _ in 0..50 {
            recorded = audit(&f.server, "approval_decided", id)
                .await
                .into_iter()
                .filter(|e| e["decision"]["effect"] == "expired")
                .collect();
            if !recorded.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            recorded.len(),
            1,
            "expiry of {id} audited once: {recorded:?}"
        );
    }
}

#[tokio::test]
async fn an_approval_runs_only_what_was_approved() {
    let f = Fixture::new(Store::Sqlite, Engine::Sqlite, "").await;
    let (agent, grace) = (f.agent(), f.dba("grace"));
    let id = f.request(&agent).await;
    vote(&f.server, &grace, &id, "approve", None).await.ok();
    let sql = f.ledger.increment();

    let cases: [(&str, &str, String, Value, String); 6] = [
        (
            "statement",
            "ledger",
            format!("{sql} "),
            json!([1]),
            agent.clone(),
        ),
        (
            "statement",
            "ledger",
            sql.replace("WHERE id = ?", "WHERE id = ? OR id = 2"),
            json!([1]),
            agent.clone(),
        ),
        (
            "params",
            "ledger",
            sql.to_owned(),
            json!([2]),
            agent.clone(),
        ),
        (
            "params",
            "ledger",
            sql.to_owned(),
            json!(["1"]),
            agent.clone(),
        ),
        (
            "datasource",
            "ledger_copy",
            sql.to_owned(),
            json!([1]),
            agent.clone(),
        ),
        (
            "requester",
            "ledger",
            sql.to_owned(),
            json!([1]),
            f.server.token("agent-8", PrincipalKind::Agent, &[]),
        ),
    ];
    for (part, datasource, sql, params, token) in cases {
        let reply = send(&f.server, &token, datasource, &sql, params, Some(&id)).await;
        let detail = reply.problem(403, "approval_mismatch");
        assert!(
            detail.contains(&format!("{part} not as approved")),
            "{part}: {detail}"
        );
    }
    // The approving dba, a human who could run the write directly, may not use it either.
    send(&f.server, &grace, "ledger", sql, json!([1]), Some(&id))
        .await
        .problem(403, "approval_mismatch");

    for row in [1, 2] {
        assert_eq!(f.ledger.n(row).await, 0, "row {row} untouched");
        assert_eq!(f.copy.n(row).await, 0, "copy row {row} untouched");
    }
    // Each refusal is in the audit trail, tied to the approval.
    let refused = audit(&f.server, "query", &id).await;
    let mismatches = refused
        .iter()
        .filter(|e| e["completion"]["error_code"] == "approval_mismatch")
        .count();
    assert_eq!(mismatches, 7, "{refused:?}");
    // None of the refusals spent it: the exact request still runs, once.
    assert_eq!(approval(&f.server, &agent, &id).await["status"], "approved");
    assert_eq!(
        f.increment(&agent, 1, Some(&id)).await.ok()["rows_affected"],
        1
    );
    assert_eq!((f.ledger.n(1).await, f.ledger.n(2).await), (1, 0));
}

// ---------------------------------------------------------------------------------------
// Run once, under concurrency
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_of_one_approval_execute_once_on_sqlite() {
    concurrent_runs(Store::Sqlite, Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_of_one_approval_execute_once_on_postgres() {
    concurrent_runs(Store::PostgresRedis, Engine::Postgres).await;
}

async fn concurrent_runs(store: Store, engine: Engine) {
    const RUNS: usize = 8;
    let f = Fixture::new(store, engine, "").await;
    let (agent, grace) = (f.agent(), f.dba("grace"));
    for round in 0..3 {
        let id = f.request(&agent).await;
        vote(&f.server, &grace, &id, "approve", None).await.ok();
        let replies =
            futures::future::join_all((0..RUNS).map(|_| f.increment(&agent, 1, Some(&id)))).await;
        let ok: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
        assert_eq!(ok.len(), 1, "round {round}: exactly one ran");
        assert_eq!(ok[0].body["rows_affected"], 1);
        for reply in replies.iter().filter(|r| r.status != 200) {
            reply.problem(409, "approval_used");
        }
        assert_eq!(
            f.ledger.n(1).await,
            round + 1,
            "round {round}: the database saw exactly one increment"
        );
        let done = approval(&f.server, &agent, &id).await;
        assert_eq!(done["status"], "executed");
        assert_eq!(done["execution"]["rows_affected"], 1);
        assert_eq!(
            audit(&f.server, "approval_executed", &id).await.len(),
            1,
            "one execution audited"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_votes_count_once_on_sqlite() {
    concurrent_votes(Store::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_votes_count_once_on_postgres() {
    concurrent_votes(Store::PostgresRedis).await;
}

/// Retried and racing votes: one dba's parallel votes count once; two dbas completing a
/// quorum of two at the same moment leave exactly two votes; approve racing reject has
/// one winner, and the stored status is the winner's.
async fn concurrent_votes(store: Store) {
    const VOTES: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let extra = quorum_of_two(dir.path());
    let f = Fixture::new_in(store, Engine::Sqlite, &extra, dir).await;
    let agent = f.agent();
    let id = f.request(&agent).await;

    let grace = f.dba("grace");
    let replies = futures::future::join_all(
        (0..VOTES).map(|_| vote(&f.server, &grace, &id, "approve", None)),
    )
    .await;
    let counted: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    assert_eq!(counted.len(), 1, "one vote per approver");
    assert_eq!(counted[0].body["status"], "pending");
    for reply in replies.iter().filter(|r| r.status != 200) {
        reply.problem(409, "already_voted");
    }
    let now = approval(&f.server, &agent, &id).await;
    assert_eq!(
        (now["approvals"].clone(), now["status"].clone()),
        (json!(1), json!("pending"))
    );

    let (linus, ken) = (f.dba("linus"), f.dba("ken"));
    let (a, b) = tokio::join!(
        vote(&f.server, &linus, &id, "approve", None),
        vote(&f.server, &ken, &id, "approve", None)
    );
    let statuses = [a.status, b.status];
    assert!(
        statuses == [200, 409] || statuses == [409, 200],
        "one completes the quorum, the other finds it decided: {} / {}",
        a.body,
        b.body
    );
    let loser = if a.status == 409 { &a } else { &b };
    loser.problem(409, "approval_not_pending");
    let now = approval(&f.server, &agent, &id).await;
    assert_eq!(now["status"], "approved");
    assert_eq!(now["approvals"], 2, "{now}");
    assert_eq!(now["votes"].as_array().unwrap().len(), 2, "{now}");

    // A fresh request: approve and reject race; the second vote finds it decided.
    let id = f.request(&agent).await;
    vote(&f.server, &grace, &id, "approve", None).await.ok();
    let (approve, reject) = tokio::join!(
        vote(&f.server, &linus, &id, "approve", None),
        vote(&f.server, &ken, &id, "reject", None)
    );
    let winner = match (approve.status, reject.status) {
        (200, 409) => "approved",
        (409, 200) => "rejected",
        _ => panic!("one winner: {} / {}", approve.body, reject.body),
    };
    let now = approval(&f.server, &agent, &id).await;
    assert_eq!(now["status"], winner, "{now}");
    assert_eq!(now["votes"].as_array().unwrap().len(), 2, "{now}");
}

#[tokio::test]
async fn a_failed_run_spends_the_approval() {
    let f = Fixture::new(Store::Sqlite, Engine::Sqlite, "").await;
    let (agent, grace) = (f.agent(), f.dba("grace"));
    // Moving row 1 onto row 2's key violates the primary key when it runs.
    let sql = "UPDATE counters SET id = 2 WHERE id = ?";
    let id = pending_id(&send(&f.server, &agent, "ledger", sql, json!([1]), None).await);
    vote(&f.server, &grace, &id, "approve", None).await.ok();

    send(&f.server, &agent, "ledger", sql, json!([1]), Some(&id))
        .await
        .problem(502, "database_error");
    let failed = approval(&f.server, &agent, &id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["execution"]["ok"], false);
    assert_eq!(failed["execution"]["error_code"], "database_error");
    // Failed is final: no second attempt on the same approval.
    send(&f.server, &agent, "ledger", sql, json!([1]), Some(&id))
        .await
        .problem(409, "approval_used");
    let executed = audit(&f.server, "approval_executed", &id).await;
    assert_eq!(executed.len(), 1, "{executed:?}");
    assert_eq!(executed[0]["completion"]["error_code"], "database_error");
}

#[tokio::test]
async fn malformed_and_unknown_approval_requests_are_refused() {
    let f = Fixture::new(Store::Sqlite, Engine::Sqlite, "").await;
    let (agent, grace) = (f.agent(), f.dba("grace"));
    let unknown = uuid::Uuid::now_v7().to_string();
    f.increment(&agent, 1, Some(&unknown))
        .await
        .problem(404, "approval_not_found");
    f.increment(&agent, 1, Some("approval-1"))
        .await
        .problem(400, "invalid_request");
    vote(&f.server, &grace, &unknown, "approve", None)
        .await
        .problem(404, "approval_not_found");
    vote(&f.server, &grace, "approval-1", "approve", None)
        .await
        .problem(400, "invalid_request");
    f.server
        .get(&format!("/v1/approvals/{unknown}?wait_s=5"), Some(&grace))
        .await
        .problem(404, "approval_not_found");
    f.server
        .get("/v1/approvals?status=waiting", Some(&grace))
        .await
        .problem(400, "invalid_request");
    f.server
        .get("/v1/approvals", None)
        .await
        .problem(401, "unauthenticated");

    let id = f.request(&agent).await;
    let long = "x".repeat(2_001);
    vote(&f.server, &grace, &id, "approve", Some(&long))
        .await
        .problem(400, "invalid_request");
    let not_json = f
        .server
        .request(
            reqwest::Method::POST,
            &format!("/v1/approvals/{id}/approve"),
        )
        .bearer_auth(&grace)
        .header("content-type", "application/json")
        .body("approve!")
        .send()
        .await
        .unwrap();
    common::reply(not_json)
        .await
        .problem(400, "invalid_request");
    let unknown_member = f
        .server
        .post(
            &format!("/v1/approvals/{id}/approve"),
            Some(&grace),
            &json!({"comment": "ok", "quorum": 0}),
        )
        .await;
    unknown_member.problem(400, "invalid_request");
    let still = approval(&f.server, &grace, &id).await;
    assert_eq!(
        (&still["status"], &still["votes"]),
        (&json!("pending"), &json!([]))
    );
    assert_eq!(f.ledger.n(1).await, 0);
}

#[tokio::test]
async fn long_polls_are_capped_by_max_wait_s() {
    let f = Fixture::new(
        Store::Sqlite,
        Engine::Sqlite,
        "[approvals]\nmax_wait_s = 1\n",
    )
    .await;
    let agent = f.agent();
    let id = f.request(&agent).await;
    let asked = Instant::now();
    let reply = f
        .server
        .get(&format!("/v1/approvals/{id}?wait_s=30"), Some(&agent))
        .await;
    let waited = asked.elapsed();
    assert_eq!(reply.ok()["status"], "pending");
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(5)).contains(&waited),
        "waited {waited:?} for a 1 s cap"
    );
}

// ---------------------------------------------------------------------------------------
// Notifications: webhooks, SSE, replicas
// ---------------------------------------------------------------------------------------

type HmacSha256 = Hmac<Sha256>;

/// What the test receiver got, and what it answered.
struct Delivery {
    headers: HeaderMap,
    body: axum::body::Bytes,
    answered: StatusCode,
}

#[derive(Clone)]
struct Receiver {
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    /// Requests answered 500 before the receiver starts accepting.
    failures_left: Arc<AtomicUsize>,
}

async fn webhook_receiver(failures: usize) -> (String, Receiver) {
    async fn hook(
        axum::extract::State(receiver): axum::extract::State<Receiver>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> StatusCode {
        let fail = receiver
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let answered = if fail {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::NO_CONTENT
        };
        receiver.deliveries.lock().unwrap().push(Delivery {
            headers,
            body,
            answered,
        });
        answered
    }
    let receiver = Receiver {
        deliveries: Arc::default(),
        failures_left: Arc::new(AtomicUsize::new(failures)),
    };
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, receiver)
}

/// Whether `headers` carry a valid signature of `body` under `secret`.
fn signed(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(timestamp), Some(signature)) = (
        header(gatehouse::approval::TIMESTAMP_HEADER),
        header(gatehouse::approval::SIGNATURE_HEADER),
    ) else {
        return false;
    };
    let Some(hex_mac) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(mac_bytes) = hex::decode(hex_mac) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&mac_bytes).is_ok()
}

impl Receiver {
    /// Waits until a delivery of `event` about `id` was accepted; every attempt at it.
    async fn accepted(&self, event: &str, id: &str) -> Vec<(HeaderMap, Value, StatusCode)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let attempts: Vec<(HeaderMap, Value, StatusCode)> = self
                .deliveries
                .lock()
                .unwrap()
                .iter()
                .map(|d| {
                    let body: Value = serde_json::from_slice(&d.body).unwrap();
                    (d.headers.clone(), body, d.answered)
                })
                .filter(|(_, body, _)| body["event"] == event && body["approval"]["id"] == id)
                .collect();
            if attempts
                .iter()
                .any(|(_, _, answered)| answered.is_success())
            {
                return attempts;
            }
            assert!(
                Instant::now() < deadline,
                "no accepted `{event}` delivery for {id}; attempts: {}",
                attempts.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn webhooks_are_signed_and_retried_after_a_server_error() {
    const SECRET: &str = "webhook-secret-for-tests";
    let (url, receiver) = webhook_receiver(1).await;
    let extra = format!("[[approvals.webhooks]]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n");
    let f = Fixture::new(Store::Sqlite, Engine::Sqlite, &extra).await;
    let (agent, grace) = (f.agent(), f.dba("grace"));
    let before = chrono::Utc::now().timestamp();
    let id = f.request(&agent).await;

    let created = receiver.accepted("created", &id).await;
    assert_eq!(created.len(), 2, "one 500, then the retry");
    assert_eq!(created[0].2, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(created[1].2, StatusCode::NO_CONTENT);
    let delivery = |headers: &HeaderMap| {
        headers[gatehouse::approval::DELIVERY_HEADER]
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        delivery(&created[0].0),
        delivery(&created[1].0),
        "a retry is the same delivery"
    );
    let raw: Vec<Vec<u8>> = receiver
        .deliveries
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.body.to_vec())
        .collect();
    for ((headers, body, _), raw) in created.iter().zip(&raw) {
        assert!(signed(SECRET, headers, raw), "valid signature");
        assert!(!signed("another-secret", headers, raw), "the key matters");
        let mut tampered = raw.clone();
        tampered.push(b' ');
        assert!(!signed(SECRET, headers, &tampered), "the body is signed");
        let timestamp: i64 = headers[gatehouse::approval::TIMESTAMP_HEADER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (before - 1..=chrono::Utc::now().timestamp() + 1).contains(&timestamp),
            "{timestamp}"
        );
        assert_eq!(headers[gatehouse::approval::EVENT_HEADER], "created");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body["delivery"], delivery(headers));
        assert_eq!(body["approval"]["statement"], f.ledger.increment());
        assert_eq!(body["approval"]["status"], "pending");
    }

    vote(&f.server, &grace, &id, "approve", None).await.ok();
    let approved = receiver.accepted("approved", &id).await;
    assert_eq!(approved.len(), 1, "accepted at once");
    assert_eq!(approved[0].1["approval"]["status"], "approved");
    let last = receiver
        .deliveries
        .lock()
        .unwrap()
        .last()
        .unwrap()
        .body
        .to_vec();
    assert!(signed(SECRET, &approved[0].0, &last));

    f.increment(&agent, 1, Some(&id)).await.ok();
    let executed = receiver.accepted("executed", &id).await;
    assert_eq!(executed[0].1["approval"]["execution"]["rows_affected"], 1);
}

/// A server-sent event stream read chunk by chunk.
struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    async fn open(server: &TestServer, token: &str) -> EventStream {
        let response = reqwest::Client::new()
            .get(format!("{}/v1/approvals/events", server.base))
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        EventStream {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (name and JSON data) within `within`; `None` if none came.
    async fn next(&mut self, within: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.strip_prefix(' ').unwrap_or(value));
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some((name, serde_json::from_str(&data).unwrap()));
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next event about `id` within `within`, passing over events about other approvals
    /// (which must be among `others`); `None` if none came.
    async fn next_about(
        &mut self,
        id: &str,
        others: &[String],
        within: Duration,
    ) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (name, approval) = self.next(left).await?;
            if approval["id"] == id {
                return Some((name, approval));
            }
            assert!(
                others.iter().any(|other| approval["id"] == *other),
                "`{name}` about an approval this test never made: {approval}"
            );
        }
    }

    /// Event names about `id`, in order, until (and including) `last`.
    async fn until(&mut self, id: &str, last: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let Some((name, approval)) = self.next(Duration::from_secs(5)).await else {
                panic!("no `{last}` event for {id}; saw {seen:?}");
            };
            if approval["id"] == id {
                seen.push(name.clone());
                if name == last {
                    return seen;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_show_a_request_created_then_approved() {
    let f = Fixture::new(Store::Sqlite, Engine::Sqlite, "").await;
    let (agent, grace) = (f.agent(), f.dba("grace"));
    let mut dba_stream = EventStream::open(&f.server, &f.dba("linus")).await;
    let outsider = f.server.token("bob", PrincipalKind::Human, &["eng"]);
    let mut outsider_stream = EventStream::open(&f.server, &outsider).await;

    let id = f.request(&agent).await;
    assert_eq!(dba_stream.until(&id, "created").await, ["created"]);
    vote(&f.server, &grace, &id, "approve", None).await.ok();
    let (name, approval) = dba_stream.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!((name.as_str(), &approval["id"]), ("approved", &json!(id)));
    assert_eq!(approval["status"], "approved");
    assert_eq!(approval["votes"][0]["approver_sub"], "grace");

    f.increment(&agent, 1, Some(&id)).await.ok();
    assert_eq!(
        dba_stream.until(&id, "executed").await,
        ["executing", "executed"]
    );
    // Someone who may not see the request hears nothing of it.
    assert!(
        outsider_stream
            .next(Duration::from_millis(300))
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_postgres_and_redis_wake_each_other() {
    let control = control(Store::PostgresRedis).await;
    let ledger = Ledger::new(Engine::Sqlite).await;
    let config = format!(
        "{}{}",
        control.toml,
        datasource_toml("ledger", "prod", &ledger.db, "")
    );
    let (first, second) = (
        TestServer::start(&config).await,
        TestServer::start(&config).await,
    );
    let agent = first.agent_token();
    // Tokens are signed with the shared secret, so either replica accepts either.
    let grace = second.token("grace", PrincipalKind::Human, &["dba"]);
    let linus = first.token("linus", PrincipalKind::Human, &["dba"]);
    let sql = ledger.increment();

    let mut latencies = Vec::new();
    let mut earlier = Vec::new();
    for round in 0..3 {
        let id = pending_id(&send(&first, &agent, "ledger", sql, json!([1]), None).await);
        // The second replica knows it at once: same store.
        assert_eq!(approval(&second, &grace, &id).await["status"], "pending");
        let mut stream = EventStream::open(&first, &linus).await;
        let poll = spawn_long_poll(&first, &agent, &id, 10);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!poll.is_finished(), "round {round}: the long-poll waits");

        let sent = Instant::now();
        let approved = vote(&second, &grace, &id, "approve", None).await;
        let answered = Instant::now();
        assert_eq!(approved.ok()["status"], "approved");
        let (woke, woke_at) = poll.await.unwrap();
        assert_eq!(woke.ok()["status"], "approved", "round {round}");
        let since_sent = woke_at.saturating_duration_since(sent);
        let since_answer = woke_at.saturating_duration_since(answered);
        eprintln!(
            "round {round}: the first replica's long-poll woke {since_answer:?} after the \
             second replica answered the vote ({since_sent:?} after the vote was sent)"
        );
        assert!(
            since_sent < Duration::from_secs(1),
            "round {round}: woke {since_sent:?} after the vote on the other replica"
        );
        latencies.push(since_sent);
        // The first replica's event stream hears of it too, through Redis. A relayed event
        // about an earlier round's approval may still be on its way; it is passed over.
        let (name, _) = stream
            .next_about(&id, &earlier, Duration::from_secs(1))
            .await
            .unwrap_or_else(|| panic!("round {round}: no event about {id}"));
        assert_eq!(name, "approved", "round {round}");
        earlier.push(id.clone());

        // Run on the second replica; the first refuses a second run.
        let ran = send(&second, &agent, "ledger", sql, json!([1]), Some(&id)).await;
        assert_eq!(ran.ok()["rows_affected"], 1);
        send(&first, &agent, "ledger", sql, json!([1]), Some(&id))
            .await
            .problem(409, "approval_used");
        assert_eq!(ledger.n(1).await, round + 1);
        assert_eq!(approval(&first, &agent, &id).await["status"], "executed");
    }
    eprintln!("cross-replica long-poll wake-ups: {latencies:?}");
}

// ---------------------------------------------------------------------------------------
// gRPC
// ---------------------------------------------------------------------------------------

fn grpc_increment(sql: &str, approval_id: &str) -> proto::QueryRequest {
    proto::QueryRequest {
        datasource: "ledger".into(),
        sql: sql.into(),
        params: vec![proto::Value {
            kind: Some(proto::value::Kind::IntValue(1)),
        }],
        max_rows: None,
        approval_id: approval_id.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_query_waits_for_approval_and_watch_delivers_changes() {
    let f = Fixture::new(Store::Sqlite, Engine::Sqlite, "").await;
    let (agent, grace) = (f.agent(), f.dba("grace"));
    let sql = f.ledger.increment();
    let mut gatehouse = f.server.grpc().await;
    let mut approvals = ApprovalsClient::connect(format!("http://{}", f.server.grpc_addr))
        .await
        .unwrap();
    let mut watch = approvals
        .watch(authed(proto::WatchApprovalsRequest {}, &f.dba("linus")))
        .await
        .unwrap()
        .into_inner();
    let mut next_change = async move || {
        tokio::time::timeout(Duration::from_secs(5), watch.message())
            .await
            .expect("a change within 5 s")
            .unwrap()
            .expect("the stream stays open")
    };

    let pending = gatehouse
        .query(authed(grpc_increment(sql, ""), &agent))
        .await
        .unwrap()
        .into_inner();
    let asked = pending.approval.expect("an approval request");
    assert_eq!(asked.status, "pending");
    assert_eq!(asked.statement, sql);
    assert_eq!(asked.params_json, r#"[{"type":"int","value":1}]"#);
    assert_eq!(pending.decision.unwrap().effect, "approval_required");
    assert!(pending.rows.is_empty() && pending.columns.is_empty());
    assert_eq!(pending.rows_affected, 0);
    assert_eq!(f.ledger.n(1).await, 0);

    let change = next_change().await;
    assert_eq!(change.kind, "created");
    assert_eq!(change.approval.unwrap().id, asked.id);

    // Over gRPC as over REST: not yet approved, then approved by a dba, then run once.
    let early = gatehouse
        .query(authed(grpc_increment(sql, &asked.id), &agent))
        .await
        .unwrap_err();
    assert_eq!(early.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        early.metadata().get("gatehouse-code").unwrap(),
        "approval_not_pending"
    );
    let voted = approvals
        .approve(authed(
            proto::VoteRequest {
                id: asked.id.clone(),
                comment: "fine".into(),
            },
            &grace,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(voted.status, "approved");
    assert_eq!(voted.votes[0].comment, "fine");
    let change = next_change().await;
    assert_eq!(change.kind, "approved");
    assert_eq!(change.approval.unwrap().status, "approved");
    let seen = approvals
        .get(authed(
            proto::GetApprovalRequest {
                id: asked.id.clone(),
                wait_s: 0,
            },
            &agent,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen.status, "approved");

    let mismatch = gatehouse
        .query(authed(
            proto::QueryRequest {
                params: vec![proto::Value {
                    kind: Some(proto::value::Kind::IntValue(2)),
                }],
                ..grpc_increment(sql, &asked.id)
            },
            &agent,
        ))
        .await
        .unwrap_err();
    assert_eq!(mismatch.code(), tonic::Code::PermissionDenied);
    assert_eq!(
        mismatch.metadata().get("gatehouse-code").unwrap(),
        "approval_mismatch"
    );

    let ran = gatehouse
        .query(authed(grpc_increment(sql, &asked.id), &agent))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ran.rows_affected, 1);
    assert!(ran.approval.is_none());
    assert_eq!(ran.decision.unwrap().effect, "allow");
    let again = gatehouse
        .query(authed(grpc_increment(sql, &asked.id), &agent))
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        again.metadata().get("gatehouse-code").unwrap(),
        "approval_used"
    );
    assert_eq!(f.ledger.n(1).await, 1, "ran exactly once");

    let kinds = [next_change().await, next_change().await].map(|c| c.kind);
    assert_eq!(kinds, ["executing", "executed"]);
    let listed = approvals
        .list(authed(
            proto::ListApprovalsRequest {
                status: "executed".into(),
            },
            &grace,
        ))
        .await
        .unwrap()
        .into_inner();
    let done = listed
        .approvals
        .iter()
        .find(|a| a.id == asked.id)
        .expect("listed as executed");
    assert_eq!(done.execution.as_ref().unwrap().rows_affected, 1);
}
