//! PostgreSQL: pools, typed parameters, and decoding of the binary result format.
//!
//! sqlx always runs `sqlx::query` through the extended protocol (Parse/Bind/Execute), whose
//! Parse refuses more than one statement, and asks for every result column in binary.
//! Values are decoded here from those bytes by the column's type OID rather than through
//! sqlx's `Decode` impls: `numeric` must stay exact (sqlx would need `bigdecimal`),
//! `inet`, `interval` and arrays need a caller-facing form, and enums and domains are
//! only known by OID at run time.

use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{
    PgArgumentBuffer, PgArguments, PgConnectOptions, PgConnection, PgDatabaseError, PgPool, PgRow,
    PgTypeInfo, PgTypeKind, PgValueFormat, PgValueRef, Postgres,
};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, ConnectOptions as _, Connection as _, Encode, Executor as _};
use sqlx::{SqlSafeStr as _, Type, TypeInfo as _};

use super::run::{
    DecodeKind, Failed, TypedColumns, checkout, collect, connect_options, described_columns,
    non_database_error, pool_options, release_within,
};
use super::value::{format_time, widen_f32};
use super::{
    Column, DatasourceError, ExecError, Param, PoolSettings, QueryResult, Statement, Value, millis,
};
use crate::config::DatasourceConfig;

pub(crate) struct PgPools {
    pub(super) read: PgPool,
    pub(super) write: PgPool,
}

impl PgPools {
    pub fn new(
        config: &DatasourceConfig,
        settings: &PoolSettings,
    ) -> Result<PgPools, DatasourceError> {
        let (read_options, write_options) = connect_options::<PgConnectOptions>(config)?;
        let timeout_ms = millis(settings.timeout).to_string();
        // Startup options apply to the whole session before the first statement: no round
        // trip per statement, and nothing a statement can forget to set.
        let session = |options: PgConnectOptions, read_only: bool| {
            let mut startup = vec![("statement_timeout", timeout_ms.clone())];
            if read_only {
                startup.push(("default_transaction_read_only", "on".to_owned()));
            }
            let options = if options.get_application_name().is_none() {
                options.application_name("gatehouse")
            } else {
                options
            };
            // Statement text can carry personal data; the audit trail records statements,
            // the log does not.
            options.options(startup).disable_statement_logging()
        };
        let datasource: Arc<str> = config.name.as_str().into();
        let limit = settings.timeout;
        let pool = |options: PgConnectOptions| {
            let datasource = Arc::clone(&datasource);
            pool_options::<Postgres>(settings)
                .after_release(move |conn, _meta| {
                    let datasource = Arc::clone(&datasource);
                    Box::pin(release_within(limit, reset(conn, datasource)))
                })
                .connect_lazy_with(options)
        };
        Ok(PgPools {
            read: pool(session(read_options, true)),
            write: pool(session(write_options, false)),
        })
    }

    pub async fn execute(&self, statement: &Statement<'_>) -> Result<QueryResult, ExecError> {
        let mut conn = checkout(&self.read, &self.write, statement).await?;
        let map_error = |e| map_error(statement.datasource, millis(statement.timeout), e);
        let mut first_attempt = true;
        let outcome = loop {
            let outcome = collect(
                statement,
                conn.fetch_many(query(statement.sql, statement.params)?),
                start,
                |done| done.rows_affected(),
                map_error,
            )
            .await;
            // The first time a connection meets a type it does not know (an enum, a
            // domain), sqlx looks it up with a simple query between Parse and Bind; a simple
            // query discards the unnamed statement, so Bind fails with 26000 before anything
            // ran. The type is cached on the connection now: run the statement once more.
            let unnamed_statement_lost = matches!(
                &outcome,
                Err(Failed { error: ExecError::Database { code: Some(code), .. }, .. }) if code == "26000"
            );
            if !(unnamed_statement_lost && first_attempt) {
                break outcome;
            }
            first_attempt = false;
        };
        let collected = conn.settle(outcome, false)?;
        let columns = match collected.columns.clone() {
            Some(columns) => columns,
            // No row arrived, so the columns come from describing the statement.
            None => describe(&mut conn, statement).await,
        };
        Ok(collected.into_result(columns))
    }
}

/// Puts a released session back to how it started, or reports it unfit for reuse.
///
/// `DISCARD ALL` undoes every session-level change in one round trip: settings changed
/// by `SET` (including `default_transaction_read_only`, `statement_timeout` and
/// `search_path`) go back to their values at connection start, which are the startup
/// options set above; `SET ROLE` and `SET SESSION AUTHORIZATION` are undone; prepared
/// statements are deallocated, cursors closed, temporary tables dropped, advisory locks
/// released, `LISTEN` registrations removed. It refuses to run inside a transaction
/// block, so a session a statement left in a transaction (open or failed) is closed
/// instead, and the server rolls the transaction back.
///
/// It also deallocates sqlx's prepared statements. Statements run unnamed
/// (`persistent(false)`) and `describe` closes what it prepares, so sqlx's statement
/// cache is empty here; should it ever not be, it is cleared first so that sqlx never
/// names a statement the server has forgotten.
async fn reset(conn: &mut PgConnection, datasource: Arc<str>) -> Result<bool, sqlx::Error> {
    if conn.cached_statements_size() > 0 {
        conn.clear_cached_statements().await?;
    }
    match conn.execute(sqlx::raw_sql("DISCARD ALL")).await {
        Ok(_) => Ok(true),
        Err(sqlx::Error::Database(error)) => {
            tracing::warn!(
                datasource = %datasource,
                code = error.code().as_deref().unwrap_or_default(),
                %error,
                "a statement left the session in a transaction; closing the connection instead of reusing it"
            );
            Ok(false)
        }
        Err(error) => Err(error),
    }
}

/// The statement with every parameter bound by its type.
fn query(sql: &str, params: &[Param]) -> Result<Query<'static, Postgres, PgArguments>, ExecError> {
    let mut query = sqlx::query(AssertSqlSafe(sql.to_owned())).persistent(false);
    for (i, param) in params.iter().enumerate() {
        query = match param {
            Param::Null => query.bind(UntypedNull),
            Param::Bool(b) => query.bind(*b),
            Param::Int(v) => query.bind(*v),
            Param::Float(v) => query.bind(*v),
            Param::Text(s) if s.contains('\0') => {
                return Err(ExecError::InvalidParam {
                    index: i + 1,
                    message: "PostgreSQL text cannot contain a NUL character".to_owned(),
                });
            }
            Param::Text(s) => query.bind(s.as_str()),
            Param::Json(j) => query.bind(sqlx::types::Json(j)),
        };
    }
    Ok(query)
}

/// The type each parameter is declared with in Parse, as `bind` sends it.
fn param_type(param: &Param) -> PgTypeInfo {
    match param {
        Param::Null => UntypedNull::type_info(),
        Param::Bool(_) => <bool as Type<Postgres>>::type_info(),
        Param::Int(_) => <i64 as Type<Postgres>>::type_info(),
        Param::Float(_) => <f64 as Type<Postgres>>::type_info(),
        Param::Text(_) => <&str as Type<Postgres>>::type_info(),
        Param::Json(_) => <sqlx::types::Json<serde_json::Value> as Type<Postgres>>::type_info(),
    }
}

/// A NULL declared with type OID 0 ("unspecified"), so PostgreSQL infers its type from
/// where it is used. A typed NULL (say `text`) would fail in `INSERT INTO t(int_col)`.
struct UntypedNull;

impl Type<Postgres> for UntypedNull {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(0))
    }
}

impl Encode<'_, Postgres> for UntypedNull {
    fn encode_by_ref(
        &self,
        _buf: &mut PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, BoxDynError> {
        Ok(sqlx::encode::IsNull::Yes)
    }
}

/// The columns of a statement that returned no row: Parse and Describe it again (nothing
/// runs), then close the prepared statement so no plan outlives a schema change.
async fn describe(conn: &mut PgConnection, statement: &Statement<'_>) -> Vec<Column> {
    let types: Vec<PgTypeInfo> = statement.params.iter().map(param_type).collect();
    let prepared = conn
        .prepare_with(
            AssertSqlSafe(statement.sql.to_owned()).into_sql_str(),
            &types,
        )
        .await;
    let _ = conn.clear_cached_statements().await;
    described_columns(prepared, plan)
}

fn map_error(datasource: &str, timeout_ms: u64, error: sqlx::Error) -> ExecError {
    let sqlx::Error::Database(db) = error else {
        return non_database_error(datasource, timeout_ms, error);
    };
    let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() else {
        return ExecError::Database {
            message: db.message().to_owned(),
            code: db.code().map(|c| c.into_owned()),
        };
    };
    match pg.code() {
        // query_canceled: statement_timeout (nothing else cancels our sessions).
        "57014" => ExecError::Timeout {
            after_ms: timeout_ms,
        },
        // read_only_sql_transaction: a write on the read pool, also through a function.
        "25006" => ExecError::ReadOnly,
        code => {
            let mut message = pg.message().to_owned();
            if let Some(detail) = pg.detail() {
                let _ = write!(message, "\nDETAIL: {detail}");
            }
            if let Some(hint) = pg.hint() {
                let _ = write!(message, "\nHINT: {hint}");
            }
            ExecError::Database {
                message,
                code: Some(code.to_owned()),
            }
        }
    }
}

/// How one column's binary values become [`Value`]s.
#[derive(Debug, Clone)]
enum Kind {
    Void,
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    Numeric,
    Text,
    Char,
    Bytea,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    Json,
    Jsonb,
    Inet,
    Array(Box<Kind>),
}

/// Built-in types by OID (stable across servers: `pg_type.dat`), with their `typname`.
/// `None` as decoder: known, but returned only through a cast.
fn builtin(oid: u32) -> Option<(&'static str, Option<Kind>)> {
    Some(match oid {
        16 => ("bool", Some(Kind::Bool)),
        17 => ("bytea", Some(Kind::Bytea)),
        18 => ("char", Some(Kind::Char)),
        19 => ("name", Some(Kind::Text)),
        20 => ("int8", Some(Kind::Int8)),
        21 => ("int2", Some(Kind::Int2)),
        23 => ("int4", Some(Kind::Int4)),
        25 => ("text", Some(Kind::Text)),
        26 => ("oid", Some(Kind::Oid)),
        114 => ("json", Some(Kind::Json)),
        142 => ("xml", Some(Kind::Text)),
        650 => ("cidr", Some(Kind::Inet)),
        700 => ("float4", Some(Kind::Float4)),
        701 => ("float8", Some(Kind::Float8)),
        705 => ("unknown", Some(Kind::Text)),
        790 => ("money", None),
        869 => ("inet", Some(Kind::Inet)),
        1042 => ("bpchar", Some(Kind::Text)),
        1043 => ("varchar", Some(Kind::Text)),
        1082 => ("date", Some(Kind::Date)),
        1083 => ("time", Some(Kind::Time)),
        1114 => ("timestamp", Some(Kind::Timestamp)),
        1184 => ("timestamptz", Some(Kind::TimestampTz)),
        1186 => ("interval", Some(Kind::Interval)),
        1266 => ("timetz", Some(Kind::TimeTz)),
        1700 => ("numeric", Some(Kind::Numeric)),
        2278 => ("void", Some(Kind::Void)),
        2950 => ("uuid", Some(Kind::Uuid)),
        3802 => ("jsonb", Some(Kind::Jsonb)),
        _ => return None,
    })
}

/// The caller-facing type name of a column and how to decode it (`None`: unsupported).
fn plan(type_info: &PgTypeInfo) -> (String, Option<Kind>) {
    if let Some(Oid(oid)) = type_info.oid()
        && let Some((name, decode)) = builtin(oid)
    {
        return (name.to_owned(), decode);
    }
    match type_info.kind() {
        PgTypeKind::Array(element) => {
            let (name, decode) = plan(element);
            (
                format!("{name}[]"),
                decode.map(|d| Kind::Array(Box::new(d))),
            )
        }
        // An enum's binary form is its label.
        PgTypeKind::Enum(_) => (type_info.name().to_owned(), Some(Kind::Text)),
        // A domain's values are sent in its base type's form.
        PgTypeKind::Domain(base) => (type_info.name().to_owned(), plan(base).1),
        PgTypeKind::Simple if type_info.name() == "citext" => {
            ("citext".to_owned(), Some(Kind::Text))
        }
        _ => (type_info.name().to_lowercase(), None),
    }
}

/// Columns and their decoding from the first row of a result.
fn start(first: &PgRow) -> Result<(Vec<Column>, TypedColumns<Kind>), ExecError> {
    TypedColumns::start(first, plan)
}

impl DecodeKind<Postgres> for Kind {
    fn value(&self, raw: PgValueRef<'_>) -> Result<Value, String> {
        if raw.format() != PgValueFormat::Binary {
            return Err("value not in binary format".to_owned());
        }
        self.decode_binary(raw.as_bytes().map_err(|e| e.to_string())?)
    }
}

/// Microseconds between 0001-01-01 and PostgreSQL's epoch, 2000-01-01, in days.
const PG_EPOCH_DAYS_FROM_CE: i32 = 730_120;
const MICROS_PER_DAY: i64 = 86_400_000_000;

impl Kind {
    fn decode_binary(&self, bytes: &[u8]) -> Result<Value, String> {
        Ok(match self {
            Kind::Void => Value::Null,
            Kind::Bool => Value::Bool(fixed::<1>(bytes)?[0] != 0),
            Kind::Int2 => Value::Int(i16::from_be_bytes(fixed(bytes)?).into()),
            Kind::Int4 => Value::Int(i32::from_be_bytes(fixed(bytes)?).into()),
            Kind::Int8 => Value::Int(i64::from_be_bytes(fixed(bytes)?)),
            Kind::Oid => Value::Int(u32::from_be_bytes(fixed(bytes)?).into()),
            Kind::Float4 => Value::Float(widen_f32(f32::from_be_bytes(fixed(bytes)?))),
            Kind::Float8 => Value::Float(f64::from_be_bytes(fixed(bytes)?)),
            Kind::Numeric => Value::Decimal(numeric(bytes)?),
            Kind::Text => Value::Text(utf8(bytes)?),
            Kind::Char => Value::Text(pg_char(fixed::<1>(bytes)?[0])),
            Kind::Bytea => Value::Bytes(bytes.to_vec()),
            Kind::Date => date(i32::from_be_bytes(fixed(bytes)?))?,
            Kind::Time => time(i64::from_be_bytes(fixed(bytes)?))?,
            Kind::TimeTz => {
                let mut r = Reader(bytes);
                let (micros, zone) = (r.i64()?, r.i32()?);
                r.end()?;
                Value::Text(timetz(micros, zone)?)
            }
            Kind::Timestamp => match i64::from_be_bytes(fixed(bytes)?) {
                i64::MAX => Value::Text("infinity".to_owned()),
                i64::MIN => Value::Text("-infinity".to_owned()),
                micros => Value::Timestamp(timestamp(micros)?),
            },
            Kind::TimestampTz => match i64::from_be_bytes(fixed(bytes)?) {
                i64::MAX => Value::Text("infinity".to_owned()),
                i64::MIN => Value::Text("-infinity".to_owned()),
                micros => Value::TimestampTz(timestamp(micros)?.and_utc()),
            },
            Kind::Interval => {
                let mut r = Reader(bytes);
                let (micros, days, months) = (r.i64()?, r.i32()?, r.i32()?);
                r.end()?;
                Value::Interval(iso_interval(months, days, micros))
            }
            Kind::Uuid => Value::Uuid(uuid::Uuid::from_bytes(fixed(bytes)?)),
            Kind::Json => Value::Json(serde_json::from_slice(bytes).map_err(|e| e.to_string())?),
            Kind::Jsonb => match bytes.split_first() {
                Some((1, text)) => {
                    Value::Json(serde_json::from_slice(text).map_err(|e| e.to_string())?)
                }
                _ => return Err("unknown jsonb version".to_owned()),
            },
            Kind::Inet => Value::Text(inet(bytes)?),
            Kind::Array(element) => array(bytes, element)?,
        })
    }
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], String> {
    bytes
        .try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", bytes.len()))
}

fn utf8(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
}

/// The one-byte `"char"` type, printed as PostgreSQL prints it (octal escape above ASCII).
fn pg_char(byte: u8) -> String {
    if byte.is_ascii() {
        char::from(byte).to_string()
    } else {
        format!("\\{byte:03o}")
    }
}

/// Big-endian reads over a binary value, failing instead of panicking on short input.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "value ends early: wanted {n} bytes, {} left",
                self.0.len()
            ));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(fixed(self.take(2)?)?))
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(fixed(self.take(2)?)?))
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(fixed(self.take(4)?)?))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(fixed(self.take(8)?)?))
    }

    fn end(&self) -> Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(format!("{} unexpected trailing bytes", self.0.len()))
        }
    }
}

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// PostgreSQL's binary `numeric` as its exact text form: `ndigits` base-10000 digits, the
/// first worth 10000^`weight`, printed with exactly `dscale` fraction digits (so
/// `1.50::numeric(5,2)` stays `1.50`).
fn numeric(bytes: &[u8]) -> Result<String, String> {
    let mut r = Reader(bytes);
    let ndigits = r.i16()?;
    let weight = i32::from(r.i16()?);
    let sign = r.u16()?;
    let dscale = usize::from(r.u16()?);
    match sign {
        NUMERIC_NAN => return Ok("NaN".to_owned()),
        NUMERIC_PINF => return Ok("Infinity".to_owned()),
        NUMERIC_NINF => return Ok("-Infinity".to_owned()),
        NUMERIC_POS | NUMERIC_NEG => {}
        other => return Err(format!("unknown numeric sign {other:#06x}")),
    }
    let mut digits = Vec::with_capacity(usize::try_from(ndigits).unwrap_or(0));
    for _ in 0..ndigits.max(0) {
        let digit = r.i16()?;
        if !(0..10_000).contains(&digit) {
            return Err(format!("numeric digit {digit} out of range"));
        }
        digits.push(digit);
    }
    r.end()?;
    let digit = |i: i32| -> i16 {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let mut text = String::new();
    if sign == NUMERIC_NEG {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                let _ = write!(text, "{}", digit(i));
            } else {
                let _ = write!(text, "{:04}", digit(i));
            }
        }
    }
    if dscale > 0 {
        let mut fraction = String::with_capacity(dscale + 4);
        let mut i = weight + 1;
        while fraction.len() < dscale {
            let _ = write!(fraction, "{:04}", digit(i));
            i += 1;
        }
        fraction.truncate(dscale);
        text.push('.');
        text.push_str(&fraction);
    }
    Ok(text)
}

fn date(days: i32) -> Result<Value, String> {
    Ok(match days {
        i32::MAX => Value::Text("infinity".to_owned()),
        i32::MIN => Value::Text("-infinity".to_owned()),
        days => Value::Date(
            PG_EPOCH_DAYS_FROM_CE
                .checked_add(days)
                .and_then(NaiveDate::from_num_days_from_ce_opt)
                .ok_or_else(|| format!("date {days} days from 2000-01-01 is out of range"))?,
        ),
    })
}

fn time_of_day(micros: i64) -> Result<Option<NaiveTime>, String> {
    if !(0..=MICROS_PER_DAY).contains(&micros) {
        return Err(format!("time {micros} µs is out of range"));
    }
    let seconds = u32::try_from(micros / 1_000_000).map_err(|e| e.to_string())?;
    let nanos = u32::try_from(micros % 1_000_000 * 1_000).map_err(|e| e.to_string())?;
    // 24:00:00 is a valid PostgreSQL time but no `NaiveTime`.
    Ok(NaiveTime::from_num_seconds_from_midnight_opt(
        seconds, nanos,
    ))
}

fn time(micros: i64) -> Result<Value, String> {
    Ok(match time_of_day(micros)? {
        Some(t) => Value::Time(t),
        None => Value::Text("24:00:00".to_owned()),
    })
}

/// `HH:MM:SS[.ffffff]±HH[:MM[:SS]]`, as PostgreSQL prints `timetz`. The wire carries the
/// zone in seconds *west* of UTC.
fn timetz(micros: i64, zone_west: i32) -> Result<String, String> {
    let mut text = match time_of_day(micros)? {
        Some(t) => format_time(&t),
        None => "24:00:00".to_owned(),
    };
    let east = -i64::from(zone_west);
    let (sign, east) = if east < 0 { ('-', -east) } else { ('+', east) };
    let _ = write!(text, "{sign}{:02}", east / 3600);
    let (minutes, seconds) = (east % 3600 / 60, east % 60);
    if minutes != 0 || seconds != 0 {
        let _ = write!(text, ":{minutes:02}");
    }
    if seconds != 0 {
        let _ = write!(text, ":{seconds:02}");
    }
    Ok(text)
}

fn timestamp(micros: i64) -> Result<NaiveDateTime, String> {
    NaiveDate::from_num_days_from_ce_opt(PG_EPOCH_DAYS_FROM_CE)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|epoch| epoch.checked_add_signed(TimeDelta::microseconds(micros)))
        .ok_or_else(|| format!("timestamp {micros} µs from 2000-01-01 is out of range"))
}

/// An interval in ISO 8601 duration form, exactly as PostgreSQL prints it with
/// `intervalstyle = iso_8601`: `P1Y2M3DT4H5M6.5S`, `P-1DT-2H`, `PT0S`. Months, days and
/// time are separate fields in PostgreSQL (a month is not 30 days), and each keeps its
/// own sign.
fn iso_interval(months: i32, days: i32, micros: i64) -> String {
    let (years, months) = (months / 12, months % 12);
    let hours = micros / 3_600_000_000;
    let minutes = micros % 3_600_000_000 / 60_000_000;
    let seconds = micros % 60_000_000 / 1_000_000;
    let fraction = micros % 1_000_000;
    if years == 0 && months == 0 && days == 0 && micros == 0 {
        return "PT0S".to_owned();
    }
    let mut text = String::from("P");
    for (value, unit) in [(years, 'Y'), (months, 'M'), (days, 'D')] {
        if value != 0 {
            let _ = write!(text, "{value}{unit}");
        }
    }
    if micros != 0 {
        text.push('T');
    }
    for (value, unit) in [(hours, 'H'), (minutes, 'M')] {
        if value != 0 {
            let _ = write!(text, "{value}{unit}");
        }
    }
    if seconds != 0 || fraction != 0 {
        if seconds < 0 || fraction < 0 {
            text.push('-');
        }
        let _ = write!(text, "{}", seconds.unsigned_abs());
        if fraction != 0 {
            let digits = format!("{:06}", fraction.unsigned_abs());
            let _ = write!(text, ".{}", digits.trim_end_matches('0'));
        }
        text.push('S');
    }
    text
}

const PGSQL_AF_INET: u8 = 2;
const PGSQL_AF_INET6: u8 = 3;

/// `inet`/`cidr` in PostgreSQL's text form: the prefix length is shown for `cidr`, and for
/// `inet` only when it is not a single host.
fn inet(bytes: &[u8]) -> Result<String, String> {
    let mut r = Reader(bytes);
    let (family, bits, is_cidr, len) = (r.u8()?, r.u8()?, r.u8()?, r.u8()?);
    let address = r.take(usize::from(len))?;
    r.end()?;
    let (text, max_bits) = match family {
        PGSQL_AF_INET => (
            std::net::Ipv4Addr::from(fixed::<4>(address)?).to_string(),
            32,
        ),
        PGSQL_AF_INET6 => (
            std::net::Ipv6Addr::from(fixed::<16>(address)?).to_string(),
            128,
        ),
        other => return Err(format!("unknown address family {other}")),
    };
    Ok(if is_cidr != 0 || bits != max_bits {
        format!("{text}/{bits}")
    } else {
        text
    })
}

/// A binary array: dimensions, then every element in row-major order. Multi-dimensional
/// arrays become nested arrays.
fn array(bytes: &[u8], element: &Kind) -> Result<Value, String> {
    let mut r = Reader(bytes);
    let ndim = r.i32()?;
    let _has_nulls = r.i32()?;
    let _element_oid = r.i32()?;
    if !(0..=6).contains(&ndim) {
        return Err(format!("array with {ndim} dimensions"));
    }
    let mut dims = Vec::new();
    for _ in 0..ndim {
        let len = usize::try_from(r.i32()?).map_err(|e| e.to_string())?;
        let _lower_bound = r.i32()?;
        dims.push(len);
    }
    if dims.is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    let value = nested(&dims, &mut r, element)?;
    r.end()?;
    Ok(value)
}

fn nested(dims: &[usize], r: &mut Reader<'_>, element: &Kind) -> Result<Value, String> {
    let Some((&len, inner)) = dims.split_first() else {
        return Err("array without dimensions".to_owned());
    };
    // Each element takes at least 4 bytes, which bounds a hostile length.
    let mut items = Vec::with_capacity(len.min(r.0.len() / 4 + 1));
    for _ in 0..len {
        items.push(if inner.is_empty() {
            match r.i32()? {
                -1 => Value::Null,
                n => element
                    .decode_binary(r.take(usize::try_from(n).map_err(|e| e.to_string())?)?)?,
            }
        } else {
            nested(inner, r, element)?
        });
    }
    Ok(Value::Array(items))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_bytes(weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&i16::try_from(digits.len()).unwrap().to_be_bytes());
        b.extend_from_slice(&weight.to_be_bytes());
        b.extend_from_slice(&sign.to_be_bytes());
        b.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b
    }

    #[test]
    fn numeric_text_forms() {
        let cases: &[(i16, u16, u16, &[i16], &str)] = &[
            (0, NUMERIC_POS, 0, &[], "0"),
            (0, NUMERIC_POS, 2, &[], "0.00"),
            (0, NUMERIC_POS, 2, &[1, 5000], "1.50"),
            (1, NUMERIC_NEG, 3, &[12, 3456, 7800], "-123456.780"),
            // The first digit group sits two groups after the point.
            (-2, NUMERIC_POS, 8, &[1234], "0.00001234"),
            // Trailing zero groups are left out of the digits.
            (2, NUMERIC_POS, 0, &[1], "100000000"),
            (0, NUMERIC_NAN, 0, &[], "NaN"),
            (0, NUMERIC_PINF, 0, &[], "Infinity"),
            (0, NUMERIC_NINF, 0, &[], "-Infinity"),
        ];
        for &(weight, sign, dscale, digits, text) in cases {
            assert_eq!(
                numeric(&numeric_bytes(weight, sign, dscale, digits)).unwrap(),
                text
            );
        }
        assert!(numeric(&[0, 1]).is_err());
        assert!(numeric(&numeric_bytes(0, NUMERIC_POS, 0, &[10_000])).is_err());
    }

    #[test]
    fn interval_iso_8601() {
        let hour = 3_600_000_000;
        assert_eq!(iso_interval(0, 0, 0), "PT0S");
        assert_eq!(
            iso_interval(14, 3, 4 * hour + 5 * 60_000_000 + 6_500_000),
            "P1Y2M3DT4H5M6.5S"
        );
        assert_eq!(iso_interval(0, -1, -2 * hour), "P-1DT-2H");
        assert_eq!(iso_interval(0, 0, -1_250_000), "PT-1.25S");
        assert_eq!(iso_interval(-1, 0, 0), "P-1M");
        assert_eq!(iso_interval(0, 0, 1), "PT0.000001S");
    }

    #[test]
    fn inet_and_cidr() {
        assert_eq!(inet(&[2, 32, 0, 4, 10, 0, 0, 1]).unwrap(), "10.0.0.1");
        assert_eq!(inet(&[2, 24, 0, 4, 10, 0, 0, 0]).unwrap(), "10.0.0.0/24");
        assert_eq!(inet(&[2, 32, 1, 4, 10, 0, 0, 1]).unwrap(), "10.0.0.1/32");
        let mut v6 = vec![3, 128, 0, 16];
        v6.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        assert_eq!(inet(&v6).unwrap(), "::1");
        assert!(inet(&[2, 32, 0, 4, 10]).is_err());
    }

    #[test]
    fn times_and_zones() {
        assert_eq!(timetz(0, -19_800).unwrap(), "00:00:00+05:30");
        assert_eq!(timetz(1_500_000, 3600).unwrap(), "00:00:01.500000-01");
        assert_eq!(
            time(MICROS_PER_DAY).unwrap(),
            Value::Text("24:00:00".into())
        );
        assert!(time(-1).is_err());
        assert_eq!(
            timestamp(0).unwrap(),
            NaiveDate::from_ymd_opt(2000, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
        );
        assert_eq!(
            date(-1).unwrap(),
            Value::Date(NaiveDate::from_ymd_opt(1999, 12, 31).unwrap())
        );
    }

    #[test]
    fn arrays_nest_and_reject_garbage() {
        // int4[] '{{1,2},{3,NULL}}'
        let mut b = Vec::new();
        for v in [2_i32, 1, 23, 2, 1, 2, 1] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        for v in [Some(1_i32), Some(2), Some(3), None] {
            match v {
                Some(v) => {
                    b.extend_from_slice(&4_i32.to_be_bytes());
                    b.extend_from_slice(&v.to_be_bytes());
                }
                None => b.extend_from_slice(&(-1_i32).to_be_bytes()),
            }
        }
        assert_eq!(
            array(&b, &Kind::Int4).unwrap(),
            Value::Array(vec![
                Value::Array(vec![Value::Int(1), Value::Int(2)]),
                Value::Array(vec![Value::Int(3), Value::Null]),
            ])
        );
        assert!(array(&b[..b.len() - 2], &Kind::Int4).is_err());
        let huge = [1_i32, 0, 23, i32::MAX, 1]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect::<Vec<u8>>();
        assert!(array(&huge, &Kind::Int4).is_err());
    }
}
