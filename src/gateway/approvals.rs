//! Approval requests as approvers and requesters see them: list, read (with a long-poll),
//! decide, and watch. Deciding is audited; who may see an approval is the approval
//! module's rule (`Approval::visible_to`): the requester, whoever it was requested on
//! behalf of, and members of its approver groups. Anyone else is told it does not exist,
//! so ids cannot be probed.

use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use uuid::Uuid;

use crate::approval::{
    Approval, ApprovalError, ApprovalEvent, EventKind as ApprovalEventKind, Status, Verdict,
};
use crate::audit::{EventDecision, EventKind};

use super::{Caller, Gateway, GatewayError, audit_unavailable, events};

/// Longest comment stored with a vote.
const MAX_COMMENT_CHARS: usize = 2_000;

impl Gateway {
    /// Approvals the caller requested or may decide, newest first.
    pub async fn approvals(
        &self,
        caller: &Caller,
        status: Option<Status>,
    ) -> Result<Vec<Approval>, GatewayError> {
        self.approvals
            .list(&caller.principal, status)
            .await
            .map_err(GatewayError::Approval)
    }

    /// One approval. With `wait`, returns as soon as its status differs from the one it
    /// had when asked, or when `wait` (capped by `[approvals] max_wait_s`) runs out.
    pub async fn approval(
        &self,
        caller: &Caller,
        id: Uuid,
        wait: Option<Duration>,
    ) -> Result<Approval, GatewayError> {
        let approval = self.visible_approval(caller, id).await?;
        match wait {
            Some(wait) if !wait.is_zero() => self
                .approvals
                .wait(id, approval.status, wait)
                .await
                .map_err(GatewayError::Approval),
            _ => Ok(approval),
        }
    }

    async fn visible_approval(&self, caller: &Caller, id: Uuid) -> Result<Approval, GatewayError> {
        let approval = self
            .approvals
            .get(id)
            .await
            .map_err(GatewayError::Approval)?;
        if approval.visible_to(&caller.principal) {
            Ok(approval)
        } else {
            Err(GatewayError::Approval(ApprovalError::NotFound(id)))
        }
    }

    /// One approver's vote. Refusals (not an approver, own request, already decided) are
    /// audited as well as votes.
    pub async fn decide_approval(
        &self,
        caller: &Caller,
        id: Uuid,
        verdict: Verdict,
        comment: Option<String>,
    ) -> Result<Approval, GatewayError> {
        if comment
            .as_ref()
            .is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS)
        {
            return Err(GatewayError::InvalidRequest(format!(
                "`comment` is longer than {MAX_COMMENT_CHARS} characters"
            )));
        }
        let mut event = events::for_caller(EventKind::ApprovalDecided, Uuid::now_v7(), caller);
        event.approval_id = Some(id);
        let decided = match self.visible_approval(caller, id).await {
            Ok(_) => {
                let voted = match verdict {
                    Verdict::Approve => {
                        self.approvals
                            .approve(id, &caller.principal, comment.clone())
                            .await
                    }
                    Verdict::Reject => {
                        self.approvals
                            .reject(id, &caller.principal, comment.clone())
                            .await
                    }
                };
                voted.map_err(GatewayError::Approval)
            }
            Err(error) => Err(error),
        };
        match &decided {
            Ok(approval) => {
                event.datasource = Some(approval.datasource.clone());
                event.environment = Some(approval.environment.clone());
                // The verdict and the status it led to; the comment is scrubbed of
                // detected PII like statement text.
                event.decision = Some(EventDecision {
                    effect: verdict.as_str().to_owned(),
                    policies: Vec::new(),
                    reasons: comment
                        .iter()
                        .map(|c| self.masking.masker().scrub(c))
                        .chain([format!("status: {}", approval.status)])
                        .collect(),
                });
            }
            Err(error) => event.completion = Some(events::refused(error, Duration::ZERO)),
        }
        self.audit.append(event).await.map_err(audit_unavailable)?;
        decided
    }

    /// Audits approvals that expire: nobody decides those, the clock does, so no request
    /// records them. Runs until the approval events end (shutdown). Only changes made by
    /// this process are recorded; another replica records its own.
    pub async fn audit_expirations(&self) {
        let mut changes = self.approvals.subscribe();
        loop {
            let event = match changes.recv().await {
                Ok(event) => event,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "approval events missed by the expiry auditor");
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            if event.kind != ApprovalEventKind::Expired || !event.local {
                continue;
            }
            let approval = &event.approval;
            let mut audit = crate::audit::NewEvent::new(EventKind::ApprovalDecided, Uuid::now_v7());
            audit.approval_id = Some(approval.id);
            audit.datasource = Some(approval.datasource.clone());
            audit.environment = Some(approval.environment.clone());
            audit.decision = Some(EventDecision {
                effect: "expired".to_owned(),
                policies: approval.policies.clone(),
                reasons: vec![format!("status: {}", approval.status)],
            });
            if let Err(error) = self.audit.append(audit).await {
                tracing::error!(%error, approval_id = %approval.id, "approval expiry not recorded");
            }
        }
    }

    /// Changes to approvals the caller may see, from now on, for server-sent events and
    /// gRPC `Watch`. A subscriber that falls too far behind gets an error item and should
    /// re-list.
    pub fn approval_events(
        &self,
        caller: &Caller,
    ) -> impl Stream<Item = Result<ApprovalEvent, GatewayError>> + Send + 'static + use<> {
        let viewer = caller.principal.clone();
        BroadcastStream::new(self.approvals.subscribe()).filter_map(move |item| {
            let item = match item {
                Ok(event) if event.approval.visible_to(&viewer) => Some(Ok(event)),
                Ok(_) => None,
                Err(BroadcastStreamRecvError::Lagged(missed)) => {
                    Some(Err(GatewayError::InvalidRequest(format!(
                        "the watcher fell {missed} events behind; list approvals again and re-subscribe"
                    ))))
                }
            };
            futures::future::ready(item)
        })
    }
}
