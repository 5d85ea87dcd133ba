//! `GET /metrics` (OpenMetrics text, no token: scrapers do not hold user tokens, and the
//! exposition holds counts, not data) and the middleware that counts and times every REST
//! request.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::telemetry::{RequestOutcome, metrics};

/// The exposition format `prometheus-client` writes, which Prometheus asks for first.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Records every request in `gatehouse_http_requests_total` and
/// `gatehouse_http_request_duration_seconds`. The route label is the matched template
/// (`/v1/datasources/{name}/schema`), `unmatched` when no route matched, so a client
/// probing random paths adds no series.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let outcome = response.extensions().get::<RequestOutcome>().copied();
    let status = response.status();
    let code = match outcome {
        Some(outcome) => outcome.code.to_owned(),
        None if status.is_success() => "ok".to_owned(),
        None => format!("http_{}", status.as_u16()),
    };
    let effect = outcome.and_then(|o| o.effect).unwrap_or("none");
    metrics().http_request(
        route.as_deref().unwrap_or("unmatched"),
        method,
        &code,
        effect,
        elapsed,
    );
    response
}

/// Methods outside the standard set are one label value, not one each.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The metrics exposition. Pool gauges are read from the pools here, at scrape time, so
/// they are as fresh as the scrape and cost nothing between scrapes.
pub async fn scrape(State(state): State<AppState>) -> Response {
    let metrics = metrics();
    for (datasource, stats) in state.gateway.pool_stats() {
        metrics.pool(&datasource, &stats);
    }
    match metrics.encode() {
        Ok(text) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS))],
            text,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot encode the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt as _;

    /// Sum of the `gatehouse_http_requests_total` samples whose labels include `labels`.
    fn requests(labels: &str) -> f64 {
        let text = metrics().encode().unwrap();
        text.lines()
            .filter(|line| line.starts_with("gatehouse_http_requests_total{"))
            .filter(|line| line.contains(labels))
            .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }

    async fn call(router: &Router, method: Method, path: &str) -> StatusCode {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        router.clone().oneshot(request).await.unwrap().status()
    }

    /// Route templates unique to this test keep it apart from others sharing the registry.
    #[tokio::test]
    async fn labels_come_from_the_route_template_and_the_outcome() {
        let router = Router::new()
            .route(
                "/test-track/refused/{id}",
                get(|| async {
                    let mut response = StatusCode::FORBIDDEN.into_response();
                    response.extensions_mut().insert(RequestOutcome {
                        code: "denied",
                        effect: Some("deny"),
                    });
                    response
                }),
            )
            .route("/test-track/plain", get(|| async { "fine" }))
            .route(
                "/test-track/teapot",
                get(|| async { StatusCode::IM_A_TEAPOT }),
            )
            .layer(axum::middleware::from_fn(track));

        let unmatched = r#"route="unmatched",method="other",code="http_404",effect="none""#;
        let unmatched_before = requests(unmatched);

        for id in ["1", "2", "3"] {
            let status = call(&router, Method::GET, &format!("/test-track/refused/{id}")).await;
            assert_eq!(status, StatusCode::FORBIDDEN);
        }
        call(&router, Method::GET, "/test-track/plain").await;
        call(&router, Method::GET, "/test-track/teapot").await;
        let odd = Method::from_bytes(b"PROBE").unwrap();
        call(&router, odd, "/no-such-path/12345").await;

        assert_eq!(
            requests(
                r#"route="/test-track/refused/{id}",method="GET",code="denied",effect="deny""#
            ),
            3.0
        );
        assert_eq!(
            requests(r#"route="/test-track/plain",method="GET",code="ok",effect="none""#),
            1.0
        );
        assert_eq!(
            requests(r#"route="/test-track/teapot",method="GET",code="http_418""#),
            1.0
        );
        assert!(requests(unmatched) >= unmatched_before + 1.0);
        let text = metrics().encode().unwrap();
        assert!(!text.contains("/no-such-path"), "paths never become labels");
        assert!(!text.contains("PROBE"), "unknown methods share one label");
        assert!(text.contains(
            r#"gatehouse_http_request_duration_seconds_count{route="/test-track/refused/{id}"} 3"#
        ));
    }
}
