use super::*;
use crate::intent;

const ALL: [Driver; 3] = [Driver::Postgres, Driver::MySql, Driver::Sqlite];

/// customers(id, name, email, ssn, phone, notes), orders(id, customer_id, card_number,
/// total, notes), products(id, sku, title); `public.`/`main.` resolve to the same tables.
struct Shop;

impl Catalog for Shop {
    fn columns(&self, table: &TableName) -> Option<Vec<String>> {
        let name = table.as_str();
        let name = name
            .strip_prefix("public.")
            .or_else(|| name.strip_prefix("main."))
            .unwrap_or(name);
        let columns: &[&str] = match name {
            "customers" => &["id", "name", "email", "ssn", "phone", "notes"],
            "orders" => &["id", "customer_id", "card_number", "total", "notes"],
            "products" => &["id", "sku", "title"],
            _ => return None,
        };
        Some(columns.iter().map(|c| (*c).to_owned()).collect())
    }
}

fn run(driver: Driver, sql: &str) -> Lineage {
    let statements = intent::parse(driver, sql)
        .unwrap_or_else(|e| panic!("{driver:?} does not parse {sql}: {e:?}"));
    assert_eq!(statements.len(), 1, "{sql}");
    lineage(driver, &statements[0], &Shop)
}

fn render(source: &SourceColumn) -> String {
    format!("{}.{}", source.table, source.column)
}

/// Each output as `name <- table.column, …` (`name <-` for none), with ` !` when
/// unresolved.
fn outputs(lineage: &Lineage) -> Option<Vec<String>> {
    lineage.outputs.as_ref().map(|outputs| {
        outputs
            .iter()
            .map(|o| {
                let sources: Vec<String> = o.sources.iter().map(render).collect();
                let mut line = o.name.clone();
                if !sources.is_empty() {
                    line.push_str(" <- ");
                    line.push_str(&sources.join(", "));
                } else if o.resolved {
                    line.push_str(" <-");
                }
                if !o.resolved {
                    line.push_str(" !");
                }
                line
            })
            .collect()
    })
}

/// The predicates, with `?` last when some were unresolved.
fn predicates(lineage: &Lineage) -> Vec<String> {
    let mut rendered: Vec<String> = lineage.predicates.iter().map(render).collect();
    if lineage.unresolved_predicates {
        rendered.push("?".to_owned());
    }
    rendered
}

fn expect(driver: Driver, sql: &str, want: &[&str]) -> Lineage {
    let lineage = run(driver, sql);
    let got = outputs(&lineage);
    assert_eq!(
        got,
        Some(want.iter().map(|s| (*s).to_owned()).collect()),
        "{driver:?}: {sql}"
    );
    lineage
}

fn expect_predicates(lineage: &Lineage, want: &[&str], context: &str) {
    assert_eq!(predicates(lineage), want, "{context}");
}

/// Every source of every output, for the adversarial cases: what must never go missing.
fn all_sources(lineage: &Lineage) -> Vec<String> {
    let mut all: Vec<String> = lineage
        .outputs
        .iter()
        .flatten()
        .flat_map(|o| o.sources.iter().map(render))
        .collect();
    all.sort();
    all.dedup();
    all
}

// ----- plain columns, aliases, stars ------------------------------------------------------

#[test]
fn plain_columns_and_aliases() {
    for driver in ALL {
        let l = expect(
            driver,
            "SELECT id, email AS contact, c.ssn FROM customers c",
            &[
                "id <- customers.id",
                "contact <- customers.email",
                "ssn <- customers.ssn",
            ],
        );
        expect_predicates(&l, &[], "no predicates");
    }
}

#[test]
fn star_expands_in_catalog_order_and_joins_left_to_right() {
    for driver in ALL {
        expect(
            driver,
            "SELECT * FROM products p, orders o",
            &[
                "id <- products.id",
                "sku <- products.sku",
                "title <- products.title",
                "id <- orders.id",
                "customer_id <- orders.customer_id",
                "card_number <- orders.card_number",
                "total <- orders.total",
                "notes <- orders.notes",
            ],
        );
        expect(
            driver,
            "SELECT o.*, p.title FROM orders o JOIN products p ON p.id = o.id",
            &[
                "id <- orders.id",
                "customer_id <- orders.customer_id",
                "card_number <- orders.card_number",
                "total <- orders.total",
                "notes <- orders.notes",
                "title <- products.title",
            ],
        );
    }
}

#[test]
fn qualified_table_names_keep_their_qualifier() {
    let l = expect(
        Driver::Postgres,
        "SELECT public.customers.ssn, customers.email FROM public.customers",
        &[
            "ssn <- public.customers.ssn",
            "email <- public.customers.email",
        ],
    );
    expect_predicates(&l, &[], "qualified");
    expect(
        Driver::Sqlite,
        "SELECT main.customers.ssn FROM customers",
        &["ssn <- customers.ssn"],
    );
}

#[test]
fn mariadb_and_sqlite_compare_names_case_insensitively() {
    for driver in [Driver::MySql, Driver::Sqlite] {
        let l = run(
            driver,
            "SELECT EMAIL, C.Ssn FROM CUSTOMERS C WHERE C.PHONE = '1'",
        );
        assert_eq!(all_sources(&l), ["customers.email", "customers.ssn"]);
        assert!(l.outputs.iter().flatten().all(|o| o.resolved));
        expect_predicates(&l, &["customers.phone"], "case");
    }
}

#[test]
fn computed_values_are_told_from_stored_ones() {
    let l = run(
        Driver::Postgres,
        "SELECT ssn, s.x, u.e, upper(email), s.y, c, c.fullname, ssn LIKE '1%', count(*) \
         FROM customers c, (SELECT ssn AS x, lower(name) AS y FROM customers) s, \
         (SELECT email AS e FROM customers UNION SELECT title FROM products) u",
    );
    let computed: Vec<bool> = l.outputs.iter().flatten().map(|o| o.computed).collect();
    assert_eq!(
        computed,
        [false, false, false, true, true, true, true, true, false]
    );
    let l = run(
        Driver::Postgres,
        "UPDATE products SET title = upper(sku) RETURNING title, sku",
    );
    let computed: Vec<bool> = l.outputs.iter().flatten().map(|o| o.computed).collect();
    assert_eq!(computed, [true, false]);
}

#[test]
fn postgres_keeps_quoted_case() {
    expect(
        Driver::Postgres,
        r#"SELECT EMAIL, "email", "EMAIL" FROM CUSTOMERS"#,
        &[
            "email <- customers.email",
            "email <- customers.email",
            "EMAIL !",
        ],
    );
}

#[test]
fn unknown_names_are_unresolved() {
    for driver in ALL {
        expect(driver, "SELECT nope FROM customers", &["nope !"]);
        expect(
            driver,
            "SELECT c.nope, x.id FROM customers c",
            &[
                // A known relation without the column: PostgreSQL reads `c.nope` as `nope(c)`,
                // a function of the whole row.
                "nope <- customers.email, customers.id, customers.name, customers.notes, customers.phone, customers.ssn",
                "id !",
            ],
        );
        let l = run(driver, "SELECT * FROM nowhere");
        assert_eq!(l.outputs, None, "{driver:?}");
        expect(driver, "SELECT a, 1 AS b FROM nowhere", &["a !", "b <-"]);
        let l = run(driver, "SELECT id FROM customers WHERE ghost = 1");
        expect_predicates(&l, &["?"], "unknown predicate column");
    }
}

#[test]
fn a_name_found_in_a_known_table_resolves_beside_an_unknown_one() {
    expect(
        Driver::Postgres,
        "SELECT email, g FROM customers c, generate_series(1, 3) g",
        &["email <- customers.email", "g !"],
    );
}

#[test]
fn ambiguous_names_are_unresolved() {
    for driver in ALL {
        // An error in every engine; never a union that could grow without bound.
        expect(
            driver,
            "SELECT notes, o.notes FROM customers, orders o",
            &["notes !", "notes <- orders.notes"],
        );
        expect(
            driver,
            "SELECT customers.id FROM customers, main.customers",
            &["id !"],
        );
        expect(
            driver,
            "SELECT s.id FROM (SELECT id, id FROM products) s",
            &["id !"],
        );
    }
    // ORDER BY names the result column; the ambiguous inputs do not matter.
    let l = run(
        Driver::Postgres,
        "SELECT c.notes AS notes FROM customers c, orders o ORDER BY notes",
    );
    expect_predicates(&l, &["customers.notes"], "alias over ambiguous inputs");
}

#[test]
fn literals_placeholders_and_select_without_from() {
    expect(
        Driver::Postgres,
        "SELECT 1, 'a', $1, NULL",
        &["?column? <-"; 4],
    );
    expect(
        Driver::MySql,
        "SELECT 1 AS one, ?",
        &["one <-", "?column? <-"],
    );
    expect(
        Driver::Sqlite,
        "SELECT 1 AS one, ?1",
        &["one <-", "?column? <-"],
    );
    expect(
        Driver::Postgres,
        "SELECT current_user, now()",
        &["current_user <-", "now <-"],
    );
}

// ----- expressions ------------------------------------------------------------------------

#[test]
fn functions_operators_and_casts_keep_every_source() {
    for driver in ALL {
        expect(
            driver,
            "SELECT upper(email), reverse(ssn), coalesce(phone, email), \
             concat(name, notes), CAST(ssn AS CHAR(20)) FROM customers",
            &[
                "upper <- customers.email",
                "reverse <- customers.ssn",
                "coalesce <- customers.email, customers.phone",
                "concat <- customers.name, customers.notes",
                "ssn <- customers.ssn",
            ],
        );
    }
    for driver in [Driver::Postgres, Driver::Sqlite] {
        expect(
            driver,
            "SELECT name || ' ' || ssn AS label, email IS NULL FROM customers",
            &[
                "label <- customers.name, customers.ssn",
                "?column? <- customers.email",
            ],
        );
    }
    expect(
        Driver::Postgres,
        "SELECT ssn::text, (email), -total FROM customers, orders",
        &[
            "ssn <- customers.ssn",
            "email <- customers.email",
            "?column? <- orders.total",
        ],
    );
}

#[test]
fn case_conditions_and_results_are_sources_and_conditions_are_predicates() {
    for driver in ALL {
        let l = expect(
            driver,
            "SELECT CASE WHEN ssn LIKE '1%' THEN 1 ELSE 0 END FROM customers",
            &["case <- customers.ssn"],
        );
        expect_predicates(&l, &["customers.ssn"], "case condition");
        let l = expect(
            driver,
            "SELECT CASE phone WHEN '1' THEN name ELSE email END AS x FROM customers",
            &["x <- customers.email, customers.name, customers.phone"],
        );
        expect_predicates(&l, &["customers.phone"], "case operand");
    }
}

#[test]
fn json_and_array_builders() {
    let l = expect(
        Driver::Postgres,
        "SELECT json_build_object('e', email), jsonb_agg(ssn), ARRAY[phone], \
         array_agg(notes ORDER BY id) FROM customers",
        &[
            "json_build_object <- customers.email",
            "jsonb_agg <- customers.ssn",
            "?column? <- customers.phone",
            "array_agg <- customers.notes",
        ],
    );
    expect_predicates(&l, &["customers.id"], "aggregate ORDER BY");
    expect(
        Driver::MySql,
        "SELECT JSON_OBJECT('e', email), JSON_ARRAYAGG(ssn) FROM customers",
        &[
            "json_object <- customers.email",
            "json_arrayagg <- customers.ssn",
        ],
    );
    expect(
        Driver::Sqlite,
        "SELECT json_object('e', email), json_group_array(ssn) FROM customers",
        &[
            "json_object <- customers.email",
            "json_group_array <- customers.ssn",
        ],
    );
}

#[test]
fn whole_row_references_derive_from_every_column() {
    let every = "customers.email, customers.id, customers.name, customers.notes, customers.phone, customers.ssn";
    expect(
        Driver::Postgres,
        "SELECT row_to_json(c), to_json(c.*), c, customers FROM customers c, customers",
        &[
            &format!("row_to_json <- {every}"),
            &format!("to_json <- {every}"),
            &format!("c <- {every}"),
            &format!("customers <- {every}"),
        ],
    );
    // PostgreSQL's functional notation: `ssn(c)` is `c.ssn`; `(c).ssn` a field of the row.
    expect(
        Driver::Postgres,
        "SELECT ssn(c), (c).ssn FROM customers c",
        &[&format!("ssn <- {every}"), &format!("?column? <- {every}")],
    );
}

#[test]
fn counts_reveal_no_value_but_their_arguments_are_predicates() {
    for driver in ALL {
        let l = expect(
            driver,
            "SELECT count(*) FROM customers WHERE ssn LIKE '123%'",
            &["count <-"],
        );
        expect_predicates(&l, &["customers.ssn"], "count(*) WHERE");
        // Counting what is not null reveals no value; DISTINCT compares values (as GROUP
        // BY does), and a computed argument counts a condition.
        let l = expect(
            driver,
            "SELECT count(email), count(c.phone), count(DISTINCT ssn), COUNT(*) FROM customers c",
            &["count <-", "count <-", "count <-", "count <-"],
        );
        expect_predicates(&l, &["customers.ssn"], "count args");
        let l = expect(
            driver,
            "SELECT count(NULLIF(ssn LIKE '1%', false)) FROM customers",
            &["count <-"],
        );
        expect_predicates(&l, &["customers.ssn"], "count of a condition");
        let l = expect(
            driver,
            "SELECT count(x) FROM (SELECT NULLIF(ssn LIKE '1%', false) AS x FROM customers) t",
            &["count <-"],
        );
        expect_predicates(&l, &["customers.ssn"], "count of a computed column");
        let l = run(
            driver,
            "SELECT count(DISTINCT x) FROM (SELECT ssn AS x FROM customers UNION ALL SELECT 'guess') t",
        );
        expect_predicates(&l, &["customers.ssn"], "count DISTINCT of a guess");
        expect(
            driver,
            "SELECT min(ssn), max(email), sum(total), avg(total) FROM customers, orders",
            &[
                "min <- customers.ssn",
                "max <- customers.email",
                "sum <- orders.total",
                "avg <- orders.total",
            ],
        );
    }
    let l = expect(
        Driver::Postgres,
        "SELECT count(*) FILTER (WHERE ssn LIKE '1%'), string_agg(email, ',') FROM customers",
        &["count <-", "string_agg <- customers.email"],
    );
    expect_predicates(&l, &["customers.ssn"], "FILTER");
    expect(
        Driver::MySql,
        "SELECT GROUP_CONCAT(ssn SEPARATOR ';') FROM customers",
        &["group_concat <- customers.ssn"],
    );
    expect(
        Driver::Sqlite,
        "SELECT group_concat(ssn, ';') FROM customers",
        &["group_concat <- customers.ssn"],
    );
    // Only the built-in count counts: a qualified or quoted other function does not.
    expect(
        Driver::Postgres,
        r#"SELECT leak.count(ssn), "COUNT"(ssn), pg_catalog.count(ssn) FROM customers"#,
        &[
            "count <- customers.ssn",
            "COUNT <- customers.ssn",
            "count <-",
        ],
    );
}

#[test]
fn window_functions() {
    for driver in ALL {
        let l = expect(
            driver,
            "SELECT row_number() OVER (PARTITION BY email ORDER BY ssn), \
             first_value(phone) OVER (ORDER BY id) FROM customers",
            &["row_number <-", "first_value <- customers.phone"],
        );
        expect_predicates(
            &l,
            &["customers.email", "customers.id", "customers.ssn"],
            "windows",
        );
    }
    let l = expect(
        Driver::Postgres,
        "SELECT lag(ssn) OVER w FROM customers WINDOW w AS (PARTITION BY notes)",
        &["lag <- customers.ssn"],
    );
    expect_predicates(&l, &["customers.notes"], "named window");
}

#[test]
fn whole_rows_of_derived_tables_casts_and_row_constructors() {
    expect(
        Driver::Postgres,
        "SELECT s, s::text FROM (SELECT ssn FROM customers) s",
        &["s <- customers.ssn", "s <- customers.ssn"],
    );
    let every = "customers.email, customers.id, customers.name, customers.notes, customers.phone, customers.ssn";
    let l = expect(
        Driver::Postgres,
        "SELECT ROW(c.*), customers::text, count(c.*), count(DISTINCT c.*) \
         FROM customers c, customers",
        &[
            &format!("row <- {every}"),
            &format!("customers <- {every}"),
            "count <-",
            "count <-",
        ],
    );
    // `count(DISTINCT c.*)` compares whole rows.
    assert_eq!(l.predicates.len(), 6);
}

#[test]
fn ordered_set_aggregates_return_their_ordering_column() {
    expect(
        Driver::Postgres,
        "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY ssn) FROM customers",
        &["percentile_disc <- customers.ssn"],
    );
}

#[test]
fn mariadb_variables_and_double_quoted_strings() {
    // A user variable may hold what an earlier statement stored: unresolved.
    expect(
        Driver::MySql,
        "SELECT @stash, @@version FROM customers",
        &["@stash !", "@@version <-"],
    );
    // Under ANSI_QUOTES "ssn" is the column; otherwise a string. Either way it counts.
    expect(
        Driver::MySql,
        r#"SELECT "ssn", "hello" FROM customers"#,
        &["?column? <- customers.ssn", "?column? <-"],
    );
}

#[test]
fn match_against_names_its_columns() {
    let l = run(
        Driver::MySql,
        "SELECT id FROM customers c WHERE MATCH (notes, c.email) AGAINST ('x')",
    );
    expect_predicates(&l, &["customers.email", "customers.notes"], "MATCH");
}

// ----- subqueries, CTEs, set operations ---------------------------------------------------

#[test]
fn derived_tables_carry_lineage_through_aliases() {
    for driver in ALL {
        let l = expect(
            driver,
            "SELECT x FROM (SELECT email AS x FROM customers) s",
            &["x <- customers.email"],
        );
        expect_predicates(&l, &[], "derived");
        expect(
            driver,
            "SELECT s.x, s.* FROM (SELECT upper(ssn) AS x, 1 AS one FROM customers WHERE id > 1) AS s",
            &["x <- customers.ssn", "x <- customers.ssn", "one <-"],
        );
        expect(
            driver,
            "SELECT * FROM (SELECT * FROM (SELECT ssn, title FROM customers, products) a) b",
            &["ssn <- customers.ssn", "title <- products.title"],
        );
    }
    expect(
        Driver::Postgres,
        "SELECT a, b FROM (SELECT ssn, email FROM customers) AS s(a, b)",
        &["a <- customers.ssn", "b <- customers.email"],
    );
    expect(
        Driver::Postgres,
        "SELECT x, name FROM customers AS c(x, name)",
        &["x <- customers.id", "name <- customers.name"],
    );
}

#[test]
fn derived_tables_do_not_see_their_siblings_but_lateral_ones_do() {
    // `ssn` is not a column of products, and the sibling `c` is not visible.
    expect(
        Driver::Postgres,
        "SELECT s.x FROM customers c, (SELECT ssn AS x FROM products) s",
        &["x !"],
    );
    expect(
        Driver::Postgres,
        "SELECT l.x FROM customers c, LATERAL (SELECT c.ssn AS x) l",
        &["x <- customers.ssn"],
    );
    expect(
        Driver::Postgres,
        "SELECT l.x FROM customers c CROSS JOIN LATERAL (SELECT upper(email) AS x) AS l",
        &["x <- customers.email"],
    );
    // `c.*` of an outer relation expands it.
    expect(
        Driver::Postgres,
        "SELECT l.* FROM products c, LATERAL (SELECT c.*) l",
        &[
            "id <- products.id",
            "sku <- products.sku",
            "title <- products.title",
        ],
    );
    // A derived table inside a correlated subquery sees the outer query.
    expect(
        Driver::Postgres,
        "SELECT (SELECT x FROM (SELECT c.ssn AS x) t) FROM customers c",
        &["?column? <- customers.ssn"],
    );
}

#[test]
fn scalar_subqueries_in_the_select_list() {
    for driver in ALL {
        expect(
            driver,
            "SELECT (SELECT ssn FROM customers LIMIT 1)",
            &["?column? <- customers.ssn"],
        );
        // Correlated: the inner predicates decide the value too.
        let l = expect(
            driver,
            "SELECT (SELECT max(o.total) FROM orders o WHERE o.customer_id = c.id) AS spent FROM customers c",
            &["spent <- customers.id, orders.customer_id, orders.total"],
        );
        expect_predicates(&l, &["customers.id", "orders.customer_id"], "correlated");
        // An unqualified name not in the inner FROM is the outer one's.
        expect(
            driver,
            "SELECT (SELECT ssn FROM products LIMIT 1) FROM customers",
            &["?column? <- customers.ssn"],
        );
        // A count under a predicate still reveals the predicate's column.
        expect(
            driver,
            "SELECT (SELECT count(*) FROM customers WHERE ssn LIKE '1%') AS n",
            &["n <- customers.ssn"],
        );
    }
    expect(
        Driver::Postgres,
        "SELECT ARRAY(SELECT ssn FROM customers)",
        &["array <- customers.ssn"],
    );
}

#[test]
fn exists_and_in_subqueries_are_predicates() {
    for driver in ALL {
        let l = expect(
            driver,
            "SELECT id FROM customers c WHERE EXISTS \
             (SELECT 1 FROM orders o WHERE o.card_number = '4111111111111111')",
            &["id <- customers.id"],
        );
        expect_predicates(&l, &["orders.card_number"], "EXISTS");
        let l = expect(
            driver,
            "SELECT id FROM products WHERE title IN (SELECT ssn FROM customers WHERE phone > '5')",
            &["id <- products.id"],
        );
        expect_predicates(
            &l,
            &["customers.phone", "customers.ssn", "products.title"],
            "IN subquery",
        );
    }
}

#[test]
fn ctes() {
    for driver in ALL {
        expect(
            driver,
            "WITH a AS (SELECT ssn FROM customers) SELECT * FROM a",
            &["ssn <- customers.ssn"],
        );
        // A CTE named like a table hides it; a later CTE sees an earlier one.
        expect(
            driver,
            "WITH orders AS (SELECT ssn AS card_number FROM customers), \
             b AS (SELECT card_number AS x FROM orders) SELECT o.card_number, b.x FROM orders o, b",
            &["card_number <- customers.ssn", "x <- customers.ssn"],
        );
    }
    // Without RECURSIVE, PostgreSQL and MariaDB read a CTE's own name, or a later one's,
    // as the table.
    for driver in [Driver::Postgres, Driver::MySql] {
        expect(
            driver,
            "WITH products AS (SELECT title FROM products) SELECT title FROM products",
            &["title <- products.title"],
        );
        expect(
            driver,
            "WITH a AS (SELECT title FROM products), \
             products AS (SELECT ssn AS title FROM customers) SELECT title FROM a",
            &["title <- products.title"],
        );
    }
    // With RECURSIVE, and always on SQLite, a CTE sees the later ones.
    for (driver, with) in [
        (Driver::Postgres, "WITH RECURSIVE"),
        (Driver::MySql, "WITH RECURSIVE"),
        (Driver::Sqlite, "WITH"),
    ] {
        expect(
            driver,
            &format!(
                "{with} a AS (SELECT title FROM products), \
                 products AS (SELECT ssn AS title FROM customers) SELECT title FROM a"
            ),
            &["title <- customers.ssn"],
        );
    }
    // SQLite: a CTE naming itself outside a UNION is a circular reference.
    expect(
        Driver::Sqlite,
        "WITH products AS (SELECT title FROM products) SELECT title FROM products",
        &["title !"],
    );
    expect(
        Driver::Postgres,
        "WITH a(x, y) AS (SELECT ssn, email FROM customers) SELECT y, x FROM a",
        &["y <- customers.email", "x <- customers.ssn"],
    );
    // CTEs are visible inside subqueries.
    expect(
        Driver::Postgres,
        "WITH a AS (SELECT ssn FROM customers) SELECT (SELECT ssn FROM a LIMIT 1)",
        &["?column? <- customers.ssn"],
    );
}

#[test]
fn cte_cycles_and_long_chains() {
    // Two CTEs naming each other: neither can be known.
    expect(
        Driver::Postgres,
        "WITH RECURSIVE a AS (SELECT x FROM b), b AS (SELECT x FROM a) SELECT x FROM a",
        &["x !"],
    );
    // Each CTE names the next, thousands deep: walked in order, without recursion.
    let n = 2000;
    let mut sql = String::from("WITH ");
    for i in 0..n {
        sql.push_str(&format!("c{i} AS (SELECT x FROM c{}), ", i + 1));
    }
    sql.push_str(&format!(
        "c{n} AS (SELECT ssn AS x FROM customers) SELECT x FROM c0"
    ));
    expect(Driver::Sqlite, &sql, &["x <- customers.ssn"]);
}

#[test]
fn recursive_ctes_unite_both_arms_until_stable() {
    for driver in ALL {
        expect(
            driver,
            "WITH RECURSIVE r(n, e) AS (SELECT 1, email FROM customers \
             UNION ALL SELECT n + 1, e FROM r WHERE n < 3) SELECT n, e FROM r",
            &["n <-", "e <- customers.email"],
        );
        // The recursive arm swaps the columns: both end up deriving from both.
        expect(
            driver,
            "WITH RECURSIVE r(a, b) AS (SELECT name, ssn FROM customers \
             UNION ALL SELECT b, a FROM r WHERE a IS NOT NULL) SELECT a FROM r",
            &["a <- customers.name, customers.ssn"],
        );
    }
    // A chain through three columns takes several rounds.
    expect(
        Driver::Postgres,
        "WITH RECURSIVE r(a, b, c) AS (SELECT ssn, '', '' FROM customers \
         UNION ALL SELECT '', a, b FROM r) SELECT c FROM r",
        &["c <- customers.ssn"],
    );
}

#[test]
fn data_modifying_ctes() {
    let l = expect(
        Driver::Postgres,
        "WITH d AS (DELETE FROM customers WHERE email = 'x' RETURNING ssn) SELECT * FROM d",
        &["ssn <- customers.ssn"],
    );
    expect_predicates(&l, &["customers.email"], "writing CTE");
}

#[test]
fn set_operations() {
    for driver in ALL {
        let l = expect(
            driver,
            "SELECT title FROM products UNION SELECT email FROM customers",
            &["title <- customers.email, products.title"],
        );
        // UNION without ALL compares the values: an equality oracle.
        expect_predicates(&l, &["customers.email", "products.title"], "UNION");
        let l = expect(
            driver,
            "SELECT id, title FROM products UNION ALL SELECT id, ssn FROM customers \
             UNION ALL SELECT 1, 'x'",
            &[
                "id <- customers.id, products.id",
                "title <- customers.ssn, products.title",
            ],
        );
        expect_predicates(&l, &[], "UNION ALL");
        let l = run(
            driver,
            "SELECT email FROM customers EXCEPT SELECT title FROM products",
        );
        expect_predicates(&l, &["customers.email", "products.title"], "EXCEPT");
        // Arms of different widths: an error in the engine, unknown here.
        assert_eq!(
            run(
                driver,
                "SELECT id FROM products UNION ALL SELECT id, ssn FROM customers"
            )
            .outputs,
            None
        );
    }
    let l = expect(
        Driver::Postgres,
        "(SELECT id, ssn FROM customers) UNION ALL (SELECT id, title FROM products) ORDER BY 2 LIMIT 5",
        &[
            "id <- customers.id, products.id",
            "ssn <- customers.ssn, products.title",
        ],
    );
    expect_predicates(
        &l,
        &["customers.ssn", "products.title"],
        "ORDER BY position",
    );
    let l = run(
        Driver::Postgres,
        "SELECT id, ssn AS s FROM customers UNION ALL SELECT id, title FROM products ORDER BY s",
    );
    expect_predicates(&l, &["customers.ssn", "products.title"], "ORDER BY name");
}

#[test]
fn long_set_operation_chains_are_walked_without_recursion() {
    let sql = vec!["SELECT ssn FROM customers"; 3000].join(" UNION ALL ");
    for driver in ALL {
        let l = run(driver, &sql);
        assert_eq!(outputs(&l), Some(vec!["ssn <- customers.ssn".to_owned()]));
    }
}

#[test]
fn values() {
    expect(
        Driver::Postgres,
        "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(n, s)",
        &["n <-", "s <-"],
    );
    expect(
        Driver::Postgres,
        "SELECT v.x FROM customers c, LATERAL (VALUES (c.ssn)) AS v(x)",
        &["x <- customers.ssn"],
    );
    expect(
        Driver::Sqlite,
        "VALUES (1, 2)",
        &["column1 <-", "column2 <-"],
    );
}

// ----- joins ------------------------------------------------------------------------------

#[test]
fn using_merges_columns_and_qualified_star_keeps_the_table() {
    let every = [
        "id <- customers.id",
        "name <- customers.name",
        "email <- customers.email",
        "ssn <- customers.ssn",
        "phone <- customers.phone",
        "notes <- customers.notes",
    ];
    for driver in ALL {
        let l = expect(
            driver,
            "SELECT c.* FROM customers c JOIN orders o USING (id)",
            &every,
        );
        expect_predicates(&l, &["customers.id", "orders.id"], "USING");
        expect(
            driver,
            "SELECT id, notes FROM customers JOIN orders USING (id, notes)",
            &[
                "id <- customers.id, orders.id",
                "notes <- customers.notes, orders.notes",
            ],
        );
    }
}

#[test]
fn using_star_order_follows_each_engine() {
    let sql = "SELECT * FROM customers JOIN orders USING (notes, id)";
    let merged_id = "id <- customers.id, orders.id";
    let merged_notes = "notes <- customers.notes, orders.notes";
    let customers = [
        "name <- customers.name",
        "email <- customers.email",
        "ssn <- customers.ssn",
        "phone <- customers.phone",
    ];
    let orders = [
        "customer_id <- orders.customer_id",
        "card_number <- orders.card_number",
        "total <- orders.total",
    ];
    // PostgreSQL: the USING list first, in its order.
    let mut want = vec![merged_notes, merged_id];
    want.extend(customers);
    want.extend(orders);
    expect(Driver::Postgres, sql, &want);
    // MariaDB: the merged columns in the left table's order.
    let mut want = vec![merged_id, merged_notes];
    want.extend(customers);
    want.extend(orders);
    expect(Driver::MySql, sql, &want);
    // SQLite: the left table's columns in place, the right's shared ones left out.
    let mut want = vec![merged_id];
    want.extend(customers);
    want.push(merged_notes);
    want.extend(orders);
    expect(Driver::Sqlite, sql, &want);
    // MariaDB RIGHT JOIN: the right table's order and columns first.
    expect(
        Driver::MySql,
        "SELECT * FROM customers RIGHT JOIN orders USING (id)",
        &[
            merged_id,
            "customer_id <- orders.customer_id",
            "card_number <- orders.card_number",
            "total <- orders.total",
            "notes <- orders.notes",
            "name <- customers.name",
            "email <- customers.email",
            "ssn <- customers.ssn",
            "phone <- customers.phone",
            "notes <- customers.notes",
        ],
    );
}

#[test]
fn chained_using_joins_merge_again() {
    expect(
        Driver::Postgres,
        "SELECT * FROM (customers JOIN orders USING (id)) JOIN products USING (id)",
        &[
            "id <- customers.id, orders.id, products.id",
            "name <- customers.name",
            "email <- customers.email",
            "ssn <- customers.ssn",
            "phone <- customers.phone",
            "notes <- customers.notes",
            "customer_id <- orders.customer_id",
            "card_number <- orders.card_number",
            "total <- orders.total",
            "notes <- orders.notes",
            "sku <- products.sku",
            "title <- products.title",
        ],
    );
    for driver in ALL {
        expect(
            driver,
            "SELECT id FROM customers JOIN orders USING (id) JOIN products USING (id)",
            &["id <- customers.id, orders.id, products.id"],
        );
    }
}

#[test]
fn natural_joins_merge_shared_columns() {
    let l = expect(
        Driver::Postgres,
        "SELECT * FROM customers NATURAL JOIN orders",
        &[
            "id <- customers.id, orders.id",
            "notes <- customers.notes, orders.notes",
            "name <- customers.name",
            "email <- customers.email",
            "ssn <- customers.ssn",
            "phone <- customers.phone",
            "customer_id <- orders.customer_id",
            "card_number <- orders.card_number",
            "total <- orders.total",
        ],
    );
    expect_predicates(
        &l,
        &[
            "customers.id",
            "customers.notes",
            "orders.id",
            "orders.notes",
        ],
        "NATURAL",
    );
    for driver in ALL {
        expect(
            driver,
            "SELECT notes FROM customers NATURAL JOIN orders",
            &["notes <- customers.notes, orders.notes"],
        );
        // A long chain merges again and again, in time linear in its width.
        let chain = vec!["customers"; 1500].join(" NATURAL JOIN ");
        let l = run(driver, &format!("SELECT * FROM {chain}"));
        assert_eq!(l.outputs.map(|o| o.len()), Some(6), "{driver:?}");
        // Over an unknown table the shared columns are not known.
        let l = run(driver, "SELECT * FROM customers NATURAL JOIN nowhere");
        assert_eq!(l.outputs, None);
        assert!(l.unresolved_predicates);
    }
}

#[test]
fn join_conditions_are_predicates() {
    for driver in ALL {
        let l = expect(
            driver,
            "SELECT c.name, o.total FROM customers c LEFT JOIN orders o \
             ON o.customer_id = c.id AND o.card_number LIKE '4%'",
            &["name <- customers.name", "total <- orders.total"],
        );
        expect_predicates(
            &l,
            &["customers.id", "orders.card_number", "orders.customer_id"],
            "ON",
        );
    }
}

#[test]
fn nested_joins() {
    for driver in ALL {
        expect(
            driver,
            "SELECT c.ssn, o.total FROM ((customers c JOIN orders o ON o.customer_id = c.id))",
            &["ssn <- customers.ssn", "total <- orders.total"],
        );
    }
    // An aliased join is one relation with the columns of both.
    expect(
        Driver::Postgres,
        "SELECT j.ssn, j.card_number FROM (customers c JOIN orders o ON o.customer_id = c.id) AS j",
        &["ssn <- customers.ssn", "card_number <- orders.card_number"],
    );
}

// ----- predicates ---------------------------------------------------------------------------

#[test]
fn where_group_having_order_limit() {
    for driver in ALL {
        let l = expect(
            driver,
            "SELECT id FROM customers ORDER BY ssn",
            &["id <- customers.id"],
        );
        expect_predicates(&l, &["customers.ssn"], "ORDER BY");
        let l = expect(
            driver,
            "SELECT id FROM customers GROUP BY email",
            &["id <- customers.id"],
        );
        expect_predicates(&l, &["customers.email"], "GROUP BY");
        let l = run(
            driver,
            "SELECT upper(ssn) AS s, count(*) FROM customers GROUP BY 1 HAVING count(*) > 1 \
             ORDER BY s LIMIT 10",
        );
        expect_predicates(&l, &["customers.ssn"], "positions and aliases");
        let l = run(
            driver,
            "SELECT id FROM customers WHERE phone = '1' \
             LIMIT (SELECT count(*) FROM orders WHERE card_number LIKE '4%')",
        );
        expect_predicates(
            &l,
            &["customers.phone", "orders.card_number"],
            "LIMIT subquery",
        );
        let l = run(driver, "SELECT DISTINCT email FROM customers");
        expect_predicates(&l, &["customers.email"], "DISTINCT compares");
    }
    let l = run(
        Driver::Postgres,
        "SELECT DISTINCT ON (ssn) id FROM customers ORDER BY ssn, id",
    );
    expect_predicates(&l, &["customers.id", "customers.ssn"], "DISTINCT ON");
}

#[test]
fn order_by_position_names_a_result_column() {
    for driver in ALL {
        let l = run(driver, "SELECT id, ssn FROM customers ORDER BY 2");
        expect_predicates(&l, &["customers.ssn"], "ORDER BY 2");
        let l = run(driver, "SELECT id, ssn FROM customers ORDER BY 1");
        expect_predicates(&l, &["customers.id"], "ORDER BY 1");
    }
}

// ----- statements ---------------------------------------------------------------------------

#[test]
fn writes_with_returning() {
    for driver in [Driver::Postgres, Driver::Sqlite] {
        let l = expect(
            driver,
            "DELETE FROM customers WHERE email = 'x' RETURNING ssn",
            &["ssn <- customers.ssn"],
        );
        expect_predicates(&l, &["customers.email"], "DELETE WHERE");
        // RETURNING reads back what was written.
        let l = expect(
            driver,
            "UPDATE products SET title = (SELECT ssn FROM customers LIMIT 1) WHERE id = 1 \
             RETURNING title, sku",
            &[
                "title <- customers.ssn, products.title",
                "sku <- products.sku",
            ],
        );
        expect_predicates(&l, &["customers.ssn", "products.id"], "UPDATE");
        let l = expect(
            driver,
            "INSERT INTO products (title) SELECT ssn FROM customers RETURNING *",
            &[
                "id <- customers.ssn, products.id",
                "sku <- customers.ssn, products.sku",
                "title <- customers.ssn, products.title",
            ],
        );
        expect_predicates(&l, &["customers.ssn"], "INSERT … SELECT copies");
        expect(
            driver,
            "INSERT INTO products (sku, title) VALUES ('a', 'b') RETURNING id",
            &["id <- products.id"],
        );
        let l = expect(
            driver,
            "INSERT INTO customers (id, notes) VALUES (1, 'x') \
             ON CONFLICT (id) DO UPDATE SET notes = excluded.notes RETURNING notes",
            &["notes <- customers.notes"],
        );
        expect_predicates(&l, &["customers.notes"], "upsert");
    }
    expect(
        Driver::Postgres,
        "UPDATE orders o SET notes = c.ssn FROM customers c WHERE c.id = o.customer_id RETURNING o.notes",
        &["notes <- customers.ssn, orders.notes"],
    );
}

#[test]
fn writes_without_returning_return_nothing_and_copies_are_predicates() {
    for driver in ALL {
        let l = run(
            driver,
            "INSERT INTO products (sku, title) VALUES ('a', DEFAULT)",
        );
        assert_eq!(l.outputs, Some(Vec::new()));
        expect_predicates(&l, &[], "literal insert");
        let l = run(
            driver,
            "INSERT INTO products (title) SELECT email FROM customers WHERE id = 1",
        );
        assert_eq!(l.outputs, Some(Vec::new()));
        expect_predicates(&l, &["customers.email", "customers.id"], "insert select");
        let l = run(driver, "UPDATE customers SET notes = ssn WHERE id = 2");
        assert_eq!(l.outputs, Some(Vec::new()));
        expect_predicates(&l, &["customers.id", "customers.ssn"], "update copies");
        let l = run(driver, "DELETE FROM orders WHERE card_number = '1'");
        assert_eq!(l.outputs, Some(Vec::new()));
        expect_predicates(&l, &["orders.card_number"], "delete");
        let l = run(driver, "CREATE TABLE leak AS SELECT ssn FROM customers");
        assert_eq!(l.outputs, Some(Vec::new()));
        expect_predicates(&l, &["customers.ssn"], "CTAS copies");
        let l = run(driver, "CREATE VIEW v AS SELECT email FROM customers");
        assert_eq!(l.outputs, Some(Vec::new()));
        expect_predicates(&l, &["customers.email"], "view copies");
        let l = run(driver, "DROP TABLE products");
        assert_eq!(l.outputs, Some(Vec::new()));
    }
    let l = run(
        Driver::MySql,
        "UPDATE customers c JOIN orders o ON o.customer_id = c.id SET c.notes = o.card_number",
    );
    assert_eq!(l.outputs, Some(Vec::new()));
    expect_predicates(
        &l,
        &["customers.id", "orders.card_number", "orders.customer_id"],
        "multi-table update",
    );
    let l = run(
        Driver::MySql,
        "DELETE c FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.total > 5",
    );
    expect_predicates(
        &l,
        &["customers.id", "orders.customer_id", "orders.total"],
        "multi-table delete",
    );
    let l = run(
        Driver::MySql,
        "SET @v = (SELECT ssn FROM customers LIMIT 1)",
    );
    assert_eq!(l.outputs, Some(Vec::new()));
    expect_predicates(&l, &["customers.ssn"], "SET copies");
    let l = run(Driver::Postgres, "SELECT ssn INTO leak FROM customers");
    assert_eq!(l.outputs, Some(Vec::new()));
    expect_predicates(&l, &["customers.ssn"], "SELECT INTO copies");
    let l = run(
        Driver::Postgres,
        "MERGE INTO customers c USING orders o ON o.customer_id = c.id \
         WHEN MATCHED THEN UPDATE SET notes = o.card_number",
    );
    assert_eq!(l.outputs, Some(Vec::new()));
    expect_predicates(
        &l,
        &["customers.id", "orders.card_number", "orders.customer_id"],
        "MERGE",
    );
}

#[test]
fn ddl_that_moves_values_away_from_their_classification() {
    for driver in ALL {
        let l = run(driver, "ALTER TABLE customers RENAME COLUMN ssn TO x");
        assert_eq!(l.outputs, Some(Vec::new()));
        expect_predicates(&l, &["customers.ssn"], "rename column");
        let l = run(driver, "ALTER TABLE customers RENAME TO people");
        assert_eq!(l.predicates.len(), 6, "{driver:?} rename table");
        // A new column may name itself: nothing is copied, nothing unresolved.
        let l = run(
            driver,
            "ALTER TABLE products ADD COLUMN status TEXT CHECK (status <> '')",
        );
        expect_predicates(&l, &[], "add column");
    }
    let l = run(
        Driver::Postgres,
        "ALTER TABLE customers ADD COLUMN x text GENERATED ALWAYS AS (upper(ssn)) STORED",
    );
    expect_predicates(&l, &["customers.ssn"], "generated column");
    let l = run(
        Driver::MySql,
        "ALTER TABLE customers CHANGE COLUMN ssn x TEXT",
    );
    expect_predicates(&l, &["customers.ssn"], "change column");
    let l = run(Driver::MySql, "RENAME TABLE orders TO o2");
    assert_eq!(l.predicates.len(), 5);
    let l = run(
        Driver::Sqlite,
        "CREATE TRIGGER t AFTER INSERT ON products BEGIN \
         UPDATE products SET title = (SELECT ssn FROM customers LIMIT 1); END",
    );
    assert_eq!(l.outputs, Some(Vec::new()));
    assert!(l.predicates.iter().any(|p| p.column == "ssn"));
}

#[test]
fn statements_without_a_modelled_shape_mask_everything() {
    for (driver, sql) in [
        (Driver::Postgres, "SHOW search_path"),
        (Driver::MySql, "SHOW TABLES"),
        (Driver::MySql, "DESCRIBE customers"),
        (Driver::Sqlite, "PRAGMA table_info('customers')"),
        (Driver::Postgres, "EXPLAIN SELECT * FROM customers"),
        (Driver::MySql, "CALL proc()"),
    ] {
        let l = run(driver, sql);
        assert_eq!(l.outputs, None, "{sql}");
    }
    // The plan reports rows and estimates: the explained predicates stay.
    let l = run(
        Driver::Postgres,
        "EXPLAIN ANALYZE SELECT id FROM customers WHERE ssn LIKE '1%'",
    );
    assert_eq!(l.outputs, None);
    expect_predicates(&l, &["customers.ssn"], "EXPLAIN");
}

#[test]
fn session_statements_return_nothing() {
    for (driver, sql) in [
        (Driver::Postgres, "SET statement_timeout = 5"),
        (Driver::Postgres, "BEGIN"),
        (Driver::MySql, "COMMIT"),
        (Driver::Sqlite, "ROLLBACK"),
    ] {
        let l = run(driver, sql);
        assert_eq!(l.outputs, Some(Vec::new()), "{sql}");
        expect_predicates(&l, &[], sql);
    }
}

#[test]
fn table_functions_have_unknown_columns() {
    let l = run(Driver::Postgres, "SELECT * FROM generate_series(1, 3)");
    assert_eq!(l.outputs, None);
    expect(
        Driver::Postgres,
        "SELECT x FROM json_to_record('{}') AS r(x text)",
        &["x !"],
    );
    expect(
        Driver::Sqlite,
        "SELECT j.value FROM customers c, json_each(c.notes) j",
        &["value !"],
    );
    let l = run(
        Driver::Postgres,
        "SELECT u FROM unnest(ARRAY(SELECT ssn FROM customers)) AS u",
    );
    assert_eq!(outputs(&l), Some(vec!["u !".to_owned()]));
    expect_predicates(&l, &["customers.ssn"], "function arguments");
    // Unknown shape inside a derived table: the named column is unresolved, the result's
    // width still known.
    expect(
        Driver::Postgres,
        "SELECT s.id, 1 FROM (SELECT * FROM nowhere) s",
        &["id !", "?column? <-"],
    );
}

#[test]
fn only_and_dual() {
    expect(
        Driver::Postgres,
        "SELECT ssn FROM ONLY customers",
        &["ssn <- customers.ssn"],
    );
    expect(Driver::MySql, "SELECT 1 AS one FROM DUAL", &["one <-"]);
}

// ----- adversarial ----------------------------------------------------------------------------

#[test]
fn no_classified_column_gets_lost() {
    let cases: &[(&str, &[&str])] = &[
        (
            "SELECT x FROM (SELECT email AS x FROM customers) s",
            &["customers.email"],
        ),
        (
            "WITH a AS (SELECT ssn FROM customers) SELECT * FROM a",
            &["customers.ssn"],
        ),
        (
            "SELECT title FROM products UNION SELECT email FROM customers",
            &["customers.email", "products.title"],
        ),
        (
            "SELECT (SELECT ssn FROM customers LIMIT 1)",
            &["customers.ssn"],
        ),
        (
            "SELECT t.x FROM (SELECT id AS x FROM products UNION ALL SELECT ssn FROM customers) t",
            &["customers.ssn", "products.id"],
        ),
        (
            "SELECT max(x) FROM (SELECT lower(card_number) AS x FROM orders) t",
            &["orders.card_number"],
        ),
        (
            "SELECT z FROM (SELECT y AS z FROM (SELECT ssn AS y FROM customers) a) b",
            &["customers.ssn"],
        ),
        (
            "SELECT CASE WHEN id > 0 THEN (SELECT max(ssn) FROM customers) END FROM products",
            &["customers.ssn", "products.id"],
        ),
        (
            "SELECT coalesce(NULL, (SELECT card_number FROM orders WHERE id = 1))",
            &["orders.card_number", "orders.id"],
        ),
    ];
    for driver in ALL {
        for (sql, want) in cases {
            let l = run(driver, sql);
            assert_eq!(all_sources(&l), *want, "{driver:?}: {sql}");
            assert!(
                l.outputs.iter().flatten().all(|o| o.resolved),
                "{driver:?}: {sql}"
            );
        }
    }
}

#[test]
fn what_any_text_makes_the_walk_hold_is_bounded() {
    // Thousands of stars over a join: wider than any engine returns.
    let stars = vec!["*"; 2000].join(", ");
    let l = run(
        Driver::Postgres,
        &format!("SELECT {stars} FROM customers, orders, products"),
    );
    assert_eq!(l.outputs, None);
    // Each derived table copies its columns into the scope: past the bound, nothing is
    // trusted.
    let wide = vec!["c.*"; 600].join(", ");
    let derived = vec![format!("(SELECT {wide} FROM customers c) d"); 60].join(", ");
    let l = run(Driver::Postgres, &format!("SELECT 1 FROM {derived}"));
    assert_eq!(l.outputs, None);
    assert!(l.unresolved_predicates);
}

#[test]
fn the_work_any_text_causes_is_bounded() {
    let sql = format!("SELECT {}", vec!["(SELECT 1)"; 5000].join(", "));
    for driver in ALL {
        let l = run(driver, &sql);
        assert_eq!(l.outputs, None);
        assert!(l.unresolved_predicates);
    }
}

// ----- computations ------------------------------------------------------------------------

fn computed_over(lineage: &Lineage) -> Vec<String> {
    lineage.computed_over.iter().map(render).collect()
}

#[test]
fn computations_anywhere_are_noted_and_gathering_is_not() {
    for driver in ALL {
        for (sql, want) in [
            // Outputs that compute.
            (
                "SELECT 1 / (length(ssn) - 11) FROM customers",
                &["customers.ssn"][..],
            ),
            (
                "SELECT nullif(email, 'x') FROM customers",
                &["customers.email"],
            ),
            (
                "SELECT CAST(ssn AS INTEGER) FROM customers",
                &["customers.ssn"],
            ),
            ("SELECT email || 'x' FROM customers", &["customers.email"]),
            // Computed inside a gathering function: the argument computes, and the call
            // no longer only gathers, so all its sources count.
            (
                "SELECT max(upper(email)) FROM customers",
                &["customers.email"],
            ),
            (
                "SELECT coalesce(email, substr(ssn, 1, 3)) FROM customers",
                &["customers.email", "customers.ssn"],
            ),
            // Computed but never returned: still evaluated.
            (
                "SELECT id FROM (SELECT id, 1 / (length(ssn) - 11) AS x FROM customers) t",
                &["customers.ssn"],
            ),
            (
                "SELECT id FROM customers WHERE id IN (SELECT length(email) FROM customers)",
                &["customers.email"],
            ),
            // Gathering stored values, whole rows and scalar subqueries of stored values.
            (
                "SELECT max(ssn), min(email), coalesce(phone, 'none') FROM customers",
                &[],
            ),
            ("SELECT concat(email, ' ', phone) FROM customers", &[]),
            ("SELECT (SELECT email FROM customers LIMIT 1)", &[]),
            ("SELECT count(*), count(ssn) FROM customers", &[]),
            ("SELECT id, email FROM customers", &[]),
        ] {
            let lineage = run(driver, sql);
            assert_eq!(computed_over(&lineage), want, "{driver:?}: {sql}");
            assert!(!lineage.unresolved_computed, "{driver:?}: {sql}");
        }
    }
    let lineage = run(
        Driver::Postgres,
        "SELECT json_build_object('e', email), row_to_json(c) FROM customers c",
    );
    assert!(computed_over(&lineage).is_empty());
    // A qualified function could be anything the database defines.
    let lineage = run(Driver::Postgres, "SELECT app.max(email) FROM customers");
    assert_eq!(computed_over(&lineage), ["customers.email"]);
    let lineage = run(Driver::Postgres, "SELECT upper(nowhere) FROM customers");
    assert!(lineage.unresolved_computed);
}
