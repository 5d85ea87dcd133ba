//! `GET /healthz` (the process is up) and `GET /readyz` (its dependencies answer).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckOut {
    /// `control_store` or `datasource:<name>`.
    pub name: String,
    pub ok: bool,
    /// Why the check failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` when every check passed, otherwise `not_ready`.
    pub status: String,
    pub checks: Vec<CheckOut>,
}

/// Liveness
///
/// Answers 200 while the process serves requests. Needs no token.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "health",
    responses((status = 200, description = "The process is up.", body = Health))
)]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".to_owned(),
    })
}

/// Readiness
///
/// Checks that the control store and every datasource answer. 200 when all do, 503
/// otherwise, with one entry per check. Needs no token.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "health",
    responses(
        (status = 200, description = "Every dependency answers.", body = Readiness),
        (status = 503, description = "At least one dependency does not answer.", body = Readiness),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, axum::Json<Readiness>) {
    let checks: Vec<CheckOut> = state
        .gateway
        .readiness()
        .await
        .into_iter()
        .map(|c| CheckOut {
            name: c.name,
            ok: c.ok,
            error: c.error,
        })
        .collect();
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let readiness = Readiness {
        status: if ready { "ready" } else { "not_ready" }.to_owned(),
        checks,
    };
    (status, axum::Json(readiness))
}
