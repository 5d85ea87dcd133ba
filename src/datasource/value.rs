//! Typed result values and their JSON form.
//!
//! A [`Value`] is decoded from the driver's type information (never guessed from text), so
//! a caller can tell a decimal from a float and a timestamp without a zone from one with.
//! The JSON form is chosen so that no value loses precision in a JavaScript client:
//! integers beyond ±2^53 and decimals travel as strings.

use std::fmt::Write as _;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use serde::{Serialize, Serializer};

/// One value of a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    /// Only for values that do not fit `i64` by type (MariaDB `BIGINT UNSIGNED`, `BIT`).
    UInt(u64),
    Float(f64),
    /// An exact decimal in the database's own text form (`-12.3400`, `NaN`, `Infinity`).
    Decimal(String),
    Text(String),
    Bytes(Vec<u8>),
    Date(NaiveDate),
    Time(NaiveTime),
    /// A timestamp the database stores without a zone; it is not UTC and gets no offset.
    Timestamp(NaiveDateTime),
    TimestampTz(DateTime<Utc>),
    Uuid(uuid::Uuid),
    Json(serde_json::Value),
    /// A duration: ISO 8601 (`P1Y2M3DT4H5M6.5S`) on PostgreSQL, `[-]HHH:MM:SS[.ffffff]` for
    /// MariaDB `TIME` values outside a time of day.
    Interval(String),
    Array(Vec<Value>),
}

/// Largest integer magnitude a JSON number carries exactly in an IEEE 754 double.
const MAX_EXACT_JSON_INTEGER: u64 = 1 << 53;

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) if i.unsigned_abs() <= MAX_EXACT_JSON_INTEGER => {
                serializer.serialize_i64(*i)
            }
            Value::Int(i) => serializer.collect_str(i),
            Value::UInt(u) if *u <= MAX_EXACT_JSON_INTEGER => serializer.serialize_u64(*u),
            Value::UInt(u) => serializer.collect_str(u),
            Value::Float(f) if f.is_nan() => serializer.serialize_str("NaN"),
            Value::Float(f) if f.is_infinite() => {
                serializer.serialize_str(if *f > 0.0 { "Infinity" } else { "-Infinity" })
            }
            Value::Float(f) => serializer.serialize_f64(*f),
            Value::Decimal(s) | Value::Text(s) | Value::Interval(s) => serializer.serialize_str(s),
            Value::Bytes(b) => {
                serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
            }
            Value::Date(_) | Value::Time(_) | Value::Timestamp(_) | Value::TimestampTz(_) => {
                serializer.serialize_str(&self.temporal_text().unwrap_or_default())
            }
            Value::Uuid(u) => serializer.collect_str(&u.hyphenated()),
            Value::Json(j) => j.serialize(serializer),
            Value::Array(items) => serializer.collect_seq(items),
        }
    }
}

impl Value {
    /// The text form of a date or time value, shared by every transport so REST and gRPC
    /// agree to the character: `YYYY-MM-DD`, `HH:MM:SS[.ffffff]`,
    /// `YYYY-MM-DDTHH:MM:SS[.ffffff]` (no offset: the database has none) and the same with
    /// `Z` for timestamps with time zone. `None` for every other value.
    pub fn temporal_text(&self) -> Option<String> {
        match self {
            Value::Date(d) => Some(d.format("%Y-%m-%d").to_string()),
            Value::Time(t) => Some(format_time(t)),
            Value::Timestamp(ts) => Some(format_timestamp(ts)),
            Value::TimestampTz(ts) => {
                let mut text = format_timestamp(&ts.naive_utc());
                text.push('Z');
                Some(text)
            }
            _ => None,
        }
    }
}

/// `HH:MM:SS`, with `.ffffff` only when there is a fraction of a second.
pub(crate) fn format_time(time: &NaiveTime) -> String {
    let mut text = time.format("%H:%M:%S").to_string();
    push_micros(&mut text, time.nanosecond() % 1_000_000_000 / 1_000);
    text
}

/// `YYYY-MM-DDTHH:MM:SS[.ffffff]`, no offset.
pub(crate) fn format_timestamp(ts: &NaiveDateTime) -> String {
    let mut text = ts.format("%Y-%m-%dT%H:%M:%S").to_string();
    push_micros(&mut text, ts.nanosecond() % 1_000_000_000 / 1_000);
    text
}

fn push_micros(text: &mut String, micros: u32) {
    if micros != 0 {
        let _ = write!(text, ".{micros:06}");
    }
}

/// `f32` values widened to `f64` by their shortest decimal form, so a `REAL` 0.1 reads as
/// 0.1 and not 0.10000000149011612.
pub(crate) fn widen_f32(value: f32) -> f64 {
    if value.is_finite() {
        value.to_string().parse().unwrap_or(f64::from(value))
    } else {
        f64::from(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json(value: Value) -> serde_json::Value {
        serde_json::to_value(value).unwrap()
    }

    #[test]
    fn integers_beyond_2_pow_53_become_strings() {
        assert_eq!(
            json(Value::Int(9_007_199_254_740_992)),
            json!(9_007_199_254_740_992_i64)
        );
        assert_eq!(
            json(Value::Int(-9_007_199_254_740_992)),
            json!(-9_007_199_254_740_992_i64)
        );
        assert_eq!(
            json(Value::Int(9_007_199_254_740_993)),
            json!("9007199254740993")
        );
        assert_eq!(json(Value::Int(i64::MIN)), json!("-9223372036854775808"));
        assert_eq!(json(Value::UInt(u64::MAX)), json!("18446744073709551615"));
        assert_eq!(json(Value::UInt(7)), json!(7));
    }

    #[test]
    fn special_floats_are_strings() {
        assert_eq!(json(Value::Float(f64::NAN)), json!("NaN"));
        assert_eq!(json(Value::Float(f64::INFINITY)), json!("Infinity"));
        assert_eq!(json(Value::Float(f64::NEG_INFINITY)), json!("-Infinity"));
        assert_eq!(json(Value::Float(1.5)), json!(1.5));
        assert_eq!(widen_f32(0.1), 0.1);
    }

    #[test]
    fn temporal_values() {
        let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        let time = NaiveTime::from_hms_micro_opt(13, 4, 5, 120).unwrap();
        assert_eq!(json(Value::Date(date)), json!("2024-02-29"));
        assert_eq!(json(Value::Time(time)), json!("13:04:05.000120"));
        assert_eq!(
            json(Value::Time(NaiveTime::from_hms_opt(0, 0, 1).unwrap())),
            json!("00:00:01")
        );
        let ts = date.and_time(time);
        assert_eq!(
            json(Value::Timestamp(ts)),
            json!("2024-02-29T13:04:05.000120")
        );
        assert_eq!(
            json(Value::TimestampTz(ts.and_utc())),
            json!("2024-02-29T13:04:05.000120Z")
        );
    }

    #[test]
    fn other_values() {
        assert_eq!(json(Value::Null), json!(null));
        assert_eq!(json(Value::Bytes(vec![0, 255, 1])), json!("AP8B"));
        assert_eq!(json(Value::Decimal("-1.50".into())), json!("-1.50"));
        let id = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(
            json(Value::Uuid(id)),
            json!("01234567-89ab-cdef-0123-456789abcdef")
        );
        assert_eq!(json(Value::Json(json!({"a": [1]}))), json!({"a": [1]}));
        assert_eq!(
            json(Value::Array(vec![
                Value::Int(1),
                Value::Null,
                Value::Text("x".into())
            ])),
            json!([1, null, "x"])
        );
    }
}
