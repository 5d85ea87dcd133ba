//! Token verification: compact JWS in, [`Principal`] out.
//!
//! Order of checks, each failing with its own [`AuthError`]:
//! 1. shape: three base64url segments, a JSON header with a known `alg` (`none` refused);
//! 2. key: the configured one, or the JWKS key named by `kid`;
//! 3. algorithm: must be one the key allows (see `keys`), which stops RS/HS confusion;
//! 4. signature, then `exp` (required), `nbf`, `iss` and `aud` (when configured), all by
//!    `jsonwebtoken`;
//! 5. Gatehouse's claims: `sub`, kind, groups, `act`.
//!
//! Header fields that point at keys (`jku`, `jwk`, `x5u`, `x5c`) are ignored: the keys a
//! token is checked against come from configuration only, never from the token.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::{Error as JwtError, ErrorKind};
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use crate::config::{AuthConfig, KeySource};

use super::error::{AuthError, IdentityError};
use super::jwks::{Jwks, RefreshTask};
use super::keys::VerifyKey;
use super::principal::Principal;
use super::secret::{self, HsSecret, MIN_SECRET_BYTES};

/// Largest token accepted. Real tokens are a few KiB; the bound keeps base64 and JSON
/// work on hostile input small.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Largest `auth.leeway_s`: clock skew is seconds, and a larger value would quietly
/// extend every token's life.
const MAX_LEEWAY_S: u64 = 3600;

/// Verifies caller tokens against the configured keys. Cheap to clone: one `Arc`.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    keys: Keys,
    /// Built once from configuration; each token gets a copy restricted to its algorithm.
    validation: Validation,
    kind_claim: String,
    groups_claim: String,
}

enum Keys {
    /// An HS256 secret or a PEM public key; `source` names its configuration key.
    Static {
        key: Arc<VerifyKey>,
        source: &'static str,
    },
    Jwks {
        jwks: Arc<Jwks>,
        _refresh: RefreshTask,
    },
}

impl Verifier {
    /// Builds the verifier from the configured key source. `KeySource::DataDir` reads
    /// (creating if missing) the data-dir secret. A JWKS is fetched once here; if that
    /// fails the verifier is still returned, refuses requests with
    /// [`AuthError::KeysUnavailable`] and keeps retrying in the background: the server
    /// can start (and report itself unready) while the IdP is briefly down.
    pub async fn from_config(
        auth: &AuthConfig,
        data_dir: &Path,
    ) -> Result<Verifier, IdentityError> {
        if auth.leeway_s > MAX_LEEWAY_S {
            return Err(IdentityError::InvalidSetting {
                key: "auth.leeway_s",
                message: "must be at most 3600 (one hour)",
            });
        }
        let keys = match auth.key_source()? {
            KeySource::Hs256Secret(raw) => hmac(secret::config_secret(&raw)?, "auth.hs256_secret"),
            KeySource::Hs256SecretFile(path) => {
                hmac(secret::read_secret_file(&path)?, "auth.hs256_secret_file")
            }
            KeySource::DataDir => {
                hmac(secret::ensure_data_dir_secret(data_dir)?, "data-dir secret")
            }
            KeySource::PublicKeyPemFile(path) => {
                let pem = std::fs::read(&path).map_err(|source| IdentityError::ReadPem {
                    path: path.clone(),
                    source,
                })?;
                let key = VerifyKey::from_public_pem(&pem)
                    .map_err(|reason| IdentityError::InvalidPem { path, reason })?;
                Keys::Static {
                    key: Arc::new(key),
                    source: "auth.public_key_pem_file",
                }
            }
            KeySource::JwksUrl(url) => {
                if auth.jwks_refresh_s == 0 {
                    return Err(IdentityError::InvalidSetting {
                        key: "auth.jwks_refresh_s",
                        message: "must be at least 1",
                    });
                }
                let (jwks, refresh) =
                    Jwks::start(&url, Duration::from_secs(auth.jwks_refresh_s)).await?;
                Keys::Jwks {
                    jwks,
                    _refresh: refresh,
                }
            }
        };
        Ok(Verifier {
            inner: Arc::new(Inner {
                keys,
                validation: base_validation(auth),
                kind_claim: auth.kind_claim.clone(),
                groups_claim: auth.groups_claim.clone(),
            }),
        })
    }

    /// The caller behind `token`, or why the token is refused.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = TokenHeader::parse(token)?;
        let key = match &self.inner.keys {
            Keys::Static { key, .. } => Arc::clone(key),
            Keys::Jwks { jwks, .. } => jwks.key_for(header.kid.as_deref(), header.alg).await?,
        };
        key.check(header.alg)?;
        let mut validation = self.inner.validation.clone();
        // Exactly the algorithm already checked against the key: jsonwebtoken also
        // requires every listed algorithm to match the key's family.
        validation.algorithms = vec![header.alg];
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, key.decoding_key(), &validation)
                .map_err(auth_error)?;
        Principal::from_claims(
            &data.claims,
            &self.inner.kind_claim,
            &self.inner.groups_claim,
        )
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = match &self.inner.keys {
            Keys::Static { source, .. } => *source,
            Keys::Jwks { .. } => "auth.jwks_url",
        };
        f.debug_struct("Verifier")
            .field("keys", &keys)
            .finish_non_exhaustive()
    }
}

fn hmac(secret: HsSecret, source: &'static str) -> Keys {
    if secret.as_bytes().len() < MIN_SECRET_BYTES {
        tracing::warn!(
            source,
            "the HS256 secret is shorter than {MIN_SECRET_BYTES} bytes: it may be guessed, and whoever guesses it can mint tokens"
        );
    }
    Keys::Static {
        key: Arc::new(VerifyKey::hmac(&secret)),
        source,
    }
}

/// The claim checks every token gets, from configuration.
fn base_validation(auth: &AuthConfig) -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = auth.leeway_s;
    validation.validate_exp = true;
    // Off by default in jsonwebtoken; on here, so `nbf` is honoured whenever present.
    validation.validate_nbf = true;
    // jsonwebtoken checks `iss` and `aud` only when the token carries them: a token
    // without them would pass. So a configured issuer or audience also makes the claim
    // required.
    let mut required = vec!["exp"];
    if let Some(issuer) = &auth.issuer {
        validation.set_issuer(&[issuer]);
        required.push("iss");
    }
    match &auth.audience {
        Some(audience) => {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        // With no audience configured, jsonwebtoken would refuse every token that has
        // one (which most IdP tokens do); we have nothing to compare it to, so skip it.
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&required);
    validation
}

/// The header fields verification needs, read before any key is chosen.
struct TokenHeader {
    alg: Algorithm,
    kid: Option<String>,
}

impl TokenHeader {
    /// Parsed here rather than by jsonwebtoken so that `alg: none`, an unknown algorithm
    /// and a malformed token each get their own error: jsonwebtoken reports all three as
    /// one JSON error on its `Algorithm` enum.
    fn parse(token: &str) -> Result<TokenHeader, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed("the token is larger than 16 KiB"));
        }
        let mut segments = token.split('.');
        let (Some(header), Some(_claims), Some(_signature), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(AuthError::Malformed(
                "expected three base64url segments separated by dots",
            ));
        };
        let raw = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| AuthError::Malformed("the header is not valid base64url"))?;
        let header: Map<String, Value> = serde_json::from_slice(&raw)
            .map_err(|_| AuthError::Malformed("the header is not a JSON object"))?;
        let alg = match header.get("alg") {
            Some(Value::String(alg)) => alg,
            _ => return Err(AuthError::Malformed("the header has no `alg`")),
        };
        if alg.eq_ignore_ascii_case("none") {
            return Err(AuthError::AlgNone);
        }
        let alg = Algorithm::from_str(alg).map_err(|_| AuthError::UnsupportedAlgorithm)?;
        // RFC 7515: a recipient must refuse a token whose `crit` names extensions it does
        // not understand, and we understand none.
        if header.contains_key("crit") {
            return Err(AuthError::Malformed(
                "the header lists critical extensions (crit), which this server does not support",
            ));
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(AuthError::Malformed("the header's `kid` is not a string")),
        };
        Ok(TokenHeader { alg, kid })
    }
}

/// Maps jsonwebtoken's failures onto ours. The library's own messages are not passed on:
/// some quote parts of the input.
fn auth_error(error: JwtError) -> AuthError {
    match error.into_kind() {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim),
        ErrorKind::InvalidClaimFormat(claim) => AuthError::InvalidClaim {
            claim,
            expected: "must be a number of seconds since the epoch",
        },
        ErrorKind::InvalidToken => {
            AuthError::Malformed("expected three base64url segments separated by dots")
        }
        ErrorKind::Base64(_) => AuthError::Malformed("a segment is not valid base64url"),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            AuthError::Malformed("the header or claims are not a JSON object")
        }
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => AuthError::UnsupportedAlgorithm,
        // The key itself could not be used: our configuration's problem, so it is logged,
        // but the token is still refused.
        other => {
            tracing::warn!(error = ?other, "a verification key could not check a token");
            AuthError::BadSignature
        }
    }
}
