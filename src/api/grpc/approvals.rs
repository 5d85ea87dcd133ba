//! The gRPC service `gatehouse.v1.Approvals`: the REST approval operations plus a
//! server-streaming `Watch`.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tonic::{Code, Request, Response, Status};
use uuid::Uuid;

use super::{authenticate, status};
use crate::approval::{Approval, ApprovalError, Status as ApprovalStatus, Verdict, params_to_json};
use crate::gateway::{Gateway, GatewayError};
use crate::proto;

pub struct ApprovalsService {
    gateway: Arc<Gateway>,
}

impl ApprovalsService {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        ApprovalsService { gateway }
    }
}

/// gRPC code of each approval refusal, matching the REST status.
pub(crate) fn code(error: &ApprovalError) -> Code {
    match error {
        ApprovalError::NotFound(_) => Code::NotFound,
        ApprovalError::Mismatch { .. }
        | ApprovalError::NotAnApprover { .. }
        | ApprovalError::SelfApproval(_) => Code::PermissionDenied,
        ApprovalError::Expired(_)
        | ApprovalError::Used { .. }
        | ApprovalError::NotPending { .. }
        | ApprovalError::AlreadyVoted(_)
        | ApprovalError::NotExecuting { .. } => Code::FailedPrecondition,
        ApprovalError::Invalid(_) => Code::InvalidArgument,
        ApprovalError::Store(_) | ApprovalError::Corrupt { .. } | ApprovalError::Events(_) => {
            Code::Unavailable
        }
    }
}

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

pub(crate) fn to_proto(approval: &Approval) -> proto::Approval {
    proto::Approval {
        id: approval.id.to_string(),
        status: approval.status.as_str().to_owned(),
        requester: Some(proto::AuditPrincipal {
            sub: approval.requester.sub.clone(),
            kind: approval.requester.kind.as_str().to_owned(),
            groups: approval.requester.groups.clone(),
            on_behalf_of: approval.requester.on_behalf_of.clone().unwrap_or_default(),
        }),
        datasource: approval.datasource.clone(),
        environment: approval.environment.clone(),
        statement: approval.statement.clone(),
        params_json: params_to_json(&approval.params).to_string(),
        fingerprint: approval.fingerprint.clone(),
        policies: approval.policies.clone(),
        reasons: approval.reasons.clone(),
        approver_groups: approval.approver_groups.clone(),
        min_approvals: approval.min_approvals,
        approvals: u32::try_from(approval.approvals()).unwrap_or(u32::MAX),
        votes: approval
            .votes
            .iter()
            .map(|vote| proto::ApprovalVote {
                approver: vote.approver_sub.clone(),
                verdict: vote.verdict.as_str().to_owned(),
                comment: vote.comment.clone().unwrap_or_default(),
                at: time(Some(vote.at)),
            })
            .collect(),
        created_at: time(Some(approval.created_at)),
        expires_at: time(Some(approval.expires_at)),
        decided_at: time(approval.decided_at),
        execution: approval
            .execution
            .as_ref()
            .map(|e| proto::ApprovalExecution {
                ok: e.ok,
                rows_affected: e.rows_affected,
                rows_returned: e.rows_returned,
                error_code: e.error_code.clone().unwrap_or_default(),
                finished_at: time(Some(e.finished_at)),
            }),
    }
}

fn approval_id(text: &str) -> Result<Uuid, Status> {
    text.parse().map_err(|_| {
        status(GatewayError::InvalidRequest(format!(
            "`{text}` is not an approval id (a UUID)"
        )))
    })
}

type ChangeStream = Pin<Box<dyn Stream<Item = Result<proto::ApprovalChange, Status>> + Send>>;

impl ApprovalsService {
    async fn vote(
        &self,
        request: Request<proto::VoteRequest>,
        verdict: Verdict,
    ) -> Result<Response<proto::Approval>, Status> {
        let caller = authenticate(&self.gateway, &request).await?;
        let body = request.into_inner();
        let id = approval_id(&body.id)?;
        let comment = (!body.comment.is_empty()).then_some(body.comment);
        let approval = self
            .gateway
            .decide_approval(&caller, id, verdict, comment)
            .await
            .map_err(status)?;
        Ok(Response::new(to_proto(&approval)))
    }
}

#[tonic::async_trait]
impl proto::approvals_server::Approvals for ApprovalsService {
    async fn list(
        &self,
        request: Request<proto::ListApprovalsRequest>,
    ) -> Result<Response<proto::ListApprovalsResponse>, Status> {
        let caller = authenticate(&self.gateway, &request).await?;
        let wanted = request.into_inner().status;
        let filter = if wanted.is_empty() {
            None
        } else {
            Some(
                wanted
                    .parse::<ApprovalStatus>()
                    .map_err(|e| status(GatewayError::InvalidRequest(e.to_string())))?,
            )
        };
        let approvals = self
            .gateway
            .approvals(&caller, filter)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::ListApprovalsResponse {
            approvals: approvals.iter().map(to_proto).collect(),
        }))
    }

    async fn get(
        &self,
        request: Request<proto::GetApprovalRequest>,
    ) -> Result<Response<proto::Approval>, Status> {
        let caller = authenticate(&self.gateway, &request).await?;
        let body = request.into_inner();
        let id = approval_id(&body.id)?;
        let wait = (body.wait_s > 0).then(|| Duration::from_secs(u64::from(body.wait_s)));
        let approval = self
            .gateway
            .approval(&caller, id, wait)
            .await
            .map_err(status)?;
        Ok(Response::new(to_proto(&approval)))
    }

    async fn approve(
        &self,
        request: Request<proto::VoteRequest>,
    ) -> Result<Response<proto::Approval>, Status> {
        self.vote(request, Verdict::Approve).await
    }

    async fn reject(
        &self,
        request: Request<proto::VoteRequest>,
    ) -> Result<Response<proto::Approval>, Status> {
        self.vote(request, Verdict::Reject).await
    }

    type WatchStream = ChangeStream;

    async fn watch(
        &self,
        request: Request<proto::WatchApprovalsRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let caller = authenticate(&self.gateway, &request).await?;
        let changes = self
            .gateway
            .approval_events(&caller)
            .map(|item| match item {
                Ok(event) => Ok(proto::ApprovalChange {
                    kind: event.kind.as_str().to_owned(),
                    approval: Some(to_proto(&event.approval)),
                }),
                Err(error) => Err(Status::data_loss(error.to_string())),
            });
        Ok(Response::new(Box::pin(changes)))
    }
}
