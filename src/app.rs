//! Start-up shared by `gatehouse serve` and the integration tests: build everything from a
//! configuration, bind both listeners (port 0 works), then serve until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::api;
use crate::approval::Approvals;
use crate::audit::AuditLog;
use crate::config::Config;
use crate::datasource::{self, Datasources};
use crate::gateway::Gateway;
use crate::identity::Verifier;
use crate::masking::Masking;
use crate::policy::PolicyEngine;
use crate::proto;
use crate::store::ControlStore;

pub struct Application {
    gateway: Arc<Gateway>,
    http: TcpListener,
    grpc: TcpListener,
    max_body_bytes: usize,
    demo: bool,
    data_dir: PathBuf,
}

impl Application {
    /// Opens the data directory, the control store, the token verifier and the datasource
    /// pools, and binds the listeners. With no datasources configured, the seeded demo
    /// datasources of the embedded default are created (once) and served.
    pub async fn build(config: Config, data_dir: &Path) -> anyhow::Result<Application> {
        install_crypto_provider();
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        let demo = config.datasources.is_empty();
        let datasource_configs = datasource_configs(&config, data_dir).await?;
        let policy = PolicyEngine::load(&config.policy).context("invalid policies")?;
        let verifier = Verifier::from_config(&config.auth, data_dir)
            .await
            .context("cannot set up token verification")?;
        let store = ControlStore::open(config.store.url.as_deref(), data_dir)
            .await
            .context("cannot open the control store")?;
        let datasources = Datasources::from_configs(&datasource_configs)
            .context("cannot set up the datasources")?;
        let masking = Masking::new(&config.masking, data_dir).context("invalid [masking]")?;
        let audit = AuditLog::start(store.clone(), &config.audit)
            .await
            .context("cannot start the audit trail")?;
        let approvals = Approvals::start(store.clone(), &config.approvals, &config.redis)
            .await
            .context("cannot start approvals")?;
        let http = TcpListener::bind(config.server.http)
            .await
            .with_context(|| format!("cannot listen for HTTP on {}", config.server.http))?;
        let grpc = TcpListener::bind(config.server.grpc)
            .await
            .with_context(|| format!("cannot listen for gRPC on {}", config.server.grpc))?;
        Ok(Application {
            gateway: Arc::new(Gateway::new(
                verifier,
                datasources,
                store,
                policy,
                audit,
                masking,
                approvals,
            )),
            http,
            grpc,
            max_body_bytes: config.server.max_body_bytes,
            demo,
            data_dir: data_dir.to_owned(),
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Whether the seeded demo datasources are being served (no datasources configured).
    pub fn serves_demo_datasources(&self) -> bool {
        self.demo
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Serves REST and gRPC until `shutdown` resolves, then lets in-flight requests finish.
    /// If either server fails, the other is stopped too and the error returned.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        spawn_policy_reload_on_sighup(self.gateway.clone(), stopped(stop_rx.clone()));
        // Classify every datasource's columns before the first query needs them; a
        // database that is down now is classified on first use instead.
        let warming = self.gateway.clone();
        tokio::spawn(async move { warming.warm_catalogs().await });
        let expiries = self.gateway.clone();
        tokio::spawn(async move { expiries.audit_expirations().await });

        let router = api::http::router(self.gateway.clone(), self.max_body_bytes);
        let http = axum::serve(
            self.http,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stopped(stop_rx.clone()));

        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<proto::gatehouse_server::GatehouseServer<api::grpc::GatehouseService>>()
            .await;
        health_reporter
            .set_serving::<proto::audit_server::AuditServer<api::grpc::audit::AuditService>>()
            .await;
        health_reporter
            .set_serving::<proto::approvals_server::ApprovalsServer<api::grpc::approvals::ApprovalsService>>()
            .await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .context("cannot build the gRPC reflection service")?;
        let grpc = tonic::transport::Server::builder()
            .layer(api::grpc::metrics::GrpcMetricsLayer)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(proto::gatehouse_server::GatehouseServer::new(
                api::grpc::GatehouseService::new(self.gateway.clone()),
            ))
            .add_service(proto::audit_server::AuditServer::new(
                api::grpc::audit::AuditService::new(self.gateway.clone()),
            ))
            .add_service(proto::approvals_server::ApprovalsServer::new(
                api::grpc::approvals::ApprovalsService::new(self.gateway.clone()),
            ))
            .serve_with_incoming_shutdown(TcpListenerStream::new(self.grpc), stopped(stop_rx));

        let (http, grpc) =
            tokio::join!(async { http.await.context("HTTP server failed") }, async {
                grpc.await.context("gRPC server failed")
            });
        http.and(grpc)
    }
}

/// The configured datasources, or, when none are configured (the embedded default), the
/// seeded demo datasources in `data_dir`, created on first use. Shared by `serve` and
/// `gatehouse explain`, so both see the same datasources.
pub async fn datasource_configs(
    config: &Config,
    data_dir: &Path,
) -> anyhow::Result<Vec<crate::config::DatasourceConfig>> {
    if config.datasources.is_empty() {
        datasource::ensure_demo_datasources(data_dir)
            .await
            .context("cannot create the demo datasources")
    } else {
        Ok(config.datasources.clone())
    }
}

/// SIGHUP re-reads the policy files, as operators expect of a daemon; a failed reload
/// keeps the previous policies (the gateway logs why).
fn spawn_policy_reload_on_sighup(
    gateway: Arc<Gateway>,
    stopped: impl Future<Output = ()> + Send + 'static,
) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; reload policies through the API");
            return;
        }
    };
    tokio::spawn(async move {
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                () = &mut stopped => break,
                received = hangups.recv() => {
                    if received.is_none() {
                        break;
                    }
                    let _ = gateway.reload_policies_unchecked();
                }
            }
        }
    });
}

/// TLS (JWKS over https, database connections) uses rustls with the ring provider; it
/// has to be chosen once per process. A second call (tests build many applications in
/// one process) finds it installed and is fine.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
