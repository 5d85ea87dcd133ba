//! Approvals in the control store (tables `approvals`, `approval_votes`,
//! `approval_approver_groups`; migrations `0003_approvals.sql`).
//!
//! One SQL text serves SQLite and PostgreSQL: ids are hyphenated UUID text and JSON lists
//! are text on both, and timestamps bind as `DateTime<Utc>` (TIMESTAMPTZ on PostgreSQL,
//! RFC 3339 text in UTC on SQLite, which sorts as time does because every value is written
//! with the same `+00:00` offset and whole-millisecond or -microsecond fractions).
//!
//! Every transition is one conditional `UPDATE … WHERE status = …`, so the store, not this
//! process, decides races between replicas: whoever's statement matched the row made the
//! change, and everyone else sees zero rows affected.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::identity::{Principal, PrincipalKind};
use crate::store::ControlStore;

use super::error::ApprovalError;
use super::model::{
    Approval, ExecutionRecord, Requester, Status, Verdict, Vote, params_from_json, params_to_json,
};

/// Most approvals one `list` returns, newest first.
pub const LIST_LIMIT: usize = 500;

/// Runs `$body` with `$pool` bound to whichever pool the store has: the SQL is shared, the
/// types differ.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            ControlStore::Sqlite($pool) => $body,
            ControlStore::Postgres($pool) => $body,
        }
    };
}

macro_rules! approval_columns {
    () => {
        "id, status, requester_sub, requester_kind, requester_groups, requester_on_behalf_of, \
         datasource, environment, statement, params, fingerprint, policies, reasons, \
         approver_groups, min_approvals, request_id, created_at, expires_at, decided_at, \
         claimed_at, executed_at, rows_affected, rows_returned, error_code"
    };
}

macro_rules! vote_columns {
    () => {
        "approval_id, approver_sub, approver_kind, approver_on_behalf_of, verdict, comment, voted_at"
    };
}

#[derive(sqlx::FromRow)]
struct ApprovalRow {
    id: String,
    status: String,
    requester_sub: String,
    requester_kind: String,
    requester_groups: String,
    requester_on_behalf_of: Option<String>,
    datasource: String,
    environment: String,
    statement: String,
    params: String,
    fingerprint: String,
    policies: String,
    reasons: String,
    approver_groups: String,
    min_approvals: i64,
    request_id: Option<String>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    decided_at: Option<DateTime<Utc>>,
    claimed_at: Option<DateTime<Utc>>,
    executed_at: Option<DateTime<Utc>>,
    rows_affected: Option<i64>,
    rows_returned: Option<i64>,
    error_code: Option<String>,
}

#[derive(sqlx::FromRow)]
struct VoteRow {
    approval_id: String,
    approver_sub: String,
    approver_kind: String,
    approver_on_behalf_of: Option<String>,
    verdict: String,
    comment: Option<String>,
    voted_at: DateTime<Utc>,
}

/// Stores a new pending approval.
pub(super) async fn insert(store: &ControlStore, approval: &Approval) -> Result<(), ApprovalError> {
    let json = |list: &[String]| serde_json::Value::from(list.to_vec()).to_string();
    let insert = concat!(
        "INSERT INTO approvals (",
        approval_columns!(),
        ", approvals_count) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
         $14, $15, $16, $17, $18, NULL, NULL, NULL, NULL, NULL, NULL, 0)"
    );
    let group = "INSERT INTO approval_approver_groups (approval_id, group_name) VALUES ($1, $2)";
    on_pool!(store, |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query(insert)
            .bind(approval.id.to_string())
            .bind(approval.status.as_str())
            .bind(&approval.requester.sub)
            .bind(approval.requester.kind.as_str())
            .bind(json(&approval.requester.groups))
            .bind(&approval.requester.on_behalf_of)
            .bind(&approval.datasource)
            .bind(&approval.environment)
            .bind(&approval.statement)
            .bind(params_to_json(&approval.params).to_string())
            .bind(&approval.fingerprint)
            .bind(json(&approval.policies))
            .bind(json(&approval.reasons))
            .bind(json(&approval.approver_groups))
            .bind(i64::from(approval.min_approvals))
            .bind(&approval.request_id)
            .bind(approval.created_at)
            .bind(approval.expires_at)
            .execute(&mut *tx)
            .await?;
        for name in &approval.approver_groups {
            sqlx::query(group)
                .bind(approval.id.to_string())
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    });
    Ok(())
}

/// The approval with its votes, as stored (no expiry applied).
pub(super) async fn load(
    store: &ControlStore,
    id: Uuid,
) -> Result<Option<Approval>, ApprovalError> {
    let select = concat!(
        "SELECT ",
        approval_columns!(),
        " FROM approvals WHERE id = $1"
    );
    let votes = concat!(
        "SELECT ",
        vote_columns!(),
        " FROM approval_votes WHERE approval_id = $1 ORDER BY voted_at, approver_sub"
    );
    let key = id.to_string();
    let (row, votes) = on_pool!(store, |pool| {
        let row: Option<ApprovalRow> = sqlx::query_as(select)
            .bind(&key)
            .fetch_optional(pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let votes: Vec<VoteRow> = sqlx::query_as(votes).bind(&key).fetch_all(pool).await?;
        (row, votes)
    });
    approval_from(row, votes).map(Some)
}

/// Approvals `viewer` requested (or that were requested on their behalf) or may decide,
/// newest first, at most [`LIST_LIMIT`].
pub(super) async fn list(
    store: &ControlStore,
    viewer: &Principal,
    status: Option<Status>,
) -> Result<Vec<Approval>, ApprovalError> {
    let (rows, votes) = on_pool!(store, |pool| {
        let mut query = sqlx::QueryBuilder::new(concat!(
            "SELECT ",
            approval_columns!(),
            " FROM approvals WHERE (requester_sub = "
        ));
        query.push_bind(viewer.sub());
        query.push(" OR requester_on_behalf_of = ");
        query.push_bind(viewer.sub());
        if !viewer.groups().is_empty() {
            query.push(
                " OR id IN (SELECT approval_id FROM approval_approver_groups WHERE group_name IN (",
            );
            let mut groups = query.separated(", ");
            for group in viewer.groups() {
                groups.push_bind(group.as_str());
            }
            query.push("))");
        }
        query.push(")");
        if let Some(status) = status {
            query.push(" AND status = ");
            query.push_bind(status.as_str());
        }
        query.push(" ORDER BY created_at DESC, id DESC LIMIT ");
        query.push(LIST_LIMIT);
        let rows: Vec<ApprovalRow> = query.build_query_as().fetch_all(pool).await?;

        let mut votes: Vec<VoteRow> = Vec::new();
        if !rows.is_empty() {
            let mut query = sqlx::QueryBuilder::new(concat!(
                "SELECT ",
                vote_columns!(),
                " FROM approval_votes WHERE approval_id IN ("
            ));
            let mut ids = query.separated(", ");
            for row in &rows {
                ids.push_bind(row.id.as_str());
            }
            query.push(") ORDER BY voted_at, approver_sub");
            votes = query.build_query_as().fetch_all(pool).await?;
        }
        (rows, votes)
    });
    let mut by_approval: HashMap<String, Vec<VoteRow>> = HashMap::new();
    for vote in votes {
        by_approval
            .entry(vote.approval_id.clone())
            .or_default()
            .push(vote);
    }
    rows.into_iter()
        .map(|row| {
            let votes = by_approval.remove(&row.id).unwrap_or_default();
            approval_from(row, votes)
        })
        .collect()
}

/// Marks the approval expired if it is open and past its expiry; whether it changed.
pub(super) async fn expire_one(
    store: &ControlStore,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, ApprovalError> {
    let sql = "UPDATE approvals SET status = 'expired' \
               WHERE id = $1 AND status IN ('pending', 'approved') AND expires_at <= $2";
    let affected = on_pool!(store, |pool| sqlx::query(sql)
        .bind(id.to_string())
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(affected == 1)
}

/// Marks every open approval past its expiry expired; the ids this call changed.
pub(super) async fn expire_due(
    store: &ControlStore,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, ApprovalError> {
    let sql = "UPDATE approvals SET status = 'expired' \
               WHERE status IN ('pending', 'approved') AND expires_at <= $1 RETURNING id";
    let ids: Vec<String> = on_pool!(store, |pool| sqlx::query_scalar(sql)
        .bind(now)
        .fetch_all(pool)
        .await?);
    ids.iter()
        .map(|id| {
            Uuid::parse_str(id).map_err(|e| ApprovalError::Corrupt {
                id: id.clone(),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// What became of a vote.
pub(super) enum VoteOutcome {
    /// Counted; the approval's status after it.
    Counted(Status),
    /// The approval was not pending (or had expired) when the vote arrived.
    NotOpen,
    /// This approver had already voted.
    Duplicate,
}

/// Records `vote` and applies it in one transaction: a rejection closes the approval, an
/// approval completes it once `min_approvals` approvers agree.
///
/// The transaction starts with the conditional `UPDATE` of the approval row: on PostgreSQL
/// that locks the row, so concurrent votes on one approval are counted one after the
/// other (a second vote re-checks `status = 'pending'` after the first commits); on SQLite
/// it takes the write lock before anything is read. The vote's primary key
/// (approval, approver) turns a second vote by the same approver into `Duplicate`, and the
/// rollback undoes the count.
pub(super) async fn vote(
    store: &ControlStore,
    id: Uuid,
    vote: &Vote,
) -> Result<VoteOutcome, ApprovalError> {
    let apply = match vote.verdict {
        Verdict::Approve => {
            "UPDATE approvals SET approvals_count = approvals_count + 1, \
             status = CASE WHEN approvals_count + 1 >= min_approvals THEN 'approved' ELSE status END, \
             decided_at = CASE WHEN approvals_count + 1 >= min_approvals THEN $2 ELSE decided_at END \
             WHERE id = $1 AND status = 'pending' AND expires_at > $2 RETURNING status"
        }
        Verdict::Reject => {
            "UPDATE approvals SET status = 'rejected', decided_at = $2 \
             WHERE id = $1 AND status = 'pending' AND expires_at > $2 RETURNING status"
        }
    };
    let record = "INSERT INTO approval_votes (approval_id, approver_sub, approver_kind, \
                  approver_on_behalf_of, verdict, comment, voted_at) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7)";
    let key = id.to_string();
    let (status, inserted) = on_pool!(store, |pool| {
        let mut tx = pool.begin().await?;
        let status: Option<String> = sqlx::query_scalar(apply)
            .bind(&key)
            .bind(vote.at)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(status) = status else {
            tx.rollback().await?;
            return Ok(VoteOutcome::NotOpen);
        };
        let inserted = sqlx::query(record)
            .bind(&key)
            .bind(&vote.approver_sub)
            .bind(vote.approver_kind.as_str())
            .bind(&vote.approver_on_behalf_of)
            .bind(vote.verdict.as_str())
            .bind(&vote.comment)
            .bind(vote.at)
            .execute(&mut *tx)
            .await;
        match inserted {
            Ok(_) => {
                tx.commit().await?;
                (status, true)
            }
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                tx.rollback().await?;
                (status, false)
            }
            Err(e) => return Err(e.into()),
        }
    });
    if !inserted {
        return Ok(VoteOutcome::Duplicate);
    }
    let status = Status::from_str(&status).map_err(|e| ApprovalError::Corrupt {
        id: key,
        reason: e.to_string(),
    })?;
    Ok(VoteOutcome::Counted(status))
}

/// approved → executing, if the approval is approved, unexpired and bound to
/// `fingerprint`. At most one caller, in any process, sees `true` for an approval.
pub(super) async fn claim(
    store: &ControlStore,
    id: Uuid,
    fingerprint: &str,
    now: DateTime<Utc>,
) -> Result<bool, ApprovalError> {
    let sql = "UPDATE approvals SET status = 'executing', claimed_at = $3 \
               WHERE id = $1 AND status = 'approved' AND fingerprint = $2 AND expires_at > $3";
    let affected = on_pool!(store, |pool| sqlx::query(sql)
        .bind(id.to_string())
        .bind(fingerprint)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(affected == 1)
}

/// executing → executed or failed, with the outcome; whether it was executing.
pub(super) async fn finish(
    store: &ControlStore,
    id: Uuid,
    outcome: &ExecutionRecord,
) -> Result<bool, ApprovalError> {
    let sql = "UPDATE approvals SET status = $2, executed_at = $3, rows_affected = $4, \
               rows_returned = $5, error_code = $6 WHERE id = $1 AND status = 'executing'";
    let status = if outcome.ok {
        Status::Executed
    } else {
        Status::Failed
    };
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let affected = on_pool!(store, |pool| sqlx::query(sql)
        .bind(id.to_string())
        .bind(status.as_str())
        .bind(outcome.finished_at)
        .bind(count(outcome.rows_affected))
        .bind(count(outcome.rows_returned))
        .bind(&outcome.error_code)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(affected == 1)
}

fn approval_from(row: ApprovalRow, votes: Vec<VoteRow>) -> Result<Approval, ApprovalError> {
    let corrupt = |reason: String| ApprovalError::Corrupt {
        id: row.id.clone(),
        reason,
    };
    let strings = |column: &str, text: &str| {
        serde_json::from_str::<Vec<String>>(text)
            .map_err(|e| corrupt(format!("column {column}: {e}")))
    };
    let kind = |text: &str| {
        PrincipalKind::from_str(text).map_err(|e| corrupt(format!("principal kind: {e}")))
    };
    let id = Uuid::parse_str(&row.id).map_err(|e| corrupt(e.to_string()))?;
    let status = Status::from_str(&row.status).map_err(|e| corrupt(e.to_string()))?;
    let params = serde_json::from_str(&row.params)
        .map_err(|e| e.to_string())
        .and_then(|value| params_from_json(&value))
        .map_err(|e| corrupt(format!("column params: {e}")))?;
    let votes = votes
        .into_iter()
        .map(|vote| {
            let verdict = match vote.verdict.as_str() {
                "approve" => Verdict::Approve,
                "reject" => Verdict::Reject,
                other => return Err(corrupt(format!("vote verdict `{other}`"))),
            };
            Ok(Vote {
                approver_kind: kind(&vote.approver_kind)?,
                approver_sub: vote.approver_sub,
                approver_on_behalf_of: vote.approver_on_behalf_of,
                verdict,
                comment: vote.comment,
                at: vote.voted_at,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let execution = match (status, row.executed_at) {
        (Status::Executed | Status::Failed, Some(finished_at)) => Some(ExecutionRecord {
            ok: status == Status::Executed,
            rows_affected: row
                .rows_affected
                .map_or(0, |n| u64::try_from(n).unwrap_or(0)),
            rows_returned: row
                .rows_returned
                .map_or(0, |n| u64::try_from(n).unwrap_or(0)),
            error_code: row.error_code.clone(),
            finished_at,
        }),
        _ => None,
    };
    Ok(Approval {
        id,
        status,
        requester: Requester {
            kind: kind(&row.requester_kind)?,
            groups: strings("requester_groups", &row.requester_groups)?,
            sub: row.requester_sub.clone(),
            on_behalf_of: row.requester_on_behalf_of.clone(),
        },
        params,
        policies: strings("policies", &row.policies)?,
        reasons: strings("reasons", &row.reasons)?,
        approver_groups: strings("approver_groups", &row.approver_groups)?,
        min_approvals: u32::try_from(row.min_approvals)
            .map_err(|_| corrupt(format!("min_approvals {}", row.min_approvals)))?,
        votes,
        execution,
        datasource: row.datasource,
        environment: row.environment,
        statement: row.statement,
        fingerprint: row.fingerprint,
        request_id: row.request_id,
        created_at: row.created_at,
        expires_at: row.expires_at,
        decided_at: row.decided_at,
        claimed_at: row.claimed_at,
    })
}
