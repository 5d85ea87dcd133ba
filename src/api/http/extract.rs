//! Extractors: input is parsed and checked at the edge, before any handler logic, and
//! every rejection is a problem response.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::Problem;
use crate::gateway::{self, RequestContext};

/// What the audit trail records about the request besides the token.
fn context(parts: &Parts) -> RequestContext {
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0);
    RequestContext::from_headers(peer, |name| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
    })
}

/// The verified caller with its request context. A handler that takes a `Caller` cannot
/// run unauthenticated.
pub struct Caller(pub gateway::Caller);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let header = match parts.headers.get(AUTHORIZATION) {
            Some(value) => Some(value.to_str().map_err(|_| {
                Problem::from(gateway::GatewayError::InvalidRequest(
                    "the authorization header is not valid ASCII".to_owned(),
                ))
            })?),
            None => None,
        };
        let caller = state.gateway.authenticate(header, context(parts)).await?;
        Ok(Caller(caller))
    }
}

/// A JSON body whose rejections are problems (`invalid_request`) naming what was wrong.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

fn json_problem(rejection: JsonRejection) -> Problem {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            Problem::invalid_request("send the body as JSON with `content-type: application/json`")
        }
        JsonRejection::JsonSyntaxError(e) => {
            Problem::invalid_request(format!("the body is not valid JSON: {}", e.body_text()))
        }
        JsonRejection::JsonDataError(e) => Problem::invalid_request(format!(
            "the body does not match the schema: {}",
            e.body_text()
        )),
        JsonRejection::BytesRejection(e) => {
            let status = e.status();
            if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(status, "payload_too_large", "the request body is too large")
            } else {
                Problem::invalid_request(format!("cannot read the body: {}", e.body_text()))
            }
        }
        other => Problem::invalid_request(other.body_text()),
    }
}
