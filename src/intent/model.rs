//! The vocabulary of an [`Intent`]: what one statement does, to which tables, with which
//! risk flags. Policy decides on these values; nothing downstream looks at SQL text again.

use serde::Serialize;

/// What a statement does. One statement may carry several: `INSERT INTO a SELECT … FROM b`
/// is an insert into `a` and a select from `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Select,
    Insert,
    Update,
    Delete,
    Merge,
    Create,
    Alter,
    Drop,
    Truncate,
    /// GRANT, REVOKE, CREATE/ALTER/DROP ROLE or USER, ownership changes.
    Grant,
    /// Maintenance and server administration: VACUUM, ANALYZE, REINDEX, CHECKPOINT,
    /// CLUSTER, KILL, FLUSH, OPTIMIZE, LOAD DATA, COPY, …
    Admin,
    /// Anything that changes the session or transaction state: SET, RESET, SET ROLE,
    /// BEGIN/COMMIT/ROLLBACK, USE, PRAGMA that writes, ATTACH/DETACH, LISTEN, PREPARE, …
    Session,
}

impl Action {
    pub const ALL: [Action; 12] = [
        Action::Select,
        Action::Insert,
        Action::Update,
        Action::Delete,
        Action::Merge,
        Action::Create,
        Action::Alter,
        Action::Drop,
        Action::Truncate,
        Action::Grant,
        Action::Admin,
        Action::Session,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Select => "select",
            Action::Insert => "insert",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Merge => "merge",
            Action::Create => "create",
            Action::Alter => "alter",
            Action::Drop => "drop",
            Action::Truncate => "truncate",
            Action::Grant => "grant",
            Action::Admin => "admin",
            Action::Session => "session",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a statement touches a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
}

/// A table as the statement names it, normalised so that one table has one name:
/// unquoted identifiers are folded to lower case (PostgreSQL folds them; MariaDB and
/// SQLite compare table names case-insensitively on this platform's defaults), quoted
/// identifiers keep their case, and a qualified name keeps its qualifier
/// (`analytics.events`). PostgreSQL's default schema is not added: `orders` and
/// `public.orders` are reported as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TableName(String);

impl TableName {
    pub fn new(normalised: impl Into<String>) -> TableName {
        TableName(normalised.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One table the statement touches, with the strongest access it needs (write wins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableAccess {
    pub table: TableName,
    pub access: Access,
}

/// One (action, table) pair that policy evaluates. `table` is `None` for actions on no
/// table (`SELECT 1`, `SET …`, `VACUUM`), which policy evaluates against the datasource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Target {
    pub action: Action,
    pub table: Option<TableName>,
}

/// A column the statement references, with the table it resolves to when that is known.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ColumnRef {
    pub table: Option<TableName>,
    pub column: String,
}

/// Risk flags. Each is a fact about the statement, not a judgement: policy decides what
/// they mean per environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Flags {
    /// UPDATE or DELETE with no WHERE, or with one that is constant-true (`1=1`, `true`,
    /// `'a'='a'`, `1`, `NOT false`, `1=1 OR x=2`).
    pub unbounded: bool,
    /// A CTE whose body writes (`WITH d AS (DELETE … RETURNING …) SELECT …`).
    pub data_modifying_cte: bool,
    /// `SELECT … INTO` (creates a table, or on MariaDB writes variables/files).
    pub select_into: bool,
    /// `FOR UPDATE`, `FOR SHARE`, `LOCK IN SHARE MODE`, … or LOCK TABLE.
    pub locking: bool,
    /// Calls of deny-listed functions (file, process, network, session-setting, lock,
    /// sleep, large-object), by lower-case unqualified name, sorted and unique.
    pub denied_functions: Vec<String>,
    /// EXPLAIN ANALYZE (which executes the statement) of a statement that writes.
    pub explain_analyze_write: bool,
    /// `INTO OUTFILE` / `INTO DUMPFILE` / `COPY … TO/FROM PROGRAM|file`.
    pub file_access: bool,
    /// The text held more than one statement.
    pub multiple_statements: bool,
    /// Why the statement could not be classified, when it could not: refused by policy.
    pub unclassified: Option<String>,
}

/// What one statement intends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Intent {
    /// The statement's leading keyword(s), upper case, for people: `SELECT`, `INSERT`,
    /// `CREATE TABLE`, `SET`, …
    pub statement: String,
    /// Every action, sorted and unique.
    pub actions: Vec<Action>,
    /// Every table touched, sorted by name.
    pub tables: Vec<TableAccess>,
    /// Every (action, table) pair policy evaluates, sorted and unique.
    pub targets: Vec<Target>,
    /// Referenced columns, sorted and unique (best effort: `*` is reported as `*`).
    pub columns: Vec<ColumnRef>,
    pub flags: Flags,
}

impl Intent {
    /// True when the statement only reads: every action is `select` and no flag makes it
    /// more than a read (locking, SELECT INTO, writing CTE, denied function, file access,
    /// several statements, unclassified). Such statements run on the read-only pool; all
    /// others need the write pool and an explicit allow.
    pub fn is_read_only(&self) -> bool {
        self.actions.iter().all(|a| *a == Action::Select)
            && !self.flags.locking
            && !self.flags.select_into
            && !self.flags.data_modifying_cte
            && self.flags.denied_functions.is_empty()
            && !self.flags.explain_analyze_write
            && !self.flags.file_access
            && !self.flags.multiple_statements
            && self.flags.unclassified.is_none()
    }
}
