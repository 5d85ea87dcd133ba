//! One statement → Cedar requests → one [`Decision`].
//!
//! Per decision the entities (caller, datasource, the tables of the intent) are built once
//! and shared by every target's request; per target one request is evaluated against the
//! policies that can apply to its action, two requests when a denial may be an approval.
//! Anything unexpected on the way (an entity that does not build, a policy that errors
//! while evaluating) denies the statement with a reason saying so: Cedar skips policies
//! that error, and a skipped forbid must not turn into an allow.
//!
//! The entity store and the context of a decision are pure functions of the caller, the
//! resource, the tables and the flags; `memo` remembers recent ones, so a caller repeating
//! itself pays only for evaluation.
//!
//! Requests and entities are checked against the schema once, at start-up
//! ([`Model::new`]), for every shape `decide` and `unmask` can build: each principal type
//! with and without `on_behalf_of`, each statement action on each of its resource types,
//! `unmask` on a column, the context with `approved` false and true, all through the same
//! builders the decisions use. The shapes depend only on
//! this code and the embedded schema, so a malformed request stops start-up instead of
//! failing a request; per decision the checks would cost more than the evaluation itself
//! (measured: schema checks took about a third of a three-table decision).

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, PolicyId, PolicySet, Request, RestrictedExpression, Schema, Validator,
};

use crate::identity::{Principal, PrincipalKind};
use crate::intent::{Action, Intent, Target};

use super::error::PolicyError;
use super::load::{ActiveSet, PolicyMeta, UNMASK};
use super::memo::Memo;
use super::{Decision, Effect, Resource, UnmaskDecision};

mod unmask;

pub(super) use unmask::may_unmask;

/// The schema every policy is validated against and every request is built with.
const SCHEMA: &str = include_str!("../../policies/gatehouse.cedarschema");

/// What stays the same between decisions: the schema (inside the validator), the
/// authorizer, the entity type names and action ids requests are made of, and the memos
/// of entity stores and contexts.
pub(super) struct Model {
    validator: Validator,
    authorizer: Authorizer,
    human: EntityTypeName,
    agent: EntityTypeName,
    service: EntityTypeName,
    group: EntityTypeName,
    environment: EntityTypeName,
    datasource: EntityTypeName,
    table: EntityTypeName,
    column: EntityTypeName,
    actions: Vec<(Action, EntityUid)>,
    unmask: EntityUid,
    stores: Memo<StoreKey, Arc<Store>>,
    contexts: Memo<ContextKey, Context>,
    /// Whole `unmask` answers (see `unmask`), apart from `stores`: a result asks about
    /// each of its classified columns, and those many answers must not push out the
    /// statement stores of the callers that asked.
    answers: Memo<unmask::AnswerKey, UnmaskDecision>,
}

/// How many entity stores and contexts are remembered (see `memo`), per memo. A store is a
/// few kilobytes; a context a few hundred bytes.
const MEMO_CAPACITY: usize = 1024;

/// How many `unmask` answers are remembered: one per caller, column and context, a few
/// hundred bytes each.
const ANSWER_CAPACITY: usize = 4096;

impl Model {
    pub(super) fn new() -> Result<Model, PolicyError> {
        let (schema, warnings) =
            Schema::from_cedarschema_str(SCHEMA).map_err(|e| PolicyError::Schema(e.to_string()))?;
        for warning in warnings {
            tracing::warn!(%warning, "built-in Cedar schema warning");
        }
        let name = |raw: &str| {
            EntityTypeName::from_str(raw).map_err(|e| PolicyError::Schema(e.to_string()))
        };
        let action_type = name("Action")?;
        let actions = Action::ALL
            .iter()
            .map(|action| {
                let uid = EntityUid::from_type_name_and_id(
                    action_type.clone(),
                    EntityId::new(action.as_str()),
                );
                (*action, uid)
            })
            .collect();
        let unmask = EntityUid::from_type_name_and_id(action_type, EntityId::new(UNMASK));
        let model = Model {
            validator: Validator::new(schema),
            authorizer: Authorizer::new(),
            human: name("Human")?,
            agent: name("Agent")?,
            service: name("Service")?,
            group: name("Group")?,
            environment: name("Environment")?,
            datasource: name("Datasource")?,
            table: name("Table")?,
            column: name("Column")?,
            actions,
            unmask,
            stores: Memo::new(MEMO_CAPACITY),
            contexts: Memo::new(MEMO_CAPACITY),
            answers: Memo::new(ANSWER_CAPACITY),
        };
        model.check_shapes().map_err(PolicyError::Schema)?;
        Ok(model)
    }

    #[cfg(test)]
    pub(super) fn stores_remembered(&self) -> usize {
        self.stores.len()
    }

    #[cfg(test)]
    pub(super) fn answers_remembered(&self) -> usize {
        self.answers.len()
    }

    pub(super) fn validator(&self) -> &Validator {
        &self.validator
    }

    fn schema(&self) -> &Schema {
        self.validator.schema()
    }

    fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
    }

    fn action(&self, action: Action) -> Option<&EntityUid> {
        self.actions
            .iter()
            .find(|(a, _)| *a == action)
            .map(|(_, uid)| uid)
    }

    fn principal_type(&self, kind: PrincipalKind) -> &EntityTypeName {
        match kind {
            PrincipalKind::Human => &self.human,
            PrincipalKind::Agent => &self.agent,
            PrincipalKind::Service => &self.service,
        }
    }

    /// Builds every kind of entity store and request `decide` builds, with the schema
    /// checking each (see the module documentation).
    fn check_shapes(&self) -> Result<(), String> {
        let schema = self.schema();
        let flags = ContextFlags::sample();
        let contexts = [flags.context(false)?, flags.context(true)?];
        let groups = ["group".to_owned()];
        for kind in [
            PrincipalKind::Human,
            PrincipalKind::Agent,
            PrincipalKind::Service,
        ] {
            for on_behalf_of in [None, Some("person")] {
                let caller = Caller {
                    kind,
                    sub: "sub",
                    groups: &groups,
                    on_behalf_of,
                };
                let store = Store::new(
                    self,
                    &caller,
                    "environment",
                    "datasource",
                    &["table".to_owned()],
                    Some(schema),
                )?;
                let table = store
                    .table("table")
                    .ok_or("the sample table entity was not built")?;
                for (_, action) in &self.actions {
                    for resource in [&store.datasource, table] {
                        for context in &contexts {
                            Request::new(
                                store.principal.clone(),
                                action.clone(),
                                resource.clone(),
                                context.clone(),
                                Some(schema),
                            )
                            .map_err(|e| format!("a request does not match the schema: {e}"))?;
                        }
                    }
                }
                let column = ColumnSpec {
                    name: "column",
                    classification: "pii.email",
                };
                let (column, _) = store.with_column(self, "datasource", column, Some(schema))?;
                for context in &contexts {
                    Request::new(
                        store.principal.clone(),
                        self.unmask.clone(),
                        column.clone(),
                        context.clone(),
                        Some(schema),
                    )
                    .map_err(|e| format!("an unmask request does not match the schema: {e}"))?;
                }
            }
        }
        Ok(())
    }
}

pub(super) fn decide(
    model: &Model,
    set: &ActiveSet,
    principal: &Principal,
    intent: &Intent,
    resource: &Resource,
    approved: bool,
) -> Decision {
    let who = Who {
        principal,
        resource,
    };
    if intent.targets.is_empty() {
        let reason = match &intent.flags.unclassified {
            Some(why) => format!("the statement could not be classified ({why}), and Gatehouse runs only statements it understands"),
            None => "the statement names no action to decide on, and Gatehouse runs only statements it understands".to_owned(),
        };
        return Decision::deny(Vec::new(), vec![reason]);
    }
    let mut requests = match Requests::new(model, set, principal, intent, resource) {
        Ok(requests) => requests,
        Err(error) => {
            return Decision::deny(
                Vec::new(),
                vec![format!(
                    "the statement is denied because its policy request could not be built: {error}"
                )],
            );
        }
    };
    let outcomes: Vec<Outcome> = intent
        .targets
        .iter()
        .map(|target| decide_target(&mut requests, &who, target, approved))
        .collect();
    combine(outcomes)
}

/// Who asks, and where: the words of generated reasons.
struct Who<'a> {
    principal: &'a Principal,
    resource: &'a Resource<'a>,
}

impl Who<'_> {
    fn describe(&self, target: &Target) -> String {
        let on = match &target.table {
            Some(table) => format!("on table `{table}`"),
            None => format!("on datasource `{}`", self.resource.datasource),
        };
        format!(
            "{} `{}` to {} {on} in environment `{}`",
            self.principal.kind(),
            self.principal.sub(),
            target.action,
            self.resource.environment
        )
    }
}

/// A policy that determined one target's outcome.
#[derive(Clone, Copy)]
struct Used<'s> {
    id: &'s PolicyId,
    meta: &'s PolicyMeta,
}

enum Outcome<'s> {
    /// The permits that allowed it.
    Allow(Vec<Used<'s>>),
    /// The approval forbids that stood in the way.
    Approval(Vec<Used<'s>>),
    Deny(Vec<Explained>),
}

/// One line of a denial: the policy that denied (none when nothing permitted, or when
/// evaluation failed) and the sentence for the caller.
struct Explained {
    /// Where the policy is written; generated sentences come after every policy.
    order: usize,
    policy: Option<String>,
    reason: String,
}

impl Explained {
    fn generated(reason: String) -> Explained {
        Explained {
            order: usize::MAX,
            policy: None,
            reason,
        }
    }
}

/// One evaluated request.
#[derive(Clone)]
struct Evaluation<'s> {
    allowed: bool,
    /// Ordered as written in the policy files.
    determining: Vec<Used<'s>>,
}

fn decide_target<'s>(
    requests: &mut Requests<'s>,
    who: &Who,
    target: &Target,
    approved: bool,
) -> Outcome<'s> {
    let first = match requests.evaluate(target, approved) {
        Ok(evaluation) => evaluation,
        Err(error) => return fail_closed(who, target, &error),
    };
    if first.allowed {
        return Outcome::Allow(first.determining);
    }
    let approvable = !approved
        && !first.determining.is_empty()
        && first
            .determining
            .iter()
            .all(|used| used.meta.forbid && used.meta.approval.is_some());
    if !approvable {
        return denial(&first, who, target);
    }
    match requests.evaluate(target, true) {
        Ok(second) if second.allowed => Outcome::Approval(first.determining),
        // Even an approval would not help: say why.
        Ok(second) => denial(&second, who, target),
        Err(error) => fail_closed(who, target, &error),
    }
}

fn denial(evaluation: &Evaluation, who: &Who, target: &Target) -> Outcome<'static> {
    if evaluation.determining.is_empty() {
        return Outcome::Deny(vec![Explained::generated(format!(
            "no policy permits {}",
            who.describe(target)
        ))]);
    }
    // Beside a plain forbid, an approval forbid would only suggest that an approval helps.
    let plain = |used: &&Used| !(used.meta.forbid && used.meta.approval.is_some());
    let any_plain = evaluation.determining.iter().any(|used| plain(&used));
    let explained = evaluation
        .determining
        .iter()
        .filter(|used| !any_plain || plain(used))
        .map(|used| Explained {
            order: used.meta.order,
            policy: Some(used.id.to_string()),
            reason: match &used.meta.reason {
                Some(reason) => reason.clone(),
                None => format!("policy `{}` forbids {}", used.id, who.describe(target)),
            },
        })
        .collect();
    Outcome::Deny(explained)
}

fn fail_closed(who: &Who, target: &Target, error: &str) -> Outcome<'static> {
    Outcome::Deny(vec![Explained::generated(format!(
        "denied because policy could not be evaluated for {}: {error}",
        who.describe(target)
    ))])
}

/// Any denial denies the statement (with the reasons of every denying target); else any
/// approval makes it need approval (from every group asked, as many approvals as the
/// strictest policy asks); else it is allowed. Policies are listed in the order they are
/// written, each once.
fn combine(outcomes: Vec<Outcome>) -> Decision {
    let mut policies = Vec::new();
    let mut reasons = Vec::new();
    if outcomes.iter().any(|o| matches!(o, Outcome::Deny(_))) {
        let mut explained: Vec<Explained> = outcomes
            .into_iter()
            .filter_map(|o| match o {
                Outcome::Deny(explained) => Some(explained),
                _ => None,
            })
            .flatten()
            .collect();
        explained.sort_by_key(|e| e.order);
        for e in explained {
            if let Some(policy) = e.policy {
                push_unique(&mut policies, policy);
            }
            push_unique(&mut reasons, e.reason);
        }
        return Decision::deny(policies, reasons);
    }
    let used_in = |approval: bool| {
        let mut used: Vec<&Used> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Approval(used) if approval => Some(used),
                Outcome::Allow(used) if !approval => Some(used),
                _ => None,
            })
            .flatten()
            .collect();
        used.sort_by_key(|u| u.meta.order);
        used
    };
    let approvals = used_in(true);
    if !approvals.is_empty() {
        let mut groups = Vec::new();
        let mut min_approvals = 1;
        for used in approvals {
            push_unique(&mut policies, used.id.to_string());
            push_unique(&mut reasons, reason_or(used, "requires approval"));
            if let Some(approval) = &used.meta.approval {
                push_unique(&mut groups, approval.group.clone());
                min_approvals = min_approvals.max(approval.min_approvals);
            }
        }
        groups.sort();
        return Decision {
            effect: Effect::ApprovalRequired,
            policies,
            reasons,
            approver_groups: groups,
            min_approvals,
        };
    }
    for used in used_in(false) {
        push_unique(&mut policies, used.id.to_string());
        push_unique(&mut reasons, reason_or(used, "allows it"));
    }
    Decision {
        effect: Effect::Allow,
        policies,
        reasons,
        approver_groups: Vec::new(),
        min_approvals: 0,
    }
}

fn reason_or(used: &Used, verb: &str) -> String {
    match &used.meta.reason {
        Some(reason) => reason.clone(),
        None => format!("policy `{}` {verb}", used.id),
    }
}

fn push_unique(items: &mut Vec<String>, item: String) {
    if !items.contains(&item) {
        items.push(item);
    }
}

impl Decision {
    fn deny(policies: Vec<String>, reasons: Vec<String>) -> Decision {
        Decision {
            effect: Effect::Deny,
            policies,
            reasons,
            approver_groups: Vec::new(),
            min_approvals: 0,
        }
    }
}

/// The caller as entity data.
struct Caller<'a> {
    kind: PrincipalKind,
    sub: &'a str,
    groups: &'a [String],
    on_behalf_of: Option<&'a str>,
}

impl<'a> Caller<'a> {
    fn of(principal: &'a Principal) -> Caller<'a> {
        Caller {
            kind: principal.kind(),
            sub: principal.sub(),
            groups: principal.groups(),
            on_behalf_of: principal.on_behalf_of(),
        }
    }

    /// The memo key of this caller's store of `tables` in `resource`.
    fn key(&self, resource: &Resource, tables: Vec<String>) -> StoreKey {
        StoreKey {
            kind: self.kind,
            sub: self.sub.to_owned(),
            groups: self.groups.to_vec(),
            on_behalf_of: self.on_behalf_of.map(str::to_owned),
            environment: resource.environment.to_owned(),
            datasource: resource.datasource.to_owned(),
            tables,
        }
    }
}

/// Everything an entity store is built from.
#[derive(Clone, PartialEq, Eq, Hash)]
struct StoreKey {
    kind: PrincipalKind,
    sub: String,
    groups: Vec<String>,
    on_behalf_of: Option<String>,
    environment: String,
    datasource: String,
    tables: Vec<String>,
}

/// The column of an `unmask` request (see [`Store::with_column`]).
#[derive(Clone, Copy)]
struct ColumnSpec<'a> {
    name: &'a str,
    classification: &'a str,
}

/// One decision's entities: the caller (in its groups), the datasource (in its
/// environment) and tables (in the datasource). Groups and the environment need no entity
/// of their own: `in` follows the parents named here.
struct Store {
    principal: EntityUid,
    datasource: EntityUid,
    tables: Vec<(String, EntityUid)>,
    entities: Entities,
}

impl Store {
    /// `schema` checks the entities' attributes and parents; `None` per decision, since
    /// start-up checked every shape this builds.
    fn new(
        model: &Model,
        caller: &Caller,
        environment: &str,
        datasource: &str,
        tables: &[String],
        schema: Option<&Schema>,
    ) -> Result<Store, String> {
        let string = |s: &str| RestrictedExpression::new_string(s.to_owned());
        let principal = Model::uid(model.principal_type(caller.kind), caller.sub);
        let mut attrs = HashMap::from([("sub".to_owned(), string(caller.sub))]);
        if let Some(person) = caller.on_behalf_of {
            attrs.insert("on_behalf_of".to_owned(), string(person));
        }
        let groups: HashSet<EntityUid> = caller
            .groups
            .iter()
            .map(|group| Model::uid(&model.group, group))
            .collect();
        let mut entities =
            vec![Entity::new(principal.clone(), attrs, groups).map_err(|e| e.to_string())?];

        let datasource_uid = Model::uid(&model.datasource, datasource);
        entities.push(Entity::new_no_attrs(
            datasource_uid.clone(),
            HashSet::from([Model::uid(&model.environment, environment)]),
        ));
        let mut table_uids: Vec<(String, EntityUid)> = Vec::new();
        for table in tables {
            if table_uids.iter().any(|(name, _)| name == table) {
                continue;
            }
            // `Table::"<datasource>/<table>"`: a policy naming `Table::"shop/orders"` does
            // not match a table of the same name in another datasource.
            let uid = Model::uid(&model.table, &format!("{datasource}/{table}"));
            let name = HashMap::from([("name".to_owned(), string(table))]);
            entities.push(
                Entity::new(uid.clone(), name, HashSet::from([datasource_uid.clone()]))
                    .map_err(|e| e.to_string())?,
            );
            table_uids.push((table.clone(), uid));
        }
        let entities = Entities::from_entities(entities, schema).map_err(|e| e.to_string())?;
        Ok(Store {
            principal,
            datasource: datasource_uid,
            tables: table_uids,
            entities,
        })
    }

    /// This store's entities with `column` added, in the store's first table (of
    /// `datasource`), and the column's uid. Adding one entity to a remembered store costs
    /// about a third of building all four anew (measured).
    fn with_column(
        &self,
        model: &Model,
        datasource: &str,
        column: ColumnSpec,
        schema: Option<&Schema>,
    ) -> Result<(EntityUid, Entities), String> {
        let (table, table_uid) = self.tables.first().ok_or("a column needs its table")?;
        // `Column::"<datasource>/<table>/<column>"`, in its table, as tables are in their
        // datasource.
        let uid = Model::uid(
            &model.column,
            &format!("{datasource}/{table}/{}", column.name),
        );
        let string = |s: &str| RestrictedExpression::new_string(s.to_owned());
        let attrs = HashMap::from([
            ("name".to_owned(), string(column.name)),
            ("classification".to_owned(), string(column.classification)),
        ]);
        let entity = Entity::new(uid.clone(), attrs, HashSet::from([table_uid.clone()]))
            .map_err(|e| e.to_string())?;
        let entities = self
            .entities
            .clone()
            .add_entities([entity], schema)
            .map_err(|e| e.to_string())?;
        Ok((uid, entities))
    }

    fn table(&self, name: &str) -> Option<&EntityUid> {
        self.tables
            .iter()
            .find(|(table, _)| table == name)
            .map(|(_, uid)| uid)
    }
}

/// Everything a context is built from: where, the flags (one bit each), `approved`.
#[derive(PartialEq, Eq, Hash)]
struct ContextKey {
    environment: String,
    datasource: String,
    bits: u16,
}

/// The context values an intent and its resource give, before `approved` is added.
#[derive(Clone, Copy)]
struct ContextFlags<'a> {
    environment: &'a str,
    datasource: &'a str,
    unbounded: bool,
    data_modifying_cte: bool,
    select_into: bool,
    locking: bool,
    denied_function: bool,
    explain_analyze_write: bool,
    file_access: bool,
    multiple_statements: bool,
    unclassified: bool,
}

impl<'a> ContextFlags<'a> {
    fn new(intent: &Intent, resource: &Resource<'a>) -> ContextFlags<'a> {
        let flags = &intent.flags;
        ContextFlags {
            environment: resource.environment,
            datasource: resource.datasource,
            unbounded: flags.unbounded,
            data_modifying_cte: flags.data_modifying_cte,
            select_into: flags.select_into,
            locking: flags.locking,
            denied_function: !flags.denied_functions.is_empty(),
            explain_analyze_write: flags.explain_analyze_write,
            file_access: flags.file_access,
            multiple_statements: flags.multiple_statements,
            unclassified: flags.unclassified.is_some(),
        }
    }

    fn sample() -> ContextFlags<'static> {
        ContextFlags {
            environment: "environment",
            datasource: "datasource",
            unbounded: false,
            data_modifying_cte: false,
            select_into: false,
            locking: false,
            denied_function: false,
            explain_analyze_write: false,
            file_access: false,
            multiple_statements: false,
            unclassified: false,
        }
    }

    fn key(&self, approved: bool) -> ContextKey {
        ContextKey {
            environment: self.environment.to_owned(),
            datasource: self.datasource.to_owned(),
            bits: self.bits(approved),
        }
    }

    /// The flags and `approved`, one bit each: with the environment and the datasource,
    /// everything the context is built from.
    fn bits(&self, approved: bool) -> u16 {
        [
            self.unbounded,
            self.data_modifying_cte,
            self.select_into,
            self.locking,
            self.denied_function,
            self.explain_analyze_write,
            self.file_access,
            self.multiple_statements,
            self.unclassified,
            approved,
        ]
        .iter()
        .enumerate()
        .fold(0u16, |bits, (i, set)| bits | (u16::from(*set) << i))
    }

    fn context(&self, approved: bool) -> Result<Context, String> {
        let string = |s: &str| RestrictedExpression::new_string(s.to_owned());
        let bool = RestrictedExpression::new_bool;
        let pairs = [
            ("environment", string(self.environment)),
            ("datasource", string(self.datasource)),
            ("unbounded", bool(self.unbounded)),
            ("data_modifying_cte", bool(self.data_modifying_cte)),
            ("select_into", bool(self.select_into)),
            ("locking", bool(self.locking)),
            ("denied_function", bool(self.denied_function)),
            ("explain_analyze_write", bool(self.explain_analyze_write)),
            ("file_access", bool(self.file_access)),
            ("multiple_statements", bool(self.multiple_statements)),
            ("unclassified", bool(self.unclassified)),
            ("approved", bool(approved)),
        ];
        Context::from_pairs(pairs.map(|(k, v)| (k.to_owned(), v))).map_err(|e| e.to_string())
    }
}

/// The parts of one decision's requests that every target shares.
struct Requests<'m> {
    model: &'m Model,
    set: &'m ActiveSet,
    store: Arc<Store>,
    /// The table that stands for every table target of a table-blind action
    /// ([`ActiveSet::table_blind`]): the first such target's table.
    representative: Option<&'m str>,
    flags: ContextFlags<'m>,
    /// The context for `approved = false` and `true`, built when first needed.
    contexts: [Option<Context>; 2],
    /// Requests already evaluated in this decision: (action, resource, approved).
    evaluated: Vec<(Action, EntityUid, bool, Evaluation<'m>)>,
}

impl<'m> Requests<'m> {
    fn new(
        model: &'m Model,
        set: &'m ActiveSet,
        principal: &Principal,
        intent: &'m Intent,
        resource: &'m Resource<'m>,
    ) -> Result<Requests<'m>, String> {
        let caller = Caller::of(principal);
        // Table-blind actions need one table entity whatever the number of tables; the
        // others need each of theirs.
        let mut representative = None;
        let mut tables = Vec::new();
        for target in &intent.targets {
            let Some(table) = &target.table else { continue };
            if set.table_blind(target.action) {
                representative.get_or_insert(table.as_str());
            } else {
                tables.push(table.as_str().to_owned());
            }
        }
        if let Some(name) = representative {
            tables.insert(0, name.to_owned());
        }
        let key = caller.key(resource, tables);
        let store = model.stores.get_or_build(key, |key| {
            Store::new(
                model,
                &caller,
                resource.environment,
                resource.datasource,
                &key.tables,
                None,
            )
            .map(Arc::new)
        })?;
        Ok(Requests {
            model,
            set,
            store,
            representative,
            flags: ContextFlags::new(intent, resource),
            contexts: [None, None],
            evaluated: Vec::new(),
        })
    }

    fn context(&mut self, approved: bool) -> Result<Context, String> {
        let slot = &mut self.contexts[usize::from(approved)];
        if let Some(context) = slot {
            return Ok(context.clone());
        }
        let flags = self.flags;
        let context = self
            .model
            .contexts
            .get_or_build(flags.key(approved), |_| flags.context(approved))?;
        *slot = Some(context.clone());
        Ok(context)
    }

    /// The resource entity a target is evaluated on.
    fn resource(&self, target: &Target) -> Option<&EntityUid> {
        match &target.table {
            None => Some(&self.store.datasource),
            Some(_) if self.set.table_blind(target.action) => {
                self.representative.and_then(|name| self.store.table(name))
            }
            Some(table) => self.store.table(table.as_str()),
        }
    }

    fn evaluate(&mut self, target: &Target, approved: bool) -> Result<Evaluation<'m>, String> {
        let resource = self
            .resource(target)
            .ok_or_else(|| "no entity was built for the table".to_owned())?
            .clone();
        if let Some((.., done)) = self
            .evaluated
            .iter()
            .find(|(a, r, ap, _)| *a == target.action && *r == resource && *ap == approved)
        {
            return Ok(done.clone());
        }
        let context = self.context(approved)?;
        let action = self
            .model
            .action(target.action)
            .ok_or_else(|| format!("the action `{}` is not in the schema", target.action))?;
        let request = Request::new(
            self.store.principal.clone(),
            action.clone(),
            resource.clone(),
            context,
            None,
        )
        .map_err(|e| e.to_string())?;
        let set = self.set;
        let evaluation = authorize(
            self.model,
            set,
            set.for_action(target.action),
            &request,
            &self.store.entities,
        )?;
        self.evaluated
            .push((target.action, resource, approved, evaluation.clone()));
        Ok(evaluation)
    }
}

/// Evaluates `request` against `policies` (a subset of `set` that holds every policy that
/// can apply to the request's action). An evaluation error is an error, not a skipped
/// policy: a skipped forbid must not turn into an allow.
fn authorize<'s>(
    model: &Model,
    set: &'s ActiveSet,
    policies: &PolicySet,
    request: &Request,
    entities: &Entities,
) -> Result<Evaluation<'s>, String> {
    let response = model.authorizer.is_authorized(request, policies, entities);
    let diagnostics = response.diagnostics();
    let errors: Vec<String> = diagnostics.errors().map(ToString::to_string).collect();
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    let mut determining = Vec::new();
    for id in diagnostics.reason() {
        let (id, meta) = set
            .policies
            .policy(id)
            .map(|policy| policy.id())
            .and_then(|id| set.meta(id).map(|meta| (id, meta)))
            .ok_or_else(|| format!("policy `{id}` decided but is not in the policy set"))?;
        determining.push(Used { id, meta });
    }
    determining.sort_by_key(|used| used.meta.order);
    Ok(Evaluation {
        allowed: response.decision() == CedarDecision::Allow,
        determining,
    })
}
