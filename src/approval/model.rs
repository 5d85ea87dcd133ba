//! What an approval is: the request it binds, who asked, who voted, and where it stands.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::datasource::Param;
use crate::identity::{Principal, PrincipalKind};
use crate::policy::Decision;

/// Where an approval stands. `Pending` and `Approved` are open and expire; the others are
/// final, except `Executing`, which `record_execution` closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for votes.
    Pending,
    /// Enough approvers agreed; the requester may run it once.
    Approved,
    /// An approver said no; final.
    Rejected,
    /// Nobody decided (or nobody ran it) in time; final.
    Expired,
    /// Claimed for its one execution, which has not reported back yet.
    Executing,
    /// Ran and succeeded.
    Executed,
    /// Ran and failed; not run again.
    Failed,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Pending,
        Status::Approved,
        Status::Rejected,
        Status::Expired,
        Status::Executing,
        Status::Executed,
        Status::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Expired => "expired",
            Status::Executing => "executing",
            Status::Executed => "executed",
            Status::Failed => "failed",
        }
    }

    /// Whether the expiry clock still runs for this status.
    pub fn expires(self) -> bool {
        matches!(self, Status::Pending | Status::Approved)
    }

    /// Whether the approval was claimed for execution: the one use is spent.
    pub fn used(self) -> bool {
        matches!(self, Status::Executing | Status::Executed | Status::Failed)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown status word, from a query string or a stored row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown approval status `{0}`: expected pending, approved, rejected, expired, executing, executed or failed"
)]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| UnknownStatus(raw.to_owned()))
    }
}

/// The requester as their verified token described them when they asked. Kept because
/// approvers judge who asked, and because the binding compares the requester who later
/// runs the statement with this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requester {
    pub sub: String,
    pub kind: PrincipalKind,
    pub groups: Vec<String>,
    pub on_behalf_of: Option<String>,
}

impl Requester {
    pub fn of(principal: &Principal) -> Requester {
        Requester {
            sub: principal.sub().to_owned(),
            kind: principal.kind(),
            groups: principal.groups().to_vec(),
            on_behalf_of: principal.on_behalf_of().map(str::to_owned),
        }
    }
}

/// Exactly what an approval lets run: the requester must send these again, unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub datasource: String,
    pub environment: String,
    /// The statement text byte for byte: whitespace and comments included.
    pub statement: String,
    pub params: Vec<Param>,
}

/// A request for approval, made when policy answered `approval_required`.
#[derive(Debug, Clone)]
pub struct NewApproval {
    pub requester: Requester,
    pub binding: Binding,
    /// Ids of the policies that asked for approval, and their reasons, for approvers.
    pub policies: Vec<String>,
    pub reasons: Vec<String>,
    /// Members of any of these groups may decide; must not be empty.
    pub approver_groups: Vec<String>,
    /// Distinct approvers needed; at least 1.
    pub min_approvals: u32,
    /// The id of the request that asked, to tie the approval to its audit events.
    pub request_id: Option<String>,
}

impl NewApproval {
    /// The approval a `approval_required` decision asks for.
    pub fn from_decision(
        requester: &Principal,
        binding: Binding,
        decision: &Decision,
        request_id: Option<String>,
    ) -> NewApproval {
        NewApproval {
            requester: Requester::of(requester),
            binding,
            policies: decision.policies.clone(),
            reasons: decision.reasons.clone(),
            approver_groups: decision.approver_groups.clone(),
            min_approvals: decision.min_approvals,
            request_id,
        }
    }
}

/// How one approver voted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    Reject,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
        }
    }
}

/// One approver's vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vote {
    pub approver_sub: String,
    pub approver_kind: PrincipalKind,
    pub approver_on_behalf_of: Option<String>,
    pub verdict: Verdict,
    pub comment: Option<String>,
    pub at: DateTime<Utc>,
}

/// How the one execution went, reported by whoever claimed the approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecutionRecord {
    pub ok: bool,
    pub rows_affected: u64,
    pub rows_returned: u64,
    /// The stable error code of a failed execution (`statement_timeout`, …), never the
    /// database's message, which may quote data.
    pub error_code: Option<String>,
    pub finished_at: DateTime<Utc>,
}

/// An approval as stored, with its votes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Approval {
    pub id: Uuid,
    pub status: Status,
    pub requester: Requester,
    pub datasource: String,
    pub environment: String,
    pub statement: String,
    /// Serialized with their types: `{"type": "int", "value": 5}`; see [`params_to_json`].
    #[serde(serialize_with = "serialize_params")]
    pub params: Vec<Param>,
    /// Hex SHA-256 of the binding (see `fingerprint`).
    pub fingerprint: String,
    pub policies: Vec<String>,
    pub reasons: Vec<String>,
    pub approver_groups: Vec<String>,
    pub min_approvals: u32,
    pub request_id: Option<String>,
    /// In the order they were cast.
    pub votes: Vec<Vote>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// When it became approved or rejected.
    pub decided_at: Option<DateTime<Utc>>,
    /// When it was claimed for execution.
    pub claimed_at: Option<DateTime<Utc>>,
    pub execution: Option<ExecutionRecord>,
}

impl Approval {
    /// Approve votes so far.
    pub fn approvals(&self) -> usize {
        self.votes
            .iter()
            .filter(|v| v.verdict == Verdict::Approve)
            .count()
    }

    /// Whether `viewer` may see this approval: they asked (or it was asked on their
    /// behalf), or they are in one of the approver groups. The same rule as `list`.
    pub fn visible_to(&self, viewer: &Principal) -> bool {
        self.requester.sub == viewer.sub()
            || self.requester.on_behalf_of.as_deref() == Some(viewer.sub())
            || self.approver_groups.iter().any(|g| viewer.in_group(g))
    }
}

/// What happened to an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Created,
    /// An approve vote that did not complete the quorum: still pending.
    Voted,
    Approved,
    Rejected,
    Expired,
    /// Claimed for execution.
    Executing,
    Executed,
    /// Executed and failed.
    Failed,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::Created,
        EventKind::Voted,
        EventKind::Approved,
        EventKind::Rejected,
        EventKind::Expired,
        EventKind::Executing,
        EventKind::Executed,
        EventKind::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Voted => "voted",
            EventKind::Approved => "approved",
            EventKind::Rejected => "rejected",
            EventKind::Expired => "expired",
            EventKind::Executing => "executing",
            EventKind::Executed => "executed",
            EventKind::Failed => "failed",
        }
    }

    pub(crate) fn parse(raw: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == raw)
    }

    /// Events webhook receivers get: a request appeared, was decided, or ran.
    pub fn notifies_webhooks(self) -> bool {
        matches!(
            self,
            EventKind::Created
                | EventKind::Approved
                | EventKind::Rejected
                | EventKind::Executed
                | EventKind::Failed
        )
    }
}

/// A change to an approval, as seen by [`super::Approvals::subscribe`] receivers.
#[derive(Debug, Clone)]
pub struct ApprovalEvent {
    pub kind: EventKind,
    /// The approval right after the change. For an event from another replica, as read
    /// from the store when its message arrived (possibly a later state).
    pub approval: Arc<Approval>,
    /// Whether this process made the change. The replica that makes a change audits it;
    /// events relayed from other replicas are for waking callers and streams only.
    pub local: bool,
}

fn serialize_params<S: serde::Serializer>(params: &[Param], s: S) -> Result<S::Ok, S::Error> {
    params_to_json(params).serialize(s)
}

/// Parameters as JSON that keeps their types exactly: `{"type": "null"}`,
/// `{"type": "bool" | "int" | "text" | "json", "value": …}`, and floats as the decimal
/// text Rust prints (`{"type": "float", "value": "0.1"}`, `"NaN"`, `"inf"`), which reads
/// back to the same bits where a JSON number might not.
pub fn params_to_json(params: &[Param]) -> Value {
    Value::Array(
        params
            .iter()
            .map(|p| match p {
                Param::Null => json!({"type": "null"}),
                Param::Bool(b) => json!({"type": "bool", "value": b}),
                Param::Int(i) => json!({"type": "int", "value": i}),
                Param::Float(f) => json!({"type": "float", "value": f.to_string()}),
                Param::Text(t) => json!({"type": "text", "value": t}),
                Param::Json(v) => json!({"type": "json", "value": v}),
            })
            .collect(),
    )
}

/// The inverse of [`params_to_json`].
pub(crate) fn params_from_json(value: &Value) -> Result<Vec<Param>, String> {
    let Value::Array(items) = value else {
        return Err("parameters are not a JSON array".to_owned());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let value = item.get("value");
            let param = match (item.get("type").and_then(Value::as_str), value) {
                (Some("null"), None) => Some(Param::Null),
                (Some("bool"), Some(Value::Bool(b))) => Some(Param::Bool(*b)),
                (Some("int"), Some(v)) => v.as_i64().map(Param::Int),
                (Some("float"), Some(Value::String(f))) => f.parse().ok().map(Param::Float),
                (Some("text"), Some(Value::String(t))) => Some(Param::Text(t.clone())),
                (Some("json"), Some(v)) => Some(Param::Json(v.clone())),
                _ => None,
            };
            param.ok_or_else(|| format!("parameter {} is not a typed parameter: {item}", i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_round_trip() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>().unwrap(), status);
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                json!(status.as_str())
            );
        }
        assert!("Pending".parse::<Status>().is_err());
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn params_keep_their_types_and_exact_values() {
        let params = vec![
            Param::Null,
            Param::Bool(false),
            Param::Int(i64::MIN),
            Param::Float(0.1),
            Param::Float(-0.0),
            Param::Float(f64::INFINITY),
            Param::Float(1e300),
            Param::Text("1".to_owned()),
            Param::Json(json!({"b": 1, "a": [1.5, null]})),
        ];
        let text = params_to_json(&params).to_string();
        let back = params_from_json(&serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(back, params);
        assert!(matches!(back[4], Param::Float(z) if z.is_sign_negative()));
        let nan = params_from_json(&params_to_json(&[Param::Float(f64::NAN)])).unwrap();
        assert!(matches!(nan[0], Param::Float(f) if f.is_nan()));
        // Key order of JSON parameters is kept: it is what the database receives as text.
        assert!(text.contains(r#"{"b":1,"a":[1.5,null]}"#), "{text}");
    }

    #[test]
    fn malformed_params_are_refused() {
        for bad in [
            json!({}),
            json!([{"type": "int", "value": "1"}]),
            json!([{"type": "float", "value": 1.5}]),
            json!([{"type": "null", "value": 1}]),
            json!([{"type": "blob", "value": "x"}]),
            json!([{"value": 1}]),
        ] {
            assert!(params_from_json(&bad).is_err(), "{bad}");
        }
    }
}
