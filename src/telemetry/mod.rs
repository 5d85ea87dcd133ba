//! Logs, traces and metrics.
//!
//! **Logs** are a readable message plus fields; they never contain tokens, SQL parameters,
//! literals or result data. `GATEHOUSE_LOG` (or `RUST_LOG`) sets their filter, default
//! `info`; `GATEHOUSE_LOG_FORMAT=json` switches to one JSON object per line. They go to
//! stderr. `sqlparser`, which logs every token of a statement at debug level, stays at
//! `warn` unless the filter names it.
//!
//! **Traces** go out over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, through a batch exporter, unless
//! `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. The other standard variables
//! apply as the OpenTelemetry SDK reads them (`OTEL_SERVICE_NAME`, here defaulting to
//! `gatehouse`; `OTEL_RESOURCE_ATTRIBUTES`; `OTEL_TRACES_SAMPLER`;
//! `OTEL_EXPORTER_OTLP_HEADERS`, `…_TIMEOUT`, `…_COMPRESSION`). The endpoint is plain
//! `http://`: the exporter is built without TLS, so a collector across an untrusted network
//! sits behind a local agent. `GATEHOUSE_TRACE` filters the exported spans, default `info`,
//! apart from the log filter: quiet logs need not mean missing traces. Spans carry the
//! same fields as log lines, and the events inside them go along, so the rule about tokens
//! and data holds for them too. With no endpoint set, no exporter or tracing layer exists,
//! so tracing costs what it cost before.
//!
//! **Metrics** live in one process-wide registry, [`metrics()`], served as text at
//! `GET /metrics` (`api::http::metrics`). The pipeline names its stages with [`Stage`], for
//! both the span and the duration histogram.

mod metrics;

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

pub use metrics::{Metrics, RequestOutcome, Stage, metrics};

/// Makes `span` continue the caller's trace when its request carried a W3C `traceparent`,
/// so a query's spans appear under the agent's or service's own trace. Call it before the
/// span is first entered. Does nothing without a valid header, when traces are not
/// exported, or when the span is filtered out. The caller's sampled flag is honoured, as
/// W3C trace context intends; the audit trail records every request either way.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(value) = traceparent else {
        return;
    };
    if span.is_disabled() {
        return;
    }
    let carrier = HashMap::from([("traceparent".to_owned(), value.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    if !parent.span().span_context().is_valid() {
        return;
    }
    // Fails only when there is no OpenTelemetry layer (no endpoint) or the span already
    // started: either way the span stays a root of its own, which is what it was.
    let _ = span.set_parent(parent);
}

/// Service name reported with every span unless `OTEL_SERVICE_NAME` or
/// `OTEL_RESOURCE_ATTRIBUTES` names another.
const SERVICE_NAME: &str = "gatehouse";

/// How long stopping waits for the last spans to reach the collector. A collector that is
/// down must not hold up a rolling restart for long; its spans are lost either way.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Crates whose own spans and events would describe the exporter's traffic, not a
/// request: exporting them would feed the exporter its own telemetry.
const TRANSPORT_TARGETS: [&str; 3] = ["h2", "hyper", "tonic"];

/// Crates whose debug output holds statement text, literals included: `sqlparser` logs
/// every token it reads. `GATEHOUSE_LOG=debug` means Gatehouse's debug output, not that;
/// naming the crate in the filter still turns it on.
const QUIET_UNLESS_NAMED: [&str; 1] = ["sqlparser"];

/// Why trace export could not be set up. Start-up stops rather than run with traces
/// silently going nowhere.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(
        "{variable} is `{value}`, but Gatehouse exports traces over OTLP/gRPC only; unset it or set it to `grpc` (the collector's port is usually 4317)"
    )]
    UnsupportedProtocol {
        variable: &'static str,
        value: String,
    },
    #[error("trace export must be set up inside the async runtime")]
    NoRuntime,
    #[error("cannot set up the OTLP trace exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// Keeps trace export alive. [`Telemetry::shutdown`] exports the spans still buffered;
/// `gatehouse serve` calls it after the servers have stopped.
#[must_use = "spans still buffered are lost unless `shutdown` is called when the service stops"]
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are being exported.
    pub fn exports_traces(&self) -> bool {
        self.tracer_provider.is_some()
    }

    /// Exports buffered spans and stops the exporter, waiting at most a few seconds. Blocks:
    /// call it outside async code, while the runtime that [`init`] ran in is still alive
    /// (the exporter's connection runs on it).
    pub fn shutdown(self) {
        let Some(provider) = self.tracer_provider else {
            return;
        };
        if let Err(error) = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::warn!(%error, "not every span could be exported before stopping");
        }
    }
}

/// Installs logging, and trace export when an OTLP endpoint is configured. Call it once,
/// inside a Tokio runtime (the exporter's gRPC connection is driven by it). A second call
/// in the same process (tests) keeps the first subscriber and exports nothing.
pub fn init() -> Result<Telemetry, TelemetryError> {
    let tracer_provider = if otlp_configured() {
        Some(tracer_provider()?)
    } else {
        None
    };
    let json = std::env::var("GATEHOUSE_LOG_FORMAT").is_ok_and(|f| f == "json");
    let log_filter = || {
        filter(
            std::env::var("GATEHOUSE_LOG")
                .or_else(|_| std::env::var("RUST_LOG"))
                .ok(),
        )
    };
    // Two optional layers instead of one boxed one: each keeps its concrete type, and the
    // one not chosen costs nothing.
    let json_logs = json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(log_filter())
    });
    let text_logs = (!json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(log_filter())
    });
    let traces = tracer_provider.as_ref().map(|provider| {
        let mut trace_filter = filter(std::env::var("GATEHOUSE_TRACE").ok());
        for target in TRANSPORT_TARGETS {
            if let Ok(directive) = format!("{target}=off").parse() {
                trace_filter = trace_filter.add_directive(directive);
            }
        }
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(SERVICE_NAME))
            .with_filter(trace_filter)
    });
    let installed = tracing_subscriber::registry()
        .with(traces)
        .with(json_logs)
        .with(text_logs)
        .try_init()
        .is_ok();
    if !installed && let Some(provider) = tracer_provider {
        // Another subscriber was already installed, so no span would reach this exporter.
        let _ = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
        return Ok(Telemetry {
            tracer_provider: None,
        });
    }
    Ok(Telemetry { tracer_provider })
}

/// An `EnvFilter` from a directive string, `info` when it is missing or invalid: a typo in
/// the filter must not turn logging off. Crates in [`QUIET_UNLESS_NAMED`] stay at `warn`
/// unless the directives name them.
fn filter(directives: Option<String>) -> EnvFilter {
    let (mut filter, text) =
        match directives.and_then(|text| Some((EnvFilter::try_new(&text).ok()?, text))) {
            Some(parsed) => parsed,
            None => (EnvFilter::new("info"), String::new()),
        };
    for target in QUIET_UNLESS_NAMED {
        if !text.contains(target)
            && let Ok(directive) = format!("{target}=warn").parse()
        {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Whether an OTLP endpoint is set (the general one or the traces one), and export is not
/// switched off the standard ways (`OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none`).
fn otlp_configured() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|value| !value.trim().is_empty());
    let is = |name: &str, wanted: &str| {
        std::env::var(name).is_ok_and(|value| value.trim().eq_ignore_ascii_case(wanted))
    };
    let disabled = is("OTEL_SDK_DISABLED", "true") || is("OTEL_TRACES_EXPORTER", "none");
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

fn tracer_provider() -> Result<SdkTracerProvider, TelemetryError> {
    for variable in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Ok(value) = std::env::var(variable)
            && !value.trim().is_empty()
            && value.trim() != "grpc"
        {
            return Err(TelemetryError::UnsupportedProtocol { variable, value });
        }
    }
    // The exporter opens its gRPC channel lazily, but creating it spawns a task.
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(TelemetryError::NoRuntime);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
        .build())
}

/// The SDK's resource from the environment, named `gatehouse` unless the environment
/// names the service.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    if named {
        detected
    } else {
        Resource::builder().with_service_name(SERVICE_NAME).build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_filters_fall_back_to_info() {
        assert_eq!(filter(None).to_string(), "sqlparser=warn,info");
        assert_eq!(
            filter(Some("[".to_owned())).to_string(),
            "sqlparser=warn,info"
        );
        assert_eq!(
            filter(Some("debug".to_owned())).to_string(),
            "sqlparser=warn,debug"
        );
    }

    #[test]
    fn statement_tokens_are_logged_only_when_asked_for() {
        assert_eq!(
            filter(Some("debug,sqlparser=trace".to_owned())).to_string(),
            "sqlparser=trace,debug"
        );
    }
}
