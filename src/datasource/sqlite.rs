//! SQLite: pools, the statement deadline, the one-statement backstop, and decoding by
//! storage class.
//!
//! Two things sqlx does not do for SQLite are done here, on the raw connection handle
//! (locked out of sqlx's worker thread for the duration):
//!
//! - **One statement.** sqlx runs *every* statement in a SQLite query string, one after
//!   the other (`SELECT 1; DELETE FROM t` deletes). Before execution the text is compiled
//!   with `sqlite3_prepare_v2`, SQLite's own parser, and refused if anything but
//!   whitespace, comments or semicolons follows the first statement. The same compile
//!   yields the column names and declared types, which a result without rows needs.
//! - **A deadline.** SQLite has no statement timeout. A progress handler, called every
//!   few thousand virtual-machine instructions, interrupts the statement once the deadline
//!   has passed, so a runaway recursive CTE stops and frees the worker thread.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::Arc;
use std::time::Instant;

use sqlx::query::Query;
use sqlx::sqlite::{
    LockedSqliteHandle, Sqlite, SqliteArguments, SqliteConnectOptions, SqliteConnection,
    SqlitePool, SqliteRow,
};
use sqlx::{
    AssertSqlSafe, ConnectOptions as _, Decode, Executor as _, Row as _, TypeInfo as _,
    ValueRef as _,
};

use super::run::{
    Baseline, RowDecoder, checkout, collect, connect_options, non_database_error, pool_options,
    release_within, unavailable,
};
use super::{
    Access, Column, DatasourceError, ExecError, Param, PoolSettings, QueryResult, Statement, Value,
    millis,
};
use crate::config::DatasourceConfig;

/// Virtual-machine instructions between deadline checks: about 10 µs of work, so the
/// check (one clock read) costs well under 1 % and the deadline overshoots by microseconds.
const PROGRESS_INSTRUCTIONS: i32 = 1_000;

/// SQLITE_READONLY: a write under `query_only` (or on a read-only file).
const SQLITE_READONLY: i32 = 8;
/// SQLITE_INTERRUPT: our progress handler stopped the statement.
const SQLITE_INTERRUPT: i32 = 9;

pub(crate) struct SqlitePools {
    pub(super) read: SqlitePool,
    pub(super) write: SqlitePool,
}

impl SqlitePools {
    pub fn new(
        config: &DatasourceConfig,
        settings: &PoolSettings,
    ) -> Result<SqlitePools, DatasourceError> {
        let (read_options, write_options) = connect_options::<SqliteConnectOptions>(config)?;
        let options = |options: SqliteConnectOptions| {
            options
                // Waiting for a lock counts against the statement's time like anything else.
                .busy_timeout(settings.timeout)
                .disable_statement_logging()
        };
        let datasource: Arc<str> = config.name.as_str().into();
        let limit = settings.timeout;
        let pool = |options: SqliteConnectOptions| {
            let baseline = Baseline::default();
            let on_release = baseline.clone();
            let datasource = Arc::clone(&datasource);
            let on_release_datasource = Arc::clone(&datasource);
            pool_options::<Sqlite>(settings)
                .after_connect(move |conn, _meta| {
                    let (baseline, datasource) = (baseline.clone(), Arc::clone(&datasource));
                    Box::pin(async move { record(conn, &baseline, &datasource).await })
                })
                .after_release(move |conn, _meta| {
                    let baseline = on_release.clone();
                    let datasource = Arc::clone(&on_release_datasource);
                    Box::pin(release_within(limit, async move {
                        still_clean(conn, &baseline, &datasource).await
                    }))
                })
                .connect_lazy_with(options)
        };
        Ok(SqlitePools {
            read: pool(options(read_options).pragma("query_only", "ON")),
            write: pool(options(write_options)),
        })
    }

    pub async fn execute(&self, statement: &Statement<'_>) -> Result<QueryResult, ExecError> {
        let timeout_ms = millis(statement.timeout);
        let mut conn = checkout(&self.read, &self.write, statement).await?;
        let deadline = Instant::now() + statement.timeout;
        let shape = {
            let mut handle = conn
                .lock_handle()
                .await
                .map_err(|e| unavailable(statement.datasource, timeout_ms, &e))?;
            // Replaces the previous statement's handler, so a stale deadline never fires.
            handle.set_progress_handler(PROGRESS_INSTRUCTIONS, move || Instant::now() < deadline);
            inspect(&mut handle, statement.sql, statement.access)
        };
        let shape = match shape {
            Ok(Some(shape)) => shape,
            Ok(None) => {
                // Only whitespace and comments: nothing to run.
                conn.reusable();
                return Ok(QueryResult {
                    columns: Vec::new(),
                    rows: Vec::new(),
                    truncated: false,
                    rows_affected: 0,
                });
            }
            Err(error) => {
                conn.reusable();
                return Err(error);
            }
        };
        let query = query(statement.sql, statement.params);
        let map_error = |e| map_error(statement.datasource, timeout_ms, e);
        let start = |first: &SqliteRow| SqliteDecoder::start(&shape, first);
        let outcome = collect(
            statement,
            conn.fetch_many(query),
            start,
            |done| done.rows_affected(),
            map_error,
        )
        .await;
        // A cut result leaves nothing on a socket: sqlx's worker stops stepping and resets
        // the statement when the stream is dropped.
        let collected = conn.settle(outcome, true)?;
        let columns = match collected.columns.clone() {
            Some(columns) => columns,
            None => shape.columns(),
        };
        Ok(collected.into_result(columns))
    }
}

/// Keeps a released connection only while its session is as it was set up; one a
/// statement changed is closed (SQLite rolls back a transaction left open), and the next
/// statement opens a fresh one.
///
/// Checked: no transaction open (one would keep its locks while the connection sits in
/// the pool, blocking every other writer), and the [`fingerprint`] equal to the pool's
/// [`Baseline`]. It all runs in-process under one lock of the handle. [`inspect`] also
/// rolls back and sets `query_only` again before every statement, so this is the second
/// line, not the only one.
async fn still_clean(
    conn: &mut SqliteConnection,
    baseline: &Baseline,
    datasource: &str,
) -> Result<bool, sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    // The last statement's deadline must not interrupt the check.
    handle.remove_progress_handler();
    let db = handle.as_raw_handle().as_ptr().cast::<c_void>();
    // SAFETY: `db` is a live connection, locked out of sqlx's worker thread while `handle`
    // is held.
    if unsafe { ffi::sqlite3_get_autocommit(db) } == 0 {
        tracing::warn!(
            datasource,
            "a statement left the session in a transaction; closing the connection instead of reusing it"
        );
        return Ok(false);
    }
    // SAFETY: as above.
    let fingerprint = unsafe { fingerprint(db) }?;
    Ok(baseline.matches(datasource, &fingerprint))
}

/// Records the fingerprint of a connection just opened.
async fn record(
    conn: &mut SqliteConnection,
    baseline: &Baseline,
    datasource: &str,
) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr().cast::<c_void>();
    // SAFETY: `db` is a live connection, locked out of sqlx's worker thread while `handle`
    // is held.
    let fingerprint = unsafe { fingerprint(db) }?;
    baseline.record(datasource, fingerprint);
    Ok(())
}

/// The session state a statement could change and that would outlive it: the number of
/// temporary tables, views, triggers and indexes (a temporary trigger fires on the next
/// caller's writes, a temporary table shadows a real one), and the per-connection
/// PRAGMAs that change what statements do or may do, or whether others can get at the
/// database (`locking_mode = EXCLUSIVE` keeps its locks). File-level settings
/// (`journal_mode`, `page_size`, …) are not session state and are left out.
const FINGERPRINT: &CStr = c"SELECT (SELECT count(*) FROM temp.sqlite_schema) \
    || ',' || (SELECT * FROM pragma_query_only) \
    || ',' || (SELECT * FROM pragma_foreign_keys) \
    || ',' || (SELECT * FROM pragma_ignore_check_constraints) \
    || ',' || (SELECT * FROM pragma_recursive_triggers) \
    || ',' || (SELECT * FROM pragma_writable_schema) \
    || ',' || (SELECT * FROM pragma_trusted_schema) \
    || ',' || (SELECT * FROM pragma_locking_mode) \
    || ',' || (SELECT * FROM pragma_synchronous) \
    || ',' || (SELECT * FROM pragma_busy_timeout) \
    || ',' || (SELECT * FROM pragma_max_page_count)";

/// Runs [`FINGERPRINT`] on the raw handle.
///
/// # Safety
/// `db` must be a valid connection handle, locked out of sqlx's worker thread.
unsafe fn fingerprint(db: *mut c_void) -> Result<String, sqlx::Error> {
    let mut stmt: *mut c_void = std::ptr::null_mut();
    // SAFETY: per the contract; `FINGERPRINT` is NUL-terminated (length -1); the statement
    // is finalized before returning, and the text is copied before that.
    unsafe {
        let rc = ffi::sqlite3_prepare_v2(
            db,
            FINGERPRINT.as_ptr(),
            -1,
            &mut stmt,
            std::ptr::null_mut(),
        );
        let text = if rc == ffi::SQLITE_OK && ffi::sqlite3_step(stmt) == ffi::SQLITE_ROW {
            let text = ffi::sqlite3_column_text(stmt, 0);
            (!text.is_null()).then(|| {
                CStr::from_ptr(text.cast::<c_char>())
                    .to_string_lossy()
                    .into_owned()
            })
        } else {
            None
        };
        let error = text.is_none().then(|| compile_error(db));
        ffi::sqlite3_finalize(stmt);
        text.ok_or_else(|| {
            sqlx::Error::Protocol(format!(
                "reading the session state failed: {}",
                error.map(|e| e.to_string()).unwrap_or_default()
            ))
        })
    }
}

/// The statement with every parameter bound by its type. SQLite has no boolean or JSON
/// type: booleans go as 1/0, JSON as its text.
fn query(sql: &str, params: &[Param]) -> Query<'static, Sqlite, SqliteArguments> {
    params.iter().fold(
        sqlx::query(AssertSqlSafe(sql.to_owned())).persistent(false),
        |query, param| match param {
            Param::Null => query.bind(Option::<String>::None),
            Param::Bool(b) => query.bind(*b),
            Param::Int(v) => query.bind(*v),
            Param::Float(v) => query.bind(*v),
            Param::Text(s) => query.bind(s.clone()),
            Param::Json(j) => query.bind(j.to_string()),
        },
    )
}

fn map_error(datasource: &str, timeout_ms: u64, error: sqlx::Error) -> ExecError {
    let sqlx::Error::Database(db) = error else {
        return non_database_error(datasource, timeout_ms, error);
    };
    let code = db.code().and_then(|c| c.parse::<i32>().ok());
    // Extended result codes keep the primary code in the low byte.
    match code.map(|c| c & 0xff) {
        Some(SQLITE_INTERRUPT) => ExecError::Timeout {
            after_ms: timeout_ms,
        },
        Some(SQLITE_READONLY) => ExecError::ReadOnly,
        _ => ExecError::Database {
            message: db.message().to_owned(),
            code: code.map(|c| c.to_string()),
        },
    }
}

/// Name and declared type (lower case) of every result column, from compiling the
/// statement.
struct Shape {
    columns: Vec<(String, Option<String>)>,
}

impl Shape {
    /// Columns when no row arrived: undeclared types have no value to take a class from.
    fn columns(&self) -> Vec<Column> {
        self.columns
            .iter()
            .map(|(name, declared)| Column {
                name: name.clone(),
                type_name: declared.clone().unwrap_or_default(),
            })
            .collect()
    }
}

mod ffi {
    use std::ffi::{c_char, c_int, c_void};

    pub const SQLITE_OK: c_int = 0;
    pub const SQLITE_ROW: c_int = 100;

    // The bundled SQLite that libsqlite3-sys (through sqlx) links into this binary. The
    // handle is declared as `c_void`: the same pointer sqlx hands out as `*mut sqlite3`.
    unsafe extern "C" {
        pub fn sqlite3_prepare_v2(
            db: *mut c_void,
            sql: *const c_char,
            n_byte: c_int,
            stmt: *mut *mut c_void,
            tail: *mut *const c_char,
        ) -> c_int;
        pub fn sqlite3_finalize(stmt: *mut c_void) -> c_int;
        pub fn sqlite3_step(stmt: *mut c_void) -> c_int;
        pub fn sqlite3_column_text(stmt: *mut c_void, n: c_int) -> *const u8;
        pub fn sqlite3_column_count(stmt: *mut c_void) -> c_int;
        pub fn sqlite3_column_name(stmt: *mut c_void, n: c_int) -> *const c_char;
        pub fn sqlite3_column_decltype(stmt: *mut c_void, n: c_int) -> *const c_char;
        pub fn sqlite3_errmsg(db: *mut c_void) -> *const c_char;
        pub fn sqlite3_extended_errcode(db: *mut c_void) -> c_int;
        pub fn sqlite3_stmt_readonly(stmt: *mut c_void) -> c_int;
        pub fn sqlite3_limit(db: *mut c_void, id: c_int, new_value: c_int) -> c_int;
        pub fn sqlite3_get_autocommit(db: *mut c_void) -> c_int;
        pub fn sqlite3_exec(
            db: *mut c_void,
            sql: *const c_char,
            callback: Option<
                unsafe extern "C" fn(
                    *mut c_void,
                    c_int,
                    *mut *mut c_char,
                    *mut *mut c_char,
                ) -> c_int,
            >,
            arg: *mut c_void,
            errmsg: *mut *mut c_char,
        ) -> c_int;
    }

    pub const SQLITE_LIMIT_ATTACHED: c_int = 7;
}

/// Compiles `sql` statement by statement without running anything: `Ok(None)` when it
/// holds no statement, the first statement's shape when it holds exactly one, and an error
/// when it holds more or does not compile.
///
/// The connection state is reset first, since SQLite runs in-process and this costs
/// microseconds, not round trips: a transaction an earlier statement left open is rolled
/// back, `ATTACH` is switched off (it would open, or create, any file the service can
/// reach, and stay attached to the pooled connection), and on the read pool `query_only`
/// is set again (a `PRAGMA query_only = 0` lasts one statement). Then on the read pool a
/// statement SQLite itself says writes is refused before it runs: `query_only` stops
/// writes to the database, but `VACUUM INTO` creates its output file before failing.
fn inspect(
    handle: &mut LockedSqliteHandle<'_>,
    sql: &str,
    access: Access,
) -> Result<Option<Shape>, ExecError> {
    let db = handle.as_raw_handle().as_ptr().cast::<c_void>();
    // SAFETY: `db` is a live connection, locked out of sqlx's worker thread (see below);
    // the SQL strings are NUL-terminated literals.
    unsafe {
        if ffi::sqlite3_get_autocommit(db) == 0 {
            ffi::sqlite3_exec(
                db,
                c"ROLLBACK".as_ptr(),
                None,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
        ffi::sqlite3_limit(db, ffi::SQLITE_LIMIT_ATTACHED, 0);
        if access == Access::Read
            && ffi::sqlite3_exec(
                db,
                c"PRAGMA query_only = 1".as_ptr(),
                None,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            ) != ffi::SQLITE_OK
        {
            return Err(compile_error(db));
        }
    }
    let base = sql.as_ptr().cast::<c_char>();
    let mut offset = 0_usize;
    let mut shape = None;
    while offset < sql.len() {
        let remaining = c_int::try_from(sql.len() - offset).map_err(|_| ExecError::Database {
            message: "the statement text is too long".to_owned(),
            code: None,
        })?;
        let mut stmt: *mut c_void = std::ptr::null_mut();
        let mut tail: *const c_char = std::ptr::null();
        // SAFETY: `db` is a live connection that stays locked out of sqlx's worker thread
        // while `handle` is borrowed; `base + offset .. + remaining` lies inside `sql`
        // (offset only grows to a `tail` SQLite returned, which points into the input);
        // every statement compiled here is finalized before the next iteration.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(db, base.add(offset), remaining, &mut stmt, &mut tail)
        };
        if rc != ffi::SQLITE_OK {
            // SAFETY: finalizing a null statement is a no-op; otherwise as above.
            unsafe { ffi::sqlite3_finalize(stmt) };
            return Err(if shape.is_some() {
                more_than_one_statement()
            } else {
                // SAFETY: as above; the message is copied before the handle is released.
                unsafe { compile_error(db) }
            });
        }
        if !stmt.is_null() {
            let first = shape.is_none();
            // SAFETY: `stmt` is a valid statement until finalized right after.
            let (columns, writes) = if first {
                unsafe { (columns(stmt), ffi::sqlite3_stmt_readonly(stmt) == 0) }
            } else {
                (Vec::new(), false)
            };
            // SAFETY: as above.
            unsafe { ffi::sqlite3_finalize(stmt) };
            if !first {
                return Err(more_than_one_statement());
            }
            if writes && access == Access::Read {
                return Err(ExecError::ReadOnly);
            }
            shape = Some(Shape { columns });
        }
        let consumed = (tail as usize).saturating_sub(base as usize);
        if tail.is_null() || consumed <= offset || consumed > sql.len() {
            break;
        }
        offset = consumed;
    }
    Ok(shape)
}

fn more_than_one_statement() -> ExecError {
    ExecError::Database {
        message: "only one statement per request: remove everything after the first statement"
            .to_owned(),
        code: None,
    }
}

/// # Safety
/// `db` must be a valid, locked connection handle.
unsafe fn compile_error(db: *mut c_void) -> ExecError {
    // SAFETY: per the contract; the returned string lives until the next API call.
    let (message, code) = unsafe {
        (
            CStr::from_ptr(ffi::sqlite3_errmsg(db))
                .to_string_lossy()
                .into_owned(),
            ffi::sqlite3_extended_errcode(db),
        )
    };
    ExecError::Database {
        message,
        code: Some(code.to_string()),
    }
}

/// # Safety
/// `stmt` must be a valid, not yet finalized statement.
unsafe fn columns(stmt: *mut c_void) -> Vec<(String, Option<String>)> {
    let text = |ptr: *const c_char| {
        // SAFETY: SQLite returns null or a NUL-terminated UTF-8 string owned by `stmt`.
        (!ptr.is_null()).then(|| {
            unsafe { CStr::from_ptr(ptr) }
                .to_string_lossy()
                .into_owned()
        })
    };
    // SAFETY: per the contract.
    let count = unsafe { ffi::sqlite3_column_count(stmt) };
    (0..count)
        .map(|i| {
            // SAFETY: `i` is a valid column index of `stmt`.
            let (name, declared) = unsafe {
                (
                    ffi::sqlite3_column_name(stmt, i),
                    ffi::sqlite3_column_decltype(stmt, i),
                )
            };
            (
                text(name).unwrap_or_default(),
                text(declared).map(|t| t.to_lowercase()),
            )
        })
        .collect()
}

/// Storage classes, which are what SQLite values actually are whatever the declared type.
struct SqliteDecoder {
    names: Vec<String>,
}

impl SqliteDecoder {
    /// A column's type is its declared type, or for an expression the storage class of
    /// its value in the first row.
    fn start(shape: &Shape, first: &SqliteRow) -> Result<(Vec<Column>, SqliteDecoder), ExecError> {
        let mut columns = Vec::with_capacity(first.len());
        for i in 0..first.len() {
            let (name, declared) = shape.columns.get(i).cloned().unwrap_or_else(|| {
                let name = first
                    .columns()
                    .get(i)
                    .map(|c| sqlx::Column::name(c).to_owned());
                (name.unwrap_or_default(), None)
            });
            let type_name = match declared {
                Some(declared) => declared,
                None => match first.try_get_raw(i) {
                    Ok(raw) if raw.is_null() => "null".to_owned(),
                    Ok(raw) => raw.type_info().name().to_lowercase(),
                    Err(_) => String::new(),
                },
            };
            columns.push(Column { name, type_name });
        }
        let names = columns.iter().map(|c| c.name.clone()).collect();
        Ok((columns, SqliteDecoder { names }))
    }
}

impl RowDecoder<SqliteRow> for SqliteDecoder {
    fn decode(&mut self, row: &SqliteRow) -> Result<Vec<Value>, ExecError> {
        let mut values = Vec::with_capacity(self.names.len());
        for i in 0..row.len() {
            let unsupported = |type_name: &str| ExecError::UnsupportedType {
                column: self.names.get(i).cloned().unwrap_or_default(),
                type_name: type_name.to_lowercase(),
            };
            let raw = row.try_get_raw(i).map_err(|_| unsupported("unknown"))?;
            if raw.is_null() {
                values.push(Value::Null);
                continue;
            }
            let class = raw.type_info().name().to_owned();
            let value = match class.as_str() {
                "INTEGER" => <i64 as Decode<Sqlite>>::decode(raw).map(Value::Int),
                "REAL" => <f64 as Decode<Sqlite>>::decode(raw).map(Value::Float),
                // TEXT that is not valid UTF-8 (SQLite does not check) is returned as bytes
                // rather than altered.
                "TEXT" => match <String as Decode<Sqlite>>::decode(raw) {
                    Ok(text) => Ok(Value::Text(text)),
                    Err(_) => row
                        .try_get_raw(i)
                        .map_err(Into::into)
                        .and_then(<Vec<u8> as Decode<Sqlite>>::decode)
                        .map(Value::Bytes),
                },
                "BLOB" => <Vec<u8> as Decode<Sqlite>>::decode(raw).map(Value::Bytes),
                _ => return Err(unsupported(&class)),
            };
            values.push(value.map_err(|_| unsupported(&class))?);
        }
        Ok(values)
    }
}
