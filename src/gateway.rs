//! The request pipeline every transport shares:
//!
//! ```text
//! request ─▶ identity ─▶ intent ─▶ policy ─▶ masking plan ─▶ audit (write-ahead)
//!         ─▶ execute (pooled, guarded) ─▶ mask ─▶ audit (completion) ─▶ response
//! ```
//!
//! REST and gRPC turn their requests into a [`QueryRequest`] plus a [`Caller`], and turn a
//! [`QueryOutcome`] or [`GatewayError`] back into their own responses. Nothing here knows
//! HTTP or gRPC.
//!
//! - The decision is Cedar policy over the statement's [`Intent`]: every (action, table)
//!   pair must be allowed. Statements that only read run on the datasource's read pool,
//!   whose connections the database holds read-only; everything else runs on the write
//!   pool, and only after an allow.
//! - Before anything runs, column lineage says which classified columns the statement
//!   filters on (refused when the caller may not unmask them: probing) and a write that
//!   carries masked placeholders is refused (no masked data written back over real data).
//! - The event holding the decision is committed to the audit trail *before* the statement
//!   runs; if it cannot be, the statement does not run (`audit_unavailable`). Refusals are
//!   audited too. A completion event follows, linked by request id.
//! - Results are masked in strict mode: if masking fails, the request fails.
//!
//! - A statement that needs approval is stored as an approval request and answered with
//!   it (nothing runs); re-sent with the approval's id, it is checked against exactly what
//!   was approved, re-decided with `approved = true`, and runs at most once.
//!
//! Submodules: `events` builds audit events; `query` is the query pipeline; `approvals`
//! deciding and watching approval requests; `unmask` caches Cedar `unmask` answers within
//! one request.

mod approvals;
mod events;
mod query;
mod unmask;

use std::time::Duration;

use futures::Stream;
use serde::Serialize;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::approval::{Approval, ApprovalError, Approvals};
use crate::audit::{
    AuditError, AuditEvent, AuditLog, Cursor, EventKind, EventPage, EventQuery, Verification,
};
use crate::datasource::{Datasource, Datasources, Driver, ExecError, Param, QueryResult};
use crate::identity::{AuthError, Principal, Verifier};
use crate::intent::{self, Intent, IntentError};
use crate::masking::{Classification, MaskReport, Masking};
use crate::policy::{Decision, PolicyEngine, PolicyError, Resource};
use crate::store::ControlStore;
use crate::telemetry::{Stage, metrics};

/// Group whose members may reload policies through the API.
pub const ADMIN_GROUP: &str = "admin";
/// Group whose members may read the audit trail.
pub const AUDITOR_GROUP: &str = "auditor";

/// Longest statement text accepted, in bytes. Statements are written by people and
/// agents, not generated dumps; a bound keeps parsing cost and log size predictable.
pub const MAX_SQL_BYTES: usize = 64 * 1024;
/// Most positional parameters accepted in one request.
pub const MAX_PARAMS: usize = 1_000;

/// What the transport knows about a request besides its token: the audit trail records
/// it beside the principal. Every field is optional because not every transport or proxy
/// provides it; nothing in it is trusted for decisions.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The peer address as the listener saw it (a proxy's address behind one).
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
    /// The incoming W3C `traceparent` when its trace id is well formed: the query span
    /// continues the caller's trace (see [`crate::telemetry::continue_trace`]), and audit
    /// events record its [`trace_id`](RequestContext::trace_id).
    pub traceparent: Option<String>,
}

impl RequestContext {
    /// The context of a request whose peer is `peer` and whose headers (or gRPC metadata)
    /// `header` looks up by lower-case name. Header text is cut at 512 characters: it is
    /// the caller's to choose and lands in every audit event.
    pub fn from_headers<'h>(
        peer: Option<std::net::SocketAddr>,
        header: impl Fn(&str) -> Option<&'h str>,
    ) -> RequestContext {
        let text = |name: &str| header(name).map(|value| value.chars().take(512).collect());
        RequestContext {
            client_address: peer.map(|addr| addr.ip().to_string()),
            user_agent: text("user-agent"),
            traceparent: text("traceparent").filter(|value: &String| {
                RequestContext::trace_id_from_traceparent(value).is_some()
            }),
        }
    }

    /// The trace id of the incoming `traceparent`, lower case.
    pub fn trace_id(&self) -> Option<String> {
        self.traceparent
            .as_deref()
            .and_then(RequestContext::trace_id_from_traceparent)
    }

    /// The trace id of a W3C `traceparent` value (`00-<32 hex>-<16 hex>-<2 hex>`), when
    /// well formed and not all zeros.
    fn trace_id_from_traceparent(value: &str) -> Option<String> {
        let mut parts = value.trim().split('-');
        let (_version, trace_id) = (parts.next()?, parts.next()?);
        let valid = trace_id.len() == 32
            && trace_id.bytes().all(|b| b.is_ascii_hexdigit())
            && trace_id.bytes().any(|b| b != b'0');
        valid.then(|| trace_id.to_ascii_lowercase())
    }
}

/// A verified caller and the context of its request: what every gateway operation takes.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub context: RequestContext,
}

/// One statement to run, as a transport received it.
#[derive(Debug, Clone)]
pub struct QueryRequest {
    pub datasource: String,
    pub sql: String,
    pub params: Vec<Param>,
    /// The caller's row cap; the datasource's cap applies when lower or when unset.
    pub max_rows: Option<u32>,
    /// Runs a statement approved earlier: it must be exactly what was approved.
    pub approval_id: Option<Uuid>,
}

/// What a query request comes to: a result, or an approval request to wait for.
#[derive(Debug)]
pub enum QueryReply {
    // Both boxed: each is a few hundred bytes, and replies are moved through every layer.
    Ran(Box<QueryOutcome>),
    /// Policy requires approval: nothing ran; the approval request was stored.
    AwaitingApproval(Box<PendingApproval>),
}

#[derive(Debug)]
pub struct PendingApproval {
    pub request_id: Uuid,
    pub decision: Decision,
    pub approval: Approval,
}

#[derive(Debug)]
pub struct QueryOutcome {
    pub request_id: Uuid,
    pub decision: Decision,
    /// Already masked: what the caller may see.
    pub result: QueryResult,
    /// What masking did, column by column.
    pub masking: MaskReport,
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

/// A table as the schema endpoint shows it to one caller.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaTable {
    pub name: String,
    pub columns: Vec<SchemaColumn>,
}

/// A column with its classification and whether this caller sees its values masked, so
/// an agent can plan queries (and not filter on what it may not see).
#[derive(Debug, Clone, Serialize)]
pub struct SchemaColumn {
    pub name: String,
    pub type_name: String,
    pub nullable: bool,
    pub classifications: Vec<Classification>,
    /// Values come back masked for this caller (some class it may not unmask).
    pub masked: bool,
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
    #[error(
        "the statement writes a value that looks like masked output ({0}); masked values are never written back over real data — use the real value, or a parameter holding it"
    )]
    MaskedValueWrite(&'static str),
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
    #[error("the audit trail cannot record this request, so it was not run; retry shortly")]
    AuditUnavailable,
    #[error("the result could not be masked, so it is withheld: {0}")]
    MaskingFailed(String),
    #[error("{0}")]
    Approval(ApprovalError),
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
            GatewayError::MaskedValueWrite(_) => "masked_value_write",
            GatewayError::InvalidPolicy(_) => "invalid_policy",
            GatewayError::Timeout { .. } => "timeout",
            GatewayError::Database(_) => "database_error",
            GatewayError::UnsupportedType(_) => "unsupported_type",
            GatewayError::DatasourceUnavailable(_) => "datasource_unavailable",
            GatewayError::AuditUnavailable => "audit_unavailable",
            GatewayError::MaskingFailed(_) => "masking_failed",
            GatewayError::Approval(error) => error.code(),
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

/// Runs one pipeline stage inside its tracing span (exported over OTLP when configured)
/// and records its duration in the stage histogram.
async fn stage<T>(stage: Stage, work: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let output = work.instrument(stage.span()).await;
    metrics().observe_stage(stage, started.elapsed());
    output
}

/// [`stage`] for work that does not wait.
fn stage_sync<T>(stage: Stage, work: impl FnOnce() -> T) -> T {
    let started = std::time::Instant::now();
    let output = stage.span().in_scope(work);
    metrics().observe_stage(stage, started.elapsed());
    output
}

/// The audit trail could not take an event: logged once here, reported to the caller as
/// `audit_unavailable` without internals.
fn audit_unavailable(error: AuditError) -> GatewayError {
    tracing::error!(%error, "audit trail unavailable; refusing the request");
    GatewayError::AuditUnavailable
}

pub struct Gateway {
    verifier: Verifier,
    datasources: Datasources,
    store: ControlStore,
    policy: PolicyEngine,
    audit: AuditLog,
    masking: Masking,
    approvals: Approvals,
}

impl Gateway {
    pub fn new(
        verifier: Verifier,
        datasources: Datasources,
        store: ControlStore,
        policy: PolicyEngine,
        audit: AuditLog,
        masking: Masking,
        approvals: Approvals,
    ) -> Gateway {
        Gateway {
            verifier,
            datasources,
            store,
            policy,
            audit,
            masking,
            approvals,
        }
    }

    /// The audit trail, for the writer's statistics (metrics).
    pub fn audit_log(&self) -> &AuditLog {
        &self.audit
    }

    /// Loads every datasource's classified catalog, so the first query does not pay for
    /// it. Failures are logged; the catalog then loads on first use.
    pub async fn warm_catalogs(&self) {
        for datasource in self.datasources.iter() {
            if let Err(error) = self.masking.catalog(datasource).await {
                tracing::warn!(datasource = %datasource.name(), %error, "catalog not loaded yet; it loads on first use");
            }
        }
    }

    /// The caller's identity from the `authorization` header or metadata value. A refused
    /// token is audited (with the reason, never the token).
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        context: RequestContext,
    ) -> Result<Caller, GatewayError> {
        let verified = stage(Stage::Identity, async {
            match crate::identity::bearer_token(authorization) {
                Ok(token) => self.verifier.verify(token).await,
                Err(error) => Err(error),
            }
        })
        .await;
        match verified {
            Ok(principal) => Ok(Caller { principal, context }),
            Err(error) => {
                let refusal = if error.is_unavailable() {
                    GatewayError::IdentityUnavailable
                } else {
                    GatewayError::Unauthenticated(error)
                };
                let event = events::auth_failed(&context, &refusal);
                self.audit.append(event).await.map_err(audit_unavailable)?;
                Err(refusal)
            }
        }
    }

    /// What `request` intends and what policy decides for the caller, without running it.
    pub async fn explain(
        &self,
        caller: &Caller,
        request: &QueryRequest,
    ) -> Result<Explanation, GatewayError> {
        let mut event = events::for_caller(EventKind::Explain, Uuid::now_v7(), caller);
        event.datasource = Some(request.datasource.clone());
        event.statement = Some(self.masking.masker().scrub(&request.sql));
        let explained = self.datasource_for(request).and_then(|datasource| {
            explain_statement(&self.policy, datasource, &caller.principal, &request.sql)
        });
        match &explained {
            Ok(explanation) => {
                event.environment = Some(explanation.environment.clone());
                event.intent = Some(events::intent(&explanation.intent));
                event.decision = Some((&explanation.decision).into());
            }
            Err(error) => event.completion = Some(events::refused(error, Duration::ZERO)),
        }
        self.audit.append(event).await.map_err(audit_unavailable)?;
        explained
    }

    /// The datasource a well-formed request names.
    fn datasource_for(&self, request: &QueryRequest) -> Result<&Datasource, GatewayError> {
        validate(request)?;
        self.datasource(&request.datasource)
    }

    fn datasource(&self, name: &str) -> Result<&Datasource, GatewayError> {
        self.datasources
            .get(name)
            .ok_or_else(|| GatewayError::UnknownDatasource(name.to_owned()))
    }

    /// Re-reads the policy files; on failure the current set stays in force. Only members
    /// of [`ADMIN_GROUP`] may do this through the API.
    pub async fn reload_policies(&self, caller: &Caller) -> Result<usize, GatewayError> {
        let mut event = events::for_caller(EventKind::PolicyReload, Uuid::now_v7(), caller);
        let reloaded = if caller.principal.in_group(ADMIN_GROUP) {
            self.reload_policies_unchecked()
        } else {
            Err(GatewayError::Forbidden {
                reason: format!("only members of group `{ADMIN_GROUP}` may reload policies"),
            })
        };
        if let Err(error) = &reloaded {
            event.completion = Some(events::refused(error, Duration::ZERO));
        }
        self.audit.append(event).await.map_err(audit_unavailable)?;
        reloaded
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

    /// Tables and columns of one datasource, read afresh from its catalog, with each
    /// column's classification and whether this caller sees it masked.
    pub async fn schema(
        &self,
        caller: &Caller,
        datasource: &str,
    ) -> Result<Vec<SchemaTable>, GatewayError> {
        let mut event = events::for_caller(EventKind::Schema, Uuid::now_v7(), caller);
        event.datasource = Some(datasource.to_owned());
        let tables = self.schema_for(caller, datasource).await;
        if let Err(error) = &tables {
            event.completion = Some(events::refused(error, Duration::ZERO));
        }
        self.audit.append(event).await.map_err(audit_unavailable)?;
        tables
    }

    async fn schema_for(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<Vec<SchemaTable>, GatewayError> {
        let datasource = self.datasource(name)?;
        let catalog = self
            .masking
            .catalog(datasource)
            .await
            .map_err(events::catalog_error)?;
        // Unmask questions are asked in the context of a plain read of the table.
        let intent = unmask::plain_read();
        let mut unmask = unmask::Unmask::new(&self.policy, &caller.principal, &intent, datasource);
        Ok(catalog
            .tables()
            .map(|table| SchemaTable {
                name: table.name().to_owned(),
                columns: table
                    .columns()
                    .iter()
                    .map(|column| {
                        let classes = column.classes().to_vec();
                        let masked = classes
                            .iter()
                            .any(|class| !unmask.allows(table.name(), column.name(), *class));
                        SchemaColumn {
                            name: column.name().to_owned(),
                            type_name: column.type_name().to_owned(),
                            nullable: column.nullable(),
                            classifications: classes,
                            masked,
                        }
                    })
                    .collect(),
            })
            .collect())
    }

    /// A page of audit events. Only members of [`AUDITOR_GROUP`]; the read is audited.
    pub async fn audit_events(
        &self,
        caller: &Caller,
        query: &EventQuery,
    ) -> Result<EventPage, GatewayError> {
        self.audit_read(caller).await?;
        self.audit
            .list(query)
            .await
            .map_err(events::audit_query_error)
    }

    /// Walks the hash chain and reports the first broken link. Auditors only.
    pub async fn audit_verify(&self, caller: &Caller) -> Result<Verification, GatewayError> {
        self.audit_read(caller).await?;
        self.audit.verify().await.map_err(events::audit_query_error)
    }

    /// Committed events after `after`, then new ones as they commit. Auditors only.
    pub async fn audit_follow(
        &self,
        caller: &Caller,
        after: Option<Cursor>,
    ) -> Result<impl Stream<Item = Result<AuditEvent, AuditError>> + Send + 'static, GatewayError>
    {
        self.audit_read(caller).await?;
        Ok(self.audit.follow(after))
    }

    /// Checks the caller is an auditor and records the read (refused reads too).
    async fn audit_read(&self, caller: &Caller) -> Result<(), GatewayError> {
        let mut event = events::for_caller(EventKind::AuditRead, Uuid::now_v7(), caller);
        let allowed = if caller.principal.in_group(AUDITOR_GROUP) {
            Ok(())
        } else {
            Err(GatewayError::Forbidden {
                reason: format!("only members of group `{AUDITOR_GROUP}` may read the audit trail"),
            })
        };
        if let Err(error) = &allowed {
            event.completion = Some(events::refused(error, Duration::ZERO));
        }
        self.audit.append(event).await.map_err(audit_unavailable)?;
        allowed
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

    /// Connections of each datasource's pools, for `/metrics`.
    pub fn pool_stats(&self) -> Vec<(String, crate::datasource::PoolStats)> {
        self.datasources
            .iter()
            .map(|ds| (ds.name().to_string(), ds.pool_stats()))
            .collect()
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
    let decision = policy.decide(principal, &intent, &resource(datasource), false);
    Ok(Explanation {
        datasource: datasource.name().to_string(),
        environment: datasource.environment().to_string(),
        driver: datasource.driver(),
        intent,
        decision,
    })
}

fn resource(datasource: &Datasource) -> Resource<'_> {
    Resource {
        datasource: datasource.name().as_str(),
        environment: datasource.environment().as_str(),
    }
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
