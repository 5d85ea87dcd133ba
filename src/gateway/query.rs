//! `Gateway::query`: one statement through every stage of the pipeline.
//!
//! The order matters and is the security argument:
//! 1. validate, parse, classify, decide — nothing touches the database;
//! 2. the masking plan: probing through predicates on masked columns is refused, and so
//!    is a write carrying masked output;
//! 3. approvals: a statement that needs one becomes an approval request (nothing runs);
//!    one that carries an approval id claims it — exactly once, and only if requester,
//!    datasource, statement and parameters are exactly what was approved;
//! 4. the write-ahead audit event is committed, or nothing runs;
//! 5. the statement runs; database error messages are scrubbed of detected PII;
//! 6. the result is masked (strict: a masking failure fails the request);
//! 7. the completion event is recorded (and the approval's execution, when it had one).
//!
//! Every refusal in 1–3 is itself audited before the caller hears of it.

use std::time::Instant;

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Statement, visit_expressions};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::approval::{Binding, ExecutionRecord, NewApproval};
use crate::audit::{EventKind, NewEvent};
use crate::config::PredicateRule;
use crate::datasource::{Access, Datasource, Param};
use crate::intent::{self, Action, Intent};
use crate::masking::lineage::SourceColumn;
use crate::masking::{Classification, StatementPlan, is_mask_artifact};
use crate::policy::{Decision, Effect};

use super::unmask::Unmask;
use super::{
    Caller, Gateway, GatewayError, PendingApproval, QueryOutcome, QueryReply, QueryRequest,
    audit_unavailable, events, resource, stage, stage_sync, validate,
};
use crate::telemetry::{self, Stage, metrics};

/// Policy id reported when a statement is refused for filtering on masked columns.
pub(crate) const PROBING_POLICY: &str = "gatehouse:masking.predicates";

/// A statement that passed every check: it may run, or (`needs_approval`) it may be
/// submitted for approval.
struct Admitted<'g> {
    datasource: &'g Datasource,
    intent: Intent,
    decision: Decision,
    plan: StatementPlan,
    needs_approval: bool,
}

impl Gateway {
    /// Runs one statement for the caller: validate, classify, decide, plan masking, audit,
    /// execute, mask, audit. Traced as `gateway.query`, continuing the caller's trace when
    /// it sent a `traceparent` and no enclosing span (the HTTP layer's) already did.
    pub async fn query(
        &self,
        caller: &Caller,
        request: QueryRequest,
    ) -> Result<QueryReply, GatewayError> {
        let span = tracing::info_span!(
            "gateway.query",
            request_id = tracing::field::Empty,
            sub = caller.principal.sub(),
            datasource = %request.datasource,
        );
        if tracing::Span::current().is_none() {
            telemetry::continue_trace(&span, caller.context.traceparent.as_deref());
        }
        self.run_query(caller, request).instrument(span).await
    }

    async fn run_query(
        &self,
        caller: &Caller,
        request: QueryRequest,
    ) -> Result<QueryReply, GatewayError> {
        let started = Instant::now();
        let request_id = Uuid::now_v7();
        tracing::Span::current().record("request_id", tracing::field::display(request_id));

        let mut event = events::for_caller(EventKind::Query, request_id, caller);
        event.datasource = Some(request.datasource.clone());
        event.statement = Some(self.masking.masker().scrub(&request.sql));

        let admitted = match self.admit(caller, &request, &mut event).await {
            Ok(admitted) => admitted,
            Err(error) => {
                event.completion = Some(events::refused(&error, started.elapsed()));
                self.audit.append(event).await.map_err(audit_unavailable)?;
                tracing::info!(outcome = error.code(), "statement refused");
                return Err(error);
            }
        };
        if admitted.needs_approval {
            return self
                .request_approval(caller, &request, admitted, event)
                .await
                .map(|pending| QueryReply::AwaitingApproval(Box::new(pending)));
        }
        // Write-ahead: the decision is durable before the statement can have any effect.
        let base = completion_base(&event);
        if let Err(error) = stage(Stage::AuditWrite, self.audit.append(event)).await {
            if let Some(id) = request.approval_id {
                // Claimed but not run: the approval is spent, and says why.
                self.record_approval_run(
                    caller,
                    id,
                    Err(&GatewayError::AuditUnavailable),
                    request_id,
                )
                .await;
            }
            return Err(audit_unavailable(error));
        }

        let ran = self.run(caller, &request, &admitted).await;
        let mut completion = base;
        let elapsed = started.elapsed();
        let outcome = match ran {
            Ok((result, masking)) => {
                let names: Vec<String> = result.columns.iter().map(|c| c.name.clone()).collect();
                completion.completion = Some(events::completed(
                    result.rows.len() as u64,
                    result.rows_affected,
                    &names,
                    &masking,
                    elapsed,
                ));
                tracing::info!(
                    outcome = "ok",
                    rows = result.rows.len(),
                    rows_affected = result.rows_affected,
                    truncated = result.truncated,
                    masked_values = masking.masked_values,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "statement ran"
                );
                Ok(QueryOutcome {
                    request_id,
                    decision: admitted.decision,
                    result,
                    masking,
                    elapsed,
                })
            }
            Err(error) => {
                // The code only: a database's message can quote the data it refused.
                tracing::info!(outcome = error.code(), "statement failed");
                completion.completion = Some(events::refused(&error, elapsed));
                Err(error)
            }
        };
        // The statement has run: losing its completion event must not turn a done write
        // into an error the caller would retry. The write-ahead event already holds the
        // decision; the gap is visible to anyone joining events by request id.
        if let Err(error) = stage(Stage::AuditComplete, self.audit.append(completion)).await {
            tracing::error!(%error, %request_id, "completion event not recorded");
        }
        if let Some(id) = request.approval_id {
            let result = outcome
                .as_ref()
                .map(|o| (o.result.rows.len() as u64, o.result.rows_affected));
            self.record_approval_run(caller, id, result, request_id)
                .await;
        }
        outcome.map(|outcome| QueryReply::Ran(Box::new(outcome)))
    }

    /// Stores the approval request for a statement policy wants approved, after the
    /// query event (holding the `approval_required` decision) is committed.
    async fn request_approval(
        &self,
        caller: &Caller,
        request: &QueryRequest,
        admitted: Admitted<'_>,
        event: NewEvent,
    ) -> Result<PendingApproval, GatewayError> {
        let request_id = event.request_id;
        self.audit.append(event).await.map_err(audit_unavailable)?;
        let approval = stage(
            Stage::Approval,
            self.approvals.create(NewApproval::from_decision(
                &caller.principal,
                binding(admitted.datasource, request),
                &admitted.decision,
                Some(request_id.to_string()),
            )),
        )
        .await
        .map_err(GatewayError::Approval)?;
        let mut created = events::for_caller(EventKind::ApprovalCreated, request_id, caller);
        created.datasource = Some(approval.datasource.clone());
        created.environment = Some(approval.environment.clone());
        created.approval_id = Some(approval.id);
        created.decision = Some((&admitted.decision).into());
        self.audit
            .append(created)
            .await
            .map_err(audit_unavailable)?;
        tracing::info!(outcome = "approval_required", approval_id = %approval.id, "statement awaits approval");
        Ok(PendingApproval {
            request_id,
            decision: admitted.decision,
            approval,
        })
    }

    /// Stores how the one execution of an approved statement went, and audits it. The
    /// statement has run (or failed) by now, so failures here are logged, not returned.
    async fn record_approval_run(
        &self,
        caller: &Caller,
        id: Uuid,
        result: Result<(u64, u64), &GatewayError>,
        request_id: Uuid,
    ) {
        let (ok, rows_returned, rows_affected, error_code) = match result {
            Ok((returned, affected)) => (true, returned, affected, None),
            Err(error) => (false, 0, 0, Some(error.code().to_owned())),
        };
        let record = ExecutionRecord {
            ok,
            rows_affected,
            rows_returned,
            error_code: error_code.clone(),
            finished_at: chrono::Utc::now(),
        };
        if let Err(error) = self.approvals.record_execution(id, record).await {
            tracing::error!(%error, approval_id = %id, "approval execution not recorded");
        }
        let mut executed = events::for_caller(EventKind::ApprovalExecuted, request_id, caller);
        executed.approval_id = Some(id);
        executed.completion = Some(crate::audit::EventCompletion {
            rows_returned,
            rows_affected,
            error_code,
            ..Default::default()
        });
        if let Err(error) = self.audit.append(executed).await {
            tracing::error!(%error, approval_id = %id, "approval execution event not recorded");
        }
    }

    /// Steps 1–2: everything that can refuse the statement before it runs. Fills `event`
    /// with what it learns, so a refusal is audited with as much as was known.
    async fn admit<'g>(
        &'g self,
        caller: &Caller,
        request: &QueryRequest,
        event: &mut NewEvent,
    ) -> Result<Admitted<'g>, GatewayError> {
        validate(request)?;
        let datasource = self.datasource(&request.datasource)?;
        event.environment = Some(datasource.environment().to_string());

        let (statements, intent) = stage_sync(Stage::Intent, || {
            let statements = intent::parse(datasource.driver(), &request.sql)
                .map_err(GatewayError::UnparseableSql)?;
            let intent = intent::analyze_statements(datasource.driver(), &statements);
            Ok::<_, GatewayError>((statements, intent))
        })?;
        event.fingerprint = Some(intent::fingerprint(&statements));
        event.intent = Some(events::intent(&intent));

        // With an approval, approval forbids no longer apply; every other rule still does,
        // so a policy that denies now still denies.
        let approved = request.approval_id.is_some();
        event.approval_id = request.approval_id;
        let decision = stage_sync(Stage::Policy, || {
            self.policy
                .decide(&caller.principal, &intent, &resource(datasource), approved)
        });
        metrics().decision(decision.effect.as_str());
        event.decision = Some((&decision).into());
        let needs_approval = match decision.effect {
            Effect::Allow => false,
            Effect::Deny => return Err(GatewayError::Denied { decision }),
            // Approval forbids cannot ask again once approved; anything that still does is
            // a policy this statement cannot satisfy.
            Effect::ApprovalRequired if approved => {
                return Err(GatewayError::Denied { decision });
            }
            Effect::ApprovalRequired => true,
        };

        if !intent.is_read_only() {
            refuse_masked_write_back(&statements, &request.params)?;
        }
        let catalog = self
            .masking
            .catalog(datasource)
            .await
            .map_err(events::catalog_error)?;
        let plan = self.masking.plan(datasource.driver(), &statements, catalog);
        let rules = ProbingRules {
            classified: self.masking.predicates() == PredicateRule::Deny,
            free_text: self.masking.free_text_predicates() == PredicateRule::Deny,
        };
        if rules.classified || rules.free_text {
            let mut unmask = Unmask::new(&self.policy, &caller.principal, &intent, datasource);
            if let Some(decision) = probing(&plan, &intent, &mut unmask, rules) {
                event.decision = Some((&decision).into());
                return Err(GatewayError::Denied { decision });
            }
        }
        if let Some(id) = request.approval_id {
            // The one atomic step: at most one request ever gets past this for an approval.
            stage(
                Stage::Approval,
                self.approvals
                    .claim(id, &caller.principal, &binding(datasource, request)),
            )
            .await
            .map_err(GatewayError::Approval)?;
        }
        Ok(Admitted {
            datasource,
            intent,
            decision,
            plan,
            needs_approval,
        })
    }

    /// Steps 4–5: execute and mask.
    async fn run(
        &self,
        caller: &Caller,
        request: &QueryRequest,
        admitted: &Admitted<'_>,
    ) -> Result<(crate::datasource::QueryResult, crate::masking::MaskReport), GatewayError> {
        let datasource = admitted.datasource;
        // Reads go to connections the database holds read-only; only what policy allowed
        // as more than a read reaches the write pool.
        let access = if admitted.intent.is_read_only() {
            Access::Read
        } else {
            Access::Write
        };
        let max_rows = request.max_rows.map_or(datasource.max_rows(), |asked| {
            asked.min(datasource.max_rows())
        });
        let executed = stage(
            Stage::Execute,
            datasource.execute(access, &request.sql, &request.params, max_rows),
        )
        .await;
        if changes_schema(&admitted.intent) {
            // Even a failed DDL statement may have changed something on engines without
            // transactional DDL; a fresh catalog is cheap next to a stale classification.
            if let Err(error) = self.masking.refresh(datasource).await {
                tracing::warn!(%error, "catalog refresh after DDL failed; it is retried on use");
            }
        }
        let mut result = executed.map_err(|error| self.scrubbed(error.into()))?;

        let width = result.columns.len();
        if admitted.plan.shape_mismatch(width) {
            tracing::warn!(
                columns = width,
                "result shape differs from the catalog's; every column is masked and the catalog reloaded"
            );
            if let Err(error) = self.masking.refresh(datasource).await {
                tracing::warn!(%error, "catalog refresh failed");
            }
        }
        let mut unmask = Unmask::new(
            &self.policy,
            &caller.principal,
            &admitted.intent,
            datasource,
        );
        let plans = admitted
            .plan
            .column_plans(&result.columns, |source, class| {
                unmask.allows(source.table.as_str(), &source.column, class)
            });
        let report = stage_sync(Stage::Mask, || {
            self.masking.masker().mask_result(&mut result, &plans)
        })
        .map_err(|error| GatewayError::MaskingFailed(error.to_string()))?;
        for (class, count) in &report.by_class {
            metrics().masked(class.as_str(), *count);
        }
        Ok((result, report))
    }

    /// Database messages can echo values (a unique violation repeats the duplicate key):
    /// quoted and listed values are blanked, then detected entities masked, before the
    /// message leaves.
    fn scrubbed(&self, error: GatewayError) -> GatewayError {
        match error {
            GatewayError::Database(message) => GatewayError::Database(
                self.masking
                    .masker()
                    .scrub(&crate::masking::redact_values(&message)),
            ),
            other => other,
        }
    }
}

/// Exactly what an approval binds: where, which statement text byte for byte, which
/// parameters with their types.
fn binding(datasource: &Datasource, request: &QueryRequest) -> Binding {
    Binding {
        datasource: datasource.name().to_string(),
        environment: datasource.environment().to_string(),
        statement: request.sql.clone(),
        params: request.params.clone(),
    }
}

/// The completion event's frame: who, where and which statement shape, without the
/// statement text or decision (the write-ahead event holds those).
fn completion_base(event: &NewEvent) -> NewEvent {
    let mut completion = NewEvent::new(EventKind::QueryCompleted, event.request_id);
    completion.principal = event.principal.clone();
    completion.client = event.client.clone();
    completion.datasource = event.datasource.clone();
    completion.environment = event.environment.clone();
    completion.fingerprint = event.fingerprint.clone();
    completion
}

fn changes_schema(intent: &Intent) -> bool {
    intent
        .actions
        .iter()
        .any(|action| matches!(action, Action::Create | Action::Alter | Action::Drop))
}

/// Refuses a write whose string literals or parameters hold something masking produced:
/// a redaction placeholder, an HMAC token or a partial mask. Written back, it would
/// replace real data with its mask. Only values are checked, so a comment such as
/// `/*** nightly fix ***/` does not count.
fn refuse_masked_write_back(
    statements: &[Statement],
    params: &[Param],
) -> Result<(), GatewayError> {
    let in_literal = statements.iter().any(|statement| {
        visit_expressions(statement, |expr| match expr {
            Expr::Value(value)
                if value
                    .value
                    .clone()
                    .into_string()
                    .is_some_and(|text| is_mask_artifact(&text)) =>
            {
                ControlFlow::Break(())
            }
            _ => ControlFlow::Continue(()),
        })
        .is_break()
    });
    if in_literal {
        return Err(GatewayError::MaskedValueWrite(
            "in a string in the statement",
        ));
    }
    let in_params = params.iter().any(|param| match param {
        Param::Text(text) => is_mask_artifact(text),
        Param::Json(json) => is_mask_artifact(&json.to_string()),
        Param::Null | Param::Bool(_) | Param::Int(_) | Param::Float(_) => false,
    });
    if in_params {
        return Err(GatewayError::MaskedValueWrite("in a parameter"));
    }
    Ok(())
}

/// Which columns the probing check guards.
#[derive(Debug, Clone, Copy)]
struct ProbingRules {
    classified: bool,
    free_text: bool,
}

/// The denial for a statement that filters, joins, groups or orders on classified
/// columns the caller may not unmask, or computes on them: comparing against them would
/// reveal the values the result masks (`WHERE ssn LIKE '123%'`, one digit at a time), and
/// so would whether a computation on them fails or turns NULL (`1 / (ascii(ssn) - 49)`).
/// `None` when there is none. `rules` says which columns count: classified ones
/// (`[masking] predicates`), free text holding some sensitive values
/// (`free_text_predicates`), or both.
fn probing(
    plan: &StatementPlan,
    intent: &Intent,
    unmask: &mut Unmask,
    rules: ProbingRules,
) -> Option<Decision> {
    let mut masked = |columns: Vec<(SourceColumn, Classification)>, in_text: bool| {
        let mut names: Vec<String> = columns
            .into_iter()
            .filter(|(source, class)| !unmask.allows(source.table.as_str(), &source.column, *class))
            .map(|(source, class)| {
                let held = if in_text { "free text holding " } else { "" };
                format!("{}.{} ({held}{class})", source.table, source.column)
            })
            .collect();
        names.dedup();
        names
    };
    let (mut probed, mut computed) = (Vec::new(), Vec::new());
    if rules.classified {
        probed = masked(plan.predicate_columns(), false);
        computed = masked(plan.computed_columns(), false);
    }
    if rules.free_text {
        probed.extend(masked(plan.free_text_predicate_columns(), true));
        computed.extend(masked(plan.free_text_computed_columns(), true));
    }
    let tables: Vec<_> = intent.tables.iter().map(|t| t.table.clone()).collect();
    let mut reasons = Vec::new();
    if !probed.is_empty() {
        reasons.push(format!(
            "the statement filters, joins, groups or orders on {}, which you see masked; \
             conditions on masked columns would reveal their values. Select the column \
             instead (it comes back masked), or ask for a policy that lets you unmask it",
            probed.join(", ")
        ));
    }
    if !computed.is_empty() {
        reasons.push(format!(
            "the statement computes on {}, which you see masked (a function, operator or \
             cast over it); the result could only come back redacted, and whether the \
             computation fails or yields NULL would reveal the value. Select the column \
             itself (it comes back masked), or ask for a policy that lets you unmask it",
            computed.join(", ")
        ));
    }
    if reasons.is_empty() && rules.classified && plan.unresolved_predicates_over(&tables) {
        reasons.push(
            "the statement's conditions or computations could not be traced to columns, and \
             it reads tables with masked columns; name the columns you use explicitly"
                .to_owned(),
        );
    }
    if reasons.is_empty() {
        return None;
    }
    Some(Decision {
        effect: Effect::Deny,
        policies: vec![PROBING_POLICY.to_owned()],
        reasons,
        approver_groups: Vec::new(),
        min_approvals: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(sql: &str) -> Vec<Statement> {
        intent::parse(crate::datasource::Driver::Postgres, sql).unwrap()
    }

    #[test]
    fn masked_output_cannot_be_written_back() {
        let placeholder = "[redacted:pii.email]";
        assert!(is_mask_artifact(placeholder));
        let sql = format!("UPDATE customers SET email = '{placeholder}' WHERE id = 1");
        assert!(matches!(
            refuse_masked_write_back(&parsed(&sql), &[]),
            Err(GatewayError::MaskedValueWrite(_))
        ));
        let update = parsed("UPDATE customers SET email = $1 WHERE id = 2");
        assert!(matches!(
            refuse_masked_write_back(&update, &[Param::Text(placeholder.to_owned())]),
            Err(GatewayError::MaskedValueWrite(_))
        ));
        assert!(
            refuse_masked_write_back(
                &update,
                &[Param::Text("ada@example.com".to_owned()), Param::Int(2)]
            )
            .is_ok()
        );
        let partial = parsed("INSERT INTO cards (pan) VALUES ('**** **** **** 1111')");
        assert!(refuse_masked_write_back(&partial, &[]).is_err());
    }

    #[test]
    fn comments_are_not_values() {
        let commented =
            parsed("/*** nightly fix ***/ UPDATE orders SET status = 'paid' WHERE id = 7");
        assert!(refuse_masked_write_back(&commented, &[]).is_ok());
    }
}
