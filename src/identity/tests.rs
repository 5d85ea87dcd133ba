//! End-to-end tests of the identity module with real keys (tests/fixtures/keys) and, for
//! JWKS, a real HTTP server on 127.0.0.1. Token times are set explicitly around the
//! current clock instead of sleeping.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{Value, json};

use super::mint::mint_hs256_at;
use super::*;
use crate::config::AuthConfig;

const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keys")
        .join(name)
}

fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hs_auth() -> AuthConfig {
    AuthConfig {
        hs256_secret: Some(SECRET.into()),
        ..AuthConfig::default()
    }
}

fn pem_auth(public_pem: &str) -> AuthConfig {
    AuthConfig {
        public_key_pem_file: Some(fixture_path(public_pem)),
        ..AuthConfig::default()
    }
}

async fn verifier(auth: &AuthConfig) -> Verifier {
    let dir = tempfile::tempdir().unwrap();
    Verifier::from_config(auth, dir.path()).await.unwrap()
}

/// A valid claim set for `alice`, valid for ten minutes.
fn claims() -> Value {
    json!({"sub": "alice", "iat": now(), "exp": now() + 600})
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Value::Object(base), Value::Object(extra)) = (&mut base, extra) {
        base.extend(extra);
    }
    base
}

fn without(mut base: Value, claim: &str) -> Value {
    if let Value::Object(map) = &mut base {
        map.remove(claim);
    }
    base
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// `claims()` signed with a private key fixture.
fn signed(alg: Algorithm, private_pem: &str, kid: Option<&str>) -> String {
    sign(alg, &private_key(private_pem), kid, &claims())
}

fn not_allowed(err: &AuthError, expected: Algorithm) -> bool {
    matches!(err, AuthError::AlgorithmNotAllowed { alg, .. } if *alg == expected)
}

fn hs(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        None,
        claims,
    )
}

fn private_key(name: &str) -> EncodingKey {
    let pem = fixture(name);
    EncodingKey::from_rsa_pem(&pem)
        .or_else(|_| EncodingKey::from_ec_pem(&pem))
        .or_else(|_| EncodingKey::from_ed_pem(&pem))
        .unwrap()
}

/// A token assembled by hand, for headers no honest library would produce.
fn raw_token(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string()),
        b64(claims.to_string()),
        signature
    )
}

fn request(kind: PrincipalKind, groups: &[&str], act: Option<&str>) -> TokenRequest {
    TokenRequest {
        sub: "agent-7".into(),
        kind,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        act: act.map(str::to_owned),
        ttl: Duration::from_secs(600),
    }
}

fn payload(token: &str) -> Value {
    let segment = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------
// HS256: minting and the embedded default

#[tokio::test]
async fn minted_token_round_trips() {
    let auth = hs_auth();
    let secret = signing_secret(&auth, std::path::Path::new("/nonexistent")).unwrap();
    let token = mint_hs256(
        &secret,
        &auth,
        &request(PrincipalKind::Agent, &["eng", "oncall"], Some("alice")),
    )
    .unwrap();
    let principal = verifier(&auth).await.verify(&token).await.unwrap();
    assert_eq!(principal.sub(), "agent-7");
    assert_eq!(principal.kind(), PrincipalKind::Agent);
    assert_eq!(principal.groups(), ["eng", "oncall"]);
    assert!(principal.in_group("oncall"));
    assert_eq!(principal.on_behalf_of(), Some("alice"));
    assert_eq!(
        principal,
        Principal::for_tests(
            "agent-7",
            PrincipalKind::Agent,
            &["eng", "oncall"],
            Some("alice")
        )
    );

    let claims = payload(&token);
    assert_eq!(claims["act"], json!({"sub": "alice"}));
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        600
    );
    assert_eq!(claims["nbf"], claims["iat"]);
    assert_eq!(claims["jti"].as_str().unwrap().len(), 32);
    let other = mint_hs256(&secret, &auth, &request(PrincipalKind::Agent, &[], None)).unwrap();
    assert_ne!(payload(&other)["jti"], claims["jti"], "jti must be random");
    assert!(payload(&other).get("act").is_none());
}

#[tokio::test]
async fn minted_token_uses_configured_claim_names_issuer_and_audience() {
    let auth = AuthConfig {
        kind_claim: "https://gatehouse.dev/kind".into(),
        groups_claim: "roles".into(),
        issuer: Some("https://issuer.example".into()),
        audience: Some("gatehouse".into()),
        ..hs_auth()
    };
    let secret = signing_secret(&auth, std::path::Path::new("/nonexistent")).unwrap();
    let token = mint_hs256(
        &secret,
        &auth,
        &request(PrincipalKind::Service, &["etl"], None),
    )
    .unwrap();
    let claims = payload(&token);
    assert_eq!(claims["https://gatehouse.dev/kind"], "service");
    assert_eq!(claims["roles"], json!(["etl"]));
    assert_eq!(claims["iss"], "https://issuer.example");
    assert_eq!(claims["aud"], "gatehouse");
    let principal = verifier(&auth).await.verify(&token).await.unwrap();
    assert_eq!(principal.kind(), PrincipalKind::Service);
    assert_eq!(principal.groups(), ["etl"]);
}

#[test]
fn minting_refuses_empty_sub_and_zero_ttl() {
    let auth = hs_auth();
    let secret = signing_secret(&auth, std::path::Path::new("/nonexistent")).unwrap();
    let empty_sub = TokenRequest {
        sub: String::new(),
        ..request(PrincipalKind::Human, &[], None)
    };
    assert!(
        mint_hs256(&secret, &auth, &empty_sub)
            .unwrap_err()
            .to_string()
            .contains("sub")
    );
    let zero_ttl = TokenRequest {
        ttl: Duration::from_millis(500),
        ..request(PrincipalKind::Human, &[], None)
    };
    assert!(
        mint_hs256(&secret, &auth, &zero_ttl)
            .unwrap_err()
            .to_string()
            .contains("lifetime")
    );
}

#[tokio::test]
async fn embedded_default_creates_and_uses_the_data_dir_secret() {
    let dir = tempfile::tempdir().unwrap();
    let auth = AuthConfig::default();
    let verifier = Verifier::from_config(&auth, dir.path()).await.unwrap();
    assert!(dir.path().join("hs256.secret").exists());
    let secret = signing_secret(&auth, dir.path()).unwrap();
    let token = mint_hs256(&secret, &auth, &request(PrincipalKind::Human, &[], None)).unwrap();
    assert_eq!(verifier.verify(&token).await.unwrap().sub(), "agent-7");
    // A second server on the same directory reuses the secret, so the token still holds.
    let again = Verifier::from_config(&auth, dir.path()).await.unwrap();
    assert!(again.verify(&token).await.is_ok());
    assert!(format!("{again:?}").contains("data-dir secret"));
}

#[tokio::test]
async fn groups_as_one_space_separated_string() {
    let token = hs(&with(claims(), json!({"groups": "eng  ops"})));
    let principal = verifier(&hs_auth()).await.verify(&token).await.unwrap();
    assert_eq!(principal.groups(), ["eng", "ops"]);
    assert_eq!(
        principal.kind(),
        PrincipalKind::Human,
        "absent kind means human"
    );
}

// ---------------------------------------------------------------------------------------
// Algorithm attacks

#[tokio::test]
async fn alg_none_is_refused() {
    let verifier = verifier(&hs_auth()).await;
    for alg in ["none", "None", "NONE"] {
        let token = raw_token(&json!({"alg": alg, "typ": "JWT"}), &claims(), "");
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            AuthError::AlgNone,
            "{alg}"
        );
    }
    // Also against a public key, where an "unsigned" fallback would be most tempting.
    let pem = self::verifier(&pem_auth("rsa_public.pem")).await;
    let token = raw_token(&json!({"alg": "none"}), &claims(), "");
    assert_eq!(pem.verify(&token).await.unwrap_err(), AuthError::AlgNone);
}

#[tokio::test]
async fn unknown_or_missing_alg_is_refused() {
    let verifier = verifier(&hs_auth()).await;
    for alg in ["HS1024", "ES512", "RSA-OAEP", ""] {
        let token = raw_token(&json!({"alg": alg}), &claims(), "c2ln");
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            AuthError::UnsupportedAlgorithm,
            "{alg}"
        );
    }
    for header in [json!({"typ": "JWT"}), json!({"alg": 256})] {
        let token = raw_token(&header, &claims(), "c2ln");
        assert!(
            matches!(verifier.verify(&token).await, Err(AuthError::Malformed(_))),
            "{header}"
        );
    }
}

#[tokio::test]
async fn hs256_token_keyed_with_the_public_pem_is_refused() {
    // The classic confusion: an attacker signs HS256 with the public key's PEM text as
    // the HMAC secret, hoping the server feeds its public key to HMAC.
    let public_pem = fixture("rsa_public.pem");
    let forged = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(&public_pem),
        None,
        &claims(),
    );
    let err = verifier(&pem_auth("rsa_public.pem"))
        .await
        .verify(&forged)
        .await
        .unwrap_err();
    assert!(not_allowed(&err, Algorithm::HS256), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the token is signed with HS256, but its verification key accepts only RS256, RS384, RS512, PS256, PS384 or PS512"
    );
}

#[tokio::test]
async fn rs256_token_is_refused_by_an_hs_verifier() {
    let token = signed(Algorithm::RS256, "rsa_private.pem", None);
    let err = verifier(&hs_auth()).await.verify(&token).await.unwrap_err();
    assert!(not_allowed(&err, Algorithm::RS256), "{err:?}");
    assert!(err.to_string().contains("HS256, HS384 or HS512"), "{err}");
}

#[tokio::test]
async fn hs384_and_hs512_are_accepted_with_the_secret() {
    let verifier = verifier(&hs_auth()).await;
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = sign(
            alg,
            &EncodingKey::from_secret(SECRET.as_bytes()),
            None,
            &claims(),
        );
        assert!(verifier.verify(&token).await.is_ok(), "{alg:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Time, issuer and audience

#[tokio::test]
async fn expiry_honours_the_leeway() {
    let auth = AuthConfig {
        leeway_s: 30,
        ..hs_auth()
    };
    let verifier = verifier(&auth).await;
    let long_expired = hs(&with(claims(), json!({"exp": now() - 120})));
    assert_eq!(
        verifier.verify(&long_expired).await.unwrap_err(),
        AuthError::Expired
    );
    let just_expired = hs(&with(claims(), json!({"exp": now() - 10})));
    assert!(
        verifier.verify(&just_expired).await.is_ok(),
        "within leeway"
    );
    // The same token with no leeway is expired.
    let strict = self::verifier(&AuthConfig {
        leeway_s: 0,
        ..hs_auth()
    })
    .await;
    assert_eq!(
        strict.verify(&just_expired).await.unwrap_err(),
        AuthError::Expired
    );
}

#[tokio::test]
async fn exp_is_required_and_must_be_a_number() {
    let verifier = verifier(&hs_auth()).await;
    let no_exp = hs(&without(claims(), "exp"));
    assert_eq!(
        verifier.verify(&no_exp).await.unwrap_err(),
        AuthError::MissingClaim("exp".into())
    );
    let text_exp = hs(&with(claims(), json!({"exp": "tomorrow"})));
    assert_eq!(
        verifier.verify(&text_exp).await.unwrap_err(),
        AuthError::MissingClaim("exp".into())
    );
}

#[tokio::test]
async fn nbf_in_the_future_is_refused() {
    let verifier = verifier(&AuthConfig {
        leeway_s: 30,
        ..hs_auth()
    })
    .await;
    let future = hs(&with(claims(), json!({"nbf": now() + 300})));
    assert_eq!(
        verifier.verify(&future).await.unwrap_err(),
        AuthError::NotYetValid
    );
    let skewed = hs(&with(claims(), json!({"nbf": now() + 10})));
    assert!(verifier.verify(&skewed).await.is_ok(), "within leeway");
    let text = hs(&with(claims(), json!({"nbf": "later"})));
    assert!(matches!(
        verifier.verify(&text).await.unwrap_err(),
        AuthError::InvalidClaim { claim, .. } if claim == "nbf"
    ));
}

#[tokio::test]
async fn issuer_is_checked_when_configured() {
    let auth = AuthConfig {
        issuer: Some("https://issuer.example".into()),
        ..hs_auth()
    };
    let verifier = verifier(&auth).await;
    let right = hs(&with(claims(), json!({"iss": "https://issuer.example"})));
    assert!(verifier.verify(&right).await.is_ok());
    let wrong = hs(&with(claims(), json!({"iss": "https://evil.example"})));
    assert_eq!(
        verifier.verify(&wrong).await.unwrap_err(),
        AuthError::WrongIssuer
    );
    let missing = hs(&claims());
    assert_eq!(
        verifier.verify(&missing).await.unwrap_err(),
        AuthError::MissingClaim("iss".into())
    );
    // Unconfigured, any issuer passes.
    assert!(
        self::verifier(&hs_auth())
            .await
            .verify(&wrong)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn audience_is_checked_when_configured() {
    let auth = AuthConfig {
        audience: Some("gatehouse".into()),
        ..hs_auth()
    };
    let verifier = verifier(&auth).await;
    for aud in [json!("gatehouse"), json!(["billing", "gatehouse"])] {
        let token = hs(&with(claims(), json!({ "aud": aud })));
        assert!(verifier.verify(&token).await.is_ok(), "{aud}");
    }
    let wrong = hs(&with(claims(), json!({"aud": "billing"})));
    assert_eq!(
        verifier.verify(&wrong).await.unwrap_err(),
        AuthError::WrongAudience
    );
    let missing = hs(&claims());
    assert_eq!(
        verifier.verify(&missing).await.unwrap_err(),
        AuthError::MissingClaim("aud".into())
    );
}

#[tokio::test]
async fn audience_in_the_token_is_accepted_when_none_is_configured() {
    let verifier = verifier(&hs_auth()).await;
    for aud in [json!("some-api"), json!(["a", "b"])] {
        let token = hs(&with(claims(), json!({ "aud": aud })));
        assert!(verifier.verify(&token).await.is_ok(), "{aud}");
    }
}

// ---------------------------------------------------------------------------------------
// Signatures and malformed input

#[tokio::test]
async fn bad_signatures_are_refused() {
    let verifier = verifier(&hs_auth()).await;
    let other_secret = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"another-secret-another-secret-00"),
        None,
        &claims(),
    );
    assert_eq!(
        verifier.verify(&other_secret).await.unwrap_err(),
        AuthError::BadSignature
    );

    // Claims swapped for an admin's, signature kept.
    let genuine = hs(&claims());
    let mut parts: Vec<&str> = genuine.split('.').collect();
    let elevated = b64(json!({"sub": "root", "groups": ["admin"], "exp": now() + 600}).to_string());
    parts[1] = &elevated;
    assert_eq!(
        verifier.verify(&parts.join(".")).await.unwrap_err(),
        AuthError::BadSignature
    );
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let verifier = verifier(&hs_auth()).await;
    let good = hs(&claims());
    let (_, rest) = good.split_once('.').unwrap();
    let cases = [
        "garbage".to_owned(),
        String::new(),
        "a.b".to_owned(),
        "a.b.c.d".to_owned(),
        format!("!!!.{rest}"),
        format!("{}.{rest}", b64("not json")),
        format!("{}.{rest}", b64("[1, 2]")),
        raw_token(&json!({"alg": "HS256", "kid": 7}), &claims(), "c2ln"),
        raw_token(&json!({"alg": "HS256", "crit": ["exp"]}), &claims(), "c2ln"),
        "a".repeat(20_000) + ".b.c",
    ];
    for token in cases {
        let err = verifier.verify(&token).await.unwrap_err();
        assert!(
            matches!(err, AuthError::Malformed(_)),
            "{token:.40}: {err:?}"
        );
    }

    // Correctly signed, but the claims are not JSON.
    let header = b64(json!({"alg": "HS256"}).to_string());
    let body = b64("not json");
    let message = format!("{header}.{body}");
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .unwrap();
    let err = verifier
        .verify(&format!("{message}.{signature}"))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Malformed(_)), "{err:?}");
}

#[tokio::test]
async fn gatehouse_claims_are_checked_after_the_signature() {
    let verifier = verifier(&hs_auth()).await;
    let cases = [
        (
            without(claims(), "sub"),
            AuthError::MissingClaim("sub".into()),
        ),
        (
            with(claims(), json!({"sub": ""})),
            AuthError::invalid_claim("sub", "must be a non-empty string"),
        ),
        (
            with(claims(), json!({"kind": "superuser"})),
            AuthError::invalid_claim("kind", "must be one of human, agent or service"),
        ),
        (
            with(claims(), json!({"groups": 42})),
            AuthError::invalid_claim(
                "groups",
                "must be an array of strings or one space-separated string",
            ),
        ),
        (
            with(claims(), json!({"act": "alice"})),
            AuthError::invalid_claim("act", "must be an object with a non-empty `sub`"),
        ),
    ];
    for (claims, expected) in cases {
        assert_eq!(
            verifier.verify(&hs(&claims)).await.unwrap_err(),
            expected,
            "{claims}"
        );
    }
}

#[tokio::test]
async fn messages_never_echo_the_token() {
    let verifier = verifier(&hs_auth()).await;
    let marker = "ZZMARKERZZ";
    let marked = with(
        claims(),
        json!({"sub": marker, "kind": marker, "groups": {marker: 1}}),
    );
    let tokens = [
        hs(&marked),
        raw_token(&json!({"alg": marker, "kid": marker}), &marked, marker),
        raw_token(&json!({"alg": "HS256", "kid": marker}), &marked, marker),
        raw_token(&json!({"alg": "none", "kid": marker}), &marked, ""),
        format!("{marker}.{marker}.{marker}"),
        sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(marker.as_bytes()),
            Some(marker),
            &marked,
        ),
    ];
    for token in tokens {
        let message = verifier.verify(&token).await.unwrap_err().to_string();
        assert!(!message.contains(marker), "{message}");
        assert!(!message.contains(SECRET), "{message}");
    }
}

#[test]
fn bearer_header_parsing() {
    assert_eq!(bearer_token(Some("Bearer abc.def.ghi")), Ok("abc.def.ghi"));
    assert_eq!(bearer_token(Some("bearer abc")), Ok("abc"));
    assert_eq!(bearer_token(Some("  BEARER   abc  ")), Ok("abc"));
    assert_eq!(bearer_token(None), Err(AuthError::MissingToken));
    assert_eq!(bearer_token(Some("")), Err(AuthError::MissingToken));
    assert_eq!(bearer_token(Some("Bearer")), Err(AuthError::MissingToken));
    assert_eq!(
        bearer_token(Some("Bearer   ")),
        Err(AuthError::MissingToken)
    );
    assert_eq!(
        bearer_token(Some("Basic dXNlcjpwYXNz")),
        Err(AuthError::NotBearer)
    );
    assert_eq!(bearer_token(Some("abc.def.ghi")), Err(AuthError::NotBearer));
}

#[test]
fn only_missing_keys_are_unavailable() {
    assert!(AuthError::KeysUnavailable.is_unavailable());
    for other in [
        AuthError::Expired,
        AuthError::BadSignature,
        AuthError::UnknownKey,
        AuthError::MissingToken,
    ] {
        assert!(!other.is_unavailable(), "{other:?}");
    }
}

#[test]
fn mint_at_a_chosen_time_sets_the_window() {
    let auth = hs_auth();
    let secret = signing_secret(&auth, std::path::Path::new("/nonexistent")).unwrap();
    let token = mint_hs256_at(
        &secret,
        &auth,
        &request(PrincipalKind::Human, &[], None),
        1_000,
    )
    .unwrap();
    let claims = payload(&token);
    assert_eq!(
        (claims["iat"].as_u64(), claims["exp"].as_u64()),
        (Some(1_000), Some(1_600))
    );
}

#[tokio::test]
async fn token_minted_long_ago_is_expired() {
    let auth = hs_auth();
    let secret = signing_secret(&auth, std::path::Path::new("/nonexistent")).unwrap();
    let issued = now() - 3_600;
    let token = mint_hs256_at(
        &secret,
        &auth,
        &request(PrincipalKind::Human, &[], None),
        issued,
    )
    .unwrap();
    assert_eq!(
        verifier(&auth).await.verify(&token).await.unwrap_err(),
        AuthError::Expired
    );
}

// ---------------------------------------------------------------------------------------
// PEM public keys

#[tokio::test]
async fn rsa_pem_verifies_rs_and_ps_algorithms() {
    let verifier = verifier(&pem_auth("rsa_public.pem")).await;
    let key = private_key("rsa_private.pem");
    for alg in [Algorithm::RS256, Algorithm::RS512, Algorithm::PS256] {
        let token = sign(alg, &key, None, &with(claims(), json!({"kind": "service"})));
        let principal = verifier.verify(&token).await.unwrap();
        assert_eq!(principal.kind(), PrincipalKind::Service, "{alg:?}");
    }
    let other_key = signed(Algorithm::RS256, "rsa2_private.pem", None);
    assert_eq!(
        verifier.verify(&other_key).await.unwrap_err(),
        AuthError::BadSignature
    );
}

#[tokio::test]
async fn ec_pem_verifies_es256_only() {
    let verifier = verifier(&pem_auth("ec_p256_public.pem")).await;
    let token = signed(Algorithm::ES256, "ec_p256_private.pem", None);
    assert_eq!(verifier.verify(&token).await.unwrap().sub(), "alice");
    // The same token relabelled ES384 never reaches the P-256 key.
    let (_, rest) = token.split_once('.').unwrap();
    let relabelled = format!("{}.{rest}", b64(json!({"alg": "ES384"}).to_string()));
    assert!(not_allowed(
        &verifier.verify(&relabelled).await.unwrap_err(),
        Algorithm::ES384
    ));
}

#[tokio::test]
async fn ed25519_pem_verifies_eddsa() {
    let verifier = verifier(&pem_auth("ed25519_public.pem")).await;
    let token = signed(Algorithm::EdDSA, "ed25519_private.pem", None);
    assert_eq!(verifier.verify(&token).await.unwrap().sub(), "alice");
    let rsa = signed(Algorithm::RS256, "rsa_private.pem", None);
    assert!(not_allowed(
        &verifier.verify(&rsa).await.unwrap_err(),
        Algorithm::RS256
    ));
}

#[tokio::test]
async fn pem_configuration_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = AuthConfig {
        public_key_pem_file: Some(dir.path().join("absent.pem")),
        ..AuthConfig::default()
    };
    let err = Verifier::from_config(&missing, dir.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot read auth.public_key_pem_file") && err.contains("absent.pem"),
        "{err}"
    );

    let private = pem_auth("rsa_private.pem");
    let err = Verifier::from_config(&private, dir.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rsa_private.pem") && err.contains("holds a private key"),
        "{err}"
    );

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let err = Verifier::from_config(
        &AuthConfig {
            public_key_pem_file: Some(garbage),
            ..AuthConfig::default()
        },
        dir.path(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("garbage.pem") && err.contains("is not an RSA, EC"),
        "{err}"
    );
}

#[tokio::test]
async fn settings_out_of_range_fail_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let leeway = AuthConfig {
        leeway_s: 86_400,
        ..hs_auth()
    };
    let err = Verifier::from_config(&leeway, dir.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("auth.leeway_s"), "{err}");
    let two_sources = AuthConfig {
        public_key_pem_file: Some(fixture_path("rsa_public.pem")),
        ..hs_auth()
    };
    let err = Verifier::from_config(&two_sources, dir.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("set only one of"), "{err}");
}

// ---------------------------------------------------------------------------------------
// JWKS

/// A JWKS endpoint on 127.0.0.1 whose document the test can swap, counting its requests.
struct JwksServer {
    url: String,
    document: Arc<Mutex<Value>>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(document: Value) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        JwksServer::serve(listener, document)
    }

    fn serve(listener: tokio::net::TcpListener, document: Value) -> JwksServer {
        type State = (Arc<Mutex<Value>>, Arc<AtomicUsize>);
        async fn jwks(
            axum::extract::State((document, hits)): axum::extract::State<State>,
        ) -> axum::Json<Value> {
            hits.fetch_add(1, Ordering::SeqCst);
            axum::Json(document.lock().unwrap().clone())
        }
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let document = Arc::new(Mutex::new(document));
        let hits = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new()
            .route("/jwks", axum::routing::get(jwks))
            .with_state((Arc::clone(&document), Arc::clone(&hits)));
        tokio::spawn(async move { axum::serve(listener, app).await });
        JwksServer {
            url,
            document,
            hits,
        }
    }

    fn set(&self, document: Value) {
        *self.document.lock().unwrap() = document;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn auth(&self) -> AuthConfig {
        AuthConfig {
            jwks_url: Some(self.url.clone()),
            ..AuthConfig::default()
        }
    }
}

/// The JWK of a public key fixture, computed from the PEM so it cannot drift from it.
fn jwk(public_pem: &str, kid: &str, alg: Option<Algorithm>) -> Value {
    let pem = fixture(public_pem);
    let key = DecodingKey::from_rsa_pem(&pem)
        .or_else(|_| DecodingKey::from_ec_pem(&pem))
        .or_else(|_| DecodingKey::from_ed_pem(&pem))
        .unwrap();
    let mut jwk = Jwk::from_decoding_key(&key, alg).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    serde_json::to_value(jwk).unwrap()
}

#[tokio::test]
async fn jwks_verifies_by_kid_and_follows_rotation() {
    let server = JwksServer::start(json!({"keys": [
        jwk("rsa_public.pem", "rsa-1", None),
        jwk("ec_p256_public.pem", "ec-1", None),
        jwk("ed25519_public.pem", "ed-1", None),
    ]}))
    .await;
    let verifier = verifier(&server.auth()).await;
    assert_eq!(server.hits(), 1, "fetched once at start");

    let rsa1 = private_key("rsa_private.pem");
    let by_rsa = sign(Algorithm::RS256, &rsa1, Some("rsa-1"), &claims());
    assert!(verifier.verify(&by_rsa).await.is_ok());
    let by_ec = signed(Algorithm::ES256, "ec_p256_private.pem", Some("ec-1"));
    assert!(verifier.verify(&by_ec).await.is_ok());
    let by_ed = signed(Algorithm::EdDSA, "ed25519_private.pem", Some("ed-1"));
    assert!(verifier.verify(&by_ed).await.is_ok());
    let no_kid = sign(Algorithm::RS256, &rsa1, None, &claims());
    assert_eq!(
        verifier.verify(&no_kid).await.unwrap_err(),
        AuthError::MissingKeyId
    );
    // Right kid, wrong key: the kid selects, the signature decides.
    let lying = signed(Algorithm::RS256, "rsa2_private.pem", Some("rsa-1"));
    assert_eq!(
        verifier.verify(&lying).await.unwrap_err(),
        AuthError::BadSignature
    );
    assert_eq!(server.hits(), 1, "known kids need no fetch");

    // The IdP rotates to a new key; the first token naming it triggers a refetch.
    server.set(json!({"keys": [jwk("rsa2_public.pem", "rsa-2", None)]}));
    let by_rsa2 = signed(Algorithm::RS256, "rsa2_private.pem", Some("rsa-2"));
    assert_eq!(verifier.verify(&by_rsa2).await.unwrap().sub(), "alice");
    assert_eq!(server.hits(), 2);
    // The retired key is gone with the old set.
    assert_eq!(
        verifier.verify(&by_rsa).await.unwrap_err(),
        AuthError::UnknownKey
    );
    // With exactly one key in the set, a token without kid is accepted.
    let no_kid2 = signed(Algorithm::RS256, "rsa2_private.pem", None);
    assert!(verifier.verify(&no_kid2).await.is_ok());

    // Made-up kids are refused, and within the rate limit they cause no further fetches.
    for i in 0..20 {
        let bogus = sign(
            Algorithm::RS256,
            &rsa1,
            Some(&format!("bogus-{i}")),
            &claims(),
        );
        assert_eq!(
            verifier.verify(&bogus).await.unwrap_err(),
            AuthError::UnknownKey
        );
    }
    assert_eq!(server.hits(), 2, "unknown kids must not hammer the IdP");
}

#[tokio::test]
async fn jwks_key_type_and_alg_bind_the_algorithm() {
    let public_pem = fixture("rsa_public.pem");
    let server = JwksServer::start(json!({"keys": [
        jwk("rsa_public.pem", "rs256-only", Some(Algorithm::RS256)),
        // A symmetric key in a public document is never trusted.
        {"kty": "oct", "kid": "shared", "k": b64(&public_pem)},
    ]}))
    .await;
    let verifier = verifier(&server.auth()).await;
    let key = private_key("rsa_private.pem");
    assert!(
        verifier
            .verify(&sign(Algorithm::RS256, &key, Some("rs256-only"), &claims()))
            .await
            .is_ok()
    );
    let ps = sign(Algorithm::PS256, &key, Some("rs256-only"), &claims());
    let err = verifier.verify(&ps).await.unwrap_err();
    assert!(
        matches!(&err, AuthError::AlgorithmNotAllowed { alg: Algorithm::PS256, expected } if expected == "RS256"),
        "{err:?}"
    );
    let confused = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(&public_pem),
        Some("rs256-only"),
        &claims(),
    );
    assert!(not_allowed(
        &verifier.verify(&confused).await.unwrap_err(),
        Algorithm::HS256
    ));
    let via_oct = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(&public_pem),
        Some("shared"),
        &claims(),
    );
    assert_eq!(
        verifier.verify(&via_oct).await.unwrap_err(),
        AuthError::UnknownKey
    );
}

#[tokio::test]
async fn jwks_failed_refresh_keeps_the_last_good_set() {
    let server = JwksServer::start(json!({"keys": [jwk("rsa_public.pem", "rsa-1", None)]})).await;
    let verifier = verifier(&server.auth()).await;
    server.set(json!({"error": "maintenance"}));
    let key = private_key("rsa_private.pem");
    // An unknown kid forces a refetch, which gets the broken document.
    let unknown = sign(Algorithm::RS256, &key, Some("rsa-9"), &claims());
    assert_eq!(
        verifier.verify(&unknown).await.unwrap_err(),
        AuthError::UnknownKey
    );
    assert_eq!(server.hits(), 2);
    let known = sign(Algorithm::RS256, &key, Some("rsa-1"), &claims());
    assert!(
        verifier.verify(&known).await.is_ok(),
        "the last good set still serves"
    );
}

#[tokio::test]
async fn jwks_unreachable_at_start_fails_closed_then_recovers() {
    // A port that nothing listens on, until the test starts the server there.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let auth = AuthConfig {
        jwks_url: Some(format!("http://{address}/jwks")),
        jwks_refresh_s: 1,
        ..AuthConfig::default()
    };
    let verifier = verifier(&auth).await;
    let token = signed(Algorithm::RS256, "rsa_private.pem", Some("rsa-1"));
    let err = verifier.verify(&token).await.unwrap_err();
    assert_eq!(err, AuthError::KeysUnavailable);
    assert!(err.is_unavailable());

    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let server = JwksServer::serve(
        listener,
        json!({"keys": [jwk("rsa_public.pem", "rsa-1", None)]}),
    );
    // The background task retries after about a second; allow generously for slow CI.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match verifier.verify(&token).await {
            Ok(principal) => {
                assert_eq!(principal.sub(), "alice");
                break;
            }
            Err(AuthError::KeysUnavailable) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(other) => panic!(
                "keys never loaded: {other:?} after {} fetches",
                server.hits()
            ),
        }
    }
}

#[tokio::test]
async fn jwks_is_refreshed_in_the_background() {
    let server = JwksServer::start(json!({"keys": [jwk("rsa_public.pem", "rsa-1", None)]})).await;
    let auth = AuthConfig {
        jwks_refresh_s: 1,
        ..server.auth()
    };
    let verifier = verifier(&auth).await;
    server.set(json!({"keys": [jwk("rsa2_public.pem", "rsa-2", None)]}));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.hits() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no background refresh"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The old key is gone without any unknown-kid refetch having been needed.
    let old = signed(Algorithm::RS256, "rsa_private.pem", Some("rsa-1"));
    let hits = server.hits();
    assert_eq!(
        verifier.verify(&old).await.unwrap_err(),
        AuthError::UnknownKey
    );
    let new = signed(Algorithm::RS256, "rsa2_private.pem", Some("rsa-2"));
    assert!(verifier.verify(&new).await.is_ok());
    // Only the on-demand refetch for the retired kid (if any) was added.
    assert!(server.hits() <= hits + 1);
    drop(verifier);
}

#[tokio::test]
async fn jwks_settings_are_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for (url, reason) in [
        (
            "ftp://idp.example/jwks",
            "must be an http:// or https:// URL",
        ),
        ("not a url", "is not a valid URL"),
    ] {
        let auth = AuthConfig {
            jwks_url: Some(url.into()),
            ..AuthConfig::default()
        };
        let err = Verifier::from_config(&auth, dir.path())
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(err, format!("auth.jwks_url `{url}` {reason}"));
    }
    let zero = AuthConfig {
        jwks_url: Some("http://127.0.0.1:9/jwks".into()),
        jwks_refresh_s: 0,
        ..AuthConfig::default()
    };
    let err = Verifier::from_config(&zero, dir.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("auth.jwks_refresh_s"), "{err}");
}
