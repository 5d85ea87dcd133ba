//! `POST /v1/explain`: what a statement intends and what policy decides, without running it.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{DecisionOut, Problem};
use super::extract::{Body, Caller};
use super::query::QueryBody;
use crate::gateway::Explanation;
use crate::intent::Intent;

/// A table the statement touches.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableAccessOut {
    /// Table name as normalised by Gatehouse (unquoted names in lower case).
    pub table: String,
    /// `read` or `write`.
    pub access: String,
}

/// One (action, table) pair that policy evaluated.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetOut {
    pub action: String,
    /// Absent for actions on no table (`SELECT 1`, `SET …`), evaluated against the datasource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

/// What the statement intends.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntentOut {
    /// The statement's leading keyword(s): `SELECT`, `UPDATE`, `CREATE TABLE`, …
    pub statement: String,
    /// `select`, `insert`, `update`, `delete`, `merge`, `create`, `alter`, `drop`,
    /// `truncate`, `grant`, `admin` or `session`.
    pub actions: Vec<String>,
    pub tables: Vec<TableAccessOut>,
    pub targets: Vec<TargetOut>,
    /// Referenced columns as `table.column` (or `column` where the table is unknown).
    pub columns: Vec<String>,
    /// Risk flags that are set: `unbounded` (UPDATE/DELETE without a real WHERE),
    /// `data_modifying_cte`, `select_into`, `locking`, `denied_function`,
    /// `explain_analyze_write`, `file_access`, `multiple_statements`, `unclassified`.
    pub flags: Vec<String>,
    /// Deny-listed functions the statement calls.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub denied_functions: Vec<String>,
    /// Why the statement could not be classified, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unclassified: Option<String>,
}

impl From<&Intent> for IntentOut {
    fn from(intent: &Intent) -> Self {
        IntentOut {
            statement: intent.statement.clone(),
            actions: intent
                .actions
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect(),
            tables: intent
                .tables
                .iter()
                .map(|t| TableAccessOut {
                    table: t.table.to_string(),
                    access: t.access.as_str().to_owned(),
                })
                .collect(),
            targets: intent
                .targets
                .iter()
                .map(|t| TargetOut {
                    action: t.action.as_str().to_owned(),
                    table: t.table.as_ref().map(ToString::to_string),
                })
                .collect(),
            columns: intent.columns.iter().map(ToString::to_string).collect(),
            flags: intent
                .flags
                .names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            denied_functions: intent.flags.denied_functions.clone(),
            unclassified: intent.flags.unclassified.clone(),
        }
    }
}

/// Intent and decision for one statement.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "datasource": "shop_prod",
    "environment": "prod",
    "driver": "sqlite",
    "intent": {
        "statement": "DELETE",
        "actions": ["delete"],
        "tables": [{"table": "orders", "access": "write"}],
        "targets": [{"action": "delete", "table": "orders"}],
        "columns": [],
        "flags": ["unbounded"]
    },
    "decision": {
        "effect": "deny",
        "policies": ["prod-unbounded-writes"],
        "reasons": ["UPDATE or DELETE without a WHERE clause is never run in production"]
    }
}))]
pub struct ExplainResponse {
    pub datasource: String,
    pub environment: String,
    /// SQL dialect: `postgres`, `mysql` or `sqlite`.
    pub driver: String,
    pub intent: IntentOut,
    /// What `query` would do with this statement for this caller: `allow` runs it,
    /// `deny` refuses it, `approval_required` needs an approver first.
    pub decision: DecisionOut,
}

impl From<Explanation> for ExplainResponse {
    fn from(explanation: Explanation) -> Self {
        ExplainResponse {
            datasource: explanation.datasource,
            environment: explanation.environment,
            driver: explanation.driver.to_string(),
            intent: IntentOut::from(&explanation.intent),
            decision: DecisionOut::from(&explanation.decision),
        }
    }
}

/// Ask whether a statement may run
///
/// Parses the statement exactly as `query` would and returns what it intends (actions,
/// tables with read/write access, risk flags) and what policy decides for the calling
/// identity in the datasource's environment, without running anything. Call this before
/// `query` when unsure: a `deny` lists the reasons to change the statement; an
/// `approval_required` names the approver groups. The answer is 200 whatever the
/// decision; errors are only for requests that cannot be explained.
#[utoipa::path(
    post,
    path = "/v1/explain",
    operation_id = "explain",
    tag = "query",
    request_body = QueryBody,
    responses(
        (status = 200, description = "The statement's intent and the policy decision.", body = ExplainResponse),
        (status = 400, description = "`invalid_request` or `unparseable_sql`.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthenticated`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`unknown_datasource`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn explain(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Body(body): Body<QueryBody>,
) -> Result<axum::Json<ExplainResponse>, Problem> {
    let request = body.into_request()?;
    let explanation = state.gateway.explain(&caller, &request).await?;
    Ok(axum::Json(explanation.into()))
}
