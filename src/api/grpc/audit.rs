//! The gRPC service `gatehouse.v1.Audit`: SIEM pull (`ListEvents`), a resumable live
//! stream (`Follow`) and chain verification (`Verify`), for group `auditor`.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::{authenticate, status};
use crate::audit::{AuditEvent, Cursor, EventKind, EventQuery, MAX_PAGE};
use crate::gateway::{Gateway, GatewayError};
use crate::proto;

pub struct AuditService {
    gateway: Arc<Gateway>,
}

impl AuditService {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        AuditService { gateway }
    }
}

fn invalid(message: String) -> Status {
    status(GatewayError::InvalidRequest(message))
}

/// An empty string is "no filter".
fn filter(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

fn cursor(text: &str) -> Result<Option<Cursor>, Status> {
    if text.is_empty() {
        return Ok(None);
    }
    Cursor::parse(text).map(Some).map_err(|e| {
        invalid(format!(
            "`after`: {e}; pass a `next_cursor` or `cursor` value"
        ))
    })
}

fn time(field: &str, text: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, Status> {
    if text.is_empty() {
        return Ok(None);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| Some(t.with_timezone(&chrono::Utc)))
        .map_err(|e| invalid(format!("`{field}` is not an RFC 3339 time: {e}")))
}

fn event_query(request: proto::ListEventsRequest) -> Result<EventQuery, Status> {
    let limit = match request.limit {
        0 => None,
        n if (n as usize) <= MAX_PAGE => Some(n as usize),
        _ => return Err(invalid(format!("`limit` must be between 1 and {MAX_PAGE}"))),
    };
    let kind = filter(request.kind)
        .map(|kind| kind.parse::<EventKind>())
        .transpose()
        .map_err(|e| invalid(e.to_string()))?;
    let request_id = filter(request.request_id)
        .map(|id| id.parse::<uuid::Uuid>())
        .transpose()
        .map_err(|e| invalid(format!("`request_id`: {e}")))?;
    Ok(EventQuery {
        after: cursor(&request.after)?,
        limit,
        principal: filter(request.principal),
        datasource: filter(request.datasource),
        environment: filter(request.environment),
        effect: filter(request.effect),
        kind,
        request_id,
        from: time("from", &request.from)?,
        to: time("to", &request.to)?,
    })
}

fn to_proto(event: AuditEvent) -> proto::AuditEvent {
    let cursor = event.cursor().to_string();
    let e = event.event;
    proto::AuditEvent {
        seq: event.seq,
        id: event.id.to_string(),
        time: event
            .time
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        prev_hash: event.prev_hash,
        hash: event.hash,
        kind: e.kind.as_str().to_owned(),
        request_id: e.request_id.to_string(),
        principal: e.principal.map(|p| proto::AuditPrincipal {
            sub: p.sub,
            kind: p.kind,
            groups: p.groups,
            on_behalf_of: p.on_behalf_of.unwrap_or_default(),
        }),
        auth_error: e.auth_error.unwrap_or_default(),
        client_address: e.client.address.unwrap_or_default(),
        user_agent: e.client.user_agent.unwrap_or_default(),
        trace_id: e.client.trace_id.unwrap_or_default(),
        datasource: e.datasource.unwrap_or_default(),
        environment: e.environment.unwrap_or_default(),
        statement: e.statement.unwrap_or_default(),
        fingerprint: e.fingerprint.unwrap_or_default(),
        intent: e.intent.map(|i| proto::AuditIntent {
            actions: i.actions,
            tables: i.tables,
            flags: i.flags,
        }),
        decision: e.decision.map(|d| proto::Decision {
            effect: d.effect,
            policies: d.policies,
            reasons: d.reasons,
            approver_groups: Vec::new(),
            min_approvals: 0,
        }),
        approval_id: e.approval_id.map(|id| id.to_string()).unwrap_or_default(),
        completion: e.completion.map(|c| proto::AuditCompletion {
            rows_returned: c.rows_returned,
            rows_affected: c.rows_affected,
            masked_columns: c.masked_columns,
            masked_values: c.masked_values,
            duration_ms: c.duration_ms,
            error_code: c.error_code.unwrap_or_default(),
        }),
        cursor,
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<proto::AuditEvent, Status>> + Send>>;

#[tonic::async_trait]
impl proto::audit_server::Audit for AuditService {
    async fn list_events(
        &self,
        request: Request<proto::ListEventsRequest>,
    ) -> Result<Response<proto::ListEventsResponse>, Status> {
        let caller = authenticate(&self.gateway, &request).await?;
        let query = event_query(request.into_inner())?;
        let page = self
            .gateway
            .audit_events(&caller, &query)
            .await
            .map_err(status)?;
        let next_cursor = page.resume_cursor(query.after).to_string();
        Ok(Response::new(proto::ListEventsResponse {
            has_more: page.next_cursor.is_some(),
            events: page.events.into_iter().map(to_proto).collect(),
            next_cursor,
        }))
    }

    type FollowStream = EventStream;

    async fn follow(
        &self,
        request: Request<proto::FollowRequest>,
    ) -> Result<Response<Self::FollowStream>, Status> {
        let caller = authenticate(&self.gateway, &request).await?;
        let after = cursor(&request.into_inner().after)?;
        let events = self
            .gateway
            .audit_follow(&caller, after)
            .await
            .map_err(status)?;
        let stream = events.map(|event| match event {
            Ok(event) => Ok(to_proto(event)),
            Err(error) => {
                tracing::warn!(%error, "audit follow stream ended");
                Err(Status::unavailable(format!(
                    "the audit stream was interrupted ({error}); reconnect with the last event's cursor"
                )))
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn verify(
        &self,
        request: Request<proto::VerifyRequest>,
    ) -> Result<Response<proto::VerifyResponse>, Status> {
        let caller = authenticate(&self.gateway, &request).await?;
        let verification = self.gateway.audit_verify(&caller).await.map_err(status)?;
        Ok(Response::new(proto::VerifyResponse {
            ok: verification.ok,
            events_checked: verification.events_checked,
            head_seq: verification.head_seq,
            head_hash: verification.head_hash,
            first_broken: verification.first_broken.map(|broken| proto::BrokenLink {
                seq: broken.seq,
                id: broken.id.unwrap_or_default(),
                problem: broken.problem.as_str().to_owned(),
                detail: broken.detail,
            }),
        }))
    }
}
