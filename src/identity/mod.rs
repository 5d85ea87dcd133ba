//! JWT verification and the `Principal` it yields.
//!
//! Every request's caller is a [`Principal`], and the only way to get one is
//! [`Verifier::verify`] on a signed token. Layout:
//!
//! - `verifier`: [`Verifier`], the order of checks, and the mapping of failures to
//!   [`AuthError`];
//! - `keys`: verification keys bound to the algorithms they may verify (the defence
//!   against `alg` confusion);
//! - `jwks`: an identity provider's key set, refreshed in the background, with `kid`
//!   rotation;
//! - `principal`: [`Principal`] and [`PrincipalKind`], read from verified claims;
//! - `secret`: HS256 secrets, including the data-dir one the embedded default creates;
//! - `mint`: HS256 tokens for `gatehouse token`;
//! - `error`: [`IdentityError`] for the operator, [`AuthError`] for the caller.
//!
//! Delegation: in Gatehouse's convention the token's `sub` is the caller holding the token
//! (an agent, say) and the `sub` of its RFC 8693 `act` claim is the person it acts for,
//! exposed as [`Principal::on_behalf_of`].

mod error;
mod jwks;
mod keys;
mod mint;
mod principal;
mod secret;
mod verifier;

#[cfg(test)]
mod tests;

pub use error::{AuthError, IdentityError};
pub use mint::{TokenRequest, mint_hs256};
pub use principal::{Principal, PrincipalKind};
pub use secret::{HsSecret, ensure_data_dir_secret, signing_secret};
pub use verifier::Verifier;

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive, per
/// RFC 7235). A missing or empty value or token is [`AuthError::MissingToken`]; any other
/// scheme is [`AuthError::NotBearer`].
pub fn bearer_token(header: Option<&str>) -> Result<&str, AuthError> {
    let value = header.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(AuthError::MissingToken);
    }
    let (scheme, token) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::NotBearer);
    }
    match token.trim() {
        "" => Err(AuthError::MissingToken),
        token => Ok(token),
    }
}
