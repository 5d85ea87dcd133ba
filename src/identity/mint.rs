//! Minting HS256 tokens for `gatehouse token`: the embedded default's way to hand out
//! credentials without an identity provider.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};

use crate::config::AuthConfig;

use super::error::IdentityError;
use super::principal::PrincipalKind;
use super::secret::HsSecret;

/// What a minted token says about its holder.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub sub: String,
    pub kind: PrincipalKind,
    pub groups: Vec<String>,
    /// The person an agent acts for, written as the RFC 8693 `act` claim.
    pub act: Option<String>,
    pub ttl: Duration,
}

/// An HS256 token carrying `sub`, the kind and groups under the configured claim names,
/// `act` when given, `iat`/`nbf`/`exp`, a random `jti`, and `iss`/`aud` when configured
/// (so the token passes the same server's checks).
pub fn mint_hs256(
    secret: &HsSecret,
    auth: &AuthConfig,
    req: &TokenRequest,
) -> Result<String, IdentityError> {
    mint_hs256_at(secret, auth, req, jsonwebtoken::get_current_timestamp())
}

/// [`mint_hs256`] with the clock passed in, so tests choose `iat` instead of sleeping.
pub(crate) fn mint_hs256_at(
    secret: &HsSecret,
    auth: &AuthConfig,
    req: &TokenRequest,
    now: u64,
) -> Result<String, IdentityError> {
    if req.sub.is_empty() {
        return Err(IdentityError::InvalidTokenRequest(
            "the subject (sub) is empty",
        ));
    }
    let ttl = req.ttl.as_secs();
    if ttl == 0 {
        return Err(IdentityError::InvalidTokenRequest(
            "the lifetime must be at least one second",
        ));
    }
    let mut jti = [0u8; 16];
    getrandom::fill(&mut jti).map_err(IdentityError::Random)?;

    let mut claims = Map::new();
    // Configured claim names first, registered claims after: if a configuration ever
    // named `kind_claim` after a registered claim, the registered value wins and the
    // verifier would then refuse the token loudly rather than trust a mixed-up one.
    claims.insert(auth.kind_claim.clone(), json!(req.kind.as_str()));
    claims.insert(auth.groups_claim.clone(), json!(req.groups));
    claims.insert("sub".to_owned(), json!(req.sub));
    if let Some(act) = &req.act {
        claims.insert("act".to_owned(), json!({ "sub": act }));
    }
    claims.insert("iat".to_owned(), json!(now));
    claims.insert("nbf".to_owned(), json!(now));
    claims.insert("exp".to_owned(), json!(now.saturating_add(ttl)));
    claims.insert("jti".to_owned(), json!(hex::encode(jti)));
    if let Some(issuer) = &auth.issuer {
        claims.insert("iss".to_owned(), json!(issuer));
    }
    if let Some(audience) = &auth.audience {
        claims.insert("aud".to_owned(), json!(audience));
    }
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &Value::Object(claims),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(IdentityError::Sign)
}
