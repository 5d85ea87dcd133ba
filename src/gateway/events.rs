//! Audit events as the pipeline builds them, and the mapping of audit and catalog errors.
//!
//! Events never carry a token, a parameter value or result data; statement text is
//! scrubbed of detected PII before it is recorded (the caller of these functions does
//! that with the masker, which it owns).

use std::time::Duration;

use uuid::Uuid;

use crate::audit::{
    AuditError, ClientInfo, EventCompletion, EventIntent, EventKind, EventPrincipal, NewEvent,
};
use crate::intent::Intent;
use crate::masking::MaskReport;
use crate::masking::classify::CatalogError;

use super::{Caller, GatewayError, RequestContext};

fn client(context: &RequestContext) -> ClientInfo {
    ClientInfo {
        address: context.client_address.clone(),
        user_agent: context.user_agent.clone(),
        trace_id: context.trace_id(),
    }
}

/// An event of `kind` made by `caller`, every other part empty.
pub(super) fn for_caller(kind: EventKind, request_id: Uuid, caller: &Caller) -> NewEvent {
    let mut event = NewEvent::new(kind, request_id);
    event.principal = Some(EventPrincipal::from(&caller.principal));
    event.client = client(&caller.context);
    event
}

/// A refused token: the reason, never the token.
pub(super) fn auth_failed(context: &RequestContext, refusal: &GatewayError) -> NewEvent {
    let mut event = NewEvent::new(EventKind::AuthFailed, Uuid::now_v7());
    event.auth_error = Some(refusal.to_string());
    event.client = client(context);
    event.completion = Some(refused(refusal, Duration::ZERO));
    event
}

pub(super) fn intent(intent: &Intent) -> EventIntent {
    EventIntent {
        actions: intent
            .actions
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect(),
        tables: intent
            .tables
            .iter()
            .map(|t| format!("{}:{}", t.table, t.access.as_str()))
            .collect(),
        flags: intent
            .flags
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect(),
    }
}

/// The completion part of a request that ended in `error`.
pub(super) fn refused(error: &GatewayError, elapsed: Duration) -> EventCompletion {
    EventCompletion {
        duration_ms: millis(elapsed),
        error_code: Some(error.code().to_owned()),
        ..EventCompletion::default()
    }
}

/// The completion part of a statement that ran.
pub(super) fn completed(
    rows_returned: u64,
    rows_affected: u64,
    column_names: &[String],
    report: &MaskReport,
    elapsed: Duration,
) -> EventCompletion {
    EventCompletion {
        rows_returned,
        rows_affected,
        masked_columns: column_names
            .iter()
            .zip(&report.columns)
            .filter(|(_, masking)| masking.masked)
            .map(|(name, _)| name.clone())
            .collect(),
        masked_values: report.masked_values,
        duration_ms: millis(elapsed),
        error_code: None,
    }
}

fn millis(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

/// A catalog that cannot be read at query time: the database's problem (configuration
/// problems stop start-up before any request).
pub(super) fn catalog_error(error: CatalogError) -> GatewayError {
    match error {
        CatalogError::Catalog { source, .. } => GatewayError::from(source),
        other => GatewayError::MaskingFailed(other.to_string()),
    }
}

/// Reading the audit trail failed: a bad cursor is the caller's mistake, the rest is the
/// store's.
pub(super) fn audit_query_error(error: AuditError) -> GatewayError {
    match error {
        AuditError::InvalidCursor(_) => GatewayError::InvalidRequest(error.to_string()),
        other => super::audit_unavailable(other),
    }
}
