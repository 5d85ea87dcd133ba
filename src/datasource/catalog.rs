//! Tables and columns, read from each engine's catalog on the read pool (through the same
//! guarded execution as caller statements, so the statement timeout applies).

use super::{Access, ColumnSchema, Datasource, Driver, ExecError, Param, TableSchema, Value};

/// Enough for any schema a person or an agent can use; a larger catalog is cut (and logged)
/// rather than held in memory whole.
const MAX_CATALOG_COLUMNS: u32 = 200_000;

/// Every relation a caller can query (tables, partitioned tables, views, materialized views,
/// foreign tables) outside the system schemas (`pg_*` names are reserved for them).
/// Partitions are left out: their parent lists the same columns. Type names are
/// `pg_type.typname`, the same vocabulary as result columns (`int4`, `int4[]`).
const POSTGRES: &str = r"
SELECT CASE WHEN n.nspname = 'public' THEN c.relname::text
            ELSE n.nspname::text || '.' || c.relname::text END AS table_name,
       a.attname::text AS column_name,
       CASE WHEN et.oid IS NOT NULL THEN et.typname::text || '[]'
            ELSE t.typname::text END AS type_name,
       NOT a.attnotnull AS nullable
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_type et ON t.typcategory = 'A' AND et.oid = t.typelem
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND NOT c.relispartition
  AND a.attnum > 0
  AND NOT a.attisdropped
  AND n.nspname !~ '^pg_'
  AND n.nspname <> 'information_schema'
ORDER BY 1, a.attnum";

/// The connection's current database. `DATA_TYPE` plus `unsigned` matches the result
/// column names (`bigint unsigned`).
const MARIADB: &str = r"
SELECT TABLE_NAME AS table_name,
       COLUMN_NAME AS column_name,
       CASE WHEN COLUMN_TYPE LIKE '%unsigned%' THEN CONCAT(DATA_TYPE, ' unsigned')
            ELSE DATA_TYPE END AS type_name,
       IS_NULLABLE = 'YES' AS nullable
FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = DATABASE()
ORDER BY TABLE_NAME, ORDINAL_POSITION";

const SQLITE_TABLES: &str = r"
SELECT name FROM sqlite_master
WHERE type IN ('table', 'view') AND substr(name, 1, 7) <> 'sqlite_'
ORDER BY name";

/// An `INTEGER PRIMARY KEY` is the rowid and never null, whatever `notnull` says.
const SQLITE_COLUMNS: &str = r#"
SELECT name, lower(type), "notnull" = 0 AND NOT (pk > 0 AND upper(type) = 'INTEGER')
FROM pragma_table_info(?1)
ORDER BY cid"#;

pub(super) async fn schema(datasource: &Datasource) -> Result<Vec<TableSchema>, ExecError> {
    match datasource.driver() {
        Driver::Postgres => flat(datasource, POSTGRES).await,
        Driver::MySql => flat(datasource, MARIADB).await,
        Driver::Sqlite => sqlite(datasource).await,
    }
}

/// One row per column, ordered by table: (table, column, type, nullable).
async fn flat(datasource: &Datasource, sql: &str) -> Result<Vec<TableSchema>, ExecError> {
    let result = datasource
        .execute(Access::Read, sql, &[], MAX_CATALOG_COLUMNS)
        .await?;
    if result.truncated {
        tracing::warn!(
            datasource = %datasource.name(),
            "catalog has more than {MAX_CATALOG_COLUMNS} columns; the schema listing is cut"
        );
    }
    let mut tables: Vec<TableSchema> = Vec::new();
    for row in &result.rows {
        let [table, column, type_name, nullable] = row.as_slice() else {
            continue;
        };
        let column = ColumnSchema {
            name: text(column),
            type_name: text(type_name),
            nullable: truthy(nullable),
        };
        let table = text(table);
        match tables.last_mut() {
            Some(last) if last.name == table => last.columns.push(column),
            _ => tables.push(TableSchema {
                name: table,
                columns: vec![column],
            }),
        }
    }
    Ok(tables)
}

async fn sqlite(datasource: &Datasource) -> Result<Vec<TableSchema>, ExecError> {
    let tables = datasource
        .execute(Access::Read, SQLITE_TABLES, &[], MAX_CATALOG_COLUMNS)
        .await?;
    let mut schema = Vec::with_capacity(tables.rows.len());
    for row in &tables.rows {
        let Some(name) = row.first().map(text) else {
            continue;
        };
        let columns = datasource
            .execute(
                Access::Read,
                SQLITE_COLUMNS,
                &[Param::Text(name.clone())],
                MAX_CATALOG_COLUMNS,
            )
            .await?;
        let columns = columns
            .rows
            .iter()
            .filter_map(|row| match row.as_slice() {
                [column, type_name, nullable] => Some(ColumnSchema {
                    name: text(column),
                    type_name: text(type_name),
                    nullable: truthy(nullable),
                }),
                _ => None,
            })
            .collect();
        schema.push(TableSchema { name, columns });
    }
    Ok(schema)
}

fn text(value: &Value) -> String {
    match value {
        Value::Text(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Int(i) => i.to_string(),
        Value::Null => String::new(),
        other => serde_json::to_value(other)
            .map(|v| v.to_string())
            .unwrap_or_default(),
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Text(s) => s.eq_ignore_ascii_case("yes"),
        _ => false,
    }
}
