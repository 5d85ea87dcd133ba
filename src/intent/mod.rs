//! SQL text → [`Intent`]: what a statement does, to which tables, with which risks.
//!
//! The parser is the first wall, not the only one (the read pool's connections are held
//! read-only by the database itself). Gatehouse runs only what it understands: text that
//! does not parse with the datasource's dialect is an [`IntentError`]; a statement that
//! parses but that this module does not classify comes back with
//! [`Flags::unclassified`] set, which policy denies. Nothing is ever guessed to be a read.
//!
//! # How statements are classified
//!
//! Actions follow the docs on [`Action`]. The decisions worth knowing:
//! - **Tables and targets.** Every table read or written, through joins, subqueries (in
//!   FROM, WHERE, the select list, HAVING, …), CTEs, set operations, INSERT … SELECT,
//!   UPDATE … FROM, multi-table UPDATE/DELETE, MERGE and views (a view is a table name).
//!   A CTE name is not a table, with SQL's scoping: a non-recursive CTE sees only the CTEs
//!   before it, so `WITH orders AS (SELECT * FROM orders)` reads the table `orders`. The
//!   target of INSERT/UPDATE/DELETE/MERGE is always a table, never a CTE. Table-valued
//!   functions (`generate_series(…)`, `json_each(…)`) are not tables. `targets` holds
//!   `(action, table)` for every table, leaving out the `select` of a table the statement
//!   also writes, plus `(action, None)` for each action that touched no table
//!   (`SELECT 1`, `SET …`, `VACUUM`). `actions` are exactly the actions of `targets`.
//! - **Upserts.** `INSERT … ON CONFLICT DO UPDATE` and `ON DUPLICATE KEY UPDATE` are insert
//!   and update; `REPLACE` and `INSERT OR REPLACE` are insert and delete (they delete the
//!   conflicting row).
//! - **DDL objects.** CREATE/ALTER/DROP/TRUNCATE name the table, view or sequence they act
//!   on. An index is reported as its table (`CREATE INDEX i ON t` is create on `t`) when the
//!   statement names it, else by the index name as written (`DROP INDEX i`). Schemas,
//!   databases, functions, procedures, extensions, types, domains and triggers are reported
//!   by their own name as the `table` (`CREATE SCHEMA s` is create on `s`); a trigger or row
//!   policy is also an alter of the table it is on, and a rename alters both names.
//!   `CREATE TABLE … AS SELECT` is create on the new table plus select on its sources.
//!   Roles, users and ownership (`ALTER … OWNER TO`) are grant.
//! - **EXPLAIN.** Plain EXPLAIN does not run its statement: it is a select of every table
//!   the statement names, with no write and none of its execution flags (a planned DELETE
//!   is not unbounded). EXPLAIN ANALYZE runs it, so it carries the statement's own actions
//!   and flags, and `explain_analyze_write` when that statement writes.
//! - **PRAGMA (SQLite).** Querying a setting or the schema (`PRAGMA foreign_keys`,
//!   `PRAGMA table_info('t')`) is select; setting a value (`PRAGMA x = v`, or the call form
//!   of a setting) is session; `optimize`, `wal_checkpoint`, `incremental_vacuum` and
//!   `shrink_memory` are admin. A pragma not known to be a query counts as session.
//! - **CALL** is admin on the procedure's name: a procedure can do anything its owner may.
//! - **Session.** SET, RESET, transactions and savepoints, USE, PREPARE/EXECUTE/DEALLOCATE,
//!   cursors, DISCARD, LISTEN/NOTIFY, LOAD, LOCK TABLE(S) (with `locking`), ATTACH/DETACH
//!   (ATTACH also `file_access`: it opens a file on the server). MariaDB `SELECT … INTO @v`
//!   is session (and `select_into`); PostgreSQL's `SELECT … INTO t` is create on `t`.
//! - **Admin.** VACUUM, ANALYZE, OPTIMIZE, KILL, FLUSH, LOAD DATA, COPY (and `file_access`
//!   for a file or program; COPY TO reads its table, COPY FROM writes it), CALL.
//! - **Several statements** are not an error: each is classified, the intent is their
//!   union and `multiple_statements` is set (policy denies it, explain shows what was in
//!   there).
//!
//! Lexical traps are refused before parsing: MariaDB runs the inside of `/*M! … */`
//! comments, which sqlparser skips; and a backslash before a quote inside a string reads
//! differently under MariaDB's `NO_BACKSLASH_ESCAPES`/`ANSI_QUOTES` modes or PostgreSQL's
//! `standard_conforming_strings = off`, so where a string ends would depend on a server
//! setting. MySQL's `/*! … */` comments are parsed as the code they are.

mod classify;
mod constant;
mod denied;
mod fingerprint;
mod model;
mod names;

pub use fingerprint::fingerprint;
pub use model::{Access, Action, ColumnRef, Flags, Intent, TableAccess, TableName, Target};

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{Expr, ObjectName, Statement, TableFactor, Visit, Visitor};
use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};

use crate::datasource::Driver;
use classify::Classifier;

/// Why a text could not be turned into an [`Intent`]. Messages speak to the caller: they
/// say what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntentError {
    #[error("the request holds no SQL statement (only whitespace or comments); send one statement")]
    Empty,
    #[error(
        "the statement does not parse as {dialect} SQL: {message}; gatehouse runs only \
         statements it can parse, so rewrite it in this datasource's dialect"
    )]
    Unparseable {
        dialect: &'static str,
        message: String,
    },
}

/// Parses `sql` with the dialect of `driver` and classifies what it intends.
pub fn analyze(driver: Driver, sql: &str) -> Result<Intent, IntentError> {
    let statements = parse(driver, sql)?;
    Ok(analyze_statements(driver, &statements))
}

/// Parses `sql` with the dialect of `driver`, refusing the lexical traps described in the
/// module docs. Never empty. The pipeline parses once and hands the statements to both
/// [`analyze_statements`] and masking's column lineage.
pub fn parse(driver: Driver, sql: &str) -> Result<Vec<Statement>, IntentError> {
    let (dialect, dialect_name): (&dyn Dialect, &'static str) = match driver {
        Driver::Postgres => (&PostgreSqlDialect {}, "PostgreSQL"),
        Driver::MySql => (&MySqlDialect {}, "MariaDB/MySQL"),
        Driver::Sqlite => (&SQLiteDialect {}, "SQLite"),
    };
    let unparseable = |message: String| IntentError::Unparseable {
        dialect: dialect_name,
        message,
    };
    let tokens = tokens(driver, dialect, sql).map_err(unparseable)?;
    let statements = Parser::new(dialect)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(|e| {
            let message = e.to_string();
            unparseable(
                message
                    .strip_prefix("sql parser error: ")
                    .unwrap_or(&message)
                    .to_owned(),
            )
        })?;
    if statements.is_empty() {
        return Err(IntentError::Empty);
    }
    Ok(statements)
}

/// A table name as written in a statement, normalised the way [`TableName`] says.
pub fn table_name(driver: Driver, name: &ObjectName) -> TableName {
    names::table(driver, name)
}

/// One identifier (a column, alias or CTE name), folded as `driver` folds it: PostgreSQL
/// lower-cases unquoted identifiers, MariaDB and SQLite fold all of them.
pub fn identifier(driver: Driver, ident: &sqlparser::ast::Ident) -> String {
    names::ident(driver, ident)
}

/// Classifies what parsed statements intend. `statements` come from [`parse`] with the
/// same `driver`.
pub fn analyze_statements(driver: Driver, statements: &[Statement]) -> Intent {
    let mut classifier = Classifier::new(driver);
    let mut labels = Vec::with_capacity(statements.len());
    let mut sweep = Sweep {
        driver,
        denied: BTreeSet::new(),
        relations: Vec::new(),
    };
    for statement in statements {
        labels.push(classifier.statement(statement));
        let _ = statement.visit(&mut sweep);
    }
    // Cross-check: a relation the walk did not account for is read as a table, so that
    // an unforeseen corner of the AST widens what policy checks instead of hiding it.
    for relation in sweep.relations {
        if !classifier.is_attributed(&relation) {
            classifier.record(Action::Select, relation, Access::Read);
        }
    }

    let targets: Vec<Target> = classifier.targets().into_iter().collect();
    let actions: BTreeSet<Action> = targets.iter().map(|t| t.action).collect();
    let mut flags = std::mem::take(&mut classifier.flags);
    flags.denied_functions = sweep.denied.into_iter().collect();
    flags.multiple_statements = statements.len() > 1;
    flags.unclassified = classifier.unclassified();
    Intent {
        statement: labels.join("; "),
        actions: actions.into_iter().collect(),
        tables: classifier
            .tables()
            .into_iter()
            .map(|(table, access)| TableAccess { table, access })
            .collect(),
        targets,
        columns: classifier.columns(),
        flags,
    }
}

/// Tokenizes `sql` and refuses the lexical traps described in the module docs.
fn tokens(driver: Driver, dialect: &dyn Dialect, sql: &str) -> Result<Vec<TokenWithSpan>, String> {
    let tokens = Tokenizer::new(dialect, sql)
        .tokenize_with_location()
        .map_err(|e| e.to_string())?;
    if driver == Driver::MySql {
        let executable = tokens.iter().any(|t| {
            matches!(&t.token, Token::Whitespace(Whitespace::MultiLineComment(text))
                if text.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("m!")))
        });
        if executable {
            return Err(
                "MariaDB executes the inside of /*M! … */ comments; write that SQL \
                        plainly or remove the comment"
                    .to_owned(),
            );
        }
    }
    if sql.contains('\\') && driver != Driver::Sqlite {
        // Raw (unescaped) tokens show the backslashes as written.
        let raw = Tokenizer::new(dialect, sql)
            .with_unescape(false)
            .tokenize()
            .map_err(|e| e.to_string())?;
        let ambiguous = raw.iter().any(|token| match token {
            Token::SingleQuotedString(body) | Token::NationalStringLiteral(body) => {
                escapes_quote(body, '\'')
            }
            Token::DoubleQuotedString(body) => escapes_quote(body, '"'),
            _ => false,
        });
        if ambiguous {
            return Err(
                "a backslash before a quote inside a string (\\' or \\\") is read \
                        differently depending on server settings (NO_BACKSLASH_ESCAPES, \
                        ANSI_QUOTES, standard_conforming_strings); write a quote inside a \
                        string by doubling it, as in 'O''Brien'"
                    .to_owned(),
            );
        }
    }
    Ok(tokens)
}

/// Whether a raw string body holds a backslash-escaped `quote`, or ends in an unpaired
/// backslash (which escaped the closing quote under the other reading).
fn escapes_quote(body: &str, quote: char) -> bool {
    let mut backslashes = 0usize;
    for c in body.chars() {
        if c == quote && backslashes % 2 == 1 {
            return true;
        }
        backslashes = if c == '\\' { backslashes + 1 } else { 0 };
    }
    backslashes % 2 == 1
}

/// One pass over the whole statement, independent of the hand walk: every call of a
/// deny-listed function wherever it sits, and every relation, for the cross-check.
struct Sweep {
    driver: Driver,
    denied: BTreeSet<String>,
    relations: Vec<TableName>,
}

impl Sweep {
    fn check(&mut self, function: &ObjectName) {
        if let Some(last) = function.0.last().and_then(|part| part.as_ident()) {
            let name = last.value.to_lowercase();
            if denied::is_denied(&name) {
                self.denied.insert(name);
            }
        }
    }
}

impl Visitor for Sweep {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::Function(function) => self.check(&function.name),
            // PostgreSQL reads `x.f` as `f(x)`: a denied name in attribute position
            // counts as a call.
            Expr::CompoundIdentifier(parts) if self.driver == Driver::Postgres => {
                if let Some(last) = parts.last() {
                    let name = last.value.to_lowercase();
                    if denied::is_denied(&name) {
                        self.denied.insert(name);
                    }
                }
            }
            _ => {}
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
            | TableFactor::Function { name, .. } => self.check(name),
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<()> {
        if let Statement::Call(function) = statement {
            self.check(&function.name);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        self.relations.push(names::table(self.driver, relation));
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests;
