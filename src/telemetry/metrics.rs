//! The process-wide Prometheus registry and the functions that feed it.
//!
//! Every label value comes from a closed set: route templates (not paths), known methods,
//! error codes and effects, stage names, configured datasource and classification names.
//! Nothing a caller types becomes a label, so the number of series stays bounded however
//! the service is used.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::datasource::{PoolStats, PoolUsage};
use crate::policy::Effect;

/// The steps of the request pipeline, in order. Each has a tracing span named
/// [`span_name`](Stage::span_name) and a series in `gatehouse_stage_duration_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Identity,
    Intent,
    Policy,
    Approval,
    AuditWrite,
    Execute,
    Mask,
    AuditComplete,
}

impl Stage {
    pub const ALL: [Stage; 8] = [
        Stage::Identity,
        Stage::Intent,
        Stage::Policy,
        Stage::Approval,
        Stage::AuditWrite,
        Stage::Execute,
        Stage::Mask,
        Stage::AuditComplete,
    ];

    /// The `stage` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Stage::Identity => "identity",
            Stage::Intent => "intent",
            Stage::Policy => "policy",
            Stage::Approval => "approval",
            Stage::AuditWrite => "audit_write",
            Stage::Execute => "execute",
            Stage::Mask => "mask",
            Stage::AuditComplete => "audit_complete",
        }
    }

    /// The span name, `stage.<label>`. A `const fn`, so it can name a span in the tracing
    /// macros, whose names must be known at compile time.
    pub const fn span_name(self) -> &'static str {
        match self {
            Stage::Identity => "stage.identity",
            Stage::Intent => "stage.intent",
            Stage::Policy => "stage.policy",
            Stage::Approval => "stage.approval",
            Stage::AuditWrite => "stage.audit_write",
            Stage::Execute => "stage.execute",
            Stage::Mask => "stage.mask",
            Stage::AuditComplete => "stage.audit_complete",
        }
    }

    /// A new INFO span named [`span_name`](Stage::span_name), a child of the current one.
    /// INFO because the default trace filter is `info`: every stage of a traced request is
    /// exported.
    pub fn span(self) -> tracing::Span {
        // One macro call per stage: a span's metadata is static, per call site.
        match self {
            Stage::Identity => tracing::info_span!(Stage::Identity.span_name()),
            Stage::Intent => tracing::info_span!(Stage::Intent.span_name()),
            Stage::Policy => tracing::info_span!(Stage::Policy.span_name()),
            Stage::Approval => tracing::info_span!(Stage::Approval.span_name()),
            Stage::AuditWrite => tracing::info_span!(Stage::AuditWrite.span_name()),
            Stage::Execute => tracing::info_span!(Stage::Execute.span_name()),
            Stage::Mask => tracing::info_span!(Stage::Mask.span_name()),
            Stage::AuditComplete => tracing::info_span!(Stage::AuditComplete.span_name()),
        }
    }
}

/// How a request ended, in the terms of the API rather than HTTP: handlers and problem
/// responses insert it as a response extension, and the metrics middleware reads it for
/// the `code` and `effect` labels of `gatehouse_http_requests_total`. Without one, `code`
/// is `ok` for a 2xx response and `http_<status>` otherwise, and `effect` is `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestOutcome {
    /// `ok` or the problem code (`denied`, `unauthenticated`, …).
    pub code: &'static str,
    /// The policy decision's effect, when policy decided.
    pub effect: Option<&'static str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: &'static str,
    code: String,
    effect: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrpcLabels {
    method: &'static str,
    code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassificationLabels {
    classification: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EffectLabels {
    effect: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    datasource: String,
    pool: &'static str,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolMaxLabels {
    datasource: String,
    pool: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric Gatehouse exports. Recording is lock-free for a series that exists (a
/// read lock on its family and an atomic add), so it is cheap enough for every request.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<RouteLabels>,
    grpc_requests: Family<GrpcLabels, Counter>,
    stage_duration: HistogramFamily<StageLabels>,
    masked_values: Family<ClassificationLabels, Counter>,
    decisions: Family<EffectLabels, Counter>,
    pool_connections: Family<PoolLabels, Gauge>,
    pool_max: Family<PoolMaxLabels, Gauge>,
    audit_queue_depth: Gauge,
    audit_commit_duration: Histogram,
    audit_batch_size: Histogram,
}

/// The registry every part of the process records into, created on first use.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Whole requests: a millisecond for a cached read up to the 30 s statement timeouts.
fn request_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

/// Pipeline stages: parsing and policy take microseconds, execution up to the timeout.
fn stage_histogram() -> Histogram {
    Histogram::new([
        0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.0025, 0.005, 0.01,
        0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("gatehouse");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "REST requests by route template, method, outcome code and policy effect",
            http_requests.clone(),
        );
        let http_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(request_histogram);
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer a REST request, until the response head",
            Unit::Seconds,
            http_duration.clone(),
        );
        let grpc_requests = Family::<GrpcLabels, Counter>::default();
        registry.register(
            "grpc_requests",
            "gRPC requests by method and outcome code",
            grpc_requests.clone(),
        );
        let stage_duration: HistogramFamily<StageLabels> =
            Family::new_with_constructor(stage_histogram);
        registry.register_with_unit(
            "stage_duration",
            "Time spent in each pipeline stage",
            Unit::Seconds,
            stage_duration.clone(),
        );
        let masked_values = Family::<ClassificationLabels, Counter>::default();
        registry.register(
            "masked_values",
            "Result values masked, by classification",
            masked_values.clone(),
        );
        let decisions = Family::<EffectLabels, Counter>::default();
        registry.register("decisions", "Policy decisions by effect", decisions.clone());
        let pool_connections = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "pool_connections",
            "Open datasource connections by pool (read, write) and state (idle, in_use), read at scrape time",
            pool_connections.clone(),
        );
        let pool_max = Family::<PoolMaxLabels, Gauge>::default();
        registry.register(
            "pool_max_connections",
            "Most connections a datasource pool may open",
            pool_max.clone(),
        );
        let audit_queue_depth = Gauge::default();
        registry.register(
            "audit_queue_depth",
            "Audit events waiting for the audit writer",
            audit_queue_depth.clone(),
        );
        let audit_commit_duration = stage_histogram();
        registry.register_with_unit(
            "audit_commit_duration",
            "Time to commit one batch of audit events",
            Unit::Seconds,
            audit_commit_duration.clone(),
        );
        let audit_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        registry.register(
            "audit_batch_size",
            "Audit events committed together",
            audit_batch_size.clone(),
        );
        // Families without a series are left out of the exposition; creating the series
        // whose labels are known lets dashboards and alerts find them before first use.
        for stage in Stage::ALL {
            stage_duration.get_or_create_owned(&StageLabels {
                stage: stage.as_str(),
            });
        }
        for effect in [Effect::Allow, Effect::Deny, Effect::ApprovalRequired] {
            decisions.get_or_create_owned(&EffectLabels {
                effect: effect.as_str().to_owned(),
            });
        }
        Metrics {
            registry,
            http_requests,
            http_duration,
            grpc_requests,
            stage_duration,
            masked_values,
            decisions,
            pool_connections,
            pool_max,
            audit_queue_depth,
            audit_commit_duration,
            audit_batch_size,
        }
    }

    /// One REST request. `route` is the matched route template (or `unmatched`), never the
    /// request path; the metrics middleware is the caller.
    pub(crate) fn http_request(
        &self,
        route: &str,
        method: &'static str,
        code: &str,
        effect: &'static str,
        elapsed: Duration,
    ) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                method,
                code: code.to_owned(),
                effect,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// One gRPC call: `method` is the RPC name (`Query`), `code` its gRPC status name
    /// (`ok`, `permission_denied`, …; the gateway's own code is in the `gatehouse-code`
    /// metadata). Both are static strings, so no caller-supplied text becomes a label.
    pub fn grpc_request(&self, method: &'static str, code: &'static str) {
        self.grpc_requests
            .get_or_create(&GrpcLabels { method, code })
            .inc();
    }

    pub fn observe_stage(&self, stage: Stage, elapsed: Duration) {
        self.stage_duration
            .get_or_create(&StageLabels {
                stage: stage.as_str(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// `count` values of one classification were masked in a result.
    pub fn masked(&self, classification: &str, count: u64) {
        if count == 0 {
            return;
        }
        self.masked_values
            .get_or_create(&ClassificationLabels {
                classification: classification.to_owned(),
            })
            .inc_by(count);
    }

    /// One policy decision: `allow`, `deny` or `approval_required`.
    pub fn decision(&self, effect: &str) {
        self.decisions
            .get_or_create(&EffectLabels {
                effect: effect.to_owned(),
            })
            .inc();
    }

    /// Sets the connection gauges of one datasource; the `/metrics` handler calls it for
    /// every datasource just before encoding.
    pub fn pool(&self, datasource: &str, stats: &PoolStats) {
        for (pool, usage) in [("read", &stats.read), ("write", &stats.write)] {
            self.set_pool(datasource, pool, usage);
        }
    }

    fn set_pool(&self, datasource: &str, pool: &'static str, usage: &PoolUsage) {
        // Size and idle count are read one after the other from a live pool, so idle can
        // briefly exceed size.
        let in_use = usage.size.saturating_sub(usage.idle);
        for (state, value) in [("idle", usage.idle.min(usage.size)), ("in_use", in_use)] {
            self.pool_connections
                .get_or_create(&PoolLabels {
                    datasource: datasource.to_owned(),
                    pool,
                    state,
                })
                .set(i64::from(value));
        }
        self.pool_max
            .get_or_create(&PoolMaxLabels {
                datasource: datasource.to_owned(),
                pool,
            })
            .set(i64::from(usage.max));
    }

    /// Events queued for the audit writer right now.
    pub fn audit_queue_depth(&self, depth: usize) {
        self.audit_queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// One committed batch of audit events.
    pub fn audit_commit(&self, elapsed: Duration, batch: usize) {
        self.audit_commit_duration.observe(elapsed.as_secs_f64());
        // Exact up to 2^53 events, far beyond any batch.
        self.audit_batch_size.observe(batch as f64);
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_names_are_consistent() {
        for stage in Stage::ALL {
            assert_eq!(
                stage.span_name().strip_prefix("stage."),
                Some(stage.as_str())
            );
        }
    }

    /// A registry of its own: the process-wide one is shared with other tests.
    #[test]
    fn exposition_has_every_family_with_units_and_labels() {
        let metrics = Metrics::new();
        let fresh = metrics.encode().unwrap();
        for family in [
            "gatehouse_stage_duration_seconds histogram",
            "gatehouse_decisions counter",
            "gatehouse_audit_queue_depth gauge",
            "gatehouse_audit_commit_duration_seconds histogram",
            "gatehouse_audit_batch_size histogram",
        ] {
            assert!(
                fresh.contains(&format!("# TYPE {family}\n")),
                "{family}:\n{fresh}"
            );
        }
        assert!(fresh.contains(r#"gatehouse_stage_duration_seconds_count{stage="mask"} 0"#));
        assert!(fresh.contains(r#"gatehouse_decisions_total{effect="approval_required"} 0"#));
        assert!(fresh.ends_with("# EOF\n"));

        metrics.http_request(
            "/v1/query",
            "POST",
            "denied",
            "deny",
            Duration::from_millis(3),
        );
        metrics.grpc_request("Query", "ok");
        metrics.observe_stage(Stage::AuditWrite, Duration::from_micros(30));
        metrics.masked("pii", 3);
        metrics.masked("secret", 0);
        metrics.decision("allow");
        metrics.pool(
            "shop",
            &PoolStats {
                read: PoolUsage {
                    size: 3,
                    idle: 5,
                    max: 4,
                },
                write: PoolUsage {
                    size: 2,
                    idle: 1,
                    max: 4,
                },
            },
        );
        metrics.audit_queue_depth(7);
        metrics.audit_commit(Duration::from_millis(2), 5);
        let text = metrics.encode().unwrap();
        for family in [
            "gatehouse_http_requests counter",
            "gatehouse_http_request_duration_seconds histogram",
            "gatehouse_grpc_requests counter",
            "gatehouse_masked_values counter",
            "gatehouse_pool_connections gauge",
            "gatehouse_pool_max_connections gauge",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family}\n")),
                "{family}:\n{text}"
            );
        }
        for line in [
            r#"gatehouse_http_requests_total{route="/v1/query",method="POST",code="denied",effect="deny"} 1"#,
            r#"gatehouse_http_request_duration_seconds_bucket{le="0.005",route="/v1/query"} 1"#,
            r#"gatehouse_grpc_requests_total{method="Query",code="ok"} 1"#,
            r#"gatehouse_stage_duration_seconds_count{stage="audit_write"} 1"#,
            r#"gatehouse_masked_values_total{classification="pii"} 3"#,
            r#"gatehouse_decisions_total{effect="allow"} 1"#,
            r#"gatehouse_pool_connections{datasource="shop",pool="read",state="idle"} 3"#,
            r#"gatehouse_pool_connections{datasource="shop",pool="read",state="in_use"} 0"#,
            r#"gatehouse_pool_connections{datasource="shop",pool="write",state="in_use"} 1"#,
            r#"gatehouse_pool_max_connections{datasource="shop",pool="write"} 4"#,
            "gatehouse_audit_queue_depth 7",
            r#"gatehouse_audit_batch_size_bucket{le="8.0"} 1"#,
            "gatehouse_audit_commit_duration_seconds_count 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}:\n{text}");
        }
        assert!(!text.contains("secret"), "no series for nothing masked");
    }

    #[test]
    fn stage_spans_carry_their_names() {
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            for stage in Stage::ALL {
                let span = stage.span();
                let name = span.metadata().map(|m| m.name());
                assert_eq!(name, Some(stage.span_name()));
            }
        });
    }
}
