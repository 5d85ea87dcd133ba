//! What an audit event says, and the canonical encoding its hash covers.
//!
//! # Canonical encoding (format version 1)
//!
//! An event's `hash` is the lowercase hex SHA-256 of its *body*: one line of compact JSON
//! (UTF-8, no whitespace between tokens, no trailing newline) holding these members in
//! exactly this order:
//!
//! ```text
//! {"v":1,"seq":…,"id":…,"time":…,"prev_hash":…,"kind":…,"request_id":…,"principal":…,
//!  "auth_error":…,"client":…,"datasource":…,"environment":…,"statement":…,"fingerprint":…,
//!  "intent":…,"decision":…,"approval_id":…,"completion":…}
//! ```
//!
//! - `v` is the format version; any change to the members below bumps it.
//! - `seq` is a JSON integer (1, 2, …); every other number is a non-negative integer too:
//!   there are no floats, whose text form differs between encoders.
//! - `id`, `request_id` and `approval_id` are lowercase hyphenated UUIDs.
//! - `time` is UTC with exactly six fractional digits: `2025-01-31T09:15:02.123456Z`.
//! - `prev_hash` is the previous event's `hash`, or 64 zeros for the first event. It sits
//!   inside the hashed body, which is what chains the events.
//! - Members that have no value are written as `null`, never left out, and nested objects
//!   keep the field order of their types below ([`EventPrincipal`], [`ClientInfo`],
//!   [`EventIntent`], [`EventDecision`], [`EventCompletion`]).
//! - Strings use JSON's escapes only where JSON requires them (`"`, `\`, control
//!   characters); everything else is written as raw UTF-8.
//!
//! The stored body *is* the hashed byte string, so verification hashes what is stored and
//! never depends on re-encoding: a later version that adds members (and bumps `v`) still
//! verifies every event an earlier version wrote. The unit test `canonical_body_is_pinned`
//! fails if anyone changes the encoding by accident.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Version of the canonical encoding written by this build.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// `prev_hash` of the first event of a chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened. Stored as the lowercase word of [`EventKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A query's decision, committed *before* the statement runs (write-ahead).
    Query,
    /// How a query ended, linked to its [`EventKind::Query`] event by `request_id`.
    QueryCompleted,
    Explain,
    Schema,
    /// A refused token; the event carries `auth_error` instead of a principal.
    AuthFailed,
    ApprovalCreated,
    ApprovalDecided,
    ApprovalExecuted,
    PolicyReload,
    /// Someone read the audit trail itself.
    AuditRead,
}

impl EventKind {
    pub const ALL: [EventKind; 10] = [
        EventKind::Query,
        EventKind::QueryCompleted,
        EventKind::Explain,
        EventKind::Schema,
        EventKind::AuthFailed,
        EventKind::ApprovalCreated,
        EventKind::ApprovalDecided,
        EventKind::ApprovalExecuted,
        EventKind::PolicyReload,
        EventKind::AuditRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Query => "query",
            EventKind::QueryCompleted => "query_completed",
            EventKind::Explain => "explain",
            EventKind::Schema => "schema",
            EventKind::AuthFailed => "auth_failed",
            EventKind::ApprovalCreated => "approval_created",
            EventKind::ApprovalDecided => "approval_decided",
            EventKind::ApprovalExecuted => "approval_executed",
            EventKind::PolicyReload => "policy_reload",
            EventKind::AuditRead => "audit_read",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown event kind in a filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown audit event kind `{0}`")]
pub struct UnknownKind(pub String);

impl FromStr for EventKind {
    type Err = UnknownKind;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == raw)
            .ok_or_else(|| UnknownKind(raw.to_owned()))
    }
}

/// Who made the request, as the verified token said. Field order is part of the canonical
/// encoding: add fields only at the end, and only with a new format version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPrincipal {
    pub sub: String,
    /// `human`, `agent` or `service`.
    pub kind: String,
    #[serde(default)]
    pub groups: Vec<String>,
    /// The person an agent acts for (the token's `act` claim).
    pub on_behalf_of: Option<String>,
}

impl From<&crate::identity::Principal> for EventPrincipal {
    fn from(principal: &crate::identity::Principal) -> Self {
        EventPrincipal {
            sub: principal.sub().to_owned(),
            kind: principal.kind().as_str().to_owned(),
            groups: principal.groups().to_vec(),
            on_behalf_of: principal.on_behalf_of().map(str::to_owned),
        }
    }
}

/// Where the request came from. Field order is part of the canonical encoding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    pub address: Option<String>,
    pub user_agent: Option<String>,
    /// The W3C trace id of the request, to join the audit trail with traces.
    pub trace_id: Option<String>,
}

/// What the statement does, as the intent analysis found. Field order is part of the
/// canonical encoding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventIntent {
    #[serde(default)]
    pub actions: Vec<String>,
    #[serde(default)]
    pub tables: Vec<String>,
    #[serde(default)]
    pub flags: Vec<String>,
}

/// What policy decided. Field order is part of the canonical encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDecision {
    /// `allow`, `deny` or `approval_required`.
    pub effect: String,
    #[serde(default)]
    pub policies: Vec<String>,
    #[serde(default)]
    pub reasons: Vec<String>,
}

impl From<&crate::policy::Decision> for EventDecision {
    fn from(decision: &crate::policy::Decision) -> Self {
        EventDecision {
            effect: decision.effect.as_str().to_owned(),
            policies: decision.policies.clone(),
            reasons: decision.reasons.clone(),
        }
    }
}

/// How a query ended. Field order is part of the canonical encoding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCompletion {
    pub rows_returned: u64,
    pub rows_affected: u64,
    /// Result columns that were masked (output names).
    #[serde(default)]
    pub masked_columns: Vec<String>,
    /// Values masked in the result, by either masking layer.
    pub masked_values: u64,
    pub duration_ms: u64,
    /// The gateway's error code when the statement failed.
    pub error_code: Option<String>,
}

/// One event as a caller supplies it; the writer adds `id`, `seq`, `time` and the hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvent {
    pub kind: EventKind,
    /// The request this event belongs to; a query and its completion share it.
    pub request_id: Uuid,
    pub principal: Option<EventPrincipal>,
    /// Why a token was refused (for [`EventKind::AuthFailed`]).
    pub auth_error: Option<String>,
    #[serde(default)]
    pub client: ClientInfo,
    pub datasource: Option<String>,
    pub environment: Option<String>,
    /// The statement text, already PII-masked by the caller: the audit trail must not
    /// become a copy of the data it protects.
    pub statement: Option<String>,
    pub fingerprint: Option<String>,
    pub intent: Option<EventIntent>,
    pub decision: Option<EventDecision>,
    pub approval_id: Option<Uuid>,
    pub completion: Option<EventCompletion>,
}

impl NewEvent {
    /// An event of `kind` for request `request_id` with every optional part empty.
    pub fn new(kind: EventKind, request_id: Uuid) -> NewEvent {
        NewEvent {
            kind,
            request_id,
            principal: None,
            auth_error: None,
            client: ClientInfo::default(),
            datasource: None,
            environment: None,
            statement: None,
            fingerprint: None,
            intent: None,
            decision: None,
            approval_id: None,
            completion: None,
        }
    }

    /// Replaces NUL characters with U+FFFD in every string. PostgreSQL `TEXT` cannot hold
    /// NUL, and a token's `sub` is caller-controlled: without this, one crafted claim
    /// would fail the whole batch it rides in, and with it every other request's audit.
    pub(crate) fn scrub_nul(&mut self) {
        fn scrub(text: &mut String) {
            if text.contains('\0') {
                *text = text.replace('\0', "\u{FFFD}");
            }
        }
        fn scrub_opt(text: &mut Option<String>) {
            if let Some(text) = text {
                scrub(text);
            }
        }
        fn scrub_all(texts: &mut [String]) {
            texts.iter_mut().for_each(scrub);
        }
        if let Some(p) = &mut self.principal {
            scrub(&mut p.sub);
            scrub(&mut p.kind);
            scrub_all(&mut p.groups);
            scrub_opt(&mut p.on_behalf_of);
        }
        scrub_opt(&mut self.auth_error);
        scrub_opt(&mut self.client.address);
        scrub_opt(&mut self.client.user_agent);
        scrub_opt(&mut self.client.trace_id);
        scrub_opt(&mut self.datasource);
        scrub_opt(&mut self.environment);
        scrub_opt(&mut self.statement);
        scrub_opt(&mut self.fingerprint);
        if let Some(i) = &mut self.intent {
            scrub_all(&mut i.actions);
            scrub_all(&mut i.tables);
            scrub_all(&mut i.flags);
        }
        if let Some(d) = &mut self.decision {
            scrub(&mut d.effect);
            scrub_all(&mut d.policies);
            scrub_all(&mut d.reasons);
        }
        if let Some(c) = &mut self.completion {
            scrub_all(&mut c.masked_columns);
            scrub_opt(&mut c.error_code);
        }
    }

    pub(crate) fn principal_sub(&self) -> Option<&str> {
        self.principal.as_ref().map(|p| p.sub.as_str())
    }

    pub(crate) fn effect(&self) -> Option<&str> {
        self.decision.as_ref().map(|d| d.effect.as_str())
    }
}

/// A committed event as stored and read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the chain: 1, 2, … without gaps.
    pub seq: i64,
    /// UUIDv7, so ids sort by creation time too.
    pub id: Uuid,
    /// When the writer took the event, UTC, microsecond precision.
    pub time: DateTime<Utc>,
    pub prev_hash: String,
    /// Lowercase hex SHA-256 of [`AuditEvent::canonical_body`].
    pub hash: String,
    #[serde(flatten)]
    pub event: NewEvent,
}

impl AuditEvent {
    /// The canonical encoding this event's hash covers (see the module docs), so anyone
    /// holding an event of format version 1 can recompute its hash.
    pub fn canonical_body(&self) -> String {
        canonical_body(self.seq, self.id, self.time, &self.prev_hash, &self.event)
    }

    /// The cursor that resumes a listing or a stream right after this event.
    pub fn cursor(&self) -> super::Cursor {
        super::Cursor::after_seq(self.seq)
    }
}

/// The text form of `time` inside a body and in the SQLite `time` column: fixed width, so
/// text order is time order.
pub(crate) fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The current time cut to microseconds, the precision both stores keep.
pub(crate) fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// Lowercase hex SHA-256 of a body.
pub(crate) fn hash_body(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}

/// The body as written to the store: the field order of this struct *is* the canonical
/// order, which is why it is separate from the API types (those may gain serde attributes
/// for presentation without touching what is hashed).
#[derive(Serialize)]
struct CanonicalBody<'a> {
    v: u32,
    seq: i64,
    id: Uuid,
    time: &'a str,
    prev_hash: &'a str,
    kind: EventKind,
    request_id: Uuid,
    principal: &'a Option<EventPrincipal>,
    auth_error: &'a Option<String>,
    client: &'a ClientInfo,
    datasource: &'a Option<String>,
    environment: &'a Option<String>,
    statement: &'a Option<String>,
    fingerprint: &'a Option<String>,
    intent: &'a Option<EventIntent>,
    decision: &'a Option<EventDecision>,
    approval_id: &'a Option<Uuid>,
    completion: &'a Option<EventCompletion>,
}

pub(crate) fn canonical_body(
    seq: i64,
    id: Uuid,
    time: DateTime<Utc>,
    prev_hash: &str,
    event: &NewEvent,
) -> String {
    let time = format_time(time);
    let body = CanonicalBody {
        v: FORMAT_VERSION,
        seq,
        id,
        time: &time,
        prev_hash,
        kind: event.kind,
        request_id: event.request_id,
        principal: &event.principal,
        auth_error: &event.auth_error,
        client: &event.client,
        datasource: &event.datasource,
        environment: &event.environment,
        statement: &event.statement,
        fingerprint: &event.fingerprint,
        intent: &event.intent,
        decision: &event.decision,
        approval_id: &event.approval_id,
        completion: &event.completion,
    };
    // Serializing plain structs of strings, integers and UUIDs into a String cannot fail;
    // the fallback keeps this total without a panic path.
    serde_json::to_string(&body).unwrap_or_default()
}

/// A stored body read back. Lenient on purpose: members a later format adds are ignored,
/// so this build can still read (and verify) what a newer one wrote.
#[derive(Deserialize)]
pub(crate) struct StoredBody {
    pub v: u32,
    pub seq: i64,
    pub id: Uuid,
    pub time: String,
    pub prev_hash: String,
    #[serde(flatten)]
    pub event: NewEvent,
}

impl StoredBody {
    pub(crate) fn parse(body: &str) -> Result<StoredBody, String> {
        let parsed: StoredBody = serde_json::from_str(body).map_err(|e| e.to_string())?;
        if parsed.v == 0 || parsed.v > FORMAT_VERSION {
            return Err(format!("unknown body format version {}", parsed.v));
        }
        Ok(parsed)
    }

    /// The event this body describes, with the stored `hash`.
    pub(crate) fn into_event(self, hash: String) -> Result<AuditEvent, String> {
        let time = DateTime::parse_from_rfc3339(&self.time)
            .map_err(|e| format!("bad time `{}`: {e}", self.time))?
            .with_timezone(&Utc);
        Ok(AuditEvent {
            seq: self.seq,
            id: self.id,
            time,
            prev_hash: self.prev_hash,
            hash,
            event: self.event,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NewEvent {
        NewEvent {
            kind: EventKind::Query,
            request_id: Uuid::parse_str("0190f5a4-0000-7000-8000-000000000001").unwrap(),
            principal: Some(EventPrincipal {
                sub: "agent-7".into(),
                kind: "agent".into(),
                groups: vec!["analysts".into()],
                on_behalf_of: Some("ada".into()),
            }),
            auth_error: None,
            client: ClientInfo {
                address: Some("10.0.0.5".into()),
                user_agent: Some("curl/8 \"quoted\"".into()),
                trace_id: None,
            },
            datasource: Some("shop".into()),
            environment: Some("dev".into()),
            statement: Some("SELECT * FROM customers WHERE email = '<email>' -- é".into()),
            fingerprint: Some("ab12".into()),
            intent: Some(EventIntent {
                actions: vec!["select".into()],
                tables: vec!["customers".into()],
                flags: vec![],
            }),
            decision: Some(EventDecision {
                effect: "allow".into(),
                policies: vec!["analysts-read".into()],
                reasons: vec!["analysts may read".into()],
            }),
            approval_id: None,
            completion: None,
        }
    }

    #[test]
    fn canonical_body_is_pinned() {
        let id = Uuid::parse_str("0190f5a4-1111-7222-8333-444455556666").unwrap();
        let time = DateTime::parse_from_rfc3339("2025-01-31T09:15:02.1234Z")
            .unwrap()
            .with_timezone(&Utc);
        let body = canonical_body(1, id, time, GENESIS_HASH, &sample());
        let expected = concat!(
            r#"{"v":1,"seq":1,"id":"0190f5a4-1111-7222-8333-444455556666","#,
            r#""time":"2025-01-31T09:15:02.123400Z","#,
            r#""prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","#,
            r#""kind":"query","request_id":"0190f5a4-0000-7000-8000-000000000001","#,
            r#""principal":{"sub":"agent-7","kind":"agent","groups":["analysts"],"on_behalf_of":"ada"},"#,
            r#""auth_error":null,"#,
            r#""client":{"address":"10.0.0.5","user_agent":"curl/8 \"quoted\"","trace_id":null},"#,
            r#""datasource":"shop","environment":"dev","#,
            r#""statement":"SELECT * FROM customers WHERE email = '<email>' -- é","#,
            r#""fingerprint":"ab12","#,
            r#""intent":{"actions":["select"],"tables":["customers"],"flags":[]},"#,
            r#""decision":{"effect":"allow","policies":["analysts-read"],"reasons":["analysts may read"]},"#,
            r#""approval_id":null,"completion":null}"#,
        );
        assert_eq!(body, expected);
        assert_eq!(
            hash_body(&body),
            hex::encode(Sha256::digest(expected.as_bytes()))
        );
        // A body parses back into the same event.
        let parsed = StoredBody::parse(&body).unwrap();
        let event = parsed.into_event(hash_body(&body)).unwrap();
        assert_eq!(event.event, sample());
        assert_eq!(event.time, time);
        assert_eq!(event.canonical_body(), body);
    }

    #[test]
    fn completion_numbers_are_integers() {
        let mut event = NewEvent::new(EventKind::QueryCompleted, Uuid::nil());
        event.completion = Some(EventCompletion {
            rows_returned: 3,
            rows_affected: 0,
            masked_columns: vec!["email".into()],
            masked_values: 3,
            duration_ms: 12,
            error_code: None,
        });
        let body = canonical_body(2, Uuid::nil(), now_micros(), GENESIS_HASH, &event);
        assert!(body.contains(
            r#""completion":{"rows_returned":3,"rows_affected":0,"masked_columns":["email"],"masked_values":3,"duration_ms":12,"error_code":null}"#
        ));
    }

    #[test]
    fn kinds_round_trip_through_text() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::String(kind.as_str().into())
            );
        }
        assert!("select".parse::<EventKind>().is_err());
    }

    #[test]
    fn nul_characters_are_replaced_everywhere() {
        let mut event = sample();
        event.principal.as_mut().unwrap().sub = "a\0b".into();
        event.statement = Some("x\0".into());
        event.scrub_nul();
        assert_eq!(event.principal_sub(), Some("a\u{FFFD}b"));
        assert_eq!(event.statement.as_deref(), Some("x\u{FFFD}"));
    }

    #[test]
    fn unknown_format_versions_are_refused() {
        let body = canonical_body(1, Uuid::nil(), now_micros(), GENESIS_HASH, &sample())
            .replacen("\"v\":1", "\"v\":9", 1);
        assert!(StoredBody::parse(&body).is_err());
    }
}
