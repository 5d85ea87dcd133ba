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
    /// such route), `method_not_allowed` (405), `payload_too_large` (413).
    pub code: String,
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Problem {
        Problem {
            problem_type: format!("urn:gatehouse:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_owned(),
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
            GatewayError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "Statement timed out"),
            GatewayError::Database(_) => (StatusCode::BAD_GATEWAY, "Database error"),
            GatewayError::UnsupportedType(_) => {
                (StatusCode::BAD_REQUEST, "Unsupported column type")
            }
            GatewayError::DatasourceUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "Datasource unavailable")
            }
        };
        Problem::new(status, error.code(), error.to_string()).with_title(title)
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
