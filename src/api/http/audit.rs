//! `GET /v1/audit/events` (SIEM pull, JSON or NDJSON) and `GET /v1/audit/verify`.
//! Only members of group `auditor`; every read is itself audited.

use axum::extract::{Query, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::AppState;
use super::error::Problem;
use super::extract::Caller;
use crate::audit::{AuditEvent, Cursor, EventKind, EventQuery, MAX_PAGE, Verification};

/// NDJSON media type: one event per line, for log shippers.
pub const NDJSON: &str = "application/x-ndjson";
/// Response header carrying the cursor to resume from (NDJSON responses have no envelope).
pub const NEXT_CURSOR_HEADER: &str = "x-gatehouse-next-cursor";

/// Filters of an event listing; they combine with AND.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// Resume after this cursor (`next_cursor` of the previous page). Omitted: from the
    /// first event.
    pub after: Option<String>,
    /// Events per page, 1–1000 (default 100).
    pub limit: Option<usize>,
    /// Principal `sub`.
    pub principal: Option<String>,
    pub datasource: Option<String>,
    pub environment: Option<String>,
    /// Decision effect: `allow`, `deny` or `approval_required`.
    pub effect: Option<String>,
    /// Event kind: `query`, `query_completed`, `explain`, `schema`, `auth_failed`,
    /// `approval_created`, `approval_decided`, `approval_executed`, `policy_reload`,
    /// `audit_read`.
    pub kind: Option<String>,
    /// A query and its completion share one.
    pub request_id: Option<Uuid>,
    /// Events at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Events before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

/// One page of audit events.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "events": [{
        "seq": 41, "id": "01936f5e-8a3b-7c2d-9e4f-0123456789ab", "time": "2026-11-22T10:00:00.000000Z",
        "prev_hash": "9f2c…", "hash": "c01d…", "kind": "query",
        "request_id": "01936f5e-8a3a-7000-8000-000000000001",
        "principal": {"sub": "report-bot", "kind": "agent", "groups": ["analysts"], "on_behalf_of": "ada"},
        "auth_error": null,
        "client": {"address": "10.0.0.7", "user_agent": "python-httpx/0.27", "trace_id": null},
        "datasource": "shop", "environment": "dev",
        "statement": "SELECT id FROM customers WHERE email = '[redacted:pii.email]'",
        "fingerprint": "5b1e0c2f9a7d4e3b8c6a1f0e2d3c4b5a",
        "intent": {"actions": ["select"], "tables": ["customers:read"], "flags": []},
        "decision": {"effect": "allow", "policies": ["reads"], "reasons": ["anyone may read"]},
        "approval_id": null, "completion": null
    }],
    "next_cursor": "e41",
    "has_more": false
}))]
pub struct EventsPage {
    /// Events in chain order (`seq` ascending). Each carries `prev_hash` and `hash`: the
    /// SHA-256 chain `GET /v1/audit/verify` checks.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<AuditEvent>,
    /// Pass as `after` to continue: the next page when `has_more`, else new events as
    /// they are written. Always present, so a poller never loses its place.
    pub next_cursor: String,
    /// More events matched than this page holds.
    pub has_more: bool,
}

/// List audit events
///
/// Pages through the audit trail by cursor, oldest first, with optional filters. Send
/// `Accept: application/x-ndjson` for one JSON event per line (the cursor to resume from
/// is then in the `x-gatehouse-next-cursor` header). Every event is returned exactly once
/// across pages, also while new events are being written. Group `auditor` only.
#[utoipa::path(
    get,
    path = "/v1/audit/events",
    operation_id = "listAuditEvents",
    tag = "audit",
    params(EventsParams),
    responses(
        (status = 200, description = "A page of events (JSON, or NDJSON when asked for).", body = EventsPage,
            headers(("x-gatehouse-next-cursor" = String, description = "Cursor to resume from."))),
        (status = 400, description = "`invalid_request`: a malformed cursor or filter.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthenticated`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not in group `auditor`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`audit_unavailable`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn events(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    params: Result<Query<EventsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let Query(params) =
        params.map_err(|rejection| Problem::invalid_request(rejection.body_text()))?;
    let query = event_query(params)?;
    let page = state.gateway.audit_events(&caller, &query).await?;
    let next_cursor = page.resume_cursor(query.after).to_string();
    let has_more = page.next_cursor.is_some();
    let mut response = if wants_ndjson(&headers) {
        let mut body = String::new();
        for event in &page.events {
            // Serialising plain data cannot fail; a failure would be a bug worth a 500.
            let line = serde_json::to_string(event).map_err(|e| {
                Problem::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("cannot encode an audit event: {e}"),
                )
            })?;
            body.push_str(&line);
            body.push('\n');
        }
        let mut response = body.into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(NDJSON));
        response
    } else {
        axum::Json(EventsPage {
            events: page.events,
            next_cursor: next_cursor.clone(),
            has_more,
        })
        .into_response()
    };
    // A cursor is `e` and digits: always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&next_cursor) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(NEXT_CURSOR_HEADER), value);
    }
    Ok(response)
}

fn wants_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|media| media.split(';').next().unwrap_or("").trim() == NDJSON)
}

fn event_query(params: EventsParams) -> Result<EventQuery, Problem> {
    let after = params
        .after
        .as_deref()
        .map(Cursor::parse)
        .transpose()
        .map_err(|e| {
            Problem::invalid_request(format!("`after`: {e}; pass a `next_cursor` value"))
        })?;
    if let Some(limit) = params.limit
        && !(1..=MAX_PAGE).contains(&limit)
    {
        return Err(Problem::invalid_request(format!(
            "`limit` must be between 1 and {MAX_PAGE}"
        )));
    }
    let kind = params
        .kind
        .as_deref()
        .map(str::parse::<EventKind>)
        .transpose()
        .map_err(|e| Problem::invalid_request(e.to_string()))?;
    if let Some(effect) = &params.effect
        && !["allow", "deny", "approval_required"].contains(&effect.as_str())
    {
        return Err(Problem::invalid_request(
            "`effect` must be `allow`, `deny` or `approval_required`",
        ));
    }
    Ok(EventQuery {
        after,
        limit: params.limit,
        principal: params.principal,
        datasource: params.datasource,
        environment: params.environment,
        effect: params.effect,
        kind,
        request_id: params.request_id,
        from: params.from,
        to: params.to,
    })
}

/// The result of walking the hash chain.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "ok": false, "events_checked": 41, "head_seq": 41, "head_hash": "c01d…",
    "first_broken": {"seq": 42, "id": "01936f5e-8a3b-7c2d-9e4f-0123456789ac", "problem": "edited",
        "detail": "the stored hash does not match the event's content"}
}))]
pub struct VerificationOut {
    /// True when every link holds.
    pub ok: bool,
    pub events_checked: u64,
    /// Seq and hash of the last event that passed (the head when `ok`): keep a copy
    /// elsewhere to detect truncation later.
    pub head_seq: i64,
    pub head_hash: String,
    /// The first broken link: its seq, event id, `problem` (`edited`, `deleted`,
    /// `inserted` or `reordered`) and a detail.
    #[schema(value_type = Option<Object>)]
    pub first_broken: Option<serde_json::Value>,
}

impl From<Verification> for VerificationOut {
    fn from(verification: Verification) -> Self {
        VerificationOut {
            ok: verification.ok,
            events_checked: verification.events_checked,
            head_seq: verification.head_seq,
            head_hash: verification.head_hash,
            first_broken: verification
                .first_broken
                .map(|broken| serde_json::to_value(broken).unwrap_or_default()),
        }
    }
}

/// Verify the audit trail
///
/// Walks the SHA-256 hash chain from the first event to the head and reports the first
/// broken link: an event edited, deleted, inserted or reordered behind the service's back.
/// Group `auditor` only.
#[utoipa::path(
    get,
    path = "/v1/audit/verify",
    operation_id = "verifyAudit",
    tag = "audit",
    responses(
        (status = 200, description = "The verification result; `ok: false` names the first broken link.", body = VerificationOut),
        (status = 401, description = "`unauthenticated`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not in group `auditor`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`audit_unavailable`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn verify(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<axum::Json<VerificationOut>, Problem> {
    let verification = state.gateway.audit_verify(&caller).await?;
    Ok(axum::Json(verification.into()))
}
