//! The walk over statements, queries and FROM clauses. Expressions are in `expr.rs`.
//!
//! Scoping decides what a name means, so queries and FROM clauses are walked by hand: a
//! stack of [`Scope`]s for correlated names (a non-LATERAL derived table does not see its
//! siblings; LATERAL does), and a stack of CTE frames (a non-recursive CTE sees only the
//! CTEs before it).

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::rc::Rc;

use sqlparser::ast::{
    Assignment, AssignmentTarget, Cte as AstCte, Delete, Distinct, Expr, FromTable, GroupByExpr,
    Ident, Insert, JoinConstraint, JoinOperator, LimitClause, Merge, ObjectName, OnConflictAction,
    OnInsert, OrderByKind, Query, Select, SelectFlavor, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, SetOperator, SetQuantifier, Statement, TableAlias,
    TableFactor, TableObject, TableWithJoins, Update, UpdateTableFromKind, Value, Values, Visit,
    Visitor, WildcardAdditionalOptions, With,
};

use super::scope::{
    Column, Derivation, Relation, RelationName, Scope, Shape, Visible, fold_name, same,
};
use super::{Catalog, Lineage, OutputColumn, SourceColumn};
use crate::datasource::Driver;
use crate::intent::{self, TableName};

/// How many queries one statement may cause to be walked. Ordinary statements walk a
/// handful; a recursive CTE walks its body a few times per round, and nesting multiplies.
const BUDGET: usize = 4096;

/// How much lineage one statement may hold at once, in columns plus their sources. `*`
/// expands, and derived tables copy their columns into each scope that sees them, so a
/// short text can ask for a lot; no real statement comes near this.
const MAX_HELD: usize = 1 << 18;

/// The widest result any of the engines returns (MariaDB's limit; PostgreSQL's and
/// SQLite's are lower). A wider select list is an error there and unknown here.
const MAX_COLUMNS: usize = 4096;

/// Rounds a recursive CTE's lineage may take to stop growing before it is given up on
/// (unresolved). Each round adds at least one source, so real CTEs need two or three.
const MAX_ROUNDS: usize = 8;

/// The CTEs of one WITH clause that FROM clauses can see: folded name → columns.
type CteFrame = HashMap<String, Shape>;

pub(super) struct Walker<'c> {
    pub(super) driver: Driver,
    catalog: &'c dyn Catalog,
    /// Catalog answers as columns, so a table named twice is looked up once.
    cache: HashMap<TableName, Shape>,
    /// The base tables met, and their columns: a source id (`scope::Sources`) indexes
    /// `columns`.
    tables: Vec<TableName>,
    columns: Vec<(usize, Rc<str>)>,
    pub(super) scopes: Vec<Scope>,
    ctes: Vec<CteFrame>,
    /// Source ids, unsorted and repeated until [`Walker::finish`].
    pub(super) predicates: Vec<u32>,
    pub(super) unresolved_predicates: bool,
    /// Source ids computed on (see [`Lineage::computed_over`]), unsorted and repeated.
    computed_over: Vec<u32>,
    unresolved_computed: bool,
    budget: usize,
    /// Lineage held so far (see [`MAX_HELD`]).
    held: usize,
    exhausted: bool,
}

impl<'c> Walker<'c> {
    pub(super) fn new(driver: Driver, catalog: &'c dyn Catalog) -> Walker<'c> {
        Walker {
            driver,
            catalog,
            cache: HashMap::new(),
            tables: Vec::new(),
            columns: Vec::new(),
            scopes: Vec::new(),
            ctes: Vec::new(),
            predicates: Vec::new(),
            unresolved_predicates: false,
            computed_over: Vec::new(),
            unresolved_computed: false,
            budget: BUDGET,
            held: 0,
            exhausted: false,
        }
    }

    pub(super) fn finish(self, shape: Shape) -> Lineage {
        let source = |id: &u32| {
            let (table, column) = &self.columns[*id as usize];
            SourceColumn {
                table: self.tables[*table].clone(),
                column: column.to_string(),
            }
        };
        let predicates = self.predicates.iter().map(source).collect();
        let computed_over = self.computed_over.iter().map(source).collect();
        if self.exhausted {
            return Lineage {
                outputs: None,
                predicates,
                unresolved_predicates: true,
                computed_over,
                unresolved_computed: true,
            };
        }
        Lineage {
            outputs: shape.map(|columns| {
                columns
                    .into_iter()
                    .map(|column| OutputColumn {
                        name: column.name.to_string(),
                        computed: column.derivation.computed,
                        sources: column
                            .derivation
                            .sources
                            .as_slice()
                            .iter()
                            .map(source)
                            .collect(),
                        resolved: !column.derivation.unresolved,
                    })
                    .collect()
            }),
            predicates,
            unresolved_predicates: self.unresolved_predicates,
            computed_over,
            unresolved_computed: self.unresolved_computed,
        }
    }

    /// A value computed from `derivation`'s sources by something that could fail, stall or
    /// turn NULL depending on them.
    pub(super) fn add_computed(&mut self, derivation: &Derivation) {
        self.computed_over
            .extend_from_slice(derivation.sources.as_slice());
        self.unresolved_computed |= derivation.unresolved;
        if self.computed_over.len() > 2 * self.columns.len() + 1024 {
            self.computed_over.sort_unstable();
            self.computed_over.dedup();
        }
    }

    // ----- predicates ------------------------------------------------------------------

    pub(super) fn add_predicate(&mut self, derivation: Derivation) {
        self.predicates
            .extend_from_slice(derivation.sources.as_slice());
        self.unresolved_predicates |= derivation.unresolved;
        self.compact_predicates();
    }

    /// Ids are below `columns.len()`: deduplicating now and then keeps the list that short.
    pub(super) fn compact_predicates(&mut self) {
        if self.predicates.len() > 2 * self.columns.len() + 1024 {
            self.predicates.sort_unstable();
            self.predicates.dedup();
        }
    }

    /// Every column a node references decides what comes back.
    pub(super) fn predicate<T: Visit>(&mut self, node: &T) {
        let derivation = self.value_of(node);
        self.add_predicate(derivation);
    }

    /// A write or DDL copies the values of a query's result columns elsewhere.
    fn copy(&mut self, query: &Query) {
        match self.query(query) {
            Some(columns) => {
                for column in columns {
                    self.add_predicate(column.derivation);
                }
            }
            None => self.unresolved_predicates = true,
        }
    }

    /// Copies the result of every query inside a statement that returns no rows
    /// (`CREATE TABLE … AS`, `SET @v = (SELECT …)`); identifiers outside queries there are
    /// settings or the statement's own columns, not reads.
    fn copy_queries<T: Visit>(&mut self, node: &T) {
        let _ = node.visit(&mut Copies {
            walker: self,
            depth: 0,
        });
    }

    // ----- statements ------------------------------------------------------------------

    pub(super) fn statement(&mut self, statement: &Statement) -> Shape {
        match statement {
            Statement::Query(query) => self.query(query),
            Statement::Insert(insert) => self.insert(insert),
            Statement::Update(update) => self.update(update),
            Statement::Delete(delete) => self.delete(delete),
            Statement::Merge(merge) => self.merge(merge),
            // The plan reports row counts (EXPLAIN ANALYZE runs the statement) and estimates
            // from the data's statistics: the explained statement's predicates stay.
            Statement::Explain { statement, .. } => {
                let _ = self.statement(statement);
                None
            }
            // Nothing comes back now; FETCH or EXECUTE later has an unknown result.
            Statement::Declare { stmts } => {
                for declare in stmts {
                    if let Some(query) = &declare.for_query {
                        let _ = self.query(query);
                    }
                }
                Some(Vec::new())
            }
            Statement::Prepare { statement, .. } => {
                let _ = self.statement(statement);
                Some(Vec::new())
            }
            Statement::Copy { source, .. } => {
                if let sqlparser::ast::CopySource::Query(query) = source {
                    self.copy(query);
                }
                None
            }
            Statement::AlterTable(alter) => {
                self.alter_table(alter);
                Some(Vec::new())
            }
            // Renaming a table moves its columns out from under their classification.
            Statement::RenameTable(renames) => {
                for rename in renames {
                    self.copy_table(&rename.old_name);
                }
                Some(Vec::new())
            }
            // A trigger's body runs later, on every event: what it would copy or filter on
            // counts now.
            Statement::CreateTrigger(trigger) => {
                for body in trigger.statements.iter().flat_map(|s| s.statements()) {
                    let _ = self.statement(body);
                }
                self.copy_queries(statement);
                Some(Vec::new())
            }
            Statement::CreateTable { .. }
            | Statement::CreateView { .. }
            | Statement::AlterView { .. }
            | Statement::CreateIndex { .. }
            | Statement::CreateSchema { .. }
            | Statement::CreateDatabase { .. }
            | Statement::CreateSequence { .. }
            | Statement::CreateType { .. }
            | Statement::CreateDomain { .. }
            | Statement::CreateExtension { .. }
            | Statement::CreateFunction { .. }
            | Statement::CreateProcedure { .. }
            | Statement::CreateRole { .. }
            | Statement::CreateUser { .. }
            | Statement::CreatePolicy { .. }
            | Statement::CreateVirtualTable { .. }
            | Statement::AlterIndex { .. }
            | Statement::AlterSchema { .. }
            | Statement::AlterRole { .. }
            | Statement::AlterUser { .. }
            | Statement::AlterType { .. }
            | Statement::AlterFunction { .. }
            | Statement::AlterPolicy { .. }
            | Statement::Drop { .. }
            | Statement::DropFunction { .. }
            | Statement::DropProcedure { .. }
            | Statement::DropTrigger { .. }
            | Statement::DropExtension { .. }
            | Statement::DropDomain { .. }
            | Statement::DropPolicy { .. }
            | Statement::Truncate { .. }
            | Statement::Grant { .. }
            | Statement::Revoke { .. }
            | Statement::Comment { .. }
            | Statement::Set { .. }
            | Statement::Reset { .. }
            | Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
            | Statement::Use { .. }
            | Statement::Discard { .. }
            | Statement::Deallocate { .. }
            | Statement::Close { .. }
            | Statement::LISTEN { .. }
            | Statement::UNLISTEN { .. }
            | Statement::NOTIFY { .. }
            | Statement::Lock { .. }
            | Statement::LockTables { .. }
            | Statement::UnlockTables
            | Statement::Vacuum { .. }
            | Statement::AttachDatabase { .. } => {
                self.copy_queries(statement);
                Some(Vec::new())
            }
            // SHOW, PRAGMA, DESCRIBE, CALL, EXECUTE, FETCH, ANALYZE (MariaDB reports rows), …
            _ => None,
        }
    }

    /// ALTER TABLE: a renamed column or table moves values out from under their
    /// classification, and a generated column or default copies the columns it reads. Names
    /// that do not resolve there (a column the statement adds) copy nothing, so they do not
    /// make predicates unresolved.
    fn alter_table(&mut self, alter: &sqlparser::ast::AlterTable) {
        use sqlparser::ast::AlterTableOperation as Op;
        let table = intent::table_name(self.driver, &alter.name);
        let columns = self.table_columns(&table);
        let relation = self.relation_name(&alter.name);
        self.scopes.push(Scope::default());
        self.add_relation(relation, columns);
        let unresolved = self.unresolved_predicates;
        for operation in &alter.operations {
            match operation {
                Op::RenameColumn {
                    old_column_name: old,
                    ..
                }
                | Op::ChangeColumn { old_name: old, .. } => {
                    let derivation = self.value(&Expr::Identifier(old.clone()));
                    self.add_predicate(derivation);
                }
                Op::RenameTable { .. } => self.copy_table(&alter.name),
                other => self.predicate(other),
            }
        }
        self.unresolved_predicates = unresolved;
        self.scopes.pop();
        self.copy_queries(alter);
    }

    /// Every column of a table counts as copied.
    fn copy_table(&mut self, name: &ObjectName) {
        let table = intent::table_name(self.driver, name);
        for column in self.table_columns(&table).into_iter().flatten() {
            self.add_predicate(column.derivation);
        }
    }

    fn insert(&mut self, insert: &Insert) -> Shape {
        let Insert {
            table,
            table_alias,
            source,
            assignments,
            on,
            returning,
            output,
            ..
        } = insert;
        let TableObject::TableName(name) = table else {
            self.unresolved_predicates = true;
            return returning.as_ref().map_or(Some(Vec::new()), |_| None);
        };
        // What the statement writes: copied, and what RETURNING reads back.
        let mut written = Derivation::default();
        if let Some(source) = source {
            match self.query(source) {
                Some(columns) => {
                    for column in columns {
                        written.absorb_ref(&column.derivation);
                        self.add_predicate(column.derivation);
                    }
                }
                None => {
                    written.unresolved = true;
                    self.unresolved_predicates = true;
                }
            }
        }
        let table = intent::table_name(self.driver, name);
        let columns = self.table_columns(&table);
        let relation = match table_alias {
            Some(alias) => RelationName::Alias(self.fold(&alias.alias)),
            None => self.relation_name(name),
        };
        self.scopes.push(Scope::default());
        self.add_relation(relation, columns.clone());
        for assignment in assignments {
            let value = self.value(&assignment.value);
            written.absorb_ref(&value);
            self.add_predicate(value);
        }
        self.write_back(None, &written);
        match on {
            Some(OnInsert::DuplicateKeyUpdate(assignments)) => self.assignments(assignments),
            Some(OnInsert::OnConflict(conflict)) => {
                if let OnConflictAction::DoUpdate(update) = &conflict.action {
                    // `excluded` is the row that was to be inserted.
                    let mut excluded = columns;
                    if let Some(excluded) = excluded.as_mut() {
                        for column in excluded.iter_mut() {
                            column.derivation.absorb_ref(&written);
                        }
                    }
                    // Only `excluded.x` names it: unqualified names are the target's.
                    if let Some(scope) = self.scopes.last_mut() {
                        scope.relations_mut().push(Relation {
                            name: RelationName::Named(vec!["excluded".to_owned()]),
                            columns: excluded,
                        });
                    }
                    self.assignments(&update.assignments);
                    if let Some(selection) = &update.selection {
                        self.predicate(selection);
                    }
                    if let Some(scope) = self.scopes.last_mut() {
                        scope.relations_mut().pop();
                    }
                }
            }
            Some(other) => self.predicate(other),
            None => {}
        }
        let shape = self.returning(returning.as_deref(), output.is_some());
        self.scopes.pop();
        shape
    }

    fn update(&mut self, update: &Update) -> Shape {
        let Update {
            table,
            assignments,
            from,
            selection,
            returning,
            output,
            order_by,
            limit,
            ..
        } = update;
        self.scopes.push(Scope::default());
        self.join_tree(table, true);
        if let Some(UpdateTableFromKind::BeforeSet(from) | UpdateTableFromKind::AfterSet(from)) =
            from
        {
            for item in from {
                self.join_tree(item, false);
            }
        }
        self.assignments(assignments);
        if let Some(selection) = selection {
            self.predicate(selection);
        }
        self.predicate(order_by);
        self.predicate(limit);
        let shape = self.returning(returning.as_deref(), output.is_some());
        self.scopes.pop();
        shape
    }

    fn delete(&mut self, delete: &Delete) -> Shape {
        let Delete {
            tables,
            from,
            using,
            selection,
            returning,
            output,
            order_by,
            limit,
            ..
        } = delete;
        self.scopes.push(Scope::default());
        let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = from;
        // MariaDB's `DELETE t1 FROM t1 JOIN t2 …` lists its targets apart; otherwise the
        // first table is the target, never a CTE.
        for (i, item) in from.iter().enumerate() {
            self.join_tree(item, i == 0 && tables.is_empty());
        }
        for item in using.iter().flatten() {
            self.join_tree(item, false);
        }
        if let Some(selection) = selection {
            self.predicate(selection);
        }
        self.predicate(order_by);
        self.predicate(limit);
        let shape = self.returning(returning.as_deref(), output.is_some());
        self.scopes.pop();
        shape
    }

    fn merge(&mut self, merge: &Merge) -> Shape {
        let Merge {
            table,
            source,
            on,
            clauses,
            output,
            ..
        } = merge;
        self.scopes.push(Scope::default());
        self.table_factor(table, true);
        self.table_factor(source, false);
        self.predicate(on);
        // Conditions decide, and INSERT/UPDATE values are copied: all predicates.
        self.predicate(clauses);
        self.scopes.pop();
        if output.is_some() {
            None
        } else {
            Some(Vec::new())
        }
    }

    /// SET lists: the values are copied into the assigned columns, which RETURNING then
    /// reads back.
    fn assignments(&mut self, assignments: &[Assignment]) {
        for assignment in assignments {
            let value = self.value(&assignment.value);
            self.add_predicate(value.clone());
            let targets: &[ObjectName] = match &assignment.target {
                AssignmentTarget::ColumnName(name) => std::slice::from_ref(name),
                AssignmentTarget::Tuple(names) => names,
            };
            for target in targets {
                match target.0.last().and_then(|part| part.as_ident()) {
                    Some(column) => {
                        let column = self.fold(column);
                        self.write_back(Some(&column), &value);
                    }
                    None => self.write_back(None, &value),
                }
            }
        }
    }

    /// Adds a written value to the lineage of the columns it lands in (every column of
    /// that name in scope, or every column when `column` is `None`), for RETURNING.
    fn write_back(&mut self, column: Option<&str>, value: &Derivation) {
        if value.sources.is_empty() && !value.unresolved {
            return;
        }
        let driver = self.driver;
        let hits = |c: &Column| column.is_none_or(|name| same(driver, &c.name, name));
        let Some(scope) = self.scopes.last_mut() else {
            return;
        };
        for relation in scope.relations_mut() {
            for c in relation.columns.iter_mut().flatten() {
                if hits(c) {
                    c.derivation.absorb_ref(value);
                }
            }
        }
        for visible in scope.visible_mut() {
            if let Visible::Column(c) = visible
                && hits(c)
            {
                c.derivation.absorb_ref(value);
            }
        }
    }

    /// The RETURNING list over the current scope; no list means no rows.
    fn returning(&mut self, returning: Option<&[SelectItem]>, output: bool) -> Shape {
        if output {
            // MSSQL's OUTPUT clause: not modelled.
            return None;
        }
        let Some(items) = returning else {
            return Some(Vec::new());
        };
        let mut outputs = Some(Vec::with_capacity(items.len()));
        for item in items {
            self.select_item(item, &mut outputs);
        }
        outputs
    }

    // ----- queries ---------------------------------------------------------------------

    /// Takes one unit of the budget; false (and the walk stops descending) once spent.
    fn spend(&mut self) -> bool {
        if self.budget == 0 || self.exhausted {
            self.exhausted = true;
            return false;
        }
        self.budget -= 1;
        true
    }

    /// Accounts for columns about to be held; false (and the statement's lineage is given
    /// up) past [`MAX_HELD`].
    fn hold(&mut self, columns: &[Column]) -> bool {
        let size: usize = columns
            .iter()
            .map(|c| 1 + c.derivation.sources.as_slice().len())
            .sum();
        self.held = self.held.saturating_add(size);
        if self.held > MAX_HELD {
            self.exhausted = true;
        }
        !self.exhausted
    }

    /// Brings a relation into the current scope.
    fn add_relation(&mut self, name: RelationName, columns: Shape) {
        let columns = match columns {
            Some(columns) if !self.hold(&columns) => None,
            other => other,
        };
        self.top().add(name, columns);
    }

    pub(super) fn query(&mut self, query: &Query) -> Shape {
        if !self.spend() {
            return None;
        }
        let Query {
            with,
            body,
            order_by: _,
            limit_clause: _,
            fetch: _,
            locks: _,
            for_clause,
            settings,
            format_clause,
            pipe_operators,
        } = query;
        if let Some(with) = with {
            self.with(with);
        }
        let mut shape = match body.as_ref() {
            // ORDER BY of a plain SELECT also sees its FROM clause and its aliases.
            SetExpr::Select(select) => self.select(select, Some(query)),
            body => {
                let shape = self.set_expr(body);
                self.query_tail(query, shape.as_deref());
                shape
            }
        };
        // Clauses that reshape the result (FOR XML/JSON, FORMAT, pipe operators) are not
        // modelled: the result is unknown, and whatever they reference decides it.
        if for_clause.is_some()
            || settings.is_some()
            || format_clause.is_some()
            || !pipe_operators.is_empty()
        {
            shape = None;
            self.predicate(for_clause);
            self.predicate(pipe_operators);
            if !pipe_operators.is_empty() {
                self.unresolved_predicates = true;
            }
        }
        if with.is_some() {
            self.ctes.pop();
        }
        shape
    }

    /// ORDER BY, LIMIT, OFFSET and FETCH of a query whose body is not a plain SELECT: names
    /// and positions refer to the result columns.
    fn query_tail(&mut self, query: &Query, outputs: Option<&[Column]>) {
        let mut scope = Scope::default();
        match outputs {
            Some(outputs) => scope.set_outputs(Some(outputs.to_vec())),
            None => scope.visible_mut().push(Visible::Opaque),
        }
        self.scopes.push(scope);
        self.order_by(query);
        self.scopes.pop();
        self.limits(query);
    }

    fn order_by(&mut self, query: &Query) {
        if let Some(order_by) = &query.order_by {
            match &order_by.kind {
                OrderByKind::Expressions(items) => {
                    for item in items {
                        self.ordering(&item.expr);
                        self.predicate(&item.with_fill);
                    }
                }
                OrderByKind::All(_) => self.all_outputs_decide(),
            }
            self.predicate(&order_by.interpolate);
        }
    }

    fn limits(&mut self, query: &Query) {
        match &query.limit_clause {
            Some(LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                self.predicate(limit);
                self.predicate(offset);
                self.predicate(limit_by);
            }
            Some(LimitClause::OffsetCommaLimit { offset, limit }) => {
                self.predicate(offset);
                self.predicate(limit);
            }
            None => {}
        }
        self.predicate(&query.fetch);
    }

    /// A GROUP BY, ORDER BY or DISTINCT ON item: a position names a result column; a name
    /// may be a result alias or an input column (both count).
    fn ordering(&mut self, expr: &Expr) {
        if let Expr::Value(value) = expr
            && let Value::Number(number, _) = &value.value
            && let Ok(position) = number.parse::<usize>()
        {
            let column = self
                .scopes
                .last()
                .and_then(|scope| scope.outputs())
                .and_then(|outputs| outputs.get(position.wrapping_sub(1)))
                .map(|column| column.derivation.clone());
            match column {
                Some(derivation) => self.add_predicate(derivation),
                // Out of range is an error in the engine, unless the result is unknown.
                None => {
                    let known = self
                        .scopes
                        .last()
                        .is_some_and(|scope| scope.outputs().is_some());
                    if !known {
                        self.unresolved_predicates = true;
                    }
                }
            }
            return;
        }
        self.predicate(expr);
    }

    /// `GROUP BY ALL`, `ORDER BY ALL`: every result column decides.
    fn all_outputs_decide(&mut self) {
        let outputs = self
            .scopes
            .last()
            .and_then(|scope| scope.outputs().map(<[Column]>::to_vec));
        match outputs {
            Some(outputs) => {
                for column in outputs {
                    self.add_predicate(column.derivation);
                }
            }
            None => self.unresolved_predicates = true,
        }
    }

    /// A WITH clause; leaves its frame pushed for the caller to pop. Without RECURSIVE,
    /// PostgreSQL and MariaDB let a CTE see only those before it (a later name, or its own,
    /// is a table). With RECURSIVE, and always on SQLite, every CTE sees every other, so
    /// they are walked dependencies first; one caught in a cycle with another reads it as
    /// an unknown relation.
    fn with(&mut self, with: &With) {
        let ctes = &with.cte_tables;
        if !with.recursive && self.driver != Driver::Sqlite {
            self.ctes.push(HashMap::with_capacity(ctes.len()));
            for cte in ctes {
                let name = self.fold(&cte.alias.name);
                let shape = self.query(&cte.query);
                let columns = self.rename(shape, Some(&cte.alias));
                if let Some(frame) = self.ctes.last_mut() {
                    frame.insert(name, columns);
                }
            }
            return;
        }
        let names: Vec<String> = ctes.iter().map(|cte| self.fold(&cte.alias.name)).collect();
        self.ctes
            .push(names.iter().map(|name| (name.clone(), None)).collect());
        let mut positions: HashMap<&str, Vec<usize>> = HashMap::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            positions.entry(name.as_str()).or_default().push(i);
        }
        let dependencies: Vec<Vec<usize>> = ctes
            .iter()
            .enumerate()
            .map(|(i, cte)| {
                let mut named = Named {
                    driver: self.driver,
                    positions: &positions,
                    found: Vec::new(),
                };
                let _ = cte.query.visit(&mut named);
                named.found.sort_unstable();
                named.found.dedup();
                named.found.retain(|j| *j != i);
                named.found
            })
            .collect();
        for i in dependencies_first(&dependencies) {
            let columns = self.recursive_cte(&ctes[i], &names[i]);
            self.define_cte(&names[i], columns);
        }
    }

    /// Sets a CTE of the innermost frame.
    fn define_cte(&mut self, name: &str, columns: Shape) {
        if let Some(defined) = self.ctes.last_mut().and_then(|frame| frame.get_mut(name)) {
            *defined = columns;
        }
    }

    /// A CTE that may refer to itself: seeded with its first (non-recursive) arm, then
    /// walked whole, seeing itself, until its lineage stops growing. Returns its columns.
    fn recursive_cte(&mut self, cte: &AstCte, name: &str) -> Shape {
        let anchor = match cte.query.body.as_ref() {
            SetExpr::SetOperation { .. } if cte.query.with.is_none() => {
                let mut arm = cte.query.body.as_ref();
                while let SetExpr::SetOperation { left, .. } = arm {
                    arm = left;
                }
                Some(arm)
            }
            _ => None,
        };
        let Some(anchor) = anchor else {
            // Not a UNION: a reference to itself (an error) reads an unknown relation.
            let shape = self.query(&cte.query);
            return self.rename(shape, Some(&cte.alias));
        };
        let seed = self.set_expr(anchor);
        let mut current = self.rename(seed, Some(&cte.alias));
        for round in 1..=MAX_ROUNDS {
            self.define_cte(name, current.clone());
            let next = self.query(&cte.query);
            let next = self.rename(next, Some(&cte.alias));
            let merged = unite(current.clone(), next);
            if merged == current || self.exhausted {
                return merged;
            }
            current = merged;
            if round == MAX_ROUNDS {
                // Still growing: give up on it.
                return current.map(|columns| {
                    columns
                        .into_iter()
                        .map(|mut column| {
                            column.derivation.unresolved = true;
                            column
                        })
                        .collect()
                });
            }
        }
        current
    }

    fn cte(&self, name: &ObjectName) -> Option<Shape> {
        let [part] = name.0.as_slice() else {
            return None;
        };
        let folded = self.fold(part.as_ident()?);
        self.ctes
            .iter()
            .rev()
            .find_map(|frame| frame.get(&folded))
            .cloned()
    }

    fn set_expr(&mut self, body: &SetExpr) -> Shape {
        match body {
            SetExpr::Select(select) => self.select(select, None),
            SetExpr::Query(query) => self.query(query),
            SetExpr::SetOperation { .. } => self.set_operation(body),
            SetExpr::Values(values) => self.values(values),
            SetExpr::Insert(statement)
            | SetExpr::Update(statement)
            | SetExpr::Delete(statement)
            | SetExpr::Merge(statement) => self.statement(statement),
            SetExpr::Table(table) => {
                let Some(name) = &table.table_name else {
                    return None;
                };
                // `TABLE name` comes without its quoting: read as unquoted.
                let mut parts: Vec<Ident> = Vec::with_capacity(2);
                if let Some(schema) = &table.schema_name {
                    parts.push(Ident::new(schema));
                }
                parts.push(Ident::new(name));
                let name = ObjectName::from(parts);
                self.named_relation(&name, false)
            }
        }
    }

    /// `a UNION b EXCEPT c …`: column `i` derives from column `i` of every arm. The chain
    /// is as deep as the text is long, so its arms are collected with a loop.
    fn set_operation(&mut self, body: &SetExpr) -> Shape {
        let mut arms = Vec::new();
        let mut compares = false;
        let mut by_name = false;
        let mut pending = vec![body];
        while let Some(node) = pending.pop() {
            match node {
                SetExpr::SetOperation {
                    left,
                    op,
                    set_quantifier,
                    right,
                } => {
                    if !(*op == SetOperator::Union && *set_quantifier == SetQuantifier::All) {
                        compares = true;
                    }
                    if matches!(
                        set_quantifier,
                        SetQuantifier::ByName
                            | SetQuantifier::AllByName
                            | SetQuantifier::DistinctByName
                    ) {
                        by_name = true;
                    }
                    pending.push(right);
                    pending.push(left);
                }
                arm => arms.push(arm),
            }
        }
        let mut result: Shape = None;
        let mut first = true;
        for arm in arms {
            let shape = self.set_expr(arm);
            if compares {
                match &shape {
                    Some(columns) => {
                        for column in columns {
                            self.add_predicate(column.derivation.clone());
                        }
                    }
                    None => self.unresolved_predicates = true,
                }
            }
            result = if first { shape } else { unite(result, shape) };
            first = false;
        }
        if by_name { None } else { result }
    }

    fn values(&mut self, values: &Values) -> Shape {
        let width = values.rows.first().map_or(0, |row| row.len());
        let mut columns: Vec<Column> = (0..width)
            .map(|i| Column {
                name: match self.driver {
                    Driver::MySql => format!("column_{i}"),
                    Driver::Postgres | Driver::Sqlite => format!("column{}", i + 1),
                }
                .into(),
                derivation: Derivation::default(),
            })
            .collect();
        let mut ragged = false;
        for row in &values.rows {
            if row.len() != width {
                ragged = true;
            }
            for (i, expr) in row.iter().enumerate() {
                let derivation = self.value(expr);
                match columns.get_mut(i) {
                    Some(column) => column.derivation.absorb(derivation),
                    None => self.add_predicate(derivation),
                }
            }
        }
        if ragged { None } else { Some(columns) }
    }

    /// One SELECT. `query` is the query whose body it is, for ORDER BY and LIMIT, which see
    /// the SELECT's FROM clause and aliases.
    fn select(&mut self, select: &Select, query: Option<&Query>) -> Shape {
        let Select {
            distinct,
            top,
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
            value_table_mode,
            flavor,
            ..
        } = select;
        self.scopes.push(Scope::default());
        for item in from {
            self.join_tree(item, false);
        }
        let mut outputs = Some(Vec::with_capacity(projection.len()));
        for item in projection {
            self.select_item(item, &mut outputs);
        }
        if exclude.is_some()
            || value_table_mode.is_some()
            || *flavor == SelectFlavor::FromFirstNoSelect
            || !lateral_views.is_empty()
        {
            outputs = None;
        }
        self.predicate(lateral_views);
        self.predicate(top);
        self.predicate(prewhere);
        if let Some(selection) = selection {
            self.predicate(selection);
        }
        self.predicate(connect_by);
        self.predicate(cluster_by);
        self.predicate(distribute_by);
        self.predicate(sort_by);
        self.predicate(named_window);
        self.predicate(qualify);

        // The clauses that may name result columns by alias or position.
        if let Some(scope) = self.scopes.last_mut() {
            scope.set_outputs(outputs.take());
        }
        match group_by {
            GroupByExpr::Expressions(exprs, modifiers) => {
                for expr in exprs {
                    self.ordering(expr);
                }
                self.predicate(modifiers);
            }
            GroupByExpr::All(modifiers) => {
                self.all_outputs_decide();
                self.predicate(modifiers);
            }
        }
        if let Some(having) = having {
            self.predicate(having);
        }
        match distinct {
            Some(Distinct::On(exprs)) => {
                for expr in exprs {
                    self.ordering(expr);
                }
            }
            // Removing duplicates compares the values with each other.
            Some(Distinct::Distinct) => self.all_outputs_decide(),
            Some(Distinct::All) | None => {}
        }
        if let Some(query) = query {
            self.order_by(query);
        }
        outputs = self
            .scopes
            .last_mut()
            .and_then(|scope| scope.take_outputs());
        if let Some(query) = query {
            self.limits(query);
        }
        self.scopes.pop();

        if into.is_some() {
            // PostgreSQL creates a table from the result; MariaDB sets variables.
            match outputs {
                Some(columns) => {
                    for column in columns {
                        self.add_predicate(column.derivation);
                    }
                }
                None => self.unresolved_predicates = true,
            }
            return Some(Vec::new());
        }
        outputs
    }

    /// One item of a select list or RETURNING list, appended to `outputs` (set to `None`
    /// when the item's columns are not known).
    pub(super) fn select_item(&mut self, item: &SelectItem, outputs: &mut Option<Vec<Column>>) {
        let columns: Shape = match item {
            SelectItem::UnnamedExpr(expr) => Some(vec![Column {
                name: self.expr_name(expr).into(),
                derivation: self.value(expr),
            }]),
            SelectItem::ExprWithAlias { expr, alias } => Some(vec![Column {
                name: self.output_name(alias).into(),
                derivation: self.value(expr),
            }]),
            // Not modelled; the expression is still walked for the predicates inside it.
            SelectItem::ExprWithAliases { expr, .. } => {
                let _ = self.value(expr);
                None
            }
            SelectItem::Wildcard(options) => {
                if plain_wildcard(options) {
                    self.star()
                } else {
                    None
                }
            }
            SelectItem::QualifiedWildcard(
                SelectItemQualifiedWildcardKind::ObjectName(name),
                options,
            ) => {
                if plain_wildcard(options) {
                    self.relation_columns(&self.fold_parts(name))
                } else {
                    None
                }
            }
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::Expr(expr), _) => {
                let _ = self.value(expr);
                None
            }
        };
        match (outputs.as_mut(), columns) {
            (Some(list), Some(columns))
                if list.len() + columns.len() <= MAX_COLUMNS && self.hold(&columns) =>
            {
                list.extend(columns)
            }
            _ => *outputs = None,
        }
    }

    /// `t.*`: the columns of the one relation `t` names, innermost scope first (a
    /// correlated subquery may expand an outer relation).
    fn relation_columns(&self, qualifier: &[String]) -> Shape {
        self.named(qualifier).flatten()?.columns.clone()
    }

    /// `*`: every visible column of the innermost scope, in order.
    fn star(&self) -> Shape {
        let scope = self.scopes.last()?;
        if scope.relations().is_empty() {
            return None;
        }
        scope
            .visible()
            .iter()
            .map(|visible| match visible {
                Visible::Column(column) => Some(column.clone()),
                Visible::Opaque => None,
            })
            .collect()
    }

    // ----- FROM ------------------------------------------------------------------------

    /// Brings one FROM item (a table and its joins) into the current scope. `target` marks
    /// the first table as the target of a write: always a table, never a CTE.
    fn join_tree(&mut self, item: &TableWithJoins, target: bool) {
        let start = self.top().visible().len();
        self.table_factor(&item.relation, target);
        for join in &item.joins {
            let right = self.top().visible().len();
            self.table_factor(&join.relation, false);
            self.join(start, right, &join.join_operator);
        }
    }

    pub(super) fn top(&mut self) -> &mut Scope {
        if self.scopes.is_empty() {
            self.scopes.push(Scope::default());
        }
        let last = self.scopes.len() - 1;
        &mut self.scopes[last]
    }

    fn table_factor(&mut self, factor: &TableFactor, target: bool) {
        match factor {
            TableFactor::Table {
                name,
                alias,
                args,
                with_hints,
                version,
                json_path,
                sample,
                ..
            } => {
                self.predicate(with_hints);
                self.predicate(version);
                self.predicate(json_path);
                self.predicate(sample);
                if let Some(real) = self.keyword_prefixed(name, alias.as_ref(), args.as_ref()) {
                    let columns = self.named_relation(&real, target);
                    let relation = self.relation_name(&real);
                    self.add_relation(relation, columns);
                    return;
                }
                if let Some(args) = args {
                    // A table-valued function (`generate_series(1, 3)`): its arguments
                    // decide the rows; its columns are not known.
                    self.predicate(args);
                    let columns = function_columns(alias.as_ref());
                    let relation = self.alias_or(alias.as_ref(), name);
                    self.add_relation(relation, columns);
                    return;
                }
                if self.driver == Driver::MySql && is_bare(name, "dual") {
                    return;
                }
                let columns = self.named_relation(name, target);
                let columns = self.rename(columns, alias.as_ref());
                let relation = self.alias_or(alias.as_ref(), name);
                self.add_relation(relation, columns);
            }
            TableFactor::Derived {
                lateral,
                subquery,
                alias,
                sample,
            } => {
                self.predicate(sample);
                let shape = if *lateral {
                    self.query(subquery)
                } else {
                    // A derived table does not see the FROM items beside it.
                    let siblings = self.scopes.pop();
                    let shape = self.query(subquery);
                    if let Some(siblings) = siblings {
                        self.scopes.push(siblings);
                    }
                    shape
                };
                let columns = self.rename(shape, alias.as_ref());
                let relation = match alias {
                    Some(alias) => RelationName::Alias(self.fold(&alias.name)),
                    None => RelationName::Anonymous,
                };
                self.add_relation(relation, columns);
            }
            TableFactor::Function {
                name, args, alias, ..
            } => {
                self.predicate(args);
                let columns = function_columns(alias.as_ref());
                let relation = self.alias_or(alias.as_ref(), name);
                self.add_relation(relation, columns);
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => match alias {
                None => self.join_tree(table_with_joins, false),
                Some(alias) => {
                    // An aliased join hides the names inside it.
                    self.scopes.push(Scope::default());
                    self.join_tree(table_with_joins, false);
                    let inner = self.scopes.pop().unwrap_or_default();
                    let columns: Shape = inner
                        .into_visible()
                        .into_iter()
                        .map(|visible| match visible {
                            Visible::Column(column) => Some(column),
                            Visible::Opaque => None,
                        })
                        .collect();
                    let columns = self.rename(columns, Some(alias));
                    let relation = RelationName::Alias(self.fold(&alias.name));
                    self.add_relation(relation, columns);
                }
            },
            // Table functions, UNNEST, JSON_TABLE, PIVOT, …: what they reference decides the
            // rows; their columns are not known.
            TableFactor::TableFunction { alias, .. }
            | TableFactor::UNNEST { alias, .. }
            | TableFactor::JsonTable { alias, .. }
            | TableFactor::OpenJsonTable { alias, .. }
            | TableFactor::XmlTable { alias, .. }
            | TableFactor::Pivot { alias, .. }
            | TableFactor::Unpivot { alias, .. }
            | TableFactor::MatchRecognize { alias, .. } => {
                self.predicate(factor);
                let relation = match alias {
                    Some(alias) => RelationName::Alias(self.fold(&alias.name)),
                    None => RelationName::Anonymous,
                };
                self.add_relation(relation, None);
            }
            TableFactor::UnpivotExpr { .. } | TableFactor::SemanticView { .. } => {
                self.predicate(factor);
                self.unresolved_predicates = true;
                self.add_relation(RelationName::Anonymous, None);
            }
        }
    }

    /// A table sqlparser read behind a modifier keyword: PostgreSQL's `ONLY t` (the table
    /// `only` aliased `t`) and `ONLY (t)` (a call of `only(t)`); MariaDB's
    /// `UPDATE LOW_PRIORITY t`, `UPDATE IGNORE t`. Returns the real table's name.
    fn keyword_prefixed(
        &self,
        name: &ObjectName,
        alias: Option<&TableAlias>,
        args: Option<&sqlparser::ast::TableFunctionArgs>,
    ) -> Option<ObjectName> {
        use sqlparser::ast::{FunctionArg, FunctionArgExpr};
        let keywords: &[&str] = match self.driver {
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
        if !keywords.iter().any(|keyword| is_bare(name, keyword)) {
            return None;
        }
        match (alias, args) {
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
        }
    }

    /// The columns of a table or CTE named in FROM: a CTE when one of that name is
    /// visible (never for a write's target), else the catalog's table.
    fn named_relation(&mut self, name: &ObjectName, target: bool) -> Shape {
        if !target && let Some(columns) = self.cte(name) {
            return columns;
        }
        let table = intent::table_name(self.driver, name);
        self.table_columns(&table)
    }

    fn table_columns(&mut self, table: &TableName) -> Shape {
        if let Some(shape) = self.cache.get(table) {
            return shape.clone();
        }
        let shape = self.catalog.columns(table).and_then(|names| {
            let index = self.tables.len();
            self.tables.push(table.clone());
            let mut columns = Vec::with_capacity(names.len());
            for name in names {
                // Past u32::MAX columns, ids would collide: give up instead.
                let Ok(id) = u32::try_from(self.columns.len()) else {
                    self.exhausted = true;
                    return None;
                };
                let name: Rc<str> = Rc::from(name);
                self.columns.push((index, Rc::clone(&name)));
                columns.push(Column {
                    name,
                    derivation: Derivation::base(id),
                });
            }
            Some(columns)
        });
        self.cache.insert(table.clone(), shape.clone());
        shape
    }

    /// Renames columns by an alias's column list (`AS s(a, b)` renames the first two).
    fn rename(&self, shape: Shape, alias: Option<&TableAlias>) -> Shape {
        let mut columns = shape?;
        if let Some(alias) = alias {
            for (column, def) in columns.iter_mut().zip(&alias.columns) {
                column.name = self.output_name(&def.name).into();
            }
        }
        Some(columns)
    }

    fn alias_or(&self, alias: Option<&TableAlias>, name: &ObjectName) -> RelationName {
        match alias {
            Some(alias) => RelationName::Alias(self.fold(&alias.name)),
            None => self.relation_name(name),
        }
    }

    fn relation_name(&self, name: &ObjectName) -> RelationName {
        RelationName::Named(self.fold_parts(name))
    }

    /// Joins the FROM item's columns from `start` (the left side up to `right`, then the
    /// right side) by the join's constraint.
    fn join(&mut self, start: usize, right: usize, operator: &JoinOperator) {
        let (constraint, right_join) = match operator {
            JoinOperator::Join(c)
            | JoinOperator::Inner(c)
            | JoinOperator::Left(c)
            | JoinOperator::LeftOuter(c)
            | JoinOperator::FullOuter(c)
            | JoinOperator::CrossJoin(c)
            | JoinOperator::StraightJoin(c) => (c, false),
            JoinOperator::Right(c) | JoinOperator::RightOuter(c) => (c, true),
            JoinOperator::AsOf {
                match_condition,
                constraint,
            } => {
                self.predicate(match_condition);
                (constraint, false)
            }
            // Semi and anti joins keep one side only; APPLY and ARRAY JOIN are not modelled.
            JoinOperator::Semi(c)
            | JoinOperator::LeftSemi(c)
            | JoinOperator::RightSemi(c)
            | JoinOperator::Anti(c)
            | JoinOperator::LeftAnti(c)
            | JoinOperator::RightAnti(c) => {
                self.predicate(c);
                self.collapse(start);
                return;
            }
            JoinOperator::CrossApply
            | JoinOperator::OuterApply
            | JoinOperator::ArrayJoin
            | JoinOperator::LeftArrayJoin
            | JoinOperator::InnerArrayJoin => {
                self.collapse(start);
                return;
            }
        };
        match constraint {
            JoinConstraint::On(expr) => self.predicate(expr),
            JoinConstraint::Using(names) => {
                let mut seen = HashSet::new();
                let names: Vec<String> = names
                    .iter()
                    .filter_map(|name| name.0.last().and_then(|part| part.as_ident()))
                    .map(|id| self.fold(id))
                    .filter(|name| seen.insert(name.clone()))
                    .collect();
                self.merge_columns(start, right, &names, right_join);
            }
            JoinConstraint::Natural => {
                let driver = self.driver;
                let scope = self.top();
                let opaque = scope.visible()[start..]
                    .iter()
                    .any(|visible| matches!(visible, Visible::Opaque));
                if opaque {
                    // The shared columns are not known: neither are the joined ones.
                    self.unresolved_predicates = true;
                    self.collapse(start);
                    return;
                }
                let (left, right_side) = scope.visible()[start..].split_at(right - start);
                let shared: HashSet<String> = right_side
                    .iter()
                    .filter_map(|v| match v {
                        Visible::Column(c) => Some(fold_name(driver, &c.name)),
                        Visible::Opaque => None,
                    })
                    .collect();
                let mut names: Vec<String> = Vec::new();
                let mut seen: HashSet<String> = HashSet::new();
                for visible in left {
                    if let Visible::Column(column) = visible {
                        let name = fold_name(driver, &column.name);
                        if shared.contains(&name) && seen.insert(name.clone()) {
                            names.push(name);
                        }
                    }
                }
                self.merge_columns(start, right, &names, right_join);
            }
            JoinConstraint::None => {}
        }
    }

    /// Replaces the columns from `start` by one opaque entry.
    fn collapse(&mut self, start: usize) {
        let scope = self.top();
        let visible = scope.visible_mut();
        visible.truncate(start);
        visible.push(Visible::Opaque);
    }

    /// USING/NATURAL: each named column appears once, deriving from both sides, in the
    /// engine's order (see the module docs). The join compares them: predicates. Linear in
    /// the width of both sides, however many names are merged.
    fn merge_columns(&mut self, start: usize, right: usize, names: &[String], right_join: bool) {
        let driver = self.driver;
        let scope = self.top();
        let right_side = scope.visible_mut().split_off(right);
        let left_side = scope.visible_mut().split_off(start);
        let wanted: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.as_str(), i))
            .collect();
        // For each entry of a side, the merged column it belongs to.
        let slots = |side: &[Visible]| -> Vec<Option<usize>> {
            side.iter()
                .map(|visible| match visible {
                    Visible::Column(c) => wanted.get(fold_name(driver, &c.name).as_str()).copied(),
                    Visible::Opaque => None,
                })
                .collect()
        };
        let left_slots = slots(&left_side);
        let right_slots = slots(&right_side);
        let mut merged: Vec<Column> = names
            .iter()
            .map(|name| Column {
                name: name.as_str().into(),
                derivation: Derivation::default(),
            })
            .collect();
        let mut found = vec![(false, false); names.len()];
        for (side, slots, is_left) in [
            (&left_side, &left_slots, true),
            (&right_side, &right_slots, false),
        ] {
            for (visible, slot) in side.iter().zip(slots) {
                if let (Visible::Column(c), Some(i)) = (visible, slot) {
                    let (in_left, in_right) = &mut found[*i];
                    if !*in_left && !*in_right {
                        merged[*i].name = c.name.clone();
                    }
                    merged[*i].derivation.absorb_ref(&c.derivation);
                    if is_left {
                        *in_left = true;
                    } else {
                        *in_right = true;
                    }
                }
            }
        }
        let left_opaque = left_side.iter().any(|v| matches!(v, Visible::Opaque));
        let right_opaque = right_side.iter().any(|v| matches!(v, Visible::Opaque));
        for (column, (in_left, in_right)) in merged.iter_mut().zip(&found) {
            if (!in_left && left_opaque) || (!in_right && right_opaque) {
                column.derivation.unresolved = true;
            }
        }
        for column in &merged {
            self.add_predicate(column.derivation.clone());
        }
        let mut merged: Vec<Option<Column>> = merged.into_iter().map(Some).collect();
        let rest = |side: Vec<Visible>, slots: &[Option<usize>]| -> Vec<Visible> {
            side.into_iter()
                .zip(slots)
                .filter(|(_, slot)| slot.is_none())
                .map(|(visible, _)| visible)
                .collect()
        };
        let mut joined: Vec<Visible> = Vec::with_capacity(left_side.len() + right_side.len());
        match driver {
            Driver::Postgres => {
                joined.extend(merged.into_iter().flatten().map(Visible::Column));
                joined.extend(rest(left_side, &left_slots));
                joined.extend(rest(right_side, &right_slots));
            }
            Driver::MySql => {
                let ((first, first_slots), (second, second_slots)) = if right_join {
                    ((right_side, right_slots), (left_side, left_slots))
                } else {
                    ((left_side, left_slots), (right_side, right_slots))
                };
                // The merged columns in the order the first table has them.
                for slot in first_slots.iter().flatten() {
                    if let Some(column) = merged[*slot].take() {
                        joined.push(Visible::Column(column));
                    }
                }
                joined.extend(merged.into_iter().flatten().map(Visible::Column));
                joined.extend(rest(first, &first_slots));
                joined.extend(rest(second, &second_slots));
            }
            Driver::Sqlite => {
                // The left table's columns in place; the right's shared ones left out.
                for (visible, slot) in left_side.into_iter().zip(&left_slots) {
                    match slot {
                        Some(i) => {
                            if let Some(column) = merged[*i].take() {
                                joined.push(Visible::Column(column));
                            }
                        }
                        None => joined.push(visible),
                    }
                }
                joined.extend(merged.into_iter().flatten().map(Visible::Column));
                joined.extend(rest(right_side, &right_slots));
            }
        }
        self.top().visible_mut().extend(joined);
    }

    // ----- names -----------------------------------------------------------------------

    pub(super) fn fold(&self, ident: &Ident) -> String {
        intent::identifier(self.driver, ident)
    }

    pub(super) fn fold_parts(&self, name: &ObjectName) -> Vec<String> {
        name.0
            .iter()
            .map(|part| match part.as_ident() {
                Some(id) => self.fold(id),
                None => part.to_string().to_lowercase(),
            })
            .collect()
    }

    /// A result column's name from an alias: as PostgreSQL names it (folded), or as written
    /// for MariaDB and SQLite (which compare names case-insensitively anyway).
    pub(super) fn output_name(&self, ident: &Ident) -> String {
        match self.driver {
            Driver::Postgres => self.fold(ident),
            Driver::MySql | Driver::Sqlite => ident.value.clone(),
        }
    }

    /// An unqualified column name, innermost scope first. `None` when no scope has it
    /// (and none has columns that are not known). A name that several visible columns
    /// share is an error in every engine (USING and NATURAL columns are merged before
    /// this): unresolved, not a union, so that no text can make one value carry every
    /// column of every table.
    pub(super) fn resolve_column(&self, name: &str) -> Option<Derivation> {
        for scope in self.scopes.iter().rev() {
            let found = scope.find_visible(self.driver, name);
            // GROUP BY, HAVING and ORDER BY may name a result column instead: the engines
            // differ on which wins, so both count.
            let aliases = scope.find_outputs(self.driver, name);
            if !aliases.is_empty() {
                let mut derivation = Derivation::default();
                for column in aliases {
                    derivation.absorb_ref(&column.derivation);
                }
                if let Some(column) = found.column {
                    derivation.absorb_ref(&column.derivation);
                }
                return Some(derivation);
            }
            if found.ambiguous || (found.column.is_none() && found.opaque) {
                return Some(Derivation::unresolved());
            }
            if let Some(column) = found.column {
                return Some(column.derivation.clone());
            }
        }
        None
    }

    /// A relation named by `qualifier` as a whole row: every column of it (a computed
    /// value). `None` when no relation has that name; unresolved when several do.
    pub(super) fn whole_row(&self, qualifier: &[String]) -> Option<Derivation> {
        let relation = self.named(qualifier)?;
        let mut derivation = Derivation::default();
        match relation.map(|r| &r.columns) {
            Some(Some(columns)) => {
                for column in columns {
                    derivation.absorb_ref(&column.derivation);
                }
            }
            Some(None) | None => derivation.unresolved = true,
        }
        derivation.computed = true;
        Some(derivation)
    }

    /// `q.column`: the column of the relation `q` names, innermost scope first. A known
    /// relation without that column reads as PostgreSQL's `column(q)` (a function of the
    /// whole row). `None` when no relation is named `q`.
    pub(super) fn resolve_qualified(&self, qualifier: &[String], name: &str) -> Option<Derivation> {
        let relation = self.named(qualifier)?;
        let Some(columns) = relation.and_then(|r| r.columns.as_ref()) else {
            return Some(Derivation::unresolved());
        };
        let mut hits = columns
            .iter()
            .filter(|column| same(self.driver, &column.name, name));
        match (hits.next(), hits.next()) {
            (Some(column), None) => Some(column.derivation.clone()),
            (Some(_), Some(_)) => Some(Derivation::unresolved()),
            (None, _) => self.whole_row(qualifier),
        }
    }

    /// The relation `qualifier` names, innermost scope first: `Some(None)` when several
    /// relations of one scope answer to it (an error in the engine), `None` when none does.
    fn named(&self, qualifier: &[String]) -> Option<Option<&Relation>> {
        for scope in self.scopes.iter().rev() {
            match scope.find_relations(qualifier).as_slice() {
                [] => {}
                [relation] => return Some(Some(relation)),
                _ => return Some(None),
            }
        }
        None
    }
}

/// The columns of a table-valued function: known only from a column definition list with
/// types (`AS r(a int, b text)`, required for functions returning `record`), and even then
/// not traced.
fn function_columns(alias: Option<&TableAlias>) -> Shape {
    let alias = alias?;
    if alias.columns.is_empty() || alias.columns.iter().any(|c| c.data_type.is_none()) {
        return None;
    }
    Some(
        alias
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.value.as_str().into(),
                derivation: Derivation::unresolved(),
            })
            .collect(),
    )
}

/// Column-wise union of two results; `None` when either is unknown or they differ in width.
fn unite(left: Shape, right: Shape) -> Shape {
    let mut left = left?;
    let right = right?;
    if left.len() != right.len() {
        return None;
    }
    for (l, r) in left.iter_mut().zip(right) {
        l.derivation.absorb(r.derivation);
    }
    Some(left)
}

fn plain_wildcard(options: &WildcardAdditionalOptions) -> bool {
    options.opt_ilike.is_none()
        && options.opt_exclude.is_none()
        && options.opt_except.is_none()
        && options.opt_replace.is_none()
        && options.opt_rename.is_none()
        && options.opt_alias.is_none()
}

/// An unquoted one-part name spelled like `keyword`.
fn is_bare(name: &ObjectName, keyword: &str) -> bool {
    match name.0.as_slice() {
        [part] => part
            .as_ident()
            .is_some_and(|id| id.quote_style.is_none() && id.value.eq_ignore_ascii_case(keyword)),
        _ => false,
    }
}

/// The order to walk CTEs in so that each comes after those it names (`dependencies[i]`),
/// as far as cycles allow. Iterative: a WITH may hold as many CTEs as the text is long.
fn dependencies_first(dependencies: &[Vec<usize>]) -> Vec<usize> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Walking,
        Done,
    }
    let mut marks = vec![Mark::New; dependencies.len()];
    let mut order = Vec::with_capacity(dependencies.len());
    for root in 0..dependencies.len() {
        if marks[root] != Mark::New {
            continue;
        }
        marks[root] = Mark::Walking;
        let mut stack = vec![(root, 0usize)];
        while let Some(&(node, next)) = stack.last() {
            match dependencies[node].get(next) {
                Some(&dependency) => {
                    if let Some(top) = stack.last_mut() {
                        top.1 += 1;
                    }
                    if marks[dependency] == Mark::New {
                        marks[dependency] = Mark::Walking;
                        stack.push((dependency, 0));
                    }
                }
                None => {
                    stack.pop();
                    marks[node] = Mark::Done;
                    order.push(node);
                }
            }
        }
    }
    order
}

/// Which of a WITH clause's CTE names a query names as a relation.
struct Named<'n> {
    driver: Driver,
    /// Name → the CTEs of that name.
    positions: &'n HashMap<&'n str, Vec<usize>>,
    found: Vec<usize>,
}

impl Visitor for Named<'_> {
    type Break = ();

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        if let [part] = relation.0.as_slice()
            && let Some(id) = part.as_ident()
        {
            let name = intent::identifier(self.driver, id);
            if let Some(positions) = self.positions.get(name.as_str()) {
                self.found.extend_from_slice(positions);
            }
        }
        ControlFlow::Continue(())
    }
}

/// Copies the result of every outermost query it meets (see [`Walker::copy_queries`]).
struct Copies<'w, 'c> {
    walker: &'w mut Walker<'c>,
    depth: usize,
}

impl Visitor for Copies<'_, '_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if self.depth == 0 {
            self.walker.copy(query);
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}
