//! Driver-neutral execution: reading a result stream up to the row cap, and keeping a
//! pooled connection only when it is known to be clean.

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use sqlx::pool::{Pool, PoolConnection, PoolConnectionMetadata, PoolOptions};
use sqlx::{Column as _, ColumnIndex, Connection as _, Database, Either, Row, ValueRef as _};

use super::{Access, Column, DatasourceError, ExecError, PoolSettings, Statement, Value, millis};
use crate::config::DatasourceConfig;

/// The connect options of the read pool (`read_url`, else `url`) and of the write pool
/// (`url`). A malformed URL fails here, at start-up; its text is never echoed.
pub(crate) fn connect_options<O>(config: &DatasourceConfig) -> Result<(O, O), DatasourceError>
where
    O: FromStr<Err = sqlx::Error> + Clone,
{
    let parse = |field: &'static str, url: &str| {
        O::from_str(url).map_err(|e| DatasourceError::InvalidUrl {
            datasource: config.name.to_string(),
            field,
            message: e.to_string(),
        })
    };
    let write = parse("url", config.url.expose())?;
    let read = match &config.read_url {
        Some(url) => parse("read_url", url.expose())?,
        None => write.clone(),
    };
    Ok((read, write))
}

/// A connection that sat idle in the pool at least this long is pinged before it is handed
/// out; one released more recently is handed out as it is.
///
/// sqlx by default pings every connection it hands out: a round trip on the caller's path
/// for every statement. Here every release already talks to the server (the reset or the
/// state check of each driver, then sqlx's own ping on release), so a connection released
/// a moment ago is known to be alive and clean; only one that sat idle, and may have been
/// dropped by the server or by something in between, is tested first. The check moved
/// from acquire to release: a read still costs no extra round trip, and the caller no
/// longer waits for one.
const IDLE_PING_AFTER: Duration = Duration::from_secs(1);

/// Pool options shared by the drivers: size, acquire timeout, and the ping only for
/// connections that sat idle. Each driver adds its own session setup and release hook.
pub(crate) fn pool_options<DB: Database>(settings: &PoolSettings) -> PoolOptions<DB> {
    PoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.timeout)
        .test_before_acquire(false)
        .before_acquire(|conn: &mut DB::Connection, meta: PoolConnectionMetadata| {
            Box::pin(async move {
                if meta.idle_for >= IDLE_PING_AFTER {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// Runs a release hook (a reset or a state check) under a time limit.
///
/// `Ok(true)` returns the connection to the pool; `Ok(false)` closes it. A hook that does
/// not finish in time counts as a broken connection, which sqlx closes without a goodbye,
/// so a hung server cannot keep a pool slot.
pub(crate) async fn release_within(
    limit: Duration,
    hook: impl Future<Output = Result<bool, sqlx::Error>>,
) -> Result<bool, sqlx::Error> {
    tokio::time::timeout(limit, hook).await.unwrap_or_else(|_| {
        Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the connection check on release did not finish in time",
        )))
    })
}

/// How every session of one pool looks right after it was set up, as a fingerprint the
/// driver reads from the session (settings, counters, temporary objects); a released
/// connection goes back to the pool only while its session still matches it.
///
/// One fingerprint serves the whole pool: every session of a pool is set up by the same
/// code with the same options, and sqlx has no place to keep data per connection. Each
/// new session records its fingerprint before any statement runs on it, so the recorded
/// one is always trustworthy. Should new sessions start differently from older ones (an
/// administrator changed a server default such as the isolation level), the newest wins:
/// the older sessions fail their check at their next release and are replaced once,
/// rather than every new session being closed after its first statement.
#[derive(Clone, Default)]
pub(crate) struct Baseline(Arc<Mutex<Option<String>>>);

impl Baseline {
    pub fn record(&self, datasource: &str, fingerprint: String) {
        let Ok(mut recorded) = self.0.lock() else {
            return; // poisoned: `matches` fails closed
        };
        if let Some(previous) = recorded.as_deref()
            && previous != fingerprint
        {
            tracing::info!(
                datasource,
                previous,
                now = %fingerprint,
                "new database sessions start differently than before; older ones will be replaced"
            );
        }
        *recorded = Some(fingerprint);
    }

    /// Whether a released session is still as it was set up. A mismatch means a statement
    /// changed the session (policy should have refused it), so it is logged.
    pub fn matches(&self, datasource: &str, fingerprint: &str) -> bool {
        let Ok(recorded) = self.0.lock() else {
            return false;
        };
        let clean = recorded.as_deref() == Some(fingerprint);
        if !clean {
            tracing::warn!(
                datasource,
                expected = ?*recorded,
                found = %fingerprint,
                "a statement changed the database session; closing the connection instead of reusing it"
            );
        }
        clean
    }
}

/// A connection from the pool the statement's access calls for.
pub(crate) async fn checkout<DB: Database>(
    read: &Pool<DB>,
    write: &Pool<DB>,
    statement: &Statement<'_>,
) -> Result<Checkout<DB>, ExecError> {
    let pool = match statement.access {
        Access::Read => read,
        Access::Write => write,
    };
    pool.acquire()
        .await
        .map(Checkout::new)
        .map_err(|e| unavailable(statement.datasource, millis(statement.timeout), &e))
}

/// A pooled connection that is closed, not returned to the pool, unless the execution
/// marks it [`reusable`](Checkout::reusable).
///
/// A connection dropped halfway through a statement (client deadline, a caller that went
/// away, a row we could not decode, a result cut at the row cap) still has the rest of the
/// result on its socket. The drivers would drain it on next use, which for a cut
/// five-million-row result means streaming it all to nobody while the next caller waits.
/// Closing the socket makes the server abandon the statement instead.
pub(crate) struct Checkout<DB: Database> {
    conn: PoolConnection<DB>,
    reusable: bool,
}

impl<DB: Database> Checkout<DB> {
    pub fn new(conn: PoolConnection<DB>) -> Self {
        Checkout {
            conn,
            reusable: false,
        }
    }

    /// The connection is idle and in a known state: give it back to the pool.
    pub fn reusable(&mut self) {
        self.reusable = true;
    }

    /// Keeps the connection when the read left it idle (or `cut_is_idle`: SQLite, where a
    /// cut result leaves nothing on a socket), and turns a failure into its error.
    pub fn settle(
        &mut self,
        outcome: Result<Collected, Failed>,
        cut_is_idle: bool,
    ) -> Result<Collected, ExecError> {
        match outcome {
            Ok(collected) => {
                if collected.complete || cut_is_idle {
                    self.reusable();
                }
                Ok(collected)
            }
            Err(Failed { error, reusable }) => {
                if reusable {
                    self.reusable();
                }
                Err(error)
            }
        }
    }
}

impl<DB: Database> std::ops::Deref for Checkout<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl<DB: Database> std::ops::DerefMut for Checkout<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

impl<DB: Database> Drop for Checkout<DB> {
    fn drop(&mut self) {
        if !self.reusable {
            self.conn.close_on_drop();
        }
    }
}

/// Decodes the rows of one result; made from its first row, which carries the columns.
pub(crate) trait RowDecoder<R> {
    fn decode(&mut self, row: &R) -> Result<Vec<Value>, ExecError>;
}

/// How one column's values of a given type become [`Value`]s.
pub(crate) trait DecodeKind<DB: Database> {
    fn value(&self, raw: <DB as Database>::ValueRef<'_>) -> Result<Value, String>;
}

/// Column-wise decoding by type (PostgreSQL, MariaDB): each column's kind is settled once,
/// from the first row's type information; `None` is a type returned only through a cast.
pub(crate) struct TypedColumns<K> {
    columns: Vec<(Column, Option<K>)>,
}

impl<K> TypedColumns<K> {
    /// The columns of `first` with the caller-facing type name and kind `plan` gives each.
    pub fn start<R: Row>(
        first: &R,
        plan: impl Fn(&<R::Database as Database>::TypeInfo) -> (String, Option<K>),
    ) -> Result<(Vec<Column>, Self), ExecError> {
        let columns: Vec<(Column, Option<K>)> = first
            .columns()
            .iter()
            .map(|c| {
                let (type_name, kind) = plan(c.type_info());
                let column = Column {
                    name: c.name().to_owned(),
                    type_name,
                };
                (column, kind)
            })
            .collect();
        let public = columns.iter().map(|(column, _)| column.clone()).collect();
        Ok((public, TypedColumns { columns }))
    }
}

/// The columns a prepared statement describes, for a result without rows. Best effort:
/// when describing failed, the result has no columns.
pub(crate) fn described_columns<S: sqlx::Statement, K>(
    prepared: Result<S, sqlx::Error>,
    plan: impl Fn(&<S::Database as Database>::TypeInfo) -> (String, Option<K>),
) -> Vec<Column> {
    match prepared {
        Ok(prepared) => prepared
            .columns()
            .iter()
            .map(|c| Column {
                name: c.name().to_owned(),
                type_name: plan(c.type_info()).0,
            })
            .collect(),
        Err(error) => {
            tracing::debug!(%error, "describing the statement failed");
            Vec::new()
        }
    }
}

/// A NULL of any type is fine; a value of an unsupported type, or one that does not
/// decode, is an [`ExecError::UnsupportedType`] naming the column.
impl<R, K> RowDecoder<R> for TypedColumns<K>
where
    R: Row,
    usize: ColumnIndex<R>,
    K: DecodeKind<R::Database>,
{
    fn decode(&mut self, row: &R) -> Result<Vec<Value>, ExecError> {
        let mut values = Vec::with_capacity(self.columns.len());
        for (i, (column, kind)) in self.columns.iter().enumerate() {
            let unsupported = || ExecError::UnsupportedType {
                column: column.name.clone(),
                type_name: column.type_name.clone(),
            };
            let decoded = match (row.try_get_raw(i), kind) {
                (Ok(raw), _) if raw.is_null() => Ok(Value::Null),
                (Ok(raw), Some(kind)) => kind.value(raw),
                (Ok(_), None) => return Err(unsupported()),
                (Err(error), _) => Err(error.to_string()),
            };
            values.push(decoded.map_err(|error| {
                tracing::debug!(column = %column.name, type_name = %column.type_name, %error, "cannot decode value");
                unsupported()
            })?);
        }
        Ok(values)
    }
}

/// What a read of the result stream produced.
pub(crate) struct Collected {
    /// `None` when no row arrived: the driver then asks the database for the columns.
    pub columns: Option<Vec<Column>>,
    pub rows: Vec<Vec<Value>>,
    pub truncated: bool,
    pub rows_affected: u64,
    /// The stream was read to its end, so the connection is idle again.
    pub complete: bool,
}

/// A failure while reading a result, and whether the connection survived it.
pub(crate) struct Failed {
    pub error: ExecError,
    /// A database error ends the statement cleanly; anything else (I/O, a row we could
    /// not decode) leaves the connection in an unknown state.
    pub reusable: bool,
}

/// Reads rows until `max_rows`, then one more to learn whether the result was cut.
///
/// On the write pool a cut result is still read to its end (and discarded): dropping a
/// `DELETE … RETURNING` halfway would abort it on PostgreSQL, so the caller would hold
/// rows of a change that never happened. Reads stop at once.
pub(crate) async fn collect<R, D, Q>(
    statement: &Statement<'_>,
    stream: impl Stream<Item = Result<Either<Q, R>, sqlx::Error>>,
    start: impl FnOnce(&R) -> Result<(Vec<Column>, D), ExecError>,
    rows_affected: impl Fn(&Q) -> u64,
    map_error: impl Fn(sqlx::Error) -> ExecError,
) -> Result<Collected, Failed>
where
    D: RowDecoder<R>,
{
    let mut stream = std::pin::pin!(stream);
    let max_rows = usize::try_from(statement.max_rows).unwrap_or(usize::MAX);
    let drain = statement.access == Access::Write;
    let mut collected = Collected {
        columns: None,
        rows: Vec::new(),
        truncated: false,
        rows_affected: 0,
        complete: false,
    };
    let mut start = Some(start);
    let mut decoder: Option<D> = None;
    let mut ended = false;
    while let Some(item) = stream.next().await {
        let item = item.map_err(|e| {
            let reusable = matches!(e, sqlx::Error::Database(_));
            Failed {
                error: map_error(e),
                reusable,
            }
        })?;
        let row = match item {
            Either::Left(done) => {
                collected.rows_affected =
                    collected.rows_affected.saturating_add(rows_affected(&done));
                ended = true;
                continue;
            }
            Either::Right(row) => row,
        };
        if ended {
            // Rows after a completed result: a second result set (a MariaDB procedure),
            // whose columns are not the ones the caller was given.
            return Err(not_reusable(ExecError::Database {
                message: "the statement returned more than one result set; return one result per statement".to_owned(),
                code: None,
            }));
        }
        if collected.truncated {
            continue; // draining a write's result
        }
        // The first row gives the columns, even when the cap (zero) keeps no row.
        if let Some(start) = start.take() {
            let (columns, started) = start(&row).map_err(not_reusable)?;
            collected.columns = Some(columns);
            decoder = Some(started);
        }
        if collected.rows.len() >= max_rows {
            collected.truncated = true;
            if drain {
                continue;
            }
            return Ok(collected);
        }
        let decoder = decoder
            .as_mut()
            .ok_or_else(|| not_reusable(internal_error()))?;
        collected
            .rows
            .push(decoder.decode(&row).map_err(not_reusable)?);
    }
    collected.complete = true;
    Ok(collected)
}

fn internal_error() -> ExecError {
    ExecError::Database {
        message: "internal error: result decoder missing".to_owned(),
        code: None,
    }
}

fn not_reusable(error: ExecError) -> Failed {
    Failed {
        error,
        reusable: false,
    }
}

impl Collected {
    /// The result, once the columns are known.
    pub fn into_result(self, columns: Vec<Column>) -> super::QueryResult {
        let rows_affected = if columns.is_empty() {
            self.rows_affected
        } else {
            0
        };
        super::QueryResult {
            columns,
            rows: self.rows,
            truncated: self.truncated,
            rows_affected,
        }
    }
}

/// A connection-level failure, worded for the caller: names the datasource and what went
/// wrong, never the URL, host, user or password. The full error goes to the log.
pub(crate) fn unavailable(datasource: &str, timeout_ms: u64, error: &sqlx::Error) -> ExecError {
    tracing::warn!(datasource, error = %error, "datasource connection failed");
    let reason = match error {
        sqlx::Error::PoolTimedOut => format!(
            "no connection became available within {timeout_ms} ms (the database may be down or overloaded)"
        ),
        sqlx::Error::PoolClosed => "the connection pool is shut down".to_owned(),
        sqlx::Error::Io(e) => format!("cannot reach the database ({})", e.kind()),
        sqlx::Error::Tls(_) => "the TLS handshake with the database failed".to_owned(),
        sqlx::Error::Database(e) => match e.code().as_deref() {
            Some("28P01" | "28000") => "the database refused the credentials".to_owned(),
            Some("3D000") => "the database does not exist".to_owned(),
            Some(code) => format!("the database refused the connection (code {code})"),
            None => "the database refused the connection".to_owned(),
        },
        sqlx::Error::WorkerCrashed => "the database worker thread stopped".to_owned(),
        _ => "the connection failed".to_owned(),
    };
    ExecError::Unavailable(format!(
        "datasource `{datasource}` is unavailable: {reason}"
    ))
}

/// Errors that are not the database's answer to the statement.
pub(crate) fn non_database_error(
    datasource: &str,
    timeout_ms: u64,
    error: sqlx::Error,
) -> ExecError {
    match error {
        sqlx::Error::Encode(e) => {
            let message = e.to_string();
            ExecError::InvalidParam {
                index: argument_number(&message).unwrap_or(1),
                message,
            }
        }
        sqlx::Error::Protocol(message) if message.contains("parameters were provided") => {
            // MariaDB: sqlx compares the placeholders with the parameters before executing.
            let counts: Vec<usize> = message
                .split_whitespace()
                .filter_map(|word| word.parse().ok())
                .collect();
            match counts.as_slice() {
                [expected, given] => ExecError::InvalidParam {
                    index: expected.min(given) + 1,
                    message: format!(
                        "the statement has {expected} parameters but {given} were given"
                    ),
                },
                _ => ExecError::InvalidParam { index: 1, message },
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => unavailable(datasource, timeout_ms, &error),
        other => {
            tracing::warn!(datasource, error = %other, "unexpected driver error");
            ExecError::Database {
                message: format!("the database driver failed: {other}"),
                code: None,
            }
        }
    }
}

/// `N` in sqlx's "Encoding argument $N failed: …".
fn argument_number(message: &str) -> Option<usize> {
    let rest = message.split_once('$')?.1;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::Baseline;

    #[test]
    fn a_session_is_clean_while_it_matches_the_newest_fresh_one() {
        let baseline = Baseline::default();
        assert!(!baseline.matches("d", "a"), "nothing recorded: not clean");
        baseline.record("d", "a".to_owned());
        baseline.record("d", "a".to_owned());
        assert!(baseline.matches("d", "a"));
        assert!(!baseline.matches("d", "a|changed"));
        // Fresh sessions now start differently: the older ones are not reused.
        baseline.record("d", "b".to_owned());
        assert!(!baseline.matches("d", "a"));
        assert!(baseline.matches("d", "b"));
    }
}
