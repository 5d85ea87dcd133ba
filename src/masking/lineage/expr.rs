//! What an expression derives from.
//!
//! sqlparser's visitor walks every node, so nothing an expression holds is skipped; the
//! nodes whose meaning this module knows (column references, functions, CASE, subqueries,
//! field access) are taken by hand and their insides are then passed over. Any other node
//! simply contributes everything beneath it, which is the fail-safe reading.

use std::ops::ControlFlow;

use sqlparser::ast::{
    AccessExpr, DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentClause, FunctionArguments, Ident, ObjectName, Query, Value, Visit, Visitor,
    WindowType,
};

use super::scope::{Derivation, Sources, Visible};
use super::walk::Walker;
use crate::datasource::Driver;

/// Unquoted names that read as a column but are keywords when no column has that name:
/// `DEFAULT` in VALUES and SET, and niladic functions sqlparser leaves as identifiers.
const KEYWORD_VALUES: &[&str] = &[
    "default",
    "current_catalog",
    "current_role",
    "current_schema",
    "current_user",
    "session_user",
    "user",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
];

impl Walker<'_> {
    /// Everything one expression derives from; `computed` unless the expression is a plain
    /// column reference. Unless it only gathers values as they are
    /// ([`gathers_values`]), its sources are also noted as computed on.
    pub(super) fn value(&mut self, expr: &Expr) -> Derivation {
        let mut derivation = self.value_of(expr);
        if is_reference(expr) {
            return derivation;
        }
        if !derivation.sources.is_empty() {
            derivation.computed = true;
        }
        if !gathers_values(expr) && (!derivation.sources.is_empty() || derivation.unresolved) {
            self.add_computed(&derivation);
        }
        derivation
    }

    /// Everything any node derives from: the union over every expression inside it.
    pub(super) fn value_of<T: Visit>(&mut self, node: &T) -> Derivation {
        let mut walk = ExprWalk {
            walker: self,
            out: Derivation::default(),
            level: 0,
            skip: None,
        };
        let _ = node.visit(&mut walk);
        walk.out
    }

    /// The derivation of a node this module reads by hand, or `None` to let the visitor
    /// descend into it.
    fn special(&mut self, expr: &Expr) -> Option<Derivation> {
        Some(match expr {
            Expr::Identifier(id) => self.identifier_ref(id),
            Expr::CompoundIdentifier(ids) => self.compound_ref(ids),
            Expr::Wildcard(_) => self.all_visible(),
            Expr::QualifiedWildcard(name, _) => self.row_of(name),
            Expr::Function(function) => self.function(function),
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                // The conditions decide which result comes back: they are both sources and
                // predicates.
                let mut derivation = Derivation::default();
                if let Some(operand) = operand {
                    let value = self.value(operand);
                    self.add_predicate(value.clone());
                    derivation.absorb(value);
                }
                for when in conditions {
                    let condition = self.value(&when.condition);
                    self.add_predicate(condition.clone());
                    derivation.absorb(condition);
                    let result = self.value(&when.result);
                    derivation.absorb(result);
                }
                if let Some(otherwise) = else_result {
                    let result = self.value(otherwise);
                    derivation.absorb(result);
                }
                derivation
            }
            Expr::Subquery(query) => self.subquery(query, true),
            // Whether a row exists depends on the subquery's predicates, not on its columns.
            Expr::Exists { subquery, .. } => self.subquery(subquery, false),
            Expr::InSubquery { expr, subquery, .. } => {
                let mut derivation = self.value(expr);
                let inner = self.subquery(subquery, true);
                derivation.absorb(inner);
                derivation
            }
            // `(c).field`, `x[1]`: the field names are not columns.
            Expr::CompoundFieldAccess { root, access_chain } => {
                let mut derivation = self.value(root);
                for access in access_chain {
                    match access {
                        AccessExpr::Dot(Expr::Identifier(_)) => {}
                        AccessExpr::Dot(other) => derivation.absorb(self.value(other)),
                        AccessExpr::Subscript(subscript) => {
                            derivation.absorb(self.value_of(subscript))
                        }
                    }
                }
                derivation
            }
            // MariaDB's MATCH (a, b) AGAINST (…) names its columns outside expressions.
            Expr::MatchAgainst {
                columns,
                match_value,
                ..
            } => {
                let mut derivation = self.value_of(match_value);
                for column in columns {
                    let parts: Vec<Ident> = column
                        .0
                        .iter()
                        .filter_map(|part| part.as_ident().cloned())
                        .collect();
                    derivation.absorb(self.compound_ref(&parts));
                }
                derivation
            }
            // Under MariaDB's ANSI_QUOTES a double-quoted string is a column: if it names
            // one, it counts as one.
            Expr::Value(value) if self.driver == Driver::MySql => match &value.value {
                Value::DoubleQuotedString(text) => self
                    .resolve_column(&text.to_lowercase())
                    .unwrap_or_default(),
                _ => return None,
            },
            _ => return None,
        })
    }

    fn identifier_ref(&mut self, id: &Ident) -> Derivation {
        if self.driver == Driver::MySql && id.quote_style.is_none() && id.value.starts_with('@') {
            // `@@system` settings hold no table data; a user variable may hold anything an
            // earlier statement put there.
            return if id.value.starts_with("@@") {
                Derivation::default()
            } else {
                Derivation::unresolved()
            };
        }
        let name = self.fold(id);
        if let Some(derivation) = self.resolve_column(&name) {
            return derivation;
        }
        if let Some(derivation) = self.whole_row(std::slice::from_ref(&name)) {
            return derivation;
        }
        if id.quote_style.is_none()
            && KEYWORD_VALUES
                .iter()
                .any(|k| id.value.eq_ignore_ascii_case(k))
        {
            return Derivation::default();
        }
        Derivation::unresolved()
    }

    /// `q.column`, `schema.table.column`, or `column.field` of a composite column.
    fn compound_ref(&mut self, ids: &[Ident]) -> Derivation {
        let Some((last, qualifier)) = ids.split_last() else {
            return Derivation::unresolved();
        };
        if qualifier.is_empty() {
            return self.identifier_ref(last);
        }
        let qualifier: Vec<String> = qualifier.iter().map(|id| self.fold(id)).collect();
        let name = self.fold(last);
        if let Some(derivation) = self.resolve_qualified(&qualifier, &name) {
            return derivation;
        }
        // No relation of that name: the first part may be a (composite) column.
        let mut derivation = match qualifier.first() {
            Some(first) => self
                .resolve_column(first)
                .or_else(|| self.whole_row(std::slice::from_ref(first)))
                .unwrap_or_else(Derivation::unresolved),
            None => Derivation::unresolved(),
        };
        derivation.computed = true;
        derivation
    }

    /// `t.*` as a value: the whole row of `t`.
    fn row_of(&mut self, name: &ObjectName) -> Derivation {
        let qualifier = self.fold_parts(name);
        self.whole_row(&qualifier)
            .unwrap_or_else(Derivation::unresolved)
    }

    /// `*` as a value: every column the innermost scope sees.
    fn all_visible(&mut self) -> Derivation {
        let mut derivation = Derivation::default();
        match self.scopes.last() {
            Some(scope) => {
                for visible in scope.visible() {
                    match visible {
                        Visible::Column(column) => derivation.absorb_ref(&column.derivation),
                        Visible::Opaque => derivation.unresolved = true,
                    }
                }
            }
            None => derivation.unresolved = true,
        }
        derivation
    }

    /// A subquery inside an expression. Its value depends on its result columns (when
    /// `with_columns`) and on everything it filters on; those predicates also stay
    /// predicates of the statement.
    fn subquery(&mut self, query: &Query, with_columns: bool) -> Derivation {
        let outer_predicates = std::mem::take(&mut self.predicates);
        let outer_unresolved = std::mem::replace(&mut self.unresolved_predicates, false);
        let shape = self.query(query);
        let inner = Sources::from_vec(std::mem::replace(&mut self.predicates, outer_predicates));
        let inner_unresolved = std::mem::replace(&mut self.unresolved_predicates, outer_unresolved);
        self.predicates.extend_from_slice(inner.as_slice());
        self.unresolved_predicates |= inner_unresolved;
        self.compact_predicates();
        let mut derivation = Derivation {
            sources: inner,
            unresolved: inner_unresolved,
            computed: true,
        };
        derivation.cap();
        if with_columns {
            match shape {
                Some(columns) => {
                    for column in columns {
                        derivation.absorb(column.derivation);
                    }
                }
                None => derivation.unresolved = true,
            }
        }
        derivation
    }

    fn function(&mut self, function: &Function) -> Derivation {
        let Function {
            name,
            uses_odbc_syntax: _,
            parameters,
            args,
            within_group,
            filter,
            null_treatment: _,
            over,
        } = function;
        let counts = self.is_count(name);
        let mut derivation = self.value_of(parameters);
        // What a count's arguments reveal about the rows it lets through.
        let mut decides = Derivation::default();
        match args {
            FunctionArguments::None => {}
            FunctionArguments::Subquery(query) => derivation.absorb(self.subquery(query, true)),
            FunctionArguments::List(list) => {
                let distinct =
                    matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
                for arg in &list.args {
                    let arg = match arg {
                        FunctionArg::Named { arg, .. } | FunctionArg::Unnamed(arg) => arg,
                        FunctionArg::ExprNamed { name, arg, .. } => {
                            derivation.absorb(self.value(name));
                            arg
                        }
                    };
                    let value = match arg {
                        FunctionArgExpr::Expr(expr) => self.value(expr),
                        FunctionArgExpr::QualifiedWildcard(name) => self.row_of(name),
                        // `count(*)` counts rows, whatever their columns hold.
                        FunctionArgExpr::Wildcard | FunctionArgExpr::WildcardWithOptions(_) => {
                            if counts {
                                continue;
                            }
                            self.all_visible()
                        }
                    };
                    // `count(ssn)` reveals how many are not null, which is no value; but
                    // `count(NULLIF(ssn LIKE '1%', false))` counts a condition, and
                    // `count(DISTINCT ssn)` compares values as GROUP BY does.
                    if !counts {
                        derivation.absorb(value);
                    } else if distinct || value.computed || value.unresolved {
                        decides.absorb(value);
                    }
                }
                for clause in &list.clauses {
                    match clause {
                        // Which rows an aggregate takes and in which order decide its value.
                        FunctionArgumentClause::OrderBy(_)
                        | FunctionArgumentClause::Where(_)
                        | FunctionArgumentClause::Limit(_) => self.predicate(clause),
                        other => derivation.absorb(self.value_of(other)),
                    }
                }
            }
        }
        // `percentile_disc(0.5) WITHIN GROUP (ORDER BY ssn)` returns an ssn.
        for item in within_group {
            derivation.absorb(self.value(&item.expr));
        }
        if let Some(filter) = filter {
            self.predicate(filter.as_ref());
        }
        if let Some(WindowType::WindowSpec(spec)) = over {
            self.predicate(&spec.partition_by);
            self.predicate(&spec.order_by);
            self.predicate(&spec.window_frame);
        }
        if counts {
            // A count reveals how many rows there are, not a value.
            decides.absorb(derivation);
            self.add_predicate(decides);
            return Derivation::default();
        }
        derivation
    }

    /// The built-in `count` (unqualified, or `pg_catalog.count`; a quoted PostgreSQL
    /// `"COUNT"` is another function).
    fn is_count(&self, name: &ObjectName) -> bool {
        let idents: Vec<&Ident> = name.0.iter().filter_map(|p| p.as_ident()).collect();
        if idents.len() != name.0.len() {
            return false;
        }
        match idents.as_slice() {
            [only] => self.fold(only) == "count",
            [schema, only] => {
                self.driver == Driver::Postgres
                    && self.fold(schema) == "pg_catalog"
                    && self.fold(only) == "count"
            }
            _ => false,
        }
    }

    /// A result column's name when it has no alias, best effort (PostgreSQL's rules).
    pub(super) fn expr_name(&self, expr: &Expr) -> String {
        match expr {
            Expr::Identifier(id) => self.output_name(id),
            Expr::CompoundIdentifier(ids) => ids
                .last()
                .map_or_else(|| "?column?".to_owned(), |id| self.output_name(id)),
            Expr::Nested(inner) => self.expr_name(inner),
            Expr::Cast { expr, .. } => self.expr_name(expr),
            Expr::Function(function) => function
                .name
                .0
                .last()
                .and_then(|part| part.as_ident())
                .map_or_else(|| "?column?".to_owned(), |id| self.fold(id)),
            Expr::Case { .. } => "case".to_owned(),
            _ => "?column?".to_owned(),
        }
    }
}

/// Functions that hand back their arguments' values as they are, or gathered into one
/// value (an aggregate's pick, a list, a JSON document), and whose success or NULL-ness
/// does not depend on what those values are beyond whether they are NULL. Names as
/// lower-case, unqualified.
const GATHERING_FUNCTIONS: &[&str] = &[
    "min",
    "max",
    "string_agg",
    "group_concat",
    "array_agg",
    "json_agg",
    "jsonb_agg",
    "json_arrayagg",
    "json_group_array",
    "json_build_object",
    "jsonb_build_object",
    "json_build_array",
    "jsonb_build_array",
    "json_array",
    "to_json",
    "to_jsonb",
    "row_to_json",
    "coalesce",
    "ifnull",
    "concat",
    "concat_ws",
];

/// An expression that only gathers values: an unqualified [`GATHERING_FUNCTIONS`] call
/// whose arguments are all column references, whole rows or literals (with a computed
/// argument the call computes too), or a scalar subquery (whose own expressions are judged
/// as they are walked).
/// Anything else computes on its sources: a division by `ascii(ssn) - 49` fails for one
/// digit, a cast for one shape, `nullif(ssn, 'guess')` turns NULL for one value, and a
/// result masked whole still lets such a difference through.
fn gathers_values(expr: &Expr) -> bool {
    match expr {
        Expr::Nested(inner) => gathers_values(inner),
        Expr::Subquery(_) => true,
        Expr::Function(function) => {
            let Some(name) = function.name.0.last().and_then(|part| part.as_ident()) else {
                return false;
            };
            let plain = |arg: &FunctionArg| match arg {
                FunctionArg::Unnamed(arg) | FunctionArg::Named { arg, .. } => match arg {
                    FunctionArgExpr::Expr(expr) => {
                        is_reference(expr) || matches!(expr, Expr::Value(_))
                    }
                    FunctionArgExpr::QualifiedWildcard(_)
                    | FunctionArgExpr::Wildcard
                    | FunctionArgExpr::WildcardWithOptions(_) => true,
                },
                FunctionArg::ExprNamed { .. } => false,
            };
            let plain_args = match &function.args {
                FunctionArguments::None => true,
                FunctionArguments::Subquery(_) => false,
                FunctionArguments::List(list) => list.args.iter().all(plain),
            };
            function.name.0.len() == 1
                && plain_args
                && matches!(function.parameters, FunctionArguments::None)
                && GATHERING_FUNCTIONS.contains(&name.value.to_ascii_lowercase().as_str())
        }
        _ => false,
    }
}

/// A column or whole-row reference, possibly parenthesised: its value is what is stored.
fn is_reference(expr: &Expr) -> bool {
    match expr {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => true,
        Expr::Nested(inner) => is_reference(inner),
        _ => false,
    }
}

/// Walks one expression: hands each node to [`Walker::special`] and, when it was taken by
/// hand, passes over the nodes beneath it (expressions and queries alike nest, so one level
/// counter tracks both).
struct ExprWalk<'w, 'c> {
    walker: &'w mut Walker<'c>,
    out: Derivation,
    level: usize,
    /// The level of the node taken by hand whose insides are being passed over.
    skip: Option<usize>,
}

impl Visitor for ExprWalk<'_, '_> {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        self.level += 1;
        if self.skip.is_none()
            && let Some(derivation) = self.walker.special(expr)
        {
            self.out.absorb(derivation);
            self.skip = Some(self.level);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.leave();
        ControlFlow::Continue(())
    }

    /// A query met anywhere else (a function's subquery argument in a clause not read by
    /// hand, a JSON path, …): its columns and predicates count.
    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.level += 1;
        if self.skip.is_none() {
            let derivation = self.walker.subquery(query, true);
            self.out.absorb(derivation);
            self.skip = Some(self.level);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.leave();
        ControlFlow::Continue(())
    }
}

impl ExprWalk<'_, '_> {
    fn leave(&mut self) {
        if self.skip == Some(self.level) {
            self.skip = None;
        }
        self.level -= 1;
    }
}
