use super::*;

fn pg(sql: &str) -> Intent {
    analyze(Driver::Postgres, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn tables(intent: &Intent) -> Vec<(String, Access)> {
    intent
        .tables
        .iter()
        .map(|t| (t.table.to_string(), t.access))
        .collect()
}

fn reads(names: &[&str]) -> Vec<(String, Access)> {
    names
        .iter()
        .map(|n| (n.to_string(), Access::Read))
        .collect()
}

fn targets(intent: &Intent) -> Vec<String> {
    intent
        .targets
        .iter()
        .map(|t| match &t.table {
            Some(table) => format!("{}:{table}", t.action),
            None => t.action.to_string(),
        })
        .collect()
}

#[test]
fn a_cte_name_is_not_a_table() {
    let intent = pg("WITH t AS (SELECT * FROM orders) SELECT * FROM t");
    assert_eq!(tables(&intent), reads(&["orders"]));
    assert!(intent.is_read_only());
}

#[test]
fn a_cte_body_does_not_see_its_own_name_unless_recursive() {
    // The inner `orders` is the real table; the outer one is the CTE.
    let shadow = pg("WITH orders AS (SELECT * FROM orders WHERE id > 1) SELECT * FROM orders");
    assert_eq!(tables(&shadow), reads(&["orders"]));
    let shadow = pg("WITH customers AS (SELECT * FROM orders) SELECT * FROM customers");
    assert_eq!(tables(&shadow), reads(&["orders"]));
    let recursive = pg(
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 3) SELECT n FROM c",
    );
    assert_eq!(tables(&recursive), reads(&[]));
}

#[test]
fn a_cte_sees_earlier_ctes_but_not_later_ones() {
    let earlier = pg("WITH a AS (SELECT * FROM orders), b AS (SELECT * FROM a) SELECT * FROM b");
    assert_eq!(tables(&earlier), reads(&["orders"]));
    // `b` is not defined yet inside `a`: it is the table `b`.
    let later = pg("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a");
    assert_eq!(tables(&later), reads(&["b"]));
}

#[test]
fn cte_scope_ends_with_its_query() {
    // The CTE `t` exists only inside the subquery; the outer `t` is a table.
    let intent = pg("SELECT * FROM t WHERE id IN (WITH t AS (SELECT 1 AS id) SELECT id FROM t)");
    assert_eq!(tables(&intent), reads(&["t"]));
    // A CTE of the outer query is visible in a subquery.
    let intent = pg(
        "WITH t AS (SELECT id FROM orders) SELECT * FROM customers WHERE id IN (SELECT id FROM t)",
    );
    assert_eq!(tables(&intent), reads(&["customers", "orders"]));
    // A qualified name never means a CTE.
    let intent = pg("WITH orders AS (SELECT 1) SELECT * FROM public.orders, orders");
    assert_eq!(tables(&intent), reads(&["public.orders"]));
}

#[test]
fn quoting_decides_cte_matches_in_postgres() {
    let intent = pg(r#"WITH "T" AS (SELECT * FROM orders) SELECT * FROM t, "T""#);
    assert_eq!(tables(&intent), reads(&["orders", "t"]));
}

#[test]
fn dml_targets_are_tables_even_when_a_cte_has_their_name() {
    let intent = pg("WITH orders AS (SELECT 1) UPDATE orders SET status = 'x' WHERE id = 1");
    assert_eq!(tables(&intent), vec![("orders".to_owned(), Access::Write)]);
}

#[test]
fn writing_ctes_are_flagged_and_their_writes_counted() {
    let intent = pg("WITH d AS (DELETE FROM orders WHERE id = 1 RETURNING *) SELECT * FROM d");
    assert!(intent.flags.data_modifying_cte);
    assert_eq!(targets(&intent), ["select", "delete:orders"]);
    assert!(!intent.is_read_only());
    // A plain CTE in front of an INSERT is not a writing CTE.
    let intent = pg("WITH t AS (SELECT id FROM customers) INSERT INTO archive SELECT id FROM t");
    assert!(!intent.flags.data_modifying_cte);
    assert_eq!(targets(&intent), ["select:customers", "insert:archive"]);
}

#[test]
fn targets_leave_out_the_read_of_a_written_table() {
    let intent = pg("INSERT INTO orders SELECT * FROM orders WHERE id = 1");
    assert_eq!(targets(&intent), ["insert:orders"]);
    assert_eq!(intent.actions, vec![Action::Insert]);
    let intent = pg("UPDATE orders SET total = 0 FROM customers c WHERE orders.customer_id = c.id");
    assert_eq!(targets(&intent), ["select:customers", "update:orders"]);
    let intent = pg("SELECT 1");
    assert_eq!(targets(&intent), ["select"]);
}

#[test]
fn explain_plans_without_running_unless_analyze() {
    let plan = pg("EXPLAIN DELETE FROM orders");
    assert!(plan.is_read_only());
    assert_eq!(targets(&plan), ["select:orders"]);
    assert!(!plan.flags.unbounded);
    let run = pg("EXPLAIN ANALYZE DELETE FROM orders");
    assert!(run.flags.explain_analyze_write);
    assert!(run.flags.unbounded);
    assert_eq!(targets(&run), ["delete:orders"]);
    let run = pg("EXPLAIN (ANALYZE true, BUFFERS) UPDATE orders SET total = 0 WHERE id = 1");
    assert!(run.flags.explain_analyze_write);
    let plan = pg("EXPLAIN (ANALYZE off) UPDATE orders SET total = 0 WHERE id = 1");
    assert!(!plan.flags.explain_analyze_write);
    let read = pg("EXPLAIN ANALYZE SELECT * FROM orders");
    assert!(read.is_read_only());
}

#[test]
fn several_statements_are_one_flagged_union() {
    let intent = pg("SELECT * FROM orders; DROP TABLE customers");
    assert!(intent.flags.multiple_statements);
    assert_eq!(intent.statement, "SELECT; DROP TABLE");
    assert_eq!(targets(&intent), ["select:orders", "drop:customers"]);
    assert!(!intent.is_read_only());
    // Even two reads are not one read.
    assert!(!pg("SELECT 1; SELECT 2").is_read_only());
}

#[test]
fn unclassified_statements_are_never_reads() {
    let intent = pg("CREATE COLLATION german (provider = icu, locale = 'de')");
    let reason = intent.flags.unclassified.as_deref().unwrap_or_default();
    assert!(
        reason.starts_with("CREATE COLLATION statements"),
        "{reason}"
    );
    assert!(!intent.is_read_only());
    // Even hidden in a FROM item that is only a keyword to sqlparser.
    let intent = analyze(Driver::MySql, "SELECT * FROM low_priority").unwrap();
    assert!(intent.flags.unclassified.is_some());
    assert!(!intent.is_read_only());
}

#[test]
fn columns_resolve_through_aliases() {
    let intent =
        pg("SELECT o.id, c.email, total FROM orders o JOIN customers AS c ON c.id = o.customer_id");
    let columns: Vec<(Option<String>, String)> = intent
        .columns
        .iter()
        .map(|c| (c.table.as_ref().map(|t| t.to_string()), c.column.clone()))
        .collect();
    assert!(columns.contains(&(Some("orders".into()), "id".into())));
    assert!(columns.contains(&(Some("customers".into()), "email".into())));
    assert!(columns.contains(&(Some("orders".into()), "customer_id".into())));
    // Unqualified with two tables in scope: unknown owner.
    assert!(columns.contains(&(None, "total".into())));
    let star = pg("SELECT * FROM orders");
    assert_eq!(
        star.columns,
        vec![ColumnRef {
            table: Some(TableName::new("orders")),
            column: "*".into()
        }]
    );
    let qualified_star = pg("SELECT c.* FROM orders o, customers c");
    assert_eq!(
        qualified_star.columns,
        vec![ColumnRef {
            table: Some(TableName::new("customers")),
            column: "*".into()
        }]
    );
}

#[test]
fn names_fold_per_engine() {
    let intent = pg(r#"SELECT * FROM Orders, "Orders", ANALYTICS.Events"#);
    assert_eq!(
        tables(&intent),
        reads(&["Orders", "analytics.events", "orders"])
    );
    let intent = analyze(Driver::MySql, "SELECT * FROM `Orders`, ORDERS, db.`T`").unwrap();
    assert_eq!(tables(&intent), reads(&["db.t", "orders"]));
    let intent = analyze(
        Driver::Sqlite,
        r#"SELECT * FROM "Orders", [ORDERS], `orders`"#,
    )
    .unwrap();
    assert_eq!(tables(&intent), reads(&["orders"]));
}

#[test]
fn denied_functions_are_found_anywhere() {
    for (sql, function) in [
        ("SELECT pg_sleep(1)", "pg_sleep"),
        (r#"SELECT "pg_sleep"(1)"#, "pg_sleep"),
        ("SELECT PG_CATALOG.PG_SLEEP(1)", "pg_sleep"),
        ("SELECT * FROM pg_ls_dir('.')", "pg_ls_dir"),
        (
            "SELECT id FROM orders WHERE id IN (SELECT pg_advisory_lock(1))",
            "pg_advisory_lock",
        ),
        (
            "WITH x AS (SELECT set_config('a', 'b', false)) SELECT * FROM x",
            "set_config",
        ),
        ("SELECT * FROM orders ORDER BY pg_sleep(1)", "pg_sleep"),
        (
            "INSERT INTO orders (id) VALUES (lo_import('/etc/passwd'))",
            "lo_import",
        ),
        (
            "SELECT * FROM orders, LATERAL dblink('x', 'y') AS t(a int)",
            "dblink",
        ),
        ("CALL pg_sleep(1)", "pg_sleep"),
        ("EXPLAIN SELECT pg_sleep(1)", "pg_sleep"),
    ] {
        let intent = pg(sql);
        assert_eq!(intent.flags.denied_functions, [function], "{sql}");
        assert!(!intent.is_read_only(), "{sql}");
    }
}

#[test]
fn mariadb_executable_comments_are_refused_and_conditional_ones_parsed() {
    let refused = analyze(Driver::MySql, "SELECT 1 /*M! , SLEEP(5) */");
    assert!(
        matches!(refused, Err(IntentError::Unparseable { .. })),
        "{refused:?}"
    );
    let refused = analyze(Driver::MySql, "SELECT 1 /*m!100000 , SLEEP(5) */");
    assert!(
        matches!(refused, Err(IntentError::Unparseable { .. })),
        "{refused:?}"
    );
    let parsed = analyze(Driver::MySql, "SELECT 1 /*!50000 , SLEEP(5) */").unwrap();
    assert_eq!(parsed.flags.denied_functions, ["sleep"]);
    // In PostgreSQL and SQLite the same text is only a comment.
    assert!(pg("SELECT 1 /*M! , pg_sleep(5) */").is_read_only());
}

#[test]
fn backslash_quotes_that_depend_on_server_settings_are_refused() {
    for (driver, sql) in [
        (Driver::MySql, r"SELECT 'O\'Brien'"),
        (Driver::MySql, r#"SELECT "a\" , SLEEP(1) -- ""#),
        (Driver::MySql, r"SELECT 'a\\\'b'"),
        (Driver::Postgres, r"SELECT 'a\' , pg_sleep(1) --'"),
        (Driver::Postgres, r"SELECT 'a\''b'"),
    ] {
        assert!(
            matches!(analyze(driver, sql), Err(IntentError::Unparseable { .. })),
            "{sql}"
        );
    }
    for (driver, sql) in [
        (Driver::MySql, r"SELECT 'a\\'"),
        (Driver::MySql, r"SELECT 'C:\\temp\\x'"),
        (Driver::MySql, r#"SELECT '{"a": "x\"y"}'"#),
        (Driver::Postgres, r"SELECT E'a\'b'"),
        (Driver::Postgres, r"SELECT 'C:\temp'"),
        (Driver::Sqlite, r"SELECT 'a\' , 1"),
    ] {
        assert!(analyze(driver, sql).is_ok(), "{sql}");
    }
}

#[test]
fn empty_and_unparseable_texts_are_errors_that_say_what_to_do() {
    assert_eq!(analyze(Driver::Postgres, "  \n "), Err(IntentError::Empty));
    assert_eq!(
        analyze(Driver::Postgres, "-- nothing\n/* here */ ;"),
        Err(IntentError::Empty)
    );
    let error = analyze(Driver::Postgres, "SELEC 1").unwrap_err();
    let message = error.to_string();
    assert!(message.contains("PostgreSQL"), "{message}");
    assert!(message.contains("SELEC"), "{message}");
    assert!(!message.contains("sql parser error"), "{message}");
}

/// sqlparser builds `1 + 1 + …`, `a OR b OR …` and `x UNION y UNION …` as trees as deep as
/// the text is long; the gateway accepts 64 KiB of it. Each must be classified on the
/// 2 MiB stack of a tokio worker without overflowing it (an overflow aborts the process).
#[test]
fn deep_texts_do_not_exhaust_a_tasks_stack() {
    let sums = format!("SELECT {}", vec!["1"; 30_000].join("+"));
    let nested = format!("SELECT (SELECT {})", vec!["1"; 30_000].join("+"));
    let unions = vec!["SELECT 1"; 4_000].join(" UNION ");
    let constant = format!(
        "DELETE FROM orders WHERE {}",
        vec!["1=1"; 9_000].join(" AND ")
    );
    let filter = format!(
        "DELETE FROM orders WHERE {}",
        vec!["id=1"; 8_000].join(" OR ")
    );
    let outcome = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            for sql in [&sums, &nested, &unions] {
                assert!(pg(sql).is_read_only());
            }
            (pg(&constant).flags.unbounded, pg(&filter).flags.unbounded)
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(outcome, (true, false));
}
