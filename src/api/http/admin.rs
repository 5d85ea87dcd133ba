//! `POST /v1/admin/reload`: re-read the policy files (group `admin` only).

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::Problem;
use super::extract::Caller;

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"policies": 14}))]
pub struct ReloadResponse {
    /// Number of policies now in force.
    pub policies: usize,
}

/// Reload policies
///
/// Re-reads and validates the configured policy files (or the built-in set). If any
/// policy fails validation, the previous policies stay in force and the problem names the
/// file, line and Cedar's message. Only members of group `admin` may call this; sending
/// SIGHUP to the process does the same.
#[utoipa::path(
    post,
    path = "/v1/admin/reload",
    operation_id = "reloadPolicies",
    tag = "admin",
    responses(
        (status = 200, description = "The new policies are in force.", body = ReloadResponse),
        (status = 401, description = "`unauthenticated`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller is not in group `admin`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_policy`: the files did not validate; the previous policies stay in force.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn reload(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<axum::Json<ReloadResponse>, Problem> {
    let policies = state.gateway.reload_policies(&caller).await?;
    Ok(axum::Json(ReloadResponse { policies }))
}
