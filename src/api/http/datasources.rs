//! `GET /v1/datasources` and `GET /v1/datasources/{name}/schema`.

use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::Problem;
use super::extract::Caller;
use crate::gateway::SchemaTable;

/// A datasource callers can query.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"name": "shop", "environment": "dev", "driver": "sqlite"}))]
pub struct DatasourceOut {
    /// Name to use in `POST /v1/query`.
    pub name: String,
    /// Environment (`dev`, `prod`, …); production environments are guarded more strictly.
    pub environment: String,
    /// SQL dialect to write in: `postgres`, `mysql` (MariaDB) or `sqlite`.
    pub driver: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DatasourceList {
    pub datasources: Vec<DatasourceOut>,
}

/// A column of a table.
#[derive(Debug, Serialize, ToSchema)]
pub struct ColumnSchemaOut {
    pub name: String,
    /// The database's own type name, lower case.
    #[serde(rename = "type")]
    pub type_name: String,
    pub nullable: bool,
    /// Classes of sensitive data the column holds (`pii.email`, `secret.token`, …), from
    /// configuration, its name and type, and sampled values. Empty: not classified (the
    /// value detectors still scan its text).
    pub classifications: Vec<String>,
    /// Whether you get this column's values masked. Conditions on a masked column
    /// (WHERE, JOIN, GROUP BY, ORDER BY) are refused: select it instead.
    pub masked: bool,
}

/// A table (or view) and its columns.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableOut {
    /// Table name as it is written in SQL (`schema.table` on PostgreSQL outside `public`).
    pub name: String,
    pub columns: Vec<ColumnSchemaOut>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "datasource": "shop",
    "tables": [{"name": "orders", "columns": [
        {"name": "id", "type": "integer", "nullable": false, "classifications": [], "masked": false},
        {"name": "email", "type": "text", "nullable": false, "classifications": ["pii.email"], "masked": true}
    ]}]
}))]
pub struct SchemaOut {
    pub datasource: String,
    pub tables: Vec<TableOut>,
}

fn table_out(table: SchemaTable) -> TableOut {
    TableOut {
        name: table.name,
        columns: table
            .columns
            .into_iter()
            .map(|c| ColumnSchemaOut {
                name: c.name,
                type_name: c.type_name,
                nullable: c.nullable,
                classifications: c
                    .classifications
                    .iter()
                    .map(|class| class.as_str().to_owned())
                    .collect(),
                masked: c.masked,
            })
            .collect(),
    }
}

/// List datasources
///
/// Lists the datasources this service fronts, with the environment each belongs to and
/// the SQL dialect (`driver`) statements must be written in. Call this first to find the
/// `datasource` name for `POST /v1/query`.
#[utoipa::path(
    get,
    path = "/v1/datasources",
    operation_id = "listDatasources",
    tag = "datasources",
    responses(
        (status = 200, description = "The datasources, in name order.", body = DatasourceList),
        (status = 401, description = "`unauthenticated`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list(State(state): State<AppState>, Caller(_): Caller) -> axum::Json<DatasourceList> {
    let datasources = state
        .gateway
        .datasources()
        .into_iter()
        .map(|ds| DatasourceOut {
            name: ds.name,
            environment: ds.environment,
            driver: ds.driver.to_string(),
        })
        .collect();
    axum::Json(DatasourceList { datasources })
}

/// Describe a datasource's tables
///
/// Lists the tables and views of one datasource with their columns and database types,
/// from the database's catalog (at most `catalog_max_age_s` old, and re-read at once after
/// DDL through Gatehouse), and for each column its classification and
/// whether your results show it masked. Use it to write correct SQL before querying, and
/// to avoid conditions on masked columns (they are refused).
#[utoipa::path(
    get,
    path = "/v1/datasources/{name}/schema",
    operation_id = "getSchema",
    tag = "datasources",
    params(("name" = String, Path, description = "Datasource name, as listed by `GET /v1/datasources`.")),
    responses(
        (status = 200, description = "Tables and columns.", body = SchemaOut),
        (status = 401, description = "`unauthenticated`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`unknown_datasource`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`datasource_unavailable` or `audit_unavailable`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn schema(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<axum::Json<SchemaOut>, Problem> {
    let tables = state.gateway.schema(&caller, &name).await?;
    Ok(axum::Json(SchemaOut {
        datasource: name,
        tables: tables.into_iter().map(table_out).collect(),
    }))
}
