//! The `gatehouse` command line: `serve`, `token`, `explain`, `openapi`, `approvals`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use gatehouse::app::Application;
use gatehouse::config::Config;
use gatehouse::datasource::Datasources;
use gatehouse::gateway;
use gatehouse::identity::{self, Principal, PrincipalKind, TokenRequest};
use gatehouse::policy::PolicyEngine;

mod cli {
    pub mod approvals;
}

const DEFAULT_DATA_DIR: &str = "./gatehouse-data";
/// Longest lifetime `gatehouse token` will sign: tokens are for trying things out and
/// for tests; long-lived credentials belong to a real identity provider.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Identity-aware data access for AI agents, services and people"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where configuration and state come from; shared by the subcommands that need them.
#[derive(clap::Args)]
struct Source {
    /// Configuration file (TOML). Without one, the embedded default is used.
    #[arg(long, env = "GATEHOUSE_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory: generated secret, SQLite control store, demo databases.
    #[arg(long, env = "GATEHOUSE_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
}

impl Source {
    fn load(&self) -> anyhow::Result<Config> {
        Ok(Config::load(self.config.as_deref(), std::env::vars())?)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve the REST and gRPC APIs.
    Serve {
        #[command(flatten)]
        source: Source,
        /// REST listen address (overrides `server.http`; default 127.0.0.1:8080).
        #[arg(long)]
        http: Option<std::net::SocketAddr>,
        /// gRPC listen address (overrides `server.grpc`; default 127.0.0.1:50051).
        #[arg(long)]
        grpc: Option<std::net::SocketAddr>,
    },
    /// Print a JWT signed with the configured HS256 secret (for trying things out and tests).
    Token {
        /// Subject: who the caller is.
        #[arg(long)]
        sub: String,
        /// human, agent or service.
        #[arg(long, default_value = "human")]
        kind: PrincipalKind,
        /// Comma-separated groups, e.g. `dba,pii-readers`.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// The person this caller acts for (written as the `act` claim's `sub`).
        #[arg(long)]
        act: Option<String>,
        /// Lifetime: a number with s, m, h or d, e.g. `15m`, `1h`.
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: Duration,
        #[command(flatten)]
        source: Source,
    },
    /// Print what a statement intends and what policy decides, without running it.
    Explain {
        /// Datasource name.
        #[arg(long)]
        datasource: String,
        /// The SQL statement.
        #[arg(long)]
        sql: String,
        /// Subject to decide for.
        #[arg(long)]
        sub: String,
        /// human, agent or service.
        #[arg(long, default_value = "human")]
        kind: PrincipalKind,
        /// Comma-separated groups.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        #[command(flatten)]
        source: Source,
    },
    /// Print the OpenAPI document of the REST API.
    Openapi,
    /// List, show, approve and reject approval requests on a running server.
    Approvals(cli::approvals::ApprovalsArgs),
    /// The audit trail in the control store.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain and report the first broken link (edited, deleted, inserted or
    /// reordered event). Exits with 1 when the chain is broken.
    Verify {
        #[command(flatten)]
        source: Source,
    },
}

fn parse_ttl(raw: &str) -> Result<Duration, String> {
    let (number, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{raw}` is not a lifetime like 30m or 1h"))?;
    let seconds = match unit {
        "s" | "" => number,
        "m" => number.saturating_mul(60),
        "h" => number.saturating_mul(3600),
        "d" => number.saturating_mul(86_400),
        _ => return Err(format!("unknown unit in `{raw}`: use s, m, h or d")),
    };
    let ttl = Duration::from_secs(seconds);
    if ttl.is_zero() || ttl > MAX_TOKEN_TTL {
        return Err("the lifetime must be between 1s and 30d".to_owned());
    }
    Ok(ttl)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { source, http, grpc } => serve(source, http, grpc),
        Command::Token {
            sub,
            kind,
            groups,
            act,
            ttl,
            source,
        } => token(
            &source,
            TokenRequest {
                sub,
                kind,
                groups,
                act,
                ttl,
            },
        ),
        Command::Explain {
            datasource,
            sql,
            sub,
            kind,
            groups,
            source,
        } => explain(
            &source,
            &datasource,
            &sql,
            Principal::assumed(&sub, kind, &groups),
        ),
        Command::Openapi => openapi(),
        Command::Approvals(args) => cli::approvals::run(args),
        Command::Audit(AuditCommand::Verify { source }) => audit_verify(&source),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("gatehouse: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(
    source: Source,
    http: Option<std::net::SocketAddr>,
    grpc: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    // The trace exporter's connection runs on the runtime, so it is set up inside it.
    let telemetry = {
        let _entered = runtime.enter();
        gatehouse::telemetry::init().context("cannot set up telemetry")?
    };
    let served = serve_until_stopped(&runtime, source, http, grpc);
    // After the servers stopped, outside async code, while the runtime still runs the
    // exporter: the spans of the last requests go out before the process exits.
    telemetry.shutdown();
    served
}

fn serve_until_stopped(
    runtime: &tokio::runtime::Runtime,
    source: Source,
    http: Option<std::net::SocketAddr>,
    grpc: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    let mut config = source.load()?;
    if let Some(http) = http {
        config.server.http = http;
    }
    if let Some(grpc) = grpc {
        config.server.grpc = grpc;
    }
    runtime.block_on(async {
        let app = Application::build(config, &source.data_dir).await?;
        print_welcome(&app, &source);
        tracing::info!(http = %app.http_addr(), grpc = %app.grpc_addr(), "gatehouse serving");
        app.run_until_stopped(shutdown_signal()).await
    })
}

/// Resolves on Ctrl-C or SIGTERM (what container runtimes send).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down; letting in-flight requests finish");
}

fn print_welcome(app: &Application, source: &Source) {
    let http = app.http_addr();
    println!("Gatehouse is serving");
    println!("  REST  http://{http}   (API docs: http://{http}/docs)");
    println!("  gRPC  {}", app.grpc_addr());
    if !app.serves_demo_datasources() {
        return;
    }
    let data_dir_arg = if source.data_dir == Path::new(DEFAULT_DATA_DIR) {
        String::new()
    } else {
        format!(" --data-dir {}", source.data_dir.display())
    };
    println!(
        "Demo datasources `shop` (dev) and `shop_prod` (prod) live in {}.",
        app.data_dir().display()
    );
    println!("Mint a token and run a first query:");
    println!("  TOKEN=$(gatehouse token --sub ada --kind human{data_dir_arg})");
    println!(
        "  curl -s http://{http}/v1/query -H \"authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\\n    -d '{{\"datasource\": \"shop\", \"sql\": \"SELECT id, status, amount_cents FROM orders LIMIT 3\"}}'"
    );
}

fn token(source: &Source, request: TokenRequest) -> anyhow::Result<()> {
    if request.sub.trim().is_empty() {
        bail!("--sub must not be empty");
    }
    let config = source.load()?;
    let secret = identity::signing_secret(&config.auth, &source.data_dir)?;
    let token = identity::mint_hs256(&secret, &config.auth, &request)?;
    println!("{token}");
    Ok(())
}

/// Decides offline, from the configuration alone: no server, no database connection.
fn explain(source: &Source, name: &str, sql: &str, principal: Principal) -> anyhow::Result<()> {
    let config = source.load()?;
    let policy = PolicyEngine::load(&config.policy).context("invalid policies")?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let explanation = runtime.block_on(async {
        let configs = gatehouse::app::datasource_configs(&config, &source.data_dir).await?;
        // Pools open lazily: building them connects to nothing.
        let datasources = Datasources::from_configs(&configs)?;
        let Some(datasource) = datasources.get(name) else {
            let names: Vec<String> = datasources.iter().map(|d| d.name().to_string()).collect();
            bail!(
                "no datasource named `{name}`; configured: {}",
                names.join(", ")
            );
        };
        anyhow::Ok(gateway::explain_statement(
            &policy, datasource, &principal, sql,
        )?)
    })?;
    println!("{}", serde_json::to_string_pretty(&explanation)?);
    Ok(())
}

/// Verifies the chain straight from the control store the configuration names (no server
/// needed): prints the result as JSON and fails when a link is broken.
fn audit_verify(source: &Source) -> anyhow::Result<()> {
    let config = source.load()?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let verification = runtime.block_on(async {
        let store =
            gatehouse::store::ControlStore::open(config.store.url.as_deref(), &source.data_dir)
                .await
                .context("cannot open the control store")?;
        anyhow::Ok(gatehouse::audit::verify(&store).await?)
    })?;
    println!("{}", serde_json::to_string_pretty(&verification)?);
    if !verification.ok {
        bail!("the audit chain is broken; see first_broken above");
    }
    Ok(())
}

fn openapi() -> anyhow::Result<()> {
    let document = gatehouse::api::http::openapi();
    println!("{}", serde_json::to_string_pretty(&document)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("31d").is_err());
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("h").is_err());
    }
}
