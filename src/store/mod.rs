//! The control store: Gatehouse's own state (audit events and approvals as those modules
//! land), in PostgreSQL for production or in a SQLite file in the data directory by default.
//!
//! Only this module knows the store's tables; other modules go through its functions.
//! Migrations are embedded in the binary and run at start-up, so a new replica or a new
//! version brings its schema with it.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use uuid::Uuid;

/// File name of the SQLite control store inside the data directory.
pub const SQLITE_FILE: &str = "control.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid control store URL: {0}")]
    Url(String),
    #[error("cannot open the control store: {0}")]
    Connect(String),
    #[error("control store migration failed: {0}")]
    Migrate(String),
    #[error("control store query failed: {0}")]
    Query(String),
}

#[derive(Clone, Debug)]
pub enum ControlStore {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl ControlStore {
    /// Opens the store named by `url`, or `DATA_DIR/control.db` when there is none, and
    /// brings its schema up to date.
    pub async fn open(url: Option<&str>, data_dir: &Path) -> Result<ControlStore, StoreError> {
        let store = match url {
            Some(url) if url.starts_with("postgres") => {
                let options = PgConnectOptions::from_str(url)
                    .map_err(|e| StoreError::Url(e.to_string()))?
                    .application_name("gatehouse-control");
                let pool = PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(options)
                    .await
                    .map_err(|e| StoreError::Connect(e.to_string()))?;
                sqlx::migrate!("./migrations/postgres")
                    .run(&pool)
                    .await
                    .map_err(|e| StoreError::Migrate(e.to_string()))?;
                ControlStore::Postgres(pool)
            }
            Some(url) => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(|e| StoreError::Url(e.to_string()))?;
                ControlStore::open_sqlite(options).await?
            }
            None => {
                let options = SqliteConnectOptions::new().filename(data_dir.join(SQLITE_FILE));
                ControlStore::open_sqlite(options).await?
            }
        };
        store.record_creation().await?;
        Ok(store)
    }

    async fn open_sqlite(options: SqliteConnectOptions) -> Result<ControlStore, StoreError> {
        // WAL lets readers (audit queries) run beside the single writer. FULL syncs the WAL
        // on every commit: an audit event acknowledged to a caller must survive a power
        // loss, which WAL's usual NORMAL does not promise. Set explicitly because sqlx
        // leaves it to the compile-time default.
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Connect(e.to_string()))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        Ok(ControlStore::Sqlite(pool))
    }

    /// Notes when this store was first created, by which version, and a random id for it;
    /// kept on restarts, and the first replica to start on a new store sets them for all.
    async fn record_creation(&self) -> Result<(), StoreError> {
        let now = chrono::Utc::now().to_rfc3339();
        let version = env!("CARGO_PKG_VERSION");
        let id = Uuid::new_v4().to_string();
        let sql = "INSERT INTO gatehouse_instance (key, value) VALUES ('created_at', $1), \
                   ('created_by_version', $2), ('store_id', $3) ON CONFLICT (key) DO NOTHING";
        let result = match self {
            ControlStore::Sqlite(pool) => sqlx::query(sql)
                .bind(&now)
                .bind(version)
                .bind(&id)
                .execute(pool)
                .await
                .map(|_| ()),
            ControlStore::Postgres(pool) => sqlx::query(sql)
                .bind(&now)
                .bind(version)
                .bind(&id)
                .execute(pool)
                .await
                .map(|_| ()),
        };
        result.map_err(|e| StoreError::Query(e.to_string()))
    }

    async fn instance_value(&self, key: &str) -> Result<String, StoreError> {
        let sql = "SELECT value FROM gatehouse_instance WHERE key = $1";
        let result = match self {
            ControlStore::Sqlite(pool) => sqlx::query_scalar(sql).bind(key).fetch_one(pool).await,
            ControlStore::Postgres(pool) => sqlx::query_scalar(sql).bind(key).fetch_one(pool).await,
        };
        result.map_err(|e| StoreError::Query(e.to_string()))
    }

    /// When this store was created (RFC 3339).
    pub async fn created_at(&self) -> Result<String, StoreError> {
        self.instance_value("created_at").await
    }

    /// A random id given to this store when it was created. Replicas sharing the store share
    /// it; deployments on different stores never do, so it scopes shared channels (Redis) to
    /// one deployment.
    pub async fn store_id(&self) -> Result<String, StoreError> {
        self.instance_value("store_id").await
    }

    /// Whether the store answers, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.created_at().await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_store_is_created_migrated_and_kept_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = ControlStore::open(None, dir.path()).await.unwrap();
        let created = store.created_at().await.unwrap();
        let id = store.store_id().await.unwrap();
        assert!(Uuid::parse_str(&id).is_ok(), "{id}");
        assert!(dir.path().join(SQLITE_FILE).exists());
        drop(store);
        let reopened = ControlStore::open(None, dir.path()).await.unwrap();
        assert_eq!(reopened.created_at().await.unwrap(), created);
        assert_eq!(reopened.store_id().await.unwrap(), id);
        let other = tempfile::tempdir().unwrap();
        let elsewhere = ControlStore::open(None, other.path()).await.unwrap();
        assert_ne!(elsewhere.store_id().await.unwrap(), id);
    }
}
