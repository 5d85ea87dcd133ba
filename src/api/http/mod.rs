//! The REST API: one router registers every route (and its OpenAPI operation), one error
//! module maps failures to problem responses, and one extractor authenticates callers.
//!
//! - [`query`]: `POST /v1/query`
//! - [`explain`]: `POST /v1/explain`
//! - [`admin`]: `POST /v1/admin/reload`
//! - [`approvals`]: `GET /v1/approvals`, `GET /v1/approvals/{id}`, `POST …/approve`,
//!   `POST …/reject`, `GET /v1/approvals/events` (SSE)
//! - [`audit`]: `GET /v1/audit/events`, `GET /v1/audit/verify`
//! - [`datasources`]: `GET /v1/datasources`, `GET /v1/datasources/{name}/schema`
//! - [`health`]: `GET /healthz`, `GET /readyz`
//! - `GET /openapi.json` and `GET /docs` (Scalar) describe all of the above.
//! - [`metrics`]: `GET /metrics` for Prometheus, outside the OpenAPI document, and the
//!   middleware that counts and times every request.

pub mod admin;
pub mod approvals;
pub mod audit;
pub mod datasources;
pub mod error;
pub mod explain;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod query;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_scalar::{Scalar, Servable};

use crate::gateway::Gateway;
use crate::telemetry;
use error::Problem;

/// The span every HTTP request runs in: the route's path (never the query string, which
/// can hold filter values), continuing the caller's trace when it sent a `traceparent`.
fn request_span(request: &axum::extract::Request) -> tracing::Span {
    let span = tracing::info_span!(
        "http.request",
        method = %request.method(),
        path = %request.uri().path(),
    );
    let traceparent = request
        .headers()
        .get("traceparent")
        .and_then(|value| value.to_str().ok());
    telemetry::continue_trace(&span, traceparent);
    span
}

/// Shared state of every handler: the pipeline, nothing else.
#[derive(Clone)]
pub struct AppState {
    pub gateway: Arc<Gateway>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gatehouse",
        description = "Identity-aware data access for AI agents, services and people. Send one SQL statement with a bearer JWT; Gatehouse parses what it intends, refuses what the caller may not do, runs it on a guarded pooled connection and returns a typed result.\n\nHow to use it as a tool: (1) `listDatasources` to find a datasource, its environment and its SQL dialect, (2) `getSchema` to see its tables and columns, (3) optionally `explain` to learn whether policy lets you run a statement, (4) `query` with one statement and positional `params`. Every error is an RFC 9457 problem (`application/problem+json`) whose `code` member says what went wrong and `detail` how to fix it.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "query", description = "Run SQL statements."),
        (name = "datasources", description = "Discover datasources and their schemas."),
        (name = "health", description = "Liveness and readiness probes; no token needed."),
        (name = "admin", description = "Operations for group `admin`."),
        (name = "approvals", description = "Approval requests for high-risk statements: list, wait for, approve, reject, watch."),
        (name = "audit", description = "The tamper-evident audit trail, for group `auditor`: SIEM pull and chain verification.")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT from the configured issuer. For the embedded default, mint one with `gatehouse token --sub NAME --kind agent`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every documented route with its OpenAPI operation.
fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(query::query))
        .routes(routes!(explain::explain))
        .routes(routes!(admin::reload))
        .routes(routes!(approvals::list))
        .routes(routes!(approvals::events))
        .routes(routes!(approvals::get))
        .routes(routes!(approvals::approve))
        .routes(routes!(approvals::reject))
        .routes(routes!(audit::events))
        .routes(routes!(audit::verify))
        .routes(routes!(datasources::list))
        .routes(routes!(datasources::schema))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
}

/// The OpenAPI document, as served at `/openapi.json` and printed by `gatehouse openapi`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().into_openapi()
}

/// The full REST application.
pub fn router(gateway: Arc<Gateway>, max_body_bytes: usize) -> Router {
    let (api, openapi) = api_router().split_for_parts();
    let openapi_json = serde_json::to_string_pretty(&openapi).unwrap_or_default();
    api.route(
        "/openapi.json",
        get(move || {
            let body = openapi_json.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        }),
    )
    .route("/metrics", get(metrics::scrape))
    .merge(Scalar::with_url("/docs", openapi))
    .fallback(|| async {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such route; GET /openapi.json lists the API",
        )
    })
    .method_not_allowed_fallback(|| async {
        Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not accept that method; GET /openapi.json lists the API",
        )
    })
    // Enforced by the body extractor, so an oversized body becomes a problem response.
    .layer(DefaultBodyLimit::max(max_body_bytes))
    .layer(TraceLayer::new_for_http().make_span_with(request_span))
    .layer(axum::middleware::from_fn(metrics::track))
    .with_state(AppState { gateway })
}
