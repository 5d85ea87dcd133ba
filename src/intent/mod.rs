//! SQL text → [`Intent`]: what one statement does.
//!
//! The parser is the first wall, not the only one (the read pool's connections are held
//! read-only by the database itself). Gatehouse runs only what it understands: text that
//! does not parse with the datasource's dialect, or that holds more than one statement, is
//! refused before it reaches a database.
//!
//! This module currently answers one question, "is this a plain read?", which is all the
//! query path needs until the policy module classifies every action and table.

mod model;

pub use model::{Access, Action, ColumnRef, Flags, Intent as StatementIntent, TableAccess, TableName, Target};

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, ObjectName, Query, Select, Statement, TableFactor, Visit, Visitor};
use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use crate::datasource::Driver;

/// Functions a read must never call, whatever the policy: they reach the file system,
/// other processes or the network, change session settings (a caller could switch the
/// read-only setting of a pooled connection off with `set_config`), take locks, or sleep.
/// Matched on the unqualified, lower-cased name; a trailing `*` matches a prefix.
const DENIED_FUNCTIONS: &[&str] = &[
    // PostgreSQL
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_*",
    "pg_stat_file",
    "pg_file_write",
    "lo_*",
    "dblink*",
    "set_config",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_sleep*",
    "pg_advisory_*",
    "pg_try_advisory_*",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_create_*_replication_slot",
    "pg_drop_replication_slot",
    "pg_logical_emit_message",
    "pg_notify",
    "query_to_xml*",
    // MariaDB / MySQL
    "load_file",
    "sleep",
    "benchmark",
    "get_lock",
    "release_lock",
    "release_all_locks",
    "is_free_lock",
    "is_used_lock",
    "master_pos_wait",
    "source_pos_wait",
    // SQLite
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
];

/// What one statement intends, as far as the query path needs to know today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// Why the statement is not a plain read; empty when it is one.
    not_read_reasons: Vec<String>,
}

impl Intent {
    /// A plain read: one query that neither writes (directly or through a CTE), nor
    /// creates a table (`SELECT … INTO`), nor locks rows, nor calls a denied function.
    pub fn is_plain_read(&self) -> bool {
        self.not_read_reasons.is_empty()
    }

    /// Human-readable reasons the statement is not a plain read.
    pub fn not_read_reasons(&self) -> &[String] {
        &self.not_read_reasons
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntentError {
    #[error("the statement is empty")]
    Empty,
    #[error("the statement does not parse as {dialect} SQL: {message}")]
    Unparseable {
        dialect: &'static str,
        message: String,
    },
    #[error("the request holds {count} statements; send exactly one statement per request")]
    MultipleStatements { count: usize },
}

/// Parses `sql` with the dialect of `driver` and classifies the one statement it holds.
pub fn analyze(driver: Driver, sql: &str) -> Result<Intent, IntentError> {
    let (dialect, dialect_name): (&dyn Dialect, &'static str) = match driver {
        Driver::Postgres => (&PostgreSqlDialect {}, "PostgreSQL"),
        Driver::MySql => (&MySqlDialect {}, "MySQL/MariaDB"),
        Driver::Sqlite => (&SQLiteDialect {}, "SQLite"),
    };
    let statements = Parser::parse_sql(dialect, sql).map_err(|e| IntentError::Unparseable {
        dialect: dialect_name,
        message: e.to_string(),
    })?;
    let statement = match statements.as_slice() {
        [] => return Err(IntentError::Empty),
        [one] => one,
        many => return Err(IntentError::MultipleStatements { count: many.len() }),
    };
    let mut classifier = ReadClassifier::default();
    let _ = statement.visit(&mut classifier);
    Ok(Intent {
        not_read_reasons: classifier.reasons,
    })
}

/// Walks every node of the statement (nested queries, CTEs, expressions) and records each
/// reason the statement is not a plain read.
#[derive(Default)]
struct ReadClassifier {
    reasons: Vec<String>,
}

impl ReadClassifier {
    fn note(&mut self, reason: String) {
        if !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }

    fn check_function(&mut self, name: &ObjectName) {
        let Some(last) = name.0.last().and_then(|part| part.as_ident()) else {
            return;
        };
        let function = last.value.to_ascii_lowercase();
        let denied = DENIED_FUNCTIONS
            .iter()
            .any(|pattern| match pattern.split_once('*') {
                Some((prefix, suffix)) => {
                    function.starts_with(prefix)
                        && function.ends_with(suffix)
                        && function.len() >= prefix.len() + suffix.len()
                }
                None => function == *pattern,
            });
        if denied {
            self.note(format!("calls the denied function `{function}`"));
        }
    }
}

impl Visitor for ReadClassifier {
    type Break = ();

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<()> {
        match statement {
            Statement::Query(_) => {}
            // Statements nested in a query are writes inside a CTE (`WITH d AS (DELETE …)`).
            other => {
                let keyword = other
                    .to_string()
                    .split_whitespace()
                    .next()
                    .unwrap_or("statement")
                    .to_ascii_uppercase();
                self.note(format!("is a {keyword} statement, not a read"));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if !query.locks.is_empty() {
            self.note("locks rows (FOR UPDATE/SHARE)".to_owned());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        if select.into.is_some() {
            self.note("creates a table (SELECT … INTO)".to_owned());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if let Expr::Function(function) = expr {
            self.check_function(&function.name);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            }
            | TableFactor::Function { name, .. } => self.check_function(name),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(driver: Driver, sql: &str) -> bool {
        analyze(driver, sql).unwrap().is_plain_read()
    }

    #[test]
    fn plain_reads() {
        for sql in [
            "SELECT 1",
            "SELECT id, email FROM customers WHERE id = $1",
            "WITH t AS (SELECT * FROM orders) SELECT count(*) FROM t",
            "SELECT * FROM a JOIN b ON a.id = b.a_id UNION SELECT * FROM c",
            "SELECT (SELECT max(id) FROM orders) AS m",
        ] {
            assert!(read(Driver::Postgres, sql), "{sql}");
        }
        assert!(read(Driver::MySql, "SELECT `id` FROM t WHERE x = ?"));
        assert!(read(Driver::Sqlite, "SELECT * FROM customers LIMIT 5"));
    }

    #[test]
    fn writes_and_hidden_writes_are_not_reads() {
        for sql in [
            "INSERT INTO t VALUES (1)",
            "UPDATE t SET x = 1",
            "DELETE FROM t",
            "DROP TABLE t",
            "CREATE TABLE t (x int)",
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            "SELECT * INTO t2 FROM t",
            "SELECT * FROM t FOR UPDATE",
            "SET default_transaction_read_only = off",
            "SELECT set_config('default_transaction_read_only', 'off', false)",
            "SELECT pg_sleep(10)",
            "SELECT * FROM pg_ls_dir('.')",
            "SELECT pg_catalog.pg_read_file('/etc/passwd')",
            "SELECT lo_export(1, '/tmp/x')",
            "SELECT x FROM t WHERE y IN (SELECT dblink_exec('x'))",
        ] {
            assert!(!read(Driver::Postgres, sql), "{sql}");
        }
        assert!(!read(Driver::MySql, "SELECT SLEEP(5)"));
        assert!(!read(Driver::MySql, "SELECT LOAD_FILE('/etc/passwd')"));
        assert!(!read(Driver::Sqlite, "SELECT load_extension('x')"));
        assert!(!read(Driver::Sqlite, "PRAGMA query_only = 0"));
        assert!(!read(Driver::Sqlite, "ATTACH DATABASE 'x.db' AS x"));
    }

    #[test]
    fn refuses_what_it_cannot_parse_or_multiple_statements() {
        assert_eq!(analyze(Driver::Postgres, "   "), Err(IntentError::Empty));
        assert!(matches!(
            analyze(Driver::Postgres, "SELEC 1"),
            Err(IntentError::Unparseable { .. })
        ));
        assert_eq!(
            analyze(Driver::Postgres, "SELECT 1; DROP TABLE t"),
            Err(IntentError::MultipleStatements { count: 2 })
        );
    }

    #[test]
    fn reasons_name_the_problem() {
        let intent = analyze(Driver::Postgres, "SELECT pg_sleep(1)").unwrap();
        assert_eq!(
            intent.not_read_reasons(),
            ["calls the denied function `pg_sleep`"]
        );
    }
}
