//! Approvals: high-risk statements wait for the right people and run exactly once.
//!
//! When policy answers `approval_required`, the gateway stores the request with
//! [`Approvals::create`]: who asked, where, the exact statement and typed parameters, and
//! their SHA-256 fingerprint (`fingerprint`). Approvers decide with [`Approvals::approve`]
//! and [`Approvals::reject`]; the requester then sends the same statement again and the
//! gateway [`Approvals::claim`]s the approval before running it, and reports the outcome
//! with [`Approvals::record_execution`].
//!
//! ```text
//! pending ──(min_approvals distinct approves)──▶ approved ──claim──▶ executing ──▶ executed | failed
//!    │ └──(any reject)──▶ rejected                  │
//!    └──(expires_at passes)──▶ expired ◀────────────┘
//! ```
//!
//! Rules, enforced here so every transport gets them:
//! - only members of one of the approval's `approver_groups` decide ([`ApprovalError::NotAnApprover`]);
//! - nobody decides a request they made, or that was made on their behalf, or that they
//!   and the requester both make for the same person ([`ApprovalError::SelfApproval`]);
//! - each approver votes once: a second vote is refused with
//!   [`ApprovalError::AlreadyVoted`], not ignored, so a client retrying a vote learns it
//!   was already counted and a changed mind (approve, then reject) is not silently lost;
//! - a rejection is final; deciding anything not pending is [`ApprovalError::NotPending`];
//! - pending and approved requests expire after `[approvals] expiry_s`; an expired one is
//!   stored as expired the first time anyone looks at it, and a sweep every
//!   [`SWEEP_INTERVAL`] catches the ones nobody looks at;
//! - a claim must match the approval's binding exactly ([`ApprovalError::Mismatch`]
//!   names the part that differs) and succeeds at most once across all replicas
//!   ([`ApprovalError::Used`]): it is one conditional `UPDATE … WHERE status = 'approved'`.
//!
//! Each state change is announced (module `events`): to [`Approvals::subscribe`]rs in this
//! process, to other replicas over Redis (`[redis] url`), and to webhook receivers
//! (module `webhook`). This module does not write audit events; the gateway does, from the
//! [`Approval`] each operation returns (or, for expiry, from local [`ApprovalEvent`]s).

mod error;
mod events;
mod fingerprint;
mod model;
mod store;
mod webhook;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, SubsecRound as _, Utc};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::config::{ApprovalsConfig, RedisConfig};
use crate::identity::Principal;
use crate::store::ControlStore;

pub use error::ApprovalError;
pub use events::{REDIS_CHANNEL_PREFIX, redis_channel};
pub use fingerprint::BindingPart;
pub use model::{
    Approval, ApprovalEvent, Binding, EventKind, ExecutionRecord, NewApproval, Requester, Status,
    UnknownStatus, Verdict, Vote, params_to_json,
};
pub use store::LIST_LIMIT;
pub use webhook::{
    DELIVERY_HEADER, EVENT_HEADER, MAX_ATTEMPTS as WEBHOOK_ATTEMPTS, SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
};

/// How often each replica marks overdue approvals expired, so watchers hear of expiries
/// nobody asked about. Reads never wait for it: they apply expiry themselves.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(5);
/// How often a long-poll re-reads the store when no Redis subscription can wake it: a
/// decision made by another replica reaches it within this.
const POLL_WITHOUT_REDIS: Duration = Duration::from_millis(200);
/// With Redis up, re-reads are only a safety net for a lost message.
const POLL_WITH_REDIS: Duration = Duration::from_secs(5);

/// The approvals service. Cheap to clone; background tasks (expiry sweep, Redis relay,
/// webhook delivery) stop when the last clone is dropped.
#[derive(Clone)]
pub struct Approvals {
    inner: Arc<Inner>,
}

struct Inner {
    store: ControlStore,
    expiry: chrono::Duration,
    max_wait: Duration,
    emitter: events::Emitter,
    /// `Some` when Redis is configured: whether its subscription is up right now.
    redis_live: Option<Arc<AtomicBool>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals")
            .field("expiry_s", &self.inner.expiry.num_seconds())
            .field("redis", &self.inner.redis_live.is_some())
            .finish_non_exhaustive()
    }
}

impl Approvals {
    /// Starts the service on `store` (migrated by `ControlStore::open`): checks the
    /// configuration, connects to Redis when `redis.url` is set (failing if it cannot be
    /// reached now), and starts the background tasks. Needs a Tokio runtime.
    pub async fn start(
        store: ControlStore,
        config: &ApprovalsConfig,
        redis: &RedisConfig,
    ) -> Result<Approvals, ApprovalError> {
        let expiry = i64::try_from(config.expiry_s)
            .ok()
            .filter(|s| (1..=i64::from(u32::MAX)).contains(s))
            .map(chrono::Duration::seconds)
            .ok_or(ApprovalError::Invalid(
                "approvals.expiry_s must be between 1 and 4294967295 seconds",
            ))?;
        let mut emitter = events::Emitter::new(Uuid::new_v4());
        let mut tasks = Vec::new();
        if !config.webhooks.is_empty() {
            let (queue, task) = webhook::start(&config.webhooks)?;
            emitter.with_webhooks(queue);
            tasks.push(task);
        }
        let mut redis_live = None;
        if let Some(url) = redis.url.as_deref().filter(|u| !u.is_empty()) {
            let link = events::connect_redis(url, store.clone(), &mut emitter).await?;
            redis_live = Some(link.live);
            tasks.extend(link.tasks);
        }
        tasks.push(tokio::spawn(sweep(store.clone(), emitter.clone())));
        Ok(Approvals {
            inner: Arc::new(Inner {
                store,
                expiry,
                max_wait: Duration::from_secs(config.max_wait_s),
                emitter,
                redis_live,
                tasks,
            }),
        })
    }

    /// The longest wait [`Approvals::wait`] honours (`[approvals] max_wait_s`).
    pub fn max_wait(&self) -> Duration {
        self.inner.max_wait
    }

    /// Stores a new pending approval, expiring after `[approvals] expiry_s`.
    pub async fn create(&self, request: NewApproval) -> Result<Approval, ApprovalError> {
        let mut approver_groups: Vec<String> = Vec::new();
        for group in request.approver_groups {
            if !group.is_empty() && !approver_groups.contains(&group) {
                approver_groups.push(group);
            }
        }
        if approver_groups.is_empty() {
            return Err(ApprovalError::Invalid("no approver group"));
        }
        if request.min_approvals == 0 {
            return Err(ApprovalError::Invalid("min_approvals must be at least 1"));
        }
        if request.binding.datasource.is_empty() || request.binding.statement.is_empty() {
            return Err(ApprovalError::Invalid("no datasource or no statement"));
        }
        let now = now();
        let approval = Approval {
            id: Uuid::now_v7(),
            status: Status::Pending,
            fingerprint: fingerprint::fingerprint(&request.requester, &request.binding),
            requester: request.requester,
            datasource: request.binding.datasource,
            environment: request.binding.environment,
            statement: request.binding.statement,
            params: request.binding.params,
            policies: request.policies,
            reasons: request.reasons,
            approver_groups,
            min_approvals: request.min_approvals,
            request_id: request.request_id,
            votes: Vec::new(),
            created_at: now,
            expires_at: now + self.inner.expiry,
            decided_at: None,
            claimed_at: None,
            execution: None,
        };
        store::insert(&self.inner.store, &approval).await?;
        let approval = self.inner.emitter.emit(EventKind::Created, approval);
        Ok(Arc::unwrap_or_clone(approval))
    }

    /// The approval, with expiry applied: a pending or approved one past `expires_at` is
    /// stored as expired and returned so.
    pub async fn get(&self, id: Uuid) -> Result<Approval, ApprovalError> {
        let approval = store::load(&self.inner.store, id)
            .await?
            .ok_or(ApprovalError::NotFound(id))?;
        if !approval.status.expires() || approval.expires_at > now() {
            return Ok(approval);
        }
        if store::expire_one(&self.inner.store, id, now()).await? {
            self.reload_and_emit(id, EventKind::Expired).await
        } else {
            // Someone else changed it first (expired it, or claimed it just in time).
            store::load(&self.inner.store, id)
                .await?
                .ok_or(ApprovalError::NotFound(id))
        }
    }

    /// Long-poll: the approval as soon as its status differs from `seen` (at once if it
    /// already does), or after `wait` (capped at [`Approvals::max_wait`]) unchanged.
    ///
    /// Wakes on changes made by this process and, through Redis, by other replicas; it
    /// also re-reads the store on a timer (every 200 ms while no Redis subscription is up,
    /// every 5 s otherwise), so replicas sharing only the store still see each other's
    /// decisions. An approval that expires during the wait is returned as expired.
    pub async fn wait(
        &self,
        id: Uuid,
        seen: Status,
        wait: Duration,
    ) -> Result<Approval, ApprovalError> {
        let deadline = tokio::time::Instant::now() + wait.min(self.inner.max_wait);
        // Subscribe before reading, so a change between the read and the wait still wakes us.
        let mut changes = self.inner.emitter.subscribe();
        loop {
            let approval = self.get(id).await?;
            let now = tokio::time::Instant::now();
            if approval.status != seen || now >= deadline {
                return Ok(approval);
            }
            let mut wake = deadline.min(now + self.poll_interval());
            if approval.status.expires() {
                // A moment past expiry, so the re-read sees it expired rather than spinning
                // on a wall clock a hair behind the timer.
                let left = (approval.expires_at - self::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO);
                wake = wake.min(now + left + Duration::from_millis(5));
            }
            tokio::select! {
                () = changed(&mut changes, id) => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    fn poll_interval(&self) -> Duration {
        match &self.inner.redis_live {
            Some(live) if live.load(Ordering::Acquire) => POLL_WITH_REDIS,
            _ => POLL_WITHOUT_REDIS,
        }
    }

    /// Approvals `viewer` requested (or that were requested on their behalf) or may
    /// decide as a member of an approver group, newest first, at most [`LIST_LIMIT`];
    /// only those in `status` when given. Overdue ones are expired first.
    pub async fn list(
        &self,
        viewer: &Principal,
        status: Option<Status>,
    ) -> Result<Vec<Approval>, ApprovalError> {
        expire_due(&self.inner.store, &self.inner.emitter).await?;
        store::list(&self.inner.store, viewer, status).await
    }

    /// One approve vote. The approval becomes approved when this vote makes
    /// `min_approvals` distinct approvers; until then it stays pending with the vote
    /// recorded.
    pub async fn approve(
        &self,
        id: Uuid,
        approver: &Principal,
        comment: Option<String>,
    ) -> Result<Approval, ApprovalError> {
        self.decide(id, approver, Verdict::Approve, comment).await
    }

    /// A reject vote: final, whatever other approvers said.
    pub async fn reject(
        &self,
        id: Uuid,
        approver: &Principal,
        comment: Option<String>,
    ) -> Result<Approval, ApprovalError> {
        self.decide(id, approver, Verdict::Reject, comment).await
    }

    async fn decide(
        &self,
        id: Uuid,
        approver: &Principal,
        verdict: Verdict,
        comment: Option<String>,
    ) -> Result<Approval, ApprovalError> {
        let approval = self.get(id).await?;
        may_decide(&approval, approver)?;
        match approval.status {
            Status::Pending => {}
            Status::Expired => return Err(ApprovalError::Expired(id)),
            status => return Err(ApprovalError::NotPending { id, status }),
        }
        let vote = Vote {
            approver_sub: approver.sub().to_owned(),
            approver_kind: approver.kind(),
            approver_on_behalf_of: approver.on_behalf_of().map(str::to_owned),
            verdict,
            comment: comment.filter(|c| !c.is_empty()),
            at: now(),
        };
        match store::vote(&self.inner.store, id, &vote).await? {
            store::VoteOutcome::Counted(status) => {
                let kind = match status {
                    Status::Approved => EventKind::Approved,
                    Status::Rejected => EventKind::Rejected,
                    _ => EventKind::Voted,
                };
                self.reload_and_emit(id, kind).await
            }
            store::VoteOutcome::Duplicate => Err(ApprovalError::AlreadyVoted(id)),
            // It was decided, or expired, between our read and our vote.
            store::VoteOutcome::NotOpen => match self.get(id).await?.status {
                Status::Expired => Err(ApprovalError::Expired(id)),
                status => Err(ApprovalError::NotPending { id, status }),
            },
        }
    }

    /// Claims an approved request for its one execution (approved → executing), if
    /// `requester` and `binding` are exactly what was approved. At most one claim of an
    /// approval ever succeeds, across replicas; later ones get [`ApprovalError::Used`].
    /// The caller runs the statement only after this returns `Ok`, then reports with
    /// [`Approvals::record_execution`].
    pub async fn claim(
        &self,
        id: Uuid,
        requester: &Principal,
        binding: &Binding,
    ) -> Result<Approval, ApprovalError> {
        let approval = self.get(id).await?;
        let claimant = Requester::of(requester);
        let approved = Binding {
            datasource: approval.datasource.clone(),
            environment: approval.environment.clone(),
            statement: approval.statement.clone(),
            params: approval.params.clone(),
        };
        if let Some(part) =
            fingerprint::first_difference((&approval.requester, &approved), (&claimant, binding))
        {
            return Err(ApprovalError::Mismatch { id, part });
        }
        let fingerprint = fingerprint::fingerprint(&claimant, binding);
        if fingerprint != approval.fingerprint {
            return Err(ApprovalError::Mismatch {
                id,
                part: BindingPart::Fingerprint,
            });
        }
        claim_refusal(id, approval.status)?;
        if store::claim(&self.inner.store, id, &fingerprint, now()).await? {
            return self.reload_and_emit(id, EventKind::Executing).await;
        }
        // Someone claimed it first, or it expired, since our read.
        let status = self.get(id).await?.status;
        claim_refusal(id, status)?;
        Err(ApprovalError::NotPending { id, status })
    }

    /// Records how the claimed execution went: executing → executed (`ok`) or failed.
    pub async fn record_execution(
        &self,
        id: Uuid,
        outcome: ExecutionRecord,
    ) -> Result<Approval, ApprovalError> {
        let finished = store::finish(&self.inner.store, id, &outcome).await?;
        if finished {
            let kind = if outcome.ok {
                EventKind::Executed
            } else {
                EventKind::Failed
            };
            return self.reload_and_emit(id, kind).await;
        }
        let status = store::load(&self.inner.store, id)
            .await?
            .ok_or(ApprovalError::NotFound(id))?
            .status;
        Err(ApprovalError::NotExecuting { id, status })
    }

    /// Every change from now on: made here (`local`) or relayed from other replicas.
    pub fn subscribe(&self) -> broadcast::Receiver<ApprovalEvent> {
        self.inner.emitter.subscribe()
    }

    async fn reload_and_emit(&self, id: Uuid, kind: EventKind) -> Result<Approval, ApprovalError> {
        let approval = store::load(&self.inner.store, id)
            .await?
            .ok_or(ApprovalError::NotFound(id))?;
        Ok(Arc::unwrap_or_clone(
            self.inner.emitter.emit(kind, approval),
        ))
    }
}

/// Whether `approver` may vote on `approval` at all, whatever its status.
fn may_decide(approval: &Approval, approver: &Principal) -> Result<(), ApprovalError> {
    if !approval
        .approver_groups
        .iter()
        .any(|g| approver.in_group(g))
    {
        return Err(ApprovalError::NotAnApprover {
            id: approval.id,
            groups: approval.approver_groups.clone(),
        });
    }
    // The people behind each side: the token holder and whoever they act for. Any overlap
    // means someone would approve their own request (directly, or through an agent).
    let requester = &approval.requester;
    let requester_side = [
        Some(requester.sub.as_str()),
        requester.on_behalf_of.as_deref(),
    ];
    let approver_side = [Some(approver.sub()), approver.on_behalf_of()];
    if approver_side
        .iter()
        .flatten()
        .any(|who| requester_side.contains(&Some(who)))
    {
        return Err(ApprovalError::SelfApproval(approval.id));
    }
    Ok(())
}

/// Why an approval in `status` cannot be claimed, if it cannot.
fn claim_refusal(id: Uuid, status: Status) -> Result<(), ApprovalError> {
    match status {
        Status::Approved => Ok(()),
        Status::Expired => Err(ApprovalError::Expired(id)),
        status if status.used() => Err(ApprovalError::Used { id, status }),
        status => Err(ApprovalError::NotPending { id, status }),
    }
}

/// Returns once an event about `id` arrives, or once events were missed (the caller
/// re-reads either way). Never returns if the channel closed: the timer wakes the caller.
async fn changed(changes: &mut broadcast::Receiver<ApprovalEvent>, id: Uuid) {
    loop {
        match changes.recv().await {
            Ok(event) if event.approval.id == id => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

/// Expires every overdue open approval and announces each one this call expired.
async fn expire_due(store: &ControlStore, emitter: &events::Emitter) -> Result<(), ApprovalError> {
    for id in store::expire_due(store, now()).await? {
        if let Some(approval) = store::load(store, id).await? {
            emitter.emit(EventKind::Expired, approval);
        }
    }
    Ok(())
}

async fn sweep(store: ControlStore, emitter: events::Emitter) {
    let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = expire_due(&store, &emitter).await {
            tracing::warn!(error = %e, "approval expiry sweep failed");
        }
    }
}

/// The clock, at the microsecond: PostgreSQL keeps no finer, and a value must read back
/// exactly as it was written.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::PrincipalKind;

    fn approval(requester: &str, on_behalf_of: Option<&str>) -> Approval {
        Approval {
            id: Uuid::nil(),
            status: Status::Pending,
            requester: Requester {
                sub: requester.to_owned(),
                kind: PrincipalKind::Agent,
                groups: Vec::new(),
                on_behalf_of: on_behalf_of.map(str::to_owned),
            },
            datasource: "shop".to_owned(),
            environment: "prod".to_owned(),
            statement: "DELETE FROM t".to_owned(),
            params: Vec::new(),
            fingerprint: String::new(),
            policies: Vec::new(),
            reasons: Vec::new(),
            approver_groups: vec!["dba".to_owned()],
            min_approvals: 1,
            request_id: None,
            votes: Vec::new(),
            created_at: now(),
            expires_at: now(),
            decided_at: None,
            claimed_at: None,
            execution: None,
        }
    }

    fn person(sub: &str, groups: &[&str], on_behalf_of: Option<&str>) -> Principal {
        Principal::for_tests(sub, PrincipalKind::Human, groups, on_behalf_of)
    }

    #[test]
    fn who_may_decide() {
        let by_agent_for_alice = approval("agent-7", Some("alice"));
        let code = |p: &Principal| may_decide(&by_agent_for_alice, p).err().map(|e| e.code());
        assert_eq!(code(&person("bob", &["dba"], None)), None);
        assert_eq!(
            code(&person("bob", &["eng"], None)),
            Some("not_an_approver")
        );
        assert_eq!(
            code(&person("agent-7", &["dba"], None)),
            Some("self_approval")
        );
        assert_eq!(
            code(&person("alice", &["dba"], None)),
            Some("self_approval")
        );
        // Another agent acting for alice, or alice's own agent approving: still alice.
        assert_eq!(
            code(&person("agent-9", &["dba"], Some("alice"))),
            Some("self_approval")
        );
        let by_alice = approval("alice", None);
        let code = |p: &Principal| may_decide(&by_alice, p).err().map(|e| e.code());
        assert_eq!(
            code(&person("agent-9", &["dba"], Some("alice"))),
            Some("self_approval")
        );
        assert_eq!(code(&person("agent-9", &["dba"], Some("bob"))), None);
    }

    #[test]
    fn claims_are_refused_by_status() {
        let id = Uuid::nil();
        assert!(claim_refusal(id, Status::Approved).is_ok());
        for (status, code) in [
            (Status::Pending, "approval_not_pending"),
            (Status::Rejected, "approval_not_pending"),
            (Status::Expired, "approval_expired"),
            (Status::Executing, "approval_used"),
            (Status::Executed, "approval_used"),
            (Status::Failed, "approval_used"),
        ] {
            assert_eq!(claim_refusal(id, status).unwrap_err().code(), code);
        }
    }

    #[test]
    fn visibility_follows_the_list_rule() {
        let a = approval("agent-7", Some("alice"));
        assert!(a.visible_to(&person("agent-7", &[], None)));
        assert!(a.visible_to(&person("alice", &[], None)));
        assert!(a.visible_to(&person("bob", &["dba"], None)));
        assert!(!a.visible_to(&person("bob", &["eng"], None)));
    }
}
