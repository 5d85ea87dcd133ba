//! The request pipeline every transport shares:
//!
//! ```text
//! request ─▶ identity ─▶ intent ─▶ decision ─▶ execute (pooled, guarded) ─▶ response
//! ```
//!
//! REST and gRPC turn their requests into a [`QueryRequest`] plus the caller's
//! `authorization` value, and turn a [`QueryOutcome`] or [`GatewayError`] back into their
//! own responses. Nothing here knows HTTP or gRPC.
//!
//! The decision is Cedar policy over the statement's [`Intent`]: every (action, table)
//! pair must be allowed. Statements that only read run on the datasource's read pool,
//! whose connections the database holds read-only, so a statement the parser misjudged
//! still cannot write; everything else runs on the write pool, and only after an allow.

use std::time::{Duration, Instant};

use serde::Serialize;
use uuid::Uuid;

use crate::datasource::{
    Access, Datasource, Datasources, Driver, ExecError, Param, QueryResult, TableSchema,
};
use crate::identity::{AuthError, Principal, Verifier};
use crate::intent::{self, Intent, IntentError};
use crate::policy::{Decision, Effect, PolicyEngine, PolicyError, Resource};
use crate::store::ControlStore;

/// Group whose members may reload policies through the API.
pub const ADMIN_GROUP: &str = "admin";

/// Longest statement text accepted, in bytes. Statements are written by people and
/// agents, not generated dumps; a bound keeps parsing cost and log size predictable.
pub const MAX_SQL_BYTES: usize = 64 * 1024;
/// Most positional parameters accepted in one request.
pub const MAX_PARAMS: usize = 1_000;

/// One statement to run, as a transport received it.
#[derive(Debug, Clone)]
pub struct QueryRequest {
    pub datasource: String,
    pub sql: String,
    pub params: Vec<Param>,
    /// The caller's row cap; the datasource's cap applies when lower or when unset.
    pub max_rows: Option<u32>,
}

#[derive(Debug)]
pub struct QueryOutcome {
    pub request_id: Uuid,
    pub decision: Decision,
    pub result: QueryResult,
    pub elapsed: Duration,
}

/// What a statement intends and what policy decides about it, without running it.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub datasource: String,
    pub environment: String,
    pub driver: Driver,
    pub intent: Intent,
    pub decision: Decision,
}

/// A datasource as callers see it in listings.
#[derive(Debug, Clone, Serialize)]
pub struct DatasourceInfo {
    pub name: String,
    pub environment: String,
    pub driver: Driver,
}

/// Reachability of one dependency, for `/readyz`.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything that can stop a request. Each variant has one stable machine-readable
/// [`code`](GatewayError::code); transports map codes to their status codes in one place
/// each (`api::http::error`, `api::grpc`).
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Unauthenticated(AuthError),
    #[error("token verification keys are not available yet; retry shortly")]
    IdentityUnavailable,
    #[error("{0}")]
    InvalidRequest(String),
    #[error("no datasource named `{0}`; GET /v1/datasources lists them")]
    UnknownDatasource(String),
    #[error("{0}")]
    UnparseableSql(IntentError),
    #[error("{reason}")]
    Forbidden { reason: String },
    #[error("denied by policy: {}", .decision.reasons.join("; "))]
    Denied { decision: Decision },
    #[error(
        "approval required from {}: {}",
        .decision.approver_groups.join(" or "),
        .decision.reasons.join("; ")
    )]
    ApprovalRequired { decision: Decision },
    #[error("{0}")]
    InvalidPolicy(PolicyError),
    #[error("the statement did not finish within {after_ms} ms and was cancelled")]
    Timeout { after_ms: u64 },
    #[error("{0}")]
    Database(String),
    #[error("{0}")]
    UnsupportedType(String),
    #[error("{0}")]
    DatasourceUnavailable(String),
}

impl GatewayError {
    /// The policy decision behind a refusal, when policy refused.
    pub fn decision(&self) -> Option<&Decision> {
        match self {
            GatewayError::Denied { decision } | GatewayError::ApprovalRequired { decision } => {
                Some(decision)
            }
            _ => None,
        }
    }

    /// The machine-readable code, identical over REST (`code` member) and gRPC
    /// (`gatehouse-code` metadata).
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::Unauthenticated(_) => "unauthenticated",
            GatewayError::IdentityUnavailable => "identity_unavailable",
            GatewayError::InvalidRequest(_) => "invalid_request",
            GatewayError::UnknownDatasource(_) => "unknown_datasource",
            GatewayError::UnparseableSql(_) => "unparseable_sql",
            GatewayError::Forbidden { .. } => "forbidden",
            GatewayError::Denied { .. } => "denied",
            GatewayError::ApprovalRequired { .. } => "approval_required",
            GatewayError::InvalidPolicy(_) => "invalid_policy",
            GatewayError::Timeout { .. } => "timeout",
            GatewayError::Database(_) => "database_error",
            GatewayError::UnsupportedType(_) => "unsupported_type",
            GatewayError::DatasourceUnavailable(_) => "datasource_unavailable",
        }
    }
}

impl From<ExecError> for GatewayError {
    fn from(error: ExecError) -> Self {
        match error {
            ExecError::Timeout { after_ms } => GatewayError::Timeout { after_ms },
            ExecError::Unavailable(_) => GatewayError::DatasourceUnavailable(error.to_string()),
            ExecError::UnsupportedType { .. } => GatewayError::UnsupportedType(error.to_string()),
            ExecError::InvalidParam { .. } => GatewayError::InvalidRequest(error.to_string()),
            // The database refused a write on a read-only connection: the read-only wall
            // held where the parser's judgement did not. Still a refusal, not a failure.
            ExecError::ReadOnly => GatewayError::Forbidden {
                reason: "the database refused to write on a read-only connection".to_owned(),
            },
            ExecError::Database { .. } => GatewayError::Database(error.to_string()),
        }
    }
}

pub struct Gateway {
    verifier: Verifier,
    datasources: Datasources,
    store: ControlStore,
    policy: PolicyEngine,
}

impl Gateway {
    pub fn new(
        verifier: Verifier,
        datasources: Datasources,
        store: ControlStore,
        policy: PolicyEngine,
    ) -> Gateway {
        Gateway {
            verifier,
            datasources,
            store,
            policy,
        }
    }

    /// The caller's identity from the `authorization` header or metadata value.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
    ) -> Result<Principal, GatewayError> {
        let token =
            crate::identity::bearer_token(authorization).map_err(GatewayError::Unauthenticated)?;
        self.verifier.verify(token).await.map_err(|error| {
            if error.is_unavailable() {
                GatewayError::IdentityUnavailable
            } else {
                GatewayError::Unauthenticated(error)
            }
        })
    }

    /// What `request` intends and what policy decides for `principal`, without running it.
    pub fn explain(
        &self,
        principal: &Principal,
        request: &QueryRequest,
    ) -> Result<Explanation, GatewayError> {
        let datasource = self.datasource_for(request)?;
        explain_statement(&self.policy, datasource, principal, &request.sql)
    }

    /// The datasource a well-formed request names.
    fn datasource_for(&self, request: &QueryRequest) -> Result<&Datasource, GatewayError> {
        validate(request)?;
        self.datasources
            .get(&request.datasource)
            .ok_or_else(|| GatewayError::UnknownDatasource(request.datasource.clone()))
    }

    /// Runs one statement for `principal`: validate, classify, decide, execute.
    #[tracing::instrument(
        name = "gateway.query",
        skip_all,
        fields(request_id, sub = principal.sub(), datasource = %request.datasource)
    )]
    pub async fn query(
        &self,
        principal: &Principal,
        request: QueryRequest,
    ) -> Result<QueryOutcome, GatewayError> {
        let started = Instant::now();
        let request_id = Uuid::now_v7();
        tracing::Span::current().record("request_id", tracing::field::display(request_id));

        let datasource = self.datasource_for(&request)?;
        let Explanation {
            intent, decision, ..
        } = explain_statement(&self.policy, datasource, principal, &request.sql)?;
        match decision.effect {
            Effect::Allow => {}
            Effect::Deny => {
                tracing::info!(outcome = "denied", policies = ?decision.policies, "statement denied");
                return Err(GatewayError::Denied { decision });
            }
            Effect::ApprovalRequired => {
                tracing::info!(
                    outcome = "approval_required",
                    policies = ?decision.policies,
                    "statement needs approval"
                );
                return Err(GatewayError::ApprovalRequired { decision });
            }
        }
        // Reads go to connections the database holds read-only; only what policy allowed
        // as more than a read reaches the write pool.
        let access = if intent.is_read_only() {
            Access::Read
        } else {
            Access::Write
        };
        let max_rows = request.max_rows.map_or(datasource.max_rows(), |asked| {
            asked.min(datasource.max_rows())
        });
        let result = datasource
            .execute(access, &request.sql, &request.params, max_rows)
            .await
            .inspect_err(|error| tracing::info!(outcome = "failed", %error, "statement failed"))?;
        let elapsed = started.elapsed();
        tracing::info!(
            outcome = "ok",
            ?access,
            rows = result.rows.len(),
            rows_affected = result.rows_affected,
            truncated = result.truncated,
            elapsed_ms = elapsed.as_millis() as u64,
            "statement ran"
        );
        Ok(QueryOutcome {
            request_id,
            decision,
            result,
            elapsed,
        })
    }

    /// Re-reads the policy files; on failure the current set stays in force. Only members
    /// of [`ADMIN_GROUP`] may do this through the API.
    pub fn reload_policies(&self, principal: &Principal) -> Result<usize, GatewayError> {
        if !principal.in_group(ADMIN_GROUP) {
            return Err(GatewayError::Forbidden {
                reason: format!("only members of group `{ADMIN_GROUP}` may reload policies"),
            });
        }
        self.reload_policies_unchecked()
    }

    /// Reload for the operator (SIGHUP): no caller to check.
    pub fn reload_policies_unchecked(&self) -> Result<usize, GatewayError> {
        match self.policy.reload() {
            Ok(count) => {
                tracing::info!(policies = count, "policies reloaded");
                Ok(count)
            }
            Err(error) => {
                tracing::error!(%error, "policy reload failed; the previous policies stay in force");
                Err(GatewayError::InvalidPolicy(error))
            }
        }
    }

    /// The datasources, in name order.
    pub fn datasources(&self) -> Vec<DatasourceInfo> {
        self.datasources
            .iter()
            .map(|ds| DatasourceInfo {
                name: ds.name().to_string(),
                environment: ds.environment().to_string(),
                driver: ds.driver(),
            })
            .collect()
    }

    /// Tables and columns of one datasource.
    pub async fn schema(&self, datasource: &str) -> Result<Vec<TableSchema>, GatewayError> {
        let datasource = self
            .datasources
            .get(datasource)
            .ok_or_else(|| GatewayError::UnknownDatasource(datasource.to_owned()))?;
        Ok(datasource.schema().await?)
    }

    /// Reachability of the control store and of every datasource, checked concurrently.
    pub async fn readiness(&self) -> Vec<Check> {
        let store = async {
            let result = self.store.ping().await;
            Check {
                name: "control_store".to_owned(),
                ok: result.is_ok(),
                error: result.err().map(|e| e.to_string()),
            }
        };
        let datasources = futures::future::join_all(self.datasources.iter().map(|ds| async move {
            let result = ds.ping().await;
            Check {
                name: format!("datasource:{}", ds.name()),
                ok: result.is_ok(),
                error: result.err().map(|e| e.to_string()),
            }
        }));
        let (store, mut datasources) = tokio::join!(store, datasources);
        datasources.insert(0, store);
        datasources
    }
}

/// The part of the pipeline that needs no I/O: parse the statement with the datasource's
/// dialect and decide for `principal` in the datasource's environment. Shared with
/// `gatehouse explain`, which runs it offline.
pub fn explain_statement(
    policy: &PolicyEngine,
    datasource: &Datasource,
    principal: &Principal,
    sql: &str,
) -> Result<Explanation, GatewayError> {
    let intent = intent::analyze(datasource.driver(), sql).map_err(GatewayError::UnparseableSql)?;
    let resource = Resource {
        datasource: datasource.name().as_str(),
        environment: datasource.environment().as_str(),
    };
    let decision = policy.decide(principal, &intent, &resource, false);
    Ok(Explanation {
        datasource: datasource.name().to_string(),
        environment: datasource.environment().to_string(),
        driver: datasource.driver(),
        intent,
        decision,
    })
}

/// Turns away malformed requests before any parsing or database work.
fn validate(request: &QueryRequest) -> Result<(), GatewayError> {
    if request.datasource.is_empty() {
        return Err(GatewayError::InvalidRequest(
            "`datasource` is required".to_owned(),
        ));
    }
    if request.sql.trim().is_empty() {
        return Err(GatewayError::InvalidRequest("`sql` is required".to_owned()));
    }
    if request.sql.len() > MAX_SQL_BYTES {
        return Err(GatewayError::InvalidRequest(format!(
            "`sql` is {} bytes; the limit is {MAX_SQL_BYTES}",
            request.sql.len()
        )));
    }
    if request.params.len() > MAX_PARAMS {
        return Err(GatewayError::InvalidRequest(format!(
            "{} parameters given; the limit is {MAX_PARAMS}",
            request.params.len()
        )));
    }
    if request.max_rows == Some(0) {
        return Err(GatewayError::InvalidRequest(
            "`max_rows` must be at least 1".to_owned(),
        ));
    }
    Ok(())
}
