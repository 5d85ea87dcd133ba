//! `gatehouse approvals list | show | approve | reject` against a running server: the
//! binary, spawned as an approver would run it, talking REST to a `TestServer`.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::db::TestDb;
use common::{TestServer, datasource_toml};
use gatehouse::identity::PrincipalKind;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");
const INCREMENT: &str = "UPDATE counters SET n = n + 1 WHERE id = ?";

struct Fixture {
    server: TestServer,
    ledger: TestDb,
}

impl Fixture {
    /// A server with one production datasource, where an agent's write needs a dba.
    async fn new() -> Fixture {
        let ledger = TestDb::sqlite();
        ledger
            .exec(
                "CREATE TABLE counters (id BIGINT PRIMARY KEY, n BIGINT NOT NULL);
                 INSERT INTO counters (id, n) VALUES (1, 0);",
            )
            .await;
        let server = TestServer::start(&datasource_toml("ledger", "prod", &ledger, "")).await;
        Fixture { server, ledger }
    }

    /// The agent asks for the increment: 202; the approval id.
    async fn request(&self) -> String {
        let reply = self.run(None).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        reply.body["approval"]["id"].as_str().unwrap().to_owned()
    }

    async fn run(&self, approval: Option<&str>) -> common::Reply {
        let mut body = json!({"datasource": "ledger", "sql": INCREMENT, "params": [1]});
        if let Some(id) = approval {
            body["approval_id"] = json!(id);
        }
        let agent = self.server.agent_token();
        self.server.post("/v1/query", Some(&agent), &body).await
    }

    fn dba(&self, sub: &str) -> String {
        self.server.token(sub, PrincipalKind::Human, &["dba"])
    }

    /// `gatehouse approvals <args>` with `--server` and `--token` given as flags.
    async fn cli(&self, token: &str, args: &[&str]) -> Output {
        let mut command = gatehouse();
        command
            .arg("approvals")
            .args(args)
            .args(["--server", &self.server.base, "--token", token]);
        output(command).await
    }
}

/// The binary with no ambient configuration.
fn gatehouse() -> Command {
    let mut command = Command::new(BIN);
    for var in ["GATEHOUSE_SERVER", "GATEHOUSE_TOKEN", "GATEHOUSE_CONFIG"] {
        command.env_remove(var);
    }
    command
}

/// Runs the command off the runtime's threads: the server answering it runs on them.
async fn output(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().expect("gatehouse runs"))
        .await
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[track_caller]
fn succeeded(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        stderr(out)
    );
    stdout(out)
}

/// Fails with exit code 1 and the problem's code and detail on stderr; returns stderr.
#[track_caller]
fn refused(out: &Output, code: &str) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", stdout(out));
    let err = stderr(out);
    assert!(err.contains(code), "{code} expected: {err}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_lists_shows_and_approves_from_the_command_line() {
    let f = Fixture::new().await;
    let (grace, agent) = (f.dba("grace"), f.server.agent_token());
    let id = f.request().await;

    let table = succeeded(&f.cli(&grace, &["list", "--status", "pending"]).await);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one row: {table}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("STATUS"),
        "{table}"
    );
    for cell in [
        &id,
        "pending",
        "0/1",
        "ledger (prod)",
        "agent-7 (agent)",
        INCREMENT,
    ] {
        assert!(lines[1].contains(cell), "{cell} in {table}");
    }
    let none = succeeded(&f.cli(&grace, &["list", "--status", "approved"]).await);
    assert_eq!(none.trim(), "no approval requests");
    let json_list: Value =
        serde_json::from_str(&succeeded(&f.cli(&grace, &["list", "--json"]).await)).unwrap();
    assert_eq!(json_list["approvals"][0]["id"], id.as_str());

    let shown = succeeded(&f.cli(&agent, &["show", &id]).await);
    assert!(
        shown.contains("status     pending (0 of 1 approvals)"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("statement  {INCREMENT}")),
        "{shown}"
    );
    assert!(
        shown.contains(r#"params     [{"type":"int","value":1}]"#),
        "{shown}"
    );
    assert!(shown.contains("approvers  dba"), "{shown}");

    // The requester waits with `show --wait-s`, configured through the environment; a dba
    // approves meanwhile.
    let mut waiting = gatehouse();
    waiting
        .args(["approvals", "show", &id, "--wait-s", "20", "--json"])
        .env("GATEHOUSE_SERVER", &f.server.base)
        .env("GATEHOUSE_TOKEN", &agent);
    let started = Instant::now();
    let waiting = tokio::spawn(output(waiting));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!waiting.is_finished(), "show --wait-s waits while pending");

    let approved = succeeded(
        &f.cli(
            &grace,
            &["approve", &id, "--comment", "ticket DB-42 checked"],
        )
        .await,
    );
    assert!(
        approved.contains("status     approved (1 of 1 approvals)"),
        "{approved}"
    );
    assert!(
        approved.contains("vote       approve by grace at "),
        "{approved}"
    );
    assert!(approved.ends_with(": ticket DB-42 checked\n"), "{approved}");

    let woke = waiting.await.unwrap();
    let woke: Value = serde_json::from_str(&succeeded(&woke)).unwrap();
    assert_eq!(woke["status"], "approved");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "woke on the decision"
    );

    // Deciding again is refused with the server's code and detail.
    let err = refused(
        &f.cli(&f.dba("linus"), &["approve", &id]).await,
        "approval_not_pending",
    );
    assert!(
        err.contains("no longer pending") && err.contains("409"),
        "{err}"
    );

    assert_eq!(f.run(Some(&id)).await.ok()["rows_affected"], 1);
    let done: Value =
        serde_json::from_str(&succeeded(&f.cli(&grace, &["show", &id, "--json"]).await)).unwrap();
    assert_eq!(done["status"], "executed");
    let shown = succeeded(&f.cli(&grace, &["show", &id]).await);
    assert!(
        shown.contains("execution  ok, 1 rows affected, 0 rows returned"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_rejections_from_the_command_line() {
    let f = Fixture::new().await;
    let (grace, agent) = (f.dba("grace"), f.server.agent_token());
    let id = f.request().await;

    // The requester is no approver.
    let err = refused(&f.cli(&agent, &["approve", &id]).await, "not_an_approver");
    assert!(err.contains("only members of dba may decide"), "{err}");
    // A dba rejects, with a reason, and gets the JSON back.
    let rejected: Value = serde_json::from_str(&succeeded(
        &f.cli(
            &grace,
            &[
                "reject",
                &id,
                "--comment",
                "not during the freeze",
                "--json",
            ],
        )
        .await,
    ))
    .unwrap();
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["votes"][0]["verdict"], "reject");
    assert_eq!(rejected["votes"][0]["comment"], "not during the freeze");
    f.run(Some(&id)).await.problem(409, "approval_not_pending");

    let unknown = uuid::Uuid::now_v7().to_string();
    refused(
        &f.cli(&grace, &["show", &unknown]).await,
        "approval_not_found",
    );
    refused(&f.cli("not-a-jwt", &["list"]).await, "unauthenticated");
    // An id that is not a UUID never leaves the command line (clap's usage error).
    let bad = f.cli(&grace, &["approve", "../../query"]).await;
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    let bad = f.cli(&grace, &["list", "--status", "pendng"]).await;
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));

    // No token at all: said so before any request.
    let mut no_token = gatehouse();
    no_token.args(["approvals", "list", "--server", &f.server.base]);
    let err = stderr(&output(no_token).await);
    assert!(err.contains("no token"), "{err}");
    // Nobody listening.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let mut nobody = gatehouse();
    nobody.args(["approvals", "list", "--server", &closed, "--token", &grace]);
    let out = output(nobody).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot reach"), "{}", stderr(&out));

    assert_eq!(
        counter(&f.ledger).await,
        0,
        "nothing the command line did ran the statement"
    );
}

async fn counter(db: &TestDb) -> i64 {
    use sqlx::Connection as _;
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    sqlx::query_scalar("SELECT n FROM counters WHERE id = 1")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}
