//! Dynamic masking: no raw PII or secret leaves the service unless a policy says so.

mod class;
pub mod classify;
pub mod detect;
pub mod engine;
pub mod lineage;
mod message;
mod service;
pub mod strategy;

pub use class::Classification;
pub use classify::{MaskCatalog, classify_name};
pub use engine::{ColumnMasking, ColumnPlan, MaskError, MaskReport};
pub use message::redact_values;
pub use service::{Masking, MaskingSetupError, StatementPlan};
pub use strategy::{HmacKey, Masker, Strategy, is_mask_artifact, load_or_create_key};
