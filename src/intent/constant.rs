//! Is a WHERE clause a real row filter? Constant folding over literals, three-valued.
//!
//! An UPDATE or DELETE is *unbounded* when nothing in its WHERE picks rows out: no WHERE,
//! a WHERE that folds to true over its literals (`1=1`, `true`, `'a'='a'`, `1`, `NOT false`,
//! `1=1 OR x=2`, `(1)`, `2>1`, `1 IS NOT NULL`), or one that does not depend on the row at
//! all and cannot be folded (`$1`, `'t'::boolean`, `random() < 2`, `EXISTS (SELECT 1)` is
//! not among these: a subquery may be correlated, so it counts as depending on the row).
//! Such a condition is either true for every row or for none; with a parameter or a
//! function the caller picks which, so it is no bound. A WHERE that folds to false or NULL
//! touches no row and is bounded. `x = x` and `id > 0` depend on the row and are bounded:
//! telling those apart from real filters needs the data, not the text.

use std::cmp::Ordering;
use std::ops::ControlFlow;

use sqlparser::ast::{BinaryOperator, Expr, Query, UnaryOperator, Value, Visit, Visitor};

use crate::datasource::Driver;

/// Whether an UPDATE/DELETE with this WHERE clause (if any) may touch every row.
pub(super) fn is_unbounded(driver: Driver, selection: Option<&Expr>) -> bool {
    let Some(condition) = selection else {
        return true;
    };
    let folder = Folder {
        driver,
        depth: std::cell::Cell::new(0),
    };
    match folder.truth(condition) {
        Truth::True => true,
        Truth::False | Truth::Null => false,
        Truth::Unknown => !depends_on_row(condition),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    True,
    False,
    Null,
    /// Not foldable from the text alone.
    Unknown,
}

impl Truth {
    fn from_bool(value: bool) -> Truth {
        if value { Truth::True } else { Truth::False }
    }

    fn not(self) -> Truth {
        match self {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            other => other,
        }
    }

    /// Kleene AND, with `Unknown` standing for "true, false or null".
    fn and(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::False, _) | (_, Truth::False) => Truth::False,
            (Truth::Unknown, _) | (_, Truth::Unknown) => Truth::Unknown,
            (Truth::Null, _) | (_, Truth::Null) => Truth::Null,
            (Truth::True, Truth::True) => Truth::True,
        }
    }

    fn or(self, other: Truth) -> Truth {
        self.not().and(other.not()).not()
    }

    fn xor(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::Unknown, _) | (_, Truth::Unknown) => Truth::Unknown,
            (Truth::Null, _) | (_, Truth::Null) => Truth::Null,
            _ => Truth::from_bool(self != other),
        }
    }
}

/// A literal value folded from the text.
#[derive(Debug, Clone, PartialEq)]
enum Const {
    Bool(bool),
    Num(f64),
    Str(String),
    Null,
}

/// How deep the folder follows an expression. sqlparser builds `a OR b OR c …` as a
/// left-deep tree as long as the text; past this depth the rest is `Unknown` (which the
/// three-valued logic treats as "could be anything"), so a long chain cannot overflow the
/// stack of the request's task.
const MAX_DEPTH: usize = 256;

struct Folder {
    driver: Driver,
    depth: std::cell::Cell<usize>,
}

impl Folder {
    fn truth(&self, expr: &Expr) -> Truth {
        if self.depth.get() >= MAX_DEPTH {
            return Truth::Unknown;
        }
        self.depth.set(self.depth.get() + 1);
        let truth = self.truth_inner(expr);
        self.depth.set(self.depth.get() - 1);
        truth
    }

    fn truth_inner(&self, expr: &Expr) -> Truth {
        match expr {
            Expr::Nested(inner) => self.truth(inner),
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => self.truth(expr).not(),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => self.truth(left).and(self.truth(right)),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Or,
                right,
            } => self.truth(left).or(self.truth(right)),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Xor,
                right,
            } => self.truth(left).xor(self.truth(right)),
            other => match self.value(other) {
                Some(value) => self.truth_of(&value),
                None => Truth::Unknown,
            },
        }
    }

    fn truth_of(&self, value: &Const) -> Truth {
        match value {
            Const::Bool(b) => Truth::from_bool(*b),
            // MariaDB and SQLite take any non-zero number as true (PostgreSQL refuses a
            // number as a condition, so the answer there does not matter).
            Const::Num(n) => Truth::from_bool(*n != 0.0),
            Const::Null => Truth::Null,
            // `'t'` is true in PostgreSQL, `'1'` in MariaDB, `'abc'` false in MariaDB and
            // an error in PostgreSQL: leave it to the row-independence rule.
            Const::Str(_) => Truth::Unknown,
        }
    }

    fn value(&self, expr: &Expr) -> Option<Const> {
        if self.depth.get() >= MAX_DEPTH {
            return None;
        }
        self.depth.set(self.depth.get() + 1);
        let value = self.value_inner(expr);
        self.depth.set(self.depth.get() - 1);
        value
    }

    fn value_inner(&self, expr: &Expr) -> Option<Const> {
        match expr {
            Expr::Nested(inner) => self.value(inner),
            Expr::Value(value) => literal(&value.value),
            // SQLite reads a double-quoted name that matches no column as a string, so
            // `"a" = "a"` is true for every row there.
            Expr::Identifier(id)
                if self.driver == Driver::Sqlite && id.quote_style == Some('"') =>
            {
                Some(Const::Str(id.value.clone()))
            }
            Expr::UnaryOp { op, expr } => match (op, self.value(expr)?) {
                (UnaryOperator::Minus, Const::Num(n)) => Some(Const::Num(-n)),
                (UnaryOperator::Plus, Const::Num(n)) => Some(Const::Num(n)),
                (UnaryOperator::Not, value) => self.bool_value(self.truth_of(&value).not()),
                _ => None,
            },
            Expr::BinaryOp { left, op, right } => self.binary(left, op, right),
            Expr::IsNull(inner) => Some(Const::Bool(self.value(inner)? == Const::Null)),
            Expr::IsNotNull(inner) => Some(Const::Bool(self.value(inner)? != Const::Null)),
            Expr::IsTrue(inner) => self.is(inner, Truth::True, false),
            Expr::IsNotTrue(inner) => self.is(inner, Truth::True, true),
            Expr::IsFalse(inner) => self.is(inner, Truth::False, false),
            Expr::IsNotFalse(inner) => self.is(inner, Truth::False, true),
            Expr::IsDistinctFrom(a, b) => self.distinct(a, b).map(Const::Bool),
            Expr::IsNotDistinctFrom(a, b) => self.distinct(a, b).map(|d| Const::Bool(!d)),
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let (value, low, high) = (self.value(expr)?, self.value(low)?, self.value(high)?);
                let above = self.compare(&value, &low).map(|o| o != Ordering::Less);
                let below = self.compare(&value, &high).map(|o| o != Ordering::Greater);
                let inside = match (above, below) {
                    (Ok(a), Ok(b)) => Truth::from_bool(a).and(Truth::from_bool(b)),
                    (Err(Unordered::Null), _) | (_, Err(Unordered::Null)) => Truth::Null,
                    _ => return None,
                };
                self.bool_value(if *negated { inside.not() } else { inside })
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let value = self.value(expr)?;
                let mut found = Truth::False;
                for item in list {
                    let item = self.value(item)?;
                    found = found.or(self.equals(&value, &item)?);
                }
                self.bool_value(if *negated { found.not() } else { found })
            }
            _ => None,
        }
    }

    fn bool_value(&self, truth: Truth) -> Option<Const> {
        match truth {
            Truth::True => Some(Const::Bool(true)),
            Truth::False => Some(Const::Bool(false)),
            Truth::Null => Some(Const::Null),
            Truth::Unknown => None,
        }
    }

    fn is(&self, inner: &Expr, wanted: Truth, negated: bool) -> Option<Const> {
        let truth = self.truth(inner);
        if truth == Truth::Unknown {
            return None;
        }
        Some(Const::Bool((truth == wanted) != negated))
    }

    fn distinct(&self, a: &Expr, b: &Expr) -> Option<bool> {
        let (a, b) = (self.value(a)?, self.value(b)?);
        match (&a, &b) {
            (Const::Null, Const::Null) => Some(false),
            (Const::Null, _) | (_, Const::Null) => Some(true),
            _ => match self.compare(&a, &b) {
                Ok(order) => Some(order != Ordering::Equal),
                Err(_) => None,
            },
        }
    }

    fn binary(&self, left: &Expr, op: &BinaryOperator, right: &Expr) -> Option<Const> {
        use BinaryOperator as Op;
        match op {
            Op::And => return self.bool_value(self.truth(left).and(self.truth(right))),
            Op::Or => return self.bool_value(self.truth(left).or(self.truth(right))),
            Op::Xor => return self.bool_value(self.truth(left).xor(self.truth(right))),
            Op::Spaceship => return self.distinct(left, right).map(|d| Const::Bool(!d)),
            _ => {}
        }
        let (l, r) = (self.value(left)?, self.value(right)?);
        let order = |test: fn(Ordering) -> bool| match self.compare(&l, &r) {
            Ok(order) => Some(Const::Bool(test(order))),
            Err(Unordered::Null) => Some(Const::Null),
            Err(Unordered::Unknown) => None,
        };
        match op {
            Op::Eq => order(|o| o == Ordering::Equal),
            Op::NotEq => order(|o| o != Ordering::Equal),
            Op::Lt => order(|o| o == Ordering::Less),
            Op::LtEq => order(|o| o != Ordering::Greater),
            Op::Gt => order(|o| o == Ordering::Greater),
            Op::GtEq => order(|o| o != Ordering::Less),
            Op::Plus | Op::Minus | Op::Multiply => match (number(&l)?, number(&r)?) {
                (Some(a), Some(b)) => Some(Const::Num(match op {
                    Op::Plus => a + b,
                    Op::Minus => a - b,
                    _ => a * b,
                })),
                _ => Some(Const::Null),
            },
            Op::StringConcat => match (l, r) {
                (Const::Str(a), Const::Str(b)) => Some(Const::Str(a + &b)),
                _ => None,
            },
            _ => None,
        }
    }

    fn equals(&self, a: &Const, b: &Const) -> Option<Truth> {
        match self.compare(a, b) {
            Ok(order) => Some(Truth::from_bool(order == Ordering::Equal)),
            Err(Unordered::Null) => Some(Truth::Null),
            Err(Unordered::Unknown) => None,
        }
    }

    fn compare(&self, a: &Const, b: &Const) -> Result<Ordering, Unordered> {
        match (a, b) {
            (Const::Null, _) | (_, Const::Null) => Err(Unordered::Null),
            (Const::Str(a), Const::Str(b)) => Ok(if self.driver == Driver::MySql {
                // MariaDB's default collations compare without regard to case.
                a.to_lowercase().cmp(&b.to_lowercase())
            } else {
                a.cmp(b)
            }),
            (Const::Bool(a), Const::Bool(b)) => Ok(a.cmp(b)),
            _ => match (number(a), number(b)) {
                (Some(Some(a)), Some(Some(b))) => a.partial_cmp(&b).ok_or(Unordered::Unknown),
                _ => Err(Unordered::Unknown),
            },
        }
    }
}

enum Unordered {
    Null,
    Unknown,
}

/// The number a constant stands for in arithmetic and mixed comparisons: `Some(None)` for
/// NULL, `None` when the text does not say (a string that is not a number).
fn number(value: &Const) -> Option<Option<f64>> {
    match value {
        Const::Num(n) => Some(Some(*n)),
        Const::Bool(b) => Some(Some(if *b { 1.0 } else { 0.0 })),
        Const::Str(s) => s.trim().parse().ok().map(Some),
        Const::Null => Some(None),
    }
}

fn literal(value: &Value) -> Option<Const> {
    match value {
        Value::Number(text, _) => text.parse().ok().map(Const::Num),
        Value::SingleQuotedString(s)
        | Value::DoubleQuotedString(s)
        | Value::NationalStringLiteral(s)
        | Value::EscapedStringLiteral(s)
        | Value::UnicodeStringLiteral(s) => Some(Const::Str(s.clone())),
        Value::DollarQuotedString(s) => Some(Const::Str(s.value.clone())),
        Value::Boolean(b) => Some(Const::Bool(*b)),
        Value::Null => Some(Const::Null),
        // Placeholders and the rest: not known from the text.
        _ => None,
    }
}

/// Whether the condition may differ from row to row: it names a column or holds a
/// subquery (which may be correlated). MariaDB user variables (`@v`) are not columns.
fn depends_on_row(condition: &Expr) -> bool {
    struct RowReference;
    impl Visitor for RowReference {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::Identifier(id) if !id.value.starts_with('@') => ControlFlow::Break(()),
                Expr::CompoundIdentifier(_) => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
        fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
            ControlFlow::Break(())
        }
    }
    condition.visit(&mut RowReference).is_break()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::{MySqlDialect, PostgreSqlDialect, SQLiteDialect};
    use sqlparser::parser::Parser;

    fn unbounded(driver: Driver, sql: &str) -> bool {
        let text = format!("DELETE FROM t WHERE {sql}");
        let statements = match driver {
            Driver::Postgres => Parser::parse_sql(&PostgreSqlDialect {}, &text),
            Driver::MySql => Parser::parse_sql(&MySqlDialect {}, &text),
            Driver::Sqlite => Parser::parse_sql(&SQLiteDialect {}, &text),
        }
        .unwrap();
        match &statements[0] {
            sqlparser::ast::Statement::Delete(delete) => {
                is_unbounded(driver, delete.selection.as_ref())
            }
            other => panic!("not a delete: {other}"),
        }
    }

    #[test]
    fn no_where_is_unbounded() {
        assert!(is_unbounded(Driver::Postgres, None));
    }

    #[test]
    fn constant_true_conditions_are_unbounded() {
        for sql in [
            "1=1",
            "true",
            "TRUE",
            "'a'='a'",
            "1",
            "NOT false",
            "1=1 OR x=2",
            "x=2 OR 1=1",
            "(1)",
            "((1 = 1))",
            "2>1",
            "1 IS NOT NULL",
            "NULL IS NULL",
            "1 <> 2",
            "1 + 1 = 2",
            "-1 < 0",
            "1 BETWEEN 0 AND 2",
            "3 IN (1, 2, 3)",
            "'1' = 1",
            "true IS TRUE",
            "NOT (1 = 2)",
            "1 = 1 AND 2 = 2",
            "1 IS DISTINCT FROM 2",
        ] {
            assert!(unbounded(Driver::Postgres, sql), "{sql}");
        }
        assert!(unbounded(Driver::MySql, "'A' = 'a'"));
        assert!(unbounded(Driver::MySql, "\"a\" = \"a\""));
        assert!(unbounded(Driver::MySql, "1 <=> 1"));
        assert!(unbounded(Driver::MySql, "1 XOR 0"));
        assert!(unbounded(Driver::Sqlite, "\"a\" = \"a\""));
    }

    #[test]
    fn row_independent_conditions_are_unbounded() {
        for sql in [
            "$1",
            "$1 = $2",
            "'t'::boolean",
            "random() < 2",
            "now() > '2000-01-01'",
        ] {
            assert!(unbounded(Driver::Postgres, sql), "{sql}");
        }
        assert!(unbounded(Driver::MySql, "@all = 1"));
    }

    #[test]
    fn long_chains_fold_without_exhausting_the_stack() {
        let run = |sql: String| {
            std::thread::Builder::new()
                .stack_size(2 * 1024 * 1024)
                .spawn(move || unbounded(Driver::Postgres, &sql))
                .unwrap()
                .join()
                .unwrap()
        };
        // Past the depth limit the chain is unknown and row-independent: unbounded.
        assert!(run(vec!["1 = 1"; 5000].join(" AND ")));
        assert!(!run(vec!["id = 1"; 5000].join(" OR ")));
        // A decisive term near the top still decides.
        assert!(!run(format!(
            "{} AND false",
            vec!["1 = 1"; 5000].join(" AND ")
        )));
    }

    #[test]
    fn row_filters_and_false_conditions_are_bounded() {
        for sql in [
            "x = x",
            "id > 0",
            "id = 1",
            "id = $1",
            "1=1 AND id = 5",
            "false",
            "1 = 0",
            "NULL",
            "NULL = NULL",
            "1 = 1 AND false",
            "NOT true",
            "id IN (SELECT id FROM s)",
            "EXISTS (SELECT 1 FROM s WHERE s.id = t.id)",
            "t.id IS NOT NULL",
            "'a' = 'A'",
        ] {
            assert!(!unbounded(Driver::Postgres, sql), "{sql}");
        }
        assert!(!unbounded(Driver::Sqlite, "\"id\" = 5"));
    }
}
