//! Approval requests: `GET /v1/approvals`, `GET /v1/approvals/{id}` (long-poll with
//! `wait_s`), `POST /v1/approvals/{id}/approve` and `/reject`, and
//! `GET /v1/approvals/events` (server-sent events).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::AppState;
use super::error::Problem;
use super::extract::Caller;
use crate::approval::{Approval, Status, Verdict, params_to_json};

/// An approval request: exactly what was asked, by whom, and where it stands.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "01936f60-1b2c-7d3e-8f40-123456789abc", "status": "pending",
    "requester": {"sub": "report-bot", "kind": "agent", "groups": [], "on_behalf_of": "ada"},
    "datasource": "shop_prod", "environment": "prod",
    "statement": "UPDATE orders SET status = 'refunded' WHERE id = $1",
    "params": [{"type": "int", "value": 42}],
    "fingerprint": "3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b",
    "policies": ["prod-write-needs-approval"],
    "reasons": ["changing rows outside dev needs approval by a dba"],
    "approver_groups": ["dba"], "min_approvals": 1, "approvals": 0, "votes": [],
    "created_at": "2026-11-22T10:00:00Z", "expires_at": "2026-11-22T11:00:00Z",
    "decided_at": null, "execution": null
}))]
pub struct ApprovalOut {
    pub id: Uuid,
    /// `pending`, `approved`, `rejected`, `expired`, `executing`, `executed` or `failed`.
    pub status: String,
    #[schema(value_type = Object)]
    pub requester: serde_json::Value,
    pub datasource: String,
    pub environment: String,
    /// The statement exactly as it must be sent again, with `approval_id`, to run it.
    pub statement: String,
    /// The parameters with their types (`{"type": "int", "value": 42}`); send the plain
    /// values again, in the same order.
    #[schema(value_type = Vec<Object>)]
    pub params: serde_json::Value,
    /// SHA-256 over requester, datasource, environment, statement and parameters.
    pub fingerprint: String,
    pub policies: Vec<String>,
    pub reasons: Vec<String>,
    /// Members of any of these groups may decide.
    pub approver_groups: Vec<String>,
    /// Distinct approvals needed.
    pub min_approvals: u32,
    /// Approvals so far.
    pub approvals: usize,
    #[schema(value_type = Vec<Object>)]
    pub votes: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// After this, a pending or approved request can no longer be approved or run.
    pub expires_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    /// How the one execution went, once it ran.
    #[schema(value_type = Option<Object>)]
    pub execution: Option<serde_json::Value>,
}

impl From<&Approval> for ApprovalOut {
    fn from(approval: &Approval) -> Self {
        let json = |value: serde_json::Result<serde_json::Value>| value.unwrap_or_default();
        ApprovalOut {
            id: approval.id,
            status: approval.status.as_str().to_owned(),
            requester: json(serde_json::to_value(&approval.requester)),
            datasource: approval.datasource.clone(),
            environment: approval.environment.clone(),
            statement: approval.statement.clone(),
            params: params_to_json(&approval.params),
            fingerprint: approval.fingerprint.clone(),
            policies: approval.policies.clone(),
            reasons: approval.reasons.clone(),
            approver_groups: approval.approver_groups.clone(),
            min_approvals: approval.min_approvals,
            approvals: approval.approvals(),
            votes: json(serde_json::to_value(&approval.votes)),
            created_at: approval.created_at,
            expires_at: approval.expires_at,
            decided_at: approval.decided_at,
            execution: approval
                .execution
                .as_ref()
                .map(|e| json(serde_json::to_value(e))),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalList {
    pub approvals: Vec<ApprovalOut>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only approvals in this status (e.g. `pending`).
    pub status: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetParams {
    /// Long-poll: wait up to this many seconds for the status to change (capped by the
    /// server's `[approvals] max_wait_s`, default 60).
    pub wait_s: Option<u64>,
}

/// An optional comment with a vote.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoteBody {
    pub comment: Option<String>,
}

fn query<T>(
    params: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, Problem> {
    params
        .map(|Query(params)| params)
        .map_err(|rejection| Problem::invalid_request(rejection.body_text()))
}

fn approval_id(
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Uuid, Problem> {
    let Path(id) = id.map_err(|rejection| Problem::invalid_request(rejection.body_text()))?;
    id.parse()
        .map_err(|_| Problem::invalid_request(format!("`{id}` is not an approval id (a UUID)")))
}

/// List approval requests
///
/// Approval requests you made (or that were made on your behalf) and those you may
/// decide as a member of an approver group, newest first.
#[utoipa::path(
    get,
    path = "/v1/approvals",
    operation_id = "listApprovals",
    tag = "approvals",
    params(ListParams),
    responses(
        (status = 200, description = "Approval requests.", body = ApprovalList),
        (status = 400, description = "`invalid_request`: unknown status.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthenticated`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<ApprovalList>, Problem> {
    let params = query(params)?;
    let status = params
        .status
        .as_deref()
        .map(str::parse::<Status>)
        .transpose()
        .map_err(|e| Problem::invalid_request(e.to_string()))?;
    let approvals = state.gateway.approvals(&caller, status).await?;
    Ok(axum::Json(ApprovalList {
        approvals: approvals.iter().map(ApprovalOut::from).collect(),
    }))
}

/// Read an approval request
///
/// One approval request. With `wait_s`, the answer comes as soon as its status changes
/// (approved, rejected, expired, …) or when the wait runs out, whichever is first: a
/// requester can wait for a decision without polling.
#[utoipa::path(
    get,
    path = "/v1/approvals/{id}",
    operation_id = "getApproval",
    tag = "approvals",
    params(("id" = String, Path, description = "Approval id."), GetParams),
    responses(
        (status = 200, description = "The approval request.", body = ApprovalOut),
        (status = 401, description = "`unauthenticated`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`approval_not_found`: no such approval, or not one you may see.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    params: Result<Query<GetParams>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<ApprovalOut>, Problem> {
    let id = approval_id(id)?;
    let params = query(params)?;
    let approval = state
        .gateway
        .approval(&caller, id, params.wait_s.map(Duration::from_secs))
        .await?;
    Ok(axum::Json(ApprovalOut::from(&approval)))
}

/// Approve a request
///
/// Your approve vote. The request becomes `approved` when `min_approvals` distinct
/// approvers agree; then its requester may run it once. You must be in one of its
/// `approver_groups`, and may not approve your own request (or one made on your behalf).
#[utoipa::path(
    post,
    path = "/v1/approvals/{id}/approve",
    operation_id = "approveApproval",
    tag = "approvals",
    params(("id" = String, Path, description = "Approval id.")),
    request_body(content = VoteBody, description = "Optional comment."),
    responses(
        (status = 200, description = "The approval after your vote.", body = ApprovalOut),
        (status = 403, description = "`not_an_approver` or `self_approval`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`approval_not_found`.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`approval_not_pending` (already decided) or `already_voted`.", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`approval_expired`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn approve(
    State(state): State<AppState>,
    Caller(caller): Caller,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    body: axum::body::Bytes,
) -> Result<axum::Json<ApprovalOut>, Problem> {
    vote(state, caller, id, body, Verdict::Approve).await
}

/// Reject a request
///
/// Your reject vote: final, whatever others voted. Same rules as approving.
#[utoipa::path(
    post,
    path = "/v1/approvals/{id}/reject",
    operation_id = "rejectApproval",
    tag = "approvals",
    params(("id" = String, Path, description = "Approval id.")),
    request_body(content = VoteBody, description = "Optional comment."),
    responses(
        (status = 200, description = "The rejected approval.", body = ApprovalOut),
        (status = 403, description = "`not_an_approver` or `self_approval`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`approval_not_found`.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`approval_not_pending` or `already_voted`.", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`approval_expired`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn reject(
    State(state): State<AppState>,
    Caller(caller): Caller,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    body: axum::body::Bytes,
) -> Result<axum::Json<ApprovalOut>, Problem> {
    vote(state, caller, id, body, Verdict::Reject).await
}

async fn vote(
    state: AppState,
    caller: crate::gateway::Caller,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    body: axum::body::Bytes,
    verdict: Verdict,
) -> Result<axum::Json<ApprovalOut>, Problem> {
    let id = approval_id(id)?;
    // The body is optional: an empty one is a vote without comment.
    let comment = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<VoteBody>(&body)
            .map_err(|e| Problem::invalid_request(format!("the body is not a vote: {e}")))?
            .comment
    };
    let approval = state
        .gateway
        .decide_approval(&caller, id, verdict, comment)
        .await?;
    Ok(axum::Json(ApprovalOut::from(&approval)))
}

/// Watch approval requests (server-sent events)
///
/// A `text/event-stream` of changes to approval requests you may see: event names
/// `created`, `voted`, `approved`, `rejected`, `expired`, `executing`, `executed`,
/// `failed`, each with the approval as JSON data. For approvers' consoles and bots.
#[utoipa::path(
    get,
    path = "/v1/approvals/events",
    operation_id = "watchApprovals",
    tag = "approvals",
    responses(
        (status = 200, description = "Server-sent events, one per change.", content_type = "text/event-stream", body = String),
        (status = 401, description = "`unauthenticated`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn events(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = state.gateway.approval_events(&caller).map(|item| {
        Ok(match item {
            Ok(event) => Event::default()
                .event(event.kind.as_str())
                .id(event.approval.id.to_string())
                .json_data(ApprovalOut::from(event.approval.as_ref()))
                .unwrap_or_else(|_| Event::default().event("error").data("cannot encode")),
            Err(error) => Event::default().event("error").data(error.to_string()),
        })
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
