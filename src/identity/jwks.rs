//! Keys from an identity provider's JWKS document, kept fresh in the background.
//!
//! The set is fetched once at start-up, then every `auth.jwks_refresh_s` by a tokio task.
//! A failed refresh keeps the last good set: an IdP hiccup must not lock every caller out.
//! Until a first fetch succeeds there are no keys, and requests fail with
//! [`AuthError::KeysUnavailable`] (fail closed) while the task retries with backoff.
//!
//! Key rotation: a token whose `kid` is not in the set triggers an immediate refetch, at
//! most once per [`ON_DEMAND_MIN_INTERVAL`]. The bound matters because `kid` is chosen by
//! the caller: without it, a flood of tokens with made-up kids would turn Gatehouse into
//! an amplifier against the IdP.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::Jwk;
use serde_json::Value;

use super::error::{AuthError, IdentityError};
use super::keys::VerifyKey;

/// Timeout of one JWKS request. Short: an unknown-kid refetch happens while a request
/// waits.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Least time between two refetches triggered by unknown kids.
pub(crate) const ON_DEMAND_MIN_INTERVAL: Duration = Duration::from_secs(10);
/// First retry delay after a failed initial fetch; doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

pub(crate) struct Jwks {
    url: String,
    client: reqwest::Client,
    /// The last good set. A std lock is enough: it is held only to clone or swap the
    /// `Arc`, never across an await.
    current: RwLock<Option<Arc<KeySet>>>,
    /// When the last unknown-kid refetch started. A tokio mutex on purpose: it is held
    /// across the fetch, so concurrent requests with unknown kids wait for the one fetch
    /// in flight and then see its result instead of starting their own.
    last_on_demand: tokio::sync::Mutex<Option<Instant>>,
}

/// Aborts the refresh task when the verifier goes away. The task holds only a `Weak`
/// reference (a strong one would keep the verifier alive forever), so it would also stop
/// by itself at its next wake-up; aborting just makes that immediate.
pub(crate) struct RefreshTask(tokio::task::AbortHandle);

impl Drop for RefreshTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Jwks {
    /// Fetches the set once and starts the background refresh, whether or not that first
    /// fetch worked.
    pub(crate) async fn start(
        url: &str,
        refresh_every: Duration,
    ) -> Result<(Arc<Jwks>, RefreshTask), IdentityError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| IdentityError::InvalidJwksUrl {
            url: url.to_owned(),
            reason: "is not a valid URL",
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(IdentityError::InvalidJwksUrl {
                url: url.to_owned(),
                reason: "must be an http:// or https:// URL",
            });
        }
        // The process installs rustls' ring provider at start-up; without one, reqwest
        // panics while building a client. Installing it here too is a no-op in the
        // server and keeps every other caller (tests, tools) from that panic.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            // The configured URL is the only key source the operator chose; following a
            // redirect would trust another, possibly over plain http.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(IdentityError::HttpClient)?;
        let jwks = Arc::new(Jwks {
            url: url.to_owned(),
            client,
            current: RwLock::new(None),
            last_on_demand: tokio::sync::Mutex::new(None),
        });
        if !jwks.refresh().await {
            tracing::warn!(
                jwks.url = %jwks.url,
                "no JWKS at start-up: requests are refused with 503 until the keys load; retrying in the background"
            );
        }
        let task = tokio::spawn(refresh_loop(Arc::downgrade(&jwks), refresh_every));
        Ok((jwks, RefreshTask(task.abort_handle())))
    }

    /// The key for a token's `kid` and `alg`, refetching the set once for an unknown kid.
    pub(crate) async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<VerifyKey>, AuthError> {
        let set = self.current().ok_or(AuthError::KeysUnavailable)?;
        match set.find(kid, alg) {
            Err(AuthError::UnknownKey) => {
                self.refresh_on_demand().await;
                self.current()
                    .ok_or(AuthError::KeysUnavailable)?
                    .find(kid, alg)
            }
            found => found,
        }
    }

    fn current(&self) -> Option<Arc<KeySet>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn refresh_on_demand(&self) {
        let mut last = self.last_on_demand.lock().await;
        if last.is_some_and(|at| at.elapsed() < ON_DEMAND_MIN_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        self.refresh().await;
    }

    /// Fetches the set and swaps it in; on failure logs and keeps the previous one.
    async fn refresh(&self) -> bool {
        match self.fetch().await {
            Ok(set) => {
                tracing::debug!(jwks.url = %self.url, keys = set.all.len(), "JWKS loaded");
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(set));
                true
            }
            Err(error) => {
                tracing::warn!(
                    jwks.url = %self.url,
                    %error,
                    "JWKS fetch failed; keeping the last good key set, if any"
                );
                false
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, FetchError> {
        let body = self
            .client
            .get(&self.url)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        KeySet::parse(&body, &self.url)
    }
}

async fn refresh_loop(jwks: Weak<Jwks>, every: Duration) {
    let mut retry = FIRST_RETRY.min(every);
    loop {
        let loaded = match jwks.upgrade() {
            Some(jwks) => jwks.current().is_some(),
            None => return,
        };
        tokio::time::sleep(if loaded { every } else { retry }).await;
        let Some(jwks) = jwks.upgrade() else { return };
        if !jwks.refresh().await && !loaded {
            retry = (retry * 2).min(MAX_RETRY).min(every);
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("the response is not a JWKS document (a JSON object with a `keys` array): {0}")]
    Document(serde_json::Error),
    #[error("the key set holds no usable signing key")]
    NoUsableKey,
}

/// One fetched JWKS, indexed by `kid`.
pub(crate) struct KeySet {
    /// Several keys may share a kid (an RSA and an EC key, say); the token's `alg` picks.
    by_kid: HashMap<String, Vec<Arc<VerifyKey>>>,
    all: Vec<Arc<VerifyKey>>,
}

impl KeySet {
    /// Parses the document key by key: one malformed or unsupported key is skipped (and
    /// logged) rather than discarding the whole set along with the keys that work.
    fn parse(body: &[u8], url: &str) -> Result<KeySet, FetchError> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<Value>,
        }
        let document: Document = serde_json::from_slice(body).map_err(FetchError::Document)?;
        let mut set = KeySet {
            by_kid: HashMap::new(),
            all: Vec::new(),
        };
        for raw in document.keys {
            let kid = raw.get("kid").and_then(Value::as_str).map(str::to_owned);
            let parsed = serde_json::from_value::<Jwk>(raw)
                .map_err(|e| format!("not a valid JWK: {e}"))
                .and_then(|jwk| VerifyKey::from_jwk(&jwk));
            match parsed {
                Ok(Some(key)) => {
                    let key = Arc::new(key);
                    if let Some(kid) = kid {
                        set.by_kid.entry(kid).or_default().push(Arc::clone(&key));
                    }
                    set.all.push(key);
                }
                Ok(None) => {
                    tracing::debug!(jwks.url = %url, kid = kid.as_deref(), "skipping a JWKS key that is not for signatures");
                }
                Err(reason) => {
                    tracing::warn!(jwks.url = %url, kid = kid.as_deref(), %reason, "skipping an unusable JWKS key");
                }
            }
        }
        if set.all.is_empty() {
            return Err(FetchError::NoUsableKey);
        }
        Ok(set)
    }

    /// The key a token names. A token without `kid` is accepted only when the set holds
    /// exactly one key: with several, guessing would mean trying keys until one fits.
    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Result<Arc<VerifyKey>, AuthError> {
        let candidates = match kid {
            Some(kid) => self.by_kid.get(kid).ok_or(AuthError::UnknownKey)?,
            None if self.all.len() == 1 => &self.all,
            None => return Err(AuthError::MissingKeyId),
        };
        candidates
            .iter()
            .find(|key| key.allows(alg))
            .or_else(|| candidates.first())
            .cloned()
            .ok_or(AuthError::UnknownKey)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(doc: Value) -> Result<KeySet, FetchError> {
        KeySet::parse(doc.to_string().as_bytes(), "test")
    }

    #[test]
    fn unusable_keys_are_skipped_not_fatal() {
        let doc = json!({"keys": [
            {"kty": "oct", "kid": "shared", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"},
            {"kty": "weird", "kid": 5},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
        ]});
        let set = parse(doc).unwrap();
        assert_eq!(set.all.len(), 1);
        assert!(set.find(Some("ed"), Algorithm::EdDSA).is_ok());
        assert!(matches!(
            set.find(Some("shared"), Algorithm::HS256),
            Err(AuthError::UnknownKey)
        ));
        // The single usable key also serves tokens without a kid.
        assert!(set.find(None, Algorithm::EdDSA).is_ok());
    }

    #[test]
    fn empty_or_invalid_documents_fail() {
        assert!(matches!(
            parse(json!({"keys": []})),
            Err(FetchError::NoUsableKey)
        ));
        assert!(matches!(
            parse(json!({"nokeys": 1})),
            Err(FetchError::Document(_))
        ));
        assert!(matches!(parse(json!([1, 2])), Err(FetchError::Document(_))));
    }

    #[test]
    fn declared_alg_must_fit_the_key_type() {
        let ed = json!({"kty": "OKP", "kid": "ed", "crv": "Ed25519", "alg": "RS256",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        assert!(matches!(
            parse(json!({"keys": [ed]})),
            Err(FetchError::NoUsableKey)
        ));
    }
}
