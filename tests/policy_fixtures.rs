//! Policy tests as data: every ALLOW / DENY / APPROVAL fixture under tests/fixtures/policy
//! (format in its README.md) is decided by a real `PolicyEngine`, for a caller whose
//! `Principal` comes from a minted and verified token, exactly as in production. A fixture
//! is a statement (`targets`, decided by `decide`) or an unmask question (`unmask`, decided
//! by `may_unmask`). Every mismatch is collected and reported together.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gatehouse::config::{AuthConfig, PolicyConfig};
use gatehouse::identity::{
    Principal, PrincipalKind, TokenRequest, Verifier, mint_hs256, signing_secret,
};
use gatehouse::intent::{Access, Action, Flags, Intent, TableAccess, TableName, Target};
use gatehouse::policy::{ColumnResource, Decision, Effect, PolicyEngine, Resource, UnmaskDecision};
use serde::Deserialize;

const SECRET: &str = "policy-fixtures-secret-policy-fixtures-secret";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureFile {
    /// Policy files (relative to tests/fixtures/policy) replacing the built-in set.
    #[serde(default)]
    policy_files: Vec<PathBuf>,
    #[serde(rename = "fixture")]
    fixtures: Vec<Fixture>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    name: String,
    principal: PrincipalSpec,
    environment: Option<String>,
    #[serde(default)]
    environments: Vec<String>,
    #[serde(default = "default_datasource")]
    datasource: String,
    /// The statement's (action, table) pairs (`[]` for a statement with none); absent for
    /// an unmask question.
    targets: Option<Vec<TargetSpec>>,
    /// A column whose raw values the caller asks for, instead of a statement. `flags` give
    /// the statement's context; `approved` must stay false.
    unmask: Option<UnmaskSpec>,
    #[serde(default)]
    flags: FlagsSpec,
    #[serde(default)]
    approved: bool,
    /// allow | deny | approval_required
    expect: String,
    approvers: Option<Vec<String>>,
    min_approvals: Option<u32>,
    policies: Option<Vec<String>>,
    reason_contains: Option<String>,
}

fn default_datasource() -> String {
    "shop".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalSpec {
    kind: String,
    sub: String,
    #[serde(default)]
    groups: Vec<String>,
    on_behalf_of: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetSpec {
    action: String,
    table: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnmaskSpec {
    table: String,
    column: String,
    /// `pii.email`, `secret.token`, …; `""` for an unclassified column.
    classification: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FlagsSpec {
    unbounded: bool,
    data_modifying_cte: bool,
    select_into: bool,
    locking: bool,
    denied_functions: Vec<String>,
    explain_analyze_write: bool,
    file_access: bool,
    multiple_statements: bool,
    unclassified: Option<String>,
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policy")
}

/// Every fixture file: the built-in set's in the directory, custom sets' in custom/.
fn fixture_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [fixtures_dir(), fixtures_dir().join("custom")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Callers are minted and verified like real tokens: `Principal` has no other public
/// constructor, on purpose.
struct Callers {
    runtime: tokio::runtime::Runtime,
    auth: AuthConfig,
    verifier: Verifier,
}

impl Callers {
    fn new() -> Callers {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let auth = AuthConfig {
            hs256_secret: Some(SECRET.to_owned()),
            ..AuthConfig::default()
        };
        let verifier = runtime
            .block_on(Verifier::from_config(&auth, Path::new("/nonexistent")))
            .unwrap();
        Callers {
            runtime,
            auth,
            verifier,
        }
    }

    fn principal(&self, spec: &PrincipalSpec) -> Result<Principal, String> {
        let kind: PrincipalKind = spec.kind.parse().map_err(|e| format!("{e}"))?;
        let secret =
            signing_secret(&self.auth, Path::new("/nonexistent")).map_err(|e| e.to_string())?;
        let token = mint_hs256(
            &secret,
            &self.auth,
            &TokenRequest {
                sub: spec.sub.clone(),
                kind,
                groups: spec.groups.clone(),
                act: spec.on_behalf_of.clone(),
                ttl: Duration::from_secs(600),
            },
        )
        .map_err(|e| e.to_string())?;
        self.runtime
            .block_on(self.verifier.verify(&token))
            .map_err(|e| e.to_string())
    }
}

fn action(name: &str) -> Result<Action, String> {
    Action::ALL
        .into_iter()
        .find(|a| a.as_str() == name)
        .ok_or_else(|| format!("unknown action `{name}`"))
}

/// The intent as the classifier would report it: actions and tables follow from targets.
fn intent(fixture: &Fixture) -> Result<Intent, String> {
    let mut targets = Vec::new();
    for spec in fixture.targets.iter().flatten() {
        targets.push(Target {
            action: action(&spec.action)?,
            table: spec.table.as_deref().map(TableName::new),
        });
    }
    let mut actions: Vec<Action> = targets.iter().map(|t| t.action).collect();
    actions.sort();
    actions.dedup();
    let mut tables: Vec<TableAccess> = Vec::new();
    for target in &targets {
        let Some(table) = &target.table else { continue };
        let access = if target.action == Action::Select {
            Access::Read
        } else {
            Access::Write
        };
        match tables.iter_mut().find(|t| &t.table == table) {
            Some(seen) => seen.access = seen.access.max(access),
            None => tables.push(TableAccess {
                table: table.clone(),
                access,
            }),
        }
    }
    tables.sort_by(|a, b| a.table.cmp(&b.table));
    targets.sort();
    targets.dedup();
    let f = &fixture.flags;
    Ok(Intent {
        statement: "FIXTURE".to_owned(),
        actions,
        tables,
        targets,
        columns: Vec::new(),
        flags: Flags {
            unbounded: f.unbounded,
            data_modifying_cte: f.data_modifying_cte,
            select_into: f.select_into,
            locking: f.locking,
            denied_functions: f.denied_functions.clone(),
            explain_analyze_write: f.explain_analyze_write,
            file_access: f.file_access,
            multiple_statements: f.multiple_statements,
            unclassified: f.unclassified.clone(),
        },
    })
}

/// The effect as callers see it in JSON: `allow`, `deny`, `approval_required`.
fn effect_name(effect: Effect) -> String {
    match serde_json::to_value(effect) {
        Ok(serde_json::Value::String(name)) => name,
        other => panic!("an effect serializes as a string, not {other:?}"),
    }
}

/// What is wrong with an answer's effect, policies and reasons for `fixture`: the checks
/// statement decisions and unmask answers share.
fn common_mismatches(
    fixture: &Fixture,
    effect: &str,
    policies: &[String],
    reasons: &[String],
) -> Vec<String> {
    let mut wrong = Vec::new();
    if effect != fixture.expect {
        wrong.push(format!("effect {effect}, expected {}", fixture.expect));
    }
    if let Some(expected) = &fixture.policies
        && policies != expected.as_slice()
    {
        wrong.push(format!("policies {policies:?}, expected {expected:?}"));
    }
    if let Some(text) = &fixture.reason_contains
        && !reasons.iter().any(|r| r.contains(text.as_str()))
    {
        wrong.push(format!("no reason contains {text:?}"));
    }
    // Every answer says why.
    if reasons.is_empty() {
        wrong.push("no reasons".to_owned());
    }
    wrong
}

/// What is wrong with an unmask `decision` for `fixture`, if anything.
fn unmask_mismatch(fixture: &Fixture, decision: &UnmaskDecision) -> Option<String> {
    let effect = if decision.allowed { "allow" } else { "deny" };
    let mut wrong = common_mismatches(fixture, effect, &decision.policies, &decision.reasons);
    // An allow names the permits behind it.
    if decision.allowed && decision.policies.is_empty() {
        wrong.push("an allow names no policy".to_owned());
    }
    (!wrong.is_empty()).then(|| wrong.join("; "))
}

/// What is wrong with `decision` for `fixture`, if anything.
fn mismatch(fixture: &Fixture, decision: &Decision) -> Option<String> {
    let effect = effect_name(decision.effect);
    let mut wrong = common_mismatches(fixture, &effect, &decision.policies, &decision.reasons);
    if let Some(approvers) = &fixture.approvers
        && &decision.approver_groups != approvers
    {
        wrong.push(format!(
            "approvers {:?}, expected {approvers:?}",
            decision.approver_groups
        ));
    }
    if let Some(min) = fixture.min_approvals
        && decision.min_approvals != min
    {
        wrong.push(format!(
            "min_approvals {}, expected {min}",
            decision.min_approvals
        ));
    }
    // Invariants of every decision.
    let approval = decision.effect == Effect::ApprovalRequired;
    if approval == decision.approver_groups.is_empty() || approval == (decision.min_approvals == 0)
    {
        wrong.push(
            "approver groups and min_approvals must be set exactly for approval_required"
                .to_owned(),
        );
    }
    (!wrong.is_empty()).then(|| wrong.join("; "))
}

#[test]
fn policy_fixtures() {
    let callers = Callers::new();
    let mut cases = 0;
    let mut failures = Vec::new();
    for file in fixture_files() {
        let shown = file
            .strip_prefix(fixtures_dir())
            .unwrap_or(&file)
            .display()
            .to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        let parsed: FixtureFile =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{shown} does not parse: {e}"));
        assert!(!parsed.fixtures.is_empty(), "{shown} holds no fixtures");
        let engine = PolicyEngine::load(&PolicyConfig {
            files: parsed
                .policy_files
                .iter()
                .map(|p| fixtures_dir().join(p))
                .collect(),
        })
        .unwrap_or_else(|e| panic!("{shown}: the policy set does not load: {e}"));

        for fixture in &parsed.fixtures {
            assert!(
                ["allow", "deny", "approval_required"].contains(&fixture.expect.as_str()),
                "{shown}: `{}` expects `{}`; write allow, deny or approval_required",
                fixture.name,
                fixture.expect
            );
            if fixture.unmask.is_some() {
                assert!(
                    fixture.targets.is_none()
                        && !fixture.approved
                        && fixture.expect != "approval_required"
                        && fixture.approvers.is_none()
                        && fixture.min_approvals.is_none(),
                    "{shown}: `{}` is an unmask question: no targets, approved, approvers or min_approvals, and expect allow or deny",
                    fixture.name
                );
            } else {
                assert!(
                    fixture.targets.is_some(),
                    "{shown}: `{}` needs `targets` or `unmask`",
                    fixture.name
                );
            }
            let environments: Vec<&str> =
                match (&fixture.environment, fixture.environments.as_slice()) {
                    (Some(one), []) => vec![one.as_str()],
                    (None, many) if !many.is_empty() => many.iter().map(String::as_str).collect(),
                    _ => panic!(
                        "{shown}: `{}` needs `environment` or `environments`, not both",
                        fixture.name
                    ),
                };
            let (principal, intent) = match (callers.principal(&fixture.principal), intent(fixture))
            {
                (Ok(principal), Ok(intent)) => (principal, intent),
                (Err(e), _) | (_, Err(e)) => panic!("{shown}: `{}`: {e}", fixture.name),
            };
            for environment in environments {
                cases += 1;
                if let Some(spec) = &fixture.unmask {
                    let column = ColumnResource {
                        datasource: &fixture.datasource,
                        environment,
                        table: &spec.table,
                        column: &spec.column,
                        classification: &spec.classification,
                    };
                    let decision = engine.may_unmask(&principal, &intent, &column);
                    if let Some(wrong) = unmask_mismatch(fixture, &decision) {
                        failures.push(format!(
                            "{shown}: `{}` in {environment}: {wrong}\n    got {decision:?}",
                            fixture.name
                        ));
                    }
                    continue;
                }
                let resource = Resource {
                    datasource: &fixture.datasource,
                    environment,
                };
                let decision = engine.decide(&principal, &intent, &resource, fixture.approved);
                if let Some(wrong) = mismatch(fixture, &decision) {
                    failures.push(format!(
                        "{shown}: `{}` in {environment}: {wrong}\n    got {decision:?}",
                        fixture.name
                    ));
                }
            }
        }
    }
    println!("{cases} policy fixture cases decided");
    assert!(cases >= 100, "only {cases} fixture cases were found");
    assert!(
        failures.is_empty(),
        "{} of {cases} policy fixture cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every cell of the built-in table is covered: each action (`unmask` too) in dev, prod and
/// a third environment, so a new action or environment rule cannot go untested.
#[test]
fn fixtures_cover_every_action_in_every_environment() {
    let mut missing = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for file in fixture_files() {
        let parsed: FixtureFile = toml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        if !parsed.policy_files.is_empty() {
            continue;
        }
        for fixture in &parsed.fixtures {
            let environments = fixture.environment.iter().chain(&fixture.environments);
            for environment in environments {
                for target in fixture.targets.iter().flatten() {
                    seen.insert((target.action.clone(), environment.clone()));
                }
                if fixture.unmask.is_some() {
                    seen.insert(("unmask".to_owned(), environment.clone()));
                }
            }
        }
    }
    let actions = Action::ALL.iter().map(|a| a.as_str()).chain(["unmask"]);
    for action in actions {
        for environment in ["dev", "prod", "staging"] {
            if !seen.contains(&(action.to_owned(), environment.to_owned())) {
                missing.push(format!("{action} in {environment}"));
            }
        }
    }
    assert!(missing.is_empty(), "no fixture for: {}", missing.join(", "));
}
