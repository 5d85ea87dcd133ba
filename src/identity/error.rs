//! The two error types of the identity module, split by who reads them.
//!
//! [`IdentityError`] is for the operator: start-up and `gatehouse token` failures, each
//! naming the file or configuration key to fix. [`AuthError`] is for the caller of one
//! request and goes back to them verbatim, so its messages are written from fixed text and
//! configuration names only: nothing taken from the token (not even its `kid` or `alg`
//! string) and no key material is ever formatted into one.

use std::path::PathBuf;

use jsonwebtoken::Algorithm;

use crate::config::ConfigError;

/// Start-up and CLI failures. Messages name the file or `auth.*` key involved.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("invalid configuration at `{key}`: {message}")]
    InvalidSetting {
        key: &'static str,
        message: &'static str,
    },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the HS256 secret file {path}: {source}")]
    ReadSecret {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the HS256 secret file {path}: {source}")]
    WriteSecret {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the HS256 secret in {origin} is empty")]
    EmptySecret { origin: String },
    #[error(
        "no HS256 secret at {}: run `gatehouse serve --data-dir {}` once to create one, or set auth.hs256_secret",
        path.display(),
        dir.display()
    )]
    NoDataDirSecret { path: PathBuf, dir: PathBuf },
    #[error(
        "this configuration verifies tokens with a public key ({key}); gatehouse token can only sign with an HS256 secret"
    )]
    CannotSign { key: &'static str },
    #[error("cannot read auth.public_key_pem_file {path}: {source}")]
    ReadPem {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("auth.public_key_pem_file {path} {reason}")]
    InvalidPem { path: PathBuf, reason: &'static str },
    #[error("auth.jwks_url `{url}` {reason}")]
    InvalidJwksUrl { url: String, reason: &'static str },
    #[error("cannot build the HTTP client for auth.jwks_url: {0}")]
    HttpClient(#[source] reqwest::Error),
    #[error("unknown principal kind `{0}`: expected human, agent or service")]
    UnknownKind(String),
    #[error("cannot mint a token: {0}")]
    InvalidTokenRequest(&'static str),
    #[error("cannot sign the token: {0}")]
    Sign(#[source] jsonwebtoken::errors::Error),
    #[error("cannot read random bytes from the operating system: {0}")]
    Random(getrandom::Error),
}

/// Why one request's token was refused. Every message is safe to return to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token: send `Authorization: Bearer <token>`")]
    MissingToken,
    #[error("the Authorization header must use the Bearer scheme: `Authorization: Bearer <token>`")]
    NotBearer,
    /// The text is not a compact JWS: the reason is one of a fixed set of phrases.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("unsigned tokens (alg `none`) are not accepted")]
    AlgNone,
    #[error("the token's signing algorithm is not supported")]
    UnsupportedAlgorithm,
    /// A known algorithm the verification key must not be used with: HS256 against a
    /// public key (the classic RS/HS confusion), RS256 against a shared secret, ES384
    /// against a P-256 key, or an algorithm other than a JWK's declared `alg`.
    #[error("the token is signed with {alg:?}, but its verification key accepts only {expected}")]
    AlgorithmNotAllowed { alg: Algorithm, expected: String },
    #[error("the token's key id (kid) is not in the identity provider's key set")]
    UnknownKey,
    #[error("the token has no key id (kid) and the key set holds more than one key")]
    MissingKeyId,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (its nbf is in the future)")]
    NotYetValid,
    #[error("the token's issuer (iss) is not the one this server trusts")]
    WrongIssuer,
    #[error("the token's audience (aud) does not include this server")]
    WrongAudience,
    /// A required claim is absent (or, for `exp`, `iss` and `aud`, not of the right type).
    #[error("the token has no valid `{0}` claim")]
    MissingClaim(String),
    /// A claim is present but of the wrong shape; `claim` is the configured claim name.
    #[error("the token's `{claim}` claim {expected}")]
    InvalidClaim {
        claim: String,
        expected: &'static str,
    },
    /// The JWKS has not been fetched yet: the request is refused (fail closed) but the
    /// caller may retry, hence 503 rather than 401.
    #[error("token verification keys are not available yet; retry shortly")]
    KeysUnavailable,
}

impl AuthError {
    /// True only for [`AuthError::KeysUnavailable`]: the server's fault, not the token's
    /// (transports answer 503 for it and 401 for everything else).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AuthError::KeysUnavailable)
    }

    pub(crate) fn invalid_claim(claim: &str, expected: &'static str) -> AuthError {
        AuthError::InvalidClaim {
            claim: claim.to_owned(),
            expected,
        }
    }
}
