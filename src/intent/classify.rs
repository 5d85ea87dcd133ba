//! The walk over one parsed statement: actions, tables with access, columns, flags.
//!
//! Queries, FROM clauses and DML are walked by hand, because scoping decides what a name
//! means: a CTE name is not a table, a non-recursive CTE sees only the CTEs before it
//! (so `WITH orders AS (SELECT * FROM orders)` reads the real `orders`), an alias is not a
//! table, and the target of INSERT/UPDATE/DELETE is always a real table. Everything in
//! between (expressions, join conditions, clauses this walk has no reason to look into) is
//! swept generically with sqlparser's visitor, which hands back the columns it names and
//! the subqueries it holds; each subquery is then walked by hand in the current scope.
//! Nothing reachable is skipped, and `super::analyze` cross-checks the result against every
//! relation the visitor sees anywhere in the statement.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::ControlFlow;

use sqlparser::ast::{
    Assignment, AssignmentTarget, CommentObject, CopySource, CopyTarget, Delete, DescribeAlias,
    Expr, FromTable, GrantObjects, Ident, Insert, Merge, MergeAction, ObjectName, ObjectType,
    OnConflictAction, OnInsert, Query, Select, SelectItem, SelectItemQualifiedWildcardKind,
    SetExpr, SqliteOnConflict, Statement, TableFactor, TableObject, TableWithJoins, Update,
    UpdateTableFromKind, UtilityOption, Value, Visit, Visitor,
};

use super::constant;
use super::model::{Access, Action, ColumnRef, Flags, TableName, Target};
use super::names;
use crate::datasource::Driver;

/// What a table is used for by the statement: its actions and strongest access.
#[derive(Debug, Clone)]
struct TableUse {
    actions: BTreeSet<Action>,
    access: Access,
}

/// The sources one SELECT (or DML statement) brings into scope, for column resolution.
#[derive(Debug, Default)]
struct Scope {
    sources: Vec<Source>,
}

#[derive(Debug)]
struct Source {
    /// The alias it was given, normalised.
    alias: Option<String>,
    /// The unqualified name it was written with (a table's or a CTE's).
    short: Option<String>,
    /// The real table behind it; `None` for CTEs, subqueries and table functions.
    table: Option<TableName>,
}

pub(super) struct Classifier {
    driver: Driver,
    /// Actions the statements perform in themselves; those that touch no table become
    /// `(action, None)` targets.
    declared: BTreeSet<Action>,
    uses: BTreeMap<TableName, TableUse>,
    columns: BTreeSet<ColumnRef>,
    pub(super) flags: Flags,
    unclassified: Vec<String>,
    /// Every name this walk accounted for: tables, CTE references, table functions,
    /// objects. `super::analyze` reads any relation outside this set as a table read.
    attributed: HashSet<TableName>,
    /// Visible CTE names, one frame per WITH clause being walked.
    ctes: Vec<Vec<TableName>>,
    scopes: Vec<Scope>,
}

enum Resolved {
    Cte(TableName),
    Table(TableName),
}

impl Classifier {
    pub(super) fn new(driver: Driver) -> Classifier {
        Classifier {
            driver,
            declared: BTreeSet::new(),
            uses: BTreeMap::new(),
            columns: BTreeSet::new(),
            flags: Flags::default(),
            unclassified: Vec::new(),
            attributed: HashSet::new(),
            ctes: Vec::new(),
            scopes: Vec::new(),
        }
    }

    // ----- results ---------------------------------------------------------------------

    pub(super) fn is_attributed(&self, name: &TableName) -> bool {
        self.attributed.contains(name)
    }

    /// Every table with its strongest access, by name.
    pub(super) fn tables(&self) -> Vec<(TableName, Access)> {
        self.uses
            .iter()
            .map(|(name, using)| (name.clone(), using.access))
            .collect()
    }

    /// `(action, table)` for every table, leaving out the select of a table that the
    /// statement also writes (policy judges the write); `(action, None)` for every
    /// declared action that touched no table.
    pub(super) fn targets(&self) -> BTreeSet<Target> {
        let mut targets = BTreeSet::new();
        let mut touched = BTreeSet::new();
        for (table, using) in &self.uses {
            touched.extend(using.actions.iter().copied());
            let only_read = using.actions.iter().all(|a| *a == Action::Select);
            for action in &using.actions {
                if only_read || *action != Action::Select {
                    targets.insert(Target {
                        action: *action,
                        table: Some(table.clone()),
                    });
                }
            }
        }
        for action in &self.declared {
            if !touched.contains(action) {
                targets.insert(Target {
                    action: *action,
                    table: None,
                });
            }
        }
        targets
    }

    pub(super) fn columns(&self) -> Vec<ColumnRef> {
        self.columns.iter().cloned().collect()
    }

    pub(super) fn unclassified(&self) -> Option<String> {
        (!self.unclassified.is_empty()).then(|| self.unclassified.join("; "))
    }

    /// Whether what was classified writes anything (for EXPLAIN ANALYZE).
    fn writes(&self) -> bool {
        self.declared.iter().any(|a| *a != Action::Select)
            || self.uses.values().any(|u| u.access == Access::Write)
            || self.flags.data_modifying_cte
            || self.flags.select_into
    }

    // ----- recording -------------------------------------------------------------------

    pub(super) fn record(&mut self, action: Action, table: TableName, access: Access) {
        self.attributed.insert(table.clone());
        let using = self.uses.entry(table).or_insert_with(|| TableUse {
            actions: BTreeSet::new(),
            access,
        });
        using.actions.insert(action);
        if access == Access::Write {
            using.access = Access::Write;
        }
    }

    fn declare(&mut self, action: Action) {
        self.declared.insert(action);
    }

    /// A statement on a named object: the action on it, as a write.
    fn object(&mut self, action: Action, name: &ObjectName) {
        self.declare(action);
        let name = self.name(name);
        self.record(action, name, Access::Write);
    }

    /// A statement that is one action on one named object; returns its label.
    fn named(&mut self, action: Action, name: &ObjectName, label: &str) -> String {
        self.object(action, name);
        label.to_owned()
    }

    fn object_ident(&mut self, action: Action, ident: &Ident) {
        self.declare(action);
        let name = names::single(self.driver, ident);
        self.record(action, name, Access::Write);
    }

    fn unclassifiable(&mut self, reason: String) {
        if !self.unclassified.contains(&reason) {
            self.unclassified.push(reason);
        }
    }

    fn name(&self, name: &ObjectName) -> TableName {
        names::table(self.driver, name)
    }

    // ----- statements ------------------------------------------------------------------

    /// Classifies one statement and returns its leading keywords, for people.
    pub(super) fn statement(&mut self, statement: &Statement) -> String {
        use Action::{Admin, Alter, Create, Drop, Grant, Select, Session, Truncate};
        match statement {
            Statement::Query(query) => {
                let label = match query_dml(query) {
                    Some(label) => label,
                    None => {
                        self.declare(Select);
                        "SELECT"
                    }
                };
                self.query(query, false);
                label.to_owned()
            }
            Statement::Insert(insert) => self.insert(insert),
            Statement::Update(update) => self.update(update),
            Statement::Delete(delete) => self.delete(delete),
            Statement::Merge(merge) => self.merge(merge),

            Statement::Explain {
                describe_alias,
                analyze,
                statement,
                options,
                ..
            } => {
                let executes = *analyze || options.iter().flatten().any(is_analyze_option);
                let mut inner = Classifier::new(self.driver);
                inner.statement(statement);
                if executes {
                    if inner.writes() {
                        self.flags.explain_analyze_write = true;
                    }
                    self.absorb(inner);
                } else {
                    self.absorb_plan(inner);
                }
                let keyword = match describe_alias {
                    DescribeAlias::Explain => "EXPLAIN",
                    DescribeAlias::Describe => "DESCRIBE",
                    DescribeAlias::Desc => "DESC",
                };
                if executes {
                    format!("{keyword} ANALYZE")
                } else {
                    keyword.to_owned()
                }
            }
            Statement::ExplainTable { table_name, .. } => {
                self.declare(Select);
                let table = self.name(table_name);
                self.record(Select, table, Access::Read);
                "DESCRIBE".to_owned()
            }

            // ----- DDL ---------------------------------------------------------------
            Statement::CreateTable(create) => {
                self.object(Create, &create.name);
                if let Some(query) = &create.query {
                    self.query(query, true);
                }
                if let Some(like) = &create.like {
                    let source = match like {
                        sqlparser::ast::CreateTableLikeKind::Parenthesized(like)
                        | sqlparser::ast::CreateTableLikeKind::Plain(like) => &like.name,
                    };
                    self.read_table(source);
                }
                if let Some(clone) = &create.clone {
                    self.read_table(clone);
                }
                // A partition changes what its parent holds.
                if let Some(parent) = &create.partition_of {
                    self.object(Alter, parent);
                }
                self.scan_queries(&create.columns);
                "CREATE TABLE".to_owned()
            }
            Statement::CreateVirtualTable { name, .. } => {
                self.named(Create, name, "CREATE VIRTUAL TABLE")
            }
            Statement::CreateView(view) => {
                self.object(Create, &view.name);
                self.query(&view.query, true);
                if view.materialized {
                    "CREATE MATERIALIZED VIEW".to_owned()
                } else {
                    "CREATE VIEW".to_owned()
                }
            }
            // An index is reported as the table it is on.
            Statement::CreateIndex(index) => self.named(Create, &index.table_name, "CREATE INDEX"),
            Statement::CreateSchema { schema_name, .. } => {
                match schema_name {
                    sqlparser::ast::SchemaName::Simple(name)
                    | sqlparser::ast::SchemaName::NamedAuthorization(name, _) => {
                        self.object(Create, name)
                    }
                    sqlparser::ast::SchemaName::UnnamedAuthorization(ident) => {
                        self.object_ident(Create, ident)
                    }
                }
                "CREATE SCHEMA".to_owned()
            }
            Statement::CreateDatabase { db_name, .. } => {
                self.named(Create, db_name, "CREATE DATABASE")
            }
            Statement::CreateFunction(function) => {
                self.named(Create, &function.name, "CREATE FUNCTION")
            }
            Statement::CreateProcedure { name, .. } => self.named(Create, name, "CREATE PROCEDURE"),
            // A trigger is its own object, and changes what writes to its table do.
            // Its body runs later, on each event: the tables it touches are shown as reads,
            // as for a planned statement.
            Statement::CreateTrigger(trigger) => {
                self.object(Create, &trigger.name);
                self.object(Alter, &trigger.table_name);
                for body in trigger.statements.iter().flat_map(|s| s.statements()) {
                    let mut inner = Classifier::new(self.driver);
                    inner.statement(body);
                    self.absorb_plan(inner);
                }
                "CREATE TRIGGER".to_owned()
            }
            Statement::CreateExtension(extension) => {
                self.object_ident(Create, &extension.name);
                "CREATE EXTENSION".to_owned()
            }
            Statement::CreateSequence { name, .. } => self.named(Create, name, "CREATE SEQUENCE"),
            Statement::CreateType { name, .. } => self.named(Create, name, "CREATE TYPE"),
            Statement::CreateDomain(domain) => self.named(Create, &domain.name, "CREATE DOMAIN"),
            Statement::CreatePolicy(policy) => {
                self.object_ident(Create, &policy.name);
                self.object(Alter, &policy.table_name);
                "CREATE POLICY".to_owned()
            }
            Statement::CreateServer(server) => self.named(Create, &server.name, "CREATE SERVER"),
            Statement::AlterTable(alter) => {
                use sqlparser::ast::{AlterTableOperation as Op, RenameTableNameKind};
                let mut plain = alter.operations.is_empty();
                for operation in &alter.operations {
                    match operation {
                        Op::OwnerTo { .. } => self.object(Grant, &alter.name),
                        Op::RenameTable {
                            table_name: RenameTableNameKind::As(new) | RenameTableNameKind::To(new),
                        } => {
                            self.object(Alter, new);
                            plain = true;
                        }
                        _ => plain = true,
                    }
                }
                if plain {
                    self.object(Alter, &alter.name);
                }
                self.scan_queries(&alter.operations);
                "ALTER TABLE".to_owned()
            }
            Statement::AlterIndex { name, operation } => {
                self.object(Alter, name);
                let sqlparser::ast::AlterIndexOperation::RenameIndex { index_name } = operation;
                self.object(Alter, index_name);
                "ALTER INDEX".to_owned()
            }
            Statement::AlterView { name, query, .. } => {
                self.object(Alter, name);
                self.query(query, true);
                "ALTER VIEW".to_owned()
            }
            Statement::AlterSchema(alter) => {
                use sqlparser::ast::AlterSchemaOperation as Op;
                for operation in &alter.operations {
                    match operation {
                        Op::OwnerTo { .. } => self.object(Grant, &alter.name),
                        Op::Rename { name } => {
                            self.object(Alter, &alter.name);
                            self.object(Alter, name);
                        }
                        _ => self.object(Alter, &alter.name),
                    }
                }
                if alter.operations.is_empty() {
                    self.object(Alter, &alter.name);
                }
                "ALTER SCHEMA".to_owned()
            }
            Statement::AlterFunction(alter) => {
                self.named(Alter, &alter.function.name, "ALTER FUNCTION")
            }
            Statement::AlterType(alter) => self.named(Alter, &alter.name, "ALTER TYPE"),
            Statement::AlterPolicy(policy) => {
                self.object_ident(Alter, &policy.name);
                self.object(Alter, &policy.table_name);
                "ALTER POLICY".to_owned()
            }
            Statement::RenameTable(renames) => {
                for rename in renames {
                    self.object(Alter, &rename.old_name);
                    self.object(Alter, &rename.new_name);
                }
                "RENAME TABLE".to_owned()
            }
            Statement::Comment {
                object_type,
                object_name,
                ..
            } => {
                // A column comment changes its table.
                let mut name = object_name.clone();
                if *object_type == CommentObject::Column && name.0.len() > 1 {
                    name.0.pop();
                }
                self.object(Alter, &name);
                "COMMENT".to_owned()
            }
            Statement::Drop {
                object_type,
                names,
                table,
                ..
            } => {
                match (object_type, table) {
                    // MariaDB's `DROP INDEX i ON t` names its table.
                    (ObjectType::Index, Some(table)) => self.object(Drop, table),
                    (ObjectType::Role | ObjectType::User, _) => self.declare(Grant),
                    _ => {
                        for name in names {
                            self.object(Drop, name);
                        }
                    }
                }
                format!("DROP {object_type}")
            }
            Statement::DropFunction(drop) => {
                for function in &drop.func_desc {
                    self.object(Drop, &function.name);
                }
                "DROP FUNCTION".to_owned()
            }
            Statement::DropProcedure { proc_desc, .. } => {
                for procedure in proc_desc {
                    self.object(Drop, &procedure.name);
                }
                "DROP PROCEDURE".to_owned()
            }
            Statement::DropTrigger(drop) => {
                self.object(Drop, &drop.trigger_name);
                if let Some(table) = &drop.table_name {
                    self.object(Alter, table);
                }
                "DROP TRIGGER".to_owned()
            }
            Statement::DropExtension(drop) => {
                for name in &drop.names {
                    self.object_ident(Drop, name);
                }
                "DROP EXTENSION".to_owned()
            }
            Statement::DropDomain(drop) => self.named(Drop, &drop.name, "DROP DOMAIN"),
            Statement::DropPolicy(drop) => {
                self.object_ident(Drop, &drop.name);
                self.object(Alter, &drop.table_name);
                "DROP POLICY".to_owned()
            }
            Statement::Truncate(truncate) => {
                for target in &truncate.table_names {
                    self.object(Truncate, &target.name);
                }
                "TRUNCATE".to_owned()
            }

            // ----- privileges ------------------------------------------------------
            Statement::Grant(grant) => {
                self.grant_objects(grant.objects.as_ref());
                "GRANT".to_owned()
            }
            Statement::Revoke(revoke) => {
                self.grant_objects(revoke.objects.as_ref());
                "REVOKE".to_owned()
            }
            Statement::Deny(_) => self.bare(Grant, "DENY"),
            Statement::CreateRole(_) => self.bare(Grant, "CREATE ROLE"),
            Statement::AlterRole { .. } => self.bare(Grant, "ALTER ROLE"),
            Statement::CreateUser(_) => self.bare(Grant, "CREATE USER"),
            Statement::AlterUser(_) => self.bare(Grant, "ALTER USER"),

            // ----- administration --------------------------------------------------
            Statement::Analyze(analyze) => {
                self.declare(Admin);
                if let Some(table) = &analyze.table_name {
                    self.object(Admin, table);
                }
                "ANALYZE".to_owned()
            }
            Statement::Vacuum(vacuum) => {
                self.declare(Admin);
                if let Some(table) = &vacuum.table_name {
                    self.object(Admin, table);
                }
                "VACUUM".to_owned()
            }
            Statement::OptimizeTable { name, .. } => self.named(Admin, name, "OPTIMIZE TABLE"),
            Statement::Kill { .. } => self.bare(Admin, "KILL"),
            Statement::Flush { tables, .. } => {
                self.declare(Admin);
                for table in tables {
                    self.object(Admin, table);
                }
                "FLUSH".to_owned()
            }
            Statement::LoadData { table_name, .. } => {
                self.object(Admin, table_name);
                self.flags.file_access = true;
                "LOAD DATA".to_owned()
            }
            Statement::Copy {
                source, to, target, ..
            } => {
                self.declare(Admin);
                match source {
                    CopySource::Table { table_name, .. } => {
                        let access = if *to { Access::Read } else { Access::Write };
                        let table = self.name(table_name);
                        self.record(Admin, table, access);
                    }
                    CopySource::Query(query) => self.query(query, true),
                }
                if matches!(target, CopyTarget::File { .. } | CopyTarget::Program { .. }) {
                    self.flags.file_access = true;
                }
                "COPY".to_owned()
            }
            // A procedure can do anything its owner may: administration, named by the
            // procedure so that an explain shows what would run.
            Statement::Call(function) => {
                self.object(Admin, &function.name);
                self.scan(&function.args);
                "CALL".to_owned()
            }

            // ----- session and transaction state ---------------------------------------
            Statement::Set(set) => {
                self.declare(Session);
                self.scan_queries(set);
                "SET".to_owned()
            }
            Statement::Reset(_) => self.bare(Session, "RESET"),
            Statement::Use(_) => self.bare(Session, "USE"),
            Statement::StartTransaction { statements, .. } => {
                if !statements.is_empty() {
                    self.unclassifiable(
                        "BEGIN … END blocks with statements are not classified".to_owned(),
                    );
                }
                self.bare(Session, "BEGIN")
            }
            Statement::Commit { .. } => self.bare(Session, "COMMIT"),
            Statement::Rollback { .. } => self.bare(Session, "ROLLBACK"),
            Statement::Savepoint { .. } => self.bare(Session, "SAVEPOINT"),
            Statement::ReleaseSavepoint { .. } => self.bare(Session, "RELEASE SAVEPOINT"),
            // Preparing plans without running; EXECUTE runs what was prepared.
            Statement::Prepare { statement, .. } => {
                let mut inner = Classifier::new(self.driver);
                inner.statement(statement);
                self.absorb_plan(inner);
                self.bare(Session, "PREPARE")
            }
            Statement::Execute { .. } => self.bare(Session, "EXECUTE"),
            Statement::Deallocate { .. } => self.bare(Session, "DEALLOCATE"),
            Statement::Discard { .. } => self.bare(Session, "DISCARD"),
            // A cursor reads its query as it is fetched.
            Statement::Declare { stmts } => {
                for declare in stmts {
                    if let Some(query) = &declare.for_query {
                        self.query(query, true);
                    }
                }
                self.bare(Session, "DECLARE")
            }
            Statement::Fetch { .. } => self.bare(Session, "FETCH"),
            Statement::Close { .. } => self.bare(Session, "CLOSE"),
            Statement::LISTEN { .. } => self.bare(Session, "LISTEN"),
            Statement::UNLISTEN { .. } => self.bare(Session, "UNLISTEN"),
            Statement::NOTIFY { .. } => self.bare(Session, "NOTIFY"),
            Statement::Load { .. } => self.bare(Session, "LOAD"),
            Statement::AlterSession { .. } => self.bare(Session, "ALTER SESSION"),
            // ATTACH opens (and creates) a database file on the server.
            Statement::AttachDatabase { .. } => {
                self.flags.file_access = true;
                self.bare(Session, "ATTACH")
            }
            Statement::AttachDuckDBDatabase { .. } => {
                self.flags.file_access = true;
                self.bare(Session, "ATTACH")
            }
            Statement::DetachDuckDBDatabase { .. } => self.bare(Session, "DETACH"),
            Statement::Lock(lock) => {
                self.declare(Session);
                self.flags.locking = true;
                for target in &lock.tables {
                    let table = self.name(&target.name);
                    self.record(Session, table, Access::Read);
                }
                "LOCK TABLE".to_owned()
            }
            Statement::LockTables { tables } => {
                self.declare(Session);
                self.flags.locking = true;
                for lock in tables {
                    let table = names::single(self.driver, &lock.table);
                    self.record(Session, table, Access::Read);
                }
                "LOCK TABLES".to_owned()
            }
            Statement::UnlockTables => self.bare(Session, "UNLOCK TABLES"),
            Statement::Pragma { name, value, is_eq } => self.pragma(name, value.as_ref(), *is_eq),

            // ----- reads of metadata ---------------------------------------------------
            Statement::ShowCreate { obj_type, obj_name } => {
                use sqlparser::ast::ShowCreateObject as Object;
                self.declare(Select);
                if matches!(obj_type, Object::Table | Object::View) {
                    let table = self.name(obj_name);
                    self.record(Select, table, Access::Read);
                } else {
                    self.attributed.insert(self.name(obj_name));
                }
                "SHOW CREATE".to_owned()
            }
            Statement::ShowColumns { show_options, .. } => {
                self.declare(Select);
                if let Some(table) = show_options
                    .show_in
                    .as_ref()
                    .and_then(|show_in| show_in.parent_name.as_ref())
                {
                    let table = self.name(table);
                    self.record(Select, table, Access::Read);
                }
                "SHOW COLUMNS".to_owned()
            }
            Statement::ShowTables { show_options, .. }
            | Statement::ShowViews { show_options, .. }
            | Statement::ShowDatabases { show_options, .. }
            | Statement::ShowSchemas { show_options, .. }
            | Statement::ShowCatalogs { show_options, .. } => {
                self.declare(Select);
                // `SHOW TABLES FROM db` names a database, not a table.
                if let Some(parent) = show_options
                    .show_in
                    .as_ref()
                    .and_then(|show_in| show_in.parent_name.as_ref())
                {
                    self.attributed.insert(self.name(parent));
                }
                "SHOW".to_owned()
            }
            Statement::ShowVariable { .. }
            | Statement::ShowVariables { .. }
            | Statement::ShowStatus { .. }
            | Statement::ShowFunctions { .. }
            | Statement::ShowCollation { .. }
            | Statement::ShowCharset(_)
            | Statement::ShowProcessList { .. } => {
                self.declare(Select);
                self.scan_queries(statement);
                "SHOW".to_owned()
            }

            // Everything else: dialect-specific or procedural statements gatehouse does not
            // reason about. Refused by policy, never guessed to be a read.
            _ => {
                let keyword = unclassified_keyword(statement);
                self.unclassifiable(format!(
                    "{keyword} statements are not classified; gatehouse runs only statements it understands"
                ));
                keyword.to_owned()
            }
        }
    }

    /// A statement that is one action on no table; returns its label.
    fn bare(&mut self, action: Action, label: &str) -> String {
        self.declare(action);
        label.to_owned()
    }

    fn grant_objects(&mut self, objects: Option<&GrantObjects>) {
        self.declare(Action::Grant);
        match objects {
            Some(
                GrantObjects::Tables(names)
                | GrantObjects::Views(names)
                | GrantObjects::Sequences(names)
                | GrantObjects::Schemas(names)
                | GrantObjects::Databases(names),
            ) => {
                for name in names {
                    self.object(Action::Grant, name);
                }
            }
            Some(GrantObjects::AllTablesInSchema { schemas })
            | Some(GrantObjects::AllSequencesInSchema { schemas }) => {
                for name in schemas {
                    self.object(Action::Grant, name);
                }
            }
            _ => {}
        }
    }

    /// SQLite PRAGMA: a query of a setting or of the schema is a read; setting a value
    /// (`= v`, or the call form of a setting) is session state; the pragmas that run
    /// maintenance are administration. Unknown pragmas count as session: they may set.
    fn pragma(
        &mut self,
        name: &ObjectName,
        value: Option<&sqlparser::ast::ValueWithSpan>,
        is_eq: bool,
    ) -> String {
        let mut parts = names::parts(self.driver, name);
        let pragma = parts.pop().unwrap_or_default();
        let schema = parts.pop();
        let label = "PRAGMA".to_owned();
        if MAINTENANCE_PRAGMAS.contains(&pragma.as_str()) {
            self.declare(Action::Admin);
            return label;
        }
        match (value, is_eq) {
            (None, _) if QUERY_PRAGMAS.contains(&pragma.as_str()) => self.declare(Action::Select),
            (Some(argument), false) if ARGUMENT_PRAGMAS.contains(&pragma.as_str()) => {
                self.declare(Action::Select);
                if TABLE_ARGUMENT_PRAGMAS.contains(&pragma.as_str())
                    && let Value::SingleQuotedString(table) | Value::DoubleQuotedString(table) =
                        &argument.value
                {
                    let table = match schema {
                        Some(schema) => {
                            TableName::new(format!("{schema}.{}", names::literal(table)))
                        }
                        None => names::literal(table),
                    };
                    self.record(Action::Select, table, Access::Read);
                }
            }
            _ => self.declare(Action::Session),
        }
        label
    }

    // ----- DML -------------------------------------------------------------------------

    fn insert(&mut self, insert: &Insert) -> String {
        let Insert {
            table,
            table_alias,
            columns,
            source,
            assignments,
            on,
            returning,
            replace_into,
            or,
            multi_table_insert_type,
            partitioned,
            output,
            ..
        } = insert;
        self.declare(Action::Insert);
        let TableObject::TableName(name) = table else {
            self.unclassifiable("INSERT INTO TABLE FUNCTION is not classified".to_owned());
            return "INSERT".to_owned();
        };
        if multi_table_insert_type.is_some() {
            self.unclassifiable("multi-table INSERT is not classified".to_owned());
        }
        let target = self.name(name);
        self.record(Action::Insert, target.clone(), Access::Write);
        // REPLACE deletes the rows it conflicts with before inserting.
        let replaces = *replace_into || matches!(or, Some(SqliteOnConflict::Replace));
        if replaces {
            self.record(Action::Delete, target.clone(), Access::Write);
        }
        if let Some(source) = source {
            self.query(source, true);
        }
        self.scopes.push(Scope::default());
        self.add_source(
            table_alias
                .as_ref()
                .map(|alias| names::ident(self.driver, &alias.alias)),
            name,
            Some(target.clone()),
        );
        for column in columns {
            if let Some(last) = name_last(self.driver, column) {
                self.columns.insert(ColumnRef {
                    table: Some(target.clone()),
                    column: last,
                });
            }
        }
        self.assignments(assignments, std::slice::from_ref(&target));
        match on {
            Some(OnInsert::DuplicateKeyUpdate(assignments)) => {
                self.record(Action::Update, target.clone(), Access::Write);
                self.assignments(assignments, std::slice::from_ref(&target));
            }
            Some(OnInsert::OnConflict(conflict)) => {
                self.scan(&conflict.conflict_target);
                if let OnConflictAction::DoUpdate(update) = &conflict.action {
                    self.record(Action::Update, target.clone(), Access::Write);
                    self.assignments(&update.assignments, std::slice::from_ref(&target));
                    self.scan(&update.selection);
                }
            }
            Some(other) => self.scan(other),
            None => {}
        }
        if let Some(items) = returning {
            self.projection(items);
        }
        self.scan(partitioned);
        self.scan(output);
        self.scopes.pop();
        if *replace_into { "REPLACE" } else { "INSERT" }.to_owned()
    }

    fn update(&mut self, update: &Update) -> String {
        let Update {
            update_token: _,
            optimizer_hints: _,
            table,
            assignments,
            from,
            selection,
            returning,
            output,
            or: _,
            order_by,
            limit,
        } = update;
        self.declare(Action::Update);
        self.scopes.push(Scope::default());
        // The tables before SET can be written (MariaDB's multi-table UPDATE has several);
        // those after FROM are only read.
        let mut candidates = Vec::new();
        candidates.extend(self.table_factor(&table.relation, true));
        for join in &table.joins {
            candidates.extend(self.table_factor(&join.relation, true));
            self.scan(&join.join_operator);
        }
        if let Some(UpdateTableFromKind::BeforeSet(from) | UpdateTableFromKind::AfterSet(from)) =
            from
        {
            for source in from {
                self.table_with_joins(source);
            }
        }
        let written = self.assignments(assignments, &candidates);
        for table in candidates {
            if !written.contains(&table) {
                self.record(Action::Select, table, Access::Read);
            }
        }
        for table in written {
            self.record(Action::Update, table, Access::Write);
        }
        self.dml_tail(
            selection.as_ref(),
            returning.as_deref(),
            output,
            order_by,
            limit,
            "UPDATE",
        )
    }

    fn delete(&mut self, delete: &Delete) -> String {
        let Delete {
            delete_token: _,
            optimizer_hints: _,
            tables,
            from,
            using,
            selection,
            returning,
            output,
            order_by,
            limit,
        } = delete;
        self.declare(Action::Delete);
        self.scopes.push(Scope::default());
        let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = from;
        // `DELETE LOW_PRIORITY QUICK FROM t` comes back with its modifiers as the list of
        // tables to delete from: they are not tables.
        let tables: Vec<&ObjectName> = tables
            .iter()
            .filter(|name| {
                let modifier = is_modifier_keyword(self.driver, name);
                if modifier {
                    self.attributed.insert(self.name(name));
                }
                !modifier
            })
            .collect();
        let written: Vec<TableName> = if !tables.is_empty() {
            // MariaDB: `DELETE t1, t2 FROM t1 JOIN t2 …` deletes from the listed names,
            // which may be aliases of the FROM clause.
            for source in from.iter().chain(using.iter().flatten()) {
                self.table_with_joins(source);
            }
            tables.iter().map(|name| self.resolve_alias(name)).collect()
        } else if self.driver == Driver::MySql && using.is_some() {
            // MariaDB: `DELETE FROM t1, t2 USING t1 JOIN t2 …`, same as above.
            for source in using.iter().flatten() {
                self.table_with_joins(source);
            }
            from.iter()
                .filter_map(|source| match &source.relation {
                    TableFactor::Table { name, .. } => Some(self.resolve_alias(name)),
                    other => {
                        self.table_factor(other, false);
                        None
                    }
                })
                .collect()
        } else {
            let mut written = Vec::new();
            for source in from {
                written.extend(self.table_factor(&source.relation, true));
                for join in &source.joins {
                    self.table_factor(&join.relation, false);
                    self.scan(&join.join_operator);
                }
            }
            for source in using.iter().flatten() {
                self.table_with_joins(source);
            }
            written
        };
        for table in written {
            self.record(Action::Delete, table, Access::Write);
        }
        self.dml_tail(
            selection.as_ref(),
            returning.as_deref(),
            output,
            order_by,
            limit,
            "DELETE",
        )
    }

    /// What UPDATE and DELETE share after their tables: the WHERE (and whether it bounds
    /// the statement), RETURNING, ORDER BY and LIMIT; then leaves the statement's scope and
    /// returns its label.
    fn dml_tail(
        &mut self,
        selection: Option<&Expr>,
        returning: Option<&[SelectItem]>,
        output: &Option<sqlparser::ast::OutputClause>,
        order_by: &[sqlparser::ast::OrderByExpr],
        limit: &Option<Expr>,
        label: &str,
    ) -> String {
        if let Some(selection) = selection {
            self.scan(selection);
        }
        if let Some(items) = returning {
            self.projection(items);
        }
        self.scan(output);
        for item in order_by {
            self.scan(item);
        }
        // A LIMIT caps how many rows change, not which: `DELETE FROM t LIMIT 1000000`
        // still empties the table, so it does not make the statement bounded.
        self.scan(limit);
        if constant::is_unbounded(self.driver, selection) {
            self.flags.unbounded = true;
        }
        self.scopes.pop();
        label.to_owned()
    }

    /// MERGE writes its target and reads its source. With a constant-true ON and a
    /// WHEN MATCHED UPDATE or DELETE it changes every row of the target: unbounded.
    fn merge(&mut self, merge: &Merge) -> String {
        let Merge {
            table,
            source,
            on,
            clauses,
            output,
            ..
        } = merge;
        self.declare(Action::Merge);
        self.scopes.push(Scope::default());
        let target = self.table_factor(table, true);
        self.table_factor(source, false);
        self.scan(on);
        let mut changes_matches = false;
        for clause in clauses {
            if matches!(
                clause.action,
                MergeAction::Update(_) | MergeAction::Delete { .. }
            ) && clause.predicate.is_none()
            {
                changes_matches = true;
            }
            self.scan(clause);
        }
        if let Some(target) = target {
            self.record(Action::Merge, target, Access::Write);
        }
        if changes_matches && constant::is_unbounded(self.driver, Some(on)) {
            self.flags.unbounded = true;
        }
        self.scan(output);
        self.scopes.pop();
        "MERGE".to_owned()
    }

    /// The columns an assignment list sets, and which of `candidates` it writes: a
    /// qualified column names its table; an unqualified one is the only candidate's, or,
    /// when several tables could own it, counts against all of them.
    fn assignments(
        &mut self,
        assignments: &[Assignment],
        candidates: &[TableName],
    ) -> BTreeSet<TableName> {
        let mut written = BTreeSet::new();
        for assignment in assignments {
            let columns: Vec<&ObjectName> = match &assignment.target {
                AssignmentTarget::ColumnName(name) => vec![name],
                AssignmentTarget::Tuple(names) => names.iter().collect(),
            };
            for column in columns {
                let parts: Vec<Ident> = column
                    .0
                    .iter()
                    .filter_map(|part| part.as_ident().cloned())
                    .collect();
                let Some((last, qualifier)) = parts.split_last() else {
                    continue;
                };
                let owner = if qualifier.is_empty() {
                    match candidates {
                        [only] => Some(only.clone()),
                        _ => None,
                    }
                } else {
                    self.qualified_source(qualifier)
                };
                match &owner {
                    Some(table) => {
                        written.insert(table.clone());
                    }
                    None => written.extend(candidates.iter().cloned()),
                }
                self.columns.insert(ColumnRef {
                    table: owner,
                    column: names::ident(self.driver, last),
                });
            }
            self.scan(&assignment.value);
        }
        if written.is_empty() {
            written.extend(candidates.iter().cloned());
        }
        written
    }

    // ----- queries ---------------------------------------------------------------------

    /// Walks a query. `nested` is true for every query but a statement's own body: a
    /// write inside a nested one is a data-modifying CTE (or subquery).
    fn query(&mut self, query: &Query, nested: bool) {
        let Query {
            with,
            body,
            order_by,
            limit_clause,
            fetch,
            locks,
            for_clause,
            settings,
            format_clause,
            pipe_operators,
        } = query;
        let framed = match with {
            Some(with) => {
                self.with(with);
                true
            }
            None => false,
        };
        let scoped = self.set_expr(body, nested);
        self.scan(order_by);
        self.scan(limit_clause);
        self.scan(fetch);
        self.scan(for_clause);
        self.scan(settings);
        self.scan(format_clause);
        if !locks.is_empty() {
            self.flags.locking = true;
        }
        if !pipe_operators.is_empty() {
            self.unclassifiable("pipe operators (|>) are not classified".to_owned());
            self.scan(pipe_operators);
        }
        if scoped {
            self.scopes.pop();
        }
        if framed {
            self.ctes.pop();
        }
    }

    /// A WITH clause: each CTE body is walked seeing only the CTEs before it (or, with
    /// RECURSIVE, all of them, itself included); the frame stays for the main body and
    /// is popped by the caller.
    fn with(&mut self, with: &sqlparser::ast::With) {
        let defined: Vec<TableName> = with
            .cte_tables
            .iter()
            .map(|cte| names::single(self.driver, &cte.alias.name))
            .collect();
        self.ctes.push(if with.recursive {
            defined.clone()
        } else {
            Vec::new()
        });
        for (cte, name) in with.cte_tables.iter().zip(defined) {
            self.query(&cte.query, true);
            if !with.recursive
                && let Some(frame) = self.ctes.last_mut()
            {
                frame.push(name);
            }
        }
    }

    /// Walks a query body; returns true when it left a SELECT scope pushed (so that the
    /// query's ORDER BY still resolves the SELECT's aliases), for the caller to pop.
    fn set_expr(&mut self, body: &SetExpr, nested: bool) -> bool {
        match body {
            SetExpr::Select(select) => {
                self.select(select);
                true
            }
            SetExpr::Query(query) => {
                self.query(query, nested);
                false
            }
            // `a UNION b UNION c …` is left-deep, as deep as the text is long: its operands
            // are walked with a loop, not by recursion, so a long chain cannot overflow the
            // stack of the request's task.
            SetExpr::SetOperation { .. } => {
                let mut pending = vec![body];
                while let Some(node) = pending.pop() {
                    match node {
                        SetExpr::SetOperation { left, right, .. } => {
                            pending.push(right);
                            pending.push(left);
                        }
                        operand => {
                            if self.set_expr(operand, nested) {
                                self.scopes.pop();
                            }
                        }
                    }
                }
                false
            }
            SetExpr::Values(values) => {
                self.scan(values);
                false
            }
            SetExpr::Insert(statement)
            | SetExpr::Update(statement)
            | SetExpr::Delete(statement)
            | SetExpr::Merge(statement) => {
                if nested {
                    self.flags.data_modifying_cte = true;
                }
                self.statement(statement);
                false
            }
            // `TABLE name`: the name comes without its quoting, so it is folded.
            SetExpr::Table(table) => {
                if let Some(name) = &table.table_name {
                    let name = match &table.schema_name {
                        Some(schema) => format!("{schema}.{name}"),
                        None => name.clone(),
                    };
                    let object =
                        ObjectName::from(name.split('.').map(Ident::new).collect::<Vec<_>>());
                    self.read_table(&object);
                }
                false
            }
        }
    }

    /// A SELECT: FROM first (it defines what names mean), then everything else. Leaves
    /// its scope pushed; see [`Classifier::set_expr`].
    fn select(&mut self, select: &Select) {
        let Select {
            select_token: _,
            optimizer_hints,
            distinct,
            select_modifiers,
            top,
            top_before_distinct: _,
            projection,
            exclude,
            into,
            from,
            lateral_views,
            prewhere,
            selection,
            connect_by,
            group_by,
            cluster_by,
            distribute_by,
            sort_by,
            having,
            named_window,
            qualify,
            window_before_qualify: _,
            value_table_mode: _,
            flavor: _,
        } = select;
        self.scopes.push(Scope::default());
        for source in from {
            self.table_with_joins(source);
        }
        if let Some(into) = into {
            self.flags.select_into = true;
            match self.driver {
                // MariaDB's SELECT … INTO @var sets session variables.
                Driver::MySql => self.declare(Action::Session),
                // PostgreSQL's creates a table.
                Driver::Postgres | Driver::Sqlite => {
                    for target in &into.targets {
                        let name = match target {
                            Expr::Identifier(id) => ObjectName::from(vec![id.clone()]),
                            Expr::CompoundIdentifier(ids) => ObjectName::from(ids.clone()),
                            _ => continue,
                        };
                        self.object(Action::Create, &name);
                    }
                }
            }
        }
        self.projection(projection);
        self.scan(optimizer_hints);
        self.scan(distinct);
        self.scan(select_modifiers);
        self.scan(top);
        self.scan(exclude);
        self.scan(lateral_views);
        self.scan(prewhere);
        self.scan(selection);
        self.scan(connect_by);
        self.scan(group_by);
        self.scan(cluster_by);
        self.scan(distribute_by);
        self.scan(sort_by);
        self.scan(having);
        self.scan(named_window);
        self.scan(qualify);
    }

    fn projection(&mut self, items: &[SelectItem]) {
        for item in items {
            match item {
                SelectItem::UnnamedExpr(expr)
                | SelectItem::ExprWithAlias { expr, .. }
                | SelectItem::ExprWithAliases { expr, .. } => self.scan(expr),
                SelectItem::QualifiedWildcard(kind, options) => {
                    match kind {
                        SelectItemQualifiedWildcardKind::ObjectName(name) => {
                            let qualifier: Vec<Ident> = name
                                .0
                                .iter()
                                .filter_map(|part| part.as_ident().cloned())
                                .collect();
                            let table = self.qualified_source(&qualifier);
                            self.columns.insert(ColumnRef {
                                table,
                                column: "*".to_owned(),
                            });
                        }
                        SelectItemQualifiedWildcardKind::Expr(expr) => self.scan(expr),
                    }
                    self.scan(options);
                }
                SelectItem::Wildcard(options) => {
                    let tables: Vec<TableName> = self
                        .scopes
                        .last()
                        .map(|scope| {
                            scope
                                .sources
                                .iter()
                                .filter_map(|s| s.table.clone())
                                .collect()
                        })
                        .unwrap_or_default();
                    if tables.is_empty() {
                        self.columns.insert(ColumnRef {
                            table: None,
                            column: "*".to_owned(),
                        });
                    }
                    for table in tables {
                        self.columns.insert(ColumnRef {
                            table: Some(table),
                            column: "*".to_owned(),
                        });
                    }
                    self.scan(options);
                }
            }
        }
    }

    fn table_with_joins(&mut self, source: &TableWithJoins) {
        self.table_factor(&source.relation, false);
        for join in &source.joins {
            self.table_factor(&join.relation, false);
            self.scan(&join.join_operator);
        }
    }

    /// Brings one FROM item into scope and records what it reads. `target` marks the
    /// table of an UPDATE/DELETE/MERGE: always a real table, never a CTE. Returns the
    /// real table behind a plain table reference.
    fn table_factor(&mut self, factor: &TableFactor, target: bool) -> Option<TableName> {
        match factor {
            TableFactor::Table {
                name,
                alias,
                args,
                with_hints,
                version,
                with_ordinality: _,
                partitions: _,
                json_path,
                sample,
                index_hints: _,
            } => {
                self.scan(with_hints);
                self.scan(version);
                self.scan(json_path);
                self.scan(sample);
                if is_modifier_keyword(self.driver, name) {
                    return self.keyword_prefixed(name, alias.as_ref(), args.as_ref(), target);
                }
                let alias = alias.as_ref().map(|a| names::ident(self.driver, &a.name));
                if let Some(args) = args {
                    // A table-valued function (`generate_series(1, 3)`): not a table.
                    self.attributed.insert(self.name(name));
                    self.scan(args);
                    self.add_source(alias, name, None);
                    return None;
                }
                if self.driver == Driver::MySql && is_bare_keyword(name, "dual") {
                    // MariaDB's `FROM DUAL` names no table.
                    self.attributed.insert(self.name(name));
                    return None;
                }
                self.plain_table(name, alias, target)
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                self.query(subquery, true);
                self.add_alias_source(alias.as_ref());
                None
            }
            TableFactor::Function {
                name, args, alias, ..
            } => {
                self.attributed.insert(self.name(name));
                self.scan(args);
                self.add_alias_source(alias.as_ref());
                None
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                self.table_with_joins(table_with_joins);
                self.add_alias_source(alias.as_ref());
                None
            }
            TableFactor::Pivot { table, alias, .. }
            | TableFactor::Unpivot { table, alias, .. }
            | TableFactor::MatchRecognize { table, alias, .. } => {
                // None of the three parses in the dialects gatehouse uses; swept all the same
                // (the sweep meets the wrapped table again, which changes nothing).
                self.table_factor(table, false);
                self.scan(factor);
                self.add_alias_source(alias.as_ref());
                None
            }
            TableFactor::TableFunction { alias, .. }
            | TableFactor::UNNEST { alias, .. }
            | TableFactor::JsonTable { alias, .. }
            | TableFactor::OpenJsonTable { alias, .. }
            | TableFactor::XmlTable { alias, .. } => {
                self.scan(factor);
                self.add_alias_source(alias.as_ref());
                None
            }
            TableFactor::UnpivotExpr { .. } | TableFactor::SemanticView { .. } => {
                self.unclassifiable(
                    "UNPIVOT expressions and semantic views are not classified".to_owned(),
                );
                self.scan(factor);
                None
            }
        }
    }

    fn plain_table(
        &mut self,
        name: &ObjectName,
        alias: Option<String>,
        target: bool,
    ) -> Option<TableName> {
        // The target of a write is recorded by the caller, with the write; it is never a CTE.
        if target {
            let table = self.name(name);
            self.attributed.insert(table.clone());
            self.add_source(alias, name, Some(table.clone()));
            return Some(table);
        }
        match self.resolve(name) {
            Resolved::Cte(cte) => {
                self.attributed.insert(cte);
                self.add_source(alias, name, None);
                None
            }
            Resolved::Table(table) => {
                self.record(Action::Select, table.clone(), Access::Read);
                self.add_source(alias, name, Some(table.clone()));
                Some(table)
            }
        }
    }

    /// A table behind a modifier keyword that sqlparser took for a table name:
    /// PostgreSQL's `ONLY t` (read as the table `only` aliased `t`) and `ONLY (t)` (read
    /// as a call of `only(t)`), MariaDB's `UPDATE IGNORE t` and `UPDATE LOW_PRIORITY t`.
    /// Taken at face value the real table would go unseen.
    fn keyword_prefixed(
        &mut self,
        keyword: &ObjectName,
        alias: Option<&sqlparser::ast::TableAlias>,
        args: Option<&sqlparser::ast::TableFunctionArgs>,
        target: bool,
    ) -> Option<TableName> {
        use sqlparser::ast::{FunctionArg, FunctionArgExpr};
        self.attributed.insert(self.name(keyword));
        let table = match (alias, args) {
            (Some(alias), None) if alias.columns.is_empty() => {
                Some(ObjectName::from(vec![alias.name.clone()]))
            }
            (None, Some(args)) => match args.args.as_slice() {
                [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(id)))] => {
                    Some(ObjectName::from(vec![id.clone()]))
                }
                [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::CompoundIdentifier(ids)))] => {
                    Some(ObjectName::from(ids.clone()))
                }
                _ => None,
            },
            _ => None,
        };
        match table {
            Some(table) => {
                self.attributed.insert(self.name(&table));
                self.plain_table(&table, None, target)
            }
            None => {
                self.unclassifiable(format!("the table reference `{keyword}` is not classified"));
                None
            }
        }
    }

    /// A table read by name outside a FROM clause (`CREATE TABLE … LIKE t`, `TABLE t`).
    fn read_table(&mut self, name: &ObjectName) {
        match self.resolve(name) {
            Resolved::Cte(cte) => {
                self.attributed.insert(cte);
            }
            Resolved::Table(table) => self.record(Action::Select, table, Access::Read),
        }
    }

    fn resolve(&self, name: &ObjectName) -> Resolved {
        let table = self.name(name);
        if name.0.len() == 1 && self.ctes.iter().rev().any(|frame| frame.contains(&table)) {
            Resolved::Cte(table)
        } else {
            Resolved::Table(table)
        }
    }

    /// A name in MariaDB's multi-table DELETE list: an alias of the FROM clause, or a
    /// table named there, or else the table of that name.
    fn resolve_alias(&mut self, name: &ObjectName) -> TableName {
        self.attributed.insert(self.name(name));
        if let [single] = names::parts(self.driver, name).as_slice()
            && let Some(scope) = self.scopes.last()
        {
            let found = scope
                .sources
                .iter()
                .find(|s| s.alias.as_deref() == Some(single))
                .or_else(|| {
                    scope
                        .sources
                        .iter()
                        .find(|s| s.alias.is_none() && s.short.as_deref() == Some(single))
                });
            if let Some(table) = found.and_then(|s| s.table.clone()) {
                return table;
            }
        }
        self.name(name)
    }

    fn add_source(&mut self, alias: Option<String>, name: &ObjectName, table: Option<TableName>) {
        let short = names::parts(self.driver, name).pop();
        if let Some(scope) = self.scopes.last_mut() {
            scope.sources.push(Source {
                alias,
                short,
                table,
            });
        }
    }

    fn add_alias_source(&mut self, alias: Option<&sqlparser::ast::TableAlias>) {
        let alias = alias.map(|a| names::ident(self.driver, &a.name));
        if let Some(scope) = self.scopes.last_mut() {
            scope.sources.push(Source {
                alias,
                short: None,
                table: None,
            });
        }
    }

    // ----- columns ---------------------------------------------------------------------

    fn column(&mut self, parts: &[Ident]) {
        let Some((last, qualifier)) = parts.split_last() else {
            return;
        };
        if qualifier.is_empty() && last.value.starts_with('@') {
            return; // a MariaDB user variable
        }
        let table = if qualifier.is_empty() {
            self.sole_source()
        } else {
            self.qualified_source(qualifier)
        };
        self.columns.insert(ColumnRef {
            table,
            column: names::ident(self.driver, last),
        });
    }

    /// The table an unqualified column belongs to when the innermost scope has exactly
    /// one source and it is a real table. Best effort: a correlated reference to an
    /// outer table is attributed to the inner one.
    fn sole_source(&self) -> Option<TableName> {
        match self.scopes.last().map(|scope| scope.sources.as_slice()) {
            Some([only]) => only.table.clone(),
            _ => None,
        }
    }

    /// The table a qualifier (`o` in `o.id`, `public.orders` in `public.orders.id`)
    /// resolves to, innermost scope first.
    fn qualified_source(&self, qualifier: &[Ident]) -> Option<TableName> {
        let written: Vec<String> = qualifier
            .iter()
            .map(|id| names::ident(self.driver, id))
            .collect();
        let qualified = names::table(self.driver, &ObjectName::from(qualifier.to_vec()));
        for scope in self.scopes.iter().rev() {
            for source in &scope.sources {
                let by_alias = matches!((&source.alias, written.as_slice()), (Some(alias), [one]) if alias == one);
                let by_name = source.alias.is_none()
                    && (matches!((&source.short, written.as_slice()), (Some(short), [one]) if short == one)
                        || source.table.as_ref() == Some(&qualified));
                if by_alias || by_name {
                    return source.table.clone();
                }
            }
        }
        None
    }

    // ----- generic sweep ---------------------------------------------------------------

    /// Sweeps any node: records the columns it names (in the current scope), walks the
    /// subqueries it holds, and reads any relation it names outside a subquery.
    fn scan<T: Visit>(&mut self, node: &T) {
        let _ = node.visit(&mut Collect {
            classifier: self,
            depth: 0,
            with_columns: true,
        });
    }

    /// As [`Classifier::scan`], without recording column names: for statements whose
    /// identifiers are settings or options, not columns (`SET x = off`).
    fn scan_queries<T: Visit>(&mut self, node: &T) {
        let _ = node.visit(&mut Collect {
            classifier: self,
            depth: 0,
            with_columns: false,
        });
    }

    // ----- EXPLAIN ---------------------------------------------------------------------

    /// Takes what an executed inner statement does (EXPLAIN ANALYZE runs it).
    fn absorb(&mut self, inner: Classifier) {
        self.declared.extend(inner.declared);
        for (table, using) in inner.uses {
            for action in using.actions {
                self.record(action, table.clone(), using.access);
            }
        }
        self.absorb_facts(inner.columns, inner.attributed, inner.unclassified);
        let flags = inner.flags;
        self.flags.unbounded |= flags.unbounded;
        self.flags.data_modifying_cte |= flags.data_modifying_cte;
        self.flags.select_into |= flags.select_into;
        self.flags.locking |= flags.locking;
        self.flags.explain_analyze_write |= flags.explain_analyze_write;
        self.flags.file_access |= flags.file_access;
    }

    /// Takes a planned-only inner statement (EXPLAIN without ANALYZE does not run it): a
    /// read of every table it names, and none of its execution flags.
    fn absorb_plan(&mut self, inner: Classifier) {
        self.declare(Action::Select);
        for table in inner.uses.into_keys() {
            self.record(Action::Select, table, Access::Read);
        }
        self.absorb_facts(inner.columns, inner.attributed, inner.unclassified);
    }

    fn absorb_facts(
        &mut self,
        columns: BTreeSet<ColumnRef>,
        attributed: HashSet<TableName>,
        unclassified: Vec<String>,
    ) {
        self.columns.extend(columns);
        self.attributed.extend(attributed);
        for reason in unclassified {
            self.unclassifiable(reason);
        }
    }
}

/// SQLite pragmas that only report, queried without a value.
const QUERY_PRAGMAS: &[&str] = &[
    "application_id",
    "auto_vacuum",
    "automatic_index",
    "busy_timeout",
    "cache_size",
    "cache_spill",
    "cell_size_check",
    "checkpoint_fullfsync",
    "collation_list",
    "compile_options",
    "data_version",
    "database_list",
    "defer_foreign_keys",
    "encoding",
    "foreign_key_check",
    "foreign_keys",
    "freelist_count",
    "fullfsync",
    "function_list",
    "hard_heap_limit",
    "ignore_check_constraints",
    "integrity_check",
    "journal_mode",
    "journal_size_limit",
    "legacy_alter_table",
    "locking_mode",
    "max_page_count",
    "mmap_size",
    "module_list",
    "page_count",
    "page_size",
    "pragma_list",
    "query_only",
    "quick_check",
    "read_uncommitted",
    "recursive_triggers",
    "reverse_unordered_selects",
    "schema_version",
    "secure_delete",
    "soft_heap_limit",
    "synchronous",
    "table_list",
    "temp_store",
    "threads",
    "trusted_schema",
    "user_version",
    "wal_autocheckpoint",
];

/// SQLite pragmas whose argument names what to report on, not a new value.
const ARGUMENT_PRAGMAS: &[&str] = &[
    "foreign_key_check",
    "foreign_key_list",
    "index_info",
    "index_list",
    "index_xinfo",
    "integrity_check",
    "quick_check",
    "table_info",
    "table_list",
    "table_xinfo",
];

/// Of those, the ones whose argument is a table.
const TABLE_ARGUMENT_PRAGMAS: &[&str] = &[
    "foreign_key_check",
    "foreign_key_list",
    "index_list",
    "table_info",
    "table_list",
    "table_xinfo",
];

/// SQLite pragmas that run maintenance whatever their argument.
const MAINTENANCE_PRAGMAS: &[&str] = &[
    "incremental_vacuum",
    "optimize",
    "shrink_memory",
    "wal_checkpoint",
];

/// `EXPLAIN (ANALYZE)`, `(ANALYSE)`, `(ANALYZE true)`, `(ANALYZE on)`: runs the statement.
/// Only a literal false (`false`, `off`, `0`, `no`) turns it off; anything unusual counts
/// as on.
fn is_analyze_option(option: &UtilityOption) -> bool {
    let name = &option.name.value;
    if !name.eq_ignore_ascii_case("analyze") && !name.eq_ignore_ascii_case("analyse") {
        return false;
    }
    let off = match &option.arg {
        None => false,
        Some(Expr::Value(value)) => match &value.value {
            Value::Boolean(b) => !b,
            Value::Number(n, _) => n == "0",
            Value::SingleQuotedString(s) => is_off_word(s),
            _ => false,
        },
        Some(Expr::Identifier(id)) => is_off_word(&id.value),
        Some(_) => false,
    };
    !off
}

fn is_off_word(word: &str) -> bool {
    ["off", "false", "no", "0", "f", "n"]
        .iter()
        .any(|off| word.eq_ignore_ascii_case(off))
}

/// An unquoted one-part name that is really a modifier keyword sqlparser took for a
/// table name. Each is reserved in its engine, so no real table is written that way.
fn is_modifier_keyword(driver: Driver, name: &ObjectName) -> bool {
    let keywords: &[&str] = match driver {
        Driver::Postgres => &["only"],
        Driver::MySql => &[
            "low_priority",
            "high_priority",
            "delayed",
            "ignore",
            "quick",
        ],
        Driver::Sqlite => &[],
    };
    keywords
        .iter()
        .any(|keyword| is_bare_keyword(name, keyword))
}

/// An unquoted one-part name spelled like `keyword`.
fn is_bare_keyword(name: &ObjectName, keyword: &str) -> bool {
    match name.0.as_slice() {
        [part] => part
            .as_ident()
            .is_some_and(|id| id.quote_style.is_none() && id.value.eq_ignore_ascii_case(keyword)),
        _ => false,
    }
}

/// The DML keyword of a query whose body is a write (`WITH … DELETE …`).
fn query_dml(query: &Query) -> Option<&'static str> {
    match query.body.as_ref() {
        SetExpr::Insert(_) => Some("INSERT"),
        SetExpr::Update(_) => Some("UPDATE"),
        SetExpr::Delete(_) => Some("DELETE"),
        SetExpr::Merge(_) => Some("MERGE"),
        SetExpr::Query(inner) => query_dml(inner),
        _ => None,
    }
}

fn name_last(driver: Driver, name: &ObjectName) -> Option<String> {
    name.0
        .last()
        .and_then(|part| part.as_ident())
        .map(|id| names::ident(driver, id))
}

/// The keywords of the statements that fall through to "not classified", named without
/// printing the statement (its `Display` recurses as deep as the text nests).
fn unclassified_keyword(statement: &Statement) -> &'static str {
    match statement {
        Statement::AlterCollation(_) => "ALTER COLLATION",
        Statement::AlterConnector { .. } => "ALTER CONNECTOR",
        Statement::AlterOperator(_) => "ALTER OPERATOR",
        Statement::AlterOperatorClass(_) => "ALTER OPERATOR CLASS",
        Statement::AlterOperatorFamily(_) => "ALTER OPERATOR FAMILY",
        Statement::AlterTextSearch(_) => "ALTER TEXT SEARCH",
        Statement::Assert { .. } => "ASSERT",
        Statement::Cache { .. } => "CACHE",
        Statement::Case(_) => "CASE",
        Statement::CopyIntoSnowflake { .. } => "COPY INTO",
        Statement::CreateCollation(_) => "CREATE COLLATION",
        Statement::CreateConnector(_) => "CREATE CONNECTOR",
        Statement::CreateFileFormat { .. } => "CREATE FILE FORMAT",
        Statement::CreateMacro { .. } => "CREATE MACRO",
        Statement::CreateOperator(_) => "CREATE OPERATOR",
        Statement::CreateOperatorClass(_) => "CREATE OPERATOR CLASS",
        Statement::CreateOperatorFamily(_) => "CREATE OPERATOR FAMILY",
        Statement::CreateSecret { .. } => "CREATE SECRET",
        Statement::CreateStage { .. } => "CREATE STAGE",
        Statement::CreateTextSearch(_) => "CREATE TEXT SEARCH",
        Statement::CreateWarehouse(_) => "CREATE WAREHOUSE",
        Statement::Directory { .. } => "INSERT OVERWRITE DIRECTORY",
        Statement::DropConnector { .. } => "DROP CONNECTOR",
        Statement::DropOperator(_) => "DROP OPERATOR",
        Statement::DropOperatorClass(_) => "DROP OPERATOR CLASS",
        Statement::DropOperatorFamily(_) => "DROP OPERATOR FAMILY",
        Statement::DropSecret { .. } => "DROP SECRET",
        Statement::ExportData(_) => "EXPORT DATA",
        Statement::If(_) => "IF",
        Statement::Install { .. } => "INSTALL",
        Statement::List(_) => "LIST",
        Statement::Msck(_) => "MSCK",
        Statement::Open(_) => "OPEN",
        Statement::Print(_) => "PRINT",
        Statement::Put { .. } => "PUT",
        Statement::RaisError { .. } => "RAISERROR",
        Statement::Raise(_) => "RAISE",
        Statement::Remove(_) => "REMOVE",
        Statement::Return(_) => "RETURN",
        Statement::ShowObjects(_) => "SHOW OBJECTS",
        Statement::Throw(_) => "THROW",
        Statement::UNCache { .. } => "UNCACHE",
        Statement::Unload { .. } => "UNLOAD",
        Statement::WaitFor(_) => "WAITFOR",
        Statement::While(_) => "WHILE",
        _ => "Such",
    }
}

/// Hands the hand walk what a generically swept node holds: each subquery (walked by hand,
/// in scope, as it is met; the visitor then passes through it without looking), and the
/// column names and relations outside subqueries. Nothing is copied, so a subquery as
/// deep as the text allows costs no deep clone.
struct Collect<'c> {
    classifier: &'c mut Classifier,
    /// How many subqueries deep the visitor is; only depth 0 is this sweep's business.
    depth: usize,
    with_columns: bool,
}

impl Visitor for Collect<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if self.depth == 0 {
            self.classifier.query(query, true);
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if self.depth == 0 && self.with_columns {
            match expr {
                Expr::Identifier(id) => self.classifier.column(std::slice::from_ref(id)),
                Expr::CompoundIdentifier(ids) => self.classifier.column(ids),
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        if self.depth == 0 {
            self.classifier.read_table(relation);
        }
        ControlFlow::Continue(())
    }
}
