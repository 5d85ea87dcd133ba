//! RFC 9457 problem responses: the one place where errors become HTTP status codes.
//!
//! Every error leaves as `application/problem+json` with a stable `code` member that
//! callers (and agents) branch on; `detail` says what was wrong in words a caller can act
//! on. Internal details (connection strings, stack traces) are logged, never returned.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::approval::ApprovalError;
use crate::gateway::GatewayError;
use crate::policy::Decision;
use crate::telemetry::RequestOutcome;

/// An RFC 9457 problem. `code` is the member to branch on.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:gatehouse:problem:unknown_datasource",
    "title": "Unknown datasource",
    "status": 404,
    "detail": "no datasource named `shopp`; GET /v1/datasources lists them",
    "code": "unknown_datasource"
}))]
pub struct Problem {
    /// `urn:gatehouse:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the problem kind.
    pub title: &'static str,
    /// The HTTP status code.
    pub status: u16,
    /// What exactly was wrong with this request, and how to fix it.
    pub detail: String,
    /// Machine-readable code: `unauthenticated` (401: missing, malformed, expired or
    /// wrongly signed token), `forbidden` (403: this statement may not run; the detail
    /// says why), `unknown_datasource` (404), `invalid_request` (400: the body or a
    /// parameter is malformed), `unparseable_sql` (400: the statement does not parse, or
    /// holds more than one statement), `unsupported_type` (400: a result column has a type
    /// Gatehouse cannot represent; cast it to text), `timeout` (504: the statement ran too
    /// long and was cancelled), `database_error` (502: the database rejected the
    /// statement; the detail has its message), `datasource_unavailable` (503),
    /// `identity_unavailable` (503: token keys not loaded yet), `not_found` (404: no
    /// such route), `method_not_allowed` (405), `payload_too_large` (413), `denied` (403:
    /// policy denies this statement; see `decision.reasons`), `approval_required` (403:
    /// policy requires approval by `decision.approver_groups` first), `invalid_policy`
    /// (422: a policy reload failed; the previous policies stay in force),
    /// `masked_value_write` (422: a write would store masked output over real data),
    /// `audit_unavailable` (503: the audit trail cannot record the request, so it did not
    /// run), `masking_failed` (500: the result could not be masked and is withheld),
    /// approvals: `approval_not_found` (404), `approval_expired` (410), `approval_used`
    /// (409: an approval runs once), `approval_mismatch` (403: not the statement,
    /// parameters, datasource or requester that was approved), `not_an_approver` (403),
    /// `self_approval` (403), `approval_not_pending` (409), `already_voted` (409).
    pub code: &'static str,
    /// For `denied` and `approval_required`: the policy decision, with the ids of the
    /// determining policies and the human-readable reasons.
    /// Boxed: most problems carry none, and a small error type keeps `Result`s cheap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Box<DecisionOut>>,
    /// The decision's effect, for the request metrics.
    #[serde(skip)]
    effect: Option<&'static str>,
}

/// A policy decision.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "effect": "approval_required",
    "policies": ["prod-writes-need-dba-approval"],
    "reasons": ["writes in production need approval by a DBA unless a DBA runs them"],
    "approver_groups": ["dba"],
    "min_approvals": 1
}))]
pub struct DecisionOut {
    /// `allow`, `deny` or `approval_required`.
    pub effect: String,
    /// Ids of the policies that determined the effect.
    pub policies: Vec<String>,
    /// Why, in words: the `@reason` of each determining policy.
    pub reasons: Vec<String>,
    /// For `approval_required`: the groups whose members may approve.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approver_groups: Vec<String>,
    /// For `approval_required`: how many distinct approvals are needed.
    #[serde(skip_serializing_if = "is_zero")]
    pub min_approvals: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl From<&Decision> for DecisionOut {
    fn from(decision: &Decision) -> Self {
        DecisionOut {
            effect: decision.effect.as_str().to_owned(),
            policies: decision.policies.clone(),
            reasons: decision.reasons.clone(),
            approver_groups: decision.approver_groups.clone(),
            min_approvals: decision.min_approvals,
        }
    }
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            effect: None,
            problem_type: format!("urn:gatehouse:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            code,
            decision: None,
        }
    }

    fn with_title(mut self, title: &'static str) -> Problem {
        self.title = title;
        self
    }

    pub fn invalid_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
            .with_title("Invalid request")
    }
}

impl From<GatewayError> for Problem {
    fn from(error: GatewayError) -> Problem {
        let (status, title) = match &error {
            GatewayError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "Unauthenticated"),
            GatewayError::IdentityUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "Identity keys unavailable")
            }
            GatewayError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "Invalid request"),
            GatewayError::UnknownDatasource(_) => (StatusCode::NOT_FOUND, "Unknown datasource"),
            GatewayError::UnparseableSql(_) => (StatusCode::BAD_REQUEST, "Unparseable SQL"),
            GatewayError::Forbidden { .. } => (StatusCode::FORBIDDEN, "Forbidden"),
            GatewayError::Denied { .. } => (StatusCode::FORBIDDEN, "Denied by policy"),
            GatewayError::ApprovalRequired { .. } => (StatusCode::FORBIDDEN, "Approval required"),
            GatewayError::InvalidPolicy(_) => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid policy"),
            GatewayError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "Statement timed out"),
            GatewayError::Database(_) => (StatusCode::BAD_GATEWAY, "Database error"),
            GatewayError::UnsupportedType(_) => {
                (StatusCode::BAD_REQUEST, "Unsupported column type")
            }
            GatewayError::DatasourceUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "Datasource unavailable")
            }
            GatewayError::MaskedValueWrite(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "Masked value in a write")
            }
            GatewayError::AuditUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "Audit trail unavailable")
            }
            GatewayError::MaskingFailed(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Masking failed"),
            GatewayError::Approval(error) => approval_status(error),
        };
        let mut problem = Problem::new(status, error.code(), error.to_string()).with_title(title);
        problem.decision = error.decision().map(|d| Box::new(DecisionOut::from(d)));
        problem.effect = error.decision().map(|d| d.effect.as_str());
        problem
    }
}

/// Status and title of each approval refusal.
fn approval_status(error: &ApprovalError) -> (StatusCode, &'static str) {
    match error {
        ApprovalError::NotFound(_) => (StatusCode::NOT_FOUND, "Approval not found"),
        ApprovalError::Expired(_) => (StatusCode::GONE, "Approval expired"),
        ApprovalError::Used { .. } => (StatusCode::CONFLICT, "Approval already used"),
        ApprovalError::Mismatch { .. } => (StatusCode::FORBIDDEN, "Approval does not match"),
        ApprovalError::NotAnApprover { .. } => (StatusCode::FORBIDDEN, "Not an approver"),
        ApprovalError::SelfApproval(_) => (StatusCode::FORBIDDEN, "Self-approval"),
        ApprovalError::NotPending { .. } => (StatusCode::CONFLICT, "Approval not pending"),
        ApprovalError::AlreadyVoted(_) => (StatusCode::CONFLICT, "Already voted"),
        ApprovalError::NotExecuting { .. } => (StatusCode::CONFLICT, "Approval not executing"),
        ApprovalError::Invalid(_) => (StatusCode::BAD_REQUEST, "Invalid approval"),
        ApprovalError::Store(_) | ApprovalError::Corrupt { .. } | ApprovalError::Events(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "Approvals unavailable")
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(&self)).into_response();
        response.extensions_mut().insert(RequestOutcome {
            code: self.code,
            effect: self.effect,
        });
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
