//! Gatehouse: an identity-aware data-access service. A caller sends one SQL statement with a
//! JWT; Gatehouse works out what the statement intends, decides whether this caller may do
//! that here, runs it on a pooled connection the database itself guards, and returns a typed
//! result.
//!
//! Every request takes one path, owned by [`gateway`]:
//!
//! ```text
//! transport (api::http, api::grpc)
//!   └─▶ identity   verified JWT → Principal
//!   └─▶ intent     SQL text → Intent (what the statement does, to which tables)
//!   └─▶ policy     Cedar: (Principal, Intent, environment) → Decision
//!   └─▶ datasource pooled, read-only-where-possible execution → typed QueryResult
//! ```
//!
//! Layers move one way: nothing below `api` knows HTTP or gRPC, and the transports know
//! nothing of SQL. Module map:
//!
//! - [`config`]: the TOML file and `GATEHOUSE_*` overrides, checked at start-up.
//! - [`identity`]: JWT verification (HS256, RSA/EC/Ed25519 PEM keys, JWKS) → [`identity::Principal`].
//! - [`intent`]: parses a statement with the datasource's SQL dialect and classifies it:
//!   actions, tables with read/write access, columns, risk flags.
//! - [`policy`]: Cedar policies (built-in `policies/default.cedar` or files) decide per
//!   (action, table) pair; `@approval` forbids turn a deny into approval required.
//! - [`datasource`]: sqlx pools per datasource, guarded execution, typed values, catalog,
//!   and the seeded demo databases of the embedded default.
//! - [`store`]: the control store (SQLite by default, PostgreSQL in production) and its migrations.
//! - [`gateway`]: the request pipeline shared by every transport.
//! - [`api`]: REST (axum, OpenAPI via utoipa) and gRPC (tonic) adapters over the gateway.
//! - [`app`]: start-up shared by `gatehouse serve` and the integration tests.

pub mod api;
pub mod app;
pub mod approval;
pub mod audit;
pub mod config;
pub mod datasource;
pub mod gateway;
pub mod identity;
pub mod intent;
pub mod masking;
pub mod policy;
pub mod store;
pub mod telemetry;

/// Generated gRPC types and services of package `gatehouse.v1`.
pub mod proto {
    tonic::include_proto!("gatehouse.v1");

    /// Encoded descriptors, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("gatehouse_descriptor");
}
