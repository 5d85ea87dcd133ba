//! The gRPC service `gatehouse.v1.Gatehouse`: the same pipeline as REST, with typed values
//! as a proto oneof. Errors carry the status code that matches the REST status and the
//! same machine-readable code in the `gatehouse-code` metadata.
//!
//! One file per service: `Gatehouse` here, [`audit`] for `Audit`, [`approvals`] for
//! `Approvals`.

pub mod approvals;
pub mod audit;
pub mod metrics;

use std::sync::Arc;

use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use crate::datasource::{Param, Value};
use crate::gateway::{Caller, Gateway, GatewayError, QueryReply, QueryRequest, RequestContext};
use crate::intent::Intent;
use crate::policy::Decision;
use crate::proto;
use crate::proto::value::Kind;

pub struct GatehouseService {
    gateway: Arc<Gateway>,
}

impl GatehouseService {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        GatehouseService { gateway }
    }

    async fn authenticate<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        authenticate(&self.gateway, request).await
    }
}

/// The verified caller of a gRPC request, with what the audit trail records about it.
pub(crate) async fn authenticate<T>(
    gateway: &Gateway,
    request: &Request<T>,
) -> Result<Caller, Status> {
    let header = match request.metadata().get("authorization") {
        Some(value) => Some(value.to_str().map_err(|_| {
            status(GatewayError::InvalidRequest(
                "the authorization metadata is not valid ASCII".to_owned(),
            ))
        })?),
        None => None,
    };
    let context = RequestContext::from_headers(request.remote_addr(), |name| {
        request
            .metadata()
            .get(name)
            .and_then(|value| value.to_str().ok())
    });
    gateway.authenticate(header, context).await.map_err(status)
}

/// The one place gateway errors become gRPC statuses.
pub(crate) fn status(error: GatewayError) -> Status {
    use tonic::Code;
    let code = match &error {
        GatewayError::Unauthenticated(_) => Code::Unauthenticated,
        GatewayError::IdentityUnavailable
        | GatewayError::DatasourceUnavailable(_)
        | GatewayError::AuditUnavailable => Code::Unavailable,
        GatewayError::MaskedValueWrite(_) => Code::InvalidArgument,
        GatewayError::MaskingFailed(_) => Code::Internal,
        GatewayError::InvalidRequest(_)
        | GatewayError::UnparseableSql(_)
        | GatewayError::UnsupportedType(_) => Code::InvalidArgument,
        GatewayError::UnknownDatasource(_) => Code::NotFound,
        GatewayError::Forbidden { .. }
        | GatewayError::Denied { .. }
        | GatewayError::ApprovalRequired { .. } => Code::PermissionDenied,
        GatewayError::InvalidPolicy(_) => Code::FailedPrecondition,
        GatewayError::Approval(error) => approvals::code(error),
        GatewayError::Timeout { .. } => Code::DeadlineExceeded,
        // The database rejected the statement: not retryable as is, so not UNAVAILABLE.
        GatewayError::Database(_) => Code::FailedPrecondition,
    };
    let mut status = Status::new(code, error.to_string());
    status
        .metadata_mut()
        .insert("gatehouse-code", MetadataValue::from_static(error.code()));
    status
}

pub(crate) fn decision(decision: &Decision) -> proto::Decision {
    proto::Decision {
        effect: decision.effect.as_str().to_owned(),
        policies: decision.policies.clone(),
        reasons: decision.reasons.clone(),
        approver_groups: decision.approver_groups.clone(),
        min_approvals: decision.min_approvals,
    }
}

fn intent(intent: &Intent) -> proto::Intent {
    proto::Intent {
        statement: intent.statement.clone(),
        actions: intent
            .actions
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect(),
        tables: intent
            .tables
            .iter()
            .map(|t| proto::TableAccess {
                table: t.table.to_string(),
                access: t.access.as_str().to_owned(),
            })
            .collect(),
        targets: intent
            .targets
            .iter()
            .map(|t| proto::Target {
                action: t.action.as_str().to_owned(),
                table: t.table.as_ref().map(ToString::to_string),
            })
            .collect(),
        columns: intent.columns.iter().map(ToString::to_string).collect(),
        flags: intent
            .flags
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        denied_functions: intent.flags.denied_functions.clone(),
        unclassified: intent.flags.unclassified.clone(),
    }
}

/// The gateway request of a gRPC `QueryRequest`.
fn query_request(body: proto::QueryRequest) -> Result<QueryRequest, Status> {
    let params = body
        .params
        .into_iter()
        .enumerate()
        .map(|(i, v)| param(i, v))
        .collect::<Result<Vec<_>, _>>()?;
    let approval_id = if body.approval_id.is_empty() {
        None
    } else {
        Some(body.approval_id.parse().map_err(|_| {
            status(GatewayError::InvalidRequest(
                "`approval_id` is not an approval id (a UUID)".to_owned(),
            ))
        })?)
    };
    Ok(QueryRequest {
        datasource: body.datasource,
        sql: body.sql,
        params,
        max_rows: body.max_rows,
        approval_id,
    })
}

fn param(index: usize, value: proto::Value) -> Result<Param, Status> {
    let invalid = |message: &str| {
        status(GatewayError::InvalidRequest(format!(
            "params[{index}]: {message}"
        )))
    };
    Ok(match value.kind {
        None | Some(Kind::NullValue(_)) => Param::Null,
        Some(Kind::BoolValue(b)) => Param::Bool(b),
        Some(Kind::IntValue(i)) => Param::Int(i),
        Some(Kind::UintValue(u)) => Param::Int(
            i64::try_from(u)
                .map_err(|_| invalid("unsigned value exceeds the 64-bit signed range"))?,
        ),
        Some(Kind::FloatValue(f)) => Param::Float(f),
        Some(
            Kind::DecimalValue(s)
            | Kind::TextValue(s)
            | Kind::DateValue(s)
            | Kind::TimeValue(s)
            | Kind::TimestampValue(s)
            | Kind::TimestamptzValue(s)
            | Kind::UuidValue(s)
            | Kind::IntervalValue(s),
        ) => Param::Text(s),
        Some(Kind::JsonValue(s)) => Param::Json(
            serde_json::from_str(&s)
                .map_err(|e| invalid(&format!("json_value is not valid JSON: {e}")))?,
        ),
        Some(Kind::BytesValue(_)) => {
            return Err(invalid(
                "bytes parameters are not supported; send base64 text and decode it in SQL",
            ));
        }
        Some(Kind::ArrayValue(_)) => {
            return Err(invalid(
                "array parameters are not supported; send a JSON array as json_value",
            ));
        }
    })
}

fn temporal(value: &Value) -> String {
    value.temporal_text().unwrap_or_default()
}

fn to_proto(value: Value) -> proto::Value {
    let kind = match value {
        Value::Null => Kind::NullValue(proto::NullValue::NullValue as i32),
        Value::Bool(b) => Kind::BoolValue(b),
        Value::Int(i) => Kind::IntValue(i),
        Value::UInt(u) => Kind::UintValue(u),
        Value::Float(f) => Kind::FloatValue(f),
        Value::Decimal(s) => Kind::DecimalValue(s),
        Value::Text(s) => Kind::TextValue(s),
        Value::Bytes(b) => Kind::BytesValue(b),
        Value::Date(_) => Kind::DateValue(temporal(&value)),
        Value::Time(_) => Kind::TimeValue(temporal(&value)),
        Value::Timestamp(_) => Kind::TimestampValue(temporal(&value)),
        Value::TimestampTz(_) => Kind::TimestamptzValue(temporal(&value)),
        Value::Uuid(u) => Kind::UuidValue(u.to_string()),
        Value::Json(j) => Kind::JsonValue(j.to_string()),
        Value::Interval(s) => Kind::IntervalValue(s),
        Value::Array(items) => Kind::ArrayValue(proto::ValueList {
            values: items.into_iter().map(to_proto).collect(),
        }),
    };
    proto::Value { kind: Some(kind) }
}

#[tonic::async_trait]
impl proto::gatehouse_server::Gatehouse for GatehouseService {
    async fn query(
        &self,
        request: Request<proto::QueryRequest>,
    ) -> Result<Response<proto::QueryResponse>, Status> {
        let caller = self.authenticate(&request).await?;
        let request = query_request(request.into_inner())?;
        let outcome = match self.gateway.query(&caller, request).await.map_err(status)? {
            QueryReply::Ran(outcome) => *outcome,
            QueryReply::AwaitingApproval(pending) => {
                return Ok(Response::new(proto::QueryResponse {
                    request_id: pending.request_id.to_string(),
                    decision: Some(decision(&pending.decision)),
                    approval: Some(approvals::to_proto(&pending.approval)),
                    ..proto::QueryResponse::default()
                }));
            }
        };
        let result = outcome.result;
        let mut masking = outcome.masking.columns.into_iter();
        Ok(Response::new(proto::QueryResponse {
            columns: result
                .columns
                .into_iter()
                .map(|c| {
                    let masked = masking.next().unwrap_or_default();
                    proto::Column {
                        name: c.name,
                        r#type: c.type_name,
                        masked: masked.masked,
                        classifications: masked.classifications,
                    }
                })
                .collect(),
            masked_values: outcome.masking.masked_values,
            row_count: result.rows.len() as u64,
            rows: result
                .rows
                .into_iter()
                .map(|row| proto::Row {
                    values: row.into_iter().map(to_proto).collect(),
                })
                .collect(),
            truncated: result.truncated,
            rows_affected: result.rows_affected,
            elapsed_ms: outcome.elapsed.as_millis() as u64,
            request_id: outcome.request_id.to_string(),
            decision: Some(decision(&outcome.decision)),
            approval: None,
        }))
    }

    async fn explain(
        &self,
        request: Request<proto::QueryRequest>,
    ) -> Result<Response<proto::ExplainResponse>, Status> {
        let caller = self.authenticate(&request).await?;
        let request = query_request(request.into_inner())?;
        let explanation = self
            .gateway
            .explain(&caller, &request)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::ExplainResponse {
            datasource: explanation.datasource,
            environment: explanation.environment,
            driver: explanation.driver.to_string(),
            intent: Some(intent(&explanation.intent)),
            decision: Some(decision(&explanation.decision)),
        }))
    }

    async fn reload_policies(
        &self,
        request: Request<proto::ReloadPoliciesRequest>,
    ) -> Result<Response<proto::ReloadPoliciesResponse>, Status> {
        let caller = self.authenticate(&request).await?;
        let policies = self
            .gateway
            .reload_policies(&caller)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::ReloadPoliciesResponse {
            policies: policies as u64,
        }))
    }

    async fn list_datasources(
        &self,
        request: Request<proto::ListDatasourcesRequest>,
    ) -> Result<Response<proto::ListDatasourcesResponse>, Status> {
        self.authenticate(&request).await?;
        let datasources = self
            .gateway
            .datasources()
            .into_iter()
            .map(|ds| proto::Datasource {
                name: ds.name,
                environment: ds.environment,
                driver: ds.driver.to_string(),
            })
            .collect();
        Ok(Response::new(proto::ListDatasourcesResponse {
            datasources,
        }))
    }

    async fn get_schema(
        &self,
        request: Request<proto::GetSchemaRequest>,
    ) -> Result<Response<proto::GetSchemaResponse>, Status> {
        let caller = self.authenticate(&request).await?;
        let name = request.into_inner().datasource;
        let tables = self.gateway.schema(&caller, &name).await.map_err(status)?;
        Ok(Response::new(proto::GetSchemaResponse {
            datasource: name,
            tables: tables
                .into_iter()
                .map(|t| proto::TableSchema {
                    name: t.name,
                    columns: t
                        .columns
                        .into_iter()
                        .map(|c| proto::ColumnSchema {
                            name: c.name,
                            r#type: c.type_name,
                            nullable: c.nullable,
                            classifications: c
                                .classifications
                                .iter()
                                .map(|class| class.as_str().to_owned())
                                .collect(),
                            masked: c.masked,
                        })
                        .collect(),
                })
                .collect(),
        }))
    }
}
