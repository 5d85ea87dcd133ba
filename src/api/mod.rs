//! Transports over the [`gateway`](crate::gateway): REST (axum) and gRPC (tonic). Each turns
//! its request into a gateway call and the result back into its own response; neither holds
//! any rule of its own about what may run.

pub mod grpc;
pub mod http;
