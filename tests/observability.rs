//! Observability as an operator meets it: Prometheus metrics at `/metrics`, spans exported
//! over OTLP by the real binary (flushed when it is stopped with SIGTERM), and JSON logs
//! that never hold a token, a parameter or a result value.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestServer;
use fake_opentelemetry_collector::FakeCollectorServer;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// One sample of the text exposition: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the samples of an OpenMetrics/Prometheus text exposition (comments skipped).
/// Label values here never hold `"`, `,` or `}` except escaped quotes, which it undoes.
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let value: f64 = value.parse().expect("numeric sample value");
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), BTreeMap::new()),
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("closing brace");
                    (name.to_owned(), labels(body))
                }
            };
            Sample {
                name,
                labels,
                value,
            }
        })
        .collect()
}

fn labels(mut body: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    while !body.is_empty() {
        let (key, rest) = body.split_once("=\"").expect("key=\"value\"");
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().expect("closing quote") {
                (_, '\\') => match chars.next().expect("escaped char") {
                    (_, 'n') => value.push('\n'),
                    (_, other) => value.push(other),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.to_owned(), value);
        body = rest[end + 1..].trim_start_matches(',');
    }
    labels
}

/// Sum of the samples named `name` whose labels include every pair in `want`; a pair
/// whose value is a list matches any of the listed values.
fn sum(samples: &[Sample], name: &str, want: &[(&str, &[&str])]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter().all(|(key, values)| {
                s.labels
                    .get(*key)
                    .is_some_and(|v| values.contains(&v.as_str()))
            })
        })
        .map(|s| s.value)
        .sum()
}

async fn scrape(server: &TestServer) -> (String, Vec<Sample>) {
    let reply = server.get("/metrics", None).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .content_type
            .starts_with("application/openmetrics-text")
            || reply.content_type.starts_with("text/plain"),
        "{}",
        reply.content_type
    );
    let text = reply.body.as_str().expect("text exposition").to_owned();
    let parsed = samples(&text);
    (text, parsed)
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_outcome_and_show_the_pools() {
    let server = TestServer::demo().await;
    // Tests in this binary share the process-wide registry: compare before and after.
    let (_, before) = scrape(&server).await;

    let ok = server
        .query(
            "shop",
            "SELECT id, status FROM orders ORDER BY id LIMIT 2",
            json!([]),
        )
        .await;
    ok.ok();
    let anonymous = server
        .post(
            "/v1/query",
            None,
            &json!({"datasource": "shop", "sql": "SELECT 1"}),
        )
        .await;
    anonymous.problem(401, "unauthenticated");

    let (text, after) = scrape(&server).await;
    // A family shows once it has a series: the ones below have theirs by now (stages and
    // effects from the start). `grpc_requests` and `masked_values` appear with the first
    // gRPC call and the first masked value.
    for family in [
        "gatehouse_http_requests counter",
        "gatehouse_http_request_duration_seconds histogram",
        "gatehouse_stage_duration_seconds histogram",
        "gatehouse_decisions counter",
        "gatehouse_pool_connections gauge",
        "gatehouse_pool_max_connections gauge",
        "gatehouse_audit_queue_depth gauge",
        "gatehouse_audit_commit_duration_seconds histogram",
        "gatehouse_audit_batch_size histogram",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family}\n")),
            "{family} missing:\n{text}"
        );
    }

    let requests = "gatehouse_http_requests_total";
    let query = [("route", &["/v1/query"][..]), ("method", &["POST"][..])];
    let succeeded = [query[0], query[1], ("code", &["ok"][..])];
    // Handlers name the outcome (`unauthenticated`); a response that does not falls back
    // to its status.
    let refused = [
        query[0],
        query[1],
        ("code", &["unauthenticated", "http_401"][..]),
    ];
    assert!(
        sum(&after, requests, &succeeded) >= sum(&before, requests, &succeeded) + 1.0,
        "{text}"
    );
    assert!(
        sum(&after, requests, &refused) >= sum(&before, requests, &refused) + 1.0,
        "{text}"
    );
    let timed = "gatehouse_http_request_duration_seconds_count";
    let route = [query[0]];
    assert!(sum(&after, timed, &route) >= sum(&before, timed, &route) + 2.0);
    // The scrape before this one was counted under its route template too.
    assert!(sum(&after, requests, &[("route", &["/metrics"][..])]) >= 1.0);

    // The read pool served the query and keeps its connection; the gauges are read from
    // the pools at scrape time.
    let pool = "gatehouse_pool_connections";
    let shop_read = [("datasource", &["shop"][..]), ("pool", &["read"][..])];
    assert!(sum(&after, pool, &shop_read) >= 1.0, "{text}");
    for state in ["idle", "in_use"] {
        for pool_name in ["read", "write"] {
            let series = [
                ("datasource", &["shop_prod"][..]),
                ("pool", &[pool_name][..]),
                ("state", &[state][..]),
            ];
            assert!(
                after.iter().any(|s| s.name == pool
                    && series
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).is_some_and(|x| v.contains(&x.as_str())))),
                "{pool_name}/{state} of shop_prod:\n{text}"
            );
        }
    }
    assert!(
        sum(
            &after,
            "gatehouse_pool_max_connections",
            &[("datasource", &["shop"][..]), ("pool", &["write"][..])]
        ) >= 1.0
    );
    // Bounded labels: a path no route matches is not a label value.
    server.get("/no/such/route/8e1f", None).await;
    let (text, _) = scrape(&server).await;
    assert!(!text.contains("8e1f"));
    assert!(text.contains(r#"route="unmatched""#));
}

/// A `gatehouse serve` process, killed if the test ends before it stopped.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary and returns it with its REST base URL, read from the welcome text.
/// Starts the binary; returns it with its REST base URL and gRPC address.
fn serve(data_dir: &Path, stderr: File, env: &[(&str, &str)]) -> (Served, String, String) {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--data-dir"])
        .arg(data_dir)
        .args(["--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(stderr);
    for variable in [
        "GATEHOUSE_CONFIG",
        "GATEHOUSE_LOG",
        "RUST_LOG",
        "GATEHOUSE_TRACE",
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_TRACES_SAMPLER",
    ] {
        command.env_remove(variable);
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().expect("serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let served = Served(child);
    // Read stdout to its end on a thread of its own: a closed pipe would fail the
    // server's next `println!`.
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            for prefix in ["REST  ", "gRPC  "] {
                if let Some(rest) = line.trim().strip_prefix(prefix)
                    && let Some(address) = rest.split_whitespace().next()
                {
                    let _ = address_tx.send((prefix, address.to_owned()));
                }
            }
        }
    });
    let (mut http, mut grpc) = (None, None);
    while http.is_none() || grpc.is_none() {
        let (prefix, address) = address_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the REST and gRPC addresses are printed");
        if prefix == "REST  " {
            http = Some(address);
        } else {
            grpc = Some(address);
        }
    }
    (served, http.unwrap(), grpc.unwrap())
}

fn token(data_dir: &Path) -> String {
    let out = Command::new(BIN)
        .args(["token", "--sub", "ada", "--kind", "human", "--data-dir"])
        .arg(data_dir)
        .env_remove("GATEHOUSE_CONFIG")
        .output()
        .expect("gatehouse token runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// SIGTERM, as a container runtime sends it, then wait for a clean exit.
fn terminate(mut served: Served) {
    let pid = served.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = served.0.try_wait().unwrap() {
            assert!(status.success(), "gatehouse exited with {status}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "gatehouse did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every string in the rows of a query response.
fn result_strings(body: &Value) -> Vec<String> {
    body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .flat_map(|row| row.as_array().expect("row").iter())
        .filter_map(|value| value.as_str().map(str::to_owned))
        .collect()
}

// The collector is served by this test's runtime while the test thread blocks on the
// child process, so the runtime needs a second worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exports_spans_over_otlp_and_flushes_them_on_sigterm_and_logs_no_secrets() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut collector = FakeCollectorServer::start()
        .await
        .expect("collector starts");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let log_path = dir.path().join("stderr.log");
    let endpoint = collector.endpoint();
    let (served, http, grpc) = serve(
        &data_dir,
        File::create(&log_path).unwrap(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("GATEHOUSE_LOG_FORMAT", "json"),
            // As verbose as an operator chasing a problem would set it.
            ("GATEHOUSE_LOG", "debug"),
        ],
    );
    let token = token(&data_dir);
    let client = reqwest::Client::new();
    let sentinel = "param-sentinel-6c0d1f";
    // A literal in the statement text is as private as a parameter.
    let literal = "literal-sentinel-93b7";
    let body = json!({
        "datasource": "shop",
        "sql": format!("SELECT full_name, email, created_at FROM customers WHERE created_at <> ? AND created_at <> '{literal}' ORDER BY id LIMIT 3"),
        "params": [sentinel],
    });
    // The caller's own trace, which the request's spans continue.
    let (caller_trace, caller_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let mut answer = None;
    let mut last_error = String::new();
    for _ in 0..300 {
        match client
            .post(format!("{http}/v1/query"))
            .bearer_auth(&token)
            .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
            .json(&body)
            .send()
            .await
        {
            Ok(response) => {
                let status = response.status();
                let reply = response.json::<Value>().await.unwrap();
                assert_eq!(status, 200, "{reply}");
                answer = Some(reply);
                break;
            }
            Err(error) => {
                last_error = error.to_string();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let answer = answer.unwrap_or_else(|| panic!("the server does not answer: {last_error}"));
    let values = result_strings(&answer);
    assert!(!values.is_empty(), "{answer}");
    let request_id = answer["request_id"]
        .as_str()
        .expect("request id")
        .to_owned();
    let forged = format!("{token}x");
    let refused = client
        .post(format!("{http}/v1/query"))
        .bearer_auth(&forged)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    // Over gRPC there is no HTTP span: the query's own span continues the caller's trace.
    let grpc_trace = "0af7651916cd43dd8448eb211c80319c";
    let mut request = common::authed(
        gatehouse::proto::QueryRequest {
            datasource: "shop".into(),
            sql: "SELECT count(*) FROM orders".into(),
            params: vec![],
            max_rows: None,
            approval_id: String::new(),
        },
        &token,
    );
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{grpc_trace}-{caller_span}-01").parse().unwrap(),
    );
    gatehouse::proto::gatehouse_client::GatehouseClient::connect(format!("http://{grpc}"))
        .await
        .expect("gRPC connects")
        .query(request)
        .await
        .expect("the gRPC query runs");

    // The batch exporter holds spans for seconds; stopping must send them anyway.
    tokio::task::block_in_place(|| terminate(served));
    let spans = collector.exported_spans(1, Duration::from_secs(10)).await;
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let query_span = spans
        .iter()
        .find(|s| s.name == "gateway.query" && s.trace_id == caller_trace)
        .unwrap_or_else(|| panic!("no gateway.query span in the caller's trace among {names:?}"));
    // The collector renders attribute values with their protobuf wrapper.
    let datasource = query_span.attributes.get("datasource");
    assert!(
        datasource.is_some_and(|value| value.contains("\"shop\"")),
        "{datasource:?}"
    );
    // The request continues the caller's trace: its HTTP span is a child of the caller's
    // span, and the pipeline's spans sit under it in the same trace.
    let request_span = spans
        .iter()
        .find(|s| s.name == "http.request" && s.trace_id == query_span.trace_id)
        .unwrap_or_else(|| panic!("no http.request span in the query's trace among {names:?}"));
    assert_eq!(
        (
            request_span.trace_id.as_str(),
            request_span.parent_span_id.as_str()
        ),
        (caller_trace, caller_span)
    );
    assert_eq!(query_span.parent_span_id, request_span.span_id);
    for stage in ["stage.intent", "stage.policy", "stage.execute"] {
        let span = spans
            .iter()
            .find(|s| s.name == stage && s.trace_id == caller_trace)
            .unwrap_or_else(|| panic!("no {stage} span in the caller's trace"));
        assert_eq!(span.parent_span_id, query_span.span_id, "{stage}");
    }
    let grpc_query = spans
        .iter()
        .find(|s| s.name == "gateway.query" && s.trace_id == grpc_trace)
        .unwrap_or_else(|| panic!("no gateway.query span in the gRPC caller's trace"));
    assert_eq!(grpc_query.parent_span_id, caller_span);
    let exported = serde_json::to_string(&spans).unwrap();

    let logs = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    for line in &lines {
        let parsed: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(parsed.is_object(), "{line}");
    }
    assert!(
        logs.contains(&request_id),
        "the query's log lines carry its request id:\n{logs}"
    );

    let signature = token.rsplit('.').next().unwrap();
    let mut secrets = vec![
        token.as_str(),
        forged.as_str(),
        signature,
        sentinel,
        literal,
    ];
    // Short values (a masked placeholder) could match unrelated text; the timestamps
    // come back unmasked, so there are always long ones.
    secrets.extend(values.iter().map(String::as_str).filter(|v| v.len() >= 6));
    assert!(secrets.len() > 5, "{values:?}");
    for secret in secrets {
        assert!(!logs.contains(secret), "the logs contain `{secret}`");
        assert!(!exported.contains(secret), "a span contains `{secret}`");
    }
}

#[tokio::test]
async fn grpc_calls_are_counted_by_method_and_status() {
    let server = TestServer::demo().await;
    let name = "gatehouse_grpc_requests_total";
    let (_, before) = scrape(&server).await;
    let mut grpc = server.grpc().await;
    let refused = grpc
        .list_datasources(gatehouse::proto::ListDatasourcesRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    grpc.list_datasources(common::authed(
        gatehouse::proto::ListDatasourcesRequest::default(),
        &server.agent_token(),
    ))
    .await
    .expect("listed");
    let (_, after) = scrape(&server).await;
    for code in ["unauthenticated", "ok"] {
        let want: &[(&str, &[&str])] = &[("method", &["ListDatasources"]), ("code", &[code])];
        assert!(
            sum(&after, name, want) - sum(&before, name, want) >= 1.0,
            "{name} for {code} did not increase"
        );
    }
}
