//! Counts every gRPC call by method and status for `gatehouse_grpc_requests_total`.
//!
//! A tower layer around the tonic server: it sees the request path and the response
//! headers, where tonic puts `grpc-status` for every refusal (a trailers-only response).
//! A call without it in the headers succeeded as far as the handler goes (its status
//! travels in the trailers). Labels are static strings: the method from a fixed list of
//! this service's RPCs (checked against the proto descriptors by a test), `unknown`
//! otherwise, and the status as its gRPC name.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use crate::telemetry::metrics;

/// Every RPC this server implements, as `/<package>.<Service>/<Method>`.
const METHODS: &[&str] = &[
    "/gatehouse.v1.Gatehouse/Query",
    "/gatehouse.v1.Gatehouse/Explain",
    "/gatehouse.v1.Gatehouse/ReloadPolicies",
    "/gatehouse.v1.Gatehouse/ListDatasources",
    "/gatehouse.v1.Gatehouse/GetSchema",
    "/gatehouse.v1.Audit/ListEvents",
    "/gatehouse.v1.Audit/Follow",
    "/gatehouse.v1.Audit/Verify",
    "/gatehouse.v1.Approvals/List",
    "/gatehouse.v1.Approvals/Get",
    "/gatehouse.v1.Approvals/Approve",
    "/gatehouse.v1.Approvals/Reject",
    "/gatehouse.v1.Approvals/Watch",
];

/// gRPC status names by code number.
const STATUS_NAMES: [&str; 17] = [
    "ok",
    "cancelled",
    "unknown",
    "invalid_argument",
    "deadline_exceeded",
    "not_found",
    "already_exists",
    "permission_denied",
    "resource_exhausted",
    "failed_precondition",
    "aborted",
    "out_of_range",
    "unimplemented",
    "internal",
    "unavailable",
    "data_loss",
    "unauthenticated",
];

fn method(path: &str) -> &'static str {
    METHODS
        .iter()
        .find(|known| **known == path)
        .map_or("unknown", |known| known.rsplit('/').next().unwrap_or(known))
}

fn status<B>(response: &axum::http::Response<B>) -> &'static str {
    match response.headers().get("grpc-status") {
        None => "ok",
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.parse::<usize>().ok())
            .and_then(|code| STATUS_NAMES.get(code).copied())
            .unwrap_or("unknown"),
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<axum::http::Request<ReqBody>> for GrpcMetrics<S>
where
    S: Service<axum::http::Request<ReqBody>, Response = axum::http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<ReqBody>) -> Self::Future {
        let method = method(request.uri().path());
        let call = self.inner.call(request);
        Box::pin(async move {
            let response = call.await?;
            metrics().grpc_request(method, status(&response));
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn every_rpc_of_the_proto_has_a_label() {
        let set = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET)
            .expect("descriptor set");
        let mut declared = Vec::new();
        for file in &set.file {
            for service in &file.service {
                for rpc in &service.method {
                    declared.push(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        rpc.name()
                    ));
                }
            }
        }
        declared.sort();
        let mut known: Vec<String> = METHODS.iter().map(|m| (*m).to_owned()).collect();
        known.sort();
        assert_eq!(declared, known);
        assert_eq!(method("/gatehouse.v1.Audit/Follow"), "Follow");
        assert_eq!(method("/evil/<script>"), "unknown");
    }

    #[test]
    fn statuses_are_named_by_code() {
        let response = |status: Option<&str>| {
            let mut builder = axum::http::Response::builder();
            if let Some(status) = status {
                builder = builder.header("grpc-status", status);
            }
            builder.body(()).expect("response")
        };
        assert_eq!(status(&response(None)), "ok");
        assert_eq!(status(&response(Some("7"))), "permission_denied");
        assert_eq!(status(&response(Some("16"))), "unauthenticated");
        assert_eq!(status(&response(Some("99"))), "unknown");
    }
}
