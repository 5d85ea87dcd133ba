//! The approval state machine on real control stores: every rule on SQLite (temporary
//! directory) and on a throwaway PostgreSQL database; webhooks against a local receiver;
//! two replicas sharing PostgreSQL and Redis (127.0.0.1:6379, `GATEHOUSE_TEST_REDIS_URL`).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use common::TEST_SECRET;
use common::db::TestDb;
use gatehouse::approval::{
    ApprovalError, ApprovalEvent, Approvals, Binding, BindingPart, EventKind, ExecutionRecord,
    NewApproval, Requester, Status, Verdict,
};
use gatehouse::config::{ApprovalsConfig, AuthConfig, RedisConfig, WebhookConfig};
use gatehouse::datasource::Param;
use gatehouse::identity::{self, Principal, PrincipalKind, TokenRequest, Verifier};
use gatehouse::store::ControlStore;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::broadcast;
use uuid::Uuid;

const STATEMENT: &str = "DELETE FROM orders WHERE id = $1 AND note = $2";

/// A control store and whatever keeps it alive (temporary directory, test database).
struct Store {
    store: ControlStore,
    _dir: tempfile::TempDir,
    _db: Option<TestDb>,
}

async fn sqlite() -> Store {
    let dir = tempfile::tempdir().unwrap();
    let store = ControlStore::open(None, dir.path()).await.unwrap();
    Store {
        store,
        _dir: dir,
        _db: None,
    }
}

async fn postgres() -> Store {
    let db = TestDb::postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let store = ControlStore::open(Some(&db.url), dir.path()).await.unwrap();
    Store {
        store,
        _dir: dir,
        _db: Some(db),
    }
}

fn redis_url() -> String {
    std::env::var("GATEHOUSE_TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

fn config(expiry_s: u64) -> ApprovalsConfig {
    ApprovalsConfig {
        expiry_s,
        max_wait_s: 60,
        webhooks: Vec::new(),
    }
}

async fn start(store: &Store) -> Approvals {
    Approvals::start(store.store.clone(), &config(3600), &RedisConfig::default())
        .await
        .unwrap()
}

/// Principals the only way the service gets them: minted tokens, verified.
async fn principal(sub: &str, groups: &[&str], act: Option<&str>) -> Principal {
    let dir = tempfile::tempdir().unwrap();
    let auth = AuthConfig {
        hs256_secret: Some(TEST_SECRET.to_owned()),
        ..AuthConfig::default()
    };
    let secret = identity::signing_secret(&auth, dir.path()).unwrap();
    let token = identity::mint_hs256(
        &secret,
        &auth,
        &TokenRequest {
            sub: sub.to_owned(),
            kind: if act.is_some() {
                PrincipalKind::Agent
            } else {
                PrincipalKind::Human
            },
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            act: act.map(str::to_owned),
            ttl: Duration::from_secs(600),
        },
    )
    .unwrap();
    let verifier = Verifier::from_config(&auth, dir.path()).await.unwrap();
    verifier.verify(&token).await.unwrap()
}

/// The requester of most tests: an agent acting for alice.
async fn agent() -> Principal {
    principal("agent-7", &["eng"], Some("alice")).await
}

fn params() -> Vec<Param> {
    vec![Param::Int(42), Param::Text("a \"quoted\" note".to_owned())]
}

fn binding() -> Binding {
    Binding {
        datasource: "shop".to_owned(),
        environment: "prod".to_owned(),
        statement: STATEMENT.to_owned(),
        params: params(),
    }
}

fn request(requester: &Principal, min_approvals: u32) -> NewApproval {
    NewApproval {
        requester: Requester::of(requester),
        binding: binding(),
        policies: vec!["prod-deletes-need-approval".to_owned()],
        reasons: vec!["Deletes in prod need a DBA".to_owned()],
        approver_groups: vec!["dba".to_owned(), "sre".to_owned()],
        min_approvals,
        request_id: Some("req-1".to_owned()),
    }
}

fn done(ok: bool) -> ExecutionRecord {
    ExecutionRecord {
        ok,
        rows_affected: 1,
        rows_returned: 0,
        error_code: (!ok).then(|| "statement_timeout".to_owned()),
        finished_at: chrono::Utc::now(),
    }
}

/// Runs each scenario on SQLite and on PostgreSQL.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::postgres().await).await;
                }
            )*
        }
    };
}

on_both_stores!(
    stored_exactly_and_announced,
    self_approval_is_refused,
    non_approvers_are_refused,
    two_approvals_make_a_quorum_of_two,
    a_rejection_is_final,
    open_approvals_expire,
    every_binding_mismatch_is_refused,
    concurrent_claims_run_once,
    concurrent_votes_are_all_counted,
    listing_shows_what_the_viewer_asked_or_may_decide,
    unknown_ids_are_not_found,
);

async fn stored_exactly_and_announced(store: Store) {
    let approvals = start(&store).await;
    let mut events = approvals.subscribe();
    let agent = agent().await;
    let mut new = request(&agent, 1);
    new.binding.statement = "DELETE FROM orders\n  WHERE id = $1 -- one order\n".to_owned();
    new.binding.params = vec![
        Param::Null,
        Param::Bool(true),
        Param::Int(i64::MIN),
        Param::Float(0.1),
        Param::Float(-0.0),
        Param::Text("ünïcode 'x'".to_owned()),
        Param::Json(json!({"z": 1, "a": [1.5, null, "x"]})),
    ];
    let created = approvals.create(new.clone()).await.unwrap();
    assert_eq!(created.status, Status::Pending);
    assert_eq!(created.fingerprint.len(), 64);
    assert_eq!(
        created.expires_at - created.created_at,
        chrono::Duration::hours(1)
    );

    let read = approvals.get(created.id).await.unwrap();
    assert_eq!(read, created);
    assert_eq!(read.statement, new.binding.statement);
    assert_eq!(read.params, new.binding.params);
    assert!(matches!(read.params[4], Param::Float(z) if z.is_sign_negative()));
    assert_eq!(read.requester.sub, "agent-7");
    assert_eq!(read.requester.kind, PrincipalKind::Agent);
    assert_eq!(read.requester.groups, ["eng"]);
    assert_eq!(read.requester.on_behalf_of.as_deref(), Some("alice"));
    assert_eq!(read.policies, ["prod-deletes-need-approval"]);
    assert_eq!(read.reasons, ["Deletes in prod need a DBA"]);
    assert_eq!(read.approver_groups, ["dba", "sre"]);
    assert_eq!(read.request_id.as_deref(), Some("req-1"));

    let event = next_event(&mut events, created.id).await;
    assert_eq!((event.kind, event.local), (EventKind::Created, true));
    // The JSON shape REST and webhooks show: typed params, exact floats, key order kept.
    let shown = serde_json::to_value(&read).unwrap();
    assert_eq!(shown["status"], "pending");
    assert_eq!(shown["params"][3], json!({"type": "float", "value": "0.1"}));
    assert_eq!(
        shown["params"][6]["value"].to_string(),
        r#"{"z":1,"a":[1.5,null,"x"]}"#
    );

    for (bad, why) in [
        (
            NewApproval {
                approver_groups: vec![],
                ..new.clone()
            },
            "no approver group",
        ),
        (
            NewApproval {
                min_approvals: 0,
                ..new.clone()
            },
            "min_approvals",
        ),
    ] {
        let err = approvals.create(bad).await.unwrap_err();
        assert_eq!(err.code(), "approval_invalid");
        assert!(err.to_string().contains(why), "{err}");
    }
}

async fn self_approval_is_refused(store: Store) {
    let approvals = start(&store).await;
    let agent = agent().await;
    let created = approvals.create(request(&agent, 1)).await.unwrap();
    // The requester, the person it acted for, and another agent acting for that person.
    for who in [
        principal("agent-7", &["dba"], None).await,
        principal("alice", &["dba"], None).await,
        principal("agent-9", &["dba"], Some("alice")).await,
    ] {
        let err = approvals.approve(created.id, &who, None).await.unwrap_err();
        assert!(
            matches!(err, ApprovalError::SelfApproval(_)),
            "{}: {err}",
            who.sub()
        );
        assert_eq!(err.code(), "self_approval");
        let err = approvals.reject(created.id, &who, None).await.unwrap_err();
        assert_eq!(err.code(), "self_approval");
    }
    // A person's own request, approved by an agent acting for them.
    let alice = principal("alice", &["eng"], None).await;
    let own = approvals.create(request(&alice, 1)).await.unwrap();
    let alices_agent = principal("agent-3", &["dba"], Some("alice")).await;
    let err = approvals
        .approve(own.id, &alices_agent, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "self_approval");

    let after = approvals.get(created.id).await.unwrap();
    assert_eq!((after.status, after.votes.len()), (Status::Pending, 0));
    let bob = principal("bob", &["dba"], None).await;
    let approved = approvals.approve(created.id, &bob, None).await.unwrap();
    assert_eq!(approved.status, Status::Approved);
}

async fn non_approvers_are_refused(store: Store) {
    let approvals = start(&store).await;
    let created = approvals.create(request(&agent().await, 1)).await.unwrap();
    let outsider = principal("mallory", &["eng", "dbas"], None).await;
    for result in [
        approvals.approve(created.id, &outsider, None).await,
        approvals.reject(created.id, &outsider, None).await,
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, ApprovalError::NotAnApprover { .. }), "{err}");
        assert_eq!(err.code(), "not_an_approver");
        assert!(err.to_string().contains("dba, sre"), "{err}");
    }
    // A member of the second approver group may decide.
    let sre = principal("sam", &["sre"], None).await;
    let approved = approvals.approve(created.id, &sre, None).await.unwrap();
    assert_eq!(approved.status, Status::Approved);
}

async fn two_approvals_make_a_quorum_of_two(store: Store) {
    let approvals = start(&store).await;
    let mut events = approvals.subscribe();
    let agent = agent().await;
    let created = approvals.create(request(&agent, 2)).await.unwrap();
    let (bob, carol, dave) = (
        principal("bob", &["dba"], None).await,
        principal("carol", &["sre"], None).await,
        principal("dave", &["dba"], None).await,
    );

    let one = approvals
        .approve(created.id, &bob, Some("looks right".to_owned()))
        .await
        .unwrap();
    assert_eq!((one.status, one.approvals()), (Status::Pending, 1));
    assert_eq!(one.decided_at, None);
    assert_eq!(one.votes[0].approver_sub, "bob");
    assert_eq!(one.votes[0].verdict, Verdict::Approve);
    assert_eq!(one.votes[0].comment.as_deref(), Some("looks right"));
    // Still pending: the requester cannot run it yet.
    let err = approvals
        .claim(created.id, &agent, &binding())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "approval_not_pending");

    // One vote per approver: approving again, or changing one's mind, is refused.
    for result in [
        approvals.approve(created.id, &bob, None).await,
        approvals.reject(created.id, &bob, None).await,
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, ApprovalError::AlreadyVoted(_)), "{err}");
        assert_eq!(err.code(), "already_voted");
    }
    assert_eq!(approvals.get(created.id).await.unwrap().approvals(), 1);

    let two = approvals.approve(created.id, &carol, None).await.unwrap();
    assert_eq!((two.status, two.approvals()), (Status::Approved, 2));
    assert!(two.decided_at.is_some());
    let err = approvals
        .approve(created.id, &dave, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ApprovalError::NotPending {
                status: Status::Approved,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.code(), "approval_not_pending");

    let kinds: Vec<EventKind> = [
        next_event(&mut events, created.id).await,
        next_event(&mut events, created.id).await,
        next_event(&mut events, created.id).await,
    ]
    .iter()
    .map(|e| e.kind)
    .collect();
    assert_eq!(
        kinds,
        [EventKind::Created, EventKind::Voted, EventKind::Approved]
    );

    let claimed = approvals
        .claim(created.id, &agent, &binding())
        .await
        .unwrap();
    assert_eq!(claimed.status, Status::Executing);
    assert!(claimed.claimed_at.is_some());
}

async fn a_rejection_is_final(store: Store) {
    let approvals = start(&store).await;
    let agent = agent().await;
    let created = approvals.create(request(&agent, 2)).await.unwrap();
    let (bob, carol, dave) = (
        principal("bob", &["dba"], None).await,
        principal("carol", &["dba"], None).await,
        principal("dave", &["dba"], None).await,
    );
    approvals.approve(created.id, &bob, None).await.unwrap();
    let rejected = approvals
        .reject(created.id, &carol, Some("wrong table".to_owned()))
        .await
        .unwrap();
    assert_eq!(rejected.status, Status::Rejected);
    assert!(rejected.decided_at.is_some());
    assert_eq!(rejected.votes.len(), 2);
    for result in [
        approvals.approve(created.id, &dave, None).await,
        approvals.reject(created.id, &dave, None).await,
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(
                err,
                ApprovalError::NotPending {
                    status: Status::Rejected,
                    ..
                }
            ),
            "{err}"
        );
    }
    let err = approvals
        .claim(created.id, &agent, &binding())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "approval_not_pending");
    assert_eq!(
        approvals.get(created.id).await.unwrap().status,
        Status::Rejected
    );
}

async fn open_approvals_expire(store: Store) {
    let approvals = Approvals::start(store.store.clone(), &config(1), &RedisConfig::default())
        .await
        .unwrap();
    let mut events = approvals.subscribe();
    let agent = agent().await;
    let bob = principal("bob", &["dba"], None).await;
    let pending = approvals.create(request(&agent, 1)).await.unwrap();
    let approved = approvals.create(request(&agent, 1)).await.unwrap();
    approvals.approve(approved.id, &bob, None).await.unwrap();
    let waited = approvals.create(request(&agent, 1)).await.unwrap();

    // A long-poll on a pending approval returns when it expires, not at its deadline.
    let started = Instant::now();
    let expired = approvals
        .wait(waited.id, Status::Pending, Duration::from_secs(10))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(expired.status, Status::Expired);
    assert!(took < Duration::from_secs(3), "waited {took:?}");
    assert_eq!(stored_status(&store.store, waited.id).await, "expired");

    let err = approvals.approve(pending.id, &bob, None).await.unwrap_err();
    assert!(matches!(err, ApprovalError::Expired(_)), "{err}");
    assert_eq!(err.code(), "approval_expired");
    let err = approvals
        .claim(approved.id, &agent, &binding())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "approval_expired");
    // Reads say expired, and so does the store.
    for id in [pending.id, approved.id] {
        assert_eq!(approvals.get(id).await.unwrap().status, Status::Expired);
        assert_eq!(stored_status(&store.store, id).await, "expired");
    }
    let mut expired_events = 0;
    while let Ok(event) = events.try_recv() {
        if event.kind == EventKind::Expired {
            expired_events += 1;
        }
    }
    assert_eq!(expired_events, 3, "one expired event per approval");
    let listed = approvals.list(&bob, Some(Status::Expired)).await.unwrap();
    assert_eq!(listed.len(), 3);
}

async fn every_binding_mismatch_is_refused(store: Store) {
    let approvals = start(&store).await;
    let agent = agent().await;
    let created = approvals.create(request(&agent, 1)).await.unwrap();
    let bob = principal("bob", &["dba"], None).await;
    approvals.approve(created.id, &bob, None).await.unwrap();

    let with = |change: &dyn Fn(&mut Binding)| {
        let mut b = binding();
        change(&mut b);
        b
    };
    let cases: Vec<(Principal, Binding, BindingPart)> = vec![
        (
            agent.clone(),
            with(&|b| b.statement = format!("{STATEMENT} ")),
            BindingPart::Statement,
        ),
        (
            agent.clone(),
            with(&|b| b.statement = STATEMENT.replace("orders", "Orders")),
            BindingPart::Statement,
        ),
        (
            agent.clone(),
            with(&|b| b.params[0] = Param::Int(43)),
            BindingPart::Params,
        ),
        (
            agent.clone(),
            with(&|b| b.params[0] = Param::Text("42".to_owned())),
            BindingPart::Params,
        ),
        (
            agent.clone(),
            with(&|b| b.params.push(Param::Null)),
            BindingPart::Params,
        ),
        (
            agent.clone(),
            with(&|b| b.params.clear()),
            BindingPart::Params,
        ),
        (
            agent.clone(),
            with(&|b| b.datasource = "shop_dev".to_owned()),
            BindingPart::Datasource,
        ),
        (
            agent.clone(),
            with(&|b| b.environment = "dev".to_owned()),
            BindingPart::Environment,
        ),
        // Someone else, the same agent for someone else, the person it acted for.
        (
            principal("agent-8", &["eng"], Some("alice")).await,
            binding(),
            BindingPart::Requester,
        ),
        (
            principal("agent-7", &["eng"], Some("bob")).await,
            binding(),
            BindingPart::Requester,
        ),
        (
            principal("alice", &["eng"], None).await,
            binding(),
            BindingPart::Requester,
        ),
    ];
    for (who, attempt, part) in &cases {
        let err = approvals.claim(created.id, who, attempt).await.unwrap_err();
        match &err {
            ApprovalError::Mismatch { part: got, .. } => assert_eq!(got, part, "{attempt:?}"),
            other => panic!("expected a mismatch, got {other}"),
        }
        assert_eq!(err.code(), "approval_mismatch");
        let message = err.to_string();
        assert!(message.contains(part.as_str()), "{message}");
        assert!(
            !message.contains("DELETE") && !message.contains("orders"),
            "{message}"
        );
    }
    // Nothing was used up: the exact request still runs, once. Groups may differ: policy
    // is checked again at execution.
    let regrouped = principal("agent-7", &["eng", "ops"], Some("alice")).await;
    let claimed = approvals
        .claim(created.id, &regrouped, &binding())
        .await
        .unwrap();
    assert_eq!(claimed.status, Status::Executing);
    let err = approvals
        .claim(created.id, &agent, &binding())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ApprovalError::Used {
                status: Status::Executing,
                ..
            }
        ),
        "{err}"
    );
}

async fn concurrent_claims_run_once(store: Store) {
    // Two service instances on one store, as two replicas would be.
    let (first, second) = (start(&store).await, start(&store).await);
    let agent = agent().await;
    let bob = principal("bob", &["dba"], None).await;
    for round in 0..3 {
        let created = first.create(request(&agent, 1)).await.unwrap();
        second.approve(created.id, &bob, None).await.unwrap();
        let claims: Vec<_> = (0..8)
            .map(|i| {
                let service = if i % 2 == 0 {
                    first.clone()
                } else {
                    second.clone()
                };
                let agent = agent.clone();
                tokio::spawn(async move { service.claim(created.id, &agent, &binding()).await })
            })
            .collect();
        let mut won = 0;
        for claim in claims {
            match claim.await.unwrap() {
                Ok(approval) => {
                    assert_eq!(approval.status, Status::Executing);
                    won += 1;
                }
                Err(err) => assert_eq!(err.code(), "approval_used", "round {round}: {err}"),
            }
        }
        assert_eq!(won, 1, "round {round}: exactly one claim wins");

        let executed = second
            .record_execution(created.id, done(round != 1))
            .await
            .unwrap();
        let expected = if round == 1 {
            Status::Failed
        } else {
            Status::Executed
        };
        assert_eq!(executed.status, expected);
        let execution = executed.execution.as_ref().unwrap();
        assert_eq!(execution.rows_affected, 1);
        assert_eq!(execution.ok, round != 1);
        assert_eq!(first.get(created.id).await.unwrap(), executed);
        let err = first
            .claim(created.id, &agent, &binding())
            .await
            .unwrap_err();
        assert_eq!(err.code(), "approval_used");
        let err = first
            .record_execution(created.id, done(true))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "approval_not_executing");
    }
}

async fn concurrent_votes_are_all_counted(store: Store) {
    let (first, second) = (start(&store).await, start(&store).await);
    let agent = agent().await;
    let created = first.create(request(&agent, 3)).await.unwrap();
    let mut approvers = Vec::new();
    for i in 0..6 {
        approvers.push(principal(&format!("dba-{i}"), &["dba"], None).await);
    }
    let votes: Vec<_> = approvers
        .into_iter()
        .enumerate()
        .map(|(i, approver)| {
            let service = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            tokio::spawn(async move { service.approve(created.id, &approver, None).await })
        })
        .collect();
    let mut counted = 0;
    for vote in votes {
        match vote.await.unwrap() {
            Ok(_) => counted += 1,
            Err(err) => assert_eq!(err.code(), "approval_not_pending", "{err}"),
        }
    }
    // Votes are counted one after the other: none lost, none past the quorum.
    assert_eq!(counted, 3);
    let approved = first.get(created.id).await.unwrap();
    assert_eq!(
        (approved.status, approved.approvals()),
        (Status::Approved, 3)
    );
}

async fn listing_shows_what_the_viewer_asked_or_may_decide(store: Store) {
    let approvals = start(&store).await;
    let agent = agent().await;
    let erin = principal("erin", &["eng"], None).await;
    let mine = approvals.create(request(&agent, 1)).await.unwrap();
    let mut other = request(&erin, 1);
    other.approver_groups = vec!["finance".to_owned()];
    let theirs = approvals.create(other).await.unwrap();
    let bob = principal("bob", &["dba"], None).await;
    approvals.approve(mine.id, &bob, None).await.unwrap();

    let ids = |list: Vec<gatehouse::approval::Approval>| -> Vec<Uuid> {
        list.into_iter().map(|a| a.id).collect()
    };
    assert_eq!(ids(approvals.list(&agent, None).await.unwrap()), [mine.id]);
    // The person the agent acted for sees it too.
    let alice = principal("alice", &[], None).await;
    assert_eq!(ids(approvals.list(&alice, None).await.unwrap()), [mine.id]);
    assert_eq!(ids(approvals.list(&bob, None).await.unwrap()), [mine.id]);
    let fiona = principal("fiona", &["finance", "dba"], None).await;
    assert_eq!(
        ids(approvals.list(&fiona, None).await.unwrap()),
        [theirs.id, mine.id],
        "newest first"
    );
    assert_eq!(
        ids(approvals.list(&fiona, Some(Status::Pending)).await.unwrap()),
        [theirs.id]
    );
    assert_eq!(
        ids(approvals
            .list(&fiona, Some(Status::Approved))
            .await
            .unwrap()),
        [mine.id]
    );
    let nobody = principal("zed", &["eng"], None).await;
    assert!(approvals.list(&nobody, None).await.unwrap().is_empty());
    let listed = approvals.list(&bob, None).await.unwrap();
    assert_eq!(listed[0].votes.len(), 1, "votes come with the list");
}

async fn unknown_ids_are_not_found(store: Store) {
    let approvals = start(&store).await;
    let id = Uuid::now_v7();
    let bob = principal("bob", &["dba"], None).await;
    let agent = agent().await;
    for err in [
        approvals.get(id).await.unwrap_err(),
        approvals
            .wait(id, Status::Pending, Duration::from_millis(10))
            .await
            .unwrap_err(),
        approvals.approve(id, &bob, None).await.unwrap_err(),
        approvals.reject(id, &bob, None).await.unwrap_err(),
        approvals.claim(id, &agent, &binding()).await.unwrap_err(),
        approvals
            .record_execution(id, done(true))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.code(), "approval_not_found", "{err}");
    }
}

/// The next event about `id`, failing after a few seconds.
async fn next_event(events: &mut broadcast::Receiver<ApprovalEvent>, id: Uuid) -> ApprovalEvent {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let event = events.recv().await.unwrap();
            if event.approval.id == id {
                return event;
            }
        }
    })
    .await
    .expect("an event within 5 s")
}

async fn stored_status(store: &ControlStore, id: Uuid) -> String {
    let sql = "SELECT status FROM approvals WHERE id = $1";
    match store {
        ControlStore::Sqlite(pool) => sqlx::query_scalar(sql)
            .bind(id.to_string())
            .fetch_one(pool)
            .await
            .unwrap(),
        ControlStore::Postgres(pool) => sqlx::query_scalar(sql)
            .bind(id.to_string())
            .fetch_one(pool)
            .await
            .unwrap(),
    }
}

// ---- webhooks ----

#[derive(Clone, Debug)]
struct Delivery {
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A webhook receiver on a free port that answers 500 to its first request and 200
/// afterwards, keeping every request.
async fn receiver() -> (String, Arc<Mutex<Vec<Delivery>>>) {
    let seen: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let state = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let state = Arc::clone(&state);
            async move {
                let mut seen = state.lock().unwrap();
                seen.push(Delivery {
                    headers,
                    body: body.to_vec(),
                });
                if seen.len() == 1 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn deliveries_until(seen: &Mutex<Vec<Delivery>>, count: usize) -> Vec<Delivery> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let current = seen.lock().unwrap().clone();
        if current.len() >= count || Instant::now() > deadline {
            return current;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn header<'a>(delivery: &'a Delivery, name: &str) -> &'a str {
    delivery
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// Checks the signature the way a receiver would: HMAC-SHA256 of `timestamp.body`.
fn assert_signed(delivery: &Delivery, secret: &str) {
    let timestamp = header(delivery, "x-gatehouse-timestamp");
    let age = chrono::Utc::now().timestamp() - timestamp.parse::<i64>().unwrap();
    assert!((0..60).contains(&age), "timestamp {timestamp}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&delivery.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(header(delivery, "x-gatehouse-signature"), expected);
    // The same signature does not fit another body.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{{}}").as_bytes());
    let other = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_ne!(header(delivery, "x-gatehouse-signature"), other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_and_retried() {
    let store = sqlite().await;
    let (url, seen) = receiver().await;
    let secret = "webhook-secret-for-tests";
    let config = ApprovalsConfig {
        webhooks: vec![WebhookConfig {
            url,
            secret: secret.to_owned(),
        }],
        ..config(3600)
    };
    let approvals = Approvals::start(store.store.clone(), &config, &RedisConfig::default())
        .await
        .unwrap();
    let agent = agent().await;

    let created = approvals.create(request(&agent, 1)).await.unwrap();
    let first_two = deliveries_until(&seen, 2).await;
    assert_eq!(first_two.len(), 2, "the 500 is retried");
    let (failed, retried) = (&first_two[0], &first_two[1]);
    assert_eq!(failed.body, retried.body, "a retry sends the same event");
    assert_eq!(
        header(failed, "x-gatehouse-delivery"),
        header(retried, "x-gatehouse-delivery")
    );
    for delivery in [failed, retried] {
        assert_signed(delivery, secret);
        assert_eq!(header(delivery, "x-gatehouse-event"), "created");
        assert_eq!(header(delivery, "content-type"), "application/json");
    }
    let body: Value = serde_json::from_slice(&retried.body).unwrap();
    assert_eq!(body["event"], "created");
    assert_eq!(body["delivery"], header(retried, "x-gatehouse-delivery"));
    assert_eq!(body["approval"]["id"], created.id.to_string());
    assert_eq!(body["approval"]["status"], "pending");
    assert_eq!(body["approval"]["statement"], STATEMENT);
    assert_eq!(body["approval"]["approver_groups"], json!(["dba", "sre"]));

    // Decided and executed; a vote that leaves it pending sends nothing.
    let bob = principal("bob", &["dba"], None).await;
    approvals.approve(created.id, &bob, None).await.unwrap();
    approvals
        .claim(created.id, &agent, &binding())
        .await
        .unwrap();
    approvals
        .record_execution(created.id, done(true))
        .await
        .unwrap();
    let all = deliveries_until(&seen, 4).await;
    let events: Vec<&str> = all[2..]
        .iter()
        .map(|d| header(d, "x-gatehouse-event"))
        .collect();
    assert_eq!(events, ["approved", "executed"]);
    for delivery in &all[2..] {
        assert_signed(delivery, secret);
    }
    let executed: Value = serde_json::from_slice(&all[3].body).unwrap();
    assert_eq!(executed["approval"]["status"], "executed");
    assert_eq!(executed["approval"]["execution"]["rows_affected"], 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.lock().unwrap().len(), 4, "no duplicate deliveries");
}

#[tokio::test]
async fn bad_configuration_is_refused_at_start() {
    let store = sqlite().await;
    let bad = [
        (config(0), RedisConfig::default(), "expiry_s"),
        (
            ApprovalsConfig {
                webhooks: vec![WebhookConfig {
                    url: "not a url".to_owned(),
                    secret: "s".to_owned(),
                }],
                ..config(60)
            },
            RedisConfig::default(),
            "webhooks[0].url",
        ),
        (
            config(60),
            RedisConfig {
                url: Some("redis://127.0.0.1:1".to_owned()),
            },
            "cannot reach Redis",
        ),
    ];
    for (approvals, redis, why) in bad {
        let err = Approvals::start(store.store.clone(), &approvals, &redis)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(why), "{err}");
    }
}

// ---- replicas ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_on_one_replica_wakes_a_wait_on_another_through_redis() {
    let store = postgres().await;
    let redis = RedisConfig {
        url: Some(redis_url()),
    };
    let first = Approvals::start(store.store.clone(), &config(3600), &redis)
        .await
        .unwrap();
    let second = Approvals::start(store.store.clone(), &config(3600), &redis)
        .await
        .unwrap();
    let (mut first_events, mut second_events) = (first.subscribe(), second.subscribe());
    let agent = agent().await;
    let created = first.create(request(&agent, 1)).await.unwrap();

    // The second replica hears of the creation through Redis.
    let relayed = next_event(&mut second_events, created.id).await;
    assert_eq!((relayed.kind, relayed.local), (EventKind::Created, false));
    assert_eq!(relayed.approval.statement, STATEMENT);

    let waiter = {
        let first = first.clone();
        tokio::spawn(async move {
            let result = first
                .wait(created.id, Status::Pending, Duration::from_secs(30))
                .await;
            (result, Instant::now())
        })
    };
    // Let the waiter settle into its wait, past its first read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bob = principal("bob", &["dba"], None).await;
    let decided_at = Instant::now();
    let approved = second.approve(created.id, &bob, None).await.unwrap();
    assert_eq!(approved.status, Status::Approved);
    let (result, woke_at) = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the wait returns")
        .unwrap();
    let woke = result.unwrap();
    let latency = woke_at - decided_at;
    println!("cross-replica wake-up after {latency:?}");
    assert_eq!(woke.status, Status::Approved);
    // Without Redis the wait would re-read the store only every 5 s.
    assert!(latency < Duration::from_secs(1), "woke after {latency:?}");

    // Each replica sees the approval once: locally on the second, relayed on the first.
    let on_first = next_event(&mut first_events, created.id).await;
    assert_eq!(on_first.kind, EventKind::Created);
    let on_first = next_event(&mut first_events, created.id).await;
    assert_eq!(
        (on_first.kind, on_first.local),
        (EventKind::Approved, false)
    );
    let on_second = next_event(&mut second_events, created.id).await;
    assert_eq!(
        (on_second.kind, on_second.local),
        (EventKind::Approved, true)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    for events in [&mut first_events, &mut second_events] {
        while let Ok(event) = events.try_recv() {
            assert_ne!(
                event.approval.id, created.id,
                "own messages are not relayed back"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_replicas_sharing_a_store_still_wake() {
    let store = postgres().await;
    let (first, second) = (start(&store).await, start(&store).await);
    let agent = agent().await;
    let created = first.create(request(&agent, 1)).await.unwrap();
    let waiter = {
        let first = first.clone();
        tokio::spawn(async move {
            let result = first
                .wait(created.id, Status::Pending, Duration::from_secs(30))
                .await;
            (result, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bob = principal("bob", &["dba"], None).await;
    let decided_at = Instant::now();
    second.reject(created.id, &bob, None).await.unwrap();
    let (result, woke_at) = waiter.await.unwrap();
    assert_eq!(result.unwrap().status, Status::Rejected);
    let latency = woke_at - decided_at;
    println!("store-polling wake-up after {latency:?}");
    assert!(latency < Duration::from_secs(1), "woke after {latency:?}");

    // A wait whose status already differs returns at once; an unchanged one at its deadline.
    let started = Instant::now();
    let now = first
        .wait(created.id, Status::Pending, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(now.status, Status::Rejected);
    assert!(started.elapsed() < Duration::from_millis(200));
    let started = Instant::now();
    let unchanged = first
        .wait(created.id, Status::Rejected, Duration::from_millis(400))
        .await
        .unwrap();
    assert_eq!(unchanged.status, Status::Rejected);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_sharing_a_redis_keep_to_their_own_channel() {
    let (ours, theirs) = (postgres().await, postgres().await);
    let (our_id, their_id) = (
        ours.store.store_id().await.unwrap(),
        theirs.store.store_id().await.unwrap(),
    );
    assert_ne!(our_id, their_id, "each control store has its own id");
    let redis = RedisConfig {
        url: Some(redis_url()),
    };
    let replica = Approvals::start(ours.store.clone(), &config(3600), &redis)
        .await
        .unwrap();

    // Listen to every approval channel, as a stranger on the same Redis could.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut listener = client.get_async_pubsub().await.unwrap();
    listener
        .psubscribe(format!("{}*", gatehouse::approval::REDIS_CHANNEL_PREFIX))
        .await
        .unwrap();
    let agent = agent().await;
    let created = replica.create(request(&agent, 1)).await.unwrap();

    let mut messages = listener.on_message();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let message = tokio::time::timeout_at(deadline, futures::StreamExt::next(&mut messages))
            .await
            .expect("the creation is published within 5 s")
            .unwrap();
        let payload: Value = serde_json::from_slice(message.get_payload_bytes()).unwrap();
        if payload["id"] != json!(created.id) {
            continue; // another test's deployment, on its own channel
        }
        assert_eq!(
            message.get_channel_name(),
            gatehouse::approval::redis_channel(&our_id)
        );
        assert_ne!(
            message.get_channel_name(),
            gatehouse::approval::redis_channel(&their_id)
        );
        assert_eq!(payload["kind"], "created");
        break;
    }
}
