//! Statement fingerprints: one identifier for every statement of the same shape.
//!
//! Literals are replaced by `?` before hashing, so `SELECT * FROM t WHERE id = 1` and
//! `… id = 2` share a fingerprint. The audit trail stores it beside the (PII-masked)
//! statement text, so a SIEM can group and count statements without ever seeing the
//! literal values, and an unusual shape stands out.

use std::ops::ControlFlow;

use sha2::{Digest, Sha256};
use sqlparser::ast::{Expr, Statement, Value, visit_expressions_mut};

/// Hex of the first 16 bytes of SHA-256 over the literal-free rendering of `statements`.
/// 128 bits: collisions are not a practical concern for grouping.
pub fn fingerprint(statements: &[Statement]) -> String {
    let mut hasher = Sha256::new();
    for (i, statement) in statements.iter().enumerate() {
        let mut shape = statement.clone();
        let _ = visit_expressions_mut(&mut shape, |expr| {
            if let Expr::Value(value) = expr {
                value.value = Value::Placeholder("?".to_owned());
            }
            ControlFlow::<()>::Continue(())
        });
        if i > 0 {
            hasher.update(b";\n");
        }
        hasher.update(shape.to_string().as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasource::Driver;

    fn of(driver: Driver, sql: &str) -> String {
        fingerprint(&crate::intent::parse(driver, sql).unwrap())
    }

    #[test]
    fn literals_do_not_change_the_fingerprint_but_the_shape_does() {
        let a = of(
            Driver::Postgres,
            "SELECT * FROM t WHERE id = 1 AND name = 'x'",
        );
        let b = of(
            Driver::Postgres,
            "select *  from t where id = 42 and name = 'y'",
        );
        let c = of(
            Driver::Postgres,
            "SELECT * FROM t WHERE id = 1 OR name = 'x'",
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 32);
        assert_ne!(
            of(Driver::Sqlite, "SELECT 1; SELECT 2"),
            of(Driver::Sqlite, "SELECT 1")
        );
    }
}
