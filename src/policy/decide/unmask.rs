//! One column → one Cedar `unmask` request → [`UnmaskDecision`].
//!
//! Masking asks this for every classified column of every result (and for the columns a
//! statement's predicates read), so it is built like a statement decision, only smaller:
//! the caller's store for the column's table (the one a statement on that table uses,
//! remembered), plus the column; the context from the model's memo; one request (its
//! shape checked against the schema at start-up) evaluated against the policies whose
//! scope admits `unmask` only.
//!
//! And the answer is remembered whole: it is a pure function of the policy set and its
//! key (caller, place, table, column, class, context flags), and callers ask the same
//! questions for every result of the same query. Measured on the built-in set (criterion,
//! benches/decide.rs), a remembered answer takes well under a microsecond, a new one tens
//! of microseconds, most of it Cedar's evaluation. Keys carry the set's generation, so a
//! reload is never answered from the set before it.
//!
//! The context is the statement's, with `approved = false`: an approval lets a statement
//! run, it never shows raw values. Policies written for every action (`forbid (principal,
//! action, resource) when { context.multiple_statements }`) therefore apply to `unmask` as
//! well. Whatever goes wrong on the way (an entity that does not build, a policy that
//! errors) answers "not allowed".

use std::sync::Arc;

use cedar_policy::Request;

use crate::identity::Principal;
use crate::intent::Intent;
use crate::policy::{ColumnResource, Resource, UnmaskDecision};

use super::{
    ActiveSet, Caller, ColumnSpec, ContextFlags, Evaluation, Model, Store, StoreKey, authorize,
};

/// Everything an answer depends on.
#[derive(PartialEq, Eq, Hash)]
pub(super) struct AnswerKey {
    /// [`ActiveSet::generation`] of the set that answered.
    generation: u64,
    /// Caller, environment, datasource and the column's table.
    store: StoreKey,
    column: String,
    classification: String,
    /// The context's flags (see `ContextFlags::bits`); with the store's environment and
    /// datasource, the whole context.
    context: u16,
}

pub(in crate::policy) fn may_unmask(
    model: &Model,
    set: &ActiveSet,
    principal: &Principal,
    intent: &Intent,
    column: &ColumnResource,
) -> UnmaskDecision {
    let caller = Caller::of(principal);
    let resource = Resource {
        datasource: column.datasource,
        environment: column.environment,
    };
    let spec = ColumnSpec {
        name: column.column,
        classification: column.classification,
    };
    let flags = ContextFlags::new(intent, &resource);
    let key = AnswerKey {
        generation: set.generation,
        store: caller.key(&resource, vec![column.table.to_owned()]),
        column: column.column.to_owned(),
        classification: column.classification.to_owned(),
        context: flags.bits(false),
    };
    // Only answers that were evaluated are remembered: a failure is retried next time.
    let answered = model.answers.get_or_build(key, |key| {
        evaluate(model, set, &caller, &flags, &key.store, spec)
            .map(|evaluation| explain(&evaluation, principal, column))
    });
    match answered {
        Ok(answer) => answer,
        Err(error) => UnmaskDecision {
            allowed: false,
            policies: Vec::new(),
            reasons: vec![format!(
                "denied because policy could not be evaluated for {}: {error}",
                describe(principal, column)
            )],
        },
    }
}

/// `store` is the key of the caller's store of the column's table.
fn evaluate<'s>(
    model: &Model,
    set: &'s ActiveSet,
    caller: &Caller,
    flags: &ContextFlags,
    store: &StoreKey,
    column: ColumnSpec,
) -> Result<Evaluation<'s>, String> {
    let table_store = model.stores.get_or_build(store.clone(), |key| {
        Store::new(
            model,
            caller,
            flags.environment,
            flags.datasource,
            &key.tables,
            None,
        )
        .map(Arc::new)
    })?;
    let (column_uid, entities) = table_store.with_column(model, flags.datasource, column, None)?;
    let context = model
        .contexts
        .get_or_build(flags.key(false), |_| flags.context(false))?;
    let request = Request::new(
        table_store.principal.clone(),
        model.unmask.clone(),
        column_uid,
        context,
        None,
    )
    .map_err(|e| e.to_string())?;
    authorize(model, set, set.for_unmask(), &request, &entities)
}

/// The policies that decided, in the order they are written, and a sentence for each: an
/// allow names its permits, a denial its forbids, or says that nothing permits.
fn explain(
    evaluation: &Evaluation,
    principal: &Principal,
    column: &ColumnResource,
) -> UnmaskDecision {
    let verb = if evaluation.allowed {
        "allows"
    } else {
        "forbids"
    };
    let mut policies = Vec::new();
    let mut reasons = Vec::new();
    for used in &evaluation.determining {
        policies.push(used.id.to_string());
        reasons.push(match &used.meta.reason {
            Some(reason) => reason.clone(),
            None => format!(
                "policy `{}` {verb} {}",
                used.id,
                describe(principal, column)
            ),
        });
    }
    if reasons.is_empty() {
        reasons.push(format!("no policy permits {}", describe(principal, column)));
    }
    UnmaskDecision {
        allowed: evaluation.allowed,
        policies,
        reasons,
    }
}

/// "human `alice` to unmask column `email` (pii.email) of table `customers` in
/// environment `prod`": the words of generated reasons.
fn describe(principal: &Principal, column: &ColumnResource) -> String {
    let class = match column.classification {
        "" => "unclassified",
        class => class,
    };
    format!(
        "{} `{}` to unmask column `{}` ({class}) of table `{}` in environment `{}`",
        principal.kind(),
        principal.sub(),
        column.column,
        column.table,
        column.environment
    )
}
