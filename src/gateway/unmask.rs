//! Cedar `unmask` answers for one request, asked once per (table, column, class).
//!
//! A statement's masking plan asks the same question for every output column that derives
//! from a source column, and again for its predicates; policy answers are pure for a
//! request, so they are remembered for its duration and never longer (a policy reload
//! applies to the next request).

use std::collections::HashMap;

use crate::datasource::Datasource;
use crate::identity::Principal;
use crate::intent::{Action, Flags, Intent};
use crate::masking::Classification;
use crate::policy::{ColumnResource, PolicyEngine};

pub(super) struct Unmask<'a> {
    policy: &'a PolicyEngine,
    principal: &'a Principal,
    intent: &'a Intent,
    datasource: &'a Datasource,
    answers: HashMap<(String, String, Classification), bool>,
}

impl<'a> Unmask<'a> {
    pub(super) fn new(
        policy: &'a PolicyEngine,
        principal: &'a Principal,
        intent: &'a Intent,
        datasource: &'a Datasource,
    ) -> Unmask<'a> {
        Unmask {
            policy,
            principal,
            intent,
            datasource,
            answers: HashMap::new(),
        }
    }

    /// Whether the caller may see `class` raw in `table.column`.
    pub(super) fn allows(&mut self, table: &str, column: &str, class: Classification) -> bool {
        let key = (table.to_owned(), column.to_owned(), class);
        if let Some(answer) = self.answers.get(&key) {
            return *answer;
        }
        let decision = self.policy.may_unmask(
            self.principal,
            self.intent,
            &ColumnResource {
                datasource: self.datasource.name().as_str(),
                environment: self.datasource.environment().as_str(),
                table,
                column,
                classification: class.as_str(),
            },
        );
        self.answers.insert(key, decision.allowed);
        decision.allowed
    }
}

/// The intent `unmask` is asked in when there is no statement (the schema endpoint): a
/// plain read with no risk flags, so the answer is what a simple SELECT would get.
pub(super) fn plain_read() -> Intent {
    Intent {
        statement: "SELECT".to_owned(),
        actions: vec![Action::Select],
        tables: Vec::new(),
        targets: Vec::new(),
        columns: Vec::new(),
        flags: Flags::default(),
    }
}
