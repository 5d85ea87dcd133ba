//! One table, one name: identifiers as the engine compares them.
//!
//! Policy matches table names as strings, so every spelling of a table that the engine
//! treats as the same table must normalise to the same string, or a case or quoting
//! trick would slip past a rule:
//! - PostgreSQL folds unquoted identifiers to lower case (ASCII only, as the server does
//!   for UTF-8 databases) and keeps quoted ones exactly: `Orders` is `orders`,
//!   `"Orders"` is `Orders`, and those are two different tables there.
//! - MariaDB and SQLite compare table names without regard to case whatever the quoting
//!   (SQLite always; MariaDB with the usual `lower_case_table_names`), so every identifier
//!   is folded: `` `Orders` ``, `"ORDERS"` and `orders` are all `orders`. Keeping the case
//!   of a quoted name there would let `"ORDERS"` past a rule about `orders`.
//! - A qualified name keeps its qualifier (`analytics.events`); no default schema is added.
//! - A part that itself holds a `.` or `"` is written in double quotes (`"a.b"`), so a
//!   quoted name cannot pass for a qualified one.

use sqlparser::ast::{Ident, ObjectName, ObjectNamePart};

use super::model::TableName;
use crate::datasource::Driver;

/// The longest identifier PostgreSQL keeps, in bytes (`NAMEDATALEN - 1`); it cuts longer
/// ones, so `orders` followed by any 60 letters may be a table of a shorter name.
const POSTGRES_MAX_IDENTIFIER: usize = 63;

/// One identifier, folded (and for PostgreSQL, cut) as `driver` does it.
pub(super) fn ident(driver: Driver, ident: &Ident) -> String {
    match driver {
        Driver::Postgres => {
            let mut folded = if ident.quote_style.is_some() {
                ident.value.clone()
            } else {
                ident.value.to_ascii_lowercase()
            };
            if folded.len() > POSTGRES_MAX_IDENTIFIER {
                let mut end = POSTGRES_MAX_IDENTIFIER;
                while !folded.is_char_boundary(end) {
                    end -= 1;
                }
                folded.truncate(end);
            }
            folded
        }
        Driver::Sqlite => ident.value.to_ascii_lowercase(),
        Driver::MySql => ident.value.to_lowercase(),
    }
}

/// A possibly qualified name, one normalised part after another.
pub(super) fn table(driver: Driver, name: &ObjectName) -> TableName {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(id) => render_part(&self::ident(driver, id)),
            // Dialect-specific name functions (`IDENTIFIER('t')`): kept as written, folded.
            ObjectNamePart::Function(_) => part.to_string().to_lowercase(),
        })
        .collect();
    TableName::new(parts.join("."))
}

/// A single identifier used as an object name (a schema, role or CTE name).
pub(super) fn single(driver: Driver, id: &Ident) -> TableName {
    TableName::new(render_part(&ident(driver, id)))
}

/// A name written as a string literal (`PRAGMA table_info('Orders')`): SQLite folds it.
pub(super) fn literal(text: &str) -> TableName {
    TableName::new(render_part(&text.to_ascii_lowercase()))
}

/// The identifiers of a name, each normalised, when every part is a plain identifier.
pub(super) fn parts(driver: Driver, name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .filter_map(|part| part.as_ident().map(|id| ident(driver, id)))
        .collect()
}

fn render_part(part: &str) -> String {
    if part.contains(['.', '"']) {
        format!("\"{}\"", part.replace('"', "\"\""))
    } else {
        part.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::ast::Ident;

    fn name(parts: &[Ident]) -> ObjectName {
        ObjectName::from(parts.to_vec())
    }

    #[test]
    fn postgres_folds_unquoted_and_keeps_quoted() {
        let unquoted = name(&[Ident::new("Orders")]);
        let quoted = name(&[Ident::with_quote('"', "Orders")]);
        assert_eq!(table(Driver::Postgres, &unquoted).as_str(), "orders");
        assert_eq!(table(Driver::Postgres, &quoted).as_str(), "Orders");
    }

    #[test]
    fn mariadb_and_sqlite_fold_every_identifier() {
        for driver in [Driver::MySql, Driver::Sqlite] {
            for quote in ['`', '"', '['] {
                let quoted = name(&[Ident::with_quote(quote, "ORDERS")]);
                assert_eq!(
                    table(driver, &quoted).as_str(),
                    "orders",
                    "{driver:?} {quote}"
                );
            }
        }
    }

    #[test]
    fn qualified_names_keep_their_qualifier() {
        let qualified = name(&[Ident::new("Analytics"), Ident::with_quote('"', "Events")]);
        assert_eq!(
            table(Driver::Postgres, &qualified).as_str(),
            "analytics.Events"
        );
        assert_eq!(
            table(Driver::MySql, &qualified).as_str(),
            "analytics.events"
        );
    }

    #[test]
    fn a_quoted_dot_cannot_pass_for_a_qualifier() {
        let dotted = name(&[Ident::with_quote('"', "public.orders")]);
        assert_eq!(
            table(Driver::Postgres, &dotted).as_str(),
            "\"public.orders\""
        );
        let quote = name(&[Ident::with_quote('"', "a\"b")]);
        assert_eq!(table(Driver::Postgres, &quote).as_str(), "\"a\"\"b\"");
    }

    #[test]
    fn postgres_cuts_long_identifiers_as_the_server_does() {
        let long = format!("orders{}", "x".repeat(70));
        let cut = table(Driver::Postgres, &name(&[Ident::new(long.to_uppercase())]));
        assert_eq!(cut.as_str(), &long[..63]);
        // A multi-byte character is never split.
        let accented = format!("{}é", "a".repeat(62));
        let cut = table(Driver::Postgres, &name(&[Ident::with_quote('"', accented)]));
        assert_eq!(cut.as_str(), "a".repeat(62));
    }

    #[test]
    fn string_literal_names_fold() {
        assert_eq!(literal("Orders").as_str(), "orders");
    }
}
