//! Shared test harness: start the real server (REST and gRPC on ephemeral ports) from a
//! configuration, mint tokens for it, and call it.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod db;

use std::net::SocketAddr;
use std::time::Duration;

use gatehouse::app::Application;
use gatehouse::config::{AuthConfig, Config};
use gatehouse::identity::{self, PrincipalKind, TokenRequest};
use gatehouse::proto::gatehouse_client::GatehouseClient;
use serde_json::Value;
use tempfile::TempDir;

/// The HS256 secret test servers verify with, unless a test configures its own keys.
pub const TEST_SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef";

pub struct TestServer {
    pub base: String,
    pub grpc_addr: SocketAddr,
    pub data_dir: TempDir,
    pub auth: AuthConfig,
    client: reqwest::Client,
}

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl TestServer {
    /// The embedded default: no datasources configured, so the demo ones are seeded.
    pub async fn demo() -> TestServer {
        TestServer::start("").await
    }

    /// Starts a server from TOML configuration text. Listeners are forced to ephemeral
    /// ports; `[auth]` defaults to [`TEST_SECRET`] when the text has no `[auth]` section.
    pub async fn start(config_toml: &str) -> TestServer {
        let data_dir = tempfile::tempdir().expect("temp dir");
        TestServer::start_in(config_toml, data_dir).await
    }

    pub async fn start_in(config_toml: &str, data_dir: TempDir) -> TestServer {
        let mut text = String::from("[server]\nhttp = \"127.0.0.1:0\"\ngrpc = \"127.0.0.1:0\"\n");
        if !config_toml.contains("[auth]") {
            text.push_str(&format!("[auth]\nhs256_secret = \"{TEST_SECRET}\"\n"));
        }
        text.push_str(config_toml);
        let path = data_dir.path().join("gatehouse.toml");
        std::fs::write(&path, text).expect("write config");
        let config = Config::load(Some(&path), Vec::new()).expect("valid test configuration");
        let auth = config.auth.clone();
        let app = Application::build(config, data_dir.path())
            .await
            .expect("application builds");
        let base = format!("http://{}", app.http_addr());
        let grpc_addr = app.grpc_addr();
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        TestServer {
            base,
            grpc_addr,
            data_dir,
            auth,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
        }
    }

    /// A valid token for this server (signed with its HS256 secret).
    pub fn token(&self, sub: &str, kind: PrincipalKind, groups: &[&str]) -> String {
        let secret = identity::signing_secret(&self.auth, self.data_dir.path()).expect("secret");
        identity::mint_hs256(
            &secret,
            &self.auth,
            &TokenRequest {
                sub: sub.to_owned(),
                kind,
                groups: groups.iter().map(|g| g.to_string()).collect(),
                act: None,
                ttl: Duration::from_secs(600),
            },
        )
        .expect("mint token")
    }

    pub fn agent_token(&self) -> String {
        self.token("agent-7", PrincipalKind::Agent, &[])
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        let mut request = self.client.post(format!("{}{path}", self.base)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        reply(request.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        reply(request.send().await.expect("request sent")).await
    }

    /// A raw request, for malformed bodies and headers.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// `POST /v1/query` as an agent.
    pub async fn query(&self, datasource: &str, sql: &str, params: Value) -> Reply {
        let token = self.agent_token();
        self.post(
            "/v1/query",
            Some(&token),
            &serde_json::json!({"datasource": datasource, "sql": sql, "params": params}),
        )
        .await
    }

    pub async fn grpc(&self) -> GatehouseClient<tonic::transport::Channel> {
        GatehouseClient::connect(format!("http://{}", self.grpc_addr))
            .await
            .expect("gRPC connects")
    }
}

pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        content_type,
        headers,
        body,
    }
}

impl Reply {
    /// Asserts this is an RFC 9457 problem with `status` and `code`, and returns its detail.
    #[track_caller]
    pub fn problem(&self, status: u16, code: &str) -> String {
        assert_eq!(
            (self.status, self.body["code"].as_str()),
            (status, Some(code)),
            "unexpected reply: {}",
            self.body
        );
        assert_eq!(self.content_type, "application/problem+json");
        assert_eq!(self.body["status"], status);
        assert_eq!(self.body["type"], format!("urn:gatehouse:problem:{code}"));
        self.body["detail"].as_str().unwrap_or_default().to_owned()
    }

    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, 200, "unexpected reply: {}", self.body);
        &self.body
    }
}

/// Adds a bearer token to a gRPC request.
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii metadata"),
    );
    request
}

/// A `[[datasources]]` TOML block for a test database; `extra` adds keys such as
/// `statement_timeout_ms = 300`.
pub fn datasource_toml(name: &str, environment: &str, db: &db::TestDb, extra: &str) -> String {
    format!(
        "[[datasources]]\nname = \"{name}\"\nenvironment = \"{environment}\"\nurl = \"{}\"\nmax_connections = 2\n{extra}\n",
        db.url
    )
}
