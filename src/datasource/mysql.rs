//! MariaDB (and MySQL): pools, session setup, typed parameters, and decoding.
//!
//! `sqlx::query` runs as a server-side prepared statement (COM_STMT_PREPARE/EXECUTE),
//! which accepts exactly one statement, and results come in the binary row format. Values
//! are decoded by the column's protocol type and flags: signedness from the UNSIGNED flag,
//! text or bytes from the collation (binary collation means bytes).

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use sqlx::mysql::types::{MySqlTime, MySqlTimeSign};
use sqlx::mysql::{
    MySql, MySqlArguments, MySqlConnectOptions, MySqlConnection, MySqlDatabaseError, MySqlPool,
    MySqlRow, MySqlTypeInfo, MySqlValueRef,
};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, ConnectOptions as _, Connection as _, Decode, Executor as _};
use sqlx::{SqlSafeStr as _, Type, TypeInfo as _};

use super::run::{
    Baseline, DecodeKind, TypedColumns, checkout, collect, connect_options, described_columns,
    non_database_error, pool_options, release_within,
};
use super::value::widen_f32;
use super::{
    Access, Column, DatasourceError, ExecError, Param, PoolSettings, QueryResult, Statement, Value,
    millis,
};
use crate::config::DatasourceConfig;

/// Prepared statements are cached per connection, and the cache is emptied when it
/// reaches [`STATEMENT_CACHE_TRIM_AT`], on release, off the caller's path.
///
/// Why not prepare and close every time: sqlx 0.9.0 does not set `TCP_NODELAY`
/// (sqlx issue #4335, fixed upstream by pull request #4336), and COM_STMT_CLOSE gets no reply, so
/// the next request waits in Nagle's algorithm for the server's delayed ACK: about 40 ms
/// per statement, measured here, against 0.1 ms with the cache. An LRU eviction sends the
/// same close inline, hence trimming before the cache is full. The cache is safe for
/// arbitrary SQL: parameter types travel with each execution, and the server re-prepares
/// and re-sends column definitions after DDL.
const STATEMENT_CACHE_CAPACITY: usize = 100;
const STATEMENT_CACHE_TRIM_AT: usize = 64;

/// ER_UNKNOWN_SYSTEM_VARIABLE: `max_statement_time` on MySQL, which calls it otherwise.
const ER_UNKNOWN_SYSTEM_VARIABLE: u16 = 1193;
/// ER_STATEMENT_TIMEOUT (MariaDB `max_statement_time`).
const ER_STATEMENT_TIMEOUT: u16 = 1969;
/// ER_QUERY_TIMEOUT (MySQL `max_execution_time`).
const ER_QUERY_TIMEOUT: u16 = 3024;
/// ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION.
const ER_READ_ONLY_TRANSACTION: u16 = 1792;

pub(crate) struct MySqlPools {
    pub(super) read: MySqlPool,
    pub(super) write: MySqlPool,
}

impl MySqlPools {
    pub fn new(
        config: &DatasourceConfig,
        settings: &PoolSettings,
    ) -> Result<MySqlPools, DatasourceError> {
        let (read_options, write_options) = connect_options::<MySqlConnectOptions>(config)?;
        let options = |options: MySqlConnectOptions| {
            options
                // TIMESTAMP values are sent in the session time zone: UTC makes them
                // instants (`TimestampTz`) rather than local wall-clock times.
                .timezone(Some("+00:00".to_owned()))
                // Keep the server's own meaning of `||` (OR unless the server's sql_mode
                // says otherwise); sqlx would otherwise switch it to concatenation.
                .pipes_as_concat(false)
                .statement_cache_capacity(STATEMENT_CACHE_CAPACITY)
                .disable_statement_logging()
        };
        let timeout_ms = millis(settings.timeout);
        let limit = settings.timeout;
        let datasource: Arc<str> = config.name.as_str().into();
        let pool = |options: MySqlConnectOptions, access: Access| {
            let check = SessionCheck::new(Arc::clone(&datasource), access);
            let on_release = check.clone();
            pool_options::<MySql>(settings)
                .after_connect(move |conn, _meta| {
                    let check = check.clone();
                    Box::pin(async move {
                        let flavor = set_up_session(conn, access, timeout_ms).await?;
                        check.record(conn, flavor).await
                    })
                })
                .after_release(move |conn, _meta| {
                    let check = on_release.clone();
                    Box::pin(release_within(limit, async move {
                        if conn.cached_statements_size() >= STATEMENT_CACHE_TRIM_AT {
                            conn.clear_cached_statements().await?;
                        }
                        check.still_clean(conn).await
                    }))
                })
                .connect_lazy_with(options)
        };
        Ok(MySqlPools {
            read: pool(options(read_options), Access::Read),
            write: pool(options(write_options), Access::Write),
        })
    }

    pub async fn execute(&self, statement: &Statement<'_>) -> Result<QueryResult, ExecError> {
        let mut conn = checkout(&self.read, &self.write, statement).await?;
        let outcome = collect(
            statement,
            conn.fetch_many(query(statement.sql, statement.params)),
            start,
            |done| done.rows_affected(),
            |e| map_error(statement.datasource, millis(statement.timeout), e),
        )
        .await;
        let collected = conn.settle(outcome, false)?;
        let columns = match collected.columns.clone() {
            Some(columns) => columns,
            None => describe(&mut conn, statement.sql).await,
        };
        Ok(collected.into_result(columns))
    }
}

/// The server behind a pool, told apart by the session variable that carries the statement
/// timeout: their names for session state differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    MariaDb,
    MySql,
}

/// Runs once per new connection, so it costs nothing per statement. The read pool's
/// sessions refuse writes (`SET SESSION TRANSACTION READ ONLY` applies to every later
/// transaction, autocommit statements included); both pools get the server-side timeout.
async fn set_up_session(
    conn: &mut MySqlConnection,
    access: Access,
    timeout_ms: u64,
) -> Result<Flavor, sqlx::Error> {
    if access == Access::Read {
        conn.execute(sqlx::raw_sql("SET SESSION TRANSACTION READ ONLY"))
            .await?;
    }
    let seconds = format!("{}.{:03}", timeout_ms / 1000, timeout_ms % 1000);
    let mariadb = conn
        .execute(sqlx::raw_sql(AssertSqlSafe(format!(
            "SET SESSION max_statement_time = {seconds}"
        ))))
        .await;
    match mariadb {
        Ok(_) => Ok(Flavor::MariaDb),
        Err(sqlx::Error::Database(e))
            if e.try_downcast_ref::<MySqlDatabaseError>()
                .map(MySqlDatabaseError::number)
                == Some(ER_UNKNOWN_SYSTEM_VARIABLE) =>
        {
            // MySQL: milliseconds, and for SELECT only.
            conn.execute(sqlx::raw_sql(AssertSqlSafe(format!(
                "SET SESSION max_execution_time = {timeout_ms}"
            ))))
            .await?;
            Ok(Flavor::MySql)
        }
        Err(e) => Err(e),
    }
}

/// Keeps a pooled session only while it is as it was set up; one a statement changed is
/// closed, and the next statement gets a fresh session.
///
/// Why a check rather than a reset: sqlx 0.9 does not expose `COM_RESET_CONNECTION`, and
/// SQL cannot undo everything a session may hold. `ROLLBACK` plus re-applying our
/// settings would leave temporary tables (which shadow real tables of the same name, so
/// the next caller's `INSERT INTO t` would vanish into one), statements prepared with
/// `PREPARE` (from a procedure: the prepared-statement protocol refuses `PREPARE`
/// itself), open `HANDLER`s, user variables, and every setting we did not think to
/// re-apply; MariaDB 10.11 cannot even list a session's temporary tables or prepared
/// statements. Policy refuses statements that change the session, so this is the
/// backstop for the rare session that got changed anyway, and closing it costs nothing
/// in the common case.
///
/// The check is one round trip when the connection goes back to the pool, off the
/// caller's path. It reads a fingerprint of the session and compares it with the one the
/// pool's sessions had right after set-up ([`Baseline`]):
///
/// - on both pools: an open transaction, autocommit, read-only, isolation level,
///   `sql_mode`, time zone, character sets and collation (all of which change what a
///   statement means or may do), the statement timeout, `sql_select_limit`, the default
///   database, and named locks (`RELEASE_ALL_LOCKS()`, which also releases them);
/// - on the write pool also user variables, and the session's counters of statements
///   that leave state behind: any `SET` (also one run inside a procedure), `CREATE
///   TEMPORARY TABLE`, `PREPARE`, `LOCK TABLES`, `HANDLER … OPEN`, `USE`, `FLUSH`,
///   `XA START`. MariaDB cannot list what they made, but it counts them.
///
/// The read pool checks less because every read pays for it: the settings cost the server
/// tens of microseconds, while the user-variable table and the counters cost about 0.1
/// and 0.5 ms, more than a short read itself. So a temporary table, a `LOCK TABLES` or a
/// user variable made by a statement on the read pool is not detected (its connections
/// refuse writes to real tables, not these). A `read_url` account with only SELECT (no
/// CREATE TEMPORARY TABLES, no LOCK TABLES) closes most of that gap.
///
/// On MySQL (best effort) the fingerprint covers the settings and named locks only: it has
/// neither `@@in_transaction` nor these counters.
#[derive(Clone)]
struct SessionCheck {
    datasource: Arc<str>,
    access: Access,
    /// Which fingerprint query fits the server; learned when the first session is set up.
    flavor: Arc<OnceLock<Flavor>>,
    baseline: Baseline,
}

impl SessionCheck {
    fn new(datasource: Arc<str>, access: Access) -> SessionCheck {
        SessionCheck {
            datasource,
            access,
            flavor: Arc::default(),
            baseline: Baseline::default(),
        }
    }

    /// Records the fingerprint of a session just set up.
    async fn record(&self, conn: &mut MySqlConnection, flavor: Flavor) -> Result<(), sqlx::Error> {
        let flavor = *self.flavor.get_or_init(|| flavor);
        let fingerprint = fingerprint(conn, flavor, self.access).await?;
        self.baseline.record(&self.datasource, fingerprint);
        Ok(())
    }

    /// Whether a released session may go back to the pool.
    async fn still_clean(&self, conn: &mut MySqlConnection) -> Result<bool, sqlx::Error> {
        let Some(&flavor) = self.flavor.get() else {
            return Ok(false);
        };
        let fingerprint = fingerprint(conn, flavor, self.access).await?;
        Ok(self.baseline.matches(&self.datasource, &fingerprint))
    }
}

async fn fingerprint(
    conn: &mut MySqlConnection,
    flavor: Flavor,
    access: Access,
) -> Result<String, sqlx::Error> {
    let sql = match (flavor, access) {
        (Flavor::MariaDb, Access::Read) => MARIADB_READ_FINGERPRINT,
        (Flavor::MariaDb, Access::Write) => MARIADB_WRITE_FINGERPRINT,
        (Flavor::MySql, _) => MYSQL_FINGERPRINT,
    };
    sqlx::query_scalar(sql).fetch_one(conn).await
}

/// What both pools check on MariaDB (see [`SessionCheck`]). `CONCAT_WS` skips NULLs, hence
/// `IFNULL` on what may be NULL.
macro_rules! mariadb_session {
    () => {
        "@@in_transaction, @@autocommit, @@tx_read_only, @@tx_isolation, @@sql_mode, \
         @@time_zone, @@character_set_client, @@character_set_connection, \
         IFNULL(@@character_set_results, 'NULL'), @@collation_connection, \
         @@max_statement_time, @@sql_select_limit, IFNULL(DATABASE(), 'NULL'), \
         RELEASE_ALL_LOCKS()"
    };
}

const MARIADB_READ_FINGERPRINT: &str = concat!("SELECT CONCAT_WS('|', ", mariadb_session!(), ")");

const MARIADB_WRITE_FINGERPRINT: &str = concat!(
    "SELECT CONCAT_WS('|', ",
    mariadb_session!(),
    ", (SELECT COUNT(*) FROM information_schema.USER_VARIABLES), \
     (SELECT GROUP_CONCAT(VARIABLE_NAME, '=', VARIABLE_VALUE ORDER BY VARIABLE_NAME) \
      FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME IN ( \
        'COM_SET_OPTION', 'COM_CREATE_TEMPORARY_TABLE', 'COM_PREPARE_SQL', 'COM_LOCK_TABLES', \
        'COM_HA_OPEN', 'COM_CHANGE_DB', 'COM_FLUSH', 'COM_XA_START')))"
);

const MYSQL_FINGERPRINT: &str = "SELECT CONCAT_WS('|', \
    @@autocommit, @@transaction_read_only, @@transaction_isolation, @@sql_mode, @@time_zone, \
    @@character_set_client, @@character_set_connection, \
    IFNULL(@@character_set_results, 'NULL'), @@collation_connection, @@max_execution_time, \
    @@sql_select_limit, IFNULL(DATABASE(), 'NULL'), RELEASE_ALL_LOCKS())";

/// The statement with every parameter bound by its type. MariaDB has no boolean or JSON
/// parameter type: booleans go as TINYINT 1/0, JSON as its text.
fn query(sql: &str, params: &[Param]) -> Query<'static, MySql, MySqlArguments> {
    params.iter().fold(
        sqlx::query(AssertSqlSafe(sql.to_owned())),
        |query, param| match param {
            Param::Null => query.bind(Option::<String>::None),
            Param::Bool(b) => query.bind(*b),
            Param::Int(v) => query.bind(*v),
            Param::Float(v) => query.bind(*v),
            Param::Text(s) => query.bind(s.as_str()),
            Param::Json(j) => query.bind(j.to_string()),
        },
    )
}

/// The columns of a statement that returned no row, from its prepared form (nothing runs;
/// the statement is in the connection's cache already).
async fn describe(conn: &mut MySqlConnection, sql: &str) -> Vec<Column> {
    let prepared = conn
        .prepare(AssertSqlSafe(sql.to_owned()).into_sql_str())
        .await;
    described_columns(prepared, plan)
}

fn map_error(datasource: &str, timeout_ms: u64, error: sqlx::Error) -> ExecError {
    let sqlx::Error::Database(db) = error else {
        return non_database_error(datasource, timeout_ms, error);
    };
    let number = db
        .try_downcast_ref::<MySqlDatabaseError>()
        .map(MySqlDatabaseError::number);
    match number {
        Some(ER_STATEMENT_TIMEOUT | ER_QUERY_TIMEOUT) => ExecError::Timeout {
            after_ms: timeout_ms,
        },
        Some(ER_READ_ONLY_TRANSACTION) => ExecError::ReadOnly,
        _ => ExecError::Database {
            message: db.message().to_owned(),
            code: db.code().map(|c| c.into_owned()),
        },
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Null,
    Signed,
    Unsigned,
    /// `BIGINT UNSIGNED`: may exceed `i64`.
    BigUnsigned,
    Float,
    Double,
    Decimal,
    Text,
    Bytes,
    Json,
    Date,
    Time,
    Datetime,
    Timestamp,
    Year,
    Bit,
}

/// The caller-facing type name of a column and how to decode it (`None`: unsupported).
fn plan(type_info: &MySqlTypeInfo) -> (String, Option<Kind>) {
    let unsigned = <u64 as Type<MySql>>::compatible(type_info);
    let textual = <String as Type<MySql>>::compatible(type_info);
    let name = type_info.name();
    let integer = |base: &str| {
        if unsigned {
            (format!("{base} unsigned"), Some(Kind::Unsigned))
        } else {
            (base.to_owned(), Some(Kind::Signed))
        }
    };
    // A string column with a `_bin` collation carries the BINARY flag, so sqlx names it
    // like its binary sibling; the collation tells the two apart.
    let stringish = |text_name: &str, binary_name: &str| {
        if textual {
            (text_name.to_owned(), Some(Kind::Text))
        } else {
            (binary_name.to_owned(), Some(Kind::Bytes))
        }
    };
    match name {
        // MariaDB has no boolean type: BOOLEAN is TINYINT(1), and its values are integers.
        "BOOLEAN" | "TINYINT" | "TINYINT UNSIGNED" => integer("tinyint"),
        "SMALLINT" | "SMALLINT UNSIGNED" => integer("smallint"),
        "MEDIUMINT" | "MEDIUMINT UNSIGNED" => integer("mediumint"),
        "INT" | "INT UNSIGNED" => integer("int"),
        "BIGINT" => ("bigint".to_owned(), Some(Kind::Signed)),
        "BIGINT UNSIGNED" => ("bigint unsigned".to_owned(), Some(Kind::BigUnsigned)),
        "FLOAT" => ("float".to_owned(), Some(Kind::Float)),
        "DOUBLE" => ("double".to_owned(), Some(Kind::Double)),
        "DECIMAL" => ("decimal".to_owned(), Some(Kind::Decimal)),
        "CHAR" | "BINARY" => stringish("char", "binary"),
        "VARCHAR" | "VARBINARY" => stringish("varchar", "varbinary"),
        "TINYTEXT" | "TINYBLOB" => stringish("tinytext", "tinyblob"),
        "TEXT" | "BLOB" => stringish("text", "blob"),
        "MEDIUMTEXT" | "MEDIUMBLOB" => stringish("mediumtext", "mediumblob"),
        "LONGTEXT" | "LONGBLOB" => stringish("longtext", "longblob"),
        "ENUM" => ("enum".to_owned(), Some(Kind::Text)),
        "SET" => ("set".to_owned(), Some(Kind::Text)),
        // MySQL's JSON type; MariaDB's JSON is LONGTEXT and arrives as text.
        "JSON" => ("json".to_owned(), Some(Kind::Json)),
        "DATE" => ("date".to_owned(), Some(Kind::Date)),
        "TIME" => ("time".to_owned(), Some(Kind::Time)),
        "DATETIME" => ("datetime".to_owned(), Some(Kind::Datetime)),
        "TIMESTAMP" => ("timestamp".to_owned(), Some(Kind::Timestamp)),
        "YEAR" => ("year".to_owned(), Some(Kind::Year)),
        "BIT" => ("bit".to_owned(), Some(Kind::Bit)),
        "NULL" => ("null".to_owned(), Some(Kind::Null)),
        other => (other.to_lowercase(), None),
    }
}

/// Columns and their decoding from the first row of a result.
fn start(first: &MySqlRow) -> Result<(Vec<Column>, TypedColumns<Kind>), ExecError> {
    TypedColumns::start(first, plan)
}

/// A value that is null by type includes the zero dates '0000-00-00' and
/// '0000-00-00 00:00:00', which are no date: they come back as null.
impl DecodeKind<MySql> for Kind {
    fn value(&self, raw: MySqlValueRef<'_>) -> Result<Value, String> {
        self.decode_raw(raw).map_err(|e| e.to_string())
    }
}

impl Kind {
    fn decode_raw(&self, raw: MySqlValueRef<'_>) -> Result<Value, sqlx::error::BoxDynError> {
        Ok(match self {
            Kind::Null => Value::Null,
            Kind::Date => Value::Date(<NaiveDate as Decode<MySql>>::decode(raw)?),
            Kind::Datetime => Value::Timestamp(<NaiveDateTime as Decode<MySql>>::decode(raw)?),
            Kind::Timestamp => Value::TimestampTz(<DateTime<Utc> as Decode<MySql>>::decode(raw)?),
            Kind::Time => time(<MySqlTime as Decode<MySql>>::decode(raw)?),
            other => other.decode_bytes(<&[u8] as Decode<MySql>>::decode(raw)?)?,
        })
    }

    /// Fixed-size numbers are little-endian in the binary row format; decimals, strings,
    /// blobs and BIT values are length-prefixed byte strings (the prefix already removed).
    fn decode_bytes(self, bytes: &[u8]) -> Result<Value, String> {
        Ok(match self {
            Kind::Signed => Value::Int(little_endian(bytes, true)?),
            Kind::Unsigned => Value::Int(little_endian(bytes, false)?),
            Kind::BigUnsigned => Value::UInt(u64::from_le_bytes(fixed(bytes)?)),
            Kind::Year => Value::Int(i64::from(u16::from_le_bytes(fixed(bytes)?))),
            Kind::Float => Value::Float(widen_f32(f32::from_le_bytes(fixed(bytes)?))),
            Kind::Double => Value::Float(f64::from_le_bytes(fixed(bytes)?)),
            Kind::Decimal => {
                Value::Decimal(String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())?)
            }
            Kind::Text => {
                Value::Text(String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())?)
            }
            Kind::Bytes => Value::Bytes(bytes.to_vec()),
            Kind::Json => {
                let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
                serde_json::from_str(text)
                    .map_or_else(|_| Value::Text(text.to_owned()), Value::Json)
            }
            // BIT(M), M ≤ 64: big-endian bits, returned as an unsigned integer.
            Kind::Bit => {
                if bytes.len() > 8 {
                    return Err(format!("BIT value of {} bytes", bytes.len()));
                }
                Value::UInt(bytes.iter().fold(0_u64, |acc, b| acc << 8 | u64::from(*b)))
            }
            Kind::Null | Kind::Date | Kind::Time | Kind::Datetime | Kind::Timestamp => {
                return Err("not a byte-string type".to_owned());
            }
        })
    }
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], String> {
    bytes
        .try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", bytes.len()))
}

/// A 1, 2, 4 or 8-byte little-endian integer (MEDIUMINT travels in 4 bytes).
fn little_endian(bytes: &[u8], signed: bool) -> Result<i64, String> {
    Ok(match (bytes.len(), signed) {
        (1, true) => i64::from(i8::from_le_bytes(fixed(bytes)?)),
        (1, false) => i64::from(u8::from_le_bytes(fixed(bytes)?)),
        (2, true) => i64::from(i16::from_le_bytes(fixed(bytes)?)),
        (2, false) => i64::from(u16::from_le_bytes(fixed(bytes)?)),
        (4, true) => i64::from(i32::from_le_bytes(fixed(bytes)?)),
        (4, false) => i64::from(u32::from_le_bytes(fixed(bytes)?)),
        (8, true) => i64::from_le_bytes(fixed(bytes)?),
        (8, false) => {
            i64::try_from(u64::from_le_bytes(fixed(bytes)?)).map_err(|e| e.to_string())?
        }
        (n, _) => return Err(format!("integer of {n} bytes")),
    })
}

/// MariaDB `TIME` is a duration from -838:59:59 to 838:59:59: a time of day when it is
/// one, else `[-]HHH:MM:SS[.ffffff]` as MariaDB prints it.
fn time(time: MySqlTime) -> Value {
    if time.is_valid_time_of_day()
        && let Some(t) = chrono::NaiveTime::from_hms_micro_opt(
            time.hours(),
            u32::from(time.minutes()),
            u32::from(time.seconds()),
            time.microseconds(),
        )
    {
        return Value::Time(t);
    }
    let sign = if time.sign() == MySqlTimeSign::Negative {
        "-"
    } else {
        ""
    };
    let mut text = format!(
        "{sign}{:02}:{:02}:{:02}",
        time.hours(),
        time.minutes(),
        time.seconds()
    );
    if time.microseconds() != 0 {
        text.push_str(&format!(".{:06}", time.microseconds()));
    }
    Value::Interval(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_by_width_and_sign() {
        assert_eq!(little_endian(&[0xff], true).unwrap(), -1);
        assert_eq!(little_endian(&[0xff], false).unwrap(), 255);
        assert_eq!(
            little_endian(&[0xff, 0xff, 0xff, 0x7f], true).unwrap(),
            i64::from(i32::MAX)
        );
        assert_eq!(
            little_endian(&[0xff; 4], false).unwrap(),
            i64::from(u32::MAX)
        );
        assert!(little_endian(&[0; 3], true).is_err());
        assert_eq!(
            Kind::BigUnsigned.decode_bytes(&[0xff; 8]).unwrap(),
            Value::UInt(u64::MAX)
        );
        assert_eq!(
            Kind::Bit.decode_bytes(&[0x01, 0x02]).unwrap(),
            Value::UInt(0x0102)
        );
    }

    #[test]
    fn times_outside_a_day_are_intervals() {
        let long = MySqlTime::new(MySqlTimeSign::Negative, 838, 59, 59, 0).unwrap();
        assert_eq!(time(long), Value::Interval("-838:59:59".into()));
        let day = MySqlTime::new(MySqlTimeSign::Positive, 13, 1, 2, 5).unwrap();
        assert_eq!(
            time(day),
            Value::Time(chrono::NaiveTime::from_hms_micro_opt(13, 1, 2, 5).unwrap())
        );
    }
}
