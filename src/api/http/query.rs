//! `POST /v1/query`: run one SQL statement.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{DecisionOut, Problem};
use super::extract::{Body, Caller};
use crate::datasource::{Param, Value};
use crate::gateway::{QueryOutcome, QueryRequest};

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
}

/// The typed result of one statement.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "request_id": "01936f5e-8a3b-7c2d-9e4f-0123456789ab",
    "decision": {"effect": "allow", "policies": ["reads"], "reasons": ["anyone may read"]},
    "columns": [{"name": "id", "type": "integer"}, {"name": "status", "type": "text"}, {"name": "amount_cents", "type": "integer"}],
    "rows": [[7, "paid", 1999], [19, "shipped", 4250]],
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
        QueryResponse {
            request_id: outcome.request_id.to_string(),
            decision: DecisionOut::from(&outcome.decision),
            columns: result
                .columns
                .into_iter()
                .map(|c| ColumnOut {
                    name: c.name,
                    type_name: c.type_name,
                })
                .collect(),
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
/// this caller and the datasource's environment: `denied` or `approval_required` come
/// back as 403 problems with the decision's reasons, and nothing runs. Reads run on
/// connections the database holds read-only. Results stop at the row cap with
/// `truncated: true`. To ask "may I run this?" without running it, use `explain`.
#[utoipa::path(
    post,
    path = "/v1/query",
    operation_id = "query",
    tag = "query",
    request_body = QueryBody,
    responses(
        (status = 200, description = "The statement ran; its typed result.", body = QueryResponse),
        (status = 400, description = "`invalid_request` (malformed body or parameter), `unparseable_sql` (not one parseable statement) or `unsupported_type` (cast the column to text).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthenticated`: missing, malformed, expired or wrongly signed bearer token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`denied`: policy denies this statement (see `decision.reasons`); `approval_required`: a member of `decision.approver_groups` must approve it first; `forbidden`: the database refused a write on a read-only connection.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`unknown_datasource`.", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`database_error`: the database rejected the statement; `detail` carries its message.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`datasource_unavailable` or `identity_unavailable`: retry later.", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "`timeout`: the statement exceeded the datasource's statement timeout and was cancelled.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn query(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Body(body): Body<QueryBody>,
) -> Result<axum::Json<QueryResponse>, Problem> {
    let request = body.into_request()?;
    let outcome = state.gateway.query(&principal, request).await?;
    Ok(axum::Json(outcome.into()))
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
        })
    }
}
