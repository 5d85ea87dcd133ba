//! Policy files → a validated [`ActiveSet`].
//!
//! Every file is parsed on its own, so that Cedar's byte offsets point into that file;
//! Gatehouse's annotation checks run next (`@id` required and unique across files,
//! `@approval` only on forbids, `@min_approvals` a positive number with an `@approval`);
//! then each file's policies are validated against the schema in strict mode. All
//! problems of all files are collected and reported together, so one round of edits can
//! fix them all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use cedar_policy::ffi::DetailedError;
use cedar_policy::{
    ActionConstraint, Effect as CedarEffect, EntityUid, Policy, PolicyId, PolicySet,
    ValidationMode, Validator,
};

use crate::intent::Action;

use super::error::{PolicyError, PolicyProblem};

/// The built-in policy set, in force when no files are configured.
const DEFAULT_POLICIES: &str = include_str!("../../policies/default.cedar");
const DEFAULT_NAME: &str = "policies/default.cedar (built-in)";

/// The id of the schema's column action (`Action::"unmask"`), the one action that is not a
/// statement action.
pub(super) const UNMASK: &str = "unmask";

/// One file's text and the name problems are reported under.
pub(super) struct Source {
    name: String,
    text: String,
}

impl Source {
    pub(super) fn new(name: impl Into<String>, text: impl Into<String>) -> Source {
        Source {
            name: name.into(),
            text: text.into(),
        }
    }

    pub(super) fn built_in() -> Source {
        Source::new(DEFAULT_NAME, DEFAULT_POLICIES)
    }

    fn read(path: &Path) -> Result<Source, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Ok(Source::new(path.display().to_string(), text))
    }

    fn problem(&self, offset: usize, message: impl Into<String>) -> PolicyProblem {
        let (line, column) = line_column(&self.text, offset);
        PolicyProblem {
            file: self.name.clone(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// What a decision needs to know about a policy besides its Cedar text.
#[derive(Debug)]
pub(super) struct PolicyMeta {
    /// Position across all files: decisions list policies in the order people wrote them.
    pub order: usize,
    pub forbid: bool,
    pub reason: Option<String>,
    pub approval: Option<Approval>,
}

/// From `@approval("GROUP")` and `@min_approvals("N")` on a forbid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Approval {
    pub group: String,
    pub min_approvals: u32,
}

/// The next [`ActiveSet::generation`].
static GENERATIONS: AtomicU64 = AtomicU64::new(0);

/// A policy set that parsed and validated, with its policies' annotations read once.
pub(super) struct ActiveSet {
    pub policies: PolicySet,
    /// Per statement action (in `Action::ALL` order), the policies whose action scope
    /// admits it. Cedar evaluates every policy of the set it is given, and a policy whose
    /// scope excludes the action can never match, so evaluating a target against its
    /// action's subset decides exactly as the whole set does, in about half the time.
    by_action: Vec<PolicySet>,
    /// Per statement action, whether every policy of its subset treats all tables of a
    /// datasource alike (see [`table_blind`]): then one evaluation decides every table
    /// target of that action.
    blind_by_action: Vec<bool>,
    /// The policies whose action scope admits `unmask`, for the same reason as `by_action`.
    unmask: PolicySet,
    /// Tells this set apart from every other one loaded in this process: answers
    /// remembered under one set's generation are not answers of the next.
    pub generation: u64,
    meta: HashMap<PolicyId, PolicyMeta>,
}

impl ActiveSet {
    fn new(policies: PolicySet, meta: HashMap<PolicyId, PolicyMeta>) -> Result<ActiveSet, String> {
        let subset = |action: &str| {
            PolicySet::from_policies(
                policies
                    .policies()
                    .filter(|policy| applies_to(policy, action))
                    .cloned(),
            )
            .map_err(|e| e.to_string())
        };
        let by_action = Action::ALL
            .iter()
            .map(|action| subset(action.as_str()))
            .collect::<Result<Vec<_>, _>>()?;
        let unmask = subset(UNMASK)?;
        let blind_by_action = by_action
            .iter()
            .map(|subset| subset.policies().all(table_blind))
            .collect();
        Ok(ActiveSet {
            policies,
            by_action,
            blind_by_action,
            unmask,
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
            meta,
        })
    }

    pub(super) fn len(&self) -> usize {
        self.policies.num_of_policies()
    }

    pub(super) fn for_action(&self, action: Action) -> &PolicySet {
        Action::ALL
            .iter()
            .position(|a| *a == action)
            .and_then(|index| self.by_action.get(index))
            .unwrap_or(&self.policies)
    }

    /// The policies that can decide an `unmask` request.
    pub(super) fn for_unmask(&self) -> &PolicySet {
        &self.unmask
    }

    /// Whether every table target of `action` gets the same answer within one decision.
    pub(super) fn table_blind(&self, action: Action) -> bool {
        Action::ALL
            .iter()
            .position(|a| *a == action)
            .and_then(|index| self.blind_by_action.get(index))
            .copied()
            .unwrap_or(false)
    }

    pub(super) fn meta(&self, id: &PolicyId) -> Option<&PolicyMeta> {
        self.meta.get(id)
    }
}

/// The built-in set when `files` is empty, else the files together.
pub(super) fn load(files: &[PathBuf], validator: &Validator) -> Result<ActiveSet, PolicyError> {
    let sources = if files.is_empty() {
        vec![Source::built_in()]
    } else {
        files
            .iter()
            .map(|path| Source::read(path))
            .collect::<Result<Vec<_>, _>>()?
    };
    build(&sources, validator)
}

/// Where a policy starts: which source, which byte.
#[derive(Clone, Copy)]
struct Origin {
    source: usize,
    offset: usize,
}

pub(super) fn build(sources: &[Source], validator: &Validator) -> Result<ActiveSet, PolicyError> {
    let mut problems = Vec::new();
    let mut policies = PolicySet::new();
    let mut meta = HashMap::new();
    let mut ids: HashMap<String, Origin> = HashMap::new();

    for (index, source) in sources.iter().enumerate() {
        let parsed = match PolicySet::from_str(&source.text) {
            Ok(parsed) => parsed,
            Err(errors) => {
                for error in errors.iter() {
                    let detail = DetailedError::from(error);
                    problems
                        .push(source.problem(first_offset(&detail).unwrap_or(0), message(&detail)));
                }
                continue;
            }
        };
        let mut cursor = 0;
        for template in parsed.templates() {
            let offset = locate(&source.text, &mut cursor, &template.to_cedar());
            problems.push(source.problem(
                offset,
                "templates (policies with ?principal or ?resource slots) are not supported; name the principal or resource",
            ));
        }

        // `from_str` numbers policies policy0, policy1, … in file order; walking them in
        // that order lets each policy's text be found after the previous one's.
        let mut in_file: Vec<&Policy> = parsed.policies().collect();
        in_file.sort_by_key(|policy| parsed_index(policy.id()));
        let mut file_set = PolicySet::new();
        let mut cursor = 0;
        for policy in in_file {
            let offset = policy
                .to_cedar()
                .map_or(0, |text| locate(&source.text, &mut cursor, &text));
            let origin = Origin {
                source: index,
                offset,
            };
            let (id, policy_meta) = match read_annotations(policy, meta.len()) {
                Ok(read) => read,
                Err(messages) => {
                    problems.extend(messages.into_iter().map(|m| source.problem(offset, m)));
                    continue;
                }
            };
            if let Some(first) = ids.get(&id) {
                let first_source = &sources[first.source];
                let (line, column) = line_column(&first_source.text, first.offset);
                problems.push(source.problem(
                    offset,
                    format!(
                        "@id(\"{id}\") is already used by the policy at {}:{line}:{column}; policy ids must be unique",
                        first_source.name
                    ),
                ));
                continue;
            }
            ids.insert(id.clone(), origin);
            let policy_id = PolicyId::new(&id);
            if let Err(error) = file_set.add(policy.new_id(policy_id.clone())) {
                problems.push(source.problem(offset, error.to_string()));
                continue;
            }
            meta.insert(policy_id, policy_meta);
        }

        // Validated per file so that Cedar's offsets point into this file's text.
        let result = validator.validate(&file_set, ValidationMode::Strict);
        let mut found: Vec<(usize, String, String)> = Vec::new();
        for error in result.validation_errors() {
            let detail = DetailedError::from(error);
            let offset = first_offset(&detail)
                .or_else(|| ids.get(id_str(error.policy_id())).map(|o| o.offset))
                .unwrap_or(0);
            let message = message(&detail);
            let general = without_action(&message);
            // The validator checks a policy once per action it may apply to: the same
            // mistake for twelve actions is one problem, stated without the action.
            match found
                .iter_mut()
                .find(|(o, g, _)| *o == offset && *g == general)
            {
                Some(seen) => seen.2.clone_from(&general),
                None => found.push((offset, general, message)),
            }
        }
        problems.extend(
            found
                .into_iter()
                .map(|(offset, _, m)| source.problem(offset, m)),
        );
        for warning in result.validation_warnings() {
            let detail = DetailedError::from(warning);
            let offset = first_offset(&detail).unwrap_or(0);
            let at = source.problem(offset, message(&detail));
            tracing::warn!(policy.problem = %at, "policy validation warning");
        }
        for policy in file_set.policies() {
            if let Err(error) = policies.add(policy.clone()) {
                problems.push(source.problem(
                    ids.get(id_str(policy.id())).map_or(0, |o| o.offset),
                    error.to_string(),
                ));
            }
        }
    }

    if !problems.is_empty() {
        return Err(PolicyError::Invalid { problems });
    }
    if policies.is_empty() {
        let files = sources
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(PolicyError::Empty { files });
    }
    ActiveSet::new(policies, meta).map_err(|message| PolicyError::Invalid {
        problems: vec![PolicyProblem {
            file: sources
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            line: 1,
            column: 1,
            message,
        }],
    })
}

/// Whether `policy` cannot tell two tables of one datasource apart. Within one decision,
/// such tables differ only in their entity id and `name`; they share the caller, the
/// action, the context and their ancestors (the datasource and its environment). A policy
/// that looks at `resource` only through `in`/`is` against an `Environment` or `Datasource`
/// literal (in its scope or conditions) therefore decides every such table alike. Any
/// other use of `resource` (`==`, `.name`, `has`, `in Table::…`, `in [...]`, …) makes the
/// policy table-specific. Read from the policy's JSON form; when in doubt, specific.
pub(super) fn table_blind(policy: &Policy) -> bool {
    let Ok(est) = policy.to_json() else {
        return false;
    };
    let scope = &est["resource"];
    let scope_blind = match scope["op"].as_str() {
        Some("All") => true,
        Some("in") => ancestor_literal(&scope["entity"]),
        Some("is") => scope
            .get("in")
            .is_none_or(|i| ancestor_literal(&i["entity"])),
        _ => false,
    };
    scope_blind
        && est["conditions"]
            .as_array()
            .is_some_and(|conditions| conditions.iter().all(|c| expr_blind(&c["body"])))
}

/// An entity literal (`{"type", "id"}` or `{"__entity": …}`) of an ancestor type of tables.
fn ancestor_literal(value: &serde_json::Value) -> bool {
    let entity = value.get("__entity").unwrap_or(value);
    matches!(
        entity.get("type").and_then(serde_json::Value::as_str),
        Some("Environment" | "Datasource")
    )
}

fn expr_blind(expr: &serde_json::Value) -> bool {
    use serde_json::Value;
    let is_resource = |v: &Value| {
        v.as_object()
            .is_some_and(|o| o.len() == 1 && o.get("Var") == Some(&Value::from("resource")))
    };
    // Expression nodes are objects with exactly one key, the operator; a record's
    // attribute map may have any keys, so only single-key objects are read as nodes.
    if let Some(object) = expr.as_object()
        && object.len() == 1
    {
        if is_resource(expr) {
            return false;
        }
        if let Some(body) = object.get("in")
            && body.get("left").is_some_and(is_resource)
        {
            return body
                .get("right")
                .and_then(|r| r.get("Value"))
                .is_some_and(ancestor_literal);
        }
        if let Some(body) = object.get("is")
            && body.get("left").is_some_and(is_resource)
        {
            return body
                .get("in")
                .is_none_or(|r| r.get("Value").is_some_and(ancestor_literal));
        }
    }
    match expr {
        Value::Object(map) => map.values().all(expr_blind),
        Value::Array(items) => items.iter().all(expr_blind),
        _ => true,
    }
}

/// Whether the policy's action scope admits the action named `action`. The schema has no
/// action groups, so `action in [...]` lists actions themselves.
fn applies_to(policy: &Policy, action: &str) -> bool {
    let is =
        |uid: &EntityUid| uid.type_name().to_string() == "Action" && uid.id().unescaped() == action;
    match policy.action_constraint() {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(uid) => is(&uid),
        ActionConstraint::In(uids) => uids.iter().any(is),
    }
}

/// The `N` of Cedar's default id `policyN`: the policy's position in its file.
fn parsed_index(id: &PolicyId) -> usize {
    id_str(id)
        .strip_prefix("policy")
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

fn id_str(id: &PolicyId) -> &str {
    AsRef::<str>::as_ref(id)
}

/// Reads the annotations Gatehouse gives meaning to. `order` is the policy's position
/// across all files. Errors are messages about this policy, all of them.
fn read_annotations(policy: &Policy, order: usize) -> Result<(String, PolicyMeta), Vec<String>> {
    let mut messages = Vec::new();
    let forbid = policy.effect() == CedarEffect::Forbid;
    let id = match policy.annotation("id").map(str::trim) {
        Some(id) if !id.is_empty() => Some(id.to_owned()),
        Some(_) => {
            messages.push("@id is empty; give the policy a unique name".to_owned());
            None
        }
        None => {
            messages.push(
                "the policy has no @id annotation; add a unique @id(\"...\") so that decisions and the audit trail can name it"
                    .to_owned(),
            );
            None
        }
    };
    let reason = policy
        .annotation("reason")
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    let group = policy.annotation("approval").map(str::trim);
    let min_approvals = policy.annotation("min_approvals").map(str::trim);
    let approval = match (group, min_approvals) {
        (None, None) => None,
        (None, Some(_)) => {
            messages
                .push("@min_approvals needs an @approval(\"GROUP\") on the same policy".to_owned());
            None
        }
        (Some(group), min) => {
            if !forbid {
                messages.push(
                    "@approval belongs on a forbid with `unless { context.approved }`; this policy is a permit"
                        .to_owned(),
                );
            }
            if group.is_empty() {
                messages.push("@approval names no group; write @approval(\"GROUP\")".to_owned());
            }
            let min_approvals = match min.map(str::parse::<u32>) {
                None => 1,
                Some(Ok(n)) if n >= 1 => n,
                Some(_) => {
                    messages.push(format!(
                        "@min_approvals must be a whole number of at least 1, not `{}`",
                        min.unwrap_or_default()
                    ));
                    1
                }
            };
            Some(Approval {
                group: group.to_owned(),
                min_approvals,
            })
        }
    };
    match id {
        Some(id) if messages.is_empty() => Ok((
            id,
            PolicyMeta {
                order,
                forbid,
                reason,
                approval,
            },
        )),
        _ => Err(messages),
    }
}

/// The byte offset of `needle` in `text` at or after `cursor` (moved past it), falling
/// back to a search from the start, then to 0.
fn locate(text: &str, cursor: &mut usize, needle: &str) -> usize {
    let from = (*cursor).min(text.len());
    let found = text
        .get(from..)
        .and_then(|rest| rest.find(needle))
        .map(|at| from + at)
        .or_else(|| text.find(needle));
    match found {
        Some(at) => {
            *cursor = at + needle.len();
            at
        }
        None => 0,
    }
}

/// Cedar's validation message without its ` for Action::"…"` part.
fn without_action(message: &str) -> String {
    const MARK: &str = " for Action::\"";
    let Some(start) = message.find(MARK) else {
        return message.to_owned();
    };
    let rest = &message[start + MARK.len()..];
    match rest.find('"') {
        Some(end) => format!("{}{}", &message[..start], &rest[end + 1..]),
        None => message.to_owned(),
    }
}

fn first_offset(detail: &DetailedError) -> Option<usize> {
    detail.source_locations.first().map(|label| label.loc.start)
}

/// Cedar's message, with its help when it gives one.
fn message(detail: &DetailedError) -> String {
    match &detail.help {
        Some(help) => format!("{} (help: {help})", detail.message),
        None => detail.message.clone(),
    }
}

/// 1-based line and character column of a byte offset.
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..text.floor_char_boundary(offset.min(text.len()))];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
