//! `POST /v1/query`: run one SQL statement.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::approvals::ApprovalOut;
use super::error::{DecisionOut, Problem};
use super::extract::{Body, Caller};
use crate::datasource::{Param, Value};
use crate::gateway::{QueryOutcome, QueryReply, QueryRequest};
use crate::telemetry::RequestOutcome;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

/// One SQL statement to run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "datasource": "shop",
    "sql": "SELECT id, status, amount_cents FROM orders WHERE customer_id = ? ORDER BY id",
    "params": [42],
    "max_rows": 50
}))]
pub struct QueryBody {
    /// Datasource name, as listed by `GET /v1/datasources`.
    pub datasource: String,
    /// Exactly one SQL statement in the datasource's dialect (see the datasource's
    /// `driver`). Use placeholders for values: `$1, $2, …` on `postgres`, `?` on `mysql`
    /// and `sqlite`. Call `explain` first to learn whether policy allows it.
    pub sql: String,
    /// Positional parameters for the placeholders, bound as typed values (never spliced
    /// into the SQL text): JSON numbers bind as integers or floats, strings as text,
    /// booleans as booleans, `null` as NULL, arrays and objects as JSON. On PostgreSQL
    /// cast where the column type differs, e.g. `created_at > $1::timestamptz`.
    #[serde(default)]
    pub params: Vec<serde_json::Value>,
    /// Most rows to return. The datasource's own cap applies when it is lower or when
    /// this is omitted; `truncated` in the response says whether rows were left out.
    #[schema(minimum = 1)]
    pub max_rows: Option<u32>,
    /// To run a statement that was approved: the `approval.id` from the 202 answer. The
    /// datasource, `sql` and `params` must be exactly as when approval was requested, and
    /// the caller the same; an approval runs once.
    pub approval_id: Option<Uuid>,
}

/// Policy requires approval: nothing ran. Wait for the decision with
/// `GET /v1/approvals/{id}?wait_s=60`, then send the same request again with
/// `approval_id`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AwaitingApproval {
    pub request_id: String,
    /// The policy decision (`effect` is `approval_required`).
    pub decision: DecisionOut,
    pub approval: ApprovalOut,
}

/// A result column.
#[derive(Debug, Serialize, ToSchema)]
pub struct ColumnOut {
    /// Column name as the statement labels it.
    pub name: String,
    /// The database's own type name, lower case (e.g. `int4`, `timestamptz`, `varchar`,
    /// `bigint unsigned`; on SQLite the declared type or the value's storage class).
    #[serde(rename = "type")]
    pub type_name: String,
    /// Whether any value of this column was masked (whole, or a detected span inside it).
    pub masked: bool,
    /// The classes that were masked in this column (`pii.email`, `secret.token`, …;
    /// `unresolved` when its origin could not be traced and everything was masked).
    pub classifications: Vec<String>,
}

/// The typed result of one statement.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "request_id": "01936f5e-8a3b-7c2d-9e4f-0123456789ab",
    "decision": {"effect": "allow", "policies": ["reads"], "reasons": ["anyone may read"]},
    "columns": [
        {"name": "id", "type": "integer", "masked": false, "classifications": []},
        {"name": "email", "type": "text", "masked": true, "classifications": ["pii.email"]},
        {"name": "amount_cents", "type": "integer", "masked": false, "classifications": []}
    ],
    "rows": [[7, "a***@example.com", 1999], [19, "j***@example.org", 4250]],
    "masked_values": 2,
    "row_count": 2,
    "truncated": false,
    "rows_affected": 0,
    "elapsed_ms": 3
}))]
pub struct QueryResponse {
    /// Identifier of this request, also in the service's logs.
    pub request_id: String,
    /// The policy decision that let the statement run (`effect` is `allow`).
    pub decision: DecisionOut,
    pub columns: Vec<ColumnOut>,
    /// Rows as arrays in column order. Values: integers as JSON numbers (as strings
    /// beyond ±2^53), floats as numbers (`"NaN"`, `"Infinity"` as strings), decimals as
    /// strings (exact), text as strings, bytes as base64 strings, dates `YYYY-MM-DD`,
    /// timestamps with time zone RFC 3339 in UTC, timestamps without time zone
    /// `YYYY-MM-DDTHH:MM:SS[.ffffff]` (no offset), UUIDs as strings, JSON as JSON,
    /// arrays as arrays, NULL as `null`.
    #[schema(value_type = Vec<Vec<serde_json::Value>>)]
    pub rows: Vec<Vec<Value>>,
    /// Number of rows in `rows`.
    pub row_count: u64,
    /// Values masked in `rows`: whole cells of classified columns plus sensitive spans
    /// found inside text and JSON.
    pub masked_values: u64,
    /// True when the statement had more rows than the cap; the rest were not read.
    pub truncated: bool,
    /// Rows inserted, updated or deleted, for statements that change data.
    pub rows_affected: u64,
    /// Time spent in Gatehouse and the database, in milliseconds.
    pub elapsed_ms: u64,
}

impl From<QueryOutcome> for QueryResponse {
    fn from(outcome: QueryOutcome) -> Self {
        let result = outcome.result;
        let mut masking = outcome.masking.columns.into_iter();
        QueryResponse {
            request_id: outcome.request_id.to_string(),
            decision: DecisionOut::from(&outcome.decision),
            columns: result
                .columns
                .into_iter()
                .map(|c| {
                    let masked = masking.next().unwrap_or_default();
                    ColumnOut {
                        name: c.name,
                        type_name: c.type_name,
                        masked: masked.masked,
                        classifications: masked.classifications,
                    }
                })
                .collect(),
            masked_values: outcome.masking.masked_values,
            row_count: result.rows.len() as u64,
            rows: result.rows,
            truncated: result.truncated,
            rows_affected: result.rows_affected,
            elapsed_ms: outcome.elapsed.as_millis() as u64,
        }
    }
}

/// Run one SQL statement
///
/// Runs exactly one SQL statement against a datasource as the authenticated caller and
/// returns the typed result. The statement is parsed first (text that does not parse in
/// the datasource's dialect is refused with `unparseable_sql`), then policy decides for
/// this caller and the datasource's environment: `denied` comes back as a 403 problem
/// with the decision's reasons, and nothing runs. When policy requires approval, the
/// answer is 202 with a stored approval request (nothing runs): wait for it with
/// `GET /v1/approvals/{id}?wait_s=60`, then send the same request with `approval_id` to
/// run it, once. Reads run on
/// connections the database holds read-only. Results stop at the row cap with
/// `truncated: true`. Sensitive values come back masked unless policy lets you unmask
/// them (each column says `masked` and its `classifications`); conditions on columns you
/// see masked are refused (`denied`), and so are writes of masked values back
/// (`masked_value_write`). Every request is recorded in the audit trail before the
/// statement runs. To ask "may I run this?" without running it, use `explain`.
#[utoipa::path(
    post,
    path = "/v1/query",
    operation_id = "query",
    tag = "query",
    request_body = QueryBody,
    responses(
        (status = 200, description = "The statement ran; its typed result.", body = QueryResponse),
        (status = 202, description = "Policy requires approval: nothing ran; the stored approval request. Wait on it, then re-send with `approval_id`.", body = AwaitingApproval),
        (status = 400, description = "`invalid_request` (malformed body or parameter), `unparseable_sql` (not one parseable statement) or `unsupported_type` (cast the column to text).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthenticated`: missing, malformed, expired or wrongly signed bearer token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`denied`: policy denies this statement, or it filters on columns you see masked (see `decision.reasons`); `approval_mismatch`: not what was approved; `forbidden`: the database refused a write on a read-only connection.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`unknown_datasource` or `approval_not_found`.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`approval_used` (an approval runs once) or `approval_not_pending` (not approved: pending or rejected).", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`approval_expired`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`masked_value_write`: the statement would write masked output (a placeholder, token or partial mask) back into the database.", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "`masking_failed`: the result could not be masked, so it is withheld.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`unknown_datasource`.", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`database_error`: the database rejected the statement; `detail` carries its message.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`datasource_unavailable`, `identity_unavailable` or `audit_unavailable` (the audit trail cannot record the request, so nothing ran): retry later.", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "`timeout`: the statement exceeded the datasource's statement timeout and was cancelled.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn query(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Body(body): Body<QueryBody>,
) -> Result<Response, Problem> {
    let request = body.into_request()?;
    let (mut response, effect) = match state.gateway.query(&caller, request).await? {
        QueryReply::Ran(outcome) => {
            let effect = outcome.decision.effect.as_str();
            (
                axum::Json(QueryResponse::from(*outcome)).into_response(),
                effect,
            )
        }
        QueryReply::AwaitingApproval(pending) => {
            let effect = pending.decision.effect.as_str();
            let body = AwaitingApproval {
                request_id: pending.request_id.to_string(),
                decision: DecisionOut::from(&pending.decision),
                approval: ApprovalOut::from(&pending.approval),
            };
            (
                (StatusCode::ACCEPTED, axum::Json(body)).into_response(),
                effect,
            )
        }
    };
    response.extensions_mut().insert(RequestOutcome {
        code: "ok",
        effect: Some(effect),
    });
    Ok(response)
}

impl QueryBody {
    /// The gateway request, with each JSON parameter turned into a typed one.
    pub fn into_request(self) -> Result<QueryRequest, Problem> {
        let params = self
            .params
            .iter()
            .enumerate()
            .map(|(i, value)| {
                Param::from_json(value)
                    .map_err(|message| Problem::invalid_request(format!("params[{i}]: {message}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(QueryRequest {
            datasource: self.datasource,
            sql: self.sql,
            params,
            max_rows: self.max_rows,
            approval_id: self.approval_id,
        })
    }
}
