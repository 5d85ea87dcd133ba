//! Every bad-token case through the real server, over REST and gRPC: each is a 401
//! problem (UNAUTHENTICATED over gRPC) and nothing runs.

mod common;

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{TEST_SECRET, TestServer, authed};
use gatehouse::proto;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keys")
        .join(name)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(extra: Value) -> Value {
    let mut claims = json!({"sub": "agent-7", "kind": "agent", "iat": now(), "exp": now() + 600});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

fn hs256(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .unwrap()
}

fn rs256(claims: &Value) -> String {
    let pem = std::fs::read(fixture("rsa_private.pem")).unwrap();
    encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap()
}

fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

/// Asserts the token is refused over REST (401 problem) and gRPC (UNAUTHENTICATED), and
/// returns the REST detail.
async fn refused(server: &TestServer, token: &str) -> String {
    let reply = server
        .post(
            "/v1/query",
            Some(token),
            &json!({"datasource": "shop", "sql": "SELECT 1"}),
        )
        .await;
    let detail = reply.problem(401, "unauthenticated");
    let status = server
        .grpc()
        .await
        .list_datasources(authed(proto::ListDatasourcesRequest {}, token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    assert_eq!(
        status.metadata().get("gatehouse-code").unwrap(),
        "unauthenticated"
    );
    assert!(!detail.contains(token), "the detail never echoes the token");
    detail
}

async fn accepted(server: &TestServer, token: &str) {
    server
        .post(
            "/v1/query",
            Some(token),
            &json!({"datasource": "shop", "sql": "SELECT 1"}),
        )
        .await
        .ok();
}

#[tokio::test]
async fn hs256_tokens_are_checked_thoroughly() {
    let server = TestServer::start(&format!(
        "[auth]\nhs256_secret = \"{TEST_SECRET}\"\nissuer = \"https://idp.test\"\naudience = \"gatehouse\"\n"
    ))
    .await;
    let good = json!({"iss": "https://idp.test", "aud": "gatehouse"});
    accepted(&server, &hs256(&claims(good.clone()))).await;
    // Within the 30 s leeway.
    accepted(
        &server,
        &hs256(&claims(
            json!({"iss": "https://idp.test", "aud": "gatehouse", "exp": now() - 10}),
        )),
    )
    .await;

    let cases = [
        (
            "expired",
            hs256(&claims(
                json!({"iss": "https://idp.test", "aud": "gatehouse", "exp": now() - 120}),
            )),
        ),
        (
            "not yet valid",
            hs256(&claims(
                json!({"iss": "https://idp.test", "aud": "gatehouse", "nbf": now() + 600}),
            )),
        ),
        (
            "wrong issuer",
            hs256(&claims(
                json!({"iss": "https://evil.test", "aud": "gatehouse"}),
            )),
        ),
        (
            "wrong audience",
            hs256(&claims(json!({"iss": "https://idp.test", "aud": "other"}))),
        ),
        ("no expiry", {
            let mut c = claims(good.clone());
            c.as_object_mut().unwrap().remove("exp");
            hs256(&c)
        }),
        ("no subject", {
            let mut c = claims(good.clone());
            c.as_object_mut().unwrap().remove("sub");
            hs256(&c)
        }),
        (
            "bad kind",
            hs256(&claims(
                json!({"iss": "https://idp.test", "aud": "gatehouse", "kind": "robot"}),
            )),
        ),
        (
            "bad groups",
            hs256(&claims(
                json!({"iss": "https://idp.test", "aud": "gatehouse", "groups": 7}),
            )),
        ),
        (
            "wrong secret",
            encode(
                &Header::new(Algorithm::HS256),
                &claims(good.clone()),
                &EncodingKey::from_secret(b"some other secret entirely"),
            )
            .unwrap(),
        ),
        ("alg none", unsigned(&claims(good.clone()))),
        ("RS256 against an HS secret", rs256(&claims(good.clone()))),
        ("garbage", "not-a-jwt".to_owned()),
        ("two segments", "abc.def".to_owned()),
        ("bad base64", "!!!.???.***".to_owned()),
    ];
    for (case, token) in cases {
        let detail = refused(&server, &token).await;
        assert!(!detail.is_empty(), "{case}");
    }
}

#[tokio::test]
async fn public_key_tokens_refuse_algorithm_confusion() {
    let public = fixture("rsa_public.pem");
    let server = TestServer::start(&format!(
        "[auth]\npublic_key_pem_file = \"{}\"\n",
        public.display()
    ))
    .await;
    accepted(&server, &rs256(&claims(json!({})))).await;

    // The classic confusion: an HS256 token "signed" with the public key as the secret.
    let public_pem = std::fs::read(&public).unwrap();
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims(json!({})),
        &EncodingKey::from_secret(&public_pem),
    )
    .unwrap();
    let detail = refused(&server, &confused).await;
    assert!(detail.contains("HS256"), "{detail}");

    refused(&server, &unsigned(&claims(json!({})))).await;
    let other_key = std::fs::read(fixture("rsa2_private.pem")).unwrap();
    let wrong_key = encode(
        &Header::new(Algorithm::RS256),
        &claims(json!({})),
        &EncodingKey::from_rsa_pem(&other_key).unwrap(),
    )
    .unwrap();
    refused(&server, &wrong_key).await;
}

#[tokio::test]
async fn ec_and_ed25519_public_keys_verify() {
    for (public, private, alg) in [
        (
            "ec_p256_public.pem",
            "ec_p256_private.pem",
            Algorithm::ES256,
        ),
        (
            "ed25519_public.pem",
            "ed25519_private.pem",
            Algorithm::EdDSA,
        ),
    ] {
        let server = TestServer::start(&format!(
            "[auth]\npublic_key_pem_file = \"{}\"\n",
            fixture(public).display()
        ))
        .await;
        let pem = std::fs::read(fixture(private)).unwrap();
        let key = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).unwrap(),
            _ => EncodingKey::from_ed_pem(&pem).unwrap(),
        };
        let token = encode(&Header::new(alg), &claims(json!({})), &key).unwrap();
        accepted(&server, &token).await;
        refused(&server, &rs256(&claims(json!({})))).await;
    }
}
