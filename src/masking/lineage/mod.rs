//! Column lineage: which base-table columns each result column of a statement derives from,
//! and which base-table columns the statement uses to decide what comes back.
//!
//! Masking classifies a result column by the columns it derives from, so lineage must never
//! lose a source: every rule here errs towards *more* sources, and whatever this module cannot
//! trace is reported as unresolved, which the gateway masks (fail closed). The walk follows
//! the scoping the engines use, because a wrong resolution is a leak: `SELECT x FROM
//! (SELECT email AS x FROM customers) s` must find `customers.email` behind `x`.
//!
//! # Result columns
//!
//! - **Names** resolve as the engine resolves them: table aliases, `*` and `t.*` (expanded
//!   from the [`Catalog`] in catalog order, joins left to right), unqualified names (searched
//!   in the FROM scope, then outwards for correlated subqueries), CTEs (PostgreSQL and
//!   MariaDB: a CTE sees the ones before it, or all of them with RECURSIVE; SQLite: all of
//!   them always; a recursive CTE is walked until its lineage stops growing), derived
//!   tables, LATERAL, column alias lists (`AS s(a, b)`), set operations (column `i` derives
//!   from column `i` of every arm), VALUES, nested and aliased joins. `JOIN … USING` and
//!   `NATURAL JOIN` merge their columns in each engine's own order (PostgreSQL: the USING
//!   list first; MariaDB: the left table's order, the right table's for RIGHT JOIN; SQLite:
//!   the left table's columns in place), since the gateway matches result columns by
//!   position. A name that is unknown, or ambiguous (an error in every engine), is
//!   unresolved.
//! - **Expressions** derive from every column they reference: function arguments, operators,
//!   casts, CASE (conditions as well as results), array and JSON constructors, subqueries
//!   (their result columns and the columns they filter on), ordered-set aggregates
//!   (`percentile_disc(…) WITHIN GROUP (ORDER BY ssn)` returns an `ssn`). A whole-row
//!   reference (`row_to_json(c)`, `c`, `c.*` as an argument, PostgreSQL's `c.f` for `f(c)`)
//!   derives from every column of `c`. Functions not known here inherit all their arguments.
//!   [`OutputColumn::computed`] tells a computed value from a stored one.
//! - **Aggregates that cannot reveal a value**, `count(*)`, `count(x)` and
//!   `count(DISTINCT x)`, derive from nothing. Every other aggregate keeps its sources.
//!   Literals, placeholders and `@@system` variables derive from nothing; a MariaDB user
//!   variable (`@v`) is unresolved, since an earlier statement may have stored anything in
//!   it. A MariaDB double-quoted string that names a column counts as that column (under
//!   `ANSI_QUOTES` it is one).
//! - **Fail closed**: an unknown table, a table-valued function, `*` over either, or a
//!   construct this walk does not model makes the affected columns unresolved, or the whole
//!   result shape unknown (`outputs: None`) when the number or order of columns depends on
//!   it.
//!
//! # Predicates
//!
//! [`Lineage::predicates`] collects the base columns that decide which rows or values come
//! back without being returned themselves: WHERE, JOIN ON/USING/NATURAL, GROUP BY, HAVING,
//! ORDER BY (also by result alias or position), DISTINCT ON, LIMIT/OFFSET/FETCH, QUALIFY,
//! window PARTITION BY/ORDER BY/frames, aggregate FILTER and argument ORDER BY, CASE
//! conditions, everything inside EXISTS/IN/scalar subqueries, table-function arguments,
//! UPDATE/DELETE WHERE, MERGE ON. Uses that compare values with each other answer the same
//! questions a WHERE would, so they count too: `SELECT DISTINCT`, `count(DISTINCT x)` and
//! `UNION`/`INTERSECT`/`EXCEPT` without `ALL` add the lineage of what they compare
//! (`SELECT ssn FROM customers WHERE id = 1 UNION SELECT '123-45-6789'` returns one row
//! exactly when the guess is right), and so does a `count` of anything but a stored value
//! (`count(NULLIF(ssn LIKE '1%', false))` counts a condition).
//!
//! Columns whose values a statement *copies* are predicates as well: what an INSERT writes
//! (its SELECT's or VALUES' result columns), UPDATE and upsert assignments, MERGE actions,
//! `CREATE TABLE … AS`, `CREATE VIEW`, `SELECT … INTO`, COPY of a query, subqueries inside
//! SET, trigger bodies, and columns or tables that ALTER/RENAME renames or a generated
//! column reads. A later read of the copy is no longer traced to the original column, so the
//! copy is where policy must see it.
//!
//! # Computations
//!
//! [`Lineage::computed_over`] collects the base columns any expression computes on, output
//! or not (a derived table's unused column is evaluated all the same): functions,
//! operators, casts, comparisons. A computed value over a masked column comes back
//! redacted, but whether computing it fails, stalls or turns NULL still depends on the
//! value. Calls that only gather stored values (`min`, `max`, `string_agg`,
//! `group_concat`, `array_agg`, JSON aggregates and builders, `coalesce`, `concat`, over
//! plain columns, whole rows or literals) and scalar subqueries do not count as computing;
//! what they hold is judged on its own.
//!
//! # Statements
//!
//! A query returns its result columns; INSERT/UPDATE/DELETE with RETURNING return the
//! RETURNING list over the target, whose columns also derive from the values just written
//! (`UPDATE products SET title = (SELECT ssn …) RETURNING title` returns an `ssn`).
//! Statements known to return no rows (writes without RETURNING, DDL, SET, transactions,
//! locks, …) have an empty result. Everything else (SHOW, EXPLAIN, PRAGMA, DESCRIBE, CALL,
//! EXECUTE, FETCH, COPY …) has an unknown result, so every column is masked; EXPLAIN keeps
//! the predicates of the statement it explains, whose row counts and estimates it reports.
//!
//! # Cost
//!
//! The walk borrows the AST and never clones it; a column costs a shared name and a few
//! source ids, and `SourceColumn`s are built once, for the result. Whatever a text asks for
//! is bounded, and past a bound the lineage is given up (result unknown, predicates
//! unresolved): queries walked (recursive CTEs walk their body several times), columns and
//! sources held at once, result width (4096, the widest any engine returns), and sources per
//! value (a value deriving from hundreds of columns is unresolved instead). Long UNION
//! chains and CTE lists are walked with loops, wide scopes through name indexes.

mod expr;
mod scope;
mod walk;

use std::collections::BTreeSet;

use sqlparser::ast::Statement;

use crate::datasource::Driver;
use crate::intent::TableName;

/// What lineage needs from the datasource's catalog: the columns of a table, in order.
pub trait Catalog {
    /// `None` when the table is unknown. Implementations resolve default schemas themselves
    /// (PG `public.x` == `x`, SQLite `main.x` == `x`, MariaDB `<current db>.x` == `x`).
    fn columns(&self, table: &TableName) -> Option<Vec<String>>;
}

/// One column of a base table (or view) as the statement names the table
/// ([`crate::intent::table_name`]) and as the catalog spells the column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceColumn {
    pub table: TableName,
    pub column: String,
}

/// One result column of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputColumn {
    /// As the database will name it, best effort: the alias, else the column's name for a
    /// plain column reference, else the function's name, else `?column?`. The gateway
    /// matches outputs to result columns by position, not by name.
    pub name: String,
    /// Every base-table column the value derives from.
    pub sources: BTreeSet<SourceColumn>,
    /// False when part of the value could not be traced: the gateway masks it.
    pub resolved: bool,
    /// The value is computed from its sources (a function, operator, cast, CASE, subquery,
    /// whole-row reference, …) rather than being the stored value of one of them (through
    /// any number of aliases, derived tables, CTEs, UNION arms or USING merges). Only a
    /// stored value may be masked with a strategy that keeps part of it: an HMAC token of
    /// `substr(ssn, 1, 1)` or of `ssn LIKE '1%'` is an oracle (compare it with the token
    /// of `substr('1' || ssn, 1, 1)`), and a partial mask of `ssn LIKE '1%'` shows `true`
    /// or `alse`. A computed column with a class the caller may not see should be
    /// redacted (or nulled) whole.
    pub computed: bool,
}

/// Where a statement's result comes from; see the module docs for the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    /// One entry per result column, in order; `None` when the result's shape cannot be
    /// determined (then every result column is masked).
    pub outputs: Option<Vec<OutputColumn>>,
    /// Base-table columns the statement filters, joins, groups, orders, windows on or
    /// otherwise uses to decide which rows/values come back (WHERE, JOIN ON/USING, GROUP BY,
    /// HAVING, ORDER BY, QUALIFY, window PARTITION/ORDER, DISTINCT ON, LIMIT expressions,
    /// CASE WHEN conditions, predicates inside subqueries, EXISTS/IN subqueries,
    /// UPDATE/DELETE WHERE), plus the result columns of DISTINCT and of set operations
    /// without ALL, and the columns whose values a write or DDL copies elsewhere.
    pub predicates: BTreeSet<SourceColumn>,
    /// A predicate referenced a column that could not be resolved to a base column.
    pub unresolved_predicates: bool,
    /// Base-table columns some expression of the statement computes on (a function,
    /// operator, cast, comparison, …), wherever it stands, output or not, except
    /// expressions that only gather stored values (`min`, `max`, `string_agg`,
    /// `json_build_object`, `coalesce`, … over plain columns). A computed value over a
    /// masked column comes back redacted, but whether computing it fails
    /// (`1 / (ascii(ssn) - 49)`, `CAST(ssn AS int)`) or yields NULL
    /// (`nullif(ssn, '123-45-6789')`) depends on the value: an oracle.
    pub computed_over: BTreeSet<SourceColumn>,
    /// Something computed on could not be traced to a column.
    pub unresolved_computed: bool,
}

/// The lineage of one parsed statement (from [`crate::intent::parse`] with the same
/// `driver`) against `catalog`.
pub fn lineage(driver: Driver, statement: &Statement, catalog: &dyn Catalog) -> Lineage {
    let mut walker = walk::Walker::new(driver, catalog);
    let shape = walker.statement(statement);
    walker.finish(shape)
}

#[cfg(test)]
mod tests;
