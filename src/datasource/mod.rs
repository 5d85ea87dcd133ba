//! Datasources: sqlx pools per datasource, guarded execution, typed values, catalog, and the
//! seeded demo databases of the embedded default.
//!
//! Parsing the statement (in `intent`) is the first wall; this module is the second. Every
//! datasource has two pools:
//!
//! - a **read pool** whose connections the database itself holds read-only from the moment
//!   they open (PostgreSQL startup option `default_transaction_read_only=on`, MariaDB
//!   `SET SESSION TRANSACTION READ ONLY`, SQLite `PRAGMA query_only`), at no extra round
//!   trip per statement. It uses `read_url` when the datasource names a SELECT-only account;
//! - a **write pool** on `url`, used only for statements policy allowed as writes.
//!
//! Both carry the statement timeout in the database (PostgreSQL `statement_timeout`,
//! MariaDB `max_statement_time`, a SQLite progress handler), and [`Datasource::execute`]
//! adds a client-side deadline around acquire and execute. One statement runs per call,
//! through the prepared/extended protocol with typed parameters. Rows stream and stop at the
//! row cap, so memory stays bounded for any result size.
//!
//! A connection goes back to its pool only in the state it started in. Policy refuses
//! statements that change the session (`SET`, `SET ROLE`, `BEGIN`, temporary tables,
//! locks, …); this is the backstop for one that ran anyway, so that it cannot switch the
//! read pool's read-only setting off, or leave a transaction, a setting or a temporary
//! table behind for the next caller. A connection dropped mid-statement is closed (see
//! `run::Checkout`); one that finished is checked when it is released, off the caller's
//! path, on both pools:
//!
//! - PostgreSQL: `DISCARD ALL` resets the session; one left in a transaction is closed.
//! - MariaDB: sqlx cannot send `COM_RESET_CONNECTION` and SQL cannot undo everything, so
//!   the session is compared with how it was set up, and closed when it differs
//!   (`mysql::SessionCheck` says what is compared, and what the read pool leaves out).
//! - SQLite: the same comparison, in-process; also a transaction left open.
//!
//! That costs one round trip per statement (PostgreSQL, MariaDB) in place of the ping
//! sqlx would otherwise send on the caller's path when handing a connection out; now only
//! a connection idle for a second is pinged first. Per statement on a one-connection pool,
//! release included, medians before → after (`statement_cost` in `tests/datasource.rs`,
//! local servers on a busy two-core machine, so ± 30 µs): PostgreSQL reads 0.31 → 0.37 ms,
//! writes 0.48 → 0.53 ms; MariaDB reads 0.22 → 0.26 ms, writes 0.19 → 0.56 ms (the write
//! pool also reads the session's statement counters); SQLite reads and writes 0.11 → 0.20
//! ms (one more hand-over to its worker thread, and ten PRAGMA reads).
//!
//! Files: `value` (the typed [`Value`] and its JSON form), `run` (the driver-neutral
//! streaming and connection hygiene), one file per driver (pools, binding, decoding),
//! `catalog` (tables and columns) and `demo` (the seeded SQLite demo databases).

mod catalog;
mod demo;
mod mysql;
mod postgres;
mod run;
mod sqlite;
mod value;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{DatabaseUrl, DatasourceConfig, DatasourceName, EnvironmentName};

pub use demo::ensure_demo_datasources;
pub use value::Value;

/// The database engine behind a datasource, which is also the SQL dialect callers write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Postgres,
    /// MariaDB (and MySQL, on a best-effort basis).
    MySql,
    Sqlite,
}

impl Driver {
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Postgres => "postgres",
            Driver::MySql => "mysql",
            Driver::Sqlite => "sqlite",
        }
    }

    fn from_url(url: &DatabaseUrl) -> Option<Driver> {
        match url.scheme() {
            "postgres" | "postgresql" => Some(Driver::Postgres),
            "mysql" | "mariadb" => Some(Driver::MySql),
            "sqlite" => Some(Driver::Sqlite),
            _ => None,
        }
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which pool a statement runs on. `Read` is the default for everything policy did not
/// explicitly allow as a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// A positional parameter, bound as a typed parameter (never spliced into SQL text).
///
/// Binding per driver: `Int` → 64-bit integer, `Float` → double, `Bool` → boolean
/// (MariaDB/SQLite: 1/0), `Text` → text, `Json` → `jsonb` on PostgreSQL and text elsewhere.
/// On PostgreSQL `Null` is sent with no type, so the server infers it from context
/// (`INSERT INTO t(int_col) VALUES ($1)` works); where there is no context
/// (`SELECT $1`) write a cast: `$1::text`. Text parameters are typed `text` on PostgreSQL:
/// compare them with other types through a cast, `created_at > $1::timestamptz`.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Json(serde_json::Value),
}

impl Param {
    /// The parameter a JSON request value stands for: numbers without a fraction or exponent
    /// that fit `i64` are `Int`, other numbers `Float`; strings `Text`; arrays and objects
    /// `Json`. An integer above `i64::MAX` is refused rather than rounded to a float.
    pub fn from_json(value: &serde_json::Value) -> Result<Param, String> {
        Ok(match value {
            serde_json::Value::Null => Param::Null,
            serde_json::Value::Bool(b) => Param::Bool(*b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Param::Int(i)
                } else if n.is_u64() {
                    return Err(format!(
                        "the integer {n} is larger than the largest 64-bit signed integer; pass it as a string and cast it in SQL"
                    ));
                } else if let Some(f) = n.as_f64() {
                    Param::Float(f)
                } else {
                    return Err(format!("the number {n} cannot be represented"));
                }
            }
            serde_json::Value::String(s) => Param::Text(s.clone()),
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                Param::Json(value.clone())
            }
        })
    }
}

/// A result column: its name and the database's own type name, lower case (`int4`,
/// `timestamptz`, `bigint unsigned`, `varchar`; PostgreSQL arrays as `int4[]`). SQLite
/// gives the declared type, or for an expression the storage class of its value in the
/// first row (empty when there is no row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    pub name: String,
    pub type_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryResult {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
    /// More rows existed than the row cap allowed.
    pub truncated: bool,
    /// Rows the statement changed, as the database reported them, for statements that
    /// return no columns (INSERT, UPDATE, DELETE, DDL); 0 for statements that return rows.
    pub rows_affected: u64,
}

/// A table or view and its columns, from the database's catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableSchema {
    /// As written in SQL: `schema.table` on PostgreSQL outside `public`, else `table`.
    pub name: String,
    pub columns: Vec<ColumnSchema>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnSchema {
    pub name: String,
    /// Same vocabulary as [`Column::type_name`]. Empty for a SQLite column declared
    /// without a type.
    pub type_name: String,
    pub nullable: bool,
}

/// Why a statement did not produce a result. The `Display` text is what the caller sees:
/// the database's own message where there is one (it is actionable), never a connection
/// URL, host, user or password.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(
        "the statement was cancelled after the datasource's statement timeout of {after_ms} ms; narrow it down (add a WHERE or LIMIT) or ask for a longer timeout"
    )]
    Timeout { after_ms: u64 },
    #[error("{message}{}", code.as_deref().map(|c| format!(" (code {c})")).unwrap_or_default())]
    Database {
        message: String,
        /// SQLSTATE on PostgreSQL and MariaDB; SQLite's extended result code, in decimal.
        code: Option<String>,
    },
    /// The database cannot be reached, or no pooled connection became free in time.
    #[error("{0}")]
    Unavailable(String),
    #[error(
        "column `{column}` has type `{type_name}`, which Gatehouse does not return as a typed value; cast it to text in the query (PostgreSQL: `{column}::text`, MariaDB: `CAST({column} AS CHAR)`, SQLite: `CAST({column} AS TEXT)`)"
    )]
    UnsupportedType { column: String, type_name: String },
    /// `index` is 1-based, like `$1`.
    #[error("parameter {index}: {message}")]
    InvalidParam { index: usize, message: String },
    #[error(
        "the database refused to write: this statement ran on a read-only connection, so it must not change data"
    )]
    ReadOnly,
}

/// Setting up a datasource failed (at start-up; the database is not contacted).
#[derive(Debug, thiserror::Error)]
pub enum DatasourceError {
    #[error("datasource `{datasource}`: invalid `{field}`: {message}")]
    InvalidUrl {
        datasource: String,
        field: &'static str,
        message: String,
    },
    #[error("datasource `{0}` is defined twice")]
    Duplicate(String),
    #[error("cannot create the demo datasources: {0}")]
    Demo(String),
}

/// One configured database: its pools and its limits.
pub struct Datasource {
    name: DatasourceName,
    environment: EnvironmentName,
    driver: Driver,
    max_rows: u32,
    statement_timeout: Duration,
    pools: Pools,
}

enum Pools {
    Postgres(postgres::PgPools),
    MySql(mysql::MySqlPools),
    Sqlite(sqlite::SqlitePools),
}

/// What one execution needs to know, handed to the driver.
pub(crate) struct Statement<'a> {
    pub datasource: &'a str,
    pub access: Access,
    pub sql: &'a str,
    pub params: &'a [Param],
    pub max_rows: u32,
    pub timeout: Duration,
}

/// Slack on top of the statement timeout for the client-side deadline: the database's own
/// timeout fires first (with its own error), and the deadline catches what it cannot
/// (a hung network, a pool that never hands out a connection).
const CLIENT_DEADLINE_MARGIN: Duration = Duration::from_millis(250);

impl fmt::Debug for Datasource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Datasource")
            .field("name", &self.name)
            .field("environment", &self.environment)
            .field("driver", &self.driver)
            .field("max_rows", &self.max_rows)
            .field("statement_timeout", &self.statement_timeout)
            .finish_non_exhaustive()
    }
}

impl Datasource {
    /// Builds both pools lazily: no connection is opened here, so one database being down
    /// does not stop the service. A malformed URL is an error here. Must be called inside a
    /// Tokio runtime (the pools spawn their maintenance tasks).
    pub fn connect(config: &DatasourceConfig) -> Result<Datasource, DatasourceError> {
        let invalid = |field: &'static str, message: String| DatasourceError::InvalidUrl {
            datasource: config.name.to_string(),
            field,
            message,
        };
        let driver = Driver::from_url(&config.url).ok_or_else(|| {
            invalid(
                "url",
                format!(
                    "unsupported scheme `{}`: use postgres://, mysql:// or sqlite://",
                    config.url.scheme()
                ),
            )
        })?;
        if let Some(read_url) = &config.read_url
            && Driver::from_url(read_url) != Some(driver)
        {
            return Err(invalid(
                "read_url",
                "must use the same database driver as `url`".to_owned(),
            ));
        }
        let timeout = Duration::from_millis(config.statement_timeout_ms.max(1));
        let settings = PoolSettings {
            max_connections: config.max_connections.max(1),
            timeout,
        };
        let pools = match driver {
            Driver::Postgres => Pools::Postgres(postgres::PgPools::new(config, &settings)?),
            Driver::MySql => Pools::MySql(mysql::MySqlPools::new(config, &settings)?),
            Driver::Sqlite => Pools::Sqlite(sqlite::SqlitePools::new(config, &settings)?),
        };
        Ok(Datasource {
            name: config.name.clone(),
            environment: config.environment.clone(),
            driver,
            max_rows: config.max_rows,
            statement_timeout: timeout,
            pools,
        })
    }

    pub fn name(&self) -> &DatasourceName {
        &self.name
    }

    pub fn environment(&self) -> &EnvironmentName {
        &self.environment
    }

    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// The datasource's row cap; callers pass the lower of this and their own to `execute`.
    pub fn max_rows(&self) -> u32 {
        self.max_rows
    }

    pub fn statement_timeout(&self) -> Duration {
        self.statement_timeout
    }

    /// Runs exactly one statement with typed parameters; streams rows and stops after
    /// `max_rows` (`truncated` is true when more existed), so memory stays bounded for any
    /// result size.
    #[tracing::instrument(
        level = "debug",
        skip(self, sql, params),
        fields(datasource = %self.name, driver = %self.driver)
    )]
    pub async fn execute(
        &self,
        access: Access,
        sql: &str,
        params: &[Param],
        max_rows: u32,
    ) -> Result<QueryResult, ExecError> {
        if sql.contains('\0') {
            // PostgreSQL's protocol and SQLite's parser both stop at a NUL byte, so the text
            // the database saw would not be the text that was checked.
            return Err(ExecError::Database {
                message: "the statement text contains a NUL byte".to_owned(),
                code: None,
            });
        }
        let statement = Statement {
            datasource: self.name.as_str(),
            access,
            sql,
            params,
            max_rows,
            timeout: self.statement_timeout,
        };
        let run = async {
            match &self.pools {
                Pools::Postgres(pools) => pools.execute(&statement).await,
                Pools::MySql(pools) => pools.execute(&statement).await,
                Pools::Sqlite(pools) => pools.execute(&statement).await,
            }
        };
        // Dropping `run` on the deadline drops its pooled connection mid-statement; the
        // connection guard in `run.rs` then closes it instead of returning it to the pool.
        tokio::time::timeout(self.statement_timeout + CLIENT_DEADLINE_MARGIN, run)
            .await
            .unwrap_or(Err(ExecError::Timeout {
                after_ms: millis(self.statement_timeout),
            }))
    }

    /// User tables and views with their columns and types, on the read pool.
    pub async fn schema(&self) -> Result<Vec<TableSchema>, ExecError> {
        catalog::schema(self).await
    }

    /// `SELECT 1` on the read pool, for `/readyz`.
    pub async fn ping(&self) -> Result<(), ExecError> {
        self.execute(Access::Read, "SELECT 1", &[], 1)
            .await
            .map(|_| ())
    }

    /// Connections of both pools right now, for the `pool_connections` gauges.
    pub fn pool_stats(&self) -> PoolStats {
        let (read, write) = match &self.pools {
            Pools::Postgres(pools) => (PoolUsage::of(&pools.read), PoolUsage::of(&pools.write)),
            Pools::MySql(pools) => (PoolUsage::of(&pools.read), PoolUsage::of(&pools.write)),
            Pools::Sqlite(pools) => (PoolUsage::of(&pools.read), PoolUsage::of(&pools.write)),
        };
        PoolStats { read, write }
    }
}

/// Connections of a datasource's read and write pools, as [`Datasource::pool_stats`] saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub read: PoolUsage,
    pub write: PoolUsage,
}

/// One pool: connections open (`size`, idle ones included), idle, and the most it may open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolUsage {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

impl PoolUsage {
    fn of<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> PoolUsage {
        PoolUsage {
            size: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
        }
    }
}

/// Pool settings shared by the drivers.
pub(crate) struct PoolSettings {
    pub max_connections: u32,
    pub timeout: Duration,
}

pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Every configured datasource, by name.
#[derive(Debug, Default)]
pub struct Datasources {
    by_name: BTreeMap<String, Datasource>,
}

impl Datasources {
    pub fn from_configs(configs: &[DatasourceConfig]) -> Result<Datasources, DatasourceError> {
        let mut by_name = BTreeMap::new();
        for config in configs {
            let name = config.name.as_str().to_owned();
            if by_name.contains_key(&name) {
                return Err(DatasourceError::Duplicate(name));
            }
            by_name.insert(name, Datasource::connect(config)?);
        }
        Ok(Datasources { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&Datasource> {
        self.by_name.get(name)
    }

    /// In name order.
    pub fn iter(&self) -> impl Iterator<Item = &Datasource> {
        self.by_name.values()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn params_from_json() {
        assert_eq!(Param::from_json(&json!(null)), Ok(Param::Null));
        assert_eq!(Param::from_json(&json!(true)), Ok(Param::Bool(true)));
        assert_eq!(Param::from_json(&json!(-7)), Ok(Param::Int(-7)));
        assert_eq!(Param::from_json(&json!(i64::MAX)), Ok(Param::Int(i64::MAX)));
        assert_eq!(Param::from_json(&json!(1.5)), Ok(Param::Float(1.5)));
        assert_eq!(Param::from_json(&json!(1e3)), Ok(Param::Float(1000.0)));
        assert_eq!(Param::from_json(&json!("x")), Ok(Param::Text("x".into())));
        assert_eq!(Param::from_json(&json!([1])), Ok(Param::Json(json!([1]))));
        assert_eq!(
            Param::from_json(&json!({"a": 1})),
            Ok(Param::Json(json!({"a": 1})))
        );
        let err = Param::from_json(&json!(u64::MAX)).unwrap_err();
        assert!(err.contains("18446744073709551615"), "{err}");
    }

    #[test]
    fn driver_names() {
        assert_eq!(Driver::MySql.to_string(), "mysql");
        assert_eq!(
            serde_json::to_value(Driver::Postgres).unwrap(),
            json!("postgres")
        );
        assert_eq!(
            serde_json::from_value::<Driver>(json!("sqlite")).unwrap(),
            Driver::Sqlite
        );
    }

    #[test]
    fn error_messages() {
        let db = ExecError::Database {
            message: "relation \"nope\" does not exist".into(),
            code: Some("42P01".into()),
        };
        assert_eq!(
            db.to_string(),
            "relation \"nope\" does not exist (code 42P01)"
        );
        let unsupported = ExecError::UnsupportedType {
            column: "p".into(),
            type_name: "point".into(),
        };
        assert!(unsupported.to_string().contains("p::text"));
    }

    fn config(name: &str, url: &str) -> DatasourceConfig {
        DatasourceConfig {
            name: DatasourceName::parse(name).unwrap(),
            environment: EnvironmentName::parse("dev").unwrap(),
            url: DatabaseUrl::new(url),
            read_url: None,
            max_connections: 2,
            statement_timeout_ms: 1000,
            max_rows: 10,
        }
    }

    #[tokio::test]
    async fn malformed_urls_fail_at_connect_without_echoing_the_url() {
        for url in [
            "postgres://user:hunter2@host:notaport/db",
            "mysql://user:hunter2@host:notaport/db",
            "oracle://user:hunter2@host/db",
        ] {
            let err = Datasource::connect(&config("a", url))
                .unwrap_err()
                .to_string();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("datasource `a`"), "{err}");
        }
        let ds = Datasource::connect(&config("b", "postgres://u:p@127.0.0.1:1/db")).unwrap();
        assert_eq!(ds.driver(), Driver::Postgres);
        let set = Datasources::from_configs(&[
            config("z", "sqlite://nowhere.db"),
            config("a", "sqlite://nowhere.db"),
        ])
        .unwrap();
        let names: Vec<&str> = set.iter().map(|d| d.name().as_str()).collect();
        assert_eq!(names, ["a", "z"]);
        let dup =
            Datasources::from_configs(&[config("a", "sqlite://x"), config("a", "sqlite://y")]);
        assert!(matches!(dup, Err(DatasourceError::Duplicate(_))));
    }
}
