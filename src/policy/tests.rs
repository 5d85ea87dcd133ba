//! Unit tests of loading, reloading and the decision algorithm. The built-in set's table
//! of effects is covered by the data fixtures in tests/fixtures/policy, run by
//! tests/policy_fixtures.rs.

use std::path::PathBuf;

use super::load::{Source, build, line_column};
use super::*;
use crate::identity::PrincipalKind;
use crate::intent::{Access, Action, Flags, TableAccess, TableName, Target};

fn engine_from(files: &[PathBuf]) -> Result<PolicyEngine, PolicyError> {
    PolicyEngine::load(&PolicyConfig {
        files: files.to_vec(),
    })
}

fn built_in() -> PolicyEngine {
    engine_from(&[]).unwrap()
}

/// Writes `text` to a fresh file `name` in `dir`.
fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn problems_of(error: PolicyError) -> Vec<PolicyProblem> {
    match error {
        PolicyError::Invalid { problems } => problems,
        other => panic!("expected invalid policies, got {other:?}"),
    }
}

fn load_text(text: &str) -> Result<PolicyEngine, PolicyError> {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "test.cedar", text);
    engine_from(&[path])
}

fn who(kind: PrincipalKind, groups: &[&str]) -> Principal {
    Principal::for_tests("caller-1", kind, groups, None)
}

fn intent(targets: &[(Action, Option<&str>)], flags: Flags) -> Intent {
    let mut actions: Vec<Action> = targets.iter().map(|(a, _)| *a).collect();
    actions.sort();
    actions.dedup();
    let mut tables: Vec<TableAccess> = targets
        .iter()
        .filter_map(|(action, table)| {
            table.map(|t| TableAccess {
                table: TableName::new(t),
                access: if *action == Action::Select {
                    Access::Read
                } else {
                    Access::Write
                },
            })
        })
        .collect();
    tables.sort_by(|a, b| a.table.cmp(&b.table));
    tables.dedup_by(|a, b| a.table == b.table);
    Intent {
        statement: "TEST".to_owned(),
        actions,
        tables,
        targets: targets
            .iter()
            .map(|(action, table)| Target {
                action: *action,
                table: table.map(TableName::new),
            })
            .collect(),
        columns: Vec::new(),
        flags,
    }
}

fn effect(
    engine: &PolicyEngine,
    principal: &Principal,
    intent: &Intent,
    resource: &Resource,
    approved: bool,
) -> Effect {
    engine.decide(principal, intent, resource, approved).effect
}

fn on(table: &str) -> Option<&str> {
    Some(table)
}

const PROD: Resource<'static> = Resource {
    datasource: "shop_prod",
    environment: "prod",
};
const DEV: Resource<'static> = Resource {
    datasource: "shop",
    environment: "dev",
};

#[test]
fn the_engine_is_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<PolicyEngine>();
}

#[test]
fn built_in_set_and_schema_load() {
    let engine = built_in();
    assert!(engine.current().len() >= 20, "{engine:?}");
    // Every policy of the built-in set carries a reason.
    for policy in engine.current().policies.policies() {
        let meta = engine
            .current()
            .meta(policy.id())
            .map(|m| m.reason.is_some());
        assert_eq!(meta, Some(true), "{} has no @reason", policy.id());
    }
}

#[test]
fn line_and_column_count_from_one_in_characters() {
    let text = "ab\ncdé f\n";
    assert_eq!(line_column(text, 0), (1, 1));
    assert_eq!(line_column(text, 3), (2, 1));
    // `f` is byte 9 (é is two bytes) but character 5 of its line.
    assert_eq!(line_column(text, 8), (2, 5));
    assert_eq!(line_column(text, 1000), (3, 1));
}

#[test]
fn syntax_error_names_file_line_column_and_cedar_message() {
    let text = "@id(\"ok\")\npermit (principal, action, resource);\n\n@id(\"bad\")\npermit (principal, action, resource) when { context.approved = };\n";
    let error = load_text(text).unwrap_err();
    let shown = error.to_string();
    let problems = problems_of(error);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let problem = &problems[0];
    assert!(problem.file.ends_with("test.cedar"), "{problem}");
    assert_eq!(problem.line, 5, "{problem}");
    assert!(problem.column > 40, "{problem}");
    assert!(problem.message.contains("unexpected token"), "{problem}");
    assert!(shown.contains("test.cedar:5:"), "{shown}");
}

#[test]
fn policy_that_does_not_match_the_schema_is_refused_with_its_place() {
    let text = "// ok\n@id(\"ok\")\npermit (principal, action, resource);\n\n@id(\"typo\")\nforbid (principal, action, resource)\n  when { context.nonexistent };\n";
    let problems = problems_of(load_text(text).unwrap_err());
    assert_eq!(problems.len(), 1, "{problems:?}");
    let problem = &problems[0];
    assert_eq!((problem.line, problem.column), (7, 10), "{problem}");
    assert!(problem.message.contains("nonexistent"), "{problem}");
    assert!(problem.message.contains("typo"), "{problem}");

    // An unknown entity type and an action the schema does not have are refused too.
    let text = "@id(\"a\")\npermit (principal == User::\"x\", action, resource);\n@id(\"b\")\npermit (principal, action == Action::\"read\", resource);\n";
    let problems = problems_of(load_text(text).unwrap_err());
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(problems[0].line, 2);
    assert_eq!(problems[1].line, 4);
}

#[test]
fn ids_are_required_and_unique_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let first = write(
        &dir,
        "first.cedar",
        "@id(\"read\")\npermit (principal, action == Action::\"select\", resource);\n",
    );
    let second = write(
        &dir,
        "second.cedar",
        "// comment\n@id(\"read\")\npermit (principal, action, resource);\npermit (principal, action, resource);\n@id(\"  \")\npermit (principal, action, resource);\n",
    );
    let problems = problems_of(engine_from(&[first, second]).unwrap_err());
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].file.ends_with("second.cedar"));
    assert_eq!((problems[0].line, problems[0].column), (2, 1));
    assert!(
        problems[0].message.contains("first.cedar:1:1"),
        "{}",
        problems[0]
    );
    assert_eq!(problems[1].line, 4);
    assert!(problems[1].message.contains("no @id"), "{}", problems[1]);
    assert_eq!(problems[2].line, 5);
    assert!(
        problems[2].message.contains("@id is empty"),
        "{}",
        problems[2]
    );
}

#[test]
fn approval_annotations_are_checked() {
    let text = r#"
@id("permit-with-approval") @approval("dba")
permit (principal, action, resource);
@id("bad-count") @approval("dba") @min_approvals("zero")
forbid (principal, action, resource) unless { context.approved };
@id("count-alone") @min_approvals("2")
forbid (principal, action, resource);
@id("no-group") @approval("")
forbid (principal, action, resource) unless { context.approved };
"#;
    let problems = problems_of(load_text(text).unwrap_err());
    let messages: Vec<String> = problems
        .iter()
        .map(|p| format!("{}: {}", p.line, p.message))
        .collect();
    let expected = [
        "2: @approval belongs on a forbid",
        "4: @min_approvals must be a whole number",
        "6: @min_approvals needs an @approval",
        "8: @approval names no group",
    ];
    assert_eq!(messages.len(), expected.len(), "{messages:?}");
    for (message, start) in messages.iter().zip(expected) {
        assert!(message.starts_with(start), "{messages:?}");
    }
}

#[test]
fn templates_unreadable_and_empty_files_are_refused() {
    let problems = problems_of(
        load_text("@id(\"t\")\npermit (principal == ?principal, action, resource);\n").unwrap_err(),
    );
    assert!(problems[0].message.contains("templates"), "{problems:?}");

    let missing = engine_from(&[PathBuf::from("/nonexistent/gatehouse.cedar")]).unwrap_err();
    assert!(matches!(missing, PolicyError::Read { .. }), "{missing:?}");
    assert!(missing.to_string().contains("/nonexistent/gatehouse.cedar"));

    let empty = load_text("// nothing here yet\n").unwrap_err();
    assert!(matches!(empty, PolicyError::Empty { .. }), "{empty:?}");
}

#[test]
fn all_problems_of_all_files_are_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        &dir,
        "a.cedar",
        "@id(\"a\") permit (principal, action, resource) when { context.nope };",
    );
    let b = write(
        &dir,
        "b.cedar",
        "@id(\"b\") permit (principal action, resource);",
    );
    let error = engine_from(&[a, b]).unwrap_err();
    let shown = error.to_string();
    assert!(shown.starts_with("2 problems in the policies:"), "{shown}");
    assert!(shown.contains("a.cedar:1:"), "{shown}");
    assert!(shown.contains("b.cedar:1:"), "{shown}");
}

#[test]
fn reload_keeps_the_set_in_force_when_the_new_one_fails_and_swaps_when_it_loads() {
    let dir = tempfile::tempdir().unwrap();
    let allow_reads = "@id(\"read\") @reason(\"reads ok\")\npermit (principal, action == Action::\"select\", resource);\n";
    let path = write(&dir, "p.cedar", allow_reads);
    let engine = engine_from(std::slice::from_ref(&path)).unwrap();
    let alice = who(PrincipalKind::Human, &[]);
    let read = intent(&[(Action::Select, on("orders"))], Flags::default());
    assert_eq!(effect(&engine, &alice, &read, &PROD, false), Effect::Allow);

    // A broken file: the error is returned and reads stay allowed.
    std::fs::write(&path, "@id(\"read\") permit (principal, action == Action::\"select\", resource) when { context.aproved };").unwrap();
    let error = engine.reload().unwrap_err();
    assert!(error.to_string().contains("aproved"), "{error}");
    assert_eq!(effect(&engine, &alice, &read, &PROD, false), Effect::Allow);

    // A missing file: same.
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(engine.reload(), Err(PolicyError::Read { .. })));
    assert_eq!(effect(&engine, &alice, &read, &PROD, false), Effect::Allow);

    // A valid new set replaces the old one.
    std::fs::write(&path, format!("{allow_reads}@id(\"no-prod\") @reason(\"not in prod\")\nforbid (principal, action, resource in Environment::\"prod\");\n")).unwrap();
    assert_eq!(engine.reload().unwrap(), 2);
    let decision = engine.decide(&alice, &read, &PROD, false);
    assert_eq!(decision.effect, Effect::Deny);
    assert_eq!(decision.policies, ["no-prod"]);
    assert_eq!(decision.reasons, ["not in prod"]);
}

#[test]
fn reload_of_the_built_in_set_reports_its_size() {
    let engine = built_in();
    assert_eq!(engine.reload().unwrap(), engine.current().len());
}

const APPROVALS: &str = r#"
@id("all") @reason("anything goes")
permit (principal, action, resource);

@id("two-dbas") @approval("dba") @min_approvals("2") @reason("deletes need two dbas")
forbid (principal, action == Action::"delete", resource) unless { context.approved };

@id("security") @approval("security") @reason("security looks at PII tables")
forbid (principal, action, resource == Table::"shop_prod/customers") unless { context.approved };

@id("never-drop") @reason("no drops")
forbid (principal, action == Action::"drop", resource);

// Says approval but does not look at `approved`: approval cannot help.
@id("fake-approval") @approval("dba")
forbid (principal, action == Action::"truncate", resource);
"#;

#[test]
fn approval_forbids_turn_denials_into_approval_required() {
    let engine = load_text(APPROVALS).unwrap();
    let bob = who(PrincipalKind::Agent, &["dba"]);

    let delete = intent(&[(Action::Delete, on("orders"))], Flags::default());
    let decision = engine.decide(&bob, &delete, &PROD, false);
    assert_eq!(decision.effect, Effect::ApprovalRequired, "{decision:?}");
    assert_eq!(decision.policies, ["two-dbas"]);
    assert_eq!(decision.reasons, ["deletes need two dbas"]);
    assert_eq!(decision.approver_groups, ["dba"]);
    assert_eq!(decision.min_approvals, 2);

    // With the approval granted, the same statement is allowed.
    let decision = engine.decide(&bob, &delete, &PROD, true);
    assert_eq!(decision.effect, Effect::Allow, "{decision:?}");
    assert_eq!(decision.policies, ["all"]);
    assert_eq!(decision.min_approvals, 0);

    // Two approval forbids on two targets: every group, the highest count.
    let both = intent(
        &[
            (Action::Delete, on("orders")),
            (Action::Select, on("customers")),
        ],
        Flags::default(),
    );
    let decision = engine.decide(&bob, &both, &PROD, false);
    assert_eq!(decision.effect, Effect::ApprovalRequired, "{decision:?}");
    assert_eq!(decision.policies, ["two-dbas", "security"]);
    assert_eq!(decision.approver_groups, ["dba", "security"]);
    assert_eq!(decision.min_approvals, 2);
}

#[test]
fn a_plain_forbid_beside_an_approval_forbid_denies() {
    let engine = load_text(APPROVALS).unwrap();
    let bob = who(PrincipalKind::Human, &["dba"]);

    // never-drop matches together with security on the same target: denied, and only
    // the plain forbid is named, since no approval would help.
    let drop = intent(&[(Action::Drop, on("customers"))], Flags::default());
    let decision = engine.decide(&bob, &drop, &PROD, false);
    assert_eq!(decision.effect, Effect::Deny, "{decision:?}");
    assert_eq!(decision.policies, ["never-drop"]);
    assert_eq!(decision.reasons, ["no drops"]);
    assert!(decision.approver_groups.is_empty());

    // One target needs approval, another is denied: the statement is denied, for the
    // denying target's reasons only.
    let mixed = intent(
        &[(Action::Delete, on("orders")), (Action::Drop, on("orders"))],
        Flags::default(),
    );
    let decision = engine.decide(&bob, &mixed, &PROD, false);
    assert_eq!(decision.effect, Effect::Deny, "{decision:?}");
    assert_eq!(decision.policies, ["never-drop"]);
    assert_eq!(decision.reasons, ["no drops"]);
    assert_eq!(decision.min_approvals, 0);

    // An @approval forbid that ignores `approved` stays a denial, with a generated reason.
    let truncate = intent(&[(Action::Truncate, on("orders"))], Flags::default());
    let decision = engine.decide(&bob, &truncate, &PROD, false);
    assert_eq!(decision.effect, Effect::Deny, "{decision:?}");
    assert_eq!(decision.policies, ["fake-approval"]);
    assert_eq!(
        decision.reasons,
        [
            "policy `fake-approval` forbids human `caller-1` to truncate on table `orders` in environment `prod`"
        ]
    );
}

#[test]
fn without_a_permit_the_reason_says_so() {
    let engine =
        load_text("@id(\"read\") permit (principal, action == Action::\"select\", resource);")
            .unwrap();
    let agent = who(PrincipalKind::Agent, &[]);
    let decision = engine.decide(
        &agent,
        &intent(&[(Action::Drop, on("t"))], Flags::default()),
        &PROD,
        false,
    );
    assert_eq!(decision.effect, Effect::Deny);
    assert!(decision.policies.is_empty());
    assert_eq!(
        decision.reasons,
        ["no policy permits agent `caller-1` to drop on table `t` in environment `prod`"]
    );
    let decision = engine.decide(
        &agent,
        &intent(&[(Action::Session, None)], Flags::default()),
        &DEV,
        false,
    );
    assert_eq!(
        decision.reasons,
        ["no policy permits agent `caller-1` to session on datasource `shop` in environment `dev`"]
    );
    // An allow without @reason explains itself too.
    let decision = engine.decide(
        &agent,
        &intent(&[(Action::Select, None)], Flags::default()),
        &DEV,
        false,
    );
    assert_eq!(decision.effect, Effect::Allow);
    assert_eq!(decision.reasons, ["policy `read` allows it"]);
}

#[test]
fn entities_carry_groups_hierarchy_and_attributes() {
    let text = r#"
@id("helper") permit (principal is Agent, action, resource in Datasource::"shop")
  when { principal has on_behalf_of && principal.on_behalf_of == "alice" && principal.sub == "bot" };
@id("by-table-name") permit (principal in Group::"analysts", action == Action::"select", resource is Table)
  when { resource.name == "analytics.events" && context.datasource == "shop_prod" && context.environment == "prod" };
"#;
    let engine = load_text(text).unwrap();
    let bot = Principal::for_tests("bot", PrincipalKind::Agent, &[], Some("alice"));
    let alone = Principal::for_tests("bot", PrincipalKind::Agent, &[], None);
    let write = intent(&[(Action::Insert, on("orders"))], Flags::default());
    assert_eq!(effect(&engine, &bot, &write, &DEV, false), Effect::Allow);
    assert_eq!(effect(&engine, &alone, &write, &DEV, false), Effect::Deny);
    assert_eq!(effect(&engine, &bot, &write, &PROD, false), Effect::Deny);

    let analyst = who(PrincipalKind::Service, &["analysts", "x"]);
    let events = intent(
        &[(Action::Select, on("analytics.events"))],
        Flags::default(),
    );
    assert_eq!(
        effect(&engine, &analyst, &events, &PROD, false),
        Effect::Allow
    );
    assert_eq!(
        effect(&engine, &analyst, &events, &DEV, false),
        Effect::Deny
    );
    let other = who(PrincipalKind::Service, &["x"]);
    assert_eq!(effect(&engine, &other, &events, &PROD, false), Effect::Deny);
}

#[test]
fn evaluation_errors_deny() {
    // The overflow makes the forbid error at evaluation; Cedar would skip it and allow.
    let text = r#"
@id("all") permit (principal, action, resource);
@id("overflows") forbid (principal, action, resource) when { 9223372036854775807 + 1 > 0 };
"#;
    let engine = load_text(text).unwrap();
    let decision = engine.decide(
        &who(PrincipalKind::Human, &[]),
        &intent(&[(Action::Select, on("t"))], Flags::default()),
        &DEV,
        false,
    );
    assert_eq!(decision.effect, Effect::Deny, "{decision:?}");
    assert!(decision.policies.is_empty());
    assert!(decision.reasons[0].starts_with("denied because policy could not be evaluated for human `caller-1` to select on table `t`"), "{decision:?}");
    assert!(decision.reasons[0].contains("overflow"), "{decision:?}");
}

#[test]
fn an_intent_without_targets_is_denied() {
    let engine = load_text("@id(\"all\") permit (principal, action, resource);").unwrap();
    let alice = who(PrincipalKind::Human, &[]);
    let unclassified = Flags {
        unclassified: Some("unknown statement".to_owned()),
        ..Flags::default()
    };
    let decision = engine.decide(&alice, &intent(&[], unclassified), &DEV, false);
    assert_eq!(decision.effect, Effect::Deny);
    assert!(
        decision.reasons[0].contains("unknown statement"),
        "{decision:?}"
    );
    let decision = engine.decide(&alice, &intent(&[], Flags::default()), &DEV, false);
    assert_eq!(decision.effect, Effect::Deny);
}

#[test]
fn odd_names_are_just_ids() {
    // Quotes, slashes and spaces in names cannot escape their entity id.
    let engine = built_in();
    let odd = Principal::for_tests("a\"b/c d", PrincipalKind::Human, &["dba\" || true"], None);
    let decision = engine.decide(
        &odd,
        &intent(&[(Action::Insert, on("\"Weird\" Table"))], Flags::default()),
        &Resource {
            datasource: "x/y",
            environment: "prod\"",
        },
        false,
    );
    assert_eq!(decision.effect, Effect::ApprovalRequired, "{decision:?}");
}

#[test]
fn decisions_serialize_in_snake_case() {
    let decision = built_in().decide(
        &who(PrincipalKind::Agent, &[]),
        &intent(&[(Action::Insert, on("orders"))], Flags::default()),
        &PROD,
        false,
    );
    let json = serde_json::to_value(&decision).unwrap();
    assert_eq!(json["effect"], "approval_required");
    assert_eq!(json["approver_groups"], serde_json::json!(["dba"]));
    assert_eq!(json["min_approvals"], 1);
    assert_eq!(
        json["policies"],
        serde_json::json!(["prod-write-needs-approval"])
    );
}

#[test]
fn in_memory_sources_name_themselves() {
    let engine = built_in();
    let error = build(
        &[Source::new(
            "inline.cedar",
            "permit (principal, action, resource);",
        )],
        engine.model.validator(),
    )
    .err()
    .map(problems_of)
    .unwrap();
    assert_eq!(error[0].file, "inline.cedar");
}

/// A rough timing of `decide` for a three-table join against the built-in set, for a caller
/// repeating itself (entity store and context remembered) and for new callers; the
/// criterion benchmark in benches/ is the real measurement. Run with
/// `cargo test --release --lib policy::tests::decide_timing -- --nocapture`.
#[test]
fn decide_timing() {
    let engine = built_in();
    let agent = Principal::for_tests(
        "agent-7",
        PrincipalKind::Agent,
        &["analysts", "eng"],
        Some("alice"),
    );
    let join = intent(
        &[
            (Action::Select, on("customers")),
            (Action::Select, on("order_items")),
            (Action::Select, on("orders")),
        ],
        Flags::default(),
    );
    for _ in 0..500 {
        engine.decide(&agent, &join, &PROD, false);
    }
    let rounds = 5_000;
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        let decision = engine.decide(&agent, &join, &PROD, false);
        assert_eq!(decision.effect, Effect::Allow);
    }
    let per_decision = started.elapsed() / rounds;
    println!("decide, three-table join, built-in set, same caller: {per_decision:?}");

    // A new caller every time: nothing remembered, the entity store is built each time.
    let callers: Vec<Principal> = (0..rounds)
        .map(|i| Principal::for_tests(&format!("agent-{i}"), PrincipalKind::Agent, &[], None))
        .collect();
    let started = std::time::Instant::now();
    for caller in &callers {
        assert_eq!(effect(&engine, caller, &join, &PROD, false), Effect::Allow);
    }
    let per_decision = started.elapsed() / rounds;
    println!("decide, three-table join, built-in set, new caller: {per_decision:?}");
}

#[test]
fn table_blindness_is_read_from_how_policies_use_resource() {
    use super::load::table_blind;
    let blind = |text: &str| table_blind(&cedar_policy::Policy::parse(None, text).unwrap());
    for text in [
        r#"permit (principal, action, resource);"#,
        r#"permit (principal, action, resource in Environment::"dev");"#,
        r#"permit (principal, action, resource is Table in Datasource::"shop");"#,
        r#"forbid (principal, action, resource) when { context.locking } unless { resource in Environment::"dev" || context.approved };"#,
        r#"forbid (principal, action, resource) when { resource is Table && principal in Group::"x" };"#,
    ] {
        assert!(blind(text), "{text}");
    }
    for text in [
        r#"permit (principal, action, resource == Table::"shop/orders");"#,
        r#"permit (principal, action, resource in Table::"shop/orders");"#,
        r#"permit (principal, action, resource is Table in Table::"shop/orders");"#,
        r#"permit (principal, action, resource) when { resource.name == "orders" };"#,
        r#"permit (principal, action, resource) when { resource has name };"#,
        r#"permit (principal, action, resource) when { resource == Table::"shop/orders" };"#,
        r#"permit (principal, action, resource) when { resource in [Environment::"dev"] };"#,
        r#"permit (principal, action, resource) when { resource in Table::"shop/orders" };"#,
        r#"permit (principal, action, resource) when { Table::"shop/orders" in resource };"#,
        r#"permit (principal, action, resource) when { {"Var": resource} == {"Var": Table::"shop/orders"} };"#,
        r#"permit (principal, action, resource) when { {"in": resource}["in"] in Environment::"dev" };"#,
    ] {
        assert!(!blind(text), "{text}");
    }
    // The built-in set treats all tables of a datasource alike for every action.
    let engine = built_in();
    for action in Action::ALL {
        assert!(engine.current().table_blind(action), "{action}");
    }
}

#[test]
fn table_specific_policies_decide_each_table() {
    let engine = load_text(APPROVALS).unwrap();
    let bob = who(PrincipalKind::Agent, &[]);
    // Two reads: only the customers table needs security's approval.
    let join = intent(
        &[
            (Action::Select, on("orders")),
            (Action::Select, on("customers")),
        ],
        Flags::default(),
    );
    assert!(!engine.current().table_blind(Action::Select));
    let decision = engine.decide(&bob, &join, &PROD, false);
    assert_eq!(decision.effect, Effect::ApprovalRequired, "{decision:?}");
    assert_eq!(decision.policies, ["security"]);
    let orders = intent(&[(Action::Select, on("orders"))], Flags::default());
    assert_eq!(effect(&engine, &bob, &orders, &PROD, false), Effect::Allow);
}

#[test]
fn one_evaluation_answers_every_table_of_a_blind_action_with_each_table_named() {
    let engine =
        load_text("@id(\"read\") permit (principal, action == Action::\"select\", resource);")
            .unwrap();
    let agent = who(PrincipalKind::Agent, &[]);
    let drops = intent(
        &[
            (Action::Drop, on("a")),
            (Action::Drop, on("b")),
            (Action::Select, on("c")),
        ],
        Flags::default(),
    );
    let decision = engine.decide(&agent, &drops, &DEV, false);
    assert_eq!(decision.effect, Effect::Deny);
    assert_eq!(
        decision.reasons,
        [
            "no policy permits agent `caller-1` to drop on table `a` in environment `dev`",
            "no policy permits agent `caller-1` to drop on table `b` in environment `dev`",
        ]
    );
}

#[test]
fn the_memo_remembers_built_values_only_and_stays_bounded() {
    use super::memo::Memo;
    let memo: Memo<u32, String> = Memo::new(2);
    let built = std::cell::Cell::new(0);
    let build = |key: &u32| {
        built.set(built.get() + 1);
        Ok::<_, String>(format!("value {key}"))
    };
    assert_eq!(memo.get_or_build(1, build).unwrap(), "value 1");
    assert_eq!(memo.get_or_build(1, build).unwrap(), "value 1");
    assert_eq!(built.get(), 1);
    // A failed build is not remembered.
    assert!(
        memo.get_or_build(2, |_| Err::<String, _>("no".to_owned()))
            .is_err()
    );
    assert_eq!(memo.len(), 1);
    memo.get_or_build(2, build).unwrap();
    memo.get_or_build(3, build).unwrap();
    assert!(memo.len() <= 2);
}

#[test]
fn remembered_stores_and_contexts_keep_callers_and_places_apart() {
    let engine = built_in();
    let insert = intent(&[(Action::Insert, on("orders"))], Flags::default());
    let dba = Principal::for_tests("same-sub", PrincipalKind::Human, &["dba"], None);
    let not_dba = Principal::for_tests("same-sub", PrincipalKind::Human, &["eng"], None);
    let agent = Principal::for_tests("same-sub", PrincipalKind::Agent, &["dba"], None);
    for _ in 0..2 {
        assert_eq!(effect(&engine, &dba, &insert, &PROD, false), Effect::Allow);
        assert_eq!(
            effect(&engine, &not_dba, &insert, &PROD, false),
            Effect::ApprovalRequired
        );
        assert_eq!(
            effect(&engine, &agent, &insert, &PROD, false),
            Effect::ApprovalRequired
        );
        assert_eq!(effect(&engine, &agent, &insert, &DEV, false), Effect::Allow);
        let locking = intent(
            &[(Action::Select, on("orders"))],
            Flags {
                locking: true,
                ..Flags::default()
            },
        );
        assert_eq!(
            effect(&engine, &agent, &locking, &PROD, false),
            Effect::ApprovalRequired
        );
        assert_eq!(
            effect(&engine, &agent, &locking, &PROD, true),
            Effect::Allow
        );
    }
    assert_eq!(engine.model.stores_remembered(), 4);
}

// ---------------------------------------------------------------------------------------
// unmask
// ---------------------------------------------------------------------------------------

fn column<'a>(
    resource: &Resource<'a>,
    table: &'a str,
    name: &'a str,
    class: &'a str,
) -> ColumnResource<'a> {
    ColumnResource {
        datasource: resource.datasource,
        environment: resource.environment,
        table,
        column: name,
        classification: class,
    }
}

fn plain_read() -> Intent {
    intent(&[(Action::Select, on("customers"))], Flags::default())
}

#[test]
fn built_in_unmask_rules() {
    let engine = built_in();
    let read = plain_read();
    let reader = who(PrincipalKind::Human, &["pii-readers"]);
    for place in [DEV, PROD] {
        for class in ["pii.email", "pii.national_id"] {
            let decision =
                engine.may_unmask(&reader, &read, &column(&place, "customers", "c", class));
            assert!(decision.allowed, "{decision:?}");
            assert_eq!(decision.policies, ["pii-readers-unmask-pii"]);
            assert_eq!(
                decision.reasons,
                ["people in group pii-readers may see personal data unmasked"]
            );
        }
        for class in ["secret.password", "secret.token"] {
            let decision = engine.may_unmask(&reader, &read, &column(&place, "users", "c", class));
            assert!(!decision.allowed, "{decision:?}");
            assert_eq!(decision.policies, ["no-unmask-secrets"]);
        }
    }

    let email = column(&PROD, "customers", "email", "pii.email");
    for agent in [
        who(PrincipalKind::Agent, &["pii-readers"]),
        Principal::for_tests("bot", PrincipalKind::Agent, &["pii-readers"], Some("alice")),
    ] {
        let decision = engine.may_unmask(&agent, &read, &email);
        assert!(!decision.allowed, "{decision:?}");
        assert_eq!(decision.policies, ["no-unmask-for-agents"]);
        assert_eq!(decision.reasons, ["agents see personal data masked"]);
    }
    // An agent asking for a secret meets both forbids, listed as written.
    let agent = who(PrincipalKind::Agent, &["pii-readers"]);
    let token = column(&PROD, "sessions", "token", "secret.token");
    let decision = engine.may_unmask(&agent, &read, &token);
    assert_eq!(
        decision.policies,
        ["no-unmask-secrets", "no-unmask-for-agents"]
    );

    // Services and people outside pii-readers: nothing permits it.
    let service = who(PrincipalKind::Service, &["pii-readers"]);
    let decision = engine.may_unmask(&service, &read, &email);
    assert!(!decision.allowed, "{decision:?}");
    assert!(decision.policies.is_empty());
    assert_eq!(
        decision.reasons,
        [
            "no policy permits service `caller-1` to unmask column `email` (pii.email) of table `customers` in environment `prod`"
        ]
    );
    let other = who(PrincipalKind::Human, &["eng", "dba"]);
    assert!(!engine.may_unmask(&other, &read, &email).allowed);

    // Unclassified: nobody (agents meet their forbid; the others find no permit).
    for caller in [&reader, &agent, &service, &other] {
        let decision = engine.may_unmask(caller, &read, &column(&DEV, "orders", "note", ""));
        assert!(!decision.allowed, "{decision:?}");
        let nothing_permits = decision.reasons[0].contains("(unclassified)");
        assert_eq!(
            nothing_permits,
            decision.policies.is_empty(),
            "{decision:?}"
        );
    }
}

#[test]
fn statement_forbids_for_every_action_apply_to_unmask_but_approval_forbids_do_not() {
    let engine = built_in();
    let reader = who(PrincipalKind::Human, &["pii-readers"]);
    let email = column(&PROD, "customers", "email", "pii.email");
    let flagged = |flags: Flags| intent(&[(Action::Select, on("customers"))], flags);

    // Plain forbids written for every action deny unmasking in a statement they refuse.
    for (flags, id) in [
        (
            Flags {
                multiple_statements: true,
                ..Flags::default()
            },
            "no-multiple-statements",
        ),
        (
            Flags {
                unclassified: Some("unknown".to_owned()),
                ..Flags::default()
            },
            "no-unclassified",
        ),
        (
            Flags {
                denied_functions: vec!["pg_sleep".to_owned()],
                ..Flags::default()
            },
            "no-denied-functions",
        ),
    ] {
        let decision = engine.may_unmask(&reader, &flagged(flags), &email);
        assert!(!decision.allowed, "{decision:?}");
        assert_eq!(decision.policies, [id]);
    }

    // A locking read, a writing CTE or SELECT … INTO in prod ran only with an approval;
    // the approval forbids do not mask its results for a pii-reader.
    for flags in [
        Flags {
            locking: true,
            ..Flags::default()
        },
        Flags {
            data_modifying_cte: true,
            ..Flags::default()
        },
        Flags {
            select_into: true,
            ..Flags::default()
        },
    ] {
        let decision = engine.may_unmask(&reader, &flagged(flags), &email);
        assert!(decision.allowed, "{decision:?}");
        assert_eq!(decision.policies, ["pii-readers-unmask-pii"]);
    }
}

#[test]
fn only_permits_that_admit_unmask_let_anyone_unmask() {
    let reader = who(PrincipalKind::Human, &["pii-readers"]);
    let email = column(&DEV, "customers", "email", "pii.email");
    // Every statement permit of the built-in set names its actions: none admits unmask.
    let engine = built_in();
    for policy in engine.current().policies.policies() {
        let permit = policy.effect() == cedar_policy::Effect::Permit;
        let scoped = !matches!(
            policy.action_constraint(),
            cedar_policy::ActionConstraint::Any
        );
        assert!(!permit || scoped, "{} permits every action", policy.id());
    }
    let statements_only = load_text(
        "@id(\"read\") permit (principal, action == Action::\"select\", resource);\n@id(\"write\") permit (principal, action in [Action::\"insert\", Action::\"update\"], resource);",
    )
    .unwrap();
    let decision = statements_only.may_unmask(&reader, &plain_read(), &email);
    assert!(!decision.allowed, "{decision:?}");
    // A permit for every action does admit it: that is why the built-in permits are scoped.
    let everything = load_text("@id(\"all\") permit (principal, action, resource);").unwrap();
    let decision = everything.may_unmask(&reader, &plain_read(), &email);
    assert!(decision.allowed, "{decision:?}");
    assert_eq!(decision.policies, ["all"]);
    assert_eq!(
        decision.reasons,
        [
            "policy `all` allows human `caller-1` to unmask column `email` (pii.email) of table `customers` in environment `dev`"
        ]
    );
}

#[test]
fn column_entities_sit_in_their_table_datasource_and_environment() {
    let text = r#"
@id("one-column") permit (principal is Agent, action == Action::"unmask", resource == Column::"shop/customers/email");
@id("one-table") permit (principal in Group::"t", action == Action::"unmask", resource in Table::"shop/customers");
@id("by-name") permit (principal in Group::"n", action == Action::"unmask", resource is Column)
  when { resource.name == "phone" && resource.classification == "pii.phone" && context.environment == "dev" };
@id("by-place") permit (principal in Group::"p", action == Action::"unmask", resource in Environment::"prod");
"#;
    let engine = load_text(text).unwrap();
    let agent = who(PrincipalKind::Agent, &[]);
    let table = who(PrincipalKind::Human, &["t"]);
    let named = who(PrincipalKind::Human, &["n"]);
    let placed = who(PrincipalKind::Human, &["p"]);
    let cases = [
        (&agent, DEV, "customers", "email", "pii.email", true),
        (&agent, DEV, "customers", "phone", "pii.phone", false),
        (&agent, PROD, "customers", "email", "pii.email", false),
        (&agent, DEV, "suppliers", "email", "pii.email", false),
        (&table, DEV, "customers", "phone", "pii.phone", true),
        (&table, DEV, "orders", "phone", "pii.phone", false),
        (&named, DEV, "orders", "phone", "pii.phone", true),
        (&named, DEV, "orders", "phone", "pii.email", false),
        (&named, PROD, "orders", "phone", "pii.phone", false),
        (&placed, PROD, "any", "thing", "", true),
        (&placed, DEV, "any", "thing", "", false),
    ];
    for (caller, place, table, name, class, expected) in cases {
        let decision =
            engine.may_unmask(caller, &plain_read(), &column(&place, table, name, class));
        assert_eq!(
            decision.allowed, expected,
            "{caller:?} {place:?} {table}.{name} ({class}): {decision:?}"
        );
    }
}

#[test]
fn unmask_fails_closed() {
    // A forbid that errors while evaluating: Cedar would skip it and allow.
    let text = r#"
@id("all") permit (principal, action, resource);
@id("overflows") forbid (principal, action == Action::"unmask", resource) when { 9223372036854775807 + 1 > 0 };
"#;
    let engine = load_text(text).unwrap();
    let reader = who(PrincipalKind::Human, &["pii-readers"]);
    let email = column(&DEV, "customers", "email", "pii.email");
    let decision = engine.may_unmask(&reader, &plain_read(), &email);
    assert!(!decision.allowed, "{decision:?}");
    assert!(decision.policies.is_empty());
    assert!(
        decision.reasons[0].starts_with("denied because policy could not be evaluated for human `caller-1` to unmask column `email`"),
        "{decision:?}"
    );
    assert!(decision.reasons[0].contains("overflow"), "{decision:?}");
    // Statements are still decided by the set (the erroring forbid is about unmask only).
    assert_eq!(
        effect(&engine, &reader, &plain_read(), &DEV, false),
        Effect::Allow
    );

    // A permit that errors permits nothing.
    let engine = load_text(
        "@id(\"overflows\") permit (principal, action, resource) when { 9223372036854775807 + 1 > 0 };",
    )
    .unwrap();
    assert!(!engine.may_unmask(&reader, &plain_read(), &email).allowed);

    // Odd names stay entity ids: a quote or slash cannot reach another column.
    let engine = load_text(
        "@id(\"one\") permit (principal, action == Action::\"unmask\", resource == Column::\"shop/customers/email\");",
    )
    .unwrap();
    for odd in ["email\" || true", "email/", "\"email\""] {
        let decision = engine.may_unmask(
            &reader,
            &plain_read(),
            &column(&DEV, "customers", odd, "pii.email"),
        );
        assert!(!decision.allowed, "{odd}: {decision:?}");
    }
    assert!(engine.may_unmask(&reader, &plain_read(), &email).allowed);
}

#[test]
fn unmask_follows_reloads_and_keeps_the_set_when_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    let grant = "@id(\"grant\") @reason(\"pii readers\")\npermit (principal in Group::\"pii-readers\", action == Action::\"unmask\", resource);\n";
    let path = write(&dir, "p.cedar", grant);
    let engine = engine_from(std::slice::from_ref(&path)).unwrap();
    let reader = who(PrincipalKind::Human, &["pii-readers"]);
    let email = column(&PROD, "customers", "email", "pii.email");
    let allowed = || engine.may_unmask(&reader, &plain_read(), &email).allowed;
    assert!(allowed());

    // A broken file: the error is returned and the grant stays.
    std::fs::write(&path, "@id(\"grant\") permit (principal, action == Action::\"unmask\", resource) when { resource.clasification == \"x\" };").unwrap();
    let error = engine.reload().unwrap_err();
    assert!(error.to_string().contains("clasification"), "{error}");
    assert!(allowed());

    // A new set that forbids it takes effect at once, although the store is remembered.
    std::fs::write(&path, format!("{grant}@id(\"no-prod\") @reason(\"not in prod\")\nforbid (principal, action, resource in Environment::\"prod\");\n")).unwrap();
    assert_eq!(engine.reload().unwrap(), 2);
    let decision = engine.may_unmask(&reader, &plain_read(), &email);
    assert!(!decision.allowed, "{decision:?}");
    assert_eq!(decision.policies, ["no-prod"]);
    assert_eq!(decision.reasons, ["not in prod"]);
    // And back.
    std::fs::write(&path, grant).unwrap();
    assert_eq!(engine.reload().unwrap(), 1);
    assert!(allowed());
}

#[test]
fn unmask_answers_are_remembered_per_question_and_share_statement_stores() {
    let engine = built_in();
    let reader = who(PrincipalKind::Human, &["pii-readers"]);
    let agent = who(PrincipalKind::Agent, &["pii-readers"]);
    let read = plain_read();
    let several = intent(
        &[(Action::Select, on("customers"))],
        Flags {
            multiple_statements: true,
            ..Flags::default()
        },
    );
    let email = column(&PROD, "customers", "email", "pii.email");
    // Same column name, another class.
    let secret = column(&PROD, "customers", "email", "secret.token");
    // Same column, another datasource.
    let elsewhere = column(&DEV, "customers", "email", "pii.email");
    engine.decide(&reader, &read, &PROD, false);
    for _ in 0..3 {
        assert!(engine.may_unmask(&reader, &read, &email).allowed);
        assert!(!engine.may_unmask(&reader, &read, &secret).allowed);
        assert!(engine.may_unmask(&reader, &read, &elsewhere).allowed);
        assert!(!engine.may_unmask(&agent, &read, &email).allowed);
        assert!(!engine.may_unmask(&reader, &several, &email).allowed);
    }
    assert_eq!(engine.model.answers_remembered(), 5);
    // Unmasking uses the caller's store of the column's table, the one the statement on
    // that table used: reader and agent in prod, reader in dev.
    assert_eq!(engine.model.stores_remembered(), 3);

    // A failed evaluation is not remembered.
    let failing = load_text(
        "@id(\"overflows\") permit (principal, action, resource) when { 9223372036854775807 + 1 > 0 };",
    )
    .unwrap();
    assert!(!failing.may_unmask(&reader, &read, &email).allowed);
    assert_eq!(failing.model.answers_remembered(), 0);
}

/// A rough timing of `may_unmask` against the built-in set, for a caller asking about the
/// same column again (store and context remembered) and about new columns; the criterion
/// benchmark in benches/decide.rs is the real measurement. Run with
/// `cargo test --release --lib policy::tests::unmask_timing -- --nocapture`.
#[test]
fn unmask_timing() {
    let engine = built_in();
    let reader = Principal::for_tests("alice", PrincipalKind::Human, &["pii-readers", "eng"], None);
    let read = plain_read();
    let email = column(&PROD, "customers", "email", "pii.email");
    for _ in 0..500 {
        engine.may_unmask(&reader, &read, &email);
    }
    let rounds: u32 = 5_000;
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        assert!(engine.may_unmask(&reader, &read, &email).allowed);
    }
    println!(
        "may_unmask, built-in set, same column: {:?}",
        started.elapsed() / rounds
    );

    let names: Vec<String> = (0..rounds).map(|i| format!("column_{i}")).collect();
    let started = std::time::Instant::now();
    for name in &names {
        let fresh = column(&PROD, "customers", name, "pii.email");
        assert!(engine.may_unmask(&reader, &read, &fresh).allowed);
    }
    println!(
        "may_unmask, built-in set, new column: {:?}",
        started.elapsed() / rounds
    );
}
