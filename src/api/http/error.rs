//! RFC 9457 problem responses: the one place where errors become HTTP status codes.
//!
//! Every error leaves as `application/problem+json` with a stable `code` member that
//! callers (and agents) branch on; `detail` says what was wrong in words a caller can act
//! on. Internal details (connection strings, stack traces) are logged, never returned.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::gateway::GatewayError;
use crate::policy::Decision;

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
    pub title: String,
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
    /// (422: a policy reload failed; the previous policies stay in force).
    pub code: String,
    /// For `denied` and `approval_required`: the policy decision, with the ids of the
    /// determining policies and the human-readable reasons.
    /// Boxed: most problems carry none, and a small error type keeps `Result`s cheap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Box<DecisionOut>>,
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
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Problem {
        Problem {
            problem_type: format!("urn:gatehouse:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_owned(),
            decision: None,
        }
    }

    fn with_title(mut self, title: &str) -> Problem {
        title.clone_into(&mut self.title);
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
        };
        let mut problem = Problem::new(status, error.code(), error.to_string()).with_title(title);
        problem.decision = error.decision().map(|d| Box::new(DecisionOut::from(d)));
        problem
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(&self)).into_response();
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
