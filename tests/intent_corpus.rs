//! The intent corpus: every statement of `tests/fixtures/intent/corpus.toml` goes through
//! `intent::analyze` and is compared with the intent written next to it. All mismatches are
//! reported, each with its statement, before the test fails, so a failing corpus can be
//! fixed in one pass. No database is needed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use gatehouse::datasource::Driver;
use gatehouse::intent::{self, Access, Intent, IntentError};
use serde::Deserialize;

const CORPUS: &str = "tests/fixtures/intent/corpus.toml";

/// The boolean flags, as the corpus names them.
const FLAG_NAMES: [&str; 8] = [
    "unbounded",
    "data_modifying_cte",
    "select_into",
    "locking",
    "explain_analyze_write",
    "file_access",
    "multiple_statements",
    "unclassified",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    dialect: Dialect,
    sql: String,
    actions: Option<Vec<String>>,
    tables: Option<BTreeMap<String, String>>,
    flags: Option<Vec<String>>,
    #[serde(default)]
    denied: Vec<String>,
    targets: Option<Vec<String>>,
    error: Option<ExpectedError>,
    /// Why the case is there, for people.
    #[serde(default)]
    #[expect(dead_code, reason = "read by people, not by the test")]
    note: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
enum Dialect {
    Postgres,
    Mariadb,
    Sqlite,
}

impl Dialect {
    fn driver(self) -> Driver {
        match self {
            Dialect::Postgres => Driver::Postgres,
            Dialect::Mariadb => Driver::MySql,
            Dialect::Sqlite => Driver::Sqlite,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum ExpectedError {
    Unparseable,
    Empty,
}

fn load() -> Corpus {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(CORPUS);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    toml::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not a valid corpus: {e}", path.display()))
}

#[test]
fn every_corpus_statement_has_the_expected_intent() {
    let corpus = load();
    let mut failures = Vec::new();
    for (index, case) in corpus.case.iter().enumerate() {
        let problems = check(case);
        if !problems.is_empty() {
            let mut report = format!(
                "case {} ({:?}): {}\n",
                index + 1,
                case.dialect,
                case.sql.escape_debug()
            );
            for problem in problems {
                let _ = writeln!(report, "    {problem}");
            }
            failures.push(report);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases differ from their expected intent:\n\n{}",
        failures.len(),
        corpus.case.len(),
        failures.join("\n")
    );
}

#[test]
fn the_corpus_is_big_enough_and_covers_every_action_and_flag() {
    let corpus = load();
    assert!(corpus.case.len() >= 300, "only {} cases", corpus.case.len());
    let mut per_dialect: BTreeMap<Dialect, usize> = BTreeMap::new();
    let mut actions = BTreeSet::new();
    let mut flags = BTreeSet::new();
    let mut errors = BTreeSet::new();
    for case in &corpus.case {
        *per_dialect.entry(case.dialect).or_default() += 1;
        actions.extend(case.actions.iter().flatten().cloned());
        flags.extend(case.flags.iter().flatten().cloned());
        if !case.denied.is_empty() {
            flags.insert("denied".to_owned());
        }
        if let Some(error) = case.error {
            errors.insert(format!("{error:?}"));
        }
    }
    assert_eq!(per_dialect.len(), 3, "{per_dialect:?}");
    assert!(per_dialect.values().all(|n| *n >= 80), "{per_dialect:?}");
    for action in intent::Action::ALL {
        assert!(
            actions.contains(action.as_str()),
            "no case has the action {action}"
        );
    }
    for flag in FLAG_NAMES.iter().chain(&["denied"]) {
        assert!(flags.contains(*flag), "no case sets the flag {flag}");
    }
    assert_eq!(errors.len(), 2, "{errors:?}");
}

/// Everything about one case that differs from its expectation.
fn check(case: &Case) -> Vec<String> {
    let result = intent::analyze(case.dialect.driver(), &case.sql);
    let intent = match (&case.error, result) {
        (Some(expected), Err(error)) => {
            let actual = match error {
                IntentError::Empty => ExpectedError::Empty,
                IntentError::Unparseable { .. } => ExpectedError::Unparseable,
            };
            return if actual == *expected {
                Vec::new()
            } else {
                vec![format!("expected error {expected:?}, got: {error}")]
            };
        }
        (Some(expected), Ok(intent)) => {
            return vec![format!(
                "expected error {expected:?}, got an intent: {}",
                describe(&intent)
            )];
        }
        (None, Err(error)) => return vec![format!("expected an intent, got: {error}")],
        (None, Ok(intent)) => intent,
    };

    let mut problems = Vec::new();
    let (Some(actions), Some(tables), Some(flags)) = (&case.actions, &case.tables, &case.flags)
    else {
        return vec!["a case without `error` needs `actions`, `tables` and `flags`".to_owned()];
    };

    let expected: BTreeSet<&str> = actions.iter().map(String::as_str).collect();
    let actual: BTreeSet<&str> = intent.actions.iter().map(|a| a.as_str()).collect();
    if expected != actual {
        problems.push(format!("actions: expected {expected:?}, got {actual:?}"));
    }

    let expected: BTreeMap<&str, &str> = tables
        .iter()
        .map(|(name, access)| (name.as_str(), access.as_str()))
        .collect();
    let actual: BTreeMap<&str, &str> = intent
        .tables
        .iter()
        .map(|t| {
            let access = match t.access {
                Access::Read => "read",
                Access::Write => "write",
            };
            (t.table.as_str(), access)
        })
        .collect();
    if expected != actual {
        problems.push(format!("tables: expected {expected:?}, got {actual:?}"));
    }

    for flag in flags {
        if !FLAG_NAMES.contains(&flag.as_str()) {
            problems.push(format!("unknown flag {flag:?} in the corpus"));
        }
    }
    let expected: BTreeSet<&str> = flags.iter().map(String::as_str).collect();
    let actual = set_flags(&intent);
    if expected != actual {
        problems.push(format!("flags: expected {expected:?}, got {actual:?}"));
    }

    let expected: BTreeSet<&str> = case.denied.iter().map(String::as_str).collect();
    let actual: BTreeSet<&str> = intent
        .flags
        .denied_functions
        .iter()
        .map(String::as_str)
        .collect();
    if expected != actual {
        problems.push(format!(
            "denied functions: expected {expected:?}, got {actual:?}"
        ));
    }

    if let Some(targets) = &case.targets {
        let expected: BTreeSet<String> = targets.iter().cloned().collect();
        let actual: BTreeSet<String> = intent.targets.iter().map(target).collect();
        if expected != actual {
            problems.push(format!("targets: expected {expected:?}, got {actual:?}"));
        }
    }

    // Whatever else it is, a statement the pools would run read-only has only reads.
    if intent.is_read_only() && intent.tables.iter().any(|t| t.access == Access::Write) {
        problems.push("read-only, yet it writes a table".to_owned());
    }
    problems
}

fn set_flags(intent: &Intent) -> BTreeSet<&'static str> {
    let flags = &intent.flags;
    let values = [
        flags.unbounded,
        flags.data_modifying_cte,
        flags.select_into,
        flags.locking,
        flags.explain_analyze_write,
        flags.file_access,
        flags.multiple_statements,
        flags.unclassified.is_some(),
    ];
    FLAG_NAMES
        .iter()
        .zip(values)
        .filter(|(_, set)| *set)
        .map(|(name, _)| *name)
        .collect()
}

fn target(target: &intent::Target) -> String {
    match &target.table {
        Some(table) => format!("{}:{table}", target.action),
        None => target.action.to_string(),
    }
}

fn describe(intent: &Intent) -> String {
    let targets: Vec<String> = intent.targets.iter().map(target).collect();
    format!("{} {targets:?} {:?}", intent.statement, set_flags(intent))
}
