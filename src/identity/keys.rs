//! Verification keys, each bound to the algorithms it may verify.
//!
//! Binding the algorithm to the key, not to the token, is what defeats algorithm
//! confusion: a token cannot pick HS256 and have the server use an RSA public key (which
//! anyone has) as the HMAC secret. The allowed list follows the key's type: a shared
//! secret takes HS256/384/512, an RSA key RS*/PS*, a P-256 key ES256, a P-384 key ES384,
//! an Ed25519 key EdDSA, and a JWK that declares `alg` only that one.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::error::AuthError;
use super::secret::HsSecret;

const HMAC: &[Algorithm] = &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
const RSA: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

pub(crate) struct VerifyKey {
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

impl VerifyKey {
    pub(crate) fn hmac(secret: &HsSecret) -> VerifyKey {
        VerifyKey {
            key: DecodingKey::from_secret(secret.as_bytes()),
            algorithms: HMAC.to_vec(),
        }
    }

    /// A public key in PEM form: RSA (PKCS#1 or SPKI), EC P-256/P-384 or Ed25519 (SPKI).
    /// Each parser is tried in turn; the error is a phrase that completes
    /// "auth.public_key_pem_file FILE …".
    pub(crate) fn from_public_pem(pem: &[u8]) -> Result<VerifyKey, &'static str> {
        // A private key here is a deployment mistake worth naming: the server would hold
        // signing material it never needs.
        if pem.windows(16).any(|w| w == b"PRIVATE KEY-----") {
            return Err(
                "holds a private key: configure the public key (`openssl pkey -in KEY -pubout`)",
            );
        }
        if let Ok(key) = DecodingKey::from_rsa_pem(pem)
            // Parses the DER, so a corrupt key fails here rather than on every request.
            && Jwk::from_decoding_key(&key, None).is_ok()
        {
            return Ok(VerifyKey {
                key,
                algorithms: RSA.to_vec(),
            });
        }
        if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            return match ec_algorithm(&key) {
                Some(alg) => Ok(VerifyKey {
                    key,
                    algorithms: vec![alg],
                }),
                None => Err("is an EC key on a curve other than P-256 or P-384"),
            };
        }
        if let Ok(key) = DecodingKey::from_ed_pem(pem)
            && Jwk::from_decoding_key(&key, None).is_ok()
        {
            return Ok(VerifyKey {
                key,
                algorithms: vec![Algorithm::EdDSA],
            });
        }
        Err("is not an RSA, EC (P-256, P-384) or Ed25519 public key in PEM format")
    }

    /// One key of a JWKS: `Ok(None)` for a key that is not for verifying signatures
    /// (identity providers routinely publish encryption keys alongside), `Err` with the
    /// reason, for the log, when a signing key cannot be used.
    pub(crate) fn from_jwk(jwk: &Jwk) -> Result<Option<VerifyKey>, String> {
        match &jwk.common.public_key_use {
            None | Some(PublicKeyUse::Signature) => {}
            Some(_) => return Ok(None),
        }
        if let Some(ops) = &jwk.common.key_operations
            && !ops.contains(&KeyOperations::Verify)
        {
            return Ok(None);
        }
        let (key, family) = match &jwk.algorithm {
            AlgorithmParameters::RSA(rsa) => (
                DecodingKey::from_rsa_components(&rsa.n, &rsa.e)
                    .map_err(|e| format!("bad RSA parameters: {e}"))?,
                RSA.to_vec(),
            ),
            AlgorithmParameters::EllipticCurve(ec) => {
                let key = DecodingKey::from_ec_components(&ec.x, &ec.y)
                    .map_err(|e| format!("bad EC parameters: {e}"))?;
                let alg = match ec_algorithm(&key) {
                    Some(Algorithm::ES256) if ec.curve == EllipticCurve::P256 => Algorithm::ES256,
                    Some(Algorithm::ES384) if ec.curve == EllipticCurve::P384 => Algorithm::ES384,
                    _ => {
                        return Err(format!(
                            "unsupported or inconsistent EC key ({:?})",
                            ec.curve
                        ));
                    }
                };
                (key, vec![alg])
            }
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                let key = DecodingKey::from_ed_components(&okp.x)
                    .map_err(|e| format!("bad Ed25519 parameters: {e}"))?;
                Jwk::from_decoding_key(&key, None)
                    .map_err(|_| "the Ed25519 key is not 32 bytes".to_owned())?;
                (key, vec![Algorithm::EdDSA])
            }
            // A JWKS is a public document: a symmetric key published in it would let
            // anyone who reads the document sign tokens.
            AlgorithmParameters::OctetKey(_) => {
                return Err("symmetric (oct) keys are never trusted from a JWKS".to_owned());
            }
            _ => return Err("unsupported key type".to_owned()),
        };
        let algorithms = match jwk.common.key_algorithm {
            None => family,
            Some(declared) => match Algorithm::try_from(declared) {
                Ok(alg) if family.contains(&alg) => vec![alg],
                _ => return Err(format!("its alg {declared} does not fit the key type")),
            },
        };
        Ok(Some(VerifyKey { key, algorithms }))
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }

    pub(crate) fn allows(&self, alg: Algorithm) -> bool {
        self.algorithms.contains(&alg)
    }

    /// Refuses `alg` unless this key may verify it.
    pub(crate) fn check(&self, alg: Algorithm) -> Result<(), AuthError> {
        if self.allows(alg) {
            Ok(())
        } else {
            Err(AuthError::AlgorithmNotAllowed {
                alg,
                expected: self.expected(),
            })
        }
    }

    /// "RS256, RS384 or PS512" style list for messages.
    fn expected(&self) -> String {
        let names: Vec<String> = self.algorithms.iter().map(|a| format!("{a:?}")).collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            Some((last, _)) => last.clone(),
            None => "no algorithm".to_owned(),
        }
    }
}

/// ES256 for a P-256 key, ES384 for a P-384 key. The curve is read from the public point
/// itself, so a P-256 key can never be asked to verify an ES384 signature.
fn ec_algorithm(key: &DecodingKey) -> Option<Algorithm> {
    let jwk = Jwk::from_decoding_key(key, None).ok()?;
    match jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn pem_type_is_detected() {
        let rsa = VerifyKey::from_public_pem(&fixture("rsa_public.pem")).unwrap();
        assert_eq!(rsa.algorithms, RSA);
        let ec = VerifyKey::from_public_pem(&fixture("ec_p256_public.pem")).unwrap();
        assert_eq!(ec.algorithms, [Algorithm::ES256]);
        let ed = VerifyKey::from_public_pem(&fixture("ed25519_public.pem")).unwrap();
        assert_eq!(ed.algorithms, [Algorithm::EdDSA]);
    }

    #[test]
    fn private_and_garbage_pems_are_refused() {
        for private in [
            "rsa_private.pem",
            "ec_p256_private.pem",
            "ed25519_private.pem",
        ] {
            let err = VerifyKey::from_public_pem(&fixture(private)).err().unwrap();
            assert!(err.contains("private key"), "{private}: {err}");
        }
        let err = VerifyKey::from_public_pem(b"not a pem").err().unwrap();
        assert!(err.contains("is not an RSA"), "{err}");
    }

    #[test]
    fn expected_lists_read_naturally() {
        let ec = VerifyKey::from_public_pem(&fixture("ec_p256_public.pem")).unwrap();
        assert_eq!(ec.expected(), "ES256");
        let rsa = VerifyKey::from_public_pem(&fixture("rsa_public.pem")).unwrap();
        assert_eq!(rsa.expected(), "RS256, RS384, RS512, PS256, PS384 or PS512");
    }
}
