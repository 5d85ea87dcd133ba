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
    /// CLUSTER, KILL, FLUSH, OPTIMIZE, LOAD DATA, COPY, maintenance PRAGMAs, and CALL (a
    /// procedure can do anything its owner may).
    Admin,
    /// Anything that changes the session or transaction state: SET, RESET, SET ROLE,
    /// BEGIN/COMMIT/ROLLBACK, USE, PRAGMA that sets, ATTACH/DETACH, LISTEN/NOTIFY,
    /// PREPARE/EXECUTE, cursors, LOCK TABLE(S), MariaDB's `SELECT … INTO @var`, …
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

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

/// A table as the statement names it, normalised so that one table has one name, the way
/// its engine compares names:
/// - PostgreSQL folds unquoted identifiers to lower case and keeps quoted ones as written
///   (`Orders` is `orders`, `"Orders"` is `Orders`), and cuts any identifier at 63 bytes
///   as the server does;
/// - MariaDB and SQLite compare table names case-insensitively, so every identifier is
///   folded, quoted or not (`` `Orders` ``, `"ORDERS"`, `[orders]` are all `orders`);
/// - a qualified name keeps its qualifier (`analytics.events`, `shop.orders`,
///   `main.orders`); no default schema is added, so `orders` and `public.orders` are
///   reported as written;
/// - a part that itself holds a `.` or `"` is written in double quotes (`"a.b"`), so it
///   cannot pass for a qualified name.
///
/// DDL on objects that are not tables reports the object's name here (see [`Target`]).
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
///
/// For DDL, `table` is the object acted on: a table, view or sequence; an index's table
/// when the statement names it (`CREATE INDEX i ON t` is `(create, t)`), else the index
/// name (`DROP INDEX i`); and the object's own name for schemas, databases, functions,
/// procedures, extensions, types, domains, triggers and row policies
/// (`CREATE SCHEMA s` is `(create, s)`). A trigger or row policy is also an `alter` of its
/// table; a rename alters both names. CALL is `(admin, procedure)`.
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

/// `table.column`, or `column` where the table is unknown.
impl std::fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.table {
            Some(table) => write!(f, "{table}.{}", self.column),
            None => f.write_str(&self.column),
        }
    }
}

/// Risk flags. Each is a fact about the statement, not a judgement: policy decides what
/// they mean per environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Flags {
    /// UPDATE or DELETE with no WHERE, or with one that is constant-true (`1=1`, `true`,
    /// `'a'='a'`, `1`, `NOT false`, `1=1 OR x=2`), or one that does not depend on the row
    /// and cannot be folded (`$1`, `now() > '2000-01-01'`). A LIMIT does not bound it.
    /// Also MERGE with a constant-true ON and a WHEN MATCHED UPDATE/DELETE.
    pub unbounded: bool,
    /// A CTE (or subquery) whose body writes (`WITH d AS (DELETE … RETURNING …) SELECT …`).
    pub data_modifying_cte: bool,
    /// `SELECT … INTO`: PostgreSQL creates a table (also a `create` target), MariaDB sets
    /// variables (also `session`).
    pub select_into: bool,
    /// `FOR UPDATE`, `FOR SHARE`, `LOCK IN SHARE MODE`, … or LOCK TABLE.
    pub locking: bool,
    /// Calls of deny-listed functions (file, process, network, session-setting, lock,
    /// sleep, large-object), by lower-case unqualified name, sorted and unique.
    pub denied_functions: Vec<String>,
    /// EXPLAIN ANALYZE (which executes the statement) of a statement that writes.
    pub explain_analyze_write: bool,
    /// The server's file system or programs: `COPY … TO/FROM` a file or `PROGRAM`,
    /// `LOAD DATA`, SQLite's `ATTACH`. (MariaDB's `INTO OUTFILE/DUMPFILE` does not parse
    /// and is refused before it gets here.)
    pub file_access: bool,
    /// The text held more than one statement.
    pub multiple_statements: bool,
    /// Why the statement could not be classified, when it could not: refused by policy.
    pub unclassified: Option<String>,
}

impl Flags {
    /// The names of the flags that are set, as APIs report them: `unbounded`,
    /// `data_modifying_cte`, `select_into`, `locking`, `denied_function`,
    /// `explain_analyze_write`, `file_access`, `multiple_statements`, `unclassified`.
    pub fn names(&self) -> Vec<&'static str> {
        [
            ("unbounded", self.unbounded),
            ("data_modifying_cte", self.data_modifying_cte),
            ("select_into", self.select_into),
            ("locking", self.locking),
            ("denied_function", !self.denied_functions.is_empty()),
            ("explain_analyze_write", self.explain_analyze_write),
            ("file_access", self.file_access),
            ("multiple_statements", self.multiple_statements),
            ("unclassified", self.unclassified.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

/// What one statement intends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Intent {
    /// The statement's leading keyword(s), upper case, for people: `SELECT`, `INSERT`,
    /// `CREATE TABLE`, `SET`, …; for several statements, each one's joined by `; `.
    pub statement: String,
    /// Every action, sorted and unique: exactly the actions of `targets`.
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
