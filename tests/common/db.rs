//! Throwaway databases for integration tests: each test gets its own freshly created
//! database (`gh_test_<hex>`) on the PostgreSQL or MariaDB server that `scripts/test.sh`
//! starts, or a SQLite file in a temporary directory, dropped again when the [`TestDb`]
//! goes out of scope.
//!
//! Server addresses come from `GATEHOUSE_TEST_POSTGRES_URL` and `GATEHOUSE_TEST_MYSQL_URL`
//! (an account that may create databases); the defaults match `scripts/test.sh`.

// Each test crate that includes this file uses a different subset of it; `expect` would
// fail in the crates that happen to use everything.
#![allow(dead_code)]

use gatehouse::config::{DatabaseUrl, DatasourceConfig, DatasourceName, EnvironmentName};
use sqlx::{Connection as _, Executor as _};

const DEFAULT_POSTGRES_URL: &str =
    "postgres://gatehouse_test:gatehouse_test@127.0.0.1:5432/postgres";
const DEFAULT_MYSQL_URL: &str = "mysql://gatehouse_test:gatehouse_test@127.0.0.1:3306/mysql";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    MariaDb,
    Sqlite,
}

/// A database that exists for as long as this value does.
pub struct TestDb {
    /// Connection URL of the database itself (the test account's credentials).
    pub url: String,
    pub engine: Engine,
    /// `gh_test_<hex>` on the servers; the file path for SQLite.
    pub name: String,
    /// URL of the server's maintenance database, used to create and drop this one.
    admin_url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A new empty PostgreSQL database.
    pub async fn postgres() -> TestDb {
        let admin_url = env_or("GATEHOUSE_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL);
        let name = random_name();
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| unreachable_server("PostgreSQL", &admin_url, &e));
        admin
            .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE \"{name}\""
            ))))
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let _ = admin.close().await;
        TestDb {
            url: with_database(&admin_url, &name),
            engine: Engine::Postgres,
            name,
            admin_url,
            _dir: None,
        }
    }

    /// A new empty MariaDB database.
    pub async fn mariadb() -> TestDb {
        let admin_url = env_or("GATEHOUSE_TEST_MYSQL_URL", DEFAULT_MYSQL_URL);
        let name = random_name();
        let mut admin = sqlx::MySqlConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| unreachable_server("MariaDB", &admin_url, &e));
        admin
            .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
            ))))
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let _ = admin.close().await;
        TestDb {
            url: with_database(&admin_url, &name),
            engine: Engine::MariaDb,
            name,
            admin_url,
            _dir: None,
        }
    }

    /// A new empty SQLite database file in its own temporary directory.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("cannot create a temporary directory");
        let path = dir.path().join("test.db");
        let path = path
            .to_str()
            .expect("temporary path is not UTF-8")
            .to_owned();
        TestDb {
            url: format!("sqlite://{path}?mode=rwc"),
            engine: Engine::Sqlite,
            name: path,
            admin_url: String::new(),
            _dir: Some(dir),
        }
    }

    /// Runs fixture SQL (several statements allowed) on this database with the test
    /// account, outside any Gatehouse guard.
    pub async fn exec(&self, sql: &str) {
        let sql = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()));
        let result = match self.engine {
            Engine::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("connect");
                let result = conn.execute(sql).await.map(|_| ());
                let _ = conn.close().await;
                result
            }
            Engine::MariaDb => {
                let mut conn = sqlx::MySqlConnection::connect(&self.url)
                    .await
                    .expect("connect");
                let result = conn.execute(sql).await.map(|_| ());
                let _ = conn.close().await;
                result
            }
            Engine::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("connect");
                let result = conn.execute(sql).await.map(|_| ());
                let _ = conn.close().await;
                result
            }
        };
        if let Err(e) = result {
            panic!("fixture SQL failed on {:?}: {e}", self.engine);
        }
    }

    /// A datasource configuration for this database.
    pub fn config(&self, name: &str, environment: &str) -> DatasourceConfig {
        DatasourceConfig {
            name: DatasourceName::parse(name).expect("datasource name"),
            environment: EnvironmentName::parse(environment).expect("environment name"),
            url: DatabaseUrl::new(self.url.clone()),
            read_url: None,
            max_connections: 2,
            statement_timeout_ms: 5_000,
            max_rows: 1_000,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let drop_sql = match self.engine {
            Engine::Sqlite => return, // the temporary directory goes with `_dir`
            Engine::Postgres => format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
            Engine::MariaDb => format!("DROP DATABASE IF EXISTS `{}`", self.name),
        };
        let (engine, admin_url) = (self.engine, self.admin_url.clone());
        // `Drop` cannot await, and blocking on the test's own runtime would deadlock a
        // current-thread runtime: drop from a thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                let sql = sqlx::raw_sql(sqlx::AssertSqlSafe(drop_sql));
                match engine {
                    Engine::Postgres => {
                        let mut conn = sqlx::PgConnection::connect(&admin_url)
                            .await
                            .map_err(|e| e.to_string())?;
                        conn.execute(sql).await.map_err(|e| e.to_string())?;
                        let _ = conn.close().await;
                    }
                    _ => {
                        let mut conn = sqlx::MySqlConnection::connect(&admin_url)
                            .await
                            .map_err(|e| e.to_string())?;
                        conn.execute(sql).await.map_err(|e| e.to_string())?;
                        let _ = conn.close().await;
                    }
                }
                Ok::<(), String>(())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("warning: cannot drop test database {}: {e}", self.name);
        }
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn random_name() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("gh_test_{}", &hex[..16])
}

/// `scheme://user:pass@host:port/<database>?query`, with only the database replaced.
fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    let authority = location
        .split_once('/')
        .map_or(location, |(authority, _)| authority);
    match query {
        Some(query) => format!("{scheme}://{authority}/{database}?{query}"),
        None => format!("{scheme}://{authority}/{database}"),
    }
}

/// `host:port` of a URL, without credentials.
fn server_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
}

fn unreachable_server(engine: &str, url: &str, error: &sqlx::Error) -> ! {
    panic!(
        "{engine} is not reachable at {} ({error}): run scripts/test.sh, which starts it",
        server_of(url)
    )
}
