//! Cedar policy: (Principal, Intent, where it runs) → [`Decision`], and (Principal,
//! column) → [`UnmaskDecision`].
//!
//! The one authorization choke point of the query path. The gateway builds a
//! [`PolicyEngine`] once at start-up ([`PolicyEngine::load`]), calls
//! [`PolicyEngine::decide`] for every statement before any SQL runs,
//! [`PolicyEngine::may_unmask`] for every classified column masking would hide, and
//! [`PolicyEngine::reload`] on SIGHUP or the admin endpoint.
//!
//! - The schema (`policies/gatehouse.cedarschema`, embedded) declares the entities and actions;
//!   every policy is validated against it at load and reload, so a typo such as
//!   `context.aproved` stops start-up with its file, line and column instead of silently
//!   never matching. A reload that fails keeps the set in force.
//! - The built-in set (`policies/default.cedar`, embedded) applies when `[policy] files` is
//!   empty; configured files replace it as a whole.
//! - Each statement becomes one Cedar request per (action, table) pair of its intent, built
//!   against the schema; all must allow. Anything that goes wrong while deciding denies.
//! - A denial caused only by forbids annotated `@approval("GROUP")` becomes
//!   [`Effect::ApprovalRequired`] when the same request with `context.approved = true`
//!   would be allowed.
//! - Unmasking is the Cedar action `unmask` on a `Column` (in its `Table`): one request per
//!   column, in the statement's context with `approved = false`. Nobody sees raw values
//!   unless a permit says so; anything that goes wrong answers "not allowed".
//!
//! Layout: `load` reads, parses and validates policy files into an active set;
//! `decide` turns one statement into requests and combines their outcomes, and
//! `decide::unmask` answers the column question with the same model; `memo` remembers
//! the entity stores and contexts decisions build; `error` holds [`PolicyError`].

mod decide;
mod error;
mod load;
mod memo;

#[cfg(test)]
mod tests;

use std::sync::{Arc, PoisonError, RwLock};

use crate::config::PolicyConfig;
use crate::identity::Principal;
use crate::intent::Intent;

pub use error::{PolicyError, PolicyProblem};

use decide::Model;
use load::ActiveSet;

/// What policy says about one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Allow,
    Deny,
    /// Allowed once someone in one of [`Decision::approver_groups`] approves.
    ApprovalRequired,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
            Effect::ApprovalRequired => "approval_required",
        }
    }
}

/// The outcome of [`PolicyEngine::decide`], returned to the caller and audited.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    pub effect: Effect,
    /// `@id`s of the policies that determined the effect: the permits used for an allow,
    /// the matching forbids for a denial or an approval.
    pub policies: Vec<String>,
    /// Sentences for people (and agents): the policies' `@reason` annotations, or a
    /// generated sentence where a policy has none or no policy matched.
    pub reasons: Vec<String>,
    /// Groups whose members may approve; non-empty only for `ApprovalRequired`.
    pub approver_groups: Vec<String>,
    /// Approvals needed (`@min_approvals`, default 1); 0 unless `ApprovalRequired`.
    pub min_approvals: u32,
}

/// Where a statement runs: its datasource and that datasource's environment.
#[derive(Debug, Clone, Copy)]
pub struct Resource<'a> {
    pub datasource: &'a str,
    pub environment: &'a str,
}

/// A column whose raw values a caller wants to see: the `Column` entity
/// `Column::"<datasource>/<table>/<column>"`, in `Table::"<datasource>/<table>"`, in the
/// datasource, in its environment.
#[derive(Debug, Clone, Copy)]
pub struct ColumnResource<'a> {
    pub datasource: &'a str,
    pub environment: &'a str,
    /// As the statement names it (`customers`, `analytics.events`), like statement tables.
    pub table: &'a str,
    pub column: &'a str,
    /// The column's class (`pii.email`, `secret.token`); empty when unclassified.
    pub classification: &'a str,
}

/// The outcome of [`PolicyEngine::may_unmask`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnmaskDecision {
    pub allowed: bool,
    /// `@id`s of the permits that allowed it, or of the forbids that denied it (none when
    /// nothing permitted, or when evaluation failed).
    pub policies: Vec<String>,
    /// The policies' `@reason`s, or a generated sentence.
    pub reasons: Vec<String>,
}

/// The schema and the policy set in force. Cheap to share: `decide` takes a read lock only
/// long enough to clone an `Arc` of the current set, so a reload never waits for decisions
/// in flight and they finish on the set they started with.
pub struct PolicyEngine {
    files: Vec<std::path::PathBuf>,
    model: Model,
    current: RwLock<Arc<ActiveSet>>,
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("files", &self.files)
            .field("policies", &self.current().len())
            .finish_non_exhaustive()
    }
}

impl PolicyEngine {
    /// The built-in set (policies/default.cedar) when `config.files` is empty, else the
    /// files, whose policies together replace the built-in set. Every policy is validated
    /// against the schema; problems are reported with file, line, column and Cedar's message.
    pub fn load(config: &PolicyConfig) -> Result<PolicyEngine, PolicyError> {
        let model = Model::new()?;
        let set = load::load(&config.files, model.validator())?;
        Ok(PolicyEngine {
            files: config.files.clone(),
            model,
            current: RwLock::new(Arc::new(set)),
        })
    }

    /// Reads the configured files again. On any error the set in force stays and the error
    /// is returned; on success the new set replaces it. Returns the number of policies now
    /// in force.
    pub fn reload(&self) -> Result<usize, PolicyError> {
        let set = load::load(&self.files, self.model.validator())?;
        let count = set.len();
        // The lock guards a pointer swap only; a writer that panicked mid-swap left either
        // the old or the new `Arc`, both valid, so a poisoned lock is used as is.
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
        Ok(count)
    }

    /// Decides one statement: every target (action, table) of `intent` must be allowed.
    /// `approved` is true when the request carries an approval granted for exactly this
    /// statement; then approval forbids no longer apply.
    pub fn decide(
        &self,
        principal: &Principal,
        intent: &Intent,
        resource: &Resource,
        approved: bool,
    ) -> Decision {
        let set = self.current();
        decide::decide(&self.model, &set, principal, intent, resource, approved)
    }

    /// Whether `principal` may see raw values of `column` in the context of `intent`: the
    /// same context statement decisions get, with `approved = false`, since an approval lets
    /// a statement run and never shows raw values. Anything unexpected (an entity that does
    /// not build, a policy that errors) answers not allowed.
    pub fn may_unmask(
        &self,
        principal: &Principal,
        intent: &Intent,
        column: &ColumnResource,
    ) -> UnmaskDecision {
        let set = self.current();
        decide::may_unmask(&self.model, &set, principal, intent, column)
    }

    fn current(&self) -> Arc<ActiveSet> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}
